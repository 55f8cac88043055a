"""Differential correction of one object's SGP4 element set: weighted batch least squares.

The fitted parameters are equinoctial forms of SGP4's mean elements, well defined for the
near-circular and near-equatorial orbits where the classical angles are not::

    x = [n (rev/day), e cos(w + O), e sin(w + O), tan(i/2) sin O, tan(i/2) cos O,
         M + w + O (rad), B*]

B* is fitted only when the arc can tell it (:func:`bstar_fittable`), and is otherwise held at
the start set's value.

Each iteration propagates the element set and one copy per parameter, perturbed by a small
step, through SGP4 at every observation time (``Satrec.sgp4_array``: C loops, no Python per
observation) and takes the Jacobian by forward differences. The step is Levenberg-Marquardt's
(Marquardt's diagonal scaling, the damping cut tenfold on every success): a Gauss-Newton step
near the answer, a short gradient step far from it. scipy's ``least_squares`` solves one
problem per call; this loop is the same method written so that eight element sets share one
evaluation, the cost that matters here (``benchmarks/bench_od.py`` times both).

Outliers: after each converged fit, an observation any of whose normalised residuals exceeds
``k`` times the robust scale of all of them (1.4826 x the median absolute normalised
residual, at least 1) is left out and the fit is repeated from there, until the set of
observations kept no longer changes. An observation left out earlier comes back if the new
fit explains it.

The covariance is the inverse of the normal matrix of the normalised residuals: formal,
trusting the stated uncertainties, and inflated by the reduced chi-square only when that is
significantly above 1 (beyond 1 + 3 sqrt(2 / dof)), that is when the stated uncertainties are
shown to be too optimistic. It is given for the canonical elements (first-order propagation
through the element conversion) and as a TEME and RTN position-velocity covariance at the
epoch (through SGP4's own partials, by the same differences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from sgp4.api import Satrec

from ..constants import EARTH_RADIUS_KM, NS_PER_S
from ..propagate import satrec
from ..timeutil import jd_from_ns
from .measure import Measurements, epoch_jd, predict

#: SGP4's rev/day -> rad/min (``xpdotp`` of SGP4.cpp).
_XPDOTP = 1440.0 / (2.0 * math.pi)
#: mu of WGS-72 (what SGP4 uses), km^3/s^2, for the semi-major axis of a mean motion.
_MU = 398600.8
_ELEMENT_NAMES = ("mean_motion_rev_day", "eccentricity", "inclination_deg", "raan_deg",
                  "arg_perigee_deg", "mean_anomaly_deg", "bstar")
#: Forward-difference steps per parameter (relative for the mean motion).
_STEP = np.array([1e-8, 1e-7, 1e-7, 1e-7, 1e-7, 1e-7, 0.0])
_BSTAR_STEP = 1e-6


@dataclass
class Settings:
    """How fits are made (see :class:`ssafuse.od.OdSettings`, which this is)."""

    arc_days: float = 10.0
    min_obs: int = 6
    outlier_sigma: float = 4.0
    max_rounds: int = 5
    max_iterations: int = 50
    fit_bstar: object = "auto"
    prior_km: float | None = None
    sigmas: dict | None = None
    source: str = "od"
    #: SGP4's own error (km, 1 sigma), added in quadrature to every measurement's: a
    #: mean-element theory cannot follow a real orbit closer than some tens of metres (fitted
    #: to the ILRS precise orbit of LAGEOS-2, SGP4 leaves 34 m of range residual; see
    #: tests/test_od_real_radar.py), so a laser range good to a centimetre weighs as 30 m.
    #: 0 trusts the stated uncertainties alone (data simulated from SGP4 itself).
    model_sigma_km: float = 0.03
    #: a fit whose residuals are more than this many times their stated uncertainty
    #: (robust scale) is not accepted
    max_scale: float = 30.0
    #: a fit whose 1-sigma position uncertainty at epoch exceeds this (km) is not accepted
    max_sigma_km: float = 100.0
    #: B* is fitted (``fit_bstar="auto"``) when the arc is at least this long and the
    #: perigee below ``bstar_perigee_km``
    bstar_arc_days: float = 2.0
    bstar_perigee_km: float = 2000.0


@dataclass
class FitResult:
    """One object's fit (see the module docstring)."""

    status: str
    reason: str = ""
    elements: dict | None = None
    satrec: Satrec | None = None
    covariance: np.ndarray | None = None
    covariance_rtn: np.ndarray | None = None
    covariance_teme: np.ndarray | None = None
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    bstar_fitted: bool = False
    iterations: int = 0
    rms_angle_arcsec: float = math.nan
    rms_range_km: float = math.nan
    rms_range_rate_km_s: float = math.nan
    chi2_reduced: float = math.nan
    residuals: np.ndarray | None = None     # (n, 4) observed - predicted (rad, km, km/s)

    @property
    def n_used(self) -> int:
        return int(self.used.sum())

    @property
    def n_rejected(self) -> int:
        return int(len(self.used) - self.used.sum())

    @property
    def converged(self) -> bool:
        return self.status == "converged"


# -- element sets <-> parameters ---------------------------------------------------------------

def to_params(el: dict) -> np.ndarray:
    """Equinoctial parameters of a canonical element row."""
    e = el["eccentricity"]
    i = math.radians(el["inclination_deg"])
    node = math.radians(el["raan_deg"])
    varpi = math.radians(el["arg_perigee_deg"]) + node
    t = math.tan(i / 2.0)
    return np.array([el["mean_motion_rev_day"], e * math.cos(varpi), e * math.sin(varpi),
                     t * math.sin(node), t * math.cos(node),
                     math.radians(el["mean_anomaly_deg"]) + varpi, el["bstar"]])


def from_params(x: np.ndarray) -> dict:
    """Canonical element values of parameters ``x`` (angles in [0, 360) degrees)."""
    n, af, ag, p, q, lon, bstar = x
    e = math.hypot(af, ag)
    varpi = math.atan2(ag, af)
    node = math.atan2(p, q)
    return {"mean_motion_rev_day": float(n), "eccentricity": e,
            "inclination_deg": math.degrees(2.0 * math.atan(math.hypot(p, q))),
            "raan_deg": math.degrees(node) % 360.0,
            "arg_perigee_deg": math.degrees(varpi - node) % 360.0,
            "mean_anomaly_deg": math.degrees(lon - varpi) % 360.0, "bstar": float(bstar)}


def _canonical(x: np.ndarray) -> np.ndarray:
    """from_params as a vector, angles unwrapped near ``x`` (for differences)."""
    n, af, ag, p, q, lon, bstar = x
    varpi = math.atan2(ag, af)
    node = math.atan2(p, q)
    return np.array([n, math.hypot(af, ag), math.degrees(2.0 * math.atan(math.hypot(p, q))),
                     math.degrees(node), math.degrees(varpi - node),
                     math.degrees(lon - varpi), bstar])


def re_epoch(start: Satrec, base: dict, epoch_ns: int) -> dict | None:
    """The start set's mean elements carried to ``epoch_ns`` by SGP4's own secular and drag
    terms (``Satrec`` keeps the mean elements of its last propagation), as a canonical row;
    ``None`` when SGP4 fails there."""
    e0, _, _ = start.sgp4(start.jdsatepoch, start.jdsatepochF)
    n_epoch = start.nm                  # Brouwer mean motion at epoch (``no_unkozai``)
    jd, fr = epoch_jd(epoch_ns)
    e, _, _ = start.sgp4(jd, fr)
    if e != 0 or e0 != 0:
        return None
    row = dict(base)
    row.update(epoch=int(epoch_ns),
               mean_motion_rev_day=start.no_kozai * (start.nm / n_epoch) * _XPDOTP,
               eccentricity=float(start.em), inclination_deg=math.degrees(start.im),
               raan_deg=math.degrees(start.Om) % 360.0,
               arg_perigee_deg=math.degrees(start.om) % 360.0,
               mean_anomaly_deg=math.degrees(start.mm) % 360.0, bstar=float(start.bstar))
    return row


def bstar_fittable(el: dict, arc_days: float, settings: Settings) -> bool:
    """Whether B* is fitted: as asked, or (``"auto"``) when the arc is long enough and the
    perigee low enough for drag to show."""
    if settings.fit_bstar != "auto":
        return bool(settings.fit_bstar)
    n_rad_s = el["mean_motion_rev_day"] * 2.0 * math.pi / 86400.0
    a = (_MU / n_rad_s ** 2) ** (1.0 / 3.0)
    perigee = a * (1.0 - el["eccentricity"]) - EARTH_RADIUS_KM
    return arc_days >= settings.bstar_arc_days and perigee < settings.bstar_perigee_km


# -- the problem of one object -----------------------------------------------------------------

class _Problem:
    """The residual function and its Jacobian for one object's measurements."""

    def __init__(self, m: Measurements, base: dict, n_params: int, prior=None):
        self.m, self.base, self.P = m, base, n_params
        self.prior = prior                      # (x0, sigma) or None
        self.bstar = base["bstar"]
        self.used = np.ones(m.n, bool)

    def steps(self, x: np.ndarray) -> np.ndarray:
        h = _STEP.copy()
        h[0] *= x[0]
        h[6] = _BSTAR_STEP
        return h[:self.P]

    def full(self, x: np.ndarray) -> np.ndarray:
        return x if self.P == 7 else np.r_[x, self.bstar]

    def satrec(self, x: np.ndarray) -> Satrec | None:
        el = from_params(self.full(x))
        if not (0.0 <= el["eccentricity"] < 0.99 and el["mean_motion_rev_day"] > 0.05):
            return None
        row = dict(self.base, **el)
        return satrec(row)

    def evaluate(self, x: np.ndarray, jacobian: bool = True):
        """``(z, J)``: normalised residuals of the used observations (plus the prior's) and
        their Jacobian (None without ``jacobian``); ``(None, None)`` where SGP4 fails."""
        h = self.steps(x)
        xs = [x] + ([x + h[k] * np.eye(self.P)[k] for k in range(self.P)] if jacobian else [])
        sats = [self.satrec(v) for v in xs]
        if any(s is None for s in sats):
            return None, None
        m = self.m.take(self.used)
        err, res, _ = predict(sats, m)
        if err.any():
            return None, None
        sel = m.measured
        z = (res / np.where(sel, m.sigma, 1.0))[:, sel]           # (K, M)
        J = ((z[1:] - z[0]) / h[:, None]).T if jacobian else None
        z0 = z[0]
        if self.prior is not None:
            x0, sig = self.prior
            z0 = np.r_[z0, (x0 - x) / sig]
            if jacobian:
                J = np.vstack([J, -np.diag(1.0 / sig)])
        return z0, J

    def normalised(self, x: np.ndarray) -> np.ndarray | None:
        """(n, 4) normalised residuals of every observation (used or not), NaN where not
        measured; None where SGP4 fails."""
        sat = self.satrec(x)
        if sat is None:
            return None
        err, res, _ = predict([sat], self.m)
        if err.any():
            return None
        return np.where(self.m.measured, res[0] / self.m.sigma, np.nan)


def _lm(prob: _Problem, x: np.ndarray, max_iterations: int):
    """Levenberg-Marquardt from ``x``: ``(x, z, J, iterations, converged)``."""
    z, J = prob.evaluate(x)
    if z is None:
        return x, None, None, 0, False
    cost = float(z @ z)
    lam = 1e-3
    for it in range(1, max_iterations + 1):
        A = J.T @ J
        g = J.T @ z
        D = np.maximum(np.diag(A), 1e-300)
        try:
            step = -np.linalg.solve(A + lam * np.diag(D), g)
        except np.linalg.LinAlgError:
            return x, z, J, it, False
        x_new = x + step
        z_new, _ = prob.evaluate(x_new, jacobian=False)
        cost_new = float(z_new @ z_new) if z_new is not None else math.inf
        if cost_new < cost:
            small = np.max(np.abs(step) * np.sqrt(D)) < 1e-3 or cost - cost_new < 1e-6 * cost
            x, lam = x_new, max(lam / 10.0, 1e-12)
            z, J = prob.evaluate(x)
            if z is None:
                return x, None, None, it, False
            cost = float(z @ z)
            if small:
                return x, z, J, it, True
        else:
            lam *= 10.0
            if lam > 1e8:            # no step lowers the cost: at the minimum
                return x, z, J, it, True
    return x, z, J, max_iterations, False


# -- one object --------------------------------------------------------------------------------

def start_row(start) -> tuple[Satrec, dict]:
    row = _satrec_row(start) if isinstance(start, Satrec) else dict(start)
    ep = row["epoch"]
    if not isinstance(ep, (int, np.integer)):
        ep = pa.scalar(ep, pa.timestamp("ns", tz="UTC")).cast(pa.int64()).as_py()
    row["epoch"] = int(ep)
    for k in ("mean_motion_dot", "mean_motion_ddot"):
        row[k] = row.get(k) or 0.0
    return satrec(row), row


def _satrec_row(sat: Satrec) -> dict:
    """A canonical element row of a ``Satrec`` (what ``twoline2rv`` or ``sgp4init`` set)."""
    days = (sat.jdsatepoch - 2440587.5) + sat.jdsatepochF
    return {"object_id": sat.satnum, "epoch": int(round(days * 86400.0 * NS_PER_S)),
            "mean_motion_rev_day": sat.no_kozai * _XPDOTP, "eccentricity": sat.ecco,
            "inclination_deg": math.degrees(sat.inclo), "raan_deg": math.degrees(sat.nodeo),
            "arg_perigee_deg": math.degrees(sat.argpo),
            "mean_anomaly_deg": math.degrees(sat.mo), "bstar": sat.bstar,
            "mean_motion_dot": sat.ndot * (1036800.0 / math.pi),
            "mean_motion_ddot": sat.nddot * (2985984000.0 / 2.0 / math.pi)}


def fit_measurements(m: Measurements, start: dict, settings: Settings,
                     epoch_ns: int | None = None) -> FitResult:
    """Fit one object's element set to its measurements ``m`` from ``start`` (a canonical
    element row)."""
    n = m.n
    has = m.measured.any(axis=1)
    if has.sum() < settings.min_obs:
        return FitResult("too-few", f"{int(has.sum())} observations with a measurement, "
                         f"{settings.min_obs} needed", used=np.zeros(n, bool))
    sat0, row0 = start_row(start)
    if sat0.error:
        return FitResult("failed", f"SGP4 refuses the start element set (error {sat0.error})",
                         used=np.zeros(n, bool))
    t = m.t_ns[has]
    epoch = int(t.max()) if epoch_ns is None else int(epoch_ns)
    arc_days = (t.max() - t.min()) / (86400.0 * NS_PER_S)
    base = row0 if abs(epoch - row0["epoch"]) < NS_PER_S else re_epoch(sat0, row0, epoch)
    if base is None:
        return FitResult("failed", "SGP4 fails to carry the start set to the fit epoch",
                         used=np.zeros(n, bool))
    m = with_model_error(m, sat0, settings.model_sigma_km)
    P = 7 if bstar_fittable(base, arc_days, settings) else 6
    x = to_params(base)[:P]
    prior = _prior(x, base, settings.prior_km)
    prob = _Problem(m, base, P, prior)
    prob.used = has.copy()
    if int(m.measured[has].sum()) < P + 1:
        return FitResult("too-few", f"{int(m.measured[has].sum())} measured values for {P} "
                         "parameters", used=np.zeros(n, bool))
    return _fit_rounds(prob, x, has, settings, P)


def with_model_error(m: Measurements, sat: Satrec, model_km: float) -> Measurements:
    """``m`` with SGP4's own error ``model_km`` added in quadrature to each sigma: as an angle
    at the object's range (predicted by ``sat``), as a range, and as a range rate at the
    orbit's mean motion."""
    if not model_km:
        return m
    _, r, _ = sat.sgp4_array(*jd_from_ns(m.t_ns))
    d = np.linalg.norm(r - m.site, axis=1)
    rho = np.where(np.isfinite(m.rng), m.rng, np.where(np.isfinite(d) & (d > 0), d, np.inf))
    n_rad_s = sat.no_kozai / 60.0
    extra = np.stack([model_km / rho, model_km / rho, np.full(m.n, model_km),
                      np.full(m.n, model_km * n_rad_s)], axis=1)
    sigma = np.sqrt(m.sigma ** 2 + extra ** 2)
    out = m.take(slice(None))
    out.sigma = np.where(np.isfinite(m.sigma), sigma, np.inf)
    return out


def _prior(x: np.ndarray, el: dict, prior_km: float | None):
    """The start set as an a-priori: parameters' sigmas for a position uncertainty of
    ``prior_km`` (semi-major axis a: angles ~ km / a)."""
    if prior_km is None:
        return None
    n_rad_s = el["mean_motion_rev_day"] * 2.0 * math.pi / 86400.0
    a = (_MU / n_rad_s ** 2) ** (1.0 / 3.0)
    s = prior_km / a
    # the mean motion's sigma is that of a semi-major axis known to prior_km (dn/n = 1.5 da/a)
    sig = np.array([1.5 * el["mean_motion_rev_day"] * s, s, s, s / 2.0, s / 2.0, s,
                    1.0])[:len(x)]
    return x.copy(), sig


def _fit_rounds(prob: _Problem, x: np.ndarray, has: np.ndarray, settings: Settings,
                P: int) -> FitResult:
    """Fit, leave out outliers, refit, until the observations kept no longer change."""
    iterations = 0
    for _ in range(max(settings.max_rounds, 1)):
        x, z, J, its, ok = _lm(prob, x, settings.max_iterations)
        iterations += its
        if z is None:
            return FitResult("diverged", "SGP4 failed during the fit", used=prob.used.copy(),
                             iterations=iterations)
        if not ok:
            return _not_converged(prob, x, J, iterations, settings)
        zn = prob.normalised(x)
        if zn is None:
            return FitResult("diverged", "SGP4 failed at the solution", used=prob.used.copy(),
                             iterations=iterations)
        kept = np.abs(zn[prob.used & has][np.isfinite(zn[prob.used & has])])
        scale = max(1.0, 1.4826 * float(np.median(kept))) if kept.size else 1.0
        bad = np.nanmax(np.where(np.isfinite(zn), np.abs(zn), 0.0), axis=1) > \
            settings.outlier_sigma * scale
        used = has & ~bad
        if np.array_equal(used, prob.used):
            break
        if used.sum() < max(settings.min_obs, has.sum() // 2):
            return FitResult("diverged", f"{int((has & bad).sum())} of {int(has.sum())} "
                             "observations are outliers of every fit", used=used,
                             iterations=iterations)
        prob.used = used
    return _result(prob, x, z, J, iterations, settings, P, zn, scale)


def _not_converged(prob: _Problem, x, J, iterations: int, settings: Settings) -> FitResult:
    """A fit that ran out of iterations: ``poorly-spread`` when the observations leave the
    position undetermined (a short arc's slow crawl along a flat valley), else ``diverged``."""
    out = FitResult("diverged", f"the fit did not converge in {iterations} iterations",
                    used=prob.used.copy(), iterations=iterations)
    try:
        cov_x = np.linalg.inv(J.T @ J)
        _covariances(out, prob, x, cov_x, prob.P)
        sigma = math.sqrt(max(np.trace(out.covariance_teme[:3, :3]), 0.0))
    except (np.linalg.LinAlgError, ValueError):
        sigma = math.inf
    if not sigma <= settings.max_sigma_km:
        out.status, out.reason = "poorly-spread", (
            f"the observations leave the position {sigma:.3g} km uncertain at epoch")
    out.covariance = out.covariance_rtn = out.covariance_teme = None
    return out


def _result(prob: _Problem, x, z, J, iterations, settings: Settings, P, zn, scale) -> FitResult:
    m = prob.m
    n_data = int(m.measured[prob.used].sum())
    z_data = z[:n_data]
    dof = max(n_data - P, 1)
    chi2 = float(z_data @ z_data) / dof
    sat = prob.satrec(x)
    full = prob.full(x)
    res = np.where(m.measured, zn * m.sigma, np.nan)
    out = FitResult("converged", used=prob.used.copy(), bstar_fitted=P == 7,
                    iterations=iterations, chi2_reduced=chi2, residuals=res)
    _rms_into(out, res, prob.used)
    if scale > settings.max_scale:
        out.status, out.reason = "diverged", (f"residuals are {scale:.0f} times their stated "
                                              "uncertainty: not this object, or no fit")
        return out
    try:
        cov_x = np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        out.status, out.reason = "poorly-spread", "the observations do not determine the orbit"
        return out
    if chi2 > 1.0 + 3.0 * math.sqrt(2.0 / dof):
        cov_x = cov_x * chi2
    _covariances(out, prob, x, cov_x, P)
    pos_sigma = math.sqrt(max(np.trace(out.covariance_teme[:3, :3]), 0.0))
    if not np.isfinite(pos_sigma) or pos_sigma > settings.max_sigma_km:
        out.status, out.reason = "poorly-spread", (
            f"the observations leave the position {pos_sigma:.3g} km uncertain at epoch")
        return out
    row = dict(prob.base, **from_params(full))
    out.elements, out.satrec = row, sat
    return out


def _rms_into(out: FitResult, res: np.ndarray, used: np.ndarray) -> None:
    def rms(x):
        x = x[np.isfinite(x)]
        return float(np.sqrt(np.mean(x * x))) if x.size else math.nan

    out.rms_angle_arcsec = rms(np.degrees(res[used, :2]) * 3600.0)
    out.rms_range_km = rms(res[used, 2])
    out.rms_range_rate_km_s = rms(res[used, 3])


def _covariances(out: FitResult, prob: _Problem, x: np.ndarray, cov_x: np.ndarray,
                 P: int) -> None:
    """Canonical-element, TEME and RTN covariances at epoch from the parameters'."""
    full = prob.full(x)
    jc = np.empty((7, P))
    for k in range(P):
        d = np.zeros(7)
        d[k] = 1e-7 * max(abs(full[k]), 1e-3) if k != 6 else _BSTAR_STEP
        jc[:, k] = (_canonical(full + d) - _canonical(full - d)) / (2.0 * d[k])
    jc = jc[:P] if P == 6 else jc
    out.covariance = jc @ cov_x @ jc.T
    h = prob.steps(x)
    jd, fr = epoch_jd(prob.base["epoch"])
    states = []
    for k in range(P + 1):
        v = x if k == 0 else x + h[k - 1] * np.eye(P)[k - 1]
        _, r, vel = prob.satrec(v).sgp4(jd, fr)
        states.append(np.r_[r, vel])
    states = np.array(states)
    G = ((states[1:] - states[0]) / h[:, None]).T                  # (6, P)
    teme = G @ cov_x @ G.T
    out.covariance_teme = teme
    r, v = states[0][:3], states[0][3:]
    rhat = r / np.linalg.norm(r)
    nhat = np.cross(r, v)
    nhat /= np.linalg.norm(nhat)
    that = np.cross(nhat, rhat)
    R = np.zeros((6, 6))
    R[:3, :3] = R[3:, 3:] = np.stack([rhat, that, nhat])
    out.covariance_rtn = R @ teme @ R.T


ELEMENT_NAMES = _ELEMENT_NAMES

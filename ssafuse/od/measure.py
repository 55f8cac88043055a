"""What each observation measured, and what an element set predicts it measured.

The geometry is correlation's (:func:`ssafuse.correlation.observation_scene`: Skyfield frames,
the site and the observed line of sight in TEME at the observation time), so that a residual
here is the residual correlation reports. On top of it, for a fit:

* angles are compared on the tangent plane of the observed direction: the residual is
  ``(u_observed - u_predicted) . b`` for the two unit vectors ``b`` of increasing right
  ascension and declination (``dRA cos dec``, ``dDec`` of J2000) or of azimuth and elevation
  (``dAz cos el``, ``dEl``), in radians; smooth everywhere, even at the pole;
* the time tag is the reception time: the object is taken at ``t - tau``, ``tau`` its range
  over the speed of light (one iteration: under a millimetre at GEO);
* range is one-way (a two-way range is halved by its reader) and range rate is the
  line-of-sight rate relative to the site, which moves with the Earth (``omega x r``; polar
  motion and the slow TEME drift are below 1 mm/s).

Each measurement has a standard deviation: the observation's own (``angle_sigma_deg``,
``range_sigma_km``, ``range_rate_sigma_km_s``) or the default of its kind
(:data:`DEFAULT_SIGMAS`, overridable per run). Residuals are returned divided by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..constants import SECONDS_PER_DAY
from ..correlation import C_KM_S, EARTH_RATE_RAD_S, enu_to_itrs, observation_scene
from ..sensors import lookup
from ..timeutil import jd_from_ns

#: Default 1-sigma uncertainty of a measurement whose record states none, by kind:
#: ``angle`` in degrees per sensor kind, ``range`` in km, ``range_rate`` in km/s. Amateur
#: optical observations state their own (IOD, UK and RDE carry it); these cover the rest.
DEFAULT_SIGMAS = {
    "optical": 0.005,        # deg: 18 arcsec, a plate-solved CCD position
    "radar_angle": 0.02,     # deg
    "laser_angle": 0.001,    # deg
    "range": 0.02,           # km: tracking radar
    "laser_range": 0.002,    # km: an SLR normal point is good to cm; SGP4 is not
    "range_rate": 1e-4,      # km/s
}

#: The smallest uncertainty believed, whatever a record states: an amateur line that states
#: 0.1 arcsec (an uncertainty code read in the units of a coarse angle format) would otherwise
#: outweigh every other observation a millionfold. ``angle`` in degrees (1 arcsec), ``range``
#: in km (1 m: SGP4 itself is not better), ``range_rate`` in km/s.
SIGMA_FLOOR = {"angle": 1.0 / 3600.0, "range": 1e-3, "range_rate": 1e-6}

#: Residual components per observation: two angles, range, range rate.
COMPONENTS = ("angle_1", "angle_2", "range", "range_rate")


@dataclass
class Measurements:
    """Observations as vectors (one row per observation, in input order)."""

    t_ns: np.ndarray          # (n,) reception time
    site: np.ndarray          # (n, 3) TEME km
    site_vel: np.ndarray      # (n, 3) TEME km/s
    u_obs: np.ndarray         # (n, 3) observed line of sight, TEME (NaN: no angles)
    basis: np.ndarray         # (n, 2, 3) tangent-plane unit vectors, TEME
    rng: np.ndarray           # (n,) km, NaN when not measured
    rdot: np.ndarray          # (n,) km/s, NaN when not measured
    sigma: np.ndarray         # (n, 4) per component; inf where not measured
    sensor_id: np.ndarray     # (n,) object array

    @property
    def n(self) -> int:
        return len(self.t_ns)

    @property
    def measured(self) -> np.ndarray:
        """(n, 4) bool: the component was measured."""
        return np.isfinite(self.sigma)

    def take(self, idx) -> "Measurements":
        return Measurements(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def measurements(observations: pa.Table, sensors: pa.Table,
                 sigmas: dict | None = None) -> Measurements:
    """:class:`Measurements` of ``observations`` (every sensor must be in ``sensors``)."""
    sig = dict(DEFAULT_SIGMAS, **(sigmas or {}))
    sc = observation_scene(observations, lookup(sensors))
    n = sc.n
    omega = np.array([0.0, 0.0, EARTH_RATE_RAD_S])
    site_vel = np.cross(omega, sc.site_teme)
    basis = np.full((n, 2, 3), np.nan)
    if sc.radec.any():
        basis[sc.radec] = _radec_basis(sc.u_gcrs[sc.radec])
    if sc.azel.any():
        basis[sc.azel] = _azel_basis(sc.u_gcrs[sc.azel], sc.lat[sc.azel], sc.lon[sc.azel],
                                     sc.r_itrs[sc.azel])
    basis = np.einsum("nij,nkj->nki", sc.r_teme, basis)           # GCRS -> TEME
    kind = np.array([k or "" for k in observations["kind"].to_pylist()], dtype=object)
    sigma = _sigmas(observations, kind, sc.has_angles, sc.obs_range, sc.obs_rdot, sig)
    return Measurements(sc.t_ns, sc.site_teme, site_vel, sc.u_teme, basis, sc.obs_range,
                        sc.obs_rdot, sigma,
                        np.array(observations["sensor_id"].to_pylist(), dtype=object))


def _radec_basis(u: np.ndarray) -> np.ndarray:
    """(n, 2, 3) GCRS unit vectors of increasing RA and Dec at directions ``u``."""
    ra = np.arctan2(u[:, 1], u[:, 0])
    dec = np.arcsin(np.clip(u[:, 2], -1.0, 1.0))
    e_ra = np.stack([-np.sin(ra), np.cos(ra), np.zeros_like(ra)], -1)
    e_dec = np.stack([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)], -1)
    return np.stack([e_ra, e_dec], 1)


def _azel_basis(u_gcrs, lat, lon, r_itrs) -> np.ndarray:
    """(n, 2, 3) GCRS unit vectors of increasing azimuth and elevation at directions
    ``u_gcrs`` seen from sites at ``lat``, ``lon``."""
    to_itrs = enu_to_itrs(lat, lon)                                   # ENU -> ITRS
    enu = np.einsum("nji,nj->ni", to_itrs, np.einsum("nij,nj->ni", r_itrs, u_gcrs))
    az = np.arctan2(enu[:, 0], enu[:, 1])
    el = np.arcsin(np.clip(enu[:, 2], -1.0, 1.0))
    e_az = np.stack([np.cos(az), -np.sin(az), np.zeros_like(az)], -1)
    e_el = np.stack([-np.sin(el) * np.sin(az), -np.sin(el) * np.cos(az), np.cos(el)], -1)
    out = np.stack([e_az, e_el], 1)                                   # ENU
    out = np.einsum("nij,nkj->nki", to_itrs, out)                     # ITRS
    return np.einsum("nji,nkj->nki", r_itrs, out)                     # GCRS


def _sigmas(obs: pa.Table, kind, has_angles, rng, rdot, sig: dict) -> np.ndarray:
    """(n, 4) standard deviations: the record's where stated (> 0), else the default."""
    def col(name):
        x = obs[name].to_numpy(zero_copy_only=False).astype(float)
        return np.where(x > 0, x, np.nan)

    n = obs.num_rows
    default_angle = np.where(kind == "radar", sig["radar_angle"],
                             np.where(kind == "laser", sig["laser_angle"], sig["optical"]))
    angle = np.radians(np.where(np.isfinite(col("angle_sigma_deg")), col("angle_sigma_deg"),
                                default_angle))
    default_range = np.where(kind == "laser", sig["laser_range"], sig["range"])
    r_sig = np.where(np.isfinite(col("range_sigma_km")), col("range_sigma_km"), default_range)
    rr_sig = np.where(np.isfinite(col("range_rate_sigma_km_s")), col("range_rate_sigma_km_s"),
                      sig["range_rate"])
    angle = np.maximum(angle, math.radians(SIGMA_FLOOR["angle"]))
    r_sig = np.maximum(r_sig, SIGMA_FLOOR["range"])
    rr_sig = np.maximum(rr_sig, SIGMA_FLOOR["range_rate"])
    out = np.full((n, 4), np.inf)
    out[has_angles, 0] = angle[has_angles]
    out[has_angles, 1] = angle[has_angles]
    out[np.isfinite(rng), 2] = r_sig[np.isfinite(rng)]
    out[np.isfinite(rdot), 3] = rr_sig[np.isfinite(rdot)]
    return out


def predict(sats, m: Measurements, tau: np.ndarray | None = None):
    """Predicted measurements of every Satrec in ``sats`` at ``m``: ``(err (K, n),
    residual (K, n, 4), tau (n,))``, residuals observed - predicted (radians, km, km/s; 0
    where not measured). Light time ``tau`` (s) is computed from ``sats[0]`` unless given,
    and used for all of them (its change with the element set is far below a nanosecond)."""
    jd, fr = jd_from_ns(m.t_ns)
    if tau is None:
        e0, r0, _ = sats[0].sgp4_array(jd, fr)
        tau = np.linalg.norm(r0 - m.site, axis=1) / C_KM_S
        tau = np.where(np.isfinite(tau), tau, 0.0)
    fr_sent = fr - tau / SECONDS_PER_DAY
    K = len(sats)
    err = np.empty((K, m.n), np.uint8)
    res = np.empty((K, m.n, 4))
    for k, sat in enumerate(sats):
        e, r, v = sat.sgp4_array(jd, fr_sent)
        err[k] = e
        res[k] = _residual(np.asarray(r), np.asarray(v), m)
    return err, res, tau


def _residual(r: np.ndarray, v: np.ndarray, m: Measurements) -> np.ndarray:
    d = r - m.site
    rho = np.sqrt(np.einsum("ij,ij->i", d, d))
    u = d / rho[:, None]
    out = np.empty((m.n, 4))
    du = m.u_obs - u
    out[:, 0] = np.einsum("ij,ij->i", du, m.basis[:, 0])
    out[:, 1] = np.einsum("ij,ij->i", du, m.basis[:, 1])
    out[:, 2] = m.rng - rho
    out[:, 3] = m.rdot - np.einsum("ij,ij->i", v - m.site_vel, u)
    return np.where(np.isfinite(m.sigma), out, 0.0)


@dataclass
class Residuals:
    """Residuals observed - predicted of one element set, per observation."""

    angles_arcsec: np.ndarray      # (n, 2): dRA cos dec, dDec (or dAz cos el, dEl)
    range_km: np.ndarray           # (n,)
    range_rate_km_s: np.ndarray    # (n,)

    @property
    def rms_angle_arcsec(self) -> float:
        return _rms(self.angles_arcsec)

    @property
    def rms_range_km(self) -> float:
        return _rms(self.range_km)

    @property
    def rms_range_rate_km_s(self) -> float:
        return _rms(self.range_rate_km_s)


def _rms(x: np.ndarray) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x * x))) if x.size else math.nan


def residuals_of(sat, m: Measurements) -> Residuals:
    """:class:`Residuals` of one Satrec on ``m`` (NaN where not measured or SGP4 failed)."""
    err, res, _ = predict([sat], m)
    res = np.where(m.measured & (err[0] == 0)[:, None], res[0], np.nan)
    return Residuals(np.degrees(res[:, :2]) * 3600.0, res[:, 2], res[:, 3])


def epoch_jd(t_ns: int):
    """Julian date pair of one time (ns since 1970)."""
    jd, fr = jd_from_ns(np.array([int(t_ns)]))
    return float(jd[0]), float(fr[0])


__all__ = ["Measurements", "measurements", "predict", "Residuals", "residuals_of",
           "DEFAULT_SIGMAS", "SIGMA_FLOOR", "EARTH_RATE_RAD_S"]

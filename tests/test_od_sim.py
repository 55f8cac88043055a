"""Orbit determination against simulated truth (tests/_od_sim.py).

The truth is SGP4 of two real element sets from ``sample_tles/`` (the ISS, LEO with drag; the
GPS satellite NAVSTAR 43, MEO, SDP4); the observations are computed from it with Skyfield by
real COSPAR optical sites on four continents (strf's site list) and a radar (Millstone Hill),
plus seeded Gaussian noise. Every expected value comes from the simulation: the truth's own
SGP4 positions, the stated noise, and chi-square / binomial statistics.

Common conventions:

* the fit is asked for an element set at the truth's own epoch (``epoch_ns``), with the
  arc centred on it: an SGP4 set re-epoched elsewhere does not reproduce another set's
  trajectory exactly (the drag and lunisolar terms are referred to the epoch), so only at
  the same epoch is the truth itself a member of the model family and the error purely the
  noise's;
* errors are compared as SGP4 TEME positions, both sets through python-sgp4 directly;
* the fitted elements' 7x7 (6x6) covariance is carried to any time by the finite-difference
  Jacobian of SGP4 position with respect to (n, e, i, node, argp, u = argp + M, B*), computed
  here (:func:`position_covariances`), independently of the core's own propagation.
"""

from __future__ import annotations

import math
import time

import _od_sim as sim
import numpy as np
import pyarrow as pa
import pytest
from conftest import shared
from scipy.stats import binom, chi2

from ssafuse import od

#: The simulated truth is SGP4 itself: no model error to allow for, the stated noise is all.
SGP4_TRUTH = od.OdSettings(model_sigma_km=0.0)

NOISE = sim.Noise(optical_arcsec=2.0, radar_angle_deg=0.02, range_km=0.015,
                  range_rate_km_s=0.002)
STEP_NS = 600 * sim.NS_PER_S       # error sampling: every 10 minutes over arc + 24 h
#: start perturbations (~5-20 km): mean anomaly, node, mean motion
PERTURB = {
    sim.ISS: {"d_anomaly_deg": 0.1, "d_raan_deg": 0.05, "d_mean_motion_rev_day": 2e-4},
    sim.GPS: {"d_anomaly_deg": 0.02, "d_raan_deg": 0.01, "d_mean_motion_rev_day": 1e-5}}


# -- scenarios (built once per module: the Skyfield part is the slow one) ----------------------

@pytest.fixture(scope="module")
def sensors():
    return sim.sensors_table(shared(sim.STRF_SITES))


class Scenario:
    def __init__(self, norad, sensors, arc_days, *, optical_tracks=None, radar_tracks=None,
                 optical_sites=sim.OPTICAL_SITES, radar=True):
        self.norad = norad
        self.sensors = sensors
        self.sat = sim.truth_satrec(norad)
        self.epoch = sim.epoch_ns(self.sat)
        self.start_ns = self.epoch - int(arc_days / 2 * sim.NS_PER_DAY)
        self.end_ns = self.start_ns + int(arc_days * sim.NS_PER_DAY)
        parts = []
        if optical_sites:
            parts.append(sim.truth_tracks(self.sat, sensors, start_ns=self.start_ns,
                                          arc_days=arc_days, sensor_ids=optical_sites,
                                          max_tracks_per_site=optical_tracks))
        if radar:
            parts.append(sim.truth_tracks(self.sat, sensors, start_ns=self.start_ns,
                                          arc_days=arc_days, sensor_ids=(sim.RADAR_ID,),
                                          max_tracks_per_site=radar_tracks))
        tracks = parts[0]
        for p in parts[1:]:
            tracks = tracks.concat(p)
        self.tracks = tracks.subset(np.argsort(tracks.time_ns, kind="stable"))
        #: arc + 24 h, every 10 minutes
        self.times = np.arange(self.start_ns, self.end_ns + sim.NS_PER_DAY, STEP_NS)
        self.truth_r, _ = sim.sgp4_teme(self.sat, self.times)

    def observations(self, seed: int, kinds=("optical", "radar")) -> pa.Table:
        """Noise drawn for every track from ``seed``, then the kinds kept: the optical
        observations of a joint table and of an optical-only one carry the same noise."""
        obs = sim.observe(self.tracks, NOISE, seed)
        keep = np.isin(self.tracks.kind, kinds)
        return obs if keep.all() else obs.filter(pa.array(keep))

    def start(self, seed: int) -> dict:
        return sim.perturbed_row(self.sat, np.random.default_rng(10_000 + seed),
                                 **PERTURB[self.norad])

    def fit(self, obs, seed: int):
        return od.fit(obs, self.start(seed), self.sensors, epoch_ns=self.epoch,
                      settings=SGP4_TRUTH)

    def errors_km(self, satrec) -> np.ndarray:
        r, _ = sim.sgp4_teme(satrec, self.times)
        return r - self.truth_r


def _scenario(norad, sensors, arc_days, **kw) -> Scenario:
    return Scenario(norad, sensors, arc_days, **kw)


@pytest.fixture(scope="module")
def iss_full(sensors):
    """ISS, 3-day arc, every pass above 10 deg from 4 optical sites and the radar (~690
    observations; B* fitted)."""
    return _scenario(sim.ISS, sensors, 3.0)


@pytest.fixture(scope="module")
def gps_full(sensors):
    """NAVSTAR 43, 3-day arc, a 3-minute track at the top of every pass (~250 obs)."""
    return _scenario(sim.GPS, sensors, 3.0)


@pytest.fixture(scope="module")
def iss_nees(sensors):
    """ISS, 2.5-day arc, 3 tracks per site (~135 obs; B* fitted: 7 parameters)."""
    return _scenario(sim.ISS, sensors, 2.5, optical_tracks=3, radar_tracks=3)


@pytest.fixture(scope="module")
def gps_nees(sensors):
    """NAVSTAR 43, 2-day arc, 2 tracks per site (~90 obs; 6 parameters, SDP4)."""
    return _scenario(sim.GPS, sensors, 2.0, optical_tracks=2, radar_tracks=2)


@pytest.fixture(scope="module")
def gps_sparse(sensors):
    """NAVSTAR 43, 2-day arc, one 3-minute optical track per site (4 sites) and two radar
    tracks: angles alone leave the range to a 20,000 km object poorly known, the radar's
    ranges pin it (the case sensor fusion is for)."""
    return _scenario(sim.GPS, sensors, 2.0, optical_tracks=1, radar_tracks=2)


# -- helpers -----------------------------------------------------------------------------------

def _vector(row) -> np.ndarray:
    return np.array([row["mean_motion_rev_day"], row["eccentricity"], row["inclination_deg"],
                     row["raan_deg"], row["arg_perigee_deg"],
                     row["arg_perigee_deg"] + row["mean_anomaly_deg"], row["bstar"]])


def _row_with(row, v) -> dict:
    out = dict(row)
    out.update(mean_motion_rev_day=v[0], eccentricity=v[1], inclination_deg=v[2],
               raan_deg=v[3], arg_perigee_deg=v[4], mean_anomaly_deg=v[5] - v[4],
               bstar=v[6])
    return out


def position_covariances(row: dict, cov: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
    """(t, 3, 3) TEME position covariance of the element set ``row`` at ``times_ns``, from
    its canonical-element covariance ``cov`` (6x6 or 7x7 over n, e, i, node, argp, M[, B*]),
    linearised: ``J C J^T``. The Jacobian is taken in (n, e, i, node, argp, u = argp + M, B*)
    so that a near-circular orbit's poorly separated argp and M do not cancel numerically;
    central differences of half a standard deviation (curvature terms cancel; the cubic ones
    are ~1e-5 of the step)."""
    p = cov.shape[0]
    T = np.eye(p)
    T[5, 4] = 1.0
    C = T @ cov @ T.T
    v0 = _vector(row)
    J = np.empty((len(times_ns), 3, p))
    for k in range(p):
        h = 0.5 * math.sqrt(C[k, k])
        d = np.zeros(7)
        d[k] = h
        rp, _ = sim.sgp4_teme(sim.satrec_from_row(_row_with(row, v0 + d)), times_ns)
        rm, _ = sim.sgp4_teme(sim.satrec_from_row(_row_with(row, v0 - d)), times_ns)
        J[:, :, k] = (rp - rm) / (2.0 * h)
    return np.einsum("tik,kl,tjl->tij", J, C, J)


def _epoch_state_error(scn: Scenario, f) -> np.ndarray:
    r0, v0 = sim.sgp4_teme(scn.sat, np.array([scn.epoch]))
    r1, v1 = sim.sgp4_teme(f.satrec, np.array([scn.epoch]))
    return np.r_[r1[0] - r0[0], v1[0] - v0[0]]


def _rms_km(e: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(e * e, axis=1))))


# -- the simulator itself ----------------------------------------------------------------------

@pytest.mark.parametrize("which", ["iss_full", "gps_full"])
def test_simulator_light_time_is_skyfields(which, request, sensors):
    """The simulator's light-time shortcut (one Skyfield evaluation at the reception time,
    the satellite carried back by Taylor terms) against the direct Skyfield computation:
    ``EarthSatellite.at(t - tau)`` minus ``GeographicPosition.at(t)``, tau iterated three
    times. Agreement within 0.001 arcsec, 1 mm and 1 mm/s (the neglected terms are < 1e-4 m
    and 1e-4 m/s). Also: every observation is above the 10 deg limit, every site saw it."""
    from skyfield.api import EarthSatellite, wgs84

    scn = request.getfixturevalue(which)
    tr = scn.tracks
    assert tr.el_deg.min() > 10.0
    assert set(tr.sensor_id) == set(sim.OPTICAL_SITES) | {sim.RADAR_ID}
    ts = sim.timescale()
    sky = EarthSatellite.from_satrec(scn.sat, ts)
    for row in sensors.to_pylist():
        idx = np.flatnonzero(tr.sensor_id == row["sensor_id"])[:30]
        site = wgs84.latlon(row["latitude_deg"], row["longitude_deg"],
                            elevation_m=row["altitude_km"] * 1000.0)
        t = sim.sky_times(tr.time_ns[idx])
        here = site.at(t)
        tau = np.zeros(len(idx))
        for _ in range(3):
            there = sky.at(ts.tt_jd(t.whole, t.tt_fraction - tau / 86400.0))
            d = there.position.km - here.position.km
            rng = np.linalg.norm(d, axis=0)
            tau = rng / sim.C_KM_S
        u = d / rng
        rr = np.sum(u * (there.velocity.km_per_s - here.velocity.km_per_s), axis=0)
        ra = np.degrees(np.arctan2(u[1], u[0])) % 360.0
        dec = np.degrees(np.arcsin(u[2]))
        d_ra = ((tr.ra_deg[idx] - ra + 180.0) % 360.0 - 180.0) * np.cos(np.radians(dec))
        assert np.max(np.abs(d_ra)) * 3600.0 < 1e-3
        assert np.max(np.abs(tr.dec_deg[idx] - dec)) * 3600.0 < 1e-3
        assert np.max(np.abs(tr.range_km[idx] - rng)) < 1e-6
        assert np.max(np.abs(tr.range_rate_km_s[idx] - rr)) < 1e-6


def test_simulated_table_is_complete(iss_full):
    """The OBSERVATIONS table carries what ingest would: schema, unique ids, provenance and
    marking filled, the measured columns of each kind and nothing else, the noise drawn
    with the stated sigma (on the sky: dRA cos dec)."""
    from ssafuse.schema import OBSERVATIONS

    obs = iss_full.observations(11)
    assert obs.schema.equals(OBSERVATIONS)
    assert len(set(obs["obs_id"].to_pylist())) == obs.num_rows
    for name in ("source", "source_format", "source_uri", "source_sha256", "source_record",
                 "ingested_at", "classification", "marking", "time", "sensor_id", "kind"):
        assert obs[name].null_count == 0, name
    optical = iss_full.tracks.kind == "optical"
    for name in ("ra_deg", "dec_deg"):
        assert np.array_equal(np.isfinite(obs[name].to_numpy(zero_copy_only=False)),
                              optical)
    for name in ("az_deg", "el_deg", "range_km", "range_rate_km_s"):
        assert np.array_equal(np.isfinite(obs[name].to_numpy(zero_copy_only=False)),
                              ~optical)
    assert set(obs["frame"].to_pylist()) == {"J2000", "AZEL"}
    ra = obs["ra_deg"].to_numpy(zero_copy_only=False)[optical]
    z = ((ra - iss_full.tracks.ra_deg[optical] + 180.0) % 360.0 - 180.0) * np.cos(
        np.radians(iss_full.tracks.dec_deg[optical])) * 3600.0 / NOISE.optical_arcsec
    n = len(z)          # sample sd of n N(0, 1): 1 +- 5 / sqrt(2 n)
    assert abs(z.mean()) < 5.0 / math.sqrt(n)
    assert abs(z.std() - 1.0) < 5.0 / math.sqrt(2 * n)


# -- the measurement model against the simulator -----------------------------------------------

@pytest.mark.parametrize("which", ["iss_full", "gps_full"])
def test_measurement_model_matches_simulator(which, request, sensors):
    """The core's predictions of the truth element set agree with the independent Skyfield
    simulation, noise-free. Tolerances: 0.01 arcsec, 1 cm, 1 mm/s, which are 200, 1500 and
    2000 times below the noise (2 arcsec optical, 15 m, 2 m/s), so no disagreement below
    them can bias the fits, and far above the simulator's own approximations (light-time
    Taylor terms < 1e-4 m and 1e-4 m/s; GCRS = J2000 for both)."""
    scn = request.getfixturevalue(which)
    obs = sim.observe(scn.tracks, sim.Noise(1e-9, 1e-12, 1e-12, 1e-12), 0)
    res = od.residuals(obs, sensors, sim.element_row(scn.sat))
    optical = scn.tracks.kind == "optical"
    radar = ~optical
    assert np.all(np.isfinite(res.angles_arcsec))
    assert np.max(np.abs(res.angles_arcsec)) < 0.01
    assert np.all(np.isnan(res.range_km[optical]))
    assert np.max(np.abs(res.range_km[radar])) < 1e-5
    assert np.max(np.abs(res.range_rate_km_s[radar])) < 1e-6


# -- recovery ----------------------------------------------------------------------------------

@pytest.mark.parametrize("which,kinds", [("iss_full", ("optical",)),
                                         ("iss_full", ("optical", "radar")),
                                         ("gps_full", ("optical", "radar"))])
def test_recovers_truth_from_perturbed_start(which, kinds, request):
    """From the truth perturbed by ~5-20 km (mean anomaly, node, mean motion), the fit
    converges on the truth.

    Tolerances, derived:

    1. covariance bound: if the fitted elements' error is dx ~ N(0, C) (linear least squares
       with the noise stated), every position error e(t) = J(t) dx satisfies
       e(t)^T (J C J^T)^-1 e(t) <= dx^T C^-1 dx ~ chi2(p) (Cauchy-Schwarz in the C metric):
       so the largest Mahalanobis distance over the arc and 24 h beyond is below
       chi2_p^-1(1 - 1e-4) (29.9 for p = 7), all times at once, unless a 1-in-10^4 draw;
    2. absolute budget from the noise, so that an inflated covariance cannot pass (1): an
       observation locates the object across the line of sight to sigma x range; n of them,
       fitting p parameters, to about sigma x range_max x sqrt(p / n); a factor of 10 for
       geometry (range from triangulation between sites and passes) and for 24 h of
       extrapolation. The largest position error over arc + 24 h must be below that;
    3. chi2_reduced is a chi-square over dof = m - p of correctly weighted residuals: within
       1 +- 5 sqrt(2 / dof);
    4. the element row returned reproduces the Satrec returned (within 1 m), and the core's
       TEME covariance at epoch is the elements' covariance carried there (trace within 1%).
    """
    scn = request.getfixturevalue(which)
    seed = 1
    obs = scn.observations(seed, kinds)
    f = scn.fit(obs, seed)
    assert f.status == "converged", f.reason
    assert f.elements is not None and f.satrec is not None
    n = obs.num_rows
    assert f.n_rejected <= 0.01 * n      # 4-sigma outliers of Gaussian noise: ~1e-4 of n

    # 4. the row is the Satrec; the covariances agree with each other
    again = sim.satrec_from_row(f.elements)
    r_row, _ = sim.sgp4_teme(again, scn.times)
    r_fit, _ = sim.sgp4_teme(f.satrec, scn.times)
    assert np.max(np.linalg.norm(r_row - r_fit, axis=1)) < 1e-3
    p = f.covariance.shape[0]
    assert p == (7 if f.bstar_fitted else 6)
    P = position_covariances(f.elements, f.covariance, scn.times)
    p0 = position_covariances(f.elements, f.covariance, np.array([scn.epoch]))[0]
    assert np.trace(p0) == pytest.approx(np.trace(f.covariance_teme[:3, :3]), rel=0.01)

    # 1. covariance bound over arc + 24 h
    e = scn.errors_km(f.satrec)
    maha = np.einsum("ti,tij,tj->t", e, np.linalg.inv(P), e)
    bound = chi2.ppf(1 - 1e-4, p)
    assert maha.max() < bound, (maha.max(), bound)

    # 2. absolute budget from the noise
    optical = np.array(obs["kind"].to_pylist()) == "optical"
    rng = scn.tracks.range_km[np.isin(scn.tracks.kind, kinds)]
    sigma_rad = np.where(optical, NOISE.optical_arcsec / 3600.0, NOISE.radar_angle_deg)
    per_obs_km = np.radians(sigma_rad) * rng
    # the best kind of observation sets the scale (the others only add)
    budget = 10.0 * np.min([per_obs_km[optical].max() if optical.any() else np.inf,
                            per_obs_km[~optical].max() if (~optical).any() else np.inf]
                           ) * math.sqrt(p / n)
    err = np.linalg.norm(e, axis=1)
    assert err.max() < budget, (err.max(), budget)

    # 3. residuals consistent with the noise
    dof = 2 * optical.sum() + 4 * (~optical).sum() - p
    assert abs(f.chi2_reduced - 1.0) < 5.0 * math.sqrt(2.0 / dof), f.chi2_reduced
    if optical.all():
        # RMS of 2(n - rejected) N(0, sigma^2) components: sigma (1 +- 5/sqrt(4 n))
        assert f.rms_angle_arcsec == pytest.approx(NOISE.optical_arcsec,
                                                   rel=5.0 / math.sqrt(4 * n))
    print(f"\n{which} {'+'.join(kinds)}: n={n} p={p} iter={f.iterations} "
          f"max err {err.max() * 1e3:.1f} m (budget {budget * 1e3:.0f} m), "
          f"rms {_rms_km(e) * 1e3:.1f} m, max Mahalanobis {maha.max():.2f} (bound "
          f"{bound:.1f}), chi2r {f.chi2_reduced:.3f}")


# -- covariance consistency --------------------------------------------------------------------

def _nees_check(values: np.ndarray, dof: int):
    """Mean within the two-sided 0.1% band of chi2(dof N) / N; the fraction under the
    chi2(dof) 1/2/3-sigma quantiles within the two-sided 0.1% binomial bounds."""
    N = len(values)
    lo, hi = chi2.ppf(0.0005, dof * N) / N, chi2.ppf(0.9995, dof * N) / N
    mean = float(values.mean())
    out = {"mean": mean, "band": (lo, hi)}
    ok = lo <= mean <= hi
    for q in (0.682689, 0.954500, 0.997300):
        count = int(np.sum(values <= chi2.ppf(q, dof)))
        blo, bhi = binom.ppf(0.0005, N, q), binom.ppf(0.9995, N, q)
        out[q] = (count / N, (blo / N, bhi / N))
        ok &= blo <= count <= bhi
    return ok, out


@pytest.mark.parametrize("which,trials", [("iss_nees", 100), ("gps_nees", 50)])
def test_covariance_is_consistent(which, trials, request):
    """Normalised estimation error squared of the epoch state: with N independent noise
    draws (and starts), NEES_k = dx_k^T P_k^-1 dx_k (dx: fitted - true TEME state at epoch,
    P: covariance_teme) is chi2(6) if the covariance is right, so sum NEES ~ chi2(6N): the
    mean must lie within [chi2_{6N}^-1(0.0005), chi2_{6N}^-1(0.9995)] / N (for N = 100:
    about 4.9 .. 7.3), and the count under each of the 68.27 / 95.45 / 99.73 % quantiles of
    chi2(6) within the 0.05 % / 99.95 % quantiles of Binomial(N, q). The same for the 3-D
    position block against chi2(3). Nonlinearity is negligible (errors of metres against
    SGP4's km-scale curvature)."""
    scn = request.getfixturevalue(which)
    t0 = time.perf_counter()
    nees6, nees3 = [], []
    for k in range(trials):
        seed = 1000 + k
        f = scn.fit(scn.observations(seed), seed)
        assert f.status == "converged", (seed, f.reason)
        dx = _epoch_state_error(scn, f)
        P = f.covariance_teme
        nees6.append(float(dx @ np.linalg.solve(P, dx)))
        nees3.append(float(dx[:3] @ np.linalg.solve(P[:3, :3], dx[:3])))
    ok6, out6 = _nees_check(np.array(nees6), 6)
    ok3, out3 = _nees_check(np.array(nees3), 3)
    print(f"\n{which}: {trials} trials in {time.perf_counter() - t0:.1f} s, "
          f"{scn.tracks.n} obs; NEES6 {out6}; NEES3 {out3}")
    assert ok6, out6
    assert ok3, out3


# -- fusion ------------------------------------------------------------------------------------

def test_joint_fit_beats_each_sensor_alone(gps_sparse):
    """The same object seen by four optical sites (one track each) and the radar (two
    tracks): the joint fit's RMS position error over arc + 24 h, averaged over 6 seeds (the
    same noise on the same observation in every fit), is below the optical-only and the
    radar-only fits'. Least squares with more independent information cannot have a larger
    covariance, and here the radar's ranges fix what short optical tracks of a MEO object
    leave open (its range), so the expected gain is large, not a matter of luck; checked on
    the fits' own propagated covariances as well."""
    scn = gps_sparse
    errors = {"joint": [], "optical": [], "radar": []}
    expected = {"joint": [], "optical": [], "radar": []}
    for seed in range(6):
        for name, kinds in (("joint", ("optical", "radar")), ("optical", ("optical",)),
                            ("radar", ("radar",))):
            f = scn.fit(scn.observations(seed, kinds), seed)
            assert f.status == "converged", (name, seed, f.reason)
            errors[name].append(_rms_km(scn.errors_km(f.satrec)))
            P = position_covariances(f.elements, f.covariance, scn.times)
            expected[name].append(math.sqrt(np.mean(np.trace(P, axis1=1, axis2=2))))
    mean = {k: float(np.mean(v)) for k, v in errors.items()}
    exp = {k: float(np.mean(v)) for k, v in expected.items()}
    print(f"\nmean RMS position error km {mean}; from the covariances {exp}")
    assert mean["joint"] < mean["optical"]
    assert mean["joint"] < mean["radar"]
    assert exp["joint"] < exp["optical"] and exp["joint"] < exp["radar"]


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rows", [0, 1, 5])
def test_too_few_observations(rows, iss_full, sensors):
    """Fewer observations than min_obs (6): status "too-few", no element set, no raise."""
    obs = iss_full.observations(3).slice(0, rows)
    f = od.fit(obs, iss_full.start(3), sensors, epoch_ns=iss_full.epoch, settings=SGP4_TRUTH)
    assert f.status == "too-few"
    assert f.elements is None and f.satrec is None
    assert f.reason


@pytest.mark.parametrize("start", ["wrong-object", "half-an-orbit-off"])
def test_hopeless_start_never_passes_for_a_fit(start, iss_full, sensors):
    """ISS observations fitted from a start that is no guide to them (the GPS satellite's
    element set; the ISS's own half an orbit away): the fit never raises, and says so when
    it fails; if it does report "converged", the set must really fit: within the noise on
    every observation (none dropped to get there) and close to the truth, the same budget as
    a perturbed start (test_recovers_truth_from_perturbed_start)."""
    obs = iss_full.observations(5, ("optical",))
    if start == "wrong-object":
        row = sim.element_row(sim.truth_satrec(sim.GPS))
    else:
        row = sim.element_row(iss_full.sat)
        row["mean_anomaly_deg"] = (row["mean_anomaly_deg"] + 180.0) % 360.0
    f = od.fit(obs, row, sensors, epoch_ns=iss_full.epoch, settings=SGP4_TRUTH)
    assert f.status in {"converged", "diverged", "poorly-spread", "failed"}
    if f.status != "converged":
        assert f.elements is None and f.satrec is None
        assert f.reason
        return
    n = obs.num_rows
    assert f.n_rejected <= 0.01 * n, f.n_rejected
    res = od.residuals(obs, sensors, f.elements)
    assert res.rms_angle_arcsec < NOISE.optical_arcsec * (1 + 5.0 / math.sqrt(4 * n))
    err = np.linalg.norm(iss_full.errors_km(f.satrec), axis=1).max()
    per_obs_km = math.radians(NOISE.optical_arcsec / 3600.0) * iss_full.tracks.range_km.max()
    assert err < 10.0 * per_obs_km * math.sqrt(7 / n), err

"""Correlation: which catalogued object each observation saw, how far off it is, and UCTs.

For every observation with angles, each candidate object's topocentric line of sight at the
observation time is predicted from the element sets (SGP4), compared with the observed one,
and the best object inside the gate is assigned; observations with no object inside the gate
are uncorrelated tracks (UCTs). The reported identity is kept beside the assignment, and an
observation whose reported object is catalogued but outside the gate while another object
fits is flagged ``cross_tag``.

How it is computed, all objects against all observations, in bounded memory:

1. Frames and observer geometry come from Skyfield (``wgs84``, ``itrs``, ``TEME``, the
   precession and nutation matrices; no hand-written rotations): each observation's site and
   observed direction become TEME vectors at the observation time. RA/Dec of J2000 are taken
   as GCRS; B1855..B1950 and J2050 as the mean equator and equinox of that epoch (precession
   only: FK4 E-terms are below an arcsecond); OF-DATE as the true equator and equinox of
   date; az/el through the site's ITRS frame (AZEL-APPARENT less Bennett's refraction).
2. Every object is propagated with SGP4 (``SatrecArray``) at knots every ``knot_s`` seconds
   that bracket observations, using for each object and knot the element set nearest in
   epoch (none older or newer than ``max_age_days``: the object is not a candidate then).
3. A numba kernel interpolates each object between the two knots bracketing each
   observation (cubic Hermite on positions and velocities; at 60 s spacing the interpolation
   error is under a metre in LEO), and keeps the two best objects and the count inside the
   gate, for every observation in parallel.
4. The best, second and reported objects are then predicted exactly (SGP4 at the observation
   time, less the light time) for the residuals: RA/Dec residuals in J2000 (``ra`` as
   ``dRA cos dec``), az/el residuals for az/el observations, range and range rate where
   measured.

Returns ``(correlations, rejects)``: the ``correlations`` table
(:data:`ssafuse.schema.CORRELATIONS`), and a ``rejects`` table holding every observation
that could not be correlated at all, with the reason (an unknown sensor, first of all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sgp4.api import SatrecArray

from . import markings as mk
from .constants import NS_PER_DAY, NS_PER_S, SECONDS_PER_DAY
from .propagate import satrecs, skyfield_times
from .schema import CORRELATIONS, REJECTS
from .sensors import lookup, merge, read_sensors
from .timeutil import format_epoch, jd_from_ns

__all__ = ["correlate", "correlate_store", "object_summary", "DEFAULT_GATE_ARCMIN",
           "CorrelationResult"]

DEFAULT_GATE_ARCMIN = 30.0
DEFAULT_RANGE_GATE_KM = 10.0
DEFAULT_MAX_AGE_DAYS = 30.0
KNOT_S = 60.0
C_KM_S = 299_792.458
#: Earth rotation rate (rad/s, IERS): a site moves at omega x r in TEME (polar motion and
#: TEME's slow drift are below 1 mm/s).
EARTH_RATE_RAD_S = 7.2921158553e-5
_NS = NS_PER_S
_B_EPOCH = {"B1855": 1855.0, "B1875": 1875.0, "B1900": 1900.0, "B1950": 1950.0}
_CHUNK_BYTES = 64 << 20


@dataclass
class CorrelationResult:
    correlations: pa.Table
    rejects: pa.Table

    def __iter__(self):
        return iter((self.correlations, self.rejects))


# -- frames (Skyfield) -------------------------------------------------------------------------

def _matrices(times_ns: np.ndarray):
    """Per time: (GCRS->TEME, GCRS->ITRS, GCRS->true of date) as (N, 3, 3) arrays, and the
    TDB Julian dates."""
    from skyfield.framelib import itrs  # heavy: Skyfield, on use only
    from skyfield.sgp4lib import TEME  # heavy: Skyfield, on use only

    t = skyfield_times(times_ns)
    r_teme = np.moveaxis(np.asarray(TEME.rotation_at(t)).reshape(3, 3, -1), -1, 0)
    r_itrs = np.moveaxis(np.asarray(itrs.rotation_at(t)).reshape(3, 3, -1), -1, 0)
    m = np.moveaxis(np.asarray(t.M).reshape(3, 3, -1), -1, 0)
    return r_teme, r_itrs, m


def _precession(frame: str) -> np.ndarray:
    """Rotation from J2000 (GCRS, frame bias ignored) to the mean equator and equinox of a
    Besselian or Julian epoch."""
    from skyfield.precessionlib import compute_precession  # heavy: Skyfield, on use only

    if frame in _B_EPOCH:
        jd = 2415020.31352 + (_B_EPOCH[frame] - 1900.0) * 365.242198781
    else:  # J2050 and friends
        jd = 2451545.0 + (float(frame[1:]) - 2000.0) * 365.25
    return np.asarray(compute_precession(jd))


def _unit(a_deg: np.ndarray, b_deg: np.ndarray) -> np.ndarray:
    a, b = np.radians(a_deg), np.radians(b_deg)
    return np.stack([np.cos(b) * np.cos(a), np.cos(b) * np.sin(a), np.sin(b)], axis=-1)


def enu_to_itrs(lat_deg, lon_deg) -> np.ndarray:
    """(N, 3, 3): columns are east, north, up in ITRS."""
    la, lo = np.radians(lat_deg), np.radians(lon_deg)
    e = np.stack([-np.sin(lo), np.cos(lo), np.zeros_like(lo)], -1)
    n = np.stack([-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)], -1)
    u = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)
    return np.stack([e, n, u], axis=-1)


def _site_itrs_km(lat_deg, lon_deg, alt_km) -> np.ndarray:
    from skyfield.api import wgs84  # heavy: Skyfield, on use only

    out = np.empty((len(lat_deg), 3))
    for i, (la, lo, al) in enumerate(zip(lat_deg, lon_deg, alt_km)):
        out[i] = wgs84.latlon(la, lo, elevation_m=al * 1000.0).itrs_xyz.km
    return out


def _bennett_refraction_deg(el_apparent_deg: np.ndarray) -> np.ndarray:
    h = np.maximum(el_apparent_deg, -1.0)
    return (1.0 / np.tan(np.radians(h + 7.31 / (h + 4.4)))) / 60.0


# -- the kernel --------------------------------------------------------------------------------

def _kernel():
    import numba  # heavy: numba (and its JIT) loads only when the kernel first runs

    @numba.njit(parallel=True, cache=True)
    def best_two(r, v, kidx, tau, dt, site, u, rng, cos_prune, gate_rad, range_gate,
                 best_j, best_s, second_j, second_s, n_in):
        n = kidx.shape[0]
        J = r.shape[1]
        for i in numba.prange(n):
            k = kidx[i]
            t = tau[i]
            t2 = t * t
            t3 = t2 * t
            h00 = 2 * t3 - 3 * t2 + 1
            h10 = (t3 - 2 * t2 + t) * dt
            h01 = -2 * t3 + 3 * t2
            h11 = (t3 - t2) * dt
            sx, sy, sz = site[i, 0], site[i, 1], site[i, 2]
            ux, uy, uz = u[i, 0], u[i, 1], u[i, 2]
            has_range = not math.isnan(rng[i])
            b1, s1, b2, s2, cnt = -1, 1e300, -1, 1e300, 0
            for j in range(J):
                x = (h00 * r[k, j, 0] + h10 * v[k, j, 0] + h01 * r[k + 1, j, 0]
                     + h11 * v[k + 1, j, 0]) - sx
                y = (h00 * r[k, j, 1] + h10 * v[k, j, 1] + h01 * r[k + 1, j, 1]
                     + h11 * v[k + 1, j, 1]) - sy
                z = (h00 * r[k, j, 2] + h10 * v[k, j, 2] + h01 * r[k + 1, j, 2]
                     + h11 * v[k + 1, j, 2]) - sz
                rho2 = x * x + y * y + z * z
                along = x * ux + y * uy + z * uz
                if not along > 0.0:          # behind the observer, or NaN (no prediction)
                    continue
                c = along / math.sqrt(rho2)
                if has_range:
                    ang = math.acos(min(c, 1.0))
                    dr = math.sqrt(rho2) - rng[i]
                    s = math.sqrt((ang / gate_rad) ** 2 + (dr / range_gate) ** 2)
                else:
                    if c < cos_prune and s2 <= 2.0:
                        continue              # beyond two gates, and two better already held
                    s = math.acos(min(c, 1.0)) / gate_rad
                if s < 1.0:
                    cnt += 1
                if s < s1:
                    b2, s2 = b1, s1
                    b1, s1 = j, s
                elif s < s2:
                    b2, s2 = j, s
            best_j[i], best_s[i], second_j[i], second_s[i], n_in[i] = b1, s1, b2, s2, cnt

    return best_two


_KERNEL = None


def _best_two(*args):
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _kernel()
    _KERNEL(*args)


# -- element sets ------------------------------------------------------------------------------

class _Sets:
    """Element sets grouped by object, epochs sorted, for nearest-epoch look-ups."""

    def __init__(self, elements: pa.Table):
        obj = elements["object_id"].to_numpy()
        epoch = elements["epoch"].cast(pa.int64()).to_numpy()
        order = np.lexsort((epoch, obj))
        self.table = elements.take(order)
        self.obj = obj[order]
        self.epoch = epoch[order]
        self.objects, self.start = np.unique(self.obj, return_index=True)
        self.end = np.r_[self.start[1:], len(self.obj)]
        self.sats = satrecs(self.table)
        self.ok = np.array([s.error == 0 for s in self.sats])
        self.key_scale = 10**10  # seconds
        self.key = (np.searchsorted(self.objects, self.obj).astype(np.int64) * self.key_scale
                    + self.epoch // _NS)
        self.single = len(self.objects) == len(self.obj)

    def nearest(self, obj_index: np.ndarray, t_ns: np.ndarray, max_age_ns: int) -> np.ndarray:
        """Index of the set nearest ``t_ns`` for each (object index, time); -1 when the
        nearest is farther than ``max_age_ns`` or unusable. Broadcasts."""
        obj_index, t_ns = np.broadcast_arrays(obj_index, t_ns)
        key = obj_index.astype(np.int64) * self.key_scale + t_ns // _NS
        pos = np.searchsorted(self.key, key)
        lo = np.maximum(pos - 1, self.start[obj_index])
        hi = np.minimum(pos, self.end[obj_index] - 1)
        d_lo = np.abs(self.epoch[lo] - t_ns)
        d_hi = np.abs(self.epoch[hi] - t_ns)
        best = np.where(d_hi < d_lo, hi, lo)
        age = np.minimum(d_lo, d_hi)
        return np.where((age <= max_age_ns) & self.ok[best], best, -1)


def _knot_states(sets: _Sets, knots_s: np.ndarray, max_age_ns: int):
    """TEME states (K, J, 3) of every object at every knot (seconds since 1970), NaN where
    the object has no set within ``max_age_ns`` or SGP4 fails."""
    K, J = len(knots_s), len(sets.objects)
    knot_ns = knots_s.astype(np.int64) * _NS
    jd, fr = jd_from_ns(knot_ns)
    r = np.full((K, J, 3), np.nan)
    v = np.full((K, J, 3), np.nan)
    assign = sets.nearest(np.arange(J)[None, :], knot_ns[:, None], max_age_ns)  # (K, J)
    start = 0
    while start < K:
        stop = start + 1
        while stop < K and np.array_equal(assign[stop], assign[start]):
            stop += 1
        a = assign[start]
        cols = np.flatnonzero(a >= 0)
        if len(cols):
            arr = SatrecArray([sets.sats[s] for s in a[cols]])
            e, rr, vv = arr.sgp4(jd[start:stop], fr[start:stop])
            rr[e != 0] = np.nan
            vv[e != 0] = np.nan
            r[start:stop, cols] = np.swapaxes(rr, 0, 1)
            v[start:stop, cols] = np.swapaxes(vv, 0, 1)
        start = stop
    return r, v


def _exact(sets: _Sets, set_index: np.ndarray, t_ns: np.ndarray, site_teme: np.ndarray):
    """Light-time corrected TEME line of sight (unit, (N, 3)), range (km) and range rate
    (km/s, relative to the site, which turns with the Earth) of set ``set_index[i]`` seen
    from ``site_teme[i]``; NaN where
    ``set_index`` is -1 or SGP4 fails."""
    n = len(set_index)
    los = np.full((n, 3), np.nan)
    rng = np.full(n, np.nan)
    rdot = np.full(n, np.nan)
    ok = set_index >= 0
    if not ok.any():
        return los, rng, rdot
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(set_index[idx], kind="stable")]
    sidx = set_index[order]
    bounds = np.flatnonzero(np.r_[True, sidx[1:] != sidx[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows = order[a:b]
        sat = sets.sats[sidx[a]]
        jd, fr = jd_from_ns(t_ns[rows])
        e, r, v = sat.sgp4_array(jd, fr)
        d = r - site_teme[rows]
        tau = np.linalg.norm(d, axis=1) / C_KM_S
        e2, r2, v2 = sat.sgp4_array(jd, fr - tau / SECONDS_PER_DAY)
        d = r2 - site_teme[rows]
        good = (e == 0) & (e2 == 0)
        dist = np.linalg.norm(d, axis=1)
        unit = d / dist[:, None]
        los[rows] = np.where(good[:, None], unit, np.nan)
        rng[rows] = np.where(good, dist, np.nan)
        site_vel = np.cross([0.0, 0.0, EARTH_RATE_RAD_S], site_teme[rows])
        rdot[rows] = np.where(good, np.einsum("ij,ij->i", v2 - site_vel, unit), np.nan)
    return los, rng, rdot


# -- the API -----------------------------------------------------------------------------------

def correlate(observations: pa.Table, elements: pa.Table, sensors: pa.Table, *,
              gate_arcmin: float = DEFAULT_GATE_ARCMIN,
              range_gate_km: float = DEFAULT_RANGE_GATE_KM,
              max_age_days: float = DEFAULT_MAX_AGE_DAYS, knot_s: float = KNOT_S,
              now_ns: int = 0) -> CorrelationResult:
    """Correlate ``observations`` (schema ``observations``) with the element sets of
    ``elements`` (an ``elements`` or ``catalogue`` table; several sets per object allowed:
    the one nearest each observation in epoch is used) seen from ``sensors``.

    ``gate_arcmin`` is the angular gate; with a measured range, the score also counts
    ``range residual / range_gate_km``. Returns :class:`CorrelationResult`
    ``(correlations, rejects)``; one correlations row per observation that has a known
    sensor, one rejects row (table ``correlations``) per observation that has not.
    ``now_ns`` stamps the rejects (the caller's clock; nothing here reads it)."""
    site_of = lookup(sensors)
    obs, rejects = _split_unknown_sensors(observations, site_of, now_ns)
    if obs.num_rows == 0:
        return CorrelationResult(CORRELATIONS.empty_table(), rejects)
    scene = observation_scene(obs, site_of)
    sets = _Sets(elements)
    gate = _Gate(math.radians(gate_arcmin / 60.0), float(range_gate_km),
                 int(max_age_days * SECONDS_PER_DAY * NS_PER_S))
    best_j, second_j, n_in = _candidates(scene, sets, gate, knot_s)
    rep_j = _reported_index(obs, sets)
    best = _predict(scene, sets, gate, best_j)
    second = _predict(scene, sets, gate, second_j)
    reported = _predict(scene, sets, gate, rep_j)
    table = _correlation_table(obs, scene, sets, float(gate_arcmin), best_j, second_j, rep_j,
                               n_in, best, second, reported)
    return CorrelationResult(table, rejects)


def correlate_store(store, *, sensor_files=(), gate_arcmin: float = DEFAULT_GATE_ARCMIN,
                    max_age_days: float = DEFAULT_MAX_AGE_DAYS, now_ns: int,
                    save: bool = True) -> CorrelationResult:
    """:func:`correlate` every observation of ``store`` with its element sets.

    The sensors are ``sensor_files`` (site lists or sensor CSVs; first wins) merged with the
    store's ``sensors`` table; when files are given, the merged table is saved to the store.
    With ``save``, the correlations are written to ``STORE/correlations/correlations.parquet``
    and the observations whose sensor is unknown to the rejects table (source ``correlate``,
    dated by ``now_ns``). Returns ``(correlations, rejects)``."""
    sensors = merge(*[read_sensors(f) for f in sensor_files], store.table("sensors"))
    if sensor_files:
        store.write("sensors", sensors, "sensors.parquet")
    result = correlate(store.table("observations"), store.table("elements"), sensors,
                       gate_arcmin=gate_arcmin, max_age_days=max_age_days, now_ns=now_ns)
    if save:
        store.write("correlations", result.correlations, "correlations.parquet")
        if result.rejects.num_rows:
            stamp = format_epoch(now_ns)      # YYYY-MM-DDTHH:MM:SS.fffffffff (UTC)
            store.append_rejects(result.rejects, source="correlate", day=stamp[:10],
                                 name=f"correlate-{stamp[11:19].replace(':', '')}")
    return result


# -- the steps of correlate --------------------------------------------------------------------

@dataclass
class _Gate:
    rad: float            # angular gate, radians
    range_km: float       # range gate
    max_age_ns: int       # farthest element set epoch from an observation


@dataclass
class Scene:
    """The observations with known sensors, as geometry at their times."""

    t_ns: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    r_teme: np.ndarray      # (n, 3, 3) GCRS -> TEME
    r_itrs: np.ndarray      # (n, 3, 3) GCRS -> ITRS
    site_teme: np.ndarray   # (n, 3) km
    u_gcrs: np.ndarray      # (n, 3) observed line of sight
    u_teme: np.ndarray
    radec: np.ndarray       # bool: RA/Dec observation
    azel: np.ndarray        # bool: az/el observation (without RA/Dec)
    obs_range: np.ndarray
    obs_rdot: np.ndarray

    @property
    def n(self) -> int:
        return len(self.t_ns)

    @property
    def has_angles(self) -> np.ndarray:
        return self.radec | self.azel


@dataclass
class _Prediction:
    """Exact prediction of one candidate per observation (see :func:`_predict`)."""

    set_index: np.ndarray
    los: np.ndarray
    rng: np.ndarray
    rdot: np.ndarray
    ang: np.ndarray
    score: np.ndarray


def _split_unknown_sensors(observations: pa.Table, site_of: dict, now_ns: int):
    """``(observations with a known sensor, rejects of the others)``."""
    if not observations.num_rows:
        return observations, REJECTS.empty_table()
    known = np.array([s in site_of for s in observations["sensor_id"].to_pylist()], dtype=bool)
    rejects = _unknown_sensor_rejects(observations.filter(pa.array(~known)), now_ns)
    return observations.filter(pa.array(known)), rejects


def observation_scene(obs: pa.Table, site_of: dict) -> Scene:
    """Sites and observed lines of sight of ``obs`` in GCRS and TEME (Skyfield frames)."""
    t_ns = obs["time"].cast(pa.int64()).to_numpy()
    sid = obs["sensor_id"].to_pylist()
    lat = np.array([site_of[s][0] for s in sid])
    lon = np.array([site_of[s][1] for s in sid])
    alt = np.array([site_of[s][2] for s in sid])
    uniq, inv = np.unique(np.stack([lat, lon, alt], 1), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    site_itrs = _site_itrs_km(uniq[:, 0], uniq[:, 1], uniq[:, 2])[inv]
    r_teme, r_itrs, m_date = _matrices(t_ns)
    site_gcrs = np.einsum("nji,nj->ni", r_itrs, site_itrs)
    site_teme = np.einsum("nij,nj->ni", r_teme, site_gcrs)

    def col(name):
        return obs[name].to_numpy(zero_copy_only=False).astype(float)

    ra, dec, az, el = col("ra_deg"), col("dec_deg"), col("az_deg"), col("el_deg")
    frame = np.array([f or "" for f in obs["frame"].to_pylist()], dtype=object)
    radec = np.isfinite(ra) & np.isfinite(dec)
    azel = ~radec & np.isfinite(az) & np.isfinite(el)
    u_gcrs = np.full((len(t_ns), 3), np.nan)
    u_gcrs[radec] = _radec_directions(ra[radec], dec[radec], frame[radec], m_date[radec])
    if azel.any():
        u_gcrs[azel] = _azel_directions(az[azel], el[azel], frame[azel], lat[azel], lon[azel],
                                        r_itrs[azel])
    u_teme = np.einsum("nij,nj->ni", r_teme, u_gcrs)
    return Scene(t_ns, lat, lon, r_teme, r_itrs, site_teme, u_gcrs, u_teme, radec, azel,
                  col("range_km"), col("range_rate_km_s"))


def _radec_directions(ra, dec, frame, m_date) -> np.ndarray:
    """GCRS unit vectors of RA/Dec referred to ``frame`` (per row)."""
    u = _unit(ra, dec)
    for fr_name in set(frame) - {"J2000", "", "ICRF", "EME2000", "GCRF"}:
        sel = frame == fr_name
        if fr_name == "OF-DATE":
            u[sel] = np.einsum("nji,nj->ni", m_date[sel], u[sel])
        else:
            p = _precession(fr_name)
            u[sel] = u[sel] @ p   # p.T @ u for each row
    return u


def _azel_directions(az, el, frame, lat, lon, r_itrs) -> np.ndarray:
    """GCRS unit vectors of az/el seen from sites at ``lat``, ``lon`` (AZEL-APPARENT less
    Bennett's refraction)."""
    elg = el - np.where(frame == "AZEL-APPARENT", _bennett_refraction_deg(el), 0.0)
    a = np.radians(az)
    e = np.radians(elg)
    enu = np.stack([np.cos(e) * np.sin(a), np.cos(e) * np.cos(a), np.sin(e)], -1)
    u_itrs = np.einsum("nij,nj->ni", enu_to_itrs(lat, lon), enu)
    return np.einsum("nji,nj->ni", r_itrs, u_itrs)


def _candidates(scene: Scene, sets: _Sets, gate: _Gate, knot_s: float):
    """Best and second object (indices into ``sets.objects``, -1: none) and the number in
    the gate per observation, from states interpolated between knots (the numba kernel),
    knot states computed a chunk of knots at a time."""
    n = scene.n
    best_j = np.full(n, -1, np.int64)
    best_s = np.full(n, np.inf)
    second_j = np.full(n, -1, np.int64)
    second_s = np.full(n, np.inf)
    n_in = np.zeros(n, np.int64)
    work = np.flatnonzero(scene.has_angles)
    J = len(sets.objects)
    if not (len(work) and J):
        return best_j, second_j, n_in
    step = int(knot_s)
    k_of = (scene.t_ns[work] // _NS) // step                       # knot interval per obs
    knots = np.unique(np.r_[k_of, k_of + 1])
    per_knot = J * 6 * 8
    chunk = max(2, _CHUNK_BYTES // max(per_knot, 1))
    pos = np.searchsorted(knots, k_of)
    for c0 in range(0, len(knots), chunk - 1):
        c1 = min(c0 + chunk, len(knots))
        sel = np.flatnonzero((pos >= c0) & (pos < c1 - 1))
        if not len(sel):
            continue
        r, v = _knot_states(sets, knots[c0:c1] * step, gate.max_age_ns)
        rows = work[sel]
        tau = ((scene.t_ns[rows] - knots[pos[sel]] * step * _NS) / _NS) / step
        m = len(rows)
        bj, bs, sj, ss, ni = (np.empty(m, np.int64), np.empty(m), np.empty(m, np.int64),
                              np.empty(m), np.empty(m, np.int64))
        _best_two(r, v, (pos[sel] - c0).astype(np.int64), tau.astype(float), float(step),
                  np.ascontiguousarray(scene.site_teme[rows]),
                  np.ascontiguousarray(scene.u_teme[rows]), scene.obs_range[rows],
                  math.cos(min(2 * gate.rad, math.pi)), gate.rad, gate.range_km,
                  bj, bs, sj, ss, ni)
        best_j[rows], best_s[rows], second_j[rows], second_s[rows], n_in[rows] = \
            bj, bs, sj, ss, ni
    return best_j, second_j, n_in


def _reported_index(obs: pa.Table, sets: _Sets) -> np.ndarray:
    """Index into ``sets.objects`` of the object each observation reported, -1 where none
    or not catalogued."""
    J = len(sets.objects)
    rep = np.array([-1 if x is None or (isinstance(x, float) and math.isnan(x)) else int(x)
                    for x in obs["object_id"].to_pylist()], dtype=np.int64)
    if not J:
        return np.full(obs.num_rows, -1, np.int64)
    rep_j = np.searchsorted(sets.objects, rep)
    return np.where((rep_j < J) & (sets.objects[np.minimum(rep_j, J - 1)] == rep), rep_j, -1)


def _predict(scene: Scene, sets: _Sets, gate: _Gate, j: np.ndarray) -> _Prediction:
    """Object ``j[i]`` (-1: none) predicted exactly at each observation: the element set
    used, line of sight, range, range rate, angle to the observed direction and score."""
    if len(sets.objects):
        s = np.where(j >= 0, sets.nearest(np.maximum(j, 0), scene.t_ns, gate.max_age_ns), -1)
    else:
        s = np.full(scene.n, -1, np.int64)
    los, rng, rdot = _exact(sets, s, scene.t_ns, scene.site_teme)
    ang = np.arccos(np.clip(np.einsum("ij,ij->i", los, scene.u_teme), -1, 1))
    score = ang / gate.rad
    with_range = np.isfinite(scene.obs_range)
    score = np.where(with_range, np.hypot(score, (rng - scene.obs_range) / gate.range_km),
                     score)
    return _Prediction(s, los, rng, rdot, ang, score)


def _assign(best: _Prediction, reported: _Prediction, best_j, rep_j) -> tuple:
    """Trust a reported identity that fits the gate; otherwise take the best object inside
    the gate. Returns ``(assigned_j, assigned prediction, cross_tag before the angles test)``."""
    in_gate = best.score < 1.0
    use_rep = reported.score < 1.0
    assigned_j = np.where(use_rep, rep_j, np.where(in_gate, best_j, -1))
    assigned = _Prediction(
        np.where(use_rep, reported.set_index, np.where(in_gate, best.set_index, -1)),
        np.where(use_rep[:, None], reported.los, best.los),
        np.where(use_rep, reported.rng, best.rng),
        np.where(use_rep, reported.rdot, best.rdot),
        np.where(use_rep, reported.ang, best.ang),
        np.where(use_rep, reported.score, best.score))
    cross = (rep_j >= 0) & ~use_rep & in_gate & (best_j != rep_j)
    return assigned_j, assigned, cross


def _residuals(scene: Scene, los_teme: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residual components observed - predicted (arcsec): J2000 ``dRA cos dec`` and ``dDec``,
    or ``dAz cos el`` and ``dEl`` for az/el observations."""
    pred_gcrs = np.einsum("nji,nj->ni", scene.r_teme, los_teme)
    res1 = np.full(scene.n, np.nan)
    res2 = np.full(scene.n, np.nan)
    radec, azel = scene.radec, scene.azel
    if radec.any():
        o = scene.u_gcrs[radec]
        p = pred_gcrs[radec]
        ora, odec = np.arctan2(o[:, 1], o[:, 0]), np.arcsin(np.clip(o[:, 2], -1, 1))
        pra, pdec = np.arctan2(p[:, 1], p[:, 0]), np.arcsin(np.clip(p[:, 2], -1, 1))
        dra = (ora - pra + np.pi) % (2 * np.pi) - np.pi
        res1[radec] = np.degrees(dra * np.cos(odec)) * 3600
        res2[radec] = np.degrees(odec - pdec) * 3600
    if azel.any():
        to_enu = np.swapaxes(enu_to_itrs(scene.lat[azel], scene.lon[azel]), 1, 2)
        r_itrs = scene.r_itrs[azel]
        oa, oe = _az_el(to_enu, r_itrs, scene.u_gcrs[azel])
        pa_, pe = _az_el(to_enu, r_itrs, pred_gcrs[azel])
        res1[azel] = np.degrees(((oa - pa_ + np.pi) % (2 * np.pi) - np.pi) * np.cos(oe)) * 3600
        res2[azel] = np.degrees(oe - pe) * 3600
    return res1, res2


def _az_el(to_enu, r_itrs, u_gcrs):
    """Azimuth and elevation (radians) of GCRS directions."""
    enu = np.einsum("nij,nj->ni", to_enu, np.einsum("nij,nj->ni", r_itrs, u_gcrs))
    return np.arctan2(enu[:, 0], enu[:, 1]), np.arcsin(np.clip(enu[:, 2], -1, 1))


def _correlation_markings(obs: pa.Table, sets: _Sets, set_index: np.ndarray):
    """Per observation, its marking combined with that of the element set assigned (if
    any): ``(classification, releasable_to, marking)`` columns."""
    parts = [(obs["classification"].to_pylist(), obs["releasable_to"].to_pylist()),
             (sets.table["classification"].to_pylist(),
              sets.table["releasable_to"].to_pylist())]
    n = obs.num_rows
    rows = [range(n), [int(k) if k >= 0 else None for k in set_index]]
    return mk.combine_columns(parts, n, rows)


def _ids(objects: np.ndarray, j: np.ndarray, ok=None) -> pa.Array:
    """NORAD numbers of object indices ``j`` (null where ``j`` < 0 or not ``ok``)."""
    ok = (j >= 0) if ok is None else ok
    return pa.array(np.where(ok, objects[np.maximum(j, 0)] if len(objects) else 0, 0),
                    pa.int64(), mask=~ok)


def _floats(x: np.ndarray, ok=None) -> pa.Array:
    """Float column, null where not finite or not ``ok``."""
    ok = np.isfinite(x) if ok is None else ok & np.isfinite(x)
    return pa.array(np.where(ok, x, 0.0), pa.float64(), mask=~ok)


def _correlation_table(obs, scene: Scene, sets: _Sets, gate_arcmin: float, best_j,
                       second_j, rep_j, n_in, best: _Prediction, second: _Prediction,
                       reported: _Prediction) -> pa.Table:
    """The ``correlations`` table: assignment, residuals, runner-up and markings."""
    n = scene.n
    has_angles = scene.has_angles
    assigned_j, a, cross = _assign(best, reported, best_j, rep_j)
    cross &= has_angles
    status = np.where(~has_angles, "no-angles", np.where(assigned_j >= 0, "correlated", "uct"))
    res1, res2 = _residuals(scene, a.los)
    objects, epoch = sets.objects, sets.epoch
    has_a = a.set_index >= 0
    cls, rel, text = _correlation_markings(obs, sets, a.set_index)
    ok_a = has_angles & np.isfinite(a.ang)
    set_epoch = epoch[np.maximum(a.set_index, 0)] if len(epoch) else None
    age = (scene.t_ns - set_epoch) / NS_PER_DAY if len(epoch) else np.zeros(n)
    out = {
        "obs_id": obs["obs_id"],
        "time": obs["time"],
        "sensor_id": obs["sensor_id"],
        "source": obs["source"],
        "reported_object_id": obs["object_id"],
        "object_id": _ids(objects, assigned_j),
        "status": pa.array(status.tolist(), pa.string()),
        "cross_tag": pa.array(cross),
        "angle_residual_arcmin": _floats(np.degrees(a.ang) * 60, ok_a),
        "ra_residual_arcsec": _floats(res1, ok_a),
        "dec_residual_arcsec": _floats(res2, ok_a),
        "range_residual_km": _floats(a.rng - scene.obs_range, ok_a),
        "range_rate_residual_km_s": _floats(a.rdot - scene.obs_rdot, ok_a),
        "score": _floats(a.score, ok_a),
        "best_candidate_id": _ids(objects, best_j),
        "second_object_id": _ids(objects, second_j),
        "second_residual_arcmin": _floats(np.degrees(second.ang) * 60),
        "reported_residual_arcmin": _floats(np.degrees(reported.ang) * 60),
        "n_in_gate": pa.array(n_in, pa.int64()),
        "element_epoch": pa.array(np.where(has_a, set_epoch if len(epoch) else 0, 0),
                                  pa.int64(), mask=~has_a).cast(
                                      CORRELATIONS.field("element_epoch").type),
        "element_age_days": _floats(age, has_a),
        "gate_arcmin": pa.array(np.full(n, gate_arcmin)),
        "source_uri": obs["source_uri"],
        "source_record": obs["source_record"],
        "classification": pa.array(cls, pa.string()),
        "releasable_to": pa.array(rel, pa.list_(pa.string())),
        "marking": pa.array(text, pa.string()),
    }
    return pa.Table.from_pydict(out, schema=CORRELATIONS)


def _unknown_sensor_rejects(obs: pa.Table, now_ns: int) -> pa.Table:
    n = obs.num_rows
    sid = obs["sensor_id"].to_pylist()
    return pa.Table.from_pydict({
        "source": obs["source"],
        "source_format": obs["source_format"],
        "source_uri": obs["source_uri"],
        "source_sha256": obs["source_sha256"],
        "source_record": obs["source_record"],
        "table": pa.array(["correlations"] * n, pa.string()),
        "raw": pa.array([f"obs_id={o} sensor_id={s}" for o, s in
                         zip(obs["obs_id"].to_pylist(), sid)], pa.string()),
        "reason": pa.array([f"unknown sensor {s!r}: not in the sensors table, so the "
                            "observation cannot be reduced" for s in sid], pa.string()),
        "field": pa.array(["sensor_id"] * n, pa.string()),
        "ingested_at": pa.array(np.full(n, now_ns, np.int64)).cast(
            REJECTS.field("ingested_at").type),
    }, schema=REJECTS)


def object_summary(correlations: pa.Table) -> pa.Table:
    """Per assigned object: observations, sensors, sources, last seen, residual statistics
    (median, 90th percentile and max angle residual, arcmin) and observations per sensor
    (``sensor:count`` text, most first). A stale or wrong element set shows as a large
    median residual."""
    import pandas as pd  # heavy: pandas only for this summary

    df = correlations.select(["object_id", "sensor_id", "source", "time",
                              "angle_residual_arcmin"]).to_pandas()
    df = df[df["object_id"].notna()]
    if df.empty:
        return pa.table({"object_id": pa.array([], pa.int64())})
    g = df.groupby("object_id")
    out = pd.DataFrame({
        "n_obs": g.size(),
        "n_sensors": g["sensor_id"].nunique(),
        "n_sources": g["source"].nunique(),
        "last_seen": g["time"].max(),
        "median_residual_arcmin": g["angle_residual_arcmin"].median(),
        "p90_residual_arcmin": g["angle_residual_arcmin"].quantile(0.9),
        "max_residual_arcmin": g["angle_residual_arcmin"].max(),
        "obs_per_sensor": g["sensor_id"].agg(
            lambda s: ", ".join(f"{k}:{v}" for k, v in s.value_counts().items())),
    }).reset_index()
    out["object_id"] = out["object_id"].astype("int64")
    return pa.Table.from_pandas(out, preserve_index=False)

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

from . import markings as mk
from .propagate import satrecs, skyfield_times
from .timeutil import jd_from_ns
from .schema import CORRELATIONS, REJECTS

__all__ = ["correlate", "object_summary", "DEFAULT_GATE_ARCMIN", "CorrelationResult"]

DEFAULT_GATE_ARCMIN = 30.0
DEFAULT_RANGE_GATE_KM = 10.0
DEFAULT_MAX_AGE_DAYS = 30.0
KNOT_S = 60.0
C_KM_S = 299_792.458
_NS = 10**9
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
    from skyfield.framelib import itrs
    from skyfield.sgp4lib import TEME

    t = skyfield_times(times_ns)
    r_teme = np.moveaxis(np.asarray(TEME.rotation_at(t)).reshape(3, 3, -1), -1, 0)
    r_itrs = np.moveaxis(np.asarray(itrs.rotation_at(t)).reshape(3, 3, -1), -1, 0)
    m = np.moveaxis(np.asarray(t.M).reshape(3, 3, -1), -1, 0)
    return r_teme, r_itrs, m


def _precession(frame: str) -> np.ndarray:
    """Rotation from J2000 (GCRS, frame bias ignored) to the mean equator and equinox of a
    Besselian or Julian epoch."""
    from skyfield.precessionlib import compute_precession

    if frame in _B_EPOCH:
        jd = 2415020.31352 + (_B_EPOCH[frame] - 1900.0) * 365.242198781
    else:  # J2050 and friends
        jd = 2451545.0 + (float(frame[1:]) - 2000.0) * 365.25
    return np.asarray(compute_precession(jd))


def _unit(a_deg: np.ndarray, b_deg: np.ndarray) -> np.ndarray:
    a, b = np.radians(a_deg), np.radians(b_deg)
    return np.stack([np.cos(b) * np.cos(a), np.cos(b) * np.sin(a), np.sin(b)], axis=-1)


def _enu_to_itrs(lat_deg, lon_deg) -> np.ndarray:
    """(N, 3, 3): columns are east, north, up in ITRS."""
    la, lo = np.radians(lat_deg), np.radians(lon_deg)
    e = np.stack([-np.sin(lo), np.cos(lo), np.zeros_like(lo)], -1)
    n = np.stack([-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)], -1)
    u = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)
    return np.stack([e, n, u], axis=-1)


def _site_itrs_km(lat_deg, lon_deg, alt_km) -> np.ndarray:
    from skyfield.api import wgs84

    out = np.empty((len(lat_deg), 3))
    for i, (la, lo, al) in enumerate(zip(lat_deg, lon_deg, alt_km)):
        out[i] = wgs84.latlon(la, lo, elevation_m=al * 1000.0).itrs_xyz.km
    return out


def _bennett_refraction_deg(el_apparent_deg: np.ndarray) -> np.ndarray:
    h = np.maximum(el_apparent_deg, -1.0)
    return (1.0 / np.tan(np.radians(h + 7.31 / (h + 4.4)))) / 60.0


# -- the kernel --------------------------------------------------------------------------------

def _kernel():
    import numba

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
    from sgp4.api import SatrecArray

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
    (km/s, site motion ignored) of set ``set_index[i]`` seen from ``site_teme[i]``; NaN where
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
        e2, r2, v2 = sat.sgp4_array(jd, fr - tau / 86400.0)
        d = r2 - site_teme[rows]
        good = (e == 0) & (e2 == 0)
        dist = np.linalg.norm(d, axis=1)
        unit = d / dist[:, None]
        los[rows] = np.where(good[:, None], unit, np.nan)
        rng[rows] = np.where(good, dist, np.nan)
        rdot[rows] = np.where(good, np.einsum("ij,ij->i", v2, unit), np.nan)
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
    from .sensors import lookup

    n_all = observations.num_rows
    site_of = lookup(sensors)
    sensor_ids = observations["sensor_id"].to_pylist()
    known = np.array([s in site_of for s in sensor_ids], dtype=bool)
    rejects = _unknown_sensor_rejects(observations.filter(pa.array(~known)), now_ns) \
        if n_all else REJECTS.empty_table()
    obs = observations.filter(pa.array(known)) if n_all else observations
    n = obs.num_rows
    if n == 0:
        return CorrelationResult(CORRELATIONS.empty_table(), rejects)

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
    obs_range = col("range_km")
    obs_rdot = col("range_rate_km_s")
    frame = np.array([f or "" for f in obs["frame"].to_pylist()], dtype=object)
    radec = np.isfinite(ra) & np.isfinite(dec)
    azel = ~radec & np.isfinite(az) & np.isfinite(el)
    has_angles = radec | azel
    u_gcrs = np.full((n, 3), np.nan)
    u_gcrs[radec] = _unit(ra[radec], dec[radec])
    for fr_name in set(frame[radec]) - {"J2000", "", "ICRF", "EME2000", "GCRF"}:
        sel = radec & (frame == fr_name)
        if fr_name == "OF-DATE":
            u_gcrs[sel] = np.einsum("nji,nj->ni", m_date[sel], u_gcrs[sel])
        else:
            p = _precession(fr_name)
            u_gcrs[sel] = u_gcrs[sel] @ p   # p.T @ u for each row
    if azel.any():
        elg = el[azel] - np.where(frame[azel] == "AZEL-APPARENT",
                                  _bennett_refraction_deg(el[azel]), 0.0)
        a = np.radians(az[azel])
        e = np.radians(elg)
        enu = np.stack([np.cos(e) * np.sin(a), np.cos(e) * np.cos(a), np.sin(e)], -1)
        u_itrs = np.einsum("nij,nj->ni", _enu_to_itrs(lat[azel], lon[azel]), enu)
        u_gcrs[azel] = np.einsum("nji,nj->ni", r_itrs[azel], u_itrs)
    u_teme = np.einsum("nij,nj->ni", r_teme, u_gcrs)

    sets = _Sets(elements)
    max_age_ns = int(max_age_days * 86400 * _NS)
    gate_rad = math.radians(gate_arcmin / 60.0)
    J = len(sets.objects)
    best_j = np.full(n, -1, np.int64)
    best_s = np.full(n, np.inf)
    second_j = np.full(n, -1, np.int64)
    second_s = np.full(n, np.inf)
    n_in = np.zeros(n, np.int64)
    work = np.flatnonzero(has_angles)
    if len(work) and J:
        step = int(knot_s)
        k_of = (t_ns[work] // _NS) // step                       # knot interval per obs
        knots = np.unique(np.r_[k_of, k_of + 1])
        per_knot = J * 6 * 8
        chunk = max(2, _CHUNK_BYTES // max(per_knot, 1))
        pos = np.searchsorted(knots, k_of)
        for c0 in range(0, len(knots), chunk - 1):
            c1 = min(c0 + chunk, len(knots))
            sel = np.flatnonzero((pos >= c0) & (pos < c1 - 1))
            if not len(sel):
                continue
            r, v = _knot_states(sets, knots[c0:c1] * step, max_age_ns)
            rows = work[sel]
            tau = ((t_ns[rows] - knots[pos[sel]] * step * _NS) / _NS) / step
            bj, bs, sj, ss, ni = (np.empty(len(rows), np.int64), np.empty(len(rows)),
                                  np.empty(len(rows), np.int64), np.empty(len(rows)),
                                  np.empty(len(rows), np.int64))
            _best_two(r, v, (pos[sel] - c0).astype(np.int64), tau.astype(float), float(step),
                      np.ascontiguousarray(site_teme[rows]),
                      np.ascontiguousarray(u_teme[rows]), obs_range[rows],
                      math.cos(min(2 * gate_rad, math.pi)), gate_rad, float(range_gate_km), bj, bs, sj, ss, ni)
            best_j[rows], best_s[rows], second_j[rows], second_s[rows], n_in[rows] = \
                bj, bs, sj, ss, ni

    # reported objects, as catalogue indices
    reported = obs["object_id"].to_numpy(zero_copy_only=False)
    rep = np.array([-1 if x is None or (isinstance(x, float) and math.isnan(x)) else int(x)
                    for x in obs["object_id"].to_pylist()], dtype=np.int64)
    rep_j = np.searchsorted(sets.objects, rep)
    rep_j = np.where((rep_j < J) & (sets.objects[np.minimum(rep_j, J - 1)] == rep), rep_j, -1) \
        if J else np.full(n, -1, np.int64)
    del reported

    def exact_for(j):
        s = np.where(j >= 0, sets.nearest(np.maximum(j, 0), t_ns, max_age_ns), -1) if J \
            else np.full(n, -1, np.int64)
        los, rng, rdot = _exact(sets, s, t_ns, site_teme)
        ang = np.arccos(np.clip(np.einsum("ij,ij->i", los, u_teme), -1, 1))
        score = ang / gate_rad
        with_range = np.isfinite(obs_range)
        score = np.where(with_range, np.hypot(score, (rng - obs_range) / range_gate_km),
                         score)
        return s, los, rng, rdot, ang, score

    b_set, b_los, b_rng, b_rdot, b_ang, b_score = exact_for(best_j)
    _, _, _, _, s_ang, _ = exact_for(second_j)
    r_set, r_los, r_rng, r_rdot, r_ang, r_score = exact_for(rep_j)

    in_gate = b_score < 1.0
    rep_in = r_score < 1.0
    # trust a reported identity that fits the gate; otherwise take the best object
    use_rep = rep_in
    assigned_j = np.where(use_rep, rep_j, np.where(in_gate, best_j, -1))
    a_set = np.where(use_rep, r_set, np.where(in_gate, b_set, -1))
    a_los = np.where(use_rep[:, None], r_los, b_los)
    a_rng = np.where(use_rep, r_rng, b_rng)
    a_rdot = np.where(use_rep, r_rdot, b_rdot)
    a_score = np.where(use_rep, r_score, b_score)
    a_ang = np.where(use_rep, r_ang, b_ang)
    status = np.where(~has_angles, "no-angles", np.where(assigned_j >= 0, "correlated", "uct"))
    cross = (rep_j >= 0) & ~rep_in & in_gate & (best_j != rep_j) & has_angles

    # residual components: J2000 RA/Dec, or az/el for az/el observations
    pred_gcrs = np.einsum("nji,nj->ni", r_teme, a_los)
    res1 = np.full(n, np.nan)
    res2 = np.full(n, np.nan)
    if radec.any():
        o = u_gcrs[radec]
        p = pred_gcrs[radec]
        ora, odec = np.arctan2(o[:, 1], o[:, 0]), np.arcsin(np.clip(o[:, 2], -1, 1))
        pra, pdec = np.arctan2(p[:, 1], p[:, 0]), np.arcsin(np.clip(p[:, 2], -1, 1))
        dra = (ora - pra + np.pi) % (2 * np.pi) - np.pi
        res1[radec] = np.degrees(dra * np.cos(odec)) * 3600
        res2[radec] = np.degrees(odec - pdec) * 3600
    if azel.any():
        to_enu = np.swapaxes(_enu_to_itrs(lat[azel], lon[azel]), 1, 2)
        for u_, out in ((u_gcrs[azel], "o"), (pred_gcrs[azel], "p")):
            enu = np.einsum("nij,nj->ni", to_enu, np.einsum("nij,nj->ni", r_itrs[azel], u_))
            a_ = np.arctan2(enu[:, 0], enu[:, 1])
            e_ = np.arcsin(np.clip(enu[:, 2], -1, 1))
            if out == "o":
                oa, oe = a_, e_
            else:
                pa_, pe = a_, e_
        res1[azel] = np.degrees(((oa - pa_ + np.pi) % (2 * np.pi) - np.pi) * np.cos(oe)) * 3600
        res2[azel] = np.degrees(oe - pe) * 3600

    objects = sets.objects
    epoch = sets.epoch
    has_a = a_set >= 0
    # combined markings: the observation's and the element set's
    o_cls = obs["classification"].to_pylist()
    o_rel = obs["releasable_to"].to_pylist()
    e_cls = sets.table["classification"].to_pylist()
    e_rel = sets.table["releasable_to"].to_pylist()
    cls, rel, text = [], [], []
    cache: dict = {}
    for i in range(n):
        key = (o_cls[i], None if o_rel[i] is None else tuple(o_rel[i]),
               (e_cls[a_set[i]], None if e_rel[a_set[i]] is None else tuple(e_rel[a_set[i]]))
               if has_a[i] else None)
        if key not in cache:
            parts = [mk.Marking(key[0], key[1])]
            if key[2] is not None:
                parts.append(mk.Marking(*key[2]))
            m = mk.combine(parts)
            cache[key] = (m.classification, None if m.releasable_to is None
                          else list(m.releasable_to), str(m))
        c, r_, t_ = cache[key]
        cls.append(c)
        rel.append(r_)
        text.append(t_)

    def ids(j, ok=None):
        ok = (j >= 0) if ok is None else ok
        return pa.array(np.where(ok, objects[np.maximum(j, 0)] if J else 0, 0), pa.int64(),
                        mask=~ok)

    def f(x, ok=None):
        ok = np.isfinite(x) if ok is None else ok & np.isfinite(x)
        return pa.array(np.where(ok, x, 0.0), pa.float64(), mask=~ok)

    arcmin = np.degrees(a_ang) * 60
    ok_a = has_angles & np.isfinite(a_ang)
    age = (t_ns - epoch[np.maximum(a_set, 0)]) / (86400 * _NS) if len(epoch) else \
        np.zeros(n)
    out = {
        "obs_id": obs["obs_id"],
        "time": obs["time"],
        "sensor_id": obs["sensor_id"],
        "source": obs["source"],
        "reported_object_id": obs["object_id"],
        "object_id": ids(assigned_j),
        "status": pa.array(status.tolist(), pa.string()),
        "cross_tag": pa.array(cross),
        "angle_residual_arcmin": f(arcmin, ok_a),
        "ra_residual_arcsec": f(res1, ok_a),
        "dec_residual_arcsec": f(res2, ok_a),
        "range_residual_km": f(a_rng - obs_range, ok_a),
        "range_rate_residual_km_s": f(a_rdot - obs_rdot, ok_a),
        "score": f(a_score, ok_a),
        "best_candidate_id": ids(best_j),
        "second_object_id": ids(second_j),
        "second_residual_arcmin": f(np.degrees(s_ang) * 60),
        "reported_residual_arcmin": f(np.degrees(r_ang) * 60),
        "n_in_gate": pa.array(n_in, pa.int64()),
        "element_epoch": pa.array(np.where(has_a, epoch[np.maximum(a_set, 0)]
                                           if len(epoch) else 0, 0), pa.int64(),
                                  mask=~has_a).cast(CORRELATIONS.field("element_epoch").type),
        "element_age_days": f(age, has_a),
        "gate_arcmin": pa.array(np.full(n, float(gate_arcmin))),
        "source_uri": obs["source_uri"],
        "source_record": obs["source_record"],
        "classification": pa.array(cls, pa.string()),
        "releasable_to": pa.array(rel, pa.list_(pa.string())),
        "marking": pa.array(text, pa.string()),
    }
    table = pa.Table.from_pydict(out, schema=CORRELATIONS)
    return CorrelationResult(table, rejects)


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
    import pandas as pd

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

"""Screening (ssafuse.screening) against independent references on real catalogues (issue 19).

Expected values:
* **interpolation error**: python-sgp4 itself (``sgp4.api.SatrecArray``, called here
  directly, with Julian dates computed here) at times between the screener's SGP4 knots,
  against the screener's own cubic Hermite interpolants (``slices._interpolants``, the code a
  screening runs). Every object of the full 2023 catalogue (../shared/data/catalogues, see
  SOURCES.md) whose element set the screener takes, over one full orbit: near-earth orbits
  under 115 min over 2 h, up to 715 min (GNSS, Molniya, GTO) over 12 h, the rest (GEO, HEO)
  and every near-earth object with perigee under 350 km (drag, decay) over 24 h; every knot
  interval at its midpoint, and per object its worst interval and one seeded random interval
  at 15 points.
* **brute force**: python-sgp4 for a seeded mixed-regime subset of the same catalogue
  (Molniya, GTO, other eccentric, HEO, GNSS, GEO, and LEO objects whose shell the eccentric
  perigees cross) every ``GRID_S`` seconds of the window; every pair's range rate
  (relative position . relative velocity, from SGP4) is checked at every sample, and every
  sign change from - to + (a range minimum) is refined with ``scipy.optimize.brentq`` on the
  SGP4 range rate. Independent of the screener's knots, boxes, hash and Newton steps. The
  screener runs all-vs-all and with primaries, and its broad phase once more with cells so
  small that every box takes the branch for boxes too big for the hash.

Found here (2026-12-03): object 45466 (ATLAS 5 CENTAUR R/B, inclination 11.44 deg) jumps 13.3 km
between two seconds on 2023-10-10T10:41:48Z, where SDP4 switches how it applies its
lunar-solar periodics (inclination crossing 0.2 rad); the interpolant erred by 9.1 km there
against an interval bound of 5.0 km. The a-posteriori estimate now measures such jumps
(``slices.posteriori_error_km``).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from numba import njit
from scipy.optimize import brentq
from sgp4.api import SatrecArray

from conftest import shared
from ssafuse.constants import NS_PER_DAY, NS_PER_S
from ssafuse.propagate import check_states, satrecs
from ssafuse.records import read_file
from ssafuse.screening import _prepare, screen
from ssafuse.screening.slices import (POSTERIORI_MARGIN, ScreenParams,
                                      _interpolants, hermite_coefficients, merge_slices,
                                      posteriori_error_km,
                                      screen_slice)

CATALOGUE = "catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt"
START_NS = 1696852800 * NS_PER_S            # 2023-10-09T12:00:00Z
KNOT_S = 300.0                              # the screener's default knot spacing
U_DENSE = np.arange(1, 16) / 16.0           # places across a knot interval, dense sampling


def _jd_fr(ns):
    """Julian date pair as python-sgp4 takes it, from ns since 1970 UTC (JD 2440587.5)."""
    days, rem = np.divmod(np.asarray(ns, dtype=np.int64), NS_PER_DAY)
    return days + 2440587.5, rem / NS_PER_DAY


def _hermite(coef, u):
    """The interpolant (power basis, ``coef[..., 4, 3]``) at ``u``."""
    return coef[..., 0, :] + u * (coef[..., 1, :] + u * (coef[..., 2, :] + u * coef[..., 3, :]))


@pytest.fixture(scope="module")
def catalogue():
    return read_file(shared(CATALOGUE), source="spacetrack").elements


# -- interpolation error against the screener's pad ----------------------------------------

def _measure(sats, pad, hours, rng):
    """Interpolation error of ``sats`` over ``hours`` from START_NS. Returns a dict: ``valid``,
    ``pad_k`` (the screener's per-interval bound, km) and ``error`` (n, k) km, the largest
    |interpolant - SGP4| sampled in each interval (0 where not sampled); ``posteriori``,
    ``slices.posteriori_error_km`` on knots from python-sgp4; ``decays`` (n,), python-sgp4
    fails for the object somewhere in the window."""
    params = ScreenParams(START_NS, START_NS + hours * 3600 * NS_PER_S, knot_s=KNOT_S)
    n, nk = len(sats), params.n_knot_intervals
    err, coef, valid, pad_k = _interpolants(sats, params, 0, nk, pad, np.ones(n, bool))
    knot_ns = int(KNOT_S * NS_PER_S)
    array = SatrecArray(sats)
    # the knots, with one beyond each end of the window as the screener takes them
    e_knots, r_knots, v_knots = array.sgp4(*_jd_fr(START_NS + np.arange(-1, nk + 2) * knot_ns))
    decays = (e_knots[:, 1:-1] != 0).any(axis=1)  # python-sgp4 fails somewhere in the window
    # the knots the screener drops (SGP4 failed, or a non-physical state): NaN, as there
    dropped = check_states(e_knots, r_knots, v_knots) != 0
    r_knots[dropped], v_knots[dropped] = np.nan, np.nan
    # every interval at its midpoint: the same times for every object
    e, r, _ = array.sgp4(*_jd_fr(START_NS + ((np.arange(nk) + 0.5) * knot_ns).astype(np.int64)))
    error = np.where(valid & (e == 0), np.linalg.norm(_hermite(coef, 0.5) - r, axis=-1), 0.0)
    # dense: per object its worst interval so far and one random one; grouped by interval
    worst = np.argmax(np.where(valid, error / np.where(valid, pad_k, 1.0), -1.0), axis=1)
    pick = np.concatenate([np.c_[np.arange(n), worst],
                           np.c_[np.arange(n), rng.integers(0, nk, n)]])
    pick = pick[valid[pick[:, 0], pick[:, 1]]]
    for k in np.unique(pick[:, 1]):
        rows = np.unique(pick[pick[:, 1] == k, 0])
        times = START_NS + ((k + U_DENSE) * knot_ns).astype(np.int64)
        e, r, _ = SatrecArray([sats[q] for q in rows]).sgp4(*_jd_fr(times))
        d = np.linalg.norm(_hermite(coef[rows, k][:, None], U_DENSE[None, :, None]) - r, axis=-1)
        error[rows, k] = np.maximum(error[rows, k], np.where(e == 0, d, 0.0).max(axis=1))
    knot_coef = hermite_coefficients(np.nan_to_num(r_knots), np.nan_to_num(v_knots), KNOT_S)
    post = posteriori_error_km(knot_coef, r_knots, KNOT_S)[:, 1:-1]
    return {"valid": valid, "pad_k": pad_k, "error": error, "posteriori": post,
            "decays": decays}


@pytest.fixture(scope="module")
def interpolation(catalogue):
    """Per regime (see the module docstring): the objects' indices, their analytic pad (the
    screener's ``max(interpolation_pad_km, deep_space_pad_km)``) and :func:`_measure`."""
    params = ScreenParams(START_NS, START_NS + NS_PER_DAY, knot_s=KNOT_S)
    inputs = _prepare(catalogue, params, None, None, 30.0)
    period_min = np.array([2 * math.pi / s.no_kozai for s in inputs.sats])
    perigee_km = np.array([s.altp for s in inputs.sats]) * 6378.135
    usable = inputs.usable
    low = usable & (perigee_km < 350.0) & (period_min < 225.0)
    groups = [(2, usable & ~low & (period_min < 115.0)),
              (12, usable & ~low & (period_min >= 115.0) & (period_min < 715.0)),
              (24, usable & (low | (period_min >= 715.0)))]
    rng = np.random.default_rng(20231009)   # seeded: the same intervals every run
    out = []
    for hours, mask in groups:
        idx = np.flatnonzero(mask)
        got = _measure([inputs.sats[q] for q in idx], inputs.pad[idx], hours, rng)
        out.append(dict(got, idx=idx, pad=inputs.pad[idx], hours=hours))
    return inputs, out


@pytest.mark.slow
def test_interpolation_error_is_within_the_screeners_pad_over_the_full_catalogue(
        interpolation):
    inputs, groups = interpolation
    n_objects = sum(len(g["idx"]) for g in groups)
    assert n_objects == int(inputs.usable.sum()) > 25000, "every usable object, once"
    worst = (0.0, None, 0.0, 0.0)
    for g in groups:
        ratio = np.where(g["valid"], g["error"] / np.where(g["valid"], g["pad_k"], 1.0), 0.0)
        q, k = np.unravel_index(np.argmax(ratio), ratio.shape)
        if ratio[q, k] > worst[0]:
            worst = (float(ratio[q, k]), int(inputs.ids[g["idx"][q]]), float(g["error"][q, k]),
                     float(g["pad_k"][q, k]))
        bad = np.argwhere(ratio > 1.0)
        assert not len(bad), [(int(inputs.ids[g["idx"][a]]), int(b), float(g["error"][a, b]),
                               float(g["pad_k"][a, b])) for a, b in bad[:10]]
    print(f"{n_objects} objects: worst interpolation error / pad {worst[0]:.3f} "
          f"(object {worst[1]}: {worst[2]:.4f} km of {worst[3]:.4f} km)")


@pytest.mark.slow
def test_analytic_pad_bounds_the_error_where_the_screener_relies_on_it(interpolation):
    """Where ``max(pad, POSTERIORI_MARGIN * posteriori)`` is the analytic pad
    (``interpolation_pad_km`` / ``deep_space_pad_km``), that pad alone bounds the error; the
    screener's per-interval bound is that maximum, computed by the numba kernel, and equals
    it computed from ``posteriori_error_km`` on python-sgp4's knots."""
    inputs, groups = interpolation
    worst = {"n": 0.0, "d": 0.0}
    n_relied = 0
    for g in groups:
        v = g["valid"]
        pad = g["pad"][:, None]
        want = np.maximum(pad, POSTERIORI_MARGIN * g["posteriori"])
        np.testing.assert_allclose(g["pad_k"][v], np.broadcast_to(want, v.shape)[v],
                                   rtol=1e-9)
        relied = v & (POSTERIORI_MARGIN * g["posteriori"] <= pad)
        n_relied += int(relied.sum())
        ratio = np.where(relied, g["error"] / pad, 0.0)
        deep = np.array([inputs.sats[q].method == "d" for q in g["idx"]])
        for kind, rows in (("n", ~deep), ("d", deep)):
            worst[kind] = max(worst[kind], float(ratio[rows].max(initial=0.0)))
        bad = np.argwhere(ratio > 1.0)
        assert not len(bad), [(int(inputs.ids[g["idx"][a]]), int(b), float(g["error"][a, b]),
                               float(g["pad"][a])) for a, b in bad[:10]]
    assert n_relied > 1_000_000
    print(f"analytic pad relied on in {n_relied} intervals; worst error / pad: near-earth "
          f"{worst['n']:.3f}, deep-space {worst['d']:.3f}")


def _sgp4_jump_km(sat, start_s, seconds):
    """Largest jump of python-sgp4's positions between consecutive seconds from ``start_s``
    (s after START_NS): |r(t + 1) - r(t) - (v(t) + v(t + 1)) / 2|, km (about 1e-6 km for
    smooth motion)."""
    e, r, v = sat.sgp4_array(*_jd_fr(START_NS + (start_s + np.arange(seconds + 1)) * NS_PER_S))
    assert (e == 0).all()
    return float(np.linalg.norm(np.diff(r, axis=0) - 0.5 * (v[1:] + v[:-1]), axis=1).max())


@pytest.mark.slow
def test_analytic_pad_bounds_every_smooth_interval(interpolation):
    """Everywhere, not only where the screener relies on it, the analytic pad bounds the
    error, but where SGP4 itself is not smooth: the object decays in the window (python-sgp4
    fails for it somewhere), or python-sgp4's positions jump inside the interval (checked
    here at 1 s). Those intervals are the a-posteriori estimate's to bound (next test)."""
    inputs, groups = interpolation
    decaying, jumps, smooth, checked = set(), [], [], 0
    for g in groups:
        over = g["valid"] & (g["error"] > g["pad"][:, None])
        checked += int(g["valid"].sum())
        for a, k in np.argwhere(over):
            nid = int(inputs.ids[g["idx"][a]])
            if g["decays"][a]:
                decaying.add(nid)
                continue
            jump = _sgp4_jump_km(inputs.sats[g["idx"][a]], int(k * KNOT_S), int(KNOT_S))
            (jumps if jump > 1.0 else smooth).append(
                (nid, int(k), round(float(g["error"][a, k]), 4), round(float(g["pad"][a]), 4),
                 round(jump, 6)))
    assert checked > 1_500_000
    assert not smooth, f"(object, interval, error km, pad km, SGP4 jump km): {smooth[:10]}"
    print(f"{checked} intervals: over the analytic pad only where SGP4 is not smooth: "
          f"decaying {sorted(decaying)}, jumps (object, interval, km) {jumps}")


@pytest.mark.slow
def test_posteriori_estimate_bounds_the_error_where_the_screener_relies_on_it(interpolation):
    """Where ``POSTERIORI_MARGIN * posteriori_error_km`` exceeds the analytic pad (SDP4's
    velocities, drag, SGP4's own jumps), it bounds the error."""
    inputs, groups = interpolation
    n_relied = n_over_pad = 0
    worst = (0.0, None)
    for g in groups:
        bound = POSTERIORI_MARGIN * g["posteriori"]
        relied = g["valid"] & (bound > g["pad"][:, None])
        n_relied += int(relied.sum())
        n_over_pad += int((relied & (g["error"] > g["pad"][:, None])).sum())
        ratio = np.where(relied, g["error"] / np.where(relied, bound, 1.0), 0.0)
        q, k = np.unravel_index(np.argmax(ratio), ratio.shape)
        worst = max(worst, (float(ratio[q, k]), int(inputs.ids[g["idx"][q]])))
        bad = np.argwhere(ratio > 1.0)
        assert not len(bad), [(int(inputs.ids[g["idx"][a]]), int(b), float(g["error"][a, b]),
                               float(bound[a, b])) for a, b in bad[:10]]
    # non-vacuous: the estimate is what protects some intervals, and some of those have an
    # error beyond the analytic pad (object 45466's 13 km SDP4 jump on 2023-10-10 among them)
    assert n_relied > 1000 and n_over_pad >= 1, (n_relied, n_over_pad)
    print(f"posteriori relied on in {n_relied} intervals ({n_over_pad} beyond the analytic "
          f"pad); worst error / bound {worst[0]:.3f} (object {worst[1]})")


# -- brute force on a mixed-regime subset ---------------------------------------------------

#: Brute-force sample spacing, s. A range minimum is a sign change of the range rate; two
#: minima of one pair are at least a quarter of the shorter orbital period apart (~22 min in
#: LEO), so sampling every 20 s sees every one.
GRID_S = 20
#: Largest relative speed between two objects of the subset, km/s (GTO perigee 10.2 km/s
#: against a retrograde LEO object 7.6 km/s), for how far a grid sample can be from a minimum.
V_REL_MAX_KM_S = 18.0


@njit(cache=True)
def _minimum_brackets(r, v, reach):
    """(a, b, t) for every pair ``a < b`` and sample ``t`` where the range rate (relative
    position . relative velocity) goes from < 0 at ``t`` to >= 0 at ``t + 1`` and the range at
    ``t`` or ``t + 1`` is under ``reach`` km; r, v (objects, samples, 3), NaN-free."""
    n, m, _ = r.shape
    out = []
    for a in range(n):
        for b in range(a + 1, n):
            prev_g = 0.0
            prev_d = 0.0
            for t in range(m):
                g = 0.0
                d2 = 0.0
                for x in range(3):
                    dr = r[b, t, x] - r[a, t, x]
                    g += dr * (v[b, t, x] - v[a, t, x])
                    d2 += dr * dr
                d = math.sqrt(d2)
                if t > 0 and prev_g < 0.0 <= g and min(prev_d, d) < reach:
                    out.append((a, b, t - 1))
                prev_g = g
                prev_d = d
    return out


def _brute_force(sats, seconds, threshold_km):
    """Every SGP4 range minimum under ``threshold_km`` of every pair inside ``seconds`` from
    START_NS: ``[(a, b, tca_s, miss_km)]``, ``a < b`` object indices."""
    t_s = np.arange(0, seconds + GRID_S, GRID_S, dtype=np.int64)
    e, r, v = SatrecArray(sats).sgp4(*_jd_fr(START_NS + t_s * NS_PER_S))
    assert (e == 0).all(), "the subset is chosen to propagate over the whole window"
    reach = threshold_km + V_REL_MAX_KM_S * GRID_S
    jd0, fr0 = (float(x) for x in _jd_fr(START_NS))
    events = []
    for a, b, k in _minimum_brackets(r, v, reach):
        def rate(s, a=a, b=b):
            _, r1, v1 = sats[a].sgp4(jd0, fr0 + s / 86400.0)
            _, r2, v2 = sats[b].sgp4(jd0, fr0 + s / 86400.0)
            return float(np.dot(np.subtract(r2, r1), np.subtract(v2, v1)))
        tca = brentq(rate, float(t_s[k]), float(t_s[k + 1]), xtol=1e-7, rtol=1e-14)
        if tca >= seconds:
            continue
        _, r1, _ = sats[a].sgp4(jd0, fr0 + tca / 86400.0)
        _, r2, _ = sats[b].sgp4(jd0, fr0 + tca / 86400.0)
        miss = math.dist(r1, r2)
        if miss < threshold_km:
            events.append((a, b, tca, miss))
    return events


#: Regimes of the mixed subset: (name, how many, which elements). Element sets within 10 days
#: of the window and perigees above 250 km, so every object propagates all day.
REGIMES = (
    ("Molniya", 20, lambda e, p, i, hp, ha: (e > 0.5) & (p > 680) & (p < 760) & (i > 55)
     & (i < 70)),
    ("GTO", 25, lambda e, p, i, hp, ha: (e > 0.5) & (i < 30) & (p > 300) & (p < 800)),
    ("eccentric", 20, lambda e, p, i, hp, ha: (e > 0.1) & (e <= 0.5)),
    ("HEO", 10, lambda e, p, i, hp, ha: (ha > 40000) & (e > 0.3)),
    ("GNSS", 30, lambda e, p, i, hp, ha: (e < 0.02) & (p > 670) & (p < 860)),
    ("GEO", 40, lambda e, p, i, hp, ha: (e < 0.01) & (p > 1420) & (p < 1460)),
    ("LEO", 10, lambda e, p, i, hp, ha: (e < 0.01) & (ha < 700)),
)
#: Threshold of the mixed screening, km: large, so that one day of 155 objects holds close
#: approaches within and across every regime (216, in 19 kinds of regime pair; at 50 km, 1).
MIXED_THRESHOLD_KM = 1000.0
#: Tolerances against the brute force. TCA: both sides solve range rate = 0 on SGP4 to 1e-7 s
#: (brentq here, Newton there); 1e-5 s leaves a factor 100. Miss distance: the range is
#: stationary at TCA, so 1e-5 s moves it by v_rel**2 dt**2 / 2 d, far under 1 mm.
TCA_TOL_S = 1e-5
MISS_TOL_KM = 1e-6


@pytest.fixture(scope="module")
def mixed(catalogue):
    """The mixed subset (elements table, regime of each row) and its brute-force events."""
    sats = satrecs(catalogue)
    epoch = catalogue["epoch"].cast(pa.int64()).to_numpy()
    e = np.array([s.ecco for s in sats])
    period = np.array([2 * math.pi / s.no_kozai for s in sats])
    inc = np.degrees([s.inclo for s in sats])
    hp = np.array([s.altp for s in sats]) * 6378.135
    ha = np.array([s.alta for s in sats]) * 6378.135
    ok = ((np.abs(epoch - START_NS) < 10 * NS_PER_DAY) & (hp > 250.0)
          & np.array([s.error == 0 for s in sats]))
    rng = np.random.default_rng(20231009)   # seeded: the same objects every run
    pick, regime = [], []
    for name, count, rule in REGIMES:
        cand = np.setdiff1d(np.flatnonzero(ok & rule(e, period, inc, hp, ha)), pick)
        pick += list(rng.choice(cand, size=count, replace=False))
        regime += [name] * count
    order = np.argsort(pick)
    table = catalogue.take(pa.array(np.asarray(pick)[order]))
    regime = np.asarray(regime)[order]
    events = _brute_force(satrecs(table), 86400, MIXED_THRESHOLD_KM)
    return table, regime, events


def _compare(conjunctions, ids, events):
    """Every brute-force event is one row of ``conjunctions`` (same pair, TCA and miss within
    the tolerances), and every row is one event. Returns the largest differences
    ``(dt_s, dmiss_km)``."""
    got = conjunctions
    assert not got["co_located"].to_numpy(zero_copy_only=False).any(), \
        "no pair of the subset stays under the threshold all day"
    g1 = got["object_id_1"].to_numpy()
    g2 = got["object_id_2"].to_numpy()
    g_t = (got["tca"].cast(pa.int64()).to_numpy() - START_NS) / NS_PER_S
    return _compare_rows(g1, g2, g_t, got["miss_distance_km"].to_numpy(), ids, events)


def _compare_rows(g1, g2, g_t, g_d, ids, events):
    """:func:`_compare` on arrays: the two NORAD numbers, TCA (s after START_NS), miss km."""
    g_lo, g_hi = np.minimum(g1, g2), np.maximum(g1, g2)
    used = np.zeros(len(g_t), bool)
    worst_t = worst_d = 0.0
    for a, b, t, d in events:
        lo, hi = sorted((int(ids[a]), int(ids[b])))
        mine = np.flatnonzero((g_lo == lo) & (g_hi == hi) & ~used)
        assert len(mine), f"brute-force event {lo}-{hi} at t={t:.6f} s, {d:.6f} km not found"
        q = mine[np.argmin(np.abs(g_t[mine] - t))]
        used[q] = True
        worst_t = max(worst_t, abs(g_t[q] - t))
        worst_d = max(worst_d, abs(g_d[q] - d))
        assert abs(g_t[q] - t) <= TCA_TOL_S, (lo, hi, t, g_t[q])
        assert abs(g_d[q] - d) <= MISS_TOL_KM, (lo, hi, d, g_d[q])
    assert used.all(), f"rows the brute force does not have: {np.flatnonzero(~used)[:10]}"
    return worst_t, worst_d


def _primaries(ids, regime):
    rng = np.random.default_rng(19)    # seeded: two primaries of each regime
    return sorted(int(x) for name, _, _ in REGIMES
                  for x in rng.choice(ids[regime == name], size=2, replace=False))


def _regime_pairs(regime, events):
    return {tuple(sorted((str(regime[a]), str(regime[b])))) for a, b, _, _ in events}


@pytest.mark.slow
def test_screener_finds_every_close_approach_of_a_mixed_regime_subset(mixed):
    table, regime, events = mixed
    # non-vacuous: events within and across the regimes (eccentric and GEO ones among them)
    pairs = _regime_pairs(regime, events)
    assert len(events) >= 150 and len(pairs) >= 15, (len(events), sorted(pairs))
    assert {("GEO", "GEO"), ("GTO", "LEO"), ("LEO", "Molniya"), ("GNSS", "HEO")} <= pairs
    result = screen(table, START_NS, days=1.0, threshold_km=MIXED_THRESHOLD_KM, workers=1)
    assert result.excluded.num_rows == 0
    worst_t, worst_d = _compare(result.conjunctions, table["object_id"].to_numpy(), events)
    print(f"mixed subset: {len(events)} brute-force events in {len(pairs)} regime pairs, all "
          f"found, no other; max |dTCA| {worst_t:.2e} s, max |dmiss| {worst_d * 1e3:.2e} m")


@pytest.mark.slow
def test_screener_with_primaries_finds_every_close_approach_involving_them(mixed):
    table, regime, events = mixed
    ids = table["object_id"].to_numpy()
    primaries = _primaries(ids, regime)
    is_primary = np.isin(ids, primaries)
    want = [ev for ev in events if is_primary[ev[0]] or is_primary[ev[1]]]
    pairs = _regime_pairs(regime, want)
    assert len(want) >= 40 and len(pairs) >= 8, (len(want), sorted(pairs))
    result = screen(table, START_NS, days=1.0, threshold_km=MIXED_THRESHOLD_KM,
                    primaries=primaries, workers=1)
    worst_t, worst_d = _compare(result.conjunctions, ids, want)
    # object 1 is the primary (of two primaries, the smaller NORAD number)
    assert np.isin(result.conjunctions["object_id_1"].to_numpy(), primaries).all()
    print(f"primaries {len(primaries)}: {len(want)} brute-force events in {len(pairs)} regime "
          f"pairs, all found, no other; max |dTCA| {worst_t:.2e} s, "
          f"max |dmiss| {worst_d * 1e3:.2e} m")


@pytest.mark.slow
@pytest.mark.parametrize("with_primaries", [False, True], ids=["all-vs-all", "primaries"])
def test_broad_phase_for_boxes_too_big_for_the_hash_finds_the_same(mixed, with_primaries):
    """An object whose box spans more than ``kernels._MAX_CELLS`` hash cells is checked
    against every active object instead. ``screen`` never makes such boxes at its own cell
    size, so the time slices are run here with 100 km cells, which every box of the subset
    (grown by half the 1,000 km threshold) exceeds: the whole broad phase goes that way."""
    table, regime, events = mixed
    ids = table["object_id"].to_numpy()
    primaries = _primaries(ids, regime) if with_primaries else None
    if with_primaries:
        is_primary = np.isin(ids, primaries)
        events = [ev for ev in events if is_primary[ev[0]] or is_primary[ev[1]]]
    params = ScreenParams(START_NS, START_NS + NS_PER_DAY, MIXED_THRESHOLD_KM, knot_s=KNOT_S,
                          cell_km=100.0)
    inputs = _prepare(table, params, primaries, None, 30.0)
    i, j, t_s, miss, _, _ = merge_slices([screen_slice(inputs.sats, params, n, **inputs.shared())
                                          for n in range(params.n_slices)])
    assert len(events) >= 40
    _compare_rows(ids[i], ids[j], t_s, miss, ids, events)


@pytest.mark.slow
def test_an_intervals_bound_does_not_depend_on_how_the_window_is_sliced(catalogue):
    """Each interval's error bound (and so which objects stay screened) is the same whether
    the window is one slice or slices of one knot interval each (as ``slice_knots = 1``
    makes them): the jump test sees both neighbours of every interval either way."""
    params = ScreenParams(START_NS, START_NS + 6 * 3600 * NS_PER_S, knot_s=KNOT_S)
    inputs = _prepare(catalogue, params, None, None, 30.0)
    nk, usable = params.n_knot_intervals, inputs.usable
    sats = inputs.sats
    whole = _interpolants(sats, params, 0, nk, inputs.pad, usable)
    cut = [_interpolants(sats, params, k, k + 1, inputs.pad, usable) for k in range(nk)]
    assert whole[2].sum() > 0.9 * usable.sum() * nk   # nearly every interval interpolated
    for k, (err, _, valid, pad_k) in enumerate(cut):
        # 1e-9: the same arithmetic on the same knots, but the knots come from another call
        np.testing.assert_allclose(pad_k[:, 0], whole[3][:, k], rtol=1e-9, err_msg=str(k))
        np.testing.assert_array_equal(valid[:, 0], whole[2][:, k], err_msg=str(k))

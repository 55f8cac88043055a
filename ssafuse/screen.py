"""Conjunction screening: every pair closer than a threshold in a window, with TCA on SGP4.

The cascade (ESA's, SIMPLETON's shape):

1. **Knots.** Every object is propagated with ``SatrecArray`` every ``knot_s`` seconds
   (TEME, km, km/s); each knot interval gets a cubic Hermite interpolant from the positions and
   velocities at its ends. Its error is bounded per object, ``pad`` km, from the orbit's
   angular rate at perigee: ``sqrt(3) * knot_s**4 / 384 * PAD_SAFETY * w_p**4 * r_p`` (the
   cubic Hermite remainder with ``|r''''| ~ w_p**4 r_p``); ``tests/test_screen.py`` checks the
   bound against SGP4 itself over a whole catalogue.
2. **Broad phase.** Each knot interval is cut into ``n_sub`` sub-intervals; the box of each
   object's curve on a sub-interval (its Bezier control points, so it holds the whole curve)
   grows by ``pad + threshold / 2``, and a spatial hash finds the boxes that meet.
3. **Narrow phase.** For a pair whose boxes meet, the control points of the difference curve
   bound the range from below; where that is within ``threshold + pad_1 + pad_2``, every local
   minimum of the interpolated range in the sub-interval is found (sign changes of the range
   rate, then false position).
4. **TCA on SGP4.** Each minimum is refined with Newton steps on SGP4 itself (range rate from
   SGP4 positions and velocities, its derivative with two-body accelerations) to 1e-7 s; the
   range, relative speed and RIC components come from SGP4 at that instant. Minima that two
   sub-intervals or slices both reached are merged.

The window is split into **independent time slices** (:func:`screen_slice` is a pure function
of the element sets, the window and a slice number), run on all local cores by default
(processes; python-sgp4 holds the GIL) and ready for a Dask cluster unchanged.

A close approach is a local minimum of the SGP4 range inside the window, below the
threshold. A pair closer than the threshold at every sample of the window (docked or
formation-flying objects) is **co-located**: reported once per window, at its smallest range,
flagged ``co_located``. Objects SGP4 cannot propagate are left out with their reason
(:attr:`ScreenResult.excluded`): from the start when ``sgp4init`` refused the element set, or
from the first knot where SGP4 failed (decay).
"""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from . import markings as mk
from ._screen_kernels import hermite_and_posteriori, interpolant_minima, pair_ranges
from .ingest._common import NS_PER_DAY, to_ns
from .propagate import (check_states, error_reason, first_errors, init_errors, jd_from_ns,
                        propagate_chunked, satrecs_exact)
from .schema import CONJUNCTIONS

#: WGS72 gravitational parameter, km^3/s^2 (what SGP4 uses).
MU_KM3_S2 = 398600.8
EARTH_RADIUS_KM = 6378.135
#: Multiplier on the analytic interpolation-error estimate (checked in tests/test_screen.py:
#: the worst object of a full catalogue uses well under half of the padded bound).
PAD_SAFETY = 2.0
#: Floor of the interpolation-error bound, km (SGP4's velocities are not exactly the time
#: derivative of its positions; this covers that mismatch over a knot interval).
PAD_FLOOR_KM = 0.002
NS_PER_S = 10**9
#: Multiplier on the a-posteriori estimate of each interval's interpolation error.
POSTERIORI_MARGIN = 2.0
#: An interval whose error bound exceeds this (km) is not interpolated: the object is
#: excluded from there on (SGP4 output of a decaying element set that is no longer smooth).
PAD_MAX_KM = 20.0
#: ssafuse code for that exclusion.
NOT_SMOOTH = 9

EXCLUDED = pa.schema([
    pa.field("object_id", pa.int64(), nullable=False),
    pa.field("object_name", pa.string()),
    pa.field("error_code", pa.uint8(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("excluded_from", pa.timestamp("ns", tz="UTC"), nullable=False),
])


@dataclass(frozen=True)
class ScreenParams:
    """What a screening run was asked, and how it cuts the work.

    ``knot_s``: SGP4 knot spacing, s; ``n_sub``: broad-phase sub-intervals per knot interval;
    ``slice_knots``: knot intervals per independent time slice; ``cell_km``: spatial hash cell
    (default: the typical box size of a sub-interval)."""

    start_ns: int
    end_ns: int
    threshold_km: float = 5.0
    knot_s: float = 300.0
    n_sub: int = 12
    slice_knots: int = 24
    cell_km: float | None = None
    n_samples: int = 4

    @property
    def n_knot_intervals(self) -> int:
        return max(1, math.ceil((self.end_ns - self.start_ns) / (self.knot_s * NS_PER_S)))

    @property
    def n_slices(self) -> int:
        return math.ceil(self.n_knot_intervals / self.slice_knots)

    @property
    def cell(self) -> float:
        if self.cell_km:
            return self.cell_km
        # about twice the typical box of a LEO object over a sub-interval (measured best)
        return 2.0 * (7.8 * self.knot_s / self.n_sub / math.sqrt(3.0) + self.threshold_km + 1.0)


@dataclass
class Slice:
    """What one time slice found: raw (not yet merged) close approaches, in object indices."""

    i: np.ndarray
    j: np.ndarray
    t_s: np.ndarray          # TCA, seconds since the window start
    miss_km: np.ndarray
    speed_km_s: np.ndarray
    ric_km: np.ndarray       # (n, 3)
    first_bad: np.ndarray    # per object: first failed knot time (s since start), NaN if none
    bad_code: np.ndarray     # per object: its SGP4 code
    co_max_km: np.ndarray    # per co-location candidate pair: largest sampled range
    co_min_km: np.ndarray
    co_min_t_s: np.ndarray
    n_box_pairs: int = 0
    n_candidates: int = 0
    seconds: float = 0.0


@dataclass
class ScreenResult:
    """A screening run: ``conjunctions`` (schema :data:`ssafuse.schema.CONJUNCTIONS`),
    ``excluded`` (objects left out, and why) and ``stats`` (counts, timings, parameters)."""

    conjunctions: pa.Table
    excluded: pa.Table
    stats: dict = field(default_factory=dict)


def interpolation_pad_km(sats, knot_s: float) -> np.ndarray:
    """Per object, a bound in km on the error of the cubic Hermite interpolant between SGP4
    knots ``knot_s`` seconds apart (see the module docstring)."""
    a = np.array([s.a for s in sats], dtype=float) * EARTH_RADIUS_KM
    e = np.clip(np.array([s.ecco for s in sats], dtype=float), 0.0, 0.999)
    rp = np.maximum(a * (1.0 - e), 0.5 * EARTH_RADIUS_KM)
    w2 = MU_KM3_S2 * (1.0 + e) / rp**3
    bound = math.sqrt(3.0) * knot_s**4 / 384.0 * PAD_SAFETY * w2 * w2 * rp
    bound = np.where(np.isfinite(bound), bound, np.inf)
    return np.maximum(bound, PAD_FLOOR_KM)


#: Multiplier on the measured interpolation error of deep-space (SDP4) objects.
DEEP_SPACE_MARGIN = 3.0


def deep_space_pad_km(sats, start_ns: int, knot_s: float, *, n_intervals: int = 16,
                      margin: float = DEEP_SPACE_MARGIN) -> np.ndarray:
    """Measured interpolation error (times ``margin``) of each deep-space (SDP4) object; 0 for
    the others. SDP4's velocities leave out the rates of its lunar-solar and resonance terms,
    so its Hermite interpolant errs by more than the two-body estimate: up to ~0.5 km over
    300 s for lunar-distance orbits. Measured at the quarter points of ``n_intervals`` knot
    intervals spread over two days from ``start_ns``."""
    out = np.zeros(len(sats))
    deep = np.flatnonzero([s.method == "d" and s.error == 0 for s in sats])
    if not len(deep):
        return out
    knot_ns = int(round(knot_s * NS_PER_S))
    # deep-space periods run from 225 minutes to days: spread the intervals over two days
    starts = start_ns + np.linspace(0, 2 * NS_PER_DAY, n_intervals, endpoint=False).astype(np.int64)
    times = (starts[:, None] + np.array([0, knot_ns // 4, knot_ns // 2, 3 * knot_ns // 4,
                                         knot_ns])[None, :]).ravel()
    err, r, v = propagate_chunked([sats[q] for q in deep], times)
    err = check_states(err, r, v)
    m_obj = len(deep)
    r = r.reshape(m_obj, n_intervals, 5, 3)
    v = v.reshape(m_obj, n_intervals, 5, 3)
    ok = (err.reshape(m_obj, n_intervals, 5) == 0).all(axis=2)
    coef = hermite_coefficients(np.nan_to_num(r[:, :, [0, 4]].reshape(-1, 2, 3)),
                                np.nan_to_num(v[:, :, [0, 4]].reshape(-1, 2, 3)),
                                knot_s)[:, 0].reshape(m_obj, n_intervals, 4, 3)
    worst = np.zeros((m_obj, n_intervals))
    for m, u in ((1, 0.25), (2, 0.5), (3, 0.75)):
        p = coef[:, :, 0] + u * (coef[:, :, 1] + u * (coef[:, :, 2] + u * coef[:, :, 3]))
        worst = np.maximum(worst, np.linalg.norm(np.nan_to_num(p - r[:, :, m]), axis=-1))
    out[deep] = margin * np.where(ok, worst, 0.0).max(axis=1)
    return out
    knot_ns = int(round(knot_s * NS_PER_S))
    for q in deep:
        sat = sats[q]
        period_ns = 2 * math.pi / sat.no_kozai * 60 * NS_PER_S
        starts = start_ns + np.linspace(0, period_ns, n_intervals, endpoint=False).astype(np.int64)
        times = (starts[:, None] + np.array([0, knot_ns // 4, knot_ns // 2, 3 * knot_ns // 4,
                                             knot_ns])[None, :]).ravel()
        err, r, v = propagate_chunked([sat], times)
        err = check_states(err, r, v)
        r = r[0].reshape(n_intervals, 5, 3)
        v = v[0].reshape(n_intervals, 5, 3)
        ok = (err[0].reshape(n_intervals, 5) == 0).all(axis=1)
        if not ok.any():
            continue
        coef = hermite_coefficients(r[ok][:, [0, 4]], v[ok][:, [0, 4]], knot_s)[:, 0]
        worst = 0.0
        for m, u in ((1, 0.25), (2, 0.5), (3, 0.75)):
            p = coef[:, 0] + u * (coef[:, 1] + u * (coef[:, 2] + u * coef[:, 3]))
            worst = max(worst, float(np.linalg.norm(p - r[ok][:, m], axis=1).max()))
        out[q] = margin * worst
    return out


def posteriori_error_km(coef: np.ndarray, r: np.ndarray, knot_s: float) -> np.ndarray:
    """Per object and knot interval, an estimate in km of the interpolant's error from how far
    its second derivative at the two knots is from two-body gravity there: for a cubic Hermite
    interpolant the second derivative at the ends is off by about h**2/12 times the fourth
    derivative of the motion, and the error is h**4/384 times it, so the error is about
    h**2/32 |p2 - g|. It catches what the two-body bound cannot: SDP4's velocity terms, drag,
    a decaying element set turning wild."""
    h2 = knot_s * knot_s
    r0 = np.nan_to_num(r[:, :-1])
    r1 = np.nan_to_num(r[:, 1:])

    def grav(x):
        n = np.sqrt((x * x).sum(axis=-1, keepdims=True))
        n = np.where(n > 0, n, 1.0)
        return -MU_KM3_S2 * x / n**3

    a0 = 2.0 * coef[:, :, 2] / h2
    a1 = (2.0 * coef[:, :, 2] + 6.0 * coef[:, :, 3]) / h2
    dev = np.maximum(np.sqrt(((a0 - grav(r0)) ** 2).sum(axis=-1)),
                     np.sqrt(((a1 - grav(r1)) ** 2).sum(axis=-1)))
    return h2 / 32.0 * dev


def hermite_coefficients(r: np.ndarray, v: np.ndarray, knot_s: float) -> np.ndarray:
    """Power-basis coefficients (n, k, 4, 3) of the cubic Hermite interpolants between
    consecutive knots of ``r`` (km) and ``v`` (km/s), shape (n, k + 1, 3), in ``u`` in [0, 1]."""
    r0, r1 = r[:, :-1], r[:, 1:]
    v0, v1 = v[:, :-1] * knot_s, v[:, 1:] * knot_s
    coef = np.empty(r0.shape[:2] + (4, 3))
    coef[:, :, 0] = r0
    coef[:, :, 1] = v0
    coef[:, :, 2] = 3.0 * (r1 - r0) - 2.0 * v0 - v1
    coef[:, :, 3] = 2.0 * (r0 - r1) + v0 + v1
    return coef


# -- SGP4 refinement -----------------------------------------------------------------------

def _state(sat, jd0: float, fr0: float, t_s: float):
    e, r, v = sat.sgp4(jd0, fr0 + t_s / 86400.0)
    return e, r, v


def refine_tca(sat1, sat2, jd0: float, fr0: float, t_s: float, max_step_s: float):
    """Newton steps on SGP4 for the time where the range rate vanishes, from ``t_s`` seconds
    after ``(jd0, fr0)``. Returns ``(ok, t_s, r1, v1, r2, v2)``; ``ok`` False when SGP4
    failed or the iteration left the bracket of ``max_step_s`` around the start."""
    t = t0 = t_s
    for _ in range(12):
        e1, r1, v1 = _state(sat1, jd0, fr0, t)
        e2, r2, v2 = _state(sat2, jd0, fr0, t)
        if e1 or e2:
            return False, t, r1, v1, r2, v2
        dx, dy, dz = r2[0] - r1[0], r2[1] - r1[1], r2[2] - r1[2]
        ux, uy, uz = v2[0] - v1[0], v2[1] - v1[1], v2[2] - v1[2]
        n1 = (r1[0] ** 2 + r1[1] ** 2 + r1[2] ** 2) ** 1.5
        n2 = (r2[0] ** 2 + r2[1] ** 2 + r2[2] ** 2) ** 1.5
        ax = -MU_KM3_S2 * (r2[0] / n2 - r1[0] / n1)
        ay = -MU_KM3_S2 * (r2[1] / n2 - r1[1] / n1)
        az = -MU_KM3_S2 * (r2[2] / n2 - r1[2] / n1)
        g = dx * ux + dy * uy + dz * uz
        gp = ux * ux + uy * uy + uz * uz + dx * ax + dy * ay + dz * az
        if gp <= 0.0:
            return False, t, r1, v1, r2, v2
        step = -g / gp
        step = max(-max_step_s, min(max_step_s, step))
        t += step
        if abs(t - t0) > 2 * max_step_s:
            return False, t, r1, v1, r2, v2
        if abs(step) < 1e-7:
            break
    e1, r1, v1 = _state(sat1, jd0, fr0, t)
    e2, r2, v2 = _state(sat2, jd0, fr0, t)
    return not (e1 or e2), t, r1, v1, r2, v2


def ric_components(r1, v1, r2) -> tuple[float, float, float]:
    """Object 2 relative to object 1 in object 1's radial / in-track / cross-track frame."""
    r1 = np.asarray(r1, float)
    v1 = np.asarray(v1, float)
    d = np.asarray(r2, float) - r1
    rhat = r1 / np.linalg.norm(r1)
    h = np.cross(r1, v1)
    chat = h / np.linalg.norm(h)
    ihat = np.cross(chat, rhat)
    return float(d @ rhat), float(d @ ihat), float(d @ chat)


# -- one time slice ------------------------------------------------------------------------

def screen_slice(sats, params: ScreenParams, slice_no: int, *, pad: np.ndarray,
                 primary: np.ndarray, usable: np.ndarray,
                 co_pairs: np.ndarray | None = None) -> Slice:
    """Screen one time slice: knot intervals ``[slice_no * slice_knots, ...)`` of the window.

    A pure function of its arguments (no clock, no files), so slices can run anywhere (a local
    process, a Dask worker) and be merged with :func:`merge_slices`. ``usable[i]`` False leaves
    object ``i`` out; ``co_pairs`` (n, 2) are pairs whose range is sampled over the slice to
    tell co-located pairs."""
    t_begin = time.perf_counter()
    p = params
    k0 = slice_no * p.slice_knots
    k1 = min(k0 + p.slice_knots, p.n_knot_intervals)
    knot_ns = int(round(p.knot_s * NS_PER_S))
    times = p.start_ns + np.arange(k0, k1 + 1, dtype=np.int64) * knot_ns
    err, r, v = propagate_chunked(sats, times)
    err = check_states(err, r, v)
    err[~usable] = 255
    ok = err == 0
    valid = ok[:, :-1] & ok[:, 1:]
    coef, est = hermite_and_posteriori(r, v, p.knot_s, MU_KM3_S2)
    pad_k = np.maximum(pad[:, None], POSTERIORI_MARGIN * est)
    rough = valid & ~(pad_k <= PAD_MAX_KM)
    if rough.any():  # from the first rough interval on, the object is out
        rows = np.flatnonzero(rough.any(axis=1))
        first_rough = rough[rows].argmax(axis=1)
        for q, kk in zip(rows, first_rough):
            err[q, kk:] = np.where(err[q, kk:] == 0, NOT_SMOOTH, err[q, kk:])
            valid[q, kk:] = False
    pad_k = np.where(valid, pad_k, 0.0)
    ci, cj, ck, cu, _cd, n_pairs = interpolant_minima(
        coef, valid, pad_k, primary, p.n_sub, p.threshold_km, p.cell, p.n_samples)

    jd0, fr0 = (float(x[0]) for x in jd_from_ns(np.array([p.start_ns])))
    window_s = (p.end_ns - p.start_ns) / NS_PER_S
    sub_s = p.knot_s / p.n_sub
    out_i, out_j, out_t, out_d, out_s, out_ric = [], [], [], [], [], []
    for i, j, k, u in zip(ci.tolist(), cj.tolist(), ck.tolist(), cu.tolist()):
        t_guess = (k0 + k + u) * p.knot_s
        good, t, r1, v1, r2, v2 = refine_tca(sats[i], sats[j], jd0, fr0, t_guess, sub_s)
        if not good or not (0.0 <= t < window_s):
            continue
        d = math.dist(r1, r2)
        if d >= p.threshold_km:
            continue
        out_i.append(i)
        out_j.append(j)
        out_t.append(t)
        out_d.append(d)
        out_s.append(math.dist(v1, v2))
        out_ric.append(ric_components(r1, v1, r2))

    first, code = first_errors(err[:, :] * usable[:, None])
    first_bad = np.where(first >= 0, (k0 + first) * p.knot_s, np.nan)

    if co_pairs is not None and len(co_pairs):
        rng = pair_ranges(coef, valid, co_pairs[:, 0].astype(np.int64),
                          co_pairs[:, 1].astype(np.int64), p.n_sub)
        with np.errstate(invalid="ignore"):
            co_max = np.where(np.isnan(rng).any(axis=1), np.inf, np.nanmax(
                np.where(np.isnan(rng), -np.inf, rng), axis=1))
        rng_f = np.where(np.isnan(rng), np.inf, rng)
        arg = rng_f.argmin(axis=1)
        co_min = rng_f[np.arange(len(arg)), arg]
        co_min_t = (k0 + arg / p.n_sub) * p.knot_s
    else:
        co_max = co_min = co_min_t = np.empty(0)

    return Slice(np.array(out_i, np.int64), np.array(out_j, np.int64), np.array(out_t),
                 np.array(out_d), np.array(out_s), np.array(out_ric).reshape(-1, 3),
                 first_bad, code, co_max, co_min, co_min_t, int(n_pairs), len(ci),
                 time.perf_counter() - t_begin)


def merge_slices(slices: Sequence[Slice], merge_s: float = 1e-3):
    """Concatenate the slices' close approaches, merging those of one pair less than
    ``merge_s`` apart (the same SGP4 minimum reached from two sub-intervals or slices)."""
    if not slices:
        return (np.empty(0, np.int64),) * 2 + (np.empty(0),) * 3 + (np.empty((0, 3)),)
    i = np.concatenate([s.i for s in slices])
    j = np.concatenate([s.j for s in slices])
    t = np.concatenate([s.t_s for s in slices])
    d = np.concatenate([s.miss_km for s in slices])
    sp = np.concatenate([s.speed_km_s for s in slices])
    ric = np.concatenate([s.ric_km for s in slices])
    order = np.lexsort((t, j, i))
    i, j, t, d, sp, ric = i[order], j[order], t[order], d[order], sp[order], ric[order]
    new = np.ones(len(i), bool)
    new[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1]) | (t[1:] - t[:-1] > merge_s)
    return i[new], j[new], t[new], d[new], sp[new], ric[new]


# -- the run -------------------------------------------------------------------------------

_WORK: dict = {}


def _run_slice(slice_no: int) -> Slice:
    w = _WORK
    return screen_slice(w["sats"], w["params"], slice_no, pad=w["pad"], primary=w["primary"],
                        usable=w["usable"], co_pairs=w["co_pairs"])


def _run_slice_numbered(slice_no: int) -> tuple[int, Slice]:
    return slice_no, _run_slice(slice_no)


def _warm_up() -> None:
    """Compile the kernels once in this process (forked workers inherit them)."""
    coef = np.zeros((2, 1, 4, 3))
    coef[1, 0, 0, 0] = 1.0
    valid = np.ones((2, 1), bool)
    interpolant_minima(coef, valid, np.ones((2, 1)), np.ones(2, bool), 2, 5.0, 10.0, 2)
    pair_ranges(coef, valid, np.zeros(1, np.int64), np.ones(1, np.int64), 2)
    hermite_and_posteriori(np.ones((1, 2, 3)), np.ones((1, 2, 3)), 60.0, MU_KM3_S2)


def _co_location_candidates(sats, usable, primary, start_ns, threshold_km):
    """Pairs closer than the threshold at the window start (a co-located pair must be)."""
    from scipy.spatial import cKDTree

    err, r, _ = propagate_chunked(sats, [start_ns])
    ok = usable & (err[:, 0] == 0)
    idx = np.flatnonzero(ok)
    if len(idx) < 2:
        return np.empty((0, 2), np.int64)
    pairs = cKDTree(r[idx, 0]).query_pairs(threshold_km, output_type="ndarray")
    pairs = np.sort(idx[pairs], axis=1) if len(pairs) else np.empty((0, 2), np.int64)
    keep = primary[pairs[:, 0]] | primary[pairs[:, 1]]
    return pairs[keep].astype(np.int64)


def _run_local(sats, params: ScreenParams, workers: int, progress, **shared) -> list[Slice]:
    """Every time slice in this process (``workers == 1``) or on ``workers`` forked processes,
    which inherit the ``Satrec`` objects (they do not pickle)."""
    _warm_up()
    _WORK.update(sats=sats, params=params, **shared)
    slices: list[Slice] = []
    try:
        if workers == 1:
            for s in range(params.n_slices):
                slices.append(_run_slice(s))
                if progress:
                    progress(len(slices), params.n_slices)
        else:
            ctx = multiprocessing.get_context("fork")
            done: dict[int, Slice] = {}
            with ctx.Pool(workers) as pool:
                for s, sl in pool.imap_unordered(_run_slice_numbered, range(params.n_slices)):
                    done[s] = sl
                    if progress:
                        progress(len(done), params.n_slices)
            # in slice order, whatever order they finished in: ties between slices (a
            # co-located pair at the same smallest range in two slices) resolve the same way
            # on any number of processes or Dask workers
            slices = [done[s] for s in range(params.n_slices)]
    finally:
        _WORK.clear()
    return slices


def screen(elements: pa.Table, start, days: float = 1.0, threshold_km: float = 5.0, *,
           primaries: Sequence[int] | None = None, knot_s: float = 300.0, n_sub: int = 12,
           slice_knots: int = 24, workers: int | None = None,
           progress: Callable[[int, int], None] | None = None, dask=None) -> ScreenResult:
    """Screen an ``elements`` or ``catalogue`` table for close approaches.

    ``start``: window start (timezone-aware datetime, ISO-8601 text or ns since 1970 UTC);
    ``days``: window length; ``threshold_km``: report pairs closer than this; ``primaries``:
    NORAD numbers to screen against everything (default: all-vs-all); ``workers``: processes
    (default: every local core; 1 runs in this process); ``progress(done, total)`` is called
    after each time slice. One element set per object is expected (a catalogue); with several
    rows for an object, each is screened as its own object. ``dask`` runs the time slices on a
    Dask cluster instead of local processes: a scheduler address (``"tcp://host:8786"``),
    ``"local"`` / ``"local:N"`` for a ``LocalCluster`` of N worker processes, or a
    ``distributed.Client`` (see :mod:`ssafuse.distributed`); the result is the same.

    Returns a :class:`ScreenResult`: ``conjunctions`` in the ``conjunctions`` schema, one row per
    close approach sorted by TCA, TCA and miss distance from SGP4 itself.
    """
    t_run = time.perf_counter()
    start_ns = to_ns(start, naive_is_utc=False)
    end_ns = start_ns + int(round(days * NS_PER_DAY))
    params = ScreenParams(start_ns, end_ns, float(threshold_km), float(knot_s), int(n_sub),
                          int(slice_knots))
    sats = satrecs_exact(elements)
    ids = elements["object_id"].to_numpy()
    n = len(sats)
    init = init_errors(sats)
    usable = init == 0
    pad = np.maximum(interpolation_pad_km(sats, params.knot_s),
                     deep_space_pad_km(sats, start_ns, params.knot_s))
    usable &= np.isfinite(pad)
    if primaries:
        primary = np.isin(ids, np.asarray(list(primaries), dtype=np.int64))
    else:
        primary = np.ones(n, bool)
    pad = np.where(usable, pad, 0.0)
    co_pairs = _co_location_candidates(sats, usable, primary, start_ns, params.threshold_km)

    dask_info: dict = {}
    if dask is not None:
        from .distributed import run_slices, slice_work

        work = slice_work(elements, params, pad=pad, primary=primary, usable=usable,
                          co_pairs=co_pairs)
        slices, dask_info = run_slices(dask, work, params.n_slices, progress)
        workers = dask_info["workers"]
    else:
        workers = max(1, min(workers or os.cpu_count() or 1, params.n_slices))
        slices = _run_local(sats, params, workers, progress, pad=pad, primary=primary,
                            usable=usable, co_pairs=co_pairs)

    i, j, t, d, sp, ric = merge_slices(slices)

    # co-located pairs: sampled range under the threshold over every slice
    co_flag = np.zeros(len(i), bool)
    if len(co_pairs):
        co_max = np.max([s.co_max_km for s in slices], axis=0)
        co_min_stack = np.array([s.co_min_km for s in slices])
        co_t_stack = np.array([s.co_min_t_s for s in slices])
        co = co_max < params.threshold_km
        keep = np.ones(len(i), bool)
        add = []
        for q in np.flatnonzero(co):
            a, b = co_pairs[q]
            mine = np.flatnonzero((i == a) & (j == b))
            if len(mine):
                best = mine[np.argmin(d[mine])]
                keep[mine] = False
                keep[best] = True
                co_flag[best] = True
            else:  # no local minimum inside the window: its smallest sampled range
                s = int(np.argmin(co_min_stack[:, q]))
                add.append((a, b, float(co_t_stack[s, q])))
        for a, b, t_s in add:
            jd0, fr0 = (float(x[0]) for x in jd_from_ns(np.array([start_ns])))
            e1, r1, v1 = _state(sats[a], jd0, fr0, t_s)
            e2, r2, v2 = _state(sats[b], jd0, fr0, t_s)
            if e1 or e2:
                continue
            i = np.r_[i, a]
            j = np.r_[j, b]
            t = np.r_[t, t_s]
            d = np.r_[d, math.dist(r1, r2)]
            sp = np.r_[sp, math.dist(v1, v2)]
            ric = np.vstack([ric, ric_components(r1, v1, r2)])
            keep = np.r_[keep, True]
            co_flag = np.r_[co_flag, True]
        i, j, t, d, sp, ric, co_flag = (x[keep] for x in (i, j, t, d, sp, ric, co_flag))

    # object 1 is the primary when only one of the two is, else the smaller NORAD number
    swap = (~primary[i] & primary[j]) | ((primary[i] == primary[j]) & (ids[i] > ids[j]))
    if swap.any():
        i, j = np.where(swap, j, i), np.where(swap, i, j)
        # RIC was measured in the frame of the first index: recompute for swapped rows
        jd0, fr0 = (float(x[0]) for x in jd_from_ns(np.array([start_ns])))
        for q in np.flatnonzero(swap):
            _, r1, v1 = _state(sats[i[q]], jd0, fr0, t[q])
            _, r2, _ = _state(sats[j[q]], jd0, fr0, t[q])
            ric[q] = ric_components(r1, v1, r2)

    table = _conjunctions_table(elements, i, j, t, d, sp, ric, co_flag, params)
    excluded = _excluded_table(elements, init, usable, slices, params)
    stats = {
        "objects": n, "objects_screened": int(usable.sum()),
        "objects_excluded": excluded.num_rows, "slices": params.n_slices,
        "workers": workers, "conjunctions": table.num_rows,
        "co_located": int(co_flag.sum()),
        "box_pairs": int(sum(s.n_box_pairs for s in slices)),
        "candidates_refined": int(sum(s.n_candidates for s in slices)),
        "slice_seconds": round(sum(s.seconds for s in slices), 3),
        "seconds": round(time.perf_counter() - t_run, 3),
        **dask_info,
        "parameters": {"start": _iso(start_ns), "end": _iso(end_ns),
                       "threshold_km": params.threshold_km, "knot_s": params.knot_s,
                       "n_sub": params.n_sub, "slice_knots": params.slice_knots,
                       "cell_km": params.cell, "primaries": list(primaries or [])},
    }
    return ScreenResult(table, excluded, stats)


def _iso(ns: int) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
            + dt.timedelta(microseconds=ns // 1000)).isoformat().replace("+00:00", "Z")


def _col(elements: pa.Table, name: str, rows: np.ndarray):
    if name not in elements.column_names:
        return [None] * len(rows)
    return elements[name].take(pa.array(rows, pa.int64()))


def _conjunctions_table(elements, i, j, t_s, d, sp, ric, co_flag, params) -> pa.Table:
    n = len(i)
    order = np.argsort(t_s, kind="stable")
    i, j, t_s, d, sp, ric, co_flag = (x[order] for x in (i, j, t_s, d, sp, ric, co_flag))
    tca_ns = params.start_ns + np.round(t_s * NS_PER_S).astype(np.int64)
    epoch = elements["epoch"].cast(pa.int64()).to_numpy()
    ts = CONJUNCTIONS.field("tca").type
    cls = elements["classification"].to_pylist() if "classification" in elements.column_names \
        else ["UNCLASSIFIED"] * elements.num_rows
    rel = elements["releasable_to"].to_pylist() if "releasable_to" in elements.column_names \
        else [None] * elements.num_rows
    cache: dict = {}
    levels, rels, texts = [], [], []
    for a, b in zip(i.tolist(), j.tolist()):
        key = (cls[a], None if rel[a] is None else tuple(rel[a]),
               cls[b], None if rel[b] is None else tuple(rel[b]))
        hit = cache.get(key)
        if hit is None:
            m = mk.combine([mk.Marking(key[0], key[1]), mk.Marking(key[2], key[3])])
            hit = cache[key] = (m.classification,
                                None if m.releasable_to is None else list(m.releasable_to),
                                str(m))
        levels.append(hit[0])
        rels.append(hit[1])
        texts.append(hit[2])
    cols = {
        "object_id_1": _col(elements, "object_id", i),
        "object_id_2": _col(elements, "object_id", j),
        "object_name_1": _col(elements, "object_name", i),
        "object_name_2": _col(elements, "object_name", j),
        "tca": pa.array(tca_ns).cast(ts),
        "miss_distance_km": d,
        "relative_speed_km_s": sp,
        "radial_km": ric[:, 0], "in_track_km": ric[:, 1], "cross_track_km": ric[:, 2],
        "dse_1_days": (tca_ns - epoch[i]) / NS_PER_DAY,
        "dse_2_days": (tca_ns - epoch[j]) / NS_PER_DAY,
        "co_located": co_flag,
        "pc": pa.nulls(n, pa.float64()),
        "pc_method": pa.nulls(n, pa.string()),
        "max_pc": pa.nulls(n, pa.float64()),
        "max_pc_sigma_km": pa.nulls(n, pa.float64()),
        "hbr_m": pa.nulls(n, pa.float64()),
        "hbr_source": pa.nulls(n, pa.string()),
        "threshold_km": np.full(n, params.threshold_km),
        "window_start": pa.array(np.full(n, params.start_ns)).cast(ts),
        "window_end": pa.array(np.full(n, params.end_ns)).cast(ts),
        "source_1": _col(elements, "source", i),
        "epoch_1": pa.array(epoch[i]).cast(ts),
        "source_sha256_1": _col(elements, "source_sha256", i),
        "source_record_1": _col(elements, "source_record", i),
        "source_2": _col(elements, "source", j),
        "epoch_2": pa.array(epoch[j]).cast(ts),
        "source_sha256_2": _col(elements, "source_sha256", j),
        "source_record_2": _col(elements, "source_record", j),
        "classification": pa.array(levels, pa.string()),
        "releasable_to": pa.array(rels, pa.list_(pa.string())),
        "marking": pa.array(texts, pa.string()),
    }
    arrays = [pa.array(cols[f.name], f.type) if not isinstance(cols[f.name], (pa.Array,
              pa.ChunkedArray)) else cols[f.name].cast(f.type) for f in CONJUNCTIONS]
    return pa.Table.from_arrays(arrays, schema=CONJUNCTIONS)


def _excluded_table(elements, init, usable, slices, params) -> pa.Table:
    ids = elements["object_id"].to_numpy()
    names = elements["object_name"].to_pylist() if "object_name" in elements.column_names \
        else [None] * len(ids)
    rows = []
    for q in np.flatnonzero(~usable):
        code = int(init[q]) if init[q] else 1
        reason = error_reason(code, at_init=True) if init[q] else \
            "no usable interpolation-error bound (orbit outside SGP4's domain)"
        rows.append((ids[q], names[q], code, reason, params.start_ns))
    if slices:
        first = np.array([s.first_bad for s in slices])   # (slices, objects)
        codes = np.array([s.bad_code for s in slices])
        anybad = np.isfinite(first)
        for q in np.flatnonzero(anybad.any(axis=0) & usable):
            s = np.flatnonzero(anybad[:, q])
            s = s[np.argmin(first[s, q])]
            rows.append((ids[q], names[q], int(codes[s, q]),
                         error_reason(int(codes[s, q])),
                         params.start_ns + int(first[s, q] * NS_PER_S)))
    return pa.table({
        "object_id": pa.array([r[0] for r in rows], pa.int64()),
        "object_name": pa.array([r[1] for r in rows], pa.string()),
        "error_code": pa.array([r[2] for r in rows], pa.uint8()),
        "reason": pa.array([r[3] for r in rows], pa.string()),
        "excluded_from": pa.array([r[4] for r in rows], pa.int64()).cast(
            EXCLUDED.field("excluded_from").type),
    }, schema=EXCLUDED)

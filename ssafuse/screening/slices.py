"""One time slice of a screening, as a pure function: the knots, the broad phase, the narrow
phase and TCA on SGP4 (see :mod:`ssafuse.screening` for the cascade), and the merge of
slices. Nothing here knows where it runs (:mod:`ssafuse.screening.executors`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..constants import EARTH_RADIUS_KM, MU_KM3_S2, NS_PER_DAY, NS_PER_S, SECONDS_PER_DAY
from ..propagate import check_states, first_errors, propagate_chunked
from ..timeutil import jd_from_ns
from .kernels import hermite_and_posteriori, interpolant_minima, pair_ranges

#: Multiplier on the analytic interpolation-error estimate. On the full 2023 catalogue the
#: worst object's error is 0.40 of its padded bound (tests/test_screen_oracle.py).
PAD_SAFETY = 2.0
#: Floor of the interpolation-error bound, km (SGP4's velocities are not exactly the time
#: derivative of its positions; this covers that mismatch over a knot interval).
PAD_FLOOR_KM = 0.002
#: Multiplier on the a-posteriori estimate of each interval's interpolation error.
POSTERIORI_MARGIN = 2.0
#: An interval whose error bound exceeds this (km) is not interpolated: the object is
#: excluded from there on (SGP4 output of a decaying element set that is no longer smooth).
PAD_MAX_KM = 20.0
#: ssafuse code for that exclusion.
NOT_SMOOTH = 9



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


def posteriori_error_km(coef: np.ndarray, r: np.ndarray, knot_s: float) -> np.ndarray:
    """Per object and knot interval, an estimate in km of the interpolant's error from how far
    its second derivative at the two knots is from two-body gravity there: for a cubic Hermite
    interpolant the second derivative at the ends is off by about h**2/12 times the fourth
    derivative of the motion, and the error is h**4/384 times it, so the error is about
    h**2/32 |p2 - g|. It catches what the two-body bound cannot: SDP4's velocity terms, drag,
    a decaying element set turning wild.

    A jump ``J`` of SGP4's positions inside an interval (SDP4 switching how it applies its
    lunar-solar periodics as the inclination crosses 0.2 rad: 13 km for object 45466 on
    2023-10-10) adds ``-+6 J / h**2`` to the deviations at the two ends; the interpolant then
    errs by ``|J| / 2`` (jump mid-interval) to ``|J|`` (next to a knot). A velocity offset
    (SDP4) adds the same pattern but smoothly in time, so the jump is how far the interval's
    ``dev_1 - dev_0`` stands out from its neighbours' (``|.| = 12 |J| / h**2``), and the
    estimate is at least ``|J| / 2`` and the bound (``POSTERIORI_MARGIN``) at least ``|J|``,
    the worst case (twice that would exclude 45466 from screening, over ``PAD_MAX_KM``).
    ``r`` (n, k + 1, 3) may hold NaN knots; an interval without a neighbour with finite knots is compared
    with 0 (the screener computes one knot beyond each end of a slice, so only the window's
    own ends lack one). Checked against SGP4 over a full catalogue by
    ``tests/test_screen_oracle.py``."""
    h2 = knot_s * knot_s
    r0 = np.nan_to_num(r[:, :-1])
    r1 = np.nan_to_num(r[:, 1:])

    def grav(x):
        n = np.sqrt((x * x).sum(axis=-1, keepdims=True))
        n = np.where(n > 0, n, 1.0)
        return -MU_KM3_S2 * x / n**3

    a0 = 2.0 * coef[:, :, 2] / h2
    a1 = (2.0 * coef[:, :, 2] + 6.0 * coef[:, :, 3]) / h2
    dev0, dev1 = a0 - grav(r0), a1 - grav(r1)
    dev = np.maximum(np.sqrt((dev0 ** 2).sum(axis=-1)), np.sqrt((dev1 ** 2).sum(axis=-1)))
    fin = np.isfinite(r).all(axis=-1)
    ok = fin[:, :-1] & fin[:, 1:]
    anti = dev1 - dev0
    side = np.zeros((2,) + anti.shape)       # the left and right neighbours' anti, where ok
    side_ok = np.zeros((2,) + ok.shape, bool)
    side[0, :, 1:], side_ok[0, :, 1:] = anti[:, :-1], ok[:, :-1]
    side[1, :, :-1], side_ok[1, :, :-1] = anti[:, 1:], ok[:, 1:]
    n_side = side_ok.sum(axis=0)
    ref = (np.where(side_ok[..., None], side, 0.0).sum(axis=0)
           / np.maximum(n_side, 1)[..., None])
    jump = np.where(ok, np.sqrt(((anti - ref) ** 2).sum(axis=-1)), 0.0)
    return np.maximum(h2 / 32.0 * dev, h2 / 24.0 * jump)


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

def sgp4_state(sat, jd0: float, fr0: float, t_s: float):
    e, r, v = sat.sgp4(jd0, fr0 + t_s / SECONDS_PER_DAY)
    return e, r, v


def refine_tca(sat1, sat2, jd0: float, fr0: float, t_s: float, max_step_s: float):
    """Newton steps on SGP4 for the time where the range rate vanishes, from ``t_s`` seconds
    after ``(jd0, fr0)``. Returns ``(ok, t_s, r1, v1, r2, v2)``; ``ok`` False when SGP4
    failed or the iteration left the bracket of ``max_step_s`` around the start."""
    t = t0 = t_s
    for _ in range(12):
        e1, r1, v1 = sgp4_state(sat1, jd0, fr0, t)
        e2, r2, v2 = sgp4_state(sat2, jd0, fr0, t)
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
    e1, r1, v1 = sgp4_state(sat1, jd0, fr0, t)
    e2, r2, v2 = sgp4_state(sat2, jd0, fr0, t)
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
    err, coef, valid, pad_k = _interpolants(sats, p, k0, k1, pad, usable)
    ci, cj, ck, cu, _cd, n_pairs = interpolant_minima(
        coef, valid, pad_k, primary, p.n_sub, p.threshold_km, p.cell, p.n_samples)
    found = _refine_minima(sats, p, k0, ci, cj, ck, cu)

    first, code = first_errors(err[:, :] * usable[:, None])
    first_bad = np.where(first >= 0, (k0 + first) * p.knot_s, np.nan)
    co_max, co_min, co_min_t = _co_location_ranges(coef, valid, co_pairs, p, k0)
    return Slice(*found, first_bad, code, co_max, co_min, co_min_t, int(n_pairs), len(ci),
                 time.perf_counter() - t_begin)


def _interpolants(sats, p: ScreenParams, k0: int, k1: int, pad: np.ndarray,
                  usable: np.ndarray):
    """SGP4 at the knots ``k0 .. k1`` and the Hermite interpolants between them. Returns
    ``(err, coef, valid, pad_k)``: SGP4 codes per object and knot (255 for objects not
    ``usable``, :data:`NOT_SMOOTH` from an object's first interval whose error bound exceeds
    :data:`PAD_MAX_KM` on), the coefficients, which intervals are interpolated, and the error
    bound of each (0 where not interpolated)."""
    knot_ns = int(round(p.knot_s * NS_PER_S))
    # one knot beyond each end: the jump test of the a-posteriori estimate compares every
    # interval with both neighbours, so a bound never depends on how the window is sliced
    times = p.start_ns + np.arange(k0 - 1, k1 + 2, dtype=np.int64) * knot_ns
    err, r, v = propagate_chunked(sats, times)
    err = check_states(err, r, v)
    coef, est = hermite_and_posteriori(r, v, p.knot_s, MU_KM3_S2)
    err, coef, est = err[:, 1:-1], coef[:, 1:-1], est[:, 1:-1]
    err[~usable] = 255
    ok = err == 0
    valid = ok[:, :-1] & ok[:, 1:]
    pad_k = np.maximum(pad[:, None], POSTERIORI_MARGIN * est)
    rough = valid & ~(pad_k <= PAD_MAX_KM)
    if rough.any():  # from the first rough interval on, the object is out
        rows = np.flatnonzero(rough.any(axis=1))
        first_rough = rough[rows].argmax(axis=1)
        for q, kk in zip(rows, first_rough):
            err[q, kk:] = np.where(err[q, kk:] == 0, NOT_SMOOTH, err[q, kk:])
            valid[q, kk:] = False
    pad_k = np.where(valid, pad_k, 0.0)
    return err, coef, valid, pad_k


def _refine_minima(sats, p: ScreenParams, k0: int, ci, cj, ck, cu):
    """TCA on SGP4 for each interpolant minimum (pair ``ci, cj``, knot interval ``k0 + ck``,
    place ``cu`` across it); those inside the window and under the threshold. Returns
    ``(i, j, t_s, miss_km, speed_km_s, ric_km)`` arrays."""
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
    return (np.array(out_i, np.int64), np.array(out_j, np.int64), np.array(out_t),
            np.array(out_d), np.array(out_s), np.array(out_ric).reshape(-1, 3))


def _co_location_ranges(coef, valid, co_pairs, p: ScreenParams, k0: int):
    """Per co-location candidate pair, its largest interpolated range over the slice (inf
    where either object has no interpolant somewhere), its smallest and when (s since the
    window start)."""
    if co_pairs is None or not len(co_pairs):
        empty = np.empty(0)
        return empty, empty, empty
    rng = pair_ranges(coef, valid, co_pairs[:, 0].astype(np.int64),
                      co_pairs[:, 1].astype(np.int64), p.n_sub)
    with np.errstate(invalid="ignore"):
        co_max = np.where(np.isnan(rng).any(axis=1), np.inf, np.nanmax(
            np.where(np.isnan(rng), -np.inf, rng), axis=1))
    rng_f = np.where(np.isnan(rng), np.inf, rng)
    arg = rng_f.argmin(axis=1)
    co_min = rng_f[np.arange(len(arg)), arg]
    co_min_t = (k0 + arg / p.n_sub) * p.knot_s
    return co_max, co_min, co_min_t


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

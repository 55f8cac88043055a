"""Conjunction screening: every pair closer than a threshold in a window, with TCA on SGP4.

The cascade (ESA's, SIMPLETON's shape):

1. **Knots.** Every object is propagated with ``SatrecArray`` every ``knot_s`` seconds
   (TEME, km, km/s); each knot interval gets a cubic Hermite interpolant from the positions and
   velocities at its ends. Its error is bounded per object, ``pad`` km, from the orbit's
   angular rate at perigee: ``sqrt(3) * knot_s**4 / 384 * PAD_SAFETY * w_p**4 * r_p`` (the
   cubic Hermite remainder with ``|r''''| ~ w_p**4 r_p``). ``tests/test_screen_oracle.py``
   checks it against SGP4 itself over the full 2023 catalogue (worst error / pad 0.40), and
   each interval's bound, the largest of the pad, a deep-space object's measured error and
   the a-posteriori estimate (:func:`~ssafuse.screening.slices.posteriori_error_km`;
   worst error / bound 0.69, at a 13 km jump of SDP4's positions).
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

The window is split into **independent time slices**
(:func:`~ssafuse.screening.slices.screen_slice` is a pure function of the element sets, the
window and a slice number), run on all local cores by default (processes; python-sgp4 holds
the GIL; :mod:`ssafuse.screening.executors`) or on a Dask cluster unchanged.

A close approach is a local minimum of the SGP4 range inside the window, below the
threshold. A pair closer than the threshold at every sample of the window (docked or
formation-flying objects) is **co-located**: reported once per window, at its smallest range,
flagged ``co_located``. Objects SGP4 cannot propagate are left out with their reason
(:attr:`ScreenResult.excluded`): from the start when ``sgp4init`` refused the element set, or
from the first knot where SGP4 failed (decay).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
from scipy.spatial import cKDTree

from .. import markings as mk
from ..constants import NS_PER_DAY, NS_PER_S
from ..epochs import MAX_EPOCH_GAP_DAYS, window_gap_days
from ..propagate import (FAR_FROM_WINDOW, error_reason, init_errors, propagate_chunked,
                         satrecs)
from ..schema import CONJUNCTIONS, EXCLUDED
from ..timeutil import iso_z, jd_from_ns, to_ns
from .executors import run_local, run_slices, slice_work
from .slices import (ScreenParams, Slice, deep_space_pad_km, interpolation_pad_km,
                     merge_slices, ric_components, sgp4_state)


@dataclass
class ScreenResult:
    """A screening run: ``conjunctions`` (schema :data:`ssafuse.schema.CONJUNCTIONS`),
    ``excluded`` (objects left out, and why) and ``stats`` (counts, timings, parameters)."""

    conjunctions: pa.Table
    excluded: pa.Table
    stats: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Inputs:
    """What the slices of one run share, prepared once: the ``Satrec`` objects, NORAD
    numbers, ``sgp4init`` codes, which objects are screened (``usable``), their
    interpolation-error bounds (``pad``, km; 0 where not usable), the flags a pair needs one
    of to be screened (``primary``: the primaries, or the ``involving`` objects), the
    primaries that orient each event (``orient``) and the co-location candidate pairs."""

    sats: list
    ids: np.ndarray
    init: np.ndarray
    usable: np.ndarray
    pad: np.ndarray
    primary: np.ndarray
    orient: np.ndarray
    co_pairs: np.ndarray

    def shared(self) -> dict:
        """The per-object arrays every slice takes (keyword arguments of ``screen_slice``)."""
        return dict(pad=self.pad, primary=self.primary, usable=self.usable,
                    co_pairs=self.co_pairs)


@dataclass
class _Events:
    """Close approaches in object indices: TCA (s since the window start), miss distance,
    relative speed, RIC of object 2 in object 1's frame, and the co-located flag."""

    i: np.ndarray
    j: np.ndarray
    t_s: np.ndarray
    miss_km: np.ndarray
    speed_km_s: np.ndarray
    ric_km: np.ndarray
    co_located: np.ndarray

    def arrays(self) -> tuple:
        return (self.i, self.j, self.t_s, self.miss_km, self.speed_km_s, self.ric_km,
                self.co_located)

    def take(self, rows) -> _Events:
        return _Events(*(x[rows] for x in self.arrays()))


def screen(elements: pa.Table, start, days: float = 1.0, threshold_km: float = 5.0, *,
           primaries: Sequence[int] | None = None, knot_s: float = 300.0, n_sub: int = 12,
           slice_knots: int = 24, workers: int | None = None,
           progress: Callable[[int, int], None] | None = None, dask=None,
           involving: Sequence[int] | None = None,
           max_epoch_gap_days: float | None = MAX_EPOCH_GAP_DAYS) -> ScreenResult:
    """Screen an ``elements`` or ``catalogue`` table for close approaches.

    ``start``: window start (timezone-aware datetime, ISO-8601 text or ns since 1970 UTC);
    ``days``: window length; ``threshold_km``: report pairs closer than this; ``primaries``:
    NORAD numbers to screen against everything (default: all-vs-all); ``workers``: processes
    (default: every local core; 1 runs in this process); ``progress(done, total)`` is called
    once with ``done`` 0 before the first time slice (``total`` slices in all), then after
    each. One element set per object is expected (a catalogue); with several
    rows for an object, each is screened as its own object. ``dask`` runs the time slices on a
    Dask cluster instead of local processes: a scheduler address (``"tcp://host:8786"``),
    ``"local"`` / ``"local:N"`` for a ``LocalCluster`` of N worker processes, or a
    ``distributed.Client`` (see :mod:`ssafuse.cluster`); the result is the same.

    ``involving``: NORAD numbers; only pairs with at least one of them are screened, and
    each event found is exactly the row a run without ``involving`` gives (same orientation,
    TCA, miss, RIC): the events of the other pairs are left out. A tear-line export screens
    again only the objects whose element set differs in a partner's view this way.

    ``max_epoch_gap_days``: an element set whose epoch is farther than this from the window
    is excluded, with the gap in its reason (:mod:`ssafuse.epochs`; ``None``: none is).

    Returns a :class:`ScreenResult`: ``conjunctions`` in the ``conjunctions`` schema, one row per
    close approach sorted by TCA, TCA and miss distance from SGP4 itself.
    """
    t_run = time.perf_counter()
    start_ns = to_ns(start, naive_is_utc=False)
    end_ns = start_ns + int(round(days * NS_PER_DAY))
    params = ScreenParams(start_ns, end_ns, float(threshold_km), float(knot_s), int(n_sub),
                          int(slice_knots))
    inputs = _prepare(elements, params, primaries, involving, max_epoch_gap_days)
    slices, workers, dask_info = _run_slices(elements, inputs, params, workers, progress, dask)
    merged = merge_slices(slices)
    events = _Events(*merged, np.zeros(len(merged[0]), bool))
    events = _resolve_co_located(events, slices, inputs, params)
    if involving is not None and primaries:  # pairs were screened for ``involving``
        events = events.take(inputs.orient[events.i] | inputs.orient[events.j])
    _orient(events, inputs, params.start_ns)

    table = _conjunctions_table(elements, events, params)
    excluded = _excluded_table(elements, inputs.init, inputs.usable, slices, params,
                               max_epoch_gap_days)
    stats = _stats(inputs, events, slices, table, excluded, params, primaries, workers,
                   dask_info, t_run)
    return ScreenResult(table, excluded, stats)


def _prepare(elements: pa.Table, params: ScreenParams, primaries, involving=None,
             max_epoch_gap_days: float | None = None) -> _Inputs:
    """The ``Satrec`` objects, which of them can be screened (``sgp4init`` took the element
    set, its epoch is within ``max_epoch_gap_days`` of the window (else code
    :data:`~ssafuse.propagate.FAR_FROM_WINDOW`) and its interpolation-error bound is finite),
    the bounds, the flags (pairs screened, orientation) and the co-location candidates."""
    sats = satrecs(elements)
    ids = elements["object_id"].to_numpy()
    init = init_errors(sats)
    if max_epoch_gap_days is not None:
        gap = window_gap_days(elements["epoch"].cast(pa.int64()).to_numpy(), params.start_ns,
                              params.end_ns)
        init = np.where((init == 0) & (gap > max_epoch_gap_days), FAR_FROM_WINDOW, init)
    usable = init == 0
    pad = np.maximum(interpolation_pad_km(sats, params.knot_s),
                     deep_space_pad_km(sats, params.start_ns, params.knot_s))
    usable &= np.isfinite(pad)
    if primaries:
        orient = np.isin(ids, np.asarray(list(primaries), dtype=np.int64))
    else:
        orient = np.ones(len(sats), bool)
    primary = orient if involving is None else np.isin(
        ids, np.asarray(list(involving), dtype=np.int64))
    pad = np.where(usable, pad, 0.0)
    co_pairs = _co_location_candidates(sats, usable, primary, params.start_ns,
                                       params.threshold_km)
    return _Inputs(sats, ids, init, usable, pad, primary, orient, co_pairs)


def _co_location_candidates(sats, usable, primary, start_ns, threshold_km):
    """Pairs closer than the threshold at the window start (a co-located pair must be)."""
    err, r, _ = propagate_chunked(sats, [start_ns])
    ok = usable & (err[:, 0] == 0)
    idx = np.flatnonzero(ok)
    if len(idx) < 2:
        return np.empty((0, 2), np.int64)
    pairs = cKDTree(r[idx, 0]).query_pairs(threshold_km, output_type="ndarray")
    pairs = np.sort(idx[pairs], axis=1) if len(pairs) else np.empty((0, 2), np.int64)
    keep = primary[pairs[:, 0]] | primary[pairs[:, 1]]
    return pairs[keep].astype(np.int64)


def _run_slices(elements: pa.Table, inputs: _Inputs, params: ScreenParams, workers, progress,
                dask) -> tuple[list[Slice], int, dict]:
    """Every time slice, on a Dask cluster when ``dask`` is given, else on local processes.
    Returns the slices in slice order, the number of workers and what the Dask run reports
    (``{}`` for a local run)."""
    if progress:
        progress(0, params.n_slices)
    if dask is not None:
        work = slice_work(elements, params, **inputs.shared())
        slices, dask_info = run_slices(dask, work, params.n_slices, progress)
        return slices, dask_info["workers"], dask_info
    workers = max(1, min(workers or os.cpu_count() or 1, params.n_slices))
    slices = run_local(inputs.sats, params, workers, progress, **inputs.shared())
    return slices, workers, {}


def _resolve_co_located(events: _Events, slices: list[Slice], inputs: _Inputs,
                        params: ScreenParams) -> _Events:
    """Co-located pairs (sampled range under the threshold over every slice): one row each,
    flagged, at the smallest of its minima, or, with no local minimum inside the window, at
    its smallest sampled range."""
    co_pairs = inputs.co_pairs
    if not len(co_pairs):
        return events
    co_max = np.max([s.co_max_km for s in slices], axis=0)
    co_min_stack = np.array([s.co_min_km for s in slices])
    co_t_stack = np.array([s.co_min_t_s for s in slices])
    keep = np.ones(len(events.i), bool)
    add = []
    for q in np.flatnonzero(co_max < params.threshold_km):
        a, b = co_pairs[q]
        mine = np.flatnonzero((events.i == a) & (events.j == b))
        if len(mine):
            best = mine[np.argmin(events.miss_km[mine])]
            keep[mine] = False
            keep[best] = True
            events.co_located[best] = True
        else:  # no local minimum inside the window: its smallest sampled range
            s = int(np.argmin(co_min_stack[:, q]))
            add.append((a, b, float(co_t_stack[s, q])))
    for a, b, t_s in add:
        if _append_event(events, inputs.sats, a, b, t_s, params.start_ns):
            keep = np.r_[keep, True]
    return events.take(keep)


def _append_event(events: _Events, sats, a, b, t_s: float, start_ns: int) -> bool:
    """Append the co-located pair ``(a, b)`` at ``t_s`` from SGP4; False (nothing appended)
    when SGP4 fails for either object."""
    jd0, fr0 = (float(x[0]) for x in jd_from_ns(np.array([start_ns])))
    e1, r1, v1 = sgp4_state(sats[a], jd0, fr0, t_s)
    e2, r2, v2 = sgp4_state(sats[b], jd0, fr0, t_s)
    if e1 or e2:
        return False
    events.i = np.r_[events.i, a]
    events.j = np.r_[events.j, b]
    events.t_s = np.r_[events.t_s, t_s]
    events.miss_km = np.r_[events.miss_km, math.dist(r1, r2)]
    events.speed_km_s = np.r_[events.speed_km_s, math.dist(v1, v2)]
    events.ric_km = np.vstack([events.ric_km, ric_components(r1, v1, r2)])
    events.co_located = np.r_[events.co_located, True]
    return True


def _orient(events: _Events, inputs: _Inputs, start_ns: int) -> None:
    """Object 1 is the primary when only one of the two is, else the smaller NORAD number;
    RIC is recomputed (from SGP4) in the new object 1's frame for the rows swapped."""
    primary, ids, i, j = inputs.orient, inputs.ids, events.i, events.j
    swap = (~primary[i] & primary[j]) | ((primary[i] == primary[j]) & (ids[i] > ids[j]))
    if not swap.any():
        return
    events.i, events.j = np.where(swap, j, i), np.where(swap, i, j)
    jd0, fr0 = (float(x[0]) for x in jd_from_ns(np.array([start_ns])))
    for q in np.flatnonzero(swap):
        _, r1, v1 = sgp4_state(inputs.sats[events.i[q]], jd0, fr0, events.t_s[q])
        _, r2, _ = sgp4_state(inputs.sats[events.j[q]], jd0, fr0, events.t_s[q])
        events.ric_km[q] = ric_components(r1, v1, r2)


def _stats(inputs: _Inputs, events: _Events, slices: list[Slice], table: pa.Table,
           excluded: pa.Table, params: ScreenParams, primaries, workers: int, dask_info: dict,
           t_run: float) -> dict:
    """:attr:`ScreenResult.stats`: counts, timings (``seconds`` since ``t_run``) and the
    parameters of the run."""
    return {
        "objects": len(inputs.sats), "objects_screened": int(inputs.usable.sum()),
        "objects_excluded": excluded.num_rows, "slices": params.n_slices,
        "workers": workers, "conjunctions": table.num_rows,
        "co_located": int(events.co_located.sum()),
        "box_pairs": int(sum(s.n_box_pairs for s in slices)),
        "candidates_refined": int(sum(s.n_candidates for s in slices)),
        "slice_seconds": round(sum(s.seconds for s in slices), 3),
        "seconds": round(time.perf_counter() - t_run, 3),
        **dask_info,
        "parameters": {"start": iso_z(params.start_ns), "end": iso_z(params.end_ns),
                       "threshold_km": params.threshold_km, "knot_s": params.knot_s,
                       "n_sub": params.n_sub, "slice_knots": params.slice_knots,
                       "cell_km": params.cell, "primaries": list(primaries or [])},
    }


def _col(elements: pa.Table, name: str, rows: np.ndarray):
    if name not in elements.column_names:
        return [None] * len(rows)
    return elements[name].take(pa.array(rows, pa.int64()))


def _conjunctions_table(elements: pa.Table, events: _Events, params: ScreenParams) -> pa.Table:
    n = len(events.i)
    order = np.argsort(events.t_s, kind="stable")
    i, j, t_s, d, sp, ric, co_flag = (x[order] for x in events.arrays())
    tca_ns = params.start_ns + np.round(t_s * NS_PER_S).astype(np.int64)
    epoch = elements["epoch"].cast(pa.int64()).to_numpy()
    ts = CONJUNCTIONS.field("tca").type
    cls = elements["classification"].to_pylist() if "classification" in elements.column_names \
        else ["UNCLASSIFIED"] * elements.num_rows
    rel = elements["releasable_to"].to_pylist() if "releasable_to" in elements.column_names \
        else [None] * elements.num_rows
    levels, rels, texts = mk.combine_columns([(cls, rel), (cls, rel)], n,
                                             [i.tolist(), j.tolist()])
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
    for f in CONJUNCTIONS:  # what assessment fills (attached, max_pc_method, ...): null here
        cols.setdefault(f.name, pa.nulls(n, f.type))
    arrays = [pa.array(cols[f.name], f.type) if not isinstance(cols[f.name], (pa.Array,
              pa.ChunkedArray)) else cols[f.name].cast(f.type) for f in CONJUNCTIONS]
    return pa.Table.from_arrays(arrays, schema=CONJUNCTIONS)


def _excluded_table(elements, init, usable, slices, params,
                    max_epoch_gap_days: float | None = None) -> pa.Table:
    ids = elements["object_id"].to_numpy()
    names = elements["object_name"].to_pylist() if "object_name" in elements.column_names \
        else [None] * len(ids)
    epoch = elements["epoch"].cast(pa.int64()).to_numpy()
    rows = []
    for q in np.flatnonzero(~usable):
        code = int(init[q]) if init[q] else 1
        reason = error_reason(code, at_init=True) if init[q] else \
            "no usable interpolation-error bound (orbit outside SGP4's domain)"
        if code == FAR_FROM_WINDOW:
            gap = float(window_gap_days(epoch[q:q + 1], params.start_ns, params.end_ns)[0])
            reason = (f"element set epoch {iso_z(int(epoch[q]))} is {gap:,.1f} days from the "
                      f"window (max_epoch_gap_days {max_epoch_gap_days:g})")
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

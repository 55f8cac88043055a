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

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from .. import markings as mk
from ..constants import NS_PER_DAY, NS_PER_S
from ..propagate import error_reason, init_errors, propagate_chunked, satrecs
from ..schema import CONJUNCTIONS, EXCLUDED
from ..timeutil import iso_z, jd_from_ns, to_ns
from .executors import run_local
from .slices import (ScreenParams, deep_space_pad_km, interpolation_pad_km, merge_slices,
                     ric_components, sgp4_state)

@dataclass
class ScreenResult:
    """A screening run: ``conjunctions`` (schema :data:`ssafuse.schema.CONJUNCTIONS`),
    ``excluded`` (objects left out, and why) and ``stats`` (counts, timings, parameters)."""

    conjunctions: pa.Table
    excluded: pa.Table
    stats: dict = field(default_factory=dict)


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
    ``distributed.Client`` (see :mod:`ssafuse.cluster`); the result is the same.

    Returns a :class:`ScreenResult`: ``conjunctions`` in the ``conjunctions`` schema, one row per
    close approach sorted by TCA, TCA and miss distance from SGP4 itself.
    """
    t_run = time.perf_counter()
    start_ns = to_ns(start, naive_is_utc=False)
    end_ns = start_ns + int(round(days * NS_PER_DAY))
    params = ScreenParams(start_ns, end_ns, float(threshold_km), float(knot_s), int(n_sub),
                          int(slice_knots))
    sats = satrecs(elements)
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
        from .executors import run_slices, slice_work

        work = slice_work(elements, params, pad=pad, primary=primary, usable=usable,
                          co_pairs=co_pairs)
        slices, dask_info = run_slices(dask, work, params.n_slices, progress)
        workers = dask_info["workers"]
    else:
        workers = max(1, min(workers or os.cpu_count() or 1, params.n_slices))
        slices = run_local(sats, params, workers, progress, pad=pad, primary=primary,
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
            e1, r1, v1 = sgp4_state(sats[a], jd0, fr0, t_s)
            e2, r2, v2 = sgp4_state(sats[b], jd0, fr0, t_s)
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
            _, r1, v1 = sgp4_state(sats[i[q]], jd0, fr0, t[q])
            _, r2, _ = sgp4_state(sats[j[q]], jd0, fr0, t[q])
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
        "parameters": {"start": iso_z(start_ns), "end": iso_z(end_ns),
                       "threshold_km": params.threshold_km, "knot_s": params.knot_s,
                       "n_sub": params.n_sub, "slice_knots": params.slice_knots,
                       "cell_km": params.cell, "primaries": list(primaries or [])},
    }
    return ScreenResult(table, excluded, stats)


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

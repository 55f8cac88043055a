"""Where the time slices run: local processes, or a Dask cluster.

**Local.** Slices run in this process (one worker) or on forked processes, which inherit the
``Satrec`` objects (they do not pickle); the results are put back in slice order.

**Dask.** The window's independent time slices (:func:`ssafuse.screening.slices.screen_slice`)
are the tasks. What they share (:class:`SliceWork`: the element columns ``sgp4init`` takes,
the per-object padding, primary and usable flags, the co-location candidates and the
parameters, ~90 bytes per object) is scattered once with ``broadcast=True``, so each worker
holds one copy and a task carries only its slice number and the key of that copy; a worker
builds its ``Satrec`` objects once per catalogue (cached by the content hash of the element
rows, :attr:`SliceWork.key`, so later runs on the same catalogue reuse them; ``Satrec`` does
not pickle). The slices come back in slice order and go through the same merge as a local
run, so an event found by two neighbouring slices is kept once and none is lost.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import uuid
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa

from ..constants import MU_KM3_S2
from ..propagate import SGP4_COLUMNS, satrecs
from .kernels import hermite_and_posteriori, interpolant_minima, pair_ranges
from .slices import ScreenParams, Slice, screen_slice


# -- local processes -------------------------------------------------------------------

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


def run_local(sats, params: ScreenParams, workers: int, progress, **shared) -> list[Slice]:
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


# -- Dask ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SliceWork:
    """What every slice of one screening run shares: shipped once to each worker."""

    key: str                 # SHA-256 of ``rows``: the worker's Satrec cache key
    rows: pa.Table           # the element columns sgp4init takes, one row per object
    params: ScreenParams
    pad: np.ndarray
    primary: np.ndarray
    usable: np.ndarray
    co_pairs: np.ndarray


def slice_work(elements: pa.Table, params: ScreenParams, *, pad, primary, usable,
               co_pairs) -> SliceWork:
    """The :class:`SliceWork` of one run: the element columns ``sgp4init`` takes, keyed by
    the SHA-256 of their Arrow IPC stream."""
    rows = elements.select(list(SGP4_COLUMNS)).combine_chunks()
    h = hashlib.sha256()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as w:
        w.write_table(rows)
    h.update(sink.getvalue())
    return SliceWork(h.hexdigest(), rows, params, pad, primary, usable, co_pairs)


#: Per worker process: Satrec lists by SliceWork.key (the last two catalogues), and how many
#: times a list was built (tests check one build per worker, not one per task).
_SATS: dict[str, list] = {}
_SATS_LOCK = threading.Lock()
BUILDS = {"count": 0}


def _satrecs_for(work: SliceWork) -> list:
    with _SATS_LOCK:
        sats = _SATS.get(work.key)
        if sats is None:
            sats = satrecs(work.rows)
            BUILDS["count"] += 1
            while len(_SATS) >= 2:
                _SATS.pop(next(iter(_SATS)))
            _SATS[work.key] = sats
        return sats


def _slice_task(work: SliceWork, slice_no: int):
    return screen_slice(_satrecs_for(work), work.params, slice_no, pad=work.pad,
                        primary=work.primary, usable=work.usable, co_pairs=work.co_pairs)


def run_slices(dask, work: SliceWork, n_slices: int,
               progress: Callable[[int, int], None] | None = None) -> tuple[list, dict]:
    """Every slice of a screening run as a Dask task. Returns the slices in slice order and
    ``{"dask": scheduler address, "workers": workers at the start}``."""
    # dask/distributed are optional: imported only when a run asks for Dask
    # (ssafuse.cluster imports distributed too)
    from distributed import as_completed
    from ..cluster import client_for

    with client_for(dask) as client:
        info = {"dask": client.scheduler.address,
                "workers": len(client.nthreads())}
        [shared] = client.scatter([work], broadcast=True)
        run = uuid.uuid4().hex[:12]
        futures = [client.submit(_slice_task, shared, s, key=f"ssafuse-slice-{run}-{s}")
                   for s in range(n_slices)]
        out: dict[int, object] = {}
        index = {f.key: s for s, f in enumerate(futures)}
        for done, (fut, sl) in enumerate(as_completed(futures, with_results=True), 1):
            out[index[fut.key]] = sl
            if progress:
                progress(done, n_slices)
        client.cancel([shared])
    return [out[s] for s in range(n_slices)], info

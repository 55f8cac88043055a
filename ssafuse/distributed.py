"""Scale-out on a Dask cluster: screening slices and feed files as Dask tasks.

Imported only when a caller asks for Dask (``screen(..., dask=...)``,
``Store.ingest(..., dask=...)``, ``--dask ADDRESS`` on the command line); nothing else in
ssafuse imports ``dask`` or ``distributed``.

``dask`` is one of:

* a ``distributed.Client`` (used as it is, left open);
* ``"local"`` or ``"local:N"``: a ``LocalCluster`` of N worker processes (default: every core),
  one thread each (python-sgp4 holds the GIL), started for the call and closed after it;
* a scheduler address, ``"tcp://host:8786"`` (what ``dask scheduler`` prints).

**Screening.** The window's independent time slices (:func:`ssafuse.screen.screen_slice`)
are the tasks. What they share (:class:`SliceWork`: the element columns ``sgp4init`` takes,
the per-object padding, primary and usable flags, the co-location candidates and the
parameters, ~90 bytes per object) is scattered once with ``broadcast=True``, so each worker
holds one copy and a task carries only its slice number and the key of that copy; a worker
builds its ``Satrec`` objects once per catalogue (cached by the content hash of the element
rows, :attr:`SliceWork.key`, so later runs on the same catalogue reuse them; ``Satrec`` does
not pickle). The slices come back in slice order and go
through the same :func:`ssafuse.screen.merge_slices` and co-location logic as a local run, so
an event found by two neighbouring slices is kept once and none is lost.

**Ingest.** Each feed file is one task that reads, parses and writes its own Parquet parts and
ledger entry into the store (:meth:`ssafuse.store.Store._ingest_file`, the local code itself),
returning its :class:`ssafuse.store.FileReport`; the caller writes the run's manifest once.
The files are hashed first (one task each) so that two copies of one file in a run are
ingested once, as in a local run, where the second finds the ledger entry of the first. A task
lost with its worker is run again by the scheduler: an ingest removes the parts a killed ingest
of the same file left and writes its ledger entry last, so a retry neither loses nor doubles
rows. The store must be one every worker reaches: a shared path or an ``s3://`` URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from .propagate import _ROW_COLUMNS, satrecs_exact


def _n_local(spec: str) -> int:
    _, _, n = spec.partition(":")
    try:
        return int(n) if n else (os.cpu_count() or 1)
    except ValueError:
        raise ValueError(f"a local Dask cluster is 'local' or 'local:N', got {spec!r}") from None


@contextlib.contextmanager
def client_for(dask):
    """A ``distributed.Client`` for ``dask`` (see the module docstring), closed on exit
    when this function opened it."""
    from distributed import Client, LocalCluster

    if isinstance(dask, Client):
        yield dask
        return
    spec = str(dask)
    if spec == "local" or spec.startswith("local:"):
        with LocalCluster(n_workers=_n_local(spec), threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            yield client
        return
    with Client(spec) as client:
        yield client


# -- screening -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SliceWork:
    """What every slice of one screening run shares: shipped once to each worker."""

    key: str                 # SHA-256 of ``rows``: the worker's Satrec cache key
    rows: pa.Table           # the element columns sgp4init takes, one row per object
    params: object           # ssafuse.screen.ScreenParams
    pad: np.ndarray
    primary: np.ndarray
    usable: np.ndarray
    co_pairs: np.ndarray


def slice_work(elements: pa.Table, params, *, pad, primary, usable, co_pairs) -> SliceWork:
    rows = elements.select(list(_ROW_COLUMNS)).combine_chunks()
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
            sats = satrecs_exact(work.rows)
            BUILDS["count"] += 1
            while len(_SATS) >= 2:
                _SATS.pop(next(iter(_SATS)))
            _SATS[work.key] = sats
        return sats


def _slice_task(work: SliceWork, slice_no: int):
    from .screen import screen_slice

    return screen_slice(_satrecs_for(work), work.params, slice_no, pad=work.pad,
                        primary=work.primary, usable=work.usable, co_pairs=work.co_pairs)


def run_slices(dask, work: SliceWork, n_slices: int,
               progress: Callable[[int, int], None] | None = None) -> tuple[list, dict]:
    """Every slice of a screening run as a Dask task. Returns the slices in slice order and
    ``{"dask": scheduler address, "workers": workers at the start}``."""
    from distributed import as_completed

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


# -- ingest --------------------------------------------------------------------------------

def _sha_or_none(uri: str) -> str | None:
    from .ingest import sha256_file

    try:
        return sha256_file(uri)
    except OSError:
        return None  # the ingest task reports it, as a local run does


def _ingest_task(store, uri: str, sha: str | None, kwargs: dict):
    return store._ingest_file(uri, sha=sha, **kwargs)


def ingest_files(dask, store, uris: Sequence[str], *, source: str, format: str | None,
                 marking: str, now_ns: int, day: str, progress=None) -> list:
    """Ingest ``uris`` into ``store`` on a Dask cluster, one task per file. Returns the
    :class:`ssafuse.store.FileReport` of each file in the order given (``progress(report)``
    is called in that order), the same reports a local run gives."""
    kwargs = dict(source=source, format=format, marking=marking, now_ns=now_ns, day=day)
    uris = list(uris)
    with client_for(dask) as client:
        shas = client.gather(client.map(_sha_or_none, uris, pure=False))
        seen: set[str] = set()
        futures = {}
        for k, (uri, sha) in enumerate(zip(uris, shas)):
            if sha is not None and sha in seen:
                continue  # a second copy in this run: after the first, below
            if sha is not None:
                seen.add(sha)
            futures[k] = client.submit(_ingest_task, store, uri, sha, kwargs, pure=False)
        reports = []
        for k, uri in enumerate(uris):
            if k in futures:
                rep = futures[k].result()
            else:  # the first copy's ledger entry answers, as in a local run
                rep = store._ingest_file(uri, sha=shas[k], **kwargs)
            reports.append(rep)
            if progress is not None:
                progress(rep)
    return reports

"""Dask, for whoever asks for it: a ``distributed.Client`` from what the caller names.

Imported only when a caller asks for Dask (``screen(..., dask=...)``, ``ingest(...,
dask=...)``, ``--dask ADDRESS`` on the command line); nothing else in ssafuse imports ``dask``
or ``distributed``. ``dask`` is one of:

* a ``distributed.Client`` (used as it is, left open);
* ``"local"`` or ``"local:N"``: a ``LocalCluster`` of N worker processes (default: every core),
  one thread each (python-sgp4 holds the GIL), started for the call and closed after it;
* a scheduler address, ``"tcp://host:8786"`` (what ``dask scheduler`` prints).
"""

from __future__ import annotations

import contextlib
import os

from distributed import Client, LocalCluster

__all__ = ["client_for"]


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

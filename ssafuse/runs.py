"""Run folders: where the nightly job's runs live in a store, and what the stages that read
a run share about them.

Each run is one folder, ``STORE/runs/<run id>/`` (its files are listed in
:mod:`ssafuse.nightly`); a run is finished when its ``manifest.json`` exists (written last).
Events are named across the report, the CDM links and the exports by :func:`event_keys`.

On a store at an fsspec URL, the nightly job stages each run folder locally and uploads it
(:mod:`ssafuse.nightly`); :func:`previous_run` looks through the store's filesystem there
(``fs=``). :func:`find_run` (``ssafuse report`` / ``ssafuse export --store``) reads local
folders only: a run on object storage is not looked up by id.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
from pathlib import Path

import pyarrow as pa

from .timeutil import parse_iso

__all__ = ["runs_dir", "run_folder", "is_finished", "event_keys", "previous_run", "find_run"]


def runs_dir(store_root: str | os.PathLike) -> Path:
    """The folder holding every run of the store: ``STORE/runs``."""
    return Path(store_root) / "runs"


def run_folder(store_root: str | os.PathLike, run_id: str) -> Path:
    """The folder of run ``run_id``: ``STORE/runs/<run id>``."""
    return runs_dir(store_root) / run_id


def is_finished(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` finished: its manifest (written last) exists."""
    return (run_dir / "manifest.json").exists()


def event_keys(conjunctions: pa.Table) -> list[str]:
    """A stable key per conjunction row: ``<id1>-<id2>-<TCA ns>``."""
    a = conjunctions["object_id_1"].to_pylist()
    b = conjunctions["object_id_2"].to_pylist()
    t = conjunctions["tca"].cast(pa.int64()).to_pylist()
    return [f"{x}-{y}-{z}" for x, y, z in zip(a, b, t)]


def previous_run(store_root: Path | str, this_id: str, start: dt.datetime, *,
                 fs=None) -> Path | str | None:
    """The latest finished run of the store whose window starts before ``start``: a folder,
    or, given the fsspec filesystem ``fs`` of a store at a URL (``Store.fs``), the run's
    URL (``<store root>/runs/<run id>``)."""
    if fs is not None:
        return _previous_remote(fs, str(store_root).rstrip("/"), this_id, start)
    best, best_start = None, None
    runs = runs_dir(store_root)
    if not runs.exists():
        return None
    for d in runs.iterdir():
        if d.name == this_id or not is_finished(d) \
                or not (d / "conjunctions.parquet").exists():
            continue
        try:
            info = json.loads((d / "run.json").read_text())
            s = parse_iso(info["window_start"])
        except (OSError, ValueError, KeyError):
            continue
        if s < start and (best_start is None or s > best_start
                          or (s == best_start and d.name > best.name)):
            best, best_start = d, s
    return best


def _previous_remote(fs, root: str, this_id: str, start: dt.datetime) -> str | None:
    """:func:`previous_run` through an fsspec filesystem: the finished runs (a manifest and
    conjunctions) are listed once, and their ``run.json`` read in one batch."""
    runs = posixpath.join(root, "runs")

    def run_ids(name: str) -> set[str]:
        return {posixpath.basename(posixpath.dirname(p))
                for p in fs.glob(posixpath.join(runs, "*", name))}

    done = sorted((run_ids("manifest.json") & run_ids("conjunctions.parquet")) - {this_id})
    if not done:
        return None
    infos = fs.cat([posixpath.join(runs, r, "run.json") for r in done], on_error="omit")
    best, best_start = None, None
    for url, raw in infos.items():
        try:
            s = parse_iso(json.loads(raw)["window_start"])
        except (ValueError, KeyError, TypeError):
            continue
        name = posixpath.basename(posixpath.dirname(url))  # keys: paths, maybe stripped
        if s < start and (best_start is None or (s, name) > (best_start, best)):
            best, best_start = name, s
    return posixpath.join(runs, best) if best else None


def find_run(run: str, store: str | os.PathLike | None = None) -> Path:
    """A run folder from ``run``: a path to it, a run id in ``store``, or ``latest``."""
    p = Path(run)
    if (p / "run.json").exists():
        return p
    if store is None:
        raise FileNotFoundError(f"{run} is not a run folder (give --store to look a run id up)")
    runs = runs_dir(store)
    if run == "latest":
        done = [d for d in runs.iterdir() if is_finished(d)] if runs.exists() else []
        if not done:
            raise FileNotFoundError(f"no finished run in {runs}")
        return max(done, key=lambda d: (d / "manifest.json").stat().st_mtime)
    if (runs / run / "run.json").exists():
        return runs / run
    raise FileNotFoundError(f"no run {run!r} in {runs}")

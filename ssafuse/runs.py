"""Run folders: where the nightly job's runs live in a store, and what the stages that read
a run share about them.

Each run is one folder, ``STORE/runs/<run id>/`` (its files are listed in
:mod:`ssafuse.nightly`); a run is finished when its ``manifest.json`` exists (written last).
Events are named across the report, the CDM links and the exports by :func:`event_keys`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
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


def previous_run(store_root: Path, this_id: str, start: dt.datetime) -> Path | None:
    """The latest finished run of the store whose window starts before ``start``."""
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

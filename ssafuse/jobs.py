"""The one-call jobs behind ``ssafuse catalogue`` and ``ssafuse screen``, for notebooks too.

Each takes a store and settings, runs the stages in order and writes what the command writes;
nothing here prints or reads the clock unless the caller leaves ``now`` out.

>>> cat = update_catalogue(Store("store"))                                # doctest: +SKIP
>>> res = screen_inputs(["cat.tle"], start="2026-03-09T18:00:00Z", days=1,
...                     out="conj.parquet")                                # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa

from .assessment import assess, write_cdms
from .catalogue import build_catalogue
from .errors import SsafuseError, UnknownFormatError
from .files import expand_inputs, write_parquet
from .formats.registry import known_extension
from .records import read_file
from .report import listed
from .runs import event_keys
from .screening import ScreenResult, screen
from .store import Store

__all__ = ["update_catalogue", "screen_inputs", "assess_events", "ScreenRun", "NothingToScreen"]


class NothingToScreen(SsafuseError):
    """No element set could be read from the inputs, or the store holds no catalogue."""


def update_catalogue(store: Store, *, precedence: Sequence[str] = (), disagree_km: float = 5.0,
                     out: str | os.PathLike | None = None) -> tuple[pa.Table, Path | str]:
    """Build the catalogue from every element set in ``store`` (:func:`build_catalogue`) and
    write it to ``STORE/catalogue/catalogue.parquet`` (and ``out`` when given). Returns
    ``(catalogue, where it was written in the store)``."""
    cat = build_catalogue(store.table("elements"), precedence=list(precedence),
                          disagree_km=disagree_km)
    path = store.write("catalogue", cat, "catalogue.parquet")
    if out:
        write_parquet(Path(out), cat)
    return cat, path


@dataclass
class ScreenRun:
    """What :func:`screen_inputs` did: the assessed screening, the files read (and refused,
    each with its reason), and where the results were written."""

    result: ScreenResult
    inputs: list[dict] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


def _elements_from_files(inputs: Iterable[str | os.PathLike], on_refused,
                         formats_dirs) -> tuple[pa.Table, list, list]:
    """One element set per object from element files, chosen as the catalogue chooses
    (several files may hold the same object); with the files read and those refused."""
    tables, read, refused = [], [], []
    for uri in expand_inputs(inputs, accept=known_extension(formats_dirs)):
        try:
            res = read_file(uri, source="local", formats_dirs=formats_dirs)
        except (OSError, UnknownFormatError) as e:
            refused.append((uri, str(e)))
            if on_refused is not None:
                on_refused(uri, str(e))
            continue
        tables.append(res.elements)
        read.append({"uri": uri, "format": res.format, "sha256": res.sha256,
                     "read": res.records_read, "accepted": res.accepted,
                     "rejected": res.rejected})
    if not tables:
        raise NothingToScreen("no element sets could be read from INPUT")
    return build_catalogue(pa.concat_tables(tables)), read, refused


def screen_inputs(inputs: Sequence[str | os.PathLike] = (), store: Store | None = None, *,
                  start, days: float = 7.0, threshold_km: float = 5.0,
                  primaries: Sequence[int] | None = None, workers: int | None = None,
                  dask=None, hbr_m: float | None = None, hbr_table=None,
                  out: str | os.PathLike | None = None, now: dt.datetime | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  on_refused: Callable[[str, str], None] | None = None,
                  formats_dirs=None) -> ScreenRun:
    """Screen element files (``inputs``: files, folders, globs) or, without them, the
    store's catalogue; assess every event (max Pc, and Pc where the store holds a CDM of the
    pair); write the conjunctions to ``out`` and/or to the store with a ``screen`` manifest.

    ``start``: window start (datetime, ISO-8601 or ns); the rest as :func:`ssafuse.screen`
    and :func:`ssafuse.assess`; ``on_refused(uri, reason)`` hears of each input file that
    could not be read (the others are screened). Raises :class:`SsafuseError` when nothing
    can be screened; ``formats_dirs``: folders of the caller's own feed descriptions."""
    now = now or dt.datetime.now(dt.timezone.utc)
    started = time.perf_counter()
    if inputs:
        elements, read, refused = _elements_from_files(inputs, on_refused, formats_dirs)
    else:
        elements, refused = store.table("catalogue"), []
        read = [{"uri": str(store.path("catalogue")), "accepted": elements.num_rows}]
        if elements.num_rows == 0:
            raise NothingToScreen(f"the store {store.root} has no catalogue: run "
                                  "`ssafuse catalogue`")
    result = screen(elements, start, days=days, threshold_km=threshold_km,
                    primaries=list(primaries or []) or None, workers=workers,
                    progress=progress, dask=dask)
    stats = result.stats
    stats["parameters"] = dict(stats["parameters"], hbr_m=hbr_m, hbr_table=hbr_table)
    result.conjunctions = assess(result.conjunctions, hbr_m=hbr_m, hbr_table=hbr_table,
                                 elements=elements,
                                 cdms=store.table("cdms") if store is not None else None)
    run = ScreenRun(result, read, refused)
    if out:
        write_parquet(Path(out), result.conjunctions)
        run.written.append(str(out))
    if store is not None:
        path, manifest = store.write_screening(
            result.conjunctions, excluded=result.excluded, inputs=run.inputs,
            parameters=stats["parameters"], now=now, started=started,
            counts={k: v for k, v in stats.items() if k != "parameters"})
        run.written.append(f"{path} (manifest {manifest})")
    return run


def assess_events(conjunctions: pa.Table, catalogue: pa.Table, pc_settings: dict,
                  cdm_dir: Path, *, creation_date: dt.datetime, cdms: pa.Table | None = None,
                  primaries=(), top: int = 20,
                  assessed: pa.Table | None = None) -> tuple[pa.Table, dict[str, str]]:
    """Fill ``pc`` / ``max_pc`` (:func:`ssafuse.assessment.assess`) and write CDMs, as the
    nightly run and each partner export do:
    ``pc.write_cdms`` ``"listed"`` (default: one per event the report lists,
    :func:`ssafuse.report.listed`), ``"all"`` / ``true`` (one per conjunction) or ``"none"`` /
    ``false``; each CDM in ``pc.cdm_format`` (``kvn``, ``xml``) and ``pc.cdm_version``
    (``"1.0"``, 508.0-B-1, default; ``"2.0"``). ``assessed``: rows already assessed with the
    same settings and CDMs, taken as they are for the events they hold (by
    :func:`ssafuse.runs.event_keys`).

    Returns ``(conjunctions, CDM file relative to the run folder by event key)``. CDM files
    of an earlier attempt that this one did not write are removed, so the folder holds
    exactly this run's CDMs."""
    model = pc_settings.get("covariance_model")
    model = {k: tuple(v) for k, v in model.items()} if model else None
    have = dict(zip(event_keys(assessed), range(assessed.num_rows))) \
        if assessed is not None and assessed.num_rows else {}
    hits = [have.get(k) for k in event_keys(conjunctions)] if have else \
        [None] * conjunctions.num_rows
    todo = [q for q, h in enumerate(hits) if h is None]
    out = assess(conjunctions.take(pa.array(todo, pa.int64())) if have else conjunctions,
                 hbr_m=pc_settings.get("hbr_m"), hbr_table=pc_settings.get("hbr_table"),
                 elements=catalogue, cdms=cdms, covariance_model=model)
    if have:  # the reused rows and the assessed ones, back into the order given
        done = [q for q, h in enumerate(hits) if h is not None]
        both = pa.concat_tables([assessed.take(pa.array([hits[q] for q in done], pa.int64()))
                                 .cast(out.schema), out])
        out = both.take(pa.array(np.argsort(np.array(done + todo, np.int64))))
    links: dict[str, str] = {}
    which = pc_settings.get("write_cdms", "listed")
    if which not in (False, "none") and out.num_rows:
        subset = out
        if which == "listed":
            subset = out.take(pa.array(listed(out, primaries, int(top)), pa.int64()))
        paths = write_cdms(subset, catalogue, cdm_dir, creation_date=creation_date,
                           fmt=pc_settings.get("cdm_format", "kvn"), covariance_model=model,
                           version=pc_settings.get("cdm_version", "1.0"))
        for key, p in zip(event_keys(subset), paths):
            if p:
                links[key] = Path(os.path.relpath(p, cdm_dir.parent)).as_posix()
    if cdm_dir.exists():
        keep = {cdm_dir.parent / rel for rel in links.values()}
        for p in cdm_dir.iterdir():
            if p.is_file() and p not in keep:
                p.unlink()
    return out, links

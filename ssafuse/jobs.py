"""The one-call jobs behind ``ssafuse catalogue`` and ``ssafuse screen``, for notebooks too.

Each takes a store and settings, runs the stages in order and writes what the command writes;
nothing here prints or reads the clock unless the caller leaves ``now`` out.

>>> cat = update_catalogue(Store("store"))                                # doctest: +SKIP
>>> res = screen_inputs(["cat.tle"], start="2026-03-09T18:00:00Z", days=1,
...                     out="conj.parquet")                                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .assessment import assess, cdm_files
from .attached import attached_mask, repeats
from .catalogue import build_catalogue
from .epochs import DISAGREE_MAX_GAP_DAYS, MAX_EPOCH_GAP_DAYS
from .errors import SsafuseError, UnknownFormatError
from .files import atomic_write_bytes, expand_inputs, write_json, write_parquet
from .formats.registry import known_extension
from .records import read_file
from .report import listed
from .runs import event_keys
from .screening import ScreenResult, screen
from .store import Store
from .writers import CDM_LISTING, read_listing, remove_stale

__all__ = ["update_catalogue", "screen_inputs", "assess_events", "AssessedEvents", "ScreenRun",
           "NothingToScreen"]


class NothingToScreen(SsafuseError):
    """No element set could be read from the inputs, or the store holds no catalogue."""


def update_catalogue(store: Store, *, precedence: Sequence[str] = (), disagree_km: float = 5.0,
                     disagree_max_gap_days: float = DISAGREE_MAX_GAP_DAYS,
                     out: str | os.PathLike | None = None) -> tuple[pa.Table, Path | str]:
    """Build the catalogue from every element set in ``store`` (:func:`build_catalogue`) and
    write it to ``STORE/catalogue/catalogue.parquet`` (and ``out`` when given). Returns
    ``(catalogue, where it was written in the store)``."""
    cat = build_catalogue(store.table("elements"), precedence=list(precedence),
                          disagree_km=disagree_km, disagree_max_gap_days=disagree_max_gap_days)
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
                  formats_dirs=None,
                  max_epoch_gap_days: float | None = MAX_EPOCH_GAP_DAYS) -> ScreenRun:
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
                    progress=progress, dask=dask, max_epoch_gap_days=max_epoch_gap_days)
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


@dataclass
class AssessedEvents:
    """What :func:`assess_events` did: the assessed ``conjunctions``, ``links`` (CDM file
    relative to the run folder, by event key :func:`ssafuse.runs.event_keys`) and
    ``refused`` (event key -> why the strict CDM writer refused its CDM: no file, the event
    keeps its Pc). Unpacks as ``conjunctions, links``, as it returned before."""

    conjunctions: pa.Table
    links: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def __iter__(self):
        return iter((self.conjunctions, self.links))


def assess_events(conjunctions: pa.Table, catalogue: pa.Table, pc_settings: dict,
                  cdm_dir: Path, *, creation_date: dt.datetime, cdms: pa.Table | None = None,
                  primaries=(), top: int = 20,
                  assessed: pa.Table | None = None) -> AssessedEvents:
    """Fill ``pc`` / ``max_pc`` (:func:`ssafuse.assessment.assess`) and write CDMs, as the
    nightly run and each partner export do:
    ``pc.write_cdms`` ``"listed"`` (default: one per event the report lists,
    :func:`ssafuse.report.listed`), ``"all"`` / ``true`` (one per conjunction; attached
    objects, :mod:`ssafuse.attached`, are none) or ``"none"`` /
    ``false``; each CDM in ``pc.cdm_format`` (``kvn``, ``xml``) and ``pc.cdm_version``
    (``"1.0"``, 508.0-B-1, default; ``"2.0"``). ``assessed``: rows already assessed with the
    same settings and CDMs, taken as they are for the events they hold (by
    :func:`ssafuse.runs.event_keys`).

    Returns :class:`AssessedEvents` (``conj, links = assess_events(...)`` still works). Every
    event gets its Pc / max Pc whatever its text; a CDM the strict writer refuses (an object
    name holding a line break, say) is not written and is in ``refused``, the others are.
    The CDM folder keeps a listing of what it wrote (:data:`ssafuse.writers.CDM_LISTING`):
    CDM files an earlier attempt listed and this one does not write are removed, so the
    folder holds this run's CDMs and, untouched, whatever else someone put there."""
    cdm_dir = Path(cdm_dir)
    model = pc_settings.get("covariance_model")
    model = {k: tuple(v) for k, v in model.items()} if model else None
    out = _assess_rows(conjunctions, catalogue, pc_settings, cdms, assessed, model)
    which = pc_settings.get("write_cdms", "listed")
    subset = out.slice(0, 0)
    if which not in (False, "none") and out.num_rows:
        # attached objects (docked to a station) are no conjunction: no CDM, even with "all"
        # and a pass by a complex once (its members share one element set)
        keep = ~attached_mask(out) & ~repeats(out)
        subset = out.filter(pa.array(keep))
        if which == "listed":
            subset = subset.take(pa.array(listed(subset, primaries, int(top)), pa.int64()))
    files, why = cdm_files(subset, catalogue, creation_date=creation_date,
                           fmt=pc_settings.get("cdm_format", "kvn"), covariance_model=model,
                           version=pc_settings.get("cdm_version", "1.0")) \
        if subset.num_rows else ([], {})
    keys = event_keys(subset)
    written = {k: f for k, f in zip(keys, files) if f is not None}
    _replace_cdms(cdm_dir, list(written.values()))
    links = {k: Path(os.path.relpath(cdm_dir / f[0], cdm_dir.parent)).as_posix()
             for k, f in written.items()}
    return AssessedEvents(out, links, {keys[i]: reason for i, reason in why.items()})


def _assess_rows(conjunctions: pa.Table, catalogue: pa.Table, pc_settings: dict, cdms,
                 assessed: pa.Table | None, model) -> pa.Table:
    """:func:`ssafuse.assessment.assess` of the rows ``assessed`` does not already hold,
    with those it holds, in the order given."""
    # rows of a run made before attached objects and SOCRATES's max Pc (null there) are
    # assessed again, so that one export never mixes two max-Pc models
    if assessed is not None and "attached" in assessed.column_names:
        assessed = assessed.filter(pc.is_valid(assessed["attached"]))
    have = dict(zip(event_keys(assessed), range(assessed.num_rows))) \
        if assessed is not None and assessed.num_rows and \
        "attached" in assessed.column_names else {}
    hits = [have.get(k) for k in event_keys(conjunctions)] if have else \
        [None] * conjunctions.num_rows
    todo = [q for q, h in enumerate(hits) if h is None]
    out = assess(conjunctions.take(pa.array(todo, pa.int64())) if have else conjunctions,
                 hbr_m=pc_settings.get("hbr_m"), hbr_table=pc_settings.get("hbr_table"),
                 elements=catalogue, cdms=cdms, covariance_model=model,
                 max_pc_method=pc_settings.get("max_pc_method", "socrates"),
                 complexes=pc_settings.get("complexes"))
    if have:  # the reused rows and the assessed ones, back into the order given
        done = [q for q, h in enumerate(hits) if h is not None]
        both = pa.concat_tables([assessed.take(pa.array([hits[q] for q in done], pa.int64()))
                                 .cast(out.schema), out])
        out = both.take(pa.array(np.argsort(np.array(done + todo, np.int64))))
    return out


def previous_cdms(cdm_dir: Path) -> list[str]:
    """The CDM files an earlier attempt wrote into ``cdm_dir``: its listing
    (:data:`ssafuse.writers.CDM_LISTING`), else, for a folder written before listings were
    kept, the ``cdm_links`` of the ``run.json`` beside it."""
    listing = cdm_dir / CDM_LISTING
    if listing.exists():
        return read_listing(listing)
    try:
        links = json.loads((cdm_dir.parent / "run.json").read_text()).get("cdm_links") or {}
    except (OSError, ValueError, AttributeError):
        return []
    parts = [PurePosixPath(v).parts for v in links.values() if isinstance(v, str)] \
        if isinstance(links, dict) else []
    return [p[1] for p in parts if len(p) == 2 and p[0] == cdm_dir.name]


def _replace_cdms(cdm_dir: Path, files: list[tuple[str, bytes]]) -> None:
    """Write ``files`` (name, bytes) into ``cdm_dir`` and remove the CDMs an earlier attempt
    listed that are not among them; nothing else. The listing names every file of ours
    before it is written, so a killed attempt leaves none unlisted."""
    previous = previous_cdms(cdm_dir)
    names = sorted({name for name, _ in files})
    listing = cdm_dir / CDM_LISTING
    if set(names) - set(previous):
        write_json(listing, {"written": sorted(set(previous) | set(names))})
    for name, data in files:
        atomic_write_bytes(cdm_dir / name, data)
    remove_stale(cdm_dir, previous, names)
    if names:
        write_json(listing, {"written": names})
    elif listing.exists() or previous:
        listing.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # only when empty: someone else's files keep it
            cdm_dir.rmdir()

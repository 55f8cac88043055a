"""Partner exports: each partner's tear-line view of a run (:mod:`ssafuse.tearline`).

``export_run(run_dir, "GBR", out)`` writes, from a finished run (:mod:`ssafuse.nightly`)::

    out/conjunctions.parquet   the partner's conjunctions, with Pc (schema ``conjunctions``)
    out/catalogue.parquet      the partner's catalogue (schema ``catalogue``)
    out/excluded.parquet       objects of its catalogue that could not be screened
    out/cdm/                   CDMs of the events its report lists (format "cdm")
    out/catalogue.omm.xml ...  the catalogue and conjunctions in each other format asked for
                               (:mod:`ssafuse.writers`: OMM, TLE, CSV, SOCRATES CSV)
    out/run.json               what its report is built from
    out/report.html            its report
    out/summary.txt            its plain-text summary
    out/export.json            partner, run, the rule, and counts: exported, recomputed and
                               withheld per table; ``written``: every file above it wrote

``out`` may be any folder: an export writes the files above and removes only files the
previous export there listed in its ``written`` (and does not write again), never anything
else, a user's files and subfolders included (:func:`ssafuse.writers.remove_stale`).

Everything in it is computed from the records releasable to the partner only: its catalogue
holds, per object, the best element set among those it may receive; its conjunctions are what
a run over that catalogue gives (the full run's events between objects whose element set is
the same, the rest screened again); Pc uses the CDMs it may receive. So the export holds
everything that data supports and nothing derived from a record it may not see. Every record
keeps its own marking (``classification``, ``releasable_to``, ``marking`` columns). What was
withheld is counted, never described: ``withheld.conjunctions`` counts the full run's events
not released as they are, ``recomputed.conjunctions`` the events computed again for the
partner.

**The release rule** (:func:`ssafuse.markings.exportable`): a record goes to partner ``CODE`` when

* its releasability admits ``CODE`` (:func:`ssafuse.markings.releasable`: ``CODE`` listed, or
  inside a listed tetragraph such as FVEY), or
* it states no releasability caveat at all **and** it is UNCLASSIFIED.

So ``NOFORN`` (an empty list) is never exported, and a classified record without a
``REL TO`` list is withheld: classified information goes to a foreign partner only by an
explicit release decision, which only a ``REL TO`` records. Dissemination controls other than
NOFORN (FOUO, ORCON, ...) are kept in the ``marking`` text and not interpreted. ssafuse is
unclassified software: this rule honours markings as metadata; it is not a security boundary.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import markings as mk
from .errors import SsafuseError
from .files import write_json, write_parquet
from .jobs import assess_events
from .report import write_report
from .runs import event_keys
from .schema import CATALOGUE, CONJUNCTIONS, ELEMENTS, EXCLUDED, conform
from .store import Store
from .tearline import PartnerView, partner_views
from .timeutil import parse_iso
from .writers import (CDM_LISTING, DEFAULT_EXPORT_FORMATS, check_formats, files_of,
                      remove_stale, write_formats)

_CODE = re.compile(r"^[A-Z]{3,4}$")
#: The keys of a run's ``run.json`` a partner's export keeps (its report needs them).
_SHARED_RUN_INFO = ("run_id", "created", "window_start", "window_end", "days", "threshold_km",
                    "primaries", "report", "previous_run")


def check_code(code: str) -> str:
    if not isinstance(code, str) or not _CODE.match(code):
        raise ValueError(f"a partner is a country trigraph or tetragraph such as 'GBR', "
                         f"got {code!r}")
    return code


@dataclass
class ExportResult:
    """What one export wrote: counts per table, exported, recomputed for the partner and
    withheld, and the report's overall marking."""

    release_to: str
    out_dir: Path
    exported: dict = field(default_factory=dict)
    withheld: dict = field(default_factory=dict)
    recomputed: dict = field(default_factory=dict)
    marking: str = ""
    #: the other partners that received the same element sets (the operator's to know: it
    #: is not written into this partner's export)
    shared_view_with: list = field(default_factory=list)
    #: per file written in a format other than Parquet and CDM (:func:`ssafuse.writers.
    #: write_formats`): its format, records written, records refused and why
    files: dict = field(default_factory=dict)
    #: ``{"cdms": {event key: why}}``: CDMs of the partner's events the strict writer refused
    #: (:func:`ssafuse.jobs.assess_events`); those events keep their Pc
    refused: dict = field(default_factory=dict)


def export_run(run_dir: str | os.PathLike, code: str, out_dir: str | os.PathLike, *,
               with_report: bool = True, workers: int | None = None,
               dask=None, formats=None) -> ExportResult:
    """Write partner ``code``'s tear-line export of the finished run in ``run_dir`` to
    ``out_dir`` (``with_report=False``: no report). See :func:`export_partners`."""
    return export_partners(run_dir, {code: out_dir}, with_report=with_report,
                           workers=workers, dask=dask, formats=formats)[code]


def export_partners(run_dir: str | os.PathLike, partners: dict, *, with_report: bool = True,
                    workers: int | None = None, dask=None, formats=None,
                    store: Store | None = None) -> dict[str, ExportResult]:
    """Write each partner's export (``partners``: ``{code: out_dir}``) of the finished run in
    ``run_dir``, a folder ``STORE/runs/<run id>`` whose store holds the element sets and CDMs
    it was made from. Partners that may receive the same element sets share one computation
    (:func:`ssafuse.tearline.partner_views`); ``workers`` / ``dask`` run any screening
    again as :func:`ssafuse.screen` does. ``formats``: what each export holds
    (:data:`ssafuse.writers.EXPORT_FORMATS`; default: the run's ``[exports] formats``).
    ``store``: the run's store when ``run_dir`` is not inside it (the local working copy of
    a run on a store at a URL); default: the store the folder sits in."""
    for code in partners:
        check_code(code)
    run_dir = Path(run_dir)
    if not (run_dir / "conjunctions.parquet").exists():
        raise FileNotFoundError(f"{run_dir} holds no finished run (no conjunctions.parquet)")
    info = json.loads((run_dir / "run.json").read_text())
    settings = info.get("tearline")
    if not settings:
        raise SsafuseError(f"run {info.get('run_id')} predates tear-line exports (its run.json "
                           "has no 'tearline' settings): run it again to export it")
    _check_table(info)
    formats = check_formats(settings.get("formats", DEFAULT_EXPORT_FORMATS)
                            if formats is None else formats)
    store = store if store is not None else Store(runs_dir_store(run_dir))
    elements = run_elements(store, settings)
    views = partner_views(
        elements, list(partners), catalogue=_read(run_dir, "catalogue.parquet", CATALOGUE),
        screened=_read(run_dir, "screened.parquet", CONJUNCTIONS),
        excluded=_read(run_dir, "excluded.parquet", EXCLUDED),
        start=info["window_start"], days=float(info["days"]),
        threshold_km=float(info["threshold_km"]), primaries=settings.get("screen_primaries", []),
        precedence=settings.get("precedence", []),
        disagree_km=float(settings.get("disagree_km", 5.0)), workers=workers, dask=dask,
        # a run made before the epoch policy had no limits: its exports keep none
        epoch_settings={"max_epoch_gap_days": settings.get("max_epoch_gap_days"),
                        "disagree_max_gap_days": settings.get("disagree_max_gap_days",
                                                              float("inf"))})
    cdms = store.table("cdms")
    assessed = _read(run_dir, "conjunctions.parquet", CONJUNCTIONS)
    out = {}
    for code, where in partners.items():
        mask = np.array(mk.releasable_mask(cdms, code), bool) if cdms.num_rows \
            else np.zeros(0, bool)
        mine, hidden = cdms.filter(pa.array(mask)), cdms.filter(pa.array(~mask))
        out[code] = _export_view(run_dir, info, views[code], code, Path(where), mine,
                                 _reusable_assessed(assessed, views[code], code, hidden),
                                 with_report, formats)
    return out


def _check_table(info: dict) -> None:
    """A run's exports read markings with the equivalence table the run read them with
    (its groups say who is in FVEY, NATO ...): refuse when the active one differs."""
    settings = info["tearline"]
    want, have = settings.get("equivalences_sha256"), mk.active_equivalences()
    if want and want != have.digest:
        raise SsafuseError(
            f"run {info.get('run_id')} read markings with the equivalence table "
            f"{settings.get('equivalences')} (sha256 {want[:12]}...), and the table in use "
            f"now ({have.source}, {have.digest[:12]}...) reads them differently: export it "
            f"with --markings naming the run's table")


def runs_dir_store(run_dir: Path) -> Path:
    """The store a run folder belongs to: ``STORE/runs/<run id>`` -> ``STORE``."""
    return run_dir.resolve().parent.parent


def run_elements(store: Store, settings: dict) -> pa.Table:
    """The element sets a run's catalogue was built from: the store's, ingested up to the
    run's ``elements_through`` (its newest ``ingested_at``)."""
    through = settings.get("elements_through")
    if through is None:
        return store.table("elements")
    ts = pa.scalar(parse_iso(through), ELEMENTS.field("ingested_at").type)
    return store.table("elements", filter=pc.field("ingested_at") <= ts)


def _read(run_dir: Path, name: str, schema: pa.Schema) -> pa.Table:
    path = run_dir / name
    # conform: a run written before a column was added still exports
    return conform(pq.read_table(path), schema) if path.exists() else schema.empty_table()


def _export_view(run_dir: Path, info: dict, view: PartnerView, code: str, out_dir: Path,
                 cdms: pa.Table, assessed: pa.Table, with_report: bool,
                 formats: tuple[str, ...]) -> ExportResult:
    """Assess the view's events (Pc from the partner's CDMs; ``assessed``: rows of the full
    run taken as they are), write its CDMs, tables, the other ``formats``, ``run.json``,
    report and ``export.json``."""
    settings = info["tearline"]
    report = info.get("report") or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = _list_ahead(out_dir, _planned(formats, with_report))
    created = parse_iso(info["created"])
    pc_settings = dict(settings.get("pc") or {})
    if "cdm" not in formats:
        pc_settings["write_cdms"] = "none"
    done = assess_events(view.screened, view.catalogue, pc_settings, out_dir / "cdm",
                         creation_date=created, cdms=cdms,
                         primaries=info.get("primaries") or [], top=report.get("top", 20),
                         assessed=assessed)
    conj, links = done
    conj, leaked = mk.split(conj, code)  # a safety net: nothing above may fail it
    if leaked:
        raise SsafuseError(f"export to {code}: {leaked} events not releasable to it")
    res = ExportResult(code, out_dir, shared_view_with=sorted(set(view.codes) - {code}),
                       refused={"cdms": done.refused})
    full = _count_rows(run_dir)
    res.exported = {"conjunctions": conj.num_rows, "catalogue": view.catalogue.num_rows,
                    "excluded": view.excluded.num_rows, "cdms": len(links)}
    res.recomputed = {"conjunctions": view.counts["events_recomputed"],
                      "catalogue": view.counts["objects_changed"]}
    operator_links = set(info.get("cdm_links") or {})
    res.withheld = {"conjunctions": full["conjunctions"] - view.counts["events_reused"],
                    "catalogue": view.counts["objects_unseen"],
                    "excluded": max(0, full["excluded"] - view.excluded.num_rows),
                    # CDMs not asked for are not withheld: none is counted
                    "cdms": len(operator_links - set(links)) if "cdm" in formats else 0}
    write_parquet(out_dir / "conjunctions.parquet", conj)
    write_parquet(out_dir / "catalogue.parquet", view.catalogue)
    write_parquet(out_dir / "excluded.parquet", view.excluded)
    res.files = write_formats(out_dir, formats, conjunctions=conj, catalogue=view.catalogue,
                              creation_date=created)
    feeds = [f for f in info.get("feeds") or [] if _feed_releasable(f, code)]
    res.withheld["feeds"] = len(info.get("feeds") or []) - len(feeds)
    res.exported["feeds"] = len(feeds)
    # What the partner's report is built from: the run's window and report settings only
    # (not its config path, settings or the feeds' precedence, which name other feeds).
    shared = {k: info.get(k) for k in _SHARED_RUN_INFO}
    write_json(out_dir / "run.json", dict(
        shared, feeds=feeds, cdm_links=links, correlation=None, release_to=code,
        files=res.files,
        withheld=res.withheld, previous_conjunctions=_previous_export(run_dir, info, code,
                                                                      out_dir)))
    if with_report:
        res.marking = write_report(out_dir, out_dir, release_to=code).marking
    _finish(res, info, view, formats, previous, with_report, links)
    return res


def _finish(res: ExportResult, info: dict, view: PartnerView, formats, previous: list[str],
            with_report: bool, links: dict) -> None:
    """Remove what the previous export wrote and this one did not (only that), then write
    ``export.json``: the counts, and ``written``, every file this export wrote."""
    out_dir = res.out_dir
    written = sorted(set(_planned(formats, with_report)) | set(links.values())
                     | ({f"cdm/{CDM_LISTING}"} if (out_dir / "cdm" / CDM_LISTING).exists()
                        else set()))
    remove_stale(out_dir, previous, written)
    write_json(out_dir / "export.json", {
        "run_id": info["run_id"], "release_to": res.release_to, "rule": mk.RELEASE_RULE,
        "exported": res.exported, "withheld": res.withheld, "recomputed": res.recomputed,
        "screened_again": view.counts["screened_again"], "marking": res.marking,
        "formats": list(formats), "files": res.files, "refused": res.refused,
        "written": written})


#: The files every export writes (besides the report, its format files and CDMs).
_ALWAYS = ("conjunctions.parquet", "catalogue.parquet", "excluded.parquet", "run.json")


def _planned(formats, with_report: bool) -> list[str]:
    """The files an export of ``formats`` writes besides its CDMs and ``export.json``."""
    return [*_ALWAYS, *(("report.html", "summary.txt") if with_report else ()),
            *files_of(formats)]


def previous_export(out_dir: Path) -> tuple[dict, list[str]]:
    """The ``export.json`` of an earlier export into ``out_dir`` (``{}`` without one) and the
    files it lists as written there: its ``written``, else (written before it was kept) its
    format files, the files every export writes and, in ``cdm/``, its ``run.json``'s CDM
    links."""
    try:
        old = json.loads((out_dir / "export.json").read_text())
    except (OSError, ValueError):
        return {}, []
    if not isinstance(old, dict):
        return {}, []
    if isinstance(old.get("written"), list):
        return old, [n for n in old["written"] if isinstance(n, str)]
    files = old.get("files") if isinstance(old.get("files"), dict) else {}
    names = [n for name, f in files.items()
             for n in (name, f.get("sidecar") if isinstance(f, dict) else None) if n]
    return old, [*_ALWAYS, "report.html", "summary.txt", *names]


def _list_ahead(out_dir: Path, planned: list[str]) -> list[str]:
    """What an earlier export wrote into ``out_dir`` (:func:`previous_export`). Before this
    one writes a file the earlier one did not, ``export.json`` lists both, so an export
    killed part-way leaves no file of ours unlisted (its CDMs: the CDM folder's own
    listing)."""
    old, previous = previous_export(out_dir)
    if set(planned) - set(previous):
        write_json(out_dir / "export.json", dict(old, written=sorted(set(previous) |
                                                                     set(planned))))
    return previous


def _reusable_assessed(full: pa.Table, view: PartnerView, code: str,
                       hidden_cdms: pa.Table) -> pa.Table:
    """The rows of the full run's assessed ``full`` the partner's export may take as they
    are: events the view reused, releasable to the partner (so any CDM that gave their Pc or
    radius is), of pairs no CDM withheld from the partner speaks of (so its own assessment
    would pick the same CDM, or none)."""
    if not full.num_rows or not view.reused.any():
        return full.slice(0, 0)
    hidden = {frozenset(p) for p in zip(hidden_cdms["object1_id"].to_pylist(),
                                        hidden_cdms["object2_id"].to_pylist())} \
        if hidden_cdms.num_rows else set()
    reused = set(event_keys(view.screened.filter(pa.array(view.reused, pa.bool_()))))
    ok = [k in reused and frozenset((a, b)) not in hidden and rel
          for k, a, b, rel in zip(event_keys(full), full["object_id_1"].to_pylist(),
                                  full["object_id_2"].to_pylist(),
                                  mk.releasable_mask(full, code))]
    return full.filter(pa.array(ok, pa.bool_()))


def _count_rows(run_dir: Path) -> dict:
    return {name: pq.ParquetFile(run_dir / f"{name}.parquet").metadata.num_rows
            if (run_dir / f"{name}.parquet").exists() else 0
            for name in ("conjunctions", "excluded")}


def _feed_releasable(feed: dict, code: str) -> bool:
    """A feed is named in a partner's report when its own marking may go to the partner."""
    m = mk.parse(feed["marking"])
    return mk.exportable(m.classification, m.releasable_to, code)


def _previous_export(run_dir: Path, info: dict, code: str, out_dir: Path) -> str | None:
    """The partner's export of the previous run (its conjunctions), relative to ``out_dir``,
    for the report's changes; ``None`` without one."""
    prev = info.get("previous_run")
    if not prev:
        return None
    path = run_dir.parent / prev / "exports" / code / "conjunctions.parquet"
    return os.path.relpath(path, out_dir) if path.exists() else None

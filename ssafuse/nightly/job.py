"""The run: :func:`run` holds the lock and calls one function per stage, in order::

    fetch -> ingest -> catalogue -> correlate and od (when configured) -> screen -> assess
    -> exports -> report

(``od`` builds the catalogue again when a fit converged, so that the fitted element sets
compete in it.)

then writes the manifest. Each stage is timed and counted (:class:`Stage`); a stage that fails
is recorded and the stages that can still go on do. What the run folder holds, and why a
re-run of the same night changes nothing, is told in :mod:`ssafuse.nightly`.

On a store at a URL the stages write into a local working copy of the run folder, which
:func:`_write_manifests` uploads at the end (:mod:`ssafuse.nightly`, "A store at a URL").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import posixpath
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..catalogue import build_catalogue
from ..correlation import correlate_store
from ..errors import SsafuseError
from ..export import export_partners
from ..fetch import fetch_feed
from ..fetch.credentials import redact
from ..files import atomic_write_bytes, expand_inputs, write_json, write_parquet
from ..propagate import ERROR_MESSAGES
from ..formats.registry import known_extension
from ..ingestion import ingest
from ..jobs import assess_events
from ..markings import active_equivalences, use_equivalences
from ..od import OdSettings, od
from ..od import save_result as save_od
from ..progress import Progress, StageProgress, as_progress, reading
from ..report import write_report
from ..runs import previous_run, run_folder
from ..schema import CONJUNCTIONS, EXCLUDED
from ..screening import screen
from ..sensors import merge, read_sensors
from ..store import Store, is_url
from ..timeutil import parse_iso, utc_stamp, whole_seconds_ns
from ..versions import versions
from ..writers import CDM_LISTING, read_listing
from .config import Feed, RunConfig, run_id, window_start
from .lock import object_lock, run_lock

__all__ = ["EXIT_OK", "EXIT_WARNINGS", "EXIT_FAILED", "EXIT_ALREADY_RUNNING", "Stage",
           "RunResult", "run"]

#: Exit codes of ``ssafuse run`` (and :attr:`RunResult.exit_code`).
EXIT_OK, EXIT_WARNINGS, EXIT_FAILED, EXIT_ALREADY_RUNNING = 0, 1, 2, 3

log = logging.getLogger("ssafuse.run")


@dataclass
class Stage:
    name: str
    status: str = "skipped"      # ok | warnings | failed | skipped | reused
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    message: str = ""


@dataclass
class RunResult:
    """What :func:`run` did. ``exit_code``: 0 ok, 1 finished with warnings, 2 failed."""

    run_id: str
    run_dir: Path
    stages: list[Stage]
    warnings: list[str]
    errors: list[str]
    summary: str = ""
    manifest: dict = field(default_factory=dict)
    #: on a store at a URL, the run folder there (``run_dir`` is its local working copy)
    remote_dir: str | None = None

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_FAILED
        return EXIT_WARNINGS if self.warnings else EXIT_OK


def run(cfg: RunConfig, *, now: dt.datetime,
        progress: Progress | Callable[[int, int], None] | None = None) -> RunResult:
    """Run the nightly job once. ``now`` is the caller's clock (timezone-aware UTC): the
    ingest time, and the window start when the config sets none.

    ``progress``: where the long stages report how far along they are, a
    :class:`~ssafuse.progress.Progress` (``progress.stage(name, unit)`` gives each stage's
    ``tick(done, total)``: ingest in files, correlate in observations, screen in time slices,
    assess and report in events, exports in partners); the CLI's shows bars on a terminal
    (:func:`ssafuse.progress.for_stderr`). A plain ``callback(done, total)`` hears of the
    screening's time slices only, as before; ``None`` (default) reports nowhere.

    On a store at a URL (``cfg.store = "s3://..."``) the run folder is staged in
    ``work_dir`` and uploaded at the end (:mod:`ssafuse.nightly`); ``RunResult.run_dir`` is
    that working copy and ``RunResult.remote_dir`` the folder in the store, where it is
    uploaded with the partners' exports.

    Raises :class:`~ssafuse.nightly.lock.AlreadyRunning` when another run holds the lock
    (nothing is done); every other problem is recorded in the result (``warnings``: a feed
    failed, some files refused; ``errors``: a stage failed) and the stages that can still go
    on do. Logs one line per stage and per feed on the ``ssafuse.run`` logger."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    with _lock(cfg, now):
        # the config's marking equivalence table holds for the run, and only for it
        previous = use_equivalences(cfg.equivalences) if cfg.equivalences is not None else None
        try:
            return _run_locked(cfg, now, as_progress(progress))
        finally:
            if cfg.equivalences is not None:
                use_equivalences(previous)


def _run_locked(cfg: RunConfig, now: dt.datetime, progress: Progress) -> RunResult:
    t_run = time.perf_counter()
    try:
        ctx = _start(cfg, now, progress)
    except OSError as e:  # the store cannot hold the run: nothing else can go on
        rid = run_id(cfg, window_start(cfg, now))
        result = RunResult(rid, _local_run_dir(cfg, rid), [], [], [f"run: {_os_error(e)}"])
        result.summary = _summary_text(result, "", {})
        _log(logging.ERROR, "run", result.errors[0])
        return result
    try:
        return _stages(ctx, t_run)
    except Exception as e:  # a write outside a stage failed (disk full, permissions)
        ctx.result.errors.append(f"run: {_os_error(e)}")
        _log(logging.ERROR, "run", ctx.result.errors[-1])
        return _finish(ctx, [], {}, None, "", t_run)


def _os_error(e: BaseException) -> str:
    """One line for an error: an OSError's reason and file, else the exception's text."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}" + (f": {e.filename}" if e.filename else "")
    return f"{type(e).__name__}: {e}"


def _stages(ctx: _Run, t_run: float) -> RunResult:
    feeds = _ingest_stage(ctx, _fetch_stage(ctx))
    fingerprint = _table_fingerprint(ctx.store.ledger_entries())
    catalogue = _catalogue_stage(ctx)
    correlation = _correlate_stage(ctx, catalogue)
    catalogue = _od_stage(ctx, catalogue, correlation)
    conj = _screen_stage(ctx, catalogue, fingerprint)
    conj, links = _assess_stage(ctx, conj, catalogue)
    prev = _previous(ctx)
    _write_run_info(ctx, feeds, links, correlation, prev)
    exports = _exports_stage(ctx, conj)
    report_text = _report_stage(ctx, conj)
    return _finish(ctx, feeds, exports, prev, report_text, t_run)


# ---------------------------------------------------------------------------------------------
# A run in progress
# ---------------------------------------------------------------------------------------------

@dataclass
class _Run:
    """One run in progress: what every stage reads, and the result the stages add to."""

    cfg: RunConfig
    store: Store
    now: dt.datetime
    start: dt.datetime
    end: dt.datetime
    #: the first attempt's ``now`` (see :func:`_creation_time`)
    created: dt.datetime
    result: RunResult
    #: the newest ``ingested_at`` of the element sets the catalogue was built from (ISO)
    elements_through: str | None = None
    #: the od stage's counts (``None``: no OD this run)
    od: dict | None = None
    #: where the stages report how far along they are
    progress: Progress = field(default_factory=Progress)
    #: the progress of the stage under way (:meth:`stage`), ``tick(done, total)``
    tick: StageProgress = field(default_factory=StageProgress)

    @property
    def run_id(self) -> str:
        return self.result.run_id

    @property
    def run_dir(self) -> Path:
        return self.result.run_dir

    def stage(self, name: str, unit: str | None = None) -> _Timer:
        """A new stage of the run, timed while the ``with`` block lasts; with a ``unit``
        (``"file"``), its progress is :attr:`tick` meanwhile."""
        st = Stage(name)
        self.result.stages.append(st)
        return _Timer(st, self, unit)

    def fail(self, st: Stage, e: BaseException | str) -> None:
        text = e if isinstance(e, str) else _os_error(e)
        st.status = "failed"
        st.message = st.message or text
        self.result.errors.append(f"{st.name}: {text}")
        _log(logging.ERROR, st.name, text)


def _log(level: int, stage: str, msg: str, **fields) -> None:
    log.log(level, msg, extra={"stage": stage, "fields": fields})


class _Timer:
    def __init__(self, stage: Stage, ctx: _Run, unit: str | None):
        self.stage, self.ctx, self.unit = stage, ctx, unit

    def __enter__(self):
        self.t0 = time.perf_counter()
        _log(logging.INFO, self.stage.name, "started")
        if self.unit:
            self.ctx.tick = self.ctx.progress.stage(self.stage.name, self.unit)
        return self.stage

    def __exit__(self, *exc):
        self.ctx.tick.close()
        self.ctx.tick = StageProgress()
        self.stage.seconds = round(time.perf_counter() - self.t0, 3)
        if self.stage.status == "skipped":
            self.stage.status = "ok"
        _log(logging.INFO, self.stage.name, f"{self.stage.status} in {self.stage.seconds:.2f} s",
             seconds=self.stage.seconds, status=self.stage.status, **self.stage.counts)
        return False


def _start(cfg: RunConfig, now: dt.datetime, progress: Progress) -> _Run:
    """The run's window, id and folder (created; on a store at a URL, a fresh local working
    copy of what a re-run needs from the store's), and its creation time; logs the start."""
    store = Store(cfg.store, storage_options=cfg.storage_options)
    start = window_start(cfg, now)
    rid = run_id(cfg, start)
    run_dir = _local_run_dir(cfg, rid)
    remote = None if store.local else _remote_run_dir(store, rid)
    if remote is not None:
        _download(store, remote, run_dir, _RERUN_FILES)
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = _Run(cfg, store, now, start, start + dt.timedelta(days=cfg.days),
               _creation_time(run_dir, now), RunResult(rid, run_dir, [], [], [],
                                                       remote_dir=remote),
               progress=progress)
    _log(logging.INFO, "run", f"run {rid}: window {start.isoformat()} + {cfg.days:g} d, "
         f"{len(cfg.feeds)} feeds, store {cfg.store}", run_id=rid)
    return ctx


def _creation_time(run_dir: Path, now: dt.datetime) -> dt.datetime:
    """The run's creation time: the first attempt's ``now``, kept so that a re-run of the
    same run writes the same CDMs (CREATION_DATE, MESSAGE_ID) rather than a second set."""
    created_file = run_dir / "created.json"
    try:
        return parse_iso(json.loads(created_file.read_text())["created"])
    except (OSError, ValueError, KeyError):
        write_json(created_file, {"created": now.isoformat()})
        return now


# ---------------------------------------------------------------------------------------------
# Ingest
# ---------------------------------------------------------------------------------------------

def _fetch_stage(ctx: _Run) -> list[tuple[Feed, dict | None]]:
    """Fetch the feeds that name a provider (:func:`ssafuse.fetch.fetch_feed`); every feed
    with what its ingest reads: a fetched feed's paths become its download (the new one, else
    the last good one, whose age the report shows), and its fetch summary. A failed fetch is
    a warning; a fetch never stops the run."""
    remote = [f for f in ctx.cfg.feeds if f.remote is not None]
    if not remote:
        return [(f, None) for f in ctx.cfg.feeds]
    out = []
    local = None if ctx.store.local else work_dir(ctx.cfg)
    with ctx.stage("fetch", "feed") as st:
        ctx.tick(0, len(remote))
        for feed in ctx.cfg.feeds:
            if feed.remote is None:
                out.append((feed, None))
                continue
            got = _fetch_one(ctx, feed, local)
            out.append((replace(feed, paths=(got["path"],) if got["path"] else ()), got))
            _log_fetch(ctx, feed, got)
            ctx.tick(sum(g is not None for _, g in out), len(remote))
        statuses = [g["status"] for _, g in out if g is not None]
        st.counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
        st.counts["requests"] = sum(g["requests"] for _, g in out if g is not None)
        if "failed" in statuses:
            st.status = "warnings"
    return out


def _fetch_one(ctx: _Run, feed: Feed, local: Path | None) -> dict:
    """One feed's fetch summary (:meth:`ssafuse.fetch.FetchResult.as_dict`); never raises."""
    try:
        return fetch_feed(ctx.store, feed.source, feed.remote, now=ctx.now, state_dir=local,
                          local_dir=local).as_dict()
    except Exception as e:  # (fetch_feed says failures itself: this is a bug's last guard)
        return {"source": feed.source, "status": "failed", "path": None, "url": None,
                "fetched_at": None, "age_hours": None, "requests": 0, "empty": False,
                "message": redact(f"{type(e).__name__}: {e}"), "sha256": None, "seconds": 0}


def _log_fetch(ctx: _Run, feed: Feed, got: dict) -> None:
    """One log line per fetched feed; a failed fetch is also a warning of the run."""
    text = f"feed {feed.source}: fetch {got['status']}, {got['requests']} requests"
    if got["status"] == "failed":
        text += f": {got['message']}; " + (
            f"using the download of {got['fetched_at']} ({got['age_hours']:.1f} h old)"
            if got["path"] else "no earlier download to use")
        ctx.result.warnings.append(text)
    elif got["path"]:
        text += f"; download of {got['fetched_at']} ({got['age_hours']:.1f} h old)"
    _log(logging.WARNING if got["status"] == "failed" else logging.INFO, "fetch", text,
         feed=feed.source, status=got["status"], requests=got["requests"],
         age_hours=got["age_hours"])


def _ingest_stage(ctx: _Run, fetched: list[tuple[Feed, dict | None]]) -> list[dict]:
    """Ingest every feed (one's failure never stops the others); returns their summaries
    (a fetched feed's with its fetch summary, ``fetch``)."""
    feeds: list[dict] = []
    with ctx.stage("ingest", "file") as st:
        found = [_listed_files(feed, ctx.cfg.formats_dirs) if feed.paths else ([], [])
                 for feed, _ in fetched]
        total = sum(len(f[0]) for f in found if f is not None)
        ctx.tick(0, total)
        before = 0  # files of the earlier feeds
        for (feed, got), listed in zip(fetched, found):
            if got is not None and not feed.paths:  # nothing fetched, nothing kept: said
                feeds.append(dict(_failed_feed(feed, None), fetch=got))
                continue
            if got is not None and got["empty"]:  # a quiet day: no new record, no failure
                feeds.append(dict(_failed_feed(feed, None), status="ok", fetch=got))
                continue
            try:
                info = _ingest_feed(ctx.store, feed, ctx.now, ctx.cfg.formats_dirs, listed,
                                    _FeedTicks(ctx.tick, before, total))
            except OSError as e:  # the store cannot be written (an input is refused inside)
                ctx.fail(st, e)
                info = _failed_feed(feed, e)
            except Exception as e:  # a feed's failure never stops the others
                info = _failed_feed(feed, e)
            if got is not None:
                info["fetch"] = got
            feeds.append(info)
            before += len(listed[0]) if listed else 0
            _log_feed(feed, info)
            for p in info["problems"]:
                ctx.result.warnings.append(f"feed {feed.source}: {p}")
        st.counts = {"feeds": len(feeds),
                     "feeds_failed": sum(f["status"] == "failed" for f in feeds),
                     "files": sum(len(f["files"]) for f in feeds),
                     "read": sum(f["read"] for f in feeds),
                     "accepted": sum(f["accepted"] for f in feeds),
                     "rejected": sum(f["rejected"] for f in feeds)}
        if st.status != "failed" and (st.counts["feeds_failed"] or ctx.result.warnings):
            st.status = "warnings"
    return feeds


def _failed_feed(feed: Feed, e: BaseException | None) -> dict:
    return {"source": feed.source, "marking": feed.marking, "format": feed.format,
            "paths": list(feed.paths), "files": [], "read": 0, "accepted": 0, "rejected": 0,
            "refused_files": 0, "status": "failed",
            "problems": [_os_error(e)] if e is not None else []}


def _log_feed(feed: Feed, info: dict) -> None:
    level = logging.INFO if info["status"] == "ok" else logging.WARNING
    conflicts = info.get("marking_conflicts", 0)
    if conflicts:
        level = max(level, logging.WARNING)
    _log(level, "ingest", f"feed {feed.source}: {info['status']}, "
         f"{len(info['files'])} files, {info['accepted']} accepted, "
         f"{info['rejected']} rejected" + (
             f", {conflicts} records marked below the feed's {feed.marking} (kept at the feed's)"
             if conflicts else "") + (
             "; " + "; ".join(info["problems"]) if info["problems"] else ""),
         feed=feed.source, status=info["status"], accepted=info["accepted"],
         rejected=info["rejected"], files=len(info["files"]), marking_conflicts=conflicts)


def _feed_files(feed: Feed, formats_dirs=()) -> tuple[list[str], list[str]]:
    """The feed's files, and the patterns (globs, folders) that matched nothing."""
    files, empty = [], []
    accept = known_extension(formats_dirs)
    for p in feed.paths:
        # a plain path that does not exist is kept: refused later
        got = expand_inputs([p], accept=accept)
        if not got:  # a glob, or a folder, with no file a format reads
            empty.append(p)
        files.extend(got)
    return list(dict.fromkeys(files)), empty


def _listed_files(feed: Feed, formats_dirs=()) -> tuple[list[str], list[str]] | None:
    """:func:`_feed_files`, or ``None`` when listing them fails (the feed's ingest lists
    them again, and fails as the feed's own failure)."""
    try:
        return _feed_files(feed, formats_dirs)
    except Exception:  # counted for the progress only: the ingest reports the failure
        return None


class _FeedTicks:
    """One feed's file progress as part of the ingest stage's: ``before`` files of the
    earlier feeds, ``total`` in all."""

    def __init__(self, tick: StageProgress, before: int, total: int):
        self.tick, self.before, self.total = tick, before, total

    def files(self, done: int, total: int) -> None:
        self.tick(self.before + done, max(self.total, self.before + total))


def _ingest_feed(store: Store, feed: Feed, now: dt.datetime, formats_dirs=(),
                 found: tuple[list[str], list[str]] | None = None,
                 ticks: _FeedTicks | None = None) -> dict:
    """Ingest one feed (``found``: its files and empty patterns, :func:`_feed_files`, when
    listed already); returns its summary (never raises for a feed's own failure)."""
    files, empty = found or _feed_files(feed, formats_dirs)
    out = {"source": feed.source, "marking": feed.marking, "format": feed.format,
           "paths": list(feed.paths), "files": [], "read": 0, "accepted": 0, "rejected": 0,
           "marking_conflicts": 0, "refused_files": 0, "status": "ok", "problems": []}
    for p in empty:
        out["problems"].append(f"{p}: matched no file")
    if files:
        report = ingest(store, files, source=feed.source, format=feed.format,
                        marking=feed.marking, now=now, formats_dirs=formats_dirs,
                        file_progress=ticks.files if ticks else None,
                        record_progress=reading(ticks.tick) if ticks else None)
        for f in report.files:
            rec = _file_record(store, feed, f)
            if rec["status"] == "refused":
                out["refused_files"] += 1
                out["problems"].append(f"{f.uri}: refused: {rec['message']}")
            elif rec["read"] and not rec["accepted"]:
                out["problems"].append(f"{f.uri}: every record rejected ({rec['rejected']})")
            out["files"].append(rec)
            for k in ("read", "accepted", "rejected", "marking_conflicts"):
                out[k] += rec[k]
    if not out["files"] or out["accepted"] == 0:
        out["status"] = "failed"
        if not out["problems"]:
            out["problems"].append("no record accepted")
    elif out["problems"]:
        out["status"] = "partial"
    return out


def _file_record(store: Store, feed: Feed, f) -> dict:
    """One ingested file's line in the feed summary. ``status`` is what the store holds for
    the file (ingested / refused), the same whether this run or an earlier one read it;
    ``this_run`` is what this run did."""
    rec = {"uri": f.uri, "sha256": f.sha256, "format": f.format,
           "status": "ingested" if f.status == "re-marked" else f.status,
           "this_run": f.status, "read": f.read, "accepted": f.accepted,
           "rejected": f.rejected, "marking_conflicts": f.marking_conflicts,
           "message": f.message if f.status == "refused" else ""}
    if f.status == "already-ingested" and f.sha256:
        # the counts of the ingest that did it, so a re-run reports the same numbers
        prior = store.ledger_entry(feed.source, f.sha256) or {}
        rec.update(read=prior.get("read", 0), accepted=prior.get("accepted", 0),
                   rejected=prior.get("rejected", 0), format=prior.get("format"),
                   marking_conflicts=prior.get("marking_conflicts", 0),
                   status=prior.get("status", "ingested"), message="")
        if rec["status"] == "refused":
            rec["message"] = _refusal_reason(store, feed.source, f.sha256)
    return rec


def _refusal_reason(store: Store, source: str, sha: str) -> str:
    """The reason a file was refused as a whole, from its reject row (record 0)."""
    rows = store.table("rejects", columns=["source_sha256", "source_record", "reason"],
                       filter=(pc.field("source") == source) & (pc.field("source_sha256") == sha)
                       & (pc.field("source_record") == 0))
    return rows["reason"][0].as_py() if rows.num_rows else "refused"


def _table_fingerprint(entries: list[dict]) -> str:
    # the marking too: a file re-marked since must be screened again (markings of events)
    keys = sorted(f"{e.get('source')}/{e.get('sha256')}/{e.get('marking')}" for e in entries
                  if e.get("status") != "refused")
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Catalogue, correlation, screening
# ---------------------------------------------------------------------------------------------

def _catalogue_stage(ctx: _Run) -> pa.Table | None:
    """Build the catalogue from every element set in the store; ``None`` when it failed."""
    with ctx.stage("catalogue") as st:
        try:
            catalogue, st.counts = _build_catalogue(ctx)
        except Exception as e:
            ctx.fail(st, e)
            catalogue = None
    return catalogue


def _build_catalogue(ctx: _Run) -> tuple[pa.Table, dict]:
    """The catalogue of every element set in the store, written to the store and the run
    folder; with its counts."""
    cfg = ctx.cfg
    elements = ctx.store.table("elements")
    catalogue = build_catalogue(elements, precedence=cfg.precedence,
                                disagree_km=cfg.disagree_km,
                                disagree_max_gap_days=cfg.disagree_max_gap_days)
    if catalogue.num_rows == 0:
        raise SsafuseError("no element sets in the store: nothing to screen")
    ctx.store.write("catalogue", catalogue, "catalogue.parquet")
    write_parquet(ctx.run_dir / "catalogue.parquet", catalogue)
    ctx.elements_through = _newest_ingest(elements)
    return catalogue, {"element_sets": elements.num_rows, "objects": catalogue.num_rows,
                       "disagreeing": int(sum(catalogue["sources_disagree"].to_pylist()))}


def _newest_ingest(elements: pa.Table) -> str | None:
    """The newest ``ingested_at`` of ``elements`` as ISO text: which element sets a run used
    (the exports read them again, :func:`ssafuse.export.run_elements`)."""
    newest = pc.max(elements["ingested_at"]).as_py()
    return newest.isoformat() if newest is not None else None


def _correlate_stage(ctx: _Run, catalogue: pa.Table | None) -> dict | None:
    """Observation correlation, when configured and there is a catalogue; its counts."""
    if ctx.cfg.correlate is None or catalogue is None:
        return None
    counts = None
    with ctx.stage("correlate", "obs") as st:
        try:
            counts = _correlate(ctx.cfg, ctx.store, ctx.run_dir, ctx.now)
            st.counts = counts
            ctx.tick(counts["observations"], counts["observations"])
        except Exception as e:
            ctx.fail(st, e)
    return counts


def _correlate(cfg: RunConfig, store: Store, run_dir: Path, now: dt.datetime) -> dict:
    c = cfg.correlate or {}
    corr, rejects = correlate_store(
        store, sensor_files=c.get("sensors", []), gate_arcmin=float(c.get("gate_arcmin", 30.0)),
        max_age_days=float(c.get("max_age_days", 30.0)),
        now_ns=whole_seconds_ns(now), save=False)
    write_parquet(run_dir / "correlations.parquet", corr)
    write_parquet(run_dir / "correlation_rejects.parquet", rejects)
    status = corr["status"].to_pylist()
    return {"observations": corr.num_rows, "correlated": status.count("correlated"),
            "uct": status.count("uct"), "unknown_sensor": rejects.num_rows}


def _od_stage(ctx: _Run, catalogue: pa.Table | None, correlation: dict | None):
    """Orbit determination on this run's correlations, when configured: the fits go to the
    store and the run folder (``od_solutions.parquet``), and the catalogue is built again
    when a fit converged, so that the fitted element sets compete in it. Returns the
    catalogue to screen (the one before OD when the stage fails)."""
    if ctx.cfg.od is None or catalogue is None or correlation is None:
        return catalogue
    with ctx.stage("od", "object") as st:
        try:
            counts = _od(ctx)
            if counts["converged"]:
                catalogue, _ = _build_catalogue(ctx)
                counts["updated"] = _od_chosen(catalogue, ctx.cfg.od.get("source", "od"))
            st.counts = counts
            ctx.od = counts
        except Exception as e:
            ctx.fail(st, e)
    return catalogue


def _od(ctx: _Run) -> dict:
    cfg, store = ctx.cfg, ctx.store
    c = dict(cfg.od)
    objects = c.pop("objects", []) or None
    settings = OdSettings(**c)
    corr = pq.read_table(ctx.run_dir / "correlations.parquet")
    sensors = merge(*[read_sensors(f) for f in (cfg.correlate or {}).get("sensors", [])],
                    store.table("sensors"))
    now_ns = whole_seconds_ns(ctx.now)
    result = od(store.table("observations"), store.table("elements"), sensors,
                correlations=corr, objects=objects, settings=settings, now_ns=now_ns)
    save_od(store, result, settings, now_ns)
    write_parquet(ctx.run_dir / "od_solutions.parquet", result.solutions)
    status = result.solutions["status"].to_pylist()
    ctx.tick(len(status), len(status))
    return {"objects": len(status), "converged": status.count("converged"),
            "kept": len(status) - status.count("converged")}


def _od_chosen(catalogue: pa.Table, source: str) -> int:
    """Catalogue entries whose element set is an OD fit."""
    return int(pc.sum(pc.equal(catalogue["source"], source)).as_py() or 0)


def _screen_stage(ctx: _Run, catalogue: pa.Table | None, fingerprint: str) -> pa.Table | None:
    """The screening's conjunctions; ``None`` without a catalogue or when it failed."""
    if catalogue is None:
        return None
    conj = None
    with ctx.stage("screen", "slice") as st:
        try:
            conj, excluded, reused = _screen(ctx.cfg, catalogue, ctx.start, ctx.run_dir,
                                             fingerprint, ctx.tick)
            st.status = "reused" if reused else "ok"
            st.counts = {"conjunctions": conj.num_rows, "excluded": excluded.num_rows,
                         "objects": catalogue.num_rows}
            _check_screened(ctx, st, catalogue, excluded)
        except Exception as e:
            ctx.fail(st, e)
    return conj


def _check_screened(ctx: _Run, st: Stage, catalogue: pa.Table, excluded: pa.Table) -> None:
    """A screening that could screen no object found nothing because it looked at nothing
    (a window far from every epoch, every element set refused): a failure, never "OK, 0
    events". Objects left out from the window start on are counted by reason."""
    at_start = excluded.filter(pc.equal(excluded["excluded_from"].cast(pa.int64()),
                                        whole_seconds_ns(ctx.start)))
    st.counts["screened"] = catalogue.num_rows - at_start.num_rows
    if st.counts["screened"] < 2:
        codes = at_start["error_code"].to_pylist()
        why = ", ".join(f"{codes.count(c)} {reason}" for c, reason in sorted(
            {(c, ERROR_MESSAGES.get(c, str(c))) for c in set(codes)}))
        ctx.fail(st, f"{st.counts['screened']} of {catalogue.num_rows} objects could be "
                     f"screened in the window {ctx.start.isoformat()} + {ctx.cfg.days:g} d"
                     + (f"; excluded: {why}" if why else ""))


def _screen(cfg: RunConfig, catalogue: pa.Table, start: dt.datetime, run_dir: Path,
            fingerprint: str, progress) -> tuple[pa.Table, pa.Table, bool]:
    """Screen the catalogue, or reuse this run's screening when its key is unchanged."""
    key = hashlib.sha256(json.dumps({
        "elements": fingerprint, "start": start.isoformat(), "days": cfg.days,
        "threshold_km": cfg.threshold_km, "primaries": list(cfg.primaries),
        "disagree_km": cfg.disagree_km, "precedence": cfg.precedence,
        "max_epoch_gap_days": cfg.max_epoch_gap_days,
        "disagree_max_gap_days": cfg.disagree_max_gap_days,
    }, sort_keys=True).encode()).hexdigest()
    marker = run_dir / "screen.json"
    if marker.exists():
        try:
            done = json.loads(marker.read_text())
            if done.get("key") == key:
                conj = pq.read_table(run_dir / "screened.parquet").cast(CONJUNCTIONS)
                excl = pq.read_table(run_dir / "excluded.parquet").cast(EXCLUDED)
                _log(logging.INFO, "screen", "reusing this run's screening (same inputs)")
                return conj, excl, True
        except (OSError, ValueError, pa.ArrowInvalid) as e:
            _log(logging.INFO, "screen", f"screening again: the earlier result is unreadable ({e})")
    res = screen(catalogue, start, days=cfg.days, threshold_km=cfg.threshold_km,
                 primaries=list(cfg.primaries) or None, workers=cfg.workers, progress=progress,
                 dask=cfg.dask, max_epoch_gap_days=cfg.max_epoch_gap_days)
    write_parquet(run_dir / "screened.parquet", res.conjunctions)
    write_parquet(run_dir / "excluded.parquet", res.excluded)
    write_json(marker, {"key": key, "stats": res.stats})
    return res.conjunctions, res.excluded, False


# ---------------------------------------------------------------------------------------------
# Assessment
# ---------------------------------------------------------------------------------------------

def _assess_stage(ctx: _Run, conj: pa.Table | None,
                  catalogue: pa.Table | None) -> tuple[pa.Table | None, dict[str, str]]:
    """Pc and CDMs of the screening's conjunctions, written to the run folder and the store
    (as screened when the assessment failed); ``(conjunctions, CDM links)``."""
    if conj is None:
        return None, {}
    cfg, links = ctx.cfg, {}
    with ctx.stage("assess", "event") as st:
        ctx.tick(0, conj.num_rows)  # no progress within: assess_events takes no callback
        try:
            done = assess_events(conj, catalogue, cfg.pc, ctx.run_dir / "cdm",
                                 creation_date=ctx.created, cdms=ctx.store.table("cdms"),
                                 primaries=cfg.report_primaries, top=cfg.report.get("top", 20))
            conj, links = done.conjunctions, done.links
            st.counts = {"assessed": conj.num_rows, "cdms": len(links),
                         "cdms_refused": len(done.refused)}
            ctx.tick(conj.num_rows, conj.num_rows)
            for key, why in done.refused.items():  # the event keeps its Pc; no CDM
                ctx.result.warnings.append(f"assess: no CDM for event {key}: {why}")
                _log(logging.WARNING, "assess", ctx.result.warnings[-1])
            if done.refused:
                st.status = "warnings"
        except Exception as e:
            ctx.fail(st, e)
        write_parquet(ctx.run_dir / "conjunctions.parquet", conj)
        ctx.store.write("conjunctions", conj, f"run-{ctx.run_id}.parquet")
    return conj, links


# ---------------------------------------------------------------------------------------------
# Report, exports, manifest
# ---------------------------------------------------------------------------------------------

def _write_run_info(ctx: _Run, feeds: list[dict], links: dict[str, str],
                    correlation: dict | None, prev: Path | None) -> None:
    """``run.json``: what the report and the exports are made from."""
    cfg = ctx.cfg
    table = active_equivalences()  # how markings were read: a later export reads them alike
    write_json(ctx.run_dir / "run.json", {
        "run_id": ctx.run_id, "created": ctx.created.isoformat(),
        "window_start": ctx.start.isoformat(), "window_end": ctx.end.isoformat(),
        "days": cfg.days, "threshold_km": cfg.threshold_km,
        "primaries": cfg.report_primaries,
        "feeds": [dict(f, files=[{k: v for k, v in r.items() if k != "this_run"}
                                 for r in f["files"]]) for f in feeds],
        "previous_run": prev.name if prev else None, "cdm_links": links,
        "correlation": correlation, "od": ctx.od, "report": cfg.report,
        "tearline": {"elements_through": ctx.elements_through,
                     "screen_primaries": list(cfg.primaries), "precedence": cfg.precedence,
                     "disagree_km": cfg.disagree_km,
                     "disagree_max_gap_days": cfg.disagree_max_gap_days,
                     "max_epoch_gap_days": cfg.max_epoch_gap_days, "pc": cfg.pc,
                     "formats": list(cfg.export_formats),
                     "equivalences": table.source, "equivalences_sha256": table.digest},
        "settings_hash": cfg.settings_hash(),
        "config": str(cfg.source_file) if cfg.source_file else None,
    })


def _report_stage(ctx: _Run, conj: pa.Table | None) -> str:
    """Write the report into the run folder; its plain-text summary ("" when none)."""
    if conj is None:
        return ""
    summary = ""
    with ctx.stage("report", "event") as st:
        ctx.tick(0, conj.num_rows)  # no progress within: write_report takes no callback
        try:
            rep = write_report(ctx.run_dir, ctx.run_dir)
            summary = rep.text
            st.counts = {"events": rep.counts["events"], "listed": rep.counts["listed"]}
            ctx.tick(conj.num_rows, conj.num_rows)
            st.message = f"marking {rep.marking}"
        except Exception as e:
            ctx.fail(st, e)
    return summary


def _exports_stage(ctx: _Run, conj: pa.Table | None) -> dict:
    """One tear-line export per partner of ``exports.release_to``
    (:func:`ssafuse.export.export_partners`); counts exported / recomputed / withheld by
    partner."""
    exports: dict = {}
    if conj is None or not ctx.cfg.exports:
        return exports
    with ctx.stage("exports", "partner") as st:
        ctx.tick(0, len(ctx.cfg.exports))  # no progress within: one call for every partner
        try:
            done = export_partners(ctx.run_dir, {code: ctx.run_dir / "exports" / code
                                                 for code in ctx.cfg.exports},
                                   workers=ctx.cfg.workers, dask=ctx.cfg.dask, store=ctx.store)
        except Exception as e:
            ctx.fail(st, e)
            done = {}
        for code, ex in done.items():
            exports[code] = {"exported": ex.exported, "withheld": ex.withheld,
                             "recomputed": ex.recomputed, "files": ex.files,
                             "shared_view_with": ex.shared_view_with}
            _log(logging.INFO, "exports", f"{code}: exported {ex.exported}, recomputed "
                 f"{ex.recomputed}, withheld {ex.withheld}", release_to=code)
        ctx.tick(len(exports), len(ctx.cfg.exports))
        st.counts = {"partners": len(exports),
                     "recomputed": sum(e["recomputed"]["conjunctions"] for e in exports.values())}
    return exports


def _finish(ctx: _Run, feeds: list[dict], exports: dict, prev: Path | None,
            report_text: str, t_run: float) -> RunResult:
    """Write the manifest (last: a run without one did not finish), in the run folder and
    in the store's ``_manifests/``; the result with its summary."""
    cfg, result, rid = ctx.cfg, ctx.result, ctx.run_id
    manifest = {
        "kind": "run", "run_id": rid, "now": ctx.now.isoformat(),
        "window_start": ctx.start.isoformat(), "window_end": ctx.end.isoformat(),
        "config": str(cfg.source_file) if cfg.source_file else None,
        "settings": cfg.settings(), "settings_hash": cfg.settings_hash(),
        "stages": [vars(s) for s in result.stages],
        "feeds": feeds, "exports": exports, "previous_run": prev.name if prev else None,
        "warnings": result.warnings, "errors": result.errors,
        "exit_code": result.exit_code,
        "duration_s": round(time.perf_counter() - t_run, 3),
        "versions": versions(),
    }
    result.manifest = manifest
    try:
        _write_manifests(ctx, manifest)
    except Exception as e:  # the run failed: say why on stdout, where cron mail reads it
        result.errors.append(f"manifest: {_os_error(e)}")
        manifest.update(errors=result.errors, exit_code=result.exit_code)
    result.summary = _summary_text(result, report_text, exports)
    _log(logging.INFO if not result.errors else logging.ERROR, "run",
         f"run {rid} finished: exit {result.exit_code}, {len(result.warnings)} warnings, "
         f"{len(result.errors)} errors, {manifest['duration_s']:.1f} s",
         exit_code=result.exit_code)
    return result


def _write_manifests(ctx: _Run, manifest: dict) -> None:
    """The manifest, written last, in the run folder and in the store's ``_manifests/``. On
    a store at a URL, the run folder there is unfinished (its manifest deleted) while every
    file of the working copy is uploaded, one PUT each; then its manifest is."""
    name = f"run-{utc_stamp(ctx.now)}-{ctx.run_id}.json"
    if ctx.store.local:
        write_json(ctx.run_dir / "manifest.json", manifest)
        write_json(Path(ctx.cfg.store) / "_manifests" / name, manifest)
        return
    data = json.dumps(manifest, indent=1, sort_keys=True, default=str).encode()
    remote, fs = ctx.result.remote_dir, ctx.store.fs
    if fs.exists(posixpath.join(remote, "manifest.json")):  # an earlier attempt's
        fs.rm_file(posixpath.join(remote, "manifest.json"))
    _upload(fs, ctx.run_dir, remote)
    fs.pipe_file(posixpath.join(remote, "manifest.json"), data)
    fs.pipe_file(posixpath.join(str(ctx.store.root), "_manifests", name), data)
    atomic_write_bytes(ctx.run_dir / "manifest.json", data)


# ---------------------------------------------------------------------------------------------
# A store at a URL: a local working copy of the run folder, uploaded at the end
# ---------------------------------------------------------------------------------------------

#: What a re-run needs of its own run folder in the store (its creation time, the screening
#: it may reuse), and :func:`_previous` of the previous run's (manifest last: a copy without
#: it is unfinished)
_RERUN_FILES = ("created.json", "screen.json", "screened.parquet", "excluded.parquet")
_PREVIOUS_FILES = ("run.json", "conjunctions.parquet", "manifest.json")
#: Files uploaded per batch (fsspec puts a batch's files concurrently, each in one PUT)
_UPLOAD_BATCH = 64


def _lock(cfg: RunConfig, now: dt.datetime):
    """The run lock: a POSIX lock on a lock file (a local store's, or ``lock_file``), an
    object lease (``STORE/_run.lock``) on a store at a URL."""
    lock = cfg.lock_path
    if not is_url(str(lock)):
        return run_lock(lock, now=now)
    fs = Store(cfg.store, storage_options=cfg.storage_options).fs
    return object_lock(fs, str(lock), lease_hours=cfg.lock_ttl_hours, now=now)


def work_dir(cfg: RunConfig) -> Path:
    """Where the run folders of a store at a URL are staged: ``work_dir``, else
    ``~/.cache/ssafuse/store-<first 16 hex of the SHA-256 of the store URL>``."""
    if cfg.work_dir is not None:
        return Path(cfg.work_dir)
    digest = hashlib.sha256(str(cfg.store).encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "ssafuse" / f"store-{digest}"


def _local_run_dir(cfg: RunConfig, rid: str) -> Path:
    """The folder the stages write run ``rid`` into: the store's, or the working copy."""
    return run_folder(work_dir(cfg) if is_url(cfg.store) else cfg.store, rid)


def _remote_run_dir(store: Store, rid: str) -> str:
    return posixpath.join(str(store.root), "runs", rid)


def _download(store: Store, remote: str, local: Path, names: tuple[str, ...]) -> None:
    """Make ``local`` a fresh copy of the files ``names`` of the folder ``remote`` (those it
    holds): the store is the truth, never what an earlier attempt left here."""
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir(parents=True, exist_ok=True)
    for name in names:
        try:
            data = store.fs.cat_file(posixpath.join(remote, name))
        except FileNotFoundError:
            continue
        except OSError:
            raise
        except Exception as e:  # no server, no bucket: the run cannot go on (an OSError)
            raise OSError(f"cannot read {posixpath.join(remote, name)}: {e}") from e
        atomic_write_bytes(local / name, data)


def _upload(fs, local: Path, remote: str) -> None:
    """Every file of the working copy ``local`` but its manifest (and a killed write's
    hidden ``.*.tmp``), each stored whole with one PUT (atomic) under ``remote``; then the
    files an earlier attempt wrote there that this one did not (:func:`_stale`) are
    removed, as :func:`ssafuse.writers.remove_stale` does in a local run folder."""
    files = sorted(p for p in local.rglob("*") if p.is_file()
                   and not (p.name.startswith(".") and p.name.endswith(".tmp"))
                   and p.relative_to(local).as_posix() != "manifest.json")
    stale = _stale(fs, local, remote)
    for k in range(0, len(files), _UPLOAD_BATCH):
        fs.pipe({posixpath.join(remote, p.relative_to(local).as_posix()): p.read_bytes()
                 for p in files[k:k + _UPLOAD_BATCH]})
    for rel in stale:
        fs.rm_file(posixpath.join(remote, rel))


def _stale(fs, local: Path, remote: str) -> list[str]:
    """Files (relative to the run folder) that the store's listings of what ssafuse wrote
    (``cdm/.ssafuse-written.json`` ...) name and the working copy's do not: an earlier
    attempt's CDMs and event pages this run no longer writes. Nothing else is touched."""
    out = []
    for listing in sorted(local.rglob(CDM_LISTING)):
        sub = listing.parent.relative_to(local).as_posix()
        try:
            old = json.loads(fs.cat_file(posixpath.join(remote, sub, CDM_LISTING)))["written"]
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            continue
        new = set(read_listing(listing))
        for name in old if isinstance(old, list) else []:
            norm = posixpath.normpath(name) if isinstance(name, str) and name else ".."
            if name not in new and not norm.startswith(("..", "/", ".")):
                out.append(posixpath.join(sub, norm))
    return sorted(set(out))


def _previous(ctx: _Run) -> Path | None:
    """The previous run (:func:`ssafuse.runs.previous_run`); on a store at a URL, found
    there and copied (run.json, conjunctions, manifest) beside the working copy, where the
    report reads it."""
    if ctx.store.local:
        return previous_run(Path(ctx.cfg.store), ctx.run_id, ctx.start)
    try:
        prev = previous_run(ctx.store.root, ctx.run_id, ctx.start, fs=ctx.store.fs)
        if prev is None:
            return None
        local = ctx.run_dir.parent / posixpath.basename(prev)
        _download(ctx.store, prev, local, _PREVIOUS_FILES)
        return local
    except Exception as e:  # the report goes on without a previous run
        ctx.result.warnings.append(f"previous run: cannot read it from {ctx.cfg.store}: "
                                   f"{_os_error(e)}")
        _log(logging.WARNING, "run", ctx.result.warnings[-1])
        return None


def _summary_text(result: RunResult, report_text: str, exports: dict) -> str:
    status = {EXIT_OK: "OK", EXIT_WARNINGS: "OK WITH WARNINGS", EXIT_FAILED: "FAILED"}[
        result.exit_code]
    lines = [f"ssafuse run {result.run_id}: {status}"]
    if report_text:
        lines.append(report_text.rstrip())
    for code, ex in exports.items():
        lines.append(f"export {code}: " + ", ".join(
            f"{k} {ex['exported'].get(k, 0)} exported"
            + (f" ({ex['recomputed'][k]} recomputed)" if ex["recomputed"].get(k) else "")
            + f" / {v} withheld" for k, v in ex["withheld"].items()))
    for s in result.stages:
        lines.append(f"stage {s.name:<10} {s.status:<9} {s.seconds:8.2f} s"
                     + (f"  {s.message}" if s.message else ""))
    for w in result.warnings:
        lines.append(f"WARNING {w}")
    for e in result.errors:
        lines.append(f"ERROR {e}")
    lines.append(f"run folder: {result.remote_dir or result.run_dir}")
    return "\n".join(lines) + "\n"

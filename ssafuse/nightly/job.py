"""The nightly job: one call from the day's feeds to an operator's report and partner exports.

Stages, in order, each timed and counted in the run manifest::

    ingest -> catalogue -> correlate (when configured) -> screen -> assess -> report -> exports

Everything a run produces lives in one folder of the store, ``STORE/runs/<run id>/``::

    manifest.json        the run: stages (status, seconds, counts), feeds, inputs, warnings,
                         versions, exit code. Written last; a run without it did not finish.
    run.json             what the report is made from (feeds, window, primaries, previous run)
    catalogue.parquet    the catalogue screened (schema ``catalogue``)
    conjunctions.parquet the assessed conjunctions (schema ``conjunctions``), also kept as
                         STORE/conjunctions/run-<run id>.parquet for queries across nights
    excluded.parquet     objects SGP4 could not propagate, and why
    correlations.parquet observation correlation (when configured)
    screen.json          the screening's key (inputs + parameters); a re-run with the same key
                         reuses the screening instead of repeating it
    cdm/                 one CDM per conjunction (when the assess stage writes them)
    report.html          the operator's report (self-contained), summary.txt for cron mail
    exports/<CODE>/      each partner's export (``ssafuse.export``)

The **run id** is ``<window start>-<hash of the settings>``: the same night with the same
configuration is the same run, so re-running it changes nothing already done (ingest is
idempotent in the store; the screening is reused when its inputs are unchanged; the report,
CDMs and exports are rebuilt and replaced atomically, byte for byte the same).

Nothing here reads the clock or a config file on its own: :func:`load_config` reads the file
the caller names, and :func:`run` takes ``now``. One run at a time per store: :func:`run`
holds a POSIX lock (``fcntl.lockf``) on ``lock_file`` for its whole duration and raises
:class:`AlreadyRunning` at once when another process holds it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import math
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MarkingError, SsafuseError, UnknownFormatError
from ..files import expand_inputs, write_json, write_parquet
from ..formats.registry import known_extension
from ..ingestion import ingest
from ..versions import versions

#: Exit codes of ``ssafuse run`` (and :attr:`RunResult.exit_code`).
EXIT_OK, EXIT_WARNINGS, EXIT_FAILED, EXIT_ALREADY_RUNNING = 0, 1, 2, 3

log = logging.getLogger("ssafuse.run")

NS_PER_S = 10**9


class ConfigError(SsafuseError, ValueError):
    """A run configuration that cannot be used (names the file and the key)."""


class AlreadyRunning(SsafuseError):
    """Another run holds the store's lock."""

    def __init__(self, lock_file: Path, holder: str):
        self.lock_file = lock_file
        self.holder = holder
        super().__init__(f"another ssafuse run is active ({holder or 'holder unknown'}); "
                         f"lock {lock_file} is held. Nothing was done.")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Feed:
    """One configured feed: files (paths, folders, globs) of one source, with its default
    marking. ``precedence``: lower is more trusted (breaks ties between element sets of the
    same epoch in the catalogue)."""

    source: str
    paths: tuple[str, ...]
    format: str | None = None
    marking: str = "UNCLASSIFIED"
    precedence: int = 0


@dataclass(frozen=True)
class RunConfig:
    """A parsed run configuration; paths are absolute (resolved against the config file's
    folder). See ``examples/nightly.toml`` for every key with its default."""

    store: Path
    feeds: tuple[Feed, ...]
    lock_file: Path | None = None
    disagree_km: float = 5.0
    start: dt.datetime | None = None
    align_hours: float = 24.0
    days: float = 1.0
    threshold_km: float = 5.0
    primaries: tuple[int, ...] = ()
    workers: int | None = None
    dask: str | None = None
    pc: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    exports: tuple[str, ...] = ()
    correlate: dict | None = None
    source_file: Path | None = None

    @property
    def lock_path(self) -> Path:
        return self.lock_file or (self.store / "_run.lock")

    @property
    def report_primaries(self) -> list[int]:
        """Objects with a section of their own in the report: the screening's primaries,
        then ``report.primaries`` (our assets, when screening all-vs-all)."""
        return list(dict.fromkeys([*self.primaries,
                                   *(int(x) for x in self.report.get("primaries", []))]))

    @property
    def precedence(self) -> list[str]:
        order = sorted(range(len(self.feeds)), key=lambda k: (self.feeds[k].precedence, k))
        return list(dict.fromkeys(self.feeds[k].source for k in order))

    def settings(self) -> dict:
        """Everything that shapes the results (not where they go): hashed into the run id."""
        return {
            "feeds": [{"source": f.source, "paths": list(f.paths), "format": f.format,
                       "marking": f.marking, "precedence": f.precedence} for f in self.feeds],
            "catalogue": {"disagree_km": self.disagree_km},
            "screen": {"start": self.start.isoformat() if self.start else None,
                       "align_hours": self.align_hours, "days": self.days,
                       "threshold_km": self.threshold_km, "primaries": list(self.primaries)},
            "pc": self.pc, "report": self.report, "exports": list(self.exports),
            "correlate": self.correlate,
        }

    def settings_hash(self) -> str:
        text = json.dumps(self.settings(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


PC_DEFAULTS = {"hbr_m": 10.0, "write_cdms": "listed", "cdm_format": "kvn"}
REPORT_DEFAULTS = {"title": "ssafuse nightly conjunction report", "top": 20, "primaries": [],
                   "bands_km": [1.0, 2.0, 5.0], "change_tolerance_s": 60.0,
                   "shrink_min_km": 0.001}
_KEYS = {
    "": {"store", "lock_file", "feeds", "catalogue", "screen", "pc", "report", "exports",
         "correlate"},
    "feeds": {"source", "paths", "format", "marking", "precedence"},
    "catalogue": {"disagree_km"},
    "screen": {"start", "align_hours", "days", "threshold_km", "primaries", "workers", "dask"},
    "pc": set(PC_DEFAULTS) | {"hbr_table", "covariance_model"},
    "report": set(REPORT_DEFAULTS),
    "exports": {"release_to"},
    "correlate": {"sensors", "gate_arcmin", "max_age_days"},
}


def _check_keys(where: str, table: dict, path) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{where}] must be a table")
    unknown = set(table) - _KEYS[where]
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)} in "
                          f"[{where or 'top level'}]; expected some of {sorted(_KEYS[where])}")


def _parse_time(value, what: str, path) -> dt.datetime:
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{path}: {what} must be ISO-8601 UTC such as "
                              f"2026-03-10T00:00:00Z, got {value!r}") from None
    else:
        raise ConfigError(f"{path}: {what} must be a time, got {value!r}")
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read a run configuration (TOML). Relative paths are taken from the config file's
    folder. Raises :class:`ConfigError` naming the file and key for anything wrong: unknown
    keys, a marking that does not parse, an unknown format, a bad number."""
    from ..formats.registry import get_format
    from ..markings import parse as parse_marking

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    base = path.resolve().parent

    def resolve(p: str) -> str:
        p = os.path.expanduser(str(p))
        return os.path.normpath(p if os.path.isabs(p) else str(base / p))

    _check_keys("", raw, path)
    if "store" not in raw:
        raise ConfigError(f"{path}: 'store' (the store directory) is required")
    feeds = []
    raw_feeds = raw.get("feeds", [])
    if not isinstance(raw_feeds, list) or not raw_feeds:
        raise ConfigError(f"{path}: at least one [[feeds]] table is required")
    for k, f in enumerate(raw_feeds):
        _check_keys("feeds", f, path)
        if "source" not in f or "paths" not in f:
            raise ConfigError(f"{path}: feeds[{k}] needs 'source' and 'paths'")
        paths = f["paths"] if isinstance(f["paths"], list) else [f["paths"]]
        marking = f.get("marking", "UNCLASSIFIED")
        try:
            parse_marking(marking)
            if f.get("format"):
                get_format(f["format"])
        except (MarkingError, UnknownFormatError) as e:
            raise ConfigError(f"{path}: feeds[{k}] ({f['source']}): {e}") from None
        feeds.append(Feed(str(f["source"]), tuple(resolve(p) for p in paths), f.get("format"),
                          marking, int(f.get("precedence", k))))
    cat = raw.get("catalogue", {})
    _check_keys("catalogue", cat, path)
    scr = raw.get("screen", {})
    _check_keys("screen", scr, path)
    pc = raw.get("pc", {})
    _check_keys("pc", pc, path)
    rep = raw.get("report", {})
    _check_keys("report", rep, path)
    exp = raw.get("exports", {})
    _check_keys("exports", exp, path)
    release_to = exp.get("release_to", [])
    release_to = [release_to] if isinstance(release_to, str) else list(release_to)
    for code in release_to:
        if not (isinstance(code, str) and code.isalpha() and code.isupper()
                and 3 <= len(code) <= 4):
            raise ConfigError(f"{path}: exports.release_to takes country trigraphs such as "
                              f"'GBR', got {code!r}")
    corr = raw.get("correlate")
    if corr is not None:
        _check_keys("correlate", corr, path)
        sensors = corr.get("sensors", [])
        corr = dict(corr, sensors=[resolve(s) for s in
                                   (sensors if isinstance(sensors, list) else [sensors])])
    pc = dict(PC_DEFAULTS, **pc)
    if pc.get("hbr_table"):
        pc["hbr_table"] = resolve(pc["hbr_table"])
    try:
        cfg = RunConfig(
            store=Path(resolve(raw["store"])),
            lock_file=Path(resolve(raw["lock_file"])) if raw.get("lock_file") else None,
            feeds=tuple(feeds),
            disagree_km=float(cat.get("disagree_km", 5.0)),
            start=_parse_time(scr["start"], "screen.start", path) if "start" in scr else None,
            align_hours=float(scr.get("align_hours", 24.0)),
            days=float(scr.get("days", 1.0)),
            threshold_km=float(scr.get("threshold_km", 5.0)),
            primaries=tuple(int(x) for x in scr.get("primaries", [])),
            workers=int(scr["workers"]) if scr.get("workers") else None,
            dask=str(scr["dask"]) if scr.get("dask") else None,
            pc=pc,
            report=dict(REPORT_DEFAULTS, **rep),
            exports=tuple(release_to),
            correlate=corr,
            source_file=path.resolve(),
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from None
    if cfg.days <= 0 or cfg.threshold_km <= 0 or cfg.align_hours <= 0:
        raise ConfigError(f"{path}: screen.days, screen.threshold_km and screen.align_hours "
                          "must be positive")
    return cfg


def window_start(cfg: RunConfig, now: dt.datetime) -> dt.datetime:
    """The screening window's start: ``screen.start`` if set, else ``now`` floored to a
    multiple of ``screen.align_hours`` (default 24: midnight UTC), so that every run of the
    same night has the same window, hence the same run id."""
    if cfg.start is not None:
        return cfg.start
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    step = cfg.align_hours * 3600.0
    ts = math.floor(now.timestamp() / step) * step
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def run_id(cfg: RunConfig, start: dt.datetime) -> str:
    """``<window start, UTC, to the minute>-<first 8 hex of the settings hash>``."""
    return f"{start.astimezone(dt.timezone.utc):%Y%m%dT%H%MZ}-{cfg.settings_hash()[:8]}"


# ---------------------------------------------------------------------------------------------
# Lock
# ---------------------------------------------------------------------------------------------

_HELD: set[str] = set()


@contextlib.contextmanager
def run_lock(path: Path, *, now: dt.datetime | None = None):
    """Hold the run lock on ``path`` (created if absent) or raise :class:`AlreadyRunning`.

    A POSIX record lock (``fcntl.lockf``): owned by this process only, so worker processes
    forked while it is held do not keep it, and released by the kernel however the process
    ends (SIGKILL included) — a stale lock file never blocks the next night."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    if key in _HELD:
        raise AlreadyRunning(path, f"pid {os.getpid()} (this process)")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            raise AlreadyRunning(path, holder) from None
        _HELD.add(key)
        stamp = f" since {now.isoformat()}" if now else ""
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}{stamp}\n".encode(), 0)
        try:
            yield
        finally:
            _HELD.discard(key)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

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

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_FAILED
        return EXIT_WARNINGS if self.warnings else EXIT_OK


def _log(level: int, stage: str, msg: str, **fields) -> None:
    log.log(level, msg, extra={"stage": stage, "fields": fields})


class _Timer:
    def __init__(self, stage: Stage):
        self.stage = stage

    def __enter__(self):
        self.t0 = time.perf_counter()
        _log(logging.INFO, self.stage.name, "started")
        return self.stage

    def __exit__(self, *exc):
        self.stage.seconds = round(time.perf_counter() - self.t0, 3)
        if self.stage.status == "skipped":
            self.stage.status = "ok"
        _log(logging.INFO, self.stage.name, f"{self.stage.status} in {self.stage.seconds:.2f} s",
             seconds=self.stage.seconds, status=self.stage.status, **self.stage.counts)
        return False


def _feed_files(feed: Feed) -> tuple[list[str], list[str]]:
    """The feed's files, and the patterns (globs, folders) that matched nothing."""
    files, empty = [], []
    for p in feed.paths:
        got = expand_inputs([p], accept=known_extension())  # a plain path that does not exist is kept: refused later
        if not got:  # a glob, or a folder, with no file a format reads
            empty.append(p)
        files.extend(got)
    return list(dict.fromkeys(files)), empty


def _ingest_feed(store, feed: Feed, now: dt.datetime) -> dict:
    """Ingest one feed; returns its summary (never raises for a feed's own failure)."""
    files, empty = _feed_files(feed)
    out = {"source": feed.source, "marking": feed.marking, "format": feed.format,
           "paths": list(feed.paths), "files": [], "read": 0, "accepted": 0, "rejected": 0,
           "refused_files": 0, "status": "ok", "problems": []}
    for p in empty:
        out["problems"].append(f"{p}: matched no file")
    if files:
        report = ingest(store, files, source=feed.source, format=feed.format,
                              marking=feed.marking, now=now)
        for f in report.files:
            # ``status`` is what the store holds for the file (ingested / refused), the same
            # whether this run or an earlier one read it; ``this_run`` is what this run did.
            rec = {"uri": f.uri, "sha256": f.sha256, "format": f.format, "status": f.status,
                   "this_run": f.status, "read": f.read, "accepted": f.accepted,
                   "rejected": f.rejected, "message": f.message}
            if f.status == "already-ingested" and f.sha256:
                # the counts of the ingest that did it, so a re-run reports the same numbers
                prior = store.ledger_entry(feed.source, f.sha256) or {}
                rec.update(read=prior.get("read", 0), accepted=prior.get("accepted", 0),
                           rejected=prior.get("rejected", 0), format=prior.get("format"),
                           status=prior.get("status", "ingested"), message="")
                if rec["status"] == "refused":
                    rec["message"] = _refusal_reason(store, feed.source, f.sha256)
            if rec["status"] == "refused":
                out["refused_files"] += 1
                out["problems"].append(f"{f.uri}: refused: {rec['message']}")
            elif rec["read"] and not rec["accepted"]:
                out["problems"].append(f"{f.uri}: every record rejected ({rec['rejected']})")
            out["files"].append(rec)
            for k in ("read", "accepted", "rejected"):
                out[k] += rec[k]
    if not out["files"] or out["accepted"] == 0:
        out["status"] = "failed"
        if not out["problems"]:
            out["problems"].append("no record accepted")
    elif out["problems"]:
        out["status"] = "partial"
    return out


def _refusal_reason(store, source: str, sha: str) -> str:
    """The reason a file was refused as a whole, from its reject row (record 0)."""
    import pyarrow.compute as pc
    rows = store.table("rejects", columns=["source_sha256", "source_record", "reason"],
                       filter=(pc.field("source") == source) & (pc.field("source_sha256") == sha)
                       & (pc.field("source_record") == 0))
    return rows["reason"][0].as_py() if rows.num_rows else "refused"


def _table_fingerprint(entries: list[dict]) -> str:
    keys = sorted(f"{e.get('source')}/{e.get('sha256')}" for e in entries
                  if e.get("status") != "refused")
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def _assess(conjunctions: pa.Table, catalogue: pa.Table, pc: dict, cdm_dir: Path, *,
            creation_date: dt.datetime, cdms: pa.Table | None = None, primaries=(),
            top: int = 20) -> tuple[pa.Table, dict[str, str], str]:
    """The one switch to the assess stage: fill ``pc`` / ``max_pc`` and write CDMs through
    :mod:`ssafuse.assess`: ``pc.write_cdms`` ``"listed"`` (default: one per event the report
    lists, :func:`ssafuse.report.listed`), ``"all"`` / ``true`` (one per conjunction) or
    ``"none"`` / ``false``.

    Returns ``(conjunctions, CDM file relative to the run folder by event key, note)``;
    without ``ssafuse.assess`` the conjunctions come back unchanged (``pc`` null) with no
    CDMs and a note saying so. CDM files of an earlier attempt that this one did not write
    are removed, so the folder holds exactly this run's CDMs."""
    try:
        from .. import assessment as assess_mod
    except ImportError:
        return conjunctions, {}, "not assessed: ssafuse.assess is not installed"
    model = pc.get("covariance_model")
    model = {k: tuple(v) for k, v in model.items()} if model else None
    out = assess_mod.assess(conjunctions, hbr_m=pc.get("hbr_m"), hbr_table=pc.get("hbr_table"),
                            elements=catalogue, cdms=cdms, covariance_model=model)
    links: dict[str, str] = {}
    which = pc.get("write_cdms", "listed")
    if which not in (False, "none") and out.num_rows:
        subset = out
        if which == "listed":
            from ..report import listed
            subset = out.take(pa.array(listed(out, primaries, int(top)), pa.int64()))
        paths = assess_mod.write_cdms(subset, catalogue, cdm_dir, creation_date=creation_date,
                                      fmt=pc.get("cdm_format", "kvn"), covariance_model=model)
        for key, p in zip(event_keys(subset), paths):
            if p:
                links[key] = Path(os.path.relpath(p, cdm_dir.parent)).as_posix()
    if cdm_dir.exists():
        keep = {cdm_dir.parent / rel for rel in links.values()}
        for p in cdm_dir.iterdir():
            if p.is_file() and p not in keep:
                p.unlink()
    return out, links, ""


def event_keys(conjunctions: pa.Table) -> list[str]:
    """A stable key per conjunction row: ``<id1>-<id2>-<TCA ns>``."""
    a = conjunctions["object_id_1"].to_pylist()
    b = conjunctions["object_id_2"].to_pylist()
    t = conjunctions["tca"].cast(pa.int64()).to_pylist()
    return [f"{x}-{y}-{z}" for x, y, z in zip(a, b, t)]


def previous_run(store_root: Path, this_id: str, start: dt.datetime) -> Path | None:
    """The latest finished run of the store whose window starts before ``start``."""
    best, best_start = None, None
    runs = store_root / "runs"
    if not runs.exists():
        return None
    for d in runs.iterdir():
        if d.name == this_id or not (d / "manifest.json").exists() \
                or not (d / "conjunctions.parquet").exists():
            continue
        try:
            info = json.loads((d / "run.json").read_text())
            s = dt.datetime.fromisoformat(info["window_start"])
        except (OSError, ValueError, KeyError):
            continue
        if s < start and (best_start is None or s > best_start
                          or (s == best_start and d.name > best.name)):
            best, best_start = d, s
    return best


def run(cfg: RunConfig, *, now: dt.datetime,
        progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Run the nightly job once. ``now`` is the caller's clock (timezone-aware UTC): the
    ingest time, and the window start when the config sets none.

    Raises :class:`AlreadyRunning` when another run holds the lock (nothing is done); every
    other problem is recorded in the result (``warnings``: a feed failed, some files refused;
    ``errors``: a stage failed) and the stages that can still go on do.
    Logs one line per stage and per feed on the ``ssafuse.run`` logger."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    with run_lock(cfg.lock_path, now=now):
        return _run_locked(cfg, now, progress)


def _run_locked(cfg: RunConfig, now: dt.datetime, progress) -> RunResult:
    from ..store import Store

    t_run = time.perf_counter()
    store = Store(cfg.store)
    start = window_start(cfg, now)
    end = start + dt.timedelta(days=cfg.days)
    rid = run_id(cfg, start)
    run_dir = Path(cfg.store) / "runs" / rid
    run_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(rid, run_dir, [], [], [])
    # the run's creation time: the first attempt's ``now``, kept so that a re-run of the same
    # run writes the same CDMs (CREATION_DATE, MESSAGE_ID) rather than a second set
    created_file = run_dir / "created.json"
    try:
        created = dt.datetime.fromisoformat(json.loads(created_file.read_text())["created"])
    except (OSError, ValueError, KeyError):
        created = now
        write_json(created_file, {"created": now.isoformat()})
    _log(logging.INFO, "run", f"run {rid}: window {start.isoformat()} + {cfg.days:g} d, "
         f"{len(cfg.feeds)} feeds, store {cfg.store}", run_id=rid)

    def stage(name: str) -> _Timer:
        st = Stage(name)
        result.stages.append(st)
        return _Timer(st)

    def fail(st: Stage, e: BaseException) -> None:
        st.status = "failed"
        st.message = f"{type(e).__name__}: {e}"
        result.errors.append(f"{st.name}: {st.message}")
        _log(logging.ERROR, st.name, st.message)

    # -- ingest --------------------------------------------------------------------------
    feeds: list[dict] = []
    with stage("ingest") as st:
        for feed in cfg.feeds:
            try:
                info = _ingest_feed(store, feed, now)
            except Exception as e:  # a feed's failure never stops the others
                info = {"source": feed.source, "marking": feed.marking, "format": feed.format,
                        "paths": list(feed.paths), "files": [], "read": 0, "accepted": 0,
                        "rejected": 0, "refused_files": 0, "status": "failed",
                        "problems": [f"{type(e).__name__}: {e}"]}
            feeds.append(info)
            level = logging.INFO if info["status"] == "ok" else logging.WARNING
            _log(level, "ingest", f"feed {feed.source}: {info['status']}, "
                 f"{len(info['files'])} files, {info['accepted']} accepted, "
                 f"{info['rejected']} rejected" + (
                     "; " + "; ".join(info["problems"]) if info["problems"] else ""),
                 feed=feed.source, status=info["status"], accepted=info["accepted"],
                 rejected=info["rejected"], files=len(info["files"]))
            for p in info["problems"]:
                result.warnings.append(f"feed {feed.source}: {p}")
        st.counts = {"feeds": len(feeds),
                     "feeds_failed": sum(f["status"] == "failed" for f in feeds),
                     "files": sum(len(f["files"]) for f in feeds),
                     "read": sum(f["read"] for f in feeds),
                     "accepted": sum(f["accepted"] for f in feeds),
                     "rejected": sum(f["rejected"] for f in feeds)}
        if st.counts["feeds_failed"] or result.warnings:
            st.status = "warnings"

    # -- catalogue -----------------------------------------------------------------------
    from ..catalogue import build_catalogue
    catalogue = None
    fingerprint = _table_fingerprint(store.ledger_entries())
    with stage("catalogue") as st:
        try:
            elements = store.table("elements")
            catalogue = build_catalogue(elements, precedence=cfg.precedence,
                                        disagree_km=cfg.disagree_km)
            if catalogue.num_rows == 0:
                raise SsafuseError("no element sets in the store: nothing to screen")
            store.write("catalogue", catalogue, "catalogue.parquet")
            write_parquet(run_dir / "catalogue.parquet", catalogue)
            st.counts = {"element_sets": elements.num_rows, "objects": catalogue.num_rows,
                         "disagreeing": int(sum(catalogue["sources_disagree"].to_pylist()))}
            del elements
        except Exception as e:
            fail(st, e)
            catalogue = None

    # -- correlate -----------------------------------------------------------------------
    correlation_counts = None
    if cfg.correlate is not None and catalogue is not None:
        with stage("correlate") as st:
            try:
                correlation_counts = _correlate(cfg, store, run_dir, now)
                st.counts = correlation_counts
            except Exception as e:
                fail(st, e)

    # -- screen --------------------------------------------------------------------------
    conj = excluded = None
    if catalogue is not None:
        with stage("screen") as st:
            try:
                conj, excluded, reused = _screen(cfg, catalogue, start, run_dir, fingerprint,
                                                 progress)
                st.status = "reused" if reused else "ok"
                st.counts = {"conjunctions": conj.num_rows, "excluded": excluded.num_rows,
                             "objects": catalogue.num_rows}
            except Exception as e:
                fail(st, e)

    # -- assess --------------------------------------------------------------------------
    links: dict[str, str] = {}
    if conj is not None:
        with stage("assess") as st:
            try:
                conj, links, note = _assess(conj, catalogue, cfg.pc, run_dir / "cdm",
                                            creation_date=created, cdms=store.table("cdms"),
                                            primaries=cfg.report_primaries,
                                            top=cfg.report.get("top", 20))
                st.message = note
                st.counts = {"assessed": conj.num_rows if not note else 0, "cdms": len(links)}
            except Exception as e:
                fail(st, e)
            write_parquet(run_dir / "conjunctions.parquet", conj)
            store.write("conjunctions", conj, f"run-{rid}.parquet")

    # -- report --------------------------------------------------------------------------
    prev = previous_run(Path(cfg.store), rid, start)
    info = {
        "run_id": rid, "created": created.isoformat(), "window_start": start.isoformat(),
        "window_end": end.isoformat(), "days": cfg.days, "threshold_km": cfg.threshold_km,
        "primaries": cfg.report_primaries,
        "feeds": [dict(f, files=[{k: v for k, v in r.items() if k != "this_run"}
                                 for r in f["files"]]) for f in feeds],
        "previous_run": prev.name if prev else None, "cdm_links": links,
        "correlation": correlation_counts, "report": cfg.report,
        "settings_hash": cfg.settings_hash(),
        "config": str(cfg.source_file) if cfg.source_file else None,
    }
    write_json(run_dir / "run.json", info)
    summary = ""
    if conj is not None:
        from .. import report as report_mod
        with stage("report") as st:
            try:
                rep = report_mod.write_report(run_dir, run_dir)
                summary = rep.text
                st.counts = {"events": rep.counts["events"], "listed": rep.counts["listed"]}
                st.message = f"marking {rep.marking}"
            except Exception as e:
                fail(st, e)

    # -- exports -------------------------------------------------------------------------
    exports = {}
    if conj is not None and cfg.exports:
        from .. import export as export_mod
        with stage("exports") as st:
            for code in cfg.exports:
                try:
                    ex = export_mod.export_run(run_dir, code, run_dir / "exports" / code)
                    exports[code] = {"exported": ex.exported, "withheld": ex.withheld}
                    _log(logging.INFO, "exports", f"{code}: exported {ex.exported}, "
                         f"withheld {ex.withheld}", release_to=code)
                except Exception as e:
                    fail(st, e)
            st.counts = {"partners": len(exports)}

    # -- manifest ------------------------------------------------------------------------
    manifest = {
        "kind": "run", "run_id": rid, "now": now.isoformat(),
        "window_start": start.isoformat(), "window_end": end.isoformat(),
        "config": str(cfg.source_file) if cfg.source_file else None,
        "settings": cfg.settings(), "settings_hash": cfg.settings_hash(),
        "stages": [vars(s) for s in result.stages],
        "feeds": feeds, "exports": exports, "previous_run": info["previous_run"],
        "warnings": result.warnings, "errors": result.errors,
        "exit_code": result.exit_code,
        "duration_s": round(time.perf_counter() - t_run, 3),
        "versions": versions(),
    }
    result.manifest = manifest
    result.summary = _summary_text(result, summary, exports)
    write_json(run_dir / "manifest.json", manifest)
    write_json(Path(cfg.store) / "_manifests" /
                f"run-{now.astimezone(dt.timezone.utc):%Y%m%dT%H%M%S}-{rid}.json", manifest)
    _log(logging.INFO if not result.errors else logging.ERROR, "run",
         f"run {rid} finished: exit {result.exit_code}, {len(result.warnings)} warnings, "
         f"{len(result.errors)} errors, {manifest['duration_s']:.1f} s",
         exit_code=result.exit_code)
    return result


def _summary_text(result: RunResult, report_text: str, exports: dict) -> str:
    status = {EXIT_OK: "OK", EXIT_WARNINGS: "OK WITH WARNINGS", EXIT_FAILED: "FAILED"}[
        result.exit_code]
    lines = [f"ssafuse run {result.run_id}: {status}"]
    if report_text:
        lines.append(report_text.rstrip())
    for code, ex in exports.items():
        lines.append(f"export {code}: " + ", ".join(
            f"{k} {ex['exported'].get(k, 0)} exported / {v} withheld"
            for k, v in ex["withheld"].items()))
    for s in result.stages:
        lines.append(f"stage {s.name:<10} {s.status:<9} {s.seconds:8.2f} s"
                     + (f"  {s.message}" if s.message else ""))
    for w in result.warnings:
        lines.append(f"WARNING {w}")
    for e in result.errors:
        lines.append(f"ERROR {e}")
    lines.append(f"run folder: {result.run_dir}")
    return "\n".join(lines) + "\n"


def _correlate(cfg: RunConfig, store, run_dir: Path, now: dt.datetime) -> dict:
    from ..correlation import correlate
    from ..sensors import merge, read_sensors

    c = cfg.correlate or {}
    sensors = merge(*[read_sensors(f) for f in c.get("sensors", [])], store.table("sensors"))
    if c.get("sensors"):
        store.write("sensors", sensors, "sensors.parquet")
    now_ns = int(now.timestamp()) * NS_PER_S
    corr, rejects = correlate(store.table("observations"), store.table("elements"), sensors,
                              gate_arcmin=float(c.get("gate_arcmin", 30.0)),
                              max_age_days=float(c.get("max_age_days", 30.0)), now_ns=now_ns)
    write_parquet(run_dir / "correlations.parquet", corr)
    write_parquet(run_dir / "correlation_rejects.parquet", rejects)
    status = corr["status"].to_pylist()
    return {"observations": corr.num_rows, "correlated": status.count("correlated"),
            "uct": status.count("uct"), "unknown_sensor": rejects.num_rows}


def _screen(cfg: RunConfig, catalogue: pa.Table, start: dt.datetime, run_dir: Path,
            fingerprint: str, progress) -> tuple[pa.Table, pa.Table, bool]:
    """Screen the catalogue, or reuse this run's screening when its key is unchanged."""
    from ..schema import CONJUNCTIONS
    from ..screening import EXCLUDED, screen

    key = hashlib.sha256(json.dumps({
        "elements": fingerprint, "start": start.isoformat(), "days": cfg.days,
        "threshold_km": cfg.threshold_km, "primaries": list(cfg.primaries),
        "disagree_km": cfg.disagree_km, "precedence": cfg.precedence,
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
                 dask=cfg.dask)
    write_parquet(run_dir / "screened.parquet", res.conjunctions)
    write_parquet(run_dir / "excluded.parquet", res.excluded)
    write_json(marker, {"key": key, "stats": res.stats})
    return res.conjunctions, res.excluded, False

"""The nightly job's configuration: reading and checking the TOML file, and the run id.

:func:`load_config` reads the file the caller names (``examples/nightly.toml`` documents every
key with its default) into a :class:`RunConfig`; :func:`window_start` and :func:`run_id` give
the night a run screens and the run's name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import MarkingError, SsafuseError, UnknownFormatError
from ..assessment import MAX_PC_METHODS
from ..catalogue import DISAGREE_KM
from ..epochs import DISAGREE_MAX_GAP_DAYS, MAX_EPOCH_GAP_DAYS
from ..store import check_source, is_url
from ..formats.ccsds.cdm import VERSIONS as CDM_VERSIONS
from ..formats.declarative import DescriptionError
from ..fetch.remote import REMOTE_KEYS, SECRET_KEYS, Remote, remote_from_table
from ..formats.registry import formats, get_format
from ..markings import (Equivalences, active_equivalences, default_equivalences,
                        load_equivalences)
from ..markings import parse as parse_marking
from ..timeutil import parse_iso
from ..writers import DEFAULT_EXPORT_FORMATS, check_formats

__all__ = ["ConfigError", "Feed", "RunConfig", "PC_DEFAULTS", "REPORT_DEFAULTS", "load_config",
           "window_start", "run_id"]


class ConfigError(SsafuseError, ValueError):
    """A run configuration that cannot be used (names the file and the key)."""


@dataclass(frozen=True)
class Feed:
    """One configured feed: files (paths, folders, globs) of one source, or a ``remote``
    the run fetches (:mod:`ssafuse.fetch`), with its default marking. ``precedence``: lower
    is more trusted (breaks ties between element sets of the same epoch in the catalogue)."""

    source: str
    paths: tuple[str, ...]
    format: str | None = None
    marking: str = "UNCLASSIFIED"
    precedence: int = 0
    remote: Remote | None = None

    def settings(self) -> dict:
        out = {"source": self.source, "paths": list(self.paths), "format": self.format,
               "marking": self.marking, "precedence": self.precedence}
        if self.remote is not None:  # (only when set: earlier run ids are kept)
            out["remote"] = self.remote.settings()
        return out


@dataclass(frozen=True)
class RunConfig:
    """A parsed run configuration; paths are absolute (resolved against the config file's
    folder). See ``examples/nightly.toml`` for every key with its default."""

    #: a folder, or an fsspec URL (``s3://bucket/prefix``: kept as that string, see
    #: :mod:`ssafuse.nightly`)
    store: Path | str
    feeds: tuple[Feed, ...]
    lock_file: Path | None = None
    disagree_km: float = DISAGREE_KM
    #: ``[catalogue] disagree_max_gap_days``: sources are compared only when their element
    #: sets' epochs are this close (:mod:`ssafuse.epochs`)
    disagree_max_gap_days: float = DISAGREE_MAX_GAP_DAYS
    start: dt.datetime | None = None
    align_hours: float = 24.0
    days: float = 1.0
    threshold_km: float = 5.0
    primaries: tuple[int, ...] = ()
    workers: int | None = None
    dask: str | None = None
    #: ``[screen] max_epoch_gap_days``: element sets farther than this from the window are
    #: excluded from screening (:mod:`ssafuse.epochs`)
    max_epoch_gap_days: float = MAX_EPOCH_GAP_DAYS
    pc: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    exports: tuple[str, ...] = ()
    #: ``[exports] formats``: what each partner's export holds (:mod:`ssafuse.writers`).
    export_formats: tuple[str, ...] = DEFAULT_EXPORT_FORMATS
    correlate: dict | None = None
    #: ``[od]``: orbit determination between correlation and the catalogue
    #: (:mod:`ssafuse.od`; needs ``[correlate]``); ``None``: no OD
    od: dict | None = None
    source_file: Path | None = None
    #: Folders of the user's own feed descriptions (``formats_dir``), after the shipped ones.
    formats_dirs: tuple[str, ...] = ()
    #: The marking equivalence table the run parses markings with: ``[markings]
    #: equivalences``, else the process's active one (``--markings`` / ``$SSAFUSE_MARKINGS``)
    #: when the config was loaded; ``None`` (a config built in code): the active one.
    equivalences: Equivalences | None = field(default=None, compare=False)
    #: ``[storage_options]``: for a URL store, passed to its fsspec filesystem (e.g.
    #: ``endpoint_url``); credentials come from the environment, never from here
    storage_options: dict = field(default_factory=dict)
    #: ``work_dir``: for a URL store, the local folder the run folders are staged in
    #: (``None``: ``~/.cache/ssafuse/store-<hash of the URL>``)
    work_dir: Path | None = None
    #: ``lock_ttl_hours``: for a URL store, the run lock's lease (:mod:`ssafuse.nightly.lock`)
    lock_ttl_hours: float = 12.0

    @property
    def lock_path(self) -> Path | str:
        """The run lock: ``lock_file``, else ``STORE/_run.lock`` (an object on a URL store)."""
        if self.lock_file is None and isinstance(self.store, str):
            return self.store.rstrip("/") + "/_run.lock"
        return self.lock_file or (Path(self.store) / "_run.lock")

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
        """Everything that shapes the results (not where they go): hashed into the run id.
        ``formats_dir`` is there only when set, and ``markings`` (the equivalence table's
        digest) only when the table is not the shipped one, so that configurations without
        them keep their run ids."""
        out = {
            "feeds": [f.settings() for f in self.feeds],
            "catalogue": {"disagree_km": self.disagree_km},
            "screen": {"start": self.start.isoformat() if self.start else None,
                       "align_hours": self.align_hours, "days": self.days,
                       "threshold_km": self.threshold_km, "primaries": list(self.primaries)},
            "pc": self.pc, "report": self.report, "exports": list(self.exports),
            "correlate": self.correlate,
        }
        if self.formats_dirs:
            out["formats_dir"] = list(self.formats_dirs)
        if self.od is not None:
            out["od"] = self.od
        # (keys added later appear only when set otherwise: earlier run ids are kept)
        if self.disagree_max_gap_days != DISAGREE_MAX_GAP_DAYS:
            out["catalogue"]["disagree_max_gap_days"] = self.disagree_max_gap_days
        if self.max_epoch_gap_days != MAX_EPOCH_GAP_DAYS:
            out["screen"]["max_epoch_gap_days"] = self.max_epoch_gap_days
        if self.export_formats != DEFAULT_EXPORT_FORMATS:   # (a run id made before is kept)
            out["export_formats"] = list(self.export_formats)
        eq = self.equivalences
        if eq is not None and eq.digest != default_equivalences().digest:
            out["markings"] = {"equivalences_sha256": eq.digest}
        return out

    def settings_hash(self) -> str:
        text = json.dumps(self.settings(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


#: The longest window ``[screen] days`` may ask for.
MAX_DAYS = 60.0

PC_DEFAULTS = {"hbr_m": 10.0, "write_cdms": "listed", "cdm_format": "kvn"}
REPORT_DEFAULTS = {"title": "ssafuse nightly conjunction report", "top": 20, "primaries": [],
                   "bands_km": [1.0, 2.0, 5.0], "change_tolerance_s": 60.0,
                   "shrink_min_km": 0.001}
_KEYS = {
    "": {"store", "lock_file", "formats_dir", "feeds", "catalogue", "screen", "pc", "report",
         "exports", "correlate", "od", "markings", "storage_options", "work_dir",
         "lock_ttl_hours"},
    "feeds": {"source", "paths", "format", "marking", "precedence"} | REMOTE_KEYS,
    "catalogue": {"disagree_km", "disagree_max_gap_days"},
    "screen": {"start", "align_hours", "days", "threshold_km", "primaries", "workers", "dask",
               "max_epoch_gap_days"},
    "pc": set(PC_DEFAULTS) | {"hbr_table", "covariance_model", "cdm_version", "max_pc_method",
                              "complexes"},
    "report": set(REPORT_DEFAULTS),
    "exports": {"release_to", "formats"},
    "correlate": {"sensors", "gate_arcmin", "max_age_days"},
    "od": {"arc_days", "min_obs", "outlier_sigma", "fit_bstar", "prior_km", "source",
           "objects"},
    "markings": {"equivalences"},
}


def _check_keys(where: str, table: dict, path) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{where}] must be a table")
    unknown = set(table) - _KEYS[where]
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)} in "
                          f"[{where or 'top level'}]; expected some of {sorted(_KEYS[where])}")


def _table(raw: dict, where: str, path) -> dict:
    """The table ``[where]`` of the file (empty when absent), its keys checked."""
    table = raw.get(where, {})
    _check_keys(where, table, path)
    return table


def _parse_time(value, what: str, path) -> dt.datetime:
    if not isinstance(value, (str, dt.datetime)):
        raise ConfigError(f"{path}: {what} must be a time, got {value!r}")
    try:
        return parse_iso(value).astimezone(dt.timezone.utc)
    except ValueError:
        raise ConfigError(f"{path}: {what} must be ISO-8601 UTC such as "
                          f"2026-03-10T00:00:00Z, got {value!r}") from None


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _number(table: dict, key: str, default, where: str, path, *, lo: float | None = None,
            hi: float | None = None, lo_open: bool = False, integer: bool = False):
    """``[where] key`` as a finite number in its range (``default`` when absent): every
    numeric key of the file is read here, so NaN, infinities, booleans, text and values out
    of range are refused one way, naming the key and the range."""
    if key not in table:
        return default
    value = table[key]
    kind = "a whole number" if integer else "a number"
    ok = (isinstance(value, int) if integer else isinstance(value, (int, float))) \
        and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value <= hi
    if not ok:
        bounds = " and ".join(filter(None, (
            lo is not None and f"{'above' if lo_open else 'at least'} {lo:g}",
            hi is not None and f"at most {hi:g}")))
        raise ConfigError(f"{path}: {where + '.' if where else ''}{key} must be {kind}"
                          + (f" {bounds}" if bounds else "") + f", got {value!r}")
    return int(value) if integer else float(value)


def _numbers(table: dict, key: str, default: list, where: str, path, **limits) -> list:
    """``[where] key`` as a list of numbers, each checked as :func:`_number` checks one."""
    value = table.get(key, default)
    if not isinstance(value, list):
        raise ConfigError(f"{path}: {where}.{key} must be a list, got {value!r}")
    return [_number({key: v}, key, None, where, path, **limits) for v in value]


def _choice(table: dict, key: str, default: str, choices, where: str, path) -> str:
    value = table.get(key, default)
    if value not in choices:
        raise ConfigError(f"{path}: {where}.{key} must be one of "
                          f"{', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _formats_dirs(raw: dict, resolve, path, extra=()) -> tuple[str, ...]:
    """``formats_dir`` (then ``extra``, the caller's): each a folder whose descriptions load
    and take no name already registered (a user description never silently overrides
    another format)."""
    value = raw.get("formats_dir", [])
    dirs = _as_list(value)
    if not all(isinstance(d, str) and d for d in dirs):
        raise ConfigError(f"{path}: formats_dir takes a folder or a list of folders, "
                          f"got {value!r}")
    dirs = tuple(resolve(d) for d in dirs) + tuple(os.path.abspath(d) for d in extra)
    for d in dirs:
        if not os.path.isdir(d):
            raise ConfigError(f"{path}: formats_dir: {d} is not a folder")
    try:
        formats(dirs)
    except DescriptionError as e:
        raise ConfigError(f"{path}: formats_dir: {e}") from None
    return dirs


def _equivalences(raw: dict, resolve, path) -> Equivalences:
    """``[markings] equivalences``: the marking equivalence table (a TOML file), else the
    process's active one (``$SSAFUSE_MARKINGS``, ``--markings``, or the shipped table)."""
    value = _table(raw, "markings", path).get("equivalences")
    try:
        if value is None:
            return active_equivalences()
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: markings.equivalences takes the path of a TOML "
                              f"file, got {value!r}")
        return load_equivalences(resolve(value))
    except MarkingError as e:
        raise ConfigError(f"{path}: markings.equivalences: {e}") from None


def _feed(k: int, f: dict, resolve, formats_dirs: tuple[str, ...], path,
          equivalences: Equivalences | None) -> Feed:
    """``feeds[k]``, every key checked: a source name the store can hold, paths that are
    text (or a provider to fetch from, :func:`_remote`), a marking that parses, a format
    that exists, a whole-number precedence."""
    if SECRET_KEYS & set(f) or "provider" in f:
        remote = _remote(k, f, resolve, path)
    else:
        remote = None
    _check_keys("feeds", f, path)
    if "source" not in f or ("paths" not in f) == (remote is None):
        raise ConfigError(f"{path}: feeds[{k}] needs 'source', and either 'paths' (files) or "
                          "'provider' (a feed to fetch), not both")
    try:
        source = check_source(f["source"])
    except ValueError as e:
        raise ConfigError(f"{path}: feeds[{k}].source: {e}") from None
    paths = _as_list(f.get("paths", [])) if remote is None else ["(fetched)"]
    if not paths or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError(f"{path}: feeds[{k}] ({source}).paths takes a path or a list of "
                          f"paths, got {f['paths']!r}")
    marking, fmt = f.get("marking", "UNCLASSIFIED"), f.get("format")
    if not isinstance(marking, str) or not (fmt is None or isinstance(fmt, str)):
        raise ConfigError(f"{path}: feeds[{k}] ({source}): marking and format are text, got "
                          f"{marking!r} and {fmt!r}")
    try:
        parse_marking(marking, equivalences)
        if fmt:
            get_format(fmt, formats_dirs)
    except (MarkingError, UnknownFormatError) as e:
        raise ConfigError(f"{path}: feeds[{k}] ({source}): {e}") from None
    precedence = _number(f, "precedence", k, f"feeds[{k}]", path, integer=True)
    paths = () if remote is not None else tuple(resolve(p) for p in paths)
    return Feed(source, paths, fmt, marking, precedence, remote)


def _remote(k: int, f: dict, resolve, path) -> Remote:
    """``feeds[k]``'s request, when it names a provider (:func:`ssafuse.fetch.remote.
    remote_from_table` checks the keys; credentials in the file are refused there)."""
    try:
        remote = remote_from_table(f)
    except ValueError as e:
        raise ConfigError(f"{path}: feeds[{k}]: {e}") from None
    if remote.ca_file:
        remote = replace(remote, ca_file=resolve(remote.ca_file))
    return remote


def _feeds(raw: dict, resolve, formats_dirs: tuple[str, ...], path,
           equivalences: Equivalences | None = None) -> tuple[Feed, ...]:
    raw_feeds = raw.get("feeds", [])
    if not isinstance(raw_feeds, list) or not raw_feeds:
        raise ConfigError(f"{path}: at least one [[feeds]] table is required")
    return tuple(_feed(k, f, resolve, formats_dirs, path, equivalences)
                 for k, f in enumerate(raw_feeds))


def _release_to(exp: dict, path) -> tuple[str, ...]:
    release_to = _as_list(exp.get("release_to", []))
    for code in release_to:
        if not (isinstance(code, str) and code.isalpha() and code.isupper()
                and 3 <= len(code) <= 4):
            raise ConfigError(f"{path}: exports.release_to takes country trigraphs such as "
                              f"'GBR', got {code!r}")
    return tuple(release_to)


def _correlate(raw: dict, resolve, path) -> dict | None:
    corr = raw.get("correlate")
    if corr is None:
        return None
    _check_keys("correlate", corr, path)
    sensors = _as_list(corr.get("sensors", []))
    if not all(isinstance(p, str) and p for p in sensors):
        raise ConfigError(f"{path}: correlate.sensors takes a path or a list of paths, "
                          f"got {corr['sensors']!r}")
    for key, hi in (("gate_arcmin", 10800.0), ("max_age_days", None)):
        _number(corr, key, None, "correlate", path, lo=0, lo_open=True, hi=hi)  # (as written)
    return dict(corr, sensors=[resolve(p) for p in sensors])


def _od(raw: dict, path, corr: dict | None) -> dict | None:
    """``[od]``: the keys of :class:`ssafuse.od.OdSettings` a run may set, checked."""
    od = raw.get("od")
    if od is None:
        return None
    _check_keys("od", od, path)
    if corr is None:
        raise ConfigError(f"{path}: [od] fits correlated observations: it needs [correlate]")
    _number(od, "arc_days", None, "od", path, lo=0, lo_open=True, hi=365.0)
    _number(od, "outlier_sigma", None, "od", path, lo=1.0, hi=None)
    _number(od, "prior_km", None, "od", path, lo=0, lo_open=True, hi=None)
    if "min_obs" in od and not (isinstance(od["min_obs"], int) and od["min_obs"] >= 3):
        raise ConfigError(f"{path}: od.min_obs takes a whole number of at least 3, "
                          f"got {od['min_obs']!r}")
    if od.get("fit_bstar", "auto") not in ("auto", True, False):
        raise ConfigError(f"{path}: od.fit_bstar takes \"auto\", true or false, "
                          f"got {od['fit_bstar']!r}")
    if "source" in od:
        try:
            check_source(od["source"])
        except ValueError as e:
            raise ConfigError(f"{path}: od.source: {e}") from None
    objects = _as_list(od.get("objects", []))
    if not all(isinstance(o, int) and o > 0 for o in objects):
        raise ConfigError(f"{path}: od.objects takes NORAD numbers, got {od['objects']!r}")
    return dict(od, objects=objects)


def _export_formats(exp: dict, path) -> tuple[str, ...]:
    try:
        return check_formats(exp.get("formats", DEFAULT_EXPORT_FORMATS))
    except ValueError as e:
        raise ConfigError(f"{path}: exports.formats: {e}") from None


#: ``[pc] write_cdms``: which events get a CDM in the run folder.
WRITE_CDMS = ("listed", "all", "none")


def _pc(raw: dict, resolve, path) -> dict:
    table = _table(raw, "pc", path)
    pc = dict(PC_DEFAULTS, **table)
    _choice(pc, "cdm_format", "kvn", ("kvn", "xml"), "pc", path)
    _choice(pc, "write_cdms", "listed", WRITE_CDMS, "pc", path)
    if pc.get("cdm_version", "1.0") not in CDM_VERSIONS:
        raise ConfigError(f"{path}: pc.cdm_version must be '1.0' (CCSDS 508.0-B-1) or '2.0', "
                          f"got {pc['cdm_version']!r}")
    _number(table, "hbr_m", None, "pc", path, lo=0, hi=1000.0)  # (kept as written: hashed)
    _choice(pc, "max_pc_method", "socrates", MAX_PC_METHODS, "pc", path)
    if "complexes" in pc:
        cx = pc["complexes"]
        if not isinstance(cx, dict):
            raise ConfigError(f"{path}: pc.complexes takes a table of station names and NORAD "
                              f"numbers such as {{ ISS = 25544 }}, got {cx!r}")
        for name, number in cx.items():
            _number({name: number}, name, None, "pc.complexes", path, lo=1,
                    hi=999_999_999, integer=True)
    if "covariance_model" in pc and not isinstance(pc["covariance_model"], dict):
        raise ConfigError(f"{path}: pc.covariance_model must be a table of object types, "
                          f"got {pc['covariance_model']!r}")
    if pc.get("hbr_table"):
        if not isinstance(pc["hbr_table"], str):
            raise ConfigError(f"{path}: pc.hbr_table takes a path, got {pc['hbr_table']!r}")
        pc["hbr_table"] = resolve(pc["hbr_table"])
    return pc


def _report(raw: dict, path) -> dict:
    """``[report]`` with its defaults, every value checked (kept as written: the values are
    hashed into the run id)."""
    rep = _table(raw, "report", path)
    out = dict(REPORT_DEFAULTS, **rep)
    if not isinstance(out["title"], str):
        raise ConfigError(f"{path}: report.title must be text, got {out['title']!r}")
    _number(rep, "top", None, "report", path, lo=0, integer=True)
    _ids(rep, "primaries", "report", path)
    _numbers(rep, "bands_km", [], "report", path, lo=0, lo_open=True)
    for key in ("change_tolerance_s", "shrink_min_km"):
        _number(rep, key, None, "report", path, lo=0)
    return out


def _ids(table: dict, key: str, where: str, path) -> list[int]:
    """``[where] key``: NORAD catalogue numbers, a list of whole numbers (never text, which
    would be read digit by digit)."""
    value = table.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{path}: {where}.{key} takes a list of NORAD numbers such as "
                          f"[25544], got {value!r}")
    return [_number({key: v}, key, None, where, path, lo=1, hi=999_999_999, integer=True)
            for v in value]


def _screen(raw: dict, path) -> dict:
    """``[screen]``, every value checked (window length, threshold, workers, ...)."""
    scr = _table(raw, "screen", path)
    dask = scr.get("dask")
    if dask is not None and not (isinstance(dask, str) and dask):
        raise ConfigError(f"{path}: screen.dask takes a scheduler address, got {dask!r}")
    return {
        "start": _parse_time(scr["start"], "screen.start", path) if "start" in scr else None,
        "align_hours": _number(scr, "align_hours", 24.0, "screen", path, lo=0, lo_open=True,
                               hi=24.0 * 7),
        "days": _number(scr, "days", 1.0, "screen", path, lo=0, lo_open=True, hi=MAX_DAYS),
        "threshold_km": _number(scr, "threshold_km", 5.0, "screen", path, lo=0,
                                lo_open=True, hi=1000.0),
        "primaries": tuple(_ids(scr, "primaries", "screen", path)),
        "workers": _number(scr, "workers", None, "screen", path, lo=1, hi=4096, integer=True),
        "dask": dask,
        "max_epoch_gap_days": _number(scr, "max_epoch_gap_days", MAX_EPOCH_GAP_DAYS, "screen",
                                      path, lo=0, lo_open=True),
    }


def _catalogue(raw: dict, path) -> dict:
    cat = _table(raw, "catalogue", path)
    return {"disagree_km": _number(cat, "disagree_km", DISAGREE_KM, "catalogue", path, lo=0),
            "disagree_max_gap_days": _number(cat, "disagree_max_gap_days",
                                             DISAGREE_MAX_GAP_DAYS, "catalogue", path, lo=0)}


def load_config(path: str | os.PathLike, *, formats_dirs=()) -> RunConfig:
    """Read a run configuration (TOML). Relative paths are taken from the config file's
    folder. ``formats_dirs``: folders of feed descriptions to use besides the config's own
    ``formats_dir`` (the command line passes ``$SSAFUSE_FORMATS_DIR``). Raises
    :class:`ConfigError` naming the file and key for anything wrong: unknown keys, a marking
    that does not parse, an unknown format, a bad number, a bad ``[markings] equivalences``
    table (feeds' markings are parsed with that table)."""
    extra_formats_dirs = tuple(formats_dirs)
    path = Path(path)
    raw = _read_toml(path)
    base = path.resolve().parent

    def resolve(p: str) -> str:
        p = os.path.expanduser(str(p))
        return os.path.normpath(p if os.path.isabs(p) else str(base / p))

    _check_keys("", raw, path)
    if "store" not in raw:
        raise ConfigError(f"{path}: 'store' (the store directory) is required")
    formats_dirs = _formats_dirs(raw, resolve, path, extra_formats_dirs)
    equivalences = _equivalences(raw, resolve, path)
    feeds = _feeds(raw, resolve, formats_dirs, path, equivalences)
    pc = _pc(raw, resolve, path)
    rep = _report(raw, path)
    exp = _table(raw, "exports", path)
    release_to, export_formats = _release_to(exp, path), _export_formats(exp, path)
    corr = _correlate(raw, resolve, path)
    od = _od(raw, path, corr)
    for key in ("store", "lock_file", "work_dir"):
        if key in raw and not (isinstance(raw[key], str) and raw[key]):
            raise ConfigError(f"{path}: {key} takes a path, got {raw[key]!r}")
    return RunConfig(
        **_store(raw, resolve, path),
        lock_file=Path(resolve(raw["lock_file"])) if raw.get("lock_file") else None,
        feeds=feeds, **_catalogue(raw, path), **_screen(raw, path),
        pc=pc, report=rep, exports=release_to, export_formats=export_formats,
        correlate=corr, od=od, source_file=path.resolve(), formats_dirs=formats_dirs,
        equivalences=equivalences,
    )


#: ``[storage_options]`` keys refused: credentials belong in the environment, not a file
_SECRET_OPTIONS = {"key", "secret", "token", "password", "aws_access_key_id",
                   "aws_secret_access_key", "aws_session_token", "account_key", "sas_token",
                   "client_secret", "credential", "credentials"}


def _store(raw: dict, resolve, path) -> dict:
    """``store`` (a folder, resolved; or an fsspec URL, kept as written), and the keys only
    a URL store takes: ``storage_options``, ``work_dir``, ``lock_ttl_hours``."""
    store = raw["store"]
    if not (isinstance(store, str) and store):
        raise ConfigError(f"{path}: store takes a path or a URL, got {store!r}")
    if not is_url(store):
        for key in ("storage_options", "work_dir", "lock_ttl_hours"):
            if key in raw:
                raise ConfigError(f"{path}: {key} is for a store at a URL (s3://...); "
                                  f"store {store!r} is a folder")
        return {"store": Path(resolve(store))}
    if "lock_file" in raw:
        raise ConfigError(f"{path}: lock_file is for a store on a local disk; a store at a "
                          "URL is locked by the object STORE/_run.lock")
    options = raw.get("storage_options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: [storage_options] must be a table")
    secret = sorted(k for k in options if k.lower() in _SECRET_OPTIONS)
    if secret:
        raise ConfigError(f"{path}: [storage_options] {secret}: credentials come from the "
                          "environment (AWS_ACCESS_KEY_ID, ... or an instance role), never "
                          "from the configuration file")
    ttl = raw.get("lock_ttl_hours", 12.0)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
        raise ConfigError(f"{path}: lock_ttl_hours takes a number of hours > 0, got {ttl!r}")
    return {"store": store.rstrip("/"), "storage_options": dict(options),
            "work_dir": Path(resolve(raw["work_dir"])) if raw.get("work_dir") else None,
            "lock_ttl_hours": float(ttl)}


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

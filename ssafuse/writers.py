"""Every file format ssafuse writes for others, one registry: ``EXPORT_FORMATS`` names what a
partner may ask for (``[exports] formats``, ``ssafuse export --format``), and
:func:`write_formats` writes the ones asked for into an export folder::

    parquet        conjunctions.parquet, catalogue.parquet, excluded.parquet (always: the
                   report is built from them)
    cdm            cdm/<MESSAGE_ID>.cdm|.xml: CCSDS CDM of each event the report lists
                   ([pc] cdm_format, cdm_version)
    omm-xml        catalogue.omm.xml: the catalogue as CCSDS OMM 2.0, one NDM/XML document
    omm-kvn        catalogue.omm: the catalogue as OMM 2.0 KVN, one message after another
    omm-json       catalogue.json: the catalogue as CelesTrak GP JSON
    tle            catalogue.tle: the catalogue as 3LE (Alpha-5 numbers), with its marking in
                   catalogue.tle.marking.txt
    csv            conjunctions.csv: every event, with RIC, Pc, max Pc and marking columns
    socrates-csv   conjunctions-socrates.csv: SOCRATES's 11 columns

Each file carries its marking: OMM and CDM in every message (``COMMENT CLASSIFICATION: ...``,
CDM 2.0's ``CLASSIFICATION``), the CSV files in a first banner line (``# CLASSIFICATION:
...``, the marking over all their rows), the TLE file in its sidecar (a TLE line has no place
for it). A record a format cannot hold (an object number above Alpha-5's 339999 as a TLE) is
refused with its reason and counted, never truncated. Every file is written atomically.

**Text fields** reach no file raw when they hold control characters (a hostile feed's
``"EVIL\\nCOLLISION_PROBABILITY = 0.99"``): :func:`visible` writes each such character as a
visible escape (``\\n``, ``\\x00``, ``\\u2028``) in the CSV files and the report; the strict
OMM, TLE and CDM writers refuse the record instead, and count it.

**What may be removed.** ssafuse writes into a folder a user names (``ssafuse export --out
DIR``), so it removes only files it listed as written there before (the previous
``export.json``'s ``written``, a CDM folder's :data:`CDM_LISTING`) and does not write now
(:func:`remove_stale`): never a user's file, a subfolder, or a file it cannot show it wrote.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pyarrow as pa

from . import markings as mk
from .attached import attached_mask, repeats
from .files import atomic_write_bytes
from .formats import tle
from .formats.ccsds import omm_write
from .timeutil import format_epoch, to_ns

__all__ = ["EXPORT_FORMATS", "DEFAULT_EXPORT_FORMATS", "FILES", "DESCRIPTIONS", "check_formats",
           "write_formats", "conjunctions_csv", "socrates_csv", "SOCRATES_COLUMNS", "visible",
           "files_of", "remove_stale", "CDM_LISTING", "read_listing"]

#: What a partner may ask for, in the order they are written: ``format -> (file,
#: description)`` (``ssafuse formats`` prints it).
DESCRIPTIONS = {
    "parquet": ("*.parquet", "conjunctions, catalogue, excluded (Arrow schemas of ssafuse.schema)"),
    "cdm": ("cdm/*.cdm|*.xml", "CCSDS 508.0 CDM per listed event, KVN or XML, version 1.0 "
            "(default) or 2.0"),
    "omm-xml": ("catalogue.omm.xml", "CCSDS 502.0-B-2 OMM 2.0 per object, NDM/XML 1.0"),
    "omm-kvn": ("catalogue.omm", "CCSDS 502.0-B-2 OMM 2.0 per object, KVN"),
    "omm-json": ("catalogue.json", "the catalogue as CelesTrak GP JSON (OMM keywords)"),
    "tle": ("catalogue.tle", "the catalogue as 3LE, Alpha-5 numbers; marking in a sidecar"),
    "csv": ("conjunctions.csv", "every event: RIC, Pc, max Pc, provenance and marking columns"),
    "socrates-csv": ("conjunctions-socrates.csv", "every event in SOCRATES's 11 CSV columns"),
}
EXPORT_FORMATS = tuple(DESCRIPTIONS)
#: What an export holds when the configuration names no formats (as before they existed).
DEFAULT_EXPORT_FORMATS = ("parquet", "cdm")
#: The file each format writes here (parquet and cdm are written by the export itself).
FILES = {f: DESCRIPTIONS[f][0] for f in EXPORT_FORMATS if f not in DEFAULT_EXPORT_FORMATS}

#: The sidecar beside a file whose format has no place for a marking (TLE).
SIDECAR = ".marking.txt"

#: SOCRATES's CSV columns (CelesTrak SOCRATES Plus "download CSV"): km, km/s, days.
SOCRATES_COLUMNS = ("NORAD_CAT_ID_1", "OBJECT_NAME_1", "DSE_1", "NORAD_CAT_ID_2",
                    "OBJECT_NAME_2", "DSE_2", "TCA", "TCA_RANGE", "TCA_RELATIVE_SPEED",
                    "MAX_PROB", "DILUTION")

#: The plain CSV's columns: the conjunctions table's (units in the header), times as
#: ISO-8601 UTC, releasable_to as space-separated codes.
CSV_COLUMNS = (
    "object_id_1", "object_name_1", "object_id_2", "object_name_2", "tca",
    "miss_distance_km", "relative_speed_km_s", "radial_km", "in_track_km", "cross_track_km",
    "dse_1_days", "dse_2_days", "co_located", "attached", "attached_group", "pc", "pc_method",
    "max_pc", "max_pc_sigma_km", "max_pc_method", "max_pc_isotropic",
    "max_pc_isotropic_sigma_km", "hbr_m", "hbr_source", "threshold_km", "window_start",
    "window_end", "source_1", "epoch_1", "source_2", "epoch_2", "classification",
    "releasable_to", "marking")


def check_formats(formats) -> tuple[str, ...]:
    """``formats`` as a tuple, each one of :data:`EXPORT_FORMATS` (``ValueError`` naming the
    unknown ones), in :data:`EXPORT_FORMATS` order, parquet always included."""
    asked = [formats] if isinstance(formats, str) else list(formats)
    unknown = [f for f in asked if f not in EXPORT_FORMATS]
    if unknown or not all(isinstance(f, str) for f in asked):
        raise ValueError(f"unknown export format(s) {unknown or asked}; expected some of "
                         f"{', '.join(EXPORT_FORMATS)}")
    return tuple(f for f in EXPORT_FORMATS if f in asked or f == "parquet")


def files_of(formats) -> list[str]:
    """The files the formats of ``formats`` other than parquet and cdm write (with the TLE's
    marking sidecar), in :data:`EXPORT_FORMATS` order."""
    out = []
    for fmt in check_formats(formats):
        if fmt in FILES:
            out.append(FILES[fmt])
            if fmt == "tle":
                out.append(FILES[fmt] + SIDECAR)
    return out


# ---------------------------------------------------------------------------------------------
# Text that reaches a file: control characters made visible
# ---------------------------------------------------------------------------------------------

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
#: Every character of Unicode category Cc (C0, DEL, C1), the line and paragraph separators
#: U+2028 / U+2029, the bidirectional overrides and isolates U+202A-U+202E / U+2066-U+2069
#: (they reorder what a reader sees), and lone surrogates (not encodable as UTF-8).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                        "\ud800-\udfff]")


def _escape(m: re.Match) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def visible(value):
    r"""``value`` with every control character written as a visible escape: ``\t``,
    ``\n``, ``\r``, else ``\xNN`` (Unicode category Cc) or ``\uNNNN`` (U+2028, U+2029,
    bidirectional controls, lone surrogates). Anything not a ``str`` is returned as it is
    (so is text without such characters)."""
    if not isinstance(value, str) or not _INVISIBLE.search(value):
        return value
    return _INVISIBLE.sub(_escape, value)


# ---------------------------------------------------------------------------------------------
# What ssafuse may remove from a folder: only what it listed as written there
# ---------------------------------------------------------------------------------------------

#: The listing a CDM folder keeps of the files ssafuse wrote into it (hidden: a folder of
#: CDMs given to ``ssafuse ingest`` skips it).
CDM_LISTING = ".ssafuse-written.json"


def read_listing(path: Path) -> list[str]:
    """The file names a listing (JSON: ``{"written": [...]}``) or an ``export.json``
    (its ``written``) holds; ``[]`` when it is absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    names = data.get("written") if isinstance(data, dict) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _inside(folder: Path, rel: str) -> Path | None:
    """``folder / rel`` when ``rel`` is a plain relative path below ``folder`` (no ``..``,
    not absolute), else ``None``."""
    norm = os.path.normpath(rel)
    if (not rel or os.path.isabs(rel) or norm.startswith("..") or norm == "."
            or "\x00" in rel):
        return None
    path = folder / norm
    try:
        path.parent.resolve().relative_to(folder.resolve())
    except (OSError, ValueError):
        return None
    return path


def remove_stale(folder: Path, previous, kept) -> list[str]:
    """Remove from ``folder`` each file of ``previous`` (paths relative to it, as a listing
    holds them) that is not in ``kept``, and nothing else: a name outside the folder, a
    folder, a link or anything not a plain file is left alone. Returns the names removed."""
    keep = {os.path.normpath(k) for k in kept}
    gone = []
    for rel in sorted(set(previous)):
        if not isinstance(rel, str) or os.path.normpath(rel) in keep:
            continue
        path = _inside(Path(folder), rel)
        if path is None or path.is_symlink() or not path.is_file():
            continue
        path.unlink()
        gone.append(rel)
    return gone


def _iso(value) -> str:
    return format_epoch(to_ns(value)) + "Z"


def _banner(table: pa.Table, floor: pa.Table | None = None) -> str:
    """The marking over every row of ``table``; an empty ``table`` takes ``floor``'s (the
    export's catalogue: a file of an export never reads lower than the data it was made
    from), UNCLASSIFIED when both are empty."""
    if not table.num_rows and floor is not None:
        table = floor
    parts = zip(table["classification"].to_pylist(), table["releasable_to"].to_pylist(),
                table["marking"].to_pylist())
    return str(mk.overall(parts))


def _csv_text(header: list[str], rows, banner: str) -> str:
    """A banner line ``# CLASSIFICATION: ...``, the header, the rows (text fields through
    :func:`visible`: a field holding a line break or a NUL stays one field of one line)."""
    buf = io.StringIO()
    buf.write(f"# {mk.marking_comment(banner)}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([visible(v) for v in row] for row in rows)  # one line per row, always
    return buf.getvalue()


def conjunctions_csv(conj: pa.Table, floor: pa.Table | None = None) -> str:
    """Every event of ``conj`` (schema ``conjunctions``) as CSV: a banner line with the
    marking over all rows (``floor``'s when there are none, see :func:`_banner`), a header,
    one row per event (full precision, empty for null)."""
    times = {"tca", "window_start", "window_end", "epoch_1", "epoch_2"}
    # times as int ns: formatting them is then pure Python, not an Arrow cast per value
    cols = {c: (conj[c].cast(pa.int64()) if c in times else conj[c]).to_pylist()
            for c in CSV_COLUMNS}
    rows = []
    for i in range(conj.num_rows):
        row = []
        for c in CSV_COLUMNS:
            v = cols[c][i]
            if v is None:
                row.append("")
            elif c in times:
                row.append(_iso(v))
            elif c == "releasable_to":
                row.append(" ".join(v))
            elif isinstance(v, float):
                row.append(repr(v))
            else:
                row.append(str(v).lower() if isinstance(v, bool) else str(v))
        rows.append(row)
    return _csv_text(list(CSV_COLUMNS), rows, _banner(conj, floor))


def socrates_csv(conj: pa.Table, floor: pa.Table | None = None) -> str:
    """``conj`` in SOCRATES's CSV layout (:data:`SOCRATES_COLUMNS`): TCA as
    ``YYYY-MM-DD hh:mm:ss.sss`` UTC, range and dilution in km, speed in km/s, days since epoch
    to 3 decimals, MAX_PROB to 4 significant digits; DILUTION empty where max Pc is 1 (no
    dilution), MAX_PROB empty where not assessed. After a banner line with the marking.
    Attached objects (docked to a station, ``attached``) are no conjunction: left out; a
    pass by a complex is listed once (:func:`ssafuse.attached.repeats`)."""
    rows = []
    conj = conj.filter(pa.array(~attached_mask(conj) & ~repeats(conj)))
    sel = conj.select(["object_id_1", "object_name_1", "dse_1_days", "object_id_2",
                       "object_name_2", "dse_2_days", "tca", "miss_distance_km",
                       "relative_speed_km_s", "max_pc", "max_pc_sigma_km"])
    sel = sel.set_column(6, "tca", sel["tca"].cast(pa.int64()))
    for r in sel.to_pylist():
        tca = format_epoch(r["tca"])
        rows.append([
            r["object_id_1"], r["object_name_1"] or "", f"{r['dse_1_days']:.3f}",
            r["object_id_2"], r["object_name_2"] or "", f"{r['dse_2_days']:.3f}",
            f"{tca[:10]} {tca[11:23]}", f"{r['miss_distance_km']:.3f}",
            f"{r['relative_speed_km_s']:.3f}",
            "" if r["max_pc"] is None else f"{r['max_pc']:.3E}",
            "" if r["max_pc_sigma_km"] is None else f"{r['max_pc_sigma_km']:.3f}"])
    return _csv_text(list(SOCRATES_COLUMNS), rows, _banner(conj, floor))


def write_formats(out_dir: Path, formats, *, conjunctions: pa.Table, catalogue: pa.Table,
                  creation_date, originator: str = "SSAFUSE", previous=()) -> dict[str, dict]:
    """Write the files of ``formats`` other than parquet and cdm (written by the export) into
    ``out_dir``. Returns, per file name, ``{"format", "written", "refused", "reasons"}``:
    records written, records the format cannot hold and why (reason -> count; each writer's
    refusals are :class:`ssafuse.formats.ccsds.omm_write.Refused`), and ``"sidecar"`` for
    the TLE's marking file.

    ``previous``: what an earlier call wrote into ``out_dir`` (its returned dict, or file
    names): those of its files of formats no longer asked for are removed
    (:func:`remove_stale`); nothing else in ``out_dir`` is touched."""
    out_dir = Path(out_dir)
    if isinstance(previous, dict):
        previous = [n for name, f in previous.items()
                    for n in (name, (f or {}).get("sidecar") if isinstance(f, dict) else None)
                    if n]
    out: dict[str, dict] = {}
    for fmt in formats:
        name = FILES.get(fmt)
        if name is None:
            continue
        refused: list = []
        if fmt == "csv":
            text, written = conjunctions_csv(conjunctions, catalogue), conjunctions.num_rows
        elif fmt == "socrates-csv":
            text, written = socrates_csv(conjunctions, catalogue), conjunctions.num_rows
        elif fmt == "tle":
            text, refused = tle.dumps(catalogue, sidecar=True)
            written = catalogue.num_rows - len(refused)
            atomic_write_bytes(out_dir / (name + SIDECAR),
                               (mk.marking_comment(_banner(catalogue)) + "\n").encode())
        elif fmt == "omm-json":
            text, refused = omm_write.dumps_json(catalogue)
            written = catalogue.num_rows - len(refused)
        else:
            dump = omm_write.dumps_xml if fmt == "omm-xml" else omm_write.dumps_kvn
            text, refused = dump(catalogue, originator=originator, creation_date=creation_date)
            written = catalogue.num_rows - len(refused)
        atomic_write_bytes(out_dir / name, text.encode("utf-8"))
        reasons: dict[str, int] = {}
        for r in refused:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        out[name] = {"format": fmt, "written": written, "refused": len(refused),
                     "reasons": reasons}
        if fmt == "tle":
            out[name]["sidecar"] = name + SIDECAR
    ours = set(files_of(EXPORT_FORMATS))   # only format files: the caller's others are its own
    remove_stale(out_dir, [n for n in previous if n in ours], files_of(formats))
    return out

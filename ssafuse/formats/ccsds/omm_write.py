"""Strict OMM writers: CCSDS 502.0-B-2 KVN, NDM/XML 1.0 (OMM 2.0) and CelesTrak-style GP JSON.

Input is a pyarrow table with the columns of :data:`ssafuse.schema.ELEMENTS` (or
:data:`~ssafuse.schema.CATALOGUE`): one OMM per row. The keywords, their order (502.0-B-2
tables 4-1 to 4-4), units, ranges and which JSON keys exist are data, in
``keywords/omm.csv``; every writer iterates that table, so the order lives in one place.

Units (as KVN ``[...]`` and XML ``units="..."``, spelt as the NDM/XML 1.0 schema's
enumerations): MEAN_MOTION rev/day, angles deg, BSTAR 1/ER (inverse Earth radii),
MEAN_MOTION_DOT rev/day**2, MEAN_MOTION_DDOT rev/day**3. Numbers are written with Python's
shortest round-tripping text (``repr``), so every reader that parses decimal text to the nearest
double gets the table's values back bit for bit; epochs keep their nanoseconds (6 fraction
digits when that is exact, as CelesTrak writes, else 9).

**Refusals.** Every writer returns ``(text, refused)``: the messages of the rows that can be
written, and a :class:`Refused` for each row that cannot (a non-finite number, a value outside
the schema's range or outside what :func:`ssafuse.formats.base.validate_elements` reads back,
an empty required text, control characters in a name, a marking that cannot be carried...).
A refused row is never written in part, nor silently dropped. Errors of the caller (a
``creation_date`` that is not a time, an ``originator`` that cannot be written, a missing
column) raise :class:`ValueError`.

**Markings.** The row's whole marking goes in a header ``COMMENT CLASSIFICATION: ...`` line
(OMM 2.0 has no marking keyword; a ``"COMMENT"`` key in JSON, which GP readers ignore), and its
level's TLE-style letter (``U``, ``R``, ``C``, ``S``, ``TS``) in ``CLASSIFICATION_TYPE``, as
CelesTrak and python-sgp4 expect one letter there. ssafuse's OMM reader takes the comment's
marking (:func:`ssafuse.markings.comment_marking`), so a message read back says exactly what
the row said; the comment is always written.
"""

from __future__ import annotations

import csv
import json
import math
import re
import xml.etree.ElementTree as ET
from importlib import resources
from typing import Any, NamedTuple

import pyarrow as pa

from ... import markings as mk
from ...errors import FormatError, MarkingError
from ...timeutil import format_epoch, to_ns
from ..base import validate_elements

__all__ = [
    "KEYWORDS",
    "XML_SCHEMA_LOCATION",
    "Keyword",
    "Refused",
    "dumps_json",
    "dumps_kvn",
    "dumps_xml",
    "row_marking",
    "table_rows",
]

#: Where the NDM/XML 1.0 master schema is published (written as xsi:noNamespaceSchemaLocation).
XML_SCHEMA_LOCATION = "https://sanaregistry.org/r/ndmxml/ndmxml-1.0-master.xsd"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


class Keyword(NamedTuple):
    """One row of ``keywords/omm.csv``."""

    keyword: str
    block: str            # header | metadata | meanElements | tleParameters
    unit: str             # as the NDM/XML 1.0 schema spells it; "" when unitless
    kind: str             # how the value is made (see _VALUE)
    required: bool
    column: str           # the table column it comes from ("" for constants)
    value: str            # the constant (kind constant / version), or the stand-in for an
                          # unknown required value (OBJECT_NAME: UNKNOWN, as the CDM writes)
    range: tuple[float, float, bool, bool] | None  # low, high, low_inclusive, high_inclusive
    json: bool            # a key of CelesTrak GP JSON


class Refused(NamedTuple):
    """A row a writer did not write: its index in the table, its ``object_id``, the column to
    blame and why, in words a person can act on."""

    row: int
    object_id: int | None
    field: str
    reason: str


def _parse_range(text: str):
    if not text:
        return None
    m = re.fullmatch(r"([\[(])([^,]+),([^\])]+)([\])])", text.strip())
    if m is None:
        raise ValueError(f"keywords/omm.csv: bad range {text!r}")
    return float(m[2]), float(m[3]), m[1] == "[", m[4] == "]"


def _load_keywords() -> tuple[Keyword, ...]:
    text = resources.files(__package__).joinpath("keywords/omm.csv").read_text("utf-8")
    return tuple(Keyword(r["keyword"], r["block"], r["unit"], r["kind"], r["required"] == "yes",
                         r["column"], r["value"], _parse_range(r["range"]), r["json"] == "yes")
                 for r in csv.DictReader(text.splitlines()))


#: The OMM keywords in the order 502.0-B-2 writes them (read once, at import).
KEYWORDS: tuple[Keyword, ...] = _load_keywords()
_BLOCK_KEYWORDS = {b: [k for k in KEYWORDS if k.block == b]
                   for b in ("header", "metadata", "meanElements", "tleParameters")}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


class _RowError(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


# --------------------------------------------------------------------------------------------
# Values of one row


def _number_text(value: float) -> str:
    """Shortest text that reads back as exactly ``value``, with a decimal point in the
    mantissa and an upper-case ``E`` (``1e-05`` -> ``1.0E-05``), as KVN and xsd:double take."""
    text = repr(float(value))
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        text = f"{mantissa}E{exponent}"
    return text


def _epoch_text(ns: int) -> str:
    text = format_epoch(ns)  # 9 fraction digits
    return text.removesuffix("000")


def _check_text(value: str, keyword: str, column: str, ascii_only: bool) -> str:
    if not value or not value.strip():
        raise _RowError(column, f"{keyword} is empty; 502.0-B-2 requires it")
    if value != value.strip():
        raise _RowError(column, f"{keyword} {value!r} has leading or trailing blanks, which "
                                "readers strip")
    bad = _CONTROL.search(value)
    if bad:
        raise _RowError(column, f"{keyword} {value!r} holds the control character "
                                f"{bad[0]!r}, which no OMM can carry")
    if ascii_only and not value.isascii():
        raise _RowError(column, f"{keyword} {value!r} is not ASCII; KVN is printable ASCII "
                                "(write XML or JSON)")
    return value


#: The range of an angle of the orbit (RAAN, argument of pericenter, mean anomaly).
_ANGLE = (-180.0, 360.0, True, False)


def _in_range(kw: Keyword, value) -> None:
    if kw.range is None:
        return
    low, high, low_in, high_in = kw.range
    ok = (value >= low if low_in else value > low) and (value <= high if high_in else
                                                        value < high)
    if not ok:
        shown = (("[" if low_in else "(") + f"{low:g}, {high:g}" + ("]" if high_in else ")"))
        raise _RowError(kw.column, f"{kw.keyword} = {value!r} is outside {shown}, the range "
                                   "the NDM/XML 1.0 schema allows")


def _value(kw: Keyword, row: dict, marking: tuple[mk.Marking, str]) -> Any:
    """The value of keyword ``kw`` for ``row``: text, int, float, or None (left out)."""
    kind = kw.kind
    if kind in ("constant", "version"):
        return kw.value
    if kind == "marking":
        return mk.marking_comment(marking[1])
    if kind == "classification":   # the level's letter; the whole marking is in the COMMENT
        return mk.LETTERS[marking[0].classification]
    if kind == "theory":
        return "SGP4-XP" if row["ephemeris_type"] == 4 else "SGP4"
    value = row[kw.column]
    if kind == "designator":
        return value  # None: UNKNOWN in KVN/XML, "" in JSON
    if value is None:
        if kw.required and kw.value:
            return kw.value   # the table's stand-in for an unknown required value (UNKNOWN)
        if kw.required:
            raise _RowError(kw.column, f"{kw.column} is null; {kw.keyword} is required")
        return None
    if kind == "text":
        return value
    if kind == "epoch":
        return int(value)
    if kind == "float":
        value = float(value)
        if not math.isfinite(value):
            raise _RowError(kw.column, f"{kw.keyword} = {value!r} is not a finite number")
        if kw.range == _ANGLE and not _ANGLE[0] <= value < _ANGLE[1]:
            value %= 360.0   # the same angle, in the schema's range (360 -> 0, -190 -> 170)
    else:  # int
        value = int(value)
    _in_range(kw, value)
    return value


def row_marking(row: dict, cache: dict) -> tuple[mk.Marking, str]:
    """:func:`ssafuse.markings.row_marking_text` of a row of :func:`table_rows`, memoized in
    ``cache`` (a dict the caller keeps for one table); raises :class:`MarkingError`."""
    rel = row["releasable_to"]
    key = (row["classification"], None if rel is None else tuple(rel), row["marking"])
    found = cache.get(key)
    if found is None:
        try:
            found = mk.row_marking_text(*key)
        except MarkingError as e:
            found = e
        cache[key] = found
    if isinstance(found, MarkingError):
        raise found
    return found


def _row_values(row: dict, ascii_only: bool, cache: dict) -> dict[str, Any]:
    """Keyword -> value (see :func:`_value`) of every message keyword of ``row``, checked;
    raises :class:`_RowError`. ``cache`` as for :func:`row_marking`."""
    try:
        marking = row_marking(row, cache)
    except MarkingError as e:
        raise _RowError("marking", f"the row's marking cannot be stated: {e}") from None
    try:
        validate_elements(row)
    except FormatError as e:
        raise _RowError(e.field or "", f"{e.message} (expected {e.expected}); the OMM "
                                       "reader would refuse it") from None
    out = {}
    for kw in KEYWORDS:
        if kw.kind in ("creation_date", "originator"):
            continue
        value = _value(kw, row, marking)
        if isinstance(value, str) and kw.kind not in ("constant", "version"):
            _check_text(value, kw.keyword, kw.column or "marking", ascii_only)
        out[kw.keyword] = value
    return out


_COLUMNS = ("object_id", "intl_designator", "object_name", "epoch", "mean_motion_rev_day",
            "eccentricity", "inclination_deg", "raan_deg", "arg_perigee_deg",
            "mean_anomaly_deg", "bstar", "mean_motion_dot", "mean_motion_ddot",
            "ephemeris_type", "element_set_no", "rev_at_epoch", "classification",
            "releasable_to", "marking")


def table_rows(table: pa.Table) -> list[dict]:
    """The rows of ``table`` as dicts of the columns the writers use, ``epoch`` as int
    nanoseconds since 1970 UTC (so nothing is rounded to microseconds on the way). Raises
    :class:`ValueError` naming any missing column."""
    missing = [c for c in _COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"the table lacks the columns {', '.join(missing)} "
                         "(expected ssafuse.schema.ELEMENTS or CATALOGUE)")
    columns = {}
    for name in _COLUMNS:
        col = table.column(name)
        if name == "epoch":
            col = col.cast(pa.int64())
        columns[name] = col.to_pylist()
    return [dict(zip(_COLUMNS, values)) for values in zip(*columns.values())]


def _messages(table: pa.Table, ascii_only: bool):
    """``(values, refused)``: the checked keyword values of each writable row, in table
    order, and a :class:`Refused` for each other row."""
    values, refused, cache = [], [], {}
    for i, row in enumerate(table_rows(table)):
        try:
            values.append(_row_values(row, ascii_only, cache))
        except _RowError as e:
            refused.append(Refused(i, row["object_id"], e.field, e.reason))
    return values, refused


def _header(creation_date, originator: str, ascii_only: bool) -> tuple[str, str]:
    try:
        created = _epoch_text(to_ns(creation_date))
    except (TypeError, ValueError) as e:
        raise ValueError(f"creation_date is not a time: {e}") from None
    try:
        _check_text(originator, "ORIGINATOR", "originator", ascii_only)
    except _RowError as e:
        raise ValueError(e.reason) from None
    return created, originator


def _text_of(kw: Keyword, value) -> str:
    if kw.kind == "designator":
        return "UNKNOWN" if value is None else value
    if kw.kind == "epoch":
        return _epoch_text(value)
    if isinstance(value, float):
        return _number_text(value)
    return str(value)


# --------------------------------------------------------------------------------------------
# KVN


def dumps_kvn(table: pa.Table, *, originator: str = "SSAFUSE",
              creation_date) -> tuple[str, list[Refused]]:
    """OMM KVN (502.0-B-2 section 4): one message per writable row of ``table``, concatenated,
    each starting with ``CCSDS_OMM_VERS = 2.0``.

    ``creation_date``: the messages' CREATION_DATE (a timezone-aware ``datetime``, ISO-8601
    text or int nanoseconds since 1970 UTC). Units in ``[...]``: MEAN_MOTION rev/day, angles
    deg, BSTAR 1/ER, MEAN_MOTION_DOT rev/day**2, MEAN_MOTION_DDOT rev/day**3. Returns
    ``(text, refused)``; text values must be printable ASCII (KVN's character set).
    """
    created, originator = _header(creation_date, originator, True)
    values, refused = _messages(table, ascii_only=True)
    width = max(len(k.keyword) for k in KEYWORDS)
    out = []
    for msg in values:
        block = None
        for kw in KEYWORDS:
            if kw.block != block and block is not None:
                out.append("")
            block = kw.block
            if kw.kind == "marking":
                out.append(f"COMMENT {msg[kw.keyword]}")
                continue
            value = (created if kw.kind == "creation_date" else originator
                     if kw.kind == "originator" else msg[kw.keyword])
            if value is None:
                continue
            unit = f" [{kw.unit}]" if kw.unit else ""
            out.append(f"{kw.keyword:<{width}} = {_text_of(kw, value)}{unit}")
        out.append("")
    return "\n".join(out), refused


# --------------------------------------------------------------------------------------------
# XML


def _xml_omm(parent: ET.Element, msg: dict, created: str, originator: str) -> None:
    omm = ET.SubElement(parent, "omm", {"id": "CCSDS_OMM_VERS", "version": "2.0"})
    header = ET.SubElement(omm, "header")
    for kw in _BLOCK_KEYWORDS["header"]:
        if kw.kind == "marking":
            ET.SubElement(header, "COMMENT").text = msg[kw.keyword]
        elif kw.kind in ("creation_date", "originator"):
            ET.SubElement(header, kw.keyword).text = (created if kw.kind == "creation_date"
                                                      else originator)
    segment = ET.SubElement(ET.SubElement(omm, "body"), "segment")
    blocks = {"metadata": ET.SubElement(segment, "metadata")}
    data = ET.SubElement(segment, "data")
    blocks["meanElements"] = ET.SubElement(data, "meanElements")
    blocks["tleParameters"] = ET.SubElement(data, "tleParameters")
    for name in ("metadata", "meanElements", "tleParameters"):
        for kw in _BLOCK_KEYWORDS[name]:
            value = msg[kw.keyword]
            if value is None and kw.kind != "designator":
                continue
            attrs = {"units": kw.unit} if kw.unit else {}
            ET.SubElement(blocks[name], kw.keyword, attrs).text = _text_of(kw, value)


def dumps_xml(table: pa.Table, *, originator: str = "SSAFUSE",
              creation_date) -> tuple[str, list[Refused]]:
    """An NDM/XML 1.0 document: one ``<omm id="CCSDS_OMM_VERS" version="2.0">`` per writable
    row of ``table`` inside an ``<ndm>`` container, valid against the NDM/XML 1.0 master
    schema (each ``<omm>`` is also valid on its own). Units as ``units="..."`` attributes,
    spelt as the schema's enumerations (rev/day, deg, 1/ER, rev/day**2, rev/day**3).
    ``creation_date`` as for :func:`dumps_kvn`. Returns ``(text, refused)``: UTF-8 XML text
    with its declaration.
    """
    created, originator = _header(creation_date, originator, False)
    values, refused = _messages(table, ascii_only=False)
    ET.register_namespace("xsi", _XSI)
    root = ET.Element("ndm", {f"{{{_XSI}}}noNamespaceSchemaLocation": XML_SCHEMA_LOCATION})
    for msg in values:
        _xml_omm(root, msg, created, originator)
    ET.indent(root, space="  ")
    text = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n", refused


# --------------------------------------------------------------------------------------------
# JSON


def dumps_json(table: pa.Table) -> tuple[str, list[Refused]]:
    """CelesTrak GP JSON: a list with one object per writable row of ``table``, keys as
    CelesTrak writes them (OBJECT_NAME, OBJECT_ID, EPOCH, MEAN_MOTION [rev/day] ...
    MEAN_MOTION_DDOT [rev/day**3]), numbers as JSON numbers, an unknown OBJECT_ID as ``""``,
    plus the marking under ``"COMMENT"`` (a key GP readers ignore). JSON has no header, so no
    CREATION_DATE or ORIGINATOR. Returns ``(text, refused)``.
    """
    values, refused = _messages(table, ascii_only=False)
    keys = [kw for kw in KEYWORDS if kw.json]
    items = []
    for msg in values:
        item = {}
        for kw in keys:
            value = msg[kw.keyword]
            if kw.kind == "designator":
                value = value or ""
            elif kw.kind == "epoch":
                value = _epoch_text(value)
            elif value is None:
                continue
            item[kw.keyword] = value
        items.append(json.dumps(item))
    return "[\n" + ",\n".join(items) + "\n]\n", refused

"""CCSDS OMM and GP adapters: OMM KVN, OMM XML (and NDM containers), GP JSON, GP CSV.

Four formats, one record builder. Each reader turns its syntax into a flat mapping of OMM
keywords (``NORAD_CAT_ID``, ``EPOCH``, ``MEAN_MOTION`` ...) and hands it to :func:`_build`,
so the same element set gives bit-identical rows whichever format it came in (numbers are
``float()`` of the decimal text, or the JSON number, which Python parses the same way).

What is accepted: SGP4 element sets (``MEAN_ELEMENT_THEORY`` ``SGP4``, ``SGP/SGP4`` or
``TLE``, or absent as in GP exports), in ``TIME_SYSTEM`` UTC, ``REF_FRAME`` TEME and
``CENTER_NAME`` EARTH (each may be absent, as in GP JSON/CSV). Everything else (another theory,
``SEMI_MAJOR_AXIS`` instead of ``MEAN_MOTION``, SGP4-XP's ``BTERM``/``AGOM``, another time
system, a unit other than the standard one) is a reject naming the reason. Nothing is
converted.

Record numbers (``source_record``): KVN, the line of the message's ``CCSDS_OMM_VERS``; XML,
the 1-based index of the segment (or foreign NDM message) in the file; JSON, the 1-based index
in the list; CSV, the line number in the file (the header is line 1).

Untrusted XML is read with :mod:`defusedxml`'s SAX driver with DTDs refused outright, so no
entity is ever declared, expanded or fetched. Namespace processing is off: prefixes are
stripped from element names and an undeclared prefix (CelesTrak's older
``xsi:noNamespaceSchemaLocation`` without ``xmlns:xsi``) is not an error.
"""

from __future__ import annotations

import csv
import json
import re
import xml.sax
import xml.sax.handler
from typing import Any, BinaryIO, Iterator, Mapping

from sgp4.alpha5 import from_alpha5

from ... import markings as mk
from ...errors import FormatError, MarkingError
from ...constants import NS_PER_DAY
from ..base import (Batch, Format, Reject, decode, load_json, parse_float, parse_int,
                    split_lines, validate_elements)
from ..safexml import XML_ERRORS, StrictSaxErrors, safe_sax_parser, xml_format_error
from ...timeutil import days_from_civil, parse_epoch

__all__ = ["FORMATS", "KVN", "XML", "JSON", "CSV", "BATCH_RECORDS"]

#: Records per yielded :class:`Batch`.
BATCH_RECORDS = 50_000

#: Mean element theories that denote SGP4 elements. "TLE" appears in the NDM/XML 1.0 example
#: (502.0-B-2 figure 4-2 in XML, "USAF SGP4 IS THE ONLY PROPAGATOR THAT SHOULD BE USED").
SGP4_THEORIES = frozenset({"SGP4", "SGP/SGP4", "TLE"})
#: Ephemeris types propagated as SGP4 (0 as distributed; 1-3 the historical SGP/SGP4/SDP4
#: codes). 4 is SGP4-XP, which needs a different propagator.
SGP4_EPHEMERIS_TYPES = frozenset({0, 1, 2, 3})

# Epochs must fit timestamp[ns] (int64 ns reaches 2262-04-11) and postdate Sputnik.
_EPOCH_MIN_NS = days_from_civil(1957, 1, 1) * NS_PER_DAY
_EPOCH_MAX_NS = days_from_civil(2262, 1, 1) * NS_PER_DAY

#: Numeric OMM keywords read into the canonical record: keyword -> (column, required).
_FLOATS = (
    ("MEAN_MOTION", "mean_motion_rev_day", True),
    ("ECCENTRICITY", "eccentricity", True),
    ("INCLINATION", "inclination_deg", True),
    ("RA_OF_ASC_NODE", "raan_deg", True),
    ("ARG_OF_PERICENTER", "arg_perigee_deg", True),
    ("MEAN_ANOMALY", "mean_anomaly_deg", True),
    ("BSTAR", "bstar", True),
    ("MEAN_MOTION_DOT", "mean_motion_dot", False),
    ("MEAN_MOTION_DDOT", "mean_motion_ddot", False),
)
_INTS = (  # keyword, column, inclusive range
    ("EPHEMERIS_TYPE", "ephemeris_type", (0, 32767)),
    ("ELEMENT_SET_NO", "element_set_no", (0, 2**31 - 1)),
    ("REV_AT_EPOCH", "rev_at_epoch", (0, 2**62)),
)
_COLUMN = {kw: col for kw, col, _ in _FLOATS + _INTS}
_COLUMN.update(NORAD_CAT_ID="object_id", EPOCH="epoch", OBJECT_ID="intl_designator",
               OBJECT_NAME="object_name", CLASSIFICATION_TYPE="marking")

#: Units the standard gives each keyword we use, as written in KVN ``[...]`` or XML ``units``
#: (compared case-insensitively, blanks removed, ``^`` read as ``**``).
_UNITS = {
    "MEAN_MOTION": {"rev/day"},
    "INCLINATION": {"deg"}, "RA_OF_ASC_NODE": {"deg"}, "ARG_OF_PERICENTER": {"deg"},
    "MEAN_ANOMALY": {"deg"},
    "ECCENTRICITY": {"n/a", "1"},
    "BSTAR": {"1/er", "1/[er]", "1/earthradii"},
    "MEAN_MOTION_DOT": {"rev/day**2"},
    "MEAN_MOTION_DDOT": {"rev/day**3"},
}

_HEADER_KEYS = ("CCSDS_OMM_VERS", "CLASSIFICATION", "CREATION_DATE", "ORIGINATOR", "MESSAGE_ID")
_META_KEYS = ("OBJECT_NAME", "OBJECT_ID", "CENTER_NAME", "REF_FRAME", "REF_FRAME_EPOCH",
              "TIME_SYSTEM", "MEAN_ELEMENT_THEORY")
_MEAN_KEYS = ("EPOCH", "SEMI_MAJOR_AXIS", "MEAN_MOTION", "ECCENTRICITY", "INCLINATION",
              "RA_OF_ASC_NODE", "ARG_OF_PERICENTER", "MEAN_ANOMALY", "GM")
_SPACECRAFT_KEYS = ("MASS", "SOLAR_RAD_AREA", "SOLAR_RAD_COEFF", "DRAG_AREA", "DRAG_COEFF")
_TLE_KEYS = ("EPHEMERIS_TYPE", "CLASSIFICATION_TYPE", "NORAD_CAT_ID", "ELEMENT_SET_NO",
             "REV_AT_EPOCH", "BSTAR", "BTERM", "MEAN_MOTION_DOT", "MEAN_MOTION_DDOT", "AGOM")
_COV_KEYS = ("COV_REF_FRAME",) + tuple(
    f"C{a}_{b}" for i, a in enumerate(("X", "Y", "Z", "X_DOT", "Y_DOT", "Z_DOT"))
    for b in ("X", "Y", "Z", "X_DOT", "Y_DOT", "Z_DOT")[:i + 1])
#: Every keyword an OMM KVN message may hold (besides COMMENT and USER_DEFINED_*).
_KVN_KEYS = frozenset(_HEADER_KEYS + _META_KEYS + _MEAN_KEYS + _SPACECRAFT_KEYS + _TLE_KEYS
                      + _COV_KEYS)
#: XML data blocks and the elements each may hold.
_XML_BLOCKS = {
    "meanElements": frozenset(_MEAN_KEYS),
    "spacecraftParameters": frozenset(_SPACECRAFT_KEYS),
    "tleParameters": frozenset(_TLE_KEYS),
    "covarianceMatrix": frozenset(_COV_KEYS),
    "userDefinedParameters": frozenset({"USER_DEFINED"}),
}
#: Simple elements an NDM container may hold besides its messages (not records).
_NDM_SIMPLE = frozenset({"COMMENT", "MESSAGE_ID", "CREATION_DATE", "ORIGINATOR"})
#: NDM constituents that are not element sets.
_OTHER_MESSAGES = {"opm": "OPM", "oem": "OEM", "ocm": "OCM", "cdm": "CDM", "tdm": "TDM",
                   "apm": "APM", "aem": "AEM", "acm": "ACM", "rdm": "RDM"}

_FLOAT_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INT_TEXT = re.compile(r"[+-]?\d+", re.ASCII)
_ALPHA5 = re.compile(r"[A-HJ-NP-Z]\d{4}", re.ASCII)


# --------------------------------------------------------------------------------------------
# The shared record builder


def _present(value) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _text(fields: Mapping[str, Any], key: str) -> str | None:
    """Text value of ``key``, stripped; ``None`` when absent or empty."""
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FormatError(f"{key} is not text", field=_COLUMN.get(key, key.lower()),
                          got=_short(value))
    value = value.strip()
    if not value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f"{key} is not valid Unicode text", field=_COLUMN.get(key),
                          got=ascii(value)[:80]) from None
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _float(fields: Mapping[str, Any], key: str, column: str) -> float:
    value = fields[key]
    if isinstance(value, str):
        value = value.strip()
        if not _FLOAT_TEXT.fullmatch(value):
            raise FormatError(f"{key} is not a number", field=column,
                              expected="a decimal number such as 0.0001 or .47102E-5",
                              got=_short(value))
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FormatError(f"{key} is not a number", field=column, got=_short(value))
    try:
        return parse_float(value, column)
    except OverflowError:
        raise FormatError(f"{key} is not a finite number", field=column,
                          got=_short(value)) from None


def _int(fields: Mapping[str, Any], key: str, column: str) -> int:
    value = fields[key]
    if isinstance(value, str):
        value = value.strip()
        if not _INT_TEXT.fullmatch(value):
            raise FormatError(f"{key} is not an integer", field=column, got=_short(value))
    elif isinstance(value, float) and not value.is_integer():
        raise FormatError(f"{key} is not an integer", field=column, got=_short(value))
    try:
        return parse_int(value, column)
    except (FormatError, ValueError, OverflowError):
        raise FormatError(f"{key} is not an integer", field=column, got=_short(value)) from None


def _catalogue_number(fields: Mapping[str, Any]) -> int:
    value = fields.get("NORAD_CAT_ID")
    if not _present(value):
        raise FormatError("NORAD_CAT_ID missing: a catalogue number is needed",
                          field="object_id")
    if isinstance(value, str) and _ALPHA5.fullmatch(value.strip()):
        return from_alpha5(value.strip())
    return _int(fields, "NORAD_CAT_ID", "object_id")


def _norm_unit(unit: str) -> str:
    return re.sub(r"\s+", "", unit).lower().replace("^", "**")


def _check_semantics(fields: Mapping[str, Any]) -> None:
    """Refuse what is not an SGP4 element set in UTC/TEME, with every reason at once."""
    problems: list[tuple[str, str]] = []
    ts = _text(fields, "TIME_SYSTEM")
    if ts is not None and ts.upper() != "UTC":
        problems.append(("epoch", f"TIME_SYSTEM {ts!r} is not UTC"))
    theory = _text(fields, "MEAN_ELEMENT_THEORY")
    if theory is not None and theory.upper() not in SGP4_THEORIES:
        problems.append(("mean_motion_rev_day",
                         f"MEAN_ELEMENT_THEORY {theory!r} is not SGP4 (expected SGP4, "
                         "SGP/SGP4 or TLE); only SGP4 mean elements are read"))
    frame = _text(fields, "REF_FRAME")
    if frame is not None and frame.upper() != "TEME":
        problems.append(("raan_deg", f"REF_FRAME {frame!r} is not TEME, the frame of SGP4 "
                                     "elements"))
    center = _text(fields, "CENTER_NAME")
    if center is not None and center.upper() != "EARTH":
        problems.append(("object_id", f"CENTER_NAME {center!r} is not EARTH"))
    has_n = _present(fields.get("MEAN_MOTION"))
    if _present(fields.get("SEMI_MAJOR_AXIS")):
        problems.append(("mean_motion_rev_day",
                         "both SEMI_MAJOR_AXIS and MEAN_MOTION given" if has_n else
                         "SEMI_MAJOR_AXIS given instead of MEAN_MOTION; SGP4 needs the mean "
                         "motion and a semi-major axis is not converted"))
    xp = [k for k in ("BTERM", "AGOM") if _present(fields.get(k))]
    if xp:
        problems.append(("bstar", f"{' and '.join(xp)} given: an SGP4-XP element set, which "
                                  "SGP4 cannot propagate"))
    if problems:
        raise FormatError("; ".join(p[1] for p in problems), field=problems[0][0])


def _build(fields: Mapping[str, Any], units: Mapping[str, str] | None = None,
           header_marking: str | None = None) -> dict:
    """The canonical record of one element set given as OMM keywords.

    ``fields`` maps OMM keywords to text (KVN, XML, CSV, Space-Track JSON) or JSON numbers
    (CelesTrak JSON); ``units`` the units a KVN ``[...]`` or XML ``units`` attribute stated;
    ``header_marking`` a message-level ``CLASSIFICATION``. Raises :class:`FormatError`.
    """
    _check_semantics(fields)
    if units:
        for key, unit in units.items():
            allowed = _UNITS.get(key)
            if allowed is not None and _norm_unit(unit) not in allowed:
                raise FormatError(f"{key} is in [{unit}], not in the standard unit",
                                  field=_COLUMN.get(key), expected=sorted(allowed)[0],
                                  got=unit)
    rec: dict[str, Any] = {"object_id": _catalogue_number(fields)}
    epoch_text = fields.get("EPOCH")
    if not _present(epoch_text):
        raise FormatError("EPOCH missing", field="epoch")
    if not isinstance(epoch_text, str):
        raise FormatError("EPOCH is not text", field="epoch", got=_short(epoch_text))
    if not epoch_text.isascii():
        raise FormatError("EPOCH is not an ISO-8601 time", field="epoch",
                          got=ascii(epoch_text)[:80])
    try:
        rec["epoch"] = epoch = parse_epoch(epoch_text)
    except FormatError:
        raise
    except (ValueError, OverflowError):
        raise FormatError("EPOCH is not a valid time", field="epoch",
                          got=_short(epoch_text)) from None
    if not _EPOCH_MIN_NS <= epoch < _EPOCH_MAX_NS:
        raise FormatError("EPOCH outside 1957-2261", field="epoch", got=epoch_text.strip())
    for key, column, required in _FLOATS:
        if _present(fields.get(key)):
            rec[column] = _float(fields, key, column)
        elif required:
            raise FormatError(f"{key} missing", field=column)
        else:
            rec[column] = None
    for key, column, (low, high) in _INTS:
        if _present(fields.get(key)):
            value = rec[column] = _int(fields, key, column)
            if not low <= value <= high:
                raise FormatError(f"{key} out of range", field=column,
                                  expected=f"{low}..{high}", got=str(value))
        else:
            rec[column] = None
    if rec["ephemeris_type"] is not None and rec["ephemeris_type"] not in SGP4_EPHEMERIS_TYPES:
        raise FormatError(
            f"EPHEMERIS_TYPE {rec['ephemeris_type']} is not an SGP4 element set"
            + (" (4 is SGP4-XP)" if rec["ephemeris_type"] == 4 else ""),
            field="ephemeris_type", expected="0 (or 1-3)")
    object_id = _text(fields, "OBJECT_ID")
    rec["intl_designator"] = None if object_id is None or object_id.upper() == "UNKNOWN" \
        else object_id
    rec["object_name"] = _text(fields, "OBJECT_NAME")
    rec["object_type"] = _text(fields, "OBJECT_TYPE") or _text(fields, "USER_DEFINED_OBJECT_TYPE")
    rec["rcs_size"] = _text(fields, "RCS_SIZE") or _text(fields, "USER_DEFINED_RCS_SIZE")
    rec["country"] = _text(fields, "COUNTRY_CODE") or _text(fields, "USER_DEFINED_COUNTRY_CODE")
    classification_type = _text(fields, "CLASSIFICATION_TYPE")
    rec["marking"] = _marking(header_marking, classification_type)
    validate_elements(rec)
    return rec


def _marking(header: str | None, classification_type: str | None) -> str | None:
    """The record's marking: the message header's CLASSIFICATION (OMM 3.0) or marking COMMENT,
    which may carry releasability, and the TLE-style CLASSIFICATION_TYPE. If both are given
    and state different levels, the record is refused rather than either one guessed right;
    otherwise both hold (their combination: neither's releasability or controls is lost)."""
    if header is None:
        return classification_type
    if classification_type is not None:
        try:
            a, b = mk.parse(header), mk.parse(classification_type)
        except MarkingError:
            return header  # the ingest layer refuses an unparseable marking by itself
        if a.classification != b.classification:
            raise FormatError("CLASSIFICATION_TYPE disagrees with the header CLASSIFICATION",
                              field="marking", expected=header, got=classification_type)
        both = mk.combine([a, b])
        return header if both == a else classification_type if both == b else str(both)
    return header


def _safe(text: str) -> str:
    """``text`` made encodable as UTF-8 (lone surrogates from JSON escapes become escapes)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class _Collector:
    """Accumulates records and rejects, handing out full batches."""

    def __init__(self):
        self.batch = Batch()

    def accept(self, rec: dict, record: int, raw: str) -> None:
        rec["source_record"] = record
        rec["_raw"] = raw
        self.batch.records.append(rec)

    def reject(self, record: int, raw: str, reason: str, field: str | None = None) -> None:
        self.batch.rejects.append(Reject(record, _safe(raw), reason, field))

    def add(self, fields, record: int, raw: str, units=None, header_marking=None) -> None:
        try:
            rec = _build(fields, units, header_marking)
        except FormatError as e:
            self.batch.rejects.append(Reject.from_error(e, record, _safe(raw)))
        else:
            self.accept(rec, record, raw)

    def full(self) -> bool:
        return len(self.batch) >= BATCH_RECORDS

    def take(self) -> Batch:
        batch, self.batch = self.batch, Batch()
        return batch


# --------------------------------------------------------------------------------------------
# KVN

#: What counts as a blank line: ASCII white space only (str.strip() would also eat
#: control characters such as \x1f, silently dropping a line that is not empty).
_BLANK = " \t\r\n\x0b\x0c"

_KVN_LINE = re.compile(r"\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*")
_KVN_COMMENT = re.compile(r"\s*COMMENT(?:[\s=]|$)")
_KVN_UNITS = re.compile(r"(.*?)\s*\[([^\[\]]*)\]")
_KVN_VERS = re.compile(r"CCSDS_([A-Z]+)_VERS")


def _identify_kvn(head: bytes) -> bool:
    for line in split_lines(decode(head)):
        if not line.strip(_BLANK) or _KVN_COMMENT.match(line):
            continue
        m = _KVN_LINE.fullmatch(line)
        return bool(m and m[1] == "CCSDS_OMM_VERS")
    return False


def _kvn_message(lines: list[tuple[int, str]]) -> tuple[dict, dict, str | None]:
    """Keywords, units and marking of one KVN message (its lines, numbered): the header
    CLASSIFICATION (OMM 3.0), else a ``COMMENT CLASSIFICATION: ...`` line (how an OMM 2.0,
    which has no such keyword, carries it; :func:`ssafuse.markings.comment_marking`)."""
    fields: dict[str, str] = {}
    units: dict[str, str] = {}
    stated = None
    for lineno, line in lines:
        if _KVN_COMMENT.match(line):
            stated = stated or mk.comment_marking(line.strip(_BLANK)[len("COMMENT"):])
            continue
        if not line.strip(_BLANK):
            continue
        m = _KVN_LINE.fullmatch(line)
        if m is None:
            raise FormatError(f"line {lineno} is not a KEYWORD = value line",
                              expected="KEYWORD = value [units]", got=line.strip()[:80])
        key, value = m[1], m[2]
        if key not in _KVN_KEYS and not key.startswith("USER_DEFINED_"):
            raise FormatError(f"unexpected keyword {key} at line {lineno}",
                              field=_COLUMN.get(key), got=line.strip()[:80])
        if key in fields:
            raise FormatError(f"keyword {key} repeated at line {lineno}",
                              field=_COLUMN.get(key))
        u = _KVN_UNITS.fullmatch(value)
        if u is not None and not key.startswith("USER_DEFINED_"):
            value, units[key] = u[1], u[2].strip()
        fields[key] = value
    return fields, units, fields.get("CLASSIFICATION") or stated


def _read_kvn(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """Records of an OMM KVN file: one per ``CCSDS_OMM_VERS`` message."""
    out = _Collector()
    current: list[tuple[int, str]] = []   # lines of the message being read
    kind = None                           # None: before the first message; else message type
    seen_message = False

    def finish():
        if not current:
            return
        start, raw = current[0][0], "\n".join(line for _, line in current)
        if kind is None:
            if any(line.strip(_BLANK) and not _KVN_COMMENT.match(line)
                   for _, line in current):
                out.reject(start, raw, "text before the first CCSDS_OMM_VERS line")
        elif kind != "OMM":
            out.reject(start, raw, f"{kind} is not an element set (an OMM is expected)")
        else:
            try:
                fields, units, header_marking = _kvn_message(current)
            except FormatError as e:
                out.batch.rejects.append(Reject.from_error(e, start, raw))
            else:
                out.add(fields, start, raw, units, header_marking)

    for lineno, bline in enumerate(stream, start=1):
        line = decode(bline).rstrip("\r\n")
        m = _KVN_LINE.fullmatch(line) if "=" in line else None
        v = _KVN_VERS.fullmatch(m[1]) if m else None
        if v is not None:
            finish()
            current, kind, seen_message = [], v[1], True
            if out.full():
                yield out.take()
        if current or line.strip(_BLANK):
            current.append((lineno, line))
    finish()
    if not seen_message:
        raise FormatError("not an OMM KVN file: no CCSDS_OMM_VERS line", path=uri,
                          expected="CCSDS_OMM_VERS = 2.0")
    if len(out.batch):
        yield out.take()


# --------------------------------------------------------------------------------------------
# XML

_MAX_XML_DEPTH = 64
_XML_START = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(?:\[.*?\]\s*)?>)",
                        re.DOTALL)
_XML_ROOT = re.compile(rb"<\s*(?:[\w.-]+:)?(omm|ndm)[\s>/]")


def _identify_xml(head: bytes) -> bool:
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    pos = 0
    while True:
        m = _XML_START.match(head, pos)
        if m is None:
            break
        pos = m.end()
    m = _XML_ROOT.match(head[pos:].lstrip())
    if m is None:
        return False
    return m[1] == b"omm" or re.search(rb"<\s*(?:[\w.-]+:)?omm[\s>/]", head) is not None


class _Node:
    __slots__ = ("tag", "attrs", "text", "children", "keep", "header", "segments")

    def __init__(self, tag: str, attrs: dict, keep: bool):
        self.tag, self.attrs, self.keep = tag, attrs, keep
        self.text: list[str] = []
        self.children: list[_Node] = []
        self.header = None
        self.segments = 0

    def value(self) -> str:
        return "".join(self.text).strip()


def _serialize(node: _Node, limit: int = 600) -> str:
    """Compact XML text of ``node`` (for rejects), cut at about ``limit`` characters."""
    parts: list[str] = []
    size = 0

    def walk(n: _Node) -> None:
        nonlocal size
        if size > limit:
            return
        attrs = "".join(f' {k}="{v}"' for k, v in n.attrs.items())
        piece = f"<{n.tag}{attrs}>{n.value()}"
        parts.append(piece)
        size += len(piece)
        for c in n.children:
            walk(c)
        parts.append(f"</{n.tag}>")

    walk(node)
    return "".join(parts)[:limit]


class _OmmSaxHandler(xml.sax.handler.ContentHandler, StrictSaxErrors):
    """Builds one OMM segment (or foreign NDM message) at a time and queues it."""

    def __init__(self):
        super().__init__()
        self.stack: list[_Node] = []
        self.root: str | None = None
        self.ready: list[tuple[str, _Node | None, _Node]] = []
        self.ndm_classification: str | None = None

    def startElement(self, name, attrs):
        tag = name.rpartition(":")[2]
        depth = len(self.stack)
        if depth >= _MAX_XML_DEPTH:
            raise FormatError(f"XML nested deeper than {_MAX_XML_DEPTH} levels")
        if depth == 0:
            if tag != "ndm" and tag != "omm" and tag not in _OTHER_MESSAGES:
                raise FormatError(f"root element <{name}> is neither <omm> nor <ndm>",
                                  expected="<omm> or <ndm>")
            self.root = tag
        parent = self.stack[-1] if self.stack else None
        keep = parent.keep if parent is not None else True
        if self._is_message(depth) and tag in _OTHER_MESSAGES:
            keep = False   # a foreign message: counted, its content not kept
        node = _Node(tag, {k.rpartition(":")[2]: v for k, v in attrs.items()} if keep else {},
                     keep)
        if parent is not None and parent.keep:
            parent.children.append(node)
        self.stack.append(node)

    def _is_message(self, depth: int) -> bool:
        return depth == 0 and self.root != "ndm" or depth == 1 and self.root == "ndm"

    def characters(self, content):
        node = self.stack[-1]
        if node.keep:
            node.text.append(content)

    def endElement(self, name):
        node = self.stack.pop()
        depth = len(self.stack)
        parent = self.stack[-1] if self.stack else None
        if self._is_message(depth):
            if parent is not None and parent.children and parent.children[-1] is node:
                parent.children.pop()
            if node.tag == "omm":
                if node.segments == 0:
                    self.ready.append(("empty", node, node))
            elif node.tag in _OTHER_MESSAGES:
                self.ready.append(("other", None, node))
            elif node.tag == "CLASSIFICATION" and self.root == "ndm" and not node.children:
                self.ndm_classification = node.value() or None
            elif node.tag not in _NDM_SIMPLE or node.children or self.root != "ndm":
                self.ready.append(("unknown", None, node))
            return
        if node.tag == "header" and parent is not None and parent.tag == "omm" \
                and self._is_message(depth - 1):
            parent.header = node
        elif (node.tag == "segment" and parent is not None and parent.tag == "body"
              and len(self.stack) >= 2 and self.stack[-2].tag == "omm"
              and self._is_message(depth - 2)):
            message = self.stack[-2]
            message.segments += 1
            parent.children.pop()
            self.ready.append(("segment", message, node))


def _xml_header(message: _Node) -> tuple[str | None, str | None]:
    """(marking, problem) of an <omm> message: its header CLASSIFICATION (OMM 3.0), else a
    header ``<COMMENT>CLASSIFICATION: ...</COMMENT>`` (OMM 2.0 has no such keyword)."""
    if message.header is None:
        return None, None
    classification, stated, problem = None, None, None
    for child in message.header.children:
        if child.tag == "CLASSIFICATION":
            classification = child.value() or None
        elif child.tag == "COMMENT":
            stated = stated or mk.comment_marking(child.value())
        elif child.tag not in _HEADER_KEYS:
            problem = f"unexpected element <{child.tag}> in the OMM header"
    return classification or stated, problem


def _xml_segment(segment: _Node) -> tuple[dict, dict]:
    """Keywords and units of one OMM XML <segment>; FormatError for a wrong structure."""
    fields: dict[str, str] = {}
    units: dict[str, str] = {}

    def put(node: _Node, where: str) -> None:
        if node.children:
            raise FormatError(f"unexpected element <{node.children[0].tag}> inside "
                              f"<{node.tag}> in {where}")
        key = node.tag
        if key == "USER_DEFINED":
            param = node.attrs.get("parameter")
            if not param:
                raise FormatError("USER_DEFINED without a parameter attribute")
            key = "USER_DEFINED_" + param
        if key in fields:
            raise FormatError(f"element <{node.tag}> repeated in {where}",
                              field=_COLUMN.get(key))
        fields[key] = node.value()
        if "units" in node.attrs:
            units[key] = node.attrs["units"]

    metadata = [c for c in segment.children if c.tag == "metadata"]
    data = [c for c in segment.children if c.tag == "data"]
    for c in segment.children:
        if c.tag not in ("metadata", "data", "COMMENT"):
            raise FormatError(f"unexpected element <{c.tag}> in <segment>")
    if len(metadata) != 1:
        raise FormatError("segment has no <metadata>" if not metadata else
                          f"segment has {len(metadata)} <metadata> sections; an OMM has one",
                          expected="<segment><metadata/><data/></segment>")
    if len(data) != 1:
        raise FormatError("segment has no <data>" if not data else
                          f"segment has {len(data)} <data> sections; an OMM has one",
                          expected="<segment><metadata/><data/></segment>")
    for c in metadata[0].children:
        if c.tag == "COMMENT":
            continue
        if c.tag not in _META_KEYS:
            raise FormatError(f"unexpected element <{c.tag}> in <metadata>",
                              field=_COLUMN.get(c.tag))
        put(c, "<metadata>")
    seen_blocks = set()
    for block in data[0].children:
        if block.tag == "COMMENT":
            continue
        allowed = _XML_BLOCKS.get(block.tag)
        if allowed is None:
            raise FormatError(f"unexpected element <{block.tag}> in <data>",
                              field=_COLUMN.get(block.tag))
        if block.tag in seen_blocks:
            raise FormatError(f"<{block.tag}> repeated in <data>")
        seen_blocks.add(block.tag)
        for c in block.children:
            if c.tag == "COMMENT":
                continue
            if c.tag not in allowed:
                raise FormatError(f"unexpected element <{c.tag}> in <{block.tag}>",
                                  field=_COLUMN.get(c.tag))
            put(c, f"<{block.tag}>")
    return fields, units


def _xml_records(handler: _OmmSaxHandler, out: _Collector, counter: list[int]) -> None:
    for kind, message, node in handler.ready:
        counter[0] += 1
        index = counter[0]
        raw = _serialize(node) if node.keep else f"<{node.tag}> (record {index})"
        if kind == "segment":
            classification, problem = _xml_header(message)
            classification = classification or handler.ndm_classification
            if problem:
                out.reject(index, raw, problem)
                continue
            try:
                fields, units = _xml_segment(node)
            except FormatError as e:
                out.batch.rejects.append(Reject.from_error(e, index, raw))
                continue
            out.add(fields, index, raw, units, classification)
        elif kind == "empty":
            out.reject(index, raw, "OMM message has no <segment>")
        elif kind == "other":
            out.reject(index, raw, f"{_OTHER_MESSAGES[node.tag]} is not an element set "
                                   "(an OMM is expected)")
        else:
            out.reject(index, raw, f"unexpected element <{node.tag}> in the NDM container")
    handler.ready.clear()


def _read_xml(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """Records of an OMM XML file (one or more segments) or of an NDM container of OMMs."""
    handler = _OmmSaxHandler()
    parser = safe_sax_parser(handler)
    out = _Collector()
    counter = [0]
    error: FormatError | None = None
    try:
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            parser.feed(chunk)
            _xml_records(handler, out, counter)
            if out.full():
                yield out.take()
        parser.close()
        if handler.root is None:
            raise FormatError("empty XML document: no root element", expected="<omm> or <ndm>")
        _xml_records(handler, out, counter)
    except FormatError as e:
        error = FormatError(e.message, path=uri, expected=e.expected, got=e.got)
    except XML_ERRORS as e:
        error = xml_format_error(e, uri)
    if error is not None:
        if len(out.batch):
            yield out.take()
        raise error
    if len(out.batch):
        yield out.take()


# --------------------------------------------------------------------------------------------
# JSON


def _identify_json(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text[:1] in (b"[", b"{") and b'"NORAD_CAT_ID"' in text and (
        b'"MEAN_MOTION"' in text or b'"EPOCH"' in text)


def _read_json(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """Records of a GP/OMM JSON file: a list of objects (or one object), one per element set."""
    text = decode(stream.read())
    try:
        doc = load_json(text, path=uri)  # FormatError when nested too deep to be a feed
    except FormatError:
        raise
    except json.JSONDecodeError as e:
        raise FormatError(f"JSON does not parse: {e.msg} at line {e.lineno}, column {e.colno}",
                          path=uri, line=e.lineno) from None
    except ValueError as e:
        raise FormatError(f"JSON does not parse: {e}", path=uri) from None
    if isinstance(doc, dict):
        items = [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        raise FormatError("JSON holds neither an object nor a list of objects", path=uri,
                          expected='[{"NORAD_CAT_ID": ..., "EPOCH": ...}, ...]',
                          got=_short(doc))
    out = _Collector()
    for index, item in enumerate(items, start=1):
        try:
            raw = json.dumps(item, ensure_ascii=False)
        except (ValueError, RecursionError):
            raw = "<JSON value>"
        if not isinstance(item, dict):
            out.reject(index, raw, "record is not a JSON object")
        else:   # a GP record's marking may ride in its COMMENT (as ssafuse writes it)
            out.add(item, index, raw, header_marking=mk.comment_marking(item.get("COMMENT")))
        if out.full():
            yield out.take()
    if len(out.batch):
        yield out.take()


# --------------------------------------------------------------------------------------------
# CSV

_CSV_REQUIRED = ("NORAD_CAT_ID", "EPOCH", "MEAN_MOTION", "ECCENTRICITY", "INCLINATION",
                 "RA_OF_ASC_NODE", "ARG_OF_PERICENTER", "MEAN_ANOMALY")


def _split_csv(line: str) -> list[str]:
    if '"' not in line:
        return line.split(",")
    return next(csv.reader([line], strict=True))


def _identify_csv(head: bytes) -> bool:
    first = decode(head).split("\n", 1)[0].strip()
    if "," not in first:
        return False
    try:
        cols = {c.strip().upper() for c in _split_csv(first)}
    except csv.Error:
        return False
    return all(c in cols for c in _CSV_REQUIRED)


def _read_csv(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """Records of a GP CSV file (header line of OMM keywords, one element set per line).
    A record is one physical line: a stray quote costs that line, not the ones after it."""
    lines = enumerate(stream, start=1)
    columns = None
    for lineno, bline in lines:
        text = decode(bline).strip(_BLANK)
        if text:
            try:
                columns = [c.strip().upper() for c in _split_csv(text)]
            except csv.Error as e:
                raise FormatError(f"CSV header does not parse: {e}", path=uri,
                                  line=lineno) from None
            break
    if columns is None:
        raise FormatError("empty CSV: no header line", path=uri)
    missing = [c for c in _CSV_REQUIRED if c not in columns]
    if missing:
        raise FormatError(f"CSV header lacks the GP columns {', '.join(missing)}", path=uri,
                          line=lineno, expected=",".join(_CSV_REQUIRED),
                          got=",".join(columns)[:200])
    dupes = sorted({c for c in columns if columns.count(c) > 1 and c})
    if dupes:
        raise FormatError(f"CSV header repeats the columns {', '.join(dupes)}", path=uri,
                          line=lineno)
    n = len(columns)
    out = _Collector()
    for lineno, bline in lines:
        line = decode(bline).rstrip("\r\n")
        if not line.strip(_BLANK):
            continue
        try:
            values = _split_csv(line)
        except csv.Error as e:
            out.reject(lineno, line, f"CSV row does not parse: {e}")
        else:
            if len(values) != n:
                out.reject(lineno, line, f"CSV row has {len(values)} fields; the header has {n}",
                           None)
            else:
                out.add(dict(zip(columns, values)), lineno, line)
        if out.full():
            yield out.take()
    if len(out.batch):
        yield out.take()


# --------------------------------------------------------------------------------------------

KVN = Format("omm-kvn", "elements", "CCSDS OMM, KVN (one or more messages per file)",
             _identify_kvn, _read_kvn, 0, (".kvn", ".txt", ".omm"))
XML = Format("omm-xml", "elements", "CCSDS OMM XML, single or multi-segment, or an NDM "
             "container of OMMs", _identify_xml, _read_xml, 0, (".xml",))
JSON = Format("omm-json", "elements", "GP / OMM JSON (CelesTrak numbers or Space-Track "
              "strings; a list or one object)", _identify_json, _read_json, 0, (".json",))
CSV = Format("omm-csv", "elements", "GP / OMM CSV with a header line (CelesTrak, "
             "Space-Track)", _identify_csv, _read_csv, 0, (".csv",))

FORMATS = (KVN, XML, JSON, CSV)

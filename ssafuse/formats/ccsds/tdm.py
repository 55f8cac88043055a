"""CCSDS Tracking Data Messages (TDM 1.0 and 2.0, CCSDS 503.0-B-1/-2), KVN and XML, into the
``observations`` table.

A TDM is a header, then segments of metadata (participants, signal path, time system, angle
type, range units, ...) and data lines, each ``KEYWORD = time value``. The quantities the
``observations`` table holds are read:

* ``ANGLE_1`` / ``ANGLE_2`` with ``ANGLE_TYPE`` ``AZEL`` (azimuth from north through east,
  elevation) or ``RADEC`` (``REFERENCE_FRAME`` EME2000, ICRF or GCRF: ``frame`` J2000; TOD:
  ``frame`` OF-DATE). Both angles at the same time tag make one direction. ``XEYN`` / ``XSYE``
  (antenna mount angles) are not converted.
* ``RANGE`` with ``RANGE_UNITS`` km, or s (seconds of light time, times c exactly); RU
  (range units, which need the transmitted frequencies) is not converted. A range with a
  ``RANGE_MODULUS`` other than 0 is ambiguous (the true range is the value plus an unknown
  whole number of moduli) and is refused, never read as a distance. The TDM range
  observable runs along the whole signal ``PATH``: a one-way path (``2,1``) gives the range as
  stated, a round trip (``1,2,1``) half of it (``range_km`` is one-way); other paths (3-way,
  relays) are not a sensor-to-object range and are refused.
* ``DOPPLER_INSTANTANEOUS`` / ``DOPPLER_INTEGRATED`` (km/s, range rate): same path rule.
* ``MAG`` (visual magnitude).

The data lines of a segment that share a time tag become one observation row (a radar's
az/el/range at one instant is one measurement); ``source_record`` is the line of its first data
line (KVN) or of its first measurement element (XML). Every other data line is a reject with its
line number and reason: data types the table has no column for (frequencies, phase counts,
clock, media, weather), a keyword not in the standard, a value that is not a number, an angle
outside [-180, 360), a quantity whose metadata cannot be honoured. So ``accepted + rejected``
is the observation rows plus the lines that went into none.

Segment metadata is checked first; a segment whose metadata is broken (a keyword not in the
standard, a number that is not one, no or an unknown ``TIME_SYSTEM``, no ``PARTICIPANT_1``, a
``PATH`` naming no participant or written with blanks) has every data line rejected with that
reason, naming the keyword and its line. Corrections stated but not applied
(``CORRECTIONS_APPLIED = NO`` with a ``CORRECTION_RANGE``, ...) refuse the quantity they
concern: the corrected value is not stated and its sign convention varies between agencies.

Time systems: UTC as is; TAI, TT and GPS exactly (TT = TAI + 32.184 s, GPS = TAI - 19 s, and
TAI - UTC from Skyfield's leap-second table, whole seconds since 1972); any other (TDB, TCB,
TCG, UT1, MET, SCLK, ...) has no exact conversion to UTC here and its data lines are rejected
with that reason.

Participants and sensors: the receiving participant (last in ``PATH``) is ``sensor_id`` and the
participant just before it (whose signal the receiver tracked) the observed object: its name
gives ``object_id`` when it is a catalogue number and ``intl_designator`` when it is a COSPAR
designator (``1998-067A``), else neither. ``kind`` is ``rf``. TDM 1.0 and 2.0 carry no station
coordinates, so no ``sensors`` rows come from a TDM: correlation rejects observations of a
sensor missing from the sensors table (``unknown sensor``), and a user adds the station with a
sensor CSV (``ssafuse correlate --sensors``). Header ``CLASSIFICATION`` (NDM 2.0 style), when
present, is the records' marking.

Untrusted XML is read with :mod:`defusedxml`'s SAX driver, DTDs and entities refused outright.
A file whose header cannot be read (no ``CCSDS_TDM_VERS``, a version other than 1.0 / 2.0, XML
that is not well formed, a document type declaration) raises :class:`FormatError` naming the
line.
"""

from __future__ import annotations

import re
import xml.sax
import xml.sax.handler
from dataclasses import dataclass, field
from functools import lru_cache
from typing import BinaryIO, Iterator

from skyfield.api import load

from ...errors import FormatError
from ...schema import OBSERVATION_COLUMNS
from ..base import Batch, Format, Reject, decode, split_lines
from ..safexml import XML_ERRORS, StrictSaxErrors, safe_sax_parser, xml_format_error
from ...timeutil import parse_epoch

__all__ = ["FORMATS", "KVN", "XML", "DATA_KEYWORDS", "METADATA_KEYWORDS", "read_kvn",
           "read_xml"]

BATCH_RECORDS = 20_000
C_KM_S = 299_792.458
_RAW_MAX = 200

_N = range(1, 6)
#: Data keywords of TDM 1.0 and 2.0 (CCSDS 503.0-B-2 section 3.5).
DATA_KEYWORDS = frozenset(
    ["ANGLE_1", "ANGLE_2", "CARRIER_POWER", "CLOCK_BIAS", "CLOCK_DRIFT", "DOPPLER_COUNT",
     "DOPPLER_INSTANTANEOUS", "DOPPLER_INTEGRATED", "DOR", "MAG", "PC_N0", "PR_N0", "PRESSURE",
     "RANGE", "RCS", "RECEIVE_FREQ", "RHUMIDITY", "STEC", "TEMPERATURE", "TROPO_DRY",
     "TROPO_WET", "VLBI_DELAY"]
    + [f"{k}_{i}" for k in ("RECEIVE_FREQ", "TRANSMIT_FREQ", "TRANSMIT_FREQ_RATE",
                            "RECEIVE_PHASE_CT", "TRANSMIT_PHASE_CT") for i in _N])
#: The data keywords read into the observations table.
READ_KEYWORDS = frozenset({"ANGLE_1", "ANGLE_2", "RANGE", "DOPPLER_INSTANTANEOUS",
                           "DOPPLER_INTEGRATED", "MAG"})
_NUMERIC_META = frozenset(
    ["INTEGRATION_INTERVAL", "FREQ_OFFSET", "RANGE_MODULUS", "INTERPOLATION_DEGREE",
     "DOPPLER_COUNT_BIAS", "DOPPLER_COUNT_SCALE", "TURNAROUND_NUMERATOR",
     "TURNAROUND_DENOMINATOR", "CORRECTION_ANGLE_1", "CORRECTION_ANGLE_2",
     "CORRECTION_DOPPLER", "CORRECTION_MAG", "CORRECTION_RANGE", "CORRECTION_RCS",
     "CORRECTION_RECEIVE", "CORRECTION_TRANSMIT", "CORRECTION_ABERRATION_YEARLY",
     "CORRECTION_ABERRATION_DIURNAL"]
    + [f"{k}_{i}" for k in ("TRANSMIT_DELAY", "RECEIVE_DELAY") for i in _N])
#: Metadata keywords of TDM 1.0 and 2.0.
METADATA_KEYWORDS = frozenset(
    ["TRACK_ID", "DATA_TYPES", "TIME_SYSTEM", "START_TIME", "STOP_TIME", "MODE", "PATH",
     "PATH_1", "PATH_2", "TRANSMIT_BAND", "RECEIVE_BAND", "TIMETAG_REF", "INTEGRATION_REF",
     "RANGE_MODE", "RANGE_UNITS", "ANGLE_TYPE", "REFERENCE_FRAME", "INTERPOLATION",
     "DOPPLER_COUNT_ROLLOVER", "DATA_QUALITY", "CORRECTIONS_APPLIED"]
    + [f"PARTICIPANT_{i}" for i in _N] + [f"EPHEMERIS_NAME_{i}" for i in _N]) | _NUMERIC_META
_HEADER_KEYWORDS = frozenset({"CREATION_DATE", "ORIGINATOR", "MESSAGE_ID", "CLASSIFICATION"})
_VERSIONS = ("1.0", "2.0")
_RADEC_FRAMES = {"EME2000": "J2000", "ICRF": "J2000", "GCRF": "J2000", "TOD": "OF-DATE"}
_CORRECTION_OF = {"ANGLE_1": "CORRECTION_ANGLE_1", "ANGLE_2": "CORRECTION_ANGLE_2",
                  "RANGE": "CORRECTION_RANGE", "DOPPLER_INSTANTANEOUS": "CORRECTION_DOPPLER",
                  "DOPPLER_INTEGRATED": "CORRECTION_DOPPLER", "MAG": "CORRECTION_MAG"}
#: Time systems converted exactly: offset to TAI in ns (UTC handled apart).
_TO_TAI_NS = {"TAI": 0, "TT": -32_184_000_000, "GPS": 19_000_000_000}
#: Time systems the standard names that have no exact conversion to UTC here.
_OTHER_TIME_SYSTEMS = frozenset({"GMST", "MET", "MRT", "SCLK", "TCB", "TCG", "TDB", "UT1",
                                 "GLONASS", "BDT", "QZSS", "IRNSS", "GALILEO", "ET"})
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_PATH = re.compile(r"[1-5](?:,[1-5])+")
_COSPAR = re.compile(r"(?:19|20)\d{2}-\d{3}[A-Z]{1,3}")
_CATNO = re.compile(r"\d{1,9}")


# ---------------------------------------------------------------------------------------------
# The parsed form both syntaxes produce


@dataclass
class _Item:
    """One data line (KVN) or one measurement element (XML)."""

    line: int
    key: str
    epoch: str | None
    value: str | None
    raw: str
    error: str | None = None


@dataclass
class _Segment:
    meta: dict[str, tuple[str, int]] = field(default_factory=dict)
    problem: str | None = None        # the first metadata problem, naming keyword and line
    items: list[_Item] = field(default_factory=list)


@dataclass
class _Message:
    version: str
    header: dict[str, tuple[str, int]]
    segments: list[_Segment]


def _meta_problem(seg: _Segment, key: str, value: str, line: int) -> None:
    """Record ``key = value`` in the segment's metadata, or its first problem."""
    if seg.problem:
        return
    if key not in METADATA_KEYWORDS:
        seg.problem = f"unexpected metadata keyword {key} at line {line}"
    elif key in seg.meta:
        seg.problem = f"metadata keyword {key} repeated at line {line}"
    elif key in _NUMERIC_META and not _NUMBER.fullmatch(value.strip()):
        seg.problem = f"metadata {key} at line {line} is not a number: {value.strip()!r}"
    else:
        seg.meta[key] = (value.strip(), line)


# ---------------------------------------------------------------------------------------------
# KVN

_KVN_LINE = re.compile(r"\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*")
_COMMENT = re.compile(r"\s*COMMENT(?:\s|$)")
_BLANK = " \t\r\n\x0b\x0c"


def _kvn_message(text: str, uri: str) -> _Message:
    """Header, metadata and data lines of a TDM KVN file; :class:`FormatError` (with the line)
    when its structure (version line, META/DATA blocks) is broken."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    header: dict[str, tuple[str, int]] = {}
    segments: list[_Segment] = []
    version = None
    state = "start"   # start, header, meta, between, data, after
    seg: _Segment | None = None

    def fail(message, lineno, line, expected=None):
        raise FormatError(message, path=uri, line=lineno, expected=expected,
                          got=line.strip()[:_RAW_MAX])

    for lineno, line in enumerate(lines, 1):
        s = line.strip(_BLANK)
        if not s or _COMMENT.match(line):
            continue
        if state == "start":
            m = _KVN_LINE.fullmatch(line)
            if m is None or m[1] != "CCSDS_TDM_VERS":
                fail("a TDM KVN file starts with CCSDS_TDM_VERS", lineno, line,
                     "CCSDS_TDM_VERS = 2.0")
            if m[2] not in _VERSIONS:
                fail(f"CCSDS_TDM_VERS {m[2]!r} is not a TDM version ssafuse reads", lineno,
                     line, "1.0 or 2.0")
            version, state = m[2], "header"
            continue
        if s in ("META_START", "META_STOP", "DATA_START", "DATA_STOP"):
            allowed = {"META_START": ("header", "after"), "META_STOP": ("meta",),
                       "DATA_START": ("between",), "DATA_STOP": ("data",)}[s]
            if state not in allowed:
                fail(f"{s} at line {lineno} is out of place (a TDM is header, then "
                     "META_START ... META_STOP DATA_START ... DATA_STOP per segment)",
                     lineno, line)
            if s == "META_START":
                seg = _Segment()
                segments.append(seg)
            state = {"META_START": "meta", "META_STOP": "between", "DATA_START": "data",
                     "DATA_STOP": "after"}[s]
            continue
        if state == "data":
            seg.items.append(_kvn_item(lineno, line))
            continue
        m = _KVN_LINE.fullmatch(line)
        if state == "header":
            if m is None:
                fail(f"header line {lineno} is not a KEYWORD = value line", lineno, line,
                     "KEYWORD = value")
            if m[1] not in _HEADER_KEYWORDS:
                fail(f"unexpected header keyword {m[1]} at line {lineno}", lineno, line,
                     ", ".join(sorted(_HEADER_KEYWORDS)))
            header[m[1]] = (m[2], lineno)
        elif state == "meta":
            if m is None:
                if not seg.problem:
                    seg.problem = f"metadata line {lineno} is not a KEYWORD = value line"
                continue
            _meta_problem(seg, m[1], m[2], lineno)
        else:
            fail(f"line {lineno} is outside any META or DATA block", lineno, line)
    if version is None:
        raise FormatError("not a TDM: no CCSDS_TDM_VERS line", path=uri,
                          expected="CCSDS_TDM_VERS = 2.0")
    if state in ("meta", "between", "data"):
        raise FormatError(f"file ends inside a segment (no "
                          f"{ {'meta': 'META_STOP', 'between': 'DATA_START', 'data': 'DATA_STOP'}[state] })",
                          path=uri, line=len(lines))
    if not segments:
        raise FormatError("TDM has no segment (META_START ... DATA_STOP)", path=uri)
    return _Message(version, header, segments)


def _kvn_item(lineno: int, line: str) -> _Item:
    raw = line.strip(_BLANK)[:_RAW_MAX]
    m = _KVN_LINE.fullmatch(line)
    if m is None:
        return _Item(lineno, "", None, None, raw,
                     f"data line {lineno} is not a KEYWORD = time value line")
    fields = m[2].split()
    if len(fields) != 2:
        return _Item(lineno, m[1], None, None, raw,
                     f"{m[1]} at line {lineno} has {len(fields)} fields after '='; a data "
                     "line is KEYWORD = time value")
    return _Item(lineno, m[1], fields[0], fields[1], raw)


def _identify_kvn(head: bytes) -> bool:
    for line in split_lines(decode(head)):
        if not line.strip(_BLANK) or _COMMENT.match(line):
            continue
        m = _KVN_LINE.fullmatch(line)
        return bool(m and m[1] == "CCSDS_TDM_VERS")
    return False


def read_kvn(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """Observation rows and rejects of a TDM KVN file (see the module docstring)."""
    message = _kvn_message(decode(stream.read()), uri)
    yield from _batches(message)


# ---------------------------------------------------------------------------------------------
# XML

_MAX_DEPTH = 16


class _TdmSax(xml.sax.handler.ContentHandler, StrictSaxErrors):
    """Builds the :class:`_Message` of a ``<tdm>`` document, with line numbers."""

    def __init__(self, parser, uri: str):
        super().__init__()
        self.parser = parser
        self.uri = uri
        self.path: list[str] = []
        self.text: list[str] = []
        self.version: str | None = None
        self.header: dict[str, tuple[str, int]] = {}
        self.segments: list[_Segment] = []
        self.obs_epoch: str | None = None
        self.obs_line = 0
        self.obs_items: list[_Item] = []
        self.start_line = 0

    def _line(self) -> int:
        p = getattr(self.parser, "_parser", None)
        return p.CurrentLineNumber if p is not None else 0

    def startElement(self, name, attrs):
        tag = name.rpartition(":")[2]
        depth = len(self.path)
        if depth >= _MAX_DEPTH:
            raise FormatError(f"XML nested deeper than {_MAX_DEPTH} levels", path=self.uri,
                              line=self._line())
        if depth == 0:
            if tag != "tdm":
                raise FormatError(f"root element <{name}> is not <tdm>", path=self.uri,
                                  line=self._line(), expected="<tdm>")
            version = attrs.get("version")
            if version not in _VERSIONS:
                raise FormatError(f"<tdm version={version!r}> is not a TDM version ssafuse "
                                  "reads", path=self.uri, line=self._line(),
                                  expected='version="1.0" or "2.0"')
            self.version = version
        parent = self.path[-1] if self.path else None
        if tag == "segment" and parent == "body":
            self.segments.append(_Segment())
        elif tag == "observation" and parent == "data":
            self.obs_epoch, self.obs_line, self.obs_items = None, self._line(), []
        # Elements inside <observation>, <metadata> and <header> are keywords, read when they
        # end; any other element this deep is unexpected.
        elif (depth >= 3 and parent not in ("body", "segment", "data", "observation",
                                             "metadata", "header")):
            raise FormatError(f"unexpected element <{tag}> inside <{parent}>", path=self.uri,
                              line=self._line())
        self.path.append(tag)
        self.text = []
        self.start_line = self._line()

    def characters(self, content):
        self.text.append(content)

    def endElement(self, name):
        tag = self.path.pop()
        parent = self.path[-1] if self.path else None
        value = "".join(self.text).strip()
        self.text = []
        line = self.start_line
        if tag == "COMMENT":
            return
        if parent == "header":
            if tag not in _HEADER_KEYWORDS:
                raise FormatError(f"unexpected header element <{tag}> at line {line}",
                                  path=self.uri, line=line)
            self.header[tag] = (value, line)
        elif parent == "metadata" and self.segments:
            _meta_problem(self.segments[-1], tag, value, line)
        elif parent == "observation":
            if tag == "EPOCH":
                if self.obs_epoch is not None:
                    self.obs_items.append(_Item(line, tag, None, None, f"<EPOCH>{value}",
                                                f"second <EPOCH> in the <observation> of "
                                                f"line {self.obs_line}"))
                else:
                    self.obs_epoch = value
            else:
                self.obs_items.append(_Item(line, tag, None, value,
                                            f"<{tag}>{value}</{tag}>"[:_RAW_MAX]))
        elif parent == "data" and tag != "observation":
            if self.segments:
                self.segments[-1].items.append(_Item(
                    line, tag, None, value, f"<{tag}>{value}</{tag}>"[:_RAW_MAX],
                    f"<{tag}> at line {line} is not inside an <observation>"))
        elif parent == "segment" and tag not in ("metadata", "data"):
            raise FormatError(f"unexpected element <{tag}> in <segment> at line {line}",
                              path=self.uri, line=line, expected="<metadata>, <data>")
        elif parent == "body" and tag != "segment":
            raise FormatError(f"unexpected element <{tag}> in <body> at line {line}",
                              path=self.uri, line=line, expected="<segment>")
        elif tag == "observation" and self.segments:
            seg = self.segments[-1]
            if not self.obs_items:
                seg.items.append(_Item(self.obs_line, "observation", None, None,
                                       "<observation/>", f"<observation> at line "
                                       f"{self.obs_line} holds no measurement"))
            for item in self.obs_items:
                if item.error is None:
                    if self.obs_epoch is None:
                        item.error = (f"{item.key} at line {item.line}: its <observation> "
                                      "has no <EPOCH> before the measurement")
                    elif len(self.obs_items) > 1:
                        item.error = (f"{item.key} at line {item.line}: an <observation> "
                                      "holds one EPOCH and one measurement")
                item.epoch = self.obs_epoch
                if self.obs_epoch is not None:
                    item.raw = (f"{item.key} = {self.obs_epoch} {item.value}")[:_RAW_MAX]
                seg.items.append(item)


def read_xml(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """Observation rows and rejects of a TDM XML file (see the module docstring)."""
    handler = _TdmSax(None, uri)
    parser = handler.parser = safe_sax_parser(handler)
    try:
        parser.feed(stream.read())
        parser.close()
    except FormatError:
        raise
    except XML_ERRORS as e:
        raise xml_format_error(e, uri) from None
    if handler.version is None:
        raise FormatError("empty XML document: no <tdm> root element", path=uri)
    if not handler.segments:
        raise FormatError("TDM has no <segment>", path=uri)
    yield from _batches(_Message(handler.version, handler.header, handler.segments))


_XML_START = re.compile(rb"\s*(?:(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(?:\[.*?\]\s*)?>)\s*)*"
                        rb"<\s*(?:[\w.-]+:)?tdm[\s>/]", re.DOTALL)


def _identify_xml(head: bytes) -> bool:
    return bool(_XML_START.match(head.removeprefix(b"\xef\xbb\xbf")))


# ---------------------------------------------------------------------------------------------
# From the parsed message to rows and rejects


@lru_cache(maxsize=1)
def _tai_minus_utc() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(UTC instants in ns since 1970 at which TAI - UTC changed, the new TAI - UTC in ns),
    from Skyfield's built-in leap-second table, 1972 onwards."""
    ts = load.timescale(builtin=True)
    starts = [(63072000 * 10**9, 10 * 10**9)]   # 1972-01-01: TAI - UTC = 10 s
    for jd, off in zip(ts.leap_dates, ts.leap_offsets):
        ns = round((float(jd) - 2440587.5) * 86400) * 10**9
        if ns > starts[-1][0]:
            starts.append((ns, int(off) * 10**9))
    return tuple(s for s, _ in starts), tuple(o for _, o in starts)


def _to_utc_ns(reading_ns: int, system: str) -> int:
    """UTC ns of a calendar reading in ``system`` (UTC, TAI, TT, GPS)."""
    if system == "UTC":
        return reading_ns
    tai = reading_ns + _TO_TAI_NS[system]
    starts, offsets = _tai_minus_utc()
    if tai < starts[0] + offsets[0]:
        raise FormatError(f"{system} time before 1972: TAI - UTC was not a whole number of "
                          "seconds then", field="time")
    offset = offsets[0]
    for s, o in zip(starts, offsets):
        if tai >= s + o:
            offset = o
        else:
            break
    return tai - offset


def _participant(meta, index: int) -> str | None:
    entry = meta.get(f"PARTICIPANT_{index}")
    if entry is None:
        return None
    name = entry[0]
    if len(name) >= 2 and name[0] == name[-1] == "'":
        name = name[1:-1].strip()
    return name or None


@dataclass
class _Context:
    """What a segment's metadata says about its measurements."""

    problem: str | None
    system: str = "UTC"
    sensor_id: str | None = None
    object_name: str | None = None
    legs: int | None = None            # 1: one-way, 2: round trip; None: neither
    path_text: str = ""


def _context(seg: _Segment, index: int) -> _Context:
    meta = seg.meta
    if seg.problem:
        return _Context(f"segment {index} metadata is not valid: {seg.problem}")
    ts = meta.get("TIME_SYSTEM")
    if ts is None:
        return _Context(f"segment {index} metadata has no TIME_SYSTEM")
    system = ts[0].upper()
    if system not in ("UTC",) and system not in _TO_TAI_NS:
        if system in _OTHER_TIME_SYSTEMS:
            return _Context(f"TIME_SYSTEM {ts[0]} (line {ts[1]}) has no exact conversion to "
                            "UTC in ssafuse (UTC, TAI, TT and GPS are converted)")
        return _Context(f"TIME_SYSTEM {ts[0]!r} at line {ts[1]} is not a CCSDS time system")
    if _participant(meta, 1) is None:
        return _Context(f"segment {index} metadata has no PARTICIPANT_1")
    ctx = _Context(None, system)
    mode = meta.get("MODE", ("", 0))[0].upper()
    if "PATH" in meta:
        text, line = meta["PATH"]
        if not _PATH.fullmatch(text):
            return _Context(f"PATH {text!r} at line {line} is not participant indices "
                            "separated by commas without blanks (e.g. 1,2,1)")
        path = [int(p) for p in text.split(",")]
        missing = [p for p in path if _participant(meta, p) is None]
        if missing:
            return _Context(f"PATH {text} at line {line} names PARTICIPANT_{missing[0]}, "
                            "which the metadata does not define")
        ctx.sensor_id = _participant(meta, path[-1])
        ctx.object_name = _participant(meta, path[-2])
        ctx.path_text = text
        if len(path) == 2:
            ctx.legs = 1
        elif len(path) == 3 and path[0] == path[2]:
            ctx.legs = 2
    if mode == "SINGLE_DIFF" or "PATH_1" in meta:
        ctx.sensor_id = None
        ctx.path_text = "SINGLE_DIFF"
    return ctx


def _quantity_problem(key: str, ctx: _Context, meta) -> str | None:
    """Why the quantity ``key`` of this segment cannot be read, or None."""
    if ctx.sensor_id is None:
        if ctx.path_text == "SINGLE_DIFF":
            return (f"{key} in a SINGLE_DIFF segment is differenced data, not a "
                    "sensor-to-object measurement")
        return f"{key}: the segment has no PATH, so which participant observed which is not stated"
    corr = _CORRECTION_OF.get(key)
    if corr in meta and meta.get("CORRECTIONS_APPLIED", ("NO", 0))[0].upper() != "YES":
        return (f"{key}: {corr} = {meta[corr][0]} (line {meta[corr][1]}) is stated but not "
                "applied (CORRECTIONS_APPLIED is not YES), so the corrected value is not known")
    if key in ("ANGLE_1", "ANGLE_2"):
        at = meta.get("ANGLE_TYPE")
        if at is None:
            return f"{key}: the segment has no ANGLE_TYPE"
        kind = at[0].upper()
        if kind == "RADEC":
            rf = meta.get("REFERENCE_FRAME")
            if rf is None:
                return f"{key}: ANGLE_TYPE RADEC (line {at[1]}) without a REFERENCE_FRAME"
            if rf[0].upper() not in _RADEC_FRAMES:
                return (f"{key}: REFERENCE_FRAME {rf[0]} (line {rf[1]}) is not converted "
                        "(EME2000, ICRF, GCRF and TOD are read)")
        elif kind != "AZEL":
            return (f"{key}: ANGLE_TYPE {at[0]} (line {at[1]}) is not converted (AZEL and "
                    "RADEC are read; XEYN / XSYE are antenna mount angles)")
    elif key in ("RANGE", "DOPPLER_INSTANTANEOUS", "DOPPLER_INTEGRATED"):
        if ctx.legs is None:
            return (f"{key} along PATH {ctx.path_text} is not a range between the sensor and "
                    "one object (one-way or round-trip paths are read)")
        if key == "RANGE":
            return _range_problem(meta)
    return None


def _range_problem(meta) -> str | None:
    """Why a segment's RANGE values are not read as distances, or None: units other than
    km and s, or a range modulus. CCSDS 503.0-B-2 table 3-3: with ``RANGE_MODULUS`` M, "the
    actual (unambiguous) range is an integer k times the modulus, plus the observable value",
    and M is 0 ("an essentially infinite modulus", the default) for a range that is not
    ambiguous. k is not in the message (resolving it needs an orbit), so a range with M > 0
    is a residue, not a distance, whatever ``RANGE_MODE`` says."""
    units = meta.get("RANGE_UNITS", ("km", 0))
    if units[0] not in ("km", "s"):
        return (f"RANGE: RANGE_UNITS {units[0]} (line {units[1]}) is not converted "
                "(km and s are read; RU needs the transmitted frequencies)")
    modulus = meta.get("RANGE_MODULUS", ("0", 0))
    if float(modulus[0]) != 0.0:
        return (f"RANGE: RANGE_MODULUS = {modulus[0]} {units[0]} (line {modulus[1]}) makes "
                "each value ambiguous, the true range being the value plus an unknown whole "
                "number of moduli (CCSDS 503.0-B-2 table 3-3; 0 marks an unambiguous range), "
                "so it is not read as a distance")
    return None


def _object(name: str | None) -> tuple[int | None, str | None]:
    if name is None:
        return None, None
    if _CATNO.fullmatch(name) and int(name) > 0:
        return int(name), None
    if _COSPAR.fullmatch(name.upper()):
        return None, name.upper()
    return None, None


def _batches(message: _Message) -> Iterator[Batch]:
    marking = message.header.get("CLASSIFICATION", (None, 0))[0] or None
    batch = Batch(table="observations")
    for index, seg in enumerate(message.segments, 1):
        _segment(seg, index, marking, batch)
        if len(batch) >= BATCH_RECORDS:
            yield batch
            batch = Batch(table="observations")
    if len(batch):
        yield batch


def _segment(seg: _Segment, index: int, marking: str | None, batch: Batch) -> None:
    """The observation rows and rejects of one segment into ``batch``: each data line checked
    against the segment's metadata, then the lines that share a time tag joined into one
    row."""
    ctx = _context(seg, index)
    groups, values = _group_items(seg, ctx, batch)
    obj_id, designator = _object(ctx.object_name)
    base = dict.fromkeys(OBSERVATION_COLUMNS)
    base.update(source_record=None, marking=marking, kind="rf", time=None,
                sensor_id=ctx.sensor_id, object_id=obj_id, intl_designator=designator)
    for t, group in groups.items():
        rec = _row(t, group, values, ctx, seg.meta, batch, base)
        if rec is not None:
            batch.records.append(rec)


def _reject(batch: Batch, item: _Item, reason: str) -> None:
    batch.rejects.append(Reject(item.line, item.raw, reason, "tdm:" + item.key
                                if item.key else None))


def _group_items(seg: _Segment, ctx: _Context, batch: Batch
                 ) -> tuple[dict[int, dict[str, _Item]], dict[int, float]]:
    """The readable data lines of a segment grouped by time tag (UTC ns -> quantity ->
    line), and each one's value by ``id`` of the line; every other line rejected into
    ``batch``, as is a second line of one quantity at one time tag."""
    groups: dict[int, dict[str, _Item]] = {}
    values: dict[int, float] = {}
    for item in seg.items:
        checked = _item_value(item, ctx, seg.meta)
        if isinstance(checked, str):
            _reject(batch, item, checked)
            continue
        t, value = checked
        group = groups.setdefault(t, {})
        quantity = "DOPPLER" if item.key.startswith("DOPPLER") else item.key
        if quantity in group:
            _reject(batch, item, f"{item.key} at line {item.line}: a second {quantity} at the "
                                 f"same time tag as line {group[quantity].line}")
            continue
        group[quantity] = item
        values[id(item)] = value
    return groups, values


def _item_value(item: _Item, ctx: _Context, meta) -> tuple[int, float] | str:
    """``(UTC ns, value)`` of one data line, or the reason it is refused."""
    if item.error:
        return item.error
    if ctx.problem:
        return ctx.problem
    if item.key not in DATA_KEYWORDS:
        return f"unexpected data keyword {item.key} at line {item.line}"
    try:
        t = _to_utc_ns(parse_epoch(item.epoch or ""), ctx.system)
    except FormatError as e:
        return (f"{item.key} at line {item.line}: time {item.epoch!r} is not valid: "
                f"{e.message}")
    value_text = (item.value or "").strip()
    if not _NUMBER.fullmatch(value_text):
        return f"{item.key} at line {item.line}: value {value_text!r} is not a number"
    value = float(value_text)
    if value != value or abs(value) == float("inf"):
        return f"{item.key} at line {item.line}: value is not finite"
    if item.key not in READ_KEYWORDS:
        return (f"TDM data type {item.key} (line {item.line}) has no column in the "
                "observations table (angles, range, range rate and magnitude are "
                "read); kept here, not converted")
    problem = _quantity_problem(item.key, ctx, meta)
    if problem:
        return f"{problem} (line {item.line})"
    if item.key in ("ANGLE_1", "ANGLE_2") and not -180.0 <= value < 360.0:
        return (f"{item.key} at line {item.line}: {value!r} deg is outside "
                "[-180, 360), the range the standard allows")
    return t, value


def _row(t: int, group: dict[str, _Item], values: dict[int, float], ctx: _Context, meta,
         batch: Batch, base: dict) -> dict | None:
    """The observation row of the lines of one time tag (``base`` holds what the segment
    gives every row: marking, sensor, object), or None when none of them is left; an angle
    without its partner, or an elevation / declination beyond 90 deg, is rejected into
    ``batch``."""
    a1, a2 = group.get("ANGLE_1"), group.get("ANGLE_2")
    if (a1 is None) != (a2 is None):
        lone = a1 or a2
        _reject(batch, lone, f"{lone.key} at line {lone.line} has no "
                             f"{'ANGLE_2' if a1 else 'ANGLE_1'} at the same time tag")
        group.pop(lone.key)
    if not group:
        return None
    first = min(group.values(), key=lambda i: i.line)
    rec = dict(base)
    rec.update(source_record=first.line, time=t,
               _raw="\n".join(i.raw for i in sorted(group.values(), key=lambda i: i.line)))
    if a1 is not None and a2 is not None:
        v1, v2 = values[id(a1)], values[id(a2)]
        if not -90.0 <= v2 <= 90.0:
            for i in (a1, a2):
                _reject(batch, i, f"ANGLE_2 at line {a2.line}: {v2!r} deg is outside "
                                  "[-90, 90], not an elevation or declination")
            group.pop("ANGLE_1")
            group.pop("ANGLE_2")
            if not group:
                return None
            first = min(group.values(), key=lambda i: i.line)
            rec["source_record"] = first.line
        else:
            v1 = v1 % 360.0 % 360.0  # twice: -1e-20 % 360 is 360.0 in floating point
            if meta["ANGLE_TYPE"][0].upper() == "AZEL":
                rec["az_deg"], rec["el_deg"], rec["frame"] = v1, v2, "AZEL"
            else:
                rec["ra_deg"], rec["dec_deg"] = v1, v2
                rec["frame"] = _RADEC_FRAMES[meta["REFERENCE_FRAME"][0].upper()]
    if "RANGE" in group:
        v = values[id(group["RANGE"])]
        if meta.get("RANGE_UNITS", ("km", 0))[0] == "s":
            v *= C_KM_S
        rec["range_km"] = v / ctx.legs
    if "DOPPLER" in group:
        rec["range_rate_km_s"] = values[id(group["DOPPLER"])] / ctx.legs
    if "MAG" in group:
        rec["magnitude"] = values[id(group["MAG"])]
    return rec


KVN = Format("tdm-kvn", "observations", "CCSDS Tracking Data Message 1.0/2.0, KVN (angles, "
             "range, Doppler into observations)", _identify_kvn, read_kvn, 10,
             (".tdm", ".kvn", ".txt"))
XML = Format("tdm-xml", "observations", "CCSDS Tracking Data Message 1.0/2.0, XML",
             _identify_xml, read_xml, 10, (".tdm", ".xml"))
FORMATS = (KVN, XML)

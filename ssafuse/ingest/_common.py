"""What every ingest adapter shares: the batch it yields, the format record, time parsing.

An adapter is stateless: ``read(stream, uri) -> Iterator[Batch]``. A :class:`Batch` holds the
records it parsed, as dicts keyed by canonical column names (see
:data:`ssafuse.schema.ELEMENT_COLUMNS`), and the records it refused, as :class:`Reject`.
Each record dict also carries ``source_record`` (1-based line or index) and, when the record
states one, ``marking`` (the raw marking text, parsed later by the ingest layer). ``epoch`` is an
``int`` of nanoseconds since 1970-01-01T00:00 UTC, computed exactly (no float rounding), so the
same element set read from TLE, OMM and CSV gives identical rows.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.sax
import xml.sax.handler

import numpy as np
from defusedxml.common import DefusedXmlException, DTDForbidden
from defusedxml.expatreader import DefusedExpatParser
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

from ..errors import FormatError

NS_PER_DAY = 86_400 * 10**9
_UNIX_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class Reject:
    """A record that could not be used: where it is, its raw text, and why."""

    record: int
    raw: str
    reason: str
    field: str | None = None

    @classmethod
    def from_error(cls, error: FormatError, record: int, raw: str) -> "Reject":
        reason = error.message
        if error.expected is not None:
            reason += f"; expected {error.expected!r}"
        return cls(record, raw, reason, error.field)


@dataclass
class Batch:
    """Records parsed from one stretch of a file, and the records refused in it.

    Accepted records come as dicts in ``records`` (the simple way), or, for adapters that
    parse whole blocks at once, as ``columns``: the same keys, each mapped to a list or
    array of equal length (``_raw`` may be left out). A batch may use both.
    """

    records: list[dict] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    table: str = "elements"
    columns: dict | None = None

    @property
    def accepted(self) -> int:
        n = len(self.records)
        if self.columns:
            n += len(self.columns["source_record"])
        return n

    def __len__(self) -> int:
        return self.accepted + len(self.rejects)

    def all_records(self) -> list[dict]:
        """Every accepted record as a dict, ``records`` and ``columns`` together, in file
        order (for tests and small files; the ingest layer reads the columns directly)."""
        out = list(self.records)
        if self.columns:
            n = len(self.columns["source_record"])
            cols = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                    for k, v in self.columns.items()}
            out += [{k: v[i] for k, v in cols.items()} for i in range(n)]
        return sorted(out, key=lambda r: r["source_record"])


@dataclass(frozen=True)
class Format:
    """One input format: how it is recognised and how it is read.

    ``identify(head)`` gets the first bytes of a file (up to 64 KiB) and says whether the file
    looks like this format; ``read(stream, uri)`` yields :class:`Batch` objects and raises
    :class:`FormatError` only when the file as a whole cannot be read (a truncated XML
    document, say); record-level problems become rejects. Higher ``priority`` wins when several
    formats recognise a file; equal priorities are an ambiguity, reported as an error.
    """

    name: str
    table: str
    description: str
    identify: Callable[[bytes], bool]
    read: Callable[[BinaryIO, str], Iterator[Batch]]
    priority: int = 0
    extensions: tuple[str, ...] = ()


def decode(data: bytes) -> str:
    """Text of a feed file: UTF-8 (with or without BOM), falling back to Latin-1 so a stray
    byte costs one record, not the file."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    return dt.date(year, month, day).toordinal() - _UNIX_EPOCH_ORDINAL


def fraction_ns(digits: str, unit_ns: int) -> int:
    """``0.<digits>`` of ``unit_ns`` nanoseconds, rounded to the nearest nanosecond, exactly."""
    if not digits:
        return 0
    digits = digits[:30]  # beyond 1e-30 of a day nothing changes a nanosecond
    scale = 10 ** len(digits)
    return (int(digits) * unit_ns * 2 + scale) // (2 * scale)


_ISO = re.compile(
    r"^\s*(?P<year>[0-9]{4})-(?:(?P<month>[0-9]{1,2})-(?P<day>[0-9]{1,2})|(?P<doy>[0-9]{3}))"
    r"(?:[T ](?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<frac>[0-9]*))?)?)?"
    r"\s*(?P<tz>Z|UTC|[+-]00:?00)?\s*$", re.IGNORECASE)


def parse_epoch(text: str) -> int:
    """Nanoseconds since 1970-01-01 UTC of an ISO-8601 UTC time.

    Accepts ``YYYY-MM-DDThh:mm:ss[.f...]`` and the CCSDS day-of-year form ``YYYY-DDDThh:mm:ss``,
    with an optional ``Z``; any number of fraction digits, rounded to the nanosecond.
    Raises :class:`FormatError` for anything else (including other time zones).
    """
    m = _ISO.match(text) if isinstance(text, str) else None
    if m is None:
        raise FormatError("time is not an ISO-8601 UTC time", field="epoch",
                          expected="YYYY-MM-DDThh:mm:ss.ffffff or YYYY-DDDThh:mm:ss",
                          got=str(text))
    year = int(m["year"])
    try:
        if m["doy"]:
            doy = int(m["doy"])
            if not 1 <= doy <= (366 if _leap(year) else 365):
                raise ValueError(f"day of year {doy} out of range")
            days = days_from_civil(year, 1, 1) + doy - 1
        else:
            days = days_from_civil(year, int(m["month"]), int(m["day"]))
        hour = int(m["hour"] or 0)
        minute = int(m["minute"] or 0)
        second = int(m["second"] or 0)
        if hour > 23 or minute > 59 or second > 60:
            raise ValueError("time of day out of range")
    except ValueError as e:
        raise FormatError(f"invalid date or time: {e}", field="epoch", got=text) from None
    return (days * NS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 10**9
            + fraction_ns(m["frac"] or "", 10**9))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def epoch_from_year_day(year: int, day_text: str) -> int:
    """Nanoseconds since 1970 of a TLE-style epoch: a 4-digit ``year`` and the day of year
    with its fraction as text (``"068.38946692"``; day 1.0 is January 1 at 00:00), exactly."""
    whole, _, frac = day_text.strip().partition(".")
    day = int(whole)
    if not 1 <= day <= (366 if _leap(year) else 365):
        raise FormatError(f"day of year {day} out of range for {year}", field="epoch",
                          got=day_text)
    return ((days_from_civil(year, 1, 1) + day - 1) * NS_PER_DAY
            + fraction_ns(frac, NS_PER_DAY))


def format_epoch(ns: int) -> str:
    """ISO-8601 text of nanoseconds since 1970 (``2026-03-09T09:20:49.941888000``)."""
    days, rem = divmod(ns, NS_PER_DAY)
    date = dt.date.fromordinal(days + _UNIX_EPOCH_ORDINAL)
    secs, nanos = divmod(rem, 10**9)
    h, secs = divmod(secs, 3600)
    mnt, s = divmod(secs, 60)
    return f"{date.isoformat()}T{h:02d}:{mnt:02d}:{s:02d}.{nanos:09d}"


_NUMBER = re.compile(r"^\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$")
_INTEGER = re.compile(r"^\s*[+-]?[0-9]+\s*$")
#: Epochs a timestamp[ns] column can hold, with margin: 1900-01-01 to 2200-01-01.
EPOCH_MIN_NS = -2208988800 * 10**9
EPOCH_MAX_NS = 7258118400 * 10**9


def to_ns(value, *, naive_is_utc: bool = True) -> int:
    """Nanoseconds since 1970-01-01 UTC of a time given as an int (already ns), ISO-8601 text,
    a ``datetime`` or ``pandas.Timestamp`` (nanoseconds kept), or a ``numpy.datetime64``.
    A naive datetime is UTC, or a ``ValueError`` with ``naive_is_utc=False``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"time must be timezone-aware (UTC), got {value!r}")
        value = value.replace(tzinfo=dt.timezone.utc)
    import pyarrow as pa

    try:
        return pa.scalar(value, pa.timestamp("ns", tz="UTC")).cast(pa.int64()).as_py()
    except (pa.ArrowException, TypeError):
        raise TypeError(f"expected a datetime, ISO-8601 text or int ns, got {value!r}") from None


def parse_float(text, field_name: str) -> float:
    """A finite float from a number or numeric text; :class:`FormatError` otherwise.
    Booleans and Python-only spellings (``1_000``, non-ASCII digits) are refused."""
    if isinstance(text, bool) or (isinstance(text, str) and not _NUMBER.match(text)):
        raise FormatError("not a number", field=field_name, got=repr(text))
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        raise FormatError("not a number", field=field_name, got=repr(text)) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise FormatError("not a finite number", field=field_name, got=repr(text))
    return value


def parse_int(text, field_name: str) -> int:
    """An integer from an int or integer text (``"0925"`` is 925); :class:`FormatError`
    otherwise. Floats with a fractional part are refused, not truncated."""
    if isinstance(text, bool):
        raise FormatError("not an integer", field=field_name, got=repr(text))
    if isinstance(text, int):
        return text
    if isinstance(text, float):
        if text.is_integer():
            return int(text)
        raise FormatError("not an integer", field=field_name, got=repr(text))
    if not _INTEGER.match(str(text)):
        raise FormatError("not an integer", field=field_name, got=repr(text))
    try:
        return int(str(text).strip())
    except ValueError:
        raise FormatError("not an integer", field=field_name, got=repr(text)) from None


#: Physical limits every element set must meet: ``(column, low, high, high_inclusive,
#: expected)``; the low bound is inclusive except for mean motion and catalogue number (> 0).
ELEMENT_LIMITS = (
    ("object_id", 1, 10**9, False, "a catalogue number from 1 to 999999999"),
    ("epoch", EPOCH_MIN_NS, EPOCH_MAX_NS, False, "an epoch between 1900 and 2200"),
    ("mean_motion_rev_day", 0.0, 20.0, False, "mean motion between 0 and 20 rev/day"),
    ("eccentricity", 0.0, 1.0, False, "eccentricity in [0, 1)"),
    ("inclination_deg", 0.0, 180.0, True, "inclination in [0, 180] deg"),
    ("raan_deg", -360.0, 360.0, True, "RAAN in [-360, 360] deg"),
    ("arg_perigee_deg", -360.0, 360.0, True, "argument of perigee in [-360, 360] deg"),
    ("mean_anomaly_deg", -360.0, 360.0, True, "mean anomaly in [-360, 360] deg"),
)
_POSITIVE = frozenset({"mean_motion_rev_day"})


def _within(value, low, high, high_inclusive, name):
    above = value > low if name in _POSITIVE else value >= low
    return above & ((value <= high) if high_inclusive else (value < high))


def validate_elements(rec: dict) -> None:
    """Physical range checks shared by every element-set adapter (:data:`ELEMENT_LIMITS`);
    raises :class:`FormatError` naming the field. Values are checked after parsing, so every
    format refuses the same records for the same reasons."""
    for name, low, high, high_inclusive, expected in ELEMENT_LIMITS:
        if not _within(rec[name], low, high, high_inclusive, name):
            raise FormatError(f"{name} out of range", field=name, expected=expected,
                              got=repr(rec[name]))


def elements_within_limits(columns: dict) -> "np.ndarray":
    """Vectorized :func:`validate_elements`: a boolean mask of the rows of ``columns``
    (column name -> numpy array) that meet every limit. Rows outside it are to be passed to
    :func:`validate_elements` one by one for their reason."""
    ok = None
    for name, low, high, high_inclusive, _ in ELEMENT_LIMITS:
        inside = _within(columns[name], low, high, high_inclusive, name)
        ok = inside if ok is None else ok & inside
    return ok


# ------------------------------------------------------------------------------ untrusted XML

#: Everything parsing untrusted XML may raise besides FormatError; :func:`xml_format_error`
#: turns each into a FormatError. (LookupError: an XML declaration naming an unknown encoding.)
XML_ERRORS = (xml.sax.SAXException, DefusedXmlException, ValueError, LookupError,
              RecursionError)


def safe_sax_parser(handler) -> DefusedExpatParser:
    """A SAX parser for untrusted XML (defusedxml): DTDs, entities and external references
    refused outright; ``handler`` (a ContentHandler and ErrorHandler) gets the events."""
    parser = DefusedExpatParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    parser.setContentHandler(handler)
    parser.setErrorHandler(handler)
    return parser


class StrictSaxErrors(xml.sax.handler.ErrorHandler):
    """Every SAX problem is fatal (the default handler prints warnings and goes on)."""

    def error(self, exception):
        raise exception

    def fatalError(self, exception):
        raise exception

    def warning(self, exception):
        raise exception


def xml_format_error(error: Exception, uri: str) -> FormatError:
    """The :class:`FormatError` for one of :data:`XML_ERRORS` raised while parsing ``uri``."""
    if isinstance(error, xml.sax.SAXParseException):
        return FormatError(f"XML is not well formed: {error.getMessage()} at line "
                           f"{error.getLineNumber()}, column {error.getColumnNumber()}",
                           path=uri, line=error.getLineNumber())
    if isinstance(error, DTDForbidden):
        return FormatError("XML with a document type declaration (<!DOCTYPE ...>) refused: "
                           "DTDs and entities are never processed in untrusted input",
                           path=uri, got=str(error)[:200])
    if isinstance(error, DefusedXmlException):
        return FormatError(f"XML refused, it declares or references entities: {error}",
                           path=uri)
    return FormatError(f"XML could not be read: {error}", path=uri)

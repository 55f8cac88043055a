"""What every format adapter shares: the batch it yields, the format record, number parsing
and the physical limits of an element set (time parsing is :mod:`ssafuse.timeutil`).

An adapter is stateless: ``read(stream, uri) -> Iterator[Batch]``. A :class:`Batch` holds the
records it parsed, as dicts keyed by canonical column names (see
:data:`ssafuse.schema.ELEMENT_COLUMNS`), and the records it refused, as :class:`Reject`.
Each record dict also carries ``source_record`` (1-based line or index) and, when the record
states one, ``marking`` (the raw marking text, parsed later by the ingest layer). ``epoch`` is an
``int`` of nanoseconds since 1970-01-01T00:00 UTC, computed exactly (no float rounding), so the
same element set read from TLE, OMM and CSV gives identical rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

import numpy as np

from ..errors import FormatError
from ..timeutil import EPOCH_MAX_NS, EPOCH_MIN_NS


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


_NUMBER = re.compile(r"^\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$")
_INTEGER = re.compile(r"^\s*[+-]?[0-9]+\s*$")
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

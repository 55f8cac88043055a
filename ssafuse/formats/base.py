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

import codecs
import json
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


# --------------------------------------------------------------------------------------------
# Byte quirks of real feeds, undone in one place for every fixed-width reader (TLE, IOD, UK,
# RDE): a UTF-8 BOM, CR LF and lone CR line ends, Latin-1 bytes in a UTF-8 file, and Unicode
# space separators (a no-break space typed or pasted where a blank belongs).

#: The Unicode space separators (general category Zs) other than the ASCII space: U+00A0
#: NO-BREAK SPACE, U+1680, U+2000..U+200A, U+202F, U+205F and U+3000 (Unicode 15;
#: ``tests/test_hostile_readers.py`` checks the list against :mod:`unicodedata`).
SPACE_SEPARATORS = "\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + \
    "\u202f\u205f\u3000"
_TO_BLANK = str.maketrans(dict.fromkeys(SPACE_SEPARATORS, " "))


def blanks(text: str) -> str:
    """``text`` with each Unicode space separator (:data:`SPACE_SEPARATORS`) replaced by one
    ASCII blank: in a fixed-width line columns are characters, so nothing shifts."""
    return text if text.isascii() else text.translate(_TO_BLANK)


def blanks_bytes(line: bytes) -> bytes:
    """:func:`blanks` for one line of bytes (UTF-8, or Latin-1 when it is not UTF-8); the
    result is UTF-8. An ASCII line is returned as it is."""
    if line.isascii():
        return line
    return blanks(decode(line)).encode("utf-8")


def unify_line_ends(data: bytes, more: bool = False) -> bytes:
    """``data`` with CR LF and lone CR line ends turned into LF. ``more``: more data follows,
    so a CR at the very end is left as it is (its LF may start the next block)."""
    if data.count(b"\r") == data.count(b"\r\n"):
        return data
    tail = b""
    if more and data.endswith(b"\r"):
        data, tail = data[:-1], b"\r"
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail


def split_lines(text: str) -> list[str]:
    """``text`` split at LF, CR LF and lone CR, and nowhere else: unlike ``str.splitlines``,
    a U+2028 LINE SEPARATOR, U+0085 or form feed inside a field (a comment, a name) does
    not cut its record in two."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def text_lines(data: bytes) -> list[str]:
    """The lines of a fixed-width feed file's bytes: a UTF-8 BOM removed; lines end at LF,
    CR LF or a lone CR (nothing else: a Unicode line separator inside a line is not a line
    end); each line decoded as UTF-8, or Latin-1 when it is not UTF-8 (a stray byte costs
    nothing); Unicode space separators made blanks (:func:`blanks`). Line ``i`` of the list
    is line ``i + 1`` of the file."""
    data = unify_line_ends(data)
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = [decode(b) for b in data.split(b"\n")]
    return [blanks(line) for line in lines]


# --------------------------------------------------------------------------------------------
# JSON, read one way by every JSON reader: nesting is bounded before the parser recurses

#: How deep arrays and objects may nest in a JSON feed. Element-set and observation feeds
#: nest 2 to 5 levels; Python's parser recurses once per level and fails near 1,000.
JSON_MAX_DEPTH = 100
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


_NOT_BRACKET_BYTES = bytes(b for b in range(256) if b not in b"[]{}")


def _bracket_depth(brackets: bytes) -> int:
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, np.uint8)
    return int(np.cumsum(np.where((codes == 91) | (codes == 123), 1, -1)).max())


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (JSON, possibly truncated or invalid).
    Above :data:`JSON_MAX_DEPTH` exact (brackets inside strings do not count); at or below it
    an upper bound (they may). Linear time, no recursion."""
    data = text.encode("utf-8", "surrogatepass")
    depth = _bracket_depth(data.translate(None, _NOT_BRACKET_BYTES))
    if depth <= JSON_MAX_DEPTH:
        return depth  # brackets inside strings can only add depth: exact when none are
    return _bracket_depth(_NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode("ascii"))


def _check_depth(text: str, path, line) -> None:
    """:class:`FormatError` when ``text`` nests deeper than :data:`JSON_MAX_DEPTH`."""
    if text.count("[") + text.count("{") <= JSON_MAX_DEPTH:
        return  # no more openers than the limit: cannot nest deeper (most small texts)
    depth = json_depth(text)
    if depth > JSON_MAX_DEPTH:
        raise _too_deep(depth, path, line)


def _too_deep(depth: int | None, path, line) -> FormatError:
    depth_text = "" if depth is None else f" ({depth} levels)"
    return FormatError(f"JSON nested deeper than {JSON_MAX_DEPTH} levels{depth_text}; "
                       "no feed nests that deep", path=path, line=line,
                       expected=f"arrays and objects nested at most {JSON_MAX_DEPTH} deep")


def load_json(text: str, *, path: str | None = None, line: int | None = None):
    """``json.loads(text)`` for every JSON reader, nesting bounded first: :class:`FormatError`
    ("JSON nested deeper than N levels", :data:`JSON_MAX_DEPTH`) instead of a
    ``RecursionError``; :class:`json.JSONDecodeError` (a ``ValueError``) for invalid JSON, as
    ``json.loads`` raises it."""
    _check_depth(text, path, line)
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - _check_depth bounds the nesting first
        raise _too_deep(None, path, line) from None


def raw_decode_json(text: str, pos: int = 0):
    """``json.JSONDecoder().raw_decode(text, pos)``, nesting bounded as :func:`load_json`."""
    _check_depth(text[pos:], None, None)
    try:
        return json.JSONDecoder().raw_decode(text, pos)
    except RecursionError:  # pragma: no cover - _check_depth bounds the nesting first
        raise _too_deep(None, None, None) from None


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

"""TLE adapter: two-line element sets, with or without name lines (2LE / 3LE).

Reads the fixed-column layout that Space-Track and CelesTrak publish (NORAD's punch-card
format; python-sgp4's ``io.py`` keeps the same templates), one record per line-1 / line-2
pair, optionally preceded by a name line: CelesTrak's space-padded ``ISS (ZARYA)`` or
Space-Track's ``0 ISS (ZARYA)``. 2LE and 3LE records may be mixed in one file; blank lines and
``#`` comment lines (as in Vallado's ``SGP4-VER.TLE``) are not records.

Every record is either accepted, as a dict keyed by :data:`ssafuse.schema.ELEMENT_COLUMNS`
plus ``source_record`` (1-based line number of its first line), ``marking`` (the
classification column) and ``_raw`` (its lines joined by ``\\n``), or refused as a
:class:`~ssafuse.formats.base.Reject` whose reason names the field and shows the column
template. Both lines' checksums are verified. Lines that belong to no complete record (a line
1 without its line 2, a name line followed by no element set, stray text) are rejects too, so
accepted + rejected always equals the records read.

Two departures from the strict 69-column layout are read, both unambiguous:

* text after column 69 separated from it by a blank, as in Vallado's verification file whose
  line 2 carries start / stop / step minutes: the element set is read from columns 1-69, the
  extra text stays in ``_raw``;
* line 2 with an 8-digit eccentricity field (CelesTrak, 2026, e.g. object 67298): every column
  after it sits one to the right and the line has 70 columns. It is read on that shifted
  layout only when the whole line matches it and its checksum (column 70, over columns 1-69)
  agrees; the standard layout needs a blank in column 34 where the shifted one has a digit, so
  the two can never both match.

Layouts are data (the column tables below); the layout regexes, the templates shown in
errors and the diagnostics are all built from them. Parsing is on bytes: the reader groups
lines into records, then parses each batch of well-formed records with numpy (exact
fixed-point arithmetic, the same doubles ``float()`` gives) and any other record one at a
time, which is also where refusals are explained. Records are yielded in batches of
:data:`BATCH_RECORDS`, so memory stays bounded whatever the file size.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import BinaryIO, Iterator

import numpy as np
from sgp4.alpha5 import from_alpha5, to_alpha5

from .. import markings as mk
from ..errors import FormatError, MarkingError
from ..constants import NS_PER_DAY
from .ccsds.omm_write import Refused, row_marking, table_rows
from .base import (Batch, Format, Reject, blanks_bytes, decode, elements_within_limits,
                   unify_line_ends, validate_elements)
from ..timeutil import days_from_civil, epoch_from_year_day

__all__ = ["FORMAT", "LINE1_TEMPLATE", "LINE2_TEMPLATE", "LINE2_WIDE_ECC_TEMPLATE",
           "LINE1_COLUMNS", "LINE2_COLUMNS", "LINE2_WIDE_ECC_COLUMNS", "BATCH_RECORDS",
           "identify", "read", "dumps", "ALPHA5_MAX"]

#: Records (accepted + rejected) per yielded :class:`Batch`.
BATCH_RECORDS = 50_000

#: A line that is not a TLE line and is at least this long is stray text, not a name line
#: (CelesTrak names are 24 characters, Space-Track's ``0 `` + 24).
NAME_MAX = 64
#: Why a name line followed by no element set is refused.
_NAME_ALONE = "name line not followed by a TLE line 1 and line 2"


def _right_aligned(width: int) -> str:
    """An unsigned integer right-aligned in ``width`` columns (blank- or zero-padded)."""
    return "(?:" + "|".join(" " * k + f"[0-9]{{{width - k}}}" for k in range(width)) + ")"


def _decimal(int_width: int, frac_width: int) -> str:
    """``NNN.NNNN`` with the integer part right-aligned (leading blanks allowed)."""
    return _right_aligned(int_width) + r"\." + f"[0-9]{{{frac_width}}}"


#: Field kinds: (regex for the field's exact columns, template text for error messages).
_KINDS: dict[str, tuple[str, str]] = {
    "line1": ("1", "1"),
    "line2": ("2", "2"),
    "catalogue": (_right_aligned(5)[:-1] + "|[A-HJ-NP-Z][0-9]{4})", "NNNNN"),
    "classification": ("[A-Z ]", "C"),
    # launch year, launch number, piece (1-3 letters, or none for analyst objects), or blank
    "intl_designator": ("(?:[0-9]{5}(?:[A-Z]{3}|[A-Z]{2} |[A-Z]  |   )| {8})", "NNNNNAAA"),
    "epoch": ("[0-9]{2}" + _decimal(3, 8), "NNNNN.NNNNNNNN"),
    # sign column: blank, + or -; satfit and TruSat write a 0 there ("0.00000000")
    "mean_motion_dot": (r"[ +0-]\.[0-9]{8}", "+.NNNNNNNN"),
    "exponent": ("[ +-][0-9]{5}[+-][0-9]", "+NNNNN-N"),
    "ephemeris_type": ("[0-9 ]", "N"),
    "element_set_no": (_right_aligned(4), "NNNN"),
    "checksum": ("[0-9]", "N"),
    "angle": (_decimal(3, 4), "NNN.NNNN"),
    "eccentricity": ("[0-9]{7}", "NNNNNNN"),
    "eccentricity8": ("[0-9]{8}", "NNNNNNNN"),
    "mean_motion": (_decimal(2, 8), "NN.NNNNNNNN"),
    "rev_at_epoch": (_right_aligned(5), "NNNNN"),
}

#: Line 1 columns: (field, first column, last column (1-based, inclusive), kind). Columns
#: that no field covers must be blank.
LINE1_COLUMNS: tuple[tuple[str, int, int, str], ...] = (
    ("line_number", 1, 1, "line1"),
    ("object_id", 3, 7, "catalogue"),
    ("classification", 8, 8, "classification"),
    ("intl_designator", 10, 17, "intl_designator"),
    ("epoch", 19, 32, "epoch"),
    ("mean_motion_dot", 34, 43, "mean_motion_dot"),
    ("mean_motion_ddot", 45, 52, "exponent"),
    ("bstar", 54, 61, "exponent"),
    ("ephemeris_type", 63, 63, "ephemeris_type"),
    ("element_set_no", 65, 68, "element_set_no"),
    ("checksum", 69, 69, "checksum"),
)

LINE2_COLUMNS: tuple[tuple[str, int, int, str], ...] = (
    ("line_number", 1, 1, "line2"),
    ("object_id", 3, 7, "catalogue"),
    ("inclination_deg", 9, 16, "angle"),
    ("raan_deg", 18, 25, "angle"),
    ("eccentricity", 27, 33, "eccentricity"),
    ("arg_perigee_deg", 35, 42, "angle"),
    ("mean_anomaly_deg", 44, 51, "angle"),
    ("mean_motion_rev_day", 53, 63, "mean_motion"),
    ("rev_at_epoch", 64, 68, "rev_at_epoch"),
    ("checksum", 69, 69, "checksum"),
)

#: Line 2 as CelesTrak wrote it in 2026 for some objects: an 8-digit eccentricity, every
#: later column one to the right, 70 columns in all.
LINE2_WIDE_ECC_COLUMNS: tuple[tuple[str, int, int, str], ...] = tuple(
    (name, a, b, kind) if b < 27 else
    ("eccentricity", 27, 34, "eccentricity8") if name == "eccentricity" else
    (name, a + 1, b + 1, kind)
    for name, a, b, kind in LINE2_COLUMNS)


def _template(columns) -> str:
    width = columns[-1][2]
    out = [" "] * width
    for _, a, b, kind in columns:
        out[a - 1:b] = _KINDS[kind][1]
    return "".join(out)


def _layout_regex(columns) -> re.Pattern[bytes]:
    parts, pos = [], 1
    for _, a, b, kind in columns:
        parts.append(" " * (a - pos) + "(?:" + _KINDS[kind][0] + ")")
        pos = b + 1
    return re.compile("".join(parts).encode("ascii"))


#: The column templates (``N`` a digit, ``A`` a letter, ``C`` the classification, ``+`` a
#: sign); the same text python-sgp4 shows in its TLE errors.
LINE1_TEMPLATE = _template(LINE1_COLUMNS)
LINE2_TEMPLATE = _template(LINE2_COLUMNS)
LINE2_WIDE_ECC_TEMPLATE = _template(LINE2_WIDE_ECC_COLUMNS)

_LINE1_RE = _layout_regex(LINE1_COLUMNS)
_LINE2_RE = _layout_regex(LINE2_COLUMNS)
_LINE2_WIDE_RE = _layout_regex(LINE2_WIDE_ECC_COLUMNS)
_FIELD_RE = {kind: re.compile(("(?:" + rx + ")").encode("ascii"))
             for kind, (rx, _) in _KINDS.items()}

# Checksum: digits count their value, '-' counts 1, everything else 0 (mod 10).
_CHECKSUM_TABLE = bytearray(256)
for _d in range(10):
    _CHECKSUM_TABLE[48 + _d] = _d
_CHECKSUM_TABLE[ord("-")] = 1
_CHECKSUM_TABLE = bytes(_CHECKSUM_TABLE)
del _d

# Classification column byte -> marking text (None when blank: the feed default applies).
_MARKING = {c: chr(c) for c in range(ord("A"), ord("Z") + 1)}
_MARKING[ord(" ")] = None

_SEPARATORS = b" \t"

# Byte classes: every character class in the layout regexes is a union of these, so two
# lines of the same shape either both match a layout or both fail (given column 1 is tested
# separately, as the reader does). Digits -> '9', letters other than I and O -> 'A', I and
# O -> 'I' (Alpha-5 skips them), blank . + - as themselves, anything else -> '?'.
_SHAPE_TABLE = bytearray(b"?" * 256)
for _c in b"0123456789":
    _SHAPE_TABLE[_c] = ord("9")
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _SHAPE_TABLE[_c] = ord("I") if _c in b"IO" else ord("A")
for _c in b" .+-":
    _SHAPE_TABLE[_c] = _c
_SHAPE_TABLE = bytes(_SHAPE_TABLE)
del _c
_SHAPES_MAX = 4096

UNIX_DATE = dt.date(1970, 1, 1)

#: Bytes read from the stream at a time.
BLOCK_BYTES = 1 << 20


def _checksum(line: bytes, n: int) -> int:
    """Mod-10 sum of the first ``n`` columns: digits their value, '-' one, the rest zero."""
    return sum(line[:n].translate(_CHECKSUM_TABLE)) % 10


def _diagnose(line: bytes, number: int, columns, template: str) -> FormatError:
    """The first column of ``line`` that breaks ``columns``, as a :class:`FormatError` showing
    the template; or a checksum error when the layout holds."""
    got = decode(line)
    width = columns[-1][2]
    if line[2:8].isdigit() and len(line) > 8:
        return FormatError(
            f"TLE line {number} has a 6-digit catalogue number {decode(line[2:8])!r} in "
            f"columns 3-8, which shifts every later column; the TLE layout holds 5 (Alpha-5 "
            f"up to 339999), larger numbers need OMM", field="object_id", expected=template,
            got=got)
    pos = 1
    for name, a, b, kind in columns:
        where = f"column {a}" if a == b else f"columns {a}-{b}"
        if len(line) < b:
            return FormatError(
                f"TLE line {number} is truncated: it has {len(line)} columns, {name} needs "
                f"{where}", field=name, expected=template, got=got)
        gap = line[pos - 1:a - 1]
        if gap.strip(b" "):
            return FormatError(
                f"TLE line {number} columns {pos}-{a - 1} (before {name}) must be blank, got "
                f"{decode(gap)!r}", field=name, expected=template, got=got)
        text = line[a - 1:b]
        if not _FIELD_RE[kind].fullmatch(text):
            return FormatError(
                f"TLE line {number} {where} ({name}): {decode(text)!r} does not match the "
                f"layout {_KINDS[kind][1]!r}",
                field=name, expected=template, got=got)
        pos = b + 1
    if len(line) > width:
        return FormatError(
            f"TLE line {number} has {len(line)} columns; text after column {width} must be "
            f"separated from it by a blank", field="checksum", expected=template, got=got)
    return _checksum_error(line, number, width)


def _checksum_error(line: bytes, number: int, width: int) -> FormatError:
    found = line[width - 1] - 48
    expected = _checksum(line, width - 1)
    return FormatError(
        f"TLE line {number} checksum mismatch: the digits of columns 1-{width - 1} give "
        f"{expected}, column {width} has {found}", field="checksum", got=decode(line))


def _text(data: bytes) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        return decode(data)


def _line2_error(l2: bytes, shift: int) -> FormatError:
    """Why line 2 (trailing blanks removed) fails, on the layout ``shift`` selects."""
    if shift:
        if not _LINE2_WIDE_RE.fullmatch(l2):
            return _diagnose(l2, 2, LINE2_WIDE_ECC_COLUMNS, LINE2_WIDE_ECC_TEMPLATE)
        return _checksum_error(l2, 2, 70)
    return _diagnose(l2, 2, LINE2_COLUMNS, LINE2_TEMPLATE)


def _record(name: bytes | None, l1: bytes, l2: bytes, first: int, raw: str,
            shapes: tuple[set, set, set]) -> dict | Reject:
    """One element set from its lines (trailing blanks stripped), or why it is refused.

    ``shapes`` holds, for line 1, line 2 and the 8-digit-eccentricity line 2, the byte-class
    shapes (see ``_SHAPE_TABLE``) of lines already found to match that layout in this read;
    it only saves regex calls, never changes an answer.
    """
    l1 = _checked_line1(l1, shapes[0])
    if isinstance(l1, FormatError):
        return Reject.from_error(l1, first, raw)
    checked = _checked_line2(l2, shapes)
    if isinstance(checked, FormatError):
        return Reject.from_error(checked, first, raw)
    l2, s = checked
    try:
        rec = _fields(name, l1, l2, s, first, raw)
        validate_elements(rec)
    except FormatError as e:
        return Reject.from_error(e, first, raw)
    return rec


def _known_shape(line: bytes, known: set, layout: re.Pattern[bytes]) -> bool:
    """Whether ``line`` matches ``layout``, remembering the shape of a line that does in
    ``known`` (up to :data:`_SHAPES_MAX` shapes)."""
    shape = line.translate(_SHAPE_TABLE)
    if shape not in known:
        if not layout.fullmatch(line):
            return False
        if len(known) < _SHAPES_MAX:
            known.add(shape)
    return True


def _checked_line1(l1: bytes, known: set) -> bytes | FormatError:
    """Line 1 (its first 69 columns) when its layout and checksum hold, else why not."""
    if len(l1) != 69:
        if len(l1) > 69 and l1[69] in _SEPARATORS:
            l1 = l1[:69]
        else:
            return _diagnose(l1, 1, LINE1_COLUMNS, LINE1_TEMPLATE)
    if not _known_shape(l1, known, _LINE1_RE):
        return _diagnose(l1, 1, LINE1_COLUMNS, LINE1_TEMPLATE)
    if sum(l1[:68].translate(_CHECKSUM_TABLE)) % 10 != l1[68] - 48:
        return _checksum_error(l1, 1, 69)
    return l1


def _checked_line2(l2: bytes, shapes: tuple[set, set, set]) -> tuple[bytes, int] | FormatError:
    """Line 2 and its shift (0: the standard layout; 1: the 8-digit eccentricity one, column
    34 a digit) when its layout and checksum hold, else why not."""
    s = 0
    n2 = len(l2)
    if n2 != 69:
        if n2 == 70 and 48 <= l2[33] <= 57 and 48 <= l2[69] <= 57:
            s = 1
        elif n2 > 69 and l2[69] in _SEPARATORS:
            l2 = l2[:69]
        else:
            return _line2_error(l2, 0)
    if not _known_shape(l2, shapes[1 + s], _LINE2_WIDE_RE if s else _LINE2_RE):
        return _line2_error(l2, s)
    if sum(l2[:68 + s].translate(_CHECKSUM_TABLE)) % 10 != l2[68 + s] - 48:
        return _checksum_error(l2, 2, 69 + s)
    return l2, s


def _fields(name: bytes | None, l1: bytes, l2: bytes, s: int, first: int, raw: str) -> dict:
    """The record of a name line and two lines whose layouts and checksums hold (``s`` the
    shift of line 2's later columns); :class:`FormatError` when the catalogue numbers of the
    lines differ or the epoch is not a date. Not yet range-checked."""
    c1 = l1[2:7]
    object_id = from_alpha5(c1.decode("ascii")) if c1[0] >= 65 else int(c1)
    c2 = l2[2:7]
    if c2 != c1 and (from_alpha5(c2.decode("ascii")) if c2[0] >= 65 else int(c2)) != object_id:
        raise FormatError(
            f"catalogue numbers differ: line 1 has {c1.decode().strip()!r}, "
            f"line 2 has {c2.decode().strip()!r}", field="object_id")
    year = l1[18:20]
    ephemeris = l1[62]
    object_name = _object_name(name)
    intl = None
    if l1[9] != 32:
        d = l1[9:17].decode("ascii")
        intl = ("19" if d[:2] >= "57" else "20") + d[:2] + "-" + d[2:5] + d[5:].rstrip()
    b = l1[53:61]
    dd = l1[44:52]
    return {
        "object_id": object_id,
        "intl_designator": intl,
        "object_name": object_name,
        "epoch": epoch_from_year_day(int(year) + (1900 if year >= b"57" else 2000),
                                     l1[20:32].decode("ascii")),
        "mean_motion_rev_day": float(l2[52 + s:63 + s]),
        "eccentricity": float(b"0." + l2[26:33 + s]),
        "inclination_deg": float(l2[8:16]),
        "raan_deg": float(l2[17:25]),
        "arg_perigee_deg": float(l2[34 + s:42 + s]),
        "mean_anomaly_deg": float(l2[43 + s:51 + s]),
        # ' 12345-5' -> 0.12345e-5 through a decimal string, so the double is the one an
        # OMM's 1.2345e-06 gives
        "bstar": float(b[:1] + b"0." + b[1:6] + b"e" + b[6:]),
        "mean_motion_dot": float(l1[33:43]),
        "mean_motion_ddot": float(dd[:1] + b"0." + dd[1:6] + b"e" + dd[6:]),
        "ephemeris_type": None if ephemeris == 32 else ephemeris - 48,
        "element_set_no": int(l1[64:68]),
        "rev_at_epoch": int(l2[63 + s:68 + s]),
        "object_type": None,
        "rcs_size": None,
        "country": None,
        "source_record": first,
        "marking": _MARKING[l1[7]],
        "_raw": raw,
    }


# ---- the fast path: a block of well-formed records at once, with numpy
#
# Every numeric TLE field is a fixed-point decimal (``NNN.NNNN`` is an integer over 10**4), so
# its value is an integer numerator over a power of ten, both exact in a double; IEEE
# division rounds their exact quotient correctly, which is the double ``float(text)`` gives.
# The fast path therefore returns the very values :func:`_record` does (tests check this on
# every record of the shared catalogues); it only takes records whose lines both have 69
# columns, match their layout (by shape) and pass their checksums, and hands every other
# record to :func:`_record`, which also explains refusals.

_DIGIT_TABLE = bytes(c - 48 if 48 <= c <= 57 else 0 for c in range(256))
_POW10 = np.array([float(10**k) for k in range(23)])  # exact doubles
_NS_PER_FRACTION_UNIT = NS_PER_DAY // 10**8  # a day's 8 fraction digits count 864 us each


def _digits(d: np.ndarray, cols) -> np.ndarray:
    """Integer value of the digits at ``cols`` of each row of digit values ``d`` (blanks
    count as leading zeros)."""
    cols = list(cols)
    return d[:, cols].astype(np.int64) @ 10 ** np.arange(len(cols) - 1, -1, -1, dtype=np.int64)


def _exponent_fields(a: np.ndarray, d: np.ndarray, at: int) -> np.ndarray:
    """``+NNNNN-N`` starting at column ``at`` (0-based): sign, 0.NNNNN, exponent."""
    mantissa = _digits(d, range(at + 1, at + 6)).astype(np.float64)
    exponent = np.where(a[:, at + 6] == 45, -d[:, at + 7].astype(np.int64), d[:, at + 7])
    k = 5 - exponent  # value = mantissa / 10**k
    value = np.where(k >= 0, mantissa / _POW10[np.clip(k, 0, 22)],
                     mantissa * _POW10[np.clip(-k, 0, 22)])
    return np.where(a[:, at] == 45, -value, value)


def _epochs(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch (ns since 1970) of each line 1 and whether its day of year is valid, with the
    arithmetic of :func:`~ssafuse.formats.base.epoch_from_year_day` (8 fraction digits
    are an exact number of nanoseconds, so nothing rounds)."""
    yy = d[:, 18].astype(np.int64) * 10 + d[:, 19]
    year = yy + np.where(yy >= 57, 1900, 2000)
    day = _digits(d, (20, 21, 22))
    fraction = _digits(d, range(24, 32))
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    valid = (day >= 1) & (day <= 365 + leap)
    years, index = np.unique(year, return_inverse=True)
    jan1 = np.array([days_from_civil(int(y), 1, 1) for y in years], np.int64)[index]
    return (jan1 + day - 1) * NS_PER_DAY + fraction * _NS_PER_FRACTION_UNIT, valid


def _block(cands: list, records: list, rejects: list,
           shapes: tuple[set, set, set]) -> dict | None:
    """Parse candidate records ``(name, line1, line2, first, raw)``: well-formed ones a block
    at a time into the returned columns (see :class:`Batch`), the rest one by one into
    ``records`` and ``rejects`` (``shapes`` as for :func:`_record`)."""
    fast, arrays = _checked_block(_well_formed(cands, shapes[0], shapes[1]))
    if len(fast) != len(cands):
        fast_ids = {id(c) for c in fast}
        for c in cands:
            if id(c) not in fast_ids:
                out = _record(*c, shapes)
                (records if out.__class__ is dict else rejects).append(out)
    if not fast:
        return None
    return _within_limits(_block_columns(fast, *arrays), rejects)


def _well_formed(cands: list, shapes1: set, shapes2: set) -> list:
    """The candidates whose two lines have 69 columns and match their layouts (by shape,
    see :func:`_record`)."""
    fast = []
    for c in cands:
        l1, l2 = c[1], c[2]
        if len(l1) == 69 and len(l2) == 69:
            s1 = l1.translate(_SHAPE_TABLE)
            s2 = l2.translate(_SHAPE_TABLE)
            if s1 not in shapes1:
                if not _LINE1_RE.fullmatch(l1):
                    continue
                if len(shapes1) < _SHAPES_MAX:
                    shapes1.add(s1)
            if s2 not in shapes2:
                if not _LINE2_RE.fullmatch(l2):
                    continue
                if len(shapes2) < _SHAPES_MAX:
                    shapes2.add(s2)
            fast.append(c)
    return fast


def _checked_block(fast: list) -> tuple[list, tuple | None]:
    """The well-formed candidates whose checksums hold, whose lines have one catalogue number
    and whose day of year is valid, with their byte arrays: line 1's bytes and digit values,
    line 2's digit values, and the epochs (None when there is no candidate)."""
    m = len(fast)
    if not m:
        return fast, None
    blob1 = b"".join([c[1] for c in fast])
    blob2 = b"".join([c[2] for c in fast])
    a1 = np.frombuffer(blob1, np.uint8).reshape(m, 69)
    a2 = np.frombuffer(blob2, np.uint8).reshape(m, 69)
    c1 = np.frombuffer(blob1.translate(_CHECKSUM_TABLE), np.uint8).reshape(m, 69)
    c2 = np.frombuffer(blob2.translate(_CHECKSUM_TABLE), np.uint8).reshape(m, 69)
    d1 = np.frombuffer(blob1.translate(_DIGIT_TABLE), np.uint8).reshape(m, 69)
    d2 = np.frombuffer(blob2.translate(_DIGIT_TABLE), np.uint8).reshape(m, 69)
    epoch, ok = _epochs(d1)
    ok &= ((c1[:, :68].sum(axis=1, dtype=np.int64) % 10 == d1[:, 68])
           & (c2[:, :68].sum(axis=1, dtype=np.int64) % 10 == d2[:, 68])
           & (a1[:, 2:7] == a2[:, 2:7]).all(axis=1))
    if not ok.all():  # the slow path says why
        keep = np.flatnonzero(ok)
        fast = [fast[i] for i in keep.tolist()]
        a1, d1, d2, epoch = a1[keep], d1[keep], d2[keep], epoch[keep]
    return fast, (a1, d1, d2, epoch)


def _block_columns(fast: list, a1: np.ndarray, d1: np.ndarray, d2: np.ndarray,
                   epoch: np.ndarray) -> dict:
    """The columns (see :class:`Batch`) of the checked records ``fast``, from their arrays
    (see :func:`_checked_block`); not yet range-checked."""
    m = len(fast)
    object_id = _digits(d1, range(2, 7))
    alpha = np.flatnonzero(a1[:, 2] >= 65)
    if alpha.size:  # Alpha-5: a letter for the hundred-thousands
        object_id[alpha] = [from_alpha5(fast[i][1][2:7].decode("ascii"))
                            for i in alpha.tolist()]
    ndot = _digits(d1, range(35, 43)) / 1e8
    ephemeris = np.where(a1[:, 62] == 32, -1, d1[:, 62])
    return {
        "object_id": object_id,
        "intl_designator": _intl_designators(a1, d1),
        "object_name": _names([c[0] for c in fast]),
        "epoch": epoch,
        "mean_motion_rev_day": _digits(d2, (52, 53, 55, 56, 57, 58, 59, 60, 61, 62)) / 1e8,
        "eccentricity": _digits(d2, range(26, 33)) / 1e7,
        "inclination_deg": _digits(d2, (8, 9, 10, 12, 13, 14, 15)) / 1e4,
        "raan_deg": _digits(d2, (17, 18, 19, 21, 22, 23, 24)) / 1e4,
        "arg_perigee_deg": _digits(d2, (34, 35, 36, 38, 39, 40, 41)) / 1e4,
        "mean_anomaly_deg": _digits(d2, (43, 44, 45, 47, 48, 49, 50)) / 1e4,
        "bstar": _exponent_fields(a1, d1, 53),
        "mean_motion_dot": np.where(a1[:, 33] == 45, -ndot, ndot),
        "mean_motion_ddot": _exponent_fields(a1, d1, 44),
        "ephemeris_type": [None if e < 0 else e for e in ephemeris.tolist()],
        "element_set_no": _digits(d1, range(64, 68)),
        "rev_at_epoch": _digits(d2, range(63, 68)),
        "object_type": [None] * m,  # not in a TLE
        "rcs_size": [None] * m,
        "country": [None] * m,
        "source_record": np.array([c[3] for c in fast], np.int64),
        "marking": [_MARKING[c] for c in a1[:, 7].tobytes()],
        "_raw": [c[4] for c in fast],
    }


def _within_limits(columns: dict, rejects: list) -> dict:
    """``columns`` without the records outside the element limits, which go to ``rejects``
    with the reason :func:`validate_elements` gives."""
    ok = elements_within_limits(columns)
    if not ok.all():  # validate_elements says why, one record at a time
        for i in np.flatnonzero(~ok).tolist():
            rec = {k: (v[i].item() if isinstance(v, np.ndarray) else v[i])
                   for k, v in columns.items()}
            try:
                validate_elements(rec)
            except FormatError as e:
                rejects.append(Reject.from_error(e, rec["source_record"], rec["_raw"]))
        keep = np.flatnonzero(ok)
        columns = {k: (v[keep] if isinstance(v, np.ndarray) else [v[i] for i in keep.tolist()])
                   for k, v in columns.items()}
    return columns


def _object_name(name: bytes | None) -> str | None:
    """The name of a name line: blanks and Space-Track's ``0 `` prefix removed."""
    if name is None:
        return None
    text = _text(name).strip()
    if text[:2] == "0 ":
        text = text[2:].lstrip()
    return text or None


def _names(names: list) -> list:
    """:func:`_object_name` of each name line, decoded in one go where all are ASCII."""
    if None in names:
        return [_object_name(n) for n in names]
    try:
        texts = b"\n".join(names).decode("ascii").split("\n")
    except UnicodeDecodeError:
        return [_object_name(n) for n in names]
    out = []
    for text in texts:
        text = text.strip()
        if text[:2] == "0 ":
            text = text[2:].lstrip()
        out.append(text or None)
    return out


def _intl_designators(a: np.ndarray, d: np.ndarray) -> list:
    """``YYYY-NNNPPP`` of each line 1's columns 10-17 (``98067A`` -> ``1998-067A``), None
    where blank; launch years 57-99 are 19xx."""
    m = len(a)
    out = np.empty((m, 12), np.uint8)
    yy = d[:, 9].astype(np.int64) * 10 + d[:, 10]
    out[:, 0] = ord("1") + (yy < 57)
    out[:, 1] = np.where(yy < 57, ord("0"), ord("9"))
    out[:, 2:4] = a[:, 9:11]
    out[:, 4] = ord("-")
    out[:, 5:11] = a[:, 11:17]
    out[:, 11] = ord("\n")
    texts = [t.rstrip() for t in out.tobytes().decode("ascii").split("\n")[:m]]
    for i in np.flatnonzero(a[:, 9] == 32).tolist():
        texts[i] = None
    return texts


def read(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """Element sets of a TLE file, in :class:`Batch` es of about :data:`BATCH_RECORDS`.

    ``stream`` is read in blocks of :data:`BLOCK_BYTES` and split into lines (``\n``, with
    an optional ``\r`` before it); ``uri`` is only for messages. Never raises for a bad
    record: it becomes a :class:`Reject` whose ``record`` is the 1-based line number of its
    first line.
    """
    shapes: tuple[set, set, set] = (set(), set(), set())
    for cands, rejects in _groups(_line_blocks(stream)):
        records: list[dict] = []
        columns = _block(cands, records, rejects, shapes)
        if records or rejects or columns:
            yield Batch(records, rejects, columns=columns)


def _line_blocks(stream: BinaryIO) -> Iterator[list[bytes]]:
    """The lines of ``stream``, a list per block of :data:`BLOCK_BYTES` read, byte quirks
    undone as every fixed-width reader undoes them (:mod:`.base`): split at LF, CR LF or a
    lone CR; a UTF-8 byte order mark removed; in a line that is not ASCII, no-break and other
    Unicode spaces made blanks (a name line's Latin-1 bytes read as Latin-1, as UTF-8)."""
    carry = b""
    start = True
    while True:
        block = stream.read(BLOCK_BYTES)
        if block:
            data = unify_line_ends(carry + block, more=True)
            lines = data.split(b"\n")
            carry = lines.pop()
        elif carry:
            data = unify_line_ends(carry)
            lines, carry = data.split(b"\n"), b""
        else:
            break
        if start and lines:
            if lines[0][:3] == b"\xef\xbb\xbf":
                lines[0] = lines[0][3:]
            start = False
        if not data.isascii():
            lines = [line if line.isascii() else blanks_bytes(line) for line in lines]
        yield lines


def _groups(blocks: Iterator[list[bytes]]) -> Iterator[tuple[list, list[Reject]]]:
    """Group lines into records: ``(candidates, rejects)`` each time they hold
    :data:`BATCH_RECORDS` records, then once more at the end of the file. A candidate is
    ``(name line or None, line 1, line 2, first line number, raw text)``, lines with trailing
    blanks stripped; lines that belong to no complete record are rejects.

    One loop over every line, all state in locals: this is the reader's hot path.
    """
    rejects: list[Reject] = []
    cands: list[tuple] = []
    # The record being assembled: its first line number, its raw lines, its name line and
    # line 1 (trailing blanks stripped) where seen so far.
    first = number = 0
    raws: list[bytes] = []
    name: bytes | None = None
    line1: bytes | None = None
    for lines in blocks:
        for body in lines:
            number += 1
            body = body.rstrip(b"\r")
            line = body.rstrip()
            if not line or line[0] == 35:  # blank, or a '#' comment
                continue
            head = line[:2]
            if head == b"2 ":
                raws.append(body)
                if line1 is not None:
                    cands.append((name, line1, line, first, _text(b"\n".join(raws))))
                else:
                    if name is None:
                        first = number
                    rejects.append(Reject(first, _text(b"\n".join(raws)),
                                          "TLE line 2 without a line 1 before it"))
                raws = []
                name = line1 = None
            else:
                if line1 is not None:  # anything but a line 2 ends a pending line 1
                    rejects.append(Reject(first, _text(b"\n".join(raws)),
                                          "TLE line 1 not followed by a line 2"))
                    raws = []
                    name = line1 = None
                if head == b"1 ":
                    if name is None:
                        first = number
                    raws.append(body)
                    line1 = line
                else:
                    if name is not None:
                        rejects.append(Reject(first, _text(raws[0]), _NAME_ALONE,
                                              "object_name"))
                        raws = []
                        name = None
                    if len(line) >= NAME_MAX:
                        rejects.append(_stray_line(number, body, line))
                    else:
                        first = number
                        name = line
                        raws = [body]
            if len(cands) + len(rejects) >= BATCH_RECORDS:
                yield cands, rejects
                rejects, cands = [], []
    if line1 is not None:
        rejects.append(Reject(first, _text(b"\n".join(raws)),
                              "TLE line 1 not followed by a line 2 (end of file)"))
    elif name is not None:
        rejects.append(Reject(first, _text(raws[0]), _NAME_ALONE + " (end of file)",
                              "object_name"))
    yield cands, rejects



def _stray_line(number: int, body: bytes, line: bytes) -> Reject:
    return Reject(number, _text(body),
                  f"not a TLE line (it does not start with '1 ' or '2 ') and too long "
                  f"({len(line)} characters) for a name line")


def identify(head: bytes) -> bool:
    """True when the first records of ``head`` (a file's first bytes) are TLE line 1 / line 2
    pairs, with or without a name line before the first pair. Blank and ``#`` lines are
    skipped; OMM KVN / XML / JSON / CSV never start that way."""
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    lines = []
    for raw in unify_line_ends(head).split(b"\n")[:64]:
        line = blanks_bytes(raw).rstrip()
        if line and line[0] != 35:
            lines.append(line)
        if len(lines) == 3:
            break
    for start in (0, 1):
        pair = lines[start:start + 2]
        if len(pair) < 2:
            continue
        l1, l2 = pair
        if (l1[:2] == b"1 " and l2[:2] == b"2 " and len(l1) >= 64 and len(l2) >= 64
                and l1[2:7] == l2[2:7] and l1[23:24] == b"." and l2[11:12] == b"."
                and (start == 0 or lines[0][:2] not in (b"1 ", b"2 "))):
            return True
    return False


FORMAT = Format(
    "tle", "elements",
    "Two-line element sets (2LE, or 3LE with CelesTrak or Space-Track '0 ' name lines)",
    identify, read, 10, extensions=(".tle", ".txt", ".3le", ".2le"))


# --------------------------------------------------------------------------------------------
# Writing: the same column tables, filled in (strict; see dumps)

#: Catalogue numbers a TLE can carry: five digits, or Alpha-5 (a letter for the
#: hundred-thousands, ``A0000`` = 100000 ... ``Z9999`` = 339999, I and O skipped).
ALPHA5_MAX = 339999
#: The width CelesTrak pads its name lines to.
NAME_WIDTH = 24
_NS_PER_TLE_DAY_UNIT = NS_PER_DAY // 10**8  # the epoch's 8 day-fraction digits: 864 us each


class _Unwritable(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


def _fixed(value: float, field: str, decimals: int, width: int, low: float,
           high: float) -> str:
    """``value`` rounded to ``decimals`` places, right-aligned in ``width`` columns, after
    checking it lies in ``[low, high)`` once rounded."""
    if not math.isfinite(value):
        raise _Unwritable(field, f"{field} = {value!r} is not a finite number")
    text = f"{value:{width}.{decimals}f}"
    if not low <= float(text) < high or len(text) != width:
        raise _Unwritable(field, f"{field} = {value!r} does not fit the TLE field "
                                 f"({decimals} decimals, [{low:g}, {high:g}))")
    return text


def _exponent_text(value: float, field: str, zero: str) -> str:
    """``+NNNNN-N``: sign (blank for +), five mantissa digits of 0.NNNNN, exponent -9..9;
    below 1e-10 the mantissa loses its leading digits (``01235-9``), and values under the
    field's resolution (5e-15 in magnitude) are written as ``zero``
    (Space-Track and python-sgp4 write `` 00000-0`` for the second derivative and
    `` 00000+0`` for B*)."""
    if not math.isfinite(value):
        raise _Unwritable(field, f"{field} = {value!r} is not a finite number")
    sign = "-" if value < 0 else " "
    if abs(value) < 0.5e-14:
        return zero
    digits, _, exponent = f"{abs(value):.4e}".partition("e")
    mantissa = digits.replace(".", "")
    power = int(exponent) + 1
    if power < -9:  # below 0.1e-9: fewer significant digits, exponent -9
        small = round(abs(value) * 1e14)
        return f"{sign}{small:05d}-9" if small else zero
    if power > 9:
        raise _Unwritable(field, f"{field} = {value!r} is too large for the TLE's "
                                 "0.NNNNN x 10^E field (E at most 9)")
    return f"{sign}{mantissa}{'-' if power < 0 else '+'}{abs(power)}"


def _epoch_fields(ns: int) -> str:
    """``YYDDD.DDDDDDDD`` of an epoch (nanoseconds since 1970), rounded to the TLE's 1e-8 day
    (864 us; half to even)."""
    units = (2 * ns + _NS_PER_TLE_DAY_UNIT) // (2 * _NS_PER_TLE_DAY_UNIT)
    days, fraction = divmod(units, 10**8)
    date = UNIX_DATE + dt.timedelta(days=int(days))
    if not 1957 <= date.year <= 2056:
        raise _Unwritable("epoch", f"epoch year {date.year} is outside 1957-2056, the years a "
                                   "two-digit TLE year can name")
    day = days - days_from_civil(date.year, 1, 1) + 1
    return f"{date.year % 100:02d}{day:03d}.{fraction:08d}"


def _designator_field(text: str | None) -> str:
    """Columns 10-17 of line 1 from ``YYYY-NNNPPP`` (blank when unknown)."""
    if text is None:
        return " " * 8
    m = re.fullmatch(r"(19[5-9][0-9]|20[0-5][0-9])-([0-9]{3})([A-Z]{0,3})", text)
    if m is None or not 1957 <= int(m[1]) <= 2056:
        raise _Unwritable("intl_designator", f"intl_designator {text!r} is not YYYY-NNNP(PP) "
                                             "with a launch year 1957-2056")
    return f"{m[1][2:]}{m[2]}{m[3]:<3}"


def _catalogue_field(object_id: int) -> str:
    if not 1 <= object_id <= ALPHA5_MAX:
        raise _Unwritable("object_id", f"object_id {object_id} is outside 1-{ALPHA5_MAX}: a "
                                       "TLE holds five digits or Alpha-5 (A0000-Z9999), and "
                                       "the number is never truncated (write OMM instead)")
    return to_alpha5(object_id) if object_id > 99999 else f"{object_id:05d}"


def _integer_field(value, field: str, width: int, *, blank_if_none: bool = False) -> str:
    if value is None:
        if blank_if_none:
            return " " * width
        raise _Unwritable(field, f"{field} is null; the TLE field needs a number")
    if not 0 <= value < 10**width:
        raise _Unwritable(field, f"{field} = {value} does not fit the TLE's {width}-digit "
                                 "field, and is never wrapped or truncated")
    return f"{value:{width}d}"


def _name_line(name: str | None) -> str | None:
    if name is None:
        return None
    if (not name.isascii() or not name.isprintable() or name != name.strip()
            or name[:2] in ("0 ", "1 ", "2 ") or name[:1] == "#"
            or len(name) >= NAME_MAX):
        raise _Unwritable("object_name", f"object_name {name!r} cannot be a name line: it "
                                         f"must be printable ASCII under {NAME_MAX} "
                                         "characters, without surrounding blanks, and not "
                                         "start like a TLE line ('0 ', '1 ', '2 ', '#')")
    return name.ljust(NAME_WIDTH)


def _place(columns, fields: dict[str, str]) -> str:
    """A line built from its column table (:data:`LINE1_COLUMNS` ...) and the text of each
    field, checksum last."""
    out = [" "] * columns[-1][2]
    for name, a, b, _ in columns:
        if name == "checksum":
            continue
        text = fields[name]
        assert len(text) == b - a + 1, (name, text)
        out[a - 1:b] = text
    line = "".join(out[:-1])
    return line + str(_checksum(line.encode("ascii"), len(line)))


def _tle_lines(row: dict, letter: str | None) -> tuple[str, str]:
    """Line 1 and line 2 of one row of :func:`~ssafuse.formats.ccsds.omm_write.table_rows`;
    raises :class:`_Unwritable`."""
    if letter is None or len(letter) != 1:
        raise _Unwritable("marking", "the marking is more than a one-letter level (it has "
                                     "releasability or controls, or is TOP SECRET): the TLE "
                                     "classification column cannot carry it (write OMM)")
    catalogue = _catalogue_field(row["object_id"])
    ndot = _fixed(row["mean_motion_dot"] if row["mean_motion_dot"] is not None else math.nan,
                  "mean_motion_dot", 8, 11, -1.0, 1.0)
    if float(ndot) <= -1.0:   # the field is sign + ".NNNNNNNN": no room for a unit digit
        raise _Unwritable("mean_motion_dot", f"mean_motion_dot = {row['mean_motion_dot']!r} "
                                             "does not fit the TLE field (|value| < 1)")
    ndot = ("-" if ndot.strip().startswith("-") else " ") + ndot.strip().lstrip("-")[1:]
    line1 = _place(LINE1_COLUMNS, {
        "line_number": "1", "object_id": catalogue, "classification": letter,
        "intl_designator": _designator_field(row["intl_designator"]),
        "epoch": _epoch_fields(row["epoch"]), "mean_motion_dot": ndot,
        "mean_motion_ddot": _exponent_text(
            math.nan if row["mean_motion_ddot"] is None else row["mean_motion_ddot"],
            "mean_motion_ddot", " 00000-0"),
        "bstar": _exponent_text(row["bstar"], "bstar", " 00000+0"),
        "ephemeris_type": _integer_field(row["ephemeris_type"], "ephemeris_type", 1,
                                         blank_if_none=True),
        "element_set_no": _integer_field(row["element_set_no"], "element_set_no", 4),
    })
    angles = {k: _fixed(row[k] % 360.0 if k != "inclination_deg" else row[k], k, 4, 8, 0.0,
                        360.0 + 1e-9)
              for k in ("inclination_deg", "raan_deg", "arg_perigee_deg", "mean_anomaly_deg")}
    if float(angles["inclination_deg"]) > 180.0:
        raise _Unwritable("inclination_deg", "inclination_deg above 180")
    ecc = _fixed(row["eccentricity"], "eccentricity", 7, 9, 0.0, 1.0)
    # rounded, the mean motion must still be what the reader takes: in (0, 20) rev/day
    n = _fixed(row["mean_motion_rev_day"], "mean_motion_rev_day", 8, 11, 0.0, 20.0)
    if float(n) <= 0.0:
        raise _Unwritable("mean_motion_rev_day", f"mean_motion_rev_day = "
                                                 f"{row['mean_motion_rev_day']!r} rounds to 0")
    line2 = _place(LINE2_COLUMNS, {
        "line_number": "2", "object_id": catalogue, **angles, "eccentricity": ecc[2:],
        "mean_motion_rev_day": n,
        "rev_at_epoch": _integer_field(row["rev_at_epoch"], "rev_at_epoch", 5),
    })
    return line1, line2


def dumps(table, *, names: bool = True, sidecar: bool = False) -> tuple[str, list]:
    """TLE text of the rows of ``table`` (columns of :data:`ssafuse.schema.ELEMENTS` or
    ``CATALOGUE``): with ``names`` a name line before each element set, as CelesTrak writes it
    (the plain name padded to 24 columns; a row without a name gets none), else two-line sets.

    The lines are built from :data:`LINE1_COLUMNS` / :data:`LINE2_COLUMNS`, the tables the
    reader parses by, with their checksums. Values are rounded to the TLE's fixed columns
    (angles to 1e-4 deg, eccentricity 1e-7, mean motion 1e-8 rev/day, epoch 1e-8 day; B* and
    the mean-motion second derivative to five significant digits; angles below 0 written as
    their equivalent in [0, 360)); Alpha-5 writes object numbers 100000-339999.

    ``sidecar``: the caller states the whole file's marking beside it (the most restrictive
    over its rows, :func:`ssafuse.markings.overall`), so a row's releasability and controls
    travel there and its level's letter goes in the classification column; without it such
    a row is refused (a letter alone would say less than its marking).

    Returns ``(text, refused)``: ``refused`` holds a
    :class:`~ssafuse.formats.ccsds.omm_write.Refused` (row, object_id, field, reason) for each
    row not written: an object number above 339999 (never truncated), a marking the
    classification column cannot carry without lowering it, a value that does not fit its
    field, or one the reader would refuse.
    """
    out: list[str] = []
    refused: list = []
    cache: dict = {}
    for i, row in enumerate(table_rows(table)):
        try:
            try:
                marking = row_marking(row, cache)[0]
            except MarkingError as e:
                raise _Unwritable("marking", f"the row's marking cannot be stated: {e}") \
                    from None
            try:
                validate_elements(row)
            except FormatError as e:
                raise _Unwritable(e.field or "", f"{e.message} (expected {e.expected}); the "
                                                 "TLE reader would refuse it") from None
            name = _name_line(row["object_name"]) if names else None
            lines = _tle_lines(row, mk.letter(
                mk.Marking(marking.classification) if sidecar else marking))
        except _Unwritable as e:
            refused.append(Refused(i, row["object_id"], e.field, e.reason))
            continue
        if name is not None:
            out.append(name)
        out.extend(lines)
    return "".join(line + "\n" for line in out), refused

"""Optical angles from amateur and professional networks: IOD, UK and RDE formats.

The three fixed-column layouts of the visual satellite observers' community (documented at
satobs.org, "IOD format", "UK format", "RDE format"), as Skyfield reads MPCORB: each layout is
a table of columns (:data:`IOD_COLUMNS`, :data:`UK_COLUMNS`, :data:`RDE_COLUMNS`), each
column a ``(field, first, last, kind)`` row (1-based, inclusive) and each kind a pattern; one
reader checks a line against its table and names the first column that breaks it, with the
template beside the line (``reason``: ``IOD column 48-54 (angle_1) ...; expected ...``).

Every line is a record: accepted into the ``observations`` table, or refused with its line
number, raw text and reason. Blank lines and ``#`` comment lines are not records; RDE's
header, day and ``999`` lines are the structure of a block, not records (a broken header
refuses the block's observation lines with that reason). ``accepted + rejected`` is the
number of records read.

Values are converted exactly as the formats define them:

* angles in all the formats' forms (IOD 1-7, UK 1-9, RDE 1), right-padded as the standards
  allow (``183    -081`` is 18h30m, -08.1 deg); ranges checked (minutes < 60, RA < 24h,
  |dec| <= 90);
* the equinox code goes to ``frame`` (0 of date, 1-4 B1855..B1950, 5 J2000, 6 J2050);
* uncertainties ``MX`` are M x 10^(X-8) in the unit of the angle form (IOD); UK/RDE state
  them directly; magnitudes with implied decimals;
* dates: IOD 4-digit years, UK/RDE 2-digit years (< 57 is 20xx); a day of 0 is the last day
  of the previous month (a real quirk of satfit's files: ``20100400`` is 2010-03-31).

Lines that carry no position (an IOD station report such as ``2007 C 200811231130``, a
brightness-only line) are valid IOD lines and are accepted with null angles; correlation
reports them as ``no-angles``.
"""

from __future__ import annotations

import re
from functools import partial
from typing import BinaryIO, Iterator

from ..errors import FormatError
from ..schema import OBSERVATION_COLUMNS
from ..constants import NS_PER_DAY
from .base import Batch, Format, Reject, blanks, text_lines
from ..timeutil import days_from_civil, fraction_ns

__all__ = ["IOD_COLUMNS", "UK_COLUMNS", "RDE_COLUMNS", "RDE_HEADER_COLUMNS", "IOD_TEMPLATE",
           "UK_TEMPLATE", "RDE_TEMPLATE", "FORMATS", "parse_iod_line", "parse_uk_line",
           "read_iod", "read_uk", "read_rde"]

BATCH_RECORDS = 20_000

#: Column kinds: (regex on the exact columns, template text).
_KINDS: dict[str, tuple[str, str]] = {
    "blank": (" *", " "),
    "digits": (r"\d+", "N"),
    "d5": (r"\d{5}", "NNNNN"),
    "d2": (r"\d{2}", "NN"),
    "d3": (r"\d{3}", "NNN"),
    "d7": (r"\d{7}", "NNNNNNN"),
    "piece": (r"[A-Z]{3}|[A-Z]{2} |[A-Z]  ", "AAA"),
    "station": (r"[0-9A-HJ-NP-Z]{4}", "SSSS"),       # COSPAR number, or letters without I, O
    # E G F P B T C O as satobs.org lists them; R as site 6226 writes it in satfit's files
    "iod_status": (r"[EGFPBTCOR ]", "C"),
    "iod_time": (r"\d{8}\d* *", "YYYYMMDDHHMMSSsss"),  # digits, then blanks to the end
    "mx": (r"\d\d", "MX"),
    "iod_format": (r"[1-7]", "A"),
    "iod_epoch": (r"[0-6 ]", "E"),
    "angle": (r"\d+ *", "HHMMSSs"),                  # digits, right-padded with blanks
    "sign_angle": (r"[+-]\d+ *", "+DDMMSS"),
    "iod_behaviour": (r"[EFIRSXBHPADMNV ]", "B"),
    "iod_mag": (r"[+-]\d+ *", "+MMm"),
    "flash": (r" *\d+", "SSSsss"),                   # digits, left-padded with blanks
    "mag_sigma": (r"\d+ *", "Mm"),
    "uk_flash": (r" *\d+ *", "SSSss"),
    "uk_time": (r"\d{7}\d* *", "yymmddHHMMSSssss"),
    "uk_time_acc": (r"[\d ]{5}", "Ttttt"),
    "uk_time_std": (r"[1-3]", "S"),
    "uk_format": (r"[1-9]", "f"),
    "uk_angle1": (r"\d+ *", "HHMMmmmm"),
    "uk_sign": (r"[+ -]", "+"),
    "uk_angle2": (r"\d+ *", "DDMMmmm"),
    # contiguous digits that start in column 51 or 52, or end in column 54
    "uk_pos_acc": (r" ?\d+ *| *\d+", "SSSs"),
    "epoch": (r"[0-6]", "E"),
    "uk_mag": (r"[+\d-]\d[\d ]", "bbb"),
    "uk_mag_faint": (r"[+\d-]\d[\d ]|INV", "fff"),
    "uk_remark": (r"[SIRFXE ]", "O"),
    "rde_time": (r"\d{6}\.\d{2}", "HHMMSS.ss"),
    "rde_ra": (r"\d{6}", "HHMMSS"),
    "rde_dec": (r"[+ -]\d{6}", "+DDMMSS"),
    "rde_mag": (r"[ -]\d\.\d", " M.m"),
    "rde_flash": (r"[ \d.]{3}", "F.f"),
    "rde_remark": (r"[SIRFXE ]", "O"),
}

#: IOD (satobs.org "IOD format"): ``(field, first column, last column, kind)``, 1-based.
#: Columns 1-16 are either the object block or all blank (a station report); columns 45-64
#: are either the angle block or all blank (no position measured).
IOD_COLUMNS: tuple[tuple[str, int, int, str], ...] = (
    ("object_id", 1, 5, "d5"),
    ("_", 6, 6, "blank"),
    ("launch_year", 7, 8, "d2"),
    ("_", 9, 9, "blank"),
    ("launch_number", 10, 12, "d3"),
    ("piece", 13, 15, "piece"),
    ("_", 16, 16, "blank"),
    ("sensor_id", 17, 20, "station"),
    ("_", 21, 21, "blank"),
    ("station_status", 22, 22, "iod_status"),
    ("_", 23, 23, "blank"),
    ("time", 24, 40, "iod_time"),
    ("_", 41, 41, "blank"),
    ("time_sigma_s", 42, 43, "mx"),
    ("_", 44, 44, "blank"),
    ("angle_format", 45, 45, "iod_format"),
    ("frame", 46, 46, "iod_epoch"),
    ("_", 47, 47, "blank"),
    ("angle_1", 48, 54, "angle"),
    ("angle_2", 55, 61, "sign_angle"),
    ("_", 62, 62, "blank"),
    ("angle_sigma_deg", 63, 64, "mx"),
    ("_optical", 65, 65, "blank"),
    ("behaviour", 66, 66, "iod_behaviour"),
    ("magnitude", 67, 70, "iod_mag"),
    ("_optical", 71, 71, "blank"),
    ("magnitude_sigma", 72, 73, "mag_sigma"),
    ("_optical", 74, 74, "blank"),
    ("flash_period_s", 75, 80, "flash"),
)

#: UK format (satobs.org "UK format"), 1-based columns. The designator is YYLLLPP with a
#: 2-digit piece number; there is no NORAD number.
UK_COLUMNS: tuple[tuple[str, int, int, str], ...] = (
    ("intl_designator", 1, 7, "d7"),
    ("sensor_id", 8, 11, "station"),
    ("time", 12, 27, "uk_time"),
    ("time_sigma_s", 28, 32, "uk_time_acc"),
    ("time_standard", 33, 33, "uk_time_std"),
    ("angle_format", 34, 34, "uk_format"),
    ("angle_1", 35, 42, "uk_angle1"),
    ("angle_2_sign", 43, 43, "uk_sign"),
    ("angle_2", 44, 50, "uk_angle2"),
    ("angle_sigma_deg", 51, 54, "uk_pos_acc"),
    ("frame", 55, 55, "epoch"),
    ("range", 56, 68, "blank"),
    ("magnitude", 69, 71, "uk_mag"),
    ("magnitude_faintest", 72, 74, "uk_mag_faint"),
    ("flash_period_s", 75, 79, "uk_flash"),
    ("behaviour", 80, 80, "uk_remark"),
)

#: RDE block header (``2420 1909 0.211 1204``): site, YYMM, time accuracy, time standard,
#: angle format (1 only), position accuracy in arcsec, equinox code.
RDE_HEADER_COLUMNS: tuple[tuple[str, int, int, str], ...] = (
    ("sensor_id", 1, 4, "station"),
    ("_", 5, 5, "blank"),
    ("year_month", 6, 9, "digits"),
    ("_", 10, 10, "blank"),
    ("time_sigma_s", 11, 13, "rde_flash"),
    ("time_standard", 14, 14, "uk_time_std"),
    ("angle_format", 15, 15, "uk_format"),
    ("_", 16, 16, "blank"),
    ("angle_sigma_deg", 17, 19, "d3"),
    ("frame", 20, 20, "epoch"),
)

#: RDE observation line, 1-based columns.
RDE_COLUMNS: tuple[tuple[str, int, int, str], ...] = (
    ("intl_designator", 1, 7, "d7"),
    ("_", 8, 8, "blank"),
    ("time", 9, 17, "rde_time"),
    ("_", 18, 18, "blank"),
    ("angle_1", 19, 24, "rde_ra"),
    ("angle_2", 25, 31, "rde_dec"),
    ("magnitude", 32, 35, "rde_mag"),
    ("magnitude_faintest", 36, 39, "rde_mag"),
    ("flash_period_s", 40, 42, "rde_flash"),
    ("behaviour", 43, 43, "rde_remark"),
)


def _template(columns) -> str:
    out = [" "] * columns[-1][2]
    for _, a, b, kind in columns:
        text = _KINDS[kind][1]
        out[a - 1:b] = (text * (b - a + 1))[:b - a + 1] if len(text) == 1 else \
            text[:b - a + 1].ljust(b - a + 1)
    return "".join(out)


IOD_TEMPLATE = _template(IOD_COLUMNS)
_IOD_OPTICAL = {"behaviour", "magnitude", "magnitude_sigma", "flash_period_s", "_optical"}
UK_TEMPLATE = _template(UK_COLUMNS)
RDE_TEMPLATE = _template(RDE_COLUMNS)
_FIELD_RE = {k: re.compile(f"(?:{rx})") for k, (rx, _) in _KINDS.items()}
_EQUINOX = {"0": "OF-DATE", " ": "OF-DATE", "1": "B1855", "2": "B1875", "3": "B1900",
            "4": "B1950", "5": "J2000", "6": "J2050"}
_MAX_COLUMNS = 80


class _Bad(Exception):
    """One line's problem, caught where the line becomes a Reject."""


def _fail(fmt: str, name: str, a: int, b: int, message: str, template: str, line: str):
    where = f"column {a}" if a == b else f"columns {a}-{b}"
    raise FormatError(f"{fmt} {where} ({name}) {message}", field=name,
                      expected=template, got=line)


def _check(fmt: str, line: str, columns, template: str, skip=()) -> dict[str, str]:
    """The text of each column of ``line`` after checking it against its kind; the first
    column that does not match raises :class:`FormatError` showing the template."""
    out = {}
    for name, a, b, kind in columns:
        if a > len(line):
            break
        if name in skip:
            continue
        text = line[a - 1:b].ljust(b - a + 1) if b >= len(line) else line[a - 1:b]
        if not _FIELD_RE[kind].fullmatch(text):
            _fail(fmt, name, a, b, "does not match the layout", template, line)
        if not name.startswith("_"):
            out[name] = text
    return out


def _civil_ns(year: int, month: int, day: int, hour: int, minute: int, second: int,
              frac: str, what: str, line: str) -> int:
    """Nanoseconds since 1970 of a civil UTC time; day 0 is the last day of the month
    before (satfit's quirk)."""
    if not 1 <= month <= 12 or not 0 <= day <= 31 or hour > 23 or minute > 59 or second > 60:
        raise FormatError(f"{what} is not a valid date and time", field="time", got=line)
    try:
        days = days_from_civil(year, month, 1) + day - 1
        if day > 0:
            days_from_civil(year, month, day)  # raises for Feb 30 and friends
    except ValueError:
        raise FormatError(f"{what} is not a valid date", field="time", got=line) from None
    return (days * NS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 10**9
            + fraction_ns(frac, 10**9))


def _mx(text: str) -> float:
    """IOD's ``MX`` uncertainty: M x 10^(X-8)."""
    return int(text[0]) * 10.0 ** (int(text[1]) - 8)


def _sexagesimal(digits: str, forms: tuple[int, ...], scale_last: int, line: str, name: str
                 ) -> float:
    """``digits`` (right-padded with zeros to the full width) read as units, minutes and
    seconds per ``forms`` (the digit counts of each part), the last part with
    ``scale_last`` implied decimals. A minutes or seconds part of 60 or more is summed as
    it stands (``11 99`` is 12 deg 39'), as TruSat's answers accept such lines; the whole
    angle is range-checked by the caller."""
    width = sum(forms)
    digits = digits.rstrip().ljust(width, "0")
    if len(digits) > width:
        raise FormatError(f"{name} has more digits than its form", field=name, got=line)
    parts, pos = [], 0
    for n in forms:
        parts.append(int(digits[pos:pos + n]))
        pos += n
    # the last part carries the implied decimals; minutes/seconds parts below 60
    value = 0.0
    units = [1.0, 1 / 60.0, 1 / 3600.0]
    for i, p in enumerate(parts):
        if i == len(parts) - 1:
            v = p / 10**scale_last
        else:
            v = float(p)
        value += v * units[i]
    return value


# Angle forms: code -> (kind, first-angle parts, decimals, second-angle parts, decimals,
# uncertainty unit in degrees). Digit counts include the implied decimals.
# IOD: 1 HHMMSSs+DDMMSS, 2 HHMMmmm+DDMMmm, 3 HHMMmmm+DDdddd, 4 DDDMMSS+DDMMSS,
#      5 DDDMMmm+DDMMmm, 6 DDDdddd+DDdddd, 7 HHMMSSs+DDdddd
_IOD_FORMS = {
    1: ("radec", (2, 2, 3), 1, (2, 2, 2), 0, 1 / 3600.0),
    2: ("radec", (2, 5), 3, (2, 4), 2, 1 / 60.0),
    3: ("radec", (2, 5), 3, (6,), 4, 1.0),
    4: ("azel", (3, 2, 2), 0, (2, 2, 2), 0, 1 / 3600.0),
    5: ("azel", (3, 4), 2, (2, 4), 2, 1 / 60.0),
    6: ("azel", (7,), 4, (6,), 4, 1.0),
    7: ("radec", (2, 2, 3), 1, (6,), 4, 1.0),
}
# UK: one more digit. 1 HHMMSSss+DDMMSSs, 2 HHMMmmmm+DDMMmmm, 3 HHMMmmmm+DDddddd,
#     4/7 DDDMMSSs DDMMSSs, 5/8 DDDMMmmm DDMMmmm, 6/9 DDDddddd DDddddd (7-9 unrefracted)
_UK_FORMS = {
    1: ("radec", (2, 2, 4), 2, (2, 2, 3), 1),
    2: ("radec", (2, 6), 4, (2, 5), 3),
    3: ("radec", (2, 6), 4, (7,), 5),
    4: ("azel", (3, 2, 3), 1, (2, 2, 3), 1),
    5: ("azel", (3, 5), 3, (2, 5), 3),
    6: ("azel", (8,), 5, (7,), 5),
}
for _c in (7, 8, 9):
    _UK_FORMS[_c] = _UK_FORMS[_c - 3]
del _c


def _angles(kind, forms1, dec1, forms2, dec2, a1: str, sign: str, a2: str, line: str,
            ) -> tuple[float, float]:
    first = _sexagesimal(a1, forms1, dec1, line, "angle_1")
    second = _sexagesimal(a2, forms2, dec2, line, "angle_2")
    if kind == "radec":
        if forms1[0] == 2:
            first *= 15.0
        if first >= 360.0:
            raise FormatError("right ascension >= 24h", field="angle_1", got=line)
    elif first >= 360.0:
        raise FormatError("azimuth >= 360 deg", field="angle_1", got=line)
    if second > 90.0:
        raise FormatError("declination / elevation beyond 90 deg", field="angle_2", got=line)
    return first, -second if sign == "-" else second


def _new_record(number: int, raw: str) -> dict:
    rec = dict.fromkeys(OBSERVATION_COLUMNS)
    rec.update(source_record=number, marking=None, _raw=raw, kind="optical")
    return rec


def _designator(year2: str, number: str, piece: str) -> str:
    year = int(year2)
    year += 2000 if year < 57 else 1900
    return f"{year}-{number}{piece.strip()}"


def _piece_letters(n: int) -> str:
    """UK/RDE 2-digit piece number -> designator letters (1 = A ... 24 = Z, 25 = AA; I and O
    are not used)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    if n <= 0:
        raise ValueError("piece 0")
    out = ""
    while n > 0:
        n, r = divmod(n - 1, 24)
        out = alphabet[r] + out
    return out


#: IOD fields left unread when their block is blank: the object block (columns 1-16: a station
#: report) and the angle block (columns 45-64: no position measured).
_IOD_OBJECT_FIELDS = frozenset({"object_id", "launch_year", "launch_number", "piece"})
_IOD_ANGLE_FIELDS = frozenset({"angle_format", "frame", "angle_1", "angle_2",
                               "angle_sigma_deg"})


def parse_iod_line(line: str, number: int = 1, lenient: bool = False) -> dict:
    """One IOD line as an observation record; :class:`FormatError` naming the column.

    ``lenient``: a line whose columns 1-64 (object, site, time, angles) are valid but whose
    optical block (columns 65-80: behaviour, magnitude, flash period) breaks the layout is
    accepted without the optical fields, as satfit and TruSat's own reader take it (site
    6226 writes ``37 23`` there, for one), and quoted-printable ``=A0`` reads as a blank.
    Strict by default, as TruSat's answers are. Either way a no-break space or another
    Unicode space separator is the blank it stands for (:func:`.base.blanks`): station 8336
    writes the designator ``014A\u00a0 \u00a0``."""
    if lenient:
        return _parse_iod_lenient(line, number)
    line = _iod_text(blanks(line))
    skip = set()
    if not line[:16].strip():
        skip |= _IOD_OBJECT_FIELDS
    angles_blank = not line[44:64].strip()
    if angles_blank:
        skip |= _IOD_ANGLE_FIELDS
    f = _check("IOD", line, IOD_COLUMNS, IOD_TEMPLATE, skip)
    rec = _new_record(number, line)
    _iod_object_and_time(rec, f, line)
    _iod_angles(rec, f, line, angles_blank)
    _iod_optical(rec, f, line)
    return rec


def _parse_iod_lenient(line: str, number: int) -> dict:
    """:func:`parse_iod_line` with ``lenient``: quoted-printable no-break spaces read as
    blanks, and a broken optical block (columns 65-80) dropped when columns 1-64 are valid."""
    # a no-break space as quoted-printable ``=A0`` from a mail gateway (satfit's
    # 90085.txt) stands where a blank belongs (a raw one is a blank in every reader)
    line = blanks(line.replace("=A0", " "))
    try:
        return parse_iod_line(line, number)
    except FormatError as e:
        if e.field not in _IOD_OPTICAL or len(line.rstrip()) <= 64:
            raise
    rec = parse_iod_line(line.rstrip()[:64], number)
    rec["_raw"] = line
    return rec


def _iod_text(line: str) -> str:
    """The line without its end of line and trailing blanks, if its length can be IOD."""
    line = line.rstrip("\r\n")
    stripped = line.rstrip()
    if len(stripped) > _MAX_COLUMNS:
        raise FormatError(f"IOD line is {len(stripped)} columns long; the layout has 80",
                          expected=IOD_TEMPLATE, got=line)
    line = stripped
    if len(line) < 31:
        raise FormatError("IOD line is shorter than a station report (31 columns)",
                          expected=IOD_TEMPLATE, got=line)
    return line


def _iod_object_and_time(rec: dict, f: dict[str, str], line: str) -> None:
    """The object block (columns 1-16), site, status and time (columns 17-43) of an IOD
    line's checked columns ``f`` into ``rec``."""
    rec["sensor_id"] = f["sensor_id"]
    rec["station_status"] = f["station_status"].strip() or None
    if "object_id" in f:
        rec["object_id"] = int(f["object_id"])
        rec["intl_designator"] = _designator(f["launch_year"], f["launch_number"], f["piece"])
    t = f["time"].rstrip().ljust(17, "0")
    rec["time"] = _civil_ns(int(t[0:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]),
                            int(t[10:12]), int(t[12:14]), t[14:17], "IOD time", line)
    if "time_sigma_s" in f:
        rec["time_sigma_s"] = _mx(f["time_sigma_s"])


def _iod_angles(rec: dict, f: dict[str, str], line: str, angles_blank: bool) -> None:
    """The angle block (columns 45-64) of an IOD line's checked columns ``f`` into ``rec``:
    the two angles in the form the angle format code gives, the frame and the uncertainty."""
    if "angle_format" in f and not angles_blank and "angle_2" not in f:
        raise FormatError("IOD line ends inside the angles (columns 45-61)",
                          field="angle_2", expected=IOD_TEMPLATE, got=line)
    if "angle_format" in f and not angles_blank:
        code = int(f["angle_format"])
        kind, p1, d1, p2, d2, unit = _IOD_FORMS[code]
        if len(f["angle_1"].rstrip()) > 7 or len(f["angle_2"].rstrip()) > 7:
            raise FormatError("angle longer than its columns", field="angle_1", got=line)
        a, b = _angles(kind, p1, d1, p2, d2, f["angle_1"], f["angle_2"][0], f["angle_2"][1:],
                       line)
        if kind == "radec":
            rec["ra_deg"], rec["dec_deg"] = a, b
            rec["frame"] = _EQUINOX[f["frame"]]
        else:
            rec["az_deg"], rec["el_deg"] = a, b
            rec["frame"] = "AZEL"
        if "angle_sigma_deg" in f:
            rec["angle_sigma_deg"] = _mx(f["angle_sigma_deg"]) * unit
    elif len(line) > 44 and not angles_blank:  # pragma: no cover - _check covers it
        raise FormatError("IOD angle block incomplete", expected=IOD_TEMPLATE, got=line)


def _iod_optical(rec: dict, f: dict[str, str], line: str) -> None:
    """The optical block (columns 65-80) of an IOD line's checked columns ``f`` into ``rec``:
    behaviour, magnitude and its uncertainty, flash period."""
    if "behaviour" in f:
        rec["behaviour"] = f["behaviour"].strip() or None
    if "magnitude" in f:
        m = f["magnitude"].rstrip()
        digits = m[1:].ljust(3, "0")
        rec["magnitude"] = (-1 if m[0] == "-" else 1) * int(digits) / 10.0
    if "magnitude_sigma" in f:
        rec["magnitude_sigma"] = int(f["magnitude_sigma"].rstrip().ljust(2, "0")) / 10.0
    if "flash_period_s" in f:
        period = int(f["flash_period_s"]) / 1000.0
        if period <= 0:
            raise FormatError("flash period of zero", field="flash_period_s", got=line)
        if rec["behaviour"] == "I":
            # TruSat's answers: an irregular (I) object has no flash period to report
            raise FormatError("flash period given for an irregular (I) object",
                              field="flash_period_s", got=line)
        rec["flash_period_s"] = period


def parse_uk_line(line: str, number: int = 1) -> dict:
    """One UK-format line as an observation record; :class:`FormatError` naming the column.
    Unicode space separators are the blanks they stand for (:func:`.base.blanks`)."""
    line = blanks(line).rstrip("\r\n").rstrip()
    if len(line) > _MAX_COLUMNS:
        raise FormatError(f"UK line is {len(line)} columns long; the layout has 80",
                          expected=UK_TEMPLATE, got=line)
    if len(line) < 55:
        raise FormatError("UK line ends before the equinox code (column 55)",
                          expected=UK_TEMPLATE, got=line)
    f = _check("UK", line, UK_COLUMNS, UK_TEMPLATE)
    rec = _new_record(number, line)
    d = f["intl_designator"]
    try:
        rec["intl_designator"] = _designator(d[0:2], d[2:5], _piece_letters(int(d[5:7])))
    except ValueError:
        raise FormatError("piece number 00", field="intl_designator", got=line) from None
    rec["sensor_id"] = f["sensor_id"]
    t = f["time"].rstrip().ljust(16, "0")
    year = int(t[0:2])
    rec["time"] = _civil_ns(year + (2000 if year < 57 else 1900), int(t[2:4]), int(t[4:6]),
                            int(t[6:8]), int(t[8:10]), int(t[10:12]), t[12:16], "UK time",
                            line)
    acc = f["time_sigma_s"]
    if acc.strip():
        if " " in acc.strip() or acc[0] == " ":
            raise FormatError("time accuracy has a blank inside", field="time_sigma_s",
                              got=line)
        acc = acc.rstrip().ljust(5, "0")
        rec["time_sigma_s"] = int(acc[0]) + int(acc[1:]) / 10**4
    code = int(f["angle_format"])
    kind, p1, d1, p2, d2 = _UK_FORMS[code]
    sign = f["angle_2_sign"]
    if kind == "radec" and sign == " ":
        raise FormatError("declination without a sign", field="angle_2", got=line)
    a, b = _angles(kind, p1, d1, p2, d2, f["angle_1"], sign, f["angle_2"], line)
    if kind == "radec":
        rec["ra_deg"], rec["dec_deg"] = a, b
        rec["frame"] = _EQUINOX[f["frame"]]
    else:
        rec["az_deg"], rec["el_deg"] = a, b
        rec["frame"] = "AZEL" if code <= 6 else "AZEL-APPARENT"
    pos = f["angle_sigma_deg"]
    if pos.strip():
        # SSSs arcsec (forms 1, 4, 7), MMmm arcmin (2, 5, 8), Dddd deg (3, 6, 9); a blank
        # column reads as zero, as the columns are positional
        unit = {1: 0.1 / 3600.0, 2: 0.01 / 60.0, 0: 0.001}[code % 3]
        rec["angle_sigma_deg"] = int(pos.replace(" ", "0")) * unit
    if "magnitude" in f and f["magnitude"].strip():
        rec["magnitude"] = float(f["magnitude"].strip())
    if "flash_period_s" in f and f["flash_period_s"].strip():
        period = int(f["flash_period_s"].strip()) / 100.0
        if period <= 0:
            raise FormatError("flash period of zero", field="flash_period_s", got=line)
        rec["flash_period_s"] = period
    if "behaviour" in f:
        rec["behaviour"] = f["behaviour"].strip() or None
    return rec


def _lines(stream: BinaryIO) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line, byte quirks undone (BOM, CR LF / CR line ends,
    Latin-1 bytes, no-break and other Unicode spaces as blanks: :func:`.base.text_lines`)."""
    return enumerate(text_lines(stream.read()), 1)


def _is_record(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith("#")


def _read_lines(parse, stream: BinaryIO, uri: str) -> Iterator[Batch]:
    batch = Batch(table="observations")
    for number, line in _lines(stream):
        if not _is_record(line):
            continue
        try:
            batch.records.append(parse(line, number))
        except FormatError as e:
            batch.rejects.append(Reject.from_error(e, number, line))
        if len(batch) >= BATCH_RECORDS:
            yield batch
            batch = Batch(table="observations")
    if len(batch):
        yield batch


def read_iod(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """IOD lines: one observation per line (see :data:`IOD_COLUMNS`)."""
    return _read_lines(parse_iod_line, stream, uri)


def read_iod_lenient(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """IOD lines, an unreadable optical block (columns 65-80) ignored (see
    :func:`parse_iod_line`)."""
    return _read_lines(partial(parse_iod_line, lenient=True), stream, uri)


def read_uk(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """UK-format lines: one observation per line (see :data:`UK_COLUMNS`)."""
    return _read_lines(parse_uk_line, stream, uri)


_RDE_HEADER = re.compile(r"^[0-9A-HJ-NP-Z]{4} \d{4} ")
_RDE_DAY = re.compile(r"^\d{2}\s*$")


def read_rde(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """RDE blocks: a header line (site, YYMM, accuracies, equinox), then for each day a
    2-digit day line and its observation lines, then ``999``."""
    batch = Batch(table="observations")
    header: dict | None = None
    header_error: str | None = None
    day: int | None = None
    for number, line in _lines(stream):
        text = line.rstrip()
        if not _is_record(text):
            continue
        if _RDE_HEADER.match(text) and len(text) <= 20:
            header, header_error, day = None, None, None
            try:
                header = _check("RDE header", text, RDE_HEADER_COLUMNS,
                                _template(RDE_HEADER_COLUMNS))
                if len(text) < 20:
                    raise FormatError("RDE header shorter than 20 columns", got=text)
                if header["angle_format"] != "1":
                    raise FormatError("RDE angle format other than 1", field="angle_format",
                                      got=text)
            except FormatError as e:
                header, header_error = None, f"block header line is not valid: {e.message}"
                header_error += f" ({text!r})"
            continue
        if text.strip() == "999":
            header, header_error, day = None, None, None
            continue
        if (header is not None or header_error) and _RDE_DAY.match(text):
            day = int(text)
            continue
        try:
            if header_error:
                raise FormatError(header_error)
            if header is None or day is None:
                raise FormatError("line is not inside an RDE block (header line, day line, "
                                  "observations, 999)", expected=RDE_TEMPLATE, got=text)
            batch.records.append(_rde_record(text, number, header, day))
        except FormatError as e:
            batch.rejects.append(Reject.from_error(e, number, line))
        if len(batch) >= BATCH_RECORDS:
            yield batch
            batch = Batch(table="observations")
    if len(batch):
        yield batch


def _rde_record(line: str, number: int, header: dict, day: int) -> dict:
    if len(line) > _MAX_COLUMNS:
        raise FormatError("RDE line longer than 80 columns", expected=RDE_TEMPLATE, got=line)
    if len(line) < 31:
        raise FormatError("RDE line ends before the declination", expected=RDE_TEMPLATE,
                          got=line)
    f = _check("RDE", line, RDE_COLUMNS, RDE_TEMPLATE)
    rec = _new_record(number, line)
    d = f["intl_designator"]
    try:
        rec["intl_designator"] = _designator(d[0:2], d[2:5], _piece_letters(int(d[5:7])))
    except ValueError:
        raise FormatError("piece number 00", field="intl_designator", got=line) from None
    rec["sensor_id"] = header["sensor_id"]
    ym = header["year_month"]
    year = int(ym[:2])
    t = f["time"]
    rec["time"] = _civil_ns(year + (2000 if year < 57 else 1900), int(ym[2:]), day,
                            int(t[0:2]), int(t[2:4]), int(t[4:6]), t[7:9], "RDE time", line)
    acc = header["time_sigma_s"].strip()
    try:
        rec["time_sigma_s"] = float(acc) if acc else None
    except ValueError:
        raise FormatError("RDE time accuracy is not a number", got=line) from None
    ra, dec = _angles("radec", (2, 2, 2), 0, (2, 2, 2), 0, f["angle_1"], f["angle_2"][0],
                      f["angle_2"][1:], line)
    rec["ra_deg"], rec["dec_deg"] = ra, dec
    rec["frame"] = _EQUINOX[header["frame"]]
    rec["angle_sigma_deg"] = int(header["angle_sigma_deg"]) / 3600.0
    if "magnitude" in f:
        rec["magnitude"] = float(f["magnitude"])
    if "flash_period_s" in f and f["flash_period_s"].strip():
        try:
            rec["flash_period_s"] = float(f["flash_period_s"]) or None
        except ValueError:
            raise FormatError("flash period is not a number", field="flash_period_s",
                              got=line) from None
    if "behaviour" in f:
        rec["behaviour"] = f["behaviour"].strip() or None
    return rec


def _identify(parse, head: bytes) -> bool:
    good = 0
    for line in text_lines(head)[:400]:
        if _is_record(line):
            try:
                parse(line)
                good += 1
            except FormatError:
                continue
            if good >= 1:
                return True
    return False


def identify_iod(head: bytes) -> bool:
    """A file with at least one valid IOD line among its first lines."""
    return _identify(parse_iod_line, head)


def identify_uk(head: bytes) -> bool:
    """A file with at least one valid UK-format line among its first lines."""
    return _identify(parse_uk_line, head)


def identify_rde(head: bytes) -> bool:
    """A file with an RDE header line followed by a day line."""
    lines = [ln.rstrip() for ln in text_lines(head) if ln.strip()]
    return any(_RDE_HEADER.match(a) and len(a) == 20 and _RDE_DAY.match(b)
               for a, b in zip(lines, lines[1:]))


#: Observation files mix with nothing else; above TLE (10), below partner descriptions (20).
FORMATS = (
    Format("iod", "observations", "IOD optical observations (satobs.org IOD format, 80 "
           "columns)", identify_iod, read_iod, 15, (".iod", ".txt")),
    Format("iod-lenient", "observations", "IOD lines, an unreadable optical block (columns "
           "65-80) ignored; never sniffed, ask for it with --format", lambda head: False,
           read_iod_lenient, 0, (".iod", ".txt")),
    Format("uk-obs", "observations", "UK-format optical observations (satobs.org UK format)",
           identify_uk, read_uk, 15, (".uk", ".txt")),
    Format("rde", "observations", "RDE optical observation blocks (satobs.org RDE format)",
           identify_rde, read_rde, 15, (".rde", ".txt")),
)

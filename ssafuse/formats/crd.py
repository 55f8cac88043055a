"""ILRS Consolidated laser Ranging Data (CRD) normal points, versions 1 and 2, into the
``observations`` table.

CRD (ILRS, "Consolidated Laser Ranging Data Format (CRD)", version 1.01, 2009, and version
2.01, 2021) is the format of satellite laser ranging data: a file is a series of sessions
(passes), each opened by header records and closed by ``H8``:

* ``H1 CRD v yyyy mm dd hh``: format version (1 or 2) and production date;
* ``H2 name pad system occupancy timescale [network]``: the station; its CDP pad id (``7090``
  for Yarragadee) is ``sensor_id``. Time scale codes 3, 4, 7 and 10 are UTC as kept by USNO,
  GPS, BIPM and the station: all read as UTC; any other code refuses the session;
* ``H3 name ilrs_id sic norad sc_timescale target_type [location]``: the target. ``object_id``
  is the NORAD number when the record gives one (``-1`` or ``na``: none); when it does not,
  the NORAD number another ``H3`` of the same file gives for the same ILRS id. The ILRS id
  (``YYXXXPP``, ILRS "satellite identifier") gives ``intl_designator``: ``9207002`` is
  ``1992-070B`` (piece 01 A, 02 B, ... in the COSPAR letters, which skip I and O);
* ``H4 type start(6) end(6) release trop com amplitude stn_delay sc_delay range_type
  quality``: the session's start date (the day of the first record), whether the
  tropospheric and centre-of-mass corrections are applied to the ranges, and the range type
  (only 2, two-way, is read; 0 no ranging, 1 one-way, 3 receive times only and 4 mixed are
  refused, since their time tags or ranges are not a two-way station-to-target range);
* ``H5`` (v2, prediction used), ``C0``-``C7`` (configuration), records ``12``, ``20``
  (meteorology), ``21``, ``30``, ``40``-``42`` (calibration), ``50``, ``60``, ``00``
  (comments), ``H8`` and ``H9`` are read for the structure or not at all.

Each normal point, record ``11 seconds tof config event window n rms skew kurtosis peak
rate channel [snr]``, is one observation row (``kind`` ``laser``):

* ``time``: the reception time at the station. ``seconds`` is the second of the day of the
  ``H4`` start date (a pass that runs past midnight continues on the next day: a record more
  than 12 h before the session start is on the next day); the epoch event says which instant
  it is: 0 ground receive time, kept; 1 spacecraft bounce time, plus ``tof / 2``; 2 ground
  transmit time, plus ``tof``. Events 3 to 6 (one-way ranging, spacecraft clocks) are
  refused. Rounded to the nanosecond;
* ``range_km``: one-way, ``c * tof / 2`` (two-way time of flight, c = 299 792.458 km/s), as
  the station measured it: the tropospheric delay (about 2.4 m at zenith) and the
  retroreflector's centre-of-mass offset (0.251 m for LAGEOS) are in it unless ``H4`` says
  they were applied. :func:`sessions` gives the ``H4`` flags and the meteorological records a
  caller needs to correct them;
* ``range_sigma_km``: the bin RMS of the normal point (ps of time of flight) as one-way
  range, ``c * rms / 2``: the scatter of the single shots, a conservative figure for the
  normal point itself (``rms / sqrt(n)`` would ignore calibration errors); null when the
  record states none (``-1``, ``na``);
* ``sensor_id`` the ``H2`` pad id, ``object_id`` / ``intl_designator`` from ``H3``.

Records: every record ``11`` is a row or a reject; a full-rate record ``10`` is a reject (this
reader takes normal points); a line that is no CRD record type is a reject. A session whose
headers are broken (a field missing or not a number, a time scale or range type not read)
has each of its normal points refused with that reason, naming the header's line. So
``accepted + rejected`` is the number of ``10`` / ``11`` records plus the lines that are no
record. Fields are separated by blanks (v2 is free format; v1's fixed columns are blank
separated too).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ..constants import NS_PER_DAY, NS_PER_S
from ..errors import FormatError
from ..schema import OBSERVATION_COLUMNS
from ..timeutil import days_from_civil, fraction_ns
from .base import Batch, Format, Reject, text_lines

__all__ = [
    "C_KM_S",
    "FORMAT",
    "NP_TEMPLATE",
    "Meteo",
    "NormalPoint",
    "Session",
    "identify",
    "ilrs_to_cospar",
    "read",
    "sessions",
]

BATCH_RECORDS = 20_000
#: Speed of light, km/s (exact).
C_KM_S = 299_792.458
_RAW_MAX = 200
_HALF_DAY_NS = NS_PER_DAY // 2

#: The normal point record's fields, shown beside a refused one.
NP_TEMPLATE = ("11 SECONDS_OF_DAY TIME_OF_FLIGHT_S CONFIG_ID EPOCH_EVENT WINDOW_S N_RAW "
               "BIN_RMS_PS SKEW KURTOSIS PEAK_MINUS_MEAN_PS RETURN_RATE CHANNEL [SNR]")
_H2_TEMPLATE = "H2 NAME PAD_ID SYSTEM OCCUPANCY TIMESCALE [NETWORK]"
_H3_TEMPLATE = "H3 NAME ILRS_ID SIC NORAD SC_TIMESCALE TARGET_TYPE [LOCATION]"
_H4_TEMPLATE = ("H4 TYPE YYYY MM DD hh mm ss YYYY MM DD hh mm ss RELEASE TROP COM AMP "
                "STN_DELAY SC_DELAY RANGE_TYPE QUALITY")

#: H2 station time scales (CRD 1.01 / 2.01): every one is a realisation of UTC.
UTC_TIME_SCALES = {3: "UTC (USNO)", 4: "UTC (GPS)", 7: "UTC (BIPM)", 10: "UTC (station)"}
#: H4 range type indicators.
RANGE_TYPES = {0: "no ranging (transponder time transfer)", 1: "one-way ranging",
               2: "two-way ranging", 3: "receive times only", 4: "mixed"}
#: Record 11 epoch events: (meaning, seconds of the time of flight to add for the receive
#: time, or None when not read).
EPOCH_EVENTS = {
    0: ("ground receive time (two-way)", 0.0),
    1: ("spacecraft bounce time (two-way)", 0.5),
    2: ("ground transmit time (two-way)", 1.0),
    3: ("spacecraft receive time (one-way)", None),
    4: ("spacecraft transmit time (one-way)", None),
    5: ("ground transmit and spacecraft receive time (one-way)", None),
    6: ("spacecraft transmit and ground receive time (one-way)", None),
}
#: Record types of CRD 1 and 2 this reader knows (lower case).
_STRUCTURE = frozenset({"h1", "h2", "h3", "h4", "h5", "h8", "h9", "00", "12", "20", "21", "30",
                        "40", "41", "42", "50", "60"} | {f"c{i}" for i in range(8)}
                       | {f"9{i}" for i in range(10)})
_COSPAR_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_H1 = re.compile(r"^\s*h1\s+crd(?:\s|$)", re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_SECONDS = re.compile(r"^(\d+)(?:\.(\d*))?$")


@dataclass(frozen=True)
class Meteo:
    """A meteorological record (``20``): surface pressure (hPa = mbar), temperature (K),
    relative humidity (%), at ``time_ns`` (UTC ns since 1970)."""

    line: int
    time_ns: int
    pressure_hpa: float
    temperature_k: float
    humidity_pct: float


@dataclass(frozen=True)
class NormalPoint:
    """A record ``11`` as written: its line, raw text and blank-separated fields."""

    line: int
    raw: str
    fields: tuple[str, ...]


@dataclass
class Session:
    """One session (``H1`` .. ``H8``) of a CRD file: its headers as read, or ``problem``
    (why its normal points are refused, naming the header and its line)."""

    line: int
    version: int | None = None
    station_name: str | None = None
    sensor_id: str | None = None
    time_scale: int | None = None
    target_name: str | None = None
    ilrs_id: str | None = None
    norad: int | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    data_type: int | None = None
    troposphere_applied: bool | None = None
    center_of_mass_applied: bool | None = None
    range_type: int | None = None
    problem: str | None = None
    points: list[NormalPoint] = field(default_factory=list)
    meteo: list[Meteo] = field(default_factory=list)
    seen: set = field(default_factory=set)

    def time_ns(self, seconds_text: str) -> int:
        """UTC ns of a record's seconds of day (text, read exactly), on the session's start
        date, or the next day when more than 12 h before the start (a pass past midnight).
        :class:`FormatError` when it is not a second of day."""
        m = _SECONDS.match(seconds_text)
        if not m or int(m.group(1)) > 86400:
            raise FormatError("seconds of day is not a number in [0, 86401)",
                              field="seconds_of_day", got=seconds_text)
        day0 = self.start_ns - self.start_ns % NS_PER_DAY
        t = day0 + int(m.group(1)) * NS_PER_S + fraction_ns(m.group(2) or "", NS_PER_S)
        if t < self.start_ns - _HALF_DAY_NS:
            t += NS_PER_DAY
        return t


def identify(head: bytes) -> bool:
    """A CRD file: its first record (after blank and ``00`` comment lines) is ``H1 CRD``."""
    for line in head.decode("latin-1").splitlines():
        text = line.strip()
        if not text or text[:2] == "00":
            continue
        return bool(_H1.match(text))
    return False


def ilrs_to_cospar(ilrs_id: str | None) -> str | None:
    """The COSPAR designator of an ILRS satellite id ``YYXXXPP`` (``9207002`` ->
    ``1992-070B``; years 57-99 are 19xx), or None when it is not one."""
    if not ilrs_id or not re.fullmatch(r"\d{7}", ilrs_id):
        return None
    yy, launch, piece = int(ilrs_id[:2]), ilrs_id[2:5], int(ilrs_id[5:])
    if not 1 <= piece <= len(_COSPAR_LETTERS) or launch == "000":
        return None
    year = 1900 + yy if yy >= 57 else 2000 + yy
    return f"{year}-{launch}{_COSPAR_LETTERS[piece - 1]}"


def _int(text: str, name: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise FormatError(f"{name} is not an integer", field=name, got=text)
    return int(text)


def _float(text: str, name: str) -> float:
    if not _NUMBER.match(text):
        raise FormatError(f"{name} is not a number", field=name, got=text)
    return float(text)


def _stated(text: str) -> float | None:
    """A number the record states: None for ``na`` and for negative fill values (-1)."""
    if text.lower() == "na" or not _NUMBER.match(text):
        return None
    value = float(text)
    return value if value >= 0.0 else None


def _need(fields: list[str], n: int, record: str, template: str) -> None:
    if len(fields) < n:
        raise FormatError(f"{record} has {len(fields) - 1} fields, {n - 1} or more expected",
                          expected=template, got=" ".join(fields))


def _civil_ns(f: list[str], name: str) -> int:
    """UTC ns of six fields ``YYYY MM DD hh mm ss``."""
    y, mo, d, h, mi, s = (_int(x, name) for x in f)
    try:
        days = days_from_civil(y, mo, d)
    except ValueError:
        raise FormatError(f"{name} is not a calendar date", field=name,
                          got=" ".join(f)) from None
    if not (0 <= h < 24 and 0 <= mi < 60 and 0 <= s <= 60):
        raise FormatError(f"{name} is not a time of day", field=name, got=" ".join(f))
    return days * NS_PER_DAY + ((h * 60 + mi) * 60 + s) * NS_PER_S


def _header(session: Session, kind: str, f: list[str]) -> None:
    """Fill ``session`` from an ``H1`` .. ``H4`` record's fields; :class:`FormatError`
    when the record breaks the format or asks for what is not read."""
    if kind == "h1":
        _need(f, 3, "H1", "H1 CRD VERSION YYYY MM DD hh")
        session.version = _int(f[2], "format_version")
        if session.version not in (1, 2):
            raise FormatError(f"CRD format version {session.version} is not read (1 and 2 "
                              "are)", field="format_version", got=" ".join(f))
    elif kind == "h2":
        _need(f, 6, "H2", _H2_TEMPLATE)
        session.station_name, session.sensor_id = f[1], f[2]
        _int(f[2], "station_pad_id")
        session.time_scale = _int(f[5], "time_scale")
        if session.time_scale not in UTC_TIME_SCALES:
            raise FormatError(f"station time scale {session.time_scale} is not one of the UTC "
                              f"codes {sorted(UTC_TIME_SCALES)}, so the epochs cannot be read "
                              "as UTC", field="time_scale", got=" ".join(f))
    elif kind == "h3":
        _need(f, 5, "H3", _H3_TEMPLATE)
        session.target_name, session.ilrs_id = f[1], f[2]
        norad = f[4]
        session.norad = int(norad) if re.fullmatch(r"\d+", norad) and int(norad) > 0 else None
    else:
        _h4(session, f)


def _h4(session: Session, f: list[str]) -> None:
    _need(f, 21, "H4", _H4_TEMPLATE)
    session.data_type = _int(f[1], "data_type")
    session.start_ns = _civil_ns(f[2:8], "start_time")
    # real files write an unknown end time as six -1 (ILRS CRD samples, Zimmerwald 2012)
    unknown_end = all(x == "-1" for x in f[8:14])
    session.end_ns = None if unknown_end else _civil_ns(f[8:14], "end_time")
    session.troposphere_applied = _int(f[15], "troposphere_applied") == 1
    session.center_of_mass_applied = _int(f[16], "center_of_mass_applied") == 1
    session.range_type = _int(f[20], "range_type")
    if session.range_type != 2:
        what = RANGE_TYPES.get(session.range_type, "not a CRD range type")
        raise FormatError(f"range type {session.range_type} ({what}) is not read: only "
                          "two-way ranges (2) are a station-to-target range",
                          field="range_type", got=" ".join(f))


def sessions(data: bytes | str) -> tuple[list[Session], list[Reject]]:
    """The sessions of a CRD file (``data``: its bytes or text) and the records refused
    outside any session's normal points (full-rate ``10`` records, lines of no CRD record
    type, normal points before any ``H1``). Normal points are kept as written
    (:class:`NormalPoint`); :func:`read` makes them rows. Meteorological records ``20`` are
    read into ``Session.meteo`` (a broken one is skipped: it is not an observation)."""
    lines = text_lines(data.encode("utf-8") if isinstance(data, str) else data)
    out: list[Session] = []
    loose: list[Reject] = []
    current: Session | None = None
    for number, line in enumerate(lines, 1):
        f = line.split()
        if not f:
            continue
        kind = f[0].lower()
        if kind == "h1":
            current = Session(number)
            out.append(current)
        if kind in ("h1", "h2", "h3", "h4"):
            if current is None:
                current = Session(number)
                out.append(current)
            if current.problem is None:
                try:
                    _header(current, kind, f)
                except FormatError as e:
                    reason = e.message + (f"; expected {e.expected!r}" if e.expected else "")
                    current.problem = (f"session header {kind.upper()} at line {number} is "
                                       f"not valid: {reason}")
            current.seen.add(kind)
        elif kind == "h8":
            current = None
        elif kind == "11":
            if current is None:
                loose.append(Reject(number, line[:_RAW_MAX], "normal point (record 11) "
                                    "outside a session: no H1 .. H4 headers before it"))
            else:
                current.points.append(NormalPoint(number, line[:_RAW_MAX], tuple(f)))
        elif kind == "10":
            loose.append(Reject(number, line[:_RAW_MAX], "full-rate record 10 is not read: "
                                "this reader takes normal points (record 11)", "crd:10"))
        elif kind == "20":
            if current is not None and current.start_ns is not None and len(f) >= 5:
                try:
                    current.meteo.append(Meteo(number, current.time_ns(f[1]),
                                               _float(f[2], "pressure"),
                                               _float(f[3], "temperature"),
                                               _float(f[4], "humidity")))
                except FormatError:
                    pass
        elif kind == "h9":
            current = None
        elif kind not in _STRUCTURE:
            loose.append(Reject(number, line[:_RAW_MAX], f"{f[0][:10]!r} is not a CRD record "
                                "type (H1-H5, H8, H9, C0-C7, 00, 10-12, 20, 21, 30, 40-42, "
                                "50, 60, 9x)"))
    _fill_norad(out)
    return out, loose


def _fill_norad(found: list[Session]) -> None:
    """A session whose ``H3`` gives no NORAD number takes the one another session of the
    file gives for the same ILRS id (when exactly one is given)."""
    by_ilrs: dict[str, set[int]] = {}
    for s in found:
        if s.ilrs_id and s.norad:
            by_ilrs.setdefault(s.ilrs_id, set()).add(s.norad)
    for s in found:
        if s.norad is None and len(by_ilrs.get(s.ilrs_id or "", ())) == 1:
            s.norad = next(iter(by_ilrs[s.ilrs_id]))


def _session_problem(s: Session) -> str | None:
    if s.problem:
        return s.problem
    missing = [k.upper() for k in ("h1", "h2", "h3", "h4") if k not in s.seen]
    if missing:
        return (f"the session opened at line {s.line} has no {', '.join(missing)} record: "
                "the station, target and date of its normal points are not stated")
    return None


def _point(s: Session, p: NormalPoint) -> dict:
    """The observation row of a normal point; :class:`FormatError` when it is refused."""
    f = p.fields
    _need(list(f), 13, "record 11", NP_TEMPLATE)
    tof = _float(f[2], "time_of_flight")
    if not 0.0 < tof < 10.0:
        raise FormatError("time of flight is not in (0, 10) s", field="time_of_flight",
                          got=f[2])
    event = _int(f[4], "epoch_event")
    meaning, add = EPOCH_EVENTS.get(event, ("not a CRD epoch event", None))
    if add is None:
        raise FormatError(f"epoch event {event} ({meaning}) is not read: events 0, 1 and 2 "
                          "(two-way ranging tagged at ground receive, bounce or ground "
                          "transmit time) are", field="epoch_event", got=f[4])
    t = s.time_ns(f[1]) + round(add * tof * NS_PER_S)
    rms_ps = _stated(f[7])
    rec = dict.fromkeys(OBSERVATION_COLUMNS)
    rec.update(source_record=p.line, _raw=p.raw, marking=None, time=t, kind="laser",
               sensor_id=s.sensor_id, object_id=s.norad,
               intl_designator=ilrs_to_cospar(s.ilrs_id), range_km=C_KM_S * tof / 2.0,
               range_sigma_km=(C_KM_S * rms_ps * 1e-12 / 2.0) if rms_ps else None)
    return rec


def read(stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """Observation rows and rejects of a CRD file (see the module docstring)."""
    found, loose = sessions(stream.read())
    if not found and not loose:
        raise FormatError("not a CRD file: no H1 record and no normal point", path=uri,
                          expected="H1 CRD 2 yyyy mm dd hh")
    batch = Batch(table="observations", rejects=list(loose))
    for s in found:
        problem = _session_problem(s)
        for p in s.points:
            if problem:
                batch.rejects.append(Reject(p.line, p.raw, problem))
                continue
            try:
                batch.records.append(_point(s, p))
            except FormatError as e:
                batch.rejects.append(Reject.from_error(e, p.line, p.raw))
        if len(batch) >= BATCH_RECORDS:
            yield batch
            batch = Batch(table="observations")
    if len(batch):
        yield batch


FORMAT = Format("crd", "observations", "ILRS CRD laser ranging normal points, v1 and v2 "
                "(record 11 into observations, kind laser)", identify, read, 15,
                (".npt", ".crd", ".v2c"))

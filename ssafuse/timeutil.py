"""Time, in one place: nanoseconds since 1970-01-01 UTC (the ``timestamp[ns, UTC]`` of every
table) to and from ISO-8601 text, ``datetime``, civil dates and split Julian dates.

Parsing is exact (integer nanoseconds, no float rounding), so the same instant read from a TLE,
an OMM and a CSV gives identical rows. :func:`parse_epoch` and :func:`epoch_from_year_day`
parse what feeds contain and raise :class:`~ssafuse.errors.FormatError`; :func:`parse_iso`
parses what a user types (options, configuration) and raises ``ValueError``.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np

from .constants import JD_UNIX, NS_PER_DAY, NS_PER_S
from .errors import FormatError

_UNIX_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


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
    import pyarrow as pa  # local: time parsing must not pull Arrow into every format module

    try:
        return pa.scalar(value, pa.timestamp("ns", tz="UTC")).cast(pa.int64()).as_py()
    except (pa.ArrowException, TypeError):
        raise TypeError(f"expected a datetime, ISO-8601 text or int ns, got {value!r}") from None


def parse_iso(text: str | dt.datetime) -> dt.datetime:
    """A timezone-aware ``datetime`` from ISO-8601 text as a user types it
    (``2026-03-09T18:00:00Z``, ``...+01:00``; a time without an offset is UTC) or a
    ``datetime``; an offset it states is kept (``.astimezone(dt.timezone.utc)`` for UTC).
    Raises ``ValueError`` for anything else."""
    if isinstance(text, dt.datetime):
        t = text
    elif isinstance(text, str):
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    else:
        raise ValueError(f"expected ISO-8601 text or a datetime, got {text!r}")
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t


def utc_stamp(t: dt.datetime) -> str:
    """The compact UTC stamp in file names: ``20260310T021500``."""
    return t.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")


def whole_seconds_ns(t: dt.datetime) -> int:
    """Nanoseconds since 1970 of a timezone-aware ``datetime``, truncated to the second (the
    ``now`` that correlation measures element-set ages from)."""
    return int(t.timestamp()) * NS_PER_S


def datetime_from_ns(ns: int) -> dt.datetime:
    """The UTC ``datetime`` of nanoseconds since 1970 (truncated to the microsecond)."""
    return UNIX_EPOCH + dt.timedelta(microseconds=int(ns) // 1000)


def iso_z(ns: int) -> str:
    """ISO-8601 text with a ``Z`` of nanoseconds since 1970, to the microsecond
    (``2026-03-09T09:20:49.941888Z``)."""
    return datetime_from_ns(ns).isoformat().replace("+00:00", "Z")


def iso_ms(ns: int) -> str:
    """Text for people: ``2026-03-09 09:20:49.941Z`` (to the millisecond)."""
    return datetime_from_ns(ns).strftime("%Y-%m-%d %H:%M:%S.") + f"{(int(ns) // 10**6) % 1000:03d}Z"


def ns_from_datetime(t: dt.datetime) -> int:
    """Nanoseconds since 1970 of a timezone-aware ``datetime``, exactly (to the microsecond)."""
    if t.tzinfo is None:
        raise ValueError("time must be timezone-aware (UTC)")
    delta = t - UNIX_EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


def jd_from_ns(ns) -> tuple[np.ndarray, np.ndarray]:
    """Split Julian dates ``(jd, fr)`` of nanoseconds since 1970 UTC, as python-sgp4 takes them:
    ``jd`` the whole-day part ending in .5, ``fr`` the fraction, so no precision is lost."""
    ns = np.asarray(ns, dtype=np.int64)
    days, rem = np.divmod(ns, NS_PER_DAY)
    return days + JD_UNIX, rem / NS_PER_DAY

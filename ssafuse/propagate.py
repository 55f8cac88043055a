"""SGP4 from canonical element rows.

Element rows (the ``elements`` or ``catalogue`` table) become python-sgp4 ``Satrec`` objects
through ``Satrec.sgp4init``, the same call ``sgp4.omm.initialize`` makes, with the same unit
conversions; propagation is ``SatrecArray`` in the hot path, returning per-element error codes
instead of raising (python-sgp4's convention).
"""

from __future__ import annotations

from math import pi

import numpy as np
import pyarrow as pa
from sgp4.api import Satrec, SatrecArray
from skyfield.api import load
from skyfield.constants import AU_KM, DAY_S
from skyfield.framelib import itrs
from skyfield.positionlib import Geocentric
from skyfield.sgp4lib import TEME

from .constants import EARTH_RADIUS_KM, JD_UNIX, NS_PER_DAY, SGP4_GRAVITY
from .timeutil import days_from_civil, jd_from_ns

#: Nanoseconds since 1970 of SGP4's epoch origin, 1949-12-31T00:00 UTC.
_NS_1949 = days_from_civil(1949, 12, 31) * NS_PER_DAY
_TO_RAD = pi / 180.0
# The unit factors sgp4.omm uses (see SGP4.cpp): rev/day^2 -> rad/min^2, rev/day^3 -> rad/min^3.
_NDOT_UNITS = 1036800.0 / pi
_NDDOT_UNITS = 2985984000.0 / 2.0 / pi
#: rev/day -> rad/min exactly as ``twoline2rv`` divides (SGP4.cpp ``xpdotp``): the same value
#: as ``/ 720 * pi`` but rounded the same way as the TLE path, which matters to the last digit
#: for very eccentric orbits (Vallado's 23333, e = 0.97).
_XPDOTP = 1440.0 / (2.0 * pi)
#: sgp4init keeps the catalogue number in 5 Alpha-5 characters; larger numbers become 0 there
#: (it is only a label inside Satrec; ssafuse keeps the real number beside it).
_MAX_SATNUM = 339999

#: The element columns ``sgp4init`` takes (what a worker needs to rebuild a catalogue).
SGP4_COLUMNS = ("object_id", "epoch", "mean_motion_rev_day", "eccentricity", "inclination_deg",
                "raan_deg", "arg_perigee_deg", "mean_anomaly_deg", "bstar", "mean_motion_dot",
                "mean_motion_ddot")


def _epoch_days_1949(epoch_ns: int) -> float:
    """The epoch as ``sgp4init`` takes it (days since 1949-12-31 00:00), computed with the same
    float operations as ``twoline2rv`` (``jdsatepoch + jdsatepochF - 2433281.5``), so an element
    set read from a TLE initialises exactly as python-sgp4's own parser would have it."""
    days, rem = divmod(epoch_ns, NS_PER_DAY)
    return (days + JD_UNIX) + rem / NS_PER_DAY - 2433281.5


def satrec(row: dict) -> Satrec:
    """A python-sgp4 ``Satrec`` from one canonical element row (a dict with the element
    columns; ``epoch`` as a timestamp, datetime or int ns since 1970), through
    ``Satrec.sgp4init`` with the unit conversions ``sgp4.omm.initialize`` makes, and the
    epoch kept to the nanosecond.

    ``sgp4init`` takes the epoch as one float of days since 1949, which rounds it by up to
    ~40 microseconds (0.3 m in LEO); the Julian date pair ``jdsatepoch + jdsatepochF`` SGP4
    measures time from is then reset from the integer nanoseconds (this is what makes
    Vallado's verification lines agree to 0.1 mm)."""
    epoch = row["epoch"]
    if not isinstance(epoch, (int, np.integer)):
        epoch = pa.scalar(epoch, pa.timestamp("ns", tz="UTC")).cast(pa.int64()).as_py()
    sat = Satrec()
    satnum = int(row["object_id"])
    sat.sgp4init(
        SGP4_GRAVITY, "i", satnum if satnum <= _MAX_SATNUM else 0,
        _epoch_days_1949(int(epoch)),
        float(row["bstar"]),
        float(row["mean_motion_dot"] or 0.0) / _NDOT_UNITS,
        float(row["mean_motion_ddot"] or 0.0) / _NDDOT_UNITS,
        float(row["eccentricity"]),
        float(row["arg_perigee_deg"]) * _TO_RAD,
        float(row["inclination_deg"]) * _TO_RAD,
        float(row["mean_anomaly_deg"]) * _TO_RAD,
        float(row["mean_motion_rev_day"]) / _XPDOTP,
        float(row["raan_deg"]) * _TO_RAD,
    )
    jd, fr = jd_from_ns(np.array([int(epoch)]))
    sat.jdsatepoch, sat.jdsatepochF = float(jd[0]), float(fr[0])
    return sat


def satrecs(table: pa.Table) -> list[Satrec]:
    """One :func:`satrec` per row of an elements or catalogue table, in row order."""
    cols = table.select(list(SGP4_COLUMNS))
    cols = cols.set_column(1, "epoch", cols["epoch"].cast(pa.int64()))
    return [satrec(row) for row in cols.to_pylist()]


def propagate(sats: list[Satrec], times_ns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Propagate every satellite to every time with ``SatrecArray``.

    Returns ``(err, r, v)``: ``err`` uint8 of shape (n_sats, n_times), 0 where SGP4 succeeded
    (codes as python-sgp4 documents them; NaN rows where it did not); ``r`` TEME positions in
    km and ``v`` TEME velocities in km/s, shape (n_sats, n_times, 3).
    """
    jd, fr = jd_from_ns(np.atleast_1d(times_ns))
    return SatrecArray(sats).sgp4(jd, fr)


def position_at_epochs(sats: list[Satrec], times_ns) -> tuple[np.ndarray, np.ndarray]:
    """Each satellite at its own time (``times_ns[i]`` for ``sats[i]``).

    Returns ``(err, r)``: uint8 codes of shape (n,) and TEME positions in km, shape (n, 3).
    """
    jd, fr = jd_from_ns(np.asarray(times_ns))
    err = np.zeros(len(sats), dtype=np.uint8)
    r = np.full((len(sats), 3), np.nan)
    for i, sat in enumerate(sats):
        e, pos, _ = sat.sgp4(float(jd[i]), float(fr[i]))
        err[i] = e
        if e == 0:
            r[i] = pos
    return err, r


# -- the vectorized core: (objects x times) in chunks, error codes, exclusions ----------------

#: python-sgp4's error codes (``sgp4.api.SGP4_ERRORS``), with 0 for success.
ERROR_MESSAGES: dict[int, str] = {
    0: "ok",
    1: "mean eccentricity is outside the range 0.0 to 1.0",
    2: "mean motion is less than zero",
    3: "perturbed eccentricity is outside the range 0.0 to 1.0",
    4: "semilatus rectum is less than zero",
    5: "satellite was underground (code no longer used)",
    6: "mrt is less than 1.0: the satellite has decayed",
    # ssafuse's own checks on what SGP4 returned without an error code:
    7: "position below 50 km altitude: the object has re-entered",
    8: "non-physical state (beyond 2,000,000 km or faster than 12 km/s): element set "
       "outside SGP4's domain",
    9: "SGP4 output no longer smooth enough to interpolate (a decaying element set)",
    10: "element set epoch too far from the screening window (ssafuse.epochs)",
}
#: The exclusion code of an element set whose epoch is too far from the window.
FAR_FROM_WINDOW = 10
#: Altitude below which a position counts as re-entered (code 7), km.
REENTRY_ALTITUDE_KM = 50.0


def check_states(err: np.ndarray, r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``err`` with ssafuse's codes 7 (re-entered) and 8 (non-physical) added where SGP4 gave a
    state without complaint that no orbiting object can have (SGP4 no longer flags
    underground positions, and decaying element sets can return 1e10 km before failing).
    The rows of ``r`` and ``v`` so marked are set to NaN, in place."""
    with np.errstate(invalid="ignore"):
        rn = np.sqrt((r * r).sum(axis=-1))
        vn = np.sqrt((v * v).sum(axis=-1))
        low = (err == 0) & (rn < EARTH_RADIUS_KM + REENTRY_ALTITUDE_KM)
        wild = (err == 0) & ((rn > 2e6) | (vn > 12.0))
    err = err.copy()
    err[low] = 7
    err[wild] = 8
    r[low | wild] = np.nan
    v[low | wild] = np.nan
    return err
#: Code used by ssafuse for an element set SGP4 could not even be initialised with.
INIT_FAILED = 1
#: Default bound on the bytes the position + velocity arrays of one chunk may take.
CHUNK_BYTES = 64 << 20


def init_errors(sats: list[Satrec]) -> np.ndarray:
    """uint8 code per satellite of what ``sgp4init`` said (0: usable)."""
    return np.array([sat.error for sat in sats], dtype=np.uint8)


def chunk_sizes(n_objects: int, n_times: int, max_bytes: int = CHUNK_BYTES) -> tuple[int, int]:
    """``(objects, times)`` per chunk so that ``r`` and ``v`` of one chunk (2 x 3 float64 per
    object and time) stay under ``max_bytes``; whole time rows are kept when they fit."""
    per = 48
    if n_objects * n_times * per <= max_bytes:
        return max(n_objects, 1), max(n_times, 1)
    times = max(1, min(n_times, max_bytes // (per * max(n_objects, 1))))
    if times < n_times:
        return max(1, min(n_objects, max_bytes // (per * times))), times
    return max(1, max_bytes // (per * n_times)), n_times


def iter_propagate(sats: list[Satrec], times_ns, *, max_bytes: int = CHUNK_BYTES):
    """Propagate in (objects x times) chunks that bound memory.

    Yields ``(objects, times, err, r, v)``: ``objects`` and ``times`` are the ``slice`` objects
    of the chunk in ``sats`` and ``times_ns``; ``err`` uint8 codes of shape
    (n_objects, n_times), 0 where SGP4 succeeded; ``r`` TEME positions in km and ``v`` TEME
    velocities in km/s of shape (n_objects, n_times, 3), NaN where ``err`` is not 0.
    Never raises on a bad element set: that is a code.
    """
    times_ns = np.atleast_1d(np.asarray(times_ns, dtype=np.int64))
    jd, fr = jd_from_ns(times_ns)
    n_obj, n_t = chunk_sizes(len(sats), len(times_ns), max_bytes)
    for o in range(0, len(sats), n_obj):
        objects = slice(o, min(o + n_obj, len(sats)))
        arr = SatrecArray(sats[objects])
        for t in range(0, len(times_ns), n_t):
            times = slice(t, min(t + n_t, len(times_ns)))
            err, r, v = arr.sgp4(jd[times], fr[times])
            bad = err != 0
            if bad.any():  # SGP4 leaves numbers behind for some codes: NaN them, always
                r[bad] = np.nan
                v[bad] = np.nan
            yield objects, times, err, r, v


def propagate_chunked(sats: list[Satrec], times_ns, *, max_bytes: int = CHUNK_BYTES,
                      dtype=np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`propagate` computed chunk by chunk, so only the output (optionally ``float32``
    to halve it) is held whole. Returns ``(err, r, v)`` as :func:`propagate` does."""
    times_ns = np.atleast_1d(np.asarray(times_ns, dtype=np.int64))
    shape = (len(sats), len(times_ns))
    err = np.zeros(shape, dtype=np.uint8)
    r = np.empty(shape + (3,), dtype=dtype)
    v = np.empty(shape + (3,), dtype=dtype)
    for objects, times, e, rr, vv in iter_propagate(sats, times_ns, max_bytes=max_bytes):
        err[objects, times] = e
        r[objects, times] = rr
        v[objects, times] = vv
    return err, r, v


def first_errors(err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For an (objects x times) code array: the index of each object's first failed time
    (-1 when none failed) and its code (0 when none)."""
    bad = err != 0
    any_bad = bad.any(axis=1)
    first = np.where(any_bad, bad.argmax(axis=1), -1)
    code = np.where(any_bad, err[np.arange(err.shape[0]), np.maximum(first, 0)], 0)
    return first.astype(np.int64), code.astype(np.uint8)


def error_reason(code: int, *, at_init: bool = False) -> str:
    """Words for an SGP4 error code, as the run's exclusions list them."""
    text = ERROR_MESSAGES.get(int(code), f"SGP4 error {int(code)}")
    return ("element set rejected by sgp4init: " if at_init else "SGP4 failed: ") + text


# ---------------------------------------------------------------------------------- frames
# SGP4 gives TEME; other frames come from Skyfield's frame objects (AIAA 2006-6753 Appendix C
# for TEME, IERS 2010 for ITRS), never from hand-written rotations.

_TIMESCALE = None


def timescale():
    """Skyfield's timescale with its built-in leap-second and UT1 tables (no download)."""
    global _TIMESCALE
    if _TIMESCALE is None:
        _TIMESCALE = load.timescale(builtin=True)
    return _TIMESCALE


def skyfield_times(times_ns):
    """Skyfield ``Time`` of UTC nanoseconds since 1970 (an array), leap seconds honoured:
    built from the calendar date and the seconds of that day, never from one long count of
    seconds since 1970 (which Skyfield would read as SI seconds, 27 s off by 2017)."""
    days, rem = np.divmod(np.atleast_1d(np.asarray(times_ns, dtype=np.int64)), NS_PER_DAY)
    date = np.datetime64("1970-01-01", "D") + days.astype("timedelta64[D]")
    year = date.astype("datetime64[Y]").astype(np.int64) + 1970
    month = date.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (date - date.astype("datetime64[M]")).astype(np.int64) + 1
    return timescale().utc(year, month, day, 0, 0, rem / 1e9)


def teme_to_gcrs(times_ns, r_teme_km, v_teme_km_s) -> tuple[np.ndarray, np.ndarray]:
    """Rotate SGP4's TEME states to GCRS (GCRF) with Skyfield's ``TEME`` frame, as Skyfield's
    ``EarthSatellite.at`` does. ``times_ns``: UTC ns since 1970, shape ``(n,)``; ``r``, ``v``:
    ``(n, 3)`` in km and km/s. Returns ``(r_km, v_km_s)`` in GCRS. The frame's own rotation
    rate (precession-nutation, ~1e-7 km/s in LEO) is left out of the velocity, as Skyfield
    leaves it out."""
    r = np.asarray(r_teme_km, dtype=float).reshape(-1, 3)
    v = np.asarray(v_teme_km_s, dtype=float).reshape(-1, 3)
    if r.shape[0] == 0:
        return r.copy(), v.copy()
    R = np.asarray(TEME.rotation_at(skyfield_times(times_ns))).reshape(3, 3, -1)
    return np.einsum("jin,nj->ni", R, r), np.einsum("jin,nj->ni", R, v)


def teme_to_itrs(times_ns, r_teme_km, v_teme_km_s) -> tuple[np.ndarray, np.ndarray]:
    """SGP4's TEME states in the Earth-fixed ITRS, through GCRS and Skyfield's ``itrs`` frame
    (its velocity includes the Earth's rotation). Shapes and units as :func:`teme_to_gcrs`."""
    r, v = teme_to_gcrs(times_ns, r_teme_km, v_teme_km_s)
    if r.shape[0] == 0:
        return r, v
    t = skyfield_times(times_ns)
    pos = Geocentric(r.T / AU_KM, v.T / AU_KM * DAY_S, t)
    r_itrs, v_itrs = pos.frame_xyz_and_velocity(itrs)
    return np.asarray(r_itrs.km).T.reshape(-1, 3), np.asarray(v_itrs.km_per_s).T.reshape(-1, 3)

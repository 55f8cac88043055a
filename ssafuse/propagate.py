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
from sgp4.api import WGS72, Satrec, SatrecArray

from .ingest._common import NS_PER_DAY, days_from_civil

#: Nanoseconds since 1970 of SGP4's epoch origin, 1949-12-31T00:00 UTC.
_NS_1949 = days_from_civil(1949, 12, 31) * NS_PER_DAY
#: Julian date of 1970-01-01T00:00.
JD_UNIX = 2440587.5
_TO_RAD = pi / 180.0
# The unit factors sgp4.omm uses (see SGP4.cpp): rev/day^2 -> rad/min^2, rev/day^3 -> rad/min^3.
_NDOT_UNITS = 1036800.0 / pi
_NDDOT_UNITS = 2985984000.0 / 2.0 / pi
#: sgp4init keeps the catalogue number in 5 Alpha-5 characters; larger numbers become 0 there
#: (it is only a label inside Satrec; ssafuse keeps the real number beside it).
_MAX_SATNUM = 339999

_ROW_COLUMNS = ("object_id", "epoch", "mean_motion_rev_day", "eccentricity", "inclination_deg",
                "raan_deg", "arg_perigee_deg", "mean_anomaly_deg", "bstar", "mean_motion_dot",
                "mean_motion_ddot")


def jd_from_ns(ns) -> tuple[np.ndarray, np.ndarray]:
    """Split Julian dates ``(jd, fr)`` of nanoseconds since 1970 UTC, as python-sgp4 takes them:
    ``jd`` the whole-day part ending in .5, ``fr`` the fraction, so no precision is lost."""
    ns = np.asarray(ns, dtype=np.int64)
    days, rem = np.divmod(ns, NS_PER_DAY)
    return days + JD_UNIX, rem / NS_PER_DAY


def satrec(row: dict) -> Satrec:
    """A python-sgp4 ``Satrec`` from one canonical element row (a dict with the element
    columns; ``epoch`` as a timestamp, datetime or int ns since 1970)."""
    epoch = row["epoch"]
    if not isinstance(epoch, (int, np.integer)):
        epoch = pa.scalar(epoch, pa.timestamp("ns", tz="UTC")).cast(pa.int64()).as_py()
    sat = Satrec()
    satnum = int(row["object_id"])
    sat.sgp4init(
        WGS72, "i", satnum if satnum <= _MAX_SATNUM else 0,
        (int(epoch) - _NS_1949) / NS_PER_DAY,
        float(row["bstar"]),
        float(row["mean_motion_dot"] or 0.0) / _NDOT_UNITS,
        float(row["mean_motion_ddot"] or 0.0) / _NDDOT_UNITS,
        float(row["eccentricity"]),
        float(row["arg_perigee_deg"]) * _TO_RAD,
        float(row["inclination_deg"]) * _TO_RAD,
        float(row["mean_anomaly_deg"]) * _TO_RAD,
        float(row["mean_motion_rev_day"]) / 720.0 * pi,
        float(row["raan_deg"]) * _TO_RAD,
    )
    return sat


def satrecs(table: pa.Table) -> list[Satrec]:
    """One ``Satrec`` per row of an elements or catalogue table, in row order."""
    cols = table.select(list(_ROW_COLUMNS))
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

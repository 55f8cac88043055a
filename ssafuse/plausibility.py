"""Physical bounds every reduced observation meets, whatever the feed it came from.

An adapter checks what its format says (a TDM angle in [-180, 360), an IOD field's digits);
these bounds check what physics allows of a measurement between a sensor and an object in
Earth orbit. They are applied in one place, when a batch becomes the canonical
``observations`` table (:func:`ssafuse.records.to_tables`): a row outside any bound is a
reject whose reason names the column, the value and the bound, and whose ``field`` is the
column. A null is not checked (the column was not measured); NaN is refused, it is no
measurement.

The bounds, and why (each is the loosest value physics allows, not a tracking gate):

* ``range_km`` in (0, :data:`MAX_RANGE_KM`]: a one-way range is a positive distance, and
  sensor and object both bound to Earth each lie within Earth's Hill sphere, radius
  a (m_Earth / 3 M_Sun)^(1/3) = 1.4966e6 km, so they are at most its diameter apart
  (2.99e6 km, about 7.8 lunar distances). A farther "range" is deep-space tracking, which
  no observation format ssafuse reads states, or a value that is not a range (an ambiguous
  residue, a unit error).
* ``range_rate_km_s`` within +-:data:`MAX_RANGE_RATE_KM_S`: a body bound to Earth moves
  slower than the escape speed at its distance, sqrt(2 mu / r) <= sqrt(2 mu / R_Earth) =
  11.18 km/s (a ground sensor moves at 0.47 km/s at most); two such bodies cannot close or
  part faster than twice that.
* ``ra_deg``, ``az_deg`` in [0, 360); ``dec_deg`` in [-90, 90]: the angles' own domains.
* ``el_deg`` in [:data:`MIN_ELEVATION_DEG`, 90]: below the horizon by more than the dip of
  the horizon from the highest sensor platform plus refraction, the line of sight runs
  through the Earth (see :data:`MIN_ELEVATION_DEG`).
* the 1-sigma uncertainties (``*_sigma*``) are 0 or more: a standard deviation is never
  negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .constants import EARTH_RADIUS_KM, MU_KM3_S2

__all__ = ["Bound", "OBSERVATION_BOUNDS", "MAX_RANGE_KM", "MAX_RANGE_RATE_KM_S",
           "MIN_ELEVATION_DEG", "HILL_RADIUS_KM", "implausible_rows"]

#: Astronomical unit, km (IAU 2012 Resolution B2, exact).
AU_KM = 149_597_870.7
#: Sun / Earth mass ratio, GM_Sun / GM_Earth (IAU 2009 System of Astronomical Constants).
SUN_EARTH_MASS_RATIO = 332_946.0487
#: Radius of Earth's Hill sphere, km: the region inside which Earth, not the Sun, holds an
#: orbit (a (m / 3M)^(1/3), 1.4966e6 km). No object in Earth orbit is farther from Earth.
HILL_RADIUS_KM = AU_KM * (1.0 / (3.0 * SUN_EARTH_MASS_RATIO)) ** (1.0 / 3.0)
#: Largest one-way range between two bodies bound to Earth, km: the Hill sphere's diameter.
MAX_RANGE_KM = 2.0 * HILL_RADIUS_KM
#: Largest range rate between two bodies bound to Earth, km/s: twice the escape speed at
#: Earth's surface, sqrt(2 mu / R) = 11.18 km/s (WGS-72, the constants SGP4 uses).
MAX_RANGE_RATE_KM_S = 2.0 * math.sqrt(2.0 * MU_KM3_S2 / EARTH_RADIUS_KM)
#: Lowest elevation a sensor can see an object at, deg. The horizon's dip seen from height h
#: is arccos(R / (R + h)): 2.4 deg from the highest observatories (5.6 km), 3.9 deg from an
#: airborne sensor at 15 km; astronomical refraction at the horizon adds about 0.6 deg for an
#: apparent elevation. Lower than -5 deg, the line of sight runs through the solid Earth.
MIN_ELEVATION_DEG = -5.0


@dataclass(frozen=True)
class Bound:
    """``low <(=) column <(=) high`` for one observation column, and why."""

    column: str
    low: float
    high: float
    unit: str
    why: str
    low_closed: bool = True
    high_closed: bool = True

    def interval(self) -> str:
        return (f"{'[' if self.low_closed else '('}{self.low:g}, {self.high:g}"
                f"{']' if self.high_closed else ')'} {self.unit}")

    def reason(self, value: float) -> str:
        if math.isnan(value):
            return f"{self.column} is NaN, not a measurement (bound {self.interval()})"
        return (f"{self.column} = {value:g} {self.unit} is outside {self.interval()}: "
                f"{self.why}")


_SIGMA = "a 1-sigma uncertainty is never negative"
#: The bounds, as data: one row per observation column checked.
OBSERVATION_BOUNDS = (
    Bound("range_km", 0.0, MAX_RANGE_KM, "km", "a range is positive, and two bodies in Earth "
          "orbit are within Earth's Hill sphere, so never farther apart than its diameter",
          low_closed=False),
    Bound("range_rate_km_s", -MAX_RANGE_RATE_KM_S, MAX_RANGE_RATE_KM_S, "km/s", "two bodies "
          "in Earth orbit each move slower than the escape speed at Earth's surface "
          "(11.18 km/s)"),
    Bound("ra_deg", 0.0, 360.0, "deg", "right ascension", high_closed=False),
    Bound("dec_deg", -90.0, 90.0, "deg", "declination"),
    Bound("az_deg", 0.0, 360.0, "deg", "azimuth", high_closed=False),
    Bound("el_deg", MIN_ELEVATION_DEG, 90.0, "deg", "an object lower than the horizon's dip "
          "from the highest sensor platform plus refraction is behind the Earth"),
    Bound("angle_sigma_deg", 0.0, math.inf, "deg", _SIGMA),
    Bound("range_sigma_km", 0.0, math.inf, "km", _SIGMA),
    Bound("range_rate_sigma_km_s", 0.0, math.inf, "km/s", _SIGMA),
    Bound("time_sigma_s", 0.0, math.inf, "s", _SIGMA),
)


def implausible_rows(columns: dict[str, list]) -> dict[int, tuple[str, str]]:
    """``{row: (column, reason)}`` for the rows of an observations batch (``columns``: column
    name to a list of values, None where not measured) outside :data:`OBSERVATION_BOUNDS`;
    the first bound a row breaks names it."""
    bad: dict[int, tuple[str, str]] = {}
    for bound in OBSERVATION_BOUNDS:
        values = columns.get(bound.column)
        if not values:
            continue
        v = np.array([math.nan if x is None else x for x in values], dtype=np.float64)
        measured = np.array([x is not None for x in values])
        with np.errstate(invalid="ignore"):
            low = v >= bound.low if bound.low_closed else v > bound.low
            high = v <= bound.high if bound.high_closed else v < bound.high
        for i in np.flatnonzero(measured & ~(low & high)):
            bad.setdefault(int(i), (bound.column, bound.reason(float(v[i]))))
    return bad

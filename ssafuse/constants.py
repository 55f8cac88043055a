"""Physical constants and time units, each defined once.

SGP4 works in WGS-72 (python-sgp4's ``WGS72``): screening, TCA refinement and the report's
altitudes use the same Earth as the propagator, so no other value appears anywhere else.
"""

from __future__ import annotations

from sgp4.api import WGS72 as _SGP4_GRAVITY
from sgp4.earth_gravity import wgs72 as _WGS72

#: The gravity model every ``Satrec`` is initialised with.
SGP4_GRAVITY = _SGP4_GRAVITY
#: WGS-72 gravitational parameter, km^3/s^2 (what SGP4 uses).
MU_KM3_S2 = _WGS72.mu
#: WGS-72 equatorial radius, km (what SGP4 uses).
EARTH_RADIUS_KM = _WGS72.radiusearthkm

NS_PER_S = 10**9
SECONDS_PER_DAY = 86_400
NS_PER_DAY = SECONDS_PER_DAY * NS_PER_S
#: Julian date of 1970-01-01T00:00 UTC.
JD_UNIX = 2440587.5

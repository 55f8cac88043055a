"""Test-side readers of Orekit's orbit-determination tutorial inputs, for the real-data OD
tests (``test_od_real_radar.py``).

* ``*.aer``: Orekit's tutorial measurement format (not a standard: Orekit's tutorials and
  ``NumericalOrbitDeterminationTest`` read it, ``AbstractOrbitDetermination``'s measurements
  parser). One measurement per line, ``#`` comments::

      2010-11-02T03:00:13.3851   RANGE       Uralla         38014.9488
      2010-11-02T03:00:50.5716   AZ_EL       Kumsan           211.1446   43.4099

  date in UTC; ``RANGE`` in km (Orekit builds a two-way ``Range`` from it, whose value is
  the one-way equivalent: half the round trip), ``AZ_EL`` azimuth and elevation in degrees
  (observed, so refracted: Orekit corrects the computed elevation for refraction when
  ``ground.station.elevation.refraction.correction`` is true), ``RANGE_RATE`` in km/s. Other
  types (``PV``, ``POSITION``) raise.
* ``*.in``: Orekit's tutorial key = value configuration; its ``ground.station.*  [i]`` blocks
  give each station's geodetic latitude, longitude (deg) and altitude (m) on the
  ``body.equatorial.radius`` / ``body.inverse.flattening`` ellipsoid (WGS-84 in both files),
  the measurement sigmas and the a-priori biases; ``orbit.*`` the initial state (EME2000, m,
  m/s).

``start_elements`` turns that state into a start element set: EME2000 -> TEME with Skyfield
(frame bias, then Skyfield's TEME rotation), then osculating Keplerian elements (WGS-72 mu)
read as SGP4 mean elements. That is an approximation (SGP4's mean elements differ from the
osculating ones by the J2 short-period terms, ~10 km in position in LEO, less at GEO): a start
for a fit, not an element set to propagate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ssafuse.constants import MU_KM3_S2
from ssafuse.propagate import skyfield_times
from ssafuse.schema import ELEMENT_COLUMNS, OBSERVATIONS, SENSORS
from ssafuse.timeutil import parse_epoch

_STATION_KEY = re.compile(r"^ground\.station\.([a-z.]+)\s*\[(\d+)\]$")


def read_in(path) -> dict[str, str]:
    """The ``key = value`` pairs of an Orekit tutorial ``.in`` file (comments dropped;
    indexed keys kept as written, ``ground.station.name [0]`` normalised to no blanks
    before ``[``)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if "=" not in text:
            continue
        key, value = (x.strip() for x in text.split("=", 1))
        key = re.sub(r"\s+\[", " [", key)
        out[key] = value.rstrip(";").strip()
    return out


@dataclass(frozen=True)
class Station:
    """A ground station of an Orekit ``.in`` file (geodetic, WGS-84)."""

    name: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    range_sigma_m: float
    azimuth_sigma_deg: float
    elevation_sigma_deg: float
    range_bias_m: float
    azimuth_bias_deg: float
    elevation_bias_deg: float


def stations(path) -> dict[str, Station]:
    """The ``ground.station.* [i]`` blocks of a ``.in`` file, by station name."""
    blocks: dict[int, dict[str, str]] = {}
    for key, value in read_in(path).items():
        m = _STATION_KEY.match(key)
        if m:
            blocks.setdefault(int(m.group(2)), {})[m.group(1)] = value
    out = {}
    for i in sorted(blocks):
        b = blocks[i]
        st = Station(b["name"].strip(), float(b["latitude"]), float(b["longitude"]),
                     float(b["altitude"]), float(b.get("range.sigma", "nan")),
                     float(b.get("azimuth.sigma", "nan")), float(b.get("elevation.sigma", "nan")),
                     float(b.get("range.bias", "0")), float(b.get("azimuth.bias", "0")),
                     float(b.get("elevation.bias", "0")))
        out[st.name] = st
    return out


def sensors_table(found: dict[str, Station], kind: str, source_uri: str) -> pa.Table:
    """An ``ssafuse.schema.SENSORS`` table of ``found``."""
    rows = [{"sensor_id": s.name, "name": s.name, "latitude_deg": s.latitude_deg,
             "longitude_deg": s.longitude_deg, "altitude_km": s.altitude_m / 1000.0,
             "kind": kind, "owner": None, "source_uri": source_uri} for s in found.values()]
    return pa.Table.from_pylist(rows, schema=SENSORS)


def initial_state(path) -> tuple[int, np.ndarray, np.ndarray]:
    """``(epoch UTC ns, r km, v km/s)`` of the ``orbit.*`` keys (EME2000)."""
    kv = read_in(path)
    epoch = parse_epoch(kv["orbit.date"])
    r = np.array([float(kv[f"orbit.cartesian.p{c}"]) for c in "xyz"]) / 1000.0
    v = np.array([float(kv[f"orbit.cartesian.v{c}"]) for c in "xyz"]) / 1000.0
    return epoch, r, v


def observation_rows(path, *, object_id: int, found: dict[str, Station],
                     range_bias_m: dict[str, float] | None = None,
                     azel_bias_deg: dict[str, tuple[float, float]] | None = None,
                     kind: str = "radar") -> pa.Table:
    """An ``ssafuse.schema.OBSERVATIONS`` table of an ``.aer`` file: one row per line,
    sigmas from the stations' blocks. ``range_bias_m`` / ``azel_bias_deg`` (per station) are
    subtracted from the measured values (Orekit's bias convention: measured = computed +
    bias). Elevations are marked ``AZEL-APPARENT`` (observed, refracted)."""
    rows = []
    text = Path(path).read_text()
    for number, line in enumerate(text.splitlines(), 1):
        f = line.split("#", 1)[0].split()
        if not f:
            continue
        date, mtype, name, values = f[0], f[1], f[2], [float(x) for x in f[3:]]
        st = found[name]
        row = dict.fromkeys(OBSERVATIONS.names)
        row.update(obs_id=f"orekit:{Path(path).name}:{number}", time=parse_epoch(date),
                   sensor_id=name, object_id=object_id, kind=kind, source="orekit-od",
                   source_format="orekit-aer", source_uri=str(path), source_sha256="0" * 64,
                   source_record=number, ingested_at=0, classification="UNCLASSIFIED",
                   marking="UNCLASSIFIED")
        if mtype == "RANGE":
            bias = (range_bias_m or {}).get(name, 0.0)
            row["range_km"] = values[0] - bias / 1000.0
            row["range_sigma_km"] = st.range_sigma_m / 1000.0
        elif mtype == "AZ_EL":
            daz, d_el = (azel_bias_deg or {}).get(name, (0.0, 0.0))
            row["az_deg"] = (values[0] - daz) % 360.0
            row["el_deg"] = values[1] - d_el
            row["angle_sigma_deg"] = max(st.azimuth_sigma_deg, st.elevation_sigma_deg)
            row["frame"] = "AZEL-APPARENT"
        elif mtype == "RANGE_RATE":
            row["range_rate_km_s"] = values[0]
        else:
            raise ValueError(f"{path}:{number}: measurement type {mtype} is not read")
        rows.append(row)
    return observations_table(rows)


def observations_table(rows: list[dict]) -> pa.Table:
    """An ``OBSERVATIONS`` table of row dicts whose times are int ns since 1970 UTC."""
    ints = pa.schema([f.with_type(pa.int64()) if pa.types.is_timestamp(f.type) else f
                      for f in OBSERVATIONS], metadata=OBSERVATIONS.metadata)
    return pa.Table.from_pylist(rows, schema=ints).cast(OBSERVATIONS)


def eme2000_to_teme(epoch_ns: int, r_km, v_km_s) -> tuple[np.ndarray, np.ndarray]:
    """Position and velocity from EME2000 (J2000 mean equator and equinox) to TEME at
    ``epoch_ns`` with Skyfield: the IAU frame bias (J2000 -> GCRS), then Skyfield's GCRS ->
    TEME rotation. The velocity is rotated only (TEME's drift is ~1e-12 rad/s)."""
    m = eme2000_to_teme_matrix(epoch_ns)
    return m @ np.asarray(r_km, float), m @ np.asarray(v_km_s, float)


def eme2000_to_teme_matrix(epoch_ns: int) -> np.ndarray:
    """The rotation EME2000 -> TEME at ``epoch_ns`` (see :func:`eme2000_to_teme`)."""
    from skyfield.framelib import ICRS_to_J2000
    from skyfield.sgp4lib import TEME

    t = skyfield_times(np.array([epoch_ns]))
    m = np.asarray(TEME.rotation_at(t)).reshape(3, 3)
    return m @ np.asarray(ICRS_to_J2000).T


def teme_to_eme2000(epoch_ns: int, r_km) -> np.ndarray:
    """Inverse of :func:`eme2000_to_teme` for a position."""
    return eme2000_to_teme_matrix(epoch_ns).T @ np.asarray(r_km, float)


def keplerian(r_km, v_km_s, mu: float = MU_KM3_S2) -> dict[str, float]:
    """Osculating Keplerian elements of a state: ``a_km, e, i_deg, raan_deg, argp_deg,
    m_deg`` (Vallado, Fundamentals of Astrodynamics, algorithm 9, RV2COE)."""
    r, v = np.asarray(r_km, float), np.asarray(v_km_s, float)
    rn, vn = np.linalg.norm(r), np.linalg.norm(v)
    h = np.cross(r, v)
    hn = np.linalg.norm(h)
    n = np.cross([0.0, 0.0, 1.0], h)
    nn = np.linalg.norm(n)
    e_vec = ((vn**2 - mu / rn) * r - np.dot(r, v) * v) / mu
    e = np.linalg.norm(e_vec)
    a = 1.0 / (2.0 / rn - vn**2 / mu)
    i = math.acos(h[2] / hn)
    raan = math.atan2(n[1], n[0]) if nn > 1e-12 else 0.0
    # argument of perigee and true anomaly measured from the node (or the x axis when
    # equatorial); with e ~ 0 the perigee is arbitrary and the anomaly carries the position
    node = n / nn if nn > 1e-12 else np.array([1.0, 0.0, 0.0])
    w_axis = np.cross(h / hn, node)
    if e > 1e-10:
        argp = math.atan2(np.dot(e_vec, w_axis), np.dot(e_vec, node))
        nu = math.atan2(np.dot(np.cross(e_vec, r), h) / hn, np.dot(e_vec, r))
    else:
        argp = 0.0
        nu = math.atan2(np.dot(r, w_axis), np.dot(r, node))
    ecc_anom = 2.0 * math.atan2(math.sqrt(1 - e) * math.sin(nu / 2),
                                math.sqrt(1 + e) * math.cos(nu / 2))
    mean_anom = ecc_anom - e * math.sin(ecc_anom)
    return {"a_km": float(a), "e": float(e), "i_deg": math.degrees(i),
            "raan_deg": math.degrees(raan) % 360.0, "argp_deg": math.degrees(argp) % 360.0,
            "m_deg": math.degrees(mean_anom) % 360.0}


def start_elements(epoch_ns: int, r_teme_km, v_teme_km_s, *, object_id: int,
                   intl_designator: str | None = None, name: str | None = None) -> dict:
    """A canonical element row (``ELEMENT_COLUMNS``) from a TEME state: its osculating
    Keplerian elements read as SGP4 mean elements (an approximate start, see the module
    docstring); B* and the mean-motion derivatives 0."""
    k = keplerian(r_teme_km, v_teme_km_s)
    n_rev_day = math.sqrt(MU_KM3_S2 / k["a_km"] ** 3) * 86400.0 / (2 * math.pi)
    row = dict.fromkeys(ELEMENT_COLUMNS)
    row.update(object_id=object_id, intl_designator=intl_designator, object_name=name,
               epoch=int(epoch_ns), mean_motion_rev_day=n_rev_day, eccentricity=k["e"],
               inclination_deg=k["i_deg"], raan_deg=k["raan_deg"],
               arg_perigee_deg=k["argp_deg"], mean_anomaly_deg=k["m_deg"], bstar=0.0,
               mean_motion_dot=0.0, mean_motion_ddot=0.0, ephemeris_type=0)
    return row

"""Simulated observations of real element sets, for the orbit-determination tests.

The truth is SGP4 (python-sgp4, WGS72) of a real TLE from ``sample_tles/``; what a sensor
sees is computed with Skyfield's own high-level API (``EarthSatellite.at``,
``wgs84.latlon(...).at``, ``GeographicPosition.rotation_at``), not with ssafuse's geometry:

* the time tag is the reception time ``t`` at the sensor; the satellite is taken at the
  emission time ``t - tau`` and the site at ``t``, ``tau = |d| / c`` iterated (three
  passes, converged to well below a nanosecond), ``d = r_sat(t - tau) - r_site(t)`` in GCRS
  (the satellite's state at ``t - tau`` from its state at ``t``, see :func:`_measure`);
* optical: topocentric RA/Dec of ``d`` in GCRS (= ICRF axes, J2000 to 0.02 arcsec; no
  aberration, no refraction), frame ``J2000``;
* radar: azimuth (from north through east) and geometric elevation of ``d`` in the site's
  WGS84 horizon frame at ``t`` (frame ``AZEL``), one-way range ``|d|`` and one-way range rate
  ``d/|d| . (v_sat(t - tau) - v_site(t))`` with both velocities in GCRS (the site's includes
  the Earth's rotation);
* an observation is kept only while the (geometric) elevation is above ``min_el_deg``;
  illumination is ignored.

Tracks: the arc is scanned every ``scan_s`` seconds for each site; every interval above
``min_el_deg`` is one pass, and the track is ``track_s`` seconds centred on its highest point,
one observation every ``cadence_s`` seconds. :func:`truth_tracks` computes the noise-free
values once (the slow part); :func:`observe` adds seeded Gaussian noise and returns an
``OBSERVATIONS`` table, cheaply, as often as a Monte-Carlo test needs.

Noise convention: each angle's sigma is on the sky, i.e. ``dRA cos(dec)`` and ``dDec`` (and
``dAz cos(el)``, ``dEl``) are each N(0, sigma^2), which is the residual ssafuse's contract
states; the RA (azimuth) noise is drawn as ``n / cos(dec)`` (``n / cos(el)``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise
from math import degrees, pi, radians
from pathlib import Path

import numpy as np
import pyarrow as pa
from sgp4.api import WGS72, Satrec

from ssafuse.schema import OBSERVATIONS, SENSORS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TLES = ROOT / "sample_tles" / "celestrak_active_2025-04-23_first300.tle"
#: strf's COSPAR site list (GPL-3.0: read from ../shared/data, never copied into the repo).
STRF_SITES = "observations/sites/strf_sites.txt"

C_KM_S = 299_792.458
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
_XPDOTP = 1440.0 / (2.0 * pi)  # rev/day per rad/min

ISS = 25544          # ISS (ZARYA): LEO, ~420 km, B* 3.9e-4
GPS = 24876          # NAVSTAR 43 (USA 132): MEO, 2 rev/day
#: Optical sites, one per continent: Europe (Cees Bassa, NL), North America (Ron Lee, CO),
#: Australia (Tony Beresford, Adelaide), Africa (Greg Roberts, Cape Town).
OPTICAL_SITES = ("4171", "1111", "8597", "0433")
#: The radar: Millstone Hill (MIT Haystack, Westford MA), a real space-surveillance radar;
#: coordinates rounded from the published ones. Not in any COSPAR list, so a SENSORS row here.
RADAR_ID = "MHR"
RADAR_ROW = {"sensor_id": RADAR_ID, "name": "Millstone Hill radar (simulated)",
             "latitude_deg": 42.6195, "longitude_deg": -71.4912, "altitude_km": 0.146,
             "kind": "radar", "owner": "SIM", "source_uri": "tests/_od_sim.py"}


# -- element sets ------------------------------------------------------------------------------

def tle(norad: int, path: Path = SAMPLE_TLES) -> tuple[str, str, str]:
    """(name, line 1, line 2) of catalogue number ``norad`` in a 3-line TLE file."""
    lines = path.read_text(encoding="latin-1").splitlines()
    for i in range(1, len(lines) - 1):
        l1, l2 = lines[i], lines[i + 1]
        if l1.startswith("1 ") and l2.startswith("2 ") and int(l1[2:7]) == norad:
            return lines[i - 1].strip(), l1, l2
    raise KeyError(f"{norad} is not in {path}")


def truth_satrec(norad: int) -> Satrec:
    _, l1, l2 = tle(norad)
    return Satrec.twoline2rv(l1, l2, WGS72)


def epoch_ns(sat: Satrec) -> int:
    """The element set's epoch, UTC ns since 1970 (rounded to the microsecond, as the TLE
    epoch field's resolution is coarser than that)."""
    days = (sat.jdsatepoch - 2440587.5) + sat.jdsatepochF
    return round(days * 86400e6) * 1000


def element_row(sat: Satrec, *, source: str = "sim") -> dict:
    """A canonical ELEMENTS row (the element columns plus provenance/marking) of a Satrec."""
    return {
        "object_id": sat.satnum, "intl_designator": None, "object_name": None,
        "epoch": epoch_ns(sat), "mean_motion_rev_day": sat.no_kozai * _XPDOTP,
        "eccentricity": sat.ecco, "inclination_deg": degrees(sat.inclo),
        "raan_deg": degrees(sat.nodeo), "arg_perigee_deg": degrees(sat.argpo),
        "mean_anomaly_deg": degrees(sat.mo), "bstar": sat.bstar,
        "mean_motion_dot": sat.ndot * (1036800.0 / pi),
        "mean_motion_ddot": sat.nddot * (2985984000.0 / 2.0 / pi),
        "ephemeris_type": 0, "element_set_no": None, "rev_at_epoch": None,
        "object_type": None, "rcs_size": None, "country": None,
        "source": source, "source_format": "sim", "source_uri": "tests/_od_sim.py",
        "source_sha256": "0" * 64, "source_record": 1, "ingested_at": 0,
        "classification": "UNCLASSIFIED", "releasable_to": None, "marking": "UNCLASSIFIED"}


def satrec_from_row(row: dict) -> Satrec:
    """python-sgp4 Satrec of an element row (WGS72, improved mode, as a TLE is read)."""
    ep = row["epoch"]
    ep = int(ep.value if hasattr(ep, "value") else ep)
    sat = Satrec()
    sat.sgp4init(WGS72, "i", int(row["object_id"]) % 100000,
                 ep / NS_PER_DAY + 2440587.5 - 2433281.5, float(row["bstar"]),
                 float(row.get("mean_motion_dot") or 0.0) / (1036800.0 / pi),
                 float(row.get("mean_motion_ddot") or 0.0) / (2985984000.0 / 2.0 / pi),
                 float(row["eccentricity"]), radians(row["arg_perigee_deg"]),
                 radians(row["inclination_deg"]), radians(row["mean_anomaly_deg"]),
                 float(row["mean_motion_rev_day"]) / _XPDOTP, radians(row["raan_deg"]))
    return sat


def perturbed_row(sat: Satrec, rng: np.random.Generator, *, d_anomaly_deg: float,
                  d_raan_deg: float, d_mean_motion_rev_day: float) -> dict:
    """The truth's element row with mean anomaly, RAAN and mean motion each shifted by a
    random sign times the given amount (a start ``|d_anomaly| * a`` km or so off in track)."""
    row = element_row(sat)
    s = rng.choice([-1.0, 1.0], size=3)
    row["mean_anomaly_deg"] = (row["mean_anomaly_deg"] + s[0] * d_anomaly_deg) % 360.0
    row["raan_deg"] = (row["raan_deg"] + s[1] * d_raan_deg) % 360.0
    row["mean_motion_rev_day"] += s[2] * d_mean_motion_rev_day
    return row


def sgp4_teme(sat: Satrec, times_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TEME position (km) and velocity (km/s), (n, 3), straight from python-sgp4."""
    t = np.asarray(times_ns, dtype=np.int64)
    days, rem = np.divmod(t, NS_PER_DAY)
    jd = days + 2440587.5
    fr = rem / NS_PER_DAY
    err, r, v = sat.sgp4_array(jd.astype(float), fr)
    if np.any(err):
        raise RuntimeError(f"SGP4 error codes {set(err.tolist())}")
    return r, v


# -- sensors -----------------------------------------------------------------------------------

def sensors_table(site_list: Path | None, optical: tuple[str, ...] = OPTICAL_SITES, *,
                  radar: bool = True) -> pa.Table:
    """SENSORS rows of the chosen COSPAR sites (read with ssafuse.sensors.read_sensors) plus
    the radar's."""
    parts = []
    if optical:
        from ssafuse.sensors import read_sensors

        sites = read_sensors(site_list)
        ids = sites["sensor_id"].to_pylist()
        missing = [s for s in optical if s not in ids]
        if missing:
            raise KeyError(f"sites {missing} are not in {site_list}")
        parts.append(sites.take(pa.array([ids.index(s) for s in optical], pa.int64())))
    if radar:
        parts.append(pa.Table.from_pylist([RADAR_ROW], schema=SENSORS))
    return pa.concat_tables([p.cast(SENSORS) for p in parts])


# -- time --------------------------------------------------------------------------------------

_TS = None


def timescale():
    global _TS
    if _TS is None:
        from skyfield.api import load

        _TS = load.timescale(builtin=True)
    return _TS


def sky_times(times_ns: np.ndarray):
    """Skyfield Time of UTC ns since 1970: calendar date and seconds of that day (so leap
    seconds are honoured)."""
    t = np.atleast_1d(np.asarray(times_ns, dtype=np.int64))
    days, rem = np.divmod(t, NS_PER_DAY)
    # 1970-01-01 + days: Skyfield normalises an out-of-range day of month.
    return timescale().utc(1970, 1, 1 + days, 0, 0, rem / 1e9)


# -- truth -------------------------------------------------------------------------------------

@dataclass
class Tracks:
    """Noise-free measurements of one object: one entry per observation."""
    object_id: int
    time_ns: np.ndarray       # int64 UTC ns, reception time
    sensor_id: np.ndarray     # str
    kind: np.ndarray          # "optical" | "radar"
    track: np.ndarray         # int: which pass
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    az_deg: np.ndarray
    el_deg: np.ndarray
    range_km: np.ndarray
    range_rate_km_s: np.ndarray

    @property
    def n(self) -> int:
        return len(self.time_ns)

    def subset(self, mask) -> Tracks:
        mask = np.asarray(mask)
        return replace(self, **{k: getattr(self, k)[mask] for k in (
            "time_ns", "sensor_id", "kind", "track", "ra_deg", "dec_deg", "az_deg", "el_deg",
            "range_km", "range_rate_km_s")})

    def concat(self, other: Tracks) -> Tracks:
        return replace(self, **{k: np.concatenate([getattr(self, k), getattr(other, k)])
                                for k in ("time_ns", "sensor_id", "kind", "track", "ra_deg",
                                          "dec_deg", "az_deg", "el_deg", "range_km",
                                          "range_rate_km_s")})


MU_KM3_S2 = 398600.4418


def _measure(sat_state, site_state, rotation):
    """Light-time-corrected topocentric geometry at reception times ``t``.

    ``sat_state``: the satellite's GCRS (position km, velocity km/s), each (3, n), at ``t``
    (Skyfield ``EarthSatellite.at``); ``site_state``: the same of the site
    (``GeographicPosition.at``); ``rotation``: (3, 3, n) GCRS -> site horizon (x north,
    y east, z up; ``GeographicPosition.rotation_at``). The satellite's state at the emission
    time ``t - tau`` is the Taylor expansion ``r - tau v + tau^2/2 a``, ``v - tau a`` with the
    two-body ``a``: the terms left out are below 1e-4 m and 1e-4 m/s for tau < 0.15 s (LEO to
    MEO), and one Skyfield evaluation at ``t`` serves every light-time iteration."""
    r, v = sat_state
    r_site, v_site = site_state
    acc = -MU_KM3_S2 * r / np.sum(r * r, axis=0) ** 1.5
    tau = np.zeros(r.shape[1])
    for _ in range(3):
        re_ = r - tau * v + 0.5 * tau * tau * acc
        d = re_ - r_site
        rng = np.sqrt(np.sum(d * d, axis=0))
        tau = rng / C_KM_S
    re_ = r - tau * v + 0.5 * tau * tau * acc
    ve = v - tau * acc
    d = re_ - r_site
    rng = np.sqrt(np.sum(d * d, axis=0))
    u = d / rng
    ra = np.degrees(np.arctan2(u[1], u[0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(u[2], -1.0, 1.0)))
    horizon = np.einsum("ijn,jn->in", rotation, d)
    az = np.degrees(np.arctan2(horizon[1], horizon[0])) % 360.0
    el = np.degrees(np.arcsin(np.clip(horizon[2] / rng, -1.0, 1.0)))
    rr = np.sum(u * (ve - v_site), axis=0)
    return ra, dec, az, el, rng, rr


def _states(sky_sat, sites, times_ns):
    """One Skyfield Time for all ``times_ns`` (its nutation is computed once and cached):
    the satellite's GCRS state, and each site's state and horizon rotation."""
    t = sky_times(times_ns)
    there = sky_sat.at(t)
    sat_state = (there.position.km, there.velocity.km_per_s)
    per_site = []
    for site in sites:
        here = site.at(t)
        per_site.append(((here.position.km, here.velocity.km_per_s), site.rotation_at(t)))
    return sat_state, per_site


def _take(state, idx):
    return tuple(x[..., idx] for x in state)


def truth_tracks(sat: Satrec, sensors: pa.Table, *, start_ns: int, arc_days: float,
                 sensor_ids: tuple[str, ...] | None = None, track_s: float = 180.0,
                 cadence_s: float = 20.0, min_el_deg: float = 10.0, scan_s: float = 30.0,
                 max_tracks_per_site: int | None = None) -> Tracks:
    """Noise-free measurements of ``sat`` from every sensor in ``sensors`` (or those named),
    over ``[start_ns, start_ns + arc_days]``; the sensor's ``kind`` says optical or radar.
    ``max_tracks_per_site`` keeps that many passes per site, spread evenly over the arc."""
    from skyfield.api import EarthSatellite, wgs84

    sky_sat = EarthSatellite.from_satrec(sat, timescale())
    rows = [r for r in sensors.to_pylist()
            if sensor_ids is None or r["sensor_id"] in sensor_ids]
    sites = [wgs84.latlon(r["latitude_deg"], r["longitude_deg"],
                          elevation_m=r["altitude_km"] * 1000.0) for r in rows]
    end_ns = start_ns + int(arc_days * NS_PER_DAY)
    grid = np.arange(start_ns, end_ns, int(scan_s * NS_PER_S), dtype=np.int64)
    sat_state, per_site = _states(sky_sat, sites, grid)
    wanted = []                                  # (site index, track times)
    for k, (site_state, rot) in enumerate(per_site):
        el = _measure(sat_state, site_state, rot)[3]
        up = el > min_el_deg
        edges = np.flatnonzero(np.diff(up.astype(np.int8)))
        bounds = np.concatenate([[0], edges + 1, [len(up)]])
        passes = [(a, b) for a, b in pairwise(bounds) if up[a]]
        if max_tracks_per_site is not None and len(passes) > max_tracks_per_site:
            pick = np.unique(np.round(np.linspace(0, len(passes) - 1,
                                                  max_tracks_per_site)).astype(int))
            passes = [passes[i] for i in pick]
        for a, b in passes:
            top = grid[a + int(np.argmax(el[a:b]))]
            lo = max(grid[a], top - int(track_s / 2 * NS_PER_S))
            hi = min(grid[b - 1], top + int(track_s / 2 * NS_PER_S))
            wanted.append((k, np.arange(lo, hi + 1, int(cadence_s * NS_PER_S),
                                        dtype=np.int64)))
    if not wanted:
        raise ValueError("no pass above the elevation limit")
    times = np.concatenate([w[1] for w in wanted])
    sat_state, per_site = _states(sky_sat, sites, times)
    out = []
    at = 0
    for track_no, (k, tt) in enumerate(wanted):
        idx = np.arange(at, at + len(tt))
        at += len(tt)
        site_state, rot = per_site[k]
        ra, dec, az, e, rng, rr = _measure(_take(sat_state, idx), _take(site_state, idx),
                                           rot[..., idx])
        keep = e > min_el_deg
        n = int(keep.sum())
        if n == 0:
            continue
        kind = "radar" if rows[k]["kind"] == "radar" else "optical"
        out.append(Tracks(sat.satnum, tt[keep], np.full(n, rows[k]["sensor_id"], object),
                          np.full(n, kind, object), np.full(n, track_no), ra[keep],
                          dec[keep], az[keep], e[keep], rng[keep], rr[keep]))
    tracks = out[0]
    for more in out[1:]:
        tracks = tracks.concat(more)
    return tracks.subset(np.argsort(tracks.time_ns, kind="stable"))


# -- noisy observations ------------------------------------------------------------------------

@dataclass(frozen=True)
class Noise:
    """1-sigma measurement noise (what is drawn, and what is written into the table)."""
    optical_arcsec: float = 2.0
    radar_angle_deg: float = 0.02
    range_km: float = 0.015
    range_rate_km_s: float = 0.002


def observe(tracks: Tracks, noise: Noise, seed: int, *, object_id: int | None = None,
            tag: str = "sim") -> pa.Table:
    """An OBSERVATIONS table of ``tracks`` plus Gaussian noise drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    n = tracks.n
    optical = tracks.kind == "optical"
    radar = ~optical
    z = rng.standard_normal((n, 4))
    sig_o = noise.optical_arcsec / 3600.0
    sig_r = noise.radar_angle_deg
    ra = np.where(optical, (tracks.ra_deg + z[:, 0] * sig_o / np.cos(np.radians(
        tracks.dec_deg))) % 360.0, np.nan)
    dec = np.where(optical, tracks.dec_deg + z[:, 1] * sig_o, np.nan)
    az = np.where(radar, (tracks.az_deg + z[:, 0] * sig_r / np.cos(np.radians(
        tracks.el_deg))) % 360.0, np.nan)
    el = np.where(radar, tracks.el_deg + z[:, 1] * sig_r, np.nan)
    rg = np.where(radar, tracks.range_km + z[:, 2] * noise.range_km, np.nan)
    rr = np.where(radar, tracks.range_rate_km_s + z[:, 3] * noise.range_rate_km_s, np.nan)

    def col(values, mask):
        return pa.array(values, pa.float64(), mask=~mask)

    oid = tracks.object_id if object_id is None else object_id
    cols = {
        "obs_id": pa.array([f"{tag}-{seed}-{i:05d}" for i in range(n)], pa.string()),
        "time": pa.array(tracks.time_ns, pa.int64()).cast(OBSERVATIONS.field("time").type),
        "sensor_id": pa.array(tracks.sensor_id.tolist(), pa.string()),
        "object_id": pa.array([oid] * n, pa.int64()),
        "intl_designator": pa.nulls(n, pa.string()),
        "kind": pa.array(tracks.kind.tolist(), pa.string()),
        "ra_deg": col(ra, optical), "dec_deg": col(dec, optical),
        "az_deg": col(az, radar), "el_deg": col(el, radar),
        "range_km": col(rg, radar), "range_rate_km_s": col(rr, radar),
        "angle_sigma_deg": pa.array(np.where(optical, sig_o, sig_r), pa.float64()),
        "range_sigma_km": col(np.full(n, noise.range_km), radar),
        "range_rate_sigma_km_s": col(np.full(n, noise.range_rate_km_s), radar),
        "time_sigma_s": pa.nulls(n, pa.float64()),
        "magnitude": pa.nulls(n, pa.float64()),
        "magnitude_sigma": pa.nulls(n, pa.float64()),
        "frame": pa.array(np.where(optical, "J2000", "AZEL").tolist(), pa.string()),
        "station_status": pa.nulls(n, pa.string()),
        "behaviour": pa.nulls(n, pa.string()),
        "flash_period_s": pa.nulls(n, pa.float64()),
        "uct": pa.array([False] * n, pa.bool_()),
        "source": pa.array(["sim"] * n, pa.string()),
        "source_format": pa.array(["sim"] * n, pa.string()),
        "source_uri": pa.array([f"sim://{tag}/seed-{seed}"] * n, pa.string()),
        "source_sha256": pa.array(["0" * 64] * n, pa.string()),
        "source_record": pa.array(np.arange(1, n + 1), pa.int64()),
        "ingested_at": pa.array(np.zeros(n, np.int64), pa.int64()).cast(
            OBSERVATIONS.field("ingested_at").type),
        "classification": pa.array(["UNCLASSIFIED"] * n, pa.string()),
        "releasable_to": pa.nulls(n, pa.list_(pa.string())),
        "marking": pa.array(["UNCLASSIFIED"] * n, pa.string()),
    }
    return pa.Table.from_pydict(cols, schema=OBSERVATIONS)

"""Orbit determination on real optical observations, checked against answers that do not come
from ssafuse: the element sets their observers published, and a precise (SP3) orbit.

1. Amateur IOD observations. Scott Campbell's SATFIT published one TLE per object, fitted to
   the IOD observations in the same file. ssafuse ingests those observations with its own
   reader, starts from an older element set of the object (satfit/tle_history; the
   published one where no older set is near), fits, and compares on the observations the
   fit used: the fit's residuals must be no larger than the published set's (it minimises
   them; the published set is a feasible answer), and the two orbits must agree along the
   arc within what the residuals allow. Uniform weights (SATFIT's) and the IOD lines' stated
   sigmas are both tried. TruSat's backend snapshot has no fittable arc (3-4 observations
   within 30 s per object): those tracks must be refused.
2. UT-Austin ASTRIANet RA/Dec tracks of GPS satellites of 2020-09-17 (ten minutes each), and
   CODE's final precise orbit of that day as truth. ssafuse starts from the newest public
   TLE before each track, fits the track (with and without the start TLE as an a-priori),
   and the position errors of start and fit are measured against the SP3, over the track and
   as late as the SP3 goes.

Expected values come from the published element sets and the SP3, never from ssafuse's
output. Every table is printed (``pytest -s``).
"""

from __future__ import annotations

import glob
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from _obs_helpers import elements_from_tle_text
from _sp3 import lagrange, read_sp3
from conftest import shared
from sgp4.api import WGS72, Satrec

from ssafuse import od
from ssafuse.records import read_file
from ssafuse.schema import SENSORS
from ssafuse.sensors import merge, read_sensors

ARCSEC = math.pi / 180.0 / 3600.0
NS_PER_DAY = 86400 * 10**9


def _ns(t) -> int:
    return int(t.value) if hasattr(t, "value") else int(t)


def _satrec(row: dict) -> Satrec:
    """A python-sgp4 Satrec of a canonical element row (the published / start set)."""
    from math import pi, radians
    sat = Satrec()
    jd = _ns(row["epoch"]) / NS_PER_DAY + 2440587.5
    sat.sgp4init(WGS72, "i", int(row["object_id"]), jd - 2433281.5, row["bstar"],
                 row["mean_motion_dot"] * pi / 1036800.0 if row["mean_motion_dot"] else 0.0,
                 0.0, row["eccentricity"], radians(row["arg_perigee_deg"]),
                 radians(row["inclination_deg"]), radians(row["mean_anomaly_deg"]),
                 row["mean_motion_rev_day"] * 2 * pi / 1440.0, radians(row["raan_deg"]))
    return sat


def _teme(sat: Satrec, t_ns: np.ndarray) -> np.ndarray:
    jd = np.asarray(t_ns, np.int64) // NS_PER_DAY
    fr = (np.asarray(t_ns, np.int64) - jd * NS_PER_DAY) / NS_PER_DAY
    e, r, _ = sat.sgp4_array(jd + 2440587.5, fr)
    r = np.asarray(r, float)
    r[np.asarray(e) != 0] = np.nan
    return r


def _chi_rms(res_arcsec: np.ndarray, sigma_arcsec: np.ndarray) -> float:
    """Weighted RMS sqrt(mean((r / sigma)^2)) over the angle components measured."""
    z = res_arcsec / sigma_arcsec[:, None]
    z = z[np.isfinite(z)]
    return float(np.sqrt(np.mean(z * z)))


def _angle_sigma_arcsec(obs: pa.Table, default_deg: float) -> np.ndarray:
    """Each observation's stated angle sigma (arcsec), the run's default where none: the
    rule ssafuse.od documents (the record's own sigma, else the default of its kind)."""
    s = obs["angle_sigma_deg"].to_numpy(zero_copy_only=False).astype(float)
    return np.where(s > 0, s, default_deg) * 3600.0


# --------------------------------------------------------------------------------------------
# 1. satfit: our fit against SATFIT's published element sets

SATFIT_SAMPLE = 20            # objects fitted
SATFIT_MIN_OBS = 15
#: Observations used per object: those within this window around the published epoch
#: (days before, days after). The files hold each object's observations of up to three
#: years; SATFIT's published sets (mostly March 2010) sit within a day or three of the last
#: observation, and two weeks before it is the arc an amateur fit of a LEO object spans.
WINDOW_DAYS = (14.0, 3.0)
#: Oldest start set taken from tle_history: older than the published epoch by at least a
#: day (so that the fit has something to correct), at most this many days.
START_MAX_AGE_DAYS = 30.0


#: The two weightings tried. "stated": each observation weighted by the uncertainty its IOD
#: line states (what ssafuse.od does by default). "uniform": every observation alike (the
#: plain RMS is what the published residuals are judged by; SATFIT's own weights are not
#: documented here); the IOD sigmas are left out and every angle gets UNIFORM_SIGMA_DEG.
#: With uniform weights the least-squares optimum
#: minimises the plain RMS, so ours must not exceed the published set's on the same
#: observations; with stated sigmas it minimises the weighted RMS, compared likewise.
UNIFORM_SIGMA_DEG = 0.1


def _uniform(obs: pa.Table) -> pa.Table:
    i = obs.schema.get_field_index("angle_sigma_deg")
    return obs.set_column(i, obs.schema.field(i), pa.nulls(obs.num_rows, pa.float64()))


@pytest.fixture(scope="module")
def satfit_runs():
    sats = sorted(glob.glob(str(shared("observations/satfit/sats")) + "/*.txt"))
    hist = sorted(glob.glob(str(shared("observations/satfit/tle_history")) + "/*.txt"))
    obs = pa.concat_tables([read_file(p, source="satfit", format="iod-lenient").elements
                            for p in sats])
    published = {r["object_id"]: r for r in
                 elements_from_tle_text(sats, "satfit-published").to_pylist()}
    history = elements_from_tle_text(hist, "satfit-history").to_pylist()
    sensors = merge(read_sensors(shared("observations/sites/scottcampbell-satfit_STATIONS.IN")),
                    read_sensors(shared("observations/sites/strf_sites.txt")))
    known = list(set(sensors["sensor_id"].to_pylist()))
    oid = obs["object_id"].to_numpy(zero_copy_only=False)
    t = obs["time"].cast(pa.int64()).to_numpy()
    site_known = np.isin(np.array(obs["sensor_id"].to_pylist(), dtype=object), known)
    chosen = []
    for object_id in sorted(published):
        epoch = _ns(published[object_id]["epoch"])
        mask = ((oid == object_id) & site_known
                & (t >= epoch - WINDOW_DAYS[0] * NS_PER_DAY)
                & (t <= epoch + WINDOW_DAYS[1] * NS_PER_DAY))
        if mask.sum() >= SATFIT_MIN_OBS:
            chosen.append((object_id, obs.filter(pa.array(mask))))
        if len(chosen) == SATFIT_SAMPLE:
            break
    arc = sum(WINDOW_DAYS) + 1.0
    variants = {"stated": (od.OdSettings(arc_days=arc), lambda o: o),
                "uniform": (od.OdSettings(arc_days=arc,
                                          sigmas={"optical": UNIFORM_SIGMA_DEG}), _uniform)}
    runs = {v: [] for v in variants}
    for object_id, o in chosen:
        pub = published[object_id]
        epoch = _ns(pub["epoch"])
        older = [h for h in history if h["object_id"] == object_id
                 and epoch - START_MAX_AGE_DAYS * NS_PER_DAY <= _ns(h["epoch"])
                 <= epoch - NS_PER_DAY]
        start = max(older, key=lambda h: _ns(h["epoch"])) if older else pub
        for v, (settings, weigh) in variants.items():
            ow = weigh(o)
            runs[v].append({"object_id": object_id, "obs": ow, "published": pub,
                            "start": start,
                            "start_age_days": (epoch - _ns(start["epoch"])) / NS_PER_DAY,
                            "fit": od.fit(ow, start, sensors, settings=settings)})
    return runs, sensors


def _line_of_sight_split(used: pa.Table, sensors: pa.Table, r_a: np.ndarray, r_b: np.ndarray):
    """Range (site to object b, km) and the part of r_a - r_b across that line of sight (km),
    with the site from Skyfield's WGS84 model and frames (independent of ssafuse.od)."""
    from skyfield.api import load, wgs84
    from skyfield.framelib import itrs
    from skyfield.sgp4lib import TEME
    ts = load.timescale(builtin=True)
    sites = {s["sensor_id"]: s for s in sensors.to_pylist()}
    t_ns = used["time"].cast(pa.int64()).to_numpy()
    secs = (t_ns - t_ns[0]) / 1e9
    t0 = used["time"][0].as_py()
    t = ts.utc(t0.year, t0.month, t0.day, t0.hour, t0.minute,
               t0.second + t0.microsecond / 1e6 + secs)
    site_itrs = np.array([wgs84.latlon(sites[s]["latitude_deg"], sites[s]["longitude_deg"],
                                       sites[s]["altitude_km"] * 1e3).itrs_xyz.km
                          for s in used["sensor_id"].to_pylist()])
    rot = np.einsum("ijn,jkn->nik", TEME.rotation_at(t),
                    np.transpose(itrs.rotation_at(t), (1, 0, 2)))       # ITRS -> TEME
    site = np.einsum("nij,nj->ni", rot, site_itrs)
    los = r_b - site
    rng = np.linalg.norm(los, axis=1)
    u = los / rng[:, None]
    d = r_a - r_b
    across = d - np.einsum("ij,ij->i", d, u)[:, None] * u
    return rng, np.linalg.norm(across, axis=1)


def _satfit_table(runs, sensors, weighted: bool):
    """Print the comparison of every run; return (converged, matched, rows)."""
    unit = "weighted RMS (r/sigma)" if weighted else "RMS (arcsec)"
    print(f"\n{'object':>6} {'n':>3} {'used':>4} {'start':>6} {'status':>10} {'start':>8} "
          f"{'pub':>8} {'ours':>8} {'dr med':>7} {'dr max':>7} {'x-los':>7} {'bound':>7}"
          f"   [{unit} of start / published / ours on the observations ours used; "
          "km: |ours - published| over them, across the line of sight, its bound]")
    converged = matched = 0
    rows = []
    for run in runs:
        f = run["fit"]
        line = (f"{run['object_id']:>6} {run['obs'].num_rows:>3} "
                f"{f.n_used if f.status == 'converged' else 0:>4} "
                f"{run['start_age_days']:>5.1f}d {f.status:>10}")
        if f.status != "converged":
            print(line + f"  {f.reason}")
            continue
        converged += 1
        used = run["obs"].filter(pa.array(f.used))
        res = {k: od.residuals(used, sensors, row) for k, row in
               (("start", run["start"]), ("pub", run["published"]), ("ours", f.elements))}
        # the fit reports the RMS of the residuals it kept; residuals() must agree with it
        assert res["ours"].rms_angle_arcsec == pytest.approx(f.rms_angle_arcsec, rel=1e-6)
        if weighted:
            sigma = _angle_sigma_arcsec(used, od.DEFAULT_SIGMAS["optical"])
            m = {k: _chi_rms(r.angles_arcsec, sigma) for k, r in res.items()}
        else:
            m = {k: r.rms_angle_arcsec for k, r in res.items()}
        ok = m["ours"] <= m["pub"] * (1 + 1e-3) + 1e-6
        matched += ok
        # Orbits agree over the arc. At each observation the two predicted directions differ
        # by res_pub - res_ours (a 2-vector), so across the line of sight the positions
        # differ by that angle times the range; over the arc, by the triangle inequality,
        # RMS <= sqrt(2) (rms_ours + rms_pub) * max range (rms per angle component, plain).
        # The 3-D difference also has the along-sight part, which angles fix only through
        # the dynamics of a multi-day arc: allowed ten times that (a heuristic, printed).
        t = used["time"].cast(pa.int64()).to_numpy()
        r_ours, r_pub = _teme(f.satrec, t), _teme(_satrec(run["published"]), t)
        # the fit's Satrec is its element row (our own Satrec of the row, to 1 m)
        assert np.nanmax(np.linalg.norm(_teme(_satrec(f.elements), t) - r_ours, axis=1)) < 1e-3
        dr = np.linalg.norm(r_ours - r_pub, axis=1)
        rng, across = _line_of_sight_split(used, sensors, r_ours, r_pub)
        bound = (math.sqrt(2) * (res["ours"].rms_angle_arcsec + res["pub"].rms_angle_arcsec)
                 * ARCSEC * np.max(rng))
        across_rms = float(np.sqrt(np.mean(across ** 2)))
        print(line + f" {m['start']:>8.3g} {m['pub']:>8.3g} {m['ours']:>8.3g} "
              f"{np.median(dr):>7.2f} {dr.max():>7.2f} {across_rms:>7.2f} {bound:>7.2f}"
              + ("" if ok else "  <- published better"))
        rows.append((run["object_id"], across_rms, bound, float(np.median(dr))))
    return converged, matched, rows


def _check_satfit(runs, sensors, weighted):
    assert len(runs) == SATFIT_SAMPLE, "fewer satfit objects with enough observations"
    converged, matched, rows = _satfit_table(runs, sensors, weighted)
    print(f"converged {converged}/{len(runs)}; ours <= published on {matched}/{converged}")
    for object_id, across_rms, bound, dr_median in rows:
        assert across_rms <= bound * 1.01, object_id
        assert dr_median <= 10 * bound, object_id
    # every fit should converge from a start a few days old; allow a hard case or two
    assert converged >= 0.85 * len(runs)
    # the published set is a feasible answer: a least-squares optimum is no worse; a fit
    # that stops in another local minimum may be, rarely
    assert matched >= 0.9 * converged


def test_satfit_uniform_weights_match_or_beat_published_rms(satfit_runs):
    runs, sensors = satfit_runs
    print(f"\nsatfit, uniform weights ({UNIFORM_SIGMA_DEG} deg): {len(runs['uniform'])} "
          f"objects with >= {SATFIT_MIN_OBS} observations within -{WINDOW_DAYS[0]:.0f}/"
          f"+{WINDOW_DAYS[1]:.0f} d of the published epoch")
    _check_satfit(runs["uniform"], sensors, weighted=False)


def test_satfit_stated_sigmas_match_or_beat_published_weighted_rms(satfit_runs):
    runs, sensors = satfit_runs
    print("\nsatfit, each observation weighted by its stated IOD uncertainty")
    _check_satfit(runs["stated"], sensors, weighted=True)


# --------------------------------------------------------------------------------------------
# 1b. TruSat: the backend's IOD snapshot holds no arc an orbit can be fitted to. Its site-4172
# objects with an element set (SOURCES.md: 2019-08-24..27) have 3-4 observations within 30
# seconds each; a fitter must refuse them, never return an element set from half a minute.

def test_trusat_half_minute_tracks_are_refused():
    o = read_file(shared("observations/trusat_backend/snap_test_database_iod_16694268.txt"),
                  source="trusat").elements
    els = {r["object_id"]: r for r in elements_from_tle_text(
        [shared("observations/trusat_backend/test_tle_trusat_all_16694268.tle")],
        "trusat").to_pylist()}
    sensors = read_sensors(shared("observations/sites/strf_sites.txt"))
    o = o.filter(pc.equal(o["sensor_id"], "4172"))
    tried = 0
    print("\ntrusat site 4172, 2019-08-27: object, observations, span (s), status "
          "(default settings / min_obs lowered to the count)")
    for object_id in sorted(set(o["object_id"].to_pylist()) & set(els)):
        track = o.filter(pc.equal(o["object_id"], object_id))
        t = track["time"].cast(pa.int64()).to_numpy()
        span = (t.max() - t.min()) / 1e9
        if track.num_rows < 3 or span > 60:
            continue
        tried += 1
        default = od.fit(track, els[object_id], sensors)
        lowered = od.fit(track, els[object_id], sensors,
                         settings=od.OdSettings(min_obs=track.num_rows))
        print(f"{object_id:>6} {track.num_rows:>2} {span:>5.0f}  {default.status} / "
              f"{lowered.status} ({lowered.reason})")
        assert default.status == "too-few"
        assert lowered.status != "converged" and lowered.elements is None
    assert tried >= 8


# --------------------------------------------------------------------------------------------
# 2. GPS: ASTRIANet tracks of 2020-09-17 against CODE's final orbit

GPS_DIR = "observations/optical_gps_2020"
#: NORAD number -> (track file, PRN in the SP3). PRNs from gnss_2018_2021/gnss-NORAD-PRN.t
#: (G16 = 27663 = 2003-005A, G28 = 26407 = 2000-040A), the designators from the file names.
GPS_TRACKS = {27663: ("20200917_041957_001_03005A_UTA-ASTRIANet-02.tdm", "G16"),
              26407: ("20200917_070406_001_00040A_UTA-ASTRIANet-02.json", "G28")}
SITE = "UTA-ASTRIANet-02"
#: The a-priori tried: the start TLE's position taken as good to this (km, 1 sigma). GPS
#: TLEs a few hours old are good to a few km (SOURCES: the start sets here are 3.2 km off).
PRIOR_KM = 2.0

#: The orbdetpy JSON track (a list of {Time, Station, RightAscension, Declination}, angles in
#: radians, EME2000) described for ssafuse's generic reader: the observations go through
#: ssafuse's own ingest path. The "Station" key holds the object's designator, not the site,
#: so the site is the constant the provenance names.
_ORBDETPY_TOML = f"""
name = "orbdetpy-radec"
description = "orbdetpy JSON RA/Dec track (Time, Station, RightAscension, Declination; rad)"
table = "observations"
container = {{ kind = "json" }}
identify = {{ keys = ["Time", "Station", "RightAscension", "Declination"] }}

[fields]
time = {{ key = "Time", time = "iso8601" }}
sensor_id = {{ value = "{SITE}" }}
kind = {{ value = "optical" }}
ra_deg = {{ key = "RightAscension", unit = "rad" }}
dec_deg = {{ key = "Declination", unit = "rad" }}
frame = {{ value = "J2000" }}
"""


def _astria_site_and_sigma():
    """The site (SENSORS table) and the angle sigma (deg) from ASTRIA_od.json, the
    orbdetpy OD set-up of these tracks (geodetic latitude / longitude in rad, altitude m;
    measurement errors in rad)."""
    cfg = json.loads(shared(f"{GPS_DIR}/ASTRIA_od.json").read_text())
    st = cfg["Stations"]["UTA"]
    sensors = pa.Table.from_pylist([{
        "sensor_id": SITE, "name": "UT-Austin ASTRIANet-02",
        "latitude_deg": math.degrees(st["Latitude"]),
        "longitude_deg": math.degrees(st["Longitude"]),
        "altitude_km": st["Altitude"] / 1e3, "kind": "optical", "owner": "UTA",
        "source_uri": str(shared(f"{GPS_DIR}/ASTRIA_od.json"))}], schema=SENSORS)
    sigma = cfg["Measurements"]["RightAscension"]["Error"][0]
    assert sigma == cfg["Measurements"]["Declination"]["Error"][0]
    return sensors, math.degrees(sigma)


class _Truth:
    """CODE's final orbit (SP3, GPS time, IGb14 ~ ITRF) as TEME positions at UTC times:
    interpolated in the terrestrial frame (Lagrange, 10 nodes), rotated ITRS -> GCRS -> TEME
    by Skyfield (no polar motion: under 15 m at GPS altitude, far below TLE errors)."""

    def __init__(self):
        from skyfield.api import load
        self.ts = load.timescale(builtin=True)
        self.sp3 = read_sp3(shared(f"{GPS_DIR}/COD21234.EPH_M"))
        assert self.sp3.time_system == "GPS"
        self.day0 = self.ts.utc(2020, 9, 17)
        self.day0_ns = 1600300800 * 10**9                     # 2020-09-17T00:00Z
        t = self.sp3.times(self.ts)
        self.node_s = (t.whole - self.day0.whole) * 86400.0 + (
            t.tai_fraction - self.day0.tai_fraction) * 86400.0   # UTC s past midnight
        self.node_ns = self.day0_ns + np.round(self.node_s * 1e9).astype(np.int64)

    def teme(self, prn: str, t_ns: np.ndarray) -> np.ndarray:
        from skyfield.framelib import itrs
        from skyfield.sgp4lib import TEME
        secs = (np.asarray(t_ns, np.int64) - self.day0_ns) / 1e9
        r_itrs = lagrange(self.node_s, self.sp3.positions[prn], secs)
        t = self.ts.utc(2020, 9, 17, 0, 0, secs)
        rot = np.einsum("ijn,jkn->nik", TEME.rotation_at(t),
                        np.transpose(itrs.rotation_at(t), (1, 0, 2)))
        return np.einsum("nij,nj->ni", rot, r_itrs)


@pytest.fixture(scope="module")
def gps_runs(tmp_path_factory):
    fmt_dir = tmp_path_factory.mktemp("formats")
    (fmt_dir / "orbdetpy.toml").write_text(_ORBDETPY_TOML)
    sensors, sigma_deg = _astria_site_and_sigma()
    truth = _Truth()
    runs = []
    for norad, (name, prn) in GPS_TRACKS.items():
        read = read_file(shared(f"{GPS_DIR}/{name}"), source="astria", formats_dirs=[fmt_dir])
        assert read.rejected == 0 and read.accepted >= 60
        obs = read.elements
        t_obs = obs["time"].cast(pa.int64()).to_numpy()
        history = elements_from_tle_text(
            [shared(f"observations/tle_histories/gnss_2018_2021/cmb/sat{norad}.txt")],
            "celestrak").to_pylist()
        start = max((h for h in history if _ns(h["epoch"]) < t_obs.min()),
                    key=lambda h: _ns(h["epoch"]))
        fits = {}
        for label, prior in (("fit", None), (f"fit+prior {PRIOR_KM:g} km", PRIOR_KM)):
            settings = od.OdSettings(prior_km=prior, sigmas={"optical": sigma_deg})
            fits[label] = od.fit(obs, start, sensors, settings=settings)
        runs.append({"norad": norad, "prn": prn, "obs": obs, "t_obs": t_obs, "start": start,
                     "fits": fits, "format": read.format})
    return runs, sensors, truth


def _errors(run, sensors, truth):
    """Per element set (start, each fit): residual RMS on the track (arcsec), position error
    against the SP3 over the track and at the SP3 epochs after it (km), and the error at the
    fit epoch (newest observation) in the truth's RTN frame with the set's stated 1-sigma."""
    t = run["t_obs"]
    later = truth.node_ns[truth.node_ns > t.max()]
    r_track, r_later = truth.teme(run["prn"], t), truth.teme(run["prn"], later)
    epoch = np.array([t.max()])
    r0, r1 = truth.teme(run["prn"], epoch)[0], truth.teme(run["prn"], epoch + 10**9)[0]
    rhat = r0 / np.linalg.norm(r0)
    nhat = np.cross(r0, r1 - r0)
    nhat /= np.linalg.norm(nhat)
    rtn = np.stack([rhat, np.cross(nhat, rhat), nhat])
    start_age_h = (t.min() - _ns(run["start"]["epoch"])) / 3.6e12
    sets = [(f"start (-{start_age_h:.1f} h)", run["start"], None)]
    sets += [(label, f.elements, f) for label, f in run["fits"].items()]
    out = {}
    for label, row, f in sets:
        if row is None:
            out[label] = {"fit": f}
            continue
        sat = _satrec(row)
        out[label] = {
            "fit": f, "rms": od.residuals(run["obs"], sensors, row).rms_angle_arcsec,
            "track": np.linalg.norm(_teme(sat, t) - r_track, axis=1),
            "later": np.linalg.norm(_teme(sat, later) - r_later, axis=1),
            "later_h": (later - t.max()) / 3.6e12,
            "rtn": rtn @ (_teme(sat, epoch)[0] - r0),
            "sigma_rtn": (np.sqrt(np.diag(f.covariance_rtn)[:3]) if f is not None
                          and f.covariance_rtn is not None else None)}
    return out


@pytest.fixture(scope="module")
def gps_errors(gps_runs):
    runs, sensors, truth = gps_runs
    print(f"\nGPS, ASTRIANet-02 tracks of 2020-09-17, truth CODE final SP3 (last epoch "
          f"{truth.sp3.epochs[-1][3]:02d}:{truth.sp3.epochs[-1][4]:02d} GPS time: there is "
          "no precise orbit for 2020-09-18 here, so 'later' is the rest of 2020-09-17, "
          "16-19 h after the tracks, not +24 h)")
    print(f"{'norad':>6} {'prn':>4} {'n':>3} {'set':>18} {'status':>13} {'rms as':>6} "
          f"{'trk med':>8} {'trk max':>8} {'later max':>9} {'at end':>7} {'end h':>6}   "
          "error at epoch R/T/N km (stated 1-sigma)")
    for run in runs:
        run["errors"] = _errors(run, sensors, truth)
        for label, e in run["errors"].items():
            f = e["fit"]
            head = f"{run['norad']:>6} {run['prn']:>4} {len(run['t_obs']):>3} {label:>18} "
            if "rms" not in e:
                print(head + f"{f.status:>13}  {f.reason}")
                continue
            sig = ("" if e["sigma_rtn"] is None else
                   " (" + "/".join(f"{s:.3f}" for s in e["sigma_rtn"]) + ")")
            print(head + f"{'tle' if f is None else f.status:>13} {e['rms']:>6.2f} "
                  f"{np.median(e['track']):>8.2f} {e['track'].max():>8.2f} "
                  f"{e['later'].max():>9.2f} {e['later'][-1]:>7.2f} {e['later_h'][-1]:>6.1f}"
                  f"   {'/'.join(f'{x:.2f}' for x in e['rtn'])}{sig}")
    return runs


PRIOR_LABEL = f"fit+prior {PRIOR_KM:g} km"


def test_gps_tracks_fit_against_precise_orbit(gps_errors):
    for run in gps_errors:
        err = run["errors"]
        start = next(iter(err.values()))
        # the start TLE is a few km off, as public GPS TLEs are (SP3 vs TLE, no ssafuse.od)
        assert 0.3 < np.median(start["track"]) < 10.0
        # Without an a-priori a 10-minute track leaves the range open: the fitter must then
        # refuse (poorly-spread, or diverged along the flat direction) or, if it converges,
        # not be farther from the truth than its stated uncertainty allows (5 sigma).
        free = err["fit"]
        if free["fit"].status == "converged":
            cov = free["fit"].covariance_rtn[:3, :3]
            assert free["rtn"] @ np.linalg.solve(cov, free["rtn"]) <= 25.0, free["rtn"]
        else:
            assert free["fit"].status in ("poorly-spread", "diverged"), free["fit"].status
        prior = err[PRIOR_LABEL]
        assert prior["fit"].status == "converged", prior["fit"].reason
        # the track is fitted to its noise (ASTRIA_od.json: 5e-6 rad = 1.03 arcsec an angle)
        assert prior["rms"] < 3.0 and prior["rms"] < start["rms"]
        # and, with the start set as an a-priori, the fit is no farther from the truth than
        # the start over the track
        assert np.median(prior["track"]) <= np.median(start["track"]) * 1.05
        # later in the day it stays on the scale of the start's error plus what the a-priori
        # lets it move (3 sigma); see the next test for whether it is better
        assert prior["later"].max() <= start["later"].max() + 3 * PRIOR_KM


@pytest.mark.xfail(strict=False, reason=(
    "a genuine limitation: one 10-minute angles-only pass constrains the position across "
    "the line of sight at the pass, not the orbit's shape elsewhere; moving the start set "
    "(18 SDS's fit of days of tracking) to fit it leaves the fit about 1.5 times farther "
    "from the SP3 than the start 16-19 h later, whatever the a-priori (0.25-20 km tried)"))
def test_gps_fit_later_in_the_day_no_worse_than_start(gps_errors):
    for run in gps_errors:
        err = run["errors"]
        start = next(iter(err.values()))
        assert err[PRIOR_LABEL]["later"].max() <= start["later"].max() * 1.05, run["norad"]

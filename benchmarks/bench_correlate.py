"""Correlation benchmark: observations per second, on real data and at catalogue scale, beside a
per-observation Skyfield loop.

    python benchmarks/bench_correlate.py [--n-obs 100000] [--baseline-obs 5] [--skip-real]

Prints:

* **real**: the 3,634 satfit IOD observations (``../shared/data/observations/satfit/sats``,
  reported identities removed) correlated against the 11,000+ satfit and ``tle_history``
  element sets (several per object: the nearest in epoch is used), as in
  ``tests/test_correlate.py``: observations/s and the share assigned to the reported object.
* **scale**: ``--n-obs`` observations against the full 26,140-object catalogue
  (``catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt``). The observations are simulated
  with Skyfield (``EarthSatellite``, ``wgs84`` sites, topocentric astrometric RA/Dec of date
  J2000) from real sites (``observations/sites/strf_sites.txt``) and real element sets of that
  catalogue, at random times of 2023-10-09 with the object at least 15 deg above the horizon,
  plus Gaussian noise of ``--noise-arcsec`` per axis (seeded: the same run every time).
  Observations/s of ``ssafuse.correlate`` (all objects against all observations, the
  reported identities removed, in-process, numba kernel warm), peak resident memory of the
  process, and the share assigned to the simulated object.
* **baseline**: a plain Skyfield loop, per observation over every catalogued object
  (``(sat - site).at(t).radec()``, then the angle to the observation; the nearest inside the
  gate wins, objects whose SGP4 fails or whose element set is too old are skipped, as in
  ``correlate``), timed on ``--baseline-obs`` observations and extrapolated linearly to
  ``--n-obs``: it is labelled as an extrapolation. The ``EarthSatellite`` objects are built
  once, outside the timing. The script exits nonzero unless the baseline assigned the same
  object as ssafuse to every timed observation (angle within ``ANGLE_TOL_ARCMIN``).

Simulation and baseline run in this process before correlation, so the peak memory printed is
an upper bound of correlation's own.
"""

from __future__ import annotations

import argparse
import glob
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CATALOGUE = DATA / "catalogues" / "spacetrack_3le_2023-10-09_cdm_on_chain.txt"
SITES = DATA / "observations" / "sites" / "strf_sites.txt"
#: Real observing sites of strf_sites.txt spread over the globe.
SITE_IDS = ("4171", "4353", "2701", "1111", "4172", "8049")
sys.path.insert(0, str(ROOT / "tests"))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def observations_table(t_ns, sensor_ids, ra, dec, object_ids, source="bench") -> pa.Table:
    from ssafuse.schema import OBSERVATIONS

    n = len(t_ns)
    cols = {}
    for f in OBSERVATIONS:
        cols[f.name] = pa.nulls(n, f.type)
    cols.update({
        "obs_id": pa.array([f"sim-{i}" for i in range(n)]),
        "time": pa.array(np.asarray(t_ns, np.int64)).cast(OBSERVATIONS.field("time").type),
        "sensor_id": pa.array(list(sensor_ids)),
        "object_id": pa.array(np.asarray(object_ids, np.int64)),
        "kind": pa.array(["optical"] * n),
        "ra_deg": pa.array(np.asarray(ra, float)),
        "dec_deg": pa.array(np.asarray(dec, float)),
        "frame": pa.array(["J2000"] * n),
        "source": pa.array([source] * n), "source_format": pa.array(["sim"] * n),
        "source_uri": pa.array(["simulated"] * n), "source_sha256": pa.array(["0" * 64] * n),
        "source_record": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "ingested_at": pa.array(np.zeros(n, np.int64)).cast(
            OBSERVATIONS.field("ingested_at").type),
        "classification": pa.array(["UNCLASSIFIED"] * n),
        "marking": pa.array(["UNCLASSIFIED"] * n),
    })
    return pa.Table.from_pydict(cols, schema=OBSERVATIONS)


def real_case() -> None:
    from _obs_helpers import blind, elements_from_tle_text

    from ssafuse.correlation import correlate
    from ssafuse.records import read_file
    from ssafuse.sensors import merge, read_sensors

    sats = sorted(glob.glob(str(DATA / "observations/satfit/sats") + "/*.txt"))
    hist = sorted(glob.glob(str(DATA / "observations/satfit/tle_history") + "/*.txt"))
    obs = pa.concat_tables([read_file(p, source="satfit", format="iod-lenient").elements
                            for p in sats])
    els = elements_from_tle_text(sats + hist, "satfit")
    sensors = merge(read_sensors(DATA / "observations/sites/scottcampbell-satfit_STATIONS.IN"),
                    read_sensors(SITES))
    correlate(blind(obs.slice(0, 50)), els, sensors)      # compile / warm the numba kernel
    t0 = time.perf_counter()
    corr, rejects = correlate(blind(obs), els, sensors)
    dt = time.perf_counter() - t0
    truth = dict(zip(obs["obs_id"].to_pylist(), obs["object_id"].to_pylist()))
    right = sum(a == truth[o] for a, o in zip(corr["object_id"].to_pylist(),
                                               corr["obs_id"].to_pylist()))
    print(f"real   : {obs.num_rows} satfit IOD observations x {els.num_rows} element sets of "
          f"{len(set(els['object_id'].to_pylist()))} objects: {dt:.2f} s, "
          f"{obs.num_rows / dt:,.0f} obs/s; {right}/{obs.num_rows} assigned to the reported "
          f"object, {rejects.num_rows} unknown-sensor rejects")


def simulate(n_obs: int, noise_arcsec: float, rng: np.random.Generator, satellites, ts,
             site_rows):
    """``n_obs`` simulated RA/Dec observations: (t_ns, sensor, ra, dec, object, truth)."""
    from skyfield.api import wgs84

    day0 = np.datetime64("2023-10-09T00:00:00", "ns").astype(np.int64)
    out_t, out_s, out_ra, out_dec, out_obj = [], [], [], [], []
    tries = 0
    order = rng.permutation(len(satellites))
    sites = {sid: wgs84.latlon(la, lo, elevation_m=al * 1000.0) for sid, la, lo, al in site_rows}
    site_ids = list(sites)
    per_pair = 1440
    while sum(map(len, out_t)) < n_obs:
        sat = satellites[order[tries % len(order)]]
        tries += 1
        sid = site_ids[rng.integers(len(site_ids))]
        t_ns = day0 + rng.integers(0, 86400, per_pair) * 10**9
        t_ns.sort()
        t = _times(ts, t_ns)
        topo = (sat - sites[sid]).at(t)
        alt, _, _ = topo.altaz()
        ok = alt.degrees > 15.0
        if not ok.any():
            continue
        ra, dec, _ = topo.radec()             # astrometric, ICRS (J2000 to the milliarcsecond)
        k = int(min(ok.sum(), 30))
        pick = np.flatnonzero(ok)[:k]
        noise = rng.normal(0.0, noise_arcsec / 3600.0, (2, k))
        d = dec.degrees[pick] + noise[1]
        r = (ra._degrees[pick] + noise[0] / np.cos(np.radians(d))) % 360.0
        out_t.append(t_ns[pick])
        out_s.append([sid] * k)
        out_ra.append(r)
        out_dec.append(np.clip(d, -90, 90))
        out_obj.append(np.full(k, sat.model.satnum))
    cat = np.concatenate
    return (cat(out_t)[:n_obs], sum(out_s, [])[:n_obs], cat(out_ra)[:n_obs],
            cat(out_dec)[:n_obs], cat(out_obj)[:n_obs], tries)


def _times(ts, t_ns):
    days, rem = np.divmod(np.asarray(t_ns, np.int64), 86400 * 10**9)
    date = np.datetime64("1970-01-01", "D") + days.astype("timedelta64[D]")
    y = date.astype("datetime64[Y]").astype(np.int64) + 1970
    m = date.astype("datetime64[M]").astype(np.int64) % 12 + 1
    d = (date - date.astype("datetime64[M]")).astype(np.int64) + 1
    return ts.utc(y, m, d, 0, 0, rem / 1e9)


def baseline(satellites, ts, sites, t_ns, sensor_ids, ra, dec, count: int):
    """Seconds per observation of a plain Skyfield loop over every object, and its answer
    for each of the first ``count`` observations: ``(object id or None, angle arcmin)``.

    The same question ``correlate`` answers, asked with Skyfield: the candidates are the
    objects whose element set is within ``DEFAULT_MAX_AGE_DAYS`` of the observation and
    whose SGP4 propagation succeeds (a failed one gives NaN, which must not win), and the
    nearest in angle is the answer if inside ``DEFAULT_GATE_ARCMIN``, else none (a UCT)."""
    from skyfield.api import wgs84

    from ssafuse.correlation import DEFAULT_GATE_ARCMIN, DEFAULT_MAX_AGE_DAYS

    site_obj = {sid: wgs84.latlon(la, lo, elevation_m=al * 1000.0) for sid, la, lo, al in sites}
    epochs = np.array([s.epoch.tt for s in satellites])
    answers = []
    t0 = time.perf_counter()
    for i in range(count):
        t = _times(ts, [t_ns[i]])[0]
        u = np.array([math.cos(math.radians(dec[i])) * math.cos(math.radians(ra[i])),
                      math.cos(math.radians(dec[i])) * math.sin(math.radians(ra[i])),
                      math.sin(math.radians(dec[i]))])
        best, best_ang = None, math.inf
        site = site_obj[sensor_ids[i]]
        for sat, epoch in zip(satellites, epochs):
            if abs(t.tt - epoch) > DEFAULT_MAX_AGE_DAYS:
                continue
            r_, d_, _ = (sat - site).at(t).radec()
            if not (math.isfinite(r_.radians) and math.isfinite(d_.radians)):
                continue                                   # SGP4 failed (decayed): no answer
            v = np.array([math.cos(d_.radians) * math.cos(r_.radians),
                          math.cos(d_.radians) * math.sin(r_.radians), math.sin(d_.radians)])
            ang = math.acos(max(-1.0, min(1.0, float(v @ u))))
            if ang < best_ang:
                best, best_ang = sat.model.satnum, ang
        ang_arcmin = math.degrees(best_ang) * 60.0
        answers.append((best, ang_arcmin) if ang_arcmin < DEFAULT_GATE_ARCMIN else (None, None))
    return (time.perf_counter() - t0) / count, answers


#: How close the baseline's angle to the object it chose must be to ssafuse's residual for
#: that object. Both are SGP4 topocentric directions, but ssafuse's is corrected for light
#: time and Skyfield's ``(sat - site).at(t)`` is geometric: the two differ by the transverse
#: velocity over c, at most (7.9 km/s in LEO + 0.47 km/s of the site) / c = 5.8 arcsec
#: (Skyfield with the light time, ``sat.at(t - range/c) - site.at(t)``, gives ssafuse's
#: residuals to 0.0005 arcmin); 0.15 arcmin (9 arcsec) holds that with room and is far below
#: the 30-arcsec noise.
ANGLE_TOL_ARCMIN = 0.15


def check_same_answers(corr: pa.Table, answers) -> None:
    """Exit nonzero unless the baseline assigned the same object as ``correlate`` to every
    observation it was timed on, at the same angle within ``ANGLE_TOL_ARCMIN``."""
    ours = corr.slice(0, len(answers)).to_pylist()
    bad = [(i, (row["object_id"], row["angle_residual_arcmin"]), theirs)
           for i, (row, theirs) in enumerate(zip(ours, answers))
           if row["object_id"] != theirs[0]
           or (theirs[0] is not None
               and abs(row["angle_residual_arcmin"] - theirs[1]) > ANGLE_TOL_ARCMIN)]
    worst = max((abs(row["angle_residual_arcmin"] - theirs[1]) for row, theirs in
                 zip(ours, answers) if theirs[0] is not None and row["object_id"] == theirs[0]),
                default=0.0)
    print(f"check  : baseline and ssafuse agree on {len(answers) - len(bad)}/{len(answers)} "
          f"timed observations (same object, angle within {ANGLE_TOL_ARCMIN} arcmin; largest "
          f"angle difference {worst:.4f} arcmin)")
    if bad:
        sys.exit(f"baseline disagrees with ssafuse (obs, ours (id, arcmin), baseline): {bad}")


def scale_case(n_obs: int, baseline_obs: int, noise_arcsec: float) -> None:
    from _obs_helpers import blind
    from skyfield.api import EarthSatellite, load

    from ssafuse.correlation import correlate
    from ssafuse.records import read_file
    from ssafuse.sensors import read_sensors

    els = read_file(CATALOGUE, source="spacetrack").elements
    sensors = read_sensors(SITES)
    rows = [(s, la, lo, al) for s, la, lo, al in zip(
        sensors["sensor_id"].to_pylist(), sensors["latitude_deg"].to_pylist(),
        sensors["longitude_deg"].to_pylist(), sensors["altitude_km"].to_pylist())
        if s in SITE_IDS]
    ts = load.timescale(builtin=True)
    lines = CATALOGUE.read_text().splitlines()
    t0 = time.perf_counter()
    satellites = [EarthSatellite(lines[i], lines[i + 1], ts=ts) for i in range(len(lines) - 1)
                  if lines[i].startswith("1 ") and lines[i + 1].startswith("2 ")]
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(20231009)
    t0 = time.perf_counter()
    t_ns, sid, ra, dec, obj, tries = simulate(n_obs, noise_arcsec, rng, satellites, ts, rows)
    sim_s = time.perf_counter() - t0
    print(f"scale  : {len(t_ns):,} observations simulated with Skyfield from {len(rows)} real "
          f"sites and {len(set(obj.tolist())):,} real element sets ({tries:,} object/site "
          f"passes tried, {sim_s:.0f} s); noise {noise_arcsec:g} arcsec per axis")
    obs = blind(observations_table(t_ns, sid, ra, dec, obj))  # no reported identity to trust
    correlate(obs.slice(0, 20), els, sensors)             # warm the numba kernel
    t0 = time.perf_counter()
    corr, rejects = correlate(obs, els, sensors)
    dt = time.perf_counter() - t0
    assigned = np.array(corr["object_id"].to_pylist(), dtype=object)
    right = (assigned == obj).sum()
    res = corr["angle_residual_arcmin"].to_numpy(zero_copy_only=False)
    print(f"ssafuse: correlate {len(t_ns):,} obs x {els.num_rows:,} objects: {dt:.1f} s = "
          f"{len(t_ns) / dt:,.0f} obs/s; assigned to the simulated object "
          f"{right / len(t_ns):.2%}; median residual {np.nanmedian(res):.2f} arcmin; "
          f"peak RSS of this process {peak_rss_mib():,.0f} MiB")
    if baseline_obs:
        per, answers = baseline(satellites, ts, rows, t_ns, sid, ra, dec, baseline_obs)
        total = per * len(t_ns)
        print(f"baseline (Skyfield loop over {len(satellites):,} objects per observation; "
              f"timed on {baseline_obs} observations, EXTRAPOLATED to {len(t_ns):,}): "
              f"{per:.2f} s/obs = {1 / per:.3f} obs/s, {total / 3600:.1f} h for the set "
              f"(EarthSatellite build {build_s:.0f} s, not counted); ssafuse is "
              f"{total / dt:,.0f}x faster")
        check_same_answers(corr, answers)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-obs", type=int, default=100_000)
    ap.add_argument("--baseline-obs", type=int, default=5)
    ap.add_argument("--noise-arcsec", type=float, default=30.0)
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args(argv)
    if not CATALOGUE.exists():
        sys.exit(f"reference data {CATALOGUE} is absent")
    if not args.skip_real:
        real_case()
    scale_case(args.n_obs, args.baseline_obs, args.noise_arcsec)


if __name__ == "__main__":
    main()

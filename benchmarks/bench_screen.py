"""Screening benchmark: the full public catalogue, all-vs-all, 5 km, against astroz.

    python benchmarks/bench_screen.py [--days 1 7] [--sizes 5000 10000 20000] [--no-astroz]

Input: ../shared/data/catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt (26,140 objects),
window from 2023-10-09T12:00Z (the catalogue's median epoch). Prints wall time, events, peak
memory (this process and its worker processes), time against catalogue size, and the same
screen by astroz.screen (PyPI astroz, a compiled SIMD screener, step 1 min) as the baseline,
given the same objects (those ssafuse excluded from the window, with the reason, taken out of
its input file): time ratio and the set difference of events. The script exits nonzero unless
they agree: every astroz event under 4.99 km must be in ours (matched by NORAD pair and TCA
within 1 s, or within 2 min with the same miss to 10 m for a slowly drifting pair; a
co-located pair once per window), and every row of ours must be an astroz event
but for the differences in ``EXPLAINED`` (within 100 m of the threshold, within 2 minutes of an
astroz minimum of the pair or of a window edge: astroz steps 1 minute).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = (ROOT.parent / "shared" / "data" / "catalogues"
             / "spacetrack_3le_2023-10-09_cdm_on_chain.txt")
#: An event of ours that astroz does not report is still explained when python-sgp4 itself,
#: sampled every millisecond for 2 minutes around our TCA, has its minimum there: the same
#: miss within 1 m and TCA within 10 ms (astroz then missed a real minimum).
SGP4_CONFIRMED = "astroz does not report the pair; python-sgp4 alone finds our minimum"
#: Rows of ours that astroz need not report: the only differences its 1-minute step and a
#: threshold compared at sampled times can explain, and minima python-sgp4 confirms (every
#: other row must be an astroz event).
EXPLAINED = ("miss within 10 m of the 5 km threshold", "miss within 100 m of the 5 km threshold",
             "astroz has this pair within 2 min (one minimum per 1-min step)",
             "within 2 min of a window edge", SGP4_CONFIRMED)
START = dt.datetime(2023, 10, 9, 12, tzinfo=dt.timezone.utc)


def peak_gib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 2**20  # KiB -> GiB; a sum of peaks: an upper bound


def run_ours(elements, days):
    from ssafuse.screening import screen
    t = time.perf_counter()
    res = screen(elements, START, days=days, threshold_km=5.0)
    return time.perf_counter() - t, res


def _tle_number(norad: int) -> str:
    """The 5 columns a NORAD number takes in a TLE (Alpha-5 from 100,000: A = 10, I and O
    skipped)."""
    if norad < 100_000:
        return f"{norad:05d}"
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return letters[norad // 10_000 - 10] + f"{norad % 10_000:04d}"


def screened_catalogue(res, folder: Path) -> Path:
    """The catalogue file less the objects ssafuse excluded from this window (element sets
    too far from it, failed propagation: ``res.excluded`` says why), so that astroz screens
    the same objects: its events with those would answer another question."""
    gone = {_tle_number(i) for i in res.excluded["object_id"].to_pylist()}
    lines = CATALOGUE.read_text().splitlines()
    keep = []
    for k, line in enumerate(lines):
        if line.startswith("1 ") and k + 1 < len(lines) and lines[k + 1].startswith("2 "):
            if line[2:7].replace(" ", "0") not in gone:
                has_name = k > 0 and not lines[k - 1].startswith(("1 ", "2 "))
                keep.extend(([lines[k - 1]] if has_name else []) + [line, lines[k + 1]])
    path = folder / "screened.3le"
    path.write_text("\n".join(keep) + "\n")
    return path


def run_astroz(days, path: Path):
    import astroz
    t = time.perf_counter()
    c = astroz.Constellation(str(path))
    ev = astroz.screen(c, days * 1440.0, threshold=5.0, start_time=START)
    sec = time.perf_counter() - t
    ids = np.asarray(c.satnums)
    return sec, ids[np.asarray(ev.i)], ids[np.asarray(ev.j)], np.asarray(ev.time) * 60.0, \
        np.asarray(ev.distance)


def compare(res, az):
    _, ai, aj, at, ad = az
    c = res.conjunctions
    o1 = c["object_id_1"].to_numpy()
    o2 = c["object_id_2"].to_numpy()
    ot = (c["tca"].cast(pa.int64()).to_numpy() - int(START.timestamp()) * 10**9) / 1e9
    co = c["co_located"].to_numpy(zero_copy_only=False)
    om = c["miss_distance_km"].to_numpy()
    ours: dict[tuple[int, int], list[tuple[float, float]]] = {}
    colo = set()
    for a, b, t, f, d in zip(o1, o2, ot, co, om):
        ours.setdefault((a, b), []).append((t, d))
        if f:
            colo.add((a, b))
    missing = []
    matched = set()
    for a, b, t, d in zip(ai, aj, at, ad):
        key = (min(a, b), max(a, b))
        if key in colo:
            matched.add(key)
            continue
        # the same minimum: TCA within 1 s, or, for a pair drifting slowly (formation
        # flyers, whose minimum is flat over minutes and astroz's 1-min step places only
        # roughly), within 2 min and the same miss to 10 m
        same = [x for x, m in ours.get(key, []) if abs(x - t) < 1.0
                or (abs(x - t) < 120.0 and abs(m - d) < 0.01)]
        if same:
            matched.add((key, round(min(same, key=lambda x: abs(x - t)), 3)))
        elif d < 4.99:  # the rule: every astroz event under 4.99 km must be ours
            missing.append((key, t, d))
    # Rows of ours that no astroz event (under its threshold) matches, each with why.
    az_times: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for a, b, t, d in zip(ai, aj, at, ad):
        az_times.setdefault((min(a, b), max(a, b)), []).append((t, d))
    end_s = float(ot.max()) if len(ot) else 0.0
    miss = c["miss_distance_km"].to_numpy()
    extra: dict[str, list[tuple]] = {}   # why -> (object 1, object 2, TCA s, miss km)
    for a, b, t, f, d in zip(o1, o2, ot, co, miss):
        if f or (a, b) in colo or (((a, b), round(t, 3)) in matched):
            continue
        near = [x for x in az_times.get((a, b), []) if abs(x[0] - t) < 120.0]
        if d > 4.99:
            why = "miss within 10 m of the 5 km threshold"
        elif d > 4.9:
            why = "miss within 100 m of the 5 km threshold"
        elif near:
            why = "astroz has this pair within 2 min (one minimum per 1-min step)"
        elif (a, b) in az_times:
            why = "astroz has this pair at another time only"
        elif t < 120.0 or t > end_s - 120.0:
            why = "within 2 min of a window edge"
        else:
            why = "astroz does not report the pair"
        extra.setdefault(why, []).append((int(a), int(b), round(float(t), 3), float(d)))
    return missing, extra


def confirmed_by_sgp4(rows) -> list[tuple]:
    """The rows ``(object 1, object 2, TCA s from START, miss km)`` whose minimum python-sgp4
    alone reproduces (see :data:`SGP4_CONFIRMED`), read from the catalogue's own lines."""
    from sgp4.api import Satrec  # the baseline's library, only when a row needs checking

    want = {_tle_number(n) for row in rows for n in row[:2]}
    lines = CATALOGUE.read_text().splitlines()
    sats = {line[2:7].replace(" ", "0"): Satrec.twoline2rv(line, lines[k + 1])
            for k, line in enumerate(lines[:-1])
            if line.startswith("1 ") and line[2:7].replace(" ", "0") in want}
    jd0 = START.timestamp() / 86400.0 + 2440587.5
    out = []
    for a, b, t, miss in rows:
        ts = t + np.arange(-60.0, 60.0, 0.001)
        jd, fr = np.full(ts.shape, math.floor(jd0)), jd0 - math.floor(jd0) + ts / 86400.0
        ea, ra, _ = sats[_tle_number(a)].sgp4_array(jd, fr)
        eb, rb, _ = sats[_tle_number(b)].sgp4_array(jd, fr)
        d = np.where((ea == 0) & (eb == 0), np.linalg.norm(ra - rb, axis=1), np.inf)
        k = int(np.argmin(d))
        if abs(d[k] - miss) < 1e-3 and abs(ts[k] - t) < 0.01:
            out.append((a, b, t, miss))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, nargs="*", default=[1.0, 7.0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[5000, 10000, 20000])
    ap.add_argument("--no-astroz", action="store_true")
    args = ap.parse_args(argv)
    if not CATALOGUE.exists():
        sys.exit(f"{CATALOGUE} is absent (../shared/data)")
    from ssafuse.records import read_file
    elements = read_file(CATALOGUE, source="spacetrack").elements
    print(f"catalogue: {elements.num_rows} objects; window from {START.isoformat()}; 5 km")

    from ssafuse.screening import screen
    screen(elements.slice(0, 50), START, days=0.01, workers=1)  # compile / load numba cache

    rng = np.random.default_rng(1)
    for size in args.sizes:
        sub = elements.take(pa.array(np.sort(rng.choice(elements.num_rows, size, replace=False))))
        sec, res = run_ours(sub, 1.0)
        print(f"size {size:>6}: 1 day {sec:7.1f} s, {res.conjunctions.num_rows} events")

    for days in args.days:
        sec, res = run_ours(elements, days)
        st = res.stats
        print(f"ssafuse {days:g} day(s): {sec:.1f} s wall, {st['conjunctions']} events "
              f"({st['co_located']} co-located), {st['objects_excluded']} objects excluded, "
              f"{st['box_pairs']} box pairs, {st['candidates_refined']} refined, "
              f"peak memory <= {peak_gib():.2f} GiB")
        if args.no_astroz:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = screened_catalogue(res, Path(tmp))
            try:
                az = run_astroz(days, path)
            except Exception as e:  # the baseline is optional where it cannot run
                print(f"astroz: could not run ({e})")
                continue
        missing, extra = compare(res, az)
        odd = extra.pop("astroz does not report the pair", [])
        confirmed = confirmed_by_sgp4(odd)
        for why, rows in ((SGP4_CONFIRMED, confirmed), ("astroz does not report the pair",
                                                         [r for r in odd if r not in confirmed])):
            if rows:
                extra[why] = rows
        print(f"astroz  {days:g} day(s): {az[0]:.1f} s wall, {len(az[1])} events; "
              f"ratio ssafuse/astroz {sec / az[0]:.2f}; astroz events < 4.99 km missing from "
              f"ours: {len(missing)}; rows of ours not matched to an astroz event: "
              f"{sum(map(len, extra.values()))}")
        colo = {(a, b) for a, b, f in zip(res.conjunctions["object_id_1"].to_pylist(),
                                          res.conjunctions["object_id_2"].to_pylist(),
                                          res.conjunctions["co_located"].to_pylist()) if f}
        on_colo = sum((min(a, b), max(a, b)) in colo for a, b in zip(az[1], az[2]))
        print(f"   astroz events on pairs we report once as co-located: {on_colo} "
              f"(astroz repeats them; we give one row per pair and window)")
        for why, rows in sorted(extra.items(), key=lambda kv: -len(kv[1])):
            print(f"   extra of ours, {len(rows):>4}: {why}")
            if why not in EXPLAINED or why == SGP4_CONFIRMED:
                for row in rows[:10]:
                    print("      (object 1, object 2, TCA s from start, miss km):", row)
        for m in missing[:10]:
            print("   missing:", m)
        unexplained = {why: len(rows) for why, rows in extra.items() if why not in EXPLAINED}
        print(f"   check: astroz events < 4.99 km missing from ours {len(missing)}, rows of ours "
              f"astroz lacks for no stated reason {sum(unexplained.values())} (both must be 0)")
        if missing or unexplained:
            sys.exit(f"astroz and ssafuse disagree on the {days:g}-day screen: missing "
                     f"{missing[:10]}, unexplained extras {unexplained}")


if __name__ == "__main__":
    main()

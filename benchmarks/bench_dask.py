"""Screening on a Dask LocalCluster against the local run, and a projection from per-slice costs.

    python benchmarks/bench_dask.py [--days 7] [--workers 1 2] [--fit-sizes 6535 13070 26140]

Input: ../shared/data/catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt (26,140 objects),
all-vs-all, 5 km, window from 2023-10-09T12:00Z, default 2-hour slices (84 for 7 days).

Prints, for the local run (``screen(..., workers=<cores>)``, forked processes) and for a
``distributed.LocalCluster`` of 1 and 2 worker processes (one thread each; the cluster is
started before the clock starts): wall time, events, and whether the events equal the local
run's (same pairs, TCA within 1 microsecond; the script exits 1 if not). Then the measured
cost of one 2-hour slice and of the serial part (element sets to Satrec, padding, co-location
candidates, merge) at several catalogue sizes (seeded random subsets), a fit
``slice_s = a N + b N^2``, and the projected wall time
``serial(N) + ceil(slices / W) * slice_s(N) * (1 + overhead)`` for W workers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = (ROOT.parent / "shared" / "data" / "catalogues"
             / "spacetrack_3le_2023-10-09_cdm_on_chain.txt")
START = dt.datetime(2023, 10, 9, 12, tzinfo=dt.timezone.utc)


def events(table: pa.Table):
    a = table["object_id_1"].to_numpy()
    b = table["object_id_2"].to_numpy()
    t = table["tca"].cast(pa.int64()).to_numpy()
    o = np.lexsort((t, b, a))
    return a[o], b[o], t[o]


def same_events(x: pa.Table, y: pa.Table) -> str:
    if x.num_rows != y.num_rows:
        return f"NO ({x.num_rows} vs {y.num_rows} events)"
    (a1, b1, t1), (a2, b2, t2) = events(x), events(y)
    if not ((a1 == a2).all() and (b1 == b2).all()):
        return "NO (pairs differ)"
    worst = int(np.abs(t1 - t2).max()) if len(t1) else 0
    return f"yes (worst TCA difference {worst} ns)" if worst <= 1000 else f"NO (TCA off {worst} ns)"


def slice_costs(elements: pa.Table, n_slices: int = 4):
    """(serial s, per-slice s) of a run of ``n_slices`` 2-hour slices in this process."""
    from ssafuse.screening import screen
    t = time.perf_counter()
    res = screen(elements, START, days=n_slices * 2 / 24, threshold_km=5.0, workers=1)
    total = time.perf_counter() - t
    per_slice = res.stats["slice_seconds"] / res.stats["slices"]
    return total - res.stats["slice_seconds"], per_slice, res.stats["box_pairs"] / n_slices


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--fit-sizes", type=int, nargs="+", default=[6535, 13070, 26140])
    ap.add_argument("--no-runs", action="store_true", help="only the per-slice fit")
    args = ap.parse_args(argv)
    if not CATALOGUE.exists():
        print(f"catalogue {CATALOGUE} is absent", file=sys.stderr)
        return 1

    from distributed import Client, LocalCluster

    from ssafuse.records import read_file
    from ssafuse.screening import screen

    elements = read_file(CATALOGUE, source="spacetrack").elements
    n = elements.num_rows
    cores = os.cpu_count() or 1
    print(f"catalogue: {n} objects; window {args.days:g} days from {START:%Y-%m-%dT%H:%MZ}; "
          f"{cores} cores")
    runs = {}
    if not args.no_runs:
        t = time.perf_counter()
        ref = screen(elements, START, days=args.days, threshold_km=5.0)
        runs["local"] = time.perf_counter() - t
        print(f"local ({ref.stats['workers']} processes): {runs['local']:8.1f} s  "
              f"{ref.stats['conjunctions']} events, {ref.stats['slices']} slices, "
              f"{ref.stats['slice_seconds'] / ref.stats['slices']:.2f} s per slice")
        for w in args.workers:
            t0 = time.perf_counter()
            with LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                              dashboard_address=":0") as cluster, Client(cluster) as client:
                up = time.perf_counter() - t0
                t = time.perf_counter()
                res = screen(elements, START, days=args.days, threshold_km=5.0, dask=client)
                runs[w] = time.perf_counter() - t
            same = same_events(res.conjunctions, ref.conjunctions)
            print(f"dask LocalCluster {w} worker{'s' if w > 1 else ' '}: {runs[w]:8.1f} s  "
                  f"(x{runs['local'] / runs[w]:.2f} of local; cluster start {up:.1f} s, not "
                  f"counted)  {res.stats['conjunctions']} events; same as local: {same}")
            if not same.startswith("yes"):   # a timing of different answers measures nothing
                print(f"dask run on {w} worker(s) disagrees with the local run: {same}",
                      file=sys.stderr)
                return 1

    print("\nper-slice cost (2-hour slice, one process), seeded random subsets:")
    rng = np.random.default_rng(20231009)
    sizes, serial, per = [], [], []
    for size in args.fit_sizes:
        sub = elements if size >= n else elements.take(
            pa.array(np.sort(rng.choice(n, size=size, replace=False))))
        s, p, pairs = slice_costs(sub)
        sizes.append(sub.num_rows)
        serial.append(s)
        per.append(p)
        print(f"  N = {sub.num_rows:6d}: {p:6.2f} s per slice ({pairs:,.0f} box pairs), "
              f"serial part {s:5.2f} s")
    N = np.array(sizes, float)
    (a, b), *_ = np.linalg.lstsq(np.c_[N, N**2], np.array(per), rcond=None)
    c = float(np.linalg.lstsq(N[:, None], np.array(serial), rcond=None)[0][0])
    print(f"fit: slice_s = {a:.3e} N + {b:.3e} N^2;  serial_s = {c:.3e} N")
    overhead = 0.0
    if runs and 1 in runs:  # what a Dask task costs beyond the slice itself
        slices = math.ceil(args.days * 12)
        t1 = c * n + slices * (a * n + b * n * n)
        overhead = max(0.0, runs[1] / t1 - 1.0)
        print(f"measured Dask overhead on 1 worker: {100 * overhead:.1f} % of the slice time")
    slices = math.ceil(7 * 12)
    print("\nprojected wall time, 7-day window (84 slices), all-vs-all, 5 km:")
    ws = [1, 2, 4, 8, 16, 32, 84]
    print("  objects  " + "".join(f"{w:>9d}w" for w in ws))
    for size in (26140, 50000, 100000):
        row = []
        for w in ws:
            t = c * size + math.ceil(slices / w) * (a * size + b * size**2) * (1 + overhead)
            row.append(f"{t:9.0f}s")
        print(f"  {size:7d}  " + "".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())

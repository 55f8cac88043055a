"""Ingest benchmark: the full public catalogue into a store, beside python-sgp4's own parser.

    python benchmarks/bench_ingest.py [--catalogue FILE] [--repeat N] [--million]

Prints, for the 26,140-object Space-Track 3LE catalogue (../shared/data/catalogues/
spacetrack_3le_2023-10-09_cdm_on_chain.txt):

* baseline: a plain loop of ``sgp4.api.Satrec.twoline2rv`` over the same line pairs (parse
  only, nothing stored);
* ssafuse: ``ssafuse.ingest`` end to end (sniff, SHA-256, parse, checksums, validation,
  markings, Arrow tables, zstd Parquet written atomically, ledger, manifest);

each as records/s (best of ``--repeat`` runs, each in a fresh process, so the machine's noise
shows as spread) and the peak resident memory of the process that did it. The script exits
nonzero unless ssafuse stored, record for record, what the baseline parsed (``REL_TOL``).
``--million`` also ingests a 1,000,000+-record file (the catalogue repeated) to show that memory
stays bounded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared/data/catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt"

_BASELINE = r"""
import json, resource, sys, time
from sgp4.api import Satrec
path = sys.argv[1]
t0 = time.perf_counter()
lines = open(path).read().splitlines()
n = 0
for i, line in enumerate(lines):
    if line.startswith("1 ") and i + 1 < len(lines) and lines[i + 1].startswith("2 "):
        Satrec.twoline2rv(line, lines[i + 1])
        n += 1
dt = time.perf_counter() - t0
print(json.dumps({"records": n, "seconds": dt,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_SSAFUSE = r"""
import json, resource, sys, time
from ssafuse.ingestion import ingest
from ssafuse.store import Store
t0 = time.perf_counter()
report = ingest(Store(sys.argv[2]), [sys.argv[1]], source="bench")
dt = time.perf_counter() - t0
f = report.files[0]
print(json.dumps({"records": f.read, "accepted": f.accepted, "rejected": f.rejected,
                  "seconds": dt, "status": f.status,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_IMPORTS = r"""
import json, resource, ssafuse.store
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best(code: str, args_fn, repeat: int) -> tuple[dict, list[float]]:
    runs = [_run(code, *args_fn(i)) for i in range(repeat)]
    return min(runs, key=lambda r: r["seconds"]), [r["seconds"] for r in runs]


#: How close ssafuse's stored elements must be to Satrec's parse of the same lines: the same
#: digits read two ways (ssafuse keeps degrees and rev/day, Satrec radians and rad/min), so
#: equal to a few ulp; epochs to 1 microsecond (TLE epochs print to 1e-8 day = 864 us).
REL_TOL, EPOCH_TOL_NS = 1e-12, 1_000


def check_same_elements(catalogue: Path, store_dir: str) -> None:
    """Exit nonzero unless ssafuse stored, record for record, what the baseline parsed: the
    same object numbers, epochs and elements (untimed; the timed runs only parse)."""
    # here, not at the top: the timed runs are fresh subprocesses and this process only
    # checks, after them
    import math

    import numpy as np
    from sgp4.api import Satrec

    from ssafuse.store import Store

    lines = catalogue.read_text().splitlines()
    sats = [Satrec.twoline2rv(line, lines[i + 1]) for i, line in enumerate(lines)
            if line.startswith("1 ") and i + 1 < len(lines) and lines[i + 1].startswith("2 ")]
    el = Store(store_dir).table("elements").sort_by("source_record")
    if el.num_rows != len(sats):
        sys.exit(f"ssafuse stored {el.num_rows} element sets, the baseline parsed {len(sats)}")
    col = {c: el[c].to_numpy() for c in ("object_id", "mean_motion_rev_day", "eccentricity",
                                         "inclination_deg", "raan_deg", "arg_perigee_deg",
                                         "mean_anomaly_deg", "bstar")}
    epoch_ns = el["epoch"].cast("int64").to_numpy()
    theirs = {
        "object_id": np.array([s.satnum for s in sats]),
        "mean_motion_rev_day": np.array([s.no_kozai * 1440.0 / (2 * math.pi) for s in sats]),
        "eccentricity": np.array([s.ecco for s in sats]),
        "inclination_deg": np.degrees([s.inclo for s in sats]),
        "raan_deg": np.degrees([s.nodeo for s in sats]),
        "arg_perigee_deg": np.degrees([s.argpo for s in sats]),
        "mean_anomaly_deg": np.degrees([s.mo for s in sats]),
        "bstar": np.array([s.bstar for s in sats])}
    bad = {}
    for name, want in theirs.items():
        off = ~(np.abs(col[name] - want) <= REL_TOL * np.abs(want) + 1e-300)
        if off.any():
            bad[name] = int(off.sum())
    jd_ns = np.array([round((s.jdsatepoch - 2440587.5) * 86400e9) + round(s.jdsatepochF * 86400e9)
                      for s in sats])
    if (np.abs(epoch_ns - jd_ns) > EPOCH_TOL_NS).any():
        bad["epoch"] = int((np.abs(epoch_ns - jd_ns) > EPOCH_TOL_NS).sum())
    print(f"  check: {len(sats) - max(bad.values(), default=0)}/{len(sats)} records equal to the "
          f"baseline's parse (elements within {REL_TOL:g} relative, epochs within "
          f"{EPOCH_TOL_NS} ns)")
    if bad:
        sys.exit(f"ssafuse's stored elements differ from the baseline's parse: {bad}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalogue", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--million", action="store_true", help="also ingest a 1M-record file")
    args = ap.parse_args()
    if not args.catalogue.exists():
        sys.exit(f"{args.catalogue} is absent (it ships in ../shared/data)")
    with tempfile.TemporaryDirectory() as tmp:
        base, base_runs = _best(_BASELINE, lambda i: (str(args.catalogue),), args.repeat)
        ours, our_runs = _best(_SSAFUSE, lambda i: (str(args.catalogue), f"{tmp}/store{i}"),
                               args.repeat)
        imports = _run(_IMPORTS)
        print(f"catalogue: {args.catalogue.name} ({ours['records']} records)")
        base_list = ", ".join(f"{s:.3f}" for s in base_runs)
        our_list = ", ".join(f"{s:.3f}" for s in our_runs)
        print(f"  baseline sgp4 Satrec.twoline2rv loop : "
              f"{base['records'] / base['seconds']:>10,.0f} records/s  "
              f"({base['seconds']:.3f} s; runs {base_list})  peak {base['peak_mb']:.0f} MB")
        print(f"  ssafuse.ingest end to end           : "
              f"{ours['records'] / ours['seconds']:>10,.0f} records/s  "
              f"({ours['seconds']:.3f} s; runs {our_list})  peak {ours['peak_mb']:.0f} MB "
              f"(of which imports {imports['peak_mb']:.0f} MB)")
        print(f"  accepted {ours['accepted']}, rejected {ours['rejected']}; "
              f"ssafuse / baseline time ratio {ours['seconds'] / base['seconds']:.2f}")
        check_same_elements(args.catalogue, f"{tmp}/store0")
        if args.million:
            text = args.catalogue.read_bytes()
            copies = -(-1_000_000 // max(ours["records"], 1))
            big = Path(tmp) / "million.tle"
            with open(big, "wb") as fh:
                for _ in range(copies):
                    fh.write(text)
            m = _run(_SSAFUSE, str(big), f"{tmp}/million-store")
            print(f"  1M file: {m['records']:,} records in {m['seconds']:.2f} s "
                  f"({m['records'] / m['seconds']:,.0f} records/s), peak {m['peak_mb']:.0f} MB "
                  f"(file {big.stat().st_size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()

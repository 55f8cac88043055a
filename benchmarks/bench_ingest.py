"""Ingest benchmark: the full public catalogue into a store, beside python-sgp4's own parser.

    python benchmarks/bench_ingest.py [--catalogue FILE] [--repeat N] [--million]

Prints, for the 26,140-object Space-Track 3LE catalogue (../shared/data/catalogues/
spacetrack_3le_2023-10-09_cdm_on_chain.txt):

* baseline: a plain loop of ``sgp4.api.Satrec.twoline2rv`` over the same line pairs (parse
  only, nothing stored);
* ssafuse: ``ssafuse.ingest`` end to end (sniff, SHA-256, parse, checksums, validation,
  markings, Arrow tables, zstd Parquet written atomically, ledger, manifest);

each as records/s (best of ``--repeat`` runs, each in a fresh process, so the machine's noise
shows as spread) and the peak resident memory of the process that did it. ``--million`` also
ingests a 1,000,000+-record file (the catalogue repeated) to show that memory stays bounded.
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
        print(f"  baseline sgp4 Satrec.twoline2rv loop : {base['records'] / base['seconds']:>10,.0f} "
              f"records/s  ({base['seconds']:.3f} s; runs {', '.join(f'{s:.3f}' for s in base_runs)})"
              f"  peak {base['peak_mb']:.0f} MB")
        print(f"  ssafuse.ingest end to end           : {ours['records'] / ours['seconds']:>10,.0f} "
              f"records/s  ({ours['seconds']:.3f} s; runs {', '.join(f'{s:.3f}' for s in our_runs)})"
              f"  peak {ours['peak_mb']:.0f} MB (of which imports {imports['peak_mb']:.0f} MB)")
        print(f"  accepted {ours['accepted']}, rejected {ours['rejected']}; "
              f"ssafuse / baseline time ratio {ours['seconds'] / base['seconds']:.2f}")
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

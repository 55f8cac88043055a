"""Wall time of the whole nightly job (`ssafuse run`) on the full 26,140-object catalogue,
split by stage.

    python benchmarks/bench_nightly.py [--days 7] [--threshold-km 5] [--workers N]

One feed (Space-Track 3LE of 2023-10-09, ../shared/data/catalogues/
spacetrack_3le_2023-10-09_cdm_on_chain.txt), all-vs-all screening from 2023-10-09T00:00Z for
--days, Pc/max Pc and the CDMs of the listed events, the report, and one partner export (GBR);
a fresh store in a temporary folder, run the way cron runs it (`python -m ssafuse.cli run`).
Prints each stage's wall time and share, the counts, and the whole command's wall time
(interpreter start and imports included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = (ROOT.parent / "shared" / "data" / "catalogues"
             / "spacetrack_3le_2023-10-09_cdm_on_chain.txt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--threshold-km", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=0, help="processes (0: every core)")
    ap.add_argument("--keep", action="store_true", help="keep the store and print where")
    args = ap.parse_args()
    if not CATALOGUE.exists():
        sys.exit(f"{CATALOGUE} is absent (../shared/data ships with CI)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_nightly_"))
    cfg = tmp / "nightly.toml"
    cfg.write_text(f"""store = "{tmp / 'store'}"
[[feeds]]
source = "spacetrack"
paths = ["{CATALOGUE}"]
marking = "UNCLASSIFIED//REL TO USA, GBR"
[screen]
start = "2023-10-09T00:00:00Z"
days = {args.days}
threshold_km = {args.threshold_km}
{f"workers = {args.workers}" if args.workers else ""}
[report]
primaries = [25544, 48274]
[exports]
release_to = ["GBR"]
""")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ssafuse.cli", "run", "--config", str(cfg),
                           "--now", "2023-10-09T02:00:00Z"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        sys.exit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    (run_dir,) = [d for d in (tmp / "store" / "runs").iterdir()]
    m = json.loads((run_dir / "manifest.json").read_text())
    total = sum(s["seconds"] for s in m["stages"])
    print(f"nightly job, {CATALOGUE.name}, {args.days:g}-day window, all-vs-all under "
          f"{args.threshold_km:g} km, {os.cpu_count()} cores")
    print(f"{'stage':<10} {'seconds':>9} {'share':>7}  counts")
    for s in m["stages"]:
        print(f"{s['name']:<10} {s['seconds']:9.2f} {s['seconds'] / total:7.1%}  "
              + ", ".join(f"{k} {v}" for k, v in s["counts"].items()))
    print(f"{'stages':<10} {total:9.2f}")
    print(f"{'command':<10} {wall:9.2f}  (wall time of `ssafuse run`, start-up included; "
          f"exit {done.returncode})")
    if args.keep:
        print(f"store kept at {tmp / 'store'}")
    else:
        import shutil
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

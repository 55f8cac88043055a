"""Tear-line exports at full size: three partners' exports next to one full screening.

    python benchmarks/bench_tearline.py [--days 1] [--share 0.1] [--workers N] [--case shared]
                                        [--no-check]

The full public catalogue (Space-Track 3LE of 2023-10-09, 26,140 objects,
../shared/data/catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt) is one UNCLASSIFIED
feed. A restricted partner feed holds **newer element sets for --share of its objects**
(seeded choice; each one 6 h newer, its mean anomaly advanced by the mean motion and moved
0.02 deg, about 2-3 km along track in LEO, so events really differ between views).

``--case shared``: the restricted feed is SECRET//REL TO USA, GBR; exports to GBR, AUS and
JPN. GBR sees everything (its view is the operator's); AUS and JPN see only the public feed
and share one view, screened again once.
``--case distinct``: the restricted sets are split in three, REL TO USA and one of GBR / AUS /
JPN each, so every partner has a view of its own: three screenings again.

Runs the nightly job the way cron does (`python -m ssafuse.cli run`) and prints the screen
stage's time (one full screening, the baseline) next to the exports stage's (the three tear
lines: catalogue per view, screening again, Pc, CDMs, reports). Unless ``--no-check``, it also
runs the feeds JPN may receive alone (the public one; in case distinct also JPN's third) and
exits nonzero unless JPN's export equals that run (same pairs, TCA within 1 us, miss within
1e-9 km, max Pc within 1e-12 relative).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ssafuse.records import read_file
from ssafuse.timeutil import iso_z

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = (ROOT.parent / "shared" / "data" / "catalogues"
             / "spacetrack_3le_2023-10-09_cdm_on_chain.txt")
START = "2023-10-09T00:00:00Z"


def restricted_feed(path: Path, share: float, seed: int = 7) -> list[int]:
    """Write the restricted feed (CelesTrak-style OMM JSON); returns its NORAD numbers."""
    el = read_file(CATALOGUE, source="public").elements.to_pylist()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(el), size=int(round(share * len(el))), replace=False)
    out = []
    for k in sorted(pick):
        r = el[k]
        dt_min = 360.0
        n_deg_min = r["mean_motion_rev_day"] * 360.0 / 1440.0
        epoch_ns = int(r["epoch"].timestamp() * 1e9) + int(dt_min * 60e9)
        out.append({
            "OBJECT_NAME": r["object_name"] or "UNKNOWN", "OBJECT_ID": r["intl_designator"] or "",
            "EPOCH": iso_z(epoch_ns).rstrip("Z"), "MEAN_MOTION": r["mean_motion_rev_day"],
            "ECCENTRICITY": r["eccentricity"], "INCLINATION": r["inclination_deg"],
            "RA_OF_ASC_NODE": r["raan_deg"], "ARG_OF_PERICENTER": r["arg_perigee_deg"],
            "MEAN_ANOMALY": math.fmod(r["mean_anomaly_deg"] + n_deg_min * dt_min + 0.02, 360.0),
            "EPHEMERIS_TYPE": 0, "CLASSIFICATION_TYPE": "U", "NORAD_CAT_ID": r["object_id"],
            "ELEMENT_SET_NO": 999, "REV_AT_EPOCH": r["rev_at_epoch"] or 0, "BSTAR": r["bstar"],
            "MEAN_MOTION_DOT": r["mean_motion_dot"], "MEAN_MOTION_DDOT": r["mean_motion_ddot"]})
    path.write_text(json.dumps(out))
    return [o["NORAD_CAT_ID"] for o in out]


def config(tmp: Path, feeds: list[tuple[str, str, str]], exports, args) -> Path:
    lines = [f'store = "{tmp / "store"}"']
    for source, path, marking in feeds:
        lines += ["[[feeds]]", f'source = "{source}"', f'paths = ["{path}"]',
                  f'marking = "{marking}"']
    lines += ["[screen]", f'start = "{START}"', f"days = {args.days}",
              f"threshold_km = {args.threshold_km}"]
    if args.workers:
        lines.append(f"workers = {args.workers}")
    lines += ["[report]", "primaries = [25544, 48274]"]
    if exports:
        lines += ["[exports]", f"release_to = {json.dumps(exports)}"]
    cfg = tmp / "nightly.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def run(cfg: Path) -> tuple[Path, dict, float]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ssafuse.cli", "run", "--config", str(cfg),
                           "--now", "2023-10-09T02:00:00Z"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        sys.exit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    (run_dir,) = list((cfg.parent / "store" / "runs").iterdir())
    return run_dir, json.loads((run_dir / "manifest.json").read_text()), wall


def stage(m: dict, name: str) -> dict:
    return next(s for s in m["stages"] if s["name"] == name)


def same_events(a: Path, b: Path) -> tuple[bool, int, int]:
    cols = ["object_id_1", "object_id_2", "tca", "miss_distance_km", "max_pc"]
    ta = pq.read_table(a, columns=cols).sort_by([(c, "ascending") for c in cols[:3]])
    tb = pq.read_table(b, columns=cols).sort_by([(c, "ascending") for c in cols[:3]])
    if ta.num_rows != tb.num_rows:
        return False, ta.num_rows, tb.num_rows
    ok = (ta["object_id_1"].equals(tb["object_id_1"])
          and ta["object_id_2"].equals(tb["object_id_2"])
          and np.all(np.abs(ta["tca"].cast("int64").to_numpy() - tb["tca"].cast("int64").to_numpy())
                     <= 1000)
          and np.allclose(ta["miss_distance_km"].to_numpy(), tb["miss_distance_km"].to_numpy(),
                          rtol=0, atol=1e-9)
          # no max Pc (NaN) must be so in both
          and np.allclose(ta["max_pc"].to_numpy(), tb["max_pc"].to_numpy(), rtol=1e-12,
                          equal_nan=True))
    return bool(ok), ta.num_rows, tb.num_rows


def check_partner(tmp: Path, feeds, run_dir: Path, args, code: str = "JPN") -> None:
    """Exit nonzero unless ``code``'s export equals a run over only the feeds it may receive
    (chosen here from the markings as written, not by ssafuse): the public feed, and in case
    distinct its own third."""
    own = [f for f in feeds if f[2] == "UNCLASSIFIED" or f[2].endswith(f", {code}")]
    alone = tmp / "alone"
    alone.mkdir()
    prun, pm, _ = run(config(alone, own, [], args))
    ok, n_got, n_want = same_events(run_dir / "exports" / code / "conjunctions.parquet",
                                    prun / "conjunctions.parquet")
    print(f"  check: {code}'s export equals a run over its {len(own)} feed(s) alone: {ok} "
          f"({n_got} vs {n_want} events; that screening {stage(pm, 'screen')['seconds']:.2f} s;"
          f" same pairs, TCA within 1 us, miss within 1e-9 km, max Pc within 1e-12)")
    if not ok:
        sys.exit(f"{code}'s tear-line export differs from a run over its own feeds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--threshold-km", type=float, default=5.0)
    ap.add_argument("--share", type=float, default=0.1, help="share of objects restricted")
    ap.add_argument("--workers", type=int, default=0, help="processes (0: every core)")
    ap.add_argument("--case", choices=["shared", "distinct"], default="shared")
    ap.add_argument("--keep", action="store_true", help="keep the stores and print where")
    ap.add_argument("--no-check", action="store_true",
                    help="skip the run of JPN's feeds alone that JPN's export must equal")
    args = ap.parse_args()
    if not CATALOGUE.exists():
        sys.exit(f"{CATALOGUE} is absent (../shared/data ships with CI)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_tearline_"))
    try:
        partners = ["GBR", "AUS", "JPN"]
        feeds = [("public", str(CATALOGUE), "UNCLASSIFIED")]
        ids = restricted_feed(tmp / "restricted.json", args.share)
        if args.case == "shared":
            feeds.append(("restricted", str(tmp / "restricted.json"), "SECRET//REL TO USA, GBR"))
        else:  # three thirds, each releasable to one partner
            data = json.loads((tmp / "restricted.json").read_text())
            for k, code in enumerate(partners):
                part = tmp / f"restricted_{code}.json"
                part.write_text(json.dumps(data[k::3]))
                feeds.append((f"restricted-{code.lower()}", str(part),
                              f"SECRET//REL TO USA, {code}"))
        full = tmp / "full"
        full.mkdir()
        run_dir, m, wall = run(config(full, feeds, partners, args))
        screen_s = stage(m, "screen")["seconds"]
        exports_s = stage(m, "exports")["seconds"]
        print(f"tear-line exports, {CATALOGUE.name}, {args.days:g}-day window, "
              f"{args.threshold_km:g} km, {os.cpu_count()} cores, case {args.case}: "
              f"{len(ids)} objects ({args.share:.0%}) with newer restricted element sets")
        print(f"  full run: objects {stage(m, 'screen')['counts']['objects']}, events "
              f"{stage(m, 'screen')['counts']['conjunctions']}")
        print(f"  baseline, one full screening (screen stage):   {screen_s:8.2f} s")
        print(f"  three partners' tear-line exports (exports stage): {exports_s:8.2f} s "
              f"= {exports_s / screen_s:.2f} x the full screening (target <= 0.50)")
        for code in partners:
            ex = json.loads((run_dir / "exports" / code / "export.json").read_text())
            print(f"  {code}: events {ex['exported']['conjunctions']} released, "
                  f"{ex['recomputed']['conjunctions']} recomputed, "
                  f"{ex['withheld']['conjunctions']} withheld; element sets replaced "
                  f"{ex['recomputed']['catalogue']}; screened again {ex['screened_again']}; "
                  f"view shared with {m['exports'][code]['shared_view_with'] or '-'}")
        print(f"  whole command {wall:.1f} s")
        if not args.no_check:
            check_partner(tmp, feeds, run_dir, args)
    finally:
        if args.keep:
            print(f"  kept: {tmp}")
        else:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

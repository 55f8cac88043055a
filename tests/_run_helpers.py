"""Helpers for the nightly-job tests: write a run config, run `ssafuse run` as cron would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import SAMPLES

NOW = "2026-03-10T02:00:00Z"
#: The three real objects that pass within 5 km of the ISS on 2026-03-10 (sample_tles/ORIGIN.md):
#: with them a sample night has real close approaches, not only vehicles docked to a station.
ISS_NEIGHBOURS = SAMPLES / "celestrak_active_gp_2026-03-10_iss_neighbours.csv"


def toml_value(v) -> str:
    return json.dumps(v)  # TOML accepts JSON strings, numbers, booleans and arrays of them


def write_config(path: Path, *, store: Path, feeds: list[dict], screen: dict,
                 exports=(), correlate: dict | None = None, pc: dict | None = None,
                 report: dict | None = None, od: dict | None = None) -> Path:
    lines = [f"store = {toml_value(str(store))}"]
    for f in feeds:
        lines.append("[[feeds]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in f.items()]
    for name, table in (("screen", screen), ("pc", pc), ("report", report),
                        ("correlate", correlate), ("od", od),
                        ("exports", {"release_to": list(exports)} if exports else None)):
        if table:
            lines.append(f"[{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def sample_config(tmp: Path, store: Path | None = None, **screen) -> Path:
    """The sample element sets as two feeds with different markings."""
    # the active satellites are of 2025-04-23, 321 days before the window: screened anyway
    screen = {"start": "2026-03-10T00:00:00Z", "days": 1.0, "threshold_km": 5.0,
              "primaries": [25544], "max_epoch_gap_days": 365, **screen}
    return write_config(
        tmp / "nightly.toml", store=store or tmp / "store", screen=screen, exports=["GBR", "JPN"],
        feeds=[{"source": "celestrak",
                "paths": [str(SAMPLES / "celestrak_active_2025-04-23_first300.tle"),
                          str(SAMPLES / "celestrak_stations_gp_2026-03-10.json"),
                          str(ISS_NEIGHBOURS)],
                "marking": "UNCLASSIFIED"},
               {"source": "partner-udl", "paths": [str(SAMPLES / "udl_elset_sample.json")],
                "format": "udl-elset", "marking": "UNCLASSIFIED//REL TO USA, GBR, AUS"}])


def command(config: Path, now: str = NOW, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ssafuse.cli", "run", "--config", str(config), "--now", now,
            *extra]


def env() -> dict:
    return dict(os.environ)


def run_cli(config: Path, now: str = NOW, *extra: str, timeout: float = 240):
    return subprocess.run(command(config, now, *extra), capture_output=True, text=True,
                          timeout=timeout, env=env())


def run_dir(store: Path) -> Path:
    (only,) = [d for d in (store / "runs").iterdir() if (d / "manifest.json").exists()]
    return only

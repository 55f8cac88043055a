"""The README's first command on a fresh clone: `ssafuse run --config examples/nightly.toml` on
the bundled catalogue (examples/catalogue_2026-03-10, no ../shared needed).

Expected values and where they come from:
* Which objects are docked to the ISS and the CSS: the bundled stations file read with Python's
  ``gzip`` and ``json`` (objects sharing the core module's element set, and the core module's
  NORAD number from CelesTrak's own names), not ssafuse's readers.
* Close approaches: counted from the run's conjunctions.parquet and checked against
  python-sgp4 (``Satrec.twoline2rv`` of TLE lines that sgp4's ``exporter`` writes from the
  bundled OMM values) at the reported TCA.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import subprocess

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sgp4 import omm
from sgp4.api import Satrec
from sgp4.conveniences import jday_datetime

from _run_helpers import run_cli, run_dir
from conftest import ROOT
from ssafuse.runs import event_keys
from test_report import CHROMIUM_FLAGS, _chromium

BUNDLE = ROOT / "examples" / "catalogue_2026-03-10"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The shipped config as it is, its store moved into a temporary folder."""
    tmp = tmp_path_factory.mktemp("first")
    text = (ROOT / "examples" / "nightly.toml").read_text()
    cfg = tmp / "nightly.toml"
    cfg.write_text(text.replace('store = "../store"', f'store = "{tmp / "store"}"')
                   .replace('"catalogue_2026-03-10/"', f'"{BUNDLE}/"')
                   .replace('"../sample_tles/', f'"{ROOT / "sample_tles"}/'))
    done = run_cli(cfg, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ssafuse run 20260310T0000Z-") and ": OK\n" in done.stdout
    return run_dir(tmp / "store")


def _records() -> list[dict]:
    """Every record of the bundled stations (OMM JSON) and active (OMM CSV) files."""
    recs = json.loads(gzip.decompress((BUNDLE / "celestrak_stations_gp.json.gz").read_bytes()))
    return recs + list(_gp_rows().values())


ELEMENT_KEYS = ("MEAN_MOTION", "ECCENTRICITY", "INCLINATION", "RA_OF_ASC_NODE",
                "ARG_OF_PERICENTER", "MEAN_ANOMALY")


def _docked_to(core_name: str) -> set[int]:
    """NORAD numbers of the bundled objects that carry the core module's own element set
    (CelesTrak gives the modules and docked vehicles of a station the station's)."""
    recs = _records()

    def key(r):
        return (r["EPOCH"], *(float(r[k]) for k in ELEMENT_KEYS))

    (core,) = {key(r) for r in recs if r["OBJECT_NAME"] == core_name}
    return {int(r["NORAD_CAT_ID"]) for r in recs if key(r) == core}


def test_first_run_finds_real_close_approaches_and_lists_docked_vehicles_as_groups(first_run):
    conj = pq.read_table(first_run / "conjunctions.parquet")
    real = conj.filter(pc.invert(conj["attached"]))
    assert pc.sum(pc.less(real["miss_distance_km"], 5.0)).as_py() >= 100
    assert pc.sum(pc.less(real["miss_distance_km"], 1.0)).as_py() >= 100
    # the docked vehicles: exactly the objects sharing the ISS's and the CSS's element set
    att = conj.filter(conj["attached"]).to_pylist()
    for core, group in (("ISS (ZARYA)", "ISS"), ("CSS (TIANHE)", "CSS (Tiangong)")):
        want = _docked_to(core)
        assert len(want) >= 3, core
        got = {x for r in att if r["attached_group"] == group
               for x in (r["object_id_1"], r["object_id_2"])}
        assert got == want, core
    assert all(r["pc"] is None and r["max_pc"] is None for r in att)
    # CDMs only for conjunctions: none for a docked pair, one per event the report lists
    links = json.loads((first_run / "run.json").read_text())["cdm_links"]
    assert len(links) >= 20 and not set(links) & set(event_keys(conj.filter(conj["attached"])))
    assert len(list((first_run / "cdm").glob("*.cdm"))) == len(links)
    assert real["max_pc"].null_count == 0
    assert set(real["max_pc_method"].to_pylist()) == {"socrates"}


def _gp_rows() -> dict[int, dict]:
    text = gzip.decompress((BUNDLE / "celestrak_active_gp.csv.gz").read_bytes()).decode()
    return {int(r["NORAD_CAT_ID"]): r for r in csv.DictReader(io.StringIO(text))}


def test_first_run_closest_events_are_close_in_python_sgp4(first_run):
    """The ten closest real events: python-sgp4 from CelesTrak's own OMM values puts the two
    objects at the reported miss distance at the reported TCA (TEME, 1 m)."""
    conj = pq.read_table(first_run / "conjunctions.parquet")
    real = conj.filter(pc.invert(conj["attached"])).sort_by("miss_distance_km").slice(0, 10)
    rows = _gp_rows()
    checked = 0
    for ev in real.to_pylist():
        if ev["object_id_1"] not in rows or ev["object_id_2"] not in rows:
            continue   # an object of another bundled file
        pos = []
        for oid in (ev["object_id_1"], ev["object_id_2"]):
            sat = Satrec()
            omm.initialize(sat, rows[oid])
            jd, fr = jday_datetime(ev["tca"])
            e, r, _ = sat.sgp4(jd, fr)
            assert e == 0
            pos.append(np.array(r))
        assert math.isclose(np.linalg.norm(pos[0] - pos[1]), ev["miss_distance_km"],
                            abs_tol=1e-3)
        checked += 1
    assert checked >= 5


def test_first_run_report_in_headless_chromium(first_run, tmp_path):
    exe = _chromium()
    common = CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([exe, *common, "--dump-dom",
                          (first_run / "report.html").resolve().as_uri()],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    conj = pq.read_table(first_run / "conjunctions.parquet")
    real = conj.filter(pc.invert(conj["attached"]))
    # every docked group is named once, in its own section, with no Pc
    for group in ("ISS", "CSS (Tiangong)"):
        assert dom.count(f">{group}<") == 1, group
    # the closest real pair is listed
    closest = real.sort_by("miss_distance_km").slice(0, 1).to_pylist()[0]
    assert str(closest["object_id_2"]) in dom and str(closest["object_id_1"]) in dom

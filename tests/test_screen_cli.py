"""`ssafuse screen` from the command line: files in, a SOCRATES event out, run kept in the store."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.parquet as pq
from click.testing import CliRunner

from ssafuse.cli import EXIT_OK, main
from ssafuse.records import read_file
from ssafuse.schema import ELEMENT_COLUMNS
from ssafuse.store import Store

from conftest import shared


def _elements(path):
    table = read_file(path, source="x").elements.sort_by("object_id")
    return table.select(list(ELEMENT_COLUMNS)).to_pylist()


def test_screen_cli_reproduces_a_socrates_event_and_records_the_run(tmp_path):
    base = shared("socrates_2026-03-09")
    listed = json.loads((base / "socrates_top20_maxProb.json").read_text())["conjunctions"]
    # the pair in two files and formats (one element set per object is screened): take the
    # first event whose TLE holds the very same values as the full-precision CSV (a TLE rounds
    # BSTAR to 5 digits, which moves some events by metres; tests/test_crossformat.py)
    for event in listed:
        gp = base / "top20_pair_gp" / event["gp_file"].replace(".txt", ".csv")
        tle = base / "top20_pair_gp" / event["gp_file"]
        if _elements(gp) == _elements(tle):
            break
    out, store = tmp_path / "conj.parquet", tmp_path / "store"
    result = CliRunner().invoke(main, [
        "screen", str(gp), str(tle), "--start", "2026-03-09T18:00:00Z", "--days", "7",
        "--threshold-km", "5", "--out", str(out), "--store", str(store), "--workers", "1"])
    assert result.exit_code == EXIT_OK, result.output
    conj = pq.read_table(out).to_pylist()
    pair = sorted((event["obj1_norad"], event["obj2_norad"]))
    assert {(c["object_id_1"], c["object_id_2"]) for c in conj} == {tuple(pair)}
    want = dt.datetime.fromisoformat(event["tca"].replace("Z", "+00:00"))
    best = min(conj, key=lambda c: abs((c["tca"] - want).total_seconds()))
    # SOCRATES prints TCA to the millisecond and range to the metre (tests/test_screen.py
    # holds the same bounds for all 20 events)
    assert abs((best["tca"] - want).total_seconds()) <= 0.010
    assert abs(best["miss_distance_km"] - event["min_range_km"]) <= 1e-3
    runs = Store(store).manifests("screen")
    assert len(runs) == 1 and runs[0]["counts"]["conjunctions"] == len(conj)
    assert len(list((store / "conjunctions").glob("screen-*.parquet"))) == 1


def test_screen_of_a_folder_reads_only_files_some_format_reads(tmp_path):
    """A folder of feeds beside a README and a script: only the feed files are screened (the
    extensions `ssafuse formats` lists), nothing else is tried and refused."""
    from conftest import SAMPLES

    folder = tmp_path / "feeds"
    folder.mkdir()
    (folder / "active.tle").write_bytes(
        (SAMPLES / "celestrak_active_2025-04-23_first300.tle").read_bytes())
    (folder / "README.md").write_text("# not a feed\n")
    (folder / "fetch.py").write_text("print('not a feed')\n")
    out = tmp_path / "conj.parquet"
    result = CliRunner().invoke(main, [
        "screen", str(folder), "--start", "2025-04-23T00:00:00Z", "--days", "0.05",
        "--out", str(out), "--workers", "1"])
    assert result.exit_code == EXIT_OK, result.output + result.stderr
    assert "REFUSED" not in result.stderr
    assert out.exists()

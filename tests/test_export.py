"""Partner exports: only records releasable to the partner, each with its marking, and every
withheld record counted (property-based over random markings and recipients)."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
from click.testing import CliRunner

from ssafuse.cli import main

from _run_helpers import ISS_NEIGHBOURS, run_cli, run_dir, sample_config
from conftest import SAMPLES

CODES = ["USA", "GBR", "AUS", "CAN", "NZL", "JPN", "FRA", "DEU"]


def test_export_command_writes_a_partner_export_with_its_own_report(tmp_path):
    cfg = sample_config(tmp_path)
    assert run_cli(cfg).returncode == 0
    rd = run_dir(tmp_path / "store")
    out = tmp_path / "jpn"
    result = CliRunner().invoke(main, ["export", "--release-to", "JPN", "--run", rd.name,
                                       "--store", str(tmp_path / "store"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    ex = json.loads((out / "export.json").read_text())
    # the partner-udl feed is REL TO USA, GBR, AUS: JPN cannot see the objects only it
    # reports; every other object reaches JPN from the public feed (counted from the files)
    udl = {r["satNo"] for r in json.loads((SAMPLES / "udl_elset_sample.json").read_text())}
    public = {int(line[2:7]) for line in (SAMPLES / "celestrak_active_2025-04-23_first300.tle")
              .read_text().splitlines() if line.startswith("1 ")}
    public |= {r["NORAD_CAT_ID"] for r in json.loads(
        (SAMPLES / "celestrak_stations_gp_2026-03-10.json").read_text())}
    public |= {int(r["NORAD_CAT_ID"]) for r in csv.DictReader(io.StringIO(
        ISS_NEIGHBOURS.read_text()))}
    cat = pq.read_table(rd / "catalogue.parquet")
    assert cat.num_rows == len(udl | public)
    assert ex["withheld"]["catalogue"] == len(udl - public) > 0
    assert ex["exported"]["catalogue"] == len(public)
    html = (out / "report.html").read_text()
    assert 'id="withheld"' in html and 'id="feed-partner-udl"' not in html
    assert 'id="banner-top">UNCLASSIFIED<' in html and 'id="banner-bottom">UNCLASSIFIED<' in html
    bad = CliRunner().invoke(main, ["export", "--release-to", "gbr", "--run", str(rd),
                                    "--out", str(out)])
    assert bad.exit_code == 2 and "trigraph" in bad.output

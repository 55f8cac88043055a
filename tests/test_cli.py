"""The command line: the documented commands, their output and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq
from click.testing import CliRunner

from ssafuse.cli import EXIT_OK, EXIT_SOME_FILES_REFUSED, EXIT_USAGE, main

from conftest import SAMPLES


def test_ingest_then_catalogue_on_the_samples(tmp_path):
    runner = CliRunner()
    store = tmp_path / "store"
    result = runner.invoke(main, ["ingest", str(SAMPLES), "--store", str(store),
                                  "--source", "celestrak"])
    assert result.exit_code == EXIT_OK, result.output
    assert "celestrak_active_2025-04-23_first300.tle  [tle]" in result.output
    assert "     300 accepted      0 rejected" in result.output
    out = tmp_path / "cat.parquet"
    result = runner.invoke(main, ["catalogue", "--store", str(store), "--out", str(out)])
    assert result.exit_code == EXIT_OK, result.output
    cat = pq.read_table(out)
    ids = cat["object_id"].to_pylist()
    assert ids == sorted(set(ids)) and 25544 in ids  # one row per object, ISS among them
    assert (store / "catalogue" / "catalogue.parquet").exists()


def test_refused_file_gives_exit_code_1(tmp_path):
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x00\x01 not a feed")
    result = CliRunner().invoke(main, ["ingest", str(junk), "--store", str(tmp_path / "s")])
    assert result.exit_code == EXIT_SOME_FILES_REFUSED
    assert "REFUSED" in result.output and "formats tried" in result.output


def test_bad_marking_and_unknown_format_are_usage_errors(tmp_path):
    runner = CliRunner()
    sample = str(SAMPLES / "celestrak_active_2025-04-23_first300.tle")
    bad = runner.invoke(main, ["ingest", sample, "--store", str(tmp_path),
                               "--marking", "SECRET//REL TO"])
    assert bad.exit_code == EXIT_USAGE and "REL TO" in bad.output
    fmt = runner.invoke(main, ["ingest", sample, "--store", str(tmp_path), "--format", "xls"])
    assert fmt.exit_code == EXIT_USAGE and "omm-kvn" in fmt.output
    assert not (tmp_path / "elements").exists()


def test_formats_lists_every_adapter():
    result = CliRunner().invoke(main, ["formats"])
    assert result.exit_code == EXIT_OK
    names = {line.split()[0] for line in result.output.splitlines()}
    assert {"tle", "omm-kvn", "omm-xml", "omm-json", "omm-csv", "udl-elset"} <= names


def test_console_script_help_runs():
    done = subprocess.run([sys.executable, "-m", "ssafuse.cli", "--help"], capture_output=True,
                          text=True, check=True)
    assert "Exit codes" in done.stdout and "ingest" in done.stdout

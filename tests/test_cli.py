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
    read, written = result.output.split("\nwritten")
    names = {line.split()[0] for line in read.splitlines()}
    assert {"tle", "omm-kvn", "omm-xml", "omm-json", "omm-csv", "udl-elset"} <= names
    wrote = {line.split()[0] for line in written.splitlines()[1:]}
    assert wrote == {"parquet", "cdm", "omm-xml", "omm-kvn", "omm-json", "tle", "csv",
                     "socrates-csv"}


def test_console_script_help_runs():
    done = subprocess.run([sys.executable, "-m", "ssafuse.cli", "--help"], capture_output=True,
                          text=True, check=True)
    assert "Exit codes" in done.stdout and "ingest" in done.stdout


# --- users' own feed descriptions: --formats-dir and SSAFUSE_FORMATS_DIR -------------------

def _own_description(folder, name):
    """The shipped UDL ElSet description under another name, in a user's folder."""
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "ingest_formats" / "udl_elset.toml"
    folder.mkdir(exist_ok=True)
    text = shipped.read_text(encoding="utf-8").replace('name = "udl-elset"', f'name = "{name}"')
    assert f'name = "{name}"' in text
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    return folder


def test_ingest_reads_a_feed_described_in_a_users_folder(tmp_path):
    mine = _own_description(tmp_path / "mine", "partner-elset")
    sample = SAMPLES / "udl_elset_sample.json"
    runner = CliRunner()
    args = ["ingest", str(sample), "--store", str(tmp_path / "store"), "--source", "p",
            "--format", "partner-elset"]
    refused = runner.invoke(main, args)  # without the folder the name is unknown: usage error
    assert refused.exit_code == EXIT_USAGE and "partner-elset" in refused.output
    result = runner.invoke(main, [*args, "--formats-dir", str(mine)])
    assert result.exit_code == EXIT_OK, result.output
    assert "      20 accepted      0 rejected" in result.output
    assert "[partner-elset]" in result.output
    listed = runner.invoke(main, ["formats"], env={"SSAFUSE_FORMATS_DIR": str(mine)})
    assert listed.exit_code == EXIT_OK and "partner-elset" in listed.output


def test_a_users_description_may_not_take_a_builtin_name(tmp_path):
    mine = _own_description(tmp_path / "mine", "udl-elset")
    result = CliRunner().invoke(main, ["ingest", str(SAMPLES / "udl_elset_sample.json"),
                                       "--store", str(tmp_path / "store"),
                                       "--formats-dir", str(mine)])
    assert result.exit_code == EXIT_USAGE
    assert "udl-elset" in result.output and "already registered" in result.output
    assert not (tmp_path / "store" / "elements").exists()  # refused before anything was read

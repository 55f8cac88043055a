"""The Parquet store: layout readable by DuckDB and pyarrow, idempotent and atomic ingest."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

from ssafuse.schema import ELEMENTS, REJECTS
from ssafuse.ingestion import ingest
from ssafuse.store import Store

from conftest import SAMPLES

NOW = dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.timezone.utc)
TLE_SAMPLE = SAMPLES / "celestrak_active_2025-04-23_first300.tle"
JSON_SAMPLE = SAMPLES / "celestrak_stations_gp_2026-03-10.json"


def _tle_records(path: Path) -> int:
    """Independent count: TLE line-1 lines in the file."""
    return sum(1 for line in path.read_text().splitlines() if line.startswith("1 "))


def _visible_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_ingest_counts_and_layout(tmp_path):
    store = Store(tmp_path / "store")
    report = ingest(store, [TLE_SAMPLE, JSON_SAMPLE], source="celestrak", now=NOW)
    assert [f.status for f in report.files] == ["ingested", "ingested"]
    assert report.files[0].accepted == _tle_records(TLE_SAMPLE) == 300
    assert report.files[1].accepted == 33  # CelesTrak stations list, per ORIGIN.md
    assert report.rejected == 0
    part = tmp_path / "store/elements/source=celestrak/ingest_date=2026-11-30"
    assert len(list(part.glob("part-*.parquet"))) == 2
    table = store.table("elements")
    assert table.schema.equals(ELEMENTS, check_metadata=False)
    assert table.num_rows == 333
    assert set(table["source"].to_pylist()) == {"celestrak"}
    manifest = store.manifests("ingest")[-1]
    assert manifest["counts"] == {"files": 2, "read": 333, "accepted": 333, "rejected": 0}
    assert manifest["versions"]["sgp4"]


def test_store_reads_as_is_with_duckdb_and_pyarrow(tmp_path):
    store = Store(tmp_path)
    ingest(store, [TLE_SAMPLE], source="celestrak", now=NOW)
    glob = str(tmp_path / "elements" / "**" / "*.parquet")
    rows = duckdb.sql(f"select source, ingest_date, count(*) from read_parquet('{glob}', "
                      "hive_partitioning=true) group by all").fetchall()
    assert rows == [("celestrak", dt.date(2026, 11, 30), 300)]  # DuckDB types the date
    iss = duckdb.sql(f"select object_name, inclination_deg from read_parquet('{glob}') "
                     "where object_id = 25544").fetchall()
    # ISS (ZARYA) line 2 of the sample: "2 25544  51.6356 ..." (inclination column 9-16)
    line2 = next(l for l in TLE_SAMPLE.read_text().splitlines() if l.startswith("2 25544"))
    assert iss == [("ISS (ZARYA)", float(line2[8:16]))]
    dataset = ds.dataset(tmp_path / "elements", format="parquet", partitioning="hive")
    assert dataset.count_rows() == 300


def test_reingest_same_file_changes_nothing(tmp_path):
    store = Store(tmp_path)
    ingest(store, [TLE_SAMPLE], source="celestrak", now=NOW)
    before = _visible_files(tmp_path / "elements")
    again = ingest(store, [TLE_SAMPLE], source="celestrak",
                         now=NOW + dt.timedelta(days=1))
    assert again.files[0].status == "already-ingested"
    assert again.accepted == 0
    assert _visible_files(tmp_path / "elements") == before
    assert store.table("elements").num_rows == 300
    # The same bytes from another feed are another feed's records.
    other = ingest(store, [TLE_SAMPLE], source="spacetrack", now=NOW)
    assert other.files[0].status == "ingested"
    assert store.table("elements").num_rows == 600


def test_unknown_file_is_refused_and_the_rest_ingested(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("minutes of the partner meeting\nnothing orbital here\n")
    store = Store(tmp_path / "store")
    report = ingest(store, [junk, TLE_SAMPLE, tmp_path / "missing.tle"], source="mixed", now=NOW)
    statuses = {Path(f.uri).name: f.status for f in report.files}
    assert statuses == {"notes.txt": "refused", TLE_SAMPLE.name: "ingested",
                        "missing.tle": "refused"}
    assert "formats tried" in report.files[0].message and "tle" in report.files[0].message
    assert "cannot read file" in report.files[2].message
    rejects = store.table("rejects")
    assert rejects.schema.equals(REJECTS, check_metadata=False)
    row = rejects.to_pylist()[0]
    assert row["source_uri"] == str(junk) and row["source_record"] == 0
    assert "formats tried" in row["reason"]
    assert store.table("elements").num_rows == 300


def test_bad_default_marking_is_refused_before_anything_is_written(tmp_path):
    from ssafuse.errors import MarkingError

    with pytest.raises(MarkingError):
        ingest(Store(tmp_path), [TLE_SAMPLE], source="x", marking="SORTA SECRET", now=NOW)
    assert not (tmp_path / "elements").exists()


def _big_tle(path: Path, copies: int) -> int:
    text = TLE_SAMPLE.read_text()
    with open(path, "w") as fh:
        for _ in range(copies):
            fh.write(text)
    return copies * 300


@pytest.mark.slow
def test_killed_ingest_leaves_a_clean_store_and_reingest_completes(tmp_path):
    """SIGKILL an ingest while its hidden part file is being written: nothing half-written is
    visible, the store reads cleanly, and re-running the ingest gives the full result."""
    big = tmp_path / "big.tle"
    n = _big_tle(big, 1000)  # 300,000 records: seconds of work, enough to be caught mid-write
    root = tmp_path / "store"
    code = ("import sys, datetime as dt; from ssafuse.ingestion import ingest; "
            "from ssafuse.store import Store; "
            "ingest(Store(sys.argv[1]), [sys.argv[2]], source='s', "
            "now=dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(root), str(big)])
    deadline = time.monotonic() + 120
    caught = False
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.endswith(".tmp") for p in root.rglob(".*")):
            os.kill(proc.pid, signal.SIGKILL)
            caught = True
            break
        time.sleep(0.005)
    proc.wait()
    assert caught and proc.returncode == -signal.SIGKILL, "ingest finished before it was killed"
    store = Store(root)
    assert store.table("elements").num_rows == 0  # the part was never renamed into view
    assert list(root.glob("elements/**/*.parquet")) == []  # only the hidden .tmp is there
    assert list(root.glob("elements/**/.*.tmp")), "the killed write left its hidden file"
    report = ingest(store, [big], source="s", now=NOW)
    assert report.files[0].status == "ingested" and report.files[0].accepted == n
    assert store.table("elements").num_rows == n
    assert not list(root.rglob("*.tmp")), "the re-run removed the killed run's hidden file"

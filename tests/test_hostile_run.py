"""Issue 17: hostile feeds and careless operators never cost a night, a file or a record.

Each test here failed on the code before the issue: the defect is named in its docstring.
Expected values come from the inputs themselves (the element sets' own epochs, a run without
the hostile feed), never from ssafuse's output pasted back.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ssafuse.ingestion import ingest
from ssafuse.nightly import EXIT_FAILED, EXIT_OK, ConfigError, load_config, run
from ssafuse.store import Store

from _run_helpers import ISS_NEIGHBOURS, run_cli, write_config
from conftest import SAMPLES, shared

STATIONS = SAMPLES / "celestrak_stations_gp_2026-03-10.json"
ACTIVE = SAMPLES / "celestrak_active_2025-04-23_first300.tle"
WINDOW = {"start": "2026-03-10T00:00:00Z", "days": 0.25, "threshold_km": 5.0, "workers": 1}
ISS = 25544


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ssafuse.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def _one_line_error(done: subprocess.CompletedProcess, command: str) -> str:
    """The failure's one line on stderr (no traceback)."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith(f"ssafuse {command}")]
    assert len(lines) == 1, done.stderr
    return lines[0]


# -- configuration values (defects 5 and 6) ---------------------------------------------------

def _config(tmp_path: Path, **tables) -> Path:
    feeds = tables.pop("feeds", [{"source": "celestrak", "paths": [str(STATIONS)]}])
    return write_config(tmp_path / "n.toml", store=tmp_path / "store", feeds=feeds,
                        screen=tables.pop("screen", dict(WINDOW)), **tables)


BAD_VALUES = [
    ("screen", "days", float("nan")), ("screen", "days", float("inf")),
    ("screen", "days", 1e9), ("screen", "threshold_km", float("nan")),
    ("screen", "workers", 0), ("screen", "workers", -3),
    ("screen", "primaries", "25544"),          # was read digit by digit: [2, 5, 5, 4, 4]
    ("pc", "write_cdms", "some"), ("report", "top", -5),
    ("feeds", "precedence", "high"), ("feeds", "source", ".."), ("feeds", "source", "."),
    ("feeds", "source", "../../etc"), ("feeds", "source", "a/b"),
]


@pytest.mark.parametrize("table, key, value", BAD_VALUES,
                         ids=[f"{t}.{k}={v!r}" for t, k, v in BAD_VALUES])
def test_a_bad_configuration_value_is_refused_naming_its_key(tmp_path, table, key, value):
    feed = {"source": "celestrak", "paths": [str(STATIONS)]}
    if table == "feeds":
        cfg = _config(tmp_path, feeds=[dict(feed, **{key: value})])
    else:
        cfg = _config(tmp_path, **{table: dict(WINDOW if table == "screen" else {},
                                                **{key: value})})
    text = cfg.read_text().replace("NaN", "nan").replace("Infinity", "inf")
    cfg.write_text(text)  # (TOML spells them nan and inf)
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert key in str(e.value)


def test_release_to_that_is_not_text_is_a_configuration_error(tmp_path):
    """``release_to = 5`` was a TypeError traceback with exit 1."""
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text() + "[exports]\nrelease_to = 5\n")
    done = run_cli(cfg)
    assert done.returncode == EXIT_FAILED
    assert "exports.release_to" in done.stderr and "Traceback" not in done.stderr


# -- source names and special files (defects 4, 5, 6) -----------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "../../etc", "a/b", ".hidden", ""])
def test_a_source_name_that_leaves_the_store_is_refused(tmp_path, name):
    with pytest.raises(ValueError, match="source name"):
        ingest(tmp_path / "store", [STATIONS], source=name)
    done = _cli("ingest", str(STATIONS), "--store", str(tmp_path / "store"), "--source", name)
    assert done.returncode == 2 and "source name" in done.stderr
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.json"))


def test_fifos_and_devices_are_refused_unread_and_the_rest_ingested(tmp_path):
    """A FIFO in an input folder hung ``ssafuse ingest`` for ever; a ``.tle`` link to
    /dev/zero read until killed. Both are refused by type before they are opened."""
    feed = tmp_path / "feed"
    feed.mkdir()
    os.mkfifo(feed / "a.tle")
    os.symlink("/dev/zero", feed / "b.tle")
    (feed / "c.json").write_bytes(STATIONS.read_bytes())
    done = _cli("ingest", str(feed), "--store", str(tmp_path / "store"), "--source", "p",
                timeout=60)
    assert done.returncode == 1, done.stderr  # some files refused, the rest ingested
    expected = len(json.loads(STATIONS.read_text()))
    assert f"total: {expected} accepted" in done.stdout
    refused = [ln for ln in done.stdout.splitlines() if "REFUSED" in ln]
    assert len(refused) == 2 and all("not a regular file" in ln for ln in refused)
    assert any("FIFO" in ln for ln in refused) and any("device" in ln for ln in refused)


def test_a_fifo_in_a_feed_does_not_hold_the_night_or_its_lock(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    os.mkfifo(feed / "x.tle")
    (feed / "stations.json").write_bytes(STATIONS.read_bytes())
    cfg = _config(tmp_path, feeds=[{"source": "celestrak", "paths": [str(feed)]}])
    done = run_cli(cfg, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr  # a file refused: warnings
    assert "not a regular file (a FIFO)" in done.stdout
    again = run_cli(cfg, timeout=120)  # the lock was released
    assert again.returncode == 1, again.stderr


def test_a_store_or_lock_that_cannot_be_used_is_one_line_and_exit_2(tmp_path):
    """A store that cannot be written, and a lock path that is a folder, were tracebacks
    with exit 1 (which means "warnings")."""
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    done = _cli("ingest", str(STATIONS), "--store", str(not_a_folder / "store"))
    assert done.returncode == 2
    assert "Not a directory" in _one_line_error(done, "ingest")
    cfg = _config(tmp_path)
    cfg.write_text(f"lock_file = {json.dumps(str(tmp_path))}\n" + cfg.read_text())
    done = run_cli(cfg)
    assert done.returncode == EXIT_FAILED
    assert "run lock" in _one_line_error(done, "run")
    cfg = _config(tmp_path)  # the store's own lock: it cannot be opened
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "store"), str(not_a_folder / "s")))
    done = run_cli(cfg)
    assert done.returncode == EXIT_FAILED
    assert "Not a directory" in _one_line_error(done, "run")
    lock = json.dumps(str(tmp_path / "run.lock"))  # a lock elsewhere: the run starts, fails
    cfg.write_text(f"lock_file = {lock}\n" + cfg.read_text())
    done = run_cli(cfg)
    assert done.returncode == EXIT_FAILED and "Traceback" not in done.stderr
    assert "FAILED" in done.stdout and "ERROR run: Not a directory" in done.stdout


# -- epochs (defects 2 and 9) -----------------------------------------------------------------

def _iss_from_2100(folder: Path) -> Path:
    """The stations group's ISS record, re-sent with epoch 2100-01-01."""
    iss = [r for r in json.loads(STATIONS.read_text()) if r["NORAD_CAT_ID"] == ISS]
    folder.mkdir(exist_ok=True)
    path = folder / "iss.json"
    path.write_text(json.dumps([dict(iss[0], EPOCH="2100-01-01T00:00:00.000000")]))
    return path


def test_an_element_set_from_the_future_is_rejected_and_hides_nothing(tmp_path):
    """Defect 2: the ISS re-sent by a second source with EPOCH 2100-01-01 won the catalogue
    (newest epoch), the ISS was excluded as decayed and its events went to 0."""
    hostile = _iss_from_2100(tmp_path / "hostile")
    screen = dict(WINDOW, primaries=[ISS])
    (tmp_path / "base").mkdir()
    base = _config(tmp_path / "base", screen=screen)
    assert run(load_config(base), now=dt.datetime(2026, 3, 10, 2, tzinfo=dt.timezone.utc)) \
        .exit_code == EXIT_OK
    both = _config(tmp_path, screen=screen, feeds=[
        {"source": "celestrak", "paths": [str(STATIONS)]},
        {"source": "partner", "paths": [str(hostile)]}])
    result = run(load_config(both), now=dt.datetime(2026, 3, 10, 2, tzinfo=dt.timezone.utc))
    partner = [f for f in result.manifest["feeds"] if f["source"] == "partner"][0]
    assert (partner["accepted"], partner["rejected"]) == (0, 1)
    rejects = Store(tmp_path / "store").table("rejects").to_pylist()
    assert "cannot come from the future" in rejects[0]["reason"]
    cat = pq.read_table(result.run_dir / "catalogue.parquet").to_pylist()
    (iss,) = [r for r in cat if r["object_id"] == ISS]
    assert iss["source"] == "celestrak" and iss["epoch"].year == 2026
    expected = pq.read_table(
        next((tmp_path / "base" / "store" / "runs").iterdir()) / "conjunctions.parquet")
    got = pq.read_table(result.run_dir / "conjunctions.parquet")
    assert expected.num_rows > 0 and got.num_rows == expected.num_rows


@pytest.mark.parametrize("start", ["2090-01-01T00:00:00Z", "1960-01-01T00:00:00Z"])
def test_a_window_far_from_every_epoch_fails_the_night(tmp_path, start):
    """Defect 6: a window in 2090 (or 1960) excluded every object and the run said OK."""
    cfg = _config(tmp_path, screen=dict(WINDOW, start=start))
    done = run_cli(cfg)
    assert done.returncode == EXIT_FAILED, done.stdout
    assert "0 of" in done.stdout and "could be screened" in done.stdout
    assert "epoch too far" in done.stdout


def test_stale_element_sets_are_excluded_with_their_age(tmp_path):
    """Defect 9: the sample's 300 element sets of 2025-04-23 were screened silently in a
    2026-03-10 window. By default (30 days) they are excluded, each with its gap, which is
    computed here from the TLE's own epoch field."""
    from sgp4.api import Satrec
    cfg = _config(tmp_path, feeds=[{"source": "celestrak", "paths": [str(ACTIVE),
                                                                     str(STATIONS)]}])
    result = run(load_config(cfg), now=dt.datetime(2026, 3, 10, 2, tzinfo=dt.timezone.utc))
    assert result.exit_code == EXIT_OK, result.summary
    excluded = {r["object_id"]: r for r in
                pq.read_table(result.run_dir / "excluded.parquet").to_pylist()}
    lines = ACTIVE.read_text().splitlines()
    start = dt.datetime(2026, 3, 10, tzinfo=dt.timezone.utc)
    fresh = {r["NORAD_CAT_ID"] for r in json.loads(STATIONS.read_text())}  # newer sets win
    checked = 0
    for k in range(0, len(lines) - 2, 3):
        sat = Satrec.twoline2rv(lines[k + 1], lines[k + 2])
        if sat.satnum in fresh:
            continue
        epoch = dt.datetime(2000 + sat.epochyr, 1, 1, tzinfo=dt.timezone.utc) + \
            dt.timedelta(days=sat.epochdays - 1)
        gap_days = (start - epoch).total_seconds() / 86400
        row = excluded[sat.satnum]
        assert row["error_code"] == 10
        assert f"{gap_days:,.1f} days from the window" in row["reason"]
        checked += 1
    assert checked >= 290
    screen = [s for s in result.stages if s.name == "screen"][0]
    assert screen.counts["screened"] == result.manifest["stages"][2]["counts"]["objects"] - \
        len([r for r in excluded.values() if r["excluded_from"] == start])


# -- concurrent ingests (defect 8) ------------------------------------------------------------

def test_two_ingests_of_one_file_at_once_ingest_it_once(tmp_path):
    """Two concurrent ingests of one file both reported every record accepted (a file of
    thousands of records, so that the two overlap)."""
    active = shared("catalogues/celestrak_gp_20260310/celestrak_active_gp.csv")
    with open(active) as fh:
        records = sum(1 for _ in fh) - 1  # the CSV's header line
    store = tmp_path / "store"
    args = [sys.executable, "-m", "ssafuse.cli", "ingest", str(active), "--store", str(store),
            "--source", "ct"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    said = sorted("already ingested" in out for out in outs)
    assert said == [False, True], outs
    assert Store(store).table("elements").num_rows == records


def test_a_disk_full_during_ingest_leaves_nothing_and_the_retry_ingests_all(tmp_path):
    """Disk full during ingest left a ``.tmp`` file and a traceback; the failure is now raised
    as the OSError it is (the command line makes it one line and exit 2), with no temporary
    file left and nothing in the ledger, so the retry ingests the whole file."""
    real = os.replace

    def full(a, b, *args, **kw):  # the file's ledger entry (JSON) cannot be written
        if os.fspath(b).endswith(".json"):
            raise OSError(28, "No space left on device", os.fspath(b))
        return real(a, b, *args, **kw)

    os.replace = full
    try:
        with pytest.raises(OSError, match="No space left"):
            ingest(tmp_path / "store", [ACTIVE], source="ct")
    finally:
        os.replace = real
    assert not [p for p in (tmp_path / "store").rglob("*") if p.name.endswith(".tmp")]
    report = ingest(tmp_path / "store", [ACTIVE], source="ct")
    assert [f.status for f in report.files] == ["ingested"] and report.accepted == 300


def test_xml_refused_for_its_entities_is_a_refused_file(tmp_path):
    """An entity bomb counted as "1 rejected, 0 refused" with exit 0."""
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?>\n<!DOCTYPE ndm [<!ENTITY a "aaaaaaaaaa">'
                    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
                    '<ndm><omm id="CCSDS_OMM_VERS" version="2.0"><body>&b;</body></omm></ndm>\n')
    done = _cli("ingest", str(bomb), "--store", str(tmp_path / "store"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "REFUSED" in done.stdout and "(1 refused)" in done.stdout


# -- faults at every write of the night (defect 5, "Must show") -------------------------------

def _small_night(tmp: Path) -> Path:
    """Two feeds, one partner export: every kind of file a night writes, in two seconds."""
    return write_config(
        tmp / "n.toml", store=tmp / "store", exports=["GBR"],
        feeds=[{"source": "celestrak", "paths": [str(STATIONS), str(ISS_NEIGHBOURS)]},
               {"source": "partner", "paths": [str(SAMPLES / "udl_elset_sample.json")],
                "format": "udl-elset", "marking": "UNCLASSIFIED//REL TO USA, GBR"}],
        screen=dict(WINDOW, days=1.0, max_epoch_gap_days=365),  # the ISS's neighbours' day
        report={"top": 1})  # one event page: the same writes as three, a third of the plots


def _night(cfg: Path, replace=None):
    """One night in this process; ``replace`` stands in for ``os.replace`` (every file
    ssafuse writes is committed by one)."""
    real = os.replace
    if replace is not None:
        os.replace = replace
    try:
        return run(load_config(cfg), now=dt.datetime(2026, 3, 10, 2, tzinfo=dt.timezone.utc))
    finally:
        os.replace = real


def _writes(tmp: Path) -> tuple[list[str], list[tuple]]:
    """The files a clean night writes, in order, and its events."""
    done: list[str] = []
    real = os.replace

    def counting(a, b, *args, **kw):
        done.append(os.fspath(b))
        return real(a, b, *args, **kw)

    result = _night(_small_night(tmp), counting)
    assert result.exit_code == EXIT_OK, result.summary
    return done, _events(result)


def _events(result) -> list[tuple]:
    conj = pq.read_table(result.run_dir / "conjunctions.parquet").to_pylist()
    return sorted((r["object_id_1"], r["object_id_2"], r["tca"], round(r["miss_distance_km"], 9))
                  for r in conj)


def test_a_write_failing_anywhere_fails_the_night_cleanly_and_a_rerun_completes(tmp_path):
    """ENOSPC (disk full) and EACCES (permissions) at each write of a night: the night says
    why in one line per error, exits 2, leaves no temporary file and no partial file, and
    the same night run again once the fault is gone completes with the events of a night
    that never failed. Every write but the 2nd..nth CDM or event page of a folder (the same
    code path as the first) is tried, each fault in a fresh store."""
    clean = tmp_path / "clean"
    clean.mkdir()
    targets, expected = _writes(clean)
    assert len(targets) > 30 and expected
    kinds = [(Path(t).parent, Path(t).suffix) for t in targets]
    picks = [k for k, kind in enumerate(kinds)
             if kind[1] not in (".cdm", ".html") or kinds[k - 1] != kind]
    assert len(picks) > 30
    for n, k in enumerate(picks):
        errno_, text = (28, "No space left on device") if n % 2 else (13, "Permission denied")
        calls = []
        real = os.replace

        def failing(a, b, *args, **kw):
            calls.append(b)
            if len(calls) == k + 1:
                raise OSError(errno_, text, os.fspath(b))
            return real(a, b, *args, **kw)

        tmp = tmp_path / f"fault{k}"
        tmp.mkdir()
        cfg = _small_night(tmp)
        got = _night(cfg, failing)
        where = targets[k].replace(str(clean), "")
        assert got.exit_code == EXIT_FAILED, (where, got.summary)
        assert any(text in e for e in got.errors), (where, got.errors)
        assert all("\n" not in e for e in got.errors)
        leftovers = [p for p in (tmp / "store").rglob("*") if p.name.endswith(".tmp")]
        assert not leftovers, (where, leftovers)
        target = Path(targets[k].replace(str(clean), str(tmp)))
        if targets[k] not in targets[:k]:
            assert not target.exists(), where
        again = _night(cfg)
        assert again.exit_code == EXIT_OK, (where, again.summary)
        assert _events(again) == expected, where


# -- hostile text (defect 1) ------------------------------------------------------------------

HOSTILE_NAMES = ["EVIL\nCOLLISION_PROBABILITY = 0.99", "EVIL\rX", "EVIL\x00", "EVIL\x1b[31m",
                 "EVIL\u2028X", "EVIL\u202eX"]


def test_a_record_with_control_characters_never_costs_the_night(tmp_path):
    """Defect 1: a partner record whose OBJECT_NAME held a newline or control character was
    accepted, then failed the assess stage every night (no Pc, no CDM, exit 2). Now each
    such record is rejected at ingest with its field named (in every format: the check is
    the ingest layer's), the rest of its file is kept, and the night completes with its
    events assessed, its CDMs written and nothing raw in the report or the CSV."""
    partner = tmp_path / "partner"
    partner.mkdir()
    records = json.loads(STATIONS.read_text())
    hostile = [dict(r, OBJECT_NAME=name) for r, name in zip(records, HOSTILE_NAMES)]
    (partner / "gp.json").write_text(json.dumps(hostile + records[len(HOSTILE_NAMES):]))
    lines = ACTIVE.read_text().splitlines()
    (partner / "a.tle").write_text("\n".join(
        [HOSTILE_NAMES[2], *lines[1:3], *lines[3:6]]) + "\n")
    cfg = write_config(
        tmp_path / "n.toml", store=tmp_path / "store", exports=["GBR"],
        feeds=[{"source": "celestrak", "paths": [str(STATIONS), str(ISS_NEIGHBOURS)]},
               {"source": "partner", "paths": [str(partner)],
                "marking": "UNCLASSIFIED//REL TO USA, GBR"}],
        screen=dict(WINDOW, days=1.0, primaries=[ISS], max_epoch_gap_days=365),
        pc={"write_cdms": "all"})
    cfg.write_text(cfg.read_text() + 'formats = ["parquet", "cdm", "csv"]\n')  # [exports]
    done = run_cli(cfg)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    rejects = Store(tmp_path / "store").table("rejects").to_pylist()
    assert len(rejects) == len(HOSTILE_NAMES) + 1
    assert all(r["field"] == "object_name" and "control character" in r["reason"]
               for r in rejects)
    rd = next((tmp_path / "store" / "runs").iterdir())
    conj = pq.read_table(rd / "conjunctions.parquet")
    # every event but the docked vehicles' (attached: no Pc, no CDM) has its max Pc and CDM
    real = conj.filter(pc.invert(conj["attached"]))
    assert real.num_rows == 3 and real["max_pc"].null_count == 0
    assert len(list((rd / "cdm").glob("*.cdm"))) == real.num_rows
    for name in ("report.html", "summary.txt", "exports/GBR/conjunctions.csv"):
        data = (rd / name).read_bytes()
        assert not any(b < 0x20 and b not in b"\n\r\t" for b in data), name
        assert "EVIL" not in data.decode(), name

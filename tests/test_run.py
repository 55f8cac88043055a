"""The nightly job (`ssafuse run`): end to end on real partner feeds, cron safety (one run at a
time, SIGKILL and re-run), idempotent re-runs, exit codes and logs."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ssafuse.nightly import (EXIT_ALREADY_RUNNING, EXIT_FAILED, EXIT_OK, EXIT_WARNINGS,
                             AlreadyRunning, ConfigError, load_config, run, run_lock)
from ssafuse.store import Store

from _run_helpers import NOW, command, env, run_cli, run_dir, sample_config, write_config
from conftest import ROOT, SAMPLES, shared

GP = "catalogues/celestrak_gp_20260310"


def _count_json_records(*paths) -> int:
    return sum(len(json.loads(p.read_text())) for p in paths)


def _norad_ids(*paths) -> set[int]:
    return {int(r["NORAD_CAT_ID"]) for p in paths for r in json.loads(p.read_text())}


def _all_rejects_tle(path):
    """Three real TLEs with every checksum digit made wrong: a file of rejects only."""
    lines = shared("catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt").read_text()
    out = []
    for line in lines.splitlines()[:9]:
        if line[:2] in ("1 ", "2 "):
            line = line[:68] + str((int(line[68]) + 1) % 10)
        out.append(line)
    path.write_text("\n".join(out) + "\n")
    return path


def test_end_to_end_partner_feeds_with_a_broken_feed(tmp_path):
    stations, visual = shared(f"{GP}/celestrak_stations_gp.json"), shared(f"{GP}/celestrak_visual_gp.json")
    cosmos = shared(f"{GP}/celestrak_cosmos-2251-debris_gp.json")
    iridium = shared(f"{GP}/celestrak_iridium-33-debris_gp.json")
    analyst = shared(f"{GP}/celestrak_analyst_gp.json")
    sites = shared("observations/sites/scottcampbell-satfit_STATIONS.IN")
    junk = tmp_path / "feed" / "junk.dat"
    junk.parent.mkdir()
    junk.write_bytes(b"\x00\x01\x02 not a feed at all")
    bad = _all_rejects_tle(tmp_path / "feed" / "bad.tle")
    store = tmp_path / "store"
    cfg = write_config(
        tmp_path / "nightly.toml", store=store,
        feeds=[
            {"source": "celestrak", "paths": [str(stations), str(visual)]},
            {"source": "gbr-debris", "paths": [str(cosmos), str(iridium)],
             "marking": "UNCLASSIFIED//REL TO USA, GBR"},
            {"source": "aus-analyst", "paths": [str(analyst)],
             "marking": "CONFIDENTIAL//REL TO USA, AUS"},
            {"source": "broken", "paths": [str(tmp_path / "feed" / "missing.tle"), str(junk),
                                           str(bad), str(tmp_path / "nothing" / "*.tle")],
             "marking": "SECRET//NOFORN"},
            {"source": "obs", "paths": [str(SAMPLES / "udl_eo_obs_sample.json")]},
        ],
        screen={"start": "2026-03-10T00:00:00Z", "days": 1.0, "threshold_km": 5.0,
                "primaries": [25544, 48274]},
        correlate={"sensors": [str(sites)]},
        exports=["GBR", "AUS"])
    done = run_cli(cfg, NOW, "--log-json")
    assert done.returncode == EXIT_WARNINGS, done.stderr[-3000:]

    # the broken feed is reported: in the logs (JSON lines), the cron summary and the manifest
    logs = [json.loads(line) for line in done.stderr.splitlines()]
    broken = [r for r in logs if r.get("feed") == "broken"]
    assert broken and broken[0]["level"] == "WARNING" and broken[0]["status"] == "failed"
    assert "WARNING feed broken" in done.stdout and "missing.tle" in done.stdout
    rd = run_dir(store)
    manifest = json.loads((rd / "manifest.json").read_text())
    feeds = {f["source"]: f for f in manifest["feeds"]}
    assert feeds["broken"]["status"] == "failed" and feeds["broken"]["accepted"] == 0
    problems = " ".join(feeds["broken"]["problems"])
    for what in ("missing.tle", "junk.dat", "every record rejected (3)", "matched no file"):
        assert what in problems
    assert [s["name"] for s in manifest["stages"]] == [
        "ingest", "catalogue", "correlate", "screen", "assess", "exports", "report"]
    assert all(s["status"] in ("ok", "warnings") for s in manifest["stages"])

    # nothing from the good feeds is lost: counts equal an independent count of the inputs
    expect = {"celestrak": _count_json_records(stations, visual),
              "gbr-debris": _count_json_records(cosmos, iridium),
              "aus-analyst": _count_json_records(analyst)}
    el = Store(store).table("elements", columns=["source"])
    got = {s: el.filter(pc.equal(el["source"], s)).num_rows for s in expect}
    assert got == expect
    assert {s: feeds[s]["accepted"] for s in expect} == expect
    assert all(feeds[s]["rejected"] == 0 for s in expect)
    assert feeds["obs"]["accepted"] == _count_json_records(SAMPLES / "udl_eo_obs_sample.json")
    catalogue = pq.read_table(rd / "catalogue.parquet")
    assert set(catalogue["object_id"].to_pylist()) == _norad_ids(stations, visual, cosmos,
                                                                 iridium, analyst)
    corr = [s for s in manifest["stages"] if s["name"] == "correlate"][0]
    assert corr["counts"]["observations"] + corr["counts"]["unknown_sensor"] == 37

    # report and exports exist; the report names the broken feed and carries both banners
    html = (rd / "report.html").read_text()
    assert 'id="feed-broken"' in html and "missing.tle" in html
    # overall marking: SECRET (the broken feed's default) and NOFORN (its releasability, empty,
    # intersected with every other), at top and bottom
    for where in ("top", "bottom"):
        assert f'id="banner-{where}">SECRET//NOFORN<' in html
    gbr_html = (rd / "exports" / "GBR" / "report.html").read_text()
    for where in ("top", "bottom"):
        assert f'id="banner-{where}">UNCLASSIFIED//REL TO GBR, USA<' in gbr_html
    assert 'id="feed-broken"' not in gbr_html and 'id="feed-aus-analyst"' not in gbr_html
    conj = pq.read_table(rd / "conjunctions.parquet")
    assert f'id="n-events">{conj.num_rows}<' in html
    for code in ("GBR", "AUS"):
        ex = json.loads((rd / "exports" / code / "export.json").read_text())
        assert (rd / "exports" / code / "report.html").exists()
        part = pq.read_table(rd / "exports" / code / "catalogue.parquet")
        assert ex["exported"]["catalogue"] == part.num_rows
        assert ex["exported"]["catalogue"] + ex["withheld"]["catalogue"] == catalogue.num_rows
    gbr = pq.read_table(rd / "exports" / "GBR" / "catalogue.parquet")
    assert "aus-analyst" not in set(gbr["source"].to_pylist())  # CONFIDENTIAL//REL TO USA, AUS
    assert json.loads((rd / "exports" / "GBR" / "export.json").read_text())["withheld"][
        "catalogue"] == expect["aus-analyst"]


def test_rerun_of_the_same_night_changes_nothing(tmp_path):
    cfg = sample_config(tmp_path)
    first = run_cli(cfg, "2026-03-10T02:00:00Z")
    assert first.returncode == EXIT_OK, first.stderr[-2000:]
    store = tmp_path / "store"

    def snapshot():
        return {p.relative_to(store): p.read_bytes() for p in sorted(store.rglob("*"))
                if p.is_file() and "_manifests" not in p.parts and p.name != "manifest.json"
                and p.name != "_run.lock"}

    before = snapshot()
    again = run_cli(cfg, "2026-03-10T05:30:00Z")  # later the same night: the same run
    assert again.returncode == EXIT_OK, again.stderr[-2000:]
    assert "reusing this run's screening" in again.stderr
    assert snapshot() == before
    assert len(list((store / "runs").iterdir())) == 1


def test_two_runs_at_once_one_is_refused_with_exit_3(tmp_path):
    # the first run is this process, holding the lock with the job's own run_lock: the
    # second is refused whatever the machine's speed (no race with a run that may finish)
    store = tmp_path / "store"
    cfg = write_config(tmp_path / "nightly.toml", store=store,  # a short night: one feed
                       feeds=[{"source": "celestrak",
                               "paths": [str(SAMPLES / "celestrak_stations_gp_2026-03-10.json")]}],
                       screen={"start": "2026-03-10T00:00:00Z", "days": 0.25,
                               "primaries": [25544], "workers": 1})
    with run_lock(store / "_run.lock", now=dt.datetime(2026, 3, 10, 2, tzinfo=dt.timezone.utc)):
        t0 = time.monotonic()
        second = run_cli(cfg, timeout=60)
        assert second.returncode == EXIT_ALREADY_RUNNING, second.stderr[-2000:]
        assert "another ssafuse run is active" in second.stderr
        assert f"pid {os.getpid()} since 2026-03-10T02:00:00+00:00" in second.stderr
        assert second.stdout == ""
        assert time.monotonic() - t0 < 30  # refused at once
        # nothing was done, and the holder's lock file is as it wrote it
        assert sorted(p.name for p in store.iterdir()) == ["_run.lock"]
        assert (store / "_run.lock").read_text().startswith(f"pid {os.getpid()} since ")
    first = run_cli(cfg)  # the lock released, the night runs
    assert first.returncode == EXIT_OK, first.stderr[-2000:]
    assert len(list((store / "_manifests").glob("run-*.json"))) == 1


def test_a_running_night_holds_the_lock_until_it_ends(tmp_path):
    """The real job takes the lock before its first stage and keeps it: stopped (SIGSTOP)
    once its ingest has started, it refuses a second run with exit 3 naming its pid, and
    once continued it completes. No timing: the first run cannot finish while stopped."""
    cfg = sample_config(tmp_path)
    first = subprocess.Popen(command(cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env())
    try:
        for line in first.stderr:  # the lock is held from before the first stage starts
            if "[ingest] started" in line:
                break
        os.kill(first.pid, signal.SIGSTOP)
        second = run_cli(cfg, timeout=60)
        assert second.returncode == EXIT_ALREADY_RUNNING, second.stderr[-2000:]
        assert f"pid {first.pid}" in second.stderr and second.stdout == ""
    finally:
        os.kill(first.pid, signal.SIGCONT)
        rest = first.communicate(timeout=240)
    assert first.returncode == EXIT_OK, rest[1][-2000:]
    assert len(list((tmp_path / "store" / "_manifests").glob("run-*.json"))) == 1


def test_sigkill_part_way_then_rerun_equals_an_uninterrupted_run(tmp_path):
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    killed_dir.mkdir()
    clean_dir.mkdir()
    cfg_killed = sample_config(killed_dir, primaries=[25544, 48274])
    cfg_clean = sample_config(clean_dir, primaries=[25544, 48274])
    proc = subprocess.Popen(command(cfg_killed), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env())
    for line in proc.stderr:
        if "[screen] started" in line:  # ingested and catalogued, screening under way
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not list((killed_dir / "store" / "runs").glob("*/manifest.json"))

    rerun = run_cli(cfg_killed)
    assert rerun.returncode == EXIT_OK, rerun.stderr[-2000:]  # the lock died with the process
    clean = run_cli(cfg_clean)
    assert clean.returncode == EXIT_OK, clean.stderr[-2000:]

    a, b = run_dir(killed_dir / "store"), run_dir(clean_dir / "store")
    assert a.name == b.name  # same window and settings: the same run id
    for name in ("conjunctions.parquet", "catalogue.parquet", "excluded.parquet"):
        assert pq.read_table(a / name).equals(pq.read_table(b / name)), name
    for rel in ("report.html", "summary.txt", "exports/GBR/export.json",
                "exports/JPN/report.html"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    cdms_a = {p.name: p.read_bytes() for p in (a / "cdm").iterdir()}
    assert cdms_a and cdms_a == {p.name: p.read_bytes() for p in (b / "cdm").iterdir()}
    ea = Store(killed_dir / "store").table("elements").sort_by(
        [("source", "ascending"), ("source_uri", "ascending"), ("source_record", "ascending")])
    eb = Store(clean_dir / "store").table("elements").sort_by(
        [("source", "ascending"), ("source_uri", "ascending"), ("source_record", "ascending")])
    assert ea.num_rows == eb.num_rows == 300 + 33 + 3 + 20   # the sample's four files
    assert ea.drop(["source_uri"]).equals(eb.drop(["source_uri"]))


def test_lock_refuses_a_second_holder_and_frees_on_exit(tmp_path):
    lock = tmp_path / "s" / "_run.lock"
    with run_lock(lock):
        with pytest.raises(AlreadyRunning) as e:
            with run_lock(lock):
                pass
        assert e.value.lock_file == lock
    with run_lock(lock):  # released
        pass


def test_config_errors_name_the_key_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('store = "s"\n[[feeds]]\nsource = "x"\npaths = ["a"]\nmarking = "SECRET//REL TO"\n')
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    assert "feeds[0]" in str(e.value) and "REL TO" in str(e.value)
    typo = tmp_path / "typo.toml"
    typo.write_text('store = "s"\n[[feeds]]\nsource = "x"\npaths = ["a"]\n[screen]\nday = 1\n')
    with pytest.raises(ConfigError) as e:
        load_config(typo)
    assert "'day'" in str(e.value)
    done = run_cli(typo)
    assert done.returncode == EXIT_FAILED and "configuration error" in done.stderr


def _description_folder(folder, name: str):
    """A folder holding the shipped UDL ElSet description, renamed ``name``."""
    folder.mkdir()
    text = (ROOT / "ingest_formats" / "udl_elset.toml").read_text()
    assert 'name = "udl-elset"' in text
    (folder / "elset.toml").write_text(text.replace('name = "udl-elset"', f'name = "{name}"'))
    return folder


def test_formats_dir_reads_a_feed_in_the_users_own_description(tmp_path):
    """`formats_dir` (relative to the config file) adds the user's descriptions: a feed of
    `format = "partner-elset"` is read with it; the folder is part of the run's settings,
    and a config without the key keeps the settings (hence run ids) it had."""
    folder = _description_folder(tmp_path / "formats", "partner-elset")
    sample = SAMPLES / "udl_elset_sample.json"
    cfg_path = write_config(
        tmp_path / "nightly.toml", store=tmp_path / "store",
        feeds=[{"source": "partner", "paths": [str(sample)], "format": "partner-elset",
                "marking": "UNCLASSIFIED//REL TO USA, GBR"}],
        screen={"start": "2026-03-10T00:00:00Z", "days": 0.25, "threshold_km": 5.0,
                "workers": 1, "max_epoch_gap_days": 365})  # (the sample is of 2025-05)
    plain = cfg_path.read_text()
    with pytest.raises(ConfigError, match="partner-elset"):  # unknown without the folder
        load_config(cfg_path)
    cfg_path.write_text('formats_dir = "formats"\n' + plain)
    cfg = load_config(cfg_path)
    assert cfg.formats_dirs == (str(folder),)
    result = run(cfg, now=cfg.start)
    assert result.exit_code == EXIT_OK, result.summary
    (feed,) = result.manifest["feeds"]
    assert feed["status"] == "ok" and feed["accepted"] == _count_json_records(sample)
    assert [f["format"] for f in feed["files"]] == ["partner-elset"]
    assert result.manifest["settings"]["formats_dir"] == [str(folder)]
    cfg_path.write_text(plain.replace('"partner-elset"', '"udl-elset"'))
    assert "formats_dir" not in load_config(cfg_path).settings()


def test_formats_dir_never_overrides_a_format_by_name(tmp_path):
    """A description in `formats_dir` named like a shipped one (`udl-elset`) is a config
    error naming the folder key and the name, not a silent override; so is a folder that
    does not exist."""
    _description_folder(tmp_path / "formats", "udl-elset")
    cfg_path = sample_config(tmp_path)
    plain = cfg_path.read_text()
    cfg_path.write_text('formats_dir = ["formats"]\n' + plain)
    with pytest.raises(ConfigError) as e:
        load_config(cfg_path)
    assert "formats_dir" in str(e.value) and "'udl-elset'" in str(e.value)
    assert "rename" in str(e.value)
    cfg_path.write_text('formats_dir = "no-such-folder"\n' + plain)
    with pytest.raises(ConfigError, match="formats_dir.*no-such-folder.*not a folder"):
        load_config(cfg_path)

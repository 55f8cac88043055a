"""The nightly job fetching its feeds itself, end to end, from real HTTP servers on 127.0.0.1
that answer as the providers do (``tests/_providers.py``): Space-Track's full catalogue in 3LE
and JSON, a CelesTrak group, a UDL element-set feed with markings, a partner's HTTPS drop;
then a night whose partner fetch fails (the last good download is used and the report says
how old it is); a run killed during a fetch and run again (nothing lost, nothing fetched
twice); and the same job with its store on a local S3 server.

Expected counts come from the servers' data read without ssafuse (python-sgp4 on the 3LE
file, the JSON files, the UDL records as built); requests from the servers' own logs.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _providers import CelesTrakServer, FileServer, SpaceTrackServer, UdlServer, \
    self_signed_context, udl_records
from conftest import SAMPLES
from test_fetch import CATALOGUE_3LE, SECRET, ST_NOW, USER, epochs_after, \
    everything_written, needs_shared
from ssafuse import nightly
from ssafuse.timeutil import parse_iso

UTC = dt.timezone.utc
GOES_JSON = CATALOGUE_3LE.parent / "celestrak_gp_json_20250524" / "goes.json"
#: The night run. Space-Track's answer is its 2023 catalogue as of ST_NOW (the server's own
#: "now"): old element sets, ingested but left out of screening as too far from the window.
NIGHT = dt.datetime(2026, 3, 10, 2, tzinfo=UTC)
STATIONS = SAMPLES / "celestrak_stations_gp_2026-03-10.json"
NEIGHBOURS = SAMPLES / "celestrak_active_gp_2026-03-10_iss_neighbours.csv"


def toml(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def write_config(path: Path, store: str, feeds: list[dict], screen: dict,
                 extra: str = "", tail: str = "") -> Path:
    lines = [f"store = {toml(store)}", extra]
    for f in feeds:
        lines += ["[[feeds]]"] + [f"{k} = {toml(v)}" for k, v in f.items()]
    lines += ["[screen]"] + [f"{k} = {toml(v)}" for k, v in screen.items()] + [tail]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def servers(tmp_path, monkeypatch):
    """Every provider, serving real data; credentials in the environment only."""
    monkeypatch.setenv("ST_USERNAME", USER)
    monkeypatch.setenv("ST_PASSWORD", SECRET)
    monkeypatch.setenv("UDL_USERNAME", USER)
    monkeypatch.setenv("UDL_PASSWORD", SECRET)
    udl_elsets = udl_records("elset", 30, NIGHT - dt.timedelta(hours=40), 3600.0,
                             marking="S//REL TO USA, GBR")
    context, ca_file = self_signed_context(tmp_path)
    with SpaceTrackServer(CATALOGUE_3LE, USER, SECRET, now=ST_NOW) as st, \
            CelesTrakServer({"goes": GOES_JSON}) as ct, \
            UdlServer(USER, SECRET, {"elset": udl_elsets}, max_page=10) as udl, \
            FileServer({"drop/neighbours.csv": NEIGHBOURS.read_bytes()},
                       ssl_context=context) as drop:
        yield {"st": st, "ct": ct, "udl": udl, "drop": drop, "ca_file": ca_file,
               "udl_elsets": udl_elsets}


def provider_feeds(s: dict) -> list[dict]:
    full = "class/gp/decay_date/null-val/epoch/>now-30/orderby/norad_cat_id/format/"
    return [
        {"source": "spacetrack-3le", "provider": "spacetrack", "base_url": s["st"].url,
         "credentials": "env:ST", "query": full + "3le"},
        {"source": "spacetrack-json", "provider": "spacetrack", "base_url": s["st"].url,
         "credentials": "env:ST", "query": full + "json", "format": "omm-json"},
        {"source": "celestrak", "provider": "celestrak", "base_url": s["ct"].url,
         "query": {"GROUP": "goes", "FORMAT": "json"}},
        {"source": "udl", "provider": "udl", "base_url": s["udl"].url, "service": "elset",
         "credentials": "env:UDL", "page_size": 10, "format": "udl-elset",
         "marking": "UNCLASSIFIED//REL TO USA, GBR, AUS"},
        {"source": "partner", "provider": "http", "base_url": s["drop"].url,
         "path": "drop/neighbours.csv", "ca_file": s["ca_file"], "deadline_s": 3},
    ]


@needs_shared
def test_the_nightly_job_fetches_every_provider_then_survives_a_failed_fetch(
        tmp_path, servers, caplog):
    cfg = nightly.load_config(write_config(
        tmp_path / "nightly.toml", str(tmp_path / "store"), provider_feeds(servers),
        {"days": 1.0, "primaries": [25544], "max_epoch_gap_days": 365}))
    first = nightly.run(cfg, now=NIGHT)
    assert first.exit_code == 0, first.summary
    feeds = {f["source"]: f for f in first.manifest["feeds"]}
    expected_st = len(epochs_after(CATALOGUE_3LE, ST_NOW - dt.timedelta(days=30)))
    in_window = [r for r in servers["udl_elsets"]
                 if parse_iso(r["epoch"]) > NIGHT - dt.timedelta(hours=24)]
    assert {k: (f["fetch"]["status"], f["accepted"], f["rejected"]) for k, f in feeds.items()} \
        == {"spacetrack-3le": ("downloaded", expected_st, 0),
            "spacetrack-json": ("downloaded", expected_st, 0),
            "celestrak": ("downloaded", len(json.loads(GOES_JSON.read_bytes())), 0),
            "udl": ("downloaded", len(in_window), 0),
            "partner": ("downloaded", len(NEIGHBOURS.read_text().splitlines()) - 1, 0)}
    fetch = next(s for s in first.manifest["stages"] if s["name"] == "fetch")
    assert fetch["status"] == "ok" and fetch["counts"]["downloaded"] == 5
    assert servers["st"].violations == 0

    # the UDL feed's records keep their own marking, above the feed's floor
    import pyarrow.compute as pc  # (here only: one filter on the store's elements)
    from ssafuse.store import Store
    udl = Store(tmp_path / "store").table("elements", filter=pc.field("source") == "udl")
    assert set(udl["classification"].to_pylist()) == {"SECRET"}

    # the next night the partner's drop answers 503 only: its last download is used
    servers["drop"].fail_next(503, times=1000)
    night2 = NIGHT + dt.timedelta(days=1)
    second = nightly.run(cfg, now=night2)
    assert second.exit_code == 1
    partner = next(f for f in second.manifest["feeds"] if f["source"] == "partner")
    assert partner["fetch"]["status"] == "failed" and partner["fetch"]["age_hours"] == 24.0
    assert partner["accepted"] == feeds["partner"]["accepted"]  # the last good download
    assert any("feed partner: fetch failed" in w and "(24.0 h old)" in w
               for w in second.warnings)
    report = (second.run_dir / "report.html").read_text()
    assert "this run&#39;s fetch failed" in report or "this run's fetch failed" in report
    assert "24.0 h old" in report and "(24.0 h old)  FETCH FAILED" in second.summary
    assert SECRET not in everything_written(tmp_path / "store") + caplog.text + \
        first.summary + second.summary


def cron_config(tmp_path: Path, store: str, ct_url: str, drop_url: str, extra="",
                deadline_s: float = 300, tail: str = "") -> Path:
    return write_config(tmp_path / "cron.toml", store, [
        {"source": "celestrak", "provider": "celestrak", "base_url": ct_url,
         "query": {"GROUP": "stations", "FORMAT": "json"}},
        {"source": "partner", "provider": "http", "base_url": drop_url,
         "path": "neighbours.csv", "timeout_s": 120, "deadline_s": deadline_s}],
        {"days": 1.0, "primaries": [25544], "max_epoch_gap_days": 365}, extra, tail)


def run_cli(config: Path, now: str, **kw):
    return subprocess.Popen([sys.executable, "-m", "ssafuse.cli", "run", "--config",
                             str(config), "--now", now], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_a_killed_fetch_then_a_rerun_loses_nothing_and_fetches_nothing_twice(tmp_path):
    store = tmp_path / "store"
    with CelesTrakServer({"stations": STATIONS}) as ct, \
            FileServer({"neighbours.csv": NEIGHBOURS.read_bytes()}) as drop:
        config = cron_config(tmp_path, str(store), ct.url, drop.url)
        drop.delay_next(60.0)  # the partner's drop hangs: the run is killed meanwhile
        proc = run_cli(config, "2026-03-10T02:00:00Z")
        deadline = time.time() + 60
        while not drop.requests and time.time() < deadline:
            time.sleep(0.05)
        assert drop.requests, "the run never reached the partner's drop"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert len(ct.requests) == 1 and not list(store.glob("_raw/partner/*/*"))
        assert not (store / "elements").exists()  # killed before any ingest
        again = run_cli(config, "2026-03-10T02:30:00Z")
        out, err = again.communicate(timeout=300)
        assert again.returncode == 0, out + err
        assert len(ct.requests) == 1  # CelesTrak was not asked again
        assert len(drop.requests) == 2
    run = json.loads(next(store.glob("runs/*/manifest.json")).read_text())
    got = {f["source"]: (f["fetch"]["status"], f["accepted"]) for f in run["feeds"]}
    assert got == {"celestrak": ("skipped", len(json.loads(STATIONS.read_bytes()))),
                   "partner": ("downloaded", len(NEIGHBOURS.read_text().splitlines()) - 1)}


def test_the_fetching_job_on_an_s3_store(tmp_path, monkeypatch):
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("s3fs")
    import socket  # (here only: a free port for the S3 server)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s3 = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3.start()
    try:
        for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(k, v)
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="fetch")
        with CelesTrakServer({"stations": STATIONS}) as ct, \
                FileServer({"neighbours.csv": NEIGHBOURS.read_bytes()}) as drop:
            config = cron_config(tmp_path, "s3://fetch/store", ct.url, drop.url,
                                 extra=f'work_dir = "{tmp_path / "work"}"\n'
                                       f'[storage_options]\nendpoint_url = "{endpoint}"',
                                 tail='[exports]\nrelease_to = ["GBR"]')
            cfg = nightly.load_config(config)
            result = nightly.run(cfg, now=dt.datetime(2026, 3, 10, 2, tzinfo=UTC))
            assert result.exit_code == 0, result.summary
            rerun = nightly.run(cfg, now=dt.datetime(2026, 3, 10, 3, tzinfo=UTC))
            assert rerun.exit_code == 0, rerun.summary
            assert len(ct.requests) == 1  # the state is in the bucket: not asked again
            ct.update()  # (new data: the same night on a local store, the reference)
            (tmp_path / "local").mkdir()
            local = nightly.run(nightly.load_config(cron_config(
                tmp_path / "local", str(tmp_path / "local" / "store"), ct.url, drop.url,
                tail='[exports]\nrelease_to = ["GBR"]')), now=dt.datetime(2026, 3, 10, 2,
                                                                        tzinfo=UTC))
            assert local.exit_code == 0, local.summary
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="fetch")["Contents"]]
    finally:
        s3.stop()
    raw = [k for k in keys if k.startswith("store/_raw/")]
    assert {k.split("/")[2] for k in raw} == {"celestrak", "partner"}
    assert sum(k.endswith(".meta.json") for k in raw) == 2
    assert sum("/_state-" in k for k in raw) == 2
    assert any(k.startswith("store/elements/source=partner/") for k in keys)
    assert any(k.startswith("store/runs/") and k.endswith("/manifest.json") for k in keys)
    # the partner's export, made from the bucket's element sets, is in the bucket too
    exported = [k for k in keys if "/exports/GBR/" in k]
    assert any(k.endswith("conjunctions.parquet") for k in exported), exported
    assert result.manifest["exports"]["GBR"]["exported"]["conjunctions"] > 0
    assert result.manifest["exports"] == local.manifest["exports"]


def test_ssafuse_fetch_downloads_without_ingesting(tmp_path):
    store = tmp_path / "store"
    with CelesTrakServer({"stations": STATIONS}) as ct, \
            FileServer({"neighbours.csv": NEIGHBOURS.read_bytes()}) as drop:
        config = cron_config(tmp_path, str(store), ct.url, drop.url, deadline_s=3)
        cmd = [sys.executable, "-m", "ssafuse.cli", "fetch", "--config", str(config), "--now",
               "2026-03-10T02:00:00Z"]
        ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        drop.fail_next(500, times=1000)
        cmd[-1] = "2026-03-10T05:00:00Z"
        failed = subprocess.run(cmd + ["--feed", "partner"], capture_output=True, text=True,
                                timeout=120)
        assert len(ct.requests) == 1  # --feed partner: CelesTrak left alone
    assert ok.returncode == 0, ok.stderr
    assert [line.split(":")[0] + ":" + line.split(":")[1].split(",")[0]
            for line in ok.stdout.splitlines()] == ["celestrak: downloaded",
                                                     "partner: downloaded"]
    assert failed.returncode == 1 and failed.stdout.startswith("partner: failed")
    assert "3.0 h old" in failed.stdout  # the last good download, and its age
    assert not (store / "elements").exists()  # nothing ingested


def test_a_broken_answer_or_a_quiet_day_never_stops_the_night(tmp_path, monkeypatch):
    """A UDL endpoint answering an HTML maintenance page with 200, and a partner's drop
    holding an empty array (an incremental feed on a quiet day), beside a file feed."""
    monkeypatch.setenv("UDL_USERNAME", USER)
    monkeypatch.setenv("UDL_PASSWORD", SECRET)
    with FileServer({"udl/elset": b"<html>maintenance</html>", "empty.json": b"[]"}) as fs:
        config = write_config(tmp_path / "n.toml", str(tmp_path / "store"), [
            {"source": "stations", "paths": [str(STATIONS), str(NEIGHBOURS)]},
            {"source": "udl", "provider": "udl", "base_url": fs.url, "service": "elset",
             "credentials": "env:UDL", "format": "udl-elset"},
            {"source": "partner", "provider": "http", "base_url": fs.url,
             "path": "empty.json", "format": "omm-json"}],
            {"days": 1.0, "primaries": [25544], "max_epoch_gap_days": 365})
        result = nightly.run(nightly.load_config(config), now=NIGHT)
    feeds = {f["source"]: f for f in result.manifest["feeds"]}
    assert result.exit_code == 1 and not result.errors, result.summary
    assert feeds["stations"]["accepted"] > 0
    assert feeds["udl"]["fetch"]["status"] == "failed"
    assert "expected a JSON array" in feeds["udl"]["fetch"]["message"]
    assert (feeds["partner"]["status"], feeds["partner"]["fetch"]["empty"]) == ("ok", True)
    assert [w for w in result.warnings if "partner" in w] == []
    assert {s["name"]: s["status"] for s in result.manifest["stages"]}["screen"] == "ok"
    assert (result.run_dir / "report.html").exists()

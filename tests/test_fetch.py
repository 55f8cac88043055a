"""Fetching live feeds (``ssafuse.fetch``) from real HTTP servers on 127.0.0.1 that answer as
the providers do (``tests/_providers.py``: Space-Track's login cookie, query paths and rate
limits; CelesTrak's 403 "not updated"; UDL's basic auth and paging; a partner's drop with
ETags), never from mocked clients.

Expected values come from the data the servers were given, read here without ssafuse (the
3LE catalogue through python-sgp4, the UDL records as built), and from what the servers saw
(their request logs and counters).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from sgp4.api import Satrec

from _providers import CelesTrakServer, FileServer, SpaceTrackServer, UdlServer, \
    self_signed_context, udl_records
from conftest import SAMPLES, SHARED_DATA as SHARED
from ssafuse.fetch import fetch_feed, remote_from_table
from ssafuse.fetch.credentials import CredentialsError, resolve
from ssafuse.fetch.limits import RateLimiter
from ssafuse.ingestion import ingest
from ssafuse.store import Store

UTC = dt.timezone.utc
CATALOGUE_3LE = SHARED / "catalogues" / "spacetrack_3le_2023-10-09_cdm_on_chain.txt"
STATIONS_JSON = SHARED / "catalogues" / "celestrak_gp_json_20250524" / "stations.json"
needs_shared = pytest.mark.skipif(not CATALOGUE_3LE.exists(),
                                  reason="../shared/data (the real catalogues) is absent")
USER, SECRET = "operator@example.org", "s3cr3t-Pa55-never-logged"
#: after the catalogue's newest epoch (2023-10-18): none is refused as from the future
ST_NOW = dt.datetime(2023, 10, 19, tzinfo=UTC)


@pytest.fixture
def creds_env(monkeypatch):
    monkeypatch.setenv("FEED_USERNAME", USER)
    monkeypatch.setenv("FEED_PASSWORD", SECRET)
    return "env:FEED"


def remote(**table):
    return remote_from_table(table)


def epochs_after(path: Path, since: dt.datetime) -> set[int]:
    """NORAD numbers of the 3LE file's element sets with an epoch after ``since``
    (python-sgp4 alone)."""
    lines = path.read_text().splitlines()
    out = set()
    for k in range(0, len(lines) - 2, 3):
        sat = Satrec.twoline2rv(lines[k + 1], lines[k + 2])
        epoch = dt.datetime(2000 + sat.epochyr if sat.epochyr < 57 else 1900 + sat.epochyr,
                            1, 1, tzinfo=UTC) + dt.timedelta(days=sat.epochdays - 1)
        if epoch > since:
            out.add(sat.satnum)
    return out


def everything_written(root: Path) -> str:
    """Every file under ``root`` as text (what a secret must never be in)."""
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*")
                     if p.is_file())


# ---------------------------------------------------------------------------------------------
# Space-Track
# ---------------------------------------------------------------------------------------------

@needs_shared
@pytest.mark.parametrize("fmt", ["3le", "json"])
def test_spacetrack_full_catalogue_is_fetched_kept_and_ingested(fmt, tmp_path, creds_env,
                                                                caplog):
    caplog.set_level(logging.DEBUG)
    expected = epochs_after(CATALOGUE_3LE, ST_NOW - dt.timedelta(days=30))
    assert 20_000 < len(expected) < 26_140  # the window leaves some out: it is a real filter
    store = Store(tmp_path / "store")
    with SpaceTrackServer(CATALOGUE_3LE, USER, SECRET, now=ST_NOW) as st:
        r = remote(provider="spacetrack", base_url=st.url, credentials=creds_env,
                   query=f"class/gp/decay_date/null-val/epoch/>now-30/orderby/norad_cat_id/"
                         f"format/{fmt}")
        got = fetch_feed(store, "spacetrack", r, now=ST_NOW)
        seen = st.requests
    assert got.status == "downloaded", got.message
    assert [q["path"] for q in seen] == [
        "/ajaxauth/login",
        f"/basicspacedata/query/class/gp/decay_date/null-val/epoch/>now-30/orderby/"
        f"norad_cat_id/format/{fmt}"]
    assert seen[1]["headers"].get("Cookie", "").startswith("chocolatechip=")
    assert got.path.parent.parent.name == "spacetrack"  # _raw/<source>/<date>/<sha256>
    assert got.path.parent.parent.parent.name == "_raw"
    report = ingest(store, [got.path], source="spacetrack",
                    format={"3le": None, "json": "omm-json"}[fmt], now=ST_NOW)
    ids = set(store.table("elements", columns=["object_id"])["object_id"].to_pylist())
    assert (report.accepted, report.rejected) == (len(expected), 0) and ids == expected
    meta = json.loads(got.path.with_name(got.path.name + ".meta.json").read_text())
    assert meta["http_status"] == 200 and meta["url"].startswith(st.url)
    assert meta["sha256"] == got.path.name == got.sha256
    written = everything_written(tmp_path) + caplog.text
    assert SECRET not in written and USER not in json.dumps(meta)


@needs_shared
def test_spacetrack_limits_are_kept_by_ten_feeds_in_two_processes(tmp_path, creds_env):
    """Ten feeds in two processes share one store, so one budget; the server counts every
    request over its limits (scaled down to 4 a second and 10 in 4 s so that the test runs in
    seconds). The control: the same feeds with a budget per process break the limits."""
    limits = [[4, 1.0], [10, 4.0]]
    with SpaceTrackServer(CATALOGUE_3LE, USER, SECRET, limits=limits, now=ST_NOW) as st:
        shared = _fetch_in_two_processes(st.url, tmp_path / "store", limits, separate=False)
        assert st.violations == 0
        assert sorted(shared) == ["downloaded"] * 10
        assert len(st.requests) == 20  # a login and a query per feed: nothing retried
        first, last = st.requests[0]["time"], st.requests[-1]["time"]
        assert last - first >= 4.0  # 20 requests cannot pass 10 in 4 s faster
        control = _fetch_in_two_processes(st.url, tmp_path / "control", limits, separate=True)
        assert st.violations > 0, control


def _fetch_some(base_url: str, store_dir: str, state_dir: str, limits, ids, out):
    os.environ.update(FEED_USERNAME=USER, FEED_PASSWORD=SECRET)
    for i in ids:
        r = remote_from_table({"provider": "spacetrack", "base_url": base_url,
                               "credentials": "env:FEED", "rate_limits": limits,
                               "deadline_s": 30.0 if state_dir.endswith("store") else 1.0,
                               "query": f"class/gp/NORAD_CAT_ID/{25544 + i}/format/3le"})
        got = fetch_feed(Store(store_dir), f"feed-{i}", r, now=ST_NOW, state_dir=state_dir)
        out.put(got.status)


def _fetch_in_two_processes(base_url: str, store_dir: Path, limits, *, separate: bool):
    ctx = multiprocessing.get_context("fork")  # (no re-import: seconds less per process)
    out = ctx.Queue()
    procs = [ctx.Process(target=_fetch_some, args=(
        base_url, str(store_dir), str(store_dir / (f"state{k}" if separate else "")), limits,
        range(k, 10, 2), out)) for k in range(2)]
    for p in procs:
        p.start()
    statuses = [out.get(timeout=120) for _ in range(10)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return statuses


@needs_shared
def test_spacetrack_rate_limit_page_is_waited_out_and_bad_login_refused(tmp_path, creds_env,
                                                                       monkeypatch):
    with SpaceTrackServer(CATALOGUE_3LE, USER, SECRET, now=ST_NOW) as st:
        r = remote(provider="spacetrack", base_url=st.url, credentials=creds_env,
                   rate_limits=[[30, 1.0]], query="class/gp/NORAD_CAT_ID/25544/format/3le")
        st.fail_next(500, body=b'{"error":"You\'ve violated your query rate limit."}')
        got = fetch_feed(Store(tmp_path / "s"), "st", r, now=ST_NOW)
        assert got.status == "downloaded", got.message
        gap = st.requests[1]["time"] - st.requests[0]["time"]
        assert gap >= 0.95  # waited the limit's window (1 s here), not an instant retry
        assert "25544" in got.path.read_text()
        monkeypatch.setenv("FEED_PASSWORD", "wrong-password")
        bad = fetch_feed(Store(tmp_path / "t"), "st", r, now=ST_NOW)
    assert bad.status == "failed" and "refused the login" in bad.message
    assert bad.path is None and not (tmp_path / "t" / "_raw").exists()


# ---------------------------------------------------------------------------------------------
# CelesTrak
# ---------------------------------------------------------------------------------------------

@needs_shared
def test_celestrak_is_not_asked_twice_within_its_interval(tmp_path):
    store = Store(tmp_path / "store")
    now = dt.datetime(2026, 3, 10, 2, tzinfo=UTC)
    with CelesTrakServer({"stations": STATIONS_JSON}) as ct:
        r = remote(provider="celestrak", base_url=ct.url,
                   query={"GROUP": "stations", "FORMAT": "json"})
        first = fetch_feed(store, "celestrak", r, now=now)
        assert first.status == "downloaded" and len(ct.requests) == 1
        assert ct.requests[0]["query"] == {"GROUP": "stations", "FORMAT": "json"}
        again = fetch_feed(store, "celestrak", r, now=now + dt.timedelta(hours=1))
        assert again.status == "skipped" and len(ct.requests) == 1  # no request at all
        assert again.path == first.path and again.age_hours == pytest.approx(1.0)
        # a mirror that allows asking sooner still gets CelesTrak's 403 "not updated"
        eager = remote(provider="celestrak", base_url=ct.url, min_interval_s=0,
                       query={"GROUP": "stations", "FORMAT": "json"})
        store2 = Store(tmp_path / "store2")
        ct.update()  # (new data: this client's next download is answered)
        assert fetch_feed(store2, "celestrak", eager, now=now).status == "downloaded"
        repeat = fetch_feed(store2, "celestrak", eager, now=now + dt.timedelta(minutes=5))
        assert ct.not_updated == 1 and repeat.status == "not-modified"
        assert repeat.path is not None and repeat.path.exists()
    records = json.loads(first.path.read_bytes())
    assert records == json.loads(STATIONS_JSON.read_bytes())  # the bytes CelesTrak served


def test_celestrak_invalid_query_is_a_failure_not_data(tmp_path):
    with CelesTrakServer({"stations": SAMPLES / "celestrak_stations_gp_2026-03-10.json"}) as ct:
        r = remote(provider="celestrak", base_url=ct.url, query={"GROUP": "nope"})
        got = fetch_feed(Store(tmp_path / "s"), "celestrak", r, now=dt.datetime.now(UTC))
    assert got.status == "failed" and "Invalid query" in got.message
    assert not (tmp_path / "s" / "_raw").exists()


# ---------------------------------------------------------------------------------------------
# UDL
# ---------------------------------------------------------------------------------------------

def test_udl_pages_are_joined_and_markings_kept(tmp_path, creds_env):
    now = dt.datetime(2026, 3, 10, 2, tzinfo=UTC)
    start = now - dt.timedelta(hours=30)
    records = udl_records("elset", 25, start, 3600.0, marking="S//REL TO USA, GBR")
    in_window = [r for r in records
                 if dt.datetime.fromisoformat(r["epoch"].replace("Z", "+00:00"))
                 > now - dt.timedelta(hours=24)]
    assert 0 < len(in_window) < 25
    store = Store(tmp_path / "store")
    with UdlServer(USER, SECRET, {"elset": records}) as udl:
        r = remote(provider="udl", base_url=udl.url, service="elset", credentials=creds_env,
                   page_size=10)
        got = fetch_feed(store, "udl", r, now=now)
        pages = udl.requests
    assert got.status == "downloaded", got.message
    assert [q["query"]["firstResult"] for q in pages] == ["0", "10", "20"][:len(pages)]
    assert len(pages) == len(in_window) // 10 + 1
    assert all(q["query"]["epoch"].startswith(">2026-03-09T02:00:00") for q in pages)
    assert [x["idElset"] for x in json.loads(got.path.read_bytes())] == \
        [x["idElset"] for x in in_window]
    report = ingest(store, [got.path], source="udl", format="udl-elset",
                    marking="UNCLASSIFIED", now=now)
    assert report.accepted == len(in_window)
    rows = store.table("elements", columns=["classification", "releasable_to"]).to_pylist()
    assert {r["classification"] for r in rows} == {"SECRET"}
    assert {tuple(r["releasable_to"]) for r in rows} == {("GBR", "USA")}


def test_udl_observations_always_carry_an_obtime_window(tmp_path, creds_env):
    now = dt.datetime(2026, 3, 10, 2, tzinfo=UTC)
    records = udl_records("eoobservation", 5, now - dt.timedelta(hours=2), 60.0)
    with UdlServer(USER, SECRET, {"eoobservation": records}) as udl:
        r = remote(provider="udl", base_url=udl.url, service="eoobservation",
                   credentials=creds_env, window_hours=6)
        got = fetch_feed(Store(tmp_path / "s"), "udl-eo", r, now=now)
        q = udl.requests[0]["query"]
    assert got.status == "downloaded", got.message
    assert q["obTime"] == "2026-03-09T20:00:00.000000Z..2026-03-10T02:00:00.000000Z"
    assert len(json.loads(got.path.read_bytes())) == 5


def test_udl_wrong_credentials_fail_without_saying_them(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FEED_USERNAME", USER)
    monkeypatch.setenv("FEED_PASSWORD", "not-" + SECRET)
    with UdlServer(USER, SECRET, {"elset": []}) as udl:
        r = remote(provider="udl", base_url=udl.url, service="elset", credentials="env:FEED")
        got = fetch_feed(Store(tmp_path / "s"), "udl", r, now=dt.datetime.now(UTC))
    assert got.status == "failed" and "401" in got.message
    assert "not-" + SECRET not in got.message + caplog.text


# ---------------------------------------------------------------------------------------------
# A partner's HTTPS drop, conditional requests, faults
# ---------------------------------------------------------------------------------------------

def test_partner_https_drop_with_etag(tmp_path):
    context, ca_file = self_signed_context(tmp_path)
    data = (SAMPLES / "celestrak_stations_gp_2026-03-10.json").read_bytes()
    now = dt.datetime(2026, 3, 10, 2, tzinfo=UTC)
    store = Store(tmp_path / "store")
    with FileServer({"drop/latest.json": data}, ssl_context=context) as fs:
        assert fs.url.startswith("https://")
        r = remote(provider="http", base_url=fs.url, path="drop/latest.json", ca_file=ca_file)
        first = fetch_feed(store, "partner", r, now=now)
        assert first.status == "downloaded", first.message
        again = fetch_feed(store, "partner", r, now=now + dt.timedelta(hours=1))
        assert again.status == "not-modified" and again.path == first.path
        assert fs.requests[1]["headers"]["If-None-Match"] == f'"{first.sha256}"'
        fs.put("drop/latest.json", data.replace(b"ISS", b"ISX"))
        third = fetch_feed(store, "partner", r, now=now + dt.timedelta(hours=2))
        unverified = remote(provider="http", base_url=fs.url, path="drop/latest.json")
        refused = fetch_feed(Store(tmp_path / "x"), "partner", unverified, now=now)
    assert third.status == "downloaded" and third.sha256 != first.sha256
    assert b"ISX" in third.path.read_bytes() and first.path.read_bytes() == data
    assert refused.status == "failed"  # a certificate nobody vouches for is never trusted


@pytest.mark.parametrize("fault", ["429", "500", "timeout", "truncated"])
def test_transient_faults_are_retried(fault, tmp_path):
    data = b"[" + b",".join(b'{"n": %d}' % i for i in range(2000)) + b"]"
    with FileServer({"f.json": data}) as fs:
        if fault == "429":
            fs.fail_next(429, retry_after=1)
        elif fault == "500":
            fs.fail_next(500, times=2)
        elif fault == "timeout":
            fs.delay_next(2.0)
        else:
            fs.truncate_next()
        r = remote(provider="http", base_url=fs.url, path="f.json", timeout_s=0.5,
                   deadline_s=20)
        got = fetch_feed(Store(tmp_path / "s"), "p", r, now=dt.datetime.now(UTC))
        times = [q["time"] for q in fs.requests]
    assert got.status == "downloaded", got.message
    assert got.path.read_bytes() == data
    assert got.requests == len(times) == (3 if fault == "500" else 2)
    if fault == "429":
        assert times[1] - times[0] >= 0.95  # Retry-After: 1 was honoured


def test_a_truncated_download_is_never_kept(tmp_path):
    data = b"0 ISS (ZARYA)\n" * 500
    with FileServer({"cut.tle": data}) as fs:
        fs.truncate_next(times=1000)
        r = remote(provider="http", base_url=fs.url, path="cut.tle", deadline_s=3)
        got = fetch_feed(Store(tmp_path / "s"), "p", r, now=dt.datetime.now(UTC))
    assert got.status == "failed" and "cut short" in got.message
    assert got.path is None
    assert not list((tmp_path / "s").rglob("_raw/**/*"))


def test_a_failed_fetch_names_the_last_good_download(tmp_path):
    now = dt.datetime(2026, 3, 10, 2, tzinfo=UTC)
    store = Store(tmp_path / "s")
    with FileServer({"f.json": b"[1, 2]"}) as fs:
        r = remote(provider="http", base_url=fs.url, path="f.json", deadline_s=2)
        good = fetch_feed(store, "p", r, now=now)
        fs.fail_next(503, times=1000)
        bad = fetch_feed(store, "p", r, now=now + dt.timedelta(hours=26))
    assert bad.status == "failed" and "503" in bad.message
    assert bad.path == good.path and bad.age_hours == pytest.approx(26.0)


# ---------------------------------------------------------------------------------------------
# Credentials and limits
# ---------------------------------------------------------------------------------------------

def test_credentials_from_a_file_only_when_private(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[hosts."www.space-track.org"]\nusername = "{USER}"\n'
                       f'password = "{SECRET}"\n')
    secrets.chmod(0o644)
    with pytest.raises(CredentialsError) as e:
        resolve(f"file:{secrets}", "www.space-track.org")
    assert "0644" in str(e.value) and SECRET not in str(e.value)
    secrets.chmod(0o600)
    c = resolve(f"file:{secrets}", "www.space-track.org")
    assert (c.username, c.password) == (USER, SECRET) and SECRET not in repr(c)


def test_credentials_from_netrc(tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {SECRET}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    c = resolve(None, "127.0.0.1")
    assert (c.username, c.password) == (USER, SECRET)
    with pytest.raises(CredentialsError, match="no 'machine other.example' entry"):
        resolve("netrc", "other.example")


def test_the_limiter_waits_for_the_oldest_request_to_leave_the_window(tmp_path):
    clock = [1000.0]
    slept = []

    def sleep(s):
        slept.append(s)
        clock[0] += s

    lim = RateLimiter(tmp_path, "x", ((3, 10.0),), clock=lambda: clock[0], sleep=sleep)
    for k in range(3):
        lim.acquire(deadline=1e9)
        clock[0] += 1.0
    lim.acquire(deadline=1e9)  # the 4th: waits until the 1st (t=1000) is 10 s (+5 %) old
    assert clock[0] == pytest.approx(1000.0 + 10.5, abs=0.01)
    assert len(slept) == 1


# ---------------------------------------------------------------------------------------------
# Hostile or broken servers: bounded in size, in time and in pages
# ---------------------------------------------------------------------------------------------

def test_an_answer_larger_than_max_bytes_is_refused(tmp_path):
    with FileServer({"big.json": b"[" + b"0," * 100_000 + b"0]"}) as fs:
        r = remote(provider="http", base_url=fs.url, path="big.json", max_bytes=100_000)
        got = fetch_feed(Store(tmp_path / "s"), "p", r, now=dt.datetime.now(UTC))
        assert len(fs.requests) == 1  # refused, not retried
    assert got.status == "failed" and "max_bytes" in got.message
    assert not (tmp_path / "s" / "_raw").exists()


def test_a_hostile_retry_after_ends_the_fetch_at_once(tmp_path):
    with FileServer({"f.json": b"[]"}) as fs:
        fs.fail_next(429, retry_after=86400)
        r = remote(provider="http", base_url=fs.url, path="f.json", deadline_s=60)
        t0 = time.perf_counter()
        got = fetch_feed(Store(tmp_path / "s"), "p", r, now=dt.datetime.now(UTC))
    assert time.perf_counter() - t0 < 5  # no day-long sleep: past the deadline, given up
    assert got.status == "failed" and "HTTP 429" in got.message


class _PagingIgnored(UdlServer):
    """A UDL server that ignores ``firstResult``: every page is the first."""

    def handle(self, req):
        req["query"].pop("firstResult", None)
        return super().handle(req)


def test_a_udl_server_that_ignores_paging_is_not_asked_forever(tmp_path, creds_env):
    now = dt.datetime(2026, 3, 10, 2, tzinfo=UTC)
    records = udl_records("elset", 20, now - dt.timedelta(hours=10), 600.0)
    with _PagingIgnored(USER, SECRET, {"elset": records}) as udl:
        r = remote(provider="udl", base_url=udl.url, service="elset", credentials=creds_env,
                   page_size=5)
        got = fetch_feed(Store(tmp_path / "s"), "udl", r, now=now)
        assert len(udl.requests) == 2
    assert got.status == "failed" and "ignores firstResult" in got.message


def test_a_body_that_drips_is_cut_at_the_deadline(tmp_path):
    """A server that declares 100 kB and sends a byte every 0.2 s: each read returns within
    the read timeout, so only the feed's deadline can end it."""
    import socketserver  # (here only: a server no fake provider is, a raw socket)

    class Drip(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(65536)
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            try:
                for _ in range(100):
                    self.request.sendall(b"x")
                    time.sleep(0.2)
            except OSError:
                pass

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Drip) as srv:
        srv.daemon_threads = True
        import threading  # (here only: the raw server's thread)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        r = remote(provider="http", base_url=f"http://127.0.0.1:{srv.server_address[1]}",
                   path="f", deadline_s=2, timeout_s=1)
        t0 = time.perf_counter()
        got = fetch_feed(Store(tmp_path / "s"), "p", r, now=dt.datetime.now(UTC))
        srv.shutdown()
    assert time.perf_counter() - t0 < 4
    assert got.status == "failed" and "deadline" in got.message


def test_retry_after_zero_still_backs_off(tmp_path):
    with FileServer({"f.json": b"[]"}) as fs:
        fs.fail_next(503, times=1000, retry_after=0)
        r = remote(provider="http", base_url=fs.url, path="f.json", deadline_s=3.5)
        got = fetch_feed(Store(tmp_path / "s"), "p", r, now=dt.datetime.now(UTC))
        n = len(fs.requests)
    assert got.status == "failed" and "HTTP 503" in got.message
    assert n <= 3  # 0.5-1 s, then 1-2 s: at most three within 3.5 s, never dozens


def test_netrc_readable_by_others_or_broken_is_refused_without_its_text(tmp_path,
                                                                       monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine h login {USER} password {SECRET}\n")
    netrc.chmod(0o644)
    monkeypatch.setenv("NETRC", str(netrc))
    with pytest.raises(CredentialsError, match="0644"):
        resolve("netrc", "h")
    netrc.write_text("machine h login u password correct horse-battery\n")
    netrc.chmod(0o600)
    with pytest.raises(CredentialsError) as e:
        resolve("netrc", "h")
    assert "does not parse" in str(e.value) and "horse" not in str(e.value)


@pytest.mark.parametrize("table", [
    {"provider": "http", "base_url": "ftp://alice:Hunter2@drop.example/x"},
    {"provider": "http", "base_url": "https://alice:Hunter2@/x"},
    {"provider": "http", "base_url": "https://drop.example", "path": "a.csv?token=Hunter2"},
    {"provider": "celestrak", "query": {"GROUP": "x", "api_key": "Hunter2"}},
])
def test_a_secret_in_an_address_is_refused_and_never_repeated(table):
    with pytest.raises(ValueError) as e:
        remote_from_table(table)
    assert "Hunter2" not in str(e.value)


def test_the_limiter_survives_a_clock_set_back(tmp_path):
    clock = [10_000.0]
    lim = RateLimiter(tmp_path, "x", ((3, 60.0),), clock=lambda: clock[0], sleep=None)
    for _ in range(3):
        lim.acquire(deadline=1e9)
    clock[0] -= 7200  # the clock goes back two hours
    with pytest.raises(Exception) as e:  # the budget is spent: a wait, not two hours
        lim.acquire(deadline=clock[0] + 1)
    assert 60 <= e.value.wait_s <= 64


@needs_shared
def test_spacetrack_last_is_the_previous_download(tmp_path, creds_env):
    store = Store(tmp_path / "s")
    with SpaceTrackServer(CATALOGUE_3LE, USER, SECRET, now=ST_NOW) as st:
        r = remote(provider="spacetrack", base_url=st.url, credentials=creds_env,
                   query="class/gp/epoch/>LAST/orderby/norad_cat_id/format/3le")
        before = ST_NOW - dt.timedelta(days=3)
        first = fetch_feed(store, "st", r, now=before)
        later = fetch_feed(store, "st", r, now=before + dt.timedelta(hours=2))
        paths = [q["path"] for q in st.requests if q["method"] == "GET"]
    assert (first.status, later.status) == ("downloaded", "downloaded")
    assert paths == ["/basicspacedata/query/class/gp/epoch/>now-30/orderby/norad_cat_id/"
                     "format/3le",
                     "/basicspacedata/query/class/gp/epoch/>2023-10-16T00:00:00/orderby/"
                     "norad_cat_id/format/3le"]
    # the catalogue's element sets after 2023-10-16 00:00 (python-sgp4 alone)
    expected = epochs_after(CATALOGUE_3LE, before)
    text = later.path.read_text().splitlines()
    assert len(text) == 3 * len(expected) > 0


def test_celestrak_supgp_and_udl_radar_are_asked_where_they_live(tmp_path, creds_env):
    now = dt.datetime(2026, 3, 10, 2, tzinfo=UTC)
    stations = SAMPLES / "celestrak_stations_gp_2026-03-10.json"
    radar = udl_records("radarobservation", 4, now - dt.timedelta(hours=1), 60.0)
    with CelesTrakServer({}, supgp={"iss": stations}) as ct, \
            UdlServer(USER, SECRET, {"radarobservation": radar}) as udl:
        sup = fetch_feed(Store(tmp_path / "s"), "supgp", remote(
            provider="celestrak", base_url=ct.url, endpoint="supgp",
            query={"FILE": "iss", "FORMAT": "json"}), now=now)
        obs = fetch_feed(Store(tmp_path / "s"), "radar", remote(
            provider="udl", base_url=udl.url, service="radarobservation",
            credentials=creds_env), now=now)
        asked = (ct.requests[0]["path"], udl.requests[0]["path"])
    assert asked == ("/NORAD/elements/supplemental/sup-gp.php", "/udl/radarobservation")
    assert (sup.status, obs.status) == ("downloaded", "downloaded"), (sup.message, obs.message)
    assert json.loads(sup.path.read_bytes()) == json.loads(stations.read_bytes())
    assert [r["id"] for r in json.loads(obs.path.read_bytes())] == [r["id"] for r in radar]

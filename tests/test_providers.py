"""Self-check of the fake providers in tests/_providers.py, with plain ``requests`` over real
sockets: each behaviour a fetch client relies on, exercised once."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import requests
from _providers import (RATE_LIMIT_TEXT, CelesTrakServer, FileServer, SpaceTrackServer,
                        UdlServer, serve_clock, self_signed_context, udl_records)
from conftest import shared
from sgp4.api import Satrec

import ssafuse.ingestion
import ssafuse.store

ST_CATALOGUE = "catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt"
CT_DIR = "catalogues/celestrak_gp_json_20250524"
ST_QUERY = "/basicspacedata/query/class/gp"


def test_faults_are_consumed_by_the_next_requests_in_turn():
    with FileServer({"a.txt": b"x" * 1000}) as server:
        url = server.url + "/a.txt"
        server.fail_next(503, retry_after=7, body=b"busy")
        r = requests.get(url, timeout=5)
        assert (r.status_code, r.headers["Retry-After"], r.content) == (503, "7", b"busy")
        assert requests.get(url, timeout=5).status_code == 200

        server.delay_next(2.0)
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(url, timeout=0.3)

        server.truncate_next()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(url, timeout=5)
        r = requests.get(url + "?x=1", timeout=5)
        assert r.content == b"x" * 1000 and r.headers["Content-Length"] == "1000"

        last = server.requests[-1]
        assert (last["method"], last["path"], last["query"], last["raw_path"]) == \
            ("GET", "/a.txt", {"x": "1"}, "/a.txt?x=1")
        assert len(server.requests) == 5


@pytest.fixture(scope="module")
def spacetrack():
    now = dt.datetime(2023, 10, 10, tzinfo=dt.timezone.utc)
    with SpaceTrackServer(shared(ST_CATALOGUE), "me", "pw", now=now) as server:
        yield server


def test_spacetrack_login_and_gp_queries(spacetrack):
    s = requests.Session()
    assert s.get(spacetrack.url + ST_QUERY + "/NORAD_CAT_ID/25544", timeout=5).status_code == 401
    bad = s.post(spacetrack.url + "/ajaxauth/login", data={"identity": "me", "password": "no"})
    assert bad.json() == {"Login": "Failed"} and "chocolatechip" not in s.cookies
    ok = s.post(spacetrack.url + "/ajaxauth/login", data={"identity": "me", "password": "pw"})
    assert ok.status_code == 200 and ok.text == '""' and "chocolatechip" in s.cookies

    def get(tail):
        r = s.get(spacetrack.url + ST_QUERY + tail, timeout=10)
        assert r.status_code == 200, r.text
        return r.text

    three = get("/NORAD_CAT_ID/25544,5/orderby/NORAD_CAT_ID asc/format/3le").splitlines()
    assert three[0] == "0 VANGUARD 1" and three[3] == "0 ISS (ZARYA)" and len(three) == 6
    tle = get("/NORAD_CAT_ID/1--100/orderby/NORAD_CAT_ID desc/limit/2/format/tle").splitlines()
    assert len(tle) == 4 and int(tle[0][2:7]) > int(tle[2][2:7])
    iss, = json.loads(get("/NORAD_CAT_ID/25544/decay_date/null-val"))
    assert (iss["NORAD_CAT_ID"], iss["OBJECT_ID"], iss["EPOCH"]) == \
        ("25544", "1998-067A", "2023-10-09T17:09:24.185664")
    assert all(isinstance(iss[k], str) for k in ("MEAN_MOTION", "BSTAR", "INCLINATION"))
    # epoch/>now-N is relative to the server's ``now``; %3E is '>' percent-encoded
    recent = get("/epoch/%3Enow-0.5/format/tle").count("\n") // 2
    since = get("/epoch/>2023-10-09T12:00:00/format/tle").count("\n") // 2
    assert 0 < recent == since < len(spacetrack.entries)
    assert get("/NORAD_CAT_ID/99999/emptyresult/show/format/tle") == "NO RESULTS RETURNED"
    t0 = time.perf_counter()
    full = get("/format/3le")
    assert full.count("\n") == 3 * len(spacetrack.entries) > 75_000
    assert time.perf_counter() - t0 < 1.0
    assert spacetrack.query_count == 7
    assert s.get(spacetrack.url + "/ajaxauth/logout").text == "Successfully logged out"


def test_spacetrack_rate_limit_answers_500_and_counts_violations(tmp_path):
    clock = serve_clock()
    path = tmp_path / "one.3le"
    path.write_text("\n".join(shared(ST_CATALOGUE).read_text().splitlines()[:3]))
    with SpaceTrackServer(path, "me", "pw", limits=((3, 60.0),), clock=clock) as server:
        s = requests.Session()
        s.post(server.url + "/ajaxauth/login", data={"identity": "me", "password": "pw"})
        codes = [s.get(server.url + ST_QUERY + "/format/tle").status_code for _ in range(3)]
        r = s.get(server.url + ST_QUERY + "/format/tle")
        assert codes == [200, 200, 500] and r.status_code == 500     # the login counted too
        assert r.json()["error"] == RATE_LIMIT_TEXT
        assert "violated your query rate limit" in RATE_LIMIT_TEXT      # what spacetrack checks
        assert server.violations == 2 and server.query_count == 2
        clock.advance(61)
        assert s.get(server.url + ST_QUERY + "/format/tle").status_code == 200


def test_celestrak_formats_and_queries():
    groups = {g: shared(f"{CT_DIR}/{g}.json") for g in ("stations", "starlink")}
    with CelesTrakServer(groups, supgp={"starlink": groups["starlink"]},
                         not_updated_s=0) as server:
        gp = server.url + "/NORAD/elements/gp.php"

        def get(url=gp, **params):
            r = requests.get(url, params=params, timeout=10)
            assert r.status_code == 200
            return r.text

        records = json.loads(get(GROUP="stations", FORMAT="json"))
        assert records[0]["OBJECT_NAME"] == "ISS (ZARYA)"
        tle = get(GROUP="stations").split("\r\n")          # FORMAT absent: TLE
        sat = Satrec.twoline2rv(tle[1], tle[2])
        assert tle[0].rstrip() == "ISS (ZARYA)" and sat.satnum == 25544
        assert abs(sat.no_kozai * 1440 / (2 * 3.141592653589793) - records[0]["MEAN_MOTION"]) \
            < 1e-7
        assert get(GROUP="stations", FORMAT="2le").startswith("1 25544U")
        assert get(CATNR="25544", FORMAT="3le").count("\r\n") == 3
        assert get(GROUP="stations", FORMAT="csv").startswith("OBJECT_NAME,OBJECT_ID,EPOCH,")
        assert get(GROUP="nope", FORMAT="tle") == \
            'Invalid query: "GROUP=nope&FORMAT=tle" (GROUP=nope not found)'
        sup = server.url + "/NORAD/elements/supplemental/sup-gp.php"
        assert len(json.loads(get(sup, FILE="starlink", FORMAT="json"))) > 1000
        assert get(CATNR="1", FORMAT="tle") == "No GP data found"


def test_celestrak_repeat_before_update_is_403():
    clock = serve_clock()
    with CelesTrakServer({"stations": shared(f"{CT_DIR}/stations.json")},
                         clock=clock) as server:
        url = server.url + "/NORAD/elements/gp.php?GROUP=stations&FORMAT=json"
        assert requests.get(url, timeout=5).status_code == 200
        clock.advance(60)
        r = requests.get(url.replace("json", "tle"), timeout=5)      # another FORMAT: same key
        assert r.status_code == 403 and r.text.startswith(
            "GP data has not updated since your last successful\ndownload of GROUP=stations at ")
        assert "Data is updated once every 2 hours." in r.text and server.not_updated == 1
        server.update()
        assert requests.get(url, timeout=5).status_code == 200
        clock.advance(7201)
        assert requests.get(url, timeout=5).status_code == 200


def test_udl_auth_filters_paging_and_count():
    start = dt.datetime(2026, 3, 9, tzinfo=dt.timezone.utc)
    records = {k: udl_records(k, 30, start, 60.0) for k in ("elset", "eoobservation")}
    with UdlServer("u", "p", records, max_page=10) as server:
        r = requests.get(server.url + "/udl/elset", timeout=5)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="UDL"'
        auth = ("u", "p")
        page = requests.get(server.url + "/udl/elset", auth=auth, timeout=5,
                            params={"firstResult": 5, "maxResults": 50}).json()
        assert [e["idElset"] for e in page] == [f"ELSET-{i:06d}" for i in range(5, 15)]
        r = requests.get(server.url + "/udl/eoobservation", auth=auth, timeout=5)
        assert r.status_code == 400 and "obTime" in r.text
        window = "2026-03-09T00:10:00.000000Z..2026-03-09T00:14:00.000000Z"
        obs = requests.get(server.url + "/udl/eoobservation", auth=auth, timeout=5,
                           params={"obTime": window}).json()
        assert len(obs) == 5 and obs[0]["obTime"] == "2026-03-09T00:10:00.000000Z"
        count = requests.get(server.url + "/udl/eoobservation/count", auth=auth, timeout=5,
                             params={"obTime": ">2026-03-09T00:20:00.000000Z"})
        assert count.text == "9"


@pytest.mark.parametrize("kind, fmt", [("elset", "udl-elset"),
                                       ("eoobservation", "udl-eo-observation"),
                                       ("radarobservation", "udl-radar-observation")])
def test_udl_records_are_accepted_by_ssafuse_readers(tmp_path, kind, fmt):
    rows = udl_records(kind, 5, dt.datetime(2026, 3, 9, tzinfo=dt.timezone.utc), 30.0)
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(rows))
    report = ssafuse.ingestion.ingest(ssafuse.store.Store(tmp_path / "store"), [path],
                                      source="udl", format=fmt)
    assert (report.accepted, report.rejected, report.refused_files) == (5, 0, [])


def test_file_server_https_etag_last_modified_and_auth(tmp_path):
    context, ca_file = self_signed_context(tmp_path)
    with FileServer({"drop/a.json": b"[1]"}, "u", "p", ssl_context=context) as server:
        url, auth = server.url + "/drop/a.json", ("u", "p")
        assert url.startswith("https://127.0.0.1:")
        assert requests.get(url, verify=ca_file, timeout=5).status_code == 401
        r = requests.get(url, auth=auth, verify=ca_file, timeout=5)
        etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
        assert r.content == b"[1]" and len(etag) == 66
        for cond in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
            r = requests.get(url, auth=auth, verify=ca_file, headers=cond, timeout=5)
            assert r.status_code == 304 and r.content == b""
        server.put("drop/a.json", b"[2]", last_modified=time.time() + 5)
        r = requests.get(url, auth=auth, verify=ca_file, headers={"If-None-Match": etag},
                         timeout=5)
        assert r.status_code == 200 and r.content == b"[2]" and r.headers["ETag"] != etag

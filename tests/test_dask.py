"""Scale-out on Dask (ssafuse.cluster, ssafuse.screening.executors, ssafuse.ingestion) and
stores on object storage.

On a real ``distributed.LocalCluster`` of 2 worker processes (nanny-managed, one thread each):

* screening: the same events as the local run on real catalogue data (the 4,257 objects of
  the 2023-10-09 Space-Track catalogue in the 535-565 km shell, one day, ~2,800 events):
  same pairs, TCA within 1 microsecond (the local run is the reference; the dask run executes
  the same slice code, so any difference would be a distribution bug), with 5-minute slices so
  that events whose encounter (the time the pair is under the threshold) spans a slice
  boundary occur; a worker killed mid-run changes nothing;
* ingest: the same file reports, rows and rejects as a local run, into a store on an
  S3-compatible server (moto's server mode on 127.0.0.1, a real HTTP endpoint, not a mock).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from conftest import ROOT, SAMPLES, shared

distributed = pytest.importorskip("distributed")
pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from ssafuse.records import read_file  # noqa: E402
from ssafuse.propagate import satrecs  # noqa: E402
from ssafuse.screening import executors as sd  # noqa: E402
from ssafuse.screening import screen  # noqa: E402
from ssafuse.ingestion import ingest  # noqa: E402
from ssafuse.store import Store  # noqa: E402

CATALOGUE = "catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt"
START = "2023-10-09T12:00:00Z"
START_NS = 1696852800 * 10**9
THRESHOLD = 5.0
SLICE_KNOTS = 1  # 5-minute slices: 288 tasks per day, many boundaries


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def shell():
    """The 535-565 km shell of the 2023 catalogue (Starlink and debris: many events, some
    slow co-orbital ones whose encounters last minutes)."""
    el = read_file(shared(CATALOGUE), source="spacetrack").elements
    sats = satrecs(el)
    perigee = np.array([s.altp for s in sats]) * 6378.135
    apogee = np.array([s.alta for s in sats]) * 6378.135
    return el.take(pa.array(np.flatnonzero((perigee > 535) & (apogee < 565))))


@pytest.fixture(scope="module")
def local_run(shell):
    return screen(shell, START, days=1.0, threshold_km=THRESHOLD, slice_knots=SLICE_KNOTS,
                  workers=2)


def _events(table: pa.Table):
    return (table["object_id_1"].to_numpy(), table["object_id_2"].to_numpy(),
            table["tca"].cast(pa.int64()).to_numpy())


def _assert_same_events(got: pa.Table, want: pa.Table):
    g1, g2, gt = _events(got)
    w1, w2, wt = _events(want)
    assert got.num_rows == want.num_rows
    go = np.lexsort((gt, g2, g1))
    wo = np.lexsort((wt, w2, w1))
    np.testing.assert_array_equal(g1[go], w1[wo])
    np.testing.assert_array_equal(g2[go], w2[wo])
    assert np.abs(gt[go] - wt[wo]).max() <= 1000, "TCA differs by more than 1 microsecond"
    np.testing.assert_allclose(got["miss_distance_km"].to_numpy()[go],
                               want["miss_distance_km"].to_numpy()[wo], rtol=0, atol=1e-9)


def _straddling(table: pa.Table, slice_s: float) -> np.ndarray:
    """Events whose encounter (range under the threshold, half-length sqrt(thr^2 - miss^2)
    / relative speed about TCA) spans a slice boundary."""
    d = table["miss_distance_km"].to_numpy()
    v = np.maximum(table["relative_speed_km_s"].to_numpy(), 1e-9)
    t = (table["tca"].cast(pa.int64()).to_numpy() - START_NS) / 1e9
    half = np.sqrt(np.maximum(THRESHOLD**2 - d**2, 0.0)) / v
    return np.floor((t - half) / slice_s) != np.floor((t + half) / slice_s)


def test_screen_without_dask_imports_nothing_of_dask(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from ssafuse.records import read_file
        from ssafuse.ingestion import ingest
        from ssafuse.screening import screen
        from ssafuse.store import Store
        el = read_file({str(SAMPLES / "celestrak_active_2025-04-23_first300.tle")!r},
                       source="celestrak").elements
        res = screen(el, "2025-04-23T00:00:00Z", days=0.1, workers=2)
        store = Store({str(tmp_path / "store")!r})
        ingest(store, [{str(SAMPLES)!r}], source="celestrak")
        store.write_screening(res.conjunctions)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        print("LEAKED", leaked)
        assert not leaked, leaked
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LEAKED []" in out.stdout


def test_dask_events_equal_local_run_including_slice_boundaries(client, shell, local_run):
    res = screen(shell, START, days=1.0, threshold_km=THRESHOLD, slice_knots=SLICE_KNOTS,
                 dask=client)
    assert res.stats["slices"] == 288 and res.stats["workers"] == 2
    assert local_run.conjunctions.num_rows > 1000
    _assert_same_events(res.conjunctions, local_run.conjunctions)
    # boundaries: events spanning one exist, and none is doubled (merge_slices kept one)
    straddle = _straddling(res.conjunctions, SLICE_KNOTS * 300.0)
    assert straddle.sum() >= 5, "the window should hold events spanning slice boundaries"
    g1, g2, gt = _events(res.conjunctions)
    o = np.lexsort((gt, g2, g1))
    same_pair = (g1[o][1:] == g1[o][:-1]) & (g2[o][1:] == g2[o][:-1])
    assert not (same_pair & (np.diff(gt[o]) < 10**9)).any(), "an event reported twice"
    # and the same events as the default 2-hour slices, run locally
    coarse = screen(shell, START, days=1.0, threshold_km=THRESHOLD, workers=2)
    _assert_same_events(res.conjunctions, coarse.conjunctions)
    # the catalogue went to each worker once: one Satrec build per worker for 288 tasks
    builds = client.run(lambda: sd.BUILDS["count"])
    assert sorted(builds.values()) == [1, 1], builds


def _worker_with_a_task(client, timeout_s: float = 30.0):
    """The first worker (by address) the scheduler has a task processing on, polled until
    there is one: at any one instant both may be between tasks, so one look may find none.
    ``None`` if none had a task for ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        busy = sorted(w for w, keys in client.processing().items() if keys)
        if busy:
            return busy[0]
        time.sleep(0.01)
    return None


def test_worker_killed_mid_run_is_retried_and_result_unchanged(client, shell, local_run):
    killed = []

    def kill_one(done, total):
        if done == 20 and not killed:
            victim = _worker_with_a_task(client)
            if victim is None:
                return                # the assertion below says so
            killed.append(victim)
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)  # the worker process dies; its nanny restarts it

    res = screen(shell, START, days=1.0, threshold_km=THRESHOLD, slice_knots=SLICE_KNOTS,
                 dask=client, progress=kill_one)
    assert killed, "no worker was killed"
    assert killed[0] not in client.nthreads()
    _assert_same_events(res.conjunctions, local_run.conjunctions)
    assert res.excluded.equals(local_run.excluded)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_ties_between_slices_resolve_the_same_on_processes_and_workers(client):
    """Two objects with one element set are co-located at range 0 in every slice: the row
    reported (its TCA) must not depend on which slice finished first."""
    el = read_file(SAMPLES / "celestrak_active_2025-04-23_first300.tle",
                   source="celestrak").elements.slice(0, 3)
    twin = el.slice(0, 1).set_column(0, el.schema.field(0), pa.array([99999], pa.int64()))
    el = pa.concat_tables([el, twin])
    runs = [screen(el, "2025-04-23T00:00:00Z", days=1.0, **kw).conjunctions
            for kw in ({"workers": 1}, {"workers": 2}, {"dask": client})]
    assert runs[0].filter(runs[0]["co_located"]).num_rows == 1
    for other in runs[1:]:
        _assert_same_events(other, runs[0])


# -- object storage ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free local port, with a bucket; yields storage options."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    opts = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "testing",
            "secret": "testing", "client_kwargs": {"region_name": "us-east-1"}}
    import boto3

    boto3.client("s3", endpoint_url=opts["endpoint_url"], aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1",
                 ).create_bucket(Bucket="ssafuse-test")
    yield opts
    server.stop()


def _feed_files(tmp_path):
    """Inputs with every kind of outcome: good files, a file given twice under two names, a
    file with bad records, one no format reads, and one that does not exist."""
    tle = SAMPLES / "celestrak_active_2025-04-23_first300.tle"
    copy = tmp_path / "copy_of_active.tle"
    shutil.copy(tle, copy)
    lines = tle.read_text().splitlines()
    lines[2] = lines[2][:-1] + str((int(lines[2][-1]) + 1) % 10)  # bad checksum
    bad = tmp_path / "bad_checksum.tle"
    bad.write_text("\n".join(lines[:30]) + "\n")
    junk = tmp_path / "notes.tle"
    junk.write_text("not an element set\n")
    return [str(tle), str(SAMPLES / "celestrak_stations_gp_2026-03-10.json"), str(copy),
            str(bad), str(junk), str(tmp_path / "missing.tle")]


def _summary(report):
    return [(f.uri, f.status, f.format, f.read, f.accepted, f.rejected) for f in report.files]


def _sorted(table: pa.Table) -> pa.Table:
    keep = [c for c in table.column_names if c != "ingested_at"]
    return table.select(keep).sort_by([(c, "ascending") for c in
                                       ("source_uri", "source_record")])


def test_s3_store_round_trip_and_dask_ingest_same_as_local(client, s3, tmp_path):
    now = dt.datetime(2026, 3, 10, 12, tzinfo=dt.timezone.utc)
    files = _feed_files(tmp_path)
    local = Store(tmp_path / "local")
    want = ingest(local, files, source="celestrak", now=now)

    url = "s3://ssafuse-test/store"
    remote = Store(url, storage_options=s3)
    got = ingest(remote, files, source="celestrak", now=now, dask=client)
    assert _summary(got) == _summary(want)
    assert [f.status for f in got.files].count("already-ingested") == 1
    assert got.refused_files and got.rejected > 0
    for table in ("elements", "rejects"):
        a, b = _sorted(remote.table(table)), _sorted(local.table(table))
        assert a.num_rows == b.num_rows > 0
        assert a.equals(b), table
    # a new Store on the same URL (another machine) sees the same; a second ingest is a no-op
    again = ingest(Store(url, storage_options=s3), files, source="celestrak", now=now)
    assert {f.status for f in again.files} <= {"already-ingested", "refused"}
    assert remote.table("elements").num_rows == local.table("elements").num_rows
    assert len(remote.manifests("ingest")) == 2
    assert json.loads(remote.fs.cat_file(got.manifest))["counts"] == \
        json.loads(Path(want.manifest).read_text())["counts"]
    # screening output round trip, and no temporary object left anywhere
    res = screen(remote.table("elements").slice(0, 300), "2025-04-23T00:00:00Z", days=0.1,
                 workers=1)
    path, manifest = remote.write_screening(res.conjunctions, excluded=res.excluded, now=now)
    assert str(path).startswith(url + "/conjunctions/screen-")
    assert remote.table("conjunctions").num_rows == res.conjunctions.num_rows
    assert remote.manifests("screen")[0]["counts"]["conjunctions"] == res.conjunctions.num_rows
    keys = remote.fs.find(url)
    assert not [k for k in keys if k.rsplit("/", 1)[-1].startswith(".")], keys



def test_nightly_job_with_dask_in_its_config_gives_the_local_result(tmp_path):
    """`[screen] dask = "local:2"` in the nightly config: the same conjunctions as the run
    without it (the sample feeds, 1 day)."""
    import pyarrow.parquet as pq

    from _run_helpers import run_cli, run_dir, sample_config

    tables = []
    for name, extra in (("local", {}), ("dask", {"dask": "local:2"})):
        (tmp_path / name).mkdir()
        cfg = sample_config(tmp_path / name, **extra)
        done = run_cli(cfg)
        assert done.returncode == 0, done.stderr[-2000:]
        tables.append(pq.read_table(run_dir(tmp_path / name / "store") / "conjunctions.parquet")
                      .sort_by([("object_id_1", "ascending"), ("object_id_2", "ascending"),
                                ("tca", "ascending")]))
    local, dask = tables
    assert local.num_rows > 0
    assert dask.equals(local)

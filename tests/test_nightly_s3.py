"""The nightly job on a store at a URL (``store = "s3://bucket/store"``), against moto's S3
server on 127.0.0.1 (a real HTTP endpoint, not an in-process mock).

Every check reads the bucket with boto3, independently of ssafuse's own filesystem layer.
The reference for what a run must hold is the same configuration run on a local store (the
code path every other nightly test covers): the same files in the run folder, the same events
(object pair and TCA, exactly: both runs screen the same catalogue with the same code).

The feed is small and real: CelesTrak's stations group and the three objects that pass within
5 km of the ISS on 2026-03-10 (sample_tles/ORIGIN.md), screened for one day against the ISS.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from conftest import SAMPLES

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

from ssafuse import nightly  # noqa: E402
from ssafuse.nightly import AlreadyRunning, ConfigError, load_config  # noqa: E402
from ssafuse.nightly.lock import object_lock  # noqa: E402
from ssafuse.store import Store  # noqa: E402
from ssafuse.timeutil import parse_iso  # noqa: E402

BUCKET = "ssafuse-nightly"
NIGHT_1 = "2026-03-10T02:00:00Z"   # window 2026-03-10T00:00Z + 1 d
NIGHT_2 = "2026-03-11T02:00:00Z"   # the next night
FEEDS = [SAMPLES / "celestrak_stations_gp_2026-03-10.json",
         SAMPLES / "celestrak_active_gp_2026-03-10_iss_neighbours.csv"]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def endpoint():
    """A moto S3 server on a free local port with one bucket; credentials in the
    environment (as the config file never holds them). Yields the endpoint URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    url = f"http://127.0.0.1:{port}"
    _s3(url).create_bucket(Bucket=BUCKET)
    yield url
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


def _s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _keys(endpoint: str, prefix: str) -> dict[str, str]:
    """Every object under ``prefix``: key -> ETag (boto3, not ssafuse)."""
    out, token = {}, None
    while True:
        page = _s3(endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix,
                                             **({"ContinuationToken": token} if token else {}))
        out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def _get(endpoint: str, key: str) -> bytes:
    return _s3(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _config(path, store: str, *, endpoint: str | None = None, work_dir=None):
    lines = [f"store = {json.dumps(store)}"]
    if work_dir is not None:
        lines.append(f"work_dir = {json.dumps(str(work_dir))}")
    if endpoint is not None:
        lines += ["[storage_options]", f"endpoint_url = {json.dumps(endpoint)}"]
    lines += ["[[feeds]]", 'source = "celestrak"',
              f"paths = {json.dumps([str(p) for p in FEEDS])}",
              "[screen]", "days = 1.0", "threshold_km = 5.0", "primaries = [25544]",
              "workers = 1"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(config, now: str):
    return nightly.run(load_config(config), now=parse_iso(now))


def _events(table) -> list[tuple[int, int, int]]:
    return sorted(zip(table["object_id_1"].to_pylist(), table["object_id_2"].to_pylist(),
                      table["tca"].cast("int64").to_pylist()))


@pytest.fixture(scope="module")
def night_1(endpoint, tmp_path_factory):
    """Night 1 on S3 (store ``s3://BUCKET/store``) and on a local store, same config."""
    tmp = tmp_path_factory.mktemp("s3night")
    s3_cfg = _config(tmp / "s3.toml", f"s3://{BUCKET}/store", endpoint=endpoint,
                     work_dir=tmp / "work")
    local_cfg = _config(tmp / "local.toml", str(tmp / "local-store"))
    remote = _run(s3_cfg, NIGHT_1)
    local = _run(local_cfg, NIGHT_1)
    return {"tmp": tmp, "config": s3_cfg, "remote": remote, "local": local}


def test_a_night_on_s3_writes_the_same_run_folder_as_on_a_local_store(endpoint, night_1):
    remote, local = night_1["remote"], night_1["local"]
    assert remote.exit_code == 0, remote.summary
    assert remote.run_id == local.run_id  # where the store is never changes the run id
    prefix = f"store/runs/{remote.run_id}/"
    assert remote.remote_dir == f"s3://{BUCKET}/{prefix[:-1]}"
    keys = _keys(endpoint, prefix)
    local_files = {p.relative_to(local.run_dir).as_posix() for p in local.run_dir.rglob("*")
                   if p.is_file()}
    assert {k[len(prefix):] for k in keys} == local_files
    assert {"manifest.json", "run.json", "conjunctions.parquet", "catalogue.parquet",
            "screen.json", "report.html", "created.json"} <= local_files
    manifest = json.loads(_get(endpoint, prefix + "manifest.json"))
    assert manifest["exit_code"] == 0 and manifest["run_id"] == remote.run_id
    # the store-wide copies go through the store too; the lock is released (deleted)
    store_keys = _keys(endpoint, "store/")
    assert f"store/conjunctions/run-{remote.run_id}.parquet" in store_keys
    local_manifests = local.run_dir.parents[1] / "_manifests"
    assert [k for k in store_keys if k.startswith("store/_manifests/run-")] == [
        f"store/_manifests/{p.name}" for p in local_manifests.glob("run-*.json")]
    assert "store/_run.lock" not in store_keys


def test_the_conjunctions_on_s3_are_the_local_stores(endpoint, night_1):
    remote, local = night_1["remote"], night_1["local"]
    conj = pq.read_table(io.BytesIO(_get(endpoint,
                                         f"store/runs/{remote.run_id}/conjunctions.parquet")))
    want = pq.read_table(local.run_dir / "conjunctions.parquet")
    assert conj.num_rows == want.num_rows > 0  # the ISS's neighbours make real events
    assert _events(conj) == _events(want)
    both = pq.read_table(io.BytesIO(_get(endpoint,
                                         f"store/conjunctions/run-{remote.run_id}.parquet")))
    assert _events(both) == _events(want)


def test_a_rerun_from_another_machine_reuses_the_screening(endpoint, night_1):
    # a fresh working folder: what it reuses can only come from the bucket
    cfg = _config(night_1["tmp"] / "again.toml", f"s3://{BUCKET}/store", endpoint=endpoint,
                  work_dir=night_1["tmp"] / "other-machine")
    prefix = f"store/runs/{night_1['remote'].run_id}/"
    created = _get(endpoint, prefix + "created.json")
    # an earlier attempt's CDM that this one does not write (named in the store's listing of
    # what ssafuse wrote) is removed; a file ssafuse did not write is left alone
    s3 = _s3(endpoint)
    listing = json.loads(_get(endpoint, prefix + "cdm/.ssafuse-written.json"))
    s3.put_object(Bucket=BUCKET, Key=prefix + "cdm/.ssafuse-written.json", Body=json.dumps(
        dict(listing, written=[*listing["written"], "OLD.cdm"])).encode())
    s3.put_object(Bucket=BUCKET, Key=prefix + "cdm/OLD.cdm", Body=b"stale")
    s3.put_object(Bucket=BUCKET, Key=prefix + "cdm/notes.txt", Body=b"an operator's")
    again = _run(cfg, "2026-03-10T05:30:00Z")  # later the same night: the same run
    assert again.exit_code == 0, again.summary
    manifest = json.loads(_get(endpoint, f"store/runs/{again.run_id}/manifest.json"))
    assert {s["name"]: s["status"] for s in manifest["stages"]}["screen"] == "reused"
    assert manifest["now"] == "2026-03-10T05:30:00+00:00"
    # the first attempt's creation time is kept (the CDMs stay the same)
    assert _get(endpoint, f"store/runs/{again.run_id}/created.json") == created
    keys = _keys(endpoint, prefix)
    assert prefix + "cdm/OLD.cdm" not in keys and prefix + "cdm/notes.txt" in keys
    assert json.loads(_get(endpoint, prefix + "cdm/.ssafuse-written.json")) == listing


def _lock_body(expires: str) -> bytes:
    return json.dumps({"pid": 4242, "host": "other-host", "started": "2026-03-10T01:00:00+00:00",
                       "expires": expires, "token": "theirs"}).encode()


def test_a_held_lock_refuses_the_run_with_exit_3_and_nothing_written(endpoint, night_1):
    s3 = _s3(endpoint)
    s3.put_object(Bucket=BUCKET, Key="store/_run.lock", Body=_lock_body("2999-01-01T00:00:00Z"))
    try:
        before = _keys(endpoint, "")
        with pytest.raises(AlreadyRunning) as e:
            _run(night_1["config"], NIGHT_2)
        assert "pid 4242 on other-host" in str(e.value)
        cli = subprocess.run([sys.executable, "-m", "ssafuse.cli", "run", "--config",
                              str(night_1["config"]), "--now", NIGHT_2],
                             capture_output=True, text=True, timeout=120, env=dict(os.environ))
        assert cli.returncode == 3, cli.stderr[-2000:]
        assert "another ssafuse run is active" in cli.stderr and cli.stdout == ""
        assert _keys(endpoint, "") == before  # nothing written, the lock untouched
        assert json.loads(_get(endpoint, "store/_run.lock"))["token"] == "theirs"
    finally:
        s3.delete_object(Bucket=BUCKET, Key="store/_run.lock")


def test_the_lock_is_created_with_a_conditional_put(endpoint):
    """The conditional PUT itself: the server refuses a second create (412)."""
    s3 = _s3(endpoint)
    s3.put_object(Bucket=BUCKET, Key="probe/_run.lock", Body=b"1", IfNoneMatch="*")
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key="probe/_run.lock", Body=b"2", IfNoneMatch="*")
    assert e.value.response["Error"]["Code"] == "PreconditionFailed"
    fs = Store(f"s3://{BUCKET}/probe", storage_options={"endpoint_url": endpoint}).fs
    with object_lock(fs, f"s3://{BUCKET}/probe/x.lock", lease_hours=1):
        body = json.loads(_get(endpoint, "probe/x.lock"))
        assert body["pid"] == os.getpid() and body["host"] == socket.gethostname()
        with pytest.raises(AlreadyRunning):  # not even this process takes it twice
            with object_lock(fs, f"s3://{BUCKET}/probe/x.lock"):
                pass
    assert "probe/x.lock" not in _keys(endpoint, "probe/")


def test_an_expired_lock_is_taken_over_and_the_next_night_finds_the_previous_run(
        endpoint, night_1, caplog):
    _s3(endpoint).put_object(Bucket=BUCKET, Key="store/_run.lock",
                             Body=_lock_body("2026-03-10T13:00:00+00:00"))  # long past
    nxt = _run(night_1["config"], NIGHT_2)
    assert nxt.exit_code == 0, nxt.summary
    assert "taking over the expired run lock" in caplog.text
    assert "store/_run.lock" not in _keys(endpoint, "store/")  # released after the run
    assert nxt.run_id != night_1["remote"].run_id
    info = json.loads(_get(endpoint, f"store/runs/{nxt.run_id}/run.json"))
    manifest = json.loads(_get(endpoint, f"store/runs/{nxt.run_id}/manifest.json"))
    assert info["previous_run"] == manifest["previous_run"] == night_1["remote"].run_id
    assert info["window_start"] == "2026-03-11T00:00:00+00:00"
    # the report compared the night with the previous one, copied from the store
    summary = _get(endpoint, f"store/runs/{nxt.run_id}/summary.txt").decode()
    assert f"since run {night_1['remote'].run_id}: " in summary


def test_url_store_config_keys(tmp_path):
    cfg = load_config(_config(tmp_path / "a.toml", "s3://b/store/", endpoint="http://x"))
    assert cfg.store == "s3://b/store" and cfg.lock_path == "s3://b/store/_run.lock"
    assert cfg.storage_options == {"endpoint_url": "http://x"} and cfg.lock_ttl_hours == 12.0
    local = load_config(_config(tmp_path / "b.toml", "store"))
    assert local.store == tmp_path / "store" and local.lock_path == tmp_path / "store/_run.lock"
    assert local.settings() == cfg.settings()  # where the store is is not in the run id
    text = (tmp_path / "a.toml").read_text()
    (tmp_path / "c.toml").write_text(text.replace("[storage_options]",
                                                  '[storage_options]\nsecret = "s"'))
    with pytest.raises(ConfigError, match="credentials come from the environment"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text('lock_ttl_hours = 1\n' + (tmp_path / "b.toml").read_text())
    with pytest.raises(ConfigError, match="lock_ttl_hours is for a store at a URL"):
        load_config(tmp_path / "d.toml")

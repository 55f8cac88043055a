"""The nightly job as cron runs it: no ``[screen] start`` in the config, ``ssafuse run --now``
on consecutive nights, so the window, the run id and the previous run all come from ``--now``.

The nights (one store, one config, the crontab's ``--log-json``)::

    A1 2026-03-09T02:00Z  the feeds as shipped                           -> exit 0
    A2 2026-03-09T04:00Z  nothing changed: the same run, screening reused -> exit 0
    B1 2026-03-10T02:00Z  neighbours file changed (v2), UDL feed broken   -> exit 1
    B2 2026-03-10T04:00Z  neighbours file changed again (v3): screened again, not reused
    C1 2026-03-11T02:00Z  UDL feed restored; a folder where report.html goes -> exit 2
    C2 2026-03-11T03:00Z  the folder removed: the same night completes    -> exit 0

The window rule (README, *The nightly job*, "Time"; ``examples/nightly.toml``): the window
starts at ``now`` floored to ``[screen] align_hours`` (24 by default: midnight UTC) and lasts
``days``; the run id is ``<window start to the minute>-<hash of the settings>``. Expected
windows here are midnight of ``--now``'s UTC date, worked out with ``datetime`` alone.

The neighbours file is the real CelesTrak file of the three objects that pass within 5 km of
the ISS on 2026-03-10 (``sample_tles/ORIGIN.md``), with mean anomalies moved as successive
orbit determinations would move them (``V1``..``V3``; passes found by screening each version
alone): night A's puts HAWK-5A's (52757) pass on 03-09 21:24, before night B's window, and
HAWK-5C's (52754) on 03-10 05:09; night B's last moves HAWK-5C back to its real 16:01 pass
and SONATE-2 (59112) by +0.01 deg (the same pass within 0.1 s, 0.34 km closer). Windows of
2 days make night B's window (from 03-10 00:00) overlap night A's (03-09 + 2 d), so the
report's changes section compares real consecutive runs. The expected new / closer / gone
events are worked out with pandas from the two nights' ``conjunctions.parquet`` and the rule
the report states (``ssafuse.report``, *Changes*), not from the report.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssafuse.nightly import EXIT_FAILED, EXIT_OK, EXIT_WARNINGS

from _run_helpers import ISS_NEIGHBOURS, run_cli, write_config
from conftest import SAMPLES

STATIONS = SAMPLES / "celestrak_stations_gp_2026-03-10.json"
UDL = SAMPLES / "udl_elset_sample.json"
DAYS = 2.0
#: (run name, --now). The A nights' feeds hold epochs up to 2026-03-10T07:20Z, under the
#: 2 days after ingest that the epoch policy accepts (README, "One policy for epochs").
NIGHTS = {"A1": "2026-03-09T02:00:00Z", "A2": "2026-03-09T04:00:00Z",
          "B1": "2026-03-10T02:00:00Z", "B2": "2026-03-10T04:00:00Z",
          "C1": "2026-03-11T02:00:00Z", "C2": "2026-03-11T03:00:00Z"}
#: The neighbours file's versions: mean anomaly offsets (deg) by NORAD number.
V1 = {52754: 1.25, 52757: 1.25}               # night A
V2 = {52754: 1.25, 52757: 1.25, 59112: 0.01}  # night B, first
V3 = {52757: 1.25, 59112: 0.01}               # night B, again
TOLERANCE_S, SHRINK_KM = 60.0, 0.001  # the report's defaults (examples/nightly.toml)


@dataclass
class Night:
    now: str
    returncode: int
    stdout: str
    logs: list[dict]
    run_id: str
    manifest: dict
    #: (st_ino, st_mtime_ns) of the run's screened.parquet after the run, None if absent
    screened_stat: tuple | None
    screened: pa.Table | None


def _neighbours(path: Path, offsets_deg: dict[int, float]) -> Path:
    """The real neighbours CSV with some mean anomalies moved; every other field as sent."""
    with open(ISS_NEIGHBOURS, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        d = offsets_deg.get(int(r["NORAD_CAT_ID"]), 0.0)
        if d:
            r["MEAN_ANOMALY"] = f"{float(r['MEAN_ANOMALY']) + d:.4f}"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _night(cfg: Path, store: Path, now: str) -> Night:
    done = run_cli(cfg, now, "--log-json")
    m = re.match(r"ssafuse run (\S+): ", done.stdout)
    assert m, (done.stdout[-2000:], done.stderr[-2000:])
    rid = m.group(1)
    rd = store / "runs" / rid
    screened = rd / "screened.parquet"
    st = screened.stat() if screened.exists() else None
    return Night(now, done.returncode, done.stdout,
                 [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")],
                 rid, json.loads((rd / "manifest.json").read_text()),
                 (st.st_ino, st.st_mtime_ns) if st else None,
                 pq.read_table(screened) if st else None)


@pytest.fixture(scope="module")
def cron(tmp_path_factory):
    """Run the six nights in order (about 25 s of CPU); ``(store, {name: Night})``."""
    tmp = tmp_path_factory.mktemp("cron")
    feeds = tmp / "feeds"
    feeds.mkdir()
    stations = Path(shutil.copy(STATIONS, feeds))
    udl = Path(shutil.copy(UDL, feeds))
    neighbours = _neighbours(feeds / "neighbours.csv", V1)
    store = tmp / "store"
    cfg = write_config(
        tmp / "nightly.toml", store=store,
        screen={"days": DAYS, "threshold_km": 5.0, "primaries": [25544],
                "workers": 1},  # no start: the window comes from --now
        feeds=[{"source": "celestrak", "paths": [str(stations), str(neighbours)]},
               {"source": "partner-udl", "paths": [str(udl)], "format": "udl-elset",
                "marking": "UNCLASSIFIED//REL TO USA, GBR, AUS"}])
    out = {}
    out["A1"] = _night(cfg, store, NIGHTS["A1"])
    out["A2"] = _night(cfg, store, NIGHTS["A2"])
    _neighbours(neighbours, V2)
    udl.write_bytes(b"\x00\x01 the partner's upload was cut short")
    out["B1"] = _night(cfg, store, NIGHTS["B1"])
    _neighbours(neighbours, V3)
    out["B2"] = _night(cfg, store, NIGHTS["B2"])
    shutil.copy(UDL, udl)
    # a real fault from outside: a folder where the report file goes (no permission trick:
    # the tests may run as root); the run id's hash is the config's, the same every night
    blocked = store / "runs" / f"20260311T0000Z-{out['A1'].run_id.split('-')[1]}" / "report.html"
    blocked.mkdir(parents=True)
    out["C1"] = _night(cfg, store, NIGHTS["C1"])
    blocked.rmdir()
    out["C2"] = _night(cfg, store, NIGHTS["C2"])
    return store, out


def _midnight(now: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
    return dt.datetime(t.year, t.month, t.day, tzinfo=dt.timezone.utc)


def _stage(night: Night, name: str) -> dict:
    (st,) = [s for s in night.manifest["stages"] if s["name"] == name]
    return st


def test_window_and_run_id_come_from_now_floored_to_midnight(cron):
    store, nights = cron
    suffix = {n.run_id.split("-")[1] for n in nights.values()}
    assert len(suffix) == 1 and re.fullmatch(r"[0-9a-f]{8}", suffix.pop())
    for name, night in nights.items():
        start = _midnight(night.now)
        end = start + dt.timedelta(days=DAYS)
        assert night.run_id.split("-")[0] == start.strftime("%Y%m%dT%H%MZ"), name
        assert dt.datetime.fromisoformat(night.manifest["window_start"]) == start, name
        assert dt.datetime.fromisoformat(night.manifest["window_end"]) == end, name
        assert night.manifest["now"] == night.now.replace("Z", "+00:00"), name
        info = json.loads((store / "runs" / night.run_id / "run.json").read_text())
        assert dt.datetime.fromisoformat(info["window_start"]) == start, name
    # a re-run later the same night is the same run; the next night is another
    for first, again in (("A1", "A2"), ("B1", "B2"), ("C1", "C2")):
        assert nights[first].run_id == nights[again].run_id
    assert len({nights[k].run_id for k in ("A1", "B1", "C1")}) == 3
    assert sorted(d.name for d in (store / "runs").iterdir()) == sorted(
        {n.run_id for n in nights.values()})
    # each attempt leaves its own manifest in the store's _manifests/ (stamped by --now)
    assert len(list((store / "_manifests").glob("run-*.json"))) == len(nights)


def test_an_unchanged_rerun_reuses_the_screening(cron):
    _, nights = cron
    first, again = nights["A1"], nights["A2"]
    assert (first.returncode, again.returncode) == (EXIT_OK, EXIT_OK), again.stdout
    assert _stage(first, "screen")["status"] == "ok"
    assert _stage(again, "screen")["status"] == "reused"
    assert again.screened_stat is not None and again.screened_stat == first.screened_stat
    reuse = [r for r in again.logs if r["stage"] == "screen" and "reusing" in r["message"]]
    assert len(reuse) == 1
    assert _stage(again, "screen")["counts"] == _stage(first, "screen")["counts"]


def test_a_feed_changed_the_same_night_is_screened_again(cron):
    store, nights = cron
    before, after = nights["B1"], nights["B2"]
    assert _stage(after, "screen")["status"] == "ok"  # not "reused"
    assert not [r for r in after.logs if r["stage"] == "screen" and "reusing" in r["message"]]
    assert after.screened_stat != before.screened_stat
    # the catalogue took V3's element sets (same epochs as V1's, ingested later)
    cat = pq.read_table(store / "runs" / after.run_id / "catalogue.parquet").to_pandas()
    base = pq.read_table(store / "runs" / nights["A1"].run_id / "catalogue.parquet").to_pandas()
    moved = (cat.set_index("object_id").mean_anomaly_deg
             - base.set_index("object_id").mean_anomaly_deg).dropna()
    assert moved[moved.abs() > 1e-9].round(6).to_dict() == {
        k: round(V3.get(k, 0) - V1.get(k, 0), 6) for k in V1 | V3 if V3.get(k, 0) != V1.get(k, 0)}
    # and the screening is of that catalogue: HAWK-5C's pass moved by more than the tolerance
    (t_v2,), (t_v3,) = (_tcas(n.screened, 52754) for n in (before, after))
    assert abs(t_v3 - t_v2) > TOLERANCE_S * 1e9


def test_a_broken_feed_warns_and_the_other_feeds_are_kept(cron):
    _, nights = cron
    for name in ("B1", "B2"):
        night = nights[name]
        assert night.returncode == EXIT_WARNINGS, night.stdout
        feeds = {f["source"]: f for f in night.manifest["feeds"]}
        assert feeds["partner-udl"]["status"] == "failed"
        assert "udl_elset_sample.json" in " ".join(feeds["partner-udl"]["problems"])
        assert feeds["celestrak"]["status"] == "ok"
        # accepted: every record of the two files (counted here from the files themselves)
        n_csv = len(ISS_NEIGHBOURS.read_text().strip().splitlines()) - 1  # less the header
        assert feeds["celestrak"]["accepted"] == len(json.loads(STATIONS.read_text())) + n_csv
        assert "WARNING feed partner-udl" in night.stdout
        assert night.manifest["exit_code"] == EXIT_WARNINGS and not night.manifest["errors"]
        assert {s["name"]: s["status"] for s in night.manifest["stages"]} == {
            "ingest": "warnings", "catalogue": "ok", "screen": "ok", "assess": "ok",
            "report": "ok"}


def test_a_failed_stage_exits_2_with_a_manifest_and_the_night_completes_on_rerun(cron):
    store, nights = cron
    failed, rerun = nights["C1"], nights["C2"]
    assert failed.returncode == EXIT_FAILED, failed.stdout
    m = failed.manifest
    assert m["exit_code"] == EXIT_FAILED
    assert {s["name"]: s["status"] for s in m["stages"]} == {
        "ingest": "ok", "catalogue": "ok", "screen": "ok", "assess": "ok", "report": "failed"}
    assert len(m["errors"]) == 1 and m["errors"][0].startswith("report: ")
    assert "report.html" in m["errors"][0] and "report.html" in _stage(failed, "report")["message"]
    assert f"ERROR {m['errors'][0]}" in failed.stdout
    assert (store / "runs" / failed.run_id / "conjunctions.parquet").exists()  # kept
    assert rerun.returncode == EXIT_OK, rerun.stdout
    assert rerun.manifest["errors"] == [] and _stage(rerun, "report")["status"] == "ok"
    assert _stage(rerun, "screen")["status"] == "reused"
    assert (store / "runs" / rerun.run_id / "report.html").is_file()


def test_previous_run_is_last_nights(cron):
    _, nights = cron
    expect = {"A1": None, "A2": None, "B1": nights["A1"].run_id, "B2": nights["A1"].run_id,
              "C1": nights["B1"].run_id, "C2": nights["B1"].run_id}
    assert {k: n.manifest["previous_run"] for k, n in nights.items()} == expect


def _tcas(table: pa.Table, object_id: int) -> list[int]:
    df = _events(table)
    return df[(df.object_id_1 == object_id) | (df.object_id_2 == object_id)].tca_ns.tolist()


def _events(table: pa.Table) -> pd.DataFrame:
    """Events as the report compares them: attached objects (one complex) left out."""
    df = pd.DataFrame({
        "object_id_1": table["object_id_1"].to_pylist(),
        "object_id_2": table["object_id_2"].to_pylist(),
        "tca_ns": table["tca"].cast(pa.int64()).to_pylist(),
        "miss_km": table["miss_distance_km"].to_pylist(),
        "attached": [bool(x) for x in table["attached"].to_pylist()]})
    df = df[~df.attached].copy()
    df["pair"] = [(min(a, b), max(a, b)) for a, b in zip(df.object_id_1, df.object_id_2)]
    df["key"] = [f"{a}-{b}-{t}" for a, b, t in zip(df.object_id_1, df.object_id_2, df.tca_ns)]
    return df


def _expected_changes(prev: pd.DataFrame, cur: pd.DataFrame, start_ns: int) -> dict:
    # one event per pair in each run (asserted): a join on the pair is the whole matching
    assert not prev.pair.duplicated().any() and not cur.pair.duplicated().any()
    j = cur.merge(prev, on="pair", how="outer", suffixes=("", "_prev"))
    both = j.tca_ns.notna() & j.tca_ns_prev.notna()
    matched = both & ((j.tca_ns - j.tca_ns_prev).abs() <= TOLERANCE_S * 1e9)
    return {"new": set(j.key[j.tca_ns.notna() & ~matched]),
            "closer": set(j.key[matched & (j.miss_km < j.miss_km_prev - SHRINK_KM)]),
            "gone": set(j.key_prev[j.tca_ns_prev.notna() & ~matched
                                   & (j.tca_ns_prev >= start_ns)])}


def test_report_changes_equal_a_join_of_the_two_nights_conjunctions(cron):
    store, nights = cron
    a, b = (store / "runs" / nights[k].run_id for k in ("A1", "B1"))
    start_ns = int(_midnight(nights["B1"].now).timestamp()) * 10**9
    expect = _expected_changes(_events(pq.read_table(a / "conjunctions.parquet")),
                               _events(pq.read_table(b / "conjunctions.parquet")), start_ns)
    # the nights were made so that each kind occurs (V1, V3 above): the check has teeth,
    # and so that night A has an event before night B's window, which is not "gone"
    assert all(expect.values()), expect
    prev = _events(pq.read_table(a / "conjunctions.parquet"))
    assert (prev.tca_ns < start_ns).any()
    html = (b / "report.html").read_text()
    got = {kind: set(re.findall(rf'<tr class="event" id="{kind}-(\d+-\d+-\d+)"', html))
           for kind in expect}
    assert got == expect
    counts = {kind: int(re.search(rf'id="n-{kind}">(\d+)<', html).group(1)) for kind in expect}
    assert counts == {kind: len(keys) for kind, keys in expect.items()}
    assert (f"since run {nights['A1'].run_id}: {len(expect['new'])} new, "
            f"{len(expect['closer'])} closer, {len(expect['gone'])} gone") in nights["B2"].stdout
    assert 'id="n-new"' not in (a / "report.html").read_text()  # night A had no previous run

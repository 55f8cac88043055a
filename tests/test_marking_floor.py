"""No marking is ever lowered (issue 13): a feed's marking is a floor under every record.

Each case here was a downgrade before: a record's own ``U`` (TLE classification column, OMM
``CLASSIFICATION_TYPE``, a declarative default) replaced the feed's SECRET, and re-ingesting a
file under a corrected marking kept the old one. Expected markings follow the rule in
DESIGN.md ("a record may raise the classification or narrow the releasability, never lower
either"), not our output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc

from ssafuse import ingest
from ssafuse import markings as mk
from ssafuse.markings import exportable
from ssafuse.store import Store

SAMPLES = Path(__file__).resolve().parents[1] / "sample_tles"
TLE = SAMPLES / "celestrak_active_2025-04-23_first300.tle"
PARTNERS = ("AUS", "FRA", "GBR", "USA", "JPN")


def stored(store: Store) -> list[dict]:
    return store.table("elements", columns=["object_id", "classification", "releasable_to",
                                            "marking"]).to_pylist()


def released_to(rows, code) -> int:
    return sum(exportable(r["classification"], r["releasable_to"], code) for r in rows)


def test_a_secret_feed_of_u_records_stays_secret(tmp_path):
    # every line 1 of this CelesTrak file has classification "U" in column 8
    assert {line[7] for line in TLE.read_text().splitlines() if line.startswith("1 ")} == {"U"}
    store = Store(tmp_path / "store")
    rep = ingest(store, [TLE], source="partner", marking="SECRET")
    rows = stored(store)
    assert len(rows) == rep.accepted == 300
    assert {r["classification"] for r in rows} == {"SECRET"}
    # the text says what applies, never less than the row (the "U" stays in the file)
    assert {r["marking"] for r in rows} == {"SECRET"}
    assert all(released_to(rows, code) == 0 for code in PARTNERS)
    assert rep.files[0].marking_conflicts == 300
    assert "below the feed's SECRET" in rep.files[0].message


def test_a_rel_to_feed_of_u_records_keeps_its_releasability(tmp_path):
    store = Store(tmp_path / "store")
    ingest(store, [TLE], source="partner", marking="SECRET//REL TO USA, GBR")
    rows = stored(store)
    assert {(r["classification"], tuple(r["releasable_to"])) for r in rows} == {
        ("SECRET", ("GBR", "USA"))}
    assert released_to(rows, "GBR") == 300
    assert released_to(rows, "AUS") == released_to(rows, "FRA") == 0


def test_reingesting_under_a_corrected_marking_re_marks_the_records(tmp_path):
    store = Store(tmp_path / "store")
    first = ingest(store, [TLE], source="partner", marking="UNCLASSIFIED")
    assert first.files[0].status == "ingested"
    again = ingest(store, [TLE], source="partner", marking="UNCLASSIFIED")
    assert again.files[0].status == "already-ingested"   # same marking: nothing to do
    fixed = ingest(store, [TLE], source="partner", marking="SECRET//REL TO USA")
    assert fixed.files[0].status == "re-marked"
    assert "UNCLASSIFIED" in fixed.files[0].message and "SECRET//REL TO USA" in fixed.files[0].message
    rows = stored(store)
    assert len(rows) == 300                                # replaced, never doubled
    assert {r["classification"] for r in rows} == {"SECRET"}
    assert released_to(rows, "GBR") == 0 and released_to(rows, "USA") == 300
    entry = store.ledger_entry("partner", fixed.files[0].sha256)
    assert entry["marking"] == "SECRET//REL TO USA" and entry["status"] == "ingested"


def test_a_re_mark_killed_before_its_ledger_entry_is_re_marked_again(tmp_path, monkeypatch):
    # killed once the new parts are written, before the ledger names their marking: the
    # next ingest, under the first marking again, must re-mark, not call it "already ingested"
    store = Store(tmp_path / "store")
    ingest(store, [TLE], source="partner", marking="SECRET//NOFORN")
    write = Store.write_ledger_entry

    def killed(self, source, sha, entry):
        if entry.get("status") != "re-marking":
            raise KeyboardInterrupt("killed")
        write(self, source, sha, entry)

    monkeypatch.setattr(Store, "write_ledger_entry", killed)
    try:
        ingest(store, [TLE], source="partner", marking="UNCLASSIFIED")
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(Store, "write_ledger_entry", write)
    again = ingest(store, [TLE], source="partner", marking="SECRET//NOFORN")
    assert again.files[0].status == "re-marked"
    rows = stored(store)
    assert len(rows) == 300 and {r["classification"] for r in rows} == {"SECRET"}
    assert all(released_to(rows, code) == 0 for code in PARTNERS)


def test_a_declarative_default_of_u_does_not_lower_the_feed(tmp_path):
    # a user description whose marking default is "U": records without the marking key
    # take "U", which must not lower the feed's SECRET//REL TO USA
    formats = tmp_path / "formats"
    formats.mkdir()
    (formats / "plain.toml").write_text("""
name = "plain-elsets"
description = "a partner's plain JSON element sets"
container = { kind = "json" }
identify = { keys = ["sat", "n"] }
marking = { key = "mark", default = "U" }
extensions = ["json"]

[fields]
object_id = "sat"
epoch = { key = "t", time = "iso8601" }
mean_motion_rev_day = "n"
eccentricity = "e"
inclination_deg = "i"
raan_deg = "node"
arg_perigee_deg = "w"
mean_anomaly_deg = "m"
bstar = { key = "b", default = 0.0 }
""")
    recs = [{"sat": 25544, "t": "2026-03-10T12:00:00Z", "n": 15.49, "e": 0.0007, "i": 51.6,
             "node": 10.0, "w": 20.0, "m": 30.0},
            {"sat": 20580, "t": "2026-03-10T12:00:00Z", "n": 15.1, "e": 0.0002, "i": 28.5,
             "node": 11.0, "w": 21.0, "m": 31.0, "mark": "TS"}]
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(recs))
    store = Store(tmp_path / "store")
    rep = ingest(store, [path], source="partner", marking="SECRET//REL TO USA",
                 formats_dirs=[formats])
    assert rep.files[0].format == "plain-elsets" and rep.accepted == 2
    rows = {r["object_id"]: r for r in stored(store)}
    assert rows[25544]["classification"] == "SECRET"
    assert rows[25544]["releasable_to"] == ["USA"]
    assert rows[20580]["classification"] == "TOP SECRET"   # a record may raise it
    assert rows[20580]["releasable_to"] == ["USA"]
    assert rep.files[0].marking_conflicts == 1
    kept = store.table("elements", filter=pc.field("classification") == "UNCLASSIFIED")
    assert kept.num_rows == 0


def test_a_changed_equivalence_table_re_marks_what_it_reads_differently(tmp_path):
    # The same file, read under a table that handles OFFICIAL as CONFIDENTIAL (instead of
    # the shipped UNCLASSIFIED): the ingest re-marks it rather than keep the old handling.
    path = tmp_path / "official.json"
    path.write_text(json.dumps([{
        "idElset": "x1", "classificationMarking": "OFFICIAL", "satNo": 25544,
        "epoch": "2026-03-10T12:00:00.000000Z", "meanMotion": 15.49, "eccentricity": 0.0007,
        "inclination": 51.6, "raan": 10.0, "argOfPerigee": 20.0, "meanAnomaly": 30.0,
        "bStar": 0.0001, "meanMotionDot": 0.0, "meanMotionDDot": 0.0, "revNo": 1,
        "elsetNo": 999, "ephemType": 0, "source": "x", "dataMode": "REAL"}]))
    store = Store(tmp_path / "store")
    first = ingest(store, [path], source="partner", format="udl-elset")
    assert first.accepted == 1 and stored(store)[0]["classification"] == "UNCLASSIFIED"
    table = tmp_path / "mine.toml"
    table.write_text('format = 1\n[markings."OFFICIAL"]\nhandled_as = "CONFIDENTIAL"\n')
    previous = mk.use_equivalences(table)
    try:
        again = ingest(store, [path], source="partner", format="udl-elset")
    finally:
        mk.use_equivalences(previous)
    assert again.files[0].status == "re-marked"
    assert "equivalence table changed" in again.files[0].message
    rows = stored(store)
    assert len(rows) == 1 and rows[0]["classification"] == "CONFIDENTIAL"
    assert rows[0]["marking"] == "OFFICIAL"

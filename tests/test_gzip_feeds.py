"""gzip-compressed feeds (ssafuse.files.open_feed), as the bundled catalogue ships.

Expected values come from Python's own ``gzip`` and ``json`` / ``csv`` modules reading the
bundled files (examples/catalogue_2026-03-10, CelesTrak GP of 2026-03-10, Apache-2.0), and from
``hashlib`` over the bytes on disk: not from ssafuse's readers.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json

import pytest

from conftest import ROOT
from ssafuse.ingestion import ingest
from ssafuse.records import read_file
from ssafuse.store import Store

BUNDLE = ROOT / "examples" / "catalogue_2026-03-10"


def _ids_epochs_json(path):
    recs = json.loads(gzip.decompress(path.read_bytes()))
    return sorted((int(r["NORAD_CAT_ID"]), r["EPOCH"][:19]) for r in recs)


def _iso(ts) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S")


@pytest.mark.parametrize("name", ["celestrak_iridium-33-debris_gp.json.gz",
                                  "celestrak_stations_gp.json.gz"])
def test_a_gzip_json_feed_reads_every_record_it_holds(name):
    path = BUNDLE / name
    res = read_file(path, source="celestrak")
    assert res.format == "omm-json" and res.rejected == 0
    got = sorted((r["object_id"], _iso(r["epoch"])) for r in res.elements.to_pylist())
    assert got == _ids_epochs_json(path)
    # provenance names the file on disk and hashes its compressed bytes
    assert res.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_bundled_active_csv_reads_like_its_uncompressed_self():
    path = BUNDLE / "celestrak_active_gp.csv.gz"
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(path.read_bytes()).decode())))
    res = read_file(path, source="celestrak")
    assert res.format == "omm-csv"
    assert res.accepted + res.rejected == len(rows) == 14683
    want = {int(r["NORAD_CAT_ID"]) for r in rows}
    assert {r["object_id"] for r in res.elements.to_pylist()} <= want
    assert res.accepted >= len(rows) - 2    # the file's known quirks cost at most a record


def test_a_truncated_or_corrupt_gzip_feed_is_refused_and_the_rest_ingested(tmp_path):
    whole = (BUNDLE / "celestrak_stations_gp.json.gz").read_bytes()
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "a_truncated.json.gz").write_bytes(whole[: len(whole) // 2])
    corrupt = bytearray(whole)
    corrupt[len(corrupt) // 2] ^= 0xFF
    (feed / "b_corrupt.json.gz").write_bytes(bytes(corrupt))
    (feed / "c_good.json.gz").write_bytes((BUNDLE / "celestrak_iridium-33-debris_gp.json.gz")
                                          .read_bytes())
    (feed / "LICENSE").write_text("not a feed")
    report = ingest(Store(tmp_path / "store"), [feed], source="celestrak")
    by_name = {f.uri.rsplit("/", 1)[1]: f for f in report.files}
    assert set(by_name) == {"a_truncated.json.gz", "b_corrupt.json.gz", "c_good.json.gz"}
    assert by_name["c_good.json.gz"].accepted == 106
    for bad in ("a_truncated.json.gz", "b_corrupt.json.gz"):
        rep = by_name[bad]
        assert rep.accepted == 0 and rep.status == "refused", rep
        assert "gzip" in rep.message or "CRC" in rep.message or "JSON" in rep.message, rep


def test_a_gzip_bomb_is_refused_before_it_takes_the_memory(tmp_path):
    """1 MB of gzip holding 1 GiB of spaces (JSON whitespace): refused, the file named, the
    good file beside it ingested."""
    feed = tmp_path / "feed"
    feed.mkdir()
    first = json.loads(gzip.decompress((BUNDLE / "celestrak_stations_gp.json.gz")
                                       .read_bytes()))[0]
    with gzip.open(feed / "a_bomb.json.gz", "wb") as fh:
        fh.write(b"[" + json.dumps(first).encode() + b",")   # an OMM record, then spaces
        for _ in range(1024):
            fh.write(b" " * (1 << 20))
        fh.write(b"]")
    assert (feed / "a_bomb.json.gz").stat().st_size < 2 << 20
    (feed / "b_good.json.gz").write_bytes((BUNDLE / "celestrak_iridium-33-debris_gp.json.gz")
                                          .read_bytes())
    report = ingest(Store(tmp_path / "store"), [feed], source="celestrak")
    bomb, good = sorted(report.files, key=lambda f: f.uri)
    assert bomb.status == "refused" and "gzip bomb" in bomb.message and bomb.accepted == 0
    assert good.accepted == 106

"""The same element set read from TLE, OMM KVN, XML, JSON and CSV gives identical rows and
identical SGP4 positions, and every public catalogue file ingests whole through the store."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from sgp4.api import Satrec

from ssafuse.records import read_file
from ssafuse.propagate import propagate, satrecs
from ssafuse.timeutil import jd_from_ns
from ssafuse.schema import ELEMENT_COLUMNS
from ssafuse.ingestion import ingest
from ssafuse.store import Store

from conftest import SHARED_DATA, shared

#: Columns that describe where a row came from, not the element set itself.
_NOT_COMPARED = {"object_type", "rcs_size", "country"}
_COMPARED = [c for c in ELEMENT_COLUMNS if c not in _NOT_COMPARED]
_PAIRS = sorted({p.stem for p in (SHARED_DATA / "socrates_2026-03-09/top20_pair_gp").glob("gp_*")}) \
    if SHARED_DATA.exists() else ["absent"]


def _rows(path: Path, columns=_COMPARED) -> list[dict]:
    result = read_file(path, source="x")
    assert result.rejected == 0, result.rejects.to_pylist()
    return result.elements.sort_by("object_id").select(columns).to_pylist()


def _positions_km(path: Path, hours=(0.0, 6.0, 72.0)) -> np.ndarray:
    table = read_file(path, source="x").elements.sort_by("object_id")
    epoch = table["epoch"].cast("int64").to_numpy()
    times = int(epoch.max()) + (np.array(hours) * 3.6e12).astype(np.int64)
    err, r, _ = propagate(satrecs(table), times)
    assert not err.any()
    return r


@pytest.mark.parametrize("pair", _PAIRS)
def test_socrates_pairs_identical_in_tle_json_csv(pair):
    base = shared("socrates_2026-03-09/top20_pair_gp") / pair
    tle, js, csv = (base.with_suffix(s) for s in (".txt", ".json", ".csv"))
    expected = _rows(js)
    assert len(expected) == 2
    assert _rows(csv) == expected
    p_json = _positions_km(js)
    assert np.array_equal(_positions_km(csv), p_json)
    # CelesTrak's JSON/CSV carry BSTAR with up to 8 significant digits, a TLE with 5
    # ("39787-2" for 0.0039787182, object 67298): BSTAR matches to the TLE's precision (half a
    # unit in the 5th digit, rel 5e-5), every other column exactly.
    from_tle = _rows(tle)
    for ours, theirs in zip(from_tle, expected):
        assert ours["bstar"] == pytest.approx(theirs["bstar"], rel=5e-5, abs=0)
        assert {**ours, "bstar": None} == {**theirs, "bstar": None}
    p_tle = _positions_km(tle)
    if from_tle == expected:
        assert np.array_equal(p_tle, p_json)
    else:  # a 5e-5 relative BSTAR difference moves a LEO object metres in 3 days at most
        assert np.abs(p_tle - p_json).max() < 0.05


@pytest.mark.parametrize("stem, copies", [
    # CelesTrak's OMM in KVN and two XML copies. (json/omm1_ct.json is not its twin: it holds
    # the Space-Track element set, epoch 03:57:59.406624, so it is compared below.)
    ("omm1_ct", ["kvn/omm1_ct.kvn", "kvn/omm1_ct.xml", "json/omm1_ct.xml"]),
    # Space-Track's OMM in KVN, two XML copies, JSON with strings and CelesTrak-style JSON.
    ("omm1_st", ["kvn/omm1_st.kvn", "kvn/omm1_st.xml", "json/omm1_st.xml", "json/omm1_st.json",
                 "json/omm1_ct.json"]),
])
def test_omm_kvn_xml_json_identical(stem, copies):
    root = shared("ccsds/ccsds_ndm_egemenimre")
    first, *others = (root / c for c in copies)
    expected = _rows(first, ELEMENT_COLUMNS)
    assert len(expected) == 1
    for other in others:
        got = _rows(other, ELEMENT_COLUMNS)
        # Catalogue extras (object type, RCS, country) appear only in some encodings
        # (Space-Track JSON, KVN USER_DEFINED_*); where both state one, they agree.
        for column in _NOT_COMPARED:
            if got[0][column] is not None and expected[0][column] is not None:
                assert got[0][column] == expected[0][column], (other, column)
        assert [{c: r[c] for c in _COMPARED} for r in got] == \
            [{c: r[c] for c in _COMPARED} for r in expected], other
        assert np.array_equal(_positions_km(other), _positions_km(first))


def test_space_track_json_equals_its_own_tle_lines(tmp_path):
    """Space-Track's OMM JSON carries the TLE it was made from (TLE_LINE1/2): the two must give
    the same row, and our SGP4 positions must match python-sgp4's twoline2rv on those lines."""
    src = shared("ccsds/ccsds_ndm_egemenimre/json/omm1_st.json")
    record = json.loads(src.read_text())[0]
    tle = tmp_path / "omm1_st.tle"
    tle.write_text("\n".join(record[k] for k in ("TLE_LINE0", "TLE_LINE1", "TLE_LINE2")) + "\n")
    assert _rows(tle) == _rows(src)
    table = read_file(tle, source="x").elements
    ours = satrecs(table)[0]
    theirs = Satrec.twoline2rv(record["TLE_LINE1"], record["TLE_LINE2"])
    when = table["epoch"].cast("int64")[0].as_py() + np.arange(0, 3 * 86400, 3600) * 10**9
    jd, fr = jd_from_ns(when)
    e1, r1, _ = ours.sgp4_array(jd, fr)
    e2, r2, _ = theirs.sgp4_array(jd, fr)
    assert not e1.any() and not e2.any()
    # twoline2rv computes its epoch from the TLE's day fraction in floating point; ours from
    # exact nanoseconds. The epochs differ by < 1 microsecond (< 1 cm at 7.6 km/s): 1 m bound.
    assert np.abs(r1 - r2).max() < 1e-3


# Record counts from ../shared/data/SOURCES.md (an independent statement of each file's size)
# and the format each file must be sniffed as.
CATALOGUE_FILES = {
    "spacetrack_3le_2023-10-09_cdm_on_chain.txt": ("tle", 26140),
    "spacetrack_3le_2022-01-22_ODAP.txt": ("tle", 23939),
    "spacetrack_3le_LEO_2026-06-10_Ever-m1ss.txt": ("tle", 16032),
    "celestrak_active_tle_2025-04-23_carbsat.txt": ("tle", 11325),
    "celestrak_mirror_20260530/starlink.tle": ("tle", 10395),
    "celestrak_mirror_20260530/oneweb.tle": ("tle", 651),
    "celestrak_mirror_20260530/geo.tle": ("tle", 574),
    "celestrak_mirror_20260530/resource.tle": ("tle", 167),
    "celestrak_mirror_20260530/weather.tle": ("tle", 74),
    "celestrak_mirror_20260530/science.tle": ("tle", 49),
    "celestrak_mirror_20260530/stations.tle": ("tle", 25),
    "celestrak_mirror_20260530/military.tle": ("tle", 23),
    "celestrak_gp_csv/gp_active_2026-07-10.csv": ("omm-csv", 15985),
    "celestrak_gp_json_20250524/starlink.json": ("omm-json", 7483),
    "celestrak_gp_json_20250524/resource.json": ("omm-json", 158),
    "celestrak_gp_json_20250524/amateur.json": ("omm-json", 85),
    "celestrak_gp_json_20250524/weather.json": ("omm-json", 72),
    "celestrak_gp_json_20250524/noaa.json": ("omm-json", 23),
    "celestrak_gp_json_20250524/goes.json": ("omm-json", 19),
    "celestrak_gp_json_20250524/stations.json": ("omm-json", 13),
    "celestrak_gp_20260310/celestrak_active_gp.csv": ("omm-csv", 14683),
    "celestrak_gp_20260310/celestrak_fengyun-1c-debris_gp.json": ("omm-json", 1827),
    "celestrak_gp_20260310/celestrak_cosmos-2251-debris_gp.json": ("omm-json", 571),
    "celestrak_gp_20260310/celestrak_iridium-33-debris_gp.json": ("omm-json", 106),
    "celestrak_gp_20260310/celestrak_analyst_gp.json": ("omm-json", 418),
    "celestrak_gp_20260310/celestrak_last30days_gp.json": ("omm-json", 371),
    "celestrak_gp_20260310/celestrak_batch_gp.json": ("omm-json", 173),
    "celestrak_gp_20260310/celestrak_visual_gp.json": ("omm-json", 147),
    "celestrak_gp_20260310/celestrak_stations_gp.json": ("omm-json", 33),
}


@pytest.mark.slow
def test_every_public_catalogue_ingests_whole_through_the_store(tmp_path):
    root = shared("catalogues")
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert on_disk == set(CATALOGUE_FILES), "a catalogue file is not covered by this test"
    store = Store(tmp_path)
    report = ingest(store, [root], source="public",
                          now=dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc))
    got = {str(Path(f.uri).relative_to(root)): (f.format, f.accepted, f.rejected)
           for f in report.files}
    expected = {name: (fmt, n, 0) for name, (fmt, n) in CATALOGUE_FILES.items()}
    assert got == expected
    assert store.table("elements").num_rows == sum(n for _, n in CATALOGUE_FILES.values())

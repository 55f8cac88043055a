"""One catalogue from several feeds: newest element set wins, precedence breaks ties, markings
combine, and disagreeing sources are measured with SGP4."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math

import pyarrow as pa
import pytest
from sgp4.api import Satrec, jday
from sgp4.omm import initialize

from ssafuse.catalogue import build_catalogue
from ssafuse.ingestion import ingest
from ssafuse.store import Store

from conftest import SAMPLES, shared

NOW = dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.timezone.utc)
PAIR = "socrates_2026-03-09/top20_pair_gp/gp_61721,67298"


def _csv_rows(path):
    with open(path, newline="") as fh:
        return {int(r["NORAD_CAT_ID"]): r for r in csv.DictReader(fh)}


def _sgp4_km(row: dict, when: dt.datetime):
    """Independent path: python-sgp4's own OMM initializer on the CSV text fields."""
    sat = Satrec()
    initialize(sat, row)
    jd, fr = jday(when.year, when.month, when.day, when.hour, when.minute,
                  when.second + when.microsecond / 1e6)
    err, r, _ = sat.sgp4(jd, fr)
    return r if err == 0 else None  # e.g. a March element set that decays before July


@pytest.mark.slow
def test_newest_epoch_wins_and_disagreement_matches_sgp4(tmp_path):
    march = shared("catalogues/celestrak_gp_20260310/celestrak_active_gp.csv")
    july = shared("catalogues/celestrak_gp_csv/gp_active_2026-07-10.csv")
    store = Store(tmp_path)
    ingest(store, [march], source="ct-march", now=NOW)
    ingest(store, [july], source="ct-july", now=NOW)
    # March and July sets are four months apart: compared only when allowed to be
    cat = build_catalogue(store.table("elements"), disagree_max_gap_days=365)
    a, b = _csv_rows(march), _csv_rows(july)
    assert cat.num_rows == len(set(a) | set(b))
    by_id = {r["object_id"]: r for r in cat.to_pylist()}
    both = sorted(set(a) & set(b))
    assert len(both) > 10_000
    for oid in both:
        newest = max(a[oid]["EPOCH"], b[oid]["EPOCH"])  # same ISO layout: text order is time order
        entry = by_id[oid]
        assert entry["epoch"].strftime("%Y-%m-%dT%H:%M:%S.%f") == newest
        assert entry["n_sources"] == 2 and entry["sources"] == ["ct-july", "ct-march"]
    for oid in both[::200]:
        entry = by_id[oid]
        chosen, other = (b[oid], a[oid]) if entry["source"] == "ct-july" else (a[oid], b[oid])
        when = dt.datetime.strptime(chosen["EPOCH"], "%Y-%m-%dT%H:%M:%S.%f")
        r1, r2 = _sgp4_km(chosen, when), _sgp4_km(other, when)
        if r1 is None or r2 is None:
            assert entry["max_disagreement_km"] is None and not entry["sources_disagree"]
            continue
        expected = math.dist(r1, r2)
        # Both paths run sgp4init on the same values; their epochs differ only by float
        # rounding (< 1 microsecond, < 1 cm along track), so 1 m is generous.
        assert entry["max_disagreement_km"] == pytest.approx(expected, abs=1e-3)
        assert entry["sources_disagree"] == (expected > 5.0)
        assert entry["disagreement_source"] != entry["source"]
        assert entry["disagreement_epoch"].strftime("%Y-%m-%dT%H:%M:%S.%f") == other["EPOCH"]


def test_disagreement_compares_only_element_sets_of_close_epochs(tmp_path):
    """ssafuse.epochs: an element set four months older than the chosen one differs by its
    age, not because its source is wrong: by default (3 days) such pairs are not compared,
    and the pairs whose epochs are close are (the epochs come from the CSV files)."""
    march = shared("catalogues/celestrak_gp_20260310/celestrak_active_gp.csv")
    july = shared("catalogues/celestrak_gp_csv/gp_active_2026-07-10.csv")
    store = Store(tmp_path)
    ingest(store, [march], source="ct-march", now=NOW)
    ingest(store, [july], source="ct-july", now=NOW)
    cat = {r["object_id"]: r for r in build_catalogue(store.table("elements")).to_pylist()}
    a, b = _csv_rows(march), _csv_rows(july)
    fmt = "%Y-%m-%dT%H:%M:%S.%f"
    close = far = 0
    for oid in sorted(set(a) & set(b)):
        gap = abs(dt.datetime.strptime(a[oid]["EPOCH"], fmt)
                  - dt.datetime.strptime(b[oid]["EPOCH"], fmt))
        entry = cat[oid]
        if gap > dt.timedelta(days=3):
            far += 1
            assert entry["max_disagreement_km"] is None and not entry["sources_disagree"]
            assert entry["disagreement_epoch"] is None
        else:
            close += entry["max_disagreement_km"] is not None
    assert far > 10_000 and close == 0  # no object's March set stayed current to July
    # CelesTrak's stations group of the same day as the March catalogue: epochs within
    # hours (read from the two files), so every shared object is compared
    stations = SAMPLES / "celestrak_stations_gp_2026-03-10.json"
    store = Store(tmp_path / "same-day")
    ingest(store, [march], source="ct-march", now=NOW)
    ingest(store, [stations], source="ct-stations", now=NOW)
    cat = {r["object_id"]: r for r in build_catalogue(store.table("elements")).to_pylist()}
    same = {r["NORAD_CAT_ID"]: r["EPOCH"] for r in json.loads(stations.read_text())}
    shared_ids = [oid for oid in same if oid in a]
    assert len(shared_ids) > 10
    for oid in shared_ids:
        gap = abs(dt.datetime.strptime(a[oid]["EPOCH"], fmt)
                  - dt.datetime.strptime(same[oid][:26], fmt))
        assert (cat[oid]["max_disagreement_km"] is not None) == (gap <= dt.timedelta(days=3))


def test_markings_combine_and_identical_sets_agree(tmp_path):
    tle = shared(PAIR + ".txt")
    js = shared(PAIR + ".json")
    store = Store(tmp_path)
    ingest(store, [tle], source="partner-a", marking="UNCLASSIFIED//REL TO USA, GBR", now=NOW)
    ingest(store, [js], source="partner-b", marking="UNCLASSIFIED//REL TO USA, AUS", now=NOW)
    cat = build_catalogue(store.table("elements")).to_pylist()
    assert [r["object_id"] for r in cat] == [61721, 67298]
    for entry in cat:
        assert entry["n_sources"] == 2 and entry["n_element_sets"] == 2
        # Both records state level U (TLE column / CLASSIFICATION_TYPE); each feed adds its
        # releasability. The entry's own marking is the element set it uses (markings
        # follow the data used); what it says about both sources may go only where both may.
        chosen = {"partner-a": ["GBR", "USA"], "partner-b": ["AUS", "USA"]}[entry["source"]]
        assert entry["classification"] == "UNCLASSIFIED"
        assert entry["releasable_to"] == chosen
        assert entry["sources_classification"] == "UNCLASSIFIED"
        assert entry["sources_releasable_to"] == ["USA"]
        assert entry["sources_marking"] == "UNCLASSIFIED//REL TO USA"
        # The same element set in two formats; the TLE rounds BSTAR to 5 digits (0.0039787182
        # -> 0.39787e-2 for 67298), which at the epoch itself moves nothing measurable.
        assert entry["max_disagreement_km"] < 1e-6
        assert entry["sources_disagree"] is False


def test_precedence_breaks_ties_between_equal_epochs(tmp_path):
    store = Store(tmp_path)
    ingest(store, [shared(PAIR + ".txt")], source="alpha", now=NOW)
    ingest(store, [shared(PAIR + ".csv")], source="bravo", now=NOW)
    elements = store.table("elements")
    by_name = build_catalogue(elements)
    assert set(by_name["source"].to_pylist()) == {"alpha"}  # unlisted: by name
    trusted = build_catalogue(elements, precedence=["bravo"])
    assert set(trusted["source"].to_pylist()) == {"bravo"}
    assert set(trusted["source_format"].to_pylist()) == {"omm-csv"}


def test_empty_store_gives_an_empty_catalogue():
    from ssafuse.schema import CATALOGUE, ELEMENTS

    cat = build_catalogue(ELEMENTS.empty_table())
    assert cat.num_rows == 0 and cat.schema.equals(CATALOGUE)
    assert isinstance(cat, pa.Table)

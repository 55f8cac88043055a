"""Tear lines (issue 13): a partner's export is a run over only what it may receive.

The oracle for every property is a second, independent run: the element sets releasable to the
partner, chosen by a release rule written out here (not ssafuse's), built into a catalogue and
screened from scratch. The tear line (``ssafuse.tearline``) must give the same events, TCA to
1 microsecond, the same miss distances and Pc, while it reuses the full run's events where it
can, and nothing in it may come from a record the partner may not see.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ssafuse.assessment import assess
from ssafuse.catalogue import build_catalogue
from ssafuse.cli import main
from ssafuse.markings import LEVELS, TETRAGRAPHS
from ssafuse.records import read_file
from ssafuse.screening import screen
from ssafuse.tearline import partner_views

from _run_helpers import run_cli, run_dir, sample_config, write_config
from conftest import SAMPLES, examples, shared

CODES = ["USA", "GBR", "AUS", "JPN", "FRA"]

#: The oracle's own coalition table, written from published sources, not from ssafuse's:
#: FVEY and ACGU as the ODNI "Intelligence Community Authorized Classification and Control
#: Markings Register" (CAPCO) defines the tetragraphs (FVEY: Australia, Canada, United Kingdom,
#: New Zealand, United States; ACGU: the same without New Zealand); NATO's 32 members as
#: nato.int "NATO member countries" lists them (Finland 4 April 2023, Sweden 7 March 2024).
#: Trigraphs are ISO 3166-1 alpha-3, as the register's REL TO lists use them.
ORACLE_GROUPS = {
    "FVEY": frozenset({"AUS", "CAN", "GBR", "NZL", "USA"}),
    "ACGU": frozenset({"AUS", "CAN", "GBR", "USA"}),
    "NATO": frozenset({"ALB", "BEL", "BGR", "CAN", "HRV", "CZE", "DNK", "EST", "FIN", "FRA",
                       "DEU", "GRC", "HUN", "ISL", "ITA", "LVA", "LTU", "LUX", "MNE", "NLD",
                       "MKD", "NOR", "POL", "PRT", "ROU", "SVK", "SVN", "ESP", "SWE", "TUR",
                       "GBR", "USA"}),
}
START, DAYS, THRESHOLD = "2026-03-10T00:00:00Z", 0.5, 50.0
MODEL = {"*": (0.2, 0.6, 0.2)}  # an assumed RTN covariance (km), so that every event has a Pc


def oracle_releasable(level: str, rel, code: str) -> bool:
    """Written out independently of ssafuse.markings: listed, or inside a listed coalition
    (:data:`ORACLE_GROUPS`), or no caveat at all on an UNCLASSIFIED record."""
    if rel is None:
        return level == "UNCLASSIFIED"
    return code in rel or any(code in ORACLE_GROUPS.get(c, ()) for c in rel)


def test_ssafuse_coalitions_are_the_published_ones():
    # ssafuse's table (its markings.toml [groups]) against the oracle's, written from the
    # register and nato.int above: a member added to or dropped from either fails here
    assert len(ORACLE_GROUPS["NATO"]) == 32
    assert {g: TETRAGRAPHS[g] for g in ORACLE_GROUPS} == ORACLE_GROUPS


def no_less_restrictive(derived: tuple, source: tuple) -> bool:
    """``derived`` (level, releasable_to) is at least as restrictive as ``source``: its level
    is not lower, and no partner may receive it that may not receive the source."""
    return (LEVELS.index(derived[0]) >= LEVELS.index(source[0])
            and all(oracle_releasable(*source, c) for c in CODES
                    if oracle_releasable(*derived, c)))


@pytest.fixture(scope="module")
def base() -> pa.Table:
    """Real element sets of one day: the stations group and the UDL sample (47 objects)."""
    return pa.concat_tables([
        read_file(SAMPLES / "celestrak_stations_gp_2026-03-10.json", source="x").elements,
        read_file(SAMPLES / "udl_elset_sample.json", source="x").elements])


MARKING = st.tuples(
    st.sampled_from(LEVELS),
    st.one_of(st.none(), st.lists(st.sampled_from(CODES + ["FVEY", "ACGU"]), min_size=1,
                                  max_size=3, unique=True).map(sorted)))
FEED = st.tuples(MARKING, st.lists(st.sampled_from([-0.25, 0.0, 0.0, 0.1]), min_size=1,
                                   max_size=8), st.integers(0, 2**32 - 1))


def random_elements(base: pa.Table, feeds) -> pa.Table:
    """Each feed: a random subset of the objects, each element set's epoch moved by a random
    offset (so feeds disagree and the newest wins), and the feed's marking on every record."""
    tables = []
    for f, ((level, rel), shifts, seed) in enumerate(feeds):
        rng = np.random.default_rng(seed)
        rows = np.flatnonzero(rng.random(base.num_rows) < 0.7)
        t = base.take(pa.array(rows, pa.int64()))
        shift_days = np.array([shifts[k % len(shifts)] for k in range(t.num_rows)])
        epoch = t["epoch"].cast(pa.int64()).to_numpy() + (shift_days * 86400e9).astype(np.int64)
        n = t.num_rows
        cols = {"epoch": pa.array(epoch).cast(t.schema.field("epoch").type),
                "source": pa.array([f"feed{f}"] * n),
                "source_sha256": pa.array([hashlib.sha256(f"feed{f}".encode()).hexdigest()] * n),
                "source_record": pa.array(np.arange(1, n + 1), pa.int64()),
                "classification": pa.array([level] * n),
                "releasable_to": pa.array([rel] * n, pa.list_(pa.string())),
                "marking": pa.array([f"{level} {rel}"] * n)}
        for name, col in cols.items():
            i = t.schema.get_field_index(name)
            t = t.set_column(i, t.schema.field(i), col.cast(t.schema.field(i).type))
        tables.append(t)
    return pa.concat_tables(tables)


def run_of(elements: pa.Table):
    cat = build_catalogue(elements)
    res = screen(cat, START, days=DAYS, threshold_km=THRESHOLD, workers=1)
    return cat, res


def events(conj: pa.Table) -> list[tuple]:
    rows = zip(conj["object_id_1"].to_pylist(), conj["object_id_2"].to_pylist(),
               conj["tca"].cast(pa.int64()).to_pylist(), conj["miss_distance_km"].to_pylist(),
               conj["radial_km"].to_pylist(), conj["pc"].to_pylist())
    return sorted(rows)


def identity_rows(elements: pa.Table) -> dict:
    keys = zip(elements["source"].to_pylist(), elements["source_sha256"].to_pylist(),
               elements["source_record"].to_pylist())
    marks = zip(elements["classification"].to_pylist(), elements["releasable_to"].to_pylist())
    return {k: (c, None if r is None else tuple(r)) for k, (c, r) in zip(keys, marks)}


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(feeds=st.lists(FEED, min_size=1, max_size=3), code=st.sampled_from(CODES))
def test_a_partners_view_is_a_run_over_what_it_may_receive(base, feeds, code):
    elements = random_elements(base, feeds)
    cat, full = run_of(elements)
    view = partner_views(elements, [code], catalogue=cat, screened=full.conjunctions,
                         excluded=full.excluded, start=START, days=DAYS,
                         threshold_km=THRESHOLD, workers=1)[code]

    # (b) the oracle: a run over only the element sets releasable to the partner
    mask = [oracle_releasable(c, r, code) for c, r in
            zip(elements["classification"].to_pylist(), elements["releasable_to"].to_pylist())]
    mine = elements.filter(pa.array(mask, pa.bool_()))
    o_cat, o_run = run_of(mine) if mine.num_rows else (None, None)
    got = events(assess(view.screened, hbr_m=10.0, elements=view.catalogue,
                        covariance_model=MODEL))
    want = events(assess(o_run.conjunctions, hbr_m=10.0, elements=o_cat,
                         covariance_model=MODEL)) if o_run else []
    assert [g[:2] for g in got] == [w[:2] for w in want]
    for g, w in zip(got, want):
        assert abs(g[2] - w[2]) <= 1000                    # TCA within 1 microsecond
        assert g[3] == pytest.approx(w[3], abs=1e-9) and g[4] == pytest.approx(w[4], abs=1e-9)
        assert (g[5] is None and w[5] is None) or g[5] == pytest.approx(w[5], rel=1e-9)
    assert sorted(view.catalogue["object_id"].to_pylist()) == (
        sorted(o_cat["object_id"].to_pylist()) if o_cat else [])
    assert view.counts["events_reused"] + view.counts["events_recomputed"] == len(want)
    event(f"events reused {min(view.counts['events_reused'], 1)}+, recomputed "
          f"{min(view.counts['events_recomputed'], 1)}+")

    # (c) nothing in it comes from a record the partner may not see
    allowed = identity_rows(mine)
    for k in (1, 2):
        for ident in zip(*(view.screened[f"{c}_{k}"].to_pylist()
                           for c in ("source", "source_sha256", "source_record"))):
            assert ident in allowed
    for ident in zip(*(view.catalogue[c].to_pylist()
                       for c in ("source", "source_sha256", "source_record"))):
        assert ident in allowed

    # (a) no derived record is less restrictive than the records it used
    every = identity_rows(elements)
    for row in view.screened.to_pylist():
        derived = (row["classification"], row["releasable_to"])
        for k in (1, 2):
            src = every[(row[f"source_{k}"], row[f"source_sha256_{k}"], row[f"source_record_{k}"])]
            assert no_less_restrictive(derived, src)
        assert oracle_releasable(*derived, code)
    by_object: dict = {}
    for row in mine.to_pylist():
        by_object.setdefault(row["object_id"], []).append(
            (row["classification"], row["releasable_to"]))
    for row in view.catalogue.to_pylist():
        used = every[(row["source"], row["source_sha256"], row["source_record"])]
        assert no_less_restrictive((row["classification"], row["releasable_to"]), used)
        for src in by_object[row["object_id"]]:
            assert no_less_restrictive((row["sources_classification"],
                                        row["sources_releasable_to"]), src)


# --- the bundled sample, end to end through `ssafuse run` ------------------------------------

def parquet_strings(path: Path) -> set[str]:
    """Every string value in a Parquet file (lists of strings included)."""
    out: set[str] = set()
    table = pq.read_table(path)
    for col in table.columns:
        typ = col.type
        if pa.types.is_list(typ):
            typ = typ.value_type
            values = [v for row in col.to_pylist() if row for v in row]
        else:
            values = col.to_pylist()
        if pa.types.is_string(typ):
            out.update(v for v in values if v is not None)
    return out


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory):
    """The sample with both feeds and exports to JPN and GBR; and, as the oracle, a run over
    the public feed alone: the records releasable to JPN (the partner feed is REL TO USA,
    GBR, AUS)."""
    tmp = tmp_path_factory.mktemp("sample")
    primaries = {"primaries": [25544, 48274]}
    full = sample_config(tmp, **primaries)
    assert run_cli(full).returncode == 0
    public = tmp / "public"
    public.mkdir()
    cfg = write_config(
        public / "nightly.toml", store=public / "store",
        screen={"start": "2026-03-10T00:00:00Z", "days": 1.0, "threshold_km": 5.0, **primaries},
        feeds=[{"source": "celestrak",
                "paths": [str(SAMPLES / "celestrak_active_2025-04-23_first300.tle"),
                          str(SAMPLES / "celestrak_stations_gp_2026-03-10.json"),
                          str(SAMPLES / "celestrak_active_gp_2026-03-10_iss_neighbours.csv")],
                "marking": "UNCLASSIFIED"}])
    assert run_cli(cfg).returncode == 0
    return run_dir(tmp / "store"), run_dir(public / "store")


def test_jpn_receives_the_iss_and_css_events_computed_from_the_public_feed(sample_runs):
    rd, public = sample_runs
    jpn = rd / "exports" / "JPN"
    got = pq.read_table(jpn / "conjunctions.parquet")
    want = pq.read_table(public / "conjunctions.parquet")
    ids = set(got["object_id_1"].to_pylist())
    assert {25544, 48274} <= ids      # before: 0 of these events reached JPN
    keys = ["object_id_1", "object_id_2", "tca", "miss_distance_km", "radial_km",
            "in_track_km", "cross_track_km", "max_pc", "pc", "co_located", "source_1",
            "source_sha256_1", "source_record_1", "source_2", "source_sha256_2",
            "source_record_2", "classification", "marking"]
    assert got.select(keys).sort_by([("tca", "ascending"), ("object_id_1", "ascending"),
                                     ("object_id_2", "ascending")]).to_pylist() == \
        want.select(keys).sort_by([("tca", "ascending"), ("object_id_1", "ascending"),
                                   ("object_id_2", "ascending")]).to_pylist()
    # its catalogue is the public-only run's catalogue, column for column
    cat = pq.read_table(jpn / "catalogue.parquet").drop_columns(["ingested_at"])
    assert cat.to_pylist() == pq.read_table(public / "catalogue.parquet").drop_columns(
        ["ingested_at"]).to_pylist()
    # the same CDMs are written (one per listed event), for the same events
    assert sorted(p.name for p in (jpn / "cdm").iterdir()) == sorted(
        p.name for p in (public / "cdm").iterdir())


def test_nothing_in_the_jpn_export_comes_from_the_partner_feed(sample_runs):
    rd, _ = sample_runs
    jpn = rd / "exports" / "JPN"
    udl_sha = hashlib.sha256((SAMPLES / "udl_elset_sample.json").read_bytes()).hexdigest()
    tables = sorted(jpn.glob("*.parquet"))
    assert tables, "JPN's export holds no Parquet file to search"
    for p in tables:
        strings = parquet_strings(p)
        assert "partner-udl" not in strings and udl_sha not in strings, p.name
        assert not any("REL TO" in s for s in strings), p.name
    for p in [*jpn.glob("cdm/*"), jpn / "report.html", jpn / "summary.txt", jpn / "run.json"]:
        text = p.read_text()
        assert "partner-udl" not in text and udl_sha not in text and "REL TO" not in text, p
    ex = json.loads((jpn / "export.json").read_text())
    assert ex["withheld"]["feeds"] == 1 and ex["exported"]["feeds"] == 1
    # the operator's report says per partner what was released, recomputed and withheld
    html = (rd / "report.html").read_text()
    assert 'id="exports"' in html and "<td>JPN</td>" in html and "<td>GBR</td>" in html
    assert f"export JPN: events {ex['exported']['conjunctions']} released" in (
        rd / "summary.txt").read_text()


def test_a_partner_that_may_see_every_feed_gets_the_operators_events(sample_runs):
    rd, _ = sample_runs
    gbr = json.loads((rd / "exports" / "GBR" / "export.json").read_text())
    assert gbr["recomputed"] == {"conjunctions": 0, "catalogue": 0}
    assert gbr["withheld"]["conjunctions"] == gbr["withheld"]["catalogue"] == 0
    assert not gbr["screened_again"]
    full = pq.read_table(rd / "conjunctions.parquet")
    assert pq.read_table(rd / "exports" / "GBR" / "conjunctions.parquet").num_rows == full.num_rows


def test_export_command_recomputes_for_the_partner(sample_runs, tmp_path):
    rd, public = sample_runs
    out = tmp_path / "jpn"
    result = CliRunner().invoke(main, ["export", "--release-to", "JPN", "--run", rd.name,
                                       "--store", str(rd.parent.parent), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out / "conjunctions.parquet").num_rows == \
        pq.read_table(public / "conjunctions.parquet").num_rows
    assert 'id="banner-top">UNCLASSIFIED<' in (out / "report.html").read_text()


# --- CDMs behind the tear line: a partner's Pc rests on the CDMs it may receive --------------

PAIR = "socrates_2026-03-09/top20_pair_gp/gp_47935,49179.txt"   # GRUS-1E / STARLINK-3043
PAIR_START = "2026-03-12T04:30:00Z"                              # TCA 04:44:40.733


@pytest.mark.parametrize("restricted_covariance", [True, False],
                         ids=["restricted-cdm-gives-pc", "restricted-cdm-without-covariance"])
def test_a_partners_pc_comes_from_the_cdms_it_may_receive(tmp_path, restricted_covariance):
    """Two CDMs for the same event: an older public one and a newer one releasable to USA and
    GBR only. The operator's run takes the newer; JPN's export must equal a run over the
    public element sets and the public CDM alone, whether the restricted CDM gave the Pc
    (the event is then withheld from JPN's reuse by its marking) or gave none (a zero
    covariance: the event stays UNCLASSIFIED, but its assessment still rests on a CDM JPN may
    not see)."""
    from ssafuse.assessment import write_cdms
    import datetime as dt

    tle = shared(PAIR)
    el = read_file(tle, source="x").elements
    conj = screen(el, PAIR_START, days=1 / 48, threshold_km=5.0, workers=1).conjunctions
    assert conj.num_rows == 1
    public_cdm, secret_cdm = tmp_path / "cdm_public", tmp_path / "cdm_secret"
    write_cdms(conj, el, public_cdm, originator="PUBLIC",
               creation_date=dt.datetime(2026, 3, 11, tzinfo=dt.timezone.utc),
               covariance_model={"*": (0.1, 0.4, 0.1)})
    write_cdms(conj, el, secret_cdm, originator="SECRETCDM",
               creation_date=dt.datetime(2026, 3, 11, 12, tzinfo=dt.timezone.utc),
               covariance_model={"*": (0.05, 0.2, 0.05)} if restricted_covariance else None)
    screen_cfg = {"start": PAIR_START, "days": 1 / 48, "threshold_km": 5.0}
    feeds = [{"source": "celestrak", "paths": [str(tle)], "marking": "UNCLASSIFIED"},
             {"source": "public-cdm", "paths": [str(public_cdm)], "marking": "UNCLASSIFIED"}]
    full_cfg = write_config(tmp_path / "full.toml", store=tmp_path / "full", screen=screen_cfg,
                            exports=["GBR", "JPN"],
                            feeds=feeds + [{"source": "secret-cdm", "paths": [str(secret_cdm)],
                                            "marking": "SECRET//REL TO USA, GBR"}])
    public_cfg = write_config(tmp_path / "public.toml", store=tmp_path / "public",
                              screen=screen_cfg, feeds=feeds)
    for cfg in (full_cfg, public_cfg):
        res = run_cli(cfg)
        assert res.returncode == 0, res.stdout + res.stderr
    rd, public = run_dir(tmp_path / "full"), run_dir(tmp_path / "public")
    keys = ["object_id_1", "object_id_2", "tca", "pc", "pc_method", "hbr_m", "max_pc",
            "classification", "releasable_to", "marking"]
    full = pq.read_table(rd / "conjunctions.parquet").select(keys).to_pylist()
    jpn = pq.read_table(rd / "exports" / "JPN" / "conjunctions.parquet").select(keys).to_pylist()
    gbr = pq.read_table(rd / "exports" / "GBR" / "conjunctions.parquet").select(keys).to_pylist()
    want = pq.read_table(public / "conjunctions.parquet").select(keys).to_pylist()
    assert len(want) == 1 and want[0]["pc"] is not None
    assert jpn == want
    assert gbr == full                     # GBR may see every record: the operator's events
    secret_ids = {p.stem for p in secret_cdm.iterdir()}
    if restricted_covariance:
        assert full[0]["pc"] != want[0]["pc"] and full[0]["classification"] == "SECRET"
        assert full[0]["pc_method"].endswith(secret_ids.pop())
    else:
        assert full[0]["pc"] is None and full[0]["marking"] == "UNCLASSIFIED"
    text = " ".join(p.read_text() for p in (rd / "exports" / "JPN").rglob("*")
                    if p.is_file() and p.suffix != ".parquet")
    assert "SECRETCDM" not in text and not any(s in text for s in secret_ids)

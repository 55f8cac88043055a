"""Partner exports: only records releasable to the partner, each with its marking, and every
withheld record counted (property-based over random markings and recipients)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssafuse.catalogue import build_catalogue
from ssafuse.cli import main
from ssafuse.export import export_run
from ssafuse.records import read_file
from ssafuse.markings import LEVELS, TETRAGRAPHS, Marking, exportable, releasable
from ssafuse.runs import event_keys
from ssafuse.screening import screen
from ssafuse.files import write_parquet

from _run_helpers import run_cli, run_dir, sample_config
from conftest import SAMPLES

CODES = ["USA", "GBR", "AUS", "CAN", "NZL", "JPN", "FRA", "DEU"]


@pytest.fixture(scope="module")
def base_tables():
    """A real catalogue and its screening (the samples, 1 day), whose markings the property
    test then replaces."""
    els = pa.concat_tables([
        read_file(SAMPLES / "celestrak_active_2025-04-23_first300.tle", source="a").elements,
        read_file(SAMPLES / "celestrak_stations_gp_2026-03-10.json", source="b").elements])
    cat = build_catalogue(els)
    res = screen(cat, "2026-03-10T00:00:00Z", days=1.0, threshold_km=10.0, workers=1)
    assert res.conjunctions.num_rows >= 20
    return cat, res.conjunctions


def _oracle(level: str, rel, code: str) -> bool:
    """Written out independently of ssafuse.export: listed, or inside a listed coalition,
    or no caveat at all on an UNCLASSIFIED record."""
    if rel is None:
        return level == "UNCLASSIFIED"
    return code in rel or any(code in TETRAGRAPHS.get(c, ()) for c in rel)


markings = st.tuples(
    st.sampled_from(LEVELS),
    st.one_of(st.none(), st.lists(st.sampled_from(CODES + ["FVEY", "ACGU"]), max_size=4,
                                  unique=True)))


def _remark(table: pa.Table, marks: list) -> pa.Table:
    marks = [marks[i % len(marks)] for i in range(table.num_rows)]
    text = [str(Marking(c, None if r is None else tuple(r))) for c, r in marks]
    for name, values, typ in (("classification", [m[0] for m in marks], pa.string()),
                              ("releasable_to", [m[1] for m in marks], pa.list_(pa.string())),
                              ("marking", text, pa.string())):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values, typ))
    return table


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conj_marks=st.lists(markings, min_size=1, max_size=12),
       cat_marks=st.lists(markings, min_size=1, max_size=12),
       code=st.sampled_from(CODES))
def test_no_exported_record_lacks_the_recipient_and_every_withheld_is_counted(
        base_tables, tmp_path_factory, conj_marks, cat_marks, code):
    cat, conj = base_tables
    cat, conj = _remark(cat, cat_marks), _remark(conj, conj_marks)
    run = tmp_path_factory.mktemp("run")
    write_parquet(run / "catalogue.parquet", cat)
    write_parquet(run / "conjunctions.parquet", conj)
    keys = event_keys(conj)
    links = {}
    for k in keys[::2]:  # a CDM for every other event
        (run / "cdm").mkdir(exist_ok=True)
        (run / "cdm" / f"{k}.cdm").write_text(k)
        links[k] = f"cdm/{k}.cdm"
    (run / "run.json").write_text(json.dumps({"run_id": "r", "cdm_links": links}))
    out = run / "out" / code
    res = export_run(run, code, out, with_report=False)

    for name, table in (("conjunctions", conj), ("catalogue", cat)):
        got = pq.read_table(out / f"{name}.parquet")
        expect = [_oracle(c, r, code) for c, r in zip(table["classification"].to_pylist(),
                                                      table["releasable_to"].to_pylist())]
        # no exported record lacks the recipient in its releasability
        for c, r in zip(got["classification"].to_pylist(), got["releasable_to"].to_pylist()):
            assert releasable(r, code) and exportable(c, r, code)
            assert r is not None and (code in r or any(code in TETRAGRAPHS.get(x, ())
                                                       for x in r)) or c == "UNCLASSIFIED"
        # every withheld record counted, by count only
        assert res.exported[name] == got.num_rows == sum(expect)
        assert res.withheld[name] == table.num_rows - sum(expect)
        # each exported record keeps the marking it carries
        kept = table.filter(pa.array(expect, pa.bool_()))
        assert got["marking"].to_pylist() == kept["marking"].to_pylist()
    exported_keys = set(event_keys(pq.read_table(out / "conjunctions.parquet")))
    files = {p.name for p in (out / "cdm").iterdir()} if (out / "cdm").exists() else set()
    assert files == {f"{k}.cdm" for k in links if k in exported_keys}
    assert res.exported["cdms"] + res.withheld["cdms"] == len(links)
    assert json.loads((out / "export.json").read_text())["withheld"] == res.withheld


def test_export_command_writes_a_partner_export_with_its_own_report(tmp_path):
    cfg = sample_config(tmp_path)
    assert run_cli(cfg).returncode == 0
    rd = run_dir(tmp_path / "store")
    out = tmp_path / "jpn"
    result = CliRunner().invoke(main, ["export", "--release-to", "JPN", "--run", rd.name,
                                       "--store", str(tmp_path / "store"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    ex = json.loads((out / "export.json").read_text())
    # the partner-udl feed is REL TO USA, GBR, AUS: its 20 element sets are withheld, and the
    # ISS's docked pairs with its objects; the rest is UNCLASSIFIED without caveat
    cat = pq.read_table(rd / "catalogue.parquet")
    udl = sum(1 for r in cat["releasable_to"].to_pylist() if r is not None)
    assert ex["withheld"]["catalogue"] == udl > 0
    assert ex["exported"]["catalogue"] == cat.num_rows - udl
    html = (out / "report.html").read_text()
    assert 'id="withheld"' in html and 'id="feed-partner-udl"' not in html
    assert 'id="banner-top">UNCLASSIFIED<' in html and 'id="banner-bottom">UNCLASSIFIED<' in html
    bad = CliRunner().invoke(main, ["export", "--release-to", "gbr", "--run", str(rd),
                                    "--out", str(out)])
    assert bad.exit_code == 2 and "trigraph" in bad.output

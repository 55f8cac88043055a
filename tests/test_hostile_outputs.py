"""Hostile feeds and faults never cost a night, a file or a record: the outputs (issue 17).

* Files: ``ssafuse export --out DIR`` and the nightly run's ``cdm/`` remove only files ssafuse
  listed as written there before (``export.json``'s ``written``, the CDM folder's listing),
  never a user's file, a subfolder or anything outside the folder.
* Records: an object name holding a line break or a control character (a feed's
  ``"EVIL\\nCOLLISION_PROBABILITY = 0.99"``) costs that event its CDM only, refused by the
  strict writer and reported; every event keeps its Pc and max Pc; the report and the CSV
  files show such text as visible escapes (read back with Python's ``unicode_escape`` codec,
  which no ssafuse code wrote).
* The report: the objects whose sources disagree (worst first, each element set's age, the
  combined marking, withheld from a partner that may not see it) and the element-set ages
  and exclusions by reason, checked against the run's own Parquet files and ``run.json``.

The run: the sample feeds of ``_run_helpers.sample_config`` plus a feed "analyst" (SECRET//REL
TO USA, GBR) holding one element set, the ISS record of CelesTrak's stations file re-dated
12 hours earlier: propagated to the chosen epoch it is thousands of km away, so the sources of
the ISS disagree.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import json
import shutil
import unicodedata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from _run_helpers import run_cli, run_dir, sample_config, write_config
from conftest import SAMPLES, shared
from ssafuse import markings as mk
from ssafuse.cli import main
from ssafuse.jobs import assess_events
from ssafuse.report import build_report, write_report
from ssafuse.runs import event_keys
from ssafuse.schema import CATALOGUE, CONJUNCTIONS, conform
from ssafuse.writers import EXPORT_FORMATS, remove_stale, write_formats

#: The hostile names of the issue: a forged keyword line, a bare carriage return, a NUL, an
#: ANSI escape sequence.
HOSTILE = ["EVIL\nCOLLISION_PROBABILITY = 0.99", "CR\rONLY", "NUL\x00BYTE", "ESC\x1b[2J"]
#: ... and what else no output may carry raw: C1 NEL, line and paragraph separators.
MORE_HOSTILE = ["NEL\x85C1", "LS\u2028PS\u2029", "DEL\x7fTAB\tEND"]
ISS = 25544
STATIONS = SAMPLES / "celestrak_stations_gp_2026-03-10.json"
#: The analyst's ISS element set: the stations file's, 12 hours earlier.
ANALYST_SHIFT = dt.timedelta(hours=12)


def _iss_record() -> dict:
    (rec,) = [r for r in json.loads(STATIONS.read_text()) if r["NORAD_CAT_ID"] == ISS]
    return rec


def _epoch(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The sample run with the "analyst" feed, partners GBR and JPN, every export format."""
    tmp = tmp_path_factory.mktemp("hostile")
    rec = _iss_record()
    rec["EPOCH"] = (_epoch(rec["EPOCH"]) - ANALYST_SHIFT).isoformat().replace("+00:00", "")
    (tmp / "analyst.json").write_text(json.dumps([rec]))
    base = sample_config(tmp)   # its feeds, window and partners; then one more feed
    text = base.read_text()
    cfg = write_config(tmp / "nightly.toml", store=tmp / "store", exports=["GBR", "JPN"],
                       screen={"start": "2026-03-10T00:00:00Z", "days": 1.0,
                               "threshold_km": 5.0, "primaries": [ISS]},
                       feeds=[{"source": "analyst", "paths": [str(tmp / "analyst.json")],
                               "marking": "SECRET//REL TO USA, GBR"}])
    feeds = text[text.index("[[feeds]]"):text.index("[screen]")]
    cfg.write_text(cfg.read_text().replace("[[feeds]]", feeds + "[[feeds]]", 1)
                   + f"formats = {json.dumps(list(EXPORT_FORMATS))}\n")
    done = run_cli(cfg)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir(tmp / "store")


def _tables(rd: Path) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The run's catalogue, screened events (before Pc) and assessed events."""
    cat = conform(pq.read_table(rd / "catalogue.parquet"), CATALOGUE)
    return (cat, conform(pq.read_table(rd / "screened.parquet"), CONJUNCTIONS),
            conform(pq.read_table(rd / "conjunctions.parquet"), CONJUNCTIONS))


def _renamed(table: pa.Table, names: dict, pairs) -> pa.Table:
    """``table`` with the name column of each ``(id column, name column)`` pair set to
    ``names[object id]`` where the id is in ``names``."""
    for id_col, name_col in pairs:
        new = [names.get(i, n) for i, n in zip(table[id_col].to_pylist(),
                                                table[name_col].to_pylist())]
        table = table.set_column(table.schema.get_field_index(name_col), name_col,
                                 pa.array(new, pa.string()))
    return table


def _raw_controls(data: bytes) -> set[int]:
    """The bytes below 0x20 other than tab, LF and CR, and the characters of Unicode
    category Cc or U+2028 / U+2029 other than those three, in UTF-8 ``data``."""
    bad = {b for b in data if b < 0x20 and b not in b"\t\n\r"}
    text = data.decode("utf-8")
    bad |= {ord(c) for c in text if c not in "\t\n\r" and (
        unicodedata.category(c) == "Cc" or c in "\u2028\u2029")}
    return bad


# ---------------------------------------------------------------------------------------------
# Files: only what ssafuse listed is ever removed
# ---------------------------------------------------------------------------------------------

USER_FILES = {"notes.txt": b"mine\n", "cdm/mine.cdm": b"CCSDS_CDM_VERS = 1.0\n",
              "cdm/SSAFUSE_1_2_20260310T000000.000_00000000.cdm": b"named like ours\n",
              "cdm/sub/deep.cdm": b"deeper\n", "sub/x.txt": b"a subfolder\n",
              "catalogue.omm.xml.bak": b"a backup\n"}


def _export(rd: Path, out: Path, *formats: str) -> dict:
    args = ["export", "--release-to", "GBR", "--run", str(rd), "--out", str(out)]
    for f in formats:
        args += ["--format", f]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    return json.loads((out / "export.json").read_text())


def test_export_into_a_users_folder_removes_only_what_the_previous_export_listed(run, tmp_path):
    out = tmp_path / "partner"
    for rel, data in USER_FILES.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    first = _export(run, out, *EXPORT_FORMATS)
    for rel, data in USER_FILES.items():
        assert (out / rel).read_bytes() == data, rel
    ours = set(first["written"])
    assert {"conjunctions.csv", "catalogue.tle", "catalogue.tle.marking.txt",
            "report.html"} <= ours
    assert any(n.startswith("cdm/SSAFUSE_") for n in ours)
    assert not ours & set(USER_FILES)
    assert all((out / n).is_file() for n in ours)
    # the second export asks for TLE only: the first one's other files go, the user's stay
    second = _export(run, out, "tle")
    kept = set(second["written"])
    assert not any(n.startswith("cdm/") for n in kept)
    for name in ours - kept:
        assert not (out / name).exists(), name
    for name in kept:
        assert (out / name).is_file(), name
    for rel, data in USER_FILES.items():
        assert (out / rel).read_bytes() == data, rel
    # everything left in the folder is the user's or listed by the second export
    left = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert left == set(USER_FILES) | kept | {"export.json"}


def test_a_listing_cannot_remove_anything_outside_its_folder_nor_a_folder(tmp_path):
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "ours.csv").write_text("x")
    victim = tmp_path / "victim.txt"
    victim.write_text("not in the folder")
    (folder / "link.csv").symlink_to(victim)
    listed = ["../victim.txt", str(victim), "sub", "link.csv", "sub/../../victim.txt",
              "ours.csv", "", ".", "missing.csv"]
    assert remove_stale(folder, listed, kept=[]) == ["ours.csv"]
    assert victim.read_text() == "not in the folder"
    assert (folder / "sub").is_dir() and (folder / "link.csv").is_symlink()


def test_rerun_of_a_night_keeps_a_users_file_in_cdm_and_removes_a_listed_orphan(tmp_path):
    cfg = sample_config(tmp_path)
    assert run_cli(cfg).returncode == 0
    cdm = run_dir(tmp_path / "store") / "cdm"
    (cdm / "user-notes.txt").write_text("mine")
    again = run_cli(cfg, "2026-03-10T05:30:00Z")   # later the same night: the same run
    assert again.returncode == 0, again.stderr[-2000:]
    assert (cdm / "user-notes.txt").read_text() == "mine"
    # a CDM an earlier attempt of this run wrote and listed, and this one does not write
    listing = cdm / ".ssafuse-written.json"
    names = json.loads(listing.read_text())["written"]
    assert sorted(p.name for p in cdm.glob("*.cdm")) == sorted(names)
    (cdm / "SSAFUSE_1_2_20260309T000000.000_deadbeef.cdm").write_text("orphan")
    listing.write_text(json.dumps({"written": names + [
        "SSAFUSE_1_2_20260309T000000.000_deadbeef.cdm"]}))
    again = run_cli(cfg, "2026-03-10T05:45:00Z")
    assert again.returncode == 0, again.stderr[-2000:]
    assert (cdm / "user-notes.txt").read_text() == "mine"
    assert not (cdm / "SSAFUSE_1_2_20260309T000000.000_deadbeef.cdm").exists()
    links = json.loads((cdm.parent / "run.json").read_text())["cdm_links"]
    assert sorted(p.name for p in cdm.glob("*.cdm")) == sorted(Path(v).name
                                                               for v in links.values())


# ---------------------------------------------------------------------------------------------
# Records: a hostile name costs its event's CDM, nothing more
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schemas():
    xmlschema = pytest.importorskip("xmlschema")
    return (xmlschema.XMLSchema(str(shared("ccsds/xsd/ndmxml-1.0/ndmxml-1.0-master.xsd"))),
            xmlschema.XMLSchema(str(shared("ccsds/xsd/ndmxml-2.0.0/"
                                           "ndmxml-2.0.0-master-2.0.xsd"))))


@pytest.mark.parametrize("hostile", HOSTILE, ids=["newline", "cr", "nul", "esc"])
def test_a_hostile_name_costs_its_event_the_cdm_only(run, tmp_path, schemas, hostile):
    from test_written_formats import read_independently, schema_errors

    cat, screened, assessed = _tables(run)
    pairs = list(zip(screened["object_id_1"].to_pylist(), screened["object_id_2"].to_pylist()))
    # conjunctions, not the vehicles docked to a station (attached: no Pc, no CDM)
    attached = dict(zip(event_keys(assessed), assessed["attached"].to_pylist()))
    real = {k for k in event_keys(screened) if not attached[k]}
    assert real and len(real) < screened.num_rows
    # an object in exactly one real event, so the others have clean names on both sides
    counts = pd.Series([b for _, b in pairs] + [a for a, _ in pairs]).value_counts()
    victim = int(counts[counts == 1].index.intersection(
        [b for k, (_, b) in zip(event_keys(screened), pairs) if k in real]).min())
    names = {victim: hostile}
    bad_cat = _renamed(cat, names, [("object_id", "object_name")])
    bad = _renamed(screened, names, [("object_id_1", "object_name_1"),
                                     ("object_id_2", "object_name_2")])
    cdm_dir = tmp_path / "run" / "cdm"
    settings = {"write_cdms": "all", "cdm_format": "xml"}
    created = dt.datetime(2026, 3, 10, 2, tzinfo=dt.timezone.utc)
    # an earlier attempt of the same run, clean: it wrote every event's CDM
    _, first_links = assess_events(screened, cat, settings, cdm_dir, creation_date=created)
    assert set(first_links) == real
    done = assess_events(bad, bad_cat, settings, cdm_dir, creation_date=created)
    conj = done.conjunctions
    assert conj.num_rows == screened.num_rows
    assert conj["max_pc"].null_count == screened.num_rows - len(real)   # the attached ones
    keys = event_keys(bad)
    (hit,) = [k for k, (a, b) in zip(keys, pairs) if victim in (a, b)]
    assert list(done.refused) == [hit] and "OBJECT_NAME" in done.refused[hit]
    assert set(done.links) == real - {hit}
    # the folder: exactly this attempt's CDMs (the earlier attempt's CDM of the hostile
    # event is gone) and the listing
    on_disk = {p.name for p in cdm_dir.iterdir()}
    assert on_disk == {Path(v).name for v in done.links.values()} | {".ssafuse-written.json"}
    for rel in done.links.values():
        data = (cdm_dir.parent / rel).read_bytes()
        assert schema_errors(data, schemas) == [], rel
        read_independently(data.decode())
        assert b"0.99" not in data and b"EVIL" not in data


# ---------------------------------------------------------------------------------------------
# Report and CSV: control characters only as visible escapes
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile_copy(run, tmp_path_factory):
    """A copy of the run's folder whose catalogue, events and exclusions name objects with
    every hostile text, and a feed problem holding a NUL; with the names given."""
    dest = tmp_path_factory.mktemp("copy") / "store" / "runs" / run.name
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("exports"))
    cat, _, conj = _tables(dest)
    others = sorted({b for b in conj["object_id_2"].to_pylist()} - {ISS})
    texts = HOSTILE + MORE_HOSTILE
    names = {obj: texts[k % len(texts)] for k, obj in enumerate(others)}
    pq.write_table(_renamed(cat, names, [("object_id", "object_name")]),
                   dest / "catalogue.parquet")
    pq.write_table(_renamed(conj, names, [("object_id_1", "object_name_1"),
                                          ("object_id_2", "object_name_2")]),
                   dest / "conjunctions.parquet")
    excl = pq.read_table(dest / "excluded.parquet")
    excl = _renamed(excl, {i: texts[k % len(texts)] for k, i in enumerate(
        excl["object_id"].to_pylist())}, [("object_id", "object_name")])
    pq.write_table(excl, dest / "excluded.parquet")
    info = json.loads((dest / "run.json").read_text())
    info["feeds"][0]["problems"] = ["file feed\x00.tle: unreadable \x1b[31mred\u2028"]
    info["previous_run"] = None
    (dest / "run.json").write_text(json.dumps(info))
    return dest, names


def test_report_and_summary_hold_no_raw_control_character(hostile_copy):
    rd, names = hostile_copy
    write_report(rd, rd)
    html = (rd / "report.html").read_bytes()
    text = (rd / "summary.txt").read_bytes()
    assert b"\x00" not in html and _raw_controls(html) == set()
    assert _raw_controls(text) == set()
    # each name is there, as its escapes (Python's unicode_escape codec reads them back)
    page = html.decode()
    for name in set(names.values()):
        shown = name.encode("unicode_escape").decode("ascii")
        assert shown in page, shown


def test_csv_exports_read_back_one_row_per_event_with_names_escaped(hostile_copy, tmp_path):
    rd, names = hostile_copy
    cat, _, conj = _tables(rd)
    every = [f for f in EXPORT_FORMATS if f not in ("parquet", "cdm")]
    files = write_formats(tmp_path, every, conjunctions=conj, catalogue=cat,
                          creation_date="2026-03-10T02:00:00Z")
    # the strict writers refuse a hostile name with its reason; none crashes
    for name in ("catalogue.tle", "catalogue.omm.xml", "catalogue.omm"):
        assert files[name]["refused"] >= 1 and files[name]["written"] >= 1, name
    json.loads((tmp_path / "catalogue.json").read_text())
    for name, id_column, column in (("conjunctions.csv", "object_id_2", "object_name_2"),
                                    ("conjunctions-socrates.csv", "NORAD_CAT_ID_2",
                                     "OBJECT_NAME_2")):
        data = (tmp_path / name).read_bytes()
        assert _raw_controls(data) == set(), name
        df = pd.read_csv(tmp_path / name, skiprows=1, keep_default_na=False)
        with open(tmp_path / name, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))[2:]
        # SOCRATES's layout lists conjunctions: vehicles docked to a station are none
        want = conj.num_rows if name == "conjunctions.csv" else \
            conj.num_rows - sum(conj["attached"].to_pylist())
        assert len(df) == len(rows) == want, name
        shown_names = {names[obj] for obj in df[id_column] if obj in names}
        listed_names = {names[o] for o, a in zip(conj["object_id_2"].to_pylist(),
                                                 conj["attached"].to_pylist())
                        if o in names and (name == "conjunctions.csv" or not a)}
        assert shown_names == listed_names and listed_names, name
        for obj, shown in zip(df[id_column], df[column]):
            if obj in names:
                assert codecs.decode(shown, "unicode_escape") == names[obj], shown


# ---------------------------------------------------------------------------------------------
# The report: sources that disagree, element-set ages, exclusions by reason
# ---------------------------------------------------------------------------------------------

def _table_rows(html: str, table_id: str) -> list[list[str]]:
    from lxml import html as lhtml

    doc = lhtml.fromstring(html)
    found = doc.xpath(f'//table[@id="{table_id}"]')
    if not found:
        return []
    return [[td.text_content() for td in tr.xpath("td")] for tr in found[0].xpath("tr")[1:]]


def _window_start(rd: Path) -> pd.Timestamp:
    return pd.Timestamp(json.loads((rd / "run.json").read_text())["window_start"])


def test_report_lists_the_objects_whose_sources_disagree_worst_first(run):
    cat = pq.read_table(run / "catalogue.parquet").to_pandas()
    info = json.loads((run / "run.json").read_text())
    start = _window_start(run)
    worst = cat[cat.sources_disagree].sort_values(["max_disagreement_km", "object_id"],
                                                  ascending=[False, True])
    worst = worst.head(int((info.get("report") or {}).get("top", 20)))
    assert ISS in set(worst.object_id)   # the analyst's set, 12 h older, is far away
    rows = _table_rows((run / "report.html").read_text(), "disagree-rows")
    assert [int(r[0]) for r in rows] == list(worst.object_id)
    for r, (_, want) in zip(rows, worst.iterrows()):
        assert float(r[2]) == pytest.approx(want.max_disagreement_km, abs=5e-4)  # 3 decimals
        assert r[3] == want.source
        assert float(r[4]) == pytest.approx((start - want.epoch) / pd.Timedelta(days=1),
                                            abs=5e-3)   # printed to 2 decimals
        assert r[5] == want.disagreement_source
        if "disagreement_epoch" in cat.columns and not pd.isna(want.disagreement_epoch):
            age = (start - want.disagreement_epoch) / pd.Timedelta(days=1)
            assert float(r[6]) == pytest.approx(age, abs=5e-3)
        assert r[7] == want.sources_marking
    iss = worst[worst.object_id == ISS].iloc[0]
    if "disagreement_epoch" in cat.columns and iss.disagreement_source == "analyst":
        # the analyst's epoch, from the file this test wrote
        want = _epoch(_iss_record()["EPOCH"]) - ANALYST_SHIFT
        assert iss.disagreement_epoch.to_pydatetime() == want
    # the banner is at least as restrictive as every row's combined marking
    banner = mk.parse(build_report(run).marking)
    for m in worst.sources_marking:
        assert mk.combine([banner, mk.parse(m)]) == banner
    assert f"sources disagree on {len(cat[cat.sources_disagree])} objects" in \
        (run / "summary.txt").read_text()


def test_a_partner_sees_a_disagreement_only_when_every_element_set_may_go_to_it(run):
    cat = pq.read_table(run / "catalogue.parquet").to_pandas()
    iss = cat[cat.object_id == ISS].iloc[0]
    # the ISS row's own element set is UNCLASSIFIED (CelesTrak's), its sources' marking is
    # the analyst's SECRET//REL TO USA, GBR combined with the others
    assert mk.exportable(iss.classification, iss.releasable_to, "JPN")
    assert not mk.exportable(iss.sources_classification, iss.sources_releasable_to, "JPN")
    assert mk.exportable(iss.sources_classification, iss.sources_releasable_to, "GBR")
    jpn = build_report(run, release_to="JPN")
    assert 'id="disagree-rows"' not in jpn.html and f'id="disagree-{ISS}"' not in jpn.html
    assert "disagreements" in jpn.text
    gbr = build_report(run, release_to="GBR")
    assert f'id="disagree-{ISS}"' in gbr.html
    # the exports: JPN's view holds no analyst element set, GBR's does
    assert 'id="disagree-rows"' not in (run / "exports/JPN/report.html").read_text()
    assert f'id="disagree-{ISS}"' in (run / "exports/GBR/report.html").read_text()


def test_report_works_without_the_disagreement_epoch_column(run, tmp_path):
    dest = tmp_path / "store" / "runs" / run.name
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("exports"))
    raw = pq.read_table(dest / "catalogue.parquet")
    if "disagreement_epoch" in raw.column_names:
        raw = raw.drop(["disagreement_epoch"])
    pq.write_table(raw, dest / "catalogue.parquet")
    info = json.loads((dest / "run.json").read_text())
    info["previous_run"] = None
    (dest / "run.json").write_text(json.dumps(info))
    rows = _table_rows(build_report(dest).html, "disagree-rows")
    (iss,) = [r for r in rows if int(r[0]) == ISS]
    assert iss[6] == ""     # the other source's age is not known without the column


def test_report_counts_element_set_ages_and_exclusions_by_reason(run):
    cat = pq.read_table(run / "catalogue.parquet").to_pandas()
    excl = pq.read_table(run / "excluded.parquet").to_pandas()
    start = _window_start(run)
    # screened: the catalogue's objects less those excluded from the window start on
    gone = set(excl[excl.excluded_from <= start].object_id)
    age = (start - cat[~cat.object_id.isin(gone)].epoch) / pd.Timedelta(days=1)
    html = (run / "report.html").read_text()
    rows = _table_rows(html, "ages")
    want = {d: int((age > d).sum()) for d in (3, 7, 14, 30)}
    assert {int(r[0].split()[0]): int(r[1]) for r in rows[:-1]} == want
    assert int(rows[-1][1]) == len(age)
    by_code = excl.groupby("error_code").size()
    assert {int(r[1]): int(r[2]) for r in _table_rows(html, "excluded-reasons")} == \
        {int(c): int(n) for c, n in by_code.items()}
    for code, group in excl.groupby("error_code"):
        if group.reason.nunique() == 1:   # one reason: stated whole
            assert group.reason.iloc[0] in (run / "summary.txt").read_text()
    line = [ln for ln in (run / "summary.txt").read_text().splitlines()
            if ln.startswith("element sets older than")]
    assert line == ["element sets older than " + ", ".join(
        f"{d} d: {n}" for d, n in want.items())
        + f" (of {len(age)} screened objects, at the window start)"]

"""What ssafuse writes for others, read by readers no one here wrote (issue 11).

* Schemas: CCSDS's NDM/XML schema sets in ``../shared/data/ccsds/xsd`` (``ndmxml-1.0``, as
  written; ``ndmxml-2.0.0``, whose elements are namespace-qualified, after qualifying the
  same document), with ``xmlschema``. The control case: the CCSDS sample CDM of 508.0-B-1
  section 4 (``cdm_example_section4.xml``) passes the same check and a copy of it with two
  header keywords swapped does not.
* Readers: the PyPI package ``ccsds-ndm`` (egemenimre) for CDM KVN and XML; python-sgp4's
  ``Satrec.twoline2rv`` for TLE, ``sgp4.omm`` for OMM, pandas for CSV.
* Content: the CDMs of a nightly run over the full 2023-10-09 Space-Track catalogue (26,140
  objects), and a partner export of the sample run in every format.
OMM and TLE writers are checked value by value in test_omm_write.py and test_tle_write.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from _run_helpers import run_cli, run_dir, sample_config
from _socrates import socrates_top20
from conftest import SAMPLES, shared
from ssafuse import assessment as A
from ssafuse import markings as mk
from ssafuse import nightly
from ssafuse.formats.ccsds import cdm
from ssafuse.runs import event_keys
from ssafuse.schema import CATALOGUE, CONJUNCTIONS
from ssafuse.timeutil import format_epoch, to_ns
from ssafuse.writers import EXPORT_FORMATS, SOCRATES_COLUMNS, write_formats

xmlschema = pytest.importorskip("xmlschema")
ccsds_ndm_io = pytest.importorskip("ccsds_ndm.ndm_io")
etree = pytest.importorskip("lxml.etree")

NDM_NS = "urn:ccsds:schema:ndmxml"
CATALOGUE_3LE = "catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt"
CCSDS_SAMPLE = "ccsds/ccsds_ndm_egemenimre/xml/cdm_example_section4.xml"


@pytest.fixture(scope="module")
def schemas():
    """The two official schema sets: ``(ndmxml-1.0, ndmxml-2.0.0)``."""
    return (xmlschema.XMLSchema(str(shared("ccsds/xsd/ndmxml-1.0/ndmxml-1.0-master.xsd"))),
            xmlschema.XMLSchema(str(shared("ccsds/xsd/ndmxml-2.0.0/"
                                           "ndmxml-2.0.0-master-2.0.xsd"))))


def _qualified(data: bytes) -> bytes:
    """The document in NDM/XML 2.0.0's form: every element below the root in its namespace
    (the 2.0.0 set declares ``elementFormDefault="qualified"``)."""
    root = etree.fromstring(data)
    for el in root.iter():
        if el is not root and isinstance(el.tag, str) and not el.tag.startswith("{"):
            el.tag = f"{{{NDM_NS}}}{el.tag}"
    return etree.tostring(root)


def schema_errors(data: bytes, schemas) -> list[str]:
    """Every reason either schema set gives against ``data`` (empty: valid in both)."""
    one, two = schemas
    return ([f"1.0: {e.reason}" for e in one.iter_errors(data)]
            + [f"2.0.0: {e.reason}" for e in two.iter_errors(_qualified(data))])


def read_independently(text: str):
    """The message as ccsds-ndm reads it (it raises on what it cannot read)."""
    return ccsds_ndm_io.NdmIo().from_string(text)


def test_schema_check_accepts_the_ccsds_sample_and_refuses_a_broken_copy(schemas):
    data = shared(CCSDS_SAMPLE).read_bytes()
    assert schema_errors(data, schemas) == []
    text = data.decode()
    swapped = re.sub(r"(<CREATION_DATE>.*?</CREATION_DATE>)(\s*)(<ORIGINATOR>.*?</ORIGINATOR>)",
                     r"\3\2\1", text, count=1)
    assert swapped != text
    errors = schema_errors(swapped.encode(), schemas)
    assert any(e.startswith("1.0:") for e in errors) and any(e.startswith("2.0.0") for e in errors)
    relabelled = re.sub(r'(<cdm\b[^>]*\bversion=")1\.0"', r'\g<1>2.0"', text, count=1)
    assert relabelled != text
    assert any("fixed value" in e for e in schema_errors(relabelled.encode(), schemas))
    assert read_independently(text).header.originator == "JSPOC"


#: Orekit's sample CDMs in XML that are CDM 1.0 as the standard has it (the others in its test
#: folder carry CDM 2.0 keywords or are broken on purpose).
OREKIT_VALID = ("CDMExample1.xml", "CDMExample_issue942.xml", "CDMExample_issue988.xml",
                "CDMExample_issue988_2.xml", "CDMExample_issue988_3.xml",
                "CDMExample_issue_944.xml")


def test_schema_check_accepts_orekits_cdm_1_samples_and_refuses_its_cdm_2_one(schemas):
    for name in OREKIT_VALID:
        assert schema_errors(shared(f"ccsds/orekit/cdm/{name}").read_bytes(), schemas) == [], name
    cdm2 = shared("ccsds/orekit/cdm/CDMExample_issue_940.xml").read_bytes()
    assert any("fixed value" in e for e in schema_errors(cdm2, schemas))
    broken = shared("ccsds/orekit/cdm/CDM-missing-object1-covariance-block.xml").read_bytes()
    assert schema_errors(broken, schemas)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A nightly run over the full 2023-10-09 catalogue (6 h window, 5 km), writing XML CDM
    1.0 files for the 40 events its report lists."""
    tmp = tmp_path_factory.mktemp("full")
    cfg = tmp / "full.toml"
    cfg.write_text("\n".join([
        f'store = "{tmp / "store"}"',
        "[[feeds]]", 'source = "spacetrack"', f'paths = ["{shared(CATALOGUE_3LE)}"]',
        'marking = "UNCLASSIFIED"',
        "[screen]", 'start = "2023-10-09T12:00:00Z"', "days = 0.25", "threshold_km = 5.0",
        "[pc]", 'cdm_format = "xml"', 'covariance_model = { "*" = [0.1, 0.3, 0.1] }',
        "[report]", "top = 40"]) + "\n")
    result = nightly.run(nightly.load_config(cfg), now=dt.datetime(2023, 10, 9, 13,
                                                                   tzinfo=dt.timezone.utc))
    assert result.exit_code == nightly.EXIT_OK
    rd = run_dir(tmp / "store")
    info = json.loads((rd / "run.json").read_text())
    conj = pq.read_table(rd / "conjunctions.parquet").cast(CONJUNCTIONS)
    return rd, info, conj, pq.read_table(rd / "catalogue.parquet").cast(CATALOGUE)


def _check_against_row(msg, ind, row: dict) -> None:
    """The message as ``cdm`` reads it and as ccsds-ndm reads it (``ind``) agree with each
    other and with the conjunction it was written for."""
    rel = ind.body.relative_metadata_data
    assert cdm.parse_epoch(rel.tca) == msg.relative["TCA"] == to_ns(row["tca"])
    assert rel.miss_distance.value == msg.relative["MISS_DISTANCE"]
    # states rotated TEME -> GCRF and back: the range is frame-free to well under a mm
    assert rel.miss_distance.value == pytest.approx(row["miss_distance_km"] * 1e3, abs=1e-4)
    assert cdm.parse_epoch(ind.header.creation_date) == msg.header["CREATION_DATE"]
    assert ind.header.message_id == msg.header["MESSAGE_ID"]
    for seg, obj, s in zip(ind.body.segment, msg.objects, "12"):
        assert seg.metadata.object_designator == obj["OBJECT_DESIGNATOR"] == str(
            row[f"object_id_{s}"])
        assert seg.data.state_vector.x.value == obj["X"]
        assert seg.metadata.gravity_model == A.SGP4_GRAVITY_MODEL
    assert f"CLASSIFICATION: {row['marking']}" in ind.header.comment


@pytest.mark.slow
def test_every_cdm_of_a_full_catalogue_run_is_schema_valid_and_read_by_ccsds_ndm(
        full_run, schemas, tmp_path):
    rd, info, conj, catalogue = full_run
    rows = dict(zip(event_keys(conj), conj.to_pylist()))
    links = info["cdm_links"]
    assert len(links) >= 40
    for key, rel in links.items():
        data = (rd / rel).read_bytes()
        assert schema_errors(data, schemas) == [], rel
        _check_against_row(cdm.loads(data), read_independently(data.decode()), rows[key])
    # the same events as KVN: ccsds-ndm reads every one, CREATION_DATE included
    listed = conj.filter(pa.array([k in links for k in event_keys(conj)]))
    paths = A.write_cdms(listed, catalogue, tmp_path / "kvn", fmt="kvn",
                         creation_date=info["created"])
    for p, row in zip(paths, listed.to_pylist()):
        text = p.read_text()
        _check_against_row(cdm.loads(text), read_independently(text), row)
    print(f"{len(links)} XML CDMs valid (ndmxml-1.0 and 2.0.0) and read by ccsds-ndm; "
          f"{len(paths)} KVN CDMs read by ccsds-ndm")


def test_cdm_2_is_written_only_when_asked_and_keeps_the_standard_forms(full_run, tmp_path,
                                                                        schemas):
    rd, info, conj, catalogue = full_run
    first = conj.slice(0, 3)
    assert first.num_rows == 3
    for fmt in ("kvn", "xml"):
        paths = A.write_cdms(first, catalogue, tmp_path / fmt, fmt=fmt, version="2.0",
                             creation_date=info["created"])
        assert len(paths) == first.num_rows
        for p in paths:
            msg = cdm.read(p)
            assert msg.header["CLASSIFICATION"] == "UNCLASSIFIED"
            assert all("OD_EPOCH" in o for o in msg.objects)
            text = p.read_text()
            if fmt == "kvn":
                # Orekit ends the object metadata at the first COMMENT after OBJECT: every
                # object COMMENT comes before OBJECT = OBJECTn
                lines = text.splitlines()
                for n in ("OBJECT1", "OBJECT2"):
                    at = next(i for i, ln in enumerate(lines) if ln.startswith("OBJECT ")
                              and ln.endswith(n))
                    nxt = next(i for i, ln in enumerate(lines[at:], at)
                               if ln.startswith("X "))
                    assert not any(ln.startswith("COMMENT") for ln in lines[at:nxt]), n
            else:   # CDM 2.0 is not CDM 1.0: the 1.0 schema refuses its version
                assert any("fixed value" in e for e in schema_errors(p.read_bytes(), schemas))
    # what the 1.0 writer is asked to write and 1.0 does not define, it refuses
    (msg,) = A.conjunction_cdms(first.slice(0, 1), catalogue, creation_date=info["created"])
    msg.objects[0]["OD_EPOCH"] = msg.relative["TCA"]
    with pytest.raises(ValueError, match="OD_EPOCH is not a CDM 1.0 keyword"):
        cdm.dumps_xml(msg)


def test_a_cdm_1_keeps_its_marking_when_ingested_again(tmp_path):
    """A CDM 1.0 has no CLASSIFICATION keyword: its header COMMENT carries the marking, and
    ssafuse's reader takes it from there (the feed's marking is only a floor)."""
    text = shared("ccsds/orekit/cdm/CDMExample1.txt").read_text()
    assert "CLASSIFICATION" not in text
    marked = text.replace("CREATION_DATE", "COMMENT CLASSIFICATION: SECRET//REL TO USA, GBR\n"
                          "CREATION_DATE", 1)
    msg = cdm.loads(marked)
    assert cdm.stated_marking(msg) == "SECRET//REL TO USA, GBR"
    assert cdm.to_record(msg)["marking"] == "SECRET//REL TO USA, GBR"
    assert cdm.stated_marking(cdm.loads(text)) is None


@pytest.fixture(scope="module")
def sample_export(tmp_path_factory):
    """The sample run with GBR's export in every format."""
    tmp = tmp_path_factory.mktemp("every")
    cfg = sample_config(tmp)
    cfg.write_text(cfg.read_text() + f"formats = {json.dumps(list(EXPORT_FORMATS))}\n")
    done = run_cli(cfg)
    assert done.returncode == 0, done.stderr
    return run_dir(tmp / "store") / "exports" / "GBR"


def test_partner_export_holds_every_format_each_read_by_an_independent_reader(sample_export,
                                                                              schemas):
    from sgp4 import omm as sgp4_omm
    from sgp4.api import Satrec

    out = sample_export
    ex = json.loads((out / "export.json").read_text())
    cat = pq.read_table(out / "catalogue.parquet").cast(CATALOGUE)
    conj = pq.read_table(out / "conjunctions.parquet").cast(CONJUNCTIONS)
    n = cat.num_rows
    assert {f["format"] for f in ex["files"].values()} == set(EXPORT_FORMATS) - {"parquet", "cdm"}
    assert ex["formats"] == list(EXPORT_FORMATS)
    # OMM XML: valid against both schema sets, read by sgp4.omm, one OMM per object
    xml = (out / "catalogue.omm.xml").read_bytes()
    assert schema_errors(xml, schemas) == []
    with open(out / "catalogue.omm.xml") as fh:
        parsed = list(sgp4_omm.parse_xml(fh))
    assert sorted(int(f["NORAD_CAT_ID"]) for f in parsed) == sorted(cat["object_id"].to_pylist())
    # OMM JSON: CelesTrak's keys, read by sgp4.omm.initialize
    records = json.loads((out / "catalogue.json").read_text())
    assert len(records) == n
    for fields in records:
        sat = Satrec()
        sgp4_omm.initialize(sat, fields)
        assert sat.error == 0
    # TLE: every line pair parsed by twoline2rv, marking in the sidecar
    lines = (out / "catalogue.tle").read_text().splitlines()
    pairs = [(a, b) for a, b in zip(lines, lines[1:]) if a.startswith("1 ") and
             b.startswith("2 ")]
    assert len(pairs) == n == ex["files"]["catalogue.tle"]["written"]
    for a, b in pairs:
        Satrec.twoline2rv(a, b)
    # OMM KVN: one message per object, each read by ccsds-ndm
    kvn = (out / "catalogue.omm").read_text()
    messages = ["CCSDS_OMM_VERS" + m for m in kvn.split("CCSDS_OMM_VERS")[1:]]
    assert len(messages) == n
    for m in messages:
        read_independently(m)
    # CSV: read by pandas after the banner; the same events and values as the Parquet
    # the banner: the marking over the file's rows (most restrictive level, common REL TO)
    banner = (out / "conjunctions.csv").read_text().splitlines()[0]
    rows = mk.overall(zip(conj["classification"].to_pylist(), conj["releasable_to"].to_pylist(),
                          conj["marking"].to_pylist()))
    assert banner == f"# CLASSIFICATION: {rows}"
    assert (out / "catalogue.tle.marking.txt").read_text() == "CLASSIFICATION: " + str(
        mk.overall(zip(cat["classification"].to_pylist(), cat["releasable_to"].to_pylist(),
                       cat["marking"].to_pylist()))) + "\n"
    df = pd.read_csv(out / "conjunctions.csv", skiprows=1)
    assert len(df) == conj.num_rows > 0
    np.testing.assert_array_equal(df["miss_distance_km"], conj["miss_distance_km"].to_numpy())
    assert list(df["tca"]) == [format_epoch(to_ns(t)) + "Z" for t in conj["tca"].to_pylist()]
    assert list(df["marking"]) == conj["marking"].to_pylist()
    soc = pd.read_csv(out / "conjunctions-socrates.csv", skiprows=1)
    assert tuple(soc.columns) == SOCRATES_COLUMNS
    # SOCRATES lists conjunctions: the vehicles docked to a station (attached) are none
    real = conj.filter(pc.invert(pc.fill_null(conj["attached"], False)))
    assert 0 < real.num_rows < conj.num_rows
    np.testing.assert_allclose(soc["TCA_RANGE"], real["miss_distance_km"].to_numpy(), atol=5e-4)
    html = (out / "report.html").read_text()
    assert ex["files"]
    for name in ex["files"]:
        assert f'href="{name}"' in html
    print(f"GBR export: {n} OMMs valid in both schema sets and read by sgp4.omm (XML), {n} "
          f"JSON records and {len(pairs)} TLEs read by python-sgp4, {len(messages)} KVN OMMs "
          f"read by ccsds-ndm, {len(df)} CSV rows read by pandas")


def test_an_object_number_a_tle_cannot_hold_is_counted_not_truncated(tmp_path):
    """Alpha-5 ends at 339999 (Z9999): a larger number is refused with its reason."""
    from ssafuse.records import read_file

    el = read_file(SAMPLES / "celestrak_active_2025-04-23_first300.tle",
                   source="celestrak").elements.slice(0, 3)
    big = el.set_column(el.schema.get_field_index("object_id"), "object_id",
                        pa.array([25544, 339999, 340000], pa.int64()))
    conj = CONJUNCTIONS.empty_table()
    files = write_formats(tmp_path, ("tle", "omm-xml"), conjunctions=conj, catalogue=big,
                          creation_date="2026-03-10T00:00:00Z")
    tle = files["catalogue.tle"]
    assert (tle["written"], tle["refused"]) == (2, 1)
    assert any("339999" in why for why in tle["reasons"])
    text = (tmp_path / "catalogue.tle").read_text()
    assert "Z9999" in text and "340000" not in text
    assert files["catalogue.omm.xml"]["written"] == 3      # OMM holds nine digits


def test_socrates_csv_of_socrates_own_top_20_gives_its_published_values(tmp_path):
    """The SOCRATES run of 2026-03-09: its top 20 events, screened from the element sets it
    used and written in its CSV layout, read back by pandas: the same objects, days since
    epoch, TCA, minimum range and relative speed SOCRATES published, in its units (km, km/s),
    to the digits it prints (TCA within 10 ms and range within 1 m as test_screen shows)."""
    from ssafuse.writers import socrates_csv

    top20, events = socrates_top20()
    (tmp_path / "s.csv").write_text(socrates_csv(events))
    df = pd.read_csv(tmp_path / "s.csv", skiprows=1, keep_default_na=False)
    assert len(df) == 20
    for ev, got in zip(top20, df.to_dict("records")):
        dse = {ev["obj1_norad"]: ev["obj1_dse"], ev["obj2_norad"]: ev["obj2_dse"]}
        assert sorted(dse) == [got["NORAD_CAT_ID_1"], got["NORAD_CAT_ID_2"]]
        assert abs(got["DSE_1"] - dse[got["NORAD_CAT_ID_1"]]) <= 2e-3
        assert abs(got["DSE_2"] - dse[got["NORAD_CAT_ID_2"]]) <= 2e-3
        want = dt.datetime.fromisoformat(ev["tca"].replace("Z", "+00:00"))
        have = dt.datetime.fromisoformat(got["TCA"] + "+00:00")
        assert abs((have - want).total_seconds()) <= 0.011
        assert abs(got["TCA_RANGE"] - ev["min_range_km"]) <= 1.5e-3
        assert abs(got["TCA_RELATIVE_SPEED"] - ev["rel_speed_kms"]) <= 2.5e-3
    # the closest event lies within any radius: max Pc 1 and no dilution, as SOCRATES says
    assert (float(df["MAX_PROB"][0]), df["DILUTION"][0]) == (1.0, "")
    assert (tmp_path / "s.csv").read_text().splitlines()[2].endswith(",1.000E+00,")
    assert top20[0]["max_prob"] == 1 and top20[0]["dilution_km"] is None


def _marked(el: pa.Table, markings: list[tuple[str, list | None, str]]) -> pa.Table:
    n = len(markings)
    out = el.slice(0, n)
    for name, values, typ in (("classification", [m[0] for m in markings], pa.string()),
                              ("releasable_to", [m[1] for m in markings],
                               pa.list_(pa.string())),
                              ("marking", [m[2] for m in markings], pa.string())):
        out = out.set_column(out.schema.get_field_index(name), name, pa.array(values, typ))
    return out


def test_each_file_states_the_marking_over_its_rows_and_a_new_export_removes_old_files(
        tmp_path):
    """Three element sets marked SECRET//REL TO USA, GBR; UNCLASSIFIED//REL TO GBR, AUS;
    CONFIDENTIAL//ORCON. The marking over them, worked out by hand from the rule (most
    restrictive level, the releasability every row allows, every control): SECRET, releasable
    to GBR only, ORCON."""
    from ssafuse.records import read_file

    el = read_file(SAMPLES / "celestrak_active_2025-04-23_first300.tle",
                   source="celestrak").elements
    cat = _marked(el, [("SECRET", ["GBR", "USA"], "SECRET//REL TO USA, GBR"),
                       ("UNCLASSIFIED", ["AUS", "GBR"], "UNCLASSIFIED//REL TO GBR, AUS"),
                       ("CONFIDENTIAL", None, "CONFIDENTIAL//ORCON")])
    conj = CONJUNCTIONS.empty_table()
    every = [f for f in EXPORT_FORMATS if f not in ("parquet", "cdm")]
    files = write_formats(tmp_path, every, conjunctions=conj, catalogue=cat,
                          creation_date="2026-03-10T00:00:00Z")
    assert all(f["written"] == (3 if "catalogue" in name else 0) for name, f in files.items())
    sidecar = (tmp_path / "catalogue.tle.marking.txt").read_text().strip()
    assert sidecar.startswith("CLASSIFICATION: ")
    stated = mk.parse(sidecar.removeprefix("CLASSIFICATION: "))
    assert (stated.classification, stated.releasable_to, stated.controls) == (
        "SECRET", ("GBR",), ("ORCON",))
    # no event at all: the CSV banners take the export's data's marking, never less
    for name in ("conjunctions.csv", "conjunctions-socrates.csv"):
        banner = (tmp_path / name).read_text().splitlines()[0]
        assert mk.parse(banner.removeprefix("# CLASSIFICATION: ")) == stated
    # each OMM states its own row's marking, read back whole by ssafuse's reader
    back = read_file(tmp_path / "catalogue.omm.xml", source="t").elements
    assert back["marking"].to_pylist() == cat["marking"].to_pylist()
    # the next export asks for CSV only: nothing of the other formats (the files the first
    # one listed) stays behind
    write_formats(tmp_path, ["csv"], conjunctions=conj, catalogue=cat,
                  creation_date="2026-03-10T00:00:00Z", previous=files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conjunctions.csv"]


def test_a_cdm_never_states_less_than_its_events_marking_columns(full_run):
    """The marking text of a row cannot lower what its classification / releasable_to
    columns say: the CDM states the combination of all three."""
    rd, info, conj, catalogue = full_run
    one = conj.slice(0, 1)
    one = one.set_column(one.schema.get_field_index("classification"), "classification",
                         pa.array(["SECRET"]))
    one = one.set_column(one.schema.get_field_index("releasable_to"), "releasable_to",
                         pa.array([["GBR"]], pa.list_(pa.string())))
    for version in ("1.0", "2.0"):
        (msg,) = A.conjunction_cdms(one, catalogue, creation_date=info["created"],
                                    version=version)
        assert mk.parse(cdm.stated_marking(msg)) == mk.Marking("SECRET", ("GBR",))


def test_export_command_writes_the_formats_asked_for(sample_export, tmp_path):
    from click.testing import CliRunner

    from ssafuse.cli import main

    rd = sample_export.parent.parent
    out = tmp_path / "jpn"
    done = CliRunner().invoke(main, ["export", "--release-to", "JPN", "--run", str(rd),
                                     "--out", str(out), "--format", "tle",
                                     "--format", "socrates-csv"])
    assert done.exit_code == 0, done.output
    ex = json.loads((out / "export.json").read_text())
    assert ex["formats"] == ["parquet", "tle", "socrates-csv"]
    assert sorted(ex["files"]) == ["catalogue.tle", "conjunctions-socrates.csv"]
    assert ex["exported"]["cdms"] == ex["withheld"]["cdms"] == 0   # not asked for
    assert not (out / "cdm").exists() and not (out / "catalogue.omm.xml").exists()
    assert "catalogue.tle" in done.output
    bad = CliRunner().invoke(main, ["export", "--release-to", "JPN", "--run", str(rd),
                                    "--out", str(out), "--format", "xls"])
    assert bad.exit_code == 2 and "socrates-csv" in bad.output


@pytest.mark.parametrize("table, line, says", [
    ("exports", 'formats = ["omm-xml", "xls"]', "unknown export format"),
    ("pc", 'cdm_version = "3.0"', "cdm_version must be"),
    ("pc", 'cdm_format = "json"', "cdm_format must be"),
])
def test_config_refuses_unknown_formats_and_versions(tmp_path, table, line, says):
    cfg = tmp_path / "c.toml"
    feed = SAMPLES / "celestrak_active_2025-04-23_first300.tle"
    cfg.write_text(f'store = "{tmp_path / "s"}"\n[[feeds]]\nsource = "c"\npaths = ["{feed}"]\n'
                   f'marking = "UNCLASSIFIED"\n[{table}]\n{line}\n')
    with pytest.raises(nightly.ConfigError, match=says):
        nightly.load_config(cfg)

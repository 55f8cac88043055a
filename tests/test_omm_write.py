"""OMM writers (KVN, NDM/XML, CelesTrak JSON) checked by readers that are not ours.

Where expected values come from:

* keyword order and XML validity: the official NDM/XML 1.0 schema
  (``../shared/data/ccsds/xsd/ndmxml-1.0``), read here with ``xmlschema`` and ElementTree;
* read-back values: the independent ``ccsds-ndm`` package (Egemen Imre) and ``sgp4.omm``
  (python-sgp4), compared with the table that was written (the input, never our output);
* the real-content test: python-sgp4's ``Satrec.twoline2rv`` on the source 3LE lines of
  ``spacetrack_3le_2023-10-09_cdm_on_chain.txt``. The element values come back bit-identical
  (checked exactly through our reader), but ``sgp4.omm.initialize`` hands SGP4 the epoch as
  one double of days since 1949 (about 0.3 us resolution) where ``twoline2rv`` uses a split
  Julian date, which alone moves one HEO object (index 17733, 96,600 km out) by 1.7 mm: so
  1 cm for element sets initialized by ``sgp4.omm``, 1 mm for the TLE path
  (``tests/test_tle_write.py``).

Tests needing ``../shared/data`` skip when it is absent.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import sgp4.omm
from _element_rows import element_row, table
from conftest import shared
from sgp4.api import Satrec

from ssafuse import markings as mk
from ssafuse.formats.ccsds import omm_write as w
from ssafuse.records import read_file

CREATED = "2026-03-10T02:15:00Z"
XSD = "ccsds/xsd/ndmxml-1.0/ndmxml-1.0-master.xsd"
CATALOGUE = "catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt"
FLOATS = {"MEAN_MOTION": "mean_motion_rev_day", "ECCENTRICITY": "eccentricity",
          "INCLINATION": "inclination_deg", "RA_OF_ASC_NODE": "raan_deg",
          "ARG_OF_PERICENTER": "arg_perigee_deg", "MEAN_ANOMALY": "mean_anomaly_deg",
          "BSTAR": "bstar", "MEAN_MOTION_DOT": "mean_motion_dot",
          "MEAN_MOTION_DDOT": "mean_motion_ddot"}
INTS = {"NORAD_CAT_ID": "object_id", "ELEMENT_SET_NO": "element_set_no",
        "REV_AT_EPOCH": "rev_at_epoch"}


def row(**over) -> dict:
    """An element-set row (ISS-like numbers, chosen to need full precision)."""
    return element_row(**over)



GOOD = [row(),
        row(object_id=270000, intl_designator=None, object_name="ANALYST OBJECT",
            ephemeris_type=None, bstar=-0.045127102, mean_anomaly_deg=-12.5),
        row(object_id=43013, object_name="NOAA 20 (JPSS-1)", classification="SECRET",
            releasable_to=["GBR", "USA"], marking="SECRET//REL TO USA, GBR",
            epoch=1773114507801504123)]


@pytest.fixture(scope="module")
def schema():
    xmlschema = pytest.importorskip("xmlschema")
    return xmlschema.XMLSchema(str(shared(XSD)))


def omm_documents(xml_text: str) -> list[str]:
    """Each ``<omm>`` of an NDM container as a document of its own."""
    root = ET.fromstring(xml_text)
    return [ET.tostring(o, encoding="unicode") for o in root.findall("omm")]


def kvn_messages(text: str) -> list[str]:
    return ["CCSDS_OMM_VERS" + m for m in text.split("CCSDS_OMM_VERS")[1:]]


# ------------------------------------------------------------------ the standard, as data


def _xsd_sequence(type_name: str) -> list[str]:
    path = shared("ccsds/xsd/ndmxml-1.0/ndmxml-1.0-omm-2.0.xsd")
    ns = {"xsd": "http://www.w3.org/2001/XMLSchema"}
    node = ET.parse(path).getroot().find(f"xsd:complexType[@name='{type_name}']", ns)
    return [e.get("name") for e in node.iter("{http://www.w3.org/2001/XMLSchema}element")]


@pytest.mark.parametrize("block, xsd_type", [("metadata", "ommMetadata"),
                                             ("meanElements", "meanElementsType"),
                                             ("tleParameters", "tleParametersType")])
def test_keyword_table_is_in_the_schemas_order(block, xsd_type):
    ours = [k.keyword for k in w.KEYWORDS if k.block == block]
    official = _xsd_sequence(xsd_type)
    assert all(k in official for k in ours), set(ours) - set(official)
    assert ours == sorted(ours, key=official.index)


def test_keyword_units_are_the_schemas_enumerations():
    text = shared("ccsds/xsd/ndmxml-1.0/ndmxml-1.0-omm-2.0.xsd").read_text()
    text += shared("ccsds/xsd/ndmxml-1.0/ndmxml-1.0-navwg-common.xsd").read_text()
    for kw in w.KEYWORDS:
        if kw.unit:
            assert f'<xsd:enumeration value="{kw.unit}"/>' in text, kw


# ------------------------------------------------------------------ schema validation


def test_schema_helper_accepts_the_ccsds_sample_and_rejects_a_broken_copy(schema):
    sample = shared("ccsds/ccsds_ndm_egemenimre/xml/ndmxml-1.0-omm-2.0.xml").read_text()
    assert schema.is_valid(sample)
    broken = sample.replace("<MEAN_MOTION>1.00273272</MEAN_MOTION>", "")  # required
    # header keywords out of order
    swapped = sample.replace("<ORIGINATOR>NOAA/USA</ORIGINATOR>", "").replace(
        "<CREATION_DATE>", "<ORIGINATOR>NOAA/USA</ORIGINATOR><CREATION_DATE>")
    assert broken != sample and swapped != sample
    assert not schema.is_valid(broken)
    assert not schema.is_valid(swapped)


def test_written_ndm_and_each_omm_alone_validate(schema):
    text, refused = w.dumps_xml(table(GOOD), creation_date=CREATED)
    assert refused == []
    errors = list(schema.iter_errors(text))
    assert errors == [], errors[0]
    docs = omm_documents(text)
    assert len(docs) == len(GOOD)
    for doc in docs:
        assert schema.is_valid(doc)


# ------------------------------------------------------------------ independent readers


def _check_ccsds_ndm_omm(omm, src: dict) -> None:
    meta = omm.body.segment.metadata
    mean = omm.body.segment.data.mean_elements
    tle = omm.body.segment.data.tle_parameters
    assert meta.object_name == src["object_name"]
    if src["intl_designator"] is None:  # ccsds-ndm's KVN reader turns UNKNOWN into None
        assert meta.object_id in ("UNKNOWN", None)
    else:
        assert meta.object_id == src["intl_designator"]
    assert mean.mean_motion.value == src["mean_motion_rev_day"]
    assert mean.eccentricity == src["eccentricity"]
    assert mean.inclination.value == src["inclination_deg"]
    assert mean.ra_of_asc_node.value == src["raan_deg"]
    assert mean.mean_anomaly.value == src["mean_anomaly_deg"]
    assert tle.bstar.value == src["bstar"]
    assert tle.mean_motion_dot.value == src["mean_motion_dot"]
    assert tle.mean_motion_ddot.value == src["mean_motion_ddot"]
    assert (tle.norad_cat_id, tle.element_set_no, tle.rev_at_epoch) == (
        src["object_id"], src["element_set_no"], src["rev_at_epoch"])
    assert tle.ephemeris_type == src["ephemeris_type"]
    # the level's letter in CLASSIFICATION_TYPE, the whole marking in the header COMMENT
    assert mk.parse(tle.classification_type).classification == src["classification"]
    assert omm.header.comment == [mk.marking_comment(mk.row_marking_text(
        src["classification"], src["releasable_to"], src["marking"])[1])]


def test_ccsds_ndm_reads_every_kvn_message():
    ndm_io = pytest.importorskip("ccsds_ndm.ndm_io")
    text, refused = w.dumps_kvn(table(GOOD), creation_date=CREATED)
    messages = kvn_messages(text)
    assert refused == [] and len(messages) == len(GOOD)
    for message, src in zip(messages, GOOD):
        _check_ccsds_ndm_omm(ndm_io.NdmIo().from_string(message), src)


def test_ccsds_ndm_keeps_only_the_last_message_of_a_multi_message_kvn():
    """Why the test above feeds ccsds-ndm one message at a time: given several (which KVN
    allows), ccsds-ndm 3.1 silently returns one OMM holding the last message's values."""
    ndm_io = pytest.importorskip("ccsds_ndm.ndm_io")
    text, _ = w.dumps_kvn(table(GOOD[:2]), creation_date=CREATED)
    omm = ndm_io.NdmIo().from_string(text)
    assert omm.body.segment.data.tle_parameters.norad_cat_id == GOOD[1]["object_id"]


def test_ccsds_ndm_reads_the_ndm_container():
    ndm_io = pytest.importorskip("ccsds_ndm.ndm_io")
    text, _ = w.dumps_xml(table(GOOD), creation_date=CREATED)
    ndm = ndm_io.NdmIo().from_string(text)
    assert len(ndm.omm) == len(GOOD)
    for omm, src in zip(ndm.omm, GOOD):
        _check_ccsds_ndm_omm(omm, src)
        assert omm.header.comment == [
            "CLASSIFICATION: " + mk.row_marking_text(src["classification"],
                                                  src["releasable_to"], src["marking"])[1]]


def _check_sgp4_fields(fields: dict, src: dict) -> None:
    for key, column in FLOATS.items():
        assert float(fields[key]) == src[column], key
    for key, column in INTS.items():
        assert int(fields[key]) == src[column], key


def test_sgp4_omm_reads_xml_and_json(tmp_path):
    rows = [r for r in GOOD if r["epoch"] % 1000 == 0 and r["ephemeris_type"] is not None]
    assert rows  # sgp4.omm needs EPHEMERIS_TYPE and an epoch of at most 6 fraction digits
    text, _ = w.dumps_xml(table(rows), creation_date=CREATED)
    (tmp_path / "o.xml").write_text(text)
    xml_fields = list(sgp4.omm.parse_xml(str(tmp_path / "o.xml")))
    json_text, _ = w.dumps_json(table(rows))
    json_fields = json.loads(json_text)
    assert len(xml_fields) == len(json_fields) == len(rows)
    for fields_list in (xml_fields, json_fields):
        for fields, src in zip(fields_list, rows):
            _check_sgp4_fields(fields, src)
            sat = Satrec()
            sgp4.omm.initialize(sat, fields)
            assert sat.satnum == src["object_id"]
            assert sat.error == 0


@pytest.mark.parametrize("fmt", ["omm-kvn", "omm-xml", "omm-json"])
def test_our_reader_gives_the_table_back(tmp_path, fmt):
    t = table(GOOD)
    text, refused = {"omm-kvn": lambda: w.dumps_kvn(t, creation_date=CREATED),
                     "omm-xml": lambda: w.dumps_xml(t, creation_date=CREATED),
                     "omm-json": lambda: w.dumps_json(t)}[fmt]()
    assert refused == []
    path = tmp_path / "out"
    path.write_text(text)
    back = read_file(path, source="t", format=fmt)
    assert back.rejected == 0
    cols = ["object_id", "intl_designator", "object_name", "epoch", *FLOATS.values(),
            "ephemeris_type", "element_set_no", "rev_at_epoch", "classification",
            "releasable_to"]
    assert back.elements.select(cols).to_pylist() == t.select(cols).to_pylist()


# ------------------------------------------------------------------ refusals


BAD = [
    (row(object_id=1, bstar=float("nan")), "bstar"),
    (row(object_id=2, object_name="EVIL\nNAME"), "object_name"),
    (row(object_id=3, object_name=""), "object_name"),
    (row(object_id=4, element_set_no=10000), "element_set_no"),
    (row(object_id=5, raan_deg=400.0), "raan_deg"),     # beyond what the reader takes
    (row(object_id=6, marking="NOT A MARKING"), "marking"),
    (row(object_id=7, mean_motion_dot=None), "mean_motion_dot"),
    (row(object_id=8, eccentricity=1.5), "eccentricity"),
]


@pytest.mark.parametrize("writer", ["kvn", "xml", "json"])
def test_bad_rows_are_refused_by_name_and_the_good_ones_written(writer, schema):
    rows = [GOOD[0]] + [r for r, _ in BAD] + [GOOD[2]]
    dump = getattr(w, f"dumps_{writer}")
    kwargs = {} if writer == "json" else {"creation_date": CREATED}
    text, refused = dump(table(rows), **kwargs)
    assert [(r.row, r.object_id, r.field) for r in refused] == [
        (i + 1, bad["object_id"], field) for i, (bad, field) in enumerate(BAD)]
    assert all(r.reason for r in refused)
    written = {"kvn": lambda: len(kvn_messages(text)),
               "xml": lambda: len(omm_documents(text)),
               "json": lambda: len(json.loads(text))}[writer]()
    assert written == 2
    if writer == "xml":
        assert schema.is_valid(text)


def test_kvn_refuses_non_ascii_names_that_xml_writes():
    t = table([row(object_name="ÑUSAT")])
    assert w.dumps_kvn(t, creation_date=CREATED)[1][0].field == "object_name"
    assert w.dumps_xml(t, creation_date=CREATED)[1] == []


def test_bad_creation_date_is_the_callers_error():
    with pytest.raises(ValueError, match="creation_date"):
        w.dumps_kvn(table(GOOD), creation_date="yesterday")


def test_classification_type_is_the_level_letter_and_the_comment_the_whole_marking(tmp_path):
    """CelesTrak and python-sgp4 take one letter in CLASSIFICATION_TYPE; the whole marking
    rides in the COMMENT, and read back it says what the row said (never less)."""
    marked = [row(classification="SECRET", releasable_to=["GBR", "USA"],
                  marking="SECRET//REL TO USA, GBR//ORCON"),
              row(object_id=25545, classification="UNCLASSIFIED", releasable_to=[],
                  marking="UNCLASSIFIED//NOFORN")]
    text, _ = w.dumps_kvn(table(marked), creation_date=CREATED)
    types = [line.split("=", 1)[1].strip() for line in text.splitlines()
             if line.startswith("CLASSIFICATION_TYPE")]
    assert types == ["S", "U"]
    json_text, _ = w.dumps_json(table(marked))
    for fields in json.loads(json_text):   # python-sgp4 initialises marked records too
        sat = Satrec()
        sgp4.omm.initialize(sat, fields)
        assert sat.classification in ("S", "U")
    xml_text, _ = w.dumps_xml(table(marked), creation_date=CREATED)
    for name, data in (("m.omm", text), ("m.xml", xml_text), ("m.json", json_text)):
        (tmp_path / name).write_text(data)
        back = read_file(tmp_path / name, source="t").elements
        assert back["marking"].to_pylist() == ["SECRET//REL TO USA, GBR//ORCON",
                                               "UNCLASSIFIED//NOFORN"], name
        assert back["classification"].to_pylist() == ["SECRET", "UNCLASSIFIED"], name
        assert back["releasable_to"].to_pylist() == [["GBR", "USA"], []], name


# ------------------------------------------------------------------ real content


def _positions(sats) -> np.ndarray:
    return np.array([sat.sgp4_tsince(0.0)[1] for sat in sats])


@pytest.mark.slow
def test_catalogue_written_as_omm_propagates_like_its_source(schema, tmp_path):
    path = shared(CATALOGUE)
    lines = [ln.rstrip() for ln in path.read_text().splitlines() if ln[:2] in ("1 ", "2 ")]
    source = [Satrec.twoline2rv(a, b) for a, b in zip(lines[::2], lines[1::2])]
    t = read_file(path, source="st").elements
    assert t.num_rows == len(source)
    expected = _positions(source)

    json_text, refused = w.dumps_json(t)
    assert refused == []
    (tmp_path / "c.json").write_text(json_text)
    back = read_file(tmp_path / "c.json", source="t", format="omm-json").elements
    cols = ["object_id", "epoch", *FLOATS.values(), "element_set_no", "rev_at_epoch"]
    assert back.select(cols).equals(t.select(cols))
    sats = []
    for fields in json.loads(json_text):
        sat = Satrec()
        sgp4.omm.initialize(sat, fields)
        sats.append(sat)
    np.testing.assert_allclose(_positions(sats), expected, rtol=0, atol=1e-5)

    xml_text, refused = w.dumps_xml(t, creation_date=CREATED)
    assert refused == []
    (tmp_path / "c.xml").write_text(xml_text)
    sats = []
    for fields in sgp4.omm.parse_xml(str(tmp_path / "c.xml")):
        sat = Satrec()
        sgp4.omm.initialize(sat, fields)
        sats.append(sat)
    np.testing.assert_allclose(_positions(sats), expected, rtol=0, atol=1e-5)

    # every message against the schema, with lxml's validator (libxml2: 3 s for the 42 MB;
    # xmlschema, pure Python, takes minutes); xmlschema on every 40th, ccsds-ndm too
    etree = pytest.importorskip("lxml.etree")
    lxml_schema = etree.XMLSchema(etree.parse(str(shared(XSD))))
    assert lxml_schema.validate(etree.fromstring(xml_text.encode())), lxml_schema.error_log
    subset = t.take(list(range(0, t.num_rows, 40)))
    sub_xml, _ = w.dumps_xml(subset, creation_date=CREATED)
    assert schema.is_valid(sub_xml)
    ndm_io = pytest.importorskip("ccsds_ndm.ndm_io")
    rows = w.table_rows(subset)
    for omm, src in zip(ndm_io.NdmIo().from_string(sub_xml).omm, rows, strict=True):
        _check_ccsds_ndm_omm(omm, src)
    kvn_text, refused = w.dumps_kvn(subset, creation_date=CREATED)
    for message, src in zip(kvn_messages(kvn_text), rows, strict=True):
        _check_ccsds_ndm_omm(ndm_io.NdmIo().from_string(message), src)


def test_angles_outside_the_schemas_range_are_written_as_the_same_angle_inside_it(tmp_path,
                                                                                   schema):
    """The NDM/XML schema takes angles in [-180, 360); an element set with RAAN 360 or mean
    anomaly -190 (valid for SGP4) is written as 0 and 170 (-200 as 160): the same orbit, the
    same SGP4 position at epoch (python-sgp4 on both, to 1 mm)."""
    src = table([row(raan_deg=360.0, mean_anomaly_deg=-190.0, arg_perigee_deg=-200.0)])
    text, refused = w.dumps_xml(src, creation_date=CREATED)
    assert refused == [] and schema.is_valid(text)
    (tmp_path / "a.xml").write_text(text)
    (fields,) = sgp4.omm.parse_xml(str(tmp_path / "a.xml"))
    assert (float(fields["RA_OF_ASC_NODE"]), float(fields["MEAN_ANOMALY"]),
            float(fields["ARG_OF_PERICENTER"])) == (0.0, 170.0, 160.0)
    written, original = Satrec(), Satrec()
    sgp4.omm.initialize(written, fields)
    sgp4.omm.initialize(original, dict(fields, RA_OF_ASC_NODE="360.0", MEAN_ANOMALY="-190.0",
                                       ARG_OF_PERICENTER="-200.0"))
    np.testing.assert_allclose(written.sgp4_tsince(0.0)[1], original.sgp4_tsince(0.0)[1],
                               rtol=0, atol=1e-6)


def test_a_marking_comment_never_drops_what_classification_type_says(tmp_path):
    """An OMM whose COMMENT says UNCLASSIFIED and whose CLASSIFICATION_TYPE says
    UNCLASSIFIED//NOFORN (as ssafuse wrote OMM before the comment carried the marking) is read
    as UNCLASSIFIED//NOFORN: both hold, neither is chosen over the other."""
    text, _ = w.dumps_kvn(table([row()]), creation_date=CREATED)
    old = text.replace("CLASSIFICATION_TYPE = U", "CLASSIFICATION_TYPE = UNCLASSIFIED//NOFORN")
    assert old != text and "COMMENT CLASSIFICATION: UNCLASSIFIED\n" in old
    (tmp_path / "o.omm").write_text(old)
    back = read_file(tmp_path / "o.omm", source="t").elements
    assert back["releasable_to"].to_pylist() == [[]]
    assert mk.parse(back["marking"][0].as_py()) == mk.parse("UNCLASSIFIED//NOFORN")

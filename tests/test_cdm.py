"""CCSDS CDM reading and writing: every real message read, every malformed one refused with a
reason, and what ssafuse writes reads back to the same values."""

from __future__ import annotations

import glob
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHARED_DATA, examples, shared
from ssafuse.formats.ccsds import cdm
from ssafuse.errors import FormatError

#: Orekit's deliberately malformed CDMs (src/test/resources/ccsds/cdm) and what is wrong:
#: (field, KVN line or None).
MALFORMED = {
    "CDM-covariance-wrong-entry-format.txt": ("CRDOT_T", 65),
    "CDM-missing-TCA.txt": ("TCA", None),
    "CDM-missing-object1-covariance-block.xml": ("CR_R", None),
    "CDM-missing-object2-state-vector.txt": ("X", None),
    "CDM-wrong-key-word.txt": ("WRONG_KEYWORD", 6),
    "CDMExample1InvalidTca.txt": ("TCA", 5),          # 2010-04-31
    "CDMExample_issue1319_mandatory_empty_value.xml": ("X", None),   # <X nil="true"/>
}


def _valid_files() -> list[str]:
    files = (glob.glob(str(SHARED_DATA / "ccsds/orekit/cdm/*"))
             + glob.glob(str(SHARED_DATA / "ccsds/ccsds_ndm_egemenimre/**/*cdm*"),
                         recursive=True)
             + glob.glob(str(SHARED_DATA / "pc/nasa_cara/DataFiles/*/*.cdm")))
    return sorted(f for f in files if f.rsplit("/", 1)[-1] not in MALFORMED)


def test_every_valid_cdm_is_read_and_round_trips():
    shared("ccsds/orekit/cdm")
    files = _valid_files()
    assert len(files) == 123   # 32 Orekit + 3 egemenimre + 34 CARA samples + 53 CARA real + 1
    relabelled = 0
    for f in files:
        msg = cdm.read(f)
        assert msg.objects[0]["OBJECT"] == "OBJECT1" and msg.objects[1]["OBJECT"] == "OBJECT2"
        if cdm.version_needed(msg) != msg.header["CCSDS_CDM_VERS"]:
            # read leniently (a 1.0 label on CDM 2.0 keywords), written strictly: refused as
            # it stands, written as 2.0
            with pytest.raises(ValueError, match="not a CDM 1.0 keyword|does not exist in CDM"):
                cdm.dumps_kvn(msg)
            msg.header["CCSDS_CDM_VERS"] = cdm.version_needed(msg)
            relabelled += 1
        same_format = cdm.dumps_xml if f.endswith(".xml") else cdm.dumps_kvn
        other = cdm.dumps_kvn if f.endswith(".xml") else cdm.dumps_xml
        assert cdm.loads(same_format(msg)) == msg, f
        back = cdm.loads(other(msg))
        assert (back.header, back.relative, back.objects) == (
            msg.header, msg.relative, msg.objects), f
        assert back.all_comments() == msg.all_comments() or sorted(
            back.all_comments()) == sorted(msg.all_comments()), f
    assert relabelled > 0   # the strict branch ran on real files


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_cdm_is_refused_with_reason(name):
    field, line = MALFORMED[name]
    with pytest.raises(FormatError) as e:
        cdm.read(shared(f"ccsds/orekit/cdm/{name}"))
    assert e.value.field == field
    assert e.value.line == line
    assert e.value.path.endswith(name)


def test_orekit_cdm_example1_values():
    # Expected values from Orekit's CdmParserTest.testParseCDM1 (CDMExample1.txt).
    m = cdm.read(shared("ccsds/orekit/cdm/CDMExample1.txt"))
    assert m.header["MESSAGE_ID"] == "201113719185"
    assert cdm.format_epoch(m.relative["TCA"]) == "2010-03-13T22:37:52.618000000"
    assert m.relative["MISS_DISTANCE"] == 715.0
    assert m.objects[0]["INTERNATIONAL_DESIGNATOR"] == "1997\u2212030E"   # as written
    assert (m.objects[0]["X"], m.objects[0]["Z_DOT"]) == (2570.097065, -3.526774282)
    assert m.objects[0]["CR_R"] == 41.42 and m.objects[1]["CT_R"] == -4.806e4
    assert m.covariance_rtn(1)[0][1] == -4.806e4


def test_cara_cdm_hbr_comment_and_units_in_brackets():
    m = cdm.read(shared("pc/nasa_cara/DataFiles/PcTestCaseCDMs/"
                        "000025994_conj_000037558_20210324_151047_20210323_154356.cdm"))
    assert m.hbr_m() == 15.0                       # "COMMENT HBR = 15 [m]"
    assert m.relative["MISS_DISTANCE"] == 108.0     # "108 [m]"
    assert m.objects[1]["OBJECT_NAME"] == "IRIDIUM 33 DEB"


def test_cdm2_header_and_repeated_xyz_covariance_keywords():
    m = cdm.read(shared("ccsds/orekit/cdm/CDMExample_issue_940.txt"))
    assert m.header["CCSDS_CDM_VERS"] == "2.0"
    assert m.relative["CONJUNCTION_ID"] == "20220708T10hz SATELLITEA SATELLITEB"
    assert m.header["CLASSIFICATION"].startswith('"Free text')
    assert m.objects[0]["HBR"] == 2.5
    f = cdm.read(shared("ccsds/orekit/cdm/CDM-frame-mapper.txt"))
    assert "CDRG_DRG" in f.objects[0] and "CDRG_DRG@XYZ" in f.objects[0]
    assert f.header["CCSDS_CDM_VERS"] == "1.0" and cdm.version_needed(f) == "2.0"
    f.header["CCSDS_CDM_VERS"] = "2.0"
    assert "CDRG_DRG                            =" in cdm.dumps_kvn(f)


def test_encodings_are_sniffed():
    text = shared("ccsds/orekit/cdm/CDMExample1.txt").read_text(encoding="utf-8")
    ref = cdm.loads(text)
    assert cdm.loads(b"\xef\xbb\xbf" + text.encode("utf-8")) == ref
    assert cdm.loads(text.encode("utf-16")) == ref
    latin = text.replace("\u2212", "-").replace("SATELLITE A", "SATELLIT\u00c9 A")
    assert cdm.loads(latin.encode("latin-1")).objects[0]["OBJECT_NAME"] == "SATELLIT\u00c9 A"
    xml = shared("ccsds/orekit/cdm/CDMExample1.xml").read_bytes()
    assert cdm.loads(xml.decode("utf-8").encode("utf-16")) == cdm.loads(xml)


def test_unit_of_the_wrong_scale_is_refused():
    text = shared("ccsds/orekit/cdm/CDMExample1.txt").read_text(encoding="utf-8")
    bad = text.replace("715                                  [m]", "0.715 [km]")
    with pytest.raises(FormatError) as e:
        cdm.loads(bad)
    assert e.value.field == "MISS_DISTANCE" and e.value.line == 6


def test_writer_is_strict():
    m = cdm.read(shared("ccsds/orekit/cdm/CDMExample1.txt"))
    for mutate, msg in [
        (lambda c: c.relative.pop("TCA"), "TCA"),
        (lambda c: c.relative.__setitem__("MISS_DISTANCE", math.nan), "finite"),
        (lambda c: c.objects[0].__setitem__("OBJECT_NAME", "A\nB"), "one-line"),
        # what XML 1.0 cannot hold and the KVN reader refuses (ESC, DEL, form feed, U+FFFE)
        (lambda c: c.objects[0].__setitem__("OBJECT_NAME", "A\x1bB"), "control characters"),
        (lambda c: c.objects[0].__setitem__("OBJECT_NAME", "A\x7fB"), "control characters"),
        (lambda c: c.objects[1].__setitem__("OBJECT_NAME", "A\x0cB"), "control characters"),
        (lambda c: c.header.__setitem__("ORIGINATOR", "A\ufffeB"), "control characters"),
        (lambda c: c.comments.__setitem__("header", ["a\x1bb"]), "control characters"),
        (lambda c: c.objects[0].__setitem__("NOT_A_KEYWORD", "x"), "not a object"),
        # 508.0-B-1 defines neither; its schema's enumerations name the values it allows
        (lambda c: c.objects[0].__setitem__("OD_EPOCH", c.relative["TCA"]),
         "OD_EPOCH is not a CDM 1.0 keyword"),
        (lambda c: c.header.__setitem__("CLASSIFICATION", "SECRET"), "not a CDM 1.0 keyword"),
        (lambda c: c.objects[0].__setitem__("USER_DEFINED_X", "1"), "not a CDM 1.0 keyword"),
        (lambda c: c.objects[0].__setitem__("OBJECT_TYPE", "SATELLITE"), "not a CDM 1.0 value"),
        (lambda c: c.comments.__setitem__("object1/additionalCovarianceMetadata", ["x"]),
         "does not exist in CDM 1.0"),
        (lambda c: c.header.__setitem__("CCSDS_CDM_VERS", "1.1"), "must be '1.0' or '2.0'"),
    ]:
        c = cdm.loads(cdm.dumps_kvn(m))
        mutate(c)
        for dump in (cdm.dumps_kvn, cdm.dumps_xml):
            with pytest.raises(ValueError, match=msg):
                dump(c)


def test_xml_with_entities_is_refused():
    evil = ('<?xml version="1.0"?><!DOCTYPE cdm [<!ENTITY x "boom">]>'
            '<cdm id="CCSDS_CDM_VERS" version="1.0"><header>&x;</header></cdm>')
    with pytest.raises(FormatError, match="entities|DTD"):
        cdm.loads(evil.encode())


def test_ingest_reads_cdms_into_the_cdms_table_with_markings():
    from ssafuse.records import read_file

    good = read_file(shared("pc/nasa_cara/DataFiles/PcTestCaseCDMs/"
                            "000025994_conj_000037558_20210324_151047_20210323_154356.cdm"),
                     source="cara", marking="UNCLASSIFIED//REL TO USA, GBR")
    assert (good.format, good.accepted, good.rejected) == ("cdm-kvn", 1, 0)
    row = good.elements.to_pylist()[0]
    assert row["object1_id"] == 25994 and row["hbr_m"] == 15.0
    assert row["miss_distance_km"] == pytest.approx(0.108)
    assert row["releasable_to"] == ["GBR", "USA"]
    bad = read_file(shared("ccsds/orekit/cdm/CDM-missing-TCA.txt"), source="orekit")
    assert (bad.accepted, bad.rejected) == (0, 1)
    assert "TCA" in bad.rejects.column("reason")[0].as_py()
    # A CDM-2 CLASSIFICATION that is not a marking is refused, never guessed.
    free = read_file(shared("ccsds/orekit/cdm/CDMExample_issue_940.txt"), source="orekit")
    assert free.rejected == 1 and "marking" in free.rejects.column("reason")[0].as_py()


# --- property tests ------------------------------------------------------------------------

_text = st.text(st.characters(min_codepoint=33, max_codepoint=126,
                              blacklist_characters="<>&[]="), min_size=1, max_size=12)
_float = st.floats(allow_nan=False, allow_infinity=False, width=64)
_time = st.integers(min_value=0, max_value=4_102_444_800 * 10**9)


def _message(draw) -> cdm.Cdm:
    base = cdm.read(shared("ccsds/orekit/cdm/CDMExample1.txt"))
    base.header["MESSAGE_ID"] = draw(_text)
    base.relative["TCA"] = draw(_time)
    base.relative["MISS_DISTANCE"] = draw(_float)
    for o in base.objects:
        for k in ("X", "Y", "Z", "X_DOT") + cdm.COVARIANCE_RTN[:4]:
            o[k] = draw(_float)
        o["OBJECT_NAME"] = draw(_text)
        if draw(st.booleans()):
            o["OBS_USED"] = draw(st.integers(0, 10**6))
    base.comments["relative"] = [draw(_text)]
    return base


@settings(max_examples=examples(60), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_round_trip_property(data):
    m = _message(data.draw)
    assert cdm.loads(cdm.dumps_kvn(m)) == m
    assert cdm.loads(cdm.dumps_xml(m)) == m


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_input_raises_only_format_error(data):
    name = data.draw(st.sampled_from(["CDMExample1.txt", "CDMExample1.xml",
                                      "CDMExample_issue_940.txt"]))
    raw = bytearray(shared(f"ccsds/orekit/cdm/{name}").read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        pos = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "delete":
            del raw[pos:pos + data.draw(st.integers(1, 40))]
        elif op == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            raw = raw[:pos]
    try:
        msg = cdm.loads(bytes(raw))
    except FormatError:
        return
    # whatever was accepted must be writable and read back identically
    assert cdm.loads(cdm.dumps_kvn(msg)).header == msg.header


def test_an_enumerated_value_the_standard_does_not_list_is_refused_naming_it():
    """Found by test_mutated_input_raises_only_format_error (a TAB over the C of CALCULATED):
    the reader took COVARIANCE_METHOD = ALCULATED, which the strict writer then refused.
    508.0-B-1 lists CALCULATED and DEFAULT only."""
    text = shared("ccsds/orekit/cdm/CDMExample1.txt").read_text()
    assert "COVARIANCE_METHOD             = CALCULATED" in text
    bad = text.replace("COVARIANCE_METHOD             = CALCULATED",
                       "COVARIANCE_METHOD                  = \tALCULATED", 1)
    with pytest.raises(FormatError) as e:
        cdm.loads(bad)
    assert e.value.field == "COVARIANCE_METHOD" and "ALCULATED" in str(e.value)
    assert cdm.loads(text).objects[0]["COVARIANCE_METHOD"] == "CALCULATED"

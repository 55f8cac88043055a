"""CCSDS TDM (KVN and XML) into observations: every Orekit and ccsds-ndm test TDM read or
refused for the reason its name states, values as the files state them, time systems, and
mutation properties.

Expected values are the numbers written in the files (CCSDS 503.0-B-1 Annex D examples as
Orekit ships them); the malformed files' keyword and line are those Orekit's own
``TdmParserTest`` asserts (e.g. RECEIVE_FREQ_1 at line 26 of TDM-data-number-format-error.txt,
line 47 of the XML).
"""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import examples, shared
from ssafuse.errors import FormatError
from ssafuse.formats.ccsds import tdm
from ssafuse.formats.registry import detect
from ssafuse.records import read_file

C_KM_S = 299_792.458


def orekit(name: str):
    sub = "xml" if name.endswith(".xml") else "kvn"
    return shared(f"ccsds/orekit/tdm/{sub}/{name}")


def read(path, fmt=None):
    return read_file(path, source="test", format=fmt)


def reasons(result) -> list[str]:
    return result.rejects["reason"].to_pylist()


# -- every file: (name, rows accepted, lines rejected) -------------------------------------------
# Valid files: every data line is a row or a reject whose reason is about its data type or
# metadata, never the file as a whole.
VALID = [
    ("TDMExample2.txt", 0, 7), ("TDMExample2.xml", 0, 7),          # frequencies only
    ("TDMExample4.txt", 0, 20), ("TDMExample4.xml", 0, 20),        # RANGE in RU, frequencies
    ("TDMExample6.txt", 4, 12), ("TDMExample6.xml", 4, 12),        # AZEL rows; relay range
    ("TDMExample8.txt", 6, 9), ("TDMExample8.xml", 6, 9),          # XSYE angles, modulo ranges
    ("TDMExample15.txt", 0, 21), ("TDMExample15.xml", 0, 21),      # clock data only
    ("TDMExampleAllKeywordsSequential.txt", 3, 44),
    ("TDMExampleAllKeywordsSequential.xml", 3, 44),
    ("TDMExampleAllKeywordsSequentialWithRollover.txt", 3, 44),
    ("TDMExampleAllKeywordsSingleDiff.txt", 0, 47),
    ("TDMExampleAllKeywordsSingleDiff.xml", 0, 47),
    ("TDM-Custom-Frame.txt", 3, 44),
    ("TDM-inconsistent-time-systems.txt", 0, 21),                  # valid since Orekit 11
    ("TDM-inconsistent-time-systems.xml", 0, 21),
]
# Malformed files: (name, where the fault is, words of the reason).
MALFORMED = [
    ("TDM-data-number-format-error.txt", 26, "RECEIVE_FREQ_1 at line 26: value "
     "'this-is-not-a-number' is not a number"),
    ("TDM-data-number-format-error.xml", 47, "RECEIVE_FREQ_1 at line 47: value "
     "'this-is-not-a-number' is not a number"),
    ("TDM-data-wrong-keyword.txt", 26, "unexpected data keyword WRONG_KEYWORD at line 26"),
    ("TDM-data-wrong-keyword.xml", 47, "unexpected data keyword WRONG_KEYWORD at line 47"),
    ("TDM-data-inconsistent-line.txt", 25, "RECEIVE_FREQ_1 at line 25 has 3 fields"),
    ("TDM-issue963.txt", 25, "RECEIVE_FREQ_1 at line 25 has 3 fields"),
    ("TDM-data-inconsistent-block.xml", 32, "TRANSMIT_FREQ_2 at line 32: its <observation> "
     "has no <EPOCH>"),
    ("TDM-metadata-wrong-keyword.txt", None, "unexpected metadata keyword WRONG_KEYWORD at "
     "line 16"),
    ("TDM-metadata-wrong-keyword.xml", None, "unexpected metadata keyword WRONG_KEYWORD at "
     "line 23"),
    ("TDM-metadata-number-format-error.txt", None, "metadata TRANSMIT_DELAY_1 at line 17 is "
     "not a number"),
    ("TDM-metadata-number-format-error.xml", None, "metadata TRANSMIT_DELAY_1 at line 24 is "
     "not a number"),
    ("TDM-metadata-timesystem-not-implemented.txt", None, "TIME_SYSTEM 'WRONG-TIME-SYSTEM' at "
     "line 7 is not a CCSDS time system"),
    ("TDM-metadata-timesystem-not-implemented.xml", None, "TIME_SYSTEM 'WRONG-TIME-SYSTEM' at "
     "line 14 is not a CCSDS time system"),
    ("TDM-missing-timesystem.xml", None, "segment 1 metadata has no TIME_SYSTEM"),
    ("TDM-missing-participants.xml", None, "segment 1 metadata has no PARTICIPANT_1"),
]


@pytest.mark.parametrize("name, accepted, rejected", VALID)
def test_valid_orekit_tdms_are_read_whole(name, accepted, rejected):
    r = read(orekit(name))
    assert r.format == ("tdm-xml" if name.endswith(".xml") else "tdm-kvn")
    assert (r.accepted, r.rejected) == (accepted, rejected)
    assert 0 not in r.rejects["source_record"].to_pylist()     # never refused as a whole
    assert r.accepted + r.rejected == r.records_read


@pytest.mark.parametrize("name, line, words", MALFORMED)
def test_malformed_orekit_tdms_are_rejected_naming_keyword_and_line(name, line, words):
    r = read(orekit(name))
    hits = [(rec, why) for rec, why in zip(r.rejects["source_record"].to_pylist(), reasons(r))
            if words in why]
    assert hits, reasons(r)
    if line is not None:
        assert [rec for rec, _ in hits] == [line]
    assert r.accepted == 0


def test_metadata_fault_rejects_every_line_of_its_segment():
    r = read(orekit("TDM-metadata-wrong-keyword.txt"))
    assert r.rejected == 7 and all("WRONG_KEYWORD" in x for x in reasons(r))


def test_issue963_path_with_blanks_is_refused_for_its_segment():
    # the standard: PATH indices "separated by commas, with no inserted white space"
    r = read(orekit("TDM-issue963.txt"))
    assert sum("PATH '2, 1' at line 13" in x for x in reasons(r)) == 6


def test_external_doctype_is_refused_as_a_whole_without_fetching():
    path = orekit("TDM-external-doctype.xml")
    with open(path, "rb") as fh, pytest.raises(FormatError) as e:
        list(tdm.read_xml(fh, str(path)))
    assert "DOCTYPE" in e.value.message
    r = read(path, "tdm-xml")
    assert r.rejects["source_record"].to_pylist() == [0] and "DTD" in reasons(r)[0]


@pytest.mark.parametrize("path, rows, lines", [
    ("ccsds_ndm_egemenimre/kvn/tdm-testcase01b.kvn", 0, 296),
    ("ccsds_ndm_egemenimre/kvn/tdm-testcase01b.xml", 0, 296),
    ("ccsds_ndm_egemenimre/kvn/tdm_opt_data.kvn", 0, 296),
    ("ccsds_ndm_egemenimre/xml/tdm-testcase01a-fordocument.xml", 0, 138),
])
def test_ccsds_ndm_tdms_read_whole(path, rows, lines):
    # frequencies and RU ranges only: every line a reject with its reason, none lost
    r = read(shared("ccsds/" + path))
    assert (r.accepted, r.rejected) == (rows, lines)
    assert 0 not in r.rejects["source_record"].to_pylist()
    assert any("RANGE_UNITS RU" in x for x in reasons(r))


# -- values --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["TDMExample6.txt", "TDMExample6.xml"])
def test_example6_azel_rows_have_the_stated_values(name):
    r = read(orekit(name))
    t = r.elements
    assert t["sensor_id"].to_pylist() == ["NORTH"] * 4          # PATH 1,2,3,2,1 ends at 1
    assert t["az_deg"].to_pylist() == [256.64002393] * 4
    assert t["el_deg"].to_pylist() == [13.38100016] * 4
    assert t["frame"].to_pylist() == ["AZEL"] * 4
    assert [x.isoformat() for x in t["time"].to_pylist()] == [
        f"1998-06-10T00:57:{s}+00:00" for s in ("37", "38", "39", "44")]
    assert t["range_km"].null_count == 4                        # relay path: refused
    assert sum("PATH 1,2,3,2,1" in x for x in reasons(r)) == 4


@pytest.mark.parametrize("name", ["TDMExample8.txt", "TDMExample8.xml"])
def test_example8_modulo_range_is_refused_and_doppler_of_a_round_trip_kept(name):
    # segment 2: WHM1, PATH 1,2,1, RANGE_MODE CONSTANT, RANGE_MODULUS 1e7 s, RANGE_UNITS s,
    # ANGLE_TYPE AZEL. Read as distances its ranges would be 4.0e4 s * c / 2 = 6.0e9 km, from
    # a station seeing the object 1.3 deg above its horizon; the standard (503.0-B-2 table
    # 3-3) makes a value with a non-zero modulus a residue, so no range_km comes out.
    r = read(orekit(name))
    t = r.elements
    whm = t.filter([s == "WHM1" for s in t["sensor_id"].to_pylist()])
    assert whm.num_rows == 3
    assert whm["az_deg"].to_pylist() == [99.53204250, 103.33061750, 243.73365222]
    assert whm["el_deg"].to_pylist() == [1.26724167, 4.77875278, 8.78254167]
    assert whm["range_km"].null_count == 3
    refused = [(rec, why) for rec, why, field in zip(r.rejects["source_record"].to_pylist(),
                                                     reasons(r), r.rejects["field"].to_pylist())
               if field == "tdm:RANGE"]
    # the three RANGE lines, each refused for the modulus as the file writes it
    kvn = name.endswith(".txt")
    assert [rec for rec, _ in refused] == ([55, 60, 65] if kvn else [90, 106, 122])
    stated = "RANGE_MODULUS = 1.000000E+07 s (line 46)" if kvn else \
        "RANGE_MODULUS = 1.0E7 s (line 79)"
    assert len(refused) == 3 and all(stated in why and "ambiguous" in why for _, why in refused)
    assert whm["range_rate_km_s"].to_pylist() == [v / 2 for v in
                                                  (-0.885640091, -1.510223139, 1.504082291)]
    hbstk = t.filter([s == "HBSTK" for s in t["sensor_id"].to_pylist()])
    assert hbstk["az_deg"].null_count == 3                      # XSYE angles refused


def test_kvn_and_xml_give_the_same_rows():
    cols = ["time", "sensor_id", "az_deg", "el_deg", "range_km", "range_rate_km_s"]
    for stem in ("TDMExample6", "TDMExample8", "TDMExampleAllKeywordsSequential"):
        a = read(orekit(stem + ".txt")).elements.select(cols)
        b = read(orekit(stem + ".xml")).elements.select(cols)
        assert a.equals(b), stem


KVN = """CCSDS_TDM_VERS = 2.0
CREATION_DATE = 2024-01-01T00:00:00
ORIGINATOR = TEST
CLASSIFICATION = SECRET//REL TO USA, GBR
META_START
TIME_SYSTEM = {ts}
PARTICIPANT_1 = RADAR-9
PARTICIPANT_2 = 25544
MODE = SEQUENTIAL
PATH = 1,2,1
ANGLE_TYPE = RADEC
REFERENCE_FRAME = EME2000
RANGE_UNITS = km
META_STOP
DATA_START
ANGLE_1 = 2017-06-14T10:53:36.25 10.5
ANGLE_2 = 2017-06-14T10:53:36.25 -20.25
RANGE = 2017-06-14T10:53:36.25 1000.0
MAG = 2017-06-14T10:53:37 4.5
DATA_STOP
"""


@pytest.mark.parametrize("system, offset_s", [("UTC", 0), ("TAI", 37), ("GPS", 18),
                                              ("TT", 69.184)])
def test_time_systems_converted_exactly(system, offset_s):
    from skyfield.api import load

    batch = next(tdm.read_kvn(io.BytesIO(KVN.format(ts=system).encode()), "mem"))
    rows = batch.records
    first = rows[0]
    # reference: Skyfield's own conversion of the same reading to UTC
    ts = load.timescale(builtin=True)
    reading = {"UTC": ts.utc, "TAI": ts.tai, "TT": ts.tt, "GPS": None}[system]
    if reading is not None:
        utc = reading(2017, 6, 14, 10, 53, 36.25).utc
        expected = utc.second + 60 * (utc.minute + 60 * utc.hour)
        got = (first["time"] // 10**6 % 86_400_000) / 1000.0
        assert got == pytest.approx(expected, abs=1e-6)
    base = (1497437616 * 10**9 + 250_000_000)               # 2017-06-14T10:53:36.25 as UTC
    assert first["time"] == base - round(offset_s * 10**9)
    assert (first["ra_deg"], first["dec_deg"], first["frame"]) == (10.5, -20.25, "J2000")
    assert first["range_km"] == 500.0 and first["object_id"] == 25544
    assert first["sensor_id"] == "RADAR-9" and first["marking"] == "SECRET//REL TO USA, GBR"
    assert rows[1]["magnitude"] == 4.5 and rows[1]["ra_deg"] is None


@pytest.mark.parametrize("system", ["TDB", "TCG", "UT1", "SCLK"])
def test_other_time_systems_rejected_with_reason(system):
    batch = next(tdm.read_kvn(io.BytesIO(KVN.format(ts=system).encode()), "mem"))
    assert not batch.records and len(batch.rejects) == 4
    assert all(f"TIME_SYSTEM {system}" in r.reason and "no exact conversion" in r.reason
               for r in batch.rejects)


def test_unapplied_correction_and_other_range_units_are_refused():
    text = KVN.format(ts="UTC").replace("RANGE_UNITS = km", "RANGE_UNITS = km\n"
                                        "CORRECTION_RANGE = 1.5\nCORRECTIONS_APPLIED = NO")
    batch = next(tdm.read_kvn(io.BytesIO(text.encode()), "mem"))
    (why,) = [r.reason for r in batch.rejects]
    assert "CORRECTION_RANGE = 1.5" in why and batch.records[0]["range_km"] is None
    text = KVN.format(ts="UTC").replace("RANGE_UNITS = km", "RANGE_UNITS = RU")
    batch = next(tdm.read_kvn(io.BytesIO(text.encode()), "mem"))
    assert "RANGE_UNITS RU" in batch.rejects[0].reason


@pytest.mark.parametrize("modulus, range_km", [(None, 500.0), ("0.0", 500.0), ("0", 500.0),
                                               ("32768.0", None), ("1.0e-3", None)])
def test_range_modulus_other_than_zero_is_never_read_as_a_distance(modulus, range_km):
    # 503.0-B-2 table 3-3: "the actual (unambiguous) range is an integer k times the
    # modulus, plus the observable value"; 0 (the default) marks an unambiguous range
    extra = "" if modulus is None else f"\nRANGE_MODULUS = {modulus}"
    text = KVN.format(ts="UTC").replace("RANGE_UNITS = km", "RANGE_UNITS = km" + extra)
    batch = next(tdm.read_kvn(io.BytesIO(text.encode()), "mem"))
    assert batch.records[0]["range_km"] == range_km
    assert batch.records[0]["ra_deg"] == 10.5                  # the angles of the row kept
    why = [r.reason for r in batch.rejects]
    assert why == ([] if range_km else
                   [f"RANGE: RANGE_MODULUS = {modulus} km (line 14) makes each value "
                    "ambiguous, the true range being the value plus an unknown whole number "
                    "of moduli (CCSDS 503.0-B-2 table 3-3; 0 marks an unambiguous range), so "
                    "it is not read as a distance (line 19)"])


def test_range_in_seconds_is_light_time_times_c_halved_for_a_round_trip():
    # TDMExample8's light-time ranges carry a modulus; this one (PATH 1,2,1) does not.
    # 0.02 s of round-trip light time: 0.02 * 299792.458 / 2 = 2997.92458 km one way
    text = (KVN.format(ts="UTC").replace("RANGE_UNITS = km", "RANGE_UNITS = s")
            .replace("36.25 1000.0", "36.25 0.02"))
    batch = next(tdm.read_kvn(io.BytesIO(text.encode()), "mem"))
    assert not batch.rejects
    assert batch.records[0]["range_km"] == pytest.approx(2997.92458, abs=1e-9)


@pytest.mark.parametrize("angle, ra_deg", [("-1e-20", 0.0), ("-0.5", 359.5), ("-180.0", 180.0)])
def test_an_angle_a_hair_below_zero_is_read_in_0_to_360(angle, ra_deg):
    # 503.0-B-2 allows ANGLE_1 in [-180, 360); in floating point -1e-20 % 360 is 360.0, which
    # the plausibility bound (RA in [0, 360)) would refuse, losing the whole row
    text = KVN.format(ts="UTC").replace("36.25 10.5", f"36.25 {angle}")
    batch = next(tdm.read_kvn(io.BytesIO(text.encode()), "mem"))
    assert [r.reason for r in batch.rejects] == []
    rec = batch.records[0]            # the angles and range (1000 km round trip) at 10:53:36.25
    assert rec["ra_deg"] == ra_deg and rec["range_km"] == 500.0


def test_detect_tells_tdm_from_other_ccsds_messages():
    assert detect(orekit("TDMExample2.txt").read_bytes()).name == "tdm-kvn"
    assert detect(orekit("TDMExample2.xml").read_bytes()).name == "tdm-xml"


# -- properties ------------------------------------------------------------------------------------

def _data_lines(text: str) -> list[int]:
    lines = text.split("\n")
    inside, out = False, []
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if s == "DATA_START":
            inside = True
        elif s == "DATA_STOP":
            inside = False
        elif inside and s and not s.startswith("COMMENT"):
            out.append(i)
    return out


def _rows_by_time(batch_list):
    out = {}
    for b in batch_list:
        for r in b.records:
            out[(r["sensor_id"], r["time"])] = r
    return out


def _read_all(data: bytes, reader):
    return list(reader(io.BytesIO(data), "mem"))


@settings(max_examples=examples(120), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, 10**6),
       new=st.text(alphabet=st.sampled_from(list("ANGLE_1RS= T:-.0123456789eXZ\t'")),
                   max_size=40),
       part=st.sampled_from(["keyword", "time", "value", "line"]))
def test_mutated_data_line_never_breaks_the_reader_and_keeps_neighbours(which, new, part):
    text = orekit("TDMExample8.txt").read_text(encoding="utf-8")
    good = _rows_by_time(_read_all(text.encode(), tdm.read_kvn))
    lines = text.split("\n")
    data = _data_lines(text)
    n = data[which % len(data)]
    m = re.match(r"(\s*)(\S+)(\s*=\s*)(\S+)(\s+)(\S+)(.*)", lines[n - 1])
    pieces = list(m.groups())
    index = {"keyword": 1, "time": 3, "value": 5}.get(part)
    if index is None:
        lines[n - 1] = new
    else:
        pieces[index] = new
        lines[n - 1] = "".join(pieces)
    mutated = "\n".join(lines)
    try:
        batches = _read_all(mutated.encode(), tdm.read_kvn)
    except FormatError:
        return                                    # a structural line (e.g. DATA_STOP) made
    records = sum((b.records for b in batches), [])
    rejects = sum((b.rejects for b in batches), [])
    # accepted + rejected == read: every data line is in exactly one row or one reject
    used = sum(r["_raw"].count("\n") + 1 for r in records)
    assert used + len(rejects) == len(_data_lines(mutated))
    # good neighbours kept: rows whose time differs from the mutated line's are unchanged
    hit_time = re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", text.split("\n")[n - 1])[0]
    got = _rows_by_time(batches)
    for key, row in good.items():
        if str(hit_time) in row["_raw"]:
            continue
        assert got.get(key) is not None and {k: v for k, v in got[key].items()
                                             if k != "_raw"} == \
            {k: v for k, v in row.items() if k != "_raw"}


@settings(deadline=None)
@given(pos=st.integers(0, 10**6), insert=st.binary(max_size=8), drop=st.integers(0, 6),
       xml=st.booleans())
def test_corrupted_bytes_raise_only_format_error(pos, insert, drop, xml):
    name = "TDMExample8.xml" if xml else "TDMExample8.txt"
    data = orekit(name).read_bytes()
    pos %= len(data)
    data = data[:pos] + insert + data[pos + drop:]
    reader = tdm.read_xml if xml else tdm.read_kvn
    try:
        batches = _read_all(data, reader)
    except FormatError:
        return
    for b in batches:
        for r in b.records:
            assert r["sensor_id"] and isinstance(r["time"], int)

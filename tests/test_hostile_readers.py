"""Hostile feeds against the readers (issue 17): byte quirks of real files read, not refused;
encodings and absurd nesting refused with errors that say what is wrong; control characters
in text fields never crash a reader.

Reference values: each quirky file is compared with the same real file without the quirk,
read by the same reader (the quirk must change nothing), and one field of each is checked
against the line's own text by hand, from the satobs.org IOD column layout (site columns
17-20, time columns 24-40) and the TLE layout (catalogue number columns 3-7).
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
import unicodedata
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import examples, shared
from ssafuse import markings
from ssafuse.errors import FormatError, MarkingError, UnknownFormatError
from ssafuse.formats import base, registry
from ssafuse.formats.optical import parse_iod_line
from ssafuse.records import read_file

NBSP = "\u00a0"
IOD_FILE = "observations/trusat_backend/snap_test_database_iod_16694268.txt"
TLE_FILE = "catalogues/celestrak_mirror_20260530/stations.tle"
UK_FILE = "observations/trusat_orbit/UK_data_compliant.txt"
RDE_FILE = "observations/trusat_orbit/RDE_data_compliant.txt"
# Provenance differs between two files by construction (an observation's id is made from
# its file's hash); everything else must not.
PROVENANCE = {"source_uri", "source_sha256", "ingested_at", "obs_id"}


def _rows(result, drop=("_raw", "raw")) -> list[dict]:
    table = result.elements
    keep = [c for c in table.column_names if c not in PROVENANCE and c not in drop]
    return table.select(keep).to_pylist()


def _read(tmp_path: Path, name: str, data: bytes, **kw):
    path = tmp_path / name
    path.write_bytes(data)
    return read_file(path, source="test", **kw)


def _same_read(tmp_path, reference: bytes, quirky: bytes, fmt: str):
    """Read both files with ``fmt``; the quirky one must give the reference's records."""
    want = _read(tmp_path, "reference.txt", reference, format=fmt)
    got = _read(tmp_path, "quirky.txt", quirky, format=fmt)
    assert want.accepted > 0
    assert (got.accepted, got.rejected) == (want.accepted, want.rejected)
    assert _rows(got) == _rows(want)
    return got


# ------------------------------------------------------------------ space separators

def test_space_separators_are_exactly_unicode_category_zs():
    """The list the readers blank out is every Zs character but the ASCII space, as the
    running Python's unicodedata has them (not a list we typed and hope is whole)."""
    zs = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Zs"}
    assert set(base.SPACE_SEPARATORS) == zs - {" "}


def _real_iod_line() -> str:
    text = shared(IOD_FILE).read_text("ascii")
    return next(ln for ln in text.splitlines() if ln[:5].isdigit())


@pytest.mark.parametrize("space", [NBSP, "\u2007", "\u3000", "\u202f"])
def test_iod_line_with_unicode_spaces_reads_as_the_original(tmp_path, space):
    line = _real_iod_line()
    quirky = line.replace(" ", space)
    assert quirky != line and len(quirky) == len(line)
    got = _same_read(tmp_path, (line + "\n").encode(), (quirky + "\n").encode(), "iod")
    row = _rows(got)[0]
    # by hand from the line's text: site in columns 17-20, time YYYYMMDDHHMMSSsss in 24-40
    assert row["sensor_id"] == line[16:20]
    t = line[23:40]
    want = dt.datetime(int(t[:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]), int(t[10:12]),
                       int(t[12:14]), int(t[14:17]) * 1000, tzinfo=dt.timezone.utc)
    assert row["time"] == want


def test_station_8336_designator_with_no_break_spaces_is_read_by_the_strict_reader(tmp_path):
    """Station 8336 writes ``014A\\u00a0 \\u00a0`` (columns 10-16): the strict ``iod``
    reader, not only ``iod-lenient``, reads it as ``014A`` with blank columns, and the
    registry sniffs the file as IOD."""
    line = _real_iod_line()
    quirky = line[:13] + NBSP + " " + NBSP + line[16:]   # columns 14-16, after the piece
    assert line[13:16].strip() == ""                       # blanks in the original too
    path = tmp_path / "8336.iod"
    path.write_bytes((quirky + "\n").encode())
    assert registry.detect(path.read_bytes()).name == "iod"
    got = read_file(path, source="test")
    assert (got.format, got.accepted, got.rejected) == ("iod", 1, 0)
    assert parse_iod_line(quirky)["intl_designator"] == parse_iod_line(line)["intl_designator"]


def test_tle_with_no_break_spaces_reads_as_the_original(tmp_path):
    text = shared(TLE_FILE).read_text("ascii")
    got = _same_read(tmp_path, text.encode(), text.replace(" ", NBSP).encode("utf-8"), "tle")
    # by hand: the first element set's catalogue number is line 1, columns 3-7
    line1 = next(ln for ln in text.splitlines() if ln.startswith("1 "))
    assert _rows(got)[0]["object_id"] == int(line1[2:7])


@pytest.mark.parametrize("relative, fmt", [(UK_FILE, "uk-obs"), (RDE_FILE, "rde")])
def test_uk_and_rde_with_no_break_spaces_read_as_the_original(tmp_path, relative, fmt):
    text = shared(relative).read_text("ascii")
    lines = [ln if ln.startswith("#") else ln.replace(" ", NBSP) for ln in text.split("\n")]
    assert _same_read(tmp_path, text.encode(), "\n".join(lines).encode("utf-8"), fmt).accepted


# ------------------------------------------------------------------ line ends, BOM, Latin-1

QUIRKS = {
    "crlf": lambda t: t.replace("\n", "\r\n").encode(),
    "lone cr": lambda t: t.replace("\n", "\r").encode(),
    "bom": lambda t: codecs.BOM_UTF8 + t.encode(),
    "trailing whitespace": lambda t: t.replace("\n", " \t \n").encode(),
    "bom crlf nbsp": lambda t: codecs.BOM_UTF8 + t.replace("\n", "\r\n").replace(
        " ", NBSP).encode(),
}


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
@pytest.mark.parametrize("relative, fmt", [(TLE_FILE, "tle"), (IOD_FILE, "iod"),
                                           (UK_FILE, "uk-obs"), (RDE_FILE, "rde")])
def test_line_end_and_bom_quirks_change_nothing(tmp_path, relative, fmt, quirk):
    text = shared(relative).read_text("ascii")
    if fmt == "uk-obs" and "nbsp" in quirk:
        text = "\n".join(ln for ln in text.split("\n") if not ln.startswith("#"))
    assert _same_read(tmp_path, text.encode(), QUIRKS[quirk](text), fmt).accepted


def test_tle_with_lone_cr_line_ends_longer_than_a_block_is_read_whole(tmp_path):
    """A lone-CR file bigger than the TLE reader's block (1 MiB): lines are cut at each CR,
    a CR LF split across two blocks is one line end (not an extra line)."""
    text = shared("catalogues/spacetrack_3le_2022-01-22_ODAP.txt").read_text("latin-1")
    text = "\n".join(text.split("\n")[:30_000]) + "\n"
    for end in ("\r", "\r\n"):
        got = _same_read(tmp_path, text.encode("latin-1"),
                         text.replace("\n", end).encode("latin-1"), "tle")
        assert got.accepted == 10_000   # 30,000 lines of 3LE


def test_latin1_name_line_and_utf8_no_break_space_in_one_file(tmp_path):
    """A file that mixes encodings line by line (a Latin-1 name line, a UTF-8 no-break space
    elsewhere) is decoded line by line: the name reads as Latin-1, the space as a blank."""
    text = shared(TLE_FILE).read_text("ascii")
    lines = text.split("\n")
    first_name = next(i for i, ln in enumerate(lines) if ln and ln[:2] not in ("1 ", "2 "))
    quirky = list(lines)
    quirky[first_name] = "SAT\u00c9LITE"
    data = "\n".join(quirky).encode("utf-8").replace("SAT\u00c9LITE".encode("utf-8"),
                                                     "SAT\u00c9LITE".encode("latin-1"))
    line1 = next(i for i, ln in enumerate(lines) if ln.startswith("1 ") and i > first_name + 5)
    data = data.replace(lines[line1].encode(), lines[line1].replace(" ", NBSP).encode())
    got = _read(tmp_path, "mixed.tle", data, format="tle")
    want = _read(tmp_path, "plain.tle", text.encode(), format="tle")
    assert (got.accepted, got.rejected) == (want.accepted, 0)
    assert _rows(got)[0]["object_name"] == "SAT\u00c9LITE"
    assert _rows(got)[1:] == _rows(want)[1:]


def test_iod_file_with_a_latin1_comment_keeps_its_no_break_spaces_as_blanks(tmp_path):
    line = _real_iod_line()
    data = "# Beobachter M\u00fcller\n".encode("latin-1") + (line.replace(" ", NBSP) + "\n"
                                                           ).encode("utf-8")
    got = _read(tmp_path, "mixed.iod", data, format="iod")
    want = _read(tmp_path, "plain.iod", (line + "\n").encode(), format="iod")
    assert (got.accepted, got.rejected) == (1, 0)
    assert [{**r, "source_record": 0} for r in _rows(got)] == \
        [{**r, "source_record": 0} for r in _rows(want)]


# ------------------------------------------------------------------ UTF-16 / UTF-32

@pytest.mark.parametrize("relative, fmt", [
    (TLE_FILE, "tle"), (IOD_FILE, "iod"),
    ("ccsds/ccsds_ndm_egemenimre/kvn/omm1_ct.kvn", "omm-kvn"),
    ("ccsds/ccsds_ndm_egemenimre/json/omm1_ct.json", "omm-json"),
])
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be-bom"])
def test_utf16_file_with_bom_reads_as_its_utf8_file(tmp_path, relative, fmt, encoding):
    text = shared(relative).read_text("utf-8")
    data = (codecs.BOM_UTF16_BE + text.encode("utf-16-be") if encoding == "utf-16-be-bom"
            else text.encode("utf-16"))
    want = _read(tmp_path, "utf8" + Path(relative).suffix, text.encode())
    got = _read(tmp_path, "utf16" + Path(relative).suffix, data)   # sniffed
    assert (got.format, want.format) == (fmt, fmt)
    assert (got.accepted, got.rejected) == (want.accepted, want.rejected)
    assert want.accepted > 0
    assert _rows(got, drop=()) == _rows(want, drop=())
    forced = _read(tmp_path, "forced" + Path(relative).suffix, data, format=fmt)
    assert _rows(forced, drop=()) == _rows(want, drop=())


def test_utf16_xml_with_its_encoding_declared_reads_as_its_utf8_file(tmp_path):
    text = shared("ccsds/ccsds_ndm_egemenimre/json/omm1_ct.xml").read_text("utf-8")
    declared = text.replace('encoding="UTF-8"', 'encoding="UTF-16"')
    if declared == text:
        declared = '<?xml version="1.0" encoding="UTF-16"?>\n' + text.split("?>", 1)[-1]
    want = _read(tmp_path, "utf8.xml", text.encode())
    got = _read(tmp_path, "utf16.xml", declared.encode("utf-16"))
    assert got.format == want.format == "omm-xml"
    assert (got.accepted, got.rejected) == (want.accepted, 0)
    assert _rows(got) == _rows(want)


@pytest.mark.parametrize("encoding, iconv", [("utf-16-le", "UTF-16LE"),
                                             ("utf-16-be", "UTF-16BE")])
def test_utf16_without_bom_is_refused_saying_the_encoding(tmp_path, encoding, iconv):
    text = shared(TLE_FILE).read_text("ascii")
    path = tmp_path / "stations.tle"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(UnknownFormatError) as e:
        read_file(path, source="test")
    message = str(e.value)
    assert "file is UTF-16 encoded text" in message
    assert "ssafuse reads UTF-8/ASCII" in message
    assert f"iconv -f {iconv} -t UTF-8" in message


def test_utf32_is_refused_saying_the_encoding(tmp_path):
    path = tmp_path / "stations.tle"
    path.write_bytes(shared(TLE_FILE).read_text("ascii").encode("utf-32"))
    with pytest.raises(UnknownFormatError, match="UTF-32 encoded text"):
        read_file(path, source="test")


# ------------------------------------------------------------------ JSON nesting

DEEP = 100_000
DEEP_DOCS = {"arrays": "[" * DEEP + "]" * DEEP,
             "objects": '{"a":' * DEEP + "1" + "}" * DEEP}


@pytest.mark.parametrize("kind", sorted(DEEP_DOCS))
def test_deep_json_is_refused_by_sniffing_saying_why(tmp_path, kind):
    path = tmp_path / "deep.json"
    path.write_text(DEEP_DOCS[kind])
    with pytest.raises(UnknownFormatError, match="JSON nested deeper than 100 levels"):
        read_file(path, source="test")


@pytest.mark.parametrize("fmt", ["omm-json", "udl-elset"])
@pytest.mark.parametrize("kind", sorted(DEEP_DOCS))
def test_deep_json_is_a_clear_file_reject_for_every_json_reader(tmp_path, kind, fmt):
    got = _read(tmp_path, "deep.json", DEEP_DOCS[kind].encode(), format=fmt)
    assert (got.accepted, got.rejected) == (0, 1)
    reason = got.rejects.column("reason").to_pylist()[0]
    assert reason.startswith(f"JSON nested deeper than {base.JSON_MAX_DEPTH} levels")


def test_real_gp_json_with_one_deep_field_is_sniffed_then_refused_clearly(tmp_path):
    records = json.loads(shared("catalogues/celestrak_gp_json_20250524/stations.json")
                         .read_text())
    text = json.dumps(records)
    deep = text[:-1] + ', {"NORAD_CAT_ID": 1, "X": ' + DEEP_DOCS["arrays"] + "}]"
    got = _read(tmp_path, "gp.json", deep.encode())
    assert got.format == "omm-json"
    # the deepest point: the record list, the record object, then DEEP arrays
    assert got.rejects.column("reason").to_pylist() == [
        f"JSON nested deeper than {base.JSON_MAX_DEPTH} levels ({DEEP + 2} levels); "
        "no feed nests that deep"]


def test_json_at_the_depth_limit_is_read_as_json_reads_it():
    limit = base.JSON_MAX_DEPTH
    text = "[" * limit + '"[[[{{"' + "]" * limit   # brackets inside a string do not count
    assert base.load_json(text) == json.loads(text)
    with pytest.raises(FormatError, match=f"nested deeper than {limit} levels"):
        base.load_json("[" + text + "]")


# ------------------------------------------------------------------ markings

@pytest.mark.parametrize("text, says", [
    ("SECRET//REL TO", "needs at least one country code, e.g. 'SECRET//REL TO USA, GBR'"),
    ("SECRET//RELEASABLE TO", "needs at least one country code"),
    ("SECRET//REL TO ,", "needs at least one country code"),
    ("SECRET//REL TO USA,,GBR", "empty entry between two commas"),
    ("SECRET//REL TO USA,", "empty entry after the last code"),
    ("SECRET//REL TO , USA", "empty entry before the first code"),
    ("SECRET//", "ends with '//' and nothing after it"),
    ("SECRET//NOFORN//", "ends with '//' and nothing after it"),
    ("SECRET////NOFORN", "empty segment between two '//'"),
    ("//REL TO USA", "starts with '//': the classification comes first"),
    ("//", "starts with '//'"),
    ("SECRET\x00//REL TO USA", "control character U+0000 (NUL) at character 7"),
    ("SECRET//REL TO USA\x1b", "control character U+001B (ESC)"),
    ("SECRET//NO\u202eFORN", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("SECRET\u2028//NOFORN", "U+2028 (LINE SEPARATOR)"),
    ("SECRET\n//NOFORN", "U+000A (LINE FEED)"),
    ("S" * 10_000, "10000 characters long, more than the 1000"),
    ("SECRET//REL TO US", "3 or 4 capital letters"),
])
def test_degenerate_markings_say_what_is_wrong(text, says):
    with pytest.raises(MarkingError) as e:
        markings.parse(text)
    assert says in str(e.value)
    assert "unrecognised control 'REL TO'" not in str(e.value)
    assert len(str(e.value)) < 2000   # a 10,000-character marking is not echoed whole


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=60) | st.lists(st.sampled_from(
    ["SECRET", "//", "/", "REL TO", " ", ",", "USA", "GBR", "NOFORN", "\x00", "\u202e",
     "NATO", "UK EYES ONLY", "OFFICIAL", ":", "-", "\n"]), max_size=12).map("".join))
def test_marking_parse_raises_only_marking_error(text):
    try:
        markings.parse(text)
    except MarkingError:
        pass


# ------------------------------------------------------------------ control characters

SPECIALS = ["\x00", "\x1b", "\r", "\x7f", "\u2028", "\u2029", "\u202e", "\n", NBSP, "\ufeff",
            "\x85", "\x0c", "\t", '"', "<", "&", "]]>", "\\", "=", "//"]
NASTY = st.lists(st.sampled_from(SPECIALS) | st.text(
    st.characters(blacklist_categories=("Cs",)), max_size=4), max_size=6).map("".join)


def _iod_with(text: str, line: str) -> str:
    return line[:6] + text + line[15:]            # designator columns 7-15


def _kvn_with(text: str, data: str, key: str) -> str:
    return data.replace(key, key.split("=")[0] + "= " + text, 1) + "COMMENT " + text + "\n"


MUTATORS = {
    # format -> (reference file, how random text goes into its text fields)
    "tle": (TLE_FILE, lambda d, t: t + d.split("\n", 1)[1]
            .replace(" 98067A   ", (" " + t + "         ")[:10], 1)),
    "iod": (IOD_FILE, lambda d, t: "\n".join(_iod_with(t, ln) if ln[:5].isdigit() else ln
                                             for ln in d.split("\n")[:20])),
    "uk-obs": (UK_FILE, lambda d, t: "\n".join(t + ln[7:] if ln[:1].isdigit() else ln
                                               for ln in d.split("\n"))),
    "rde": (RDE_FILE, lambda d, t: "\n".join(
        t + ln[7:] if len(ln) > 30 and ln[:1].isdigit() else ln for ln in d.split("\n"))),
    "omm-kvn": ("ccsds/ccsds_ndm_egemenimre/kvn/omm1_ct.kvn",
                lambda d, t: _kvn_with(t, d, "OBJECT_NAME    = NUSAT-8 (MARIE)")),
    "omm-xml": ("ccsds/ccsds_ndm_egemenimre/json/omm1_ct.xml",
                lambda d, t: d.replace("NUSAT-8 (MARIE)", xml_escape(t)).replace(
                    "<OBJECT_ID>", "<OBJECT_ID>" + xml_escape(t), 1)),
    "omm-xml unescaped": ("ccsds/ccsds_ndm_egemenimre/json/omm1_ct.xml",
                          lambda d, t: d.replace("NUSAT-8 (MARIE)", t)),
    "cdm-xml": ("ccsds/orekit/cdm/CDMExample1.xml",
                lambda d, t: d.replace("Object1 Metadata", xml_escape(t))),
    "tdm-xml": ("ccsds/orekit/tdm/xml/TDMExample2.xml",
                lambda d, t: d.replace("This is a meta-data comment", xml_escape(t))),
    "omm-json": ("catalogues/celestrak_gp_json_20250524/stations.json",
                 lambda d, t: json.dumps([{**r, "OBJECT_NAME": t + r["OBJECT_NAME"],
                                           "OBJECT_ID": t} for r in json.loads(d)[:5]])),
    "cdm-kvn": ("ccsds/orekit/cdm/CDMExample1.txt",
                lambda d, t: _kvn_with(t, d, "OBJECT_NAME                   = SATELLITE A")),
    "tdm-kvn": ("ccsds/orekit/tdm/kvn/TDMExample2.txt",
                lambda d, t: d.replace("COMMENT This is a data comment", "COMMENT " + t)
                .replace("PARTICIPANT_1 = DSS-25", "PARTICIPANT_1 = " + t)),
}


@pytest.mark.parametrize("fmt", sorted(MUTATORS))
@settings(max_examples=examples(60), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(text=NASTY)
def test_control_characters_in_text_fields_never_crash_a_reader(tmp_path, fmt, text):
    """Random text, control characters included, in each format's text fields (names,
    designators, comments): ``read_file`` returns (only a FormatError may stop a file, and it
    becomes a reject) and every record read is accepted or rejected; and no accepted record
    holds a control character in any text column, whatever the reader let through (the
    ingest layer's one check, ``ssafuse.records``, rejects such records)."""
    relative, mutate = MUTATORS[fmt]
    data = shared(relative).read_text("utf-8")
    result = _read(tmp_path, "feed", mutate(data, text).encode("utf-8"),
                   format=fmt.split()[0])
    assert result.records_read == result.accepted + result.rejected
    # text that starts a line with '#' makes a line-based record a comment; otherwise
    # every file still holds records
    assert result.records_read > 0 or text.lstrip().startswith("#")
    table = result.elements
    for field in table.schema:
        if pa.types.is_string(field.type):
            bad = [v for v in table[field.name].to_pylist() if v and CONTROL.search(v)]
            assert not bad, (field.name, bad)


#: What no stored text may hold, written here from the issue's list (C0, DEL, C1, U+2028/9,
#: the bidirectional embeddings, overrides and isolates), not imported from ssafuse
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

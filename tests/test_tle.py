"""TLE adapter: real catalogues, python-sgp4 as the reference parser, malformed input.

Where expected values come from:

* record counts of the shared catalogues: ``../shared/data/SOURCES.md`` (counted when the files
  were collected, independently of this adapter);
* field values: python-sgp4's own TLE parser ``Satrec.twoline2rv`` run on the same two lines,
  and CelesTrak's OMM JSON twins of the SOCRATES element sets;
* column templates: ``sgp4.io.LINE1`` / ``sgp4.io.LINE2``;
* Vallado's ``SGP4-VER.TLE`` (shipped in the sgp4 wheel) and the checksum rule of the TLE
  format (sum of digits, '-' counts 1, mod 10), recomputed here by a separate function.

Tests that need ``../shared/data`` skip when it is absent (a fresh clone has none).
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import io
import json
import math
import struct
from pathlib import Path

import pytest
import sgp4.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sgp4.api import Satrec

from conftest import examples
from ssafuse.errors import FormatError
from ssafuse.formats import tle
from ssafuse.formats.base import blanks, blanks_bytes, decode, unify_line_ends
from ssafuse.schema import ELEMENT_COLUMNS

# ---------------------------------------------------------------- helpers (conftest material)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared(*parts: str) -> Path:
    """A path under ``../shared/data``; skips the test when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared/data is only present in the project's "
                    "working tree and CI, not in a fresh clone")
    return path


def read_bytes(data: bytes):
    """All records, all rejects and the batch sizes of reading ``data``."""
    batches = list(tle.read(io.BytesIO(data), "<test>"))
    records = [r for b in batches for r in b.all_records()]
    rejects = [r for b in batches for r in b.rejects]
    return records, rejects, [len(b) for b in batches]


def read_path(path: Path):
    with open(path, "rb") as fh:
        batches = list(tle.read(fh, str(path)))
    return [r for b in batches for r in b.all_records()], [r for b in batches for r in b.rejects]


def tle_checksum(line: str) -> int:
    """The TLE checksum of columns 1-68, written out independently of the adapter."""
    total = 0
    for ch in line[:68]:
        if ch.isdigit():
            total += int(ch)
        elif ch == "-":
            total += 1
    return total % 10


def with_checksum(line: str) -> str:
    """``line`` (69 columns) with column 69 set to its correct checksum."""
    return line[:68] + str(tle_checksum(line))


def lines_of(text: str) -> bytes:
    return ("\r\n".join(text.strip("\n").split("\n")) + "\r\n").encode()


def bits(x) -> object:
    """A float's exact bit pattern (so 0.0 and -0.0 differ), anything else as it is."""
    return struct.pack("<d", x) if isinstance(x, float) else x


def close(a: float, b: float, rel: float = 1e-15) -> bool:
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


def same_values(a: dict, b: dict, ignore=("source_record",)) -> bool:
    keys = set(a) | set(b)
    return all(bits(a.get(k)) == bits(b.get(k)) for k in keys if k not in ignore)


# Real element sets copied from ../shared/data/catalogues/
# celestrak_active_tle_2025-04-23_carbsat.txt (carbform/carbsat, data/active_tle.dat,
# Unlicense), its lines 1-3, 109-111, 184-186 and 196-198.
CALSPHERE_1 = (
    "CALSPHERE 1             ",
    "1 00900U 64063C   25113.81501596  .00001141  00000+0  11635-2 0  9999",
    "2 00900  90.2151  62.1547 0027273 117.3047 275.2974 13.75997420 13746",
)
RADIO_ROSTO = (
    "RADIO ROSTO (RS-15)     ",
    "1 23439U 94085A   25113.88212605 -.00000043  00000+0 -27053-4 0  9990",
    "2 23439  64.8156 261.3215 0145746  83.5074 278.2420 11.27581593248626",
)
ISS = (
    "ISS (ZARYA)             ",
    "1 25544U 98067A   25113.77221326  .00022023  00000+0  39391-3 0  9998",
    "2 25544  51.6359 216.5553 0005513  67.1671 292.9899 15.49908296506721",
)
CXO = (
    "CXO                     ",
    "1 25867U 99040B   25116.54559048  .00000821  00000+0  00000+0 0  9994",
    "2 25867  48.3596 132.2511 8505568 308.5720   0.1181  0.37809910 15758",
)
REAL = (CALSPHERE_1, RADIO_ROSTO, ISS, CXO)

# From ../shared/data/SOURCES.md, "catalogues/" table.
CATALOGUE_COUNTS = {
    "spacetrack_3le_2023-10-09_cdm_on_chain.txt": 26_140,
    "spacetrack_3le_2022-01-22_ODAP.txt": 23_939,
    "spacetrack_3le_LEO_2026-06-10_Ever-m1ss.txt": 16_032,
    "celestrak_active_tle_2025-04-23_carbsat.txt": 11_325,
    "celestrak_mirror_20260530/starlink.tle": 10_395,
    "celestrak_mirror_20260530/oneweb.tle": 651,
    "celestrak_mirror_20260530/geo.tle": 574,
    "celestrak_mirror_20260530/resource.tle": 167,
    "celestrak_mirror_20260530/weather.tle": 74,
    "celestrak_mirror_20260530/science.tle": 49,
    "celestrak_mirror_20260530/stations.tle": 25,
    "celestrak_mirror_20260530/military.tle": 23,
}

# ------------------------------------------------------------------------------ layout


def test_templates_are_python_sgp4s():
    # sgp4/io.py: LINE1, LINE2 -- the templates python-sgp4 prints in its TLE errors
    assert tle.LINE1_TEMPLATE == sgp4.io.LINE1
    assert tle.LINE2_TEMPLATE == sgp4.io.LINE2
    # the 2026 CelesTrak line: one more eccentricity digit, the rest one column right
    assert tle.LINE2_WIDE_ECC_TEMPLATE == sgp4.io.LINE2[:33] + "N" + sgp4.io.LINE2[33:]


def test_format_registration():
    assert tle.FORMAT.name == "tle"
    assert tle.FORMAT.table == "elements"
    assert tle.FORMAT.extensions == (".tle", ".txt", ".3le", ".2le")
    assert tle.FORMAT.read is tle.read and tle.FORMAT.identify is tle.identify


def test_record_has_canonical_columns_and_provenance():
    (rec,), rejects, _ = read_bytes(lines_of("\n".join(ISS)))
    assert rejects == []
    assert set(ELEMENT_COLUMNS) <= set(rec)
    assert set(rec) - set(ELEMENT_COLUMNS) == {"source_record", "marking", "_raw"}
    # values as printed on the lines above (fixed-column TLE fields)
    assert rec["object_id"] == 25544
    assert rec["intl_designator"] == "1998-067A"
    assert rec["object_name"] == "ISS (ZARYA)"
    assert rec["marking"] == "U"
    assert rec["source_record"] == 1
    assert rec["_raw"] == "\n".join(ISS)
    assert rec["eccentricity"] == 0.0005513
    assert rec["mean_motion_dot"] == 0.00022023
    assert rec["bstar"] == 0.39391e-3
    assert rec["mean_motion_ddot"] == 0.0
    assert rec["element_set_no"] == 999
    assert rec["rev_at_epoch"] == 50672
    assert rec["ephemeris_type"] == 0
    assert rec["object_type"] is rec["rcs_size"] is rec["country"] is None
    # 2025 day 113.77221326 = 2025-04-23 + 0.77221326 d; the 8 fraction digits are a whole
    # number of 864-microsecond steps, so the epoch is exact in nanoseconds
    jan1 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    expected = int((jan1 - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)).total_seconds())
    assert rec["epoch"] == (expected + 112 * 86400) * 10**9 + 77221326 * 864_000


# --------------------------------------------------------------- the shared catalogues


def _catalogue_files():
    root = SHARED_DATA / "catalogues"
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.suffix in (".txt", ".tle") and p.is_file())
    return found


def test_every_tle_catalogue_has_an_expected_count():
    shared("catalogues")
    # a new TLE file in ../shared/data/catalogues must be added to CATALOGUE_COUNTS
    assert _catalogue_files() == sorted(CATALOGUE_COUNTS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CATALOGUE_COUNTS))
def test_catalogue_ingests_every_record(name):
    path = shared("catalogues", name)
    records, rejects = read_path(path)
    assert rejects == []
    assert len(records) == CATALOGUE_COUNTS[name]


def _sgp4_agrees(rec: dict, line1: str, line2: str) -> None:
    """Compare one accepted record with python-sgp4's parse of the same lines."""
    sat = Satrec.twoline2rv(line1, line2)
    xpdotp = 1440.0 / (2.0 * math.pi)  # rev/day -> rad/min, as twoline2rv uses
    assert sat.satnum == rec["object_id"]
    assert sat.classification == rec["marking"]
    assert sat.elnum == rec["element_set_no"]
    assert sat.revnum == rec["rev_at_epoch"]
    assert sat.ecco == rec["eccentricity"]
    assert sat.intldesg == ("" if rec["intl_designator"] is None
                            else rec["intl_designator"][2:].replace("-", ""))
    # Angles and rates: sgp4 converts units (deg -> rad, rev/day -> rad/min) and scales the
    # exponent fields by pow(10, e); a few ulps of difference come from that arithmetic.
    for ours, theirs in ((rec["inclination_deg"], sat.inclo), (rec["raan_deg"], sat.nodeo),
                         (rec["arg_perigee_deg"], sat.argpo),
                         (rec["mean_anomaly_deg"], sat.mo)):
        assert close(math.radians(ours), theirs), (ours, theirs)
    assert close(rec["mean_motion_rev_day"] / xpdotp, sat.no_kozai)
    assert close(rec["bstar"], sat.bstar), (rec["bstar"], sat.bstar)
    assert close(rec["mean_motion_dot"] / (xpdotp * 1440), sat.ndot)
    assert close(rec["mean_motion_ddot"] / (xpdotp * 1440 * 1440), sat.nddot)
    # Epoch: jdsatepoch is a whole or half day, exact; the fraction jdsatepochF in days to
    # double precision (~1e-16 d = 10 ns), so 1 microsecond is a wide margin.
    whole_ns = round((sat.jdsatepoch - 2440587.5) * 2) * 43_200 * 10**9
    assert abs((rec["epoch"] - whole_ns) - sat.jdsatepochF * 86_400e9) < 1_000


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CATALOGUE_COUNTS))
def test_catalogue_fields_match_sgp4_twoline2rv(name):
    path = shared("catalogues", name)
    records, _ = read_path(path)
    assert len(records) == CATALOGUE_COUNTS[name]  # SOURCES.md's count, nothing refused
    for rec in records:
        *_, line1, line2 = rec["_raw"].split("\n")
        _sgp4_agrees(rec, line1, line2)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CATALOGUE_COUNTS))
def test_batch_fast_path_equals_record_by_record_parse(name):
    # The reader parses well-formed records in numpy batches and every other record one at a
    # time with float() on the text (tle._record); both must give the very same values.
    path = shared("catalogues", name)
    records, _ = read_path(path)
    shapes = (set(), set(), set())
    for rec in records:
        raw = rec["_raw"]
        lines = [s.rstrip() for s in raw.split("\n")]
        name_line = lines[0].encode() if len(lines) == 3 else None
        one = tle._record(name_line, lines[-2].encode(), lines[-1].encode(),
                          rec["source_record"], raw, shapes)
        assert isinstance(one, dict), one
        assert same_values(one, rec, ignore=())


def test_catalogue_numbers_space_and_zero_padded():
    # SOURCES.md: the ODAP catalogue has both; objects 5 and 20 appear as '00005' / '   20'
    path = shared("catalogues", "spacetrack_3le_2022-01-22_ODAP.txt")
    records, _ = read_path(path)
    by_line = {r["_raw"].split("\n")[1][:8]: r["object_id"] for r in records}
    assert by_line["1 00005U"] == 5
    assert by_line["1    20U"] == 20


# --------------------------------------------------- SOCRATES pairs and their OMM twins

SOCRATES = ("socrates_2026-03-09", "top20_pair_gp")


def _omm_epoch_ns(text: str) -> int:
    t = dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


_OMM_KEYS = {  # OMM keyword -> canonical column, compared exactly
    "NORAD_CAT_ID": "object_id", "OBJECT_ID": "intl_designator", "OBJECT_NAME": "object_name",
    "MEAN_MOTION": "mean_motion_rev_day", "ECCENTRICITY": "eccentricity",
    "INCLINATION": "inclination_deg", "RA_OF_ASC_NODE": "raan_deg",
    "ARG_OF_PERICENTER": "arg_perigee_deg", "MEAN_ANOMALY": "mean_anomaly_deg",
    "MEAN_MOTION_DOT": "mean_motion_dot", "MEAN_MOTION_DDOT": "mean_motion_ddot",
    "EPHEMERIS_TYPE": "ephemeris_type", "ELEMENT_SET_NO": "element_set_no",
    "REV_AT_EPOCH": "rev_at_epoch", "CLASSIFICATION_TYPE": "marking",
}


def test_socrates_pairs_match_their_omm_json_twins():
    folder = shared(*SOCRATES)
    texts = sorted(folder.glob("*.txt"))
    assert len(texts) == 20  # SOURCES.md: the top-20 events, one file per pair
    for path in texts:
        records, rejects = read_path(path)
        assert rejects == []
        twins = {o["NORAD_CAT_ID"]: o for o in json.loads(path.with_suffix(".json").read_text())}
        assert sorted(r["object_id"] for r in records) == sorted(twins)
        for rec in records:
            omm = twins[rec["object_id"]]
            for key, column in _OMM_KEYS.items():
                # bit-identical, the point of decoding '12345-5' through a decimal string
                assert bits(rec[column]) == bits(omm[key]) or (
                    isinstance(omm[key], int) and rec[column] == omm[key]), (path.name, key)
            # OMM epochs are printed to the microsecond
            assert abs(rec["epoch"] - _omm_epoch_ns(omm["EPOCH"])) < 1_000
            # OMM BSTAR has more digits than the TLE's 5; they agree to those 5
            assert rec["bstar"] == pytest.approx(omm["BSTAR"], rel=5e-5)


def test_eight_digit_eccentricity_lines_are_read_on_the_shifted_layout():
    folder = shared(*SOCRATES)
    wide = {}
    for path in sorted(folder.glob("*.txt")):
        for line in path.read_text().splitlines():
            if line.startswith("2 ") and len(line.rstrip()) == 70:
                wide[int(line[2:7])] = path
    # SOURCES.md names object 67298; the other four were found by line length
    assert 67298 in wide and len(wide) == 5
    for object_id, path in wide.items():
        records, rejects = read_path(path)
        assert rejects == []
        rec = next(r for r in records if r["object_id"] == object_id)
        omm = next(o for o in json.loads(path.with_suffix(".json").read_text())
                   if o["NORAD_CAT_ID"] == object_id)
        assert rec["eccentricity"] == omm["ECCENTRICITY"]
        assert rec["rev_at_epoch"] == omm["REV_AT_EPOCH"]
        assert rec["mean_motion_rev_day"] == omm["MEAN_MOTION"]
        assert rec["arg_perigee_deg"] == omm["ARG_OF_PERICENTER"]
        assert rec["mean_anomaly_deg"] == omm["MEAN_ANOMALY"]
    # the brief's example, from gp_61721,67298.json
    records, _ = read_path(wide[67298])
    rec = next(r for r in records if r["object_id"] == 67298)
    assert rec["eccentricity"] == 0.00085081 and rec["rev_at_epoch"] == 782


def test_sgp4_misreads_exactly_the_eight_digit_eccentricity_records():
    # twoline2rv does not know the shifted layout: every record it disagrees with is one of
    # the 70-column lines, and it disagrees with all of those
    folder = shared(*SOCRATES)
    disagree, wide = set(), set()
    for path in sorted(folder.glob("*.txt")):
        records, _ = read_path(path)
        for rec in records:
            *_, line1, line2 = rec["_raw"].split("\n")
            if len(line2.rstrip()) == 70:
                wide.add(rec["object_id"])
            try:
                _sgp4_agrees(rec, line1, line2)
            except (AssertionError, ValueError):
                disagree.add(rec["object_id"])
    assert disagree == wide and len(wide) == 5


def test_wide_eccentricity_line_with_a_bad_checksum_is_refused():
    # gp_61721,67298.txt, object 67298, with column 70 (the checksum) changed from 0 to 3
    line1 = "1 67298U 25313BC  26067.73159845  .00113849  00000+0  39787-2 0  9990"
    line2 = "2 67298  97.3987 144.3551 00085081 331.4930  28.5844 15.29053282  7823"
    (good,), _, _ = read_bytes(lines_of("\n".join(ISS)))
    records, rejects, _ = read_bytes(lines_of("\n".join([line1, line2, *ISS])))
    assert [r["object_id"] for r in records] == [25544]
    (rej,) = rejects
    assert rej.record == 1 and rej.field == "checksum"
    assert "column 70 has 3" in rej.reason and "give 0" in rej.reason


# ---------------------------------------------------------------------------- Vallado


def _vallado() -> str:
    return (importlib.resources.files("sgp4") / "SGP4-VER.TLE").read_text()


def test_vallado_verification_file():
    text = _vallado()
    lines = text.splitlines()
    records, rejects, _ = read_bytes(text.encode())
    n_pairs = sum(1 for line in lines if line.startswith("1 "))
    assert len(records) + len(rejects) == n_pairs == 33
    # Vallado's cases 33333-33335 are copies of other objects' lines with the catalogue
    # number edited and the checksum left as it was; recompute it to see
    bad = {}
    for i, line in enumerate(lines, 1):
        if line[:2] in ("1 ", "2 ") and tle_checksum(line) != int(line[68]):
            bad.setdefault(int(line[2:7]), (i, line, tle_checksum(line)))
    assert sorted(bad) == [33333, 33334, 33335]
    assert sorted(r.record for r in rejects) == sorted(v[0] for v in bad.values())
    for rej in rejects:
        number, line, digit = next(v for v in bad.values() if v[0] == rej.record)
        assert rej.field == "checksum"
        assert f"give {digit}, column 69 has {line[68]}" in rej.reason
    # Line 2 carries start / stop / step minutes after column 69: read from columns 1-69,
    # kept in _raw, values as python-sgp4 reads them
    for rec in records:
        line1, line2 = rec["_raw"].split("\n")
        assert len(line2.rstrip()) > 69
        _sgp4_agrees(rec, line1, line2)
    blank = {r["object_id"]: r for r in records if r["intl_designator"] is None}
    assert sorted(blank) == [11801, 88888]  # the two STR#3 cases, no designator
    assert blank[11801]["ephemeris_type"] is None  # column 63 blank in that line


def test_text_after_column_69_must_be_separated_by_a_blank():
    line2 = ISS[2] + "9"  # 70 columns, column 34 blank: not the 8-digit layout either
    records, rejects, _ = read_bytes(lines_of("\n".join([ISS[1], line2, *ISS])))
    assert [r["object_id"] for r in records] == [25544]
    (rej,) = rejects
    assert rej.record == 1 and "after column 69" in rej.reason


# ----------------------------------------------------------------------- malformed input


def _one_bad(record_lines, field=None):
    """``record_lines`` between two good records; returns the reject; checks the neighbours."""
    text = "\n".join([*CALSPHERE_1, *record_lines, *ISS])
    records, rejects, _ = read_bytes(lines_of(text))
    assert [r["object_id"] for r in records] == [900, 25544]
    assert len(rejects) == 1
    (rej,) = rejects
    assert rej.record == 4
    if field is not None:
        assert rej.field == field, rej
    return rej


def test_bad_checksum_gives_expected_and_found_digit():
    line1 = RADIO_ROSTO[1][:68] + "3"  # real checksum 0
    rej = _one_bad([RADIO_ROSTO[0], line1, RADIO_ROSTO[2]], "checksum")
    assert f"give {tle_checksum(line1)}, column 69 has 3" in rej.reason
    assert tle_checksum(line1) == 0
    line2 = RADIO_ROSTO[2][:68] + "1"  # real checksum 6
    rej = _one_bad([RADIO_ROSTO[0], RADIO_ROSTO[1], line2], "checksum")
    assert "TLE line 2" in rej.reason and "give 6, column 69 has 1" in rej.reason
    assert rej.raw == "\n".join([RADIO_ROSTO[0], RADIO_ROSTO[1], line2])


@pytest.mark.parametrize("line, cut, field", [(1, 40, "mean_motion_dot"),
                                              (1, 60, "bstar"),
                                              (2, 30, "eccentricity"),
                                              (2, 66, "rev_at_epoch")])
def test_truncated_line_names_the_field_it_cuts(line, cut, field):
    lines = list(RADIO_ROSTO)
    lines[line] = lines[line][:cut]
    rej = _one_bad(lines, field)
    assert "truncated" in rej.reason
    expected = sgp4.io.LINE1 if line == 1 else sgp4.io.LINE2
    assert repr(expected) in rej.reason  # the column template, as python-sgp4 shows it


def test_line_1_without_line_2():
    rej = _one_bad(RADIO_ROSTO[:2])
    assert "not followed by a line 2" in rej.reason
    assert rej.raw == "\n".join(RADIO_ROSTO[:2])


def test_line_2_without_line_1():
    rej = _one_bad([RADIO_ROSTO[0], RADIO_ROSTO[2]])
    assert "without a line 1" in rej.reason


def test_name_line_followed_by_nothing():
    text = "\n".join([*ISS, "OBJECT WITH NO ELEMENTS"])
    records, rejects, _ = read_bytes(lines_of(text))
    assert [r["object_id"] for r in records] == [25544]
    (rej,) = rejects
    assert rej.record == 4 and rej.field == "object_name" and "end of file" in rej.reason


def test_stray_text_is_a_reject():
    rej = _one_bad(["this is not an element set, and far too long to be a satellite name"])
    assert "not a TLE line" in rej.reason


def test_mismatched_catalogue_numbers():
    line2 = with_checksum(RADIO_ROSTO[2].replace("23439", "23438"))
    rej = _one_bad([RADIO_ROSTO[0], RADIO_ROSTO[1], line2], "object_id")
    assert "'23439'" in rej.reason and "'23438'" in rej.reason


@pytest.mark.parametrize("line, col, field", [
    (1, 40, "mean_motion_dot"), (1, 56, "bstar"), (1, 47, "mean_motion_ddot"),
    (1, 22, "epoch"), (1, 66, "element_set_no"), (1, 4, "object_id"),
    (2, 10, "inclination_deg"), (2, 20, "raan_deg"), (2, 30, "eccentricity"),
    (2, 37, "arg_perigee_deg"), (2, 46, "mean_anomaly_deg"), (2, 57, "mean_motion_rev_day"),
    (2, 66, "rev_at_epoch")])
def test_letter_in_a_numeric_field_names_the_field(line, col, field):
    # column numbers 1-based, as in the TLE documentation; the checksum is recomputed so only
    # the layout is wrong
    lines = list(RADIO_ROSTO)
    text = lines[line]
    lines[line] = with_checksum(text[:col - 1] + "X" + text[col:])
    rej = _one_bad(lines, field)
    assert "does not match" in rej.reason


def test_six_digit_catalogue_number_is_refused_not_shifted():
    line1 = with_checksum("1 125544U 98067A   25113.77221326  .00022023  00000+0  39391-3 0  999")
    rej = _one_bad([line1, ISS[2]], "object_id")
    assert "6-digit" in rej.reason


@pytest.mark.parametrize("day, field", [("000", "epoch"), ("366", "epoch")])
def test_day_of_year_out_of_range(day, field):
    # 2025 is not a leap year: days 1-365
    line1 = with_checksum(RADIO_ROSTO[1][:20] + day + RADIO_ROSTO[1][23:])
    rej = _one_bad([RADIO_ROSTO[0], line1, RADIO_ROSTO[2]], field)
    assert "out of range" in rej.reason


def test_out_of_range_values_are_refused_by_validate_elements():
    line2 = with_checksum(RADIO_ROSTO[2][:8] + "181.0000" + RADIO_ROSTO[2][16:])
    rej = _one_bad([RADIO_ROSTO[0], RADIO_ROSTO[1], line2], "inclination_deg")
    assert "out of range" in rej.reason and "[0, 180]" in rej.reason
    line2 = with_checksum(RADIO_ROSTO[2][:52] + " 0.00000000" + RADIO_ROSTO[2][63:])
    rej = _one_bad([RADIO_ROSTO[0], RADIO_ROSTO[1], line2], "mean_motion_rev_day")
    assert "out of range" in rej.reason


# ------------------------------------------------------------------------ field decoding


def test_zero_in_the_mean_motion_dot_sign_column_is_read():
    # TruSat's catalogue (TruSat/trusat-backend snapshot tests, Apache-2.0; also in
    # ../shared/data/observations/trusat_backend) writes the first derivative as
    # "0.00000000", a 0 in the sign column 34; python-sgp4 reads float(line[33:43]) = 0.0.
    lines = ["Canyon 1",
             "1 03334U 68063A   19056.54172494 0.00000000  00000-0  00000-0 0    06",
             "2 03334  12.3610 315.2327 0953059 155.7787 209.0110  0.99251334    01"]
    (rec,), rejects, _ = read_bytes(lines_of("\n".join(lines)))
    assert rejects == []
    assert rec["mean_motion_dot"] == 0.0 and rec["object_id"] == 3334
    sat = Satrec.twoline2rv(lines[1], lines[2])
    assert rec["eccentricity"] == sat.ecco and rec["rev_at_epoch"] == sat.revnum == 0


def test_alpha5_catalogue_numbers():
    # sgp4/alpha5.py: 'A0000' is 100000 (A = 10, I and O skipped) and 'Z9999' 339999
    records = []
    for alpha, number in (("A0001", 100001), ("J1234", 181234), ("Z9999", 339999)):
        line1 = with_checksum(ISS[1].replace("25544", alpha))
        line2 = with_checksum(ISS[2].replace("25544", alpha))
        (rec,), rejects, _ = read_bytes(lines_of(f"{line1}\n{line2}"))
        assert rejects == [] and rec["object_id"] == number
        records.append(rec)
    line1 = with_checksum(ISS[1].replace("25544", "I0001"))  # no I in Alpha-5
    line2 = with_checksum(ISS[2].replace("25544", "I0001"))
    _, (rej,), _ = read_bytes(lines_of(f"{line1}\n{line2}"))
    assert rej.field == "object_id"


@pytest.mark.parametrize("yy, year", [("57", 1957), ("99", 1999), ("00", 2000), ("56", 2056)])
def test_two_digit_years(yy, year):
    # the TLE convention (and python-sgp4's): 57-99 are 19xx, 00-56 20xx
    line1 = with_checksum(ISS[1][:9] + yy + ISS[1][11:18] + yy + ISS[1][20:])
    (rec,), rejects, _ = read_bytes(lines_of(f"{line1}\n{ISS[2]}"))
    assert rejects == []
    assert rec["intl_designator"] == f"{year}-067A"
    t = dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=112)
    start = int(t.timestamp()) * 10**9
    assert rec["epoch"] == start + 77221326 * 864_000


def test_exponent_fields_are_the_omm_doubles():
    # OMM-JSON writes BSTAR -2.7053e-5 for the TLE field '-27053-4' (decimal, not pow())
    (_, rec, _, _), _, _ = read_bytes(lines_of("\n".join(x for r in REAL for x in r)))
    assert bits(rec["bstar"]) == bits(float("-2.7053e-5"))
    assert bits(rec["mean_motion_dot"]) == bits(-4.3e-7)
    line1 = with_checksum(RADIO_ROSTO[1][:44] + "-12345-6" + RADIO_ROSTO[1][52:])
    (rec,), _, _ = read_bytes(lines_of(f"{line1}\n{RADIO_ROSTO[2]}"))
    assert bits(rec["mean_motion_ddot"]) == bits(-1.2345e-7)
    assert rec["object_name"] is None


def test_space_track_name_lines_and_mixed_2le_3le():
    text = "\n".join(["0 ISS (ZARYA)", ISS[1], ISS[2], CXO[1], CXO[2], "", "",
                      *CALSPHERE_1])
    records, rejects, _ = read_bytes(lines_of(text))
    assert rejects == []
    assert [(r["object_name"], r["source_record"]) for r in records] == [
        ("ISS (ZARYA)", 1), (None, 4), ("CALSPHERE 1", 8)]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
@pytest.mark.parametrize("final", [True, False])
def test_line_endings_and_bom_do_not_matter(newline, final):
    lines = [x.encode() for r in REAL for x in r]
    data = b"\xef\xbb\xbf" + newline.join(lines) + (newline if final else b"")
    records, rejects, _ = read_bytes(data)
    reference, _, _ = read_bytes(lines_of("\n".join(x for r in REAL for x in r)))
    assert rejects == [] and len(records) == 4
    assert all(same_values(a, b) for a, b in zip(records, reference))


def test_non_ascii_name_is_kept():
    name = "SATÉLITE ÑANDÚ"
    data = (name + "\n" + ISS[1] + "\n" + ISS[2] + "\n").encode("utf-8")
    (rec,), rejects, _ = read_bytes(data)
    assert rejects == [] and rec["object_name"] == name


# -------------------------------------------------------------------------- streaming


class _GeneratedTLE(io.RawIOBase):
    """A read-only stream of ``n`` copies of the ISS record, made as it is read."""

    def __init__(self, n: int):
        self.record = lines_of("\n".join(ISS))
        self.left = n
        self.buffer = b""
        self.served = 0

    def readable(self):
        return True

    def readinto(self, b):
        while len(self.buffer) < len(b) and self.left:
            k = min(self.left, 1000)
            self.buffer += self.record * k
            self.left -= k
        n = min(len(b), len(self.buffer))
        b[:n] = self.buffer[:n]
        self.buffer = self.buffer[n:]
        self.served += n
        return n


@pytest.mark.slow
def test_large_file_is_read_in_bounded_batches():
    n = 3 * tle.BATCH_RECORDS + 123
    stream = _GeneratedTLE(n)
    total_bytes = n * len(stream.record)
    sizes, served_at_first = [], None
    for batch in tle.read(io.BufferedReader(stream), "<generated>"):
        if served_at_first is None:
            served_at_first = stream.served
        sizes.append(len(batch))
        assert not batch.rejects
    assert sum(sizes) == n
    assert max(sizes) <= tle.BATCH_RECORDS and len(sizes) == 4
    # the first batch came out after about a third of the file, not all of it
    assert served_at_first < total_bytes / 2


def test_a_file_of_nothing_but_rejects_is_batched_too():
    n = 2 * tle.BATCH_RECORDS + 7
    data = (ISS[1] + "\n") * n  # line 1 after line 1: every one an orphan
    records, rejects, sizes = read_bytes(data.encode())
    assert records == [] and len(rejects) == n
    assert max(sizes) <= tle.BATCH_RECORDS and len(sizes) == 3
    assert [r.record for r in rejects[:3]] == [1, 2, 3]


# --------------------------------------------------------------------------- identify


def test_identify_recognises_2le_and_3le():
    assert tle.identify(lines_of("\n".join(ISS)))
    assert tle.identify(lines_of("\n".join(ISS[1:])))
    assert tle.identify(lines_of("\n".join(["0 ISS (ZARYA)", *ISS[1:]])))
    assert tle.identify(b"\n\n" + lines_of("\n".join(ISS)))
    assert tle.identify(_vallado().encode())


@pytest.mark.parametrize("head", [
    b"CCSDS_OMM_VERS = 2.0\nCREATION_DATE = 2020-01-01T00:00:00\n",
    b'[{"OBJECT_NAME":"ISS (ZARYA)","OBJECT_ID":"1998-067A"}]',
    b'<?xml version="1.0" encoding="UTF-8"?>\n<ndm><omm></omm></ndm>\n',
    b"OBJECT_NAME,OBJECT_ID,EPOCH,MEAN_MOTION\nISS (ZARYA),1998-067A,2025-04-23T18:31:59,15.5\n",
    b"",
    b"ISS (ZARYA)\n",
])
def test_identify_refuses_other_formats(head):
    assert not tle.identify(head)


def test_identify_on_the_shared_files():
    root = shared("catalogues")
    for name in CATALOGUE_COUNTS:
        assert tle.identify((root / name).read_bytes()[:65536]), name
    others = [p for p in root.rglob("*") if p.suffix in (".csv", ".json")]
    ccsds = SHARED_DATA / "ccsds"
    if ccsds.exists():
        others += [p for p in ccsds.rglob("*") if p.is_file()]
    assert others
    for path in others:
        assert not tle.identify(path.read_bytes()[:65536]), path


# ------------------------------------------------------------------ property tests

PROPERTY = settings(deadline=None, max_examples=examples(200),
                    suppress_health_check=[HealthCheck.too_slow])


def _check_accounting(data: bytes):
    """Read ``data``: only FormatError may escape; every non-blank, non-comment line is in
    exactly one accepted record or reject, and each points at its own first line. Lines end
    at LF, CR LF or a lone CR, and Unicode spaces are blanks (the fixed-width readers' byte
    quirks, :mod:`ssafuse.formats.base`)."""
    try:
        records, rejects, _ = read_bytes(data)
    except FormatError:
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = unify_line_ends(data).split(b"\n")
    wanted = [line for line in lines
              if blanks_bytes(line).rstrip() and line.rstrip()[:1] != b"#"]
    raws = [r["_raw"] for r in records] + [r.raw for r in rejects]
    assert sum(raw.count("\n") + 1 for raw in raws) == len(wanted)
    for source_record, raw in ([(r["source_record"], r["_raw"]) for r in records]
                               + [(r.record, r.raw) for r in rejects]):
        first = lines[source_record - 1]
        # a record's lines are decoded together (UTF-8, else Latin-1 for all of them), its
        # Unicode spaces made blanks
        assert raw.split("\n")[0] in (blanks(decode(first)), decode(first),
                                       first.decode("latin-1"))
    return records, rejects


@PROPERTY
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_crash(data):
    tle.identify(data)
    _check_accounting(data)


_REAL_TEXT = "\n".join(x for r in REAL for x in r)


@st.composite
def mutated_text(draw):
    """The real records with a few edits: characters replaced, deleted or inserted (newlines
    among them), lines cut, dropped, duplicated or swapped."""
    lines = list(_REAL_TEXT.split("\n"))
    alphabet = st.sampled_from(list("0123456789 .+-ABZIU\n\t#é") + ["\r"])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        op = draw(st.sampled_from(["replace", "delete", "insert", "cut", "drop", "dup",
                                   "swap"]))
        j = draw(st.integers(0, max(len(line) - 1, 0)))
        if op == "replace" and line:
            lines[i] = line[:j] + draw(alphabet) + line[j + 1:]
        elif op == "delete" and line:
            lines[i] = line[:j] + line[j + 1:]
        elif op == "insert":
            lines[i] = line[:j] + draw(alphabet) + line[j:]
        elif op == "cut":
            lines[i] = line[:j]
        elif op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "dup":
            lines.insert(i, line)
        elif op == "swap":
            k = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[k] = lines[k], lines[i]
    return "\n".join(lines)


@PROPERTY
@given(mutated_text())
def test_mutated_real_tle_text_is_accounted_for(text):
    data = text.encode("utf-8")
    tle.identify(data)
    _check_accounting(data)


@PROPERTY
@given(mutated_text(), st.sampled_from(REAL), st.sampled_from(REAL))
def test_good_records_next_to_a_corrupted_one_are_kept(text, before, after):
    # a good 3LE record before and after arbitrary corruption come out with the very values
    # they have when read alone
    alone_before, _, _ = read_bytes(lines_of("\n".join(before)))
    alone_after, _, _ = read_bytes(lines_of("\n".join(after)))
    data = "\n".join([*before, text, *after]).encode("utf-8")
    result = _check_accounting(data)
    assert result is not None
    records, _ = result
    assert same_values(records[0], alone_before[0])
    assert records[0]["source_record"] == 1
    assert same_values(records[-1], alone_after[0])

"""IOD, UK and RDE optical observations: TruSat's format answers, real files, accounting,
and mutation properties."""

from __future__ import annotations

import glob
import io

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import shared
from ssafuse.errors import FormatError
from ssafuse.formats import optical
from ssafuse.records import read_file

# TruSat's answers contradict each other on one line: IOD_data_compliant_answers.txt says a
# blank station status is valid ("All the variations of Station status code, including
# blank"), IOD_data_noncompliant_answers.txt lists the same line as invalid. The satobs.org
# IOD page allows the blank; ssafuse follows the compliant set.
CONTRADICTED = {"12345 98 123A   2007   20081122112233444 56 14 1122334+112233 39 S"}


def _valid(parse, line: str) -> bool:
    if not line.strip() or line.lstrip().startswith("#"):
        return False
    try:
        parse(line)
        return True
    except FormatError:
        return False


def _answers(name: str):
    text = shared(f"observations/trusat_orbit/{name}_answers.txt").read_text("latin-1")
    return [line.partition(",") for line in text.split("\n") if line]


@pytest.mark.parametrize("name, parse", [("IOD_data_compliant", optical.parse_iod_line),
                                         ("UK_data_compliant", optical.parse_uk_line),
                                         ("UK_data_noncompliant", optical.parse_uk_line)])
def test_trusat_answers_line_by_line(name, parse):
    # These data files and their answers files align line for line (the answers copy the
    # lines, with a cosmetic blank after the comma), so each data line is judged.
    data = shared(f"observations/trusat_orbit/{name}.txt").read_text("latin-1").split("\n")
    answers = _answers(name)
    wrong = [(i + 1, data[i]) for i, (flag, _, _) in enumerate(answers)
             if _valid(parse, data[i]) != (flag == "True")]
    assert wrong == []
    assert sum(flag == "True" for flag, _, _ in answers) == \
        sum(_valid(parse, line) for line in data)


def test_trusat_iod_noncompliant_answers_every_line_rejected():
    # This answers file is a later revision than its data file: judge the answers' own text.
    answers = _answers("IOD_data_noncompliant")
    assert all(flag == "False" for flag, _, _ in answers)
    accepted = [text for _, _, text in answers if _valid(optical.parse_iod_line, text)]
    assert accepted == sorted(CONTRADICTED)


def test_trusat_iod_noncompliant_data_file():
    # The older data file has station "270A" where the answers have 270I / 270O; letters
    # other than I and O are valid station characters (the compliant set's ABCD, 000T), so
    # that line and the contradicted one are the two accepted.
    r = read_file(shared("observations/trusat_orbit/IOD_data_noncompliant.txt"), source="t",
                  format="iod")
    assert sorted(r.elements["sensor_id"].to_pylist()) == ["2007", "270A"]
    assert r.accepted + r.rejected == r.records_read


def test_iod_values_follow_the_standard():
    rec = optical.parse_iod_line(
        "23794 96 010A   2701 G 20040506012614270 17 25 1100114-184298 38 I+020 10")
    # format 2: HHMMmmm+DDMMmm -> 11h00.114m, -18 deg 42.98'; MX 38 = 3e-5 arcmin... 3x10^0
    assert rec["ra_deg"] == pytest.approx((11 + 0.114 / 60) * 15)
    assert rec["dec_deg"] == pytest.approx(-(18 + 42.98 / 60))
    assert rec["angle_sigma_deg"] == pytest.approx(3 * 10.0 ** (8 - 8) / 60)
    assert rec["time_sigma_s"] == pytest.approx(1 * 10.0 ** (7 - 8))
    assert rec["magnitude"] == 2.0 and rec["magnitude_sigma"] == 1.0
    assert rec["frame"] == "J2000" and rec["object_id"] == 23794
    assert rec["intl_designator"] == "1996-010A"


def test_day_zero_is_last_day_of_previous_month():
    rec = optical.parse_iod_line(
        "23794 96 010A   2701 G 20100400012614270 17 25 1100114-184298 38")
    import datetime as dt
    assert dt.datetime.fromtimestamp(rec["time"] / 1e9, dt.timezone.utc).date() == \
        dt.date(2010, 3, 31)


def test_bad_column_names_the_column_and_shows_the_template():
    with pytest.raises(FormatError) as e:
        optical.parse_iod_line(
            "23794 96 010A   2701 Z 20040506012614270 17 25 1100114-184298 38 I+020 10")
    assert e.value.field == "station_status"
    assert e.value.expected == optical.IOD_TEMPLATE


def test_rde_block_gives_fourteen_observations():
    r = read_file(shared("observations/trusat_orbit/RDE_data_compliant.txt"), source="t")
    assert r.format == "rde" and r.accepted == 14
    # the stray "SATOBS" subject line is the one record outside the block
    assert r.rejects["raw"].to_pylist() == ["SATOBS"]
    assert set(r.elements["frame"].to_pylist()) == {"B1950"}
    assert r.elements["intl_designator"].to_pylist()[0] == "2005-024B"
    not_rde = read_file(shared("observations/trusat_orbit/DATA_UK_not_RDE.txt"), source="t",
                        format="rde")
    assert not_rde.accepted == 0


def test_satfit_files_every_observation_accepted_leniently():
    files = sorted(glob.glob(str(shared("observations/satfit/sats")) + "/*.txt"))
    accepted = 0
    for path in files:
        r = read_file(path, source="satfit", format="iod-lenient")
        assert r.accepted + r.rejected == r.records_read
        accepted += r.accepted
    assert accepted == 3634  # SOURCES.md: 3,634 IOD lines


def test_reject_rows_carry_file_line_raw_and_reason():
    r = read_file(shared("observations/trusat_orbit/IOD_data_noncompliant.txt"), source="t",
                  format="iod")
    row = r.rejects.to_pylist()[0]
    assert row["source_uri"].endswith("IOD_data_noncompliant.txt")
    assert row["source_record"] > 0 and row["raw"] and row["reason"]
    assert row["table"] == "observations"


GOOD_IOD = [
    "23794 96 010A   2701 G 20040506012614270 17 25 1100114-184298 38 I+020 10",
    "90019 03 790B   2701 G 20040506020755480 17 25 0929080-203364 48",
    "12345 98 123A   2007 E 20081122112233444 56 14 1122334+112233 39 S",
]
GOOD_UK = ["9701201201803101520195542  01   12172038  +15585   1  5             +6 +8   190R",
           "0401401267504050320170296  010  12102706  +36412   50 5"]
RDE_HEAD = ["2420 1909 0.211 1204", "28"]
GOOD_RDE = ["0502402 184758.93 193923+452358 3.1 3.1 0 S",
            "7508702 185615.58 012322+431753 5.8 5.8 0 S"]


def _mutate(line: str, pos: int, char: str, mode: int) -> str:
    pos %= max(len(line), 1)
    if mode == 0:
        return line[:pos] + char + line[pos + 1:]
    if mode == 1:
        return line[:pos] + char + line[pos:]
    return line[:pos] + line[pos + 1:]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(["iod", "uk", "rde"]), victim=st.integers(0, 10),
       pos=st.integers(0, 90), char=st.characters(codec="utf-8", exclude_characters="\r\n"),
       mode=st.integers(0, 2))
def test_mutated_line_never_raises_and_never_loses_a_good_neighbour(which, victim, pos,
                                                                    char, mode):
    good = {"iod": GOOD_IOD, "uk": GOOD_UK, "rde": GOOD_RDE}[which]
    victim %= len(good)
    lines = list(good)
    lines[victim] = _mutate(lines[victim], pos, char, mode)
    if which == "rde":
        lines = RDE_HEAD + lines + ["999"]
    read = {"iod": optical.read_iod, "uk": optical.read_uk, "rde": optical.read_rde}[which]
    data = "\n".join(lines).encode("utf-8")
    batches = list(read(io.BytesIO(data), "mem"))   # only FormatError may escape, and none
    records = [r for b in batches for r in b.records]
    rejects = [r for b in batches for r in b.rejects]
    offset = 2 if which == "rde" else 0
    kept = {r["source_record"] for r in records}
    for i in range(len(good)):
        if i != victim:
            assert i + 1 + offset in kept                 # the neighbours survive
    n_records = sum(1 for ln in lines[offset:offset + len(good)]
                    if ln.strip() and not ln.lstrip().startswith("#") and
                    not (which == "rde" and ln.strip() in ("999",)))
    assert len(records) + len(rejects) >= n_records - 1 and len(records) + len(rejects) \
        <= n_records + 1

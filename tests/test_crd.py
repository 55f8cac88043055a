"""ILRS CRD normal points (``ssafuse.formats.crd``): real LAGEOS-1/2 files (CRD v1 and v2, from
Orekit's test resources) read into observations, values checked against the file's own numbers
worked by hand, and the records a reader must refuse refused for their stated reason.

Expected counts are the record 11 lines of each session as the file states them (counted with
``awk 'tolower($1)=="h2"{s=$3} $1=="11"{c[s]++}'``); Orekit's own LAGEOS-2 test uses the same 95
normal points (``EXPECTED_RESULTS.txt``: range residuals n=95).
"""

from __future__ import annotations

import io

import pytest
from conftest import shared

from ssafuse.formats import crd
from ssafuse.formats.registry import detect
from ssafuse.records import read_file
from ssafuse.timeutil import parse_epoch

C_KM_S = 299_792.458
LAGEOS2_2016 = "observations/orekit/orbit-determination/Lageos2/lageos2_20160214.npt"
LAGEOS2_2018 = "observations/orekit/ilrs/lageos2_201802.npt.v2C"
ILRS = "precise_orbits/orekit/ilrs/"


def read(relative: str, fmt: str | None = None):
    return read_file(shared(relative), source="test", format=fmt)


def rows_of(result) -> dict[int, dict]:
    """Accepted rows by their line number in the file."""
    return {r["source_record"]: r for r in result.elements.to_pylist()}


def read_text(text: str):
    """(rows, rejects) of a CRD text, straight from the reader."""
    rows, rejects = [], []
    for batch in crd.read(io.BytesIO(text.encode()), "mem.npt"):
        rows += batch.records
        rejects += batch.rejects
    return rows, rejects


# A minimal v2 session (headers as in lageos2_201802.npt.v2C), normal points appended per test.
HEAD = """h1 CRD 2 2018 2 1 17
h2 CHAL 9998 19 01 {scale} WPLTN
h3 lageos2 9207002 5986 {norad} 0 1 1
h4 1 2018 2 1 15 14 58 2018 2 1 15 48 57 0 0 0 0 1 0 2 0
"""
NP = ("11 54927.620161400002 0.044106029140 std {event} 120.0 1457 70.0 0.319 2.496 "
      "-12.0 1.2 0 5.7\n")


def session(event: int = 2, scale: int = 4, norad: str = "22195", points: str | None = None):
    return HEAD.format(scale=scale, norad=norad) + (points or NP.format(event=event)) + "h8\nh9\n"


# -- real files -----------------------------------------------------------------------------------

def test_lageos2_2016_normal_points_per_station():
    result = read(LAGEOS2_2016)
    assert result.format == "crd" and result.rejected == 0
    sensors = result.elements["sensor_id"].to_pylist()
    assert {s: sensors.count(s) for s in set(sensors)} == {"7090": 37, "7119": 27, "7825": 17,
                                                          "7941": 14}
    assert set(result.elements["object_id"].to_pylist()) == {22195}
    assert set(result.elements["intl_designator"].to_pylist()) == {"1992-070B"}
    assert set(result.elements["kind"].to_pylist()) == {"laser"}


def test_normal_point_time_is_transmit_plus_time_of_flight():
    """Line 12 of lageos2_20160214.npt (session of 7090, H4 start 2016-02-13 13:42:16):
    ``11 49382.400562600000 0.039237325685 std 2 120.0 94 57.0 ...``. Epoch event 2 is the
    ground transmit time, so the receive time is 49382.4005626 s (13:43:02.4005626) plus
    0.039237325685 s = 13:43:02.439799925685, 13:43:02.439799926 to the nanosecond. The range
    is c * tof / 2 = 299792.458 * 0.039237325685 / 2 = 5881.527156226 km; the bin RMS 57.0 ps
    is 57e-12 * 299792.458 / 2 = 8.544085e-6 km one-way."""
    row = rows_of(read(LAGEOS2_2016))[12]
    assert row["time"].value == parse_epoch("2016-02-13T13:43:02.439799926")
    assert row["range_km"] == pytest.approx(5881.527156226, rel=1e-12)
    assert row["range_sigma_km"] == pytest.approx(8.544085e-6, rel=1e-6)
    assert row["sensor_id"] == "7090" and row["object_id"] == 22195


def test_session_without_norad_takes_it_from_the_same_ilrs_id():
    """The 7119 sessions' H3 write NORAD -1 (line 113); the file's other sessions map ILRS id
    9207002 to 22195. Line 122 is the first normal point of the first 7119 session."""
    rows = rows_of(read(LAGEOS2_2016))
    assert rows[122]["sensor_id"] == "7119" and rows[122]["object_id"] == 22195


def test_crd_v2_normal_point():
    """Line 16 of lageos2_201802.npt.v2C (H4 start 2018-02-01 15:14:58): ``11
    54927.620161400002 0.044106029140 std 2 ... 70.0``: 54927 s is 15:15:27, plus the time of
    flight gives 15:15:27.664267429142; range 299792.458 * 0.044106029140 / 2 =
    6611.327444250 km; sigma 70 ps = 1.0492736e-5 km."""
    result = read(LAGEOS2_2018)
    assert result.accepted == 300 and result.rejected == 0
    assert set(result.elements["sensor_id"].to_pylist()) == {"9998"}
    row = rows_of(result)[16]
    assert row["time"].value == parse_epoch("2018-02-01T15:15:27.664267429")
    assert row["range_km"] == pytest.approx(6611.327444250, rel=1e-12)
    assert row["range_sigma_km"] == pytest.approx(1.0492736e-5, rel=1e-6)


def test_pass_past_midnight_continues_on_the_next_day():
    """lageos1-test.npt, Graz session (H4 start 2021-03-06 23:27:40): line 37 at 86250.14 s is
    23:57:30.14 on the 6th; line 38 at 101.312063571997 s is on the 7th, 00:01:41.312063572 +
    0.044236844760 s = 00:01:41.356300417."""
    rows = rows_of(read(ILRS + "lageos1-test.npt"))
    assert rows[37]["time"].value // 10**9 == parse_epoch("2021-03-06T23:57:30") // 10**9
    assert rows[38]["time"].value == parse_epoch("2021-03-07T00:01:41.356300417")
    assert rows[38]["range_km"] == pytest.approx(C_KM_S * 0.044236844760 / 2, rel=1e-12)
    assert rows[38]["object_id"] == 8820 and rows[38]["intl_designator"] == "1976-039A"


def test_meteorological_records_are_kept_for_corrections():
    found, _ = crd.sessions(shared(LAGEOS2_2016).read_bytes())
    first = found[0]
    assert first.sensor_id == "7090" and len(first.points) == 12 and len(first.meteo) == 12
    m = first.meteo[0]      # line 11: 20 49382.401  983.70 301.40  24. 0
    assert (m.line, m.pressure_hpa, m.temperature_k, m.humidity_pct) == (11, 983.7, 301.4, 24.0)
    assert first.troposphere_applied is False and first.center_of_mass_applied is False


def test_detect_recognises_crd_and_not_cpf():
    for rel in (LAGEOS2_2016, LAGEOS2_2018, ILRS + "lageos1-test.npt"):
        assert detect(shared(rel).read_bytes()[:65536]).name == "crd"
    assert not crd.identify(shared(ILRS + "lageos1_cpf_180613_16401.hts").read_bytes())


# -- refusals ------------------------------------------------------------------------------------

def test_full_rate_records_are_refused_one_by_one():
    result = read(ILRS + "champ_201709-small.frd")
    assert result.accepted == 0 and result.rejected == 4
    assert all("full-rate record 10" in r for r in result.rejects["reason"].to_pylist())


def test_unknown_range_type_refuses_the_session_naming_the_h4_line():
    """crd_invalid_range_type.v2C: H4 (line 4) states range type 9."""
    result = read(ILRS + "crd_invalid_range_type.v2C", "crd")
    assert result.accepted == 0 and result.rejected == 6
    reason = result.rejects["reason"][0].as_py()
    assert "H4 at line 4" in reason and "range type 9" in reason


def test_corrupted_time_of_flight_refuses_that_line_only():
    """crd_corrupted_data.v2C: line 19 has ``corrupted`` for the time of flight."""
    result = read(ILRS + "crd_corrupted_data.v2C", "crd")
    assert result.accepted == 5 and result.rejected == 1
    rej = result.rejects.to_pylist()[0]
    assert rej["source_record"] == 19 and rej["field"] == "time_of_flight"
    assert "corrupted" in rej["raw"]


@pytest.mark.parametrize("event, add_s", [(0, 0.0), (1, 0.044106029140 / 2),
                                          (2, 0.044106029140)])
def test_epoch_events_give_the_receive_time(event, add_s):
    rows, rejects = read_text(session(event=event))
    assert not rejects
    t = parse_epoch("2018-02-01T15:15:27.620161400") + round(add_s * 1e9)
    assert rows[0]["time"] == t and rows[0]["source_record"] == 5


def test_one_way_epoch_event_is_refused():
    rows, rejects = read_text(session(event=3))
    assert not rows and rejects[0].record == 5
    assert "epoch event 3" in rejects[0].reason and rejects[0].field == "epoch_event"


def test_time_scale_other_than_utc_refuses_the_session():
    rows, rejects = read_text(session(scale=1))
    assert not rows and "H2 at line 2" in rejects[0].reason
    assert "time scale 1" in rejects[0].reason


def test_short_normal_point_shows_the_template():
    rows, rejects = read_text(session(points="11 54927.62 0.0441 std 2\n"))
    assert not rows and rejects[0].record == 5
    assert crd.NP_TEMPLATE in rejects[0].reason


def test_normal_point_outside_a_session_is_refused():
    rows, rejects = read_text(NP.format(event=2) + session())
    assert len(rows) == 1 and rejects[0].record == 1 and "outside a session" in rejects[0].reason


def test_no_norad_anywhere_leaves_object_id_null():
    rows, _ = read_text(session(norad="-1"))
    assert rows[0]["object_id"] is None and rows[0]["intl_designator"] == "1992-070B"


def test_line_of_no_record_type_is_refused():
    text = session().replace("h8\n", "xx garbage\nh8\n")
    rows, rejects = read_text(text)
    assert len(rows) == 1 and rejects[0].record == 6 and "not a CRD record type" in \
        rejects[0].reason


@pytest.mark.parametrize("ilrs, cospar", [("9207002", "1992-070B"), ("7603901", "1976-039A"),
                                          ("1600201", "2016-002A"), ("1600209", "2016-002J"),
                                          ("na", None), ("9207000", None)])
def test_ilrs_id_to_cospar(ilrs, cospar):
    assert crd.ilrs_to_cospar(ilrs) == cospar

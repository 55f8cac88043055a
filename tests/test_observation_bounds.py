"""The physical bounds every reduced observation meets (``ssafuse.plausibility``), applied
once where a batch becomes the canonical ``observations`` table (issue 19, point 4).

Expected values: the bounds' derivations are checked against NASA's Earth fact sheet
(escape velocity 11.186 km/s) and the Moon's (apogee 405,500 km); the hand-made TDM lines
state their own values; the real files are TDMExample8 (Orekit's copy of the CCSDS
503.0-B-1 example, ranges with RANGE_MODULUS = 1e7 s) and the ASTRIANet TDM of NORAD 27663
(60 RA/Dec pairs, ../shared/data/SOURCES.md).
"""

from __future__ import annotations

import math

import pytest

from conftest import shared
from ssafuse import markings as mk
from ssafuse.formats.base import Batch
from ssafuse.plausibility import (HILL_RADIUS_KM, MAX_RANGE_KM, MAX_RANGE_RATE_KM_S,
                                  MIN_ELEVATION_DEG, OBSERVATION_BOUNDS)
from ssafuse.records import Provenance, read_file, to_tables
from ssafuse.schema import OBSERVATION_COLUMNS

C_KM_S = 299_792.458
BOUND_COLUMNS = {b.column for b in OBSERVATION_BOUNDS}

# One-way (PATH 1,2: the object transmits, RADAR-9 receives), AZEL, km: every value as written.
ONE_WAY = """CCSDS_TDM_VERS = 2.0
CREATION_DATE = 2024-01-01T00:00:00
ORIGINATOR = TEST
META_START
TIME_SYSTEM = UTC
PARTICIPANT_1 = 25544
PARTICIPANT_2 = RADAR-9
MODE = SEQUENTIAL
PATH = 1,2
ANGLE_TYPE = AZEL
RANGE_UNITS = km
META_STOP
DATA_START
ANGLE_1 = 2024-01-01T00:00:00 {az}
ANGLE_2 = 2024-01-01T00:00:00 {el}
RANGE = 2024-01-01T00:00:00 {range}
DOPPLER_INSTANTANEOUS = 2024-01-01T00:00:00 {rr}
DATA_STOP
"""
GOOD = {"az": "120.0", "el": "30.0", "range": "1000.0", "rr": "-3.0"}


def _read_tdm(tmp_path, **values):
    path = tmp_path / "one.tdm"
    path.write_text(ONE_WAY.format(**{**GOOD, **values}))
    return read_file(path, source="test")


def _bound_rejects(result) -> list[tuple[str, str]]:
    """``(field, reason)`` of the rejects the bounds made (not the adapter's own)."""
    return [(f, why) for f, why in zip(result.rejects["field"].to_pylist(),
                                       result.rejects["reason"].to_pylist())
            if f in BOUND_COLUMNS and why.startswith((f"{f} = ", f"{f} is NaN"))]


def test_bounds_follow_from_published_constants():
    # NASA Earth fact sheet: escape velocity 11.186 km/s (WGS-72 gives 11.180)
    assert MAX_RANGE_RATE_KM_S / 2 == pytest.approx(11.186, abs=0.01)
    # Hill radius a (m / 3M)^(1/3) = 0.01 AU to 0.1 %; the Moon's apogee (405,500 km, NASA
    # Moon fact sheet) is well inside, interplanetary distances (0.27 AU to Venus) far out
    assert HILL_RADIUS_KM == pytest.approx(0.01 * 149_597_870.7, rel=1e-3)
    assert 405_500 < HILL_RADIUS_KM and MAX_RANGE_KM < 0.27 * 149_597_870.7
    # the dip of the horizon from 15 km up, arccos(R / (R + h)), plus 0.6 deg of refraction
    assert -5.0 == MIN_ELEVATION_DEG < -(math.degrees(math.acos(6378.137 / 6393.137)) + 0.6)


@pytest.mark.parametrize("values", [
    {},
    {"el": "-4.9"},                         # below the horizon, within a high site's dip
    {"range": "405500.0"},                  # the Moon's apogee
    {"rr": "22.3"}, {"rr": "-22.3"},        # just within twice the escape speed
    {"az": "359.999"}, {"el": "90.0"},
])
def test_observation_within_bounds_is_kept_as_written(tmp_path, values):
    r = _read_tdm(tmp_path, **values)
    assert (r.accepted, r.rejected) == (1, 0)
    v = {**GOOD, **values}
    row = r.elements.to_pylist()[0]
    assert (row["az_deg"], row["el_deg"], row["range_km"], row["range_rate_km_s"]) == \
        (float(v["az"]), float(v["el"]), float(v["range"]), float(v["rr"]))


@pytest.mark.parametrize("values, field, words", [
    ({"el": "-30.0"}, "el_deg", "el_deg = -30 deg is outside [-5, 90] deg"),
    ({"el": "-5.1"}, "el_deg", "el_deg = -5.1 deg is outside [-5, 90] deg"),
    ({"range": "0.0"}, "range_km", "range_km = 0 km is outside (0, 2.99312e+06] km"),
    ({"range": "1.0e7"}, "range_km", "range_km = 1e+07 km is outside (0, 2.99312e+06] km"),
    ({"rr": "30.0"}, "range_rate_km_s",
     "range_rate_km_s = 30 km/s is outside [-22.3598, 22.3598] km/s"),
    ({"rr": "-22.4"}, "range_rate_km_s",
     "range_rate_km_s = -22.4 km/s is outside [-22.3598, 22.3598] km/s"),
])
def test_observation_out_of_bounds_is_rejected_naming_field_value_and_bound(
        tmp_path, values, field, words):
    r = _read_tdm(tmp_path, **values)
    assert r.accepted == 0
    (hit,) = _bound_rejects(r)
    assert hit[0] == field and hit[1].startswith(words), hit
    assert r.rejects["source_record"].to_pylist() == [14]        # the row's first data line


@pytest.mark.parametrize("name", ["TDMExample8.txt", "TDMExample8.xml"])
def test_example8_ranges_without_their_modulus_are_stopped_by_the_bound(tmp_path, name):
    # Strip RANGE_MODULUS (as a producer that forgot it would): the residues then read as
    # light time, 4.0e4 s * c / 2 = 6.0e9 km from a station seeing the object 1.3 deg up,
    # and the bound refuses those rows whole, naming the range.
    text = shared(f"ccsds/orekit/tdm/{name[-3:].replace('txt', 'kvn')}/{name}").read_text()
    stripped = (text.replace("RANGE_MODULUS = 1.000000E+07", "RANGE_MODULUS = 0")
                .replace("<RANGE_MODULUS>1.0E7</RANGE_MODULUS>",
                         "<RANGE_MODULUS>0</RANGE_MODULUS>"))
    assert stripped != text
    path = tmp_path / name
    path.write_text(stripped)
    r = read_file(path, source="test")
    assert "WHM1" not in r.elements["sensor_id"].to_pylist()
    expected = [f"range_km = {v * C_KM_S / 2:g} km is outside (0, 2.99312e+06] km"
                for v in (4.00165248953670E+04, 3.57238793591890E+04, 3.48156855860090E+04)]
    hits = _bound_rejects(r)
    assert [f for f, _ in hits] == ["range_km"] * 3
    assert [why[:len(e)] for (_, why), e in zip(hits, expected)] == expected


def _provenance() -> Provenance:
    return Provenance("test", "hand", "mem", "0" * 64, 1_800_000_000 * 10**9,
                      mk.parse("UNCLASSIFIED"))


def _record(line: int, **values) -> dict:
    rec = dict.fromkeys(OBSERVATION_COLUMNS)
    rec.update(time=1_700_000_000 * 10**9, sensor_id="S1", kind="optical", source_record=line,
               marking=None, _raw=f"line {line}")
    rec.update(values)
    return rec


def test_bounds_apply_to_any_adapter_where_rows_are_normalised():
    # hand-made optical records through the one normalisation every adapter's batch passes
    batch = Batch(table="observations", records=[
        _record(1, ra_deg=10.0, dec_deg=-20.0, angle_sigma_deg=0.01),       # kept
        _record(2, ra_deg=360.0, dec_deg=0.0),                               # RA domain
        _record(3, ra_deg=10.0, dec_deg=95.0),                               # dec domain
        _record(4, ra_deg=10.0, dec_deg=0.0, angle_sigma_deg=-0.1),          # negative sigma
        _record(5, range_km=float("nan")),                                   # NaN
        _record(6, az_deg=-1.0, el_deg=10.0),                                # azimuth domain
    ])
    rows, rejects = to_tables(batch, _provenance())
    assert rows["source_record"].to_pylist() == [1]
    assert rejects["source_record"].to_pylist() == [2, 3, 4, 5, 6]
    assert rejects["field"].to_pylist() == ["ra_deg", "dec_deg", "angle_sigma_deg",
                                            "range_km", "az_deg"]
    reasons = rejects["reason"].to_pylist()
    assert reasons[0].startswith("ra_deg = 360 deg is outside [0, 360) deg")
    assert reasons[1].startswith("dec_deg = 95 deg is outside [-90, 90] deg")
    assert reasons[2].startswith("angle_sigma_deg = -0.1 deg is outside [0, inf] deg")
    assert reasons[3].startswith("range_km is NaN, not a measurement")
    assert rejects["raw"].to_pylist()[0] == "line 2"


@pytest.mark.parametrize("path, rows", [
    ("observations/optical_gps_2020/20200917_041957_001_03005A_UTA-ASTRIANet-02.tdm", 60),
    ("observations/trusat_orbit/RDE_data_compliant.txt", None),
    ("observations/satfit/sats/04376.txt", None),
])
def test_real_observations_lose_no_row_to_the_bounds(path, rows):
    r = read_file(shared(path), source="test")
    assert _bound_rejects(r) == [] and r.accepted > 0
    if rows is not None:                    # SOURCES.md: 60 angle pairs of NORAD 27663
        assert r.accepted == rows

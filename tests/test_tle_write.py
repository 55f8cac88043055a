"""TLE writer checked by python-sgp4's own parser.

Where expected values come from: the table that was written (the input), python-sgp4's
``Satrec.twoline2rv`` and ``sgp4.alpha5`` (independent of our reader), the checksum rule of
the format recomputed here, and, for real content, the source lines of
``spacetrack_3le_2023-10-09_cdm_on_chain.txt``: positions at epoch of the written and the
source element sets agree to 1 mm (the values are the source's decimal digits written back,
so they agree to ~1e-9 km). Tests needing ``../shared/data`` skip when it is absent.
"""

from __future__ import annotations

import numpy as np
import pytest
from _element_rows import element_row, table
from conftest import shared
from sgp4.alpha5 import to_alpha5
from sgp4.api import Satrec

from ssafuse.formats import tle
from ssafuse.records import read_file

CATALOGUE = "catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt"


def row(**over) -> dict:
    """An element-set row with values a TLE's columns hold exactly."""
    return element_row(**{"mean_motion_rev_day": 15.485572, "eccentricity": 0.0007972,
                          "bstar": 1.7626e-04, "mean_motion_ddot": 1.2345e-11, "marking": "U",
                          **over})



def checksum(line: str) -> int:
    """Sum of the digits of columns 1-68, '-' counting 1, mod 10 (the TLE rule)."""
    return sum(int(c) if c.isdigit() else c == "-" for c in line[:68]) % 10


def element_lines(text: str) -> list[tuple[str, str]]:
    lines = [ln for ln in text.splitlines() if ln[:2] in ("1 ", "2 ")]
    return list(zip(lines[::2], lines[1::2]))


def test_written_lines_parse_in_sgp4_with_the_rows_values():
    src = row()
    text, refused = tle.dumps(table([src]))
    assert refused == []
    name, l1, l2 = text.splitlines()
    assert name.rstrip() == src["object_name"] and len(name) == tle.NAME_WIDTH
    assert len(l1) == len(l2) == 69
    assert int(l1[68]) == checksum(l1) and int(l2[68]) == checksum(l2)
    sat = Satrec.twoline2rv(l1, l2)
    assert sat.satnum == src["object_id"] and sat.intldesg == "98067A"
    assert sat.classification == "U" and sat.elnum == 999 and sat.revnum == 55640
    assert sat.bstar == src["bstar"] and sat.nddot != 0
    assert round(sat.inclo * 180 / np.pi, 4) == src["inclination_deg"]
    assert round(sat.ecco, 7) == src["eccentricity"]
    jd = (sat.jdsatepoch - 2440587.5 + sat.jdsatepochF) * 86400e9
    assert abs(jd - src["epoch"]) < 864e3 / 2 + 1e3  # within half the 1e-8 day unit


@pytest.mark.parametrize("object_id", [100000, 148493, 270000, 339999])
def test_alpha5_numbers_round_trip(object_id, tmp_path):
    text, refused = tle.dumps(table([row(object_id=object_id)]), names=False)
    assert refused == []
    l1, l2 = text.splitlines()
    assert l1[2:7] == l2[2:7] == to_alpha5(object_id)
    assert Satrec.twoline2rv(l1, l2).satnum == object_id
    (tmp_path / "a.tle").write_text(text)
    back = read_file(tmp_path / "a.tle", source="t", format="tle").elements
    assert back.column("object_id").to_pylist() == [object_id]


def test_object_number_above_alpha5_is_refused_never_truncated():
    text, refused = tle.dumps(table([row(object_id=340000), row(object_id=5)]))
    assert [(r.row, r.object_id, r.field) for r in refused] == [(0, 340000, "object_id")]
    assert "339999" in refused[0].reason
    assert [Satrec.twoline2rv(a, b).satnum for a, b in element_lines(text)] == [5]


@pytest.mark.parametrize("over, field", [
    ({"rev_at_epoch": 100000}, "rev_at_epoch"),
    ({"element_set_no": 10000}, "element_set_no"),
    ({"classification": "SECRET", "releasable_to": ["USA"], "marking": "SECRET//REL TO USA"},
     "marking"),
    ({"classification": "TOP SECRET", "marking": "TOP SECRET"}, "marking"),
    ({"bstar": float("inf")}, "bstar"),
    ({"object_name": "1 LOOKS LIKE A LINE"}, "object_name"),
    ({"intl_designator": "98-067A"}, "intl_designator"),
])
def test_unwritable_rows_are_refused_with_the_field(over, field):
    text, refused = tle.dumps(table([row(object_id=7, **over)]))
    assert [(r.object_id, r.field) for r in refused] == [(7, field)]
    assert text == ""


def test_secret_letter_is_written_and_read_back(tmp_path):
    text, refused = tle.dumps(table([row(classification="SECRET", marking="SECRET")]))
    assert refused == []
    assert element_lines(text)[0][0][7] == "S"
    (tmp_path / "s.tle").write_text(text)
    back = read_file(tmp_path / "s.tle", source="t", format="tle").elements
    assert back.column("classification").to_pylist() == ["SECRET"]


@pytest.mark.slow
def test_catalogue_written_as_tle_propagates_like_its_source(tmp_path):
    path = shared(CATALOGUE)
    source_lines = element_lines(path.read_text())
    t = read_file(path, source="st").elements
    text, refused = tle.dumps(t)
    assert refused == []
    written = element_lines(text)
    assert len(written) == len(source_lines) == t.num_rows
    for l1, l2 in written:
        assert int(l1[68]) == checksum(l1) and int(l2[68]) == checksum(l2)
    got = np.array([Satrec.twoline2rv(*p).sgp4_tsince(0.0)[1] for p in written])
    want = np.array([Satrec.twoline2rv(*p).sgp4_tsince(0.0)[1] for p in source_lines])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    (tmp_path / "c.tle").write_text(text)
    back = read_file(tmp_path / "c.tle", source="t", format="tle").elements
    cols = ["object_id", "intl_designator", "object_name", "epoch", "mean_motion_rev_day",
            "eccentricity", "inclination_deg", "raan_deg", "arg_perigee_deg",
            "mean_anomaly_deg", "bstar", "mean_motion_dot", "mean_motion_ddot",
            "element_set_no", "rev_at_epoch", "classification"]
    assert back.select(cols).equals(t.select(cols))


@pytest.mark.parametrize("column, value", [
    ("mean_motion_dot", -1.0),                 # the field is sign + .NNNNNNNN: no unit digit
    ("mean_motion_rev_day", 19.999999999),     # rounds to 20.00000000, which readers refuse
    ("mean_motion_rev_day", 1e-9),             # rounds to 0
])
def test_a_value_the_columns_would_change_is_refused_not_rounded_into_another(column, value):
    text, refused = tle.dumps(table([row(**{column: value})]))
    assert text == "" and [r.field for r in refused] == [column]

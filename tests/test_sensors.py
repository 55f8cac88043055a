"""Sensor tables from COSPAR site lists and a user's CSV; unknown sensors are rejected."""

from __future__ import annotations

import pytest

from conftest import shared
from ssafuse.errors import FormatError
from ssafuse.sensors import lookup, merge, read_sensors


def test_cospar_site_lists_read_with_elevation_in_km():
    satfit = read_sensors(shared("observations/sites/scottcampbell-satfit_STATIONS.IN"))
    strf = read_sensors(shared("observations/sites/strf_sites.txt"))
    assert satfit.num_rows == 47 and strf.num_rows == 64
    # STATIONS.IN: "2420 RE   55.9486   -3.1386     40.    Russell Eberst"
    assert lookup(satfit)["2420"] == (55.9486, -3.1386, 0.040)


def test_merge_keeps_the_first_list_per_sensor(tmp_path):
    a = tmp_path / "mine.csv"
    a.write_text("sensor_id,latitude_deg,longitude_deg,altitude_km,name\n"
                 "2420,1.0,2.0,0.5,override\nRADAR1,10,20,0.1,Partner radar\n")
    mine = read_sensors(a)
    both = merge(mine, read_sensors(shared("observations/sites/strf_sites.txt")))
    assert lookup(both)["2420"] == (1.0, 2.0, 0.5)
    assert len(set(both["sensor_id"].to_pylist())) == both.num_rows


def test_bad_site_line_names_file_and_line(tmp_path):
    p = tmp_path / "sites.txt"
    p.write_text("# No ID   Latitude Longitude   Elev   Observer\n4171 CB   52.8344 east 10 x\n")
    with pytest.raises(FormatError) as e:
        read_sensors(p)
    assert e.value.line == 2 and e.value.path == str(p)

"""Attached objects (ssafuse.attached): vehicles docked to a station get no Pc.

Expected values and where they come from:
* Which pairs of CelesTrak's "stations" group of 2026-03-10 (sample_tles/) stay within the
  5 km threshold of each other for a whole day: python-sgp4 itself (``SatrecArray`` from
  ``Satrec.twoline2rv`` of each object's own TLE lines, exported by sgp4's ``exporter``),
  sampled every 30 s, not ssafuse's screening.
* Formation flyers and copies: element sets made with python-sgp4 (``sgp4init`` with one
  element changed, ``export_tle``), their motion again from python-sgp4.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sgp4.api import WGS72, Satrec, SatrecArray
from sgp4.exporter import export_tle

from conftest import SAMPLES
from ssafuse import assessment as A
from ssafuse.nightly.config import ConfigError, load_config
from ssafuse.records import read_file
from ssafuse.screening import screen
from ssafuse.timeutil import jd_from_ns, to_ns

START = "2026-03-10T00:00:00Z"
STATIONS = SAMPLES / "celestrak_stations_gp_2026-03-10.json"


def _assessed(elements: pa.Table, **kw) -> pa.Table:
    res = screen(elements, START, days=1.0, threshold_km=5.0, workers=1,
                 max_epoch_gap_days=365)
    return A.assess(res.conjunctions, elements=elements, **kw)


def _satrecs(elements: pa.Table) -> tuple[list[int], SatrecArray]:
    ids = elements["object_id"].to_pylist()
    sats = [Satrec.twoline2rv(*export_tle(_satrec_of(row))) for row in elements.to_pylist()]
    return ids, SatrecArray(sats)


def _satrec_of(row: dict) -> Satrec:
    """python-sgp4's own satellite from an element set's mean elements (WGS-72, as in TLEs;
    ndot and nddot are not used by SGP4)."""
    sat = Satrec()
    jd, fr = jd_from_ns(np.array([to_ns(row["epoch"])]))
    sat.sgp4init(WGS72, "i", row["object_id"], float(jd[0] - 2433281.5 + fr[0]), row["bstar"],
                 0.0, 0.0, row["eccentricity"], math.radians(row["arg_perigee_deg"]),
                 math.radians(row["inclination_deg"]), math.radians(row["mean_anomaly_deg"]),
                 row["mean_motion_rev_day"] * 2 * math.pi / 1440.0,
                 math.radians(row["raan_deg"]))
    return sat


def _ranges(elements: pa.Table):
    """python-sgp4 positions every 30 s over the day: ``{(a, b): (max range, min range)}``."""
    ids, arr = _satrecs(elements)
    jd0, fr0 = jd_from_ns(np.array([to_ns(START)]))
    fr = fr0[0] + np.arange(0, 86400.0 + 1, 30.0) / 86400.0
    e, r, _ = arr.sgp4(np.full(fr.shape, jd0[0]), fr)
    assert not e.any()
    out = {}
    for i, j in itertools.combinations(range(len(ids)), 2):
        d = np.linalg.norm(r[i] - r[j], axis=1)
        out[tuple(sorted((ids[i], ids[j])))] = (d.max(), d.min())
    return out


def test_docked_vehicles_of_both_stations_are_attached_and_get_no_pc():
    el = read_file(STATIONS, source="celestrak").elements
    out = _assessed(el)
    ranges = _ranges(el)
    # physically one body: within a station's size (200 m) of each other all day, sampled
    # every 30 s by python-sgp4; named after the station among them
    anchors = {25544: "ISS", 48274: "CSS (Tiangong)"}
    one_body = {p for p, (far, _) in ranges.items() if far < 0.2}
    want = {}
    for anchor, name in anchors.items():
        group = {anchor} | {x for p in one_body if anchor in p for x in p}
        want.update({p: name for p in one_body if set(p) <= group})
    assert len(want) >= 20 and set(want) == one_body   # the modules and visitors of both
    got = {tuple(sorted((r["object_id_1"], r["object_id_2"]))): r
           for r in out.to_pylist()}
    attached = {p: r["attached_group"] for p, r in got.items() if r["attached"]}
    assert attached == want
    for p, r in got.items():
        if r["attached"]:
            assert r["pc"] is None and r["max_pc"] is None and r["max_pc_isotropic"] is None
        else:
            assert r["max_pc"] is not None and r["attached_group"] is None


def _variant(sat: Satrec, object_id: int, **change) -> list[str]:
    """TLE lines (python-sgp4's exporter) of ``sat`` as object ``object_id``, one element
    changed (radians)."""
    args = dict(ecco=sat.ecco, argpo=sat.argpo, inclo=sat.inclo, mo=sat.mo,
                no_kozai=sat.no_kozai, nodeo=sat.nodeo)
    args.update(change)
    new = Satrec()
    new.sgp4init(WGS72, "i", object_id, sat.jdsatepoch - 2433281.5 + sat.jdsatepochF,
                 sat.bstar, 0.0, 0.0, args["ecco"], args["argpo"], args["inclo"], args["mo"],
                 args["no_kozai"], args["nodeo"])
    return list(export_tle(new))


def _tle_file(tmp_path, rows: list[tuple[str, list[str]]]):
    path = tmp_path / "pairs.tle"
    path.write_text("".join(f"{name}\n{a}\n{b}\n" for name, (a, b) in rows))
    return read_file(path, source="test").elements


@pytest.fixture(scope="module")
def noaa15() -> Satrec:
    el = read_file(SAMPLES / "celestrak_active_2025-04-23_first300.tle",
                   source="celestrak").elements
    row = el.filter(pc.equal(el["object_id"], 25338)).to_pylist()[0]
    return _satrec_of({**row, "epoch": "2026-03-09T12:00:00Z"})  # near the window


def test_formation_flyers_are_co_located_not_attached_and_a_copy_is(tmp_path, noaa15):
    el = _tle_file(tmp_path, [
        ("BASE", _variant(noaa15, 90001)),
        ("COPY", _variant(noaa15, 90002)),                                # the same elements
        ("TRAIL", _variant(noaa15, 90003, mo=noaa15.mo + 1.0 / 7200)),   # ~1 km behind
        ("HELIX", _variant(noaa15, 90004, inclo=noaa15.inclo + 1e-4)),   # cross-track swing
        ("DOCKED", _variant(noaa15, 90005, mo=noaa15.mo + 0.05 / 7200)),  # ~50 m behind
    ])
    ranges = _ranges(el)
    res = _assessed(el, complexes={})
    rows = {tuple(sorted((r["object_id_1"], r["object_id_2"]))): r for r in res.to_pylist()}
    # python-sgp4: all four stay within 5 km of BASE all day; only the copy sits on it
    for other in (90002, 90003, 90004):
        far, near = ranges[(90001, other)]
        assert far < 5.0 and rows[(90001, other)]["co_located"]
    assert ranges[(90001, 90002)][0] < 1e-9
    assert ranges[(90001, 90003)][1] > 0.5 and ranges[(90001, 90004)][0] > 0.3
    assert rows[(90001, 90002)]["attached"] and \
        rows[(90001, 90002)]["attached_group"] == "attached to 90001"
    assert not rows[(90001, 90003)]["attached"] and rows[(90001, 90003)]["max_pc"] is not None
    assert not rows[(90001, 90004)]["attached"] and rows[(90001, 90004)]["max_pc"] is not None
    # naming BASE a complex attaches what sits on it (DOCKED, 50 m behind, still), never
    # what drifts near it (TRAIL, HELIX): those keep their max Pc
    named = _assessed(el, complexes={"BASE STATION": 90001})
    got = {tuple(sorted((r["object_id_1"], r["object_id_2"]))): r
           for r in named.to_pylist()}
    assert ranges[(90001, 90005)][0] < 0.2
    assert got[(90001, 90005)]["attached_group"] == "BASE STATION"
    assert got[(90001, 90002)]["attached_group"] == "BASE STATION"
    for other in (90003, 90004):
        assert not got[(90001, other)]["attached"] and got[(90001, other)]["max_pc"] is not None


@pytest.mark.parametrize("pc_table, message", [
    ('complexes = ["ISS"]', "pc.complexes takes a table"),
    ('complexes = { ISS = "25544" }', "pc.complexes"),
    ('max_pc_method = "alfano"', "pc.max_pc_method must be one of"),
])
def test_config_refuses_bad_complexes_and_methods(tmp_path, pc_table, message):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'store = "{tmp_path / "store"}"\n[[feeds]]\nsource = "a"\n'
                   f'paths = ["{STATIONS}"]\n[pc]\n{pc_table}\n')
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


def test_an_export_of_a_run_made_before_attached_objects_is_assessed_again(tmp_path):
    """Rows of an older run (no attached / max_pc_method columns: null) are not reused as
    they are: every event is assessed with today's model, none keeps the isotropic value."""
    from ssafuse.jobs import assess_events
    from ssafuse.schema import CONJUNCTIONS

    el = read_file(STATIONS, source="celestrak").elements
    res = screen(el, START, days=1.0, threshold_km=5.0, workers=1, max_epoch_gap_days=365)
    old = A.assess(res.conjunctions, elements=el, max_pc_method="isotropic")
    for name in ("attached", "attached_group", "max_pc_method"):
        old = old.set_column(old.schema.get_field_index(name), CONJUNCTIONS.field(name),
                             pa.nulls(old.num_rows, CONJUNCTIONS.field(name).type))
    done = assess_events(res.conjunctions, el, {"write_cdms": "none"}, tmp_path / "cdm",
                         creation_date=dt.datetime(2026, 3, 10, tzinfo=dt.timezone.utc),
                         assessed=old)
    fresh = A.assess(res.conjunctions, elements=el)
    assert done.conjunctions["attached"].to_pylist() == fresh["attached"].to_pylist()
    assert done.conjunctions["max_pc_method"].to_pylist() == \
        fresh["max_pc_method"].to_pylist()
    assert any(done.conjunctions["attached"].to_pylist())

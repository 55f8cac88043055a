"""Conjunction assessment (ssafuse.assess): max Pc, Pc from a stored CDM, CDMs written per
conjunction.

Expected values and where they come from:
* max Pc: brute-force maximisation over sigma of the isotropic 2-D Gaussian's mass inside the
  hard-body circle, that mass from scipy's non-central chi-square (``ncx2.cdf(R^2/s^2, 2,
  d^2/s^2)``), independent of ``ssafuse.pc``.
* Pc from a stored CDM: ``ssafuse pc`` on the very CDM file (NASA CARA's real CDM
  000025994_conj_000037558, ../shared/data/pc/nasa_cara/DataFiles/PcTestCaseCDMs).
* States in written CDMs: Skyfield's ``EarthSatellite`` (its own python-sgp4
  ``Satrec.twoline2rv`` of the TLE text, its own UTC handling, its TEME -> GCRS rotation).
* SOCRATES: CelesTrak SOCRATES Plus of 2026-03-09 (../shared/data/socrates_2026-03-09), top 20
  events by maximum probability, screened from the element sets SOCRATES used.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scipy import optimize, stats

from _socrates import SOCRATES, socrates_top20
from conftest import shared
from ssafuse import assessment as A
from ssafuse import pc
from ssafuse.formats.ccsds import cdm
from ssafuse.cli import EXIT_OK, main
from ssafuse.timeutil import to_ns
from ssafuse.records import read_file
from ssafuse.schema import CONJUNCTIONS
from ssafuse.screening import screen
from ssafuse.ingestion import ingest
from ssafuse.store import Store

PAIR = "socrates_2026-03-09/top20_pair_gp/gp_47935,49179.txt"   # GRUS-1E / STARLINK-3043
PAIR_START = "2026-03-12T04:30:00Z"                              # TCA 04:44:40.733
CARA_CDM = ("pc/nasa_cara/DataFiles/PcTestCaseCDMs/"
            "000025994_conj_000037558_20210324_151047_20210323_154356.cdm")
CREATED = dt.datetime(2026, 3, 10, 2, 0, tzinfo=dt.timezone.utc)


def _conjunctions(rows: list[dict]) -> pa.Table:
    """A conjunctions table from a few columns; the rest plausible constants."""
    base = {"object_name_1": None, "object_name_2": None, "relative_speed_km_s": 10.0,
            "radial_km": 0.0, "in_track_km": 0.0, "cross_track_km": 0.0, "dse_1_days": 1.0,
            "dse_2_days": 1.0, "co_located": False, "threshold_km": 5.0,
            "window_start": 0, "window_end": 0, "epoch_1": 0, "epoch_2": 0,
            "classification": "UNCLASSIFIED", "releasable_to": None, "marking": "UNCLASSIFIED"}
    cols = {}
    for f in CONJUNCTIONS:
        vals = [r.get(f.name, base.get(f.name)) for r in rows]
        if pa.types.is_timestamp(f.type):
            cols[f.name] = pa.array(vals, pa.int64()).cast(f.type)
        else:
            cols[f.name] = pa.array(vals, f.type)
    return pa.table(cols, schema=CONJUNCTIONS)


def _pc_isotropic(d, R, s):
    """Mass of N((d, 0), s^2 I) inside the circle of radius R at the origin (Rice / ncx2)."""
    return stats.ncx2.cdf((R / s) ** 2, 2, (d / s) ** 2)


def test_max_pc_is_the_brute_force_maximum_over_sigma():
    cases = [(100.0, 10.0), (25.0, 20.0), (1000.0, 5.0), (14.25, 13.0), (60.0, 1.0)]
    conj = _conjunctions([{"object_id_1": 1, "object_id_2": 2 + k, "tca": 10**18,
                           "miss_distance_km": d / 1e3} for k, (d, _) in enumerate(cases)])
    out = A.assess(conj, hbr_m=None, hbr_table={1: 0.0, **{2 + k: R for k, (_, R) in
                                                           enumerate(cases)}})
    assert out["hbr_source"].to_pylist() == ["cara-table"] * len(cases)
    for k, (d, R) in enumerate(cases):
        grid = np.geomspace(1e-3 * d, 10 * d, 2001)
        best = grid[np.argmax(_pc_isotropic(d, R, grid))]
        res = optimize.minimize_scalar(lambda ls: -_pc_isotropic(d, R, math.exp(ls)),
                                       bounds=(math.log(best / 1.01), math.log(best * 1.01)),
                                       method="bounded", options={"xatol": 1e-10})
        want, want_sigma = -res.fun, math.exp(res.x)
        got = out["max_pc"][k].as_py()
        assert got == pytest.approx(want, rel=1e-7), (d, R)
        # the maximum is flat in sigma: its position is known to ~sqrt(rel tolerance)
        assert out["max_pc_sigma_km"][k].as_py() * 1e3 == pytest.approx(want_sigma, rel=1e-3)
        assert out["hbr_m"][k].as_py() == R


def test_miss_within_hbr_gives_max_pc_one_and_no_dilution():
    conj = _conjunctions([{"object_id_1": 1, "object_id_2": 2, "tca": 10**18,
                           "miss_distance_km": 0.008}])
    out = A.assess(conj)                                   # default combined HBR 10 m
    assert out["max_pc"][0].as_py() == 1.0 and out["max_pc_sigma_km"][0].as_py() is None
    assert out["hbr_m"][0].as_py() == A.DEFAULT_HBR_M and out["pc"][0].as_py() is None


def test_cdm_in_the_store_gives_the_same_pc_as_ssafuse_pc_on_that_file(tmp_path):
    path = shared(CARA_CDM)
    store = Store(tmp_path / "store")
    ingest(store, [str(path)], source="cara", marking="UNCLASSIFIED//REL TO USA, GBR")
    msg = cdm.read(path)
    tca = msg.tca_ns
    a, b = (int(o["OBJECT_DESIGNATOR"]) for o in msg.objects)
    miss_km = msg.relative["MISS_DISTANCE"] / 1e3
    # the event as a screening would report it, built from the CDM's own objects and TCA:
    # object 1 the smaller number (the CDM's order reversed), TCA 5 s off; and the same pair
    # 2 minutes off, which must not match
    conj = _conjunctions([
        {"object_id_1": min(a, b), "object_id_2": max(a, b), "tca": tca + 5 * 10**9,
         "miss_distance_km": miss_km},
        {"object_id_1": min(a, b), "object_id_2": max(a, b), "tca": tca + 120 * 10**9,
         "miss_distance_km": miss_km}])
    out = A.assess(conj, hbr_m=7.0, cdms=store.table("cdms"))
    result = CliRunner().invoke(main, ["pc", str(path), "--out", str(tmp_path / "pc.parquet")])
    assert result.exit_code == EXIT_OK, result.output
    want = pq.read_table(tmp_path / "pc.parquet").to_pylist()[0]
    assert out["pc"][0].as_py() == pytest.approx(want["pc"], rel=1e-12)
    assert out["pc_method"][0].as_py() == f"foster-2d:cdm:{msg.message_id}"
    assert (out["hbr_m"][0].as_py(), out["hbr_source"][0].as_py()) == (want["hbr_m"], "cdm")
    # the CDM's marking joins the event's: releasability intersected
    assert out["marking"][0].as_py() == "UNCLASSIFIED//REL TO GBR, USA"
    assert out["pc"][1].as_py() is None and out["pc_method"][1].as_py() is None
    assert (out["hbr_m"][1].as_py(), out["hbr_source"][1].as_py()) == (7.0, "hbr_m")
    assert out["marking"][1].as_py() == "UNCLASSIFIED"


@pytest.fixture(scope="module")
def pair():
    """GRUS-1E and STARLINK-3043 from the TLEs SOCRATES used, screened around their TCA."""
    path = shared(PAIR)
    el = read_file(path, source="celestrak").elements
    res = screen(el, PAIR_START, days=1 / 48, threshold_km=5.0, workers=1)
    assert res.conjunctions.num_rows == 1
    return path, el, res.conjunctions


def test_written_cdm_states_equal_skyfield_sgp4_of_the_tle_text(pair, tmp_path):
    from skyfield.api import EarthSatellite, load

    path, el, conj = pair
    conj = A.assess(conj, elements=el)
    (kvn,) = A.write_cdms(conj, el, tmp_path, creation_date=CREATED, version="2.0")
    msg = cdm.read(kvn)
    assert msg.header["CREATION_DATE"] == to_ns(CREATED)
    assert msg.header["CLASSIFICATION"] == "UNCLASSIFIED"
    ts = load.timescale(builtin=True)
    iso = cdm.format_epoch(msg.tca_ns)                   # YYYY-MM-DDTHH:MM:SS.fffffffff
    t = ts.utc(*(int(x) for x in (iso[:4], iso[5:7], iso[8:10], iso[11:13], iso[14:16])),
               float(iso[17:]))
    lines = path.read_text().splitlines()
    by_id = {int(lines[k + 1][2:7]): EarthSatellite(lines[k + 1], lines[k + 2], lines[k], ts)
             for k in range(0, len(lines) - 2, 3)}
    worst_r = worst_v = 0.0
    for obj in msg.objects:
        geo = by_id[int(obj["OBJECT_DESIGNATOR"])].at(t)
        dr = np.subtract([obj[k] for k in "XYZ"], geo.position.km)
        dv = np.subtract([obj[k] for k in ("X_DOT", "Y_DOT", "Z_DOT")], geo.velocity.km_per_s)
        worst_r, worst_v = max(worst_r, np.abs(dr).max()), max(worst_v, np.abs(dv).max())
        assert obj["REF_FRAME"] == "GCRF"
    # Same SGP4 elements (twoline2rv and ssafuse's sgp4init give identical Satrecs for TLE
    # text), same rotation; what is left is Skyfield's float time (~1e-11 s): 1 mm, 1 um/s.
    assert worst_r < 1e-6 and worst_v < 1e-9, (worst_r, worst_v)
    # relative metadata agrees with the screening row (frame-independent lengths)
    row = conj.to_pylist()[0]
    assert msg.relative["MISS_DISTANCE"] == pytest.approx(row["miss_distance_km"] * 1e3,
                                                          abs=1e-6)
    rtn = [msg.relative[f"RELATIVE_POSITION_{c}"] for c in "RTN"]
    ric = [row[k] * 1e3 for k in ("radial_km", "in_track_km", "cross_track_km")]
    assert np.allclose(rtn, ric, atol=1e-6)
    assert msg.relative["COLLISION_MAX_PROBABILITY"] == row["max_pc"]
    print(f"CDM states vs Skyfield: max |dr| {worst_r * 1e6:.3g} mm, "
          f"max |dv| {worst_v * 1e9:.3g} um/s")


@pytest.mark.parametrize("fmt", ["kvn", "xml"])
@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_written_cdms_read_back_equal(pair, tmp_path, fmt, version):
    _, el, conj = pair
    conj = A.assess(conj, elements=el, covariance_model={"*": (0.1, 0.3, 0.1)})
    msgs = A.conjunction_cdms(conj, el, creation_date=CREATED, version=version)
    paths = A.write_cdms(conj, el, tmp_path, fmt=fmt, creation_date=CREATED, version=version)
    without = A.conjunction_cdms(conj, el, creation_date=CREATED, version=version)
    assert without == msgs                                 # deterministic, clock-free
    assert [cdm.read(p) for p in paths] == msgs
    assert paths[0].name == msgs[0].message_id + (".cdm" if fmt == "kvn" else ".xml")
    assert ("CLASSIFICATION" in msgs[0].header) == (version == "2.0")


def test_covariance_labelled_assumed_and_zero_placeholder_refused(pair):
    _, el, conj = pair
    model = {"*": (0.1, 0.3, 0.1)}
    out = A.assess(conj, elements=el, covariance_model=model)
    assert out["pc_method"][0].as_py() == A.PC_METHOD_ASSUMED
    # the CDM written with the same model gives the same Pc (GCRF instead of TEME)
    (with_model,) = A.conjunction_cdms(out, el, creation_date=CREATED, covariance_model=model)
    assert pc.pc_from_cdm([with_model], hbr_m=A.DEFAULT_HBR_M).pc[0] == pytest.approx(
        out["pc"][0].as_py(), rel=1e-9)
    assert with_model.relative["COLLISION_PROBABILITY"] == out["pc"][0].as_py()
    # without a model: zeros, said so, and no Pc can be made of them
    (bare,) = A.conjunction_cdms(out, el, creation_date=CREATED)
    assert all(bare.objects[0][k] == 0.0 for k in cdm.COVARIANCE_RTN)
    assert any("carry no covariance" in c for c in bare.comments["object1/covarianceMatrix"])
    res = pc.pc_from_cdm([bare], hbr_m=10.0)
    assert math.isnan(res.pc[0]) and "invalid-covariance" in pc.flag_names(res.flags[0])
    # a type the model does not cover gets no Pc
    out = A.assess(conj, elements=el, covariance_model={"PAYLOAD": (0.1, 0.3, 0.1)})
    assert out["pc"][0].as_py() is None and out["max_pc"][0].as_py() is not None


def test_max_pc_columns_on_socrates_top20_obey_the_density_bound():
    """Both max-Pc columns ``assess`` writes, on SOCRATES's real events (what this file alone
    checks: tests/test_socrates_max_pc.py fits SOCRATES's probabilities, radius and dilution).

    SOCRATES's object radii are not published (CelesTrak's "Max Probability" says only "fixed
    spherical object radii"), so no bound on an implied radius is made here. Instead an exact
    inequality: an encounter-plane Gaussian with axes ``a*s``, ``s`` (``a >= 1``) has density at
    most ``a`` times the isotropic one of sigma ``a*s`` at every point (``exp(-x^2/(2a^2s^2) -
    z^2/(2s^2)) <= exp(-(x^2+z^2)/(2a^2s^2))``), so over the disc and then over size,
    ``max_pc <= a * max_pc_isotropic``; ``a`` is at most 3 by CelesTrak's 100/300/100 m."""
    top20, got = socrates_top20()
    miss_m = got["miss_distance_km"].to_numpy() * 1e3
    iso = got["max_pc_isotropic"].to_numpy()
    shaped = got["max_pc"].to_numpy()
    # the isotropic column is ssafuse's own max_pc at the default radius, event by event
    np.testing.assert_allclose(iso, pc.max_pc(miss_m, A.DEFAULT_HBR_M)[0], rtol=1e-12)
    # CelesTrak: "If the combined object radius is greater than the relative distance, the
    # maximum probability will be one": the 9.5 m event, inside the 10 m default
    assert miss_m[0] < A.DEFAULT_HBR_M and top20[0]["max_prob"] == 1.0
    assert iso[0] == 1.0 and shaped[0] == 1.0
    ar = []
    for k, ev in enumerate(top20[1:], start=1):
        el = read_file(shared(SOCRATES) / "top20_pair_gp" / ev["gp_file"].replace(".txt", ".csv"),
                       source="celestrak").elements
        ok, r, v, _ = A.states_at_tca(got.slice(k, 1), el)
        assert ok[0]
        ar.append(pc.socrates_aspect_ratio(r[0], v[0], r[1], v[1])[0])
    ar = np.array(ar)
    assert len(ar) == 19 and (ar >= 1.0).all() and (ar <= 3.0 + 1e-12).all(), ar
    # the SOCRATES shape is the larger (the circle is its a = 1 case, and the worst
    # orientation of a longer ellipse gives more), but never by more than its axis ratio
    assert (shaped[1:] > iso[1:]).all()
    assert (shaped[1:] <= ar * iso[1:] * (1 + 1e-9)).all(), shaped[1:] / (ar * iso[1:])


def test_cli_screen_fills_max_pc_and_cdm_writes_one_message_per_event(tmp_path):
    path = shared(PAIR)
    store = tmp_path / "store"
    runner = CliRunner()
    result = runner.invoke(main, ["screen", str(path), "--store", str(store), "--start",
                                  PAIR_START, "--days", str(1 / 48), "--workers", "1",
                                  "--hbr-m", "12"])
    assert result.exit_code == EXIT_OK, result.output
    run = Store(store).table("conjunctions")
    assert run.num_rows == 1 and run["hbr_m"][0].as_py() == 12.0
    assert run["max_pc_isotropic"][0].as_py() == pytest.approx(
        pc.max_pc(run["miss_distance_km"][0].as_py() * 1e3, 12.0)[0], rel=1e-12)
    # SOCRATES's shape is the default (tests/test_socrates_max_pc.py checks its values)
    assert run["max_pc_method"][0].as_py() == "socrates"
    assert run["max_pc"][0].as_py() > run["max_pc_isotropic"][0].as_py()
    out = tmp_path / "cdms"
    # the run screened files outside the store: without --elements the event is skipped
    result = runner.invoke(main, ["cdm", "--store", str(store), "--out", str(out)])
    assert result.exit_code == 1 and "SKIPPED" in result.output
    result = runner.invoke(main, ["cdm", "--store", str(store), "--out", str(out),
                                  "--elements", str(path), "--format", "xml"])
    assert result.exit_code == EXIT_OK, result.output
    (written,) = sorted(out.glob("*.xml"))
    msg = cdm.read(written)
    assert {o["OBJECT_DESIGNATOR"] for o in msg.objects} == {"47935", "49179"}
    assert msg.hbr_m() == 12.0

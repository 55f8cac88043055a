"""Pc against NASA CARA and Orekit reference values (each test cites where its numbers come from
and why its tolerance is what it is)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from scipy import integrate

from conftest import shared
from ssafuse import pc
from ssafuse.formats.ccsds import cdm


def _rows(relative):
    with open(shared(relative), newline="") as fh:
        return list(csv.DictReader(fh))


# --- Alfano (2009) test cases, CARA's expected 2-D Pc -------------------------------------

def _alfano_cases():
    return json.loads(shared("pc/extracted/alfano2009_cases_cara.json").read_text())["cases"]


@pytest.mark.parametrize("case", range(1, 12))
def test_foster_matches_cara_pc2d_on_alfano_2009_cases(case):
    # Expected: CARA_Pc2D of nasa/CARA_Analysis_Tools A09TestCases_01_12_Distributed.csv (via
    # ../shared/data/pc/extracted/alfano2009_cases_cara.json), states and 6x6 covariances at
    # TCA. Tolerance: relative 1e-6, as the issue asks; both sides integrate the same circle
    # (CARA to its quadrature's accuracy), measured agreement is better than 1e-7.
    c = _alfano_cases()[case - 1]
    t = c["at_tca"]
    res = pc.pc_from_states(t["r1_m"], t["v1_mps"], np.array(t["C1_6x6"]), t["r2_m"],
                            t["v2_mps"], np.array(t["C2_6x6"]), c["hbr_m"])
    expected = c["expected"]["CARA_Pc2D"]
    assert res.pc[0] == pytest.approx(expected, rel=1e-6)
    assert res.flags[0] == 0


def test_alfano_case_12_has_no_encounter_plane_and_returns_nan():
    # Alfano 2009 case 12: identical velocities at TCA (zero relative velocity), so the 2-D
    # encounter plane is undefined; CARA's PcCircle returns NaN there and so do we, flagged.
    c = _alfano_cases()[11]
    t = c["at_tca"]
    assert np.allclose(t["v1_mps"], t["v2_mps"])
    res = pc.pc_from_states(t["r1_m"], t["v1_mps"], np.array(t["C1_6x6"]), t["r2_m"],
                            t["v2_mps"], np.array(t["C2_6x6"]), c["hbr_m"])
    assert math.isnan(res.pc[0])
    assert pc.flag_names(res.flags[0]) == ["zero-relative-velocity"]


# --- CARA's 53 real CDMs ------------------------------------------------------------------

def test_foster_matches_cara_pc2d_on_53_real_cdms():
    # Expected: Pc2D of CARA_PcMethod_Test_Conjunctions.xlsx (extracted to
    # cara_real_cdm_pc_results.csv), computed by CARA's Pc2D_FromCDM.m (linear TCA
    # adjustment, then PcCircle). Tolerance: CARA's README and ComparePc2D_to_CARAValues.m call
    # a match "Loose" within 1e-8 (Matlab isapprox: |a-b| <= max(1e-8, 1e-8*max|a|,|b|)),
    # the level Matlab-version differences cause; every case here is in fact within "Tight"
    # (1e-12).
    rows = _rows("pc/extracted/cara_real_cdm_pc_results.csv")
    assert len(rows) == 53
    folder = shared("pc/nasa_cara/DataFiles/PcTestCaseCDMs")
    msgs = [cdm.read(folder / f"{r['Conjunction_ID']}.cdm") for r in rows]
    for r, m in zip(rows, msgs):
        assert m.hbr_m() == pytest.approx(float(r["HBR_m"]))
    res = pc.pc_from_cdm(msgs)
    for r, p in zip(rows, res.pc):
        e = float(r["Pc2D"])
        assert abs(p - e) <= max(1e-12, 1e-12 * max(abs(p), abs(e))), r["Conjunction_ID"]


# --- Orekit's encounter-plane cases --------------------------------------------------------

_OREKIT_2D = "pc/extracted/orekit_2d_encounter_plane_cases.csv"
_METHOD = {"Alfano2005": "alfano2005", "Chan1997": "chan", "Laas2015": "foster",
           "Patera2005": "foster"}
#: Laas2015's value for "Alfano test case 5" (0.044507) is 2.9e-6 from the integral, beyond
#: its 1e-6 tolerance: Patera2005 (0.044509) and Alfano2005 (0.04451) agree with ours, and so
#: does an independent scipy.integrate.quad (test below).
_KNOWN_OFF = {("Laas2015", "Alfano test case 5")}


def _orekit_2d_rows():
    try:
        return _rows(_OREKIT_2D)
    except BaseException:  # skip collected at run time by the test itself
        return []


def test_orekit_2d_cases_within_stated_tolerance():
    # Expected values and absolute tolerances: Orekit's Alfano2005Test, Chan1997Test,
    # Laas2015Test and Patera2005Test (extracted to orekit_2d_encounter_plane_cases.csv).
    # Alfano2005 and Chan1997 rows are compared with our implementations of those series (same
    # discretisation, same term counts); Laas2015 and Patera2005 (exact methods) with Foster.
    rows = _rows(_OREKIT_2D)
    checked = 0
    for r in rows:
        if (r["method"], r["case"]) in _KNOWN_OFF:
            continue
        args = [float(r[k]) for k in ("xm", "ym", "sigmaX", "sigmaY", "radius")]
        got = float(np.ravel(pc.pc_encounter_plane(*args, method=_METHOD[r["method"]]))[0])
        assert abs(got - float(r["expected_pc"])) <= float(r["abs_tolerance"]), r
        checked += 1
    assert checked == len(rows) - 1


def test_laas_alfano_case_5_disagreement_is_laas_not_ours():
    xm, zm, sx, sz, R = -1.2217895, 2.1230067, 0.0373279, 177.8109003, 10.0

    def g(x):
        h = math.sqrt(max(R * R - (x - xm) ** 2, 0.0))
        return (math.exp(-0.5 * (x / sx) ** 2) / (math.sqrt(2 * math.pi) * sx)
                * 0.5 * (math.erf((zm + h) / (math.sqrt(2) * sz))
                         - math.erf((zm - h) / (math.sqrt(2) * sz))))

    ref, _ = integrate.quad(g, -12 * sx, 12 * sx, epsabs=0, epsrel=1e-13, limit=500)
    got = float(pc.pc_circle(xm, zm, sx, sz, R))
    assert got == pytest.approx(ref, rel=1e-11)
    assert abs(got - 0.044509) <= 1e-6          # Orekit Patera2005Test
    assert abs(got - 0.044507) > 1e-6           # Orekit Laas2015Test, out by 2.9e-6


def test_orekit_alfano_cdm_cases():
    # Orekit's AlfanoTestCaseNN.cdm files, combined HBR and expected Pc with absolute
    # tolerance per Orekit's tests (orekit_alfano_cdm_cases.csv). Pc from the file as read.
    rows = _rows("pc/extracted/orekit_alfano_cdm_cases.csv")
    assert len(rows) == 30                      # 10 CDMs x 3 methods (../shared/data/SOURCES.md)
    for r in rows:
        msg = cdm.read(shared(r["cdm_file"]))
        for method in ("foster", "alfano2005") if r["method"] == "Alfano2005" else ("foster",):
            got = pc.pc_from_cdm([msg], hbr_m=float(r["combined_hbr_m"]), method=method).pc[0]
            assert abs(got - float(r["expected_pc"])) <= float(r["abs_tolerance"]), (r, method)


# --- CARA's inline Omitron case (Pc2D_Foster_UnitTest.m), circle and squares ---------------

_OMITRON = dict(
    r1=[378.39559, 4305.721887, 5752.767554], v1=[2.360800244, 5.580331936, -4.322349039],
    cov1=[[44.5757544811362, 81.6751751052616, -67.8687662707124],
          [81.6751751052616, 158.453402956163, -128.616921644857],
          [-67.8687662707124, -128.616921644858, 105.490542562701]],
    r2=[374.5180598, 4307.560983, 5751.130418], v2=[-5.388125081, -3.946827739, 3.322820358],
    cov2=[[2.31067077720423, 1.69905293875632, -1.4170164577661],
          [1.69905293875632, 1.24957388457206, -1.04174164279599],
          [-1.4170164577661, -1.04174164279599, 0.869260558223714]], hbr=0.020)


@pytest.mark.parametrize("method, expected, rel", [
    ("foster", 2.70601573490125e-05, 4e-6),
    ("foster-square", 3.44534649703584e-05, 3e-8),
    ("foster-square-equal-area", 2.70601573490111e-05, 3e-8),
])
def test_cara_omitron_case(method, expected, rel):
    # Expected: CARA Pc2D_Foster_UnitTest.m (values also in ../shared/data/SOURCES.md), made
    # by Pc2D_Foster's quad2d with RelTol 1e-9, AbsTol 1e-13; CARA checks RelTol 1e-3. Ours
    # is tighter, from what the reference supports (scipy dblquad of Pc2D_Foster's integrand,
    # epsrel 1e-13, when writing this test): its squares are that integral to 1e-14.
    # Pc2D_Foster centres the region at |r1 - r2|; we centre at the miss normal to the relative
    # velocity (linear-motion TCA), 4.35e-8 km nearer here, which moves the squares' Pc by
    # 1.88e-8 relative (ours agree to 1.86e-8): rel 3e-8. CARA's circle is 2.86e-6 from that
    # integral (quad2d on semicircle limits), ours 2.88e-6 from CARA's: rel 4e-6 (the next
    # test checks our circle against the integral itself to 1e-12).
    o = _OMITRON
    res = pc.pc_from_states(o["r1"], o["v1"], np.array(o["cov1"]), o["r2"], o["v2"],
                            np.array(o["cov2"]), o["hbr"], method)
    assert res.pc[0] == pytest.approx(expected, rel=rel)


def test_omitron_circle_equals_independent_double_integral():
    o = _OMITRON
    res = pc.pc_from_states(o["r1"], o["v1"], np.array(o["cov1"]), o["r2"], o["v2"],
                            np.array(o["cov2"]), o["hbr"])
    xm, zm, sx, sz, R = res.xm[0], res.zm[0], res.sx[0], res.sz[0], o["hbr"]

    def f(z, x):
        return np.exp(-0.5 * (x * x / sx ** 2 + z * z / sz ** 2)) / (2 * np.pi * sx * sz)

    ref, _ = integrate.dblquad(f, xm - R, xm + R,
                               lambda x: zm - math.sqrt(max(R * R - (x - xm) ** 2, 0.0)),
                               lambda x: zm + math.sqrt(max(R * R - (x - xm) ** 2, 0.0)),
                               epsabs=0, epsrel=1e-13)
    assert res.pc[0] == pytest.approx(ref, rel=1e-12)


def test_non_positive_definite_covariance_is_remediated_as_cara_does():
    # CARA Pc2D_Foster_UnitTest.m testNonPositiveDefinite: OmitronTestCase_Test07 with
    # HBR = 20 m gives Pc 0 (AbsTol 1e-10), remediated (eigenvalue clipping), then PD.
    msg = cdm.read(shared("pc/nasa_cara/DataFiles/SampleCDMs/"
                          "OmitronTestCase_Test07_NonPDCovariance.cdm"))
    res = pc.pc_from_cdm([msg], hbr_m=20.0)
    assert abs(res.pc[0]) <= 1e-10
    assert "npd-remediated" in pc.flag_names(res.flags[0])


def test_remediation_flag_and_clip_level_on_a_synthetic_npd_covariance():
    # A combined covariance with a negative eigenvalue in the encounter plane: the eigenvalue
    # is raised to (1e-4 * HBR)^2 (CARA's Fclip), the Pc computed and the event flagged.
    r1, v1, r2, v2 = [7000.0, 0, 0], [0, 7.5, 0], [7000.0, 0, 0.1], [0, 0, 7.5]
    cov = np.diag([-0.5, 1.0, 1.0])   # ECI x is the encounter frame's z here
    res = pc.pc_from_states(r1, v1, cov, r2, v2, np.zeros((3, 3)), 0.01)
    assert "npd-remediated" in pc.flag_names(res.flags[0])
    assert res.sz[0] == pytest.approx(1e-4 * 0.01)
    assert 0 <= res.pc[0] <= 1


# --- Implementation properties ---------------------------------------------------------------

def test_numba_and_numpy_backends_agree():
    # The same trapezoid sums in two implementations: equal to summation-order rounding.
    rng = np.random.default_rng(7)
    n = 2000
    sx = 10 ** rng.uniform(1, 4, n)
    sz = sx * 10 ** rng.uniform(-2, 0, n)
    xm, zm, R = rng.normal(0, 2, n) * sx, rng.normal(0, 2, n) * sz, rng.uniform(1, 30, n)
    saved = pc.BACKEND["name"]
    try:
        out = {}
        for name in ("numpy", "numba") if pc._numba is not None else ("numpy",):
            pc.BACKEND["name"] = name
            out[name] = pc.pc_circle(xm, zm, sx, sz, R)
    finally:
        pc.BACKEND["name"] = saved
    if len(out) == 2:
        np.testing.assert_allclose(out["numba"], out["numpy"], rtol=1e-11, atol=1e-300)


def test_small_hbr_limit_is_density_times_area():
    # For HBR << sigma the Pc is the density at the miss times the area (exact to O(R^2/s^2)).
    sx, sz, R, xm, zm = 100.0, 40.0, 0.01, 30.0, -20.0
    dens = math.exp(-0.5 * ((xm / sx) ** 2 + (zm / sz) ** 2)) / (2 * math.pi * sx * sz)
    assert float(pc.pc_circle(xm, zm, sx, sz, R)) == pytest.approx(dens * math.pi * R * R,
                                                                   rel=1e-7)


def test_hbr_zero_and_infinite():
    c = np.eye(3)
    res = pc.pc_from_states([[7000, 0, 0]] * 2, [0, 7.5, 0], c, [7000, 0, 1], [0, 0, 7.5], c,
                            [0.0, math.inf])
    assert res.pc.tolist() == [0.0, 1.0]


def test_max_pc_small_hbr_limit_and_inside_hbr():
    # Alfano (2005b): for an isotropic covariance and HBR << miss, the maximum over sigma is at
    # sigma = miss/sqrt(2) with Pc = HBR^2/(e miss^2); with the miss inside the HBR the
    # supremum is 1 (sigma -> 0), reported as SOCRATES does (max prob 1, no dilution).
    p, s = pc.max_pc([1.0, 0.01], [1e-3, 0.02])
    assert p[0] == pytest.approx(1e-6 / math.e, rel=1e-5)
    assert s[0] == pytest.approx(1 / math.sqrt(2), rel=1e-5)
    assert p[1] == 1.0 and math.isnan(s[1])


def test_max_pc_is_the_maximum_over_sigma():
    d, R = 0.05, 0.02
    p, s = pc.max_pc(d, R)
    sig = np.geomspace(0.001, 1.0, 4001)
    brute = pc.pc_circle(d, 0.0, sig, sig, R)
    assert float(p) >= brute.max() * (1 - 1e-12)
    assert float(p) == pytest.approx(brute.max(), rel=1e-6)
    assert float(s) == pytest.approx(sig[brute.argmax()], rel=2e-3)


def test_max_pc_from_miss_projects_on_the_encounter_plane():
    p1, _ = pc.max_pc_from_miss([[0.1, 0.0, 5.0]], [[0.0, 0.0, 7.0]], 0.01)
    p2, _ = pc.max_pc(0.1, 0.01)
    assert p1[0] == pytest.approx(float(p2), rel=1e-12)


def test_cara_hbr_table_reads_metres_per_object():
    table = pc.load_cara_hbr(shared("pc/nasa_cara/DataFiles/HBRMassEstimates/"
                                    "HBR_Mass_Estimates_20260601_ForDistribution.csv"))
    assert table[51] == pytest.approx(0.964231173853356)   # first SFK RCS row of the file
    assert 1 not in table                                   # DISCOS rows without an HBR


def test_cli_pc_writes_one_row_per_message(tmp_path):
    from click.testing import CliRunner

    import pyarrow.parquet as pq
    from ssafuse.cli import main

    folder = shared("pc/nasa_cara/DataFiles/PcTestCaseCDMs")
    files = sorted(folder.glob("*.cdm"))[:3]
    out = tmp_path / "pc.parquet"
    bad = tmp_path / "bad.cdm"
    bad.write_text("CCSDS_CDM_VERS = 1.0\nNOT A LINE\n")
    result = CliRunner().invoke(main, ["pc", *map(str, files), str(bad), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "REFUSED" in result.output and "line is not" in result.output
    t = pq.read_table(out)
    assert t.num_rows == 4
    assert t.column("hbr_source").to_pylist()[:3] == ["cdm"] * 3
    assert all(0 < p < 1 for p in t.column("pc").to_pylist()[:3])
    result = CliRunner().invoke(main, ["pc", str(files[0]), "--hbr-m", "20", "--method", "chan"])
    assert result.exit_code == 0 and "chan" in result.output and "HBR 20 m" in result.output

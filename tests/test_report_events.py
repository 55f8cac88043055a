"""The report's event pages, attached objects, days since epoch and SOCRATES CSV (issue 18).

Expected values are computed here, from the run's Parquet files with numpy / pandas, not taken
from the report's own output:

* which events get a page (the report's listing rules, applied to the Parquet with pandas);
* days since epoch: ``(TCA - epoch) / 1 day`` from the Parquet's integer nanoseconds;
* the encounter plane: the relative position projected on the plane normal to the relative
  velocity, with numpy; the SOCRATES-style ellipse's axis ratio from radial / in-track /
  cross-track sigmas of 100 / 300 / 100 m rotated and projected here (CelesTrak, SOCRATES
  "Max Probability": the covariance shape SOCRATES assumes), and the ellipse checked by
  integrating its Gaussian over the hard-body circle (a polar midpoint rule, 400 x 400 points:
  the density varies by < 1e-6 over a 10 m circle, so the quadrature error is far below the
  1e-4 relative tolerance), which must give back the run's max Pc / Pc;
* the SOCRATES CSV header as CelesTrak's SOCRATES Plus "download CSV" writes it.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import test_report
from ssafuse import markings as mk
from ssafuse import report as R
from ssafuse.assessment import assess, states_at_tca

# the nightly job's run of the sample feeds (tests/test_report.py): 10 km, all-vs-all, ISS and
# CSS as report primaries; docked vehicles attached to both stations
sample_run = test_report.sample_run

#: CelesTrak SOCRATES Plus, "download CSV" (celestrak.org/SOCRATES), its header line.
SOCRATES_HEADER = ["NORAD_CAT_ID_1", "OBJECT_NAME_1", "DSE_1", "NORAD_CAT_ID_2", "OBJECT_NAME_2",
                   "DSE_2", "TCA", "TCA_RANGE", "TCA_RELATIVE_SPEED", "MAX_PROB", "DILUTION"]
DAY_NS = 86_400 * 10**9
#: The files a report is built from (a run folder, copied to build others from).
RUN_FILES = ("run.json", "manifest.json", "conjunctions.parquet", "catalogue.parquet",
             "excluded.parquet")


def _events(run) -> pd.DataFrame:
    conj = pq.read_table(run / "conjunctions.parquet")
    df = conj.to_pandas()
    ns = {c: conj[c].cast(pa.int64()).to_numpy() for c in ("tca", "epoch_1", "epoch_2")}
    for c, v in ns.items():
        df[c + "_ns"] = v
    df["key"] = [f"{a}-{b}-{t}" for a, b, t in zip(df.object_id_1, df.object_id_2, ns["tca"])]
    df["att"] = df.attached.fillna(False).astype(bool)
    df["rep"] = test_report.repeat_mask(df)
    return df


def _expected_listed(run) -> set[str]:
    """The report's listing rules applied with pandas: top 20 by Pc (else max Pc) and by
    miss (neither co-located nor attached, a pass by a complex once), the first 20
    co-located pairs not attached, and
    each primary's events not attached (by TCA, at most 50)."""
    df = _events(run)
    info = json.loads((run / "run.json").read_text())
    free = df[~df.co_located & ~df.att & ~df.rep].copy()
    free["score"] = free.pc.fillna(free.max_pc)
    by_pc = free[free.score.notna()].sort_values(["score", "tca_ns"], ascending=[False, True])
    keys = set(by_pc.key.head(20)) | set(free.sort_values(["miss_distance_km", "tca_ns"])
                                         .key.head(20))
    keys |= set(df[df.co_located & ~df.att & ~df.rep].key.head(20))
    for p in info["primaries"]:
        mine = df[((df.object_id_1 == p) | (df.object_id_2 == p)) & ~df.att]
        keys |= set(mine.sort_values("tca_ns", kind="stable").key.head(50))
    return keys


def _dom(exe, url, tmp_path, name) -> str:
    return subprocess.run([exe, *test_report.CHROMIUM_FLAGS,
                           f"--user-data-dir={tmp_path / name}", "--dump-dom", url],
                          check=True, capture_output=True, text=True, timeout=120).stdout


def _copy_run(src, dest, top: int | None = None):
    """The files a report is built from, into ``dest``; no previous run; ``top``: the
    report's ``top``, and no primaries (1: one page, the event first by Pc and by miss;
    keeps tests short)."""
    dest.mkdir(parents=True)
    for name in RUN_FILES:
        shutil.copy2(src / name, dest / name)
    info = json.loads((dest / "run.json").read_text())
    info["previous_run"] = None
    if top is not None:
        info["report"] = dict(info.get("report") or {}, top=top)
        info["primaries"] = []
    (dest / "run.json").write_text(json.dumps(info))
    return dest


def _pc_of_ellipse(cov_km2, centre_km, hbr_km, n=400) -> float:
    """The mass of a zero-mean Gaussian (``cov_km2``) inside the circle of radius ``hbr_km``
    around ``centre_km``: polar midpoint rule."""
    r = (np.arange(n) + 0.5) / n * hbr_km
    th = (np.arange(n) + 0.5) / n * 2 * math.pi
    rr, tt = np.meshgrid(r, th)
    x, z = centre_km[0] + rr * np.cos(tt), centre_km[1] + rr * np.sin(tt)
    inv = np.linalg.inv(cov_km2)
    q = inv[0, 0] * x * x + 2 * inv[0, 1] * x * z + inv[1, 1] * z * z
    dens = np.exp(-q / 2) / (2 * math.pi * math.sqrt(np.linalg.det(cov_km2)))
    return float(np.sum(dens * rr) * (hbr_km / n) * (2 * math.pi / n))


def _ric_to_inertial(r, v, sigmas_km) -> np.ndarray:
    """A diagonal radial / in-track / cross-track covariance as a 3x3 inertial one."""
    radial = r / np.linalg.norm(r)
    cross = np.cross(r, v) / np.linalg.norm(np.cross(r, v))
    in_track = np.cross(cross, radial)
    m = np.stack([radial, in_track, cross])          # rows: the RIC axes
    return m.T @ np.diag(np.square(sigmas_km)) @ m


def _plane_basis(r1, v1, r2, v2) -> np.ndarray:
    dr, dv = r2 - r1, v2 - v1
    u = dv / np.linalg.norm(dv)
    perp = dr - np.dot(dr, u) * u
    x = perp / np.linalg.norm(perp)
    return np.stack([x, np.cross(x, u)])


def _states(run, keys):
    df = _events(run)
    conj = pq.read_table(run / "conjunctions.parquet")
    idx = [int(np.flatnonzero(df.key == k)[0]) for k in keys]
    sub = conj.take(pa.array(idx, pa.int64()))
    ok, r, v, _ = states_at_tca(sub, pq.read_table(run / "catalogue.parquet"))
    assert ok.all()
    return df.iloc[idx].reset_index(drop=True), r, v


# ---------------------------------------------------------------------------------------------
# Pages, links and what a browser shows
# ---------------------------------------------------------------------------------------------

def test_every_listed_event_has_a_page_that_opens_in_headless_chromium(sample_run, tmp_path):
    exe = test_report._chromium()
    want = _expected_listed(sample_run)
    assert len(want) >= 3
    got = {p.stem for p in (sample_run / "events").glob("*.html")}
    assert got == want
    html = (sample_run / "report.html").read_text()
    # each listed event row links to its page from its TCA cell
    linked = re.findall(r'<tr class="event" id="by-miss-([0-9-]+)"[^>]*>\s*<td><a href='
                        r'"events/([0-9-]+)\.html">', html)
    assert linked and all(a == b for a, b in linked)
    df = _events(sample_run).set_index("key")
    # every page as the file holds it; the first, middle and last as Chromium reads them
    keys = sorted(want)
    opened = {keys[0], keys[len(keys) // 2], keys[-1]}
    for key in keys:
        path = sample_run / "events" / f"{key}.html"
        dom = _dom(exe, path.resolve().as_uri(), tmp_path, key) if key in opened \
            else path.read_text()
        ev = df.loc[key]
        assert f'id="object-1-id">{ev.object_id_1}<' in dom
        assert f'id="object-2-id">{ev.object_id_2}<' in dom
        (img,) = re.findall(r'<img id="encounter-plot"[^>]*src="data:image/png;base64,([^"]+)"',
                            dom)
        png = base64.b64decode(img)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        # the history table: this run's point only (no earlier run in the store), stated so
        rows = re.findall(r'<tr class="history-point([^"]*)" id="history-([^"]+)"', dom)
        assert rows == [(" this-run", sample_run.name)]
        assert 'id="no-history"' in dom
        banners = re.findall(r'id="banner-(top|bottom)">([^<]*)<', dom)
        assert [b[0] for b in banners] == ["top", "bottom"]
        assert mk.parse(banners[0][1]) == mk.parse(banners[1][1]) == mk.parse(ev.marking)
        assert "<script" not in dom and not re.search(r'(src|href)="(https?:)?//', dom)


def test_attached_objects_are_listed_once_per_group_never_as_events(sample_run):
    df = _events(sample_run)
    att = df[df.att]
    groups = {name: (set(g.object_id_1) | set(g.object_id_2), len(g))
              for name, g in att.groupby("attached_group")}
    assert "ISS" in groups and len(groups["ISS"][0]) >= 3   # docked vehicles in the sample
    html = (sample_run / "report.html").read_text()
    section = html[html.index('id="attached-groups"'):]
    section = section[:section.index("</table>")]
    rows = re.findall(r'<tr class="attached-group" data-group="([^"]+)">(.*?)</tr>', section,
                      re.S)
    assert sorted(name for name, _ in rows) == sorted(groups)   # one row per group
    for name, body in rows:
        members, pairs = groups[name]
        assert {int(x) for x in re.findall(r'data-object="(\d+)"', body)} == members
        assert re.findall(r'<td class="num">(\d+)</td>', body)[-1] == str(pairs)
    assert "Pc" not in section                         # no Pc for an attached pair
    # never an event row, a page or a CDM; the listing (CDMs) leaves them out too
    shown = set(re.findall(r'data-event="([0-9-]+)"', html))
    assert shown and not shown & set(att.key)
    assert not any((sample_run / "events" / f"{k}.html").exists() for k in att.key)
    assert not set(json.loads((sample_run / "run.json").read_text())["cdm_links"]) \
        & set(att.key)
    conj = pq.read_table(sample_run / "conjunctions.parquet")
    assert not set(R.listed(conj, [25544, 48274], 20).tolist()) & set(np.flatnonzero(df.att))
    # a run made before the column: null reads as False, co-located pairs are listed again
    old = conj.set_column(conj.schema.get_field_index("attached"), "attached",
                          pa.nulls(conj.num_rows, pa.bool_()))
    co = np.flatnonzero(df.co_located)[:20]
    assert co.size and set(co.tolist()) <= set(R.listed(old, [], 20).tolist())


def test_days_since_epoch_of_both_objects_equal_tca_minus_epoch(sample_run):
    df = _events(sample_run).set_index("key")
    html = (sample_run / "report.html").read_text()
    rows = re.findall(r'<tr class="event" id="by-miss-([0-9-]+)".*?</tr>', html, re.S)
    bodies = re.findall(r'<tr class="event" id="by-miss-[0-9-]+".*?</tr>', html, re.S)
    assert len(rows) >= 3
    seen_old = set()
    for key, body in zip(rows, bodies):
        ev = df.loc[key]
        cells = re.findall(r'<td class="num dse( stale)?">([-0-9.]+)(<span class="old")?',
                           body)
        assert len(cells) == 2
        for (stale, text, mark), epoch in zip(cells, (ev.epoch_1_ns, ev.epoch_2_ns)):
            dse = (ev.tca_ns - epoch) / DAY_NS
            assert abs(float(text) - dse) <= 5e-4, (key, text, dse)
            assert bool(stale) == bool(mark) == (dse > 7.0)
            seen_old.add(dse > 7.0)
        page = (sample_run / "events" / f"{key}.html").read_text()
        for s, epoch in (("1", ev.epoch_1_ns), ("2", ev.epoch_2_ns)):
            (text,) = re.findall(rf'id="object-{s}-dse">([-0-9.]+)', page)
            assert abs(float(text) - (ev.tca_ns - epoch) / DAY_NS) <= 5e-4
    assert seen_old == {True, False}   # the sample holds both fresh and old element sets


# ---------------------------------------------------------------------------------------------
# Encounter plane
# ---------------------------------------------------------------------------------------------

def test_encounter_plane_position_is_the_miss_projected_on_the_plane():
    rng = np.random.default_rng(18)
    for _ in range(20):
        r1, r2 = rng.normal(0, 7000, 3), rng.normal(0, 7000, 3)
        v1, v2 = rng.normal(0, 7, 3), rng.normal(0, 7, 3)
        dr, dv = r2 - r1, v2 - v1
        u = dv / np.linalg.norm(dv)
        perp = dr - np.dot(dr, u) * u
        xz, basis = R.encounter_plane_2d(r1, v1, r2, v2)
        np.testing.assert_allclose(xz, [np.linalg.norm(perp), 0.0], atol=1e-9)
        np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-12)
        np.testing.assert_allclose(basis @ dv, 0.0, atol=1e-9)     # the plane is normal to dv
        np.testing.assert_allclose(basis @ dr, xz, atol=1e-8)      # x along the miss
    assert R.encounter_plane_2d([7000, 0, 0], [0, 7, 0], [7001, 0, 0], [0, 7, 0]) is None


def test_drawn_ellipse_of_an_event_without_covariance_is_socrates_max_pc_ellipse(sample_run):
    geos = R.event_geometries(sample_run)
    keys = sorted(geos)
    assert keys, "no event geometries: the checks below would check nothing"
    df, r, v = _states(sample_run, keys)
    for i, key in enumerate(keys):
        g, ev = geos[key], df.iloc[i]
        assert g["sources"] == [R.COVARIANCE_NONE] * 2 and "SOCRATES" in g["caption"]
        # object 2 where the relative position projects on the plane: the screening's miss
        basis = _plane_basis(r[0, i], v[0, i], r[1, i], v[1, i])
        np.testing.assert_allclose(g["xz_km"], basis @ (r[1, i] - r[0, i]), atol=1e-9)
        assert abs(g["xz_km"][0] - ev.miss_distance_km) <= 1e-6
        # the ellipse: minor sigma the dilution threshold, major along the miss, in the ratio
        # SOCRATES's 100/300/100 m RIC sigmas on each object project to
        c = sum(_ric_to_inertial(r[j, i], v[j, i], [0.1, 0.3, 0.1]) for j in (0, 1))
        lam = np.linalg.eigvalsh(basis @ c @ basis.T)
        aspect = math.sqrt(lam[1] / lam[0])
        np.testing.assert_allclose(g["cov"], np.diag([(aspect * ev.max_pc_sigma_km) ** 2,
                                                      ev.max_pc_sigma_km ** 2]), rtol=1e-9)
        # ... and it gives back the run's max Pc over the hard-body circle
        pc = _pc_of_ellipse(g["cov"], g["xz_km"], ev.hbr_m / 1e3)
        assert pc == pytest.approx(ev.max_pc, rel=1e-4)
        page = (sample_run / "events" / f"{key}.html").read_text()
        assert f'id="plane-miss">{g["xz_km"][0]:.3f} km<' in page


def test_drawn_ellipse_is_the_assumed_covariance_the_pc_used(sample_run, tmp_path):
    run = _copy_run(sample_run, tmp_path / "runs" / "assumed")
    model = {"*": [1.0, 5.0, 1.0]}
    conj = assess(pq.read_table(run / "conjunctions.parquet"),
                  elements=pq.read_table(run / "catalogue.parquet"), covariance_model=model)
    pq.write_table(conj, run / "conjunctions.parquet")
    info = json.loads((run / "run.json").read_text())
    info["tearline"]["pc"] = dict(info["tearline"].get("pc") or {}, covariance_model=model)
    (run / "run.json").write_text(json.dumps(info))
    geos = R.event_geometries(run)
    keys = sorted(geos)
    df, r, v = _states(run, keys)
    checked = 0
    for i, key in enumerate(keys):
        g, ev = geos[key], df.iloc[i]
        if not (ev.pc_method == "foster-2d:assumed-covariance" and ev.pc > 0):
            continue
        assert g["sources"][0].startswith(R.COVARIANCE_ASSUMED)
        basis = _plane_basis(r[0, i], v[0, i], r[1, i], v[1, i])
        c = sum(_ric_to_inertial(r[j, i], v[j, i], model["*"]) for j in (0, 1))
        np.testing.assert_allclose(g["cov"], basis @ c @ basis.T, rtol=1e-9)
        pc = _pc_of_ellipse(g["cov"], g["xz_km"], ev.hbr_m / 1e3)
        assert pc == pytest.approx(ev.pc, rel=1e-4)
        checked += 1
    assert checked >= 2


# ---------------------------------------------------------------------------------------------
# History over runs
# ---------------------------------------------------------------------------------------------

def _night(src, dest, shift_days: float, edit) -> None:
    """A finished run folder like ``src`` whose window starts ``shift_days`` later and whose
    conjunctions ``edit`` changes (a pandas frame in, out)."""
    _copy_run(src, dest)
    for name in ("manifest.json", "run.json"):
        info = json.loads((dest / name).read_text())
        start = np.datetime64(info["window_start"].replace("+00:00", ""), "ns")
        shifted = start + np.timedelta64(int(shift_days * DAY_NS), "ns")
        info["window_start"] = str(shifted.astype("datetime64[s]")) + "+00:00"
        (dest / name).write_text(json.dumps(info))
    conj = pq.read_table(dest / "conjunctions.parquet")
    out = pa.Table.from_pandas(edit(conj.to_pandas()), preserve_index=False)
    pq.write_table(out.cast(conj.schema), dest / "conjunctions.parquet")


def test_history_over_two_runs_shows_both_points_and_a_partner_only_its_own(sample_run,
                                                                            tmp_path):
    df = _events(sample_run)
    ev = df[~df.co_located & ~df.att].sort_values("miss_distance_km").iloc[0]
    row = df.key == ev.key

    def moved(seconds, extra_km, secret=False):
        def edit(t):
            t.loc[row, "tca"] = t.loc[row, "tca"] + pd.Timedelta(seconds=seconds)
            t.loc[row, "miss_distance_km"] = t.loc[row, "miss_distance_km"] + extra_km
            if secret:
                t.loc[row, "classification"] = "SECRET"
                t["releasable_to"] = [[] if hit else rel for hit, rel in zip(
                    row, t["releasable_to"])]
                t.loc[row, "marking"] = "SECRET//NOFORN"
            return t
        return edit

    runs = tmp_path / "store" / "runs"
    _night(sample_run, runs / "a0-released", -3, moved(-10, 0.25))            # matched
    _night(sample_run, runs / "a-earlier", -1, moved(20, 0.5, secret=True))  # matched
    _night(sample_run, runs / "b-too-far", -2, moved(120, 1.0))    # TCA 120 s off: not it
    _night(sample_run, runs / "d-later", 1, moved(0, 2.0))         # a later window: not shown
    late = _copy_run(sample_run, runs / "c-this", top=1)
    R.write_report(late, late)
    page = (late / R.event_page(ev.key)).read_text()
    got = re.findall(r'<tr class="history-point[^"]*" id="history-([^"]+)".*?</tr>', page, re.S)
    bodies = re.findall(r'<tr class="history-point[^"]*" id="history-[^"]+".*?</tr>', page, re.S)
    assert got == ["a0-released", "a-earlier", sample_run.name]
    miss = [float(re.findall(r'<td class="num">([0-9.]+)</td>', b)[0]) for b in bodies]
    assert miss == pytest.approx([ev.miss_distance_km + d for d in (0.25, 0.5, 0.0)], abs=6e-4)
    assert len(re.findall(r'<img id="history-plot"[^>]*src="data:image/png;base64,', page)) == 1
    # the earlier event's marking is in the banner, top and bottom
    assert page.count('">SECRET//NOFORN</div>') == 2
    # a partner (GBR) sees only what is releasable to it: not the SECRET//NOFORN point; so
    # does its export, beside the run it was exported from
    export = late / "exports" / "GBR"
    export.mkdir(parents=True)
    for name in RUN_FILES[2:] + ("run.json",):
        shutil.copy2(sample_run / "exports" / "GBR" / name, export / name)
    info = json.loads((export / "run.json").read_text())
    (export / "run.json").write_text(json.dumps(dict(info, report=dict(info["report"], top=1),
                                                     primaries=[])))
    for folder in (late, export):
        gbr = R.build_report(folder, release_to="GBR", pages=True).files[R.event_page(ev.key)]
        assert re.findall(r'class="history-point[^"]*" id="history-([^"]+)"', gbr) \
            == ["a0-released", sample_run.name]
        assert "SECRET" not in gbr


# ---------------------------------------------------------------------------------------------
# Files: SOCRATES CSV, determinism, what a rebuild removes
# ---------------------------------------------------------------------------------------------

def test_socrates_csv_parses_with_the_csv_module_and_has_socrates_header(sample_run):
    lines = (sample_run / "conjunctions-socrates.csv").read_text().splitlines()
    assert lines[0].startswith("# CLASSIFICATION: UNCLASSIFIED")
    header, *rows = list(csv.reader(lines[1:]))
    assert header == SOCRATES_HEADER
    df = _events(sample_run)
    free = df[~df.att]
    assert len(rows) == len(free) >= 3
    # each event by its pair and TCA (to the millisecond, as SOCRATES prints it)
    want = {(a, b, t // 10**6): (m, (t - e1) / DAY_NS, (t - e2) / DAY_NS)
            for a, b, m, t, e1, e2 in zip(free.object_id_1, free.object_id_2,
                                          free.miss_distance_km, free.tca_ns, free.epoch_1_ns,
                                          free.epoch_2_ns)}
    assert len(want) == len(free)
    for r in rows:
        rec = dict(zip(header, r))
        tca_ms = pd.Timestamp(rec["TCA"], tz="UTC").value // 10**6
        miss, dse1, dse2 = want[(int(rec["NORAD_CAT_ID_1"]), int(rec["NORAD_CAT_ID_2"]), tca_ms)]
        assert abs(float(rec["TCA_RANGE"]) - miss) <= 5e-4
        assert abs(float(rec["DSE_1"]) - dse1) <= 5e-4 and abs(float(rec["DSE_2"]) - dse2) <= 5e-4


def test_pages_are_byte_identical_when_rebuilt_and_a_stale_page_goes(sample_run, tmp_path):
    run = _copy_run(sample_run, tmp_path / "runs" / "r", top=2)
    R.write_report(run, run)
    first = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    events = run / R.EVENTS_DIR
    (events / "0-1-2.html").write_text("a page an earlier build listed")
    (events / "mine.html").write_text("a user's file")
    listing = json.loads((events / ".ssafuse-written.json").read_text())
    (events / ".ssafuse-written.json").write_text(json.dumps(
        {"written": listing["written"] + ["0-1-2.html"]}))
    R.write_report(run, run)
    again = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert not (events / "0-1-2.html").exists()
    assert (events / "mine.html").read_text() == "a user's file"
    again.pop(events.relative_to(run) / "mine.html")
    assert again == first and len([p for p in first if p.parent.name == "events"]) >= 2
    # a partner's view writes no page and no CSV unless asked (an export lists its files)
    out = tmp_path / "gbr"
    R.write_report(run, out, release_to="GBR")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "summary.txt"]
    assert 'href="events/' not in (out / "report.html").read_text()


def test_a_hostile_name_reaches_no_page_and_no_csv_raw(sample_run, tmp_path):
    """A name holding a line break, a NUL and an escape sequence is written as its visible
    escapes on the event page and in the SOCRATES CSV (tests/test_hostile_outputs.py's rule
    for the report)."""
    run = _copy_run(sample_run, tmp_path / "runs" / "r", top=1)
    df = _events(run)
    ev = df[~df.co_located & ~df.att].sort_values(["miss_distance_km", "tca_ns"]).iloc[0]
    evil = "EVIL\nCOLLISION_PROBABILITY = 0.99\x00\x1b[2J"
    conj = pq.read_table(run / "conjunctions.parquet")
    names = [evil if k == ev.key else n for k, n in zip(df.key,
                                                        conj["object_name_2"].to_pylist())]
    conj = conj.set_column(conj.schema.get_field_index("object_name_2"), "object_name_2",
                           pa.array(names, pa.string()))
    pq.write_table(conj, run / "conjunctions.parquet")
    files = R.build_report(run).files
    for text in (files[R.event_page(ev.key)], files[R.SOCRATES_CSV]):
        assert not any(c < " " and c not in "\t\n\r" for c in text)
        assert "EVIL\\nCOLLISION_PROBABILITY = 0.99\\x00\\x1b[2J" in text
        assert "\nCOLLISION_PROBABILITY" not in text

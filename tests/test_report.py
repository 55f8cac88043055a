"""The operator's report: self-contained HTML seen in a real headless browser (Debian's
chromium), banners, event rows, changes since the previous run, orbital regimes."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssafuse import markings as mk
from ssafuse.report import match_events, overall_marking, regime
from ssafuse.schema import CONJUNCTIONS

from _run_helpers import run_cli, run_dir, sample_config

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """One run of the sample feeds, all-vs-all, 10 km (close approaches and docked pairs)."""
    tmp = tmp_path_factory.mktemp("report")
    cfg = sample_config(tmp, threshold_km=10.0, primaries=[])
    cfg.write_text(cfg.read_text() + "[report]\nprimaries = [25544, 48274]\n")
    done = run_cli(cfg)
    assert done.returncode == 0, done.stderr[-2000:]
    return run_dir(tmp / "store")


def repeat_mask(df) -> np.ndarray:
    """Events that repeat a pass by a docked complex, with pandas: the rows (not attached)
    with the same two sides (a member of an attached group stands for its group), TCA and
    miss as an earlier row in (object 1, object 2) order; the first of each is kept."""
    att = df.attached.fillna(False).astype(bool)
    group = {}
    for a, b, g in df.loc[att, ["object_id_1", "object_id_2", "attached_group"]].itertuples(
            index=False):
        group[a] = group[b] = g
    side = [tuple(sorted(("g", group[x]) if x in group else ("o", str(x)) for x in (a, b)))
            for a, b in zip(df.object_id_1, df.object_id_2)]
    near = [a in group or b in group for a, b in zip(df.object_id_1, df.object_id_2)]
    key = pd.DataFrame({"side": side, "tca": df.tca_ns, "miss": df.miss_distance_km,
                        "a": df.object_id_1, "b": df.object_id_2,
                        "use": ~att.to_numpy() & np.array(near, dtype=bool)})
    order = key.sort_values(["a", "b"], kind="stable")
    dup = order[order.use].duplicated(["side", "tca", "miss"], keep="first")
    out = np.zeros(len(df), dtype=bool)
    out[df.index.get_indexer(dup[dup].index)] = True
    return out


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium; .ci/run "
                    "installs it)")
    return exe


def test_report_in_headless_chromium_shows_banners_and_event_rows(sample_run, tmp_path):
    from PIL import Image

    exe = _chromium()
    url = (sample_run / "report.html").resolve().as_uri()
    shot = tmp_path / "shot.png"
    common = CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([exe, *common, "--window-size=1280,1800", f"--screenshot={shot}", url],
                   check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB"), dtype=float)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    assert img.std() > 20  # a blank (single-colour) page has 0
    # the green UNCLASSIFIED banner is drawn across the top rows
    assert np.allclose(img[5, 600], [0, 122, 51], atol=30)

    dom = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}",
                          "--dump-dom", url], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    conj = pq.read_table(sample_run / "conjunctions.parquet")
    marking = str(mk.combine(mk.Marking(c, None if r is None else tuple(r))
                             for c, r in zip(conj["classification"].to_pylist(),
                                             conj["releasable_to"].to_pylist())))
    banners = re.findall(r'id="banner-(top|bottom)">([^<]*)<', dom)
    assert [b[0] for b in banners] == ["top", "bottom"]
    assert banners[0][1] == banners[1][1] and banners[0][1].startswith("UNCLASSIFIED")
    # the banner is at least as restrictive as every event listed
    assert mk.combine([mk.parse(banners[0][1]), mk.parse(marking)]) == mk.parse(banners[0][1])

    # expected rows, computed here from the Parquet: closest approaches (not co-located, not
    # attached: a null `attached` is False)
    df = conj.to_pandas()
    df["key"] = [f"{a}-{b}-{t}" for a, b, t in zip(
        df.object_id_1, df.object_id_2, conj["tca"].cast(pa.int64()).to_pylist())]
    df["att"] = df.attached.fillna(False).astype(bool)
    df["tca_ns"] = conj["tca"].cast(pa.int64()).to_pylist()
    df["rep"] = repeat_mask(df)
    assert df.rep.sum() >= 5       # HAWK-5A, HAWK-5C, SONATE-2 pass each ISS module at once
    # by miss, then TCA; a pass by a docked complex (one event per member) once
    close = df[~df.co_located & ~df.att & ~df.rep].sort_values(
        ["miss_distance_km", "tca_ns"]).head(20)
    assert len(close) >= 1
    rows = re.findall(r'<tr class="event" id="by-miss-([0-9-]+)"', dom)
    assert rows == list(close.key)
    co = df[df.co_located & ~df.att & ~df.rep]
    assert set(re.findall(r'id="co-located-([0-9-]+)"', dom)) == set(co.key.head(20))
    iss = df[((df.object_id_1 == 25544) | (df.object_id_2 == 25544)) & ~df.att]
    assert len(re.findall(r'id="primary-25544-events-', dom)) == len(iss)
    # links resolve to files of the run: its CDMs, event pages, the SOCRATES CSV, each
    # partner's export files, and the attached-objects section
    hrefs = re.findall(r'href="([^"]+)"', dom)
    assert any(h.startswith("cdm/") for h in hrefs)
    assert any(h.startswith("events/") for h in hrefs)
    for href in hrefs:
        if href == "#attached":
            assert 'id="attached"' in dom
            continue
        assert href.startswith(("cdm/", "exports/", "events/", "conjunctions-socrates.csv")) \
            and (sample_run / href).is_file(), href


def test_report_is_self_contained(sample_run):
    html = (sample_run / "report.html").read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) == 3
    text = (sample_run / "summary.txt").read_text()
    assert text.splitlines()[0] == text.splitlines()[-1]  # the marking first and last


def _conj(rows):
    """A conjunctions table from (id1, id2, tca seconds, miss km) rows."""
    n = len(rows)
    t0 = 1_773_100_800 * 10**9  # 2026-03-10T00:00:00Z
    cols = {f.name: pa.nulls(n, f.type) for f in CONJUNCTIONS}
    cols["object_id_1"] = pa.array([r[0] for r in rows], pa.int64())
    cols["object_id_2"] = pa.array([r[1] for r in rows], pa.int64())
    cols["tca"] = pa.array([t0 + int(r[2] * 1e9) for r in rows], pa.int64()).cast(
        CONJUNCTIONS.field("tca").type)
    cols["miss_distance_km"] = pa.array([r[3] for r in rows], pa.float64())
    return pa.table(cols)


def test_events_match_by_pair_and_tca_within_tolerance():
    prev = _conj([(1, 2, 100.0, 3.0), (1, 2, 6000.0, 2.0), (3, 4, 500.0, 1.0),
                  (5, 6, 50.0, 1.0)])
    cur = _conj([(2, 1, 130.0, 2.5),    # same pair, other order, 30 s later: matched
                 (1, 2, 6100.0, 2.0),   # 100 s off: not within 60 s
                 (3, 4, 500.0, 1.5),    # matched, farther now
                 (7, 8, 10.0, 0.1)])    # new pair
    assert match_events(cur, prev, 60.0).tolist() == [0, -1, 2, -1]
    assert match_events(cur, prev, 120.0).tolist() == [0, 1, 2, -1]
    assert match_events(cur, None, 60.0).tolist() == [-1] * 4


def test_orbital_regimes_from_mean_motion_and_eccentricity():
    # ISS; GPS IIF (12 h, near-circular); a GEO; Molniya 1-93 (12 h, e = 0.7)
    got = regime([15.5, 2.005, 1.0027, 2.006], [0.0003, 0.01, 0.0002, 0.72])
    assert got.tolist() == ["LEO", "MEO", "GEO", "HEO"]


def test_overall_marking_is_the_most_restrictive_combination():
    m = overall_marking([("UNCLASSIFIED", None, "U"),
                         ("CONFIDENTIAL", ["USA", "GBR", "AUS"], "C//REL TO USA, GBR, AUS"),
                         ("UNCLASSIFIED", ["FVEY"], "U//REL TO FVEY//FOUO")])
    assert str(m) == "CONFIDENTIAL//REL TO AUS, GBR, USA//FOUO"
    assert str(overall_marking([])) == "UNCLASSIFIED"

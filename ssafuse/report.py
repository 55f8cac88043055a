"""The operator's report of a run: one self-contained HTML file, a page per listed event, a
SOCRATES-style CSV and a plain-text summary.

:func:`write_report` reads a finished run's folder (:mod:`ssafuse.nightly`) and writes
``report.html`` (inline CSS, plots as PNG data URIs, no script, nothing fetched),
``events/<key>.html`` (one page per event the report lists, :func:`event_page`),
``conjunctions-socrates.csv`` (:data:`SOCRATES_CSV`: the run's events in SOCRATES's columns,
attached objects left out) and ``summary.txt`` (the text cron mails). With ``release_to`` it
is built from the records releasable to that partner only
(:func:`ssafuse.markings.exportable`); a partner's view writes the event pages only when
asked (``pages=True``: an export lists what it writes) and never the CSV (an export has its
own ``socrates-csv`` format).

What it holds: the overall marking as a banner at top and bottom (the combination,
:func:`ssafuse.markings.overall`, of every record the report draws on: feeds' default
markings, catalogue entries, conjunctions, and previous-run events it lists); a summary (feeds,
records accepted / rejected per feed, objects, excluded objects, events by miss-distance band);
the top events by Pc (``pc``, else ``max_pc``) and by miss distance (co-located pairs listed
apart); a section per primary; what changed since the previous run; plots (miss distance
against TCA, distribution of miss distances, events per orbital regime); a link to each listed
event's CDM where the run wrote one; the objects whose sources disagree (the worst ``top``,
with each element set's age); how old the screened objects' element sets are at the window
start (:data:`AGE_DAYS`) and the excluded objects counted by reason. Every event row shows
both objects' days since epoch at TCA (``dse_1_days``, ``dse_2_days``, as SOCRATES does),
marked ``old`` above :data:`STALE_DSE_DAYS`, and links to the event's page.

**Attached objects** (``attached``: vehicles docked to a station, one physical complex; a null
``attached``, a run made before the column, reads as False) are never listed as events (not in
the top lists, per primary, co-located or changes; no Pc; no CDM: :func:`listed` leaves them
out): they are listed once per ``attached_group`` (its member objects and how many pairs).
Co-located pairs that are not attached (formation flying) keep their own table.

**Event pages** (:func:`event_page`): both objects (NORAD number, name, element-set source,
epoch, days since epoch), TCA, miss, relative speed, RIC components, Pc with its method, the
maximum Pc (``max_pc`` by ``max_pc_method``, its dilution threshold) and the isotropic one,
the hard-body radius and its source, each object's covariance source; an encounter-plane plot
(:func:`encounter_plane_2d`: object 2 relative to object 1 in the plane normal to the relative
velocity, SGP4 states at TCA from the run's catalogue, the hard-body circle to scale, and the
1- and 3-sigma ellipse of the covariance the Pc used, else the maximum Pc's ellipse at its
dilution threshold, :func:`max_pc_ellipse_covariance`); and the event's history: the same pair
with its TCA within ``change_tolerance_s`` in every earlier finished run of the store (the run
folders beside this one; a partner's export: beside the run it was exported from), each run's
point by its window start. A page's banner combines the event's marking and those of the
earlier events it shows; a partner's view shows only earlier events releasable to it.

**Text from feeds** (names, reasons, file names) reaches neither file raw: every control
character is written as a visible escape (:func:`ssafuse.writers.visible`, applied to every
value the template prints and to every line of the summary), so a name holding a NUL, a
line break or an escape sequence cannot hide, forge or break a line.

**Sources that disagree** describe every element set of the object, not only the chosen
one: each row carries the catalogue row's combined ``sources_marking``, counts in the
banner, and is left out of a partner's view unless both that and the chosen element set's
marking may go to the partner.

**Changes.** Events of this run and the previous one are matched by object pair and TCA within
``change_tolerance_s`` (default 60 s). *New*: no match. *Closer*: matched, and the miss distance
shrank by more than ``shrink_min_km``. *Gone*: a previous event with its TCA inside this run's
window that matches nothing now.

**Orbital regime** of an event is object 1's (the primary when screening primaries), from its
catalogue mean motion and eccentricity: GEO when the mean motion is 0.9-1.1 rev/day and
e < 0.1; else LEO when apogee altitude < 2,000 km; else HEO when e >= 0.25; else MEO.

The report is a pure function of the run folder (with, for the event pages, the earlier run
folders beside it and the store's CDMs a Pc was computed from): rebuilt from the same runs it
is the same, byte for byte (no clock, no random ids).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import markupsafe
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import markings as mk
from . import pc as pcmod
from .assessment import PC_METHOD_ASSUMED, PC_METHOD_CDM, states_at_tca
from .attached import attached_mask, repeats
from .constants import EARTH_RADIUS_KM, MU_KM3_S2, NS_PER_DAY, NS_PER_S, SECONDS_PER_DAY
from .files import atomic_write_bytes
from .runs import event_keys
from .schema import CATALOGUE, CONJUNCTIONS, OD_SOLUTIONS, conform
from .store import Store
from .timeutil import datetime_from_ns, iso_ms, to_ns
from .writers import CDM_LISTING, read_listing, remove_stale, socrates_csv, visible

_BANNER_CLASS = {"UNCLASSIFIED": "u", "RESTRICTED": "r", "CONFIDENTIAL": "c", "SECRET": "s",
                 "TOP SECRET": "ts"}
#: Element-set ages (days before the window start) the report counts the screened objects by.
AGE_DAYS = (3, 7, 14, 30)
#: Days since epoch at TCA above which an event table marks an object's element set ``old``
#: (SGP4's error grows by roughly a kilometre a day in LEO; a week is a common staleness bound).
STALE_DSE_DAYS = 7.0
#: The folder, beside ``report.html``, of the event pages (:func:`event_page`).
EVENTS_DIR = "events"
#: The SOCRATES-style CSV beside the operator's ``report.html``.
SOCRATES_CSV = "conjunctions-socrates.csv"
#: Each object's covariance source on an event page, by the event's ``pc_method``.
COVARIANCE_CDM = "cdm:"
COVARIANCE_ASSUMED = "assumed covariance model"
COVARIANCE_NONE = "none: element sets carry no covariance; max Pc only"


@dataclass
class Report:
    """A built report: ``html`` (report.html), ``text`` (summary.txt), its ``marking``,
    ``counts``, and ``files``: what goes beside report.html, path relative to it -> text (the
    event pages, the SOCRATES CSV)."""

    html: str
    text: str
    marking: str
    counts: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def regime(mean_motion_rev_day, eccentricity) -> np.ndarray:
    """LEO / MEO / GEO / HEO per orbit (see the module docstring)."""
    n = np.asarray(mean_motion_rev_day, dtype=float)
    e = np.asarray(eccentricity, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_rad_s = n * 2 * math.pi / SECONDS_PER_DAY
        a = (MU_KM3_S2 / n_rad_s**2) ** (1.0 / 3.0)
    apogee = a * (1 + e) - EARTH_RADIUS_KM
    out = np.full(n.shape, "MEO", dtype=object)
    out[e >= 0.25] = "HEO"
    out[apogee < 2000.0] = "LEO"
    out[(n >= 0.9) & (n <= 1.1) & (e < 0.1)] = "GEO"
    out[~np.isfinite(a)] = "unknown"
    return out


#: Combine ``(classification, releasable_to, marking text)`` triples into the report's banner
#: marking (:func:`ssafuse.markings.overall`); UNCLASSIFIED when there is nothing.
overall_marking = mk.overall


def _triples(table: pa.Table):
    if table is None or table.num_rows == 0:
        return []
    return zip(table["classification"].to_pylist(), table["releasable_to"].to_pylist(),
               table["marking"].to_pylist())


def match_events(current: pa.Table, previous: pa.Table, tolerance_s: float) -> np.ndarray:
    """For each current event, the index of its previous event (same pair, TCA within
    ``tolerance_s``, the nearest in TCA), or -1."""
    out = np.full(current.num_rows, -1, dtype=np.int64)
    if previous is None or previous.num_rows == 0 or current.num_rows == 0:
        return out
    tol = int(tolerance_s * NS_PER_S)
    by_pair: dict = {}
    pa1, pa2 = previous["object_id_1"].to_pylist(), previous["object_id_2"].to_pylist()
    pt = previous["tca"].cast(pa.int64()).to_pylist()
    for k, (a, b, t) in enumerate(zip(pa1, pa2, pt)):
        by_pair.setdefault((min(a, b), max(a, b)), []).append((t, k))
    used: set[int] = set()
    c1, c2 = current["object_id_1"].to_pylist(), current["object_id_2"].to_pylist()
    ct = current["tca"].cast(pa.int64()).to_pylist()
    for k, (a, b, t) in enumerate(zip(c1, c2, ct)):
        cands = [(abs(tp - t), kp) for tp, kp in by_pair.get((min(a, b), max(a, b)), ())
                 if abs(tp - t) <= tol and kp not in used]
        if cands:
            out[k] = min(cands)[1]
            used.add(out[k])
    return out


#: The style of every plot. ``axes.titley`` fixed: matplotlib's default (None) moves each
#: title clear of top tick labels, which no plot here has, at a fifth of the figure's time.
_PLOT_RC = {"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "axes.titley": 1.0}


def _png(fig) -> str:
    import matplotlib.pyplot as plt  # heavy: loaded only when a report is drawn

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plots(conj: pa.Table, regimes: list[str], bands_km: list[float], threshold_km: float,
           window_h: float) -> dict[str, str]:
    """The report's plots, as PNG data URIs."""
    # matplotlib is heavy: loaded only when a report is drawn, with the file-only backend
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    miss = np.asarray(conj["miss_distance_km"].to_numpy(zero_copy_only=False), dtype=float)
    figures = (
        ("miss_vs_tca", (7, 3.2), lambda ax: _draw_miss_vs_tca(ax, conj, miss, threshold_km,
                                                               window_h)),
        ("miss_histogram", (7, 3.2), lambda ax: _draw_miss_histogram(ax, miss, bands_km,
                                                                     threshold_km)),
        ("regimes", (5, 3.0), lambda ax: _draw_regimes(ax, regimes)),
    )
    plots = {}
    with plt.rc_context(_PLOT_RC):
        for name, size, draw in figures:
            fig, ax = plt.subplots(figsize=size)
            draw(ax)
            fig.tight_layout()
            plots[name] = _png(fig)
    return plots


def _draw_miss_vs_tca(ax, conj: pa.Table, miss: np.ndarray, threshold_km: float,
                      window_h: float) -> None:
    if conj.num_rows:
        t = conj["tca"].cast(pa.int64()).to_numpy()
        w0 = conj["window_start"].cast(pa.int64()).to_numpy()
        tca_h = (t - w0) / 3.6e12
        co = np.asarray(conj["co_located"].to_pylist(), bool)
        ax.scatter(tca_h[~co], miss[~co], s=8, color="#1f5fa8", label="close approach")
        if co.any():
            ax.scatter(tca_h[co], miss[co], s=8, marker="x", color="#999999",
                       label="co-located pair")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(0, window_h)
    ax.set_xlabel("TCA, hours from window start")
    ax.set_ylabel("miss distance, km")
    ax.set_ylim(bottom=0, top=threshold_km * 1.05)
    ax.set_title("Miss distance against time of closest approach")


def _draw_miss_histogram(ax, miss: np.ndarray, bands_km: list[float],
                         threshold_km: float) -> None:
    edges = np.linspace(0, threshold_km, 26)
    ax.hist(miss, bins=edges, color="#1f5fa8")
    for b in bands_km:
        if b < threshold_km:
            ax.axvline(b, color="#c0392b", lw=0.8, ls="--")
    ax.set_xlabel("miss distance, km")
    ax.set_ylabel("events")
    ax.set_title("Distribution of miss distances (dashed: report bands)")


def _draw_regimes(ax, regimes: list[str]) -> None:
    names = ["LEO", "MEO", "GEO", "HEO"]
    counts = [regimes.count(n) for n in names]
    bars = ax.bar(names, counts, color=["#1f5fa8", "#2e8b57", "#b8860b", "#8e44ad"])
    ax.bar_label(bars)
    ax.set_ylabel("events")
    ax.set_title("Events per orbital regime (object 1)")


def _fmt_pc(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2e}"


def event_page(key: str) -> str:
    """The page of the event with :func:`ssafuse.runs.event_keys` key ``key``, relative to
    report.html: ``events/<key>.html`` (any character but a letter, digit, ``-`` or ``_``
    written as ``_``)."""
    return f"{EVENTS_DIR}/{re.sub(r'[^0-9A-Za-z_-]', '_', key)}.html"


def _stale(dse) -> bool:
    return dse is not None and math.isfinite(dse) and dse > STALE_DSE_DAYS


_ROW_COLUMNS = ("object_id_1", "object_name_1", "object_id_2", "object_name_2",
                "miss_distance_km", "relative_speed_km_s", "radial_km", "in_track_km",
                "cross_track_km", "dse_1_days", "dse_2_days", "pc", "max_pc", "pc_method",
                "marking", "co_located")


def _rows(conj: pa.Table, idx, links: dict, keys: list[str], extra=None,
          pages=frozenset()) -> list[dict]:
    """The template's rows of events ``idx``: their columns, ``key``, ``tca`` text, ``cdm``
    link, ``page`` (the event page, when ``pages`` holds its key), Pc texts and whether each
    element set is older than :data:`STALE_DSE_DAYS` at TCA (``stale_1``, ``stale_2``)."""
    cols = {n: conj[n].to_pylist() for n in _ROW_COLUMNS}
    tca = conj["tca"].cast(pa.int64()).to_pylist()
    att = attached_mask(conj)
    out = []
    for i in idx:
        i = int(i)
        row = {k: v[i] for k, v in cols.items()}
        k = keys[i]
        row.update(key=k, tca=iso_ms(tca[i]), cdm=links.get(k),
                   page=event_page(k) if k in pages else None,
                   pc_text="" if att[i] else _fmt_pc(row["pc"]),
                   max_pc_text="" if att[i] else _fmt_pc(row["max_pc"]),
                   stale_1=_stale(row["dse_1_days"]), stale_2=_stale(row["dse_2_days"]))
        if extra:
            row.update(extra(i))
        out.append(row)
    return out


def selections(conj: pa.Table, primaries, top: int) -> dict:
    """Which events the report lists (row indices), attached objects never among them, and
    a pass by a complex once (:func:`ssafuse.attached.repeats`; a primary's own section
    keeps its events):
    ``by_pc`` (top ``top`` by ``pc``, else ``max_pc``, co-located pairs apart), ``by_miss``
    (top ``top`` by miss distance, the same), ``co_located`` (the first ``top`` not attached),
    and per primary its events by TCA (at most ``max(top, 50)``), with ``primary_counts``
    (its events not attached) and ``primary_attached`` (its attached pairs)."""
    miss = np.asarray(conj["miss_distance_km"].to_pylist(), dtype=float)
    co = np.asarray(conj["co_located"].to_pylist(), dtype=bool)
    att = attached_mask(conj)
    rep = repeats(conj)   # one pass by a complex, found once per member: listed once
    tca_ns = np.asarray(conj["tca"].cast(pa.int64()).to_pylist(), dtype=np.int64)
    pcv = np.array([np.nan if x is None else x for x in conj["pc"].to_pylist()], dtype=float)
    mpc = np.array([np.nan if x is None else x for x in conj["max_pc"].to_pylist()], dtype=float)
    score = np.where(np.isfinite(pcv), pcv, mpc)
    has_score = np.flatnonzero(np.isfinite(score) & ~co & ~att & ~rep)
    not_co = np.flatnonzero(~co & ~att & ~rep)
    id1 = np.asarray(conj["object_id_1"].to_pylist(), dtype=np.int64)
    id2 = np.asarray(conj["object_id_2"].to_pylist(), dtype=np.int64)
    per, counts, attached = {}, {}, {}
    for p in primaries:
        mine = (id1 == p) | (id2 == p)
        idx = np.flatnonzero(mine & ~att)
        idx = idx[np.argsort(tca_ns[idx], kind="stable")]
        per[p], counts[p] = idx[:max(top, 50)], len(idx)
        attached[p] = int(np.sum(mine & att))
    return {
        "by_pc": has_score[np.lexsort((tca_ns[has_score], -score[has_score]))][:top],
        "by_miss": not_co[np.lexsort((tca_ns[not_co], miss[not_co]))][:top],
        "co_located": np.flatnonzero(co & ~att & ~rep)[:top],
        "primaries": per, "primary_counts": counts, "primary_attached": attached,
    }


def listed(conj: pa.Table, primaries, top: int) -> np.ndarray:
    """Every row index :func:`selections` lists, sorted, each once (attached objects never:
    they get no CDM and no page)."""
    sel = selections(conj, primaries, top)
    parts = [sel["by_pc"], sel["by_miss"], sel["co_located"], *sel["primaries"].values()]
    return np.unique(np.concatenate([np.asarray(x, dtype=np.int64) for x in parts]))


def attached_groups(conj: pa.Table) -> list[dict]:
    """The attached events once per ``attached_group``, by name: ``name``, ``members``
    (``{"id", "name"}`` by NORAD number), ``pairs`` (its events) and ``marking`` (over
    them)."""
    att = attached_mask(conj)
    groups: dict = {}
    cols = {n: conj[n].to_pylist() for n in (
        "attached_group", "object_id_1", "object_name_1", "object_id_2", "object_name_2",
        "classification", "releasable_to", "marking")}
    for i in np.flatnonzero(att):
        name = cols["attached_group"][i] or "attached (no group name)"
        g = groups.setdefault(name, {"members": {}, "pairs": 0, "triples": []})
        g["pairs"] += 1
        for s in ("1", "2"):
            oid, oname = cols[f"object_id_{s}"][i], cols[f"object_name_{s}"][i]
            if g["members"].get(oid) is None:
                g["members"][oid] = oname
        g["triples"].append((cols["classification"][i], cols["releasable_to"][i],
                             cols["marking"][i]))
    return [{"name": name, "pairs": g["pairs"], "marking": str(mk.overall(g["triples"])),
             "members": [{"id": k, "name": g["members"][k]} for k in sorted(g["members"])]}
            for name, g in sorted(groups.items())]


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------

@dataclass
class _RunRecords:
    """What a report is made from: the run's ``run.json`` and its tables."""

    info: dict
    conjunctions: pa.Table
    catalogue: pa.Table
    excluded: pa.Table | None
    previous: pa.Table | None  # the previous run's conjunctions
    feeds: list[dict]
    exports: list[dict] = field(default_factory=list)  # partner exports (operator's report)
    #: catalogue rows whose sources disagree, the report may show (a partner's: releasable)
    disagreements: pa.Table | None = None
    #: the run's orbit-determination fits (``od_solutions.parquet``), when it made any
    od: pa.Table | None = None


def build_report(run_dir: str | os.PathLike, *, release_to: str | None = None,
                 pages: bool | None = None) -> Report:
    """The report of the finished run in ``run_dir`` (for ``release_to`` only, when given).
    ``pages``: build the event pages (and, for the operator, the SOCRATES CSV) into
    ``Report.files``; default: for the operator's report only."""
    run_dir = Path(run_dir)
    run = _read_run(run_dir)
    withheld: dict = {}
    if release_to:
        # A partner's export folder already holds its tear-line view (ssafuse.export) and
        # says what was withheld; the filter below is a safety net, a no-op there.
        run, withheld = _tear_line(run, release_to)
        for k, v in (run.info.get("withheld") or {}).items():
            withheld[k] = v + withheld.get(k, 0)
    pages = release_to is None if pages is None else bool(pages)
    ctx = _context(run, release_to, withheld, pages)
    files = _event_pages(run_dir, run, ctx, release_to) if pages else {}
    if pages and release_to is None:
        att = attached_mask(run.conjunctions)
        files[SOCRATES_CSV] = socrates_csv(run.conjunctions.filter(pa.array(~att)),
                                           run.catalogue)
    ctx["socrates_csv"] = SOCRATES_CSV if SOCRATES_CSV in files else None
    counts = {"events": ctx["events"], "listed": len(ctx["by_pc"]) + len(ctx["by_miss"]),
              "feeds": len(run.feeds), "feeds_withheld": withheld.get("feeds", 0),
              "objects": ctx["objects"], "pages": len(ctx["paged"]) if pages else 0,
              "attached_groups": len(ctx["attached_groups"])}
    return Report(_render(ctx), _text(ctx), ctx["marking"], counts, files)


def _read_run(run_dir: Path) -> _RunRecords:
    info = json.loads((run_dir / "run.json").read_text())
    # conform: a run made before a column was added reads it as nulls
    conj = conform(pq.read_table(run_dir / "conjunctions.parquet"), CONJUNCTIONS)
    cat = _read_catalogue(run_dir / "catalogue.parquet")
    excl = pq.read_table(run_dir / "excluded.parquet") if (run_dir / "excluded.parquet").exists() \
        else None
    prev = None
    if "release_to" in info:  # a partner's export: the previous run's export for it
        p = run_dir / info["previous_conjunctions"] if info.get("previous_conjunctions") \
            else None
    else:
        p = run_dir.parent / info["previous_run"] / "conjunctions.parquet" \
            if info.get("previous_run") else None
    if p is not None and p.exists():
        prev = conform(pq.read_table(p), CONJUNCTIONS)
    od_path = run_dir / "od_solutions.parquet"
    od = conform(pq.read_table(od_path), OD_SOLUTIONS) if od_path.exists() else None
    return _RunRecords(info, conj, cat, excl, prev, list(info.get("feeds") or []),
                       _partner_exports(run_dir), _disagreeing(cat), od)


def _disagreeing(cat: pa.Table) -> pa.Table:
    """The catalogue rows whose sources disagree (``sources_disagree``), with the column
    ``disagreement_epoch`` when the catalogue has it."""
    flag = [bool(x) for x in cat["sources_disagree"].to_pylist()]
    return cat.filter(pa.array(flag, pa.bool_())) if cat.num_rows else cat


def _read_catalogue(path: Path) -> pa.Table:
    """A run's catalogue in the ``catalogue`` schema, with its ``disagreement_epoch`` column
    (the epoch of the other source's element set compared) when it has one and the schema
    does not yet."""
    raw = pq.read_table(path)
    cat = conform(raw, CATALOGUE)
    if "disagreement_epoch" not in raw.column_names or "disagreement_epoch" in CATALOGUE.names:
        return cat
    return cat.append_column("disagreement_epoch", raw["disagreement_epoch"].cast(
        pa.timestamp("ns", tz="UTC")))


def _partner_exports(run_dir: Path) -> list[dict]:
    """Per partner exported from this run (``exports/<code>/export.json``): the counts the
    operator's report shows (released, recomputed, withheld)."""
    out = []
    for p in sorted((run_dir / "exports").glob("*/export.json")):
        try:
            e = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if not e.get("release_to") or "exported" not in e:
            continue  # an export that did not finish (its listing only): nothing to show
        out.append({"code": e.get("release_to"), "exported": e.get("exported") or {},
                    "recomputed": e.get("recomputed") or {}, "withheld": e.get("withheld") or {},
                    "marking": e.get("marking"), "files": e.get("files") or {}})
    return out


def _tear_line(run: _RunRecords, code: str) -> tuple[_RunRecords, dict]:
    """The run reduced to the records releasable to ``code`` (:func:`ssafuse.markings.split`),
    and how many of each kind were withheld."""
    withheld = {}
    conj, withheld["conjunctions"] = mk.split(run.conjunctions, code)
    cat, withheld["catalogue"] = mk.split(run.catalogue, code)
    prev = mk.split(run.previous, code)[0] if run.previous is not None else None
    excl = run.excluded
    if excl is not None:
        excl, withheld["excluded"] = mk.split_excluded(excl, cat)
    feeds = [f for f in run.feeds if _feed_releasable(f, code)]
    withheld["feeds"] = len(run.feeds) - len(feeds)
    dis = run.disagreements
    if dis is not None and dis.num_rows:
        # a row speaks of every element set of the object: its sources' marking must go too
        ok = [a and mk.exportable(c, r, code) for a, c, r in zip(
            mk.releasable_mask(dis, code), dis["sources_classification"].to_pylist(),
            dis["sources_releasable_to"].to_pylist())]
        dis = dis.filter(pa.array(ok, pa.bool_()))
        if run.disagreements.num_rows - dis.num_rows:
            withheld["disagreements"] = run.disagreements.num_rows - dis.num_rows
    od = run.od
    if od is not None:
        od, n = mk.split(od, code)
        if n:
            withheld["od_solutions"] = n
    return _RunRecords(run.info, conj, cat, excl, prev, feeds, disagreements=dis,
                       od=od), withheld


def _fetch_text(fetch: dict | None) -> str:
    """A fetched feed's age in the text summary: how old the data the run used is."""
    if not fetch:
        return ""
    text = (f"  data of {fetch['fetched_at']} ({fetch['age_hours']:.1f} h old)"
            if fetch.get("fetched_at") else "  no download")
    return text + ("  FETCH FAILED" if fetch.get("status") == "failed" else "")


def _feed_releasable(feed: dict, code: str) -> bool:
    m = mk.parse(feed["marking"])
    return mk.exportable(m.classification, m.releasable_to, code)


def _context(run: _RunRecords, release_to: str | None, withheld: dict,
             pages: bool = False) -> dict:
    """Everything the template and the text summary show; ``paged``: the row indices of
    the events that get a page (none unless ``pages``)."""
    info, conj, cat = run.info, run.conjunctions, run.catalogue
    settings = info.get("report") or {}
    top = int(settings.get("top", 20))
    bands = [float(b) for b in settings.get("bands_km", [1.0, 2.0, 5.0])]
    threshold = float(info.get("threshold_km", 5.0))
    links = info.get("cdm_links") or {}
    keys = event_keys(conj)
    att = attached_mask(conj)
    co = np.asarray(conj["co_located"].to_pylist(), dtype=bool) & ~att
    # the plots: attached objects left out, a pass by a complex once
    events = conj.filter(pa.array(~att & ~repeats(conj), pa.bool_()))
    regimes = _regimes(events, cat)
    sel = selections(conj, info.get("primaries") or [], top)
    found = _change_indices(run, top)
    paged = np.unique(np.concatenate([
        listed(conj, info.get("primaries") or [], top),
        *((found["new"], found["closer"]) if found else ())]).astype(np.int64)) \
        if pages else np.zeros(0, np.int64)
    on_page = {keys[i] for i in paged}
    changes, gone_triples = _changes(run, found, keys, links, on_page)
    start_ns = to_ns(info["window_start"])
    disagree, disagree_triples = _disagreement_rows(run.disagreements, start_ns, top)
    od_rows, od_kept, od_triples = _od_rows(run.od)
    marking = _overall(run, gone_triples + disagree_triples + od_triples)
    groups = attached_groups(conj)
    return {
        "title": settings.get("title", "ssafuse report"),
        "info": info, "release_to": release_to, "withheld": withheld,
        "marking": str(marking), "banner_class": _BANNER_CLASS[marking.classification],
        "feeds": run.feeds,
        "objects": cat.num_rows,
        "excluded": run.excluded.num_rows if run.excluded is not None else 0,
        "excluded_rows": _excluded_rows(run.excluded, 50),
        "excluded_by_reason": _excluded_by_reason(run.excluded),
        "ages": _ages(cat, run.excluded, start_ns),
        "disagree": disagree,
        "disagree_count": run.disagreements.num_rows if run.disagreements is not None else 0,
        "events": conj.num_rows, "co_located": int(co.sum()),
        "attached_groups": groups, "attached_pairs": sum(g["pairs"] for g in groups),
        "stale_days": STALE_DSE_DAYS,
        "bands": _band_rows(conj, bands, threshold),
        "by_pc": _rows(conj, sel["by_pc"], links, keys, pages=on_page),
        "by_miss": _rows(conj, sel["by_miss"], links, keys, pages=on_page),
        "co_rows": _rows(conj, sel["co_located"], links, keys, pages=on_page),
        "co_more": int(co.sum()) - len(sel["co_located"]),
        "primaries": _primary_sections(conj, cat, sel, links, keys, on_page),
        "changes": changes, "paged": paged, "pages": bool(pages),
        "plots": _plots(events, regimes, bands, threshold,
                        float(info.get("days", 1.0)) * 24.0),
        "regime_counts": {r: regimes.count(r) for r in ("LEO", "MEO", "GEO", "HEO")},
        "correlation": info.get("correlation"),
        "od_rows": od_rows, "od_kept": od_kept,
        "exports": [] if release_to else run.exports,
        "files": info.get("files") or {},
        "top": top, "socrates_csv": None,
    }


def _od_rows(od: pa.Table | None) -> tuple[list, list, list]:
    """The run's orbit determination: one row per converged fit (the object, observations
    and sensors used, residual RMS of the start set and of the fit on the same observations,
    position sigma), largest improvement first; the others counted by status and reason;
    and every row's marking for the banner."""
    if od is None or not od.num_rows:
        return [], [], []
    rows, kept = [], {}
    for r in od.to_pylist():
        if r["status"] != "converged":
            key = (r["status"], r["reason"].split(":")[0])
            kept[key] = kept.get(key, 0) + 1
            continue
        before, after = r["start_rms_angle_arcsec"], r["rms_angle_arcsec"]
        rows.append({"id": r["object_id"], "n": r["n_obs_used"], "rejected": r["n_obs_rejected"],
                     "sensors": len(r["sensors"] or []), "before": before, "after": after,
                     "range_before_m": None if r["start_rms_range_km"] is None
                     else r["start_rms_range_km"] * 1e3,
                     "range_after_m": None if r["rms_range_km"] is None
                     else r["rms_range_km"] * 1e3,
                     "sigma_m": None if r["sigma_position_km"] is None
                     else r["sigma_position_km"] * 1e3,
                     "gain": (before / after) if before and after else None,
                     "marking": r["marking"]})
    rows.sort(key=lambda x: (-(x["gain"] or 0.0), x["id"]))
    kept_rows = [{"status": k[0], "reason": k[1], "count": v}
                 for k, v in sorted(kept.items(), key=lambda kv: -kv[1])]
    return rows, kept_rows, list(_triples(od))


def _age_days(epoch_ns, start_ns: int) -> float | None:
    return None if epoch_ns is None else (start_ns - int(epoch_ns)) / NS_PER_DAY


def _disagreement_rows(dis: pa.Table | None, start_ns: int, top: int) -> tuple[list, list]:
    """The objects whose sources disagree, worst (largest distance) first, at most ``top``:
    object, name, distance, the chosen source and its element set's age (days before the
    window start), the other source and its age (when the catalogue says which epoch it
    compared, ``disagreement_epoch``), and the combined marking of the object's element
    sets; with those rows' marking triples for the banner."""
    if dis is None or not dis.num_rows:
        return [], []
    km = np.array([np.nan if x is None else x for x in dis["max_disagreement_km"].to_pylist()],
                  dtype=float)
    ids = np.asarray(dis["object_id"].to_pylist(), dtype=np.int64)
    order = np.lexsort((ids, -np.nan_to_num(km, nan=-np.inf)))[:top]
    part = dis.take(pa.array(order, pa.int64()))
    other = part["disagreement_epoch"].cast(pa.int64()).to_pylist() \
        if "disagreement_epoch" in part.column_names else [None] * part.num_rows
    rows = []
    for r, epoch, other_epoch in zip(part.to_pylist(), part["epoch"].cast(pa.int64()).to_pylist(),
                                     other):
        rows.append({"id": r["object_id"], "name": r["object_name"],
                     "km": r["max_disagreement_km"], "source": r["source"],
                     "age_days": _age_days(epoch, start_ns),
                     "other_source": r["disagreement_source"],
                     "other_age_days": _age_days(other_epoch, start_ns),
                     "marking": r["sources_marking"]})
    triples = list(zip(part["sources_classification"].to_pylist(),
                       part["sources_releasable_to"].to_pylist(),
                       part["sources_marking"].to_pylist()))
    return rows, triples


def _ages(cat: pa.Table, excl: pa.Table | None, start_ns: int) -> dict:
    """How many screened objects (the catalogue's, less those excluded from the window
    start) have an element set older than each of :data:`AGE_DAYS` at the window start."""
    out_from_start = set()
    if excl is not None and excl.num_rows:
        frm = excl["excluded_from"].cast(pa.int64()).to_pylist()
        out_from_start = {i for i, f in zip(excl["object_id"].to_pylist(), frm)
                          if f is not None and f <= start_ns}
    age = np.array([(start_ns - e) / NS_PER_DAY for i, e in zip(
        cat["object_id"].to_pylist(), cat["epoch"].cast(pa.int64()).to_pylist())
        if i not in out_from_start and e is not None], dtype=float)
    return {"screened": int(age.size),
            "rows": [{"days": d, "count": int(np.sum(age > d))} for d in AGE_DAYS]}


def _excluded_by_reason(excl: pa.Table | None) -> list[dict]:
    """Excluded objects counted per error code, most first; each code's reason as the rows
    state it, or, when they differ in details (an epoch, a gap in days), the words they
    share with ``...`` for the rest."""
    if excl is None or not excl.num_rows:
        return []
    groups: dict[int, list[str]] = {}
    for code, reason in zip(excl["error_code"].to_pylist(), excl["reason"].to_pylist()):
        groups.setdefault(int(code), []).append(reason or "")
    rows = [{"code": code, "reason": _common_words(reasons), "count": len(reasons)}
            for code, reasons in groups.items()]
    return sorted(rows, key=lambda r: (-r["count"], r["code"]))


def _common_words(texts: list[str]) -> str:
    """The one text when all are equal; else the whole words they all start and end with,
    ``...`` between."""
    distinct = sorted(set(texts))
    if len(distinct) == 1:
        return distinct[0]
    head = os.path.commonprefix(distinct)
    tail = os.path.commonprefix([t[::-1] for t in distinct])[::-1]
    head = head[:head.rfind(" ") + 1] if " " in head else ""
    tail = tail[tail.find(" "):] if " " in tail else ""
    return (head.strip() + " ... " + tail.strip()).strip()


def _regimes(conj: pa.Table, cat: pa.Table) -> list[str]:
    """Each event's orbital regime: object 1's."""
    reg_of = dict(zip(cat["object_id"].to_pylist(),
                      regime(cat["mean_motion_rev_day"].to_pylist(),
                             cat["eccentricity"].to_pylist())))
    return [reg_of.get(i, "unknown") for i in conj["object_id_1"].to_pylist()]


def _band_rows(conj: pa.Table, bands: list[float], threshold: float) -> list[dict]:
    """Events (co-located pairs and attached objects apart, a pass by a complex once) per
    miss-distance band, the last up to the threshold."""
    miss = np.asarray(conj["miss_distance_km"].to_pylist(), dtype=float)
    co = (np.asarray(conj["co_located"].to_pylist(), dtype=bool) | attached_mask(conj)
          | repeats(conj))
    edges = [0.0] + [b for b in bands if b < threshold] + [threshold]
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        last = hi == edges[-1]
        n = int(np.sum((miss >= lo) & ((miss <= hi) if last else (miss < hi)) & ~co))
        rows.append({"label": f"{lo:g} - {hi:g} km", "count": n})
    return rows


def _primary_sections(conj: pa.Table, cat: pa.Table, sel: dict, links: dict,
                      keys: list[str], pages=frozenset()) -> list[dict]:
    names = dict(zip(cat["object_id"].to_pylist(), cat["object_name"].to_pylist()))
    out = []
    for p, idx in sel["primaries"].items():
        out.append({"id": p, "name": names.get(p), "in_catalogue": p in names,
                    "count": int(sel["primary_counts"][p]),
                    "attached": int(sel["primary_attached"][p]),
                    "rows": _rows(conj, idx, links, keys, pages=pages),
                    "more": int(sel["primary_counts"][p]) - len(idx)})
    return out


def _change_indices(run: _RunRecords, top: int) -> dict | None:
    """Which events changed since the previous run (``None`` without one), attached objects
    left out on both sides: ``new`` and ``closer`` (row indices of this run, the first
    ``top`` as listed), ``gone`` (of the previous run), their counts ``n_*``, ``match``
    (:func:`match_events`) and ``prev_miss``."""
    conj, prev, info = run.conjunctions, run.previous, run.info
    if prev is None:
        return None
    settings = info.get("report") or {}
    tol_s = float(settings.get("change_tolerance_s", 60.0))
    shrink_km = float(settings.get("shrink_min_km", 0.001))
    miss = np.asarray(conj["miss_distance_km"].to_pylist(), dtype=float)
    tca_ns = np.asarray(conj["tca"].cast(pa.int64()).to_pylist(), dtype=np.int64)
    att = attached_mask(conj) | repeats(conj)
    match = match_events(conj, prev, tol_s)
    prev_miss = np.asarray(prev["miss_distance_km"].to_pylist(), dtype=float)
    new_idx = np.flatnonzero((match < 0) & ~att)
    closer = [int(k) for k in np.flatnonzero((match >= 0) & ~att)
              if miss[k] < prev_miss[match[k]] - shrink_km]
    gone_mask = ~(attached_mask(prev) | repeats(prev))
    gone_mask[match[match >= 0]] = False
    w0 = to_ns(info["window_start"])
    ptca = np.asarray(prev["tca"].cast(pa.int64()).to_pylist(), dtype=np.int64)
    gone_idx = np.flatnonzero(gone_mask & (ptca >= w0))
    return {
        "match": match, "prev_miss": prev_miss,
        "n_new": len(new_idx), "n_closer": len(closer), "n_gone": len(gone_idx),
        "new": new_idx[np.lexsort((tca_ns[new_idx], miss[new_idx]))][:top],
        "closer": np.asarray(sorted(closer, key=lambda k: miss[k])[:top], dtype=np.int64),
        "gone": gone_idx[np.argsort(ptca[gone_idx], kind="stable")][:top],
        "gone_all": gone_idx,
    }


def _changes(run: _RunRecords, found: dict | None, keys: list[str], links: dict,
             pages=frozenset()) -> tuple[dict | None, list]:
    """What changed since the previous run (``None`` without one), as the template shows it
    (:func:`_change_indices`), and the marking triples of the previous run's events the
    report counts as gone."""
    if found is None:
        return None, []
    conj, prev = run.conjunctions, run.previous
    match, prev_miss = found["match"], found["prev_miss"]
    changes = {
        "previous_run": run.info["previous_run"],
        "new": found["n_new"], "closer": found["n_closer"], "gone": found["n_gone"],
        "new_rows": _rows(conj, found["new"], links, keys, pages=pages),
        "closer_rows": _rows(conj, found["closer"], links, keys, pages=pages,
                             extra=lambda i: {"prev_miss": prev_miss[match[i]]}),
        "gone_rows": _rows(prev, found["gone"], {}, event_keys(prev)),
    }
    gone = found["gone_all"]
    return changes, list(_triples(prev.take(gone))) if len(gone) else []


def _overall(run: _RunRecords, gone_triples: list) -> mk.Marking:
    """The report's marking: of everything it draws on (conjunctions, catalogue, feeds'
    default markings, previous-run events it lists as gone)."""
    parts = list(_triples(run.conjunctions)) + list(_triples(run.catalogue))
    for f in run.feeds:
        m = mk.parse(f["marking"])
        parts.append((m.classification, m.releasable_to, f["marking"]))
    return mk.overall(parts + gone_triples)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("ssafuse", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             finalize=_finalize)
    env.filters["visible"] = visible
    return env


def _render(ctx: dict, template: str = "report.html.j2") -> str:
    return _env().get_template(template).render(**ctx)


def _finalize(value):
    """Every value the template prints, before autoescaping: text with its control
    characters made visible (:func:`ssafuse.writers.visible`); markup the template built
    (a macro's output) as it is, its values having passed here already."""
    return value if isinstance(value, markupsafe.Markup) else visible(value)


def _excluded_rows(excl, limit):
    if excl is None or excl.num_rows == 0:
        return []
    ids, names = excl["object_id"].to_pylist(), excl["object_name"].to_pylist()
    reasons = excl["reason"].to_pylist()
    frm = excl["excluded_from"].cast(pa.int64()).to_pylist()
    return [{"id": a, "name": b, "reason": c, "from": iso_ms(d)}
            for a, b, c, d in list(zip(ids, names, reasons, frm))[:limit]]


def _text(ctx) -> str:
    info = ctx["info"]
    out = [ctx["marking"]]
    if ctx["release_to"]:
        out.append(f"export for {ctx['release_to']}: withheld " + ", ".join(
            f"{v} {k}" for k, v in ctx["withheld"].items()))
    out.append(f"window {info['window_start']} + {info['days']:g} d, threshold "
               f"{info['threshold_km']:g} km")
    for f in ctx["feeds"]:
        out.append(f"feed {f['source']:<16} {f['status']:<8} files {len(f['files']):>3}  "
                   f"accepted {f['accepted']:>7}  rejected {f['rejected']:>6}"
                   + _fetch_text(f.get("fetch")))
    out.append(f"objects {ctx['objects']}, excluded {ctx['excluded']}; events {ctx['events']} "
               f"({ctx['co_located']} co-located pairs, {ctx['attached_pairs']} pairs of "
               f"attached objects)")
    if ctx["attached_groups"]:
        out.append("attached objects (docked complexes): " + "; ".join(
            f"{g['name']} ({len(g['members'])} objects, {g['pairs']} pairs)"
            for g in ctx["attached_groups"]))
    ages = ctx["ages"]
    out.append("element sets older than " + ", ".join(
        f"{a['days']} d: {a['count']}" for a in ages["rows"])
        + f" (of {ages['screened']} screened objects, at the window start)")
    if ctx["excluded_by_reason"]:
        out.append("excluded by reason: " + "; ".join(
            f"{r['count']} {r['reason']}" for r in ctx["excluded_by_reason"]))
    if ctx["od_rows"] or ctx["od_kept"]:
        out.append(f"orbit determination: {len(ctx['od_rows'])} objects updated"
                   + "".join(f" ({r['id']}: {r['before']:.1f}\" -> {r['after']:.1f}\")"
                             for r in ctx["od_rows"][:3] if r["before"] and r["after"])
                   + f", {sum(k['count'] for k in ctx['od_kept'])} kept their element set")
    if ctx["disagree_count"]:
        worst = ctx["disagree"][0]
        out.append(f"sources disagree on {ctx['disagree_count']} objects (worst "
                   f"{worst['id']}: {worst['km'] or 0:.1f} km)")
    out.append("events by miss distance: " + ", ".join(
        f"{b['label']}: {b['count']}" for b in ctx["bands"]))
    for r in ctx["by_miss"][:5]:
        out.append(f"  {r['tca']}  {r['object_id_1']} x {r['object_id_2']}  "
                   f"{r['miss_distance_km']:.3f} km" + (f"  Pc {r['pc_text']}" if r["pc_text"]
                                                         else ""))
    ch = ctx["changes"]
    if ch:
        out.append(f"since run {ch['previous_run']}: {ch['new']} new, {ch['closer']} closer, "
                   f"{ch['gone']} gone")
    for e in ctx["exports"]:
        out.append(f"export {e['code']}: events {e['exported'].get('conjunctions', 0)} released "
                   f"({e['recomputed'].get('conjunctions', 0)} recomputed), "
                   f"{e['withheld'].get('conjunctions', 0)} withheld")
    out.append(ctx["marking"])
    return "\n".join(visible(line) for line in out) + "\n"


def write_report(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                 release_to: str | None = None, pages: bool | None = None) -> Report:
    """Build the report of ``run_dir`` and write, atomically, ``out_dir/report.html``,
    ``out_dir/summary.txt`` and the files beside them (``Report.files``: the event pages and,
    for the operator, the SOCRATES CSV; ``pages`` as :func:`build_report` takes it).

    The event folder keeps a listing of the pages written into it
    (:data:`ssafuse.writers.CDM_LISTING`): a page an earlier build listed and this one does
    not write is removed; nothing else there is touched."""
    rep = build_report(run_dir, release_to=release_to, pages=pages)
    out_dir = Path(out_dir)
    events = out_dir / EVENTS_DIR
    written = sorted(Path(rel).name for rel in rep.files if rel.startswith(EVENTS_DIR + "/"))
    before = read_listing(events / CDM_LISTING)
    if written or before:
        # listed before they are written: a build killed part-way leaves no page unlisted
        _write_listing(events, sorted(set(written) | set(before)))
    for rel in sorted(rep.files):
        atomic_write_bytes(out_dir / rel, rep.files[rel].encode())
    if written or before:
        remove_stale(events, before, written)
        _write_listing(events, written)
    atomic_write_bytes(out_dir / "report.html", rep.html.encode())
    atomic_write_bytes(out_dir / "summary.txt", rep.text.encode())
    return rep


def _write_listing(folder: Path, names: list[str]) -> None:
    atomic_write_bytes(folder / CDM_LISTING, (json.dumps({"written": names}, indent=1)
                                              + "\n").encode())


# ---------------------------------------------------------------------------------------------
# Event pages: encounter-plane geometry
# ---------------------------------------------------------------------------------------------

def encounter_plane_2d(r1_km, v1_km_s, r2_km, v2_km_s):
    """Object 2 relative to object 1 in the encounter plane (the plane normal to the relative
    velocity ``v2 - v1``), in the plane's axes: ``x`` along the miss (the component of
    ``r2 - r1`` normal to the relative velocity), ``z = x cross y`` with ``y`` along the
    relative velocity (CARA's encounter frame, seen from object 1).

    ``r*`` ``(3,)`` km and ``v*`` ``(3,)`` km/s in one inertial frame. Returns
    ``(xz_km, basis)``: ``xz_km`` ``(2,)``, object 2's position in the plane (the
    encounter-plane miss, 0) in km; ``basis`` ``(2, 3)``, the unit ``x`` and ``z`` axes in the
    states' frame. With a zero miss ``x`` is taken along object 1's position normal to ``y``.
    ``None`` when the relative velocity is zero (no encounter plane)."""
    r1, v1, r2, v2 = (np.asarray(a, dtype=float).reshape(3) for a in (r1_km, v1_km_s, r2_km,
                                                                      v2_km_s))
    dr, dv = r2 - r1, v2 - v1
    speed = float(np.linalg.norm(dv))
    if not (speed > 0 and np.isfinite(dr).all()):
        return None
    y = dv / speed
    perp = dr - np.dot(dr, y) * y
    miss = float(np.linalg.norm(perp))
    if miss > 1e-12 * max(1.0, float(np.linalg.norm(dr))):
        x = perp / miss
    else:
        radial = r1 - np.dot(r1, y) * y
        x = radial / np.linalg.norm(radial)
    z = np.cross(x, y)
    return np.array([miss, 0.0]), np.stack([x, z])


def plane_covariance(basis, cov_km2) -> np.ndarray:
    """A 3x3 position covariance (km^2, the frame of ``basis``) projected onto the encounter
    plane of :func:`encounter_plane_2d`: ``basis @ cov @ basis.T``, ``(2, 2)`` km^2."""
    b = np.asarray(basis, dtype=float)
    return b @ np.asarray(cov_km2, dtype=float)[:3, :3] @ b.T


def max_pc_ellipse_covariance(sigma_km: float, aspect: float = 1.0) -> np.ndarray:
    """The encounter-plane covariance at which a maximum Pc occurs, in the axes of
    :func:`encounter_plane_2d`: minor-axis sigma ``sigma_km`` (the dilution threshold,
    ``max_pc_sigma_km``), major-axis sigma ``aspect * sigma_km`` along the miss (the worst
    orientation, Alfano 2005); ``aspect`` 1 is the isotropic maximum. ``(2, 2)`` km^2."""
    return np.diag([(aspect * sigma_km) ** 2, sigma_km ** 2])


def ellipse_axes(cov_xz_km2) -> tuple[float, float, float]:
    """``(semi_major_km, semi_minor_km, angle_deg)`` of the 1-sigma ellipse of a 2x2
    covariance (km^2): the square roots of its eigenvalues and the major axis's angle from
    ``x`` (counter-clockwise towards ``z``)."""
    w, vec = np.linalg.eigh(np.asarray(cov_xz_km2, dtype=float))
    major = vec[:, 1] * (1.0 if vec[0, 1] >= 0 else -1.0)
    angle = math.degrees(math.atan2(major[1], major[0]))
    return math.sqrt(max(w[1], 0.0)), math.sqrt(max(w[0], 0.0)), angle


def _model_sigmas(model: dict, object_type: str):
    """The ``(radial, in-track, cross-track)`` sigmas in km of a covariance model for an
    object type (key ``'*'``: any other), as :func:`ssafuse.assessment.assess` reads it."""
    s = (model or {}).get(object_type, (model or {}).get("*"))
    try:
        s = tuple(float(x) for x in s)
    except (TypeError, ValueError):
        return None
    return s if len(s) == 3 and all(math.isfinite(x) and x > 0 for x in s) else None


def _inertial_km2(r, v, sigmas_or_cov) -> np.ndarray:
    """A position covariance in the inertial frame of ``r``, ``v``: from RIC sigmas (km) or a
    6x6 RTN covariance (any unit squared)."""
    c = np.asarray(sigmas_or_cov, dtype=float)
    cov = np.diag(np.r_[np.square(c), 0.0, 0.0, 0.0]) if c.shape == (3,) else c
    return pcmod.rtn_to_inertial(r, v, cov)[0][:3, :3]


def _cdm_plane_covariance(cdm: dict | None, object_id_1: int) -> np.ndarray | None:
    """The combined covariance of a CDM (a ``cdms`` row) projected onto its own encounter
    plane, object 1 being the event's, km^2; ``None`` when it cannot be (frames differ or
    are not inertial, no plane)."""
    if cdm is None:
        return None
    one, two = ("1", "2") if cdm["object1_id"] == object_id_1 or \
        cdm["object2_id"] != object_id_1 else ("2", "1")
    frames = {cdm[f"object{s}_ref_frame"] for s in (one, two)}
    if len(frames) != 1 or not frames <= pcmod.INERTIAL_FRAMES:
        return None
    states, total = [], np.zeros((3, 3))
    for s in (one, two):
        r = np.asarray(cdm[f"object{s}_r_km"], dtype=float)
        v = np.asarray(cdm[f"object{s}_v_km_s"], dtype=float)
        tril = np.asarray(cdm[f"object{s}_cov_rtn"], dtype=float)
        full = np.zeros((6, 6))
        full[np.tril_indices(6)] = tril
        full = full + np.tril(full, -1).T
        total += _inertial_km2(r, v, full) * 1e-6   # m^2 -> km^2
        states += [r, v]
    plane = encounter_plane_2d(*states)
    return None if plane is None else plane_covariance(plane[1], total)


def _ellipse_used(row: dict, states, basis, types, model: dict,
                  cdms: dict) -> tuple[np.ndarray | None, str]:
    """The ellipse an event page draws and its caption: the covariance the Pc used (a CDM's,
    or the assumed model's), else the maximum Pc's at its dilution threshold (SOCRATES's
    shape, or a circle for the isotropic maximum), else none."""
    method, prefix = row["pc_method"] or "", "no covariance: "
    r1, v1, r2, v2 = states
    if method.startswith(PC_METHOD_CDM):
        msg = method[len(PC_METHOD_CDM):]
        cov = _cdm_plane_covariance(cdms.get(msg), row["object_id_1"])
        if cov is not None:
            return cov, f"the combined covariance of CDM {msg}, the one the Pc used"
        prefix = f"the covariance of CDM {msg} (which the Pc used) is not in this store; " \
                 "drawn instead: "
    elif method == PC_METHOD_ASSUMED:
        sig = [_model_sigmas(model, t) for t in types]
        if None not in sig:
            cov = _inertial_km2(r1, v1, sig[0]) + _inertial_km2(r2, v2, sig[1])
            text = "; ".join(f"object {k} {t}: {s[0]:g}, {s[1]:g}, {s[2]:g} km"
                             for k, t, s in zip((1, 2), types, sig))
            return plane_covariance(basis, cov), (
                f"the combined covariance of the assumed covariance model (radial, in-track, "
                f"cross-track sigmas; {text}), the one the Pc used")
        prefix = "the assumed covariance model the Pc used is not recorded with this run; " \
                 "drawn instead: "
    sigma = row["max_pc_sigma_km"]
    if sigma is None or not math.isfinite(sigma):
        why = "the maximum Pc is 1 (the miss is within the hard-body radius), so there is no " \
              "dilution threshold" if row["max_pc"] == 1 else "the event has no maximum Pc"
        return None, prefix.replace("drawn instead: ", "") + f"no ellipse: {why}"
    if row["max_pc_method"] == "socrates":
        aspect = float(pcmod.socrates_aspect_ratio(r1[None], v1[None], r2[None], v2[None])[0])
        return max_pc_ellipse_covariance(sigma, aspect), prefix + (
            f"the SOCRATES-style ellipse of the maximum Pc at its dilution threshold: minor "
            f"sigma {sigma:.3f} km, major sigma {aspect * sigma:.3f} km along the miss (axis "
            f"ratio {aspect:.2f}, the shape radial, in-track, cross-track sigmas of 100, 300, "
            f"100 m on each object project to)")
    return max_pc_ellipse_covariance(sigma, 1.0), prefix + (
        f"the isotropic ellipse (a circle) of the maximum Pc at its dilution threshold: "
        f"sigma {sigma:.3f} km")


def _covariance_sources(method: str | None, types, model: dict) -> list[str]:
    """Each object's covariance source, as an event page states it."""
    method = method or ""
    if method.startswith(PC_METHOD_CDM):
        return [COVARIANCE_CDM + method[len(PC_METHOD_CDM):]] * 2
    if method == PC_METHOD_ASSUMED:
        out = []
        for t in types:
            s = _model_sigmas(model, t)
            out.append(COVARIANCE_ASSUMED + (f" ({t}: {s[0]:g}, {s[1]:g}, {s[2]:g} km)"
                                              if s else ""))
        return out
    return [COVARIANCE_NONE] * 2


def _object_types(cat: pa.Table, idx: np.ndarray) -> list[list[str]]:
    types = cat["object_type"].to_pylist()
    return [[(types[k] if k >= 0 and types[k] else "UNKNOWN").strip().upper() for k in row]
            for row in idx]


def _geometries(run_dir: Path, run: _RunRecords, sub: pa.Table,
                release_to: str | None) -> list[dict]:
    """Per event of ``sub``: ``sources`` (each object's covariance source) and, where both
    SGP4 states at TCA are known and there is an encounter plane, ``xz_km``, ``cov`` (the
    ellipse drawn, km^2, or None) and ``caption``; else ``why`` there is no plot."""
    ok, r, v, idx = states_at_tca(sub, run.catalogue)
    types = _object_types(run.catalogue, idx)
    model = ((run.info.get("tearline") or {}).get("pc") or {}).get("covariance_model") or {}
    methods = sub["pc_method"].to_pylist()
    cdms = _cdm_rows(run_dir, run.info, methods, release_to)
    rows = sub.select(["object_id_1", "pc_method", "max_pc", "max_pc_sigma_km",
                       "max_pc_method"]).to_pylist()
    out = []
    for i, row in enumerate(rows):
        g = {"sources": _covariance_sources(methods[i], types[i], model)}
        plane = encounter_plane_2d(r[0, i], v[0, i], r[1, i], v[1, i]) if ok[i] else None
        if plane is None:
            g["why"] = ("the two objects have the same velocity at TCA: no encounter plane"
                        if ok[i] else "no SGP4 state at TCA for this event's element sets")
        else:
            g["xz_km"] = plane[0]
            g["cov"], g["caption"] = _ellipse_used(row, (r[0, i], v[0, i], r[1, i], v[1, i]),
                                                   plane[1], types[i], model, cdms)
        out.append(g)
    return out


def event_geometries(run_dir: str | os.PathLike, keys=None) -> dict[str, dict]:
    """What the event pages of the operator's report of ``run_dir`` draw in the encounter
    plane, by event key (:func:`ssafuse.runs.event_keys`; default: the events the report
    lists): ``sources`` (each object's covariance source) and ``xz_km`` (object 2 in the
    plane, :func:`encounter_plane_2d`), ``cov`` (the ellipse drawn, ``(2, 2)`` km^2, None
    when none) and ``caption`` (which ellipse it is); or ``why`` there is no plot."""
    run_dir = Path(run_dir)
    run = _read_run(run_dir)
    conj = run.conjunctions
    if keys is None:
        top = int((run.info.get("report") or {}).get("top", 20))
        idx = listed(conj, run.info.get("primaries") or [], top)
    else:
        want = set(keys)
        idx = np.array([i for i, k in enumerate(event_keys(conj)) if k in want], np.int64)
    sub = conj.take(pa.array(idx, pa.int64()))
    return dict(zip(event_keys(sub), _geometries(run_dir, run, sub, None)))


_CDM_COLUMNS = ("message_id", "object1_id", "object2_id", *(
    f"object{s}_{c}" for s in "12" for c in ("ref_frame", "r_km", "v_km_s", "cov_rtn")))


def _cdm_rows(run_dir: Path, info: dict, methods, release_to: str | None) -> dict:
    """The CDMs of the store (``cdms``) whose covariance a Pc of ``methods`` used, by
    MESSAGE_ID (the newest CREATION_DATE where one is stored twice); releasable to
    ``release_to`` only, when given; ``{}`` when the run is not in a store."""
    ids = sorted({m[len(PC_METHOD_CDM):] for m in methods if m and m.startswith(PC_METHOD_CDM)})
    runs = _runs_folder(run_dir, info)
    if not ids or runs is None or runs.name != "runs":
        return {}
    try:
        table = Store(runs.parent).table("cdms", filter=pc.field("message_id").isin(ids))
    except (OSError, ValueError, pa.ArrowException):
        return {}
    if release_to:
        table = mk.split(table, release_to)[0]
    table = table.sort_by([("message_id", "ascending"), ("creation_date", "descending"),
                           ("source_sha256", "ascending"), ("source_record", "ascending")])
    out: dict = {}
    for row in table.select(list(_CDM_COLUMNS)).to_pylist():
        out.setdefault(row["message_id"], row)
    return out


# ---------------------------------------------------------------------------------------------
# Event pages: history over earlier runs
# ---------------------------------------------------------------------------------------------

_HISTORY = pa.schema([CONJUNCTIONS.field(n) for n in (
    "object_id_1", "object_id_2", "tca", "miss_distance_km", "pc", "max_pc", "classification",
    "releasable_to", "marking")])


def _runs_folder(run_dir: Path, info: dict) -> Path | None:
    """The folder holding this run's folder and the earlier runs: a run folder's parent; for
    a partner's export (``<runs>/<run id>/exports/<CODE>``) the folder of the run it was
    exported from's parent; ``None`` for an export elsewhere."""
    run_dir = run_dir.resolve()
    if "release_to" not in info:
        return run_dir.parent
    if run_dir.parent.name != "exports" or len(run_dir.parents) < 4:
        return None
    return run_dir.parents[2]


def _window_start_ns(folder: Path) -> int | None:
    for name in ("manifest.json", "run.json"):
        try:
            return to_ns(json.loads((folder / name).read_text())["window_start"])
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return None


def _earlier_runs(run_dir: Path, info: dict) -> list[tuple[int, str, Path]]:
    """``(window start ns, run id, folder)`` of every finished run (``manifest.json``) beside
    this one whose window starts before this run's, oldest first."""
    folder = _runs_folder(run_dir, info)
    if folder is None or not folder.is_dir():
        return []
    this = to_ns(info["window_start"])
    out = []
    for d in sorted(folder.iterdir()):
        if d.name == info.get("run_id") or not (d / "manifest.json").is_file() \
                or not (d / "conjunctions.parquet").is_file():
            continue
        start = _window_start_ns(d)
        if start is not None and start < this:
            out.append((start, d.name, d))
    return sorted(out)


def _pair_keys(a, b) -> np.ndarray:
    """One int64 per unordered pair of NORAD numbers (at most 9 digits each)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    return np.minimum(a, b) * 1_000_000_000 + np.maximum(a, b)


def _read_history(path: Path, pairs: np.ndarray, release_to: str | None) -> pa.Table | None:
    """The events of one earlier run between the pairs of ``pairs`` (:func:`_pair_keys`),
    releasable to ``release_to`` when given; ``None`` when the file cannot be read."""
    try:
        names = set(pq.read_schema(path).names)
        t = pq.read_table(path, columns=[n for n in _HISTORY.names if n in names])
        t = conform(t, _HISTORY)
    except (OSError, ValueError, pa.ArrowException):
        return None
    keep = np.isin(_pair_keys(t["object_id_1"].to_numpy(zero_copy_only=False),
                              t["object_id_2"].to_numpy(zero_copy_only=False)), pairs)
    t = t.filter(pa.array(keep, pa.bool_()))
    return mk.split(t, release_to)[0] if release_to else t


def _history_point(run_id: str, start_ns: int, tca_ns: int, row: dict,
                   this_run: bool = False) -> dict:
    pcv, mpc = row["pc"], row["max_pc"]
    return {"run_id": run_id, "start_ns": start_ns, "start": iso_ms(start_ns)[:16] + "Z",
            "tca": iso_ms(tca_ns), "miss_km": row["miss_distance_km"],
            "value": pcv if pcv is not None else mpc,
            "value_kind": "Pc" if pcv is not None else ("max Pc" if mpc is not None else ""),
            "classification": row["classification"], "releasable_to": row["releasable_to"],
            "marking": row["marking"], "this_run": this_run}


def _histories(run_dir: Path, run: _RunRecords, sub: pa.Table, tol_s: float,
               release_to: str | None) -> list[list[dict]]:
    """Per event of ``sub``: its points in the earlier runs (:func:`_earlier_runs`, oldest
    first): in each, the event of the same pair (either order) whose TCA is nearest, within
    ``tol_s``."""
    pair = _pair_keys(sub["object_id_1"].to_pylist(), sub["object_id_2"].to_pylist())
    tca = sub["tca"].cast(pa.int64()).to_pylist()
    tol = int(tol_s * NS_PER_S)
    out: list[list[dict]] = [[] for _ in range(sub.num_rows)]
    for start, name, folder in _earlier_runs(run_dir, run.info):
        t = _read_history(folder / "conjunctions.parquet", np.unique(pair), release_to)
        if t is None or not t.num_rows:
            continue
        ttca = t["tca"].cast(pa.int64()).to_pylist()
        rows = t.drop(["tca"]).to_pylist()
        by_pair: dict = {}
        for k, key in enumerate(_pair_keys(t["object_id_1"].to_pylist(),
                                           t["object_id_2"].to_pylist()).tolist()):
            by_pair.setdefault(key, []).append(k)
        for i in range(sub.num_rows):
            near = [(abs(ttca[k] - tca[i]), ttca[k], k) for k in by_pair.get(int(pair[i]), ())
                    if abs(ttca[k] - tca[i]) <= tol]
            if near:
                _, t_ns, k = min(near)
                out[i].append(_history_point(name, start, t_ns, rows[k]))
    return out


# ---------------------------------------------------------------------------------------------
# Event pages: plots and pages
# ---------------------------------------------------------------------------------------------

def _draw_encounter(ax, xz_km, cov, hbr_m: float) -> None:
    """Object 1 at the origin with the ellipse (1 and 3 sigma) of ``cov``; object 2 at
    ``xz_km`` with its hard-body circle, to scale (and magnified in an inset when small)."""
    from matplotlib.patches import Circle, Ellipse  # heavy: loaded only when a page is drawn

    miss, hbr = float(xz_km[0]), (hbr_m or 0.0) / 1e3
    axes = ellipse_axes(cov) if cov is not None else None
    half = max(1.25 * miss, 3.3 * axes[0] if axes else 0.0, 4.0 * hbr, 1e-3)
    for target in (ax, None):
        if target is None:
            if not 0 < hbr < half / 40:
                break
            target = ax.inset_axes([0.63, 0.6, 0.35, 0.35])
            target.set_xlim(miss - 4 * hbr, miss + 4 * hbr)
            target.set_ylim(-4 * hbr, 4 * hbr)
            target.set_title("around object 2 (to scale)", fontsize=7)
            target.tick_params(labelsize=6)
        if axes:
            for k, ls in ((1, "-"), (3, "--")):
                target.add_patch(Ellipse((0.0, 0.0), 2 * k * axes[0], 2 * k * axes[1],
                                         angle=axes[2], fill=False, ls=ls, color="#1f5fa8",
                                         label=f"{k}-sigma ellipse"))
        target.plot([0.0], [0.0], marker="+", ms=10, color="#1b1b1b", ls="none",
                    label="object 1")
        target.add_patch(Circle((miss, 0.0), hbr, color="#c0392b", alpha=0.5,
                                label=f"hard-body radius {hbr_m or 0:g} m"))
        target.plot([miss], [0.0], marker=".", color="#c0392b", ls="none", label="object 2")
        target.set_aspect("equal")
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    ax.set_xlabel("along the miss, km")
    ax.set_ylabel("normal to the miss, in the plane, km")
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title(f"Encounter plane: object 2 at {miss:.3f} km from object 1")


_PLANE_MARGINS = {"left": 0.13, "right": 0.97, "bottom": 0.1, "top": 0.93}
_HISTORY_MARGINS = {"left": 0.1, "right": 0.88, "bottom": 0.22, "top": 0.9}


def _draw_history(ax, points: list[dict]) -> None:
    import matplotlib.dates as mdates  # heavy: loaded only when a page is drawn

    x = [datetime_from_ns(p["start_ns"]) for p in points]
    days = (max(x) - min(x)).days + 2
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, math.ceil(days / 6))))
    miss = [p["miss_km"] for p in points]
    ax.plot(x, miss, marker="o", color="#1f5fa8")
    ax.set_ylabel("miss distance, km", color="#1f5fa8")
    ax.set_ylim(0, max(max(miss) * 1.25, 1e-3))
    pcs = [(xx, p["value"]) for xx, p in zip(x, points) if p["value"]]
    if pcs:
        ax2 = ax.twinx()
        ax2.plot([a for a, _ in pcs], [b for _, b in pcs], marker="s", ls="--",
                 color="#c0392b")
        ax2.set_yscale("log")
        ax2.set_ylabel("Pc (else max Pc)", color="#c0392b")
    ax.set_xlim(min(x) - dt.timedelta(days=1), max(x) + dt.timedelta(days=1))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.set_xlabel("run (window start, UTC)")
    ax.set_title("This event over the runs")


def _figure(size, margins: dict, draw) -> str:
    """One figure drawn by ``draw(ax)``, as a PNG data URI; fixed ``margins`` (figure
    fractions, ``subplots_adjust``): a tight layout would cost most of a page's time."""
    # matplotlib is heavy: loaded only when a page is drawn, with the file-only backend
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with plt.rc_context(_PLOT_RC):
        fig, ax = plt.subplots(figsize=size)
        draw(ax)
        fig.subplots_adjust(**margins)
        return _png(fig)


def _event_pages(run_dir: Path, run: _RunRecords, ctx: dict,
                 release_to: str | None) -> dict[str, str]:
    """The page of each event of ``ctx["paged"]``: path relative to report.html -> HTML."""
    idx = np.asarray(ctx["paged"], dtype=np.int64)
    if not idx.size:
        return {}
    sub = run.conjunctions.take(pa.array(idx))
    keys = event_keys(sub)
    tol_s = float((run.info.get("report") or {}).get("change_tolerance_s", 60.0))
    geos = _geometries(run_dir, run, sub, release_to)
    hists = _histories(run_dir, run, sub, tol_s, release_to)
    times = {c: sub[c].cast(pa.int64()).to_pylist() for c in ("tca", "epoch_1", "epoch_2")}
    rows = sub.drop(["tca", "epoch_1", "epoch_2", "window_start", "window_end"]).to_pylist()
    links = run.info.get("cdm_links") or {}
    template = _env().get_template("event.html.j2")
    # the same plot drawn once: a pass by a docked complex is one event per member, alike
    pngs: dict = {}
    out = {}
    for i, (key, row) in enumerate(zip(keys, rows)):
        row.update({c: times[c][i] for c in times})
        page = _page_context(ctx, key, row, geos[i], hists[i], links.get(key), pngs)
        out[event_page(key)] = template.render(**page)
    return out


def _plot_once(pngs: dict, key: tuple, size, margins: dict, draw) -> str:
    """:func:`_figure`, drawn only the first time ``key`` (everything the plot shows) is
    asked for in ``pngs``."""
    if key not in pngs:
        pngs[key] = _figure(size, margins, draw)
    return pngs[key]


def _page_context(ctx: dict, key: str, row: dict, geo: dict, earlier: list[dict],
                  cdm: str | None, pngs: dict) -> dict:
    """What one event page shows (see the module docstring)."""
    start = to_ns(ctx["info"]["window_start"])
    points = earlier + [_history_point(ctx["info"]["run_id"], start, row["tca"], row, True)]
    marking = mk.overall((p["classification"], p["releasable_to"], p["marking"])
                         for p in points)
    objects = [{"n": s, "id": row[f"object_id_{s}"], "name": row[f"object_name_{s}"],
                "source": row[f"source_{s}"], "epoch": iso_ms(row[f"epoch_{s}"]),
                "dse": row[f"dse_{s}_days"], "stale": _stale(row[f"dse_{s}_days"]),
                "covariance": geo["sources"][int(s) - 1]} for s in ("1", "2")]
    plane = None
    if "xz_km" in geo:
        plane = {"miss_km": float(geo["xz_km"][0]), "caption": geo["caption"],
                 "png": _plot_once(pngs, (
                     "plane", tuple(geo["xz_km"]), None if geo["cov"] is None else
                     tuple(np.ravel(geo["cov"])), row["hbr_m"]), (6.2, 5.6), _PLANE_MARGINS,
                     lambda ax: _draw_encounter(ax, geo["xz_km"], geo["cov"], row["hbr_m"]))}
    return {
        "title": ctx["title"], "info": ctx["info"], "release_to": ctx["release_to"],
        "marking": str(marking), "banner_class": _BANNER_CLASS[marking.classification],
        "key": key, "e": row, "tca": iso_ms(row["tca"]), "objects": objects,
        "stale_days": STALE_DSE_DAYS, "cdm": f"../{cdm}" if cdm else None,
        "pc_text": _fmt_pc(row["pc"]), "max_pc_text": _fmt_pc(row["max_pc"]),
        "max_pc_isotropic_text": _fmt_pc(row["max_pc_isotropic"]),
        "plane": plane, "no_plane": geo.get("why"),
        "history": points, "earlier": len(earlier),
        "tolerance_s": float((ctx["info"].get("report") or {}).get("change_tolerance_s", 60.0)),
        "history_png": _plot_once(
            pngs, ("history", *((p["start_ns"], p["miss_km"], p["value"]) for p in points)),
            (7.0, 3.0), _HISTORY_MARGINS, lambda ax: _draw_history(ax, points)),
    }

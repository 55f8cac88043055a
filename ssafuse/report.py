"""The operator's report of a run: one self-contained HTML file and a plain-text summary.

:func:`write_report` reads a finished run's folder (:mod:`ssafuse.nightly`) and writes
``report.html`` (inline CSS, plots as PNG data URIs, no script, nothing fetched) and
``summary.txt`` (the text cron mails). With ``release_to`` it is built from the records
releasable to that partner only (:func:`ssafuse.markings.exportable`).

What it holds: the overall marking as a banner at top and bottom (the combination,
:func:`ssafuse.markings.overall`, of every record the report draws on: feeds' default
markings, catalogue entries, conjunctions, and previous-run events it lists); a summary (feeds,
records accepted / rejected per feed, objects, excluded objects, events by miss-distance band);
the top events by Pc (``pc``, else ``max_pc``) and by miss distance (co-located pairs listed
apart); a section per primary; what changed since the previous run; plots (miss distance
against TCA, distribution of miss distances, events per orbital regime); a link to each listed
event's CDM where the run wrote one; the objects whose sources disagree (the worst ``top``,
with each element set's age); how old the screened objects' element sets are at the window
start (:data:`AGE_DAYS`) and the excluded objects counted by reason.

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

The report is a pure function of the run folder: rebuilt from the same run it is the same,
byte for byte (no clock, no random ids).
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import markupsafe
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import markings as mk
from .constants import EARTH_RADIUS_KM, MU_KM3_S2, NS_PER_DAY, NS_PER_S, SECONDS_PER_DAY
from .files import atomic_write_bytes
from .runs import event_keys
from .schema import CATALOGUE, CONJUNCTIONS, conform
from .timeutil import iso_ms, to_ns
from .writers import visible

_BANNER_CLASS = {"UNCLASSIFIED": "u", "RESTRICTED": "r", "CONFIDENTIAL": "c", "SECRET": "s",
                 "TOP SECRET": "ts"}
#: Element-set ages (days before the window start) the report counts the screened objects by.
AGE_DAYS = (3, 7, 14, 30)


@dataclass
class Report:
    html: str
    text: str
    marking: str
    counts: dict = field(default_factory=dict)


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
    with plt.rc_context({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3}):
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


def _rows(conj: pa.Table, idx, links: dict, keys: list[str], extra=None) -> list[dict]:
    cols = {n: conj[n].to_pylist() for n in (
        "object_id_1", "object_name_1", "object_id_2", "object_name_2", "miss_distance_km",
        "relative_speed_km_s", "radial_km", "in_track_km", "cross_track_km", "pc", "max_pc",
        "pc_method", "marking", "co_located")}
    tca = conj["tca"].cast(pa.int64()).to_pylist()
    out = []
    for i in idx:
        i = int(i)
        row = {k: v[i] for k, v in cols.items()}
        row.update(key=keys[i], tca=iso_ms(tca[i]), cdm=links.get(keys[i]),
                   pc_text=_fmt_pc(row["pc"]), max_pc_text=_fmt_pc(row["max_pc"]))
        if extra:
            row.update(extra(i))
        out.append(row)
    return out


def selections(conj: pa.Table, primaries, top: int) -> dict:
    """Which events the report lists (row indices): ``by_pc`` (top ``top`` by ``pc``, else
    ``max_pc``, co-located pairs apart), ``by_miss`` (top ``top`` by miss distance, the same),
    ``co_located`` (the first ``top``), and per primary its events by TCA (at most
    ``max(top, 50)``), with ``primary_counts``."""
    miss = np.asarray(conj["miss_distance_km"].to_pylist(), dtype=float)
    co = np.asarray(conj["co_located"].to_pylist(), dtype=bool)
    tca_ns = np.asarray(conj["tca"].cast(pa.int64()).to_pylist(), dtype=np.int64)
    pc = np.array([np.nan if x is None else x for x in conj["pc"].to_pylist()], dtype=float)
    mpc = np.array([np.nan if x is None else x for x in conj["max_pc"].to_pylist()], dtype=float)
    score = np.where(np.isfinite(pc), pc, mpc)
    has_score = np.flatnonzero(np.isfinite(score) & ~co)
    not_co = np.flatnonzero(~co)
    id1 = np.asarray(conj["object_id_1"].to_pylist(), dtype=np.int64)
    id2 = np.asarray(conj["object_id_2"].to_pylist(), dtype=np.int64)
    per, counts = {}, {}
    for p in primaries:
        idx = np.flatnonzero((id1 == p) | (id2 == p))
        idx = idx[np.argsort(tca_ns[idx], kind="stable")]
        per[p], counts[p] = idx[:max(top, 50)], len(idx)
    return {
        "by_pc": has_score[np.lexsort((tca_ns[has_score], -score[has_score]))][:top],
        "by_miss": not_co[np.lexsort((tca_ns[not_co], miss[not_co]))][:top],
        "co_located": np.flatnonzero(co)[:top],
        "primaries": per, "primary_counts": counts,
    }


def listed(conj: pa.Table, primaries, top: int) -> np.ndarray:
    """Every row index :func:`selections` lists, sorted, each once."""
    sel = selections(conj, primaries, top)
    parts = [sel["by_pc"], sel["by_miss"], sel["co_located"], *sel["primaries"].values()]
    return np.unique(np.concatenate([np.asarray(x, dtype=np.int64) for x in parts]))


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


def build_report(run_dir: str | os.PathLike, *, release_to: str | None = None) -> Report:
    """The report of the finished run in ``run_dir`` (for ``release_to`` only, when given)."""
    run = _read_run(Path(run_dir))
    withheld: dict = {}
    if release_to:
        # A partner's export folder already holds its tear-line view (ssafuse.export) and
        # says what was withheld; the filter below is a safety net, a no-op there.
        run, withheld = _tear_line(run, release_to)
        for k, v in (run.info.get("withheld") or {}).items():
            withheld[k] = v + withheld.get(k, 0)
    ctx = _context(run, release_to, withheld)
    counts = {"events": ctx["events"], "listed": len(ctx["by_pc"]) + len(ctx["by_miss"]),
              "feeds": len(run.feeds), "feeds_withheld": withheld.get("feeds", 0),
              "objects": ctx["objects"]}
    return Report(_render(ctx), _text(ctx), ctx["marking"], counts)


def _read_run(run_dir: Path) -> _RunRecords:
    info = json.loads((run_dir / "run.json").read_text())
    conj = pq.read_table(run_dir / "conjunctions.parquet").cast(CONJUNCTIONS)
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
        prev = pq.read_table(p).cast(CONJUNCTIONS)
    return _RunRecords(info, conj, cat, excl, prev, list(info.get("feeds") or []),
                       _partner_exports(run_dir), _disagreeing(cat))


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
    return _RunRecords(run.info, conj, cat, excl, prev, feeds, disagreements=dis), withheld


def _feed_releasable(feed: dict, code: str) -> bool:
    m = mk.parse(feed["marking"])
    return mk.exportable(m.classification, m.releasable_to, code)


def _context(run: _RunRecords, release_to: str | None, withheld: dict) -> dict:
    """Everything the template and the text summary show."""
    info, conj, cat = run.info, run.conjunctions, run.catalogue
    settings = info.get("report") or {}
    top = int(settings.get("top", 20))
    bands = [float(b) for b in settings.get("bands_km", [1.0, 2.0, 5.0])]
    threshold = float(info.get("threshold_km", 5.0))
    links = info.get("cdm_links") or {}
    keys = event_keys(conj)
    co = np.asarray(conj["co_located"].to_pylist(), dtype=bool)
    regimes = _regimes(conj, cat)
    sel = selections(conj, info.get("primaries") or [], top)
    changes, gone_triples = _changes(run, keys, links, top)
    start_ns = to_ns(info["window_start"])
    disagree, disagree_triples = _disagreement_rows(run.disagreements, start_ns, top)
    marking = _overall(run, gone_triples + disagree_triples)
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
        "bands": _band_rows(conj, bands, threshold),
        "by_pc": _rows(conj, sel["by_pc"], links, keys),
        "by_miss": _rows(conj, sel["by_miss"], links, keys),
        "co_rows": _rows(conj, sel["co_located"], links, keys),
        "co_more": int(co.sum()) - len(sel["co_located"]),
        "primaries": _primary_sections(conj, cat, sel, links, keys),
        "changes": changes,
        "plots": _plots(conj, regimes, bands, threshold, float(info.get("days", 1.0)) * 24.0),
        "regime_counts": {r: regimes.count(r) for r in ("LEO", "MEO", "GEO", "HEO")},
        "correlation": info.get("correlation"),
        "exports": [] if release_to else run.exports,
        "files": info.get("files") or {},
        "top": top,
    }


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
    """Events (co-located pairs apart) per miss-distance band, the last up to the threshold."""
    miss = np.asarray(conj["miss_distance_km"].to_pylist(), dtype=float)
    co = np.asarray(conj["co_located"].to_pylist(), dtype=bool)
    edges = [0.0] + [b for b in bands if b < threshold] + [threshold]
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        last = hi == edges[-1]
        n = int(np.sum((miss >= lo) & ((miss <= hi) if last else (miss < hi)) & ~co))
        rows.append({"label": f"{lo:g} - {hi:g} km", "count": n})
    return rows


def _primary_sections(conj: pa.Table, cat: pa.Table, sel: dict, links: dict,
                      keys: list[str]) -> list[dict]:
    names = dict(zip(cat["object_id"].to_pylist(), cat["object_name"].to_pylist()))
    out = []
    for p, idx in sel["primaries"].items():
        out.append({"id": p, "name": names.get(p), "in_catalogue": p in names,
                    "count": int(sel["primary_counts"][p]),
                    "rows": _rows(conj, idx, links, keys),
                    "more": int(sel["primary_counts"][p]) - len(idx)})
    return out


def _changes(run: _RunRecords, keys: list[str], links: dict,
             top: int) -> tuple[dict | None, list]:
    """What changed since the previous run (``None`` without one), and the marking triples
    of the previous run's events the report counts as gone."""
    conj, prev, info = run.conjunctions, run.previous, run.info
    if prev is None:
        return None, []
    settings = info.get("report") or {}
    tol_s = float(settings.get("change_tolerance_s", 60.0))
    shrink_km = float(settings.get("shrink_min_km", 0.001))
    miss = np.asarray(conj["miss_distance_km"].to_pylist(), dtype=float)
    tca_ns = np.asarray(conj["tca"].cast(pa.int64()).to_pylist(), dtype=np.int64)
    match = match_events(conj, prev, tol_s)
    prev_miss = np.asarray(prev["miss_distance_km"].to_pylist(), dtype=float)
    new_idx = np.flatnonzero(match < 0)
    closer = [k for k in np.flatnonzero(match >= 0)
              if miss[k] < prev_miss[match[k]] - shrink_km]
    gone_mask = np.ones(prev.num_rows, bool)
    gone_mask[match[match >= 0]] = False
    w0 = int(np.datetime64(info["window_start"].replace("+00:00", ""), "ns").astype(np.int64))
    ptca = np.asarray(prev["tca"].cast(pa.int64()).to_pylist(), dtype=np.int64)
    gone_idx = np.flatnonzero(gone_mask & (ptca >= w0))
    gone_rows = _rows(prev, gone_idx[np.argsort(ptca[gone_idx], kind="stable")][:top],
                      {}, event_keys(prev))
    changes = {
        "previous_run": info["previous_run"],
        "new": len(new_idx), "closer": len(closer), "gone": len(gone_idx),
        "new_rows": _rows(conj, new_idx[np.lexsort((tca_ns[new_idx], miss[new_idx]))][:top],
                          links, keys),
        "closer_rows": _rows(conj, sorted(closer, key=lambda k: miss[k])[:top], links, keys,
                             extra=lambda i: {"prev_miss": prev_miss[match[i]]}),
        "gone_rows": gone_rows,
    }
    return changes, list(_triples(prev.take(gone_idx))) if len(gone_idx) else []


def _overall(run: _RunRecords, gone_triples: list) -> mk.Marking:
    """The report's marking: of everything it draws on (conjunctions, catalogue, feeds'
    default markings, previous-run events it lists as gone)."""
    parts = list(_triples(run.conjunctions)) + list(_triples(run.catalogue))
    for f in run.feeds:
        m = mk.parse(f["marking"])
        parts.append((m.classification, m.releasable_to, f["marking"]))
    return mk.overall(parts + gone_triples)


def _render(ctx: dict) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("ssafuse", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             finalize=_finalize)
    env.filters["visible"] = visible
    return env.get_template("report.html.j2").render(**ctx)


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
                   f"accepted {f['accepted']:>7}  rejected {f['rejected']:>6}")
    out.append(f"objects {ctx['objects']}, excluded {ctx['excluded']}; events {ctx['events']} "
               f"({ctx['co_located']} co-located pairs)")
    ages = ctx["ages"]
    out.append("element sets older than " + ", ".join(
        f"{a['days']} d: {a['count']}" for a in ages["rows"])
        + f" (of {ages['screened']} screened objects, at the window start)")
    if ctx["excluded_by_reason"]:
        out.append("excluded by reason: " + "; ".join(
            f"{r['count']} {r['reason']}" for r in ctx["excluded_by_reason"]))
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
                 release_to: str | None = None) -> Report:
    """Build the report of ``run_dir`` and write ``out_dir/report.html`` and
    ``out_dir/summary.txt`` atomically."""
    rep = build_report(run_dir, release_to=release_to)
    out_dir = Path(out_dir)
    atomic_write_bytes(out_dir / "report.html", rep.html.encode())
    atomic_write_bytes(out_dir / "summary.txt", rep.text.encode())
    return rep

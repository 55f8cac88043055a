"""Orbit determination: every sensor's observations of an object fused into a new SGP4 element
set, with its covariance.

For each object with at least ``min_obs`` correlated observations in its arc (the last
``arc_days`` before its newest observation), :func:`od` fits the element set to every
measurement it has (RA/Dec, az/el, range, range rate, from any mix of sensors), each weighted
by its stated uncertainty, starting from the object's newest element set (:mod:`.fit`; the
measurement model is :mod:`.measure`). What comes out:

* ``solutions``: one row per object tried (:data:`ssafuse.schema.OD_SOLUTIONS`): status, the
  fitted elements, residual RMS overall and per sensor and type next to the start set's on the
  same observations, the covariance (elements and RTN at epoch), the observations used and
  left out, and the marking combined from the observations used and the start set;
* ``elements``: each converged fit as an element set of source ``settings.source`` (``od``),
  which then competes in :func:`ssafuse.build_catalogue` like any other source. An object
  whose fit failed keeps its previous element set; the reason is in its solutions row.

Nothing here reads the clock: ``now_ns`` stamps what is written.
"""

from __future__ import annotations

import hashlib
import math
import sys
import types
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sgp4.api import Satrec

from .. import markings as mk
from ..constants import NS_PER_DAY
from ..correlation import correlate
from ..propagate import satrec
from ..schema import ELEMENT_COLUMNS, ELEMENTS, OD_SOLUTIONS
from ..sensors import merge, read_sensors
from ..timeutil import format_epoch
from .fit import FitResult, Settings, fit_measurements, start_row
from .measure import DEFAULT_SIGMAS, Measurements, Residuals, measurements, residuals_of

__all__ = ["od", "od_store", "fit", "residuals", "OdSettings", "OdResult", "FitResult",
           "Residuals", "DEFAULT_SIGMAS", "solution_line"]

#: How fits are made: ``arc_days`` (10), ``min_obs`` (6), ``outlier_sigma`` (4: times the
#: robust residual scale), ``max_rounds`` (5 outlier rounds), ``max_iterations`` (30),
#: ``fit_bstar`` (``"auto"``, True, False), ``prior_km`` (None: no a-priori; else the start
#: set's position uncertainty in km), ``sigmas`` (overrides of :data:`DEFAULT_SIGMAS`),
#: ``model_sigma_km`` (SGP4's own error, 0.03, added to every measurement's uncertainty),
#: ``source`` (``"od"``), ``max_scale`` and ``max_sigma_km`` (when a fit is not accepted).
OdSettings = Settings

_ELEMENT_ROW_KEYS = tuple(ELEMENT_COLUMNS)


@dataclass
class OdResult:
    solutions: pa.Table
    elements: pa.Table
    fits: dict = field(default_factory=dict)          # object_id -> FitResult
    correlations: pa.Table | None = None


def fit(observations: pa.Table, start, sensors: pa.Table, *,
        settings: OdSettings | None = None, epoch_ns: int | None = None) -> FitResult:
    """Fit one object's element set to ``observations`` (all of that object) seen from
    ``sensors``, from ``start`` (a canonical element row). See :mod:`ssafuse.od.fit`."""
    settings = settings or OdSettings()
    if observations.num_rows == 0:
        return FitResult("too-few", f"no observations, {settings.min_obs} needed")
    m = measurements(observations, sensors, settings.sigmas)
    return fit_measurements(m, _row(start), settings, epoch_ns)


def residuals(observations: pa.Table, sensors: pa.Table, start,
              sigmas: dict | None = None) -> Residuals:
    """Residuals of one element set (a canonical row, or a ``Satrec``) on ``observations``,
    with the model :func:`fit` uses."""
    sat = start if isinstance(start, Satrec) else satrec(_row(start))
    return residuals_of(sat, measurements(observations, sensors, sigmas))


def _row(start) -> dict:
    return start_row(start)[1]


# -- many objects ------------------------------------------------------------------------------

def od(observations: pa.Table, elements: pa.Table, sensors: pa.Table, *,
       correlations: pa.Table | None = None, objects=None, settings: OdSettings | None = None,
       now_ns: int) -> OdResult:
    """Fit every object (or those in ``objects``) that has correlated observations.

    ``correlations`` default to :func:`ssafuse.correlate` of ``observations`` with
    ``elements``. Returns :class:`OdResult`."""
    settings = settings or OdSettings()
    if correlations is None:
        correlations = correlate(observations, elements, sensors, now_ns=now_ns).correlations
    groups = _groups(observations, correlations, objects, settings.arc_days)
    if not groups:
        return OdResult(OD_SOLUTIONS.empty_table(), ELEMENTS.empty_table(), {}, correlations)
    rows = np.concatenate([g for _, g in groups])
    obs = observations.take(pa.array(rows))
    m_all = measurements(obs, sensors, settings.sigmas)
    starts = _starts(elements, [oid for oid, _ in groups],
                     [int(m_all.t_ns[_span(groups, k)].max()) for k in range(len(groups))])
    fits, jobs = {}, []
    at = 0
    for oid, g in groups:
        sel = slice(at, at + len(g))
        at += len(g)
        start = starts.get(oid)
        if start is None:
            fits[oid] = FitResult("failed", "no element set of this object to start from",
                                  used=np.zeros(len(g), bool))
        else:
            fits[oid] = fit_measurements(m_all.take(sel), start, settings)
        jobs.append((oid, sel, start))
    solutions, new_elements = _tables(obs, m_all, jobs, fits, elements, settings, now_ns)
    return OdResult(solutions, new_elements, fits, correlations)


def _span(groups, k: int) -> slice:
    at = sum(len(g) for _, g in groups[:k])
    return slice(at, at + len(groups[k][1]))


def _groups(observations: pa.Table, correlations: pa.Table, objects, arc_days: float):
    """``[(object_id, observation row indices in time order)]``: each object's correlated
    observations in the ``arc_days`` before its newest one."""
    corr = correlations.filter(pc.equal(correlations["status"], "correlated"))
    row_of = {o: i for i, o in enumerate(observations["obs_id"].to_pylist())}
    t = observations["time"].cast(pa.int64()).to_numpy()
    want = None if objects is None else {int(o) for o in objects}
    per: dict[int, list[int]] = {}
    for oid, obs_id in zip(corr["object_id"].to_pylist(), corr["obs_id"].to_pylist()):
        i = row_of.get(obs_id)
        if i is not None and oid is not None and (want is None or oid in want):
            per.setdefault(int(oid), []).append(i)
    out = []
    for oid in sorted(per):
        idx = np.array(sorted(set(per[oid]), key=lambda i: t[i]), np.int64)
        keep = t[idx] >= t[idx].max() - int(arc_days * NS_PER_DAY)
        out.append((oid, idx[keep]))
    return out


def _starts(elements: pa.Table, object_ids: list[int], ends: list[int]) -> dict[int, dict]:
    """Per object, the element set to start from: the newest whose epoch is not after the
    arc's end plus a day (else the oldest), as a canonical row."""
    if not object_ids or elements.num_rows == 0:
        return {}
    want = pa.array(object_ids, pa.int64())
    sub = elements.filter(pc.is_in(elements["object_id"], want))
    obj = sub["object_id"].to_numpy()
    ep = sub["epoch"].cast(pa.int64()).to_numpy()
    end_of = dict(zip(object_ids, ends))
    best: dict[int, int] = {}
    for i in np.lexsort((ep, obj)):
        o = int(obj[i])
        if o not in best or ep[i] <= end_of[o] + NS_PER_DAY:
            best[o] = int(i)
    rows = sub.take(pa.array(list(best.values()), pa.int64())).to_pylist()
    out = {}
    for o, row in zip(best, rows):
        row["epoch"] = int(pa.scalar(row["epoch"], pa.timestamp("ns", tz="UTC"))
                           .cast(pa.int64()).as_py())
        out[o] = _row(row)
    return out


# -- the tables --------------------------------------------------------------------------------

def _tables(obs: pa.Table, m_all: Measurements, jobs, fits: dict, elements: pa.Table,
            settings: OdSettings, now_ns: int) -> tuple[pa.Table, pa.Table]:
    ids = np.array(obs["obs_id"].to_pylist(), dtype=object)
    cls, rel, text = (obs["classification"].to_pylist(), obs["releasable_to"].to_pylist(),
                      obs["marking"].to_pylist())
    sol_rows, el_rows = [], []
    for oid, sel, start in jobs:
        f = fits[oid]
        m = m_all.take(sel)
        used = f.used if len(f.used) == m.n else np.zeros(m.n, bool)
        marks = [mk.row_marking(c, r, x) for c, r, x in
                 zip(cls[sel], rel[sel], text[sel])]
        marks = [mk_ for mk_, u in zip(marks, used) if u] or marks
        if start is not None:
            marks.append(mk.row_marking(start.get("classification"), start.get("releasable_to"),
                                        start.get("marking")))
        marking = mk.combine(marks)
        sol = _solution_row(oid, f, m, used, ids[sel], start, settings, now_ns, marking)
        sol_rows.append(sol)
        if f.converged:
            el_rows.append(_element_row(f, start, sol, settings, now_ns, marking))
    for k, r in enumerate(el_rows, 1):
        r["source_record"] = k
    return _to_table(sol_rows, OD_SOLUTIONS), _to_table(el_rows, ELEMENTS)


def _solution_row(oid, f: FitResult, m: Measurements, used, ids, start, settings, now_ns,
                  marking) -> dict:
    t = m.t_ns
    el = f.elements or {}
    start_res = _start_rms(start, m, used)
    key = "|".join([str(oid)] + sorted(ids[used]) + [str(start and start.get("epoch"))])
    row = {
        "object_id": oid, "epoch": int(el.get("epoch", t.max())),
        **{k: el.get(k) for k in ("mean_motion_rev_day", "eccentricity", "inclination_deg",
                                  "raan_deg", "arg_perigee_deg", "mean_anomaly_deg", "bstar")},
        "status": f.status, "reason": f.reason, "uct": False, "bstar_fitted": f.bstar_fitted,
        "n_obs_used": int(used.sum()), "n_obs_rejected": int(len(used) - used.sum())
        if f.status == "converged" else 0,
        "iterations": f.iterations, "chi2_reduced": _num(f.chi2_reduced),
        "rms_angle_arcsec": _num(f.rms_angle_arcsec), "rms_range_km": _num(f.rms_range_km),
        "rms_range_rate_km_s": _num(f.rms_range_rate_km_s),
        "start_rms_angle_arcsec": _num(start_res.rms_angle_arcsec) if start_res else None,
        "start_rms_range_km": _num(start_res.rms_range_km) if start_res else None,
        "residuals": _per_sensor(f, m, used),
        "covariance": None if f.covariance is None else f.covariance.ravel().tolist(),
        "covariance_rtn": None if f.covariance_rtn is None else f.covariance_rtn.ravel().tolist(),
        "sigma_position_km": None if f.covariance_teme is None else
        float(math.sqrt(max(np.trace(f.covariance_teme[:3, :3]), 0.0))),
        "arc_start": int(t.min()), "arc_end": int(t.max()),
        "sensors": sorted(set(m.sensor_id[used].tolist())),
        "obs_ids_used": ids[used].tolist(), "obs_ids_rejected": ids[~used].tolist()
        if f.status == "converged" else [],
        "start_source": start.get("source") if start else None,
        "start_epoch": start.get("epoch") if start else None,
        "source": settings.source, "source_format": "od",
        "source_uri": f"od:{format_epoch(now_ns)}",
        "source_sha256": hashlib.sha256(key.encode()).hexdigest(),
        "source_record": 0, "ingested_at": now_ns,
        "classification": marking.classification,
        "releasable_to": None if marking.releasable_to is None else list(marking.releasable_to),
        "marking": str(marking),
    }
    return row


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _start_rms(start, m: Measurements, used) -> Residuals | None:
    if start is None or not used.any():
        return None
    sat = satrec(start)
    return residuals_of(sat, m.take(used)) if sat.error == 0 else None


def _per_sensor(f: FitResult, m: Measurements, used) -> list[dict]:
    if f.residuals is None:
        return []
    out = []
    res = f.residuals
    for sid in sorted(set(m.sensor_id[used].tolist())):
        rows = used & (m.sensor_id == sid)
        for typ, cols, unit, scale in (("angle", [0, 1], "arcsec", 206264.80624709636),
                                       ("range", [2], "km", 1.0),
                                       ("range_rate", [3], "km/s", 1.0)):
            x = res[rows][:, cols].ravel()
            x = x[np.isfinite(x)] * scale
            if x.size:
                out.append({"sensor_id": sid, "type": typ, "n": int(x.size),
                            "rms": float(np.sqrt(np.mean(x * x))), "unit": unit})
    return out


def _element_row(f: FitResult, start: dict, sol: dict, settings, now_ns, marking) -> dict:
    row = {k: start.get(k) for k in _ELEMENT_ROW_KEYS}
    row.update({k: f.elements[k] for k in ("epoch", "mean_motion_rev_day", "eccentricity",
                                           "inclination_deg", "raan_deg", "arg_perigee_deg",
                                           "mean_anomaly_deg", "bstar")})
    row.update(ephemeris_type=0, element_set_no=None, rev_at_epoch=None)
    row.update({k: sol[k] for k in ("source", "source_format", "source_uri", "source_sha256",
                                    "ingested_at", "classification", "releasable_to",
                                    "marking")})
    return row


def _to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    if not rows:
        return schema.empty_table()
    cols = {}
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if pa.types.is_timestamp(f.type):
            cols[f.name] = pa.array(vals, pa.int64()).cast(f.type)
        else:
            cols[f.name] = pa.array(vals, f.type)
    return pa.Table.from_pydict(cols, schema=schema)


def solution_line(row: dict) -> str:
    """One line per fit: the object, status, observations, RMS before -> after."""
    if row["status"] != "converged":
        return f"{row['object_id']:>9}  {row['status']:<13} {row['reason']}"
    before, after = row["start_rms_angle_arcsec"], row["rms_angle_arcsec"]
    angles = (f"angles {before:.1f}\" -> {after:.1f}\"" if before is not None
              and after is not None else "")
    rng = (f" range {row['start_rms_range_km'] * 1e3:.1f} m -> {row['rms_range_km'] * 1e3:.1f} m"
           if row["rms_range_km"] is not None and row["start_rms_range_km"] is not None else "")
    return (f"{row['object_id']:>9}  converged     {row['n_obs_used']} obs "
            f"({row['n_obs_rejected']} rejected), {len(row['sensors'])} sensors, "
            f"{angles}{rng}, sigma {row['sigma_position_km'] * 1e3:.0f} m")


# -- the store ---------------------------------------------------------------------------------

def od_store(store, *, sensor_files=(), objects=None, settings: OdSettings | None = None,
             now_ns: int, save: bool = True) -> OdResult:
    """:func:`od` on a store: its observations, element sets and sensors (``sensor_files``
    first, as :func:`ssafuse.correlate_store` merges them). With ``save``, the solutions go to
    ``STORE/od_solutions/od-<time>.parquet`` and the converged element sets to
    ``STORE/elements/source=od/ingest_date=<day>/part-od-<time>.parquet``."""
    settings = settings or OdSettings()
    sensors = merge(*[read_sensors(f) for f in sensor_files], store.table("sensors"))
    result = od(store.table("observations"), store.table("elements"), sensors,
                objects=objects, settings=settings, now_ns=now_ns)
    if save:
        save_result(store, result, settings, now_ns)
    return result


def save_result(store, result: OdResult, settings: OdSettings, now_ns: int) -> None:
    """Write an :class:`OdResult` to the store (see :func:`od_store`)."""
    stamp = format_epoch(now_ns)
    name = stamp[:19].replace("-", "").replace(":", "")
    if result.solutions.num_rows:
        store.write("od_solutions", result.solutions, f"od-{name}.parquet")
    if result.elements.num_rows:
        store.append("elements", result.elements, source=settings.source, day=stamp[:10],
                     name=f"od-{name}")


class _CallableModule(types.ModuleType):
    """``ssafuse.od`` is this package and, called, :func:`od` (what the issue and the README
    name ``ssafuse.od(...)``), so that ``from ssafuse import od`` gives both ``od(...)`` and
    ``od.fit``; a module's class may be replaced so (Python's data model, "Customizing module
    attribute access")."""

    def __call__(self, *args, **kwargs) -> OdResult:
        return od(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

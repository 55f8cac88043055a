"""Conjunction assessment: Pc and maximum Pc of screened conjunctions, and one CCSDS CDM each.

>>> from ssafuse import assess, write_cdms
>>> res = screen(catalogue, "2026-03-09T18:00:00Z", days=7)               # doctest: +SKIP
>>> conj = assess(res.conjunctions, hbr_m=10.0, elements=catalogue,
...               cdms=store.table("cdms"))                               # doctest: +SKIP
>>> write_cdms(conj, catalogue, "out/", creation_date=now)              # doctest: +SKIP

:func:`assess` fills, for every event, ``max_pc`` (Alfano's maximum Pc over the size and
orientation of a covariance of SOCRATES's shape, as SOCRATES reports it: element sets carry no
covariance, so this is a bound, never a Pc) with ``max_pc_sigma_km`` (the dilution threshold),
``max_pc_isotropic`` (the same over an isotropic covariance, always the smaller), ``attached``
for vehicles docked to a station (:mod:`ssafuse.attached`: no Pc or max Pc for them), and
``pc`` / ``pc_method`` where a covariance is known:

1. a CDM in the ``cdms`` table for the same pair (either order) with its TCA within
   ``tca_tolerance_s``: Foster's 2-D Pc from that CDM's states and covariances, exactly as
   ``ssafuse pc`` computes it (:func:`ssafuse.pc.pc_from_cdm`); ``pc_method``
   ``'foster-2d:cdm:<MESSAGE_ID>'``. Several matches: the newest CREATION_DATE wins.
2. else a caller's ``covariance_model`` ``{object_type: (sigma_r_km, sigma_t_km, sigma_n_km)}``
   (key ``'*'``: any other type; an element set without a type is ``'UNKNOWN'``): Foster 2-D
   from both objects' SGP4 states at TCA and those diagonal RTN covariances;
   ``pc_method`` ``'foster-2d:assumed-covariance'``. The labels say what the number rests on.

One combined hard-body radius per event (``hbr_m``, ``hbr_source``), for ``pc`` and ``max_pc``
alike (:func:`ssafuse.pc.combined_hbr`): the matched CDM's own (CARA's ``COMMENT HBR``), else
the sum of both objects' radii in CARA's table (``hbr_table``) when both are listed, else
``hbr_m``.

:func:`conjunction_cdms` / :func:`write_cdms` write one CDM per conjunction (:func:`cdm_files`
renders them without writing, one event's refusal never stopping the others): relative
metadata, each object's SGP4 state at TCA converted from TEME to GCRF with Skyfield, and the
covariance of ``covariance_model``; without one, the mandatory RTN covariance is written as
zeros with COMMENTs saying that element sets carry no covariance (a placeholder, not an
accuracy: Pc tools, ssafuse's included, refuse a zero covariance rather than trust it).
:func:`cdms_for_screening` does so for a screening run of a store (``ssafuse cdm``).

:func:`pc_of_cdm_files` computes the Pc of CDM files, one row per message (``ssafuse pc``),
and :func:`pc_line` the line that command prints for each.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import markings as mk
from . import pc as pcmod
from .attached import attached_groups
from .constants import NS_PER_S
from .errors import FormatError
from .files import atomic_write_bytes, expand_inputs, open_input, write_parquet
from .formats.ccsds import cdm as cdm_format
from .propagate import satrecs, teme_to_gcrs
from .records import read_file
from .schema import CONJUNCTIONS, PC_RESULTS, conform
from .timeutil import format_epoch, jd_from_ns, to_ns
from .versions import __version__

__all__ = ["DEFAULT_HBR_M", "PC_METHOD_ASSUMED", "assess", "conjunction_cdms", "write_cdms",
           "cdm_files", "states_at_tca", "cdms_for_screening", "pc_of_cdm_files", "pc_line",
           "expand_cdm_inputs"]

#: Combined hard-body radius (m) when neither a CDM nor CARA's table gives one: a round figure
#: for a few-metre payload against a small object. SOCRATES's per-object radii are not
#: published; its top events of 2026-03-09 correspond to combined radii of 12-30 m under this
#: isotropic maximum (tests/test_assess.py): pass ``hbr_m`` / ``hbr_table`` for your objects.
DEFAULT_HBR_M = 10.0
PC_METHOD_ASSUMED = "foster-2d:assumed-covariance"
PC_METHOD_CDM = "foster-2d:cdm:"
#: CCSDS SANA names written in COLLISION_PROBABILITY_METHOD / COLLISION_MAX_PC_METHOD.
CDM_PC_METHOD = "FOSTER-1992"
CDM_MAX_PC_METHOD = "ALFANO-2005"
#: GRAVITY_MODEL of a state propagated with SGP4, in the standard's "name: nD mO" form (508.0-B-1
#: 3.5.3): WGS-72 constants with the zonal harmonics J2, J3 and J4, no tesserals.
SGP4_GRAVITY_MODEL = "WGS-72: 4D 0O"


# ---------------------------------------------------------------------------------------------
# Element sets and SGP4 states of the two objects of each event
# ---------------------------------------------------------------------------------------------

def _element_index(conjunctions: pa.Table, elements: pa.Table | None) -> np.ndarray:
    """``(n, 2)`` row indices into ``elements`` of the element set each object of each event
    was screened with (same object_id and epoch; the same file and record preferred), -1 where
    it is not in ``elements``."""
    n = conjunctions.num_rows
    out = np.full((n, 2), -1, dtype=np.int64)
    if elements is None or elements.num_rows == 0 or n == 0:
        return out
    ids = elements["object_id"].to_pylist()
    ep = elements["epoch"].cast(pa.int64()).to_pylist()
    sha = elements["source_sha256"].to_pylist() if "source_sha256" in elements.column_names \
        else [None] * len(ids)
    rec = elements["source_record"].to_pylist() if "source_record" in elements.column_names \
        else [None] * len(ids)
    exact: dict = {}
    loose: dict = {}
    for k, key in enumerate(zip(ids, ep)):
        exact.setdefault(key + (sha[k], rec[k]), k)
        loose.setdefault(key, k)
    for j, s in enumerate(("1", "2")):
        cid = conjunctions[f"object_id_{s}"].to_pylist()
        cep = conjunctions[f"epoch_{s}"].cast(pa.int64()).to_pylist()
        csha = conjunctions[f"source_sha256_{s}"].to_pylist()
        crec = conjunctions[f"source_record_{s}"].to_pylist()
        for i in range(n):
            k = exact.get((cid[i], cep[i], csha[i], crec[i]))
            out[i, j] = k if k is not None else loose.get((cid[i], cep[i]), -1)
    return out


def states_at_tca(conjunctions: pa.Table, elements: pa.Table):
    """Both objects' SGP4 states at each event's TCA, from the element sets the events were
    screened with (looked up in ``elements`` by object id and epoch).

    Returns ``(ok, r, v, index)``: ``ok`` bool ``(n,)`` (False where an element set is missing
    or SGP4 failed), ``r`` TEME positions in km and ``v`` TEME velocities in km/s, shape
    ``(2, n, 3)`` (axis 0: object 1, object 2; NaN where not ok), ``index`` the ``(n, 2)`` rows
    of ``elements`` used (-1: missing)."""
    idx = _element_index(conjunctions, elements)
    n = conjunctions.num_rows
    r = np.full((2, n, 3), np.nan)
    v = np.full((2, n, 3), np.nan)
    ok = (idx >= 0).all(axis=1)
    if not ok.any():
        return ok, r, v, idx
    used = np.unique(idx[ok])
    sats = dict(zip(used.tolist(), satrecs(elements.take(pa.array(used)))))
    jd, fr = jd_from_ns(conjunctions["tca"].cast(pa.int64()).to_numpy())
    for i in np.flatnonzero(ok):
        for j in range(2):
            e, rr, vv = sats[int(idx[i, j])].sgp4(float(jd[i]), float(fr[i]))
            if e:
                ok[i] = False
                break
            r[j, i], v[j, i] = rr, vv
    r[:, ~ok] = np.nan
    v[:, ~ok] = np.nan
    return ok, r, v, idx


# ---------------------------------------------------------------------------------------------
# assess
# ---------------------------------------------------------------------------------------------

def _hbr_table(hbr_table) -> dict[int, float] | None:
    if hbr_table is None or isinstance(hbr_table, dict):
        return hbr_table
    return pcmod.load_cara_hbr(os.fspath(hbr_table))


def _match_cdms(conjunctions: pa.Table, cdms: pa.Table | None, tol_s: float) -> np.ndarray:
    """Row in ``cdms`` of the CDM each event takes its covariance from, -1 where none: the
    same pair of NORAD numbers in either order, TCA within ``tol_s``; the newest
    CREATION_DATE (then the nearest TCA) among several."""
    n = conjunctions.num_rows
    out = np.full(n, -1, dtype=np.int64)
    if cdms is None or cdms.num_rows == 0 or n == 0:
        return out
    a = cdms["object1_id"].to_pylist()
    b = cdms["object2_id"].to_pylist()
    t = cdms["tca"].cast(pa.int64()).to_numpy()
    created = cdms["creation_date"].cast(pa.int64()).to_numpy()
    by_pair: dict = {}
    for k, (x, y) in enumerate(zip(a, b)):
        if x is not None and y is not None:
            by_pair.setdefault(frozenset((x, y)), []).append(k)
    c1 = conjunctions["object_id_1"].to_pylist()
    c2 = conjunctions["object_id_2"].to_pylist()
    ct = conjunctions["tca"].cast(pa.int64()).to_numpy()
    tol = tol_s * NS_PER_S
    for i in range(n):
        cand = [k for k in by_pair.get(frozenset((c1[i], c2[i])), ())
                if abs(int(t[k]) - int(ct[i])) <= tol]
        if cand:
            out[i] = max(cand, key=lambda k: (created[k], -abs(int(t[k]) - int(ct[i]))))
    return out


def _cov_rtn_6x6(tril21) -> np.ndarray:
    """``(n, 6, 6)`` symmetric matrices from lower triangles stored row by row (CDM order)."""
    c = np.asarray(tril21, dtype=float).reshape(-1, 21)
    out = np.zeros((c.shape[0], 6, 6))
    rows, cols = np.tril_indices(6)
    out[:, rows, cols] = c
    out[:, cols, rows] = c
    return out


def _pc_from_cdm_rows(cdms: pa.Table, rows: np.ndarray, hbr_m: np.ndarray) -> np.ndarray:
    """Foster 2-D Pc of CDM rows of the ``cdms`` table, as :func:`ssafuse.pc.pc_from_cdm`
    computes it from the message (states km -> m, RTN covariances rotated to the inertial
    frame, both objects in the same inertial frame, else NaN)."""
    sub = cdms.take(pa.array(rows))
    r, v, c, frames = [], [], [], []
    for s in ("1", "2"):
        r.append(np.array(sub[f"object{s}_r_km"].to_pylist(), dtype=float).reshape(-1, 3) * 1e3)
        v.append(np.array(sub[f"object{s}_v_km_s"].to_pylist(), dtype=float).reshape(-1, 3)
                 * 1e3)
        c.append(_cov_rtn_6x6(sub[f"object{s}_cov_rtn"].to_pylist()))
        frames.append(sub[f"object{s}_ref_frame"].to_pylist())
    frame_ok = np.array([f1 == f2 and f1 in pcmod.INERTIAL_FRAMES
                         for f1, f2 in zip(*frames)], dtype=bool)
    C1 = pcmod.rtn_to_inertial(r[0], v[0], c[0])
    C2 = pcmod.rtn_to_inertial(r[1], v[1], c[1])
    res = pcmod.pc_from_states(r[0], v[0], C1, r[1], v[1], C2, hbr_m, "foster")
    return np.where(frame_ok, res.pc, np.nan)


def _object_types(elements: pa.Table | None, idx: np.ndarray) -> list[list[str]]:
    types = (elements["object_type"].to_pylist()
             if elements is not None and "object_type" in elements.column_names else None)
    out = []
    for row in idx:
        out.append([(types[k] if types is not None and k >= 0 and types[k] else "UNKNOWN")
                    .strip().upper() for k in row])
    return out


def _sigmas_km(model: dict, object_type: str):
    s = model.get(object_type, model.get("*"))
    if s is None:
        return None
    s = tuple(float(x) for x in s)
    if len(s) != 3 or not all(math.isfinite(x) and x > 0 for x in s):
        raise ValueError(f"covariance_model[{object_type!r}] must be three positive sigmas "
                         f"(radial, transverse, normal) in km, got {s!r}")
    return s


def _assumed_cov_rtn_m2(sigmas_km) -> np.ndarray:
    """6x6 RTN covariance (m**2): the position sigmas on the diagonal, velocity block zero."""
    c = np.zeros((6, 6))
    c[0, 0], c[1, 1], c[2, 2] = (np.square(sigmas_km) * 1e6)
    return c


def assess(conjunctions: pa.Table, *, hbr_m: float | None = DEFAULT_HBR_M,
           hbr_table=None, elements: pa.Table | None = None, cdms: pa.Table | None = None,
           covariance_model: dict | None = None, tca_tolerance_s: float = 60.0,
           max_pc_method: str = "socrates", complexes: dict | None = None) -> pa.Table:
    """The conjunctions (schema ``conjunctions``) with ``max_pc``, ``max_pc_sigma_km``,
    ``hbr_m``, ``hbr_source`` for every event and ``pc`` / ``pc_method`` where a covariance is
    known (see the module docstring for the rules).

    ``hbr_m``: combined hard-body radius in metres for events no CDM or table covers (None:
    :data:`DEFAULT_HBR_M`). ``hbr_table``: CARA's per-object HBR table, as a path or as
    :func:`ssafuse.pc.load_cara_hbr` returns it. ``elements``: the elements or catalogue table
    the events were screened from (needed for ``covariance_model``: SGP4 states at TCA and the
    ``object_type`` of each object). ``cdms``: the store's ``cdms`` table. ``covariance_model``:
    ``{object_type: (sigma_r_km, sigma_t_km, sigma_n_km)}``, key ``'*'`` for any other type.
    ``max_pc_method``: ``'socrates'`` (default: :func:`ssafuse.pc.max_pc_socrates` from both
    objects' SGP4 states at TCA, which needs ``elements``; an event without them falls back
    to the isotropic maximum and says so in ``max_pc_method``) or ``'isotropic'``
    (:func:`ssafuse.pc.max_pc`); ``max_pc_isotropic`` is filled either way. ``complexes``:
    ``{name: NORAD number}`` of stations whose docked vehicles are attached
    (:func:`ssafuse.attached.attached_groups`; None: its defaults): attached pairs get
    ``attached`` true, their group, and no Pc or max Pc.
    Markings: where a CDM's covariance or hard-body radius is used, the event's marking
    becomes the combination of its own and the CDM's (most restrictive level, intersected
    releasability).
    """
    conj = conjunctions.cast(CONJUNCTIONS) if conjunctions.schema != CONJUNCTIONS else conjunctions
    default = DEFAULT_HBR_M if hbr_m is None else float(hbr_m)
    if not (default >= 0 and math.isfinite(default)):
        raise ValueError(f"hbr_m must be a finite radius >= 0 in metres, got {hbr_m!r}")
    match = _match_cdms(conj, cdms, tca_tolerance_s)
    hbr, source = _event_hbrs(conj, cdms, match, _hbr_table(hbr_table), default)
    attached, group = attached_groups(conj, complexes)
    pc, method, cdm_used = _pc_from_matched_cdms(cdms, match, hbr)
    if covariance_model:
        _pc_from_covariance_model(conj, elements, covariance_model, hbr, ~cdm_used, pc, method)
    pc[attached] = np.nan
    method[attached] = None
    cols = {"attached": pa.array(attached, pa.bool_()),
            "attached_group": pa.array(group, pa.string()),
            "pc": _floats(pc), "pc_method": pa.array(list(method), pa.string()),
            **_max_pcs(conj, elements, hbr, max_pc_method, attached),
            "hbr_m": pa.array(hbr, pa.float64()),
            "hbr_source": pa.array(list(source), pa.string())}
    # an event whose covariance or hard-body radius came from a CDM carries its marking too
    from_cdm = cdm_used | np.array([s == "cdm" for s in source], dtype=bool)
    if from_cdm.any():
        cols.update(_combined_markings(conj, cdms, match, from_cdm))
    out = conj
    for name, arr in cols.items():
        out = out.set_column(out.schema.get_field_index(name), CONJUNCTIONS.field(name), arr)
    return out


def _floats(x: np.ndarray) -> pa.Array:
    """float64 with NaN as null."""
    return pa.array(np.where(np.isfinite(x), x, np.nan), pa.float64(), mask=~np.isfinite(x))


MAX_PC_METHODS = ("socrates", "isotropic")


def _max_pcs(conj: pa.Table, elements: pa.Table | None, hbr_m: np.ndarray, method: str,
             attached: np.ndarray) -> dict:
    """The max-Pc columns: the isotropic maximum for every event, and ``max_pc`` by
    ``method`` (SOCRATES's from both SGP4 states at TCA where they are known)."""
    if method not in MAX_PC_METHODS:
        raise ValueError(f"max_pc_method must be one of {', '.join(MAX_PC_METHODS)}, "
                         f"got {method!r}")
    # at TCA the relative position is normal to the relative velocity, so the miss vector
    # lies in the encounter plane and its length is the encounter-plane miss
    miss_m = conj["miss_distance_km"].to_numpy() * 1e3
    iso, iso_sigma_m = pcmod.max_pc(miss_m, hbr_m)
    best, best_sigma_m = iso.copy(), iso_sigma_m.copy()
    used = np.full(conj.num_rows, "isotropic", dtype=object)
    if method == "socrates" and elements is not None and conj.num_rows:
        todo = np.flatnonzero(~attached)
        ok, r, v, _ = states_at_tca(conj.take(pa.array(todo, pa.int64())), elements)
        sel = todo[ok]
        if sel.size:
            p, s = pcmod.max_pc_socrates(r[0, ok] * 1e3, v[0, ok] * 1e3, r[1, ok] * 1e3,
                                         v[1, ok] * 1e3, hbr_m[sel])
            good = np.isfinite(p)
            best[sel[good]], best_sigma_m[sel[good]] = p[good], s[good]
            used[sel[good]] = "socrates"
    for a in (iso, iso_sigma_m, best, best_sigma_m):
        a[attached] = np.nan
    used[attached] = None
    return {"max_pc": _floats(best), "max_pc_sigma_km": _floats(best_sigma_m / 1e3),
            "max_pc_method": pa.array(list(used), pa.string()),
            "max_pc_isotropic": _floats(iso),
            "max_pc_isotropic_sigma_km": _floats(iso_sigma_m / 1e3)}


def _event_hbrs(conj: pa.Table, cdms: pa.Table | None, match: np.ndarray,
                table: dict[int, float] | None, default: float):
    """One combined HBR per event (:func:`ssafuse.pc.combined_hbr`): the matched CDM's (when
    a finite number), else CARA's table, else ``default``. Returns ``(hbr, source)``."""
    n = conj.num_rows
    hbr = np.full(n, default)
    source = np.full(n, "hbr_m", dtype=object)
    cdm_hbr = cdms["hbr_m"].to_pylist() if (match >= 0).any() else None
    ids1 = conj["object_id_1"].to_pylist()
    ids2 = conj["object_id_2"].to_pylist()
    for i in range(n):
        h = cdm_hbr[match[i]] if match[i] >= 0 else None
        hbr[i], source[i] = pcmod.combined_hbr(
            cdm_hbr=h if h is not None and math.isfinite(h) else None, table=table,
            ids=(ids1[i], ids2[i]), fallback=default)
    return hbr, source


def _pc_from_matched_cdms(cdms: pa.Table | None, match: np.ndarray, hbr: np.ndarray):
    """``(pc, pc_method, used)`` per event from the matched CDMs' covariances (NaN / None /
    False where there is no match or no finite Pc)."""
    n = len(match)
    pc = np.full(n, np.nan)
    method = np.full(n, None, dtype=object)
    used = np.zeros(n, dtype=bool)
    sel = np.flatnonzero(match >= 0)
    if sel.size:
        p = _pc_from_cdm_rows(cdms, match[sel], hbr[sel])
        ids = cdms["message_id"].to_pylist()
        for i, value in zip(sel, p):
            if math.isfinite(value):
                pc[i] = value
                method[i] = PC_METHOD_CDM + ids[match[i]]
                used[i] = True
    return pc, method, used


def _pc_from_covariance_model(conj: pa.Table, elements: pa.Table | None, model: dict,
                              hbr: np.ndarray, todo_mask: np.ndarray, pc: np.ndarray,
                              method: np.ndarray) -> None:
    """Fill ``pc`` / ``method`` in place for the events of ``todo_mask``: Foster 2-D from both
    objects' SGP4 states at TCA and the assumed covariances of ``model``."""
    todo = np.flatnonzero(todo_mask)
    if not todo.size or elements is None:
        return
    ok, r, v, idx = states_at_tca(conj.take(pa.array(todo)), elements)
    types = _object_types(elements, idx)
    covs = np.zeros((2, todo.size, 6, 6))
    for q in range(todo.size):
        for j in range(2):
            s = _sigmas_km(model, types[q][j])
            if s is None:
                ok[q] = False
            else:
                covs[j, q] = _assumed_cov_rtn_m2(s)
    if not ok.any():
        return
    rm, vm = r[:, ok] * 1e3, v[:, ok] * 1e3
    C1 = pcmod.rtn_to_inertial(rm[0], vm[0], covs[0, ok])
    C2 = pcmod.rtn_to_inertial(rm[1], vm[1], covs[1, ok])
    res = pcmod.pc_from_states(rm[0], vm[0], C1, rm[1], vm[1], C2, hbr[todo[ok]], "foster")
    for i, value in zip(todo[ok], res.pc):
        if math.isfinite(value):
            pc[i], method[i] = value, PC_METHOD_ASSUMED


def _combined_markings(conj, cdms, match, used) -> dict:
    """The events' marking columns, each event whose Pc came from a CDM that states a
    classification combined with that CDM's marking (:func:`ssafuse.markings.combine_columns`)."""
    cls = conj["classification"].to_pylist()
    rel = conj["releasable_to"].to_pylist()
    text = conj["marking"].to_pylist()
    if "classification" in cdms.column_names:
        c_cls = cdms["classification"].to_pylist()
        c_rel = cdms["releasable_to"].to_pylist()
        rows = [int(i) for i in np.flatnonzero(used) if c_cls[int(match[i])] is not None]
        levels, rels, texts = mk.combine_columns(
            [(cls, rel), (c_cls, c_rel)], len(rows), [rows, [int(match[i]) for i in rows]])
        for i, level, r, t in zip(rows, levels, rels, texts):
            cls[i], rel[i], text[i] = level, r, t
    return {"classification": pa.array(cls, pa.string()),
            "releasable_to": pa.array(rel, pa.list_(pa.string())),
            "marking": pa.array(text, pa.string())}


# ---------------------------------------------------------------------------------------------
# CDMs out
# ---------------------------------------------------------------------------------------------

def _rtn_basis(r, v):
    """Rows R, T, N of object 1's RTN frame (CCSDS 508.0-B-1 section 3.5 / Annex)."""
    R = r / np.linalg.norm(r)
    N = np.cross(r, v)
    N = N / np.linalg.norm(N)
    return np.stack([R, np.cross(N, R), N])


def _message_id(originator: str, row: dict, tca_ns: int, creation_ns: int) -> str:
    """Deterministic and unique per event: both NORAD numbers, TCA to the millisecond, and a
    digest of the element sets used and the creation date."""

    stamp = format_epoch(tca_ns)[:23].replace("-", "").replace(":", "")
    key = "|".join(str(x) for x in (row["object_id_1"], row["object_id_2"], tca_ns,
                                     row["epoch_1"], row["epoch_2"], row["source_sha256_1"],
                                     row["source_sha256_2"], creation_ns, originator))
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{originator}_{row['object_id_1']}_{row['object_id_2']}_{stamp}_{digest}"


def conjunction_cdms(conjunctions: pa.Table, elements: pa.Table, *, creation_date,
                     originator: str = "SSAFUSE", covariance_model: dict | None = None,
                     version: str = "1.0", message_for: str | None = None,
                     per_event: bool = False) -> list:
    """One :class:`ssafuse.formats.ccsds.cdm.Cdm` per conjunction (``None`` where the element sets
    of the event are not in ``elements`` or SGP4 fails at TCA), in row order.

    ``creation_date``: CREATION_DATE (datetime, ISO text or ns; never the clock).
    ``version``: ``'2.0'`` writes the conjunction's marking as the CDM-2 header
    CLASSIFICATION and max_pc as COLLISION_MAX_PROBABILITY; ``'1.0'`` keeps to 508.0-B-1
    keywords and writes both as COMMENTs. States: SGP4 at TCA, TEME rotated to GCRF
    (:func:`ssafuse.propagate.teme_to_gcrs`), km and km/s. Covariance: ``covariance_model`` as in
    :func:`assess` (COVARIANCE_METHOD DEFAULT, COMMENT saying it is assumed), else zeros with
    COMMENTs saying element sets carry no covariance.

    ``per_event``: an event whose CDM cannot be built (its marking cannot be stated) gives
    its :class:`ValueError` in its place instead of raising, so the others are kept.
    """
    if version not in cdm_format.VERSIONS:
        raise ValueError("version must be '1.0' or '2.0'")
    conj = conjunctions.cast(CONJUNCTIONS) if conjunctions.schema != CONJUNCTIONS else conjunctions
    creation_ns = to_ns(creation_date)
    ok, r_teme, v_teme, idx = states_at_tca(conj, elements)
    tca = conj["tca"].cast(pa.int64()).to_numpy()
    n = conj.num_rows
    r = np.full((2, n, 3), np.nan)
    v = np.full((2, n, 3), np.nan)
    for j in range(2):
        r[j], v[j] = teme_to_gcrs(tca, r_teme[j], v_teme[j])
    types = _object_types(elements, idx)
    el_cols = {c: elements[c].to_pylist() for c in ("intl_designator", "object_name")
               if c in elements.column_names}
    out: list = []
    for i, row in enumerate(conj.to_pylist()):
        if not ok[i]:
            out.append(None)
            continue
        try:
            out.append(_one_cdm(row, version, originator, int(tca[i]), creation_ns,
                                message_for, (r_teme[:, i], v_teme[:, i]),
                                [(int(idx[i, j]), r[j, i], v[j, i], types[i][j])
                                 for j in range(2)], covariance_model, el_cols))
        except ValueError as e:  # this event's text cannot be stated (a marking): its own
            if not per_event:
                raise
            out.append(e)
    return out


def _one_cdm(row: dict, version: str, originator: str, tca_ns: int, creation_ns: int,
             message_for, teme, objects_at, covariance_model, el_cols) -> "cdm_format.Cdm":
    """The CDM of one event (``teme``: both TEME states ``(2, 3)``; ``objects_at``: per
    object its element-set row, GCRF state and object type)."""
    header, comments = _cdm_header(row, version, originator, tca_ns, creation_ns, message_for)
    relative, comments["relative"] = _cdm_relative(row, version, tca_ns, *teme)
    objects = []
    for s, (k, r, v, object_type) in zip(("1", "2"), objects_at):
        obj, meta, cov = _cdm_object(row, s, k, r, v, object_type, covariance_model, el_cols,
                                     version)
        objects.append(obj)
        comments[f"object{s}/metadata"] = meta
        comments[f"object{s}/covarianceMatrix"] = cov
    return cdm_format.Cdm(header=header, relative=relative, objects=tuple(objects),
                          comments=comments)


def _cdm_header(row: dict, version: str, originator: str, tca_ns: int, creation_ns: int,
                message_for: str | None) -> tuple[dict, dict[str, list[str]]]:
    """A CDM's header keywords and its comments (``{"header": [...]}``)."""
    header = {"CCSDS_CDM_VERS": version, "CREATION_DATE": creation_ns,
              "ORIGINATOR": originator,
              "MESSAGE_ID": _message_id(originator, row, tca_ns, creation_ns)}
    if message_for:
        header["MESSAGE_FOR"] = message_for
    comments: dict[str, list[str]] = {"header": [
        f"Generated by ssafuse {__version__} from element sets: SGP4 (WGS72) states at TCA, "
        "TEME rotated to GCRF with Skyfield"]}
    # the marking text, never saying less than the row's classification / releasability
    marking = mk.row_marking_text(row["classification"], row["releasable_to"],
                                  row["marking"])[1]
    if version == "2.0":
        header["CLASSIFICATION"] = marking
    else:
        comments["header"].append(mk.marking_comment(marking))
    return header, comments


def _cdm_relative(row: dict, version: str, tca_ns: int, r_teme, v_teme) -> tuple[dict, list]:
    """A CDM's relative metadata (RTN of object 1, from the TEME states ``(2, 3)``) and its
    comments."""
    B = _rtn_basis(r_teme[0], v_teme[0])
    dr = (r_teme[1] - r_teme[0]) * 1e3
    dv = (v_teme[1] - v_teme[0]) * 1e3
    rel_r, rel_v = B @ dr, B @ dv
    relative = {
        "TCA": tca_ns,
        "MISS_DISTANCE": float(np.linalg.norm(dr)),
        "RELATIVE_SPEED": float(np.linalg.norm(dv)),
        "RELATIVE_POSITION_R": float(rel_r[0]), "RELATIVE_POSITION_T": float(rel_r[1]),
        "RELATIVE_POSITION_N": float(rel_r[2]),
        "RELATIVE_VELOCITY_R": float(rel_v[0]), "RELATIVE_VELOCITY_T": float(rel_v[1]),
        "RELATIVE_VELOCITY_N": float(rel_v[2]),
        "START_SCREEN_PERIOD": to_ns(row["window_start"]),
        "STOP_SCREEN_PERIOD": to_ns(row["window_end"]),
        "SCREEN_VOLUME_FRAME": "RTN", "SCREEN_VOLUME_SHAPE": "ELLIPSOID",
        "SCREEN_VOLUME_X": row["threshold_km"] * 1e3,
        "SCREEN_VOLUME_Y": row["threshold_km"] * 1e3,
        "SCREEN_VOLUME_Z": row["threshold_km"] * 1e3,
    }
    comments = [f"Screening volume: a sphere of radius {row['threshold_km']:g} km"]
    if row.get("hbr_m") is not None:
        comments.append(f"HBR = {row['hbr_m']:g} [m]")
    if row.get("pc") is not None:
        relative["COLLISION_PROBABILITY"] = float(row["pc"])
        relative["COLLISION_PROBABILITY_METHOD"] = CDM_PC_METHOD
        comments.append(f"COLLISION_PROBABILITY from ssafuse {row['pc_method']}")
    if row.get("max_pc") is not None:
        what = (("the largest Pc over the size and orientation of a covariance of "
                 "SOCRATES's shape (RIC sigmas 100:300:100 m on each object)"
                 if row.get("max_pc_method") == "socrates" else
                 "the largest Pc over the size of an isotropic covariance")
                + " (Alfano 2005) for this miss and HBR: a bound, not a Pc")
        if version == "2.0":
            relative["COLLISION_MAX_PROBABILITY"] = float(row["max_pc"])
            relative["COLLISION_MAX_PC_METHOD"] = CDM_MAX_PC_METHOD
            comments.append(f"COLLISION_MAX_PROBABILITY is {what}")
        else:
            comments.append(f"MAX_PC = {float(row['max_pc'])!r}, {what}")
    return relative, comments


def _cdm_object(row: dict, s: str, k: int, r, v, object_type: str,
                covariance_model: dict | None, el_cols: dict,
                version: str) -> tuple[dict, list, list]:
    """Object ``s`` (``'1'`` or ``'2'``) of a CDM from its element set (row ``k`` of the
    elements) and its GCRF state ``r``, ``v``: ``(keywords, metadata comments, covariance
    comments)``."""
    name = row[f"object_name_{s}"] or (el_cols.get("object_name", [None] * (k + 1))[k])
    intl = el_cols.get("intl_designator", [None] * (k + 1))[k]
    obj = {
        "OBJECT": f"OBJECT{s}",
        "OBJECT_DESIGNATOR": str(row[f"object_id_{s}"]),
        "CATALOG_NAME": "SATCAT",
        "OBJECT_NAME": (name or "UNKNOWN").strip() or "UNKNOWN",
        "INTERNATIONAL_DESIGNATOR": (intl or "UNKNOWN").strip() or "UNKNOWN",
        "EPHEMERIS_NAME": "NONE",
        "COVARIANCE_METHOD": "DEFAULT",
        "MANEUVERABLE": "N/A",
        "REF_FRAME": "GCRF",
        "GRAVITY_MODEL": SGP4_GRAVITY_MODEL,
        "X": float(r[0]), "Y": float(r[1]), "Z": float(r[2]),
        "X_DOT": float(v[0]), "Y_DOT": float(v[1]), "Z_DOT": float(v[2]),
    }
    if version != "1.0":
        obj["OD_EPOCH"] = to_ns(row[f"epoch_{s}"])
    if object_type in ("PAYLOAD", "ROCKET BODY", "DEBRIS", "UNKNOWN", "OTHER"):
        obj["OBJECT_TYPE"] = object_type
    sig = _sigmas_km(covariance_model, object_type) if covariance_model else None
    cov = _assumed_cov_rtn_m2(sig) if sig else np.zeros((6, 6))
    rr, cc = np.tril_indices(6)
    for key, value in zip(cdm_format.COVARIANCE_RTN, cov[rr, cc]):
        obj[key] = float(value)
    src = row[f"source_{s}"] or "unknown source"
    meta = [f"Element set from {src}, epoch {_iso(row[f'epoch_{s}'])}"
            + (" (OD_EPOCH)" if version != "1.0" else ""),
            "Propagated with SGP4: WGS-72 constants, zonal harmonics J2 to J4 (GRAVITY_MODEL)"]
    if sig:
        cov_comments = [
            f"ASSUMED covariance for OBJECT_TYPE {object_type}: sigma R/T/N "
            f"{sig[0]:g}/{sig[1]:g}/{sig[2]:g} km, velocity terms zero; a model the "
            "user supplied, not an orbit determination"]
    else:
        cov_comments = [
            "Element sets (TLE/GP) carry no covariance: the covariance below is all "
            "zero as a placeholder the standard requires, NOT an accuracy",
            "Do not compute Pc from it"]
    return obj, meta, cov_comments


def _iso(value) -> str:
    return format_epoch(to_ns(value))[:23] + "Z"


def cdm_files(conjunctions: pa.Table, elements: pa.Table, *, creation_date, fmt: str = "kvn",
              originator: str = "SSAFUSE", covariance_model: dict | None = None,
              version: str = "1.0") -> tuple[list, dict[int, str]]:
    """Each conjunction's CDM as a file, nothing written: ``(files, refused)``. ``files`` in
    row order holds ``(name, data)`` (``<MESSAGE_ID>.cdm`` for KVN or ``.xml``, UTF-8 bytes),
    or ``None`` where no CDM is made (the event's element sets are not in ``elements``, SGP4
    fails at TCA, or it is refused). ``refused``: row -> why the strict writer
    (:func:`ssafuse.formats.ccsds.cdm.dumps_kvn` / ``dumps_xml``) refused that event's CDM,
    e.g. an object name holding a line break or a control character. One event's refusal
    never stops the others."""
    if fmt not in ("kvn", "xml"):
        raise ValueError(f"fmt must be 'kvn' or 'xml', got {fmt!r}")
    dump, ext = ((cdm_format.dumps_kvn, ".cdm") if fmt == "kvn"
                 else (cdm_format.dumps_xml, ".xml"))
    files: list = []
    refused: dict[int, str] = {}
    for i, msg in enumerate(conjunction_cdms(conjunctions, elements,
                                             creation_date=creation_date,
                                             originator=originator,
                                             covariance_model=covariance_model,
                                             version=version, per_event=True)):
        if isinstance(msg, Exception):
            files.append(None)
            refused[i] = str(msg)
            continue
        if msg is None:
            files.append(None)
            continue
        try:
            files.append((msg.message_id + ext, dump(msg).encode("utf-8")))
        except ValueError as e:
            files.append(None)
            refused[i] = str(e)
    return files, refused


def write_cdms(conjunctions: pa.Table, elements: pa.Table, out_dir, *, creation_date,
               fmt: str = "kvn", originator: str = "SSAFUSE",
               covariance_model: dict | None = None, version: str = "1.0") -> list:
    """Write :func:`conjunction_cdms` to ``out_dir`` (created), one file per conjunction named
    ``<MESSAGE_ID>.cdm`` (KVN) or ``.xml``, each written atomically. Returns the paths in row
    order, ``None`` for an event whose element sets are not in ``elements``. Strict: when
    the writer refuses any event's CDM it raises that :class:`ValueError` before writing
    any (:func:`cdm_files` gives the others and the refusals instead)."""
    files, refused = cdm_files(conjunctions, elements, creation_date=creation_date, fmt=fmt,
                               originator=originator, covariance_model=covariance_model,
                               version=version)
    if refused:
        row, why = next(iter(refused.items()))
        raise ValueError(f"the CDM of conjunction row {row} cannot be written: {why}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list = []
    for f in files:
        if f is None:
            paths.append(None)
            continue
        path = out_dir / f[0]
        atomic_write_bytes(path, f[1])
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# CDMs of a screening run in a store (``ssafuse cdm``)
# ---------------------------------------------------------------------------------------------

#: The element-set columns CDMs are written from, gathered from the store and ``--elements``.
CDM_ELEMENT_COLUMNS = [
    "object_id", "intl_designator", "object_name", "epoch", "mean_motion_rev_day",
    "eccentricity", "inclination_deg", "raan_deg", "arg_perigee_deg", "mean_anomaly_deg",
    "bstar", "mean_motion_dot", "mean_motion_ddot", "object_type", "source", "source_sha256",
    "source_record"]


def cdms_for_screening(store, out_dir, *, run_file=None, fmt: str = "kvn", element_files=(),
                       originator: str = "SSAFUSE", creation_date, version: str = "1.0"):
    """Write one CDM per conjunction of a screening run of ``store`` (:func:`write_cdms`,
    CDM ``version`` 1.0 or 2.0).

    ``run_file``: the run's Parquet file (default: the store's newest screening; a
    ``FileNotFoundError`` when it holds none). Runs written before a column was added get
    that column as nulls. The element sets are looked up in the store's ``elements`` and
    ``catalogue`` and in ``element_files`` (read with source ``'local'``). Returns
    ``(conjunctions, paths, run_file)``: ``paths`` in row order, ``None`` for an event whose
    element sets were not found.
    """
    conj, run_file = _screening_run(store, run_file)
    elements = _elements_for_cdms(store, element_files)
    paths = write_cdms(conj, elements, out_dir, fmt=fmt, creation_date=creation_date,
                       originator=originator, version=version)
    return conj, paths, run_file


def _screening_run(store, run_file):
    """``(conjunctions, run_file)`` of ``run_file``, or of the store's newest screening."""
    if run_file is None:
        runs = store.screenings()
        if not runs:
            raise FileNotFoundError(f"the store {store.root} holds no screening run: run "
                                    "`ssafuse screen --store` first, or give --run")
        run_file = runs[-1]
        conj = store.read_parquet(run_file)
    else:
        conj = pq.read_table(run_file)
    return conform(conj, CONJUNCTIONS), run_file


def _elements_for_cdms(store, element_files) -> pa.Table:
    """The store's elements and catalogue and the sets of ``element_files``, in one table."""
    common = CDM_ELEMENT_COLUMNS
    tables = [store.table("elements", columns=common), store.table("catalogue", columns=common)]
    tables += [read_file(f, source="local").elements.select(common) for f in element_files]
    return pa.concat_tables([t.cast(tables[0].schema) for t in tables])


# ---------------------------------------------------------------------------------------------
# Pc of CDM files (``ssafuse pc``): one row per message
# ---------------------------------------------------------------------------------------------

def _looks_like_cdm(path: str) -> bool:
    try:
        with open_input(path) as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return cdm_format.identify_kvn(head) or cdm_format.identify_xml(head)


def expand_cdm_inputs(inputs) -> list[str]:
    """Files named by paths, folders (every file in them whose first bytes look like a CDM)
    and globs, in the order given, each once."""
    return expand_inputs(inputs, accept=_looks_like_cdm)


def pc_of_cdm_files(inputs, *, hbr_m=None, hbr_table=None, method: str = "foster",
                    out=None, on_row=None) -> tuple[pa.Table, int]:
    """Pc of every CDM in ``inputs`` (files, folders, globs: :func:`expand_cdm_inputs`).

    The combined HBR of each message (:func:`ssafuse.pc.combined_hbr`): ``hbr_m`` when given
    (``'option'``), else the CDM's own, else the sum of both objects' in CARA's
    ``hbr_table`` (a path); a message with none gets Pc null and ``error`` set. Returns
    ``(table, refused)``: the table (:data:`ssafuse.schema.PC_RESULTS`) has one row per
    message and one per file that could not be read (``error`` set; counted in ``refused``).
    Writes ``out`` (Parquet) when given. Prints nothing: ``on_row(row)`` hears of each row
    (a dict) as soon as it is computed, and :func:`pc_line` gives its line.
    """
    table_hbr = pcmod.load_cara_hbr(hbr_table) if hbr_table else None
    rows, refused = [], 0
    for uri in expand_cdm_inputs(inputs):
        try:
            msgs = cdm_format.read_all(uri)
        except (FormatError, OSError) as e:
            refused += 1
            reason = str(e) if isinstance(e, FormatError) else f"cannot read file: {e}"
            new = [{"source_uri": uri, "pc_method": method, "pc_flags": [], "error": reason}]
        else:
            new = _pc_rows(uri, msgs, hbr_m, table_hbr, method)
        rows.extend(new)
        for row in new if on_row is not None else ():
            on_row(row)
    cols = {name: [r.get(name) for r in rows] for name in PC_RESULTS.names}
    cols["tca"] = pa.array([r.get("tca") for r in rows], pa.int64()).cast(
        PC_RESULTS.field("tca").type)
    table = pa.Table.from_pydict(cols, schema=PC_RESULTS)
    if out:
        write_parquet(Path(out), table)
    return table, refused


def _pc_rows(uri: str, msgs: list, hbr_m, table_hbr, method: str) -> list[dict]:
    """The :data:`~ssafuse.schema.PC_RESULTS` rows of the messages of one file."""
    hbrs, sources = [], []
    for m in msgs:
        ids = [str(o["OBJECT_DESIGNATOR"]) for o in m.objects]
        h, src = pcmod.combined_hbr(cdm_hbr=m.hbr_m(), table=table_hbr,
                                    ids=[int(i) if i.isdigit() else None for i in ids],
                                    override=hbr_m)
        hbrs.append(h)
        sources.append(src)
    res = pcmod.pc_from_cdm(msgs, hbr_m=np.array(hbrs, dtype=float), method=method)
    rows = []
    for i, m in enumerate(msgs):
        p = float(res.pc[i])
        error = None
        if math.isnan(hbrs[i]):
            error = "no hard-body radius: the CDM states none; pass --hbr-m or --hbr-table"
        rows.append({
            "source_uri": uri, "message_id": m.message_id,
            "object1_designator": str(m.objects[0]["OBJECT_DESIGNATOR"]),
            "object2_designator": str(m.objects[1]["OBJECT_DESIGNATOR"]),
            "tca": m.tca_ns, "miss_distance_km": float(res.miss[i]) / 1000.0,
            "hbr_m": None if math.isnan(hbrs[i]) else hbrs[i], "hbr_source": sources[i],
            "pc": None if math.isnan(p) else p, "pc_method": method,
            "pc_flags": pcmod.flag_names(res.flags[i]),
            "cdm_pc": m.relative.get("COLLISION_PROBABILITY"), "error": error,
        })
    return rows


def pc_line(row: dict) -> str:
    """The line ``ssafuse pc`` prints for one row of :func:`pc_of_cdm_files`' table (as
    ``table.to_pylist()`` gives it): ``REFUSED  <file>  <reason>`` for a file that could not
    be read, else Pc, method, MESSAGE_ID, miss, HBR, flags and any error."""
    if row.get("object1_designator") is None:   # a file that could not be read
        return f"REFUSED  {row['source_uri']}  {row['error'].splitlines()[0]}"
    p, flags, error = row["pc"], row["pc_flags"], row["error"]
    return (f"{'-' if p is None else format(p, '.6e'):>13}  {row['pc_method']}  "
            f"{row['message_id']}  miss {row['miss_distance_km']:.4f} km  "
            f"HBR {'-' if row['hbr_m'] is None else format(row['hbr_m'], 'g')} m"
            + (f"  [{', '.join(flags)}]" if flags else "") + (f"  {error}" if error else ""))


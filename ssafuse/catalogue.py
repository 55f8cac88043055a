"""One catalogue from many feeds: one element set per object, with how it was chosen.

For each object the newest element set wins (latest epoch); ties on epoch go to the source
listed first in ``precedence`` (sources not listed come after, in name order), then to the
latest ingest. Each entry keeps how many element sets and sources reported the object, which
sources, and how far apart they are: each other source's newest element set and the chosen one
are both propagated with SGP4 to the chosen epoch, and the largest distance is reported in km
(``max_disagreement_km``, with that source and its set's epoch), flagged when it is above
``disagree_km``. Only element sets whose epochs are within ``disagree_max_gap_days`` of the
chosen one are compared (:mod:`ssafuse.epochs`): an old element set propagated to today
differs because of its age, which says nothing about either source.

Markings follow the data used. The entry's ``classification`` / ``releasable_to`` /
``marking`` are those of the element set it uses, so that everything computed from the
element set (screening, Pc, CDMs) carries that set's marking only: a restricted feed that also
reports a public object does not make the public element set restricted. What the entry says
about the other element sets (``n_element_sets``, ``n_sources``, ``sources``, the
disagreement columns) is derived from all of them, and carries their combination
(most restrictive classification, intersection of releasability) in ``sources_classification``
/ ``sources_releasable_to`` / ``sources_marking``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from . import markings as mk
from .constants import NS_PER_DAY
from .epochs import DISAGREE_MAX_GAP_DAYS
from .propagate import position_at_epochs, satrecs
from .schema import CATALOGUE, ELEMENTS

#: Default distance above which two sources' element sets for an object are flagged.
DISAGREE_KM = 5.0


def build_catalogue(elements: pa.Table, *, precedence: Sequence[str] = (),
                    disagree_km: float = DISAGREE_KM,
                    disagree_max_gap_days: float = DISAGREE_MAX_GAP_DAYS) -> pa.Table:
    """The catalogue (schema :data:`ssafuse.schema.CATALOGUE`) of an ``elements`` table,
    one row per object, sorted by ``object_id``."""
    if elements.num_rows == 0:
        return CATALOGUE.empty_table()
    elements = elements.select(ELEMENTS.names)
    order, bounds = _newest_first(elements, precedence)
    chosen = order[bounds[:-1]]
    newest = _newest_per_source(elements, order, bounds)
    max_km, far_source, far_epoch = _disagreement(elements, chosen, newest,
                                                  disagree_max_gap_days)
    out = elements.take(chosen)
    finite = np.isfinite(max_km)
    levels, rels, texts = _sources_markings(elements, order, bounds)
    extra = {
        "n_element_sets": pa.array(np.diff(bounds), pa.int64()),
        "n_sources": pa.array([len(nw) for nw in newest], pa.int64()),
        "sources": pa.array([sorted(nw) for nw in newest], pa.list_(pa.string())),
        "max_disagreement_km": pa.array(max_km, pa.float64(), mask=~finite),
        "disagreement_source": pa.array(far_source, pa.string()),
        "disagreement_epoch": pa.array(far_epoch, pa.int64()).cast(
            CATALOGUE.field("disagreement_epoch").type),
        "sources_disagree": pa.array(finite & (np.nan_to_num(max_km) > disagree_km)),
        "sources_classification": pa.array(levels, pa.string()),
        "sources_releasable_to": pa.array(rels, pa.list_(pa.string())),
        "sources_marking": pa.array(texts, pa.string()),
    }
    for name, col in extra.items():
        out = out.append_column(CATALOGUE.field(name), col)
    return out.cast(CATALOGUE)


def _newest_first(elements: pa.Table, precedence: Sequence[str]):
    """Row order grouping each object's element sets, the one to choose first: latest epoch,
    then the source first in ``precedence`` (unlisted ones after, by name), then latest
    ingest. Returns ``(order, bounds)``: object ``k``'s rows are
    ``order[bounds[k]:bounds[k + 1]]``."""
    obj = elements["object_id"].to_numpy()
    epoch = elements["epoch"].cast(pa.int64()).to_numpy()
    ingested = elements["ingested_at"].cast(pa.int64()).to_numpy()
    record = elements["source_record"].to_numpy()
    source = elements["source"].to_pylist()
    names = sorted(set(source))
    rank_of = {s: (precedence.index(s) if s in precedence else len(precedence) + names.index(s))
               for s in names}
    rank = np.array([rank_of[s] for s in source], dtype=np.int64)
    # np.lexsort sorts by the last key first.
    order = np.lexsort((record, -ingested, rank, -epoch, obj))
    obj_s = obj[order]
    starts = np.flatnonzero(np.r_[True, obj_s[1:] != obj_s[:-1]])
    return order, np.r_[starts, len(order)]


def _newest_per_source(elements: pa.Table, order, bounds) -> list[dict[str, int]]:
    """Per catalogue entry, ``{source: row of its newest element set}``."""
    source = elements["source"].to_pylist()
    out: list[dict[str, int]] = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        newest: dict[str, int] = {}
        for j in range(lo, hi):  # rows are newest-first: the first row of a source is its newest
            newest.setdefault(source[order[j]], order[j])
        out.append(newest)
    return out


def _disagreement(elements: pa.Table, chosen, newest: list[dict[str, int]],
                  max_gap_days: float = DISAGREE_MAX_GAP_DAYS):
    """Per entry, the largest distance (km) at the chosen epoch between the chosen element set
    and each other source's newest whose epoch is within ``max_gap_days`` of it (SGP4), that
    source and that set's epoch (ns); NaN / None / None when no other source has one."""
    n = len(chosen)
    epoch = elements["epoch"].cast(pa.int64()).to_numpy()
    max_gap_ns = max_gap_days * NS_PER_DAY
    pairs_chosen: list[int] = []   # row of the chosen set, per comparison
    pairs_other: list[int] = []    # row of another source's newest set
    pairs_entry: list[int] = []    # catalogue entry of the comparison
    for k, nw in enumerate(newest):
        if len(nw) > 1:
            for i in nw.values():
                if i != chosen[k] and abs(int(epoch[i]) - int(epoch[chosen[k]])) <= max_gap_ns:
                    pairs_chosen.append(chosen[k])
                    pairs_other.append(i)
                    pairs_entry.append(k)
    max_km = np.full(n, np.nan)
    far_source: list[str | None] = [None] * n
    far_epoch: list[int | None] = [None] * n
    if not pairs_entry:
        return max_km, far_source, far_epoch
    source = elements["source"].to_pylist()
    sats = satrecs(elements.take(np.array(pairs_chosen + pairs_other)))
    at = np.r_[epoch[pairs_chosen], epoch[pairs_chosen]]
    err, r = position_at_epochs(sats, at)
    m = len(pairs_entry)
    dist = np.linalg.norm(r[m:] - r[:m], axis=1)
    for e, other, d in zip(pairs_entry, pairs_other, dist):
        if np.isfinite(d) and not d <= max_km[e]:  # NaN max (first seen) or a larger one
            max_km[e] = d
            far_source[e] = source[other]
            far_epoch[e] = int(epoch[other])
    return max_km, far_source, far_epoch


def _sources_markings(elements: pa.Table, order, bounds) -> tuple[list, list, list]:
    """Per catalogue entry, the combined marking of every element set of the object
    (:func:`ssafuse.markings.combine_columns`): what the entry's source columns derive from."""
    classification = elements["classification"].to_pylist()
    releasable = elements["releasable_to"].to_pylist()
    key_of = [(c, None if r is None else tuple(r)) for c, r in zip(classification, releasable)]
    # Distinct markings per object, in one row each: objects rarely have more than two.
    per_object = [list(dict.fromkeys(key_of[order[j]] for j in range(lo, hi)))
                  for lo, hi in zip(bounds[:-1], bounds[1:])]
    width = max(map(len, per_object))
    flat_cls = [k[0] for marks in per_object for k in marks]
    flat_rel = [k[1] for marks in per_object for k in marks]
    rows: list[list[int | None]] = [[None] * len(per_object) for _ in range(width)]
    at = 0
    for q, marks in enumerate(per_object):
        for w in range(len(marks)):
            rows[w][q] = at
            at += 1
    return mk.combine_columns([(flat_cls, flat_rel)] * width, len(per_object), rows)

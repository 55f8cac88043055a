"""One catalogue from many feeds: one element set per object, with how it was chosen.

For each object the newest element set wins (latest epoch); ties on epoch go to the source
listed first in ``precedence`` (sources not listed come after, in name order), then to the
latest ingest. Each entry keeps how many element sets and sources reported the object, which
sources, and how far apart they are: each other source's newest element set and the chosen one
are both propagated with SGP4 to the chosen epoch, and the largest distance is reported in km
(``max_disagreement_km``), flagged when it is above ``disagree_km``.

The entry's marking is the combination (most restrictive classification, intersection of
releasability) of every element set that went into it: the chosen one and each other source's
newest, since the entry reports their existence and their disagreement.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from . import markings as mk
from .propagate import position_at_epochs, satrecs
from .schema import CATALOGUE, ELEMENTS

#: Default distance above which two sources' element sets for an object are flagged.
DISAGREE_KM = 5.0


def build_catalogue(elements: pa.Table, *, precedence: Sequence[str] = (),
                    disagree_km: float = DISAGREE_KM) -> pa.Table:
    """The catalogue (schema :data:`ssafuse.schema.CATALOGUE`) of an ``elements`` table,
    one row per object, sorted by ``object_id``."""
    if elements.num_rows == 0:
        return CATALOGUE.empty_table()
    elements = elements.select(ELEMENTS.names)
    obj = elements["object_id"].to_numpy()
    epoch = elements["epoch"].cast(pa.int64()).to_numpy()
    ingested = elements["ingested_at"].cast(pa.int64()).to_numpy()
    record = elements["source_record"].to_numpy()
    source = np.array(elements["source"].to_pylist(), dtype=object)
    names = sorted(set(source))
    rank_of = {s: (precedence.index(s) if s in precedence else len(precedence) + names.index(s))
               for s in names}
    rank = np.array([rank_of[s] for s in source], dtype=np.int64)
    # np.lexsort sorts by the last key first.
    order = np.lexsort((record, -ingested, rank, -epoch, obj))
    obj_s, source_s = obj[order], source[order]
    starts = np.flatnonzero(np.r_[True, obj_s[1:] != obj_s[:-1]])
    bounds = np.r_[starts, len(order)]
    chosen = order[starts]

    classification = elements["classification"].to_pylist()
    releasable = elements["releasable_to"].to_pylist()
    n = len(starts)
    n_sets = np.diff(bounds)
    sources_col: list[list[str]] = []
    n_sources = np.ones(n, dtype=np.int64)
    level_out = [classification[i] for i in chosen]
    rel_out = [releasable[i] for i in chosen]
    pairs_chosen: list[int] = []   # row of the chosen set, per comparison
    pairs_other: list[int] = []    # row of another source's newest set
    pairs_entry: list[int] = []    # catalogue entry of the comparison
    for k in range(n):
        lo, hi = bounds[k], bounds[k + 1]
        if hi - lo == 1:
            sources_col.append([source_s[lo]])
            continue
        newest: dict[str, int] = {}
        for j in range(lo, hi):  # rows are newest-first: the first row of a source is its newest
            newest.setdefault(source_s[j], order[j])
        sources_col.append(sorted(newest))
        n_sources[k] = len(newest)
        if len(newest) > 1:
            combined = mk.combine(
                mk.Marking(classification[i],
                           None if releasable[i] is None else tuple(releasable[i]))
                for i in newest.values())
            level_out[k] = combined.classification
            rel_out[k] = None if combined.releasable_to is None else list(combined.releasable_to)
            for s, i in newest.items():
                if i != chosen[k]:
                    pairs_chosen.append(chosen[k])
                    pairs_other.append(i)
                    pairs_entry.append(k)

    max_km = np.full(n, np.nan)
    far_source: list[str | None] = [None] * n
    if pairs_entry:
        rows = np.array(pairs_chosen + pairs_other)
        sats = satrecs(elements.take(rows))
        at = np.r_[epoch[pairs_chosen], epoch[pairs_chosen]]
        err, r = position_at_epochs(sats, at)
        m = len(pairs_entry)
        dist = np.linalg.norm(r[m:] - r[:m], axis=1)
        for e, other, d in zip(pairs_entry, pairs_other, dist):
            if np.isfinite(d) and not d <= max_km[e]:  # NaN max (first seen) or a larger one
                max_km[e] = d
                far_source[e] = source[other]

    out = elements.take(chosen)
    received = elements["marking"].to_pylist()
    marks = [received[i] if ns == 1 else str(mk.Marking(lv, None if rl is None else tuple(rl)))
             for i, ns, lv, rl in zip(chosen, n_sources, level_out, rel_out)]
    out = out.set_column(out.schema.get_field_index("classification"),
                         ELEMENTS.field("classification"), pa.array(level_out, pa.string()))
    out = out.set_column(out.schema.get_field_index("releasable_to"),
                         ELEMENTS.field("releasable_to"),
                         pa.array(rel_out, pa.list_(pa.string())))
    out = out.set_column(out.schema.get_field_index("marking"), ELEMENTS.field("marking"),
                         pa.array(marks, pa.string()))
    finite = np.isfinite(max_km)
    extra = {
        "n_element_sets": pa.array(n_sets, pa.int64()),
        "n_sources": pa.array(n_sources, pa.int64()),
        "sources": pa.array(sources_col, pa.list_(pa.string())),
        "max_disagreement_km": pa.array(max_km, pa.float64(), mask=~finite),
        "disagreement_source": pa.array(far_source, pa.string()),
        "sources_disagree": pa.array(finite & (np.nan_to_num(max_km) > disagree_km)),
    }
    for name, col in extra.items():
        out = out.append_column(CATALOGUE.field(name), col)
    return out.cast(CATALOGUE)

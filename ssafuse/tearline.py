"""Tear lines: each partner's view of a run, computed from the records it may receive.

A partner's export is not the operator's results with rows struck out: it is what a run over
**only the element sets releasable to that partner** would give (ICD 209's tear line; IRTPA
2004 section 1016, information "in its most shareable form"). So a conjunction computed from a
restricted element set is not withheld when a public element set of the same objects supports
it: the partner gets the event recomputed from the public one.

:func:`partner_views` does it without screening the whole catalogue again per partner:

1. The partner's elements: those :func:`ssafuse.markings.exportable` to it.
2. Its catalogue: :func:`ssafuse.catalogue.build_catalogue` over them, with the run's
   precedence, so each object's element set is the best among the releasable ones.
3. Objects whose chosen element set is the one the full run used are *unchanged*; the rest
   are *changed* (a different set is chosen) or *unseen* (no releasable set at all).
4. Events of the full run between two unchanged objects are reused as they are: screening is
   pair by pair, so a run on the partner's catalogue finds exactly those rows again. Only
   pairs with a changed object are screened again
   (:func:`ssafuse.screening.screen` with ``involving``), against the partner's whole
   catalogue. Events with an unseen object are dropped.

Partners whose releasable element sets are the same share one view, computed once.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import markings as mk
from .catalogue import build_catalogue
from .schema import CATALOGUE, CONJUNCTIONS, EXCLUDED
from .screening import screen

__all__ = ["PartnerView", "partner_views"]

#: What identifies one element set (the row it came from).
IDENTITY = ("source", "source_sha256", "source_record")


@dataclass
class PartnerView:
    """One partner's view of a run: its catalogue, its screened events (before Pc), its
    excluded objects, and how they were obtained (``counts``; ``reused``)."""

    codes: tuple[str, ...]
    catalogue: pa.Table
    screened: pa.Table
    excluded: pa.Table
    counts: dict = field(default_factory=dict)
    #: per row of ``screened``: the full run's event, reused as it is (not screened again)
    reused: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def partner_views(elements: pa.Table, codes: Iterable[str], *, catalogue: pa.Table,
                  screened: pa.Table, excluded: pa.Table, start, days: float,
                  threshold_km: float, primaries: Sequence[int] = (),
                  precedence: Sequence[str] = (), disagree_km: float = 5.0,
                  workers: int | None = None, dask=None,
                  epoch_settings: dict | None = None) -> dict[str, PartnerView]:
    """Each partner's :class:`PartnerView` of a run.

    ``elements``: every element set the run's catalogue was built from; ``catalogue``,
    ``screened`` (conjunctions before assessment) and ``excluded``: the full run's; the
    screening and catalogue settings are the run's, ``epoch_settings`` included
    (``max_epoch_gap_days`` for the screening, ``disagree_max_gap_days`` for the catalogue,
    each passed only when given, so the view is built as the run was). Partners with the
    same releasable element sets get the same view object."""
    epoch = dict(epoch_settings or {})
    screen_epoch = {k: epoch[k] for k in ("max_epoch_gap_days",) if k in epoch}
    catalogue_epoch = {k: epoch[k] for k in ("disagree_max_gap_days",) if k in epoch}
    by_mask: dict[str, PartnerView] = {}
    out: dict[str, PartnerView] = {}
    for code in codes:
        mask = np.asarray(mk.releasable_mask(elements, code), dtype=bool) \
            if elements.num_rows else np.zeros(0, bool)
        key = hashlib.sha256(np.packbits(mask).tobytes()).hexdigest() + str(len(mask))
        view = by_mask.get(key)
        if view is None:
            t0 = time.perf_counter()
            view = by_mask[key] = _view(
                elements.filter(pa.array(mask, pa.bool_())), catalogue, screened, excluded,
                dict(start=start, days=days, threshold_km=threshold_km,
                     primaries=list(primaries) or None, workers=workers, dask=dask,
                     **screen_epoch),
                precedence, dict(disagree_km=disagree_km, **catalogue_epoch))
            view.counts["seconds"] = round(time.perf_counter() - t0, 3)
        view.codes = (*view.codes, code)
        out[code] = view
    return out


def _view(elements: pa.Table, full_cat: pa.Table, screened: pa.Table, excluded: pa.Table,
          screen_args: dict, precedence, catalogue_args: dict) -> PartnerView:
    """One view (see the module docstring)."""
    cat = build_catalogue(elements, precedence=precedence, **catalogue_args)
    full_ids = full_cat["object_id"].to_pylist()
    full_set = dict(zip(full_ids, _identities(full_cat)))
    mine = dict(zip(cat["object_id"].to_pylist(), _identities(cat)))
    changed = sorted(i for i, ident in mine.items() if full_set.get(i) != ident)
    unchanged = set(mine) - set(changed)
    counts = {"objects": len(mine), "objects_changed": len(changed),
              "objects_unseen": len(full_set) - len(set(full_set) & set(mine))}
    reuse = _reusable(screened, unchanged)
    kept = screened.filter(pa.array(reuse, pa.bool_())) if screened.num_rows else screened
    counts["events_reused"] = kept.num_rows
    if changed:
        res = screen(cat, involving=changed, **screen_args)
        new, excl = res.conjunctions, res.excluded
    else:
        new = CONJUNCTIONS.empty_table()
        ids = pa.array(sorted(mine), pa.int64())
        excl = excluded.filter(pc.is_in(excluded["object_id"], ids)) if excluded.num_rows \
            else excluded
    counts["events_recomputed"] = new.num_rows
    counts["screened_again"] = bool(changed)
    conj = pa.concat_tables([kept.cast(CONJUNCTIONS), new.cast(CONJUNCTIONS)])
    reused = np.r_[np.ones(kept.num_rows, bool), np.zeros(new.num_rows, bool)]
    if conj.num_rows:
        order = pc.sort_indices(conj, sort_keys=[("tca", "ascending"),
                                                 ("object_id_1", "ascending"),
                                                 ("object_id_2", "ascending")])
        conj, reused = conj.take(order), reused[order.to_numpy()]
    counts["events"] = conj.num_rows
    return PartnerView((), cat.cast(CATALOGUE), conj, excl.cast(EXCLUDED), counts, reused)


def _identities(table: pa.Table) -> list[tuple]:
    return list(zip(*(table[c].to_pylist() for c in IDENTITY)))


def _reusable(screened: pa.Table, unchanged: set) -> list[bool]:
    """Events of the full run both of whose objects are unchanged in the view."""
    a = screened["object_id_1"].to_pylist()
    b = screened["object_id_2"].to_pylist()
    return [x in unchanged and y in unchanged for x, y in zip(a, b)]

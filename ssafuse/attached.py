"""Attached objects: vehicles docked to a station are one physical complex, not a conjunction.

Screening finds a docked cargo ship and its station as a *co-located* pair (closer than the
threshold over the whole window, ``co_located``), often with miss 0.000 km and speed 0.000
km/s because both carry the same element set. Such a pair is no close approach: a Pc of 1
for it would be false, and an analyst who sees one stops trusting the report. A co-located
pair is **attached** when

1. one of the two is a known complex's anchor (:data:`KNOWN_COMPLEXES`, the ``[pc]
   complexes`` of the nightly config: ``{name: NORAD number}``), or already attached to it,
   and the pair is within :data:`COMPLEX_MAX_RANGE_KM` (a station's size) at under
   :data:`COMPLEX_MAX_SPEED_M_S`: a docked vehicle whose own element set is not quite the
   station's. Debris or a cubesat drifting near a station (hundreds of metres, tenths of a
   metre per second) is never attached: it keeps its Pc; or
2. it holds still: its range at the closest approach is at most :data:`MAX_RANGE_KM` and its
   relative speed at most :data:`MAX_SPEED_M_S`, as two copies of one element set do.
   Formation flyers are co-located but not attached: in the bundled catalogue of
   2026-03-10 the stillest pair that is not one vehicle, SCS-01 E and IRIDE FM5, is 69 m
   apart at 0.12 m/s, TerraSAR-X and TanDEM-X 57 m at 0.3 m/s; every docked pair there
   (ISS, CSS, MEV-2 on Intelsat 10-02) shares one element set: 0 m, 0 m/s.

The attached pairs join into groups (connected components); a group holding an anchor takes
the complex's name, any other is named ``attached to <lowest NORAD number>``.

An outside object passing a complex is found once per member that carries the complex's
element set: the same TCA and the same miss, a dozen times at the ISS. :func:`repeats` marks
all but one of them (the lowest-numbered member's), so the report lists the pass once.
:func:`ssafuse.assessment.assess` gives attached pairs no Pc and no max Pc; the report lists
them once per group.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["KNOWN_COMPLEXES", "COMPLEX_MAX_RANGE_KM", "COMPLEX_MAX_SPEED_M_S", "MAX_RANGE_KM",
           "MAX_SPEED_M_S", "attached_groups", "attached_mask", "repeats"]

#: Stations whose visiting vehicles dock: name -> NORAD number of the core module.
KNOWN_COMPLEXES = {"ISS": 25544, "CSS (Tiangong)": 48274}
#: Rule 1: a pair with a known complex this close at its closest approach ...
COMPLEX_MAX_RANGE_KM = 0.2
#: ... with a relative speed this small there is attached.
COMPLEX_MAX_SPEED_M_S = 0.1
#: The automatic rule: a co-located pair this close at its closest approach ...
MAX_RANGE_KM = 0.01
#: ... with a relative speed this small there is attached.
MAX_SPEED_M_S = 0.01


def _column(conj: pa.Table, name: str, default) -> list:
    if name not in conj.column_names:
        return [default] * conj.num_rows
    return [default if x is None else x for x in conj[name].to_pylist()]


def attached_groups(conj: pa.Table, complexes: dict[str, int] | None = None, *,
                    max_range_km: float = MAX_RANGE_KM,
                    max_speed_m_s: float = MAX_SPEED_M_S) -> tuple[np.ndarray, list]:
    """``(attached, group)`` per event of ``conj`` (schema ``conjunctions``): a bool array and
    the group's name (None where not attached), by the rules of the module docstring.
    ``complexes``: ``{name: NORAD number}`` (None: :data:`KNOWN_COMPLEXES`; ``{}``: the
    automatic rule only)."""
    complexes = KNOWN_COMPLEXES if complexes is None else complexes
    n = conj.num_rows
    co = np.array(_column(conj, "co_located", False), dtype=bool)
    a = _column(conj, "object_id_1", -1)
    b = _column(conj, "object_id_2", -1)
    miss = np.array(_column(conj, "miss_distance_km", np.inf), dtype=float)
    speed = np.array(_column(conj, "relative_speed_km_s", np.inf), dtype=float) * 1e3
    still = co & (miss <= max_range_km) & (speed <= max_speed_m_s)
    docked = co & (miss <= COMPLEX_MAX_RANGE_KM) & (speed <= COMPLEX_MAX_SPEED_M_S)
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i in np.flatnonzero(still):
        parent[root(a[i])] = root(b[i])
    anchors = {int(v): str(k) for k, v in complexes.items()}
    # rule 1, to a fixed point: a docked pair with one object in an anchor's group
    linked = set(np.flatnonzero(still).tolist())
    grew = True
    while grew:
        grew = False
        held = {root(x) for x in anchors}
        for i in np.flatnonzero(docked):
            if i not in linked and (root(a[i]) in held or root(b[i]) in held):
                parent[root(a[i])] = root(b[i])
                linked.add(int(i))
                grew = True
    members: dict[int, list[int]] = {}
    for x in list(parent):
        members.setdefault(root(x), []).append(x)
    names = {}
    for r, ids in members.items():
        named = sorted(anchors[x] for x in ids if x in anchors)
        names[r] = " + ".join(named) if named else f"attached to {min(ids)}"
    attached = np.zeros(n, dtype=bool)
    group: list = [None] * n
    for i in linked:
        attached[i] = True
        group[i] = names[root(a[i])]
    return attached, group


def repeats(conj: pa.Table) -> np.ndarray:
    """``(n,)`` bool: the events that repeat another event of the same complex: the same
    object (or complex) on the other side, the same TCA to the nanosecond and the same miss
    distance (members sharing one element set); every such event but the one with the
    lowest NORAD numbers is marked. Attached events themselves are never marked."""
    n = conj.num_rows
    out = np.zeros(n, dtype=bool)
    attached = attached_mask(conj)
    if not attached.any():
        return out
    groups = _column(conj, "attached_group", None)
    a = _column(conj, "object_id_1", -1)
    b = _column(conj, "object_id_2", -1)
    member = {}
    for i in np.flatnonzero(attached):
        member[a[i]] = member[b[i]] = groups[i]
    tca = conj["tca"].cast(pa.int64()).to_pylist()
    miss = _column(conj, "miss_distance_km", None)
    first: dict = {}
    for i in np.flatnonzero(~attached):
        if a[i] not in member and b[i] not in member:
            continue
        sides = sorted((f"g:{member[x]}" if x in member else f"o:{x}") for x in (a[i], b[i]))
        key = (*sides, tca[i], miss[i])
        j = first.get(key)
        if j is None:
            first[key] = i
        elif (a[i], b[i]) < (a[j], b[j]):
            out[j], first[key] = True, i
        else:
            out[i] = True
    return out


def attached_mask(conj: pa.Table) -> np.ndarray:
    """``(n,)`` bool: the events whose two objects are one physical complex (``attached``;
    null, or no such column in a run made before it, is False)."""
    if "attached" not in conj.column_names:
        return np.zeros(conj.num_rows, dtype=bool)
    return np.array([bool(x) for x in conj["attached"].to_pylist()], dtype=bool)

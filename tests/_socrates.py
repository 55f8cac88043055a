"""SOCRATES's top 20 of 2026-03-09 (../shared/data/socrates_2026-03-09), screened again from the
element sets SOCRATES used: shared by the max-Pc and SOCRATES-CSV tests."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa

from conftest import shared
from ssafuse import assessment as A
from ssafuse.records import read_file
from ssafuse.screening import screen

SOCRATES = "socrates_2026-03-09"


def socrates_top20() -> tuple[list[dict], pa.Table]:
    """``(SOCRATES's published events, ssafuse's assessed event for each, in that order)``:
    each pair screened over 30 minutes from 15 minutes before SOCRATES's TCA, assessed with
    the default hard-body radius and both element sets (so ``max_pc`` is SOCRATES-style)."""
    base = shared(SOCRATES)
    top20 = json.loads((base / "socrates_top20_maxProb.json").read_text())["conjunctions"]
    rows = []
    for ev in top20:
        el = read_file(base / "top20_pair_gp" / ev["gp_file"].replace(".txt", ".csv"),
                       source="celestrak").elements
        tca = dt.datetime.fromisoformat(ev["tca"].replace("Z", "+00:00"))
        res = screen(el, tca - dt.timedelta(minutes=15), days=1 / 48, workers=1)
        rows.append(A.assess(res.conjunctions, elements=el).slice(0, 1))
    return top20, pa.concat_tables(rows)

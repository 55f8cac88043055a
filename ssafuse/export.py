"""Partner exports: a run's results reduced to what one partner may receive.

``export_run(run_dir, "GBR", out)`` writes, from a finished run (:mod:`ssafuse.nightly`)::

    out/conjunctions.parquet   conjunctions releasable to GBR (schema ``conjunctions``)
    out/catalogue.parquet      catalogue entries releasable to GBR (schema ``catalogue``)
    out/excluded.parquet       excluded objects whose catalogue entry is releasable
    out/cdm/                   the CDMs of the exported conjunctions
    out/report.html            the report rebuilt from the exported records only
    out/summary.txt            its plain-text summary
    out/export.json            partner, run, the rule, counts exported and withheld per table

Every record keeps its own marking (``classification``, ``releasable_to``, ``marking``
columns). What was withheld is counted, never described.

**The release rule** (:func:`ssafuse.markings.exportable`): a record goes to partner ``CODE`` when

* its releasability admits ``CODE`` (:func:`ssafuse.markings.releasable`: ``CODE`` listed, or
  inside a listed tetragraph such as FVEY), or
* it states no releasability caveat at all **and** it is UNCLASSIFIED.

So ``NOFORN`` (an empty list) is never exported, and a classified record without a
``REL TO`` list is withheld: classified information goes to a foreign partner only by an
explicit release decision, which only a ``REL TO`` records. Dissemination controls other than
NOFORN (FOUO, ORCON, ...) are kept in the ``marking`` text and not interpreted. ssafuse is
unclassified software: this rule honours markings as metadata; it is not a security boundary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import markings as mk
from .files import atomic_write_bytes, write_parquet
from .report import write_report
from .runs import event_keys
from .schema import CATALOGUE, CONJUNCTIONS

_CODE = re.compile(r"^[A-Z]{3,4}$")


def check_code(code: str) -> str:
    if not isinstance(code, str) or not _CODE.match(code):
        raise ValueError(f"a partner is a country trigraph or tetragraph such as 'GBR', "
                         f"got {code!r}")
    return code


@dataclass
class ExportResult:
    """What one export wrote: counts per table, exported and withheld, and the report's
    overall marking."""

    release_to: str
    out_dir: Path
    exported: dict = field(default_factory=dict)
    withheld: dict = field(default_factory=dict)
    marking: str = ""


def export_run(run_dir: str | os.PathLike, code: str, out_dir: str | os.PathLike, *,
               with_report: bool = True) -> ExportResult:
    """Write partner ``code``'s export of the finished run in ``run_dir`` to ``out_dir``
    (``with_report=False``: the Parquet files, CDMs and ``export.json`` only)."""
    check_code(code)
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not (run_dir / "conjunctions.parquet").exists():
        raise FileNotFoundError(f"{run_dir} holds no finished run (no conjunctions.parquet)")
    info = json.loads((run_dir / "run.json").read_text())
    res = ExportResult(code, out_dir)
    kept = _export_tables(run_dir, code, out_dir, res)
    _export_cdms(run_dir, out_dir, info.get("cdm_links") or {}, set(event_keys(kept)), res)
    if with_report:
        rep = write_report(run_dir, out_dir, release_to=code)
        res.marking = rep.marking
        res.exported["feeds"] = rep.counts["feeds"]
        res.withheld["feeds"] = rep.counts["feeds_withheld"]
    atomic_write_bytes(out_dir / "export.json", json.dumps({
        "run_id": info["run_id"], "release_to": code, "rule": mk.RELEASE_RULE,
        "exported": res.exported, "withheld": res.withheld, "marking": res.marking,
    }, indent=1, sort_keys=True).encode())
    return res


def _export_tables(run_dir: Path, code: str, out_dir: Path, res: ExportResult) -> pa.Table:
    """The conjunctions, catalogue entries and excluded objects releasable to ``code``,
    written to ``out_dir`` and counted in ``res``; returns the conjunctions kept."""
    conj = pq.read_table(run_dir / "conjunctions.parquet").cast(CONJUNCTIONS)
    kept, res.withheld["conjunctions"] = mk.split(conj, code)
    res.exported["conjunctions"] = kept.num_rows
    write_parquet(out_dir / "conjunctions.parquet", kept)

    cat = pq.read_table(run_dir / "catalogue.parquet").cast(CATALOGUE)
    cat_kept, res.withheld["catalogue"] = mk.split(cat, code)
    res.exported["catalogue"] = cat_kept.num_rows
    write_parquet(out_dir / "catalogue.parquet", cat_kept)

    if (run_dir / "excluded.parquet").exists():
        excl = pq.read_table(run_dir / "excluded.parquet")
        excl_kept, withheld = mk.split_excluded(excl, cat_kept)
        res.exported["excluded"] = excl_kept.num_rows
        res.withheld["excluded"] = withheld
        write_parquet(out_dir / "excluded.parquet", excl_kept)
    return kept


def _export_cdms(run_dir: Path, out_dir: Path, links: dict[str, str], keep_keys: set[str],
                 res: ExportResult) -> None:
    """Copy the CDMs of the exported conjunctions (``keep_keys``) only; stale files of an
    earlier export are removed."""
    wanted = {rel for key, rel in links.items() if key in keep_keys}
    res.exported["cdms"] = len(wanted)
    res.withheld["cdms"] = len(links) - len(wanted)
    for rel in sorted(wanted):
        src, dst = run_dir / rel, out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    if (out_dir / "cdm").exists():
        for p in (out_dir / "cdm").rglob("*"):
            if p.is_file() and str(p.relative_to(out_dir)) not in wanted:
                p.unlink()

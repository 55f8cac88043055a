"""Records to canonical tables: one file read through its format into ``elements`` (or
``observations``, ``cdms``) and ``rejects`` Arrow tables, with provenance and markings.

>>> from ssafuse import read_file
>>> result = read_file("sample_tles/stations.tle", source="celestrak")
>>> result.elements.num_rows, result.rejects.num_rows            # doctest: +SKIP

The format is sniffed through :mod:`ssafuse.formats.registry`; nothing here touches a store
(:mod:`ssafuse.ingestion` writes what this reads).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Iterator

import numpy as np
import pyarrow as pa

from . import markings as mk
from .epochs import future_mask, future_reason
from .errors import FormatError, MarkingError
from .files import open_feed, sha256_file
from .formats.base import Batch, Format, Reject
from .formats.registry import HEAD_BYTES, detect, get_format
from .plausibility import implausible_rows
from .schema import ELEMENT_COLUMNS, SCHEMAS
from .timeutil import ns_from_datetime

__all__ = ["Provenance", "FileResult", "read_file", "iter_file", "file_reject", "to_tables"]

#: Columns the ingest layer adds to every record (provenance and marking).
_ADDED_COLUMNS = frozenset(("source", "source_format", "source_uri", "source_sha256",
                            "source_record", "ingested_at", "classification", "releasable_to",
                            "marking"))
RAW_MAX = 512

@dataclass(frozen=True)
class Provenance:
    """Who sent a file, and the marking its records get when they state none."""

    source: str
    source_format: str
    source_uri: str
    source_sha256: str
    ingested_at_ns: int
    default_marking: mk.Marking


@dataclass
class FileResult:
    """One file read: its accepted elements, its rejects, and the accounting."""

    uri: str
    format: str
    sha256: str
    elements: pa.Table
    rejects: pa.Table
    records_read: int = field(default=0)

    @property
    def accepted(self) -> int:
        return self.elements.num_rows

    @property
    def rejected(self) -> int:
        return self.rejects.num_rows


def _now_ns() -> int:
    return ns_from_datetime(dt.datetime.now(dt.timezone.utc))


def iter_file(path: str | os.PathLike, *, source: str, format: str | None = None,
              marking: str = "UNCLASSIFIED", ingested_at_ns: int | None = None,
              sha256: str | None = None, formats_dirs=None, tally: Counter | None = None,
              ) -> tuple[Format, str, Iterator[tuple[pa.Table, pa.Table]]]:
    """Read a file in batches, in bounded memory.

    Returns ``(format, sha256, batches)`` where ``batches`` yields ``(elements, rejects)``
    Arrow tables in the canonical schemas. ``marking`` is the feed's default marking, applied
    to whatever a record does not state itself; a bad default raises :class:`MarkingError` at
    once, before anything is read. A file that no format recognises raises
    :class:`UnknownFormatError`; a file whose whole structure is broken raises
    :class:`FormatError` from the iterator after yielding what it could. ``formats_dirs``:
    folders of the caller's own feed descriptions (see :mod:`ssafuse.formats.registry`).
    ``tally`` (a :class:`~collections.Counter`) counts ``marking_conflicts``: records whose
    own marking was below the feed's (:func:`ssafuse.markings.lowers`).
    """
    default = mk.parse(marking)
    uri = os.fspath(path)
    with open_feed(uri) as fh:
        head = fh.read(HEAD_BYTES)
    fmt = (get_format(format, formats_dirs) if format
           else detect(head, path=uri, formats_dirs=formats_dirs))
    sha = sha256 or sha256_file(uri)
    prov = Provenance(source, fmt.name, uri, sha,
                      _now_ns() if ingested_at_ns is None else ingested_at_ns, default)

    def batches():
        with open_feed(uri) as fh:
            for batch in fmt.read(fh, uri):
                yield to_tables(batch, prov, tally)

    return fmt, sha, batches()


def read_file(path: str | os.PathLike, *, source: str, format: str | None = None,
              marking: str = "UNCLASSIFIED", ingested_at_ns: int | None = None,
              formats_dirs=None) -> FileResult:
    """Read one file whole into canonical ``elements`` and ``rejects`` tables.

    A file-level :class:`FormatError` (e.g. XML that is not well formed) becomes one reject
    for the whole file (record 0) rather than an exception, so a broken file never stops a
    batch; :class:`UnknownFormatError` and :class:`MarkingError` (a bad default marking) are
    raised, since they are the caller's to fix.
    """
    fmt, sha, batches = iter_file(path, source=source, format=format, marking=marking,
                                  ingested_at_ns=ingested_at_ns, formats_dirs=formats_dirs)
    elements, rejects = [], []
    try:
        for el, rj in batches:
            elements.append(el)
            rejects.append(rj)
    except FormatError as e:
        prov = Provenance(source, fmt.name, os.fspath(path), sha,
                          _now_ns() if ingested_at_ns is None else ingested_at_ns,
                          mk.parse(marking))
        rejects.append(file_reject(prov, e, fmt.table))
    el = pa.concat_tables(elements) if elements else SCHEMAS[fmt.table].empty_table()
    rj = pa.concat_tables(rejects) if rejects else SCHEMAS["rejects"].empty_table()
    return FileResult(os.fspath(path), fmt.name, sha, el, rj, el.num_rows + rj.num_rows)


def file_reject(prov: Provenance, error: Exception, table: str = "elements") -> pa.Table:
    """A one-row rejects table for a file refused as a whole (record 0)."""
    raw = (error.got if isinstance(error, FormatError) and error.got else "")[:RAW_MAX]
    reason = error.message if isinstance(error, FormatError) else str(error)
    return _rejects_table([Reject(0, raw, reason)], prov, table)


def _rejects_table(rejects: list[Reject], prov: Provenance, table: str) -> pa.Table:
    n = len(rejects)
    return pa.Table.from_pydict({
        "source": [prov.source] * n,
        "source_format": [prov.source_format] * n,
        "source_uri": [prov.source_uri] * n,
        "source_sha256": [prov.source_sha256] * n,
        "source_record": [r.record for r in rejects],
        "table": [table] * n,
        "raw": [r.raw[:RAW_MAX] for r in rejects],
        "reason": [r.reason for r in rejects],
        "field": [r.field for r in rejects],
        "ingested_at": pa.array(np.full(n, prov.ingested_at_ns, dtype="int64")).cast(
            SCHEMAS["rejects"].field("ingested_at").type),
    }, schema=SCHEMAS["rejects"])


def _columns_of(batch: Batch, own: tuple[str, ...]) -> dict[str, list]:
    """The batch's accepted records as columns (``own`` plus ``source_record``, ``marking``
    and ``_raw``), record dicts first, then the adapter's own columns."""
    keys = (*own, "source_record", "marking", "_raw")
    records = batch.records
    try:  # adapters fill every column (None where absent): transpose in one pass
        columns = (dict(zip(keys, map(list, zip(*map(itemgetter(*keys), records)))))
                   if records else {k: [] for k in keys})
    except KeyError:
        columns = {k: [r.get(k) for r in records] for k in keys}
    if batch.columns:
        n = len(batch.columns["source_record"])
        for k in keys:
            extra = batch.columns.get(k)
            columns[k].extend([None] * n if extra is None else
                              extra.tolist() if isinstance(extra, np.ndarray) else extra)
    return columns


#: Characters no text field may hold, whatever the format: C0 and C1 controls and DEL (a
#: newline in a name would forge a keyword in a KVN message; NUL, ESC and CR corrupt
#: reports and terminals), line and paragraph separators, and the bidirectional overrides
#: that make a text display as something else.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

#: Per table, the time column whose value cannot be later than the ingest time
#: (:mod:`ssafuse.epochs`): an element set's epoch, an observation's time.
_NOT_FUTURE = {"elements": "epoch", "observations": "time"}


def control_character(text: str) -> str | None:
    """The first character of ``text`` no text field may hold (:data:`CONTROL_CHARACTERS`),
    as ``U+XXXX``; ``None`` when there is none."""
    hit = CONTROL_CHARACTERS.search(text)
    return None if hit is None else f"U+{ord(hit.group()):04X}"


def _invalid_rows(columns: dict[str, list], own: tuple[str, ...], table: str,
                  prov: Provenance) -> dict[int, tuple[str, str]]:
    """The one validation every adapter's records pass, whatever the format: ``{row: (field,
    reason)}`` for text holding a control character, for an element set or observation
    later than the ingest time (beyond :data:`ssafuse.epochs.FUTURE_TOLERANCE_DAYS`), and for
    an observation outside the physical bounds of :mod:`ssafuse.plausibility`."""
    bad: dict[int, tuple[str, str]] = {}
    schema = SCHEMAS[table]
    for name in own:
        if not pa.types.is_string(schema.field(name).type):
            continue
        values = columns[name]
        if not CONTROL_CHARACTERS.search("".join(v for v in values if isinstance(v, str))):
            continue  # the common case: one search over the whole column
        for i, v in enumerate(values):
            code = isinstance(v, str) and control_character(v)
            if code and i not in bad:
                bad[i] = (name, f"{name} holds the control character {code}: text fields "
                                f"must be one line of printable text")
    when = _NOT_FUTURE.get(table)
    if when in columns and columns[when]:
        times = np.array([t if t is not None else np.iinfo(np.int64).min
                          for t in columns[when]], dtype=np.int64)
        for i in np.flatnonzero(future_mask(times, prov.ingested_at_ns)):
            bad.setdefault(int(i), (when, future_reason(int(times[i]), prov.ingested_at_ns)))
    if table == "observations":
        for i, hit in implausible_rows(columns).items():
            bad.setdefault(i, hit)
    return bad


def _drop_rows(columns: dict[str, list], bad: dict[int, tuple[str, str]],
               rejects: list[Reject]) -> dict[str, list]:
    """``columns`` without the rows of ``bad``, each added to ``rejects`` with its reason."""
    if not bad:
        return columns
    for i, (name, reason) in sorted(bad.items()):
        raw = columns["_raw"][i] or str(columns[name][i])
        rejects.append(Reject(columns["source_record"][i], raw[:RAW_MAX], reason, name))
    keep = [i for i in range(len(columns["source_record"])) if i not in bad]
    return {k: [v[i] for i in keep] for k, v in columns.items()}


def to_tables(batch: Batch, prov: Provenance,
              tally: Counter | None = None) -> tuple[pa.Table, pa.Table]:
    """Canonical ``(rows, rejects)`` tables of one adapter batch (rows in the schema of
    ``batch.table``): markings parsed (a record with an unparseable marking is rejected, never
    guessed; the feed's marking is a floor, :func:`ssafuse.markings.apply_default`),
    provenance added. ``tally["marking_conflicts"]`` counts the records whose own marking
    was below the feed's."""
    rejects = list(batch.rejects)
    schema = SCHEMAS[batch.table]
    # The adapter's columns: every field of the table's schema that is not provenance or
    # marking (for elements, exactly ELEMENT_COLUMNS); times arrive as int nanoseconds.
    own = ELEMENT_COLUMNS if batch.table == "elements" else tuple(
        name for name in schema.names if name not in _ADDED_COLUMNS)
    columns = _columns_of(batch, own)
    columns = _drop_rows(columns, _invalid_rows(columns, own, batch.table, prov), rejects)
    # Each distinct marking text is parsed once; a batch rarely holds more than a few.
    parsed: dict = {None: (prov.default_marking, str(prov.default_marking))}
    for text in set(columns["marking"]):
        if text not in parsed:
            try:
                parsed[text] = mk.apply_default(text, prov.default_marking)
            except MarkingError as e:
                parsed[text] = e
    if any(isinstance(v, MarkingError) for v in parsed.values()):
        keep = []
        for i, text in enumerate(columns["marking"]):
            hit = parsed[text]
            if isinstance(hit, MarkingError):
                raw = columns["_raw"][i] or str(text)
                rejects.append(Reject(columns["source_record"][i], raw[:RAW_MAX],
                                      f"unparseable marking: {hit}", "marking"))
            else:
                keep.append(i)
        columns = {k: [v[i] for i in keep] for k, v in columns.items()}
    marks = [parsed[t] for t in columns["marking"]]
    n = len(marks)
    if tally is not None:
        lowered = {t for t in parsed if t is not None and not isinstance(parsed[t], MarkingError)
                   and mk.lowers(t, prov.default_marking)}
        if lowered:
            tally["marking_conflicts"] += sum(t in lowered for t in columns["marking"])
    if "obs_id" in columns:  # observations: the feed's own id, else source:sha:record
        stem = f"{prov.source}:{prov.source_sha256[:12]}:"
        columns["obs_id"] = [o if o is not None else stem + str(r)
                             for o, r in zip(columns["obs_id"], columns["source_record"])]
    for name in own:
        ftype = schema.field(name).type
        if pa.types.is_timestamp(ftype):
            columns[name] = pa.array(np.array(columns[name], dtype="int64")).cast(ftype) \
                if n else pa.array([], ftype)
    columns.update({
        "source": [prov.source] * n,
        "source_format": [prov.source_format] * n,
        "source_uri": [prov.source_uri] * n,
        "source_sha256": [prov.source_sha256] * n,
        "source_record": columns["source_record"],
        "ingested_at": pa.array(np.full(n, prov.ingested_at_ns, dtype="int64")).cast(
            schema.field("ingested_at").type),
        "classification": [m.classification for m, _ in marks],
        "releasable_to": [None if m.releasable_to is None else list(m.releasable_to)
                          for m, _ in marks],
        "marking": [t for _, t in marks],
    })
    del columns["_raw"]
    elements = pa.Table.from_pydict(columns, schema=schema)
    if batch.records and batch.columns:  # keep file order
        elements = elements.sort_by("source_record")
    rejects.sort(key=lambda r: r.record)
    return elements, _rejects_table(rejects, prov, batch.table)

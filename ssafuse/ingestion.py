"""Files to the store: the ingest pipeline.

Each file is hashed, its format sniffed (:mod:`ssafuse.formats.registry`), its records turned
into canonical tables (:mod:`ssafuse.records`) and written as one Parquet part per table into
``STORE/<table>/source=<feed>/ingest_date=<day>/``; its ledger entry is written last, so a
file already in the ledger (same SHA-256 and source) changes nothing and a killed ingest is
redone whole. Every record is accepted or rejected with its reason: ``read == accepted +
rejected`` per file. A file no format recognises is one reject naming every format tried.

On Dask (:func:`ingest_on_dask`) each file is one task running :func:`ingest_file` itself, so
the reports, rows and rejects are those of a local run.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence

from .errors import FormatError, UnknownFormatError
from .files import expand_inputs, sha256_file
from .formats.registry import known_extension
from .markings import active_equivalences, default_equivalences, use_equivalences
from .markings import parse as parse_marking
from .records import Provenance, file_reject, iter_file
from .store import Store, check_source
from .timeutil import ns_from_datetime

__all__ = ["ingest", "ingest_file", "ingest_on_dask", "FileReport", "IngestReport"]


@dataclass
class FileReport:
    """What ingesting one file did. ``read == accepted + rejected`` always."""

    uri: str
    source: str
    format: str | None
    sha256: str | None
    status: str  # "ingested" | "re-marked" | "already-ingested" | "refused"
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    message: str = ""
    seconds: float = 0.0
    #: records whose own marking was below the feed's (the feed's was kept: it is a floor)
    marking_conflicts: int = 0


@dataclass
class IngestReport:
    """One ingest run: a report per file, and the manifest written for it."""

    files: list[FileReport] = field(default_factory=list)
    manifest: str | None = None

    @property
    def accepted(self) -> int:
        return sum(f.accepted for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    @property
    def refused_files(self) -> list[FileReport]:
        return [f for f in self.files if f.status == "refused"]


def ingest(store: Store | str | os.PathLike, inputs: Iterable[str | os.PathLike], *,
           source: str, format: str | None = None, marking: str = "UNCLASSIFIED",
           now: dt.datetime | None = None, progress=None, dask=None,
           formats_dirs=None, file_progress: Callable[[int, int], None] | None = None,
           record_progress: Callable[[str, int], None] | None = None) -> IngestReport:
    """Ingest files, folders and globs (``inputs``) from one feed into ``store`` (a
    :class:`~ssafuse.store.Store`, a folder or an fsspec URL).

    >>> report = ingest("store", ["sample_tles/"], source="celestrak")   # doctest: +SKIP
    >>> report.accepted, report.rejected                                # doctest: +SKIP

    ``source`` names the feed (letters, digits, ``._-``); ``format`` forces a format
    (default: sniffed per file); ``marking`` is the feed's default marking, applied to what
    each record does not state; ``now`` is the ingest time (default: the clock).
    A file that cannot be read, or that no format recognises, is refused as a whole: one
    row in ``rejects`` with the reason, and the run goes on with the next file.
    Returns an :class:`IngestReport` and writes a manifest under ``_manifests/``.

    ``dask`` (a scheduler address, ``"local[:N]"`` or a ``distributed.Client``) reads and
    parses the files on a Dask cluster, each file one task that writes its own parts and
    ledger entry (so the store must be one the workers reach: a shared path or an
    ``s3://`` URL); the reports, the rejects and the manifest are the same as a local
    run's (see :func:`ingest_on_dask`). ``formats_dirs``: folders of the caller's own feed
    descriptions (see :mod:`ssafuse.formats.registry`).

    Progress, for whoever shows it (nothing is printed here): ``progress(report)`` hears of
    each file's :class:`FileReport` in order; ``file_progress(done, total)`` is called once
    with ``done`` 0 and after each file (``total`` files in all); ``record_progress(uri,
    read)`` as a file is read, after each batch of its records (``read`` so far; local runs
    only: a Dask worker reports nothing until its file is done).
    """
    store = store if isinstance(store, Store) else Store(store)
    check_source(source)
    parse_marking(marking)  # a bad default marking is the caller's error: fail before I/O
    now = now or dt.datetime.now(dt.timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    now_ns = ns_from_datetime(now)
    day = now.astimezone(dt.timezone.utc).date().isoformat()
    started = time.perf_counter()
    report = IngestReport()
    uris = expand_inputs(inputs, accept=known_extension(formats_dirs))
    options = dict(source=source, format=format, marking=marking, now_ns=now_ns, day=day,
                   formats_dirs=formats_dirs)
    if file_progress is not None:
        file_progress(0, len(uris))

    def done(rep: FileReport, k: int) -> None:  # the k-th file (from 1) is done
        if progress is not None:
            progress(rep)
        if file_progress is not None:
            file_progress(k, len(uris))

    if dask is not None:
        seen: list[FileReport] = []

        def on_report(rep: FileReport) -> None:  # in the order given
            seen.append(rep)
            done(rep, len(seen))

        report.files = ingest_on_dask(dask, store, uris, progress=on_report, **options)
    else:
        for k, uri in enumerate(uris, 1):
            report.files.append(ingest_file(store, uri, record_progress=record_progress,
                                            **options))
            done(report.files[-1], k)
    report.manifest = str(store.write_manifest("ingest", now, started, {
        "source": source, "format": format, "marking": marking,
    }, [asdict(f) for f in report.files]))
    return report

def _re_mark(prior: dict | None, feed_marking: str, table: str) -> str | None:
    """Why a file already in the ledger must be marked again (``None``: it need not): the
    same file under another marking, or read with another equivalence table, is never kept
    silently under the old one. A ledger entry without a marking predates this."""
    if prior is None:
        return None
    if prior.get("marking") != feed_marking:
        return (f"re-marked: ingested before as {prior.get('marking') or 'unrecorded'}, "
                f"now {feed_marking}")
    if prior.get("equivalences", default_equivalences().digest) != table:
        return (f"re-marked: ingested before as {feed_marking}, now {feed_marking} "
                "(the marking equivalence table changed)")
    return None


def ingest_file(store: Store, uri: str, *, source: str, format: str | None, marking: str,
                now_ns: int, day: str, sha: str | None = None, formats_dirs=None,
                record_progress: Callable[[str, int], None] | None = None) -> FileReport:
    """Ingest one file into ``store`` (``sha``: its SHA-256 when the caller already has it):
    its rows and rejects as one part each, then its ledger entry. A file already in the
    ledger is left alone; a killed earlier attempt's parts are replaced, never doubled; two
    ingests of one file at once do it once (:meth:`~ssafuse.store.Store.file_lock`). Only
    regular files are read (:func:`ssafuse.files.open_input`). Raises :class:`OSError` when
    the store cannot be written; a file that cannot be read is refused in the report.
    ``record_progress(uri, read)``: called as the file is read (records read so far)."""
    t0 = time.perf_counter()
    try:
        sha = sha or sha256_file(uri)
    except OSError as e:
        return FileReport(uri, source, format, None, "refused",
                          message=f"cannot read file: {e.strerror or e}")
    with store.file_lock(source, sha):
        rep = _ingest_locked(store, uri, source=source, format=format, marking=marking,
                             now_ns=now_ns, day=day, sha=sha, formats_dirs=formats_dirs,
                             record_progress=record_progress)
    rep.seconds = round(time.perf_counter() - t0, 6)
    return rep


def _ingest_locked(store: Store, uri: str, *, source: str, format: str | None, marking: str,
                   now_ns: int, day: str, sha: str, formats_dirs,
                   record_progress=None) -> FileReport:
    feed_marking = str(parse_marking(marking))
    table = active_equivalences().digest  # how the records' own markings are read
    prior = store.ledger_entry(source, sha)
    re_mark = _re_mark(prior, feed_marking, table)
    if prior is not None and re_mark is None and (
            prior.get("status") == "ingested" or not format or format == prior.get("format")):
        return FileReport(uri, source, prior.get("format"), sha, "already-ingested",
                          message=f"already ingested from {prior.get('uri')} at "
                                  f"{prior.get('ingested_at')}")
    if re_mark is not None:
        # First say in the ledger that no marking holds for the file's parts: a re-mark
        # killed once they are replaced is then re-marked again by the next ingest, under
        # whatever marking it asks for, never taken for "already ingested"
        store.write_ledger_entry(source, sha, {**prior, "marking": None,
                                               "status": "re-marking"})
    store.remove_parts(source, sha)  # leftovers of a killed ingest of this same file
    rep = FileReport(uri, source, format, sha, "ingested" if re_mark is None else "re-marked",
                     message=re_mark or "")
    tally: Counter = Counter()
    _write_parts(store, rep, day, Provenance(source, format or "unknown", uri, sha, now_ns,
                                             parse_marking(marking)),
                 formats_dirs=formats_dirs, tally=tally, record_progress=record_progress)
    rep.read = rep.accepted + rep.rejected
    rep.marking_conflicts = tally["marking_conflicts"]
    if rep.marking_conflicts:
        conflict = (f"{rep.marking_conflicts} records stated a marking below the feed's "
                    f"{feed_marking}; the feed's was kept")
        rep.message = "; ".join(filter(None, [rep.message, conflict]))
    store.write_ledger_entry(source, sha, {
        "uri": uri, "source": source, "sha256": sha, "format": rep.format,
        "status": "ingested" if rep.status == "re-marked" else rep.status,
        "read": rep.read, "accepted": rep.accepted, "rejected": rep.rejected,
        "ingested_at": day, "marking": feed_marking, "equivalences": table,
        "marking_conflicts": rep.marking_conflicts,
    })
    return rep


def _write_parts(store: Store, rep: FileReport, day: str, prov: Provenance, *, formats_dirs,
                 tally: Counter, record_progress=None) -> None:
    """Read the file into its parts (rows, rejects) and commit them; counts into ``rep``.

    A file whose reading fails as a whole keeps what was read before, plus one reject (record
    0) with the reason; one that yields nothing before failing (no format recognised, XML
    refused for its entities, a file that cannot be read) is refused. A failure to write the
    store is raised, with nothing committed."""
    writers = {"rejects": store.part_writer("rejects", prov.source, day, rep.sha256)}
    try:
        try:
            try:
                fmt, _, batches = iter_file(
                    rep.uri, source=prov.source, format=rep.format,
                    marking=str(prov.default_marking), ingested_at_ns=prov.ingested_at_ns,
                    sha256=rep.sha256, formats_dirs=formats_dirs, tally=tally)
            except (FormatError, OSError, UnicodeError) as e:
                raise _ReadFailed(e) from e
            rep.format = fmt.name
            batches = iter(batches)
            rows_writer = writers.setdefault(
                fmt.table, store.part_writer(fmt.table, prov.source, day, rep.sha256))
            for elements, rejects in _reading(batches):
                rows_writer.write(elements)
                writers["rejects"].write(rejects)
                rep.accepted += elements.num_rows
                rep.rejected += rejects.num_rows
                if record_progress is not None:
                    record_progress(rep.uri, rep.accepted + rep.rejected)
        except _ReadFailed as failed:
            e = failed.error
            # The file as a whole cannot be read: one reject for it, keep what was read.
            reason = e.message if isinstance(e, FormatError) else f"cannot read file: {e}"
            rep.format = rep.format or "unknown"
            if isinstance(e, UnknownFormatError) or rep.accepted + rep.rejected == 0:
                rep.status = "refused"
            rep.message = "; ".join(filter(None, [rep.message, reason]))
            writers["rejects"].write(file_reject(
                Provenance(prov.source, rep.format, rep.uri, rep.sha256, prov.ingested_at_ns,
                           prov.default_marking), e))
            rep.rejected += 1
        for w in writers.values():
            w.commit()
    except BaseException:
        for w in writers.values():
            w.abort()
        raise


class _ReadFailed(Exception):
    """Reading the input failed (not writing the store): carries the reader's error."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _reading(batches):
    """``batches``, with a failure to read the input raised as :class:`_ReadFailed`, so that
    it is never confused with a failure to write the store."""
    while True:
        try:
            got = next(batches)
        except StopIteration:
            return
        except (FormatError, OSError, UnicodeError) as e:
            raise _ReadFailed(e) from e
        yield got


# -- on a Dask cluster -----------------------------------------------------------------------

def _sha_or_none(uri: str) -> str | None:
    try:
        return sha256_file(uri)
    except OSError:
        return None  # the ingest task reports it, as a local run does


def _ingest_task(store: Store, uri: str, sha: str | None, options: dict) -> FileReport:
    options = dict(options)
    use_equivalences(options.pop("equivalences"))  # the client's marking table, on the worker
    return ingest_file(store, uri, sha=sha, **options)


def ingest_on_dask(dask, store: Store, uris: Sequence[str], *, progress=None,
                   **options) -> list[FileReport]:
    """Ingest ``uris`` into ``store`` on a Dask cluster (:func:`ssafuse.cluster.client_for`),
    one task per file. Returns the :class:`FileReport` of each file in the order given
    (``progress(report)`` is called in that order), the same reports a local run gives.

    The files are hashed first (one task each) so that two copies of one file in a run are
    ingested once, as in a local run, where the second finds the ledger entry of the first.
    A task lost with its worker is run again by the scheduler: an ingest removes the parts a
    killed ingest of the same file left and writes its ledger entry last, so a retry neither
    loses nor doubles rows. The store must be one every worker reaches."""
    from .cluster import client_for  # dask is optional: imported only when asked for

    uris = list(uris)
    with client_for(dask) as client:
        shas = client.gather(client.map(_sha_or_none, uris, pure=False))
        seen: set[str] = set()
        futures = {}
        for k, (uri, sha) in enumerate(zip(uris, shas)):
            if sha is not None and sha in seen:
                continue  # a second copy in this run: after the first, below
            if sha is not None:
                seen.add(sha)
            futures[k] = client.submit(_ingest_task, store, uri, sha,
                                       dict(options, equivalences=active_equivalences()),
                                       pure=False)
        reports = []
        for k, uri in enumerate(uris):
            if k in futures:
                rep = futures[k].result()
            else:  # the first copy's ledger entry answers, as in a local run
                rep = ingest_file(store, uri, sha=shas[k], **options)
            reports.append(rep)
            if progress is not None:
                progress(rep)
    return reports

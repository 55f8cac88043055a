"""The store: a directory of Parquet files that DuckDB, pandas, Spark and Dask read as they are.

Layout (Hive-style partitions; partition columns live in the path, not in the files)::

    STORE/
      elements/source=spacetrack/ingest_date=2026-11-30/part-<sha256[:16]>.parquet
      rejects/source=spacetrack/ingest_date=2026-11-30/part-<sha256[:16]>.parquet
      catalogue/catalogue.parquet
      _ingested/<source>/<sha256>.json       one ledger entry per file ingested
      _manifests/ingest-<time>-<id>.json      one manifest per run (inputs, counts, versions)

Writes are atomic: each file is written under a hidden temporary name (``.name.tmp``, which
neither ``*.parquet`` globs nor ``pyarrow.dataset`` pick up), flushed, then renamed into place,
so a killed run never leaves a half-written file visible. The ledger entry of a file is
written last; re-ingesting a file already in the ledger (same SHA-256 and source) changes
nothing, and a file whose ingest was killed before its ledger entry is ingested again with its
earlier parts replaced, never doubled.

A store may also live on object storage, named by an fsspec URL (``s3://bucket/prefix``,
``gs://...``, ``abfs://...``; credentials and endpoint from the environment or
``storage_options``), so that Dask workers on other machines read and write the same store.
Every operation goes through one fsspec filesystem (``Store.fs``); only the commit of a written
file differs. On a local disk it is the rename above. Object stores have no rename (S3's
"rename" is a copy and a delete), but a PUT of a whole object is atomic: readers see the old
object or the new one, never part of one, and a multipart upload only appears when it is
completed. So on object storage each file is built whole in memory and stored with one put
(``fs.pipe_file``) under its final key: a killed run leaves nothing visible (at worst an
unfinished multipart upload, which a bucket lifecycle rule cleans up), and the ledger entry is
still written last.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import json
import os
import posixpath
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from . import __version__
from .errors import FormatError, StoreError, UnknownFormatError
from .ingest import Provenance, file_reject, iter_file, sha256_file
from .markings import parse as parse_marking
from .schema import PARTITIONS, SCHEMAS, TABLES

_SOURCE_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass
class FileReport:
    """What ingesting one file did. ``read == accepted + rejected`` always."""

    uri: str
    source: str
    format: str | None
    sha256: str | None
    status: str  # "ingested" | "already-ingested" | "refused"
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    message: str = ""
    seconds: float = 0.0


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


def _fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk, where the platform allows."""
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write_bytes(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` through a hidden temporary file and a rename."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(final)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def write_parquet(final: Path, table: pa.Table) -> None:
    """Write one Arrow table to ``final`` atomically (hidden temporary file, then rename)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(final)
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


class _PartWriter:
    """Streams batches into one hidden Parquet file; :meth:`commit` renames it into place.

    With ``fs`` (a store on object storage) the file is built in memory and :meth:`commit`
    stores it with one atomic put under ``final``; :meth:`abort` leaves nothing behind."""

    def __init__(self, final: Path | str, schema: pa.Schema, fs=None):
        self.final = final if fs is not None else Path(final)
        self.schema = schema
        self.fs = fs
        self.tmp: Path | None = None
        self.sink = None
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self.writer is None:
            if self.fs is None:
                self.final.parent.mkdir(parents=True, exist_ok=True)
                self.tmp = _tmp_name(self.final)
                self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
            else:
                self.sink = pa.BufferOutputStream()
                self.writer = pq.ParquetWriter(self.sink, self.schema, compression="zstd")
        self.writer.write_table(table.select(self.schema.names).cast(self.schema))
        self.rows += table.num_rows

    def commit(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        if self.fs is not None:
            self.fs.pipe_file(self.final, self.sink.getvalue().to_pybytes())
            return
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.final)
        _fsync_dir(self.final.parent)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)


def _file_schema(table: str) -> pa.Schema:
    """The schema of the Parquet files of ``table``: canonical, less its partition columns."""
    schema = SCHEMAS[table]
    for key in PARTITIONS.get(table, ()):
        if key in schema.names:
            schema = schema.remove(schema.get_field_index(key))
    return schema


def expand_inputs(inputs: Iterable[str | os.PathLike], accept=None) -> list[str]:
    """Files named by paths, folders and globs, in the order given, each once.

    A folder gives every file below it that ``accept(path)`` admits, sorted, hidden files
    skipped; by default, every file whose extension some format reads (``.tle``, ``.json``,
    ``.xml``, ... as ``ssafuse formats`` lists), so a README or a script beside the feeds is
    not mistaken for one. Paths and globs are taken as they are; a name that matches nothing
    is kept so the caller reports it as unreadable."""
    if accept is None:
        from .ingest import formats

        known = tuple({ext.lower() for f in formats() for ext in f.extensions})

        def accept(path: str) -> bool:
            return path.lower().endswith(known)

    out: list[str] = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out.extend(p for p in (os.path.join(root, f) for f in sorted(files)
                                       if not f.startswith(".")) if accept(p))
        elif any(c in item for c in "*?["):
            out.extend(sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p)))
        else:
            out.append(item)
    return list(dict.fromkeys(out))


def is_url(root) -> bool:
    """Whether a store root is an fsspec URL (``s3://bucket/prefix``) rather than a local path."""
    return isinstance(root, str) and "://" in root and not root.startswith("file://")


class Store:
    """A Parquet store rooted at a directory (created on first write), or at an fsspec URL
    such as ``s3://bucket/prefix`` (``storage_options`` go to the filesystem, e.g.
    ``{"endpoint_url": ...}`` for an S3-compatible server).

    >>> store = Store("store")
    >>> report = store.ingest(["sample_tles/"], source="celestrak")   # doctest: +SKIP
    >>> store.table("elements").num_rows                               # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike, *, storage_options: dict | None = None):
        self.storage_options = dict(storage_options or {})
        self.local = not is_url(root)
        if self.local:
            root = os.fspath(root)
            self.root: Path | str = Path(root[7:] if root.startswith("file://") else root)
            self.fs = fsspec.filesystem("file")
        else:
            self.root = root.rstrip("/")
            # other processes (Dask workers, other machines) write here too: list afresh
            self.fs, _ = fsspec.core.url_to_fs(
                self.root, **{"use_listings_cache": False, **self.storage_options})

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def __reduce__(self):
        # rebuilt from its root where it is unpickled (a Dask worker): one filesystem per process
        return (_rebuild_store, (str(self.root), self.storage_options))

    def _loc(self, *parts: str) -> str:
        """A location under the root, as the store's filesystem takes it."""
        return posixpath.join(str(self.root), *parts)

    def _out(self, loc: str) -> Path | str:
        """A location as the API returns it: a ``Path`` locally, a URL on object storage."""
        return Path(loc) if self.local else loc

    def exists(self) -> bool:
        """Whether anything was written to the store yet."""
        return self.fs.exists(str(self.root))

    def _write_bytes(self, loc: str, data: bytes) -> None:
        if self.local:
            atomic_write_bytes(Path(loc), data)
        else:  # one PUT of the whole object: atomic (see the module docstring)
            self.fs.pipe_file(loc, data)

    def _write_parquet(self, loc: str, table: pa.Table) -> None:
        if self.local:
            write_parquet(Path(loc), table)
        else:
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            self.fs.pipe_file(loc, sink.getvalue().to_pybytes())

    def _read_json(self, loc: str) -> dict:
        return json.loads(self.fs.cat_file(loc))

    # -- reading ---------------------------------------------------------------------------
    def path(self, table: str) -> Path | str:
        """Where a table's files are: a ``Path`` for a local store, a URL on object storage."""
        if table not in TABLES:
            raise StoreError(f"no table {table!r}; tables are {', '.join(TABLES)}")
        return self._out(self._loc(table))

    def dataset(self, table: str) -> ds.Dataset:
        """A ``pyarrow.dataset`` over a table's files, partition columns included."""
        keys = PARTITIONS.get(table, ())
        schema = _file_schema(table)
        for key in keys:
            schema = schema.append(pa.field(key, pa.string()))
        part = (ds.partitioning(pa.schema([(k, pa.string()) for k in keys]), flavor="hive")
                if keys else None)
        loc = self.fs._strip_protocol(self._loc(table))
        return ds.dataset(loc, format="parquet", partitioning=part, schema=schema,
                          filesystem=self.fs)

    def table(self, table: str, columns: list[str] | None = None, filter=None) -> pa.Table:
        """A whole table in its canonical schema (empty when nothing was written yet).
        ``columns`` selects columns; ``filter`` is a ``pyarrow.compute`` expression."""
        schema = SCHEMAS[table]
        self.path(table)  # checks the name
        if not any(p.endswith(".parquet") for p in self.fs.find(self._loc(table))):
            out = schema.empty_table()
            return out.select(columns) if columns else out
        data = self.dataset(table).to_table(columns=columns or schema.names, filter=filter)
        target = pa.schema([schema.field(n) for n in data.column_names])
        return data.cast(target)

    # -- writing ---------------------------------------------------------------------------
    def write(self, table: str, data: pa.Table, name: str) -> Path | str:
        """Write a whole unpartitioned table (e.g. ``catalogue``) atomically as ``name``."""
        self.path(table)  # checks the name
        final = self._loc(table, name)
        self._write_parquet(final, data.cast(SCHEMAS[table]) if table in SCHEMAS else data)
        return self._out(final)

    def _ledger(self, source: str, sha: str) -> str:
        return self._loc("_ingested", source, f"{sha}.json")

    def _part(self, table: str, source: str, day: str, sha: str) -> str:
        return self._loc(table, f"source={source}", f"ingest_date={day}",
                         f"part-{sha[:16]}.parquet")

    def _remove_parts(self, source: str, sha: str) -> None:
        for table in [t for t, keys in PARTITIONS.items() if keys == ("source", "ingest_date")]:
            for pattern in (f"part-{sha[:16]}.parquet", f".part-{sha[:16]}.parquet.*.tmp"):
                for p in self.fs.glob(self._loc(table, f"source={source}", "*", pattern)):
                    self.fs.rm_file(p)

    def ingest(self, inputs: Iterable[str | os.PathLike], *, source: str,
               format: str | None = None, marking: str = "UNCLASSIFIED",
               now: dt.datetime | None = None, progress=None, dask=None) -> IngestReport:
        """Ingest files, folders and globs from one feed into the store.

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
        run's (see :func:`ssafuse.distributed.ingest_files`).
        """
        if not source or set(source) - _SOURCE_OK:
            raise ValueError(f"source name {source!r} must be letters, digits, '.', '_' or '-'")
        parse_marking(marking)  # a bad default marking is the caller's error: fail before I/O
        now = now or dt.datetime.now(dt.timezone.utc)
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware (UTC)")
        now_ns = int(now.timestamp()) * 10**9 + now.microsecond * 1000
        day = now.astimezone(dt.timezone.utc).date().isoformat()
        started = time.perf_counter()
        report = IngestReport()
        if dask is not None:
            from .distributed import ingest_files

            report.files = ingest_files(dask, self, expand_inputs(inputs), source=source,
                                        format=format, marking=marking, now_ns=now_ns,
                                        day=day, progress=progress)
        else:
            for uri in expand_inputs(inputs):
                rep = self._ingest_file(uri, source=source, format=format, marking=marking,
                                        now_ns=now_ns, day=day)
                report.files.append(rep)
                if progress is not None:
                    progress(rep)
        report.manifest = str(self._write_manifest("ingest", now, started, {
            "source": source, "format": format, "marking": marking,
        }, [asdict(f) for f in report.files]))
        return report

    def _ingest_file(self, uri: str, *, source: str, format: str | None, marking: str,
                     now_ns: int, day: str, sha: str | None = None) -> FileReport:
        """Ingest one file (``sha``: its SHA-256 when the caller already has it)."""
        t0 = time.perf_counter()
        try:
            sha = sha or sha256_file(uri)
        except OSError as e:
            return FileReport(uri, source, format, None, "refused",
                              message=f"cannot read file: {e.strerror or e}")
        ledger = self._ledger(source, sha)
        if self.fs.exists(ledger):
            prior = self._read_json(ledger)
            if prior.get("status") == "ingested" or not format or format == prior.get("format"):
                return FileReport(uri, source, prior.get("format"), sha, "already-ingested",
                                  message=f"already ingested from {prior.get('uri')} at "
                                          f"{prior.get('ingested_at')}")
        self._remove_parts(source, sha)  # leftovers of a killed ingest of this same file
        fs = None if self.local else self.fs
        writers = {"rejects": _PartWriter(self._part("rejects", source, day, sha),
                                          _file_schema("rejects"), fs)}
        rep = FileReport(uri, source, format, sha, "ingested")
        try:
            try:
                fmt, _, batches = iter_file(uri, source=source, format=format, marking=marking,
                                            ingested_at_ns=now_ns, sha256=sha)
                rep.format = fmt.name
                rows_writer = writers.setdefault(fmt.table, _PartWriter(
                    self._part(fmt.table, source, day, sha), _file_schema(fmt.table), fs))
                for elements, rejects in batches:
                    rows_writer.write(elements)
                    writers["rejects"].write(rejects)
                    rep.accepted += elements.num_rows
                    rep.rejected += rejects.num_rows
            except (FormatError, OSError, UnicodeError) as e:
                # The file as a whole cannot be read: one reject for it, keep what was read.
                reason = e.message if isinstance(e, FormatError) else f"cannot read file: {e}"
                rep.format = rep.format or "unknown"
                if isinstance(e, UnknownFormatError):
                    rep.status = "refused"
                rep.message = reason
                prov = Provenance(source, rep.format, uri, sha, now_ns, parse_marking(marking))
                writers["rejects"].write(file_reject(prov, e))
                rep.rejected += 1
            for w in writers.values():
                w.commit()
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        rep.read = rep.accepted + rep.rejected
        rep.seconds = round(time.perf_counter() - t0, 6)
        self._write_bytes(ledger, json.dumps({
            "uri": uri, "source": source, "sha256": sha, "format": rep.format,
            "status": rep.status, "read": rep.read, "accepted": rep.accepted,
            "rejected": rep.rejected, "ingested_at": day,
        }, indent=1).encode())
        return rep

    def _write_manifest(self, kind: str, now: dt.datetime, started: float, parameters: dict,
                        inputs: list[dict], counts: dict | None = None) -> Path | str:
        import numpy
        import sgp4
        stamp = now.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        path = self._loc("_manifests", f"{kind}-{stamp}-{uuid.uuid4().hex[:8]}.json")
        manifest = {
            "kind": kind,
            "started_at": now.isoformat(),
            "duration_s": round(time.perf_counter() - started, 3),
            "parameters": parameters,
            "inputs": inputs,
            "counts": counts or {
                "files": len(inputs),
                "read": sum(i.get("read", 0) for i in inputs),
                "accepted": sum(i.get("accepted", 0) for i in inputs),
                "rejected": sum(i.get("rejected", 0) for i in inputs),
            },
            "versions": {"ssafuse": __version__, "sgp4": sgp4.__version__,
                         "pyarrow": pa.__version__, "numpy": numpy.__version__},
        }
        self._write_bytes(path, json.dumps(manifest, indent=1, default=str).encode())
        return self._out(path)

    def write_screening(self, conjunctions: pa.Table, *, excluded: pa.Table | None = None,
                        inputs: list[dict] | None = None, parameters: dict | None = None,
                        counts: dict | None = None, now: dt.datetime | None = None,
                        started: float | None = None) -> tuple[Path | str, Path | str]:
        """Write one screening run: ``conjunctions/screen-<time>-<id>.parquet`` (atomic) and a
        ``screen`` manifest with its inputs, parameters, counts and excluded objects (each with
        its reason). Returns ``(parquet path, manifest path)``."""
        now = now or dt.datetime.now(dt.timezone.utc)
        stamp = now.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        final = self._out(self._loc("conjunctions",
                                    f"screen-{stamp}-{uuid.uuid4().hex[:8]}.parquet"))
        self._write_parquet(str(final), conjunctions.cast(SCHEMAS["conjunctions"]))
        counts = dict(counts or {})
        counts.setdefault("conjunctions", conjunctions.num_rows)
        params = dict(parameters or {})
        params["output"] = str(final)
        if excluded is not None:
            params["excluded"] = [
                {k: (str(v) if k == "excluded_from" else v) for k, v in row.items()}
                for row in excluded.to_pylist()]
            counts.setdefault("excluded", excluded.num_rows)
        manifest = self._write_manifest("screen", now, started or time.perf_counter(), params,
                                        inputs or [], counts)
        return final, manifest

    def manifests(self, kind: str | None = None) -> list[dict]:
        """Every run manifest, oldest first (optionally only one ``kind``)."""
        paths = sorted(self.fs.glob(self._loc("_manifests", f"{kind or '*'}-*.json")))
        return [self._read_json(p) for p in paths]


def _rebuild_store(root: str, storage_options: dict) -> Store:
    return Store(root, storage_options=storage_options)

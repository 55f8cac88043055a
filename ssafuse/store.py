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
import fcntl
import json
import os
import posixpath
import re
import time
import uuid
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .errors import StoreError
from .files import PartWriter, atomic_write_bytes, write_parquet
from .schema import PARTITIONS, SCHEMAS, TABLES
from .timeutil import utc_stamp
from .versions import versions


#: A feed's name (``source``): a folder name in the store (``source=<name>``, ``_ingested/<name>``),
#: so one to 64 letters, digits, ``.``, ``_`` or ``-``, not starting with ``.`` (hidden files
#: are skipped by readers) and never ``.`` or ``..`` (a path out of its folder).
SOURCE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


def check_source(name) -> str:
    """``name`` if it can name a feed in the store (:data:`SOURCE_NAME`); else ValueError
    saying what a name may hold."""
    if not isinstance(name, str) or not SOURCE_NAME.fullmatch(name):
        raise ValueError(f"source name {name!r} must be 1 to 64 letters, digits, '.', '_' or "
                         "'-', not starting with '.' (it names folders in the store)")
    return name


def file_schema(table: str) -> pa.Schema:
    """The schema of the Parquet files of ``table``: canonical, less its partition columns."""
    schema = SCHEMAS[table]
    for key in PARTITIONS.get(table, ()):
        if key in schema.names:
            schema = schema.remove(schema.get_field_index(key))
    return schema


def is_url(root) -> bool:
    """Whether a store root is an fsspec URL (``s3://bucket/prefix``) rather than a local path."""
    return isinstance(root, str) and "://" in root and not root.startswith("file://")


class Store:
    """A Parquet store rooted at a directory (created on first write), or at an fsspec URL
    such as ``s3://bucket/prefix`` (``storage_options`` go to the filesystem, e.g.
    ``{"endpoint_url": ...}`` for an S3-compatible server).

    >>> store = Store("store")
    >>> report = ingest(store, ["sample_tles/"], source="celestrak")  # doctest: +SKIP
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
        schema = file_schema(table)
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

    def ledger_entry(self, source: str, sha: str) -> dict | None:
        """The ledger entry of the file with SHA-256 ``sha`` ingested from ``source`` (what
        was read, accepted, rejected, its format and status), or ``None``."""
        loc = self._ledger(source, sha)
        return self._read_json(loc) if self.fs.exists(loc) else None

    def ledger_entries(self) -> list[dict]:
        """Every ledger entry, ordered by source and SHA-256."""
        return [self._read_json(p) for p in sorted(self.fs.glob(self._loc("_ingested", "*", "*.json")))]

    @contextlib.contextmanager
    def file_lock(self, source: str, sha: str):
        """Hold the lock of one file of ``source`` while it is ingested, so that two ingests
        of the same file at once do it once: the second waits, then finds the ledger entry
        (``already-ingested``). A POSIX lock (``fcntl.lockf``) on a hidden file beside the
        ledger entry, released however the process ends. Stores on object storage have no
        such lock: there, a second concurrent ingest of one file redoes it (its parts replace
        the first's, never doubled)."""
        if not self.local:
            yield
            return
        path = Path(self._loc("_ingested", source, f".{sha}.lock"))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def write_ledger_entry(self, source: str, sha: str, entry: dict) -> None:
        """Record a file as ingested; written last, after its parts (see the module doc)."""
        self._write_bytes(self._ledger(source, sha), json.dumps(entry, indent=1).encode())

    def part_writer(self, table: str, source: str, day: str, sha: str) -> PartWriter:
        """A writer of the one part of partitioned ``table`` that the file ``sha`` of
        ``source`` gives on ``day``; nothing is visible until its ``commit()``."""
        return PartWriter(self._part(table, source, day, sha), file_schema(table),
                          None if self.local else self.fs)

    def remove_parts(self, source: str, sha: str) -> None:
        """Remove every part (and hidden leftover) that file ``sha`` of ``source`` wrote:
        what a killed ingest of that file left behind."""
        for table in [t for t, keys in PARTITIONS.items() if keys == ("source", "ingest_date")]:
            for pattern in (f"part-{sha[:16]}.parquet", f".part-{sha[:16]}.parquet.*.tmp"):
                for p in self.fs.glob(self._loc(table, f"source={source}", "*", pattern)):
                    self.fs.rm_file(p)

    def append_rejects(self, rejects: pa.Table, *, source: str, day: str, name: str) -> Path | str:
        """Add ``rejects`` (schema ``rejects``) as one part of ``rejects/source=SOURCE/
        ingest_date=DAY/part-NAME.parquet``; returns where."""
        return self.append("rejects", rejects, source=source, day=day, name=name)

    def append(self, table: str, data: pa.Table, *, source: str, day: str,
               name: str) -> Path | str:
        """Add ``data`` (schema ``table``, partitioned by source and day) as one part,
        ``TABLE/source=SOURCE/ingest_date=DAY/part-NAME.parquet``, replacing a part of that
        name (what a stage that derives records, such as orbit determination, writes);
        returns where."""
        loc = self._loc(table, f"source={check_source(source)}", f"ingest_date={day}",
                        f"part-{name}.parquet")
        schema = file_schema(table)
        self._write_parquet(loc, data.select(schema.names).cast(schema))
        return self._out(loc)

    def screenings(self) -> list[Path | str]:
        """The conjunctions files of ``ssafuse screen`` runs, oldest first."""
        return [self._out(p) for p in sorted(self.fs.glob(self._loc("conjunctions", "screen-*.parquet")))]

    def read_parquet(self, path: Path | str) -> pa.Table:
        """One Parquet file of the store, read through its filesystem."""
        return pq.read_table(str(path), filesystem=self.fs)

    def write_manifest(self, kind: str, now: dt.datetime, started: float, parameters: dict,
                        inputs: list[dict], counts: dict | None = None) -> Path | str:
        """Write one run's manifest ``_manifests/<kind>-<time>-<id>.json``: parameters,
        inputs, counts (default: summed from ``inputs``), duration and versions."""
        stamp = utc_stamp(now)
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
            "versions": versions(),
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
        stamp = utc_stamp(now)
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
        manifest = self.write_manifest("screen", now, started or time.perf_counter(), params,
                                        inputs or [], counts)
        return final, manifest

    def manifests(self, kind: str | None = None) -> list[dict]:
        """Every run manifest, oldest first (optionally only one ``kind``)."""
        paths = sorted(self.fs.glob(self._loc("_manifests", f"{kind or '*'}-*.json")))
        return [self._read_json(p) for p in paths]


def _rebuild_store(root: str, storage_options: dict) -> Store:
    return Store(root, storage_options=storage_options)

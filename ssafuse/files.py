"""Files written for others, written one safe way: a hidden temporary file, flushed and
fsynced, then renamed into place, so a killed run never leaves a half-written file visible
(``.name.<id>.tmp`` is skipped by ``*.parquet`` globs and ``pyarrow.dataset``). Also the
expansion of the paths, folders and globs a user names, and file hashing.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import gzip
import hashlib
import json
import os
import stat
import uuid
import zlib
from pathlib import Path
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["atomic_write_bytes", "write_json", "write_parquet", "PartWriter", "expand_inputs",
           "open_input", "open_feed", "sha256_file"]


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


@contextlib.contextmanager
def _removed_on_failure(tmp: Path):
    """Remove ``tmp`` when the block fails (disk full, permissions, a kill signal raised as
    an exception): a failed write leaves no temporary file behind."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` through a hidden temporary file and a rename."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(final)
    with _removed_on_failure(tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    _fsync_dir(final.parent)


def write_json(final: Path, obj) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``final`` atomically."""
    atomic_write_bytes(Path(final), json.dumps(obj, indent=1, sort_keys=True,
                                               default=str).encode())


def write_parquet(final: Path, table: pa.Table) -> None:
    """Write one Arrow table to ``final`` atomically (hidden temporary file, then rename)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(final)
    with _removed_on_failure(tmp):
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    _fsync_dir(final.parent)


class PartWriter:
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
        if self.fs is not None:
            self.writer.close()
            self.fs.pipe_file(self.final, self.sink.getvalue().to_pybytes())
            return
        with _removed_on_failure(self.tmp):
            self.writer.close()
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp, self.final)
        _fsync_dir(self.final.parent)

    def abort(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(OSError):  # (the disk may be what failed)
                self.writer.close()
            if self.tmp is not None:
                with contextlib.suppress(OSError):
                    self.tmp.unlink(missing_ok=True)


def expand_inputs(inputs: Iterable[str | os.PathLike],
                  accept: Callable[[str], bool] | None = None) -> list[str]:
    """Files named by paths, folders and globs, in the order given, each once.

    A folder gives every file below it that ``accept(path)`` admits (default: every file),
    sorted, hidden files skipped; ingest passes the extensions its formats read
    (:func:`ssafuse.formats.registry.known_extension`), so a README or a script beside the
    feeds is not mistaken for one. Paths and globs are taken as they are; a name that matches
    nothing is kept so the caller reports it as unreadable."""
    accept = accept or (lambda path: True)
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


def open_input(path: str | os.PathLike):
    """Open an input file for reading (binary), refusing anything but a regular file *before*
    reading from it: a FIFO would block for ever, a device such as ``/dev/zero`` (or a link
    to one) never ends. Opened without blocking and checked on the open descriptor, so the
    file cannot be swapped between the check and the read. Raises :class:`OSError`."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "a device"
                    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
            raise OSError(errno.EINVAL, f"not a regular file ({kind}); refused unread",
                          os.fspath(path))
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


#: The first bytes of a gzip file (RFC 1952).
GZIP_MAGIC = b"\x1f\x8b"


def _as_os_error(method):
    def read(self, *args):
        try:
            return method(self, *args)
        except (EOFError, zlib.error) as e:  # truncated or corrupt: a read error, like any
            raise OSError(errno.EIO, f"not a whole gzip stream ({e})", self.path) from None
    return read


#: A gzip feed may hold at most this many times its own size (and at least 64 MiB): real
#: feeds compress 5-20 times; a file of spaces, 1,000 times (a "gzip bomb" that would take
#: the night's memory).
GZIP_MAX_RATIO = 100
_GZIP_MIN_LIMIT = 64 << 20
_CHUNK = 1 << 20


class _Gunzipped(gzip.GzipFile):
    """What a gzip file holds, read as the file; closing it closes the file too, and a
    truncated or corrupt stream, or one that holds more than :data:`GZIP_MAX_RATIO` times
    its size, fails as an :class:`OSError` naming the file."""

    def __init__(self, raw, path: str):
        super().__init__(fileobj=raw, mode="rb")
        self.raw_file, self.path = raw, path
        size = os.fstat(raw.fileno()).st_size
        self.limit = max(GZIP_MAX_RATIO * size, _GZIP_MIN_LIMIT)

    def _check(self, data):
        if self.tell() > self.limit:
            raise OSError(errno.EFBIG, f"holds more than {GZIP_MAX_RATIO} times its size "
                          f"uncompressed ({self.limit:,} bytes); refused as a gzip bomb",
                          self.path)
        return data

    def _read_all(self) -> bytes:
        parts = []
        while chunk := self._check(gzip.GzipFile.read(self, _CHUNK)):
            parts.append(chunk)
        return b"".join(parts)

    def close(self):
        try:
            super().close()
        finally:
            self.raw_file.close()

    @_as_os_error
    def read(self, size=-1):
        if size is None or size < 0:
            return self._read_all()
        return self._check(gzip.GzipFile.read(self, size))

    @_as_os_error
    def read1(self, size=-1):
        return self._check(gzip.GzipFile.read1(self, _CHUNK if size is None or size < 0
                                               else size))

    @_as_os_error
    def readinto(self, b):
        return self._check(gzip.GzipFile.readinto(self, b))

    @_as_os_error
    def readline(self, size=-1):
        return self._check(gzip.GzipFile.readline(self, size))

    peek = _as_os_error(gzip.GzipFile.peek)


def open_feed(path: str | os.PathLike):
    """:func:`open_input`, and a gzip-compressed file (by its first bytes, whatever its
    name: ``active.csv.gz``) read as the file it holds. Feeds read through this; hashes are
    of the bytes on disk."""
    fh = open_input(path)
    try:
        if fh.peek(2)[:2] != GZIP_MAGIC:
            return fh
        return _Gunzipped(fh, os.fspath(path))
    except BaseException:
        fh.close()
        raise


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (:func:`open_input`: regular
    files only)."""
    h = hashlib.sha256()
    with open_input(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

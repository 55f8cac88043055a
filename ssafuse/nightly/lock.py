"""One run at a time per store: the run lock.

:func:`run_lock` holds a POSIX record lock (``fcntl.lockf``) on the lock file for as long as
the ``with`` block lasts, and raises :class:`AlreadyRunning` at once when another process (or
this one) holds it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
from pathlib import Path

from ..errors import SsafuseError

__all__ = ["AlreadyRunning", "LockError", "run_lock"]


class AlreadyRunning(SsafuseError):
    """Another run holds the store's lock."""

    def __init__(self, lock_file: Path, holder: str):
        self.lock_file = lock_file
        self.holder = holder
        super().__init__(f"another ssafuse run is active ({holder or 'holder unknown'}); "
                         f"lock {lock_file} is held. Nothing was done.")


class LockError(SsafuseError):
    """The lock file cannot be opened (a folder in its place, a read-only store)."""


#: Lock files this process holds (a POSIX lock does not refuse its own process).
_HELD: set[str] = set()


@contextlib.contextmanager
def run_lock(path: Path, *, now: dt.datetime | None = None):
    """Hold the run lock on ``path`` (created if absent) or raise :class:`AlreadyRunning`.

    A POSIX record lock (``fcntl.lockf``): owned by this process only, so worker processes
    forked while it is held do not keep it, and released by the kernel however the process
    ends (SIGKILL included) — a stale lock file never blocks the next night."""
    path = Path(path)
    key = str(path.resolve())
    if key in _HELD:
        raise AlreadyRunning(path, f"pid {os.getpid()} (this process)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:  # a folder there, a read-only store, no such parent
        raise LockError(f"cannot open the run lock {path}: {e.strerror or e}") from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            raise AlreadyRunning(path, holder) from None
        _HELD.add(key)
        stamp = f" since {now.isoformat()}" if now else ""
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}{stamp}\n".encode(), 0)
        try:
            yield
        finally:
            _HELD.discard(key)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock

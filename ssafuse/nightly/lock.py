"""One run at a time per store: the run lock.

:func:`run_lock` holds a POSIX record lock (``fcntl.lockf``) on the lock file for as long as
the ``with`` block lasts, and raises :class:`AlreadyRunning` at once when another process (or
this one) holds it.

A store at a URL (``s3://bucket/prefix``) has no POSIX lock: :func:`object_lock` holds the
object ``STORE/_run.lock`` instead, a **lease**. It is created with a conditional PUT
(``If-None-Match: *``, ``fs.pipe_file(..., mode="create")`` in fsspec; S3 has honoured it
since 2024) that fails when the object exists, so of two runs that start at once exactly one
creates it and the other raises :class:`AlreadyRunning` at once. Its body (JSON) holds the
holder's pid, host, start time, a random token and an expiry, ``lease`` after the start
(``lock_ttl_hours``, default 12, in wall-clock time: ``now`` names the night, not the hour).
The lock is released by deleting it when the ``with`` block ends, if it still holds our token.

What it does not promise, honestly:

* a run that is killed (SIGKILL, a lost machine) cannot delete its lock: the next run is
  refused until the lease expires. Delete ``STORE/_run.lock`` by hand once sure no run is
  going on, or set a shorter ``lock_ttl_hours`` (but longer than any run);
* a lock past its expiry is taken over by deleting it and creating it again (conditional
  PUT). Two runs that both find the same expired lock may both delete before either creates:
  the second delete can remove the first's new lock, and both then run. The window is the time
  between a delete and a PUT (milliseconds), and only opens after a lease expired;
* a run that outlasts its lease may be joined by a second one that takes its lock over; the
  first then leaves the second's lock in place when it ends (it deletes only its own);
* the lock needs a filesystem that honours ``mode="create"`` (s3fs does, with If-None-Match;
  the token read back after the PUT catches a filesystem that silently overwrites, unless
  both runs read back before either writes).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path

from ..errors import SsafuseError

__all__ = ["AlreadyRunning", "LockError", "run_lock", "object_lock"]


class AlreadyRunning(SsafuseError):
    """Another run holds the store's lock."""

    def __init__(self, lock_file: Path | str, holder: str):
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


# ---------------------------------------------------------------------------------------------
# On object storage: a lease held by an object created with a conditional PUT
# ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def object_lock(fs, url: str, *, lease_hours: float = 12.0, now: dt.datetime | None = None,
                clock=time.time):
    """Hold the run lock ``url`` (an object, e.g. ``s3://bucket/store/_run.lock``) on the
    fsspec filesystem ``fs`` for the ``with`` block, or raise :class:`AlreadyRunning` at once
    (see the module docstring for what it guarantees). ``lease_hours``: how long after its
    start a lock may be taken over; ``clock()``: wall-clock seconds since the epoch."""
    token = uuid.uuid4().hex
    start = clock()
    body = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": _iso(start), "expires": _iso(start + lease_hours * 3600.0),
            "token": token, "night": now.isoformat() if now else None}
    data = json.dumps(body, indent=1).encode()
    if not _create(fs, url, data):
        held = _read(fs, url)
        if held is not None and _expires(fs, url, held, lease_hours) > clock():
            raise AlreadyRunning(url, _holder(held))
        if held is not None:  # expired (None: released meanwhile)
            logging.getLogger("ssafuse.run").warning(
                f"taking over the expired run lock {url} ({_holder(held)})",
                extra={"stage": "lock", "fields": {}})
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(url)
        if not _create(fs, url, data):  # another run took it over first
            raise AlreadyRunning(url, _holder(_read(fs, url)))
    if (_read(fs, url) or {}).get("token") != token:  # a filesystem that ignored mode=create
        raise AlreadyRunning(url, _holder(_read(fs, url)))
    try:
        yield
    finally:
        _release(fs, url, token)


def _release(fs, url: str, token: str) -> None:
    """Delete the lock if it still holds ``token`` (never another run's); a lock that cannot
    be deleted (the store unreachable) is logged and left to expire."""
    try:
        if (_read(fs, url) or {}).get("token") == token:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(url)
    except Exception as e:  # the run is done: its lock expires with its lease
        logging.getLogger("ssafuse.run").warning(
            f"could not release the run lock {url} ({e}); it expires with its lease",
            extra={"stage": "lock", "fields": {}})


def _create(fs, url: str, data: bytes) -> bool:
    """Create ``url`` holding ``data`` if it does not exist (one conditional PUT); whether
    it was created."""
    try:
        fs.pipe_file(url, data, mode="create")
        return True
    except FileExistsError:
        return False
    except Exception as e:  # no bucket, no permission, no server: the run cannot go on
        raise LockError(f"cannot create the run lock {url}: {e}") from None


def _read(fs, url: str) -> dict | None:
    """The lock's body; ``{}`` when it is not JSON; ``None`` when it is gone."""
    try:
        raw = fs.cat_file(url)
    except FileNotFoundError:
        return None
    except Exception as e:
        raise LockError(f"cannot read the run lock {url}: {e}") from None
    try:
        body = json.loads(raw)
        return body if isinstance(body, dict) else {}
    except ValueError:
        return {}


def _expires(fs, url: str, held: dict, lease_hours: float) -> float:
    """When a held lock expires (seconds since the epoch): its ``expires``, else (a body
    not ours) the object's last modification plus the lease."""
    with contextlib.suppress(KeyError, ValueError, TypeError):  # a body not ours: its age
        expires = dt.datetime.fromisoformat(str(held["expires"]))
        return (expires if expires.tzinfo else expires.replace(tzinfo=dt.timezone.utc)).timestamp()
    try:
        modified = fs.info(url).get("LastModified")
        if isinstance(modified, dt.datetime):
            return modified.timestamp() + lease_hours * 3600.0
    except FileNotFoundError:
        return 0.0  # gone meanwhile: free
    return float("inf")  # nothing tells its age: never taken over


def _holder(held: dict | None) -> str:
    if not held:
        return ""
    return (f"pid {held.get('pid')} on {held.get('host')} since {held.get('started')}, "
            f"lease until {held.get('expires')}")


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")

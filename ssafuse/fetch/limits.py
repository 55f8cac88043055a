"""Rate limits shared by every process that uses one store: a file, not memory.

A provider's limits are a list of ``(requests, seconds)`` windows (Space-Track: 30 per
minute and 300 per hour). Every request any process sends to that provider is first recorded
in one file, ``<state dir>/_fetch/<provider>-<host>.limits`` (the store's folder for a local
store), under a POSIX lock (``fcntl.lockf``) held only while the file is read and written.
A request is allowed when, with it, no window holds more than its count; otherwise the caller
sleeps until the oldest request in the full window leaves it. A window is widened by a small
margin (5 %, at most 2 s) so that the delay between our clock and the server's arrival time
never makes two requests look closer than they were sent.

Ten feeds in two processes therefore share one budget: the file is the budget.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from pathlib import Path
from typing import Callable

__all__ = ["RateLimiter", "RateLimitWait", "check_limits"]


class RateLimitWait(Exception):
    """The next request would wait past the feed's deadline; ``wait_s`` says how long."""

    def __init__(self, wait_s: float):
        self.wait_s = wait_s
        super().__init__(f"the provider's rate limit would need a wait of {wait_s:.0f} s, past "
                         "the feed's deadline")


def check_limits(value) -> tuple[tuple[int, float], ...]:
    """``[[requests, seconds], ...]`` as a tuple of pairs; ValueError otherwise."""
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], int)
        and not isinstance(p[0], bool) and p[0] >= 1 and isinstance(p[1], (int, float))
        and not isinstance(p[1], bool) and p[1] > 0 for p in value)
    if not ok:
        raise ValueError(f"rate_limits takes [[requests, seconds], ...] such as "
                         f"[[30, 60], [300, 3600]], got {value!r}")
    return tuple((int(n), float(s)) for n, s in value)


def _margin(window_s: float) -> float:
    return min(0.05 * window_s, 2.0)


class RateLimiter:
    """The shared limiter of one provider (``name``) under ``state_dir``."""

    def __init__(self, state_dir: str | os.PathLike, name: str,
                 limits: tuple[tuple[int, float], ...],
                 clock: Callable[[], float] = time.time, sleep=time.sleep):
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        self.path = Path(state_dir) / "_fetch" / f"{safe}.limits"
        self.limits = tuple(limits)
        self.clock, self.sleep = clock, sleep

    def acquire(self, deadline: float) -> None:
        """Record one request, waiting (sleeping) first as long as the limits require; raises
        :class:`RateLimitWait` at once when the wait would end after ``deadline`` (a
        ``clock()`` time)."""
        if not self.limits:
            return
        while True:
            wait = self._try()
            if wait <= 0:
                return
            if self.clock() + wait > deadline:
                raise RateLimitWait(wait)
            self.sleep(wait)

    def _try(self) -> float:
        """Under the file's lock: record a request now and return 0, or return the wait."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            now = self.clock()
            # a request stamped later than now (the clock was set back) counts as sent now
            sent = [min(t, now) for t in self._read(fd)]
            longest = max(s + _margin(s) for _, s in self.limits)
            sent = [t for t in sent if t > now - longest]
            wait = 0.0
            for count, window in self.limits:
                span = window + _margin(window)
                inside = sorted(t for t in sent if t > now - span)
                if len(inside) >= count:  # wait until enough of them leave the window
                    wait = max(wait, inside[len(inside) - count] + span - now + 1e-3)
            if wait <= 0:
                sent.append(now)
                data = json.dumps(sent).encode()
                os.pwrite(fd, data, 0)  # (written, then cut: a crash never leaves it empty)
                os.ftruncate(fd, len(data))
            return wait
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def _read(fd: int) -> list[float]:
        size = os.fstat(fd).st_size
        try:
            return [float(t) for t in json.loads(os.pread(fd, size, 0) or b"[]")]
        except (ValueError, TypeError):  # a damaged file: start again (never stops a night)
            return []

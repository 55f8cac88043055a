"""How far along the long stages are, for an operator at a terminal; silent for everyone else.

One place decides whether progress is shown: :func:`for_stderr` gives bars (tqdm) when
stderr is a terminal, and a :class:`Progress` that shows nothing otherwise (cron, a pipe, a
log file) or when the caller asks for quiet (``--log-json``: stderr then carries JSON lines
only). The stages themselves know nothing of tqdm: each reports through a plain callback,
``tick(done, total)`` (``total`` ``None`` while unknown), so a Python caller passes its own
callable, or nothing, and needs no library::

    progress = for_stderr(quiet=log_json)
    with progress.showing(loggers=[logging.getLogger("ssafuse.run")]):
        tick = progress.stage("screen", "slice")
        screen(catalogue, start, progress=tick)   # tick(done, total) after each time slice
        tick.close()

:func:`numba_compile_hint` says, once, that numba is compiling a family of kernels, and only
when it really compiles (a cold cache), never on a run that loads them from the cache.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Callable, Iterable, Iterator, TextIO

__all__ = ["Progress", "StageProgress", "TerminalProgress", "as_progress", "for_stderr",
           "reading", "numba_compile_hint", "COMPILE_HINTS"]


class StageProgress:
    """One stage's progress, called as ``tick(done, total)`` (``done`` counts from 0 up to
    ``total``; ``total`` is ``None`` while unknown); ``note(text)`` says what is being worked
    on; ``close()`` ends it. This one shows nothing."""

    def __call__(self, done: int, total: int | None = None) -> None:
        return None

    def note(self, text: str) -> None:
        return None

    def close(self) -> None:
        return None


class Progress:
    """Where a job's stages report how far along they are. This one shows nothing: what a
    run gets from cron, with ``--log-json``, or from a Python caller that passes none."""

    #: whether anything is drawn (a bar on a terminal)
    shown = False

    def stage(self, name: str, unit: str) -> StageProgress:
        """The progress of stage ``name``, counted in ``unit`` (``"file"``, ``"slice"``)."""
        return StageProgress()

    def write(self, text: str, *, err: bool = False) -> None:
        """Print a line on stdout (stderr with ``err``) without breaking a bar."""
        import click  # the CLI's own echo: same encoding handling as every other line

        click.echo(text, err=err)

    @contextlib.contextmanager
    def showing(self, loggers: Iterable[logging.Logger] = ()) -> Iterator[Progress]:
        """The block during which bars may be drawn; log lines of ``loggers`` that go to the
        console are printed above the bars rather than through them."""
        yield self


class _Bar(StageProgress):
    """A tqdm bar on stderr: count, percentage, rate and time left once the total is known.
    Drawn from the first call on (a stage that never reports draws nothing)."""

    #: the fewest seconds between two redraws for a note alone (a note per batch of records)
    NOTE_INTERVAL_S = 0.2

    def __init__(self, tqdm_class, name: str, unit: str, file: TextIO):
        self._tqdm = tqdm_class
        self._options = dict(desc=name, unit=unit, file=file, leave=True, dynamic_ncols=True,
                             mininterval=0.1)
        self._bar = None
        self._noted = 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        if self._bar is None:
            self._bar = self._tqdm(total=total, **self._options)
        elif total is not None and total != self._bar.total:
            self._bar.total = total
            self._bar.refresh()
        self._bar.update(done - self._bar.n)

    def note(self, text: str) -> None:
        if self._bar is None:
            self(0)
        now = time.monotonic()
        show = now - self._noted >= self.NOTE_INTERVAL_S
        self._bar.set_postfix_str(text, refresh=show)
        if show:
            self._noted = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class TerminalProgress(Progress):
    """Bars on ``file`` (a terminal), one per stage, each left on screen once done."""

    shown = True

    def __init__(self, file: TextIO | None = None):
        from tqdm import tqdm  # only when a terminal shows bars: API callers need no tqdm

        tqdm.monitor_interval = 0  # no monitor thread: the screening forks worker processes
        self._tqdm = tqdm
        self._file = file or sys.stderr

    def stage(self, name: str, unit: str) -> StageProgress:
        return _Bar(self._tqdm, name, unit, self._file)

    def write(self, text: str, *, err: bool = False) -> None:
        self._tqdm.write(text, file=sys.stderr if err else sys.stdout)

    @contextlib.contextmanager
    def showing(self, loggers: Iterable[logging.Logger] = ()) -> Iterator[Progress]:
        from tqdm.contrib.logging import logging_redirect_tqdm  # tqdm: terminals only

        with logging_redirect_tqdm(loggers=list(loggers), tqdm_class=self._tqdm):
            yield self


def for_stderr(*, quiet: bool = False, stream: TextIO | None = None) -> Progress:
    """The one place that decides whether progress is shown: bars when ``stream`` (default
    stderr) is a terminal and the caller is not ``quiet`` (``--log-json``), else nothing."""
    stream = stream or sys.stderr
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        terminal = False
    return TerminalProgress(stream) if terminal and not quiet else Progress()


class _ScreeningOnly(Progress):
    """The older ``progress(done, total)`` callback of :func:`ssafuse.nightly.run`: the
    screening's time slices go to it, and nothing else."""

    def __init__(self, callback: Callable[[int, int], None]):
        self._callback = callback

    def stage(self, name: str, unit: str) -> StageProgress:
        return _Forward(self._callback) if name == "screen" else StageProgress()


class _Forward(StageProgress):
    def __init__(self, callback: Callable[[int, int], None]):
        self._callback = callback

    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self._callback(done, total)


def as_progress(progress) -> Progress:
    """``progress`` as a :class:`Progress`: ``None`` shows nothing; an object with
    ``stage(name, unit)`` is used as it is; a plain ``callback(done, total)`` (what
    :func:`ssafuse.nightly.run` took before) hears of the screening's time slices only."""
    if progress is None:
        return Progress()
    if hasattr(progress, "stage"):
        return progress
    if callable(progress):
        return _ScreeningOnly(progress)
    raise TypeError(f"progress must be a Progress, a callable(done, total) or None, "
                    f"got {type(progress).__name__}")


def reading(tick: StageProgress) -> Callable[[str, int], None]:
    """A ``record_progress(uri, read)`` callback for :func:`ssafuse.ingestion.ingest` that
    notes on ``tick`` the file being read and its records read so far."""
    def on_records(uri: str, read: int) -> None:
        tick.note(f"{uri.rstrip('/').rsplit('/', 1)[-1]}: {read:,} records")
    return on_records


# -- numba --------------------------------------------------------------------------------------

#: The hint said when numba compiles a kernel of each module. Only the screening's: its
#: kernels take ~10-15 s cold (two cores); the correlation kernel (~2 s) and the Pc kernel
#: (~1.5 s) are too quick to be worth a line.
COMPILE_HINTS = {
    "ssafuse.screening.kernels": "compiling the screening kernels (numba), once: ~10 s; "
                                 "cached afterwards",
}


@contextlib.contextmanager
def numba_compile_hint(say: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, ``say(hint)`` (:data:`COMPILE_HINTS`) the moment numba starts
    compiling a kernel of a module listed there, once per module. numba raises its
    ``numba:compile`` event only when it compiles: a kernel it loads from its cache
    (``__pycache__`` beside the code, or ``$NUMBA_CACHE_DIR``) says nothing. Without numba,
    nothing is said."""
    try:
        from numba.core import event  # heavy: loaded by the commands that may compile
    except ImportError:  # pragma: no cover - numba is a dependency
        yield
        return
    said: set[str] = set()

    class Hint(event.Listener):
        def on_start(self, ev) -> None:
            module = getattr(getattr(ev.data.get("dispatcher"), "py_func", None),
                             "__module__", None)
            if module in COMPILE_HINTS and module not in said:
                said.add(module)
                say(COMPILE_HINTS[module])

        def on_end(self, ev) -> None:
            return None

    with event.install_listener("numba:compile", Hint()):
        yield

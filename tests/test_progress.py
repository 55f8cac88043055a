"""Progress an operator can read, silence for cron, and the numba compile hint (issue 18,
points 5 and 6).

`ssafuse run` runs on the sample config as a subprocess, as cron runs it; "a terminal" is a
pseudo-terminal (:mod:`pty`) on its stderr, 120 columns wide. Every run here uses one numba
cache folder ($NUMBA_CACHE_DIR), empty before the first run (:func:`cold_run`): that run is
the only one that compiles the screening kernels (~10-20 s), the others load them.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from _run_helpers import NOW, command, env, sample_config
from conftest import SAMPLES
from ssafuse import nightly
from ssafuse.progress import COMPILE_HINTS, Progress, as_progress, for_stderr

HINT = COMPILE_HINTS["ssafuse.screening.kernels"]


def finished_bar(stage: str, unit: str) -> re.Pattern:
    """A tqdm bar at its end, with its rate and time left, e.g.
    ``screen: 100%|█████| 12/12 [00:00<00:00, 18.84slice/s]`` (or ``1.23s/slice``)."""
    return re.compile(rf"{stage}: 100%\|[^|]*\| (\d+)/\1 \[\d\d:\d\d<\d\d:\d\d, "
                      rf"+[\d.]+(?:{unit}/s|s/{unit})")


def cache_env(cache_dir) -> dict:
    return dict(env(), NUMBA_CACHE_DIR=str(cache_dir))


def run_on_terminal(argv: list[str], environ: dict, timeout: float = 120) -> tuple[int, str]:
    """Run ``argv`` with stderr on a pseudo-terminal; ``(exit code, what stderr showed)``."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave, env=environ)
    os.close(slave)
    got, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal (it exited)
                break
            if not chunk:
                break
            got.append(chunk)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        proc.kill()
        os.close(master)
    return rc, b"".join(got).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def numba_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("numba-cache")


@pytest.fixture(scope="module")
def cold_run(numba_cache, tmp_path_factory):
    """`ssafuse run`, stderr piped, with the numba cache folder empty."""
    assert not any(numba_cache.iterdir())
    cfg = sample_config(tmp_path_factory.mktemp("cold"))
    return subprocess.run(command(cfg), capture_output=True, text=True, timeout=240,
                          env=cache_env(numba_cache))


def test_numba_hint_once_when_the_cache_is_cold(cold_run, numba_cache):
    assert "[screen] ok" in cold_run.stderr, cold_run.stderr[-3000:]
    assert cold_run.stderr.count(HINT) == 1, cold_run.stderr[-3000:]
    hint_line = next(line for line in cold_run.stderr.splitlines() if HINT in line)
    assert "[numba]" in hint_line  # a log line like the others of the run
    # said before the compiling, inside the screen stage
    lines = cold_run.stderr.splitlines()
    assert (next(i for i, s in enumerate(lines) if "[screen] started" in s)
            < lines.index(hint_line)
            < next(i for i, s in enumerate(lines) if "[screen] ok" in s))
    assert list(numba_cache.rglob("kernels.*.nbi")), "nothing was cached"


def test_no_numba_hint_when_the_kernels_are_cached(cold_run, numba_cache, tmp_path):
    again = subprocess.run(command(sample_config(tmp_path)), capture_output=True, text=True,
                           timeout=240, env=cache_env(numba_cache))
    assert "[screen] ok" in again.stderr, again.stderr[-3000:]  # screened, not reused
    assert "[numba]" not in again.stderr and "compiling" not in again.stderr
    assert HINT not in again.stderr


def test_terminal_shows_ingest_and_screening_progress_with_rate_and_time_left(
        cold_run, numba_cache, tmp_path):
    rc, shown = run_on_terminal(command(sample_config(tmp_path)), cache_env(numba_cache))
    assert "[screen] ok" in shown, shown[-3000:]
    assert finished_bar("ingest", "file").search(shown), shown[-3000:]
    assert finished_bar("screen", "slice").search(shown), shown[-3000:]
    assert finished_bar("assess", "event").search(shown), shown[-3000:]
    assert "\r" in shown.replace("\r\n", "\n")  # redrawn in place, a live bar
    # the record counter of the file being read
    assert re.search(r"celestrak_active_2025-04-23_first300\.tle: 300 records", shown)


def test_no_progress_when_stderr_is_not_a_terminal(cold_run, numba_cache, tmp_path):
    done = subprocess.run(command(sample_config(tmp_path)), capture_output=True, text=True,
                          timeout=240, env=cache_env(numba_cache))
    assert "[screen] ok" in done.stderr, done.stderr[-3000:]
    assert "\r" not in done.stderr
    for trace in ("%|", "file/s", "slice/s", "event/s", "time slices"):
        assert trace not in done.stderr, trace
    assert re.search(r"(?m)^\S+ INFO +\[ingest\] started$", done.stderr)  # logs unchanged


def test_no_progress_with_log_json_even_on_a_terminal(cold_run, numba_cache, tmp_path):
    rc, shown = run_on_terminal(command(sample_config(tmp_path), NOW, "--log-json"),
                                cache_env(numba_cache))
    lines = [s for s in shown.replace("\r\n", "\n").split("\n") if s]
    assert "\r" not in "".join(lines)
    records = [json.loads(s) for s in lines]  # every line of stderr is a JSON object
    assert any(r["stage"] == "screen" and r["message"].startswith("ok") for r in records)
    assert "%|" not in shown


def test_ingest_command_shows_files_on_a_terminal_and_nothing_in_a_pipe(tmp_path):
    argv = [sys.executable, "-m", "ssafuse.cli", "ingest", str(SAMPLES / "*.tle"),
            str(SAMPLES / "udl_elset_sample.json"), "--store"]
    rc, shown = run_on_terminal(argv + [str(tmp_path / "a")], env())
    assert rc == 0, shown[-2000:]
    assert finished_bar("ingest", "file").search(shown), shown[-2000:]
    piped = subprocess.run(argv + [str(tmp_path / "b")], capture_output=True, text=True,
                           timeout=120, env=env())
    assert piped.returncode == 0 and "accepted" in piped.stdout
    assert piped.stderr == ""


def test_older_progress_callback_hears_of_the_screening_only():
    calls = []
    progress = as_progress(lambda done, total: calls.append((done, total)))
    progress.stage("ingest", "file")(1, 3)
    screen = progress.stage("screen", "slice")
    screen(0, None)  # total not known yet: not passed on
    screen(0, 12)
    screen(12, 12)
    assert calls == [(0, 12), (12, 12)]
    assert isinstance(as_progress(None), Progress) and not as_progress(None).shown
    with pytest.raises(TypeError) as e:
        as_progress(42)
    assert "callable(done, total)" in str(e.value)


def test_nightly_run_takes_the_older_screening_callback(tmp_path):
    calls = []
    result = nightly.run(nightly.load_config(sample_config(tmp_path)),
                         now=dt.datetime(2026, 3, 10, 2, tzinfo=dt.timezone.utc),
                         progress=lambda done, total: calls.append((done, total)))
    assert [s.status for s in result.stages if s.name == "screen"] == ["ok"]
    total = calls[-1][1]
    assert total > 0 and calls[0] == (0, total) and calls[-1] == (total, total)


def test_progress_shown_only_on_a_terminal_and_not_when_quiet():
    assert not for_stderr(stream=io.StringIO()).shown
    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as terminal:
        assert for_stderr(stream=terminal).shown
        assert not for_stderr(stream=terminal, quiet=True).shown
    os.close(master)

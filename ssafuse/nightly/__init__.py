"""The nightly job: one call from the day's feeds to an operator's report and partner exports.

Stages, in order, each timed and counted in the run manifest::

    fetch (feeds with a provider, :mod:`ssafuse.fetch`) -> ingest -> catalogue
    -> correlate (when configured) -> screen -> assess -> report -> exports

Everything a run produces lives in one folder of the store, ``STORE/runs/<run id>/``::

    manifest.json        the run: stages (status, seconds, counts), feeds, inputs, warnings,
                         versions, exit code. Written last; a run without it did not finish.
    run.json             what the report is made from (feeds, window, primaries, previous run)
    catalogue.parquet    the catalogue screened (schema ``catalogue``)
    conjunctions.parquet the assessed conjunctions (schema ``conjunctions``), also kept as
                         STORE/conjunctions/run-<run id>.parquet for queries across nights
    excluded.parquet     objects SGP4 could not propagate, and why
    correlations.parquet observation correlation (when configured)
    screen.json          the screening's key (inputs + parameters); a re-run with the same key
                         reuses the screening instead of repeating it
    cdm/                 one CDM per conjunction (when the assess stage writes them)
    report.html          the operator's report (self-contained), summary.txt for cron mail
    events/              a page per event the report lists (encounter plane, history)
    conjunctions-socrates.csv  the run's events in SOCRATES's CSV columns
    exports/<CODE>/      each partner's export (``ssafuse.export``)

The **run id** is ``<window start>-<hash of the settings>``: the same night with the same
configuration is the same run, so re-running it changes nothing already done (ingest is
idempotent in the store; the screening is reused when its inputs are unchanged; the report,
CDMs and exports are rebuilt and replaced atomically, byte for byte the same).

Nothing here reads the clock or a config file on its own: :func:`load_config` reads the file
the caller names, and :func:`run` takes ``now``. One run at a time per store: :func:`run`
holds a POSIX lock (``fcntl.lockf``) on ``lock_file`` for its whole duration (on a store at a
URL, the lease object ``STORE/_run.lock``) and raises :class:`AlreadyRunning` at once when
another process holds it.

**A store at a URL** (``store = "s3://bucket/prefix"``, any fsspec URL; ``[storage_options]``
go to its filesystem, credentials come from the environment): the run folder the stages write
into is a local working copy, ``work_dir/runs/<run id>/`` (``work_dir`` defaults to
``~/.cache/ssafuse/store-<first 16 hex of the SHA-256 of the URL>``). Before the stages it is
made afresh from what a re-run needs of ``STORE/runs/<run id>/`` (``created.json``,
``screen.json``, ``screened.parquet``, ``excluded.parquet``); the previous run is found in the
store (:func:`~ssafuse.runs.previous_run` through its filesystem) and its ``run.json``,
``conjunctions.parquet`` and ``manifest.json`` copied beside the working copy, where the report
reads them. After the stages, the store's ``manifest.json`` of the run (an earlier attempt's)
is deleted, every file of the working copy is uploaded with one PUT each (atomic), then the
manifest, then its ``_manifests/`` copy: a run folder without a manifest did not finish. The
catalogue, ``conjunctions/run-<run id>.parquet`` and every table go through
:class:`~ssafuse.store.Store`. The lock is the object ``STORE/_run.lock``, a lease
(:func:`~ssafuse.nightly.lock.object_lock`, whose docstring says what it guarantees). Partner
exports are made in the working copy from the store's element sets (``export_partners(...,
store=)``) and uploaded with the run folder. Not supported there yet: ``ssafuse report`` /
``ssafuse export`` by run id (:func:`~ssafuse.runs.find_run`
reads local folders); the report's event histories and CDM details cover the runs of the
working folder only.

The modules: :mod:`~ssafuse.nightly.config` (the configuration file, the window and the run
id), :mod:`~ssafuse.nightly.lock` (the run lock), :mod:`~ssafuse.nightly.job` (the stages);
the run folder's layout and the run lookups the report and exports share are in
:mod:`ssafuse.runs`.
"""


from __future__ import annotations

from ..runs import previous_run
from .config import ConfigError, Feed, RunConfig, load_config, run_id, window_start
from .job import EXIT_ALREADY_RUNNING, EXIT_FAILED, EXIT_OK, EXIT_WARNINGS, RunResult, run
from .lock import AlreadyRunning, run_lock

__all__ = ["EXIT_OK", "EXIT_WARNINGS", "EXIT_FAILED", "EXIT_ALREADY_RUNNING", "Feed", "RunConfig",
           "RunResult", "ConfigError", "AlreadyRunning", "load_config", "run", "run_lock",
           "window_start", "run_id", "previous_run"]

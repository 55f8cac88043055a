"""The ``ssafuse`` command line: wiring only. Each command parses its options, calls one
public function of the library, and prints.

Exit codes (every command but ``run``, which has its own; README "Exit codes"):

* 0: success. Records refused inside a file are normal: they are counted and kept in
  ``rejects``, not an error.
* 1: done, but at least one input file was refused as a whole (unreadable, not a regular
  file, or no format recognised it); every other file was still ingested.
* 2: usage error (bad option, bad marking text, unknown format name, missing store) or
  failure (the store cannot be written: permissions, disk full). One line on stderr says
  which, never a traceback (:class:`_Commands`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sys
import traceback
from pathlib import Path

import click

from . import nightly
from .assessment import cdms_for_screening, pc_line, pc_of_cdm_files
from .correlation import correlate_store
from .epochs import DISAGREE_MAX_GAP_DAYS, MAX_EPOCH_GAP_DAYS
from .errors import FormatError, MarkingError, SsafuseError
from .markings import ENV_MARKINGS, use_equivalences
from .markings import parse as parse_marking
from .export import check_code, export_run
from .fetch import fetch_feed
from .fetch.credentials import RedactingFilter, redact
from .files import write_parquet
from .formats.ccsds.cdm import VERSIONS as CDM_VERSIONS
from .formats.registry import ENV_FORMATS_DIR, formats, get_format
from .ingestion import ingest as ingest_files
from .jobs import NothingToScreen, screen_inputs, update_catalogue
from .nightly.config import MAX_DAYS
from .nightly.job import work_dir
from .od import OdSettings, od_store, solution_line
from .progress import Progress, for_stderr, numba_compile_hint, reading
from .runs import find_run
from .store import Store, check_source
from .timeutil import parse_iso, whole_seconds_ns
from .versions import __version__
from .writers import DESCRIPTIONS, EXPORT_FORMATS

EXIT_OK, EXIT_SOME_FILES_REFUSED, EXIT_USAGE = 0, 1, 2


def _store_option(required: bool = True):
    return click.option("--store", "store_dir", required=required, metavar="DIR",
                        type=click.Path(file_okay=False),
                        help="Store directory (a folder of Parquet files; created if absent), "
                             "or an fsspec URL such as s3://bucket/prefix.")


def _dask_option(what: str):
    return click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
                        help=f"Run {what} on a Dask cluster: a scheduler address "
                             "(tcp://host:8786), or local[:N] for a local cluster of N worker "
                             "processes.")


def _formats_dir_option():
    return click.option("--formats-dir", "formats_dirs", multiple=True, metavar="DIR",
                        envvar=ENV_FORMATS_DIR, type=click.Path(file_okay=False),
                        help="A folder of your own feed descriptions (*.toml, as in "
                             f"ingest_formats/); repeatable. Default: ${ENV_FORMATS_DIR} "
                             "(folders separated by ':'). A name already taken is an error.")


def _markings_option():
    """``--markings FILE`` (or ``$SSAFUSE_MARKINGS``): the marking equivalence table, made
    the process's active table before the command runs."""
    def activate(ctx, param, value):
        if value:
            try:
                use_equivalences(value)
            except MarkingError as e:
                raise click.BadParameter(str(e), ctx=ctx, param=param) from None
        return value

    return click.option("--markings", metavar="FILE.toml", envvar=ENV_MARKINGS,
                        type=click.Path(dir_okay=False), expose_value=False, callback=activate,
                        help="Your marking equivalence table (how UK, NATO, Australian, ... "
                             "markings are handled; the shape of ssafuse/data/markings.toml, "
                             f"over its defaults). Default: ${ENV_MARKINGS}, else the shipped "
                             "table.")


def _existing_store(store_dir: str) -> Store:
    store = Store(store_dir)
    if not store.exists():
        raise click.UsageError(f"no store at {store_dir}")
    return store


def _compile_hint(progress: Progress):
    """The one-line hint on stderr while numba compiles the kernels (a cold cache only)."""
    return numba_compile_hint(lambda text: progress.write(f"ssafuse: {text}", err=True))


class _Commands(click.Group):
    """Every command's failures end one way: one line on stderr naming the command and the
    reason, and exit code 2 (1 is "done, some inputs refused"; Python's default for an
    uncaught exception would make a failure look like that). An error ssafuse did not
    foresee (a bug) also prints its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except (OSError, SsafuseError, ValueError) as e:
            click.echo(f"ssafuse {ctx.invoked_subcommand}: error: {_one_line(e)}", err=True)
            sys.exit(EXIT_USAGE)
        except Exception as e:
            click.echo(f"ssafuse {ctx.invoked_subcommand}: internal error: {_one_line(e)} "
                       "(a bug: please report it with the traceback below)", err=True)
            traceback.print_exc()
            sys.exit(EXIT_USAGE)


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror + (f": {e.filename}" if e.filename else "")
    return " ".join(str(e).split()) or type(e).__name__


class _finite(click.FloatRange):
    """A number in a range, and finite: click's FloatRange lets NaN through (every
    comparison with NaN is false) and infinity where no maximum is set."""

    name = "finite number"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


def _source_name(ctx, param, value):
    try:
        return check_source(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None


@click.group(cls=_Commands,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ssafuse")
def main():
    """ssafuse: fuse allied and public space-surveillance feeds into one catalogue in Parquet.

    \b
    Exit codes: 0 success; 1 some input files refused as a whole (the rest ingested);
    2 usage error or failure (one line on stderr says which); `ssafuse run` adds 3 (another
    run holds the lock).
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@_store_option()
@click.option("--source", default="local", show_default=True, metavar="NAME",
              callback=_source_name,
              help="Name of the feed these files come from (letters, digits, '._-').")
@click.option("--format", "format_name", default=None, metavar="NAME",
              help="Force a format (see `ssafuse formats`); default: sniffed per file.")
@click.option("--marking", default="UNCLASSIFIED", show_default=True, metavar="TEXT",
              help="The feed's default marking, e.g. 'UNCLASSIFIED//REL TO USA, GBR'; applied "
                   "to whatever a record does not state itself.")
@_formats_dir_option()
@_markings_option()
@_dask_option("the files (one task each; the store must be one the workers reach)")
def ingest(inputs, store_dir, source, format_name, marking, formats_dirs, dask_address):
    """Read element-set files (paths, folders or globs) into the store.

    Prints accepted / rejected per file. Re-ingesting a file already in the store (same
    content, same source) changes nothing.
    """
    progress = for_stderr()  # bars on a terminal only

    def show(rep):
        counts = f"{rep.accepted:>8} accepted {rep.rejected:>6} rejected"
        what = {"ingested": counts, "re-marked": counts,
                "already-ingested": "    already ingested, unchanged",
                "refused": "    REFUSED"}[rep.status]
        progress.write(f"{what}  {rep.uri}  [{rep.format or '-'}]"
                   + (f"  {rep.message}" if rep.status == "refused" or rep.status == "re-marked"
                      or rep.marking_conflicts else ""))

    try:  # the options: a marking that parses, a format that exists, descriptions that load
        parse_marking(marking)
        if format_name:
            get_format(format_name, formats_dirs)
        formats(formats_dirs)
    except (MarkingError, FormatError) as e:
        raise click.UsageError(str(e)) from None
    with progress.showing():
        tick = progress.stage("ingest", "file")
        try:
            report = ingest_files(Store(store_dir), inputs, source=source, format=format_name,
                                  marking=marking, progress=show, dask=dask_address,
                                  formats_dirs=formats_dirs, file_progress=tick,
                                  record_progress=reading(tick))
        finally:
            tick.close()
    click.echo(f"total: {report.accepted} accepted, {report.rejected} rejected, "
               f"{len(report.files)} files ({len(report.refused_files)} refused); "
               f"manifest {report.manifest}")
    sys.exit(EXIT_SOME_FILES_REFUSED if report.refused_files else EXIT_OK)


@main.command()
@_store_option()
@click.option("--out", default=None, metavar="FILE.parquet", type=click.Path(dir_okay=False),
              help="Also write the catalogue to this Parquet file.")
@click.option("--precedence", default="", metavar="SRC,SRC,...",
              help="Sources in order of trust, to break ties between element sets of the same "
                   "epoch (unlisted sources follow, by name).")
@click.option("--disagree-km", default=5.0, show_default=True, type=_finite(min=0),
              help="Flag objects whose sources' element sets are farther apart than this.")
@click.option("--disagree-max-gap-days", default=DISAGREE_MAX_GAP_DAYS, show_default=True,
              type=_finite(min=0), help="Compare two sources' element sets only when their "
              "epochs are this close (an older set differs by its age alone).")
def catalogue(store_dir, out, precedence, disagree_km, disagree_max_gap_days):
    """Build one catalogue from every element set in the store: one row per object.

    Writes STORE/catalogue/catalogue.parquet (and --out if given).
    """
    cat, path = update_catalogue(_existing_store(store_dir),
                                 precedence=[s for s in precedence.split(",") if s],
                                 disagree_km=disagree_km,
                                 disagree_max_gap_days=disagree_max_gap_days, out=out)
    multi = sum(1 for n in cat["n_sources"].to_pylist() if n > 1)
    disagree = sum(cat["sources_disagree"].to_pylist())
    click.echo(f"{cat.num_rows} objects ({multi} reported by several sources, {disagree} "
               f"whose sources disagree by more than {disagree_km:g} km) -> {path}"
               + (f" and {out}" if out else ""))


@main.command("formats")
@_formats_dir_option()
def formats_command(formats_dirs):
    """List the formats ssafuse reads (and how it recognises each), then those it writes."""
    try:
        known = formats(formats_dirs)
    except FormatError as e:
        raise click.UsageError(str(e)) from None
    for f in known:
        ext = " ".join(f.extensions)
        click.echo(f"{f.name:<14} {f.table:<12} priority {f.priority:>3}  {f.description}"
                   + (f"  [{ext}]" if ext else ""))
    click.echo("\nwritten (partner exports: [exports] formats, `ssafuse export --format`; "
               "`ssafuse cdm`):")
    for name in EXPORT_FORMATS:
        file, what = DESCRIPTIONS[name]
        click.echo(f"{name:<14} {file:<26} {what}")


@main.command("pc")
@click.argument("cdms", nargs=-1, required=True, metavar="CDM...")
@click.option("--hbr-m", type=_finite(min=0), default=None, metavar="X",
              help="Combined hard-body radius in metres (default: the CDM's own, e.g. CARA's "
                   "'COMMENT HBR = 10 [m]', else --hbr-table).")
@click.option("--hbr-table", type=click.Path(exists=True, dir_okay=False), default=None,
              metavar="FILE.csv", help="CARA's per-object HBR table (HBR_Mass_Estimates_*.csv); "
              "the combined HBR is the sum of both objects'. Used when the CDM states none.")
@click.option("--method", type=click.Choice(["foster", "foster-square",
                                             "foster-square-equal-area", "chan", "alfano2005"]),
              default="foster", show_default=True, help="Pc method.")
@click.option("--out", default=None, metavar="FILE.parquet", type=click.Path(dir_okay=False),
              help="Also write one row per message to this Parquet file.")
def pc_command(cdms, hbr_m, hbr_table, method, out):
    """Probability of collision of CCSDS CDMs (KVN or XML): one line per message.

    CDM... are files, folders (every CDM in them) or globs. A file that cannot be read is
    reported with the reason and the others still computed (exit code 1).
    """
    _, refused = pc_of_cdm_files(cdms, hbr_m=hbr_m, hbr_table=hbr_table, method=method,
                                 out=out, on_row=lambda row: click.echo(pc_line(row)))
    sys.exit(EXIT_SOME_FILES_REFUSED if refused else EXIT_OK)


@main.command("correlate")
@_store_option()
@click.option("--gate-arcmin", default=30.0, show_default=True, type=_finite(min=0),
              help="Angular gate: the best object closer than this is assigned, else UCT.")
@click.option("--max-age-days", default=30.0, show_default=True,
              type=_finite(min=0), help="Use no element set farther than this in "
              "epoch from the observation.")
@click.option("--sensors", "sensor_files", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="Site list or sensor CSV (repeatable; first wins), added to the store's "
                   "sensors table and saved there.")
@click.option("--out", default=None, metavar="FILE.parquet", type=click.Path(dir_okay=False),
              help="Also write the correlations to this Parquet file.")
def correlate_command(store_dir, gate_arcmin, max_age_days, sensor_files, out):
    """Correlate every observation in the store with its element sets: assigned object or
    UCT, residuals and score per observation.

    Writes STORE/correlations/correlations.parquet; observations whose sensor is unknown go
    to the rejects table (source=correlate) with that reason.
    """
    store = _existing_store(store_dir)
    corr, rejects = correlate_store(
        store, sensor_files=sensor_files, gate_arcmin=gate_arcmin, max_age_days=max_age_days,
        now_ns=whole_seconds_ns(dt.datetime.now(dt.timezone.utc)))
    if out:
        write_parquet(Path(out), corr)
    status = corr["status"].to_pylist()
    click.echo(f"{corr.num_rows} observations: {status.count('correlated')} correlated, "
               f"{status.count('uct')} UCT, {status.count('no-angles')} without angles, "
               f"{sum(corr['cross_tag'].to_pylist())} possible cross-tags; "
               f"{rejects.num_rows} rejected (unknown sensor) -> "
               f"{store.path('correlations')}/correlations.parquet"
               + (f" and {out}" if out else ""))


@main.command("od")
@_store_option()
@click.option("--sensors", "sensor_files", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="Site list or sensor CSV (repeatable; first wins), before the store's "
                   "sensors table.")
@click.option("--objects", default="", metavar="ID,...",
              help="Fit only these NORAD numbers (default: every object with correlated "
                   "observations).")
@click.option("--arc-days", default=10.0, show_default=True, type=_finite(min=0, min_open=True),
              help="Use each object's observations of the last N days before its newest.")
@click.option("--prior-km", default=None, type=_finite(min=0, min_open=True), metavar="KM",
              help="Hold the fit to the start element set with this 1-sigma position "
                   "uncertainty (short arcs); default: no a-priori.")
@click.option("--out", default=None, metavar="FILE.parquet", type=click.Path(dir_okay=False),
              help="Also write the solutions to this Parquet file.")
def od_command(store_dir, sensor_files, objects, arc_days, prior_km, out):
    """Orbit determination: fit a new SGP4 element set (with covariance) to each object's
    correlated observations, from every sensor at once.

    Writes the fits to STORE/od_solutions/od-<time>.parquet and each converged element set
    to the elements table with source "od", where it competes in the catalogue like any
    other source. An object whose fit fails keeps its element set; the reason is in its row.
    """
    store = _existing_store(store_dir)
    wanted = [int(x) for x in objects.split(",") if x.strip()] or None
    result = od_store(store, sensor_files=sensor_files, objects=wanted,
                      settings=OdSettings(arc_days=arc_days, prior_km=prior_km),
                      now_ns=whole_seconds_ns(dt.datetime.now(dt.timezone.utc)))
    sol = result.solutions
    if out:
        write_parquet(Path(out), sol)
    for row in sol.to_pylist():
        click.echo(solution_line(row))
    status = sol["status"].to_pylist()
    click.echo(f"{sol.num_rows} objects fitted: {status.count('converged')} converged, "
               f"{sol.num_rows - status.count('converged')} kept their element set -> "
               f"{store.path('od_solutions')}" + (f" and {out}" if out else ""))


@main.command()
@click.argument("inputs", nargs=-1, required=False, metavar="INPUT...")
@_store_option(required=False)
@click.option("--start", default=None, metavar="ISO-8601",
              help="Window start, UTC (e.g. 2026-03-09T18:00:00Z); default: now.")
@click.option("--days", default=7.0, show_default=True,
              type=_finite(min=0, min_open=True, max=MAX_DAYS), help="Window length in days.")
@click.option("--threshold-km", default=5.0, show_default=True,
              type=_finite(min=0, min_open=True, max=1000),
              help="Report every pair closer than this.")
@click.option("--max-epoch-gap-days", default=MAX_EPOCH_GAP_DAYS, show_default=True,
              type=_finite(min=0, min_open=True),
              help="Exclude element sets whose epoch is farther than this from the window "
                   "(listed with the gap in the run's exclusions).")
@click.option("--primary", default="", metavar="ID,...",
              help="Screen only these NORAD numbers against everything (default: all-vs-all).")
@click.option("--out", default=None, metavar="FILE.parquet", type=click.Path(dir_okay=False),
              help="Write the conjunctions to this Parquet file.")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Processes to use (default: every local core).")
@_dask_option("the time slices instead of local processes")
@_formats_dir_option()
@click.option("--hbr-m", "screen_hbr_m", type=_finite(min=0), default=None,
              metavar="X", help="Combined hard-body radius in metres for max_pc (and pc) of "
              "events no CDM or --hbr-table covers (default: 10).")
@click.option("--hbr-table", "screen_hbr_table", default=None, metavar="FILE.csv",
              type=click.Path(exists=True, dir_okay=False),
              help="CARA's per-object HBR table (HBR_Mass_Estimates_*.csv): the combined HBR "
                   "is the sum of both objects' where both are listed.")
@_markings_option()
def screen(inputs, store_dir, start, days, threshold_km, max_epoch_gap_days, primary, out,
           workers, dask_address, formats_dirs=(), screen_hbr_m=None, screen_hbr_table=None):
    """Screen element sets for close approaches (all-vs-all, or --primary against all).

    INPUT are element-set files in any format `ssafuse formats` lists; without INPUT the
    store's catalogue is screened. Writes the conjunctions to the store (with a run manifest:
    inputs, parameters, counts, objects excluded and why) and/or to --out.

    Every event gets max_pc (the maximum Pc without covariance, as SOCRATES reports it) for
    the combined hard-body radius, and pc where the store holds a CDM of the same pair and TCA
    (within 60 s); see ssafuse.assess.
    """
    if not inputs and not store_dir:
        raise click.UsageError("give element files (INPUT...) or --store DIR with a catalogue")
    if not store_dir and not out:
        raise click.UsageError("give --out FILE.parquet or --store DIR for the results")
    try:
        primaries = [int(x) for x in primary.split(",") if x.strip()]
    except ValueError:
        raise click.UsageError("--primary takes NORAD numbers separated by commas, "
                               f"got {primary!r}") from None
    now = dt.datetime.now(dt.timezone.utc)
    try:
        start_at = parse_iso(start) if start else now
    except ValueError:
        raise click.UsageError("--start must be ISO-8601 (2026-03-09T18:00:00Z), "
                               f"got {start!r}") from None
    progress = for_stderr()  # bars on a terminal only
    tick = progress.stage("screen", "slice")
    try:
        with progress.showing(), _compile_hint(progress):
            run = screen_inputs(
                inputs, Store(store_dir) if store_dir else None, start=start_at, days=days,
                threshold_km=threshold_km, primaries=primaries, workers=workers,
                dask=dask_address, hbr_m=screen_hbr_m, hbr_table=screen_hbr_table, out=out,
                now=now, progress=tick,
                on_refused=lambda uri, why: progress.write(f"REFUSED {uri}: {why}", err=True),
                formats_dirs=formats_dirs, max_epoch_gap_days=max_epoch_gap_days)
    except NothingToScreen as e:
        raise click.UsageError(str(e)) from None
    finally:
        tick.close()
    st = run.result.stats
    click.echo(f"{st['conjunctions']} close approaches under {threshold_km:g} km "
               f"({st['co_located']} co-located pairs) among {st['objects_screened']} objects, "
               f"{st['objects_excluded']} excluded, in {st['seconds']:.1f} s -> "
               + ", ".join(run.written))


def _setup_run_logging(json_lines: bool) -> None:
    """Log lines of the ``ssafuse.run`` logger to stderr: plain text, or one JSON object per
    line (``time``, ``level``, ``stage``, ``message`` and the stage's counts)."""
    class Plain(logging.Formatter):
        def format(self, record):
            stage = getattr(record, "stage", "-")
            return (f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname:<7} "
                    f"[{stage}] {record.getMessage()}")

    class JsonLines(logging.Formatter):
        def format(self, record):
            out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
                   "level": record.levelname, "stage": getattr(record, "stage", None),
                   "message": record.getMessage()}
            out.update(getattr(record, "fields", {}) or {})
            return json.dumps(out, default=str)

    logger = logging.getLogger("ssafuse.run")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if json_lines else Plain())
    handler.addFilter(RedactingFilter())  # no secret reaches a log line
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _parse_now(now: str | None) -> dt.datetime:
    if not now:
        return dt.datetime.now(dt.timezone.utc)
    try:
        return parse_iso(now)
    except ValueError:
        raise click.UsageError("--now must be ISO-8601 (2026-03-10T02:00:00Z), "
                               f"got {now!r}") from None


@main.command("run")
@click.option("--config", "config_file", required=True, metavar="FILE.toml",
              type=click.Path(dir_okay=False),
              help="The job's configuration (see examples/nightly.toml).")
@click.option("--now", default=None, metavar="ISO-8601",
              help="The time to run as (default: the clock): the ingest time, and the window "
                   "start (floored to screen.align_hours) when the config sets none.")
@click.option("--log-json", is_flag=True, help="Log JSON lines instead of plain lines.")
@_formats_dir_option()
@_markings_option()
def run_command(config_file, now, log_json, formats_dirs):
    """The nightly job: ingest -> catalogue -> correlate -> screen -> assess -> report ->
    exports, in one command, for cron.

    Logs to stderr; prints a plain-text summary (for cron mail) to stdout. Output goes to
    STORE/runs/<run id>/. Feed descriptions in --formats-dir (or $SSAFUSE_FORMATS_DIR) are
    used besides the config's formats_dir. Re-running the same night (same window, same
    settings) changes nothing already done. On a terminal, each long stage shows a progress
    bar on stderr (none in cron, in a pipe or with --log-json).

    \b
    Exit codes: 0 success; 1 success with warnings (a feed failed or some files were
    refused; the rest ran); 2 failure (bad config, or a stage failed); 3 another run holds
    the store's lock (nothing was done).
    """
    _setup_run_logging(log_json)
    try:
        cfg = nightly.load_config(config_file, formats_dirs=formats_dirs)
    except nightly.ConfigError as e:
        click.echo(f"ssafuse run: configuration error: {e}", err=True)
        sys.exit(nightly.EXIT_FAILED)
    # progress bars on a terminal only, never with --log-json (stderr is JSON lines then)
    progress = for_stderr(quiet=log_json)
    logger = logging.getLogger("ssafuse.run")
    try:
        with progress.showing(loggers=[logger]), numba_compile_hint(
                lambda text: logger.info(text, extra={"stage": "numba"})):
            result = nightly.run(cfg, now=_parse_now(now), progress=progress)
    except nightly.AlreadyRunning as e:
        click.echo(f"ssafuse run: {e}", err=True)
        sys.exit(nightly.EXIT_ALREADY_RUNNING)

    click.echo(result.summary, nl=False)
    sys.exit(result.exit_code)


@main.command("fetch")
@click.option("--config", "config_file", required=True, metavar="FILE.toml",
              type=click.Path(dir_okay=False),
              help="The job's configuration: its feeds with a provider are fetched.")
@click.option("--feed", "sources", multiple=True, metavar="SOURCE",
              help="Fetch only this feed (its source name); repeatable. Default: every feed "
                   "with a provider.")
@click.option("--now", default=None, metavar="ISO-8601",
              help="The time to fetch as (default: the clock).")
def fetch_command(config_file, sources, now):
    """Download the config's live feeds into STORE/_raw/ (nothing is ingested: `ssafuse
    run` ingests them), within each provider's rate limits, skipping a feed downloaded less
    than its min_interval_s ago. One line per feed on stdout.

    \b
    Exit codes: 0 every feed fetched (or current); 1 at least one fetch failed (its last
    good download, if any, stays in use); 2 bad config or an unknown --feed.
    """
    try:
        cfg = nightly.load_config(config_file)
    except nightly.ConfigError as e:
        raise click.UsageError(f"configuration error: {e}") from None
    feeds = [f for f in cfg.feeds if f.remote is not None and (not sources
                                                              or f.source in sources)]
    unknown = set(sources) - {f.source for f in feeds}
    if unknown or not feeds:
        raise click.UsageError(f"no feed with a provider named {sorted(unknown) or ''} in "
                               f"{config_file}")
    store = Store(cfg.store, storage_options=cfg.storage_options)
    local = None if store.local else work_dir(cfg)
    failed = 0
    for feed in feeds:
        got = fetch_feed(store, feed.source, feed.remote, now=_parse_now(now),
                         state_dir=local, local_dir=local)
        failed += got.status == "failed"
        age = f", {got.age_hours:.1f} h old" if got.age_hours is not None else ""
        click.echo(redact(f"{feed.source}: {got.status}, {got.requests} requests"
                          + (f", {got.path}{age}" if got.path else "")
                          + (f" ({got.message})" if got.message else "")))
    sys.exit(EXIT_SOME_FILES_REFUSED if failed else EXIT_OK)


@main.command("export")
@click.option("--release-to", "code", required=True, metavar="CODE",
              help="The partner: a country trigraph (GBR) or tetragraph.")
@click.option("--run", "run_ref", required=True, metavar="RUN",
              help="A run folder (STORE/runs/<run id>), or a run id or 'latest' with --store.")
@_store_option(required=False)
@click.option("--out", "out_dir", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Folder to write the partner's export to.")
@click.option("--format", "formats", multiple=True, metavar="FORMAT",
              type=click.Choice(EXPORT_FORMATS),
              help="What the export holds (repeatable): " + ", ".join(EXPORT_FORMATS)
                   + ". Default: the run's [exports] formats (parquet and cdm unless set). "
                     "Parquet is always written: the report is built from it.")
@_markings_option()
def export_command(code, run_ref, store_dir, out_dir, formats):
    """Write one partner's export of a run: Parquet (conjunctions, catalogue), CDMs and the
    report, holding only records releasable to CODE, each with its marking, and how many
    were withheld (export.json).

    A record goes to CODE when its releasability admits CODE, or when it states no
    releasability and is UNCLASSIFIED; NOFORN and classified records without REL TO are
    withheld.
    """
    try:
        check_code(code)
        run_dir = find_run(run_ref, store_dir)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from None
    try:
        with _compile_hint(Progress()):
            res = export_run(run_dir, code, out_dir, formats=formats or None)
    except SsafuseError as e:
        raise click.UsageError(str(e)) from None
    click.echo(f"export for {code} -> {out_dir} [{res.marking}]")
    for table in res.exported:
        click.echo(f"  {table:<13} exported {res.exported[table]:>7}  withheld "
                   f"{res.withheld.get(table, 0):>7}")
    for name, f in res.files.items():
        click.echo(f"  {name:<26} {f['written']:>7} written"
                   + (f", {f['refused']} refused: " + "; ".join(
                       f"{n} {why}" for why, n in f["reasons"].items()) if f["refused"] else ""))


@main.command("cdm")
@_store_option()
@click.option("--out", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False), help="Folder for the CDM files (created).")
@click.option("--run", "run_file", default=None, metavar="FILE.parquet",
              type=click.Path(exists=True, dir_okay=False),
              help="Conjunctions of one screening run (default: the newest "
                   "STORE/conjunctions/screen-*.parquet).")
@click.option("--format", "fmt", type=click.Choice(["kvn", "xml"]), default="kvn",
              show_default=True, help="CDM encoding.")
@click.option("--cdm-version", "version", type=click.Choice(CDM_VERSIONS), default="1.0",
              show_default=True, help="1.0: CCSDS 508.0-B-1, valid against the CCSDS schema; "
                                      "2.0: adds CLASSIFICATION, OD_EPOCH, max Pc keywords.")
@click.option("--elements", "element_files", multiple=True, metavar="FILE",
              type=click.Path(exists=True),
              help="Element-set files the run screened, when they are not in the store "
                   "(repeatable); the store's elements and catalogue are always searched.")
@click.option("--originator", default="SSAFUSE", show_default=True, metavar="NAME",
              help="ORIGINATOR written in each CDM (also the MESSAGE_ID prefix).")
def cdm_command(store_dir, out_dir, run_file, fmt, version, element_files, originator):
    """Write one CCSDS CDM per conjunction of a screening run.

    States are SGP4 at TCA from the element sets the run used, in GCRF; the covariance is
    written as zeros with COMMENTs saying that element sets carry no covariance. Events whose
    element sets cannot be found are listed and skipped (exit code 1).
    """
    store = _existing_store(store_dir)
    try:
        conj, paths, run_file = cdms_for_screening(
            store, out_dir, run_file=run_file, fmt=fmt, element_files=element_files,
            originator=originator, creation_date=dt.datetime.now(dt.timezone.utc),
            version=version)
    except FileNotFoundError as e:
        raise click.UsageError(str(e)) from None
    missing = [r for r, p in zip(conj.to_pylist(), paths) if p is None]
    for r in missing:
        click.echo(f"SKIPPED {r['object_id_1']}-{r['object_id_2']} at {r['tca']}: its element "
                   "sets are not in the store (give --elements FILE)", err=True)
    click.echo(f"{len(paths) - len(missing)} CDMs ({fmt}, version {version}) from {run_file} "
               f"-> {out_dir}"
               + (f"; {len(missing)} skipped" if missing else ""))
    sys.exit(EXIT_SOME_FILES_REFUSED if missing else EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()

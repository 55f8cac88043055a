"""The ``ssafuse`` command line: thin wiring over the Python API.

Exit codes (every command):

* 0: success. Records refused inside a file are normal: they are counted and kept in
  ``rejects``, not an error.
* 1: done, but at least one input file was refused as a whole (unreadable, or no format
  recognised it); every other file was still ingested.
* 2: usage error: bad option, bad marking text, unknown format name, missing store.
"""

from __future__ import annotations

import sys

import click

from .versions import __version__
from .errors import MarkingError, UnknownFormatError

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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ssafuse")
def main():
    """ssafuse: fuse allied and public space-surveillance feeds into one catalogue in Parquet.

    \b
    Exit codes: 0 success; 1 some input files refused as a whole (the rest ingested);
    2 usage error.
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@_store_option()
@click.option("--source", default="local", show_default=True, metavar="NAME",
              help="Name of the feed these files come from (letters, digits, '._-').")
@click.option("--format", "format_name", default=None, metavar="NAME",
              help="Force a format (see `ssafuse formats`); default: sniffed per file.")
@click.option("--marking", default="UNCLASSIFIED", show_default=True, metavar="TEXT",
              help="The feed's default marking, e.g. 'UNCLASSIFIED//REL TO USA, GBR'; applied "
                   "to whatever a record does not state itself.")
@_dask_option("the files (one task each; the store must be one the workers reach)")
def ingest(inputs, store_dir, source, format_name, marking, dask_address):
    """Read element-set files (paths, folders or globs) into the store.

    Prints accepted / rejected per file. Re-ingesting a file already in the store (same
    content, same source) changes nothing.
    """
    from .formats.registry import get_format
    from .markings import parse
    from .ingestion import ingest as ingest_files
    from .store import Store

    try:
        parse(marking)
        if format_name:
            get_format(format_name)
    except (MarkingError, UnknownFormatError) as e:
        raise click.UsageError(str(e)) from None

    def show(rep):
        what = {"ingested": f"{rep.accepted:>8} accepted {rep.rejected:>6} rejected",
                "already-ingested": "    already ingested, unchanged",
                "refused": "    REFUSED"}[rep.status]
        click.echo(f"{what}  {rep.uri}  [{rep.format or '-'}]"
                   + (f"  {rep.message}" if rep.status == "refused" else ""))

    report = ingest_files(Store(store_dir), inputs, source=source, format=format_name,
                          marking=marking, progress=show, dask=dask_address)
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
@click.option("--disagree-km", default=5.0, show_default=True, type=click.FloatRange(min=0),
              help="Flag objects whose sources' element sets are farther apart than this.")
def catalogue(store_dir, out, precedence, disagree_km):
    """Build one catalogue from every element set in the store: one row per object.

    Writes STORE/catalogue/catalogue.parquet (and --out if given).
    """
    from pathlib import Path

    from .catalogue import build_catalogue
    from .files import write_parquet
    from .store import Store

    store = Store(store_dir)
    if not store.exists():
        raise click.UsageError(f"no store at {store_dir}")
    cat = build_catalogue(store.table("elements"),
                          precedence=[s for s in precedence.split(",") if s],
                          disagree_km=disagree_km)
    path = store.write("catalogue", cat, "catalogue.parquet")
    if out:
        write_parquet(Path(out), cat)
    multi = sum(1 for n in cat["n_sources"].to_pylist() if n > 1)
    disagree = sum(cat["sources_disagree"].to_pylist())
    click.echo(f"{cat.num_rows} objects ({multi} reported by several sources, {disagree} "
               f"whose sources disagree by more than {disagree_km:g} km) -> {path}"
               + (f" and {out}" if out else ""))


@main.command()
def formats():
    """List the formats ssafuse reads and how it recognises each."""
    from .formats.registry import formats as all_formats

    for f in all_formats():
        ext = " ".join(f.extensions)
        click.echo(f"{f.name:<14} {f.table:<12} priority {f.priority:>3}  {f.description}"
                   + (f"  [{ext}]" if ext else ""))


@main.command("pc")
@click.argument("cdms", nargs=-1, required=True, metavar="CDM...")
@click.option("--hbr-m", type=click.FloatRange(min=0), default=None, metavar="X",
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
    from .pc import pc_of_files

    rows, refused = pc_of_files(cdms, hbr_m=hbr_m, hbr_table=hbr_table, method=method, out=out,
                           echo=click.echo)
    sys.exit(EXIT_SOME_FILES_REFUSED if refused else EXIT_OK)


@main.command("correlate")
@_store_option()
@click.option("--gate-arcmin", default=30.0, show_default=True, type=click.FloatRange(min=0),
              help="Angular gate: the best object closer than this is assigned, else UCT.")
@click.option("--max-age-days", default=30.0, show_default=True,
              type=click.FloatRange(min=0), help="Use no element set farther than this in "
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
    import datetime as dt
    from pathlib import Path

    from .correlation import correlate
    from .sensors import merge, read_sensors
    from .files import write_parquet
    from .store import Store

    store = Store(store_dir)
    if not store.root.exists():
        raise click.UsageError(f"no store at {store_dir}")
    sensors = merge(*[read_sensors(f) for f in sensor_files], store.table("sensors"))
    if sensor_files:
        store.write("sensors", sensors, "sensors.parquet")
    now = dt.datetime.now(dt.timezone.utc)
    now_ns = int(now.timestamp()) * 10**9
    corr, rejects = correlate(store.table("observations"), store.table("elements"), sensors,
                              gate_arcmin=gate_arcmin, max_age_days=max_age_days,
                              now_ns=now_ns)
    path = store.write("correlations", corr, "correlations.parquet")
    if rejects.num_rows:
        store.append_rejects(rejects, source="correlate", day=str(now.date()),
                             name=f"correlate-{now.strftime('%H%M%S')}")
    if out:
        write_parquet(Path(out), corr)
    status = corr["status"].to_pylist()
    click.echo(f"{corr.num_rows} observations: {status.count('correlated')} correlated, "
               f"{status.count('uct')} UCT, {status.count('no-angles')} without angles, "
               f"{sum(corr['cross_tag'].to_pylist())} possible cross-tags; "
               f"{rejects.num_rows} rejected (unknown sensor) -> {path}"
               + (f" and {out}" if out else ""))


@main.command()
@click.argument("inputs", nargs=-1, required=False, metavar="INPUT...")
@_store_option(required=False)
@click.option("--start", default=None, metavar="ISO-8601",
              help="Window start, UTC (e.g. 2026-03-09T18:00:00Z); default: now.")
@click.option("--days", default=7.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Window length in days.")
@click.option("--threshold-km", default=5.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Report every pair closer than this.")
@click.option("--primary", default="", metavar="ID,...",
              help="Screen only these NORAD numbers against everything (default: all-vs-all).")
@click.option("--out", default=None, metavar="FILE.parquet", type=click.Path(dir_okay=False),
              help="Write the conjunctions to this Parquet file.")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Processes to use (default: every local core).")
@_dask_option("the time slices instead of local processes")
@click.option("--hbr-m", "screen_hbr_m", type=click.FloatRange(min=0), default=None,
              metavar="X", help="Combined hard-body radius in metres for max_pc (and pc) of "
              "events no CDM or --hbr-table covers (default: 10).")
@click.option("--hbr-table", "screen_hbr_table", default=None, metavar="FILE.csv",
              type=click.Path(exists=True, dir_okay=False),
              help="CARA's per-object HBR table (HBR_Mass_Estimates_*.csv): the combined HBR "
                   "is the sum of both objects' where both are listed.")
def screen(inputs, store_dir, start, days, threshold_km, primary, out, workers, dask_address,
           screen_hbr_m=None, screen_hbr_table=None):
    """Screen element sets for close approaches (all-vs-all, or --primary against all).

    INPUT are element-set files in any format `ssafuse formats` lists; without INPUT the
    store's catalogue is screened. Writes the conjunctions to the store (with a run manifest:
    inputs, parameters, counts, objects excluded and why) and/or to --out.

    Every event gets max_pc (the maximum Pc without covariance, as SOCRATES reports it) for
    the combined hard-body radius, and pc where the store holds a CDM of the same pair and TCA
    (within 60 s); see ssafuse.assess.
    """
    import datetime as dt
    import time
    from pathlib import Path

    import pyarrow as pa

    from .records import read_file
    from .screening import screen as run_screen
    from .files import expand_inputs, write_parquet
    from .store import Store

    if not inputs and not store_dir:
        raise click.UsageError("give element files (INPUT...) or --store DIR with a catalogue")
    if not store_dir and not out:
        raise click.UsageError("give --out FILE.parquet or --store DIR for the results")
    try:
        primaries = [int(x) for x in primary.split(",") if x.strip()]
    except ValueError:
        raise click.UsageError(f"--primary takes NORAD numbers separated by commas, got {primary!r}") from None
    now = dt.datetime.now(dt.timezone.utc)
    if start:
        try:
            start_at = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            raise click.UsageError(f"--start must be ISO-8601 (2026-03-09T18:00:00Z), got {start!r}") from None
        if start_at.tzinfo is None:
            start_at = start_at.replace(tzinfo=dt.timezone.utc)
    else:
        start_at = now
    started = time.perf_counter()
    store = Store(store_dir) if store_dir else None
    file_inputs = []
    if inputs:
        tables = []
        for uri in expand_inputs(inputs):
            try:
                res = read_file(uri, source="local")
            except (OSError, UnknownFormatError) as e:
                click.echo(f"REFUSED {uri}: {e}", err=True)
                continue
            tables.append(res.elements)
            file_inputs.append({"uri": uri, "format": res.format, "sha256": res.sha256,
                                "read": res.records_read, "accepted": res.accepted,
                                "rejected": res.rejected})
        if not tables:
            raise click.UsageError("no element sets could be read from INPUT")
        # Several files may hold the same object: screen one element set per object, chosen
        # as `ssafuse catalogue` chooses (newest epoch).
        from .catalogue import build_catalogue

        elements = build_catalogue(pa.concat_tables(tables))
    else:
        elements = store.table("catalogue")
        file_inputs.append({"uri": str(store.path("catalogue")), "accepted": elements.num_rows})
        if elements.num_rows == 0:
            raise click.UsageError(f"the store {store_dir} has no catalogue: run `ssafuse catalogue`")

    progress = None
    if sys.stderr.isatty():
        def progress(done, total):
            click.echo(f"\rscreening: {done}/{total} time slices", nl=done == total, err=True)
    result = run_screen(elements, start_at, days=days, threshold_km=threshold_km,
                        primaries=primaries or None, workers=workers, progress=progress,
                        dask=dask_address)
    from .assessment import assess

    st = result.stats
    st["parameters"] = dict(st["parameters"], hbr_m=screen_hbr_m, hbr_table=screen_hbr_table)
    result.conjunctions = assess(
        result.conjunctions, hbr_m=screen_hbr_m, hbr_table=screen_hbr_table, elements=elements,
        cdms=store.table("cdms") if store is not None else None)
    where = []
    if out:
        write_parquet(Path(out), result.conjunctions)
        where.append(out)
    if store is not None:
        path, manifest = store.write_screening(
            result.conjunctions, excluded=result.excluded, inputs=file_inputs,
            parameters=st["parameters"], now=now, started=started,
            counts={k: v for k, v in st.items() if k != "parameters"})
        where.append(f"{path} (manifest {manifest})")
    click.echo(f"{st['conjunctions']} close approaches under {threshold_km:g} km "
               f"({st['co_located']} co-located pairs) among {st['objects_screened']} objects, "
               f"{st['objects_excluded']} excluded, in {st['seconds']:.1f} s -> "
               + ", ".join(where))


def _setup_run_logging(json_lines: bool) -> None:
    """Log lines of the ``ssafuse.run`` logger to stderr: plain text, or one JSON object per
    line (``time``, ``level``, ``stage``, ``message`` and the stage's counts)."""
    import json
    import logging

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
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _parse_now(now: str | None):
    import datetime as dt

    if not now:
        return dt.datetime.now(dt.timezone.utc)
    try:
        t = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
    except ValueError:
        raise click.UsageError(f"--now must be ISO-8601 (2026-03-10T02:00:00Z), got {now!r}") from None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t


@main.command("run")
@click.option("--config", "config_file", required=True, metavar="FILE.toml",
              type=click.Path(dir_okay=False),
              help="The job's configuration (see examples/nightly.toml).")
@click.option("--now", default=None, metavar="ISO-8601",
              help="The time to run as (default: the clock): the ingest time, and the window "
                   "start (floored to screen.align_hours) when the config sets none.")
@click.option("--log-json", is_flag=True, help="Log JSON lines instead of plain lines.")
def run_command(config_file, now, log_json):
    """The nightly job: ingest -> catalogue -> correlate -> screen -> assess -> report ->
    exports, in one command, for cron.

    Logs to stderr; prints a plain-text summary (for cron mail) to stdout. Output goes to
    STORE/runs/<run id>/. Re-running the same night (same window, same settings) changes
    nothing already done.

    \b
    Exit codes: 0 success; 1 success with warnings (a feed failed or some files were
    refused; the rest ran); 2 failure (bad config, or a stage failed); 3 another run holds
    the store's lock (nothing was done).
    """
    from .nightly.job import (EXIT_ALREADY_RUNNING, EXIT_FAILED, AlreadyRunning, ConfigError,
                      load_config, run)

    _setup_run_logging(log_json)
    try:
        cfg = load_config(config_file)
    except ConfigError as e:
        click.echo(f"ssafuse run: configuration error: {e}", err=True)
        sys.exit(EXIT_FAILED)
    progress = None
    if sys.stderr.isatty():
        def progress(done, total):
            click.echo(f"\rscreening: {done}/{total} time slices", nl=done == total, err=True)
    try:
        result = run(cfg, now=_parse_now(now), progress=progress)
    except AlreadyRunning as e:
        click.echo(f"ssafuse run: {e}", err=True)
        sys.exit(EXIT_ALREADY_RUNNING)
    click.echo(result.summary, nl=False)
    sys.exit(result.exit_code)


@main.command("export")
@click.option("--release-to", "code", required=True, metavar="CODE",
              help="The partner: a country trigraph (GBR) or tetragraph.")
@click.option("--run", "run_ref", required=True, metavar="RUN",
              help="A run folder (STORE/runs/<run id>), or a run id or 'latest' with --store.")
@_store_option(required=False)
@click.option("--out", "out_dir", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Folder to write the partner's export to.")
def export_command(code, run_ref, store_dir, out_dir):
    """Write one partner's export of a run: Parquet (conjunctions, catalogue), CDMs and the
    report, holding only records releasable to CODE, each with its marking, and how many
    were withheld (export.json).

    A record goes to CODE when its releasability admits CODE, or when it states no
    releasability and is UNCLASSIFIED; NOFORN and classified records without REL TO are
    withheld.
    """
    from .export import check_code, export_run, find_run

    try:
        check_code(code)
        run_dir = find_run(run_ref, store_dir)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from None
    res = export_run(run_dir, code, out_dir)
    click.echo(f"export for {code} -> {out_dir} [{res.marking}]")
    for table in res.exported:
        click.echo(f"  {table:<13} exported {res.exported[table]:>7}  withheld "
                   f"{res.withheld.get(table, 0):>7}")


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
@click.option("--elements", "element_files", multiple=True, metavar="FILE",
              type=click.Path(exists=True),
              help="Element-set files the run screened, when they are not in the store "
                   "(repeatable); the store's elements and catalogue are always searched.")
@click.option("--originator", default="SSAFUSE", show_default=True, metavar="NAME",
              help="ORIGINATOR written in each CDM (also the MESSAGE_ID prefix).")
def cdm_command(store_dir, out_dir, run_file, fmt, element_files, originator):
    """Write one CCSDS CDM per conjunction of a screening run.

    States are SGP4 at TCA from the element sets the run used, in GCRF; the covariance is
    written as zeros with COMMENTs saying that element sets carry no covariance. Events whose
    element sets cannot be found are listed and skipped (exit code 1).
    """
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from .assessment import write_cdms
    from .records import read_file
    from .schema import CONJUNCTIONS
    from .store import Store

    store = Store(store_dir)
    if not store.exists():
        raise click.UsageError(f"no store at {store_dir}")
    if run_file is None:
        runs = store.screenings()
        if not runs:
            raise click.UsageError(f"the store {store_dir} holds no screening run: run "
                                   "`ssafuse screen --store` first, or give --run")
        run_file = runs[-1]
        conj = store.read_parquet(run_file)
    else:
        conj = pq.read_table(run_file)
    for f in CONJUNCTIONS:   # runs written before a column was added: that column null
        if f.name not in conj.column_names:
            conj = conj.append_column(f, pa.nulls(conj.num_rows, f.type))
    conj = conj.select(CONJUNCTIONS.names).cast(CONJUNCTIONS)
    common = ["object_id", "intl_designator", "object_name", "epoch", "mean_motion_rev_day",
              "eccentricity", "inclination_deg", "raan_deg", "arg_perigee_deg",
              "mean_anomaly_deg", "bstar", "mean_motion_dot", "mean_motion_ddot",
              "object_type", "source", "source_sha256", "source_record"]
    tables = [store.table("elements", columns=common), store.table("catalogue", columns=common)]
    tables += [read_file(f, source="local").elements.select(common) for f in element_files]
    elements = pa.concat_tables([t.cast(tables[0].schema) for t in tables])
    now = dt.datetime.now(dt.timezone.utc)
    paths = write_cdms(conj, elements, out_dir, fmt=fmt, creation_date=now,
                       originator=originator)
    missing = [r for r, p in zip(conj.to_pylist(), paths) if p is None]
    for r in missing:
        click.echo(f"SKIPPED {r['object_id_1']}-{r['object_id_2']} at {r['tca']}: its element "
                   "sets are not in the store (give --elements FILE)", err=True)
    click.echo(f"{len(paths) - len(missing)} CDMs ({fmt}) from {run_file} -> {out_dir}"
               + (f"; {len(missing)} skipped" if missing else ""))
    sys.exit(EXIT_SOME_FILES_REFUSED if missing else EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()

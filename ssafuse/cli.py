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

from . import __version__
from .errors import MarkingError, UnknownFormatError

EXIT_OK, EXIT_SOME_FILES_REFUSED, EXIT_USAGE = 0, 1, 2


def _store_option(required: bool = True):
    return click.option("--store", "store_dir", required=required, metavar="DIR",
                        type=click.Path(file_okay=False),
                        help="Store directory (a folder of Parquet files; created if absent).")


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
def ingest(inputs, store_dir, source, format_name, marking):
    """Read element-set files (paths, folders or globs) into the store.

    Prints accepted / rejected per file. Re-ingesting a file already in the store (same
    content, same source) changes nothing.
    """
    from .ingest import get_format
    from .markings import parse
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

    report = Store(store_dir).ingest(inputs, source=source, format=format_name,
                                     marking=marking, progress=show)
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
    from .store import Store, write_parquet

    store = Store(store_dir)
    if not store.root.exists():
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
    from .ingest import formats as all_formats

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

    from .correlate import correlate
    from .sensors import merge, read_sensors
    from .store import Store, _file_schema, write_parquet

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
        part = (store.path("rejects") / "source=correlate" / f"ingest_date={now.date()}"
                / f"part-correlate-{now.strftime('%H%M%S')}.parquet")
        write_parquet(part, rejects.select(_file_schema("rejects").names).cast(
            _file_schema("rejects")))
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
def screen(inputs, store_dir, start, days, threshold_km, primary, out, workers):
    """Screen element sets for close approaches (all-vs-all, or --primary against all).

    INPUT are element-set files in any format `ssafuse formats` lists; without INPUT the
    store's catalogue is screened. Writes the conjunctions to the store (with a run manifest:
    inputs, parameters, counts, objects excluded and why) and/or to --out.
    """
    import datetime as dt
    import time
    from pathlib import Path

    import pyarrow as pa

    from .ingest import read_file
    from .screen import screen as run_screen
    from .store import Store, expand_inputs, write_parquet

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
                        primaries=primaries or None, workers=workers, progress=progress)
    st = result.stats
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


if __name__ == "__main__":  # pragma: no cover
    main()

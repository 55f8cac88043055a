"""The canonical tables: one Arrow schema per table, the single source of truth.

Readers (ingest adapters), writers (the store) and the docs all take their column names, types
and units from here. Units are in the column names (``_km``, ``_deg``, ``_rev_day``); where a
name cannot carry the unit (``bstar``, the mean-motion derivatives) the field metadata does.
Every time is ``timestamp[ns, UTC]``.

Tables later capabilities add (observations, sensors, conjunctions, cdms, correlations) are
named in :data:`TABLES` so the store lays them out the same way; their schemas join this module
with the capability that fills them.
"""

from __future__ import annotations

import pyarrow as pa

TIME = pa.timestamp("ns", tz="UTC")


def _f(name: str, type_: pa.DataType, doc: str, *, unit: str | None = None,
       nullable: bool = True) -> pa.Field:
    meta = {"doc": doc}
    if unit:
        meta["unit"] = unit
    return pa.field(name, type_, nullable=nullable, metadata=meta)


#: Where a record came from: which feed, which file, which record in it, and when.
PROVENANCE_FIELDS = [
    _f("source", pa.string(), "feed name given at ingest (e.g. 'spacetrack', 'ukspoc')",
       nullable=False),
    _f("source_format", pa.string(), "format the record was read as (see `ssafuse formats`)",
       nullable=False),
    _f("source_uri", pa.string(), "path or URL of the file the record was read from",
       nullable=False),
    _f("source_sha256", pa.string(), "SHA-256 of the whole input file, hex", nullable=False),
    _f("source_record", pa.int64(), "record number in the file: 1-based line number of the "
       "record's first line for text formats, 1-based index for JSON/XML", nullable=False),
    _f("ingested_at", TIME, "when the record entered the store (UTC)", nullable=False),
]

#: Who may see a record.
MARKING_FIELDS = [
    _f("classification", pa.string(), "UNCLASSIFIED, CONFIDENTIAL, SECRET or TOP SECRET",
       nullable=False),
    _f("releasable_to", pa.list_(pa.string()), "country trigraphs / coalition tetragraphs the "
       "record may be released to; null when the marking states no releasability caveat"),
    _f("marking", pa.string(), "the marking text as received (or the feed default applied)",
       nullable=False),
]

ELEMENT_FIELDS = [
    _f("object_id", pa.int64(), "NORAD catalogue number (Alpha-5 and 6-9 digit numbers decoded)",
       nullable=False),
    _f("intl_designator", pa.string(), "COSPAR international designator, YYYY-NNNPPP"),
    _f("object_name", pa.string(), "object name as received"),
    _f("epoch", TIME, "element set epoch (UTC)", nullable=False),
    _f("mean_motion_rev_day", pa.float64(), "SGP4 (Kozai) mean motion", unit="rev/day",
       nullable=False),
    _f("eccentricity", pa.float64(), "mean eccentricity", unit="1", nullable=False),
    _f("inclination_deg", pa.float64(), "mean inclination", unit="deg", nullable=False),
    _f("raan_deg", pa.float64(), "right ascension of the ascending node", unit="deg",
       nullable=False),
    _f("arg_perigee_deg", pa.float64(), "argument of perigee", unit="deg", nullable=False),
    _f("mean_anomaly_deg", pa.float64(), "mean anomaly", unit="deg", nullable=False),
    _f("bstar", pa.float64(), "SGP4 drag term B*", unit="1/earth_radii", nullable=False),
    _f("mean_motion_dot", pa.float64(), "first derivative of mean motion divided by 2, "
       "as in TLE line 1 and OMM MEAN_MOTION_DOT", unit="rev/day^2"),
    _f("mean_motion_ddot", pa.float64(), "second derivative of mean motion divided by 6, "
       "as in TLE line 1 and OMM MEAN_MOTION_DDOT", unit="rev/day^3"),
    _f("ephemeris_type", pa.int16(), "0 or 2 for SGP4 (4 = SGP4-XP)"),
    _f("element_set_no", pa.int32(), "element set number"),
    _f("rev_at_epoch", pa.int64(), "revolution number at epoch"),
    _f("object_type", pa.string(), "PAYLOAD, ROCKET BODY, DEBRIS, UNKNOWN, where the feed says"),
    _f("rcs_size", pa.string(), "SMALL, MEDIUM, LARGE, where the feed says"),
    _f("country", pa.string(), "owner / country code, where the feed says"),
]

ELEMENTS = pa.schema(ELEMENT_FIELDS + PROVENANCE_FIELDS + MARKING_FIELDS,
                     metadata={"table": "elements"})

#: Columns an adapter may fill for an element set (everything but provenance and marking).
ELEMENT_COLUMNS = tuple(f.name for f in ELEMENT_FIELDS)

REJECTS = pa.schema([
    _f("source", pa.string(), "feed name given at ingest", nullable=False),
    _f("source_format", pa.string(), "format the file was read as; 'unknown' when none matched",
       nullable=False),
    _f("source_uri", pa.string(), "path or URL of the file", nullable=False),
    _f("source_sha256", pa.string(), "SHA-256 of the whole input file, hex", nullable=False),
    _f("source_record", pa.int64(), "record number (as in elements.source_record); 0 when the "
       "whole file was refused", nullable=False),
    _f("table", pa.string(), "the table the record was meant for", nullable=False),
    _f("raw", pa.string(), "the record's raw text, truncated to 512 characters",
       nullable=False),
    _f("reason", pa.string(), "why it was refused, in words a person can act on",
       nullable=False),
    _f("field", pa.string(), "the offending field, where one is to blame"),
    _f("ingested_at", TIME, "when the record was refused (UTC)", nullable=False),
], metadata={"table": "rejects"})

#: A catalogue entry: the chosen element set of each object, plus how it was chosen.
CATALOGUE = pa.schema(
    ELEMENT_FIELDS + PROVENANCE_FIELDS + MARKING_FIELDS + [
        _f("n_element_sets", pa.int64(), "element sets of this object in the store",
           nullable=False),
        _f("n_sources", pa.int64(), "distinct sources that reported this object",
           nullable=False),
        _f("sources", pa.list_(pa.string()), "the sources that reported it, sorted",
           nullable=False),
        _f("max_disagreement_km", pa.float64(), "largest distance between the chosen element "
           "set and each other source's newest one, both propagated with SGP4 to the chosen "
           "epoch; null with a single source", unit="km"),
        _f("disagreement_source", pa.string(), "the source farthest from the chosen one"),
        _f("sources_disagree", pa.bool_(), "max_disagreement_km above the threshold",
           nullable=False),
    ], metadata={"table": "catalogue"})

SCHEMAS: dict[str, pa.Schema] = {
    "elements": ELEMENTS,
    "rejects": REJECTS,
    "catalogue": CATALOGUE,
}

#: Every table the store knows, including those later capabilities fill.
TABLES = ("elements", "rejects", "catalogue", "observations", "sensors", "correlations",
          "conjunctions", "cdms")

#: Hive partition keys per table (directory levels, in order). Partition columns are not
#: repeated inside the Parquet files; the store adds them back when reading.
PARTITIONS: dict[str, tuple[str, ...]] = {
    "elements": ("source", "ingest_date"),
    "rejects": ("source", "ingest_date"),
    "catalogue": (),
}


def empty(table: str) -> pa.Table:
    """An empty table with the canonical schema of ``table``."""
    return SCHEMAS[table].empty_table()

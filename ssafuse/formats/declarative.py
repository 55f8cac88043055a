"""Declarative partner feeds: a layout described in a TOML file, read by one generic reader.

A partner's custom CSV or JSON feed needs a file in ``ingest_formats/``, not code (Skyfield's
``_MPCORB_COLUMNS`` idea, one level up). Each file names the container (a JSON list of objects,
JSON lines, or CSV with a header row), the keys that identify such a file, the key → canonical
column mapping with units and time format, the key that holds the record's marking, and
defaults. The file format is documented in ``ingest_formats/README.md``; a short one::

    name = "udl-elset"
    description = "UDL ElSet records, JSON list"
    container = { kind = "json" }
    identify = { keys = ["satNo", "meanMotion", "epoch"] }
    marking = { key = "classificationMarking" }

    [fields]
    object_id = "satNo"
    epoch = { key = "epoch", time = "iso8601" }
    mean_motion_rev_day = { key = "meanMotion", unit = "rev/day" }
    ...

>>> from ssafuse.formats import declarative
>>> [f.name for f in declarative.formats()]                      # doctest: +SKIP
['udl-elset']

Descriptions are checked when they are loaded; a bad one raises :class:`DescriptionError`
naming the file and the TOML key. Records are read leniently: each is accepted or becomes a
:class:`~ssafuse.formats.base.Reject` whose reason names the feed key and the canonical
column; only a file that cannot be read as its container at all (JSON that does not parse)
raises :class:`~ssafuse.errors.FormatError`.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from typing import Any, BinaryIO, Iterator

from .. import markings as mk
from ..errors import FormatError, MarkingError
from ..schema import ELEMENT_COLUMNS, ELEMENT_FIELDS, OBSERVATION_COLUMNS, OBSERVATION_FIELDS
from .base import (Batch, Format, Reject, decode, load_json, parse_float, parse_int,
                   raw_decode_json, split_lines, validate_elements)
from ..timeutil import parse_epoch

__all__ = ["DescriptionError", "Description", "FieldSpec", "formats", "load", "parse_description",
           "DEFAULT_PRIORITY", "UNITS", "TIME_FORMATS"]

#: Priority of declarative formats: above the built-in generic adapters (TLE, OMM: 10 or
#: less), so a file a partner layout recognises is read with that layout.
DEFAULT_PRIORITY = 20
BATCH_RECORDS = 5000
_GOT_MAX = 80

_TAU = 2.0 * math.pi
_ANGLE = {"deg": 1.0, "rad": 180.0 / math.pi}
#: Units each numeric column may be given in, with the factor to the canonical unit.
UNITS: dict[str, dict[str, float]] = {
    "mean_motion_rev_day": {"rev/day": 1.0, "rad/min": 1440.0 / _TAU, "rad/s": 86400.0 / _TAU,
                            "deg/day": 1.0 / 360.0},
    "eccentricity": {"1": 1.0},
    "inclination_deg": _ANGLE,
    "raan_deg": _ANGLE,
    "arg_perigee_deg": _ANGLE,
    "mean_anomaly_deg": _ANGLE,
    "bstar": {"1/earth_radii": 1.0},
    "mean_motion_dot": {"rev/day^2": 1.0, "rad/min^2": 1440.0**2 / _TAU},
    "mean_motion_ddot": {"rev/day^3": 1.0, "rad/min^3": 1440.0**3 / _TAU},
    # observations
    "ra_deg": {"deg": 1.0, "rad": 180.0 / math.pi, "h": 15.0},
    "dec_deg": _ANGLE,
    "az_deg": _ANGLE,
    "el_deg": _ANGLE,
    "range_km": {"km": 1.0, "m": 1e-3},
    "range_rate_km_s": {"km/s": 1.0, "m/s": 1e-3},
    "angle_sigma_deg": {"deg": 1.0, "arcsec": 1.0 / 3600.0, "arcmin": 1.0 / 60.0,
                        "rad": 180.0 / math.pi},
    "range_sigma_km": {"km": 1.0, "m": 1e-3},
    "range_rate_sigma_km_s": {"km/s": 1.0, "m/s": 1e-3},
    "time_sigma_s": {"s": 1.0, "ms": 1e-3},
    "magnitude": {"mag": 1.0},
    "magnitude_sigma": {"mag": 1.0},
    "flash_period_s": {"s": 1.0, "ms": 1e-3},
}
#: Time formats for ``epoch``: ISO-8601 UTC text, or a count since 1970-01-01 UTC.
TIME_FORMATS = {"iso8601": None, "unix_s": 10**9, "unix_ms": 10**6, "unix_us": 10**3,
                "unix_ns": 1}
CONTAINERS = ("json", "jsonl", "csv")

#: The tables a description may fill: their columns and the columns a record must have.
#: (``obs_id`` is required by the schema but filled by the ingest layer when the feed has
#: none.)
TABLES = ("elements", "observations")
_TYPES_OF = {"elements": {f.name: f.type for f in ELEMENT_FIELDS},
             "observations": {f.name: f.type for f in OBSERVATION_FIELDS}}
_COLUMNS_OF = {"elements": ELEMENT_COLUMNS, "observations": OBSERVATION_COLUMNS}
_REQUIRED_OF = {"elements": tuple(f.name for f in ELEMENT_FIELDS if not f.nullable),
                "observations": ("time", "sensor_id", "kind")}
_TYPES = _TYPES_OF["elements"]
_REQUIRED = _REQUIRED_OF["elements"]
_NO_DEFAULT = frozenset({"object_id", "epoch", "time"})
#: Observation values every feed must meet (the same limits the other adapters apply).
OBSERVATION_FRAMES = frozenset({"J2000", "ICRF", "GCRF", "EME2000", "B1855", "B1875", "B1900",
                                "B1950", "J2050", "OF-DATE", "AZEL", "AZEL-APPARENT"})
OBSERVATION_KINDS = frozenset({"optical", "radar", "laser", "rf"})
_OBS_LIMITS = (
    ("ra_deg", 0.0, 360.0, False, "right ascension in [0, 360) deg"),
    ("dec_deg", -90.0, 90.0, True, "declination in [-90, 90] deg"),
    ("az_deg", 0.0, 360.0, False, "azimuth in [0, 360) deg"),
    ("el_deg", -90.0, 90.0, True, "elevation in [-90, 90] deg"),
    ("range_km", 0.0, 1e9, False, "a range above 0 km"),
    ("angle_sigma_deg", 0.0, 180.0, True, "an uncertainty of 0 deg or more"),
    ("range_sigma_km", 0.0, 1e9, True, "an uncertainty of 0 km or more"),
    ("range_rate_sigma_km_s", 0.0, 1e6, True, "an uncertainty of 0 km/s or more"),
    ("time_sigma_s", 0.0, 1e6, True, "an uncertainty of 0 s or more"),
    ("object_id", 1, 10**9, False, "a catalogue number from 1 to 999999999"),
)
_INT_BITS = {"int16": 16, "int32": 32, "int64": 64}
_NUMBER_TEXT = re.compile(r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?\s*$", re.ASCII)
_INT_TEXT = re.compile(r"^\s*[+-]?\d{1,19}\s*$", re.ASCII)
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class DescriptionError(FormatError):
    """A feed description (``ingest_formats/*.toml``) that is not valid; ``path`` is the file
    and ``field`` the TOML key at fault."""


@dataclass(frozen=True)
class FieldSpec:
    """How one canonical column is read: from feed ``key``, in ``unit`` (numeric columns) or
    ``time`` format (``epoch``), with ``default`` used when the key is absent or empty."""

    column: str
    key: str | None           # None for a constant (``value``)
    kind: str                 # "float", "int", "str", "bool" or "time"
    factor: float = 1.0       # to the canonical unit
    unit: str | None = None
    time: str | None = None
    default: Any = None
    int_bits: int = 64
    value: Any = None         # a constant, the same for every record (no key)
    table: str = "elements"

    @property
    def required(self) -> bool:
        return self.column in _REQUIRED_OF[self.table] and self.default is None


@dataclass(frozen=True, repr=False)
class Description:
    """A validated feed description."""

    name: str
    description: str
    container: str
    identify_keys: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    marking_key: str | None = None
    marking_default: str | None = None
    records_key: str | None = None
    delimiter: str = ","
    priority: int = DEFAULT_PRIORITY
    extensions: tuple[str, ...] = ()
    path: str | None = None
    table: str = "elements"

    def __repr__(self) -> str:
        return f"Description({self.name!r}, path={self.path!r})"

    def to_format(self) -> Format:
        return Format(self.name, self.table, self.description, partial(_identify, self),
                      partial(_read, self), self.priority, self.extensions)


# ---------------------------------------------------------------------------------------------
# Loading and validating descriptions


def formats(directory: str | os.PathLike | None = None) -> tuple[Format, ...]:
    """One :class:`Format` per description: the files shipped in the ``ingest_formats``
    package, then the ``*.toml`` files of ``directory`` if given, each set in name order.

    Raises :class:`DescriptionError` for a bad description, or when two share a name.
    """
    found: list[Description] = []
    package = importlib.resources.files("ingest_formats")
    for entry in sorted(package.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml") and entry.is_file():
            found.append(parse_description(entry.read_text(encoding="utf-8"),
                                           path=f"ingest_formats/{entry.name}"))
    if directory is not None:
        for name in sorted(os.listdir(directory)):
            if name.endswith(".toml"):
                found.append(load(os.path.join(directory, name)))
    seen: dict[str, str | None] = {}
    for d in found:
        if d.name in seen:
            raise DescriptionError(f"two feed descriptions are named {d.name!r} "
                                   f"(the other is {seen[d.name]})", path=d.path, field="name")
        seen[d.name] = d.path
    return tuple(d.to_format() for d in found)


def load(path: str | os.PathLike) -> Description:
    """The validated :class:`Description` in the TOML file at ``path``."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as fh:
        return parse_description(fh.read(), path=path)


#: Top-level keys of a description, and the keys of its ``[container]``, ``[identify]`` and
#: ``[marking]`` tables.
_TOP_KEYS = ("name", "description", "table", "priority", "extensions", "container",
             "identify", "marking", "fields")
_CONTAINER_KEYS = ("kind", "records", "delimiter")
_IDENTIFY_KEYS = ("keys",)
_MARKING_KEYS = ("key", "default")


class _Checker:
    """The checks shared by every section of one description: each failure raises a
    :class:`DescriptionError` naming the description's ``path`` and the TOML key."""

    def __init__(self, path: str | None):
        self.path = path

    def fail(self, key: str, message: str, expected: str | None = None, got: Any = None):
        raise DescriptionError(message, path=self.path, field=key, expected=expected,
                               got=None if got is None else repr(got))

    def table(self, value, key):
        if not isinstance(value, dict):
            self.fail(key, f"{key} must be a table", "[" + key + "] or " + key + " = { ... }",
                      value)
        return value

    def required_table(self, doc: dict, key: str, example: str) -> dict:
        """``doc[key]``, which must be present and a table (``example`` shows one)."""
        if key not in doc:
            self.fail(key, f"missing [{key}]", example)
        return self.table(doc[key], key)

    def text_of(self, value, key, allow_empty=False):
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            self.fail(key, f"{key} must be a non-empty string", got=value)
        return value

    def no_extra(self, tbl, allowed, where):
        extra = sorted(set(tbl) - set(allowed))
        if extra:
            self.fail(f"{where}.{extra[0]}" if where else extra[0], f"unknown key {extra[0]!r}"
                      + (f" in [{where}]" if where else ""), "one of " + ", ".join(allowed))


def parse_description(text: str, path: str | None = None) -> Description:
    """Validate the TOML ``text`` of a feed description; :class:`DescriptionError` (naming
    ``path`` and the offending key, with the expected form) when it is not valid."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DescriptionError(f"not valid TOML: {e}", path=path) from None
    check = _Checker(path)
    check.no_extra(doc, _TOP_KEYS, "")
    name, description, table_name, priority = _check_header(doc, path, check)
    kind, records_key, delimiter = _check_container(doc, check)
    extensions = doc.get("extensions", [".csv"] if kind == "csv" else
                         [".jsonl"] if kind == "jsonl" else [".json"])
    if not isinstance(extensions, list) or not all(isinstance(e, str) for e in extensions):
        check.fail("extensions", "extensions must be a list of strings", '[".json"]',
                   extensions)
    keys = _check_identify(doc, check)
    marking_key, marking_default = _check_marking(doc, check)
    specs = _check_fields(doc, table_name, check)
    return Description(name, description, kind, tuple(keys), tuple(specs), marking_key,
                       marking_default, records_key, delimiter, priority, tuple(extensions),
                       path, table_name)


def _check_header(doc: dict, path: str | None, check: _Checker) -> tuple[str, str, str, int]:
    """``name`` (from the file name when absent), ``description``, ``table`` and
    ``priority``."""
    name = doc.get("name")
    if name is None and path:
        name = os.path.splitext(os.path.basename(path))[0].replace("_", "-")
    if not isinstance(name, str) or not _NAME.match(name):
        check.fail("name", "name must be lower-case letters, digits and hyphens", "udl-elset",
                   name)
    description = check.text_of(doc.get("description", name), "description")
    table_name = doc.get("table", "elements")
    if table_name not in TABLES:
        check.fail("table", "table must be one of " + ", ".join(TABLES), " | ".join(TABLES),
                   table_name)
    priority = doc.get("priority", DEFAULT_PRIORITY)
    if not isinstance(priority, int) or isinstance(priority, bool):
        check.fail("priority", "priority must be an integer", str(DEFAULT_PRIORITY), priority)
    return name, description, table_name, priority


def _check_container(doc: dict, check: _Checker) -> tuple[str, str | None, str]:
    """``[container]``: its kind, records key (json) and delimiter (csv)."""
    container = check.required_table(doc, "container", 'container = { kind = "json" }')
    check.no_extra(container, _CONTAINER_KEYS, "container")
    kind = container.get("kind")
    if kind not in CONTAINERS:
        check.fail("container.kind", "unknown container kind", " | ".join(CONTAINERS), kind)
    records_key = container.get("records")
    if records_key is not None:
        if kind != "json":
            check.fail("container.records", "records applies to the json container only")
        check.text_of(records_key, "container.records")
    delimiter = container.get("delimiter", ",")
    if "delimiter" in container and kind != "csv":
        check.fail("container.delimiter", "delimiter applies to the csv container only")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
        check.fail("container.delimiter", "delimiter must be one character", "','", delimiter)
    return kind, records_key, delimiter


def _check_identify(doc: dict, check: _Checker) -> list[str]:
    """``[identify]``: the keys whose presence identifies a file of this feed."""
    ident = check.required_table(doc, "identify",
                                 'identify = { keys = ["satNo", "epoch"] }')
    check.no_extra(ident, _IDENTIFY_KEYS, "identify")
    keys = ident.get("keys")
    if not isinstance(keys, list) or not keys or not all(
            isinstance(k, str) and k for k in keys):
        check.fail("identify.keys", "identify.keys must be a non-empty list of key names",
                   '["satNo", "meanMotion", "epoch"]', keys)
    return keys


def _check_marking(doc: dict, check: _Checker) -> tuple[str | None, str | None]:
    """``[marking]`` (optional): the key holding a record's marking, and the default."""
    marking_key = marking_default = None
    if "marking" in doc:
        marking = check.table(doc["marking"], "marking")
        check.no_extra(marking, _MARKING_KEYS, "marking")
        if "key" in marking:
            marking_key = check.text_of(marking["key"], "marking.key")
        if "default" in marking:
            marking_default = check.text_of(marking["default"], "marking.default")
            try:
                mk.parse(marking_default)
            except MarkingError as e:
                check.fail("marking.default", f"marking.default is not a marking: {e}",
                           "U, UNCLASSIFIED//REL TO USA, GBR, ...", marking_default)
    return marking_key, marking_default


def _check_fields(doc: dict, table_name: str, check: _Checker) -> list[FieldSpec]:
    """``[fields]``: one :class:`FieldSpec` per mapped column; every required column mapped,
    no feed key mapped twice."""
    fields_doc = check.required_table(doc, "fields", 'object_id = "satNo"')
    specs = []
    for column, raw in fields_doc.items():
        specs.append(_field_spec(column, raw, check.fail, table_name))
    mapped = {s.column for s in specs}
    missing = [c for c in _REQUIRED_OF[table_name] if c not in mapped]
    if missing:
        check.fail(f"fields.{missing[0]}", f"required column {missing[0]} is not mapped",
                   f'{missing[0]} = "<key in the feed>"')
    used: dict[str, str] = {}
    for s in specs:
        if s.key is None:
            continue
        if s.key in used:
            check.fail(f"fields.{s.column}", f"key {s.key!r} is mapped twice "
                       f"({used[s.key]} and {s.column})")
        used[s.key] = s.column
    return specs


def _field_spec(column: str, raw, fail, table: str = "elements") -> FieldSpec:
    where = f"fields.{column}"
    types = _TYPES_OF[table]
    if column not in types:
        what = "element" if table == "elements" else "observations"
        fail(where, f"{column!r} is not a canonical {what} column",
             "one of " + ", ".join(types))
    if isinstance(raw, str):
        raw = {"key": raw}
    if not isinstance(raw, dict):
        fail(where, f"{where} must be a key name or a table", f'{column} = "<key>" or '
             f'{column} = {{ key = "<key>", ... }}', raw)
    arrow = str(types[column])
    if arrow.startswith("timestamp"):
        kind = "time"
    elif arrow.startswith("int"):
        kind = "int"
    elif arrow == "double":
        kind = "float"
    elif arrow == "bool":
        kind = "bool"
    else:
        kind = "str"
    if "value" in raw and table == "observations":
        extra = sorted(set(raw) - {"value"})
        if extra:
            fail(f"{where}.{extra[0]}", f"a constant ({where}.value) takes no {extra[0]!r}",
                 f'{column} = {{ value = ... }}')
        if column in _NO_DEFAULT or kind not in ("str", "bool"):
            fail(f"{where}.value", f"{column} cannot be a constant (only text and true/false "
                 "columns such as kind, frame, uct)")
        constant = raw["value"]
        if not isinstance(constant, bool if kind == "bool" else str) or (
                kind == "str" and not constant.strip()):
            fail(f"{where}.value", f"value for {column} must be a {kind}", got=constant)
        _check_constant(column, constant, f"{where}.value", fail)
        return FieldSpec(column, None, kind, value=constant, table=table)
    allowed = ["key", "default"] + (["unit"] if kind == "float" else []) + \
        (["time"] if kind == "time" else []) + (["value"] if table == "observations" else [])
    extra = sorted(set(raw) - set(allowed))
    if extra:
        fail(f"{where}.{extra[0]}", f"{extra[0]!r} does not apply to {column}",
             "one of " + ", ".join(allowed))
    key = raw.get("key")
    if not isinstance(key, str) or not key:
        fail(f"{where}.key", f"{where}.key must be the feed's key or CSV column name",
             got=key)
    unit, factor, time = None, 1.0, None
    if kind == "float":
        units = UNITS.get(column, {})
        canonical = next(iter(units))
        unit = raw.get("unit", canonical)
        if unit not in units:
            fail(f"{where}.unit", f"unit {unit!r} is not known for {column}",
                 "one of " + ", ".join(units), unit)
        factor = units[unit]
    if kind == "time":
        time = raw.get("time", "iso8601")
        if time not in TIME_FORMATS:
            fail(f"{where}.time", f"time format {time!r} is not known",
                 "one of " + ", ".join(TIME_FORMATS), time)
    default = raw.get("default")
    if default is not None:
        if column in _NO_DEFAULT:
            fail(f"{where}.default", f"{column} cannot have a default")
        ok = {"float": isinstance(default, (int, float)) and math.isfinite(default)
              and not isinstance(default, bool),
              "int": isinstance(default, int) and not isinstance(default, bool),
              "bool": isinstance(default, bool),
              "str": isinstance(default, str)}[kind]
        if not ok:
            fail(f"{where}.default", f"default for {column} must be a {kind}", got=default)
        _check_constant(column, default, f"{where}.default", fail)
    return FieldSpec(column, key, kind, factor, unit, time, default,
                     _INT_BITS.get(arrow, 64), table=table)


def _check_constant(column: str, value, where: str, fail) -> None:
    if column == "frame" and value not in OBSERVATION_FRAMES:
        fail(where, f"frame {value!r} is not one ssafuse reduces",
             "one of " + ", ".join(sorted(OBSERVATION_FRAMES)), value)
    if column == "kind" and value not in OBSERVATION_KINDS:
        fail(where, f"kind {value!r} is not an observation kind",
             " | ".join(sorted(OBSERVATION_KINDS)), value)


# ---------------------------------------------------------------------------------------------
# Identifying and reading files


def _identify(desc: Description, head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts with a record that has every one of
    ``identify.keys``."""
    first = _first_record(desc, decode(head))
    return isinstance(first, dict) and all(k in first for k in desc.identify_keys)


def _first_record(desc: Description, text: str):
    text = text.lstrip()
    try:
        if desc.container == "csv":
            line = next(csv.reader(io.StringIO(text), delimiter=desc.delimiter), None)
            return dict.fromkeys(c.strip() for c in line) if line else None
        if desc.container == "jsonl":
            line = text.split("\n", 1)[0]
            return load_json(line)
        if desc.records_key is not None:
            m = re.search(r'"%s"\s*:\s*\[' % re.escape(desc.records_key), text)
            if not text.startswith("{") or m is None:
                return None
            pos = m.end()
        elif text.startswith("["):
            pos = 1
        else:
            return None
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return raw_decode_json(text, pos)[0]
    except ValueError:  # FormatError (nested too deep) is a ValueError too
        return None


def _read(desc: Description, stream: BinaryIO, uri: str) -> Iterator[Batch]:
    """Yield batches of records read from ``stream`` with the layout ``desc``."""
    batch = Batch(table=desc.table)
    for number, obj, raw in _records(desc, stream, uri):
        if isinstance(obj, Reject):
            batch.rejects.append(obj)
        else:
            try:
                batch.records.append(_convert(desc, obj, number, raw))
            except FormatError as e:
                batch.rejects.append(Reject(number, raw, e.message, e.field))
        if len(batch) >= BATCH_RECORDS:
            yield batch
            batch = Batch(table=desc.table)
    if len(batch):
        yield batch


def _dumps(obj) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    except (ValueError, TypeError, RecursionError):
        return repr(obj)


def _records(desc: Description, stream: BinaryIO, uri: str):
    """``(record number, dict or Reject, raw text)`` for each record of the file."""
    text = decode(stream.read())
    if desc.container == "json":
        try:
            doc = load_json(text, path=uri)  # FormatError when nested too deep to be a feed
        except FormatError:
            raise
        except json.JSONDecodeError as e:
            raise FormatError(f"file is not valid JSON: {e.msg}", path=uri, line=e.lineno,
                              expected="a JSON list of objects",
                              got=text[max(0, e.pos - 40):e.pos + 40]) from None
        except (ValueError, RecursionError) as e:
            raise FormatError(f"file cannot be read as JSON: {e}", path=uri) from None
        if desc.records_key is not None:
            if not isinstance(doc, dict) or not isinstance(doc.get(desc.records_key), list):
                raise FormatError(f"top level is not an object with a list under "
                                  f"{desc.records_key!r}", path=uri,
                                  expected=f'{{"{desc.records_key}": [{{...}}, ...]}}',
                                  got=text[:80])
            doc = doc[desc.records_key]
        if not isinstance(doc, list):
            raise FormatError("top level of the file is not a JSON list", path=uri,
                              expected="[{...}, {...}]", got=text[:80])
        for i, obj in enumerate(doc, 1):
            raw = _dumps(obj)
            if isinstance(obj, dict):
                yield i, obj, raw
            else:
                yield i, Reject(i, raw, "record is not a JSON object"), raw
    elif desc.container == "jsonl":
        for i, line in enumerate(split_lines(text), 1):  # a U+2028 in a string is no end
            if not line.strip():
                continue
            try:
                obj = load_json(line)
            except FormatError as e:  # nested too deep
                yield i, Reject(i, line, e.message), line
                continue
            except ValueError as e:
                yield i, Reject(i, line, f"line is not valid JSON: {e}"), line
                continue
            if isinstance(obj, dict):
                yield i, obj, line
            else:
                yield i, Reject(i, line, "line is not a JSON object"), line
    else:
        yield from _csv_records(desc, text, uri)


def _csv_records(desc: Description, text: str, uri: str):
    lines = io.StringIO(text, newline="")
    reader = csv.reader(lines, delimiter=desc.delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise FormatError(f"CSV header cannot be read: {e}", path=uri, line=1) from None
    if not header:
        return
    header = [h.strip() for h in header]
    last = reader.line_num
    while True:
        start = last + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            # a broken quote runs to the end of the file: nothing after it can be placed
            raise FormatError(f"CSV cannot be read: {e}", path=uri, line=start) from None
        last = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        raw = desc.delimiter.join(row)
        if len(row) != len(header):
            yield start, Reject(start, raw, f"row has {len(row)} columns, the header "
                                            f"{len(header)}"), raw
            continue
        yield start, dict(zip(header, row)), raw


def _missing(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _fail(spec: FieldSpec, message: str, value=None, expected: str | None = None):
    reason = f"field {spec.key!r} ({spec.column}): {message}"
    if expected:
        reason += f"; expected {expected}"
    if value is not None:
        got = repr(value)
        reason += f"; got {got[:_GOT_MAX] + ('...' if len(got) > _GOT_MAX else '')}"
    raise FormatError(reason, field=spec.column, expected=None)


def _convert(desc: Description, obj: dict, number: int, raw: str) -> dict:
    rec: dict[str, Any] = dict.fromkeys(_COLUMNS_OF[desc.table])
    rec.update(source_record=number, _raw=raw)
    for spec in desc.fields:
        if spec.key is None:
            rec[spec.column] = spec.value
            continue
        value = obj.get(spec.key)
        if _missing(value):
            if spec.default is not None:
                value = spec.default
            elif spec.required:
                _fail(spec, "missing", expected=f"a value under key {spec.key!r}")
            else:
                rec[spec.column] = None
                continue
        rec[spec.column] = _value(spec, value)
    if desc.marking_key is not None:
        text = obj.get(desc.marking_key)
        if _missing(text):
            text = desc.marking_default
        elif not isinstance(text, str):
            raise FormatError(f"field {desc.marking_key!r} (marking): not text; got "
                              f"{repr(text)[:_GOT_MAX]}", field="marking")
        rec["marking"] = text
    else:
        rec["marking"] = desc.marking_default
    try:
        (validate_elements if desc.table == "elements" else validate_observation)(rec)
    except FormatError as e:
        spec = next(s for s in desc.fields if s.column == e.field)
        _fail(spec, e.message, obj.get(spec.key) if spec.key else spec.value, e.expected)
    return rec


def validate_observation(rec: dict) -> None:
    """Range checks for an observation record (angles, ranges, uncertainties, frame, kind);
    :class:`FormatError` naming the column. An azimuth or right ascension of exactly 360 is
    read as 0."""
    for name in ("ra_deg", "az_deg"):
        if rec[name] == 360.0:
            rec[name] = 0.0
    for name, low, high, high_inclusive, expected in _OBS_LIMITS:
        v = rec[name]
        if v is None:
            continue
        above = v > low if name == "range_km" else v >= low
        if not (above and (v <= high if high_inclusive else v < high)):
            raise FormatError(f"{name} out of range", field=name, expected=expected,
                              got=repr(v))
    if rec["frame"] is not None and rec["frame"] not in OBSERVATION_FRAMES:
        raise FormatError("frame is not one ssafuse reduces", field="frame",
                          expected="one of " + ", ".join(sorted(OBSERVATION_FRAMES)),
                          got=repr(rec["frame"]))
    if rec["kind"] not in OBSERVATION_KINDS:
        raise FormatError("kind is not an observation kind", field="kind",
                          expected=" | ".join(sorted(OBSERVATION_KINDS)), got=repr(rec["kind"]))
    for a, b in (("ra_deg", "dec_deg"), ("az_deg", "el_deg")):
        if (rec[a] is None) != (rec[b] is None):
            one = a if rec[a] is not None else b
            raise FormatError("one angle of a pair without the other", field=one,
                              expected=f"{a} and {b} together")


def _value(spec: FieldSpec, value):
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        _fail(spec, "not true or false", value)
    if isinstance(value, (bool, list, dict)):
        _fail(spec, f"not a {'time' if spec.kind == 'time' else spec.kind} value", value)
    if spec.kind == "str":
        if not isinstance(value, str):
            _fail(spec, "not text", value)
        return value.strip()
    if spec.kind == "time":
        return _time(spec, value)
    if isinstance(value, str) and not (_INT_TEXT if spec.kind == "int" else _NUMBER_TEXT
                                       ).match(value):
        _fail(spec, f"not {'an integer' if spec.kind == 'int' else 'a number'}", value)
    try:
        out = (parse_int if spec.kind == "int" else parse_float)(value, spec.column)
    except FormatError as e:
        _fail(spec, e.message, value)
    if spec.kind == "int":
        lim = 2 ** (spec.int_bits - 1)
        if not -lim <= out < lim:
            _fail(spec, f"outside the int{spec.int_bits} range", value)
        return out
    if spec.factor != 1.0:
        out = out * spec.factor
        if not math.isfinite(out):
            _fail(spec, f"not finite in {spec.unit}", value)
    return out


def _time(spec: FieldSpec, value) -> int:
    scale = TIME_FORMATS[spec.time]
    if scale is None:
        if not isinstance(value, str):
            _fail(spec, "not ISO-8601 text", value, "YYYY-MM-DDThh:mm:ss.ffffffZ")
        try:
            ns = parse_epoch(value)
        except FormatError as e:
            _fail(spec, e.message, value, e.expected)
    else:
        if isinstance(value, float):
            if not math.isfinite(value):
                _fail(spec, "not a finite number", value)
            count = Fraction(repr(value))
        elif isinstance(value, int):
            count = Fraction(value)
        elif isinstance(value, str) and _NUMBER_TEXT.match(value):
            count = Fraction(value.strip())
        else:
            _fail(spec, f"not a {spec.time} time", value)
        ns = math.floor(count * scale + Fraction(1, 2))
    if not _INT64_MIN <= ns <= _INT64_MAX:
        _fail(spec, "outside the representable range of timestamp[ns] (1677 to 2262)", value)
    return ns

"""Sensors: where each observing site is, from COSPAR site lists or a user's own file.

Two inputs, one table (:data:`ssafuse.schema.SENSORS`):

* COSPAR observer-site lists as the optical community keeps them (sattools / strf
  ``sites.txt``, satfit's ``STATIONS.IN``): ``NNNN XX  latitude  longitude  elevation_m
  observer``, ``#`` comments;
* a CSV with a header naming at least ``sensor_id, latitude_deg, longitude_deg, altitude_km``
  (``name``, ``kind``, ``owner`` optional).

:func:`read_sensors` sniffs which; a line that is neither is a :class:`FormatError` naming
the file and line (a site list is small and hand-kept: a bad line is the maintainer's to fix,
not something to skip). :func:`merge` keeps the first row of each ``sensor_id``, so the list
shipped with a data set can take precedence over a general one.
"""

from __future__ import annotations

import csv
import io
import os
import re

import pyarrow as pa

from .errors import FormatError
from .files import open_input
from .formats.base import decode, parse_float
from .schema import SENSORS

__all__ = ["read_sensors", "read_cospar_sites", "read_sensor_csv", "merge", "lookup"]

_SITE = re.compile(r"^\s*(?P<id>[0-9A-Z]{4})\s+(?P<owner>\S{1,3})\s+(?P<lat>[+-]?\d+\.?\d*)\s+"
                   r"(?P<lon>[+-]?\d+\.?\d*)\s+(?P<alt>[+-]?\d+\.?\d*)\s*(?P<name>.*?)\s*$")
SITE_TEMPLATE = "NNNN XX   LL.LLLL  LLL.LLLL   EEEE    Observer name"


def _table(rows: list[dict]) -> pa.Table:
    cols = {f.name: [r.get(f.name) for r in rows] for f in SENSORS}
    return pa.Table.from_pydict(cols, schema=SENSORS)


def _check_ranges(lat: float, lon: float, path: str, line: int, text: str) -> None:
    if not -90.0 <= lat <= 90.0 or not -360.0 <= lon <= 360.0:
        raise FormatError("site latitude or longitude out of range", path=path, line=line,
                          expected=SITE_TEMPLATE, got=text)


def read_cospar_sites(path: str | os.PathLike, *, kind: str = "optical") -> pa.Table:
    """A COSPAR site list (``sites.txt``, ``STATIONS.IN``); elevation in metres."""
    path = os.fspath(path)
    with open_input(path) as fh:
        text = decode(fh.read())
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _SITE.match(line)
        if m is None:
            raise FormatError("site line does not match the COSPAR site-list layout",
                              path=path, line=number, expected=SITE_TEMPLATE, got=line)
        lat, lon = float(m["lat"]), float(m["lon"])
        _check_ranges(lat, lon, path, number, line)
        rows.append({"sensor_id": m["id"], "name": m["name"] or None, "latitude_deg": lat,
                     "longitude_deg": lon, "altitude_km": float(m["alt"]) / 1000.0,
                     "kind": kind, "owner": m["owner"], "source_uri": path})
    return _table(rows)


def read_sensor_csv(path: str | os.PathLike) -> pa.Table:
    """A user's sensor CSV (header: sensor_id, latitude_deg, longitude_deg, altitude_km,
    optional name, kind, owner)."""
    path = os.fspath(path)
    with open_input(path) as fh:
        text = decode(fh.read())
    reader = csv.DictReader(io.StringIO(text))
    need = ("sensor_id", "latitude_deg", "longitude_deg", "altitude_km")
    missing = [k for k in need if k not in (reader.fieldnames or ())]
    if missing:
        raise FormatError(f"sensor CSV lacks column {missing[0]}", path=path, line=1,
                          expected=",".join(need) + "[,name,kind,owner]",
                          got=",".join(reader.fieldnames or ()))
    rows = []
    for row in reader:
        number = reader.line_num
        try:
            lat = parse_float(row["latitude_deg"], "latitude_deg")
            lon = parse_float(row["longitude_deg"], "longitude_deg")
            alt = parse_float(row["altitude_km"], "altitude_km")
        except FormatError as e:
            raise FormatError(e.message, path=path, line=number, field=e.field,
                              got=e.got) from None
        sid = (row["sensor_id"] or "").strip()
        if not sid:
            raise FormatError("empty sensor_id", path=path, line=number)
        _check_ranges(lat, lon, path, number, str(row))
        rows.append({"sensor_id": sid, "name": row.get("name") or None, "latitude_deg": lat,
                     "longitude_deg": lon, "altitude_km": alt, "kind": row.get("kind") or None,
                     "owner": row.get("owner") or None, "source_uri": path})
    return _table(rows)


def read_sensors(path: str | os.PathLike) -> pa.Table:
    """A sensor file of either kind, sniffed from its first line that is not a comment."""
    with open_input(path) as fh:
        head = decode(fh.read(4096))
    first = next((ln for ln in head.splitlines() if ln.strip()
                  and not ln.lstrip().startswith("#")), "")
    if "sensor_id" in first and "," in first:
        return read_sensor_csv(path)
    return read_cospar_sites(path)


def merge(*tables: pa.Table) -> pa.Table:
    """One row per ``sensor_id``: the first table that has it wins."""
    seen: set[str] = set()
    keep = []
    for t in tables:
        ids = t["sensor_id"].to_pylist()
        idx = [i for i, s in enumerate(ids) if not (s in seen or seen.add(s))]
        keep.append(t.take(pa.array(idx, pa.int64())).cast(SENSORS))
    return pa.concat_tables(keep) if keep else SENSORS.empty_table()


def lookup(sensors: pa.Table) -> dict[str, tuple[float, float, float]]:
    """``sensor_id -> (latitude_deg, longitude_deg, altitude_km)``."""
    return {s: (la, lo, al) for s, la, lo, al in zip(
        sensors["sensor_id"].to_pylist(), sensors["latitude_deg"].to_pylist(),
        sensors["longitude_deg"].to_pylist(), sensors["altitude_km"].to_pylist())}

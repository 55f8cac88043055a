"""Helpers shared by the observation tests: element rows from TLE text that python-sgp4
reads but the strict TLE adapter refuses (satfit's ``0.00000000`` first-derivative field and
dummy checksums), and a blind copy of an observations table."""

from __future__ import annotations

import datetime as dt
from math import degrees, pi
from pathlib import Path

import numpy as np
import pyarrow as pa
from sgp4.api import Satrec

from ssafuse.schema import ELEMENTS

_XPDOTP = 1440.0 / (2.0 * pi)


def elements_from_tle_text(paths, source: str) -> pa.Table:
    """Canonical element rows of every TLE pair in ``paths``, read with python-sgp4's own
    parser (which does not verify checksums or the sign column of line 1)."""
    rows = []
    for path in paths:
        lines = Path(path).read_text(encoding="latin-1").splitlines()
        for i in range(len(lines) - 1):
            l1, l2 = lines[i], lines[i + 1]
            if not (l1.startswith("1 ") and l2.startswith("2 ")):
                continue
            if l1[33:35] == "0.":  # satfit / TruSat write "0.00000000" for "+.00000000"
                l1 = l1[:33] + " " + l1[34:]
            sat = Satrec.twoline2rv(l1, l2)
            if sat.error:
                continue
            epoch_ns = int(round((sat.jdsatepoch - 2440587.5) * 86400e9
                                 + sat.jdsatepochF * 86400e9))
            rows.append({
                "object_id": sat.satnum, "intl_designator": None, "object_name": None,
                "epoch": epoch_ns, "mean_motion_rev_day": sat.no_kozai * _XPDOTP,
                "eccentricity": sat.ecco, "inclination_deg": degrees(sat.inclo),
                "raan_deg": degrees(sat.nodeo), "arg_perigee_deg": degrees(sat.argpo),
                "mean_anomaly_deg": degrees(sat.mo), "bstar": sat.bstar,
                "mean_motion_dot": sat.ndot * (1036800.0 / pi),
                "mean_motion_ddot": sat.nddot * (2985984000.0 / 2.0 / pi),
                "ephemeris_type": 0, "element_set_no": None, "rev_at_epoch": None,
                "object_type": None, "rcs_size": None, "country": None,
                "source": source, "source_format": "tle", "source_uri": str(path),
                "source_sha256": "0" * 64, "source_record": i + 1, "ingested_at": 0,
                "classification": "UNCLASSIFIED", "releasable_to": None,
                "marking": "UNCLASSIFIED"})
    cols = {f.name: [r[f.name] for r in rows] for f in ELEMENTS}
    for name in ("epoch", "ingested_at"):
        cols[name] = pa.array(np.array(cols[name], dtype=np.int64)).cast(
            ELEMENTS.field(name).type)
    return pa.Table.from_pydict(cols, schema=ELEMENTS)


def blind(observations: pa.Table) -> pa.Table:
    """The observations with their reported identities removed."""
    n = observations.num_rows
    for name, typ in (("object_id", pa.int64()), ("intl_designator", pa.string())):
        observations = observations.set_column(observations.schema.get_field_index(name),
                                               observations.schema.field(name),
                                               pa.nulls(n, typ))
    return observations


_ = dt

"""One element-set row for writer tests (ISS-like numbers), shared by the OMM and TLE tests."""

from __future__ import annotations

import pyarrow as pa

from ssafuse.schema import ELEMENTS


def element_row(**over) -> dict:
    """An ``elements`` row; ``over`` replaces any column."""
    base = {"object_id": 25544, "intl_designator": "1998-067A", "object_name": "ISS (ZARYA)",
            "epoch": 1773114507801504000, "mean_motion_rev_day": 15.485572000000001,
            "eccentricity": 0.00079716, "inclination_deg": 51.6324, "raan_deg": 70.0375,
            "arg_perigee_deg": 176.2903, "mean_anomaly_deg": 183.8146, "bstar": 1.7625562e-05,
            "mean_motion_dot": -9.13e-05, "mean_motion_ddot": 1e-11, "ephemeris_type": 0,
            "element_set_no": 999, "rev_at_epoch": 55640, "object_type": None, "rcs_size": None,
            "country": None, "source": "test", "source_format": "test", "source_uri": "mem:",
            "source_sha256": "0" * 64, "source_record": 1, "ingested_at": 0,
            "classification": "UNCLASSIFIED", "releasable_to": None, "marking": "UNCLASSIFIED"}
    base.update(over)
    return base


def table(rows) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=ELEMENTS)

"""Shared test helpers: where the reference data is, and a skip when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "sample_tles"


def shared(relative: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent
    (a user's clone has no ../shared; CI always has it)."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (../shared/data ships with CI, "
                    "not with a clone)")
    return path

"""The versions a run records in its manifest, gathered in one place."""

from __future__ import annotations

import numpy
import pyarrow
import sgp4

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """``{"ssafuse": ..., "sgp4": ..., "pyarrow": ..., "numpy": ...}``."""
    return {"ssafuse": __version__, "sgp4": sgp4.__version__, "pyarrow": pyarrow.__version__,
            "numpy": numpy.__version__}

"""ssafuse: fuse allied and public space-surveillance feeds into one catalogue, in Parquet.

>>> import ssafuse
>>> store = ssafuse.Store("store")
>>> report = store.ingest(["sample_tles/"], source="celestrak")      # doctest: +SKIP
>>> catalogue = ssafuse.build_catalogue(store.table("elements"))      # doctest: +SKIP
"""

from .versions import __version__  # noqa: E402

from .catalogue import build_catalogue  # noqa: E402
from .formats.registry import formats
from .records import read_file  # noqa: E402
from .store import Store  # noqa: E402

__all__ = ["Store", "build_catalogue", "read_file", "formats", "__version__"]

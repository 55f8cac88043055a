"""TLE adapter (being written)."""
from ._common import Format
FORMAT = Format("tle", "elements", "TLE 2LE/3LE", lambda head: False, lambda s, u: iter(()), 10)

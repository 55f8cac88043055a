"""OMM adapters (being written)."""
FORMATS = ()

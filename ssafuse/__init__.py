"""ssafuse: fuse allied and public space-surveillance feeds into one catalogue."""

__version__ = "0.1.0"

"""Declarative feeds (being written)."""
def formats(directory=None):
    return ()

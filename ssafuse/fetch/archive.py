"""Every download kept with its provenance, under the store::

    STORE/_raw/<source>/<YYYY-MM-DD>/<sha256>            the bytes as received
    STORE/_raw/<source>/<YYYY-MM-DD>/<sha256>.meta.json  URL (no credentials), times, HTTP
                                                         status, kept headers, pages
    STORE/_raw/<source>/_state-<feed key>.json           the feed's last good download

Each file is written atomically (the store's writes), the state last: a fetch killed before it
leaves the previous state, so the next run asks again, and a download completed is never
asked for twice within the feed's interval. The feed key is a hash of what identifies the
request (provider, address, query), so two feeds of one source keep separate states.

For a store on object storage the bytes are also kept in a local folder, where the adapters
read them (ingest reads local files).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

from ..files import atomic_write_bytes
from ..store import Store
from .remote import Remote

__all__ = ["Archive", "feed_key"]


def feed_key(remote: Remote) -> str:
    text = json.dumps(remote.settings(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Archive:
    """The raw downloads of a store (``local_dir``: where a remote store's are read from)."""

    def __init__(self, store: Store, local_dir: str | os.PathLike | None = None):
        self.store = store
        self.local_dir = Path(local_dir) if local_dir is not None else None
        if not store.local and self.local_dir is None:
            raise ValueError("a store on object storage needs a local folder for downloads")

    def _state_loc(self, source: str, remote: Remote) -> str:
        return self.store._loc("_raw", source, f"_state-{feed_key(remote)}.json")

    def state(self, source: str, remote: Remote) -> dict | None:
        """The feed's last good download (its metadata and ``raw``, where the bytes are)."""
        loc = self._state_loc(source, remote)
        try:
            return self.store._read_json(loc) if self.store.fs.exists(loc) else None
        except (OSError, ValueError):  # a damaged state: as if never fetched
            return None

    def keep(self, source: str, remote: Remote, body: bytes, meta: dict,
             now: dt.datetime) -> dict:
        """Write a download's bytes and metadata, then the feed's state; returns the state."""
        sha = hashlib.sha256(body).hexdigest()
        rel = f"_raw/{source}/{now.astimezone(dt.timezone.utc).date().isoformat()}/{sha}"
        meta = dict(meta, sha256=sha, bytes=len(body), raw=rel, source=source)
        self.store._write_bytes(self.store._loc(rel), body)
        if self.local_dir is not None:
            self._write_local(rel, body)
        self.store._write_bytes(self.store._loc(rel + ".meta.json"),
                                json.dumps(meta, indent=1, sort_keys=True).encode())
        self.set_state(source, remote, meta)
        return meta

    def set_state(self, source: str, remote: Remote, state: dict) -> None:
        self.store._write_bytes(self._state_loc(source, remote),
                                json.dumps(state, indent=1, sort_keys=True).encode())

    def _write_local(self, rel: str, body: bytes) -> Path:
        path = self.local_dir / rel
        atomic_write_bytes(path, body)
        return path

    def local_path(self, state: dict) -> Path:
        """Where the adapters read a kept download (fetched from the store if need be)."""
        rel = state["raw"]
        if self.local_dir is None:
            return Path(self.store._loc(rel))
        path = self.local_dir / rel
        if not path.exists():
            self._write_local(rel, self.store.fs.cat_file(self.store._loc(rel)))
        return path

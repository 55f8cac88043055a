"""Live feeds: the store fetches Space-Track, CelesTrak, UDL and partners' HTTP(S) drops
itself, politely, and keeps every download with its provenance.

:func:`fetch_feed` is the one call (``ssafuse fetch`` and the nightly job's ``fetch`` stage
use it): it skips a feed downloaded less than its ``min_interval_s`` ago, resolves the
credentials the feed names (:mod:`~ssafuse.fetch.credentials`), asks the provider
(:mod:`~ssafuse.fetch.providers`) within the provider's rate limits shared by every process
of the store (:mod:`~ssafuse.fetch.limits`) and the feed's deadline, with retries
(:mod:`~ssafuse.fetch.client`), and keeps the bytes under ``STORE/_raw/``
(:mod:`~ssafuse.fetch.archive`). Nothing is ingested here: the caller ingests the file
returned with the feed's adapter, as any other file.

A failed fetch never raises: the result says ``failed`` with the reason, and names the last
good download (``path``, ``fetched_at``, ``age_hours``) for the caller to use instead.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..store import Store
from ..timeutil import parse_iso
from .archive import Archive, feed_key
from .client import FetchError, PoliteClient
from .credentials import CredentialsError, RedactingFilter, redact, resolve
from .limits import RateLimiter, RateLimitWait
from .providers import download
from .remote import PROVIDERS, REMOTE_KEYS, Remote, remote_from_table

__all__ = ["FetchResult", "fetch_feed", "Remote", "remote_from_table", "REMOTE_KEYS",
           "PROVIDERS", "FetchError", "CredentialsError", "RedactingFilter", "feed_key"]


@dataclass
class FetchResult:
    """What one feed's fetch did.

    ``status``: ``downloaded`` (new bytes), ``not-modified`` (the server has nothing newer:
    304, or CelesTrak's 403 "not updated"), ``skipped`` (downloaded less than
    ``min_interval_s`` ago: no request sent), or ``failed`` (``message`` says why). ``path``:
    the file to ingest (the new download, else the last good one; ``None`` when there is
    none); ``fetched_at`` and ``age_hours``: when that file was downloaded, and how long
    before ``now``."""

    source: str
    status: str
    path: Path | None
    url: str | None
    fetched_at: str | None
    age_hours: float | None
    requests: int = 0
    message: str = ""
    sha256: str | None = None
    seconds: float = 0.0
    #: the new download holds no record (an incremental query on a quiet day): nothing to
    #: ingest, and no failure
    empty: bool = False

    def as_dict(self) -> dict:
        out = dict(vars(self))
        out["path"] = str(self.path) if self.path else None
        return out


def _result(source: str, status: str, archive: Archive, state: dict | None,
            now: dt.datetime, **kw) -> FetchResult:
    if not state:
        return FetchResult(source, status, None, None, None, None, **kw)
    fetched = parse_iso(state["fetched_at"])
    return FetchResult(source, status, archive.local_path(state), state.get("url"),
                       state["fetched_at"], round((now - fetched).total_seconds() / 3600, 3),
                       sha256=state.get("sha256"), empty=bool(state.get("empty")), **kw)


def fetch_feed(store: Store, source: str, remote: Remote, *, now: dt.datetime,
               state_dir: str | os.PathLike | None = None,
               local_dir: str | os.PathLike | None = None) -> FetchResult:
    """Fetch one feed into ``store``'s raw archive (see the module docstring).

    ``now``: the run's clock (timezone-aware): the download's time, and what the minimum
    interval and the UDL window are measured from. ``state_dir``: the local folder holding
    the shared rate-limit files (default: a local store's own folder; required for a store
    on object storage, with ``local_dir``, where downloads are kept for reading)."""
    t0 = time.perf_counter()
    archive = Archive(store, local_dir)
    state_dir = state_dir if state_dir is not None else (store.root if store.local else None)
    if state_dir is None:
        raise ValueError("a store on object storage needs a local state_dir for rate limits")
    last = archive.state(source, remote)
    checked = last and (last.get("checked_at") or last["fetched_at"])
    if checked and (now - parse_iso(checked)).total_seconds() < remote.min_interval_s:
        return _result(source, "skipped", archive, last, now, message=(
            f"asked {checked}, less than {remote.min_interval_s:g} s ago"))
    client = None
    try:
        creds = None
        if remote.login == "required" or remote.credentials:
            creds = resolve(remote.credentials, remote.host)
        verify = remote.ca_file or True
        client = PoliteClient(remote, RateLimiter(state_dir, remote.limiter_name,
                                                  remote.rate_limits), verify=verify)
        got = download(client, remote, creds, last, now)
    except Exception as e:  # whatever went wrong, the feed failed; the night goes on
        why = str(e) if isinstance(e, (FetchError, CredentialsError, RateLimitWait)) \
            else f"{type(e).__name__}: {e}"
        return _result(source, "failed", archive, last, now, message=redact(why),
                       requests=client.sent if client else 0,
                       seconds=round(time.perf_counter() - t0, 3))
    finally:
        if client is not None:
            client.session.close()
    seconds = round(time.perf_counter() - t0, 3)
    if got.not_modified:
        if not last:  # (a download whose state was never written: lost, ask again later)
            return _result(source, "failed", archive, None, now, requests=client.sent,
                           seconds=seconds, message=f"HTTP {got.status}: the server has "
                           "nothing newer, but no earlier download of this feed is kept")
        archive.set_state(source, remote, dict(last, checked_at=now.isoformat()))
        return _result(source, "not-modified", archive, last, now, requests=client.sent,
                       seconds=seconds, message=f"HTTP {got.status}: nothing newer")
    meta = {"provider": remote.provider, "url": got.url, "http_status": got.status,
            "headers": got.headers, "pages": got.pages, "fetched_at": now.isoformat(),
            "requested_at": now.astimezone(dt.timezone.utc).isoformat(),
            "etag": got.headers.get("ETag"), "last_modified": got.headers.get("Last-Modified"),
            "request": remote.settings(), "feed_key": feed_key(remote),
            "requests": client.sent, "empty": got.body.strip() in (b"", b"[]")}
    try:
        state = archive.keep(source, remote, got.body, meta, now)
    except Exception as e:  # the store cannot keep it (disk full, permissions)
        return _result(source, "failed", archive, last, now, requests=client.sent,
                       seconds=seconds, message=redact(f"cannot keep the download: "
                                                       f"{type(e).__name__}: {e}"))
    return _result(source, "downloaded", archive, state, now, requests=client.sent,
                   seconds=seconds)

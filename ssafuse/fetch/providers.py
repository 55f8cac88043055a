"""How each provider is asked: one function per provider, from a feed's :class:`Remote` to
the bytes of one download (:class:`Download`).

* **Space-Track** (www.space-track.org): a login (``POST /ajaxauth/login`` with ``identity``
  and ``password``; the session keeps its cookie), then ``GET /basicspacedata/query/<query>``.
  ``>LAST`` in the query becomes the start of this feed's previous successful download
  (``>now-30`` when there is none), so ``class/gp/CREATION_DATE/>LAST/format/3le`` is
  incremental (prefer ``CREATION_DATE`` to ``EPOCH``: an element set is published hours after
  its epoch). Its rate-limit page ("violated your query rate limit") is waited out (the
  shortest limit window, a minute) and the query asked again, as the ``spacetrack`` package
  does. Each fetch logs in once: ten feeds make twenty requests.
* **CelesTrak** (celestrak.org): ``GET /NORAD/elements/gp.php`` (or ``supplemental/
  sup-gp.php``) with the query's parameters (``GROUP``, ``CATNR``, ``FILE``, ``FORMAT``...).
  Its 403 "GP data has not updated since your last successful download" means *not
  modified*: the previous download is still current.
* **UDL** (unifieddatalibrary.com): basic auth, ``GET /udl/<service>`` with the query's
  parameters, the time window ending at the run's ``now`` unless the query sets one
  (``epoch=>START`` for element sets, ``obTime=START..NOW`` for observations, which the UDL
  requires), page by page (``firstResult``, ``maxResults``) until a page is short; the pages'
  records are joined, byte for byte as sent, into one JSON array.
* **HTTP(S)**: ``GET base_url/path``, optionally with basic auth.

Every provider sends ``If-None-Match`` / ``If-Modified-Since`` when the previous download had
an ``ETag`` / ``Last-Modified``; a 304 means *not modified*. A JSON answer must parse: a body
cut short is never kept.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from urllib.parse import quote

from .client import FetchError, PoliteClient, Response
from .credentials import Credentials, redact_url
from .remote import Remote

__all__ = ["Download", "download"]

SPACETRACK_RATE_PAGE = "violated your query rate limit"
#: A UDL window reaches back to the feed's previous download, but never further than this.
UDL_CATCH_UP_DAYS = 7.0
CELESTRAK_NOT_UPDATED = "GP data has not updated"  # (the text continues over line breaks)


@dataclass
class Download:
    """One download: ``body`` (``None`` when the server said it has nothing newer)."""

    body: bytes | None
    url: str
    status: int
    headers: dict = field(default_factory=dict)
    #: each request's URL and status (UDL: one per page)
    pages: list = field(default_factory=list)

    @property
    def not_modified(self) -> bool:
        return self.body is None


def _conditional(last: dict | None) -> dict:
    headers = {}
    if last and last.get("etag"):
        headers["If-None-Match"] = last["etag"]
    if last and last.get("last_modified"):
        headers["If-Modified-Since"] = last["last_modified"]
    return headers


def _check_body(r: Response, what: str) -> None:
    """Refuse an answer that is not the data (an error page, a JSON body that does not
    parse: a truncated download is never kept)."""
    if r.status != 200:
        raise FetchError(f"{what}: HTTP {r.status}: {r.text_head()}")
    head = r.body.lstrip()[:1]
    if head in (b"[", b"{") or "json" in r.headers.get("Content-Type", "").lower():
        try:
            json.loads(r.body)
        except ValueError:
            raise FetchError(f"{what}: the JSON answer does not parse (cut short?)") from None


def _result(r: Response, pages=None) -> Download:
    pages = pages or [{"url": redact_url(r.url), "status": r.status}]
    if r.status == 304:
        return Download(None, redact_url(r.url), 304, r.headers, pages)
    return Download(r.body, redact_url(r.url), r.status, r.headers, pages)


def _spacetrack(client: PoliteClient, remote: Remote, creds: Credentials | None,
                last: dict | None, now: dt.datetime) -> Download:
    wait = min(s for _, s in remote.rate_limits) if remote.rate_limits else 60.0
    login = client.request("POST", f"{remote.base_url}/ajaxauth/login",
                           data={"identity": creds.username, "password": creds.password},
                           retry_text=(SPACETRACK_RATE_PAGE, wait))
    if login.status != 200 or b'"Failed"' in login.body or \
            not client.session.cookies:
        raise FetchError(f"Space-Track refused the login (HTTP {login.status}); check the "
                         f"credentials named by the feed ({remote.credentials or 'netrc'})")
    since = (f">{last['requested_at'][:19]}" if last and last.get("requested_at")
             else ">now-30")
    query = remote.query.replace(">LAST", since)
    url = f"{remote.base_url}/basicspacedata/query/{quote(query, safe='/,-:.')}"
    r = client.request("GET", url, headers=_conditional(last),
                       retry_text=(SPACETRACK_RATE_PAGE, wait))
    if r.status != 304:
        _check_body(r, "Space-Track")
    return _result(r)


def _celestrak(client: PoliteClient, remote: Remote, creds, last: dict | None,
               now: dt.datetime) -> Download:
    path = ("/NORAD/elements/gp.php" if remote.endpoint == "gp"
            else "/NORAD/elements/supplemental/sup-gp.php")
    r = client.request("GET", remote.base_url + path, params=list(remote.query),
                       headers=_conditional(last))
    if r.status == 403 and CELESTRAK_NOT_UPDATED.encode() in r.body:
        return Download(None, redact_url(r.url), 403, r.headers,
                        [{"url": redact_url(r.url), "status": 403}])
    if r.status != 304:
        _check_body(r, "CelesTrak")
        if not r.body.strip() or r.body.lstrip()[:1].isalpha() and \
                r.body.lstrip()[:20].lower().startswith((b"invalid", b"no gp data")):
            raise FetchError(f"CelesTrak: {r.text_head()}")
    return _result(r)


def _udl_time(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _udl(client: PoliteClient, remote: Remote, creds: Credentials | None, last, now):
    params = dict(remote.query)
    start = now - dt.timedelta(hours=remote.window_hours)
    if last and last.get("requested_at"):  # since the last download: a missed night is caught up
        since = dt.datetime.fromisoformat(last["requested_at"])
        start = max(min(start, since), now - dt.timedelta(days=UDL_CATCH_UP_DAYS))
    if remote.service == "elset":
        params.setdefault("epoch", f">{_udl_time(start)}")
    else:
        params.setdefault("obTime", f"{_udl_time(start)}..{_udl_time(now)}")
    url, records, pages, first = f"{remote.base_url}/udl/{remote.service}", [], [], 0
    seen: set[bytes] = set()
    auth = (creds.username, creds.password)
    while True:
        page = dict(params, firstResult=str(first), maxResults=str(remote.page_size))
        r = client.request("GET", url, params=page, auth=auth)
        if r.status == 401:
            raise FetchError("UDL refused the credentials (HTTP 401)")
        _check_body(r, "UDL")
        pages.append({"url": redact_url(r.url), "status": r.status})
        try:
            items = json.loads(r.body)
        except ValueError:
            items = None
        if not isinstance(items, list):
            raise FetchError(f"UDL: expected a JSON array, got {r.text_head(80)!r}")
        inner = r.body.strip()[1:-1].strip()
        if inner and inner in seen:
            raise FetchError("UDL answered a page it had sent before: it ignores firstResult")
        seen.add(inner)
        if inner:
            records.append(inner)
        if len(items) < remote.page_size:
            break
        if sum(map(len, records)) > remote.max_bytes:
            raise FetchError(f"UDL: the pages exceed the feed's max_bytes "
                             f"({remote.max_bytes:,} bytes)")
        first += remote.page_size
    return Download(b"[" + b",\n".join(records) + b"]\n", pages[0]["url"], 200, r.headers,
                    pages)


def _http(client: PoliteClient, remote: Remote, creds: Credentials | None, last, now):
    url = remote.base_url + (f"/{remote.path}" if remote.path else "")
    auth = (creds.username, creds.password) if creds else None
    r = client.request("GET", url, headers=_conditional(last), auth=auth)
    if r.status == 401:
        raise FetchError(f"{redact_url(url)}: HTTP 401 (credentials refused or missing)")
    if r.status != 304:
        _check_body(r, redact_url(url))
    return _result(r)


_PROVIDERS = {"spacetrack": _spacetrack, "celestrak": _celestrak, "udl": _udl, "http": _http}


def download(client: PoliteClient, remote: Remote, creds: Credentials | None,
             last: dict | None, now: dt.datetime) -> Download:
    """One download of ``remote`` (``last``: the state of its previous successful one)."""
    return _PROVIDERS[remote.provider](client, remote, creds, last, now)

"""Fake SSA data providers for tests: real HTTP servers on 127.0.0.1 (a free port, started by the
test) that answer like Space-Track, CelesTrak, the Unified Data Library and a partner's file
drop, so a fetch client is tested against real sockets, not mocked sessions.

Standard library only for the servers (``http.server.ThreadingHTTPServer``, ``threading``);
python-sgp4 for the element sets; ``cryptography`` only for :func:`self_signed_context`.

What each fake is modelled on is said in its docstring, with the source; where a detail could
not be confirmed, the comment says "guessed".
"""

from __future__ import annotations

import base64
import bisect
import csv
import datetime as dt
import functools
import hashlib
import io
import ipaddress
import json
import math
import re
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from email.utils import format_datetime, parsedate_to_datetime
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sgp4.api import WGS72, Satrec
from sgp4.exporter import export_tle
from sgp4.omm import initialize as omm_initialize

UTC = dt.timezone.utc
Response = tuple[int, dict, bytes]          # (status, headers, body)


# --------------------------------------------------------------------------------------------
# Common base


class ManualClock:
    """A clock the test moves by hand: ``clock()`` gives seconds since 1970 (like
    ``time.time``); ``clock.advance(seconds)`` moves it on."""

    def __init__(self, start_s: float | None = None):
        self.now_s = time.time() if start_s is None else float(start_s)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now_s

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now_s += seconds


def serve_clock(start: dt.datetime | float | None = None) -> ManualClock:
    """A :class:`ManualClock` for a server's ``clock`` argument, starting at ``start`` (a
    datetime, seconds since 1970, or now). Servers default to ``time.time``."""
    return ManualClock(start.timestamp() if isinstance(start, dt.datetime) else start)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.owner._serve(self)

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def log_message(self, format, *args):     # keep test output quiet
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that timed out or hung up mid-answer (delay_next, truncate_next) is expected.
        pass


class FakeServer:
    """A threaded HTTP server on 127.0.0.1:<free port>, HTTPS when ``ssl_context`` is given.

    ``.url`` is ``http(s)://127.0.0.1:PORT``; ``.requests`` lists every request received, each a
    dict {method, path (percent-decoded, no query), query (str -> str), raw_path (as received),
    headers, body (bytes), time (``time.time()``)}. Faults for the next requests:
    :meth:`fail_next`, :meth:`delay_next`, :meth:`truncate_next`. A request that meets a
    ``fail_next`` fault is answered by the fault alone: it does not reach the provider logic
    (it does not count toward rate limits, sessions or download times). Every answer carries
    ``Content-Length`` and ``Connection: close``. ``clock`` (default ``time.time``) is used for
    every time window a subclass keeps. Subclasses implement ``handle(request) -> (status,
    headers, body)``; ``request`` also holds ``client`` (the client's IP).
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, clock=time.time):
        self.clock = clock
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._requests: list[dict] = []
        self._faults: dict[str, list[list]] = {"fail": [], "delay": [], "truncate": []}
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
        port = self._httpd.server_address[1]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # -- lifecycle
    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def requests(self) -> list[dict]:
        """A copy of the recorded requests, oldest first."""
        with self._lock:
            return list(self._requests)

    # -- faults
    def fail_next(self, status: int, times: int = 1, body: bytes = b"",
                  retry_after: float | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` and ``body`` (and a
        ``Retry-After: <seconds>`` header when ``retry_after`` is given)."""
        with self._lock:
            self._faults["fail"].append([times, (status, body, retry_after)])

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Sleep ``seconds`` before answering each of the next ``times`` requests."""
        with self._lock:
            self._faults["delay"].append([times, seconds])

    def truncate_next(self, times: int = 1) -> None:
        """For the next ``times`` requests: declare the full Content-Length, send about half
        the body, then close the connection."""
        with self._lock:
            self._faults["truncate"].append([times, True])

    def _take(self, kind: str):
        queue = self._faults[kind]
        if not queue:
            return None
        queue[0][0] -= 1
        value = queue[0][1]
        if queue[0][0] <= 0:
            queue.pop(0)
        return value

    # -- serving
    def _record(self, h: BaseHTTPRequestHandler) -> tuple[dict, dict]:
        """Record the request; return it (with ``client`` and ``raw_query``) and the faults
        it meets."""
        split = urllib.parse.urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        req = {"method": h.command, "path": urllib.parse.unquote(split.path),
               "query": dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
               "raw_path": h.path, "headers": dict(h.headers.items()),
               "body": h.rfile.read(length) if length else b"", "time": time.time()}
        with self._lock:
            self._requests.append(req)
            faults = {kind: self._take(kind) for kind in self._faults}
        return {**req, "client": h.client_address[0], "raw_query": split.query}, faults

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        req, faults = self._record(h)
        if faults["delay"]:
            self._closed.wait(faults["delay"])
        if faults["fail"]:
            status, body, retry_after = faults["fail"]
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            answer = (status, headers, body)
        else:
            answer = self.handle(req)
        self._send(h, *answer, truncate=bool(faults["truncate"]))

    def _send(self, h, status: int, headers: dict, body: bytes, *, truncate: bool) -> None:
        h.send_response(status)
        headers = {"Content-Type": "text/plain; charset=utf-8", **headers}
        for key, value in headers.items():
            if key == "Set-Cookie" and isinstance(value, list):
                for v in value:
                    h.send_header(key, v)
            else:
                h.send_header(key, value)
        no_body = status == 304 or h.command == "HEAD"
        declared = max(len(body), 2) if truncate else len(body)
        if status != 304:
            h.send_header("Content-Length", str(declared))
        h.send_header("Connection", "close")
        h.end_headers()
        if not no_body:
            h.wfile.write(body[: declared // 2] if truncate else body)
        h.wfile.flush()
        if truncate:
            h.connection.shutdown(socket.SHUT_RDWR)

    def handle(self, req: dict) -> Response:
        return 404, {}, b"Not Found"


def _json(status: int, obj, headers: dict | None = None) -> Response:
    return status, {"Content-Type": "application/json", **(headers or {})}, \
        json.dumps(obj).encode()


def _basic_auth_ok(req: dict, username: str, password: str) -> bool:
    header = req["headers"].get("Authorization", "")
    want = base64.b64encode(f"{username}:{password}".encode()).decode()
    return secrets.compare_digest(header.encode(), f"Basic {want}".encode())


_UNAUTHORIZED = (401, {"WWW-Authenticate": 'Basic realm="UDL"'}, b"Unauthorized")


# --------------------------------------------------------------------------------------------
# Element sets shared by the fakes


def _epoch_text(sat: Satrec) -> str:
    """The epoch of ``sat`` as ``YYYY-MM-DDTHH:MM:SS.ffffff`` (UTC), rounded to the µs."""
    days = (sat.jdsatepoch - 2440587.5) + sat.jdsatepochF
    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=round(days * 86400e6))
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _gp_record(name: str, line1: str, line2: str) -> dict:
    """A Space-Track ``gp`` class record (values as strings, as Space-Track sends them) from
    one 3LE. Decimal places follow the TLE columns; Space-Track's own padding of
    ECCENTRICITY / BSTAR digits is guessed."""
    sat = Satrec.twoline2rv(line1, line2)
    intl = line1[9:17].strip()
    year = int(intl[:2]) + (1900 if int(intl[:2]) >= 57 else 2000) if intl else None
    return {
        "CCSDS_OMM_VERS": "2.0", "COMMENT": "GENERATED VIA SPACE-TRACK.ORG API",
        "ORIGINATOR": "18 SPCS", "OBJECT_NAME": name,
        "OBJECT_ID": f"{year}-{intl[2:]}" if intl else "", "CENTER_NAME": "EARTH",
        "REF_FRAME": "TEME", "TIME_SYSTEM": "UTC", "MEAN_ELEMENT_THEORY": "SGP4",
        "EPOCH": _epoch_text(sat), "MEAN_MOTION": line2[52:63].strip(),
        "ECCENTRICITY": f"{sat.ecco:.8f}", "INCLINATION": line2[8:16].strip(),
        "RA_OF_ASC_NODE": line2[17:25].strip(), "ARG_OF_PERICENTER": line2[34:42].strip(),
        "MEAN_ANOMALY": line2[43:51].strip(), "EPHEMERIS_TYPE": line1[62].strip() or "0",
        "CLASSIFICATION_TYPE": line1[7], "NORAD_CAT_ID": str(sat.satnum),
        "ELEMENT_SET_NO": line1[64:68].strip(), "REV_AT_EPOCH": line2[63:68].strip(),
        "BSTAR": f"{sat.bstar:.10f}",
        "MEAN_MOTION_DOT": f"{sat.ndot * 1440 * 1440 / (2 * math.pi):.8f}",
        "MEAN_MOTION_DDOT": f"{sat.nddot * 1440 ** 3 / (2 * math.pi):.13f}",
        "DECAY_DATE": None, "TLE_LINE0": f"0 {name}", "TLE_LINE1": line1, "TLE_LINE2": line2,
    }


@functools.lru_cache(maxsize=4)
def _load_3le(path: str) -> tuple:
    """The 3LE catalogue at ``path`` as a tuple of entries (norad, epoch datetime, name,
    3le text, tle text, json text, record). Cached by path: a test session starts many
    servers on the same 26k-object file and the parse takes about a second."""
    lines = [ln.rstrip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    entries = []
    for i in range(0, len(lines) - 2, 3):
        name_line, l1, l2 = lines[i:i + 3]
        name = name_line[2:] if name_line.startswith("0 ") else name_line
        rec = _gp_record(name, l1, l2)
        epoch = dt.datetime.fromisoformat(rec["EPOCH"]).replace(tzinfo=UTC)
        entries.append((int(rec["NORAD_CAT_ID"]), epoch, name, f"0 {name}\n{l1}\n{l2}\n",
                        f"{l1}\n{l2}\n", json.dumps(rec), rec))
    return tuple(entries)


# --------------------------------------------------------------------------------------------
# Space-Track


RATE_LIMIT_TEXT = ("You've violated your query rate limit. Please refer to our Acceptable Use "
                   "Policy (https://www.space-track.org/documentation#/api) or contact "
                   "admin@space-track.org")
_ST_QUERY = "/basicspacedata/query/class/gp"
_ST_KEYS = {"NORAD_CAT_ID", "DECAY_DATE", "EPOCH", "ORDERBY", "LIMIT", "EMPTYRESULT", "FORMAT"}


class SpaceTrackServer(FakeServer):
    """Modelled on www.space-track.org (``/ajaxauth/login``, ``/basicspacedata/query/class/gp``).

    Confirmed (sources searched 2026-12): a failed login is HTTP 200 with ``{"Login":"Failed"}``
    and a good one a JSON empty string ``""`` with one cookie, ``chocolatechip`` (several client
    projects' measured notes); the rate limits are 30 requests per minute and 300 per hour
    (Space-Track's usage policy as quoted by clients); a per-minute violation is HTTP 500 with
    a body containing "violated your query rate limit" (python-astrodynamics/spacetrack
    ``base.py`` retries on exactly that test; its tests fake a 500 with that text).
    Guessed: the 401 text for a query without a session (one third-party note measured a 500
    with an HTML page instead), and the errors for unknown predicates.

    ``now`` (a datetime): what ``now`` means in ``epoch/>now-N`` (default: the clock), since
    the catalogue files are old. ``.violations``: rate-limit violations so far;
    ``.query_count``: gp queries answered 200.
    """

    def __init__(self, catalogue_3le_path, username: str, password: str,
                 limits=((30, 60.0), (300, 3600.0)), *, now: dt.datetime | None = None,
                 **kw):
        self.entries = _load_3le(str(catalogue_3le_path))
        self.username, self.password = username, password
        self.limits, self.now = tuple(limits), now
        self.violations = 0
        self._answered = 0
        self._arrivals: list[float] = []
        self._sessions: set[str] = set()
        super().__init__(**kw)

    @property
    def query_count(self) -> int:
        return self._answered

    def _violates(self) -> bool:
        """Count this request at arrival; True when it breaks a limit. A violating request
        counts toward the windows too, as a server that logs every hit would."""
        with self._lock:
            t = self.clock()
            self._arrivals.append(t)
            longest = max((w for _, w in self.limits), default=0.0)
            del self._arrivals[:bisect.bisect_right(self._arrivals, t - longest)]
            broken = any(len(self._arrivals) - bisect.bisect_right(self._arrivals, t - window)
                         > count for count, window in self.limits)
            self.violations += broken
            return broken

    def handle(self, req: dict) -> Response:
        if self._violates():
            return _json(500, {"error": RATE_LIMIT_TEXT})
        path = req["path"].rstrip("/")
        if path == "/ajaxauth/login" and req["method"] == "POST":
            form = dict(urllib.parse.parse_qsl(req["body"].decode("utf-8", "replace")))
            if (form.get("identity"), form.get("password")) != (self.username, self.password):
                return _json(200, {"Login": "Failed"})
            token = secrets.token_hex(16)
            with self._lock:
                self._sessions.add(token)
            return 200, {"Content-Type": "application/json",
                         "Set-Cookie": f"chocolatechip={token}; path=/; HttpOnly"}, b'""'
        if path == "/ajaxauth/logout":
            with self._lock:
                self._sessions.discard(self._session(req))
            return 200, {}, b"Successfully logged out"
        if (path == _ST_QUERY or path.startswith(_ST_QUERY + "/")) and req["method"] == "GET":
            if self._session(req) not in self._sessions:
                return _json(401, {"error": "You must be logged in to complete this action"})
            answer = self._query(path[len(_ST_QUERY):])
            if answer[0] == 200:
                with self._lock:
                    self._answered += 1
            return answer
        return 404, {}, b"Not Found"

    def _session(self, req: dict) -> str | None:
        cookie = SimpleCookie(req["headers"].get("Cookie", ""))
        return cookie["chocolatechip"].value if "chocolatechip" in cookie else None

    def _query(self, tail: str) -> Response:
        parts = [p for p in tail.split("/") if p]
        if len(parts) % 2:
            return _json(400, {"error": f"predicate without a value: {parts[-1]!r}"})
        preds = {k.upper(): v for k, v in zip(parts[::2], parts[1::2])}
        unknown = set(preds) - _ST_KEYS
        if unknown:     # guessed wording: Space-Track rejects unknown fields for the class
            return _json(400, {"error": f"Unknown predicate(s) for class gp: {sorted(unknown)}"})
        try:
            now = self.now or dt.datetime.fromtimestamp(self.clock(), UTC)
            epoch_ok = _st_epoch_test(preds.get("EPOCH"), now)
            rows = [e for e in self.entries if self._match(e, preds) and epoch_ok(e[1])]
            rows = _st_order_limit(rows, preds.get("ORDERBY"), preds.get("LIMIT"))
        except ValueError as e:
            return _json(400, {"error": str(e)})
        fmt = preds.get("FORMAT", "json").lower()
        if fmt == "json":
            return 200, {"Content-Type": "application/json"}, \
                ("[" + ",".join(e[5] for e in rows) + "]").encode()
        if fmt not in ("3le", "tle"):
            return _json(400, {"error": f"unsupported format {fmt!r} (this fake: json, tle, 3le)"})
        if not rows and preds.get("EMPTYRESULT", "").lower() == "show":
            return 200, {}, b"NO RESULTS RETURNED"      # guessed wording of emptyresult/show
        return 200, {}, "".join(e[3 if fmt == "3le" else 4] for e in rows).encode()

    def _match(self, e: tuple, preds: dict) -> bool:
        ids = preds.get("NORAD_CAT_ID")
        if ids is not None and not _st_ids_match(e[0], ids):
            return False
        # every object in our catalogues is undecayed: DECAY_DATE is null
        return preds.get("DECAY_DATE", "null-val").lower() == "null-val"


def _st_ids_match(norad: int, spec: str) -> bool:
    for item in spec.split(","):
        lo, sep, hi = item.partition("--")
        if (int(lo) <= norad <= int(hi)) if sep else norad == int(item):
            return True
    return False


def _st_time(text: str, now: dt.datetime) -> dt.datetime:
    """``now``, ``now-N`` / ``now+N`` (days), ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SS[.f]`` (UTC;
    a space for the T is accepted too)."""
    m = re.fullmatch(r"now(?:([+-])([\d.]+))?", text.strip().lower())
    if m:
        days = float(m.group(2) or 0) * (-1 if m.group(1) == "-" else 1)
        return (now if now.tzinfo else now.replace(tzinfo=UTC)) + dt.timedelta(days=days)
    try:
        return dt.datetime.fromisoformat(text.strip().replace(" ", "T")).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"bad time {text!r}: expected now-N or YYYY-MM-DD[THH:MM:SS]") from None


def _st_epoch_test(spec: str | None, now: dt.datetime):
    """A test ``epoch -> bool`` for ``epoch/<spec>``: ``>t``, ``<t``, ``a--b`` (inclusive) or
    ``t``; bounds parsed once."""
    if spec is None:
        return lambda epoch: True
    if "--" in spec:
        lo, hi = (_st_time(t, now) for t in spec.split("--", 1))
        return lambda epoch: lo <= epoch <= hi
    if spec[:1] in "<>":
        bound = _st_time(spec[1:], now)
        return (lambda epoch: epoch > bound) if spec[0] == ">" else (lambda epoch: epoch < bound)
    exact = _st_time(spec, now)
    return lambda epoch: epoch == exact


def _st_order_limit(rows: list, orderby: str | None, limit: str | None) -> list:
    """``orderby/FIELD [asc|desc][,FIELD ...]`` then ``limit/n[,offset]``."""
    for clause in reversed((orderby or "").split(",")):
        if not clause.strip():
            continue
        field, _, direction = clause.strip().partition(" ")
        field = field.upper()
        if field == "NORAD_CAT_ID":
            key = lambda e: e[0]            # noqa: E731
        elif field == "EPOCH":
            key = lambda e: e[1]            # noqa: E731
        else:
            key = lambda e, f=field: str(e[6].get(f) or "")  # noqa: E731
        rows = sorted(rows, key=key, reverse=direction.strip().lower() == "desc")
    if limit:
        count, _, offset = limit.partition(",")
        start = int(offset or 0)
        rows = rows[start:start + int(count)]
    return rows


# --------------------------------------------------------------------------------------------
# CelesTrak


CELESTRAK_CSV_COLUMNS = (
    "OBJECT_NAME", "OBJECT_ID", "EPOCH", "MEAN_MOTION", "ECCENTRICITY", "INCLINATION",
    "RA_OF_ASC_NODE", "ARG_OF_PERICENTER", "MEAN_ANOMALY", "EPHEMERIS_TYPE",
    "CLASSIFICATION_TYPE", "NORAD_CAT_ID", "ELEMENT_SET_NO", "REV_AT_EPOCH", "BSTAR",
    "MEAN_MOTION_DOT", "MEAN_MOTION_DDOT")


def _omm_tle(rec: dict) -> tuple[str, str]:
    """TLE lines 1 and 2 for one CelesTrak OMM JSON record (python-sgp4 round trip)."""
    fields = {k: str(v) for k, v in rec.items()}
    if "." not in fields["EPOCH"]:
        fields["EPOCH"] += ".000000"
    sat = Satrec()
    omm_initialize(sat, fields)
    return export_tle(sat)


@functools.lru_cache(maxsize=32)
def _load_omm(path: str) -> tuple:
    """The records of a CelesTrak OMM JSON file; cached by path."""
    return tuple(json.loads(Path(path).read_text()))


@functools.lru_cache(maxsize=32)
def _omm_tles(path: str) -> tuple:
    """TLE lines of each record of ``_load_omm(path)``; made on first use (thousands of
    Starlink records take about a second), cached by path."""
    return tuple(_omm_tle(r) for r in _load_omm(path))


class _Table:
    """One group or SupGP file: its records, and their TLE lines when first asked for."""

    def __init__(self, path):
        self.path = str(path)
        self.records = _load_omm(self.path)

    def rows(self) -> list:
        return list(zip(self.records, _omm_tles(self.path)))


class CelesTrakServer(FakeServer):
    """Modelled on celestrak.org ``/NORAD/elements/gp.php`` and
    ``/NORAD/elements/supplemental/sup-gp.php``.

    Confirmed (celestrak.org/NORAD/documentation/gp-data-formats.php and sup-gp-queries.php;
    byte-for-byte captures quoted by several client projects, 2023-2026): queries GROUP=,
    CATNR=, FILE= / SOURCE= (SupGP) with FORMAT = TLE (the default when FORMAT is absent),
    3LE, 2LE, JSON, JSON-PRETTY, CSV; an unknown group is HTTP **200** with
    ``Invalid query: "GROUP=x&FORMAT=tle" (GROUP=x not found)``; an empty answer is 200 "No GP
    data found"; a repeat download before the data updates is HTTP 403 with
    ``GP data has not updated since your last successful\\ndownload of GROUP=active at
    2026-08-09 12:00:00 UTC.\\nData is updated once every 2 hours.\\n`` (line breaks as captured;
    the message names only the selection, and one client saw the JSON-then-TLE fetch of one
    group refused, so the key here is the selection, not the FORMAT); gp.php sends no ETag and
    no Last-Modified (a client's note), so none are sent here.
    Guessed: TLE/3LE text uses CRLF line ends and names padded to 24 columns; "TLE" and "3LE"
    are the same (name line without "0 "), as the documentation lists them together; CSV
    rows end in CRLF; an unknown FILE/SOURCE answers like an unknown GROUP.

    ``groups`` / ``supgp``: name -> OMM JSON file. ``.update()`` marks all data updated now;
    ``.not_updated``: 403 answers so far.
    """

    def __init__(self, groups: dict, supgp: dict | None = None, not_updated_s: float = 7200.0,
                 **kw):
        self.groups = {k.lower(): _Table(p) for k, p in groups.items()}
        self.supgp = {k.lower(): _Table(p) for k, p in (supgp or {}).items()}
        self.not_updated_s = not_updated_s
        self.not_updated = 0
        self._last_ok: dict[tuple, float] = {}
        super().__init__(**kw)
        self._updated_at = self.clock()

    def update(self) -> None:
        with self._lock:
            self._updated_at = self.clock()

    def handle(self, req: dict) -> Response:
        path = req["path"]
        tables = {"/NORAD/elements/gp.php": self.groups,
                  "/NORAD/elements/supplemental/sup-gp.php": self.supgp}.get(path)
        if tables is None:
            return 404, {}, b"Not Found"
        q = {k.upper(): v for k, v in req["query"].items()}
        fmt = q.get("FORMAT", "TLE").upper()
        selection, rows = self._select(tables, q)
        if rows is None or fmt not in ("TLE", "3LE", "2LE", "JSON", "JSON-PRETTY", "CSV"):
            why = f"{selection} not found" if rows is None else f"FORMAT={fmt} not supported"
            return 200, {}, f'Invalid query: "{req["raw_query"]}" ({why})'.encode()
        key = (req["client"], path, selection.upper())
        with self._lock:
            now, last = self.clock(), self._last_ok.get(key)
            if last is not None and now - last < self.not_updated_s and self._updated_at <= last:
                self.not_updated += 1
                stamp = dt.datetime.fromtimestamp(last, UTC).strftime("%Y-%m-%d %H:%M:%S")
                return 403, {}, (f"GP data has not updated since your last successful\n"
                                 f"download of {selection} at {stamp} UTC.\n"
                                 f"Data is updated once every 2 hours.\n").encode()
            self._last_ok[key] = now
        if isinstance(rows, _Table):     # TLE lines only made when a TLE format is asked for
            rows = rows.rows() if fmt in ("TLE", "3LE", "2LE") else \
                [(r, None) for r in rows.records]
        if not rows:
            return 200, {}, b"No GP data found"
        return _celestrak_body(rows, fmt)

    @staticmethod
    def _select(tables: dict, q: dict) -> tuple[str, list | _Table | None]:
        """(selection text, rows): a :class:`_Table` for GROUP / FILE / SOURCE, a list of
        (record, (line1, line2)) for CATNR, None when the group or file is unknown."""
        if "CATNR" in q:
            found = {}
            for table in tables.values():
                for rec in table.records:
                    if str(rec["NORAD_CAT_ID"]) == q["CATNR"].strip():
                        found.setdefault(rec["NORAD_CAT_ID"], (rec, _omm_tle(rec)))
            return f"CATNR={q['CATNR']}", list(found.values())
        for name in ("GROUP", "FILE", "SOURCE"):
            if name in q:
                table = tables.get(q[name].lower())
                sel = f"{name}={q[name]}"
                return sel, None if table is None else table
        return "(no query)", None


def _celestrak_body(rows: list, fmt: str) -> Response:
    if fmt in ("JSON", "JSON-PRETTY"):
        indent = 1 if fmt == "JSON-PRETTY" else None
        return 200, {"Content-Type": "application/json"}, \
            json.dumps([r for r, _ in rows], indent=indent).encode()
    if fmt == "CSV":
        out = io.StringIO()
        writer = csv.DictWriter(out, CELESTRAK_CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(r for r, _ in rows)
        return 200, {"Content-Type": "text/csv"}, out.getvalue().encode()
    text = "".join((f"{r['OBJECT_NAME']:<24}\r\n" if fmt != "2LE" else "")
                   + f"{l1}\r\n{l2}\r\n" for r, (l1, l2) in rows)
    return 200, {}, text.encode()


# --------------------------------------------------------------------------------------------
# Unified Data Library


UDL_TIME_FIELD = {"elset": "epoch", "eoobservation": "obTime", "radarobservation": "obTime"}
UDL_ID_FIELD = {"elset": "idElset", "eoobservation": "id", "radarobservation": "id"}
_UDL_PAGING = {"firstResult", "maxResults"}


def _udl_time(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _udl_time_match(value: str, spec: str) -> bool:
    t = _udl_time(value)
    if ".." in spec:
        lo, hi = spec.split("..", 1)
        return _udl_time(lo) <= t <= _udl_time(hi)
    if spec[:1] in "<>":
        bound = _udl_time(spec[1:])
        return t > bound if spec[0] == ">" else t < bound
    return t == _udl_time(spec)


class UdlServer(FakeServer):
    """Modelled on the Unified Data Library REST API (unifieddatalibrary.com, ``/udl/...``).

    Confirmed (the UDL OpenAPI document and the published SDKs, unifieddatalibrary-python /
    -java / -typescript): ``GET /udl/elset``, ``/udl/eoobservation``, ``/udl/radarobservation``
    return JSON lists and take ``firstResult`` / ``maxResults`` paging; ``obTime`` is a required
    parameter of the observation queries (the SDK's ``count`` example passes only ``obTime``);
    ``GET /udl/<service>/count`` answers the count as ``text/plain``; HTTP Basic auth.
    Guessed: the 400 body for a missing ``obTime``, and that any other query key filters by
    equality on that record field (UDL's exact-match query on a field); the range operators
    ``>t``, ``<t`` and ``a..b`` (inclusive) are taken from the brief and UDL's query help as
    recalled, not from a page found here.

    ``records``: service -> list of records (see :func:`udl_records`); ``max_page``: the
    default and the cap of ``maxResults``.
    """

    def __init__(self, username: str, password: str, records: dict, max_page: int = 1000,
                 **kw):
        self.username, self.password, self.max_page = username, password, max_page
        self.records = {}
        for service, rows in records.items():
            tf, idf = UDL_TIME_FIELD.get(service, "obTime"), UDL_ID_FIELD.get(service, "id")
            self.records[service] = sorted(rows, key=lambda r: (_udl_time(r[tf]),
                                                                str(r.get(idf))))
        super().__init__(**kw)

    def handle(self, req: dict) -> Response:
        if not _basic_auth_ok(req, self.username, self.password):
            return _UNAUTHORIZED
        m = re.fullmatch(r"/udl/(\w+)(/count)?/?", req["path"])
        if not m or m.group(1) not in self.records or req["method"] != "GET":
            return _json(404, {"message": f"no such service: {req['path']}"})
        service, counting = m.group(1), bool(m.group(2))
        time_field = UDL_TIME_FIELD.get(service, "obTime")
        q = req["query"]
        if time_field == "obTime" and "obTime" not in q:
            return _json(400, {"message": "Required query parameter 'obTime' is missing "
                                          "(e.g. obTime=>2026-03-09T00:00:00.000000Z)"})
        try:
            rows = [r for r in self.records[service] if _udl_keep(r, q, time_field)]
            first = int(q.get("firstResult", 0))
            size = min(int(q.get("maxResults", self.max_page)), self.max_page)
        except ValueError as e:
            return _json(400, {"message": f"bad query value: {e}"})
        if counting:
            return 200, {}, str(len(rows)).encode()
        return _json(200, rows[first:first + size])


def _udl_keep(rec: dict, q: dict, time_field: str) -> bool:
    for key, spec in q.items():
        if key in _UDL_PAGING:
            continue
        if key == time_field:
            if not _udl_time_match(rec[time_field], spec):
                return False
        elif str(rec.get(key)) != spec:
            return False
    return True


_ISS_3LE = ("ISS (ZARYA)",   # from spacetrack_3le_2023-10-09_cdm_on_chain.txt
            "1 25544U 98067A   23282.71486326  .00020100  00000-0  35938-3 0  9998",
            "2 25544  51.6410 121.2575 0005123  92.3190 358.8196 15.49983917419557")
_SENSOR_SITE = {"idSensor": "FAKE-SENSOR-1", "senlat": 52.2, "senlon": -0.9, "senalt": 0.1}


def _udl_z(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iss_elset(epoch: dt.datetime, i: int, marking: str) -> dict:
    """One UDL Elset record: the 2023 ISS elements moved to ``epoch`` (same mean elements,
    new epoch: plausible, not a real orbit), with consistent line1/line2."""
    ref = Satrec.twoline2rv(_ISS_3LE[1], _ISS_3LE[2])
    sat = Satrec()
    days = (epoch - dt.datetime(1949, 12, 31, tzinfo=UTC)).total_seconds() / 86400.0
    sat.sgp4init(WGS72, "i", ref.satnum, days, ref.bstar, ref.ndot, ref.nddot, ref.ecco,
                 ref.argpo, ref.inclo, ref.mo, ref.no_kozai, ref.nodeo)
    sat.classification, sat.intldesg = "U", ref.intldesg
    sat.elnum, sat.revnum, sat.ephtype = 999, ref.revnum + i, 0
    line1, line2 = export_tle(sat)
    rec = _gp_record(_ISS_3LE[0], line1, line2)
    return {"idElset": f"ELSET-{i:06d}", "classificationMarking": marking, "satNo": sat.satnum,
            "epoch": _udl_z(epoch), "meanMotion": float(rec["MEAN_MOTION"]),
            "eccentricity": sat.ecco, "inclination": float(rec["INCLINATION"]),
            "raan": float(rec["RA_OF_ASC_NODE"]), "argOfPerigee": float(rec["ARG_OF_PERICENTER"]),
            "meanAnomaly": float(rec["MEAN_ANOMALY"]), "bStar": sat.bstar,
            "meanMotionDot": float(rec["MEAN_MOTION_DOT"]),
            "meanMotionDDot": float(rec["MEAN_MOTION_DDOT"]), "revNo": sat.revnum,
            "ephemType": 0, "line1": line1, "line2": line2, "source": "fake-udl",
            "origin": "THIRD_PARTY_DATASOURCE", "dataMode": "TEST", "uct": False}


def udl_records(kind: str, n: int, start: dt.datetime, step_s: float,
                marking: str = "U") -> list[dict]:
    """``n`` plausible UDL records of ``kind`` ("elset", "eoobservation" or
    "radarobservation"), times ``start + i * step_s`` (UTC), key names of the UDL schema (as in
    tests/data/udl and ingest_formats/udl_*.toml). Deterministic: no random numbers.
    Observation values are plausible numbers for one sensor, not a real pass."""
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    out = []
    for i in range(n):
        t = start + dt.timedelta(seconds=i * step_s)
        if kind == "elset":
            out.append(_iss_elset(t, i, marking))
            continue
        common = {"id": f"{kind.upper()}-{i:06d}", "classificationMarking": marking,
                  "obTime": _udl_z(t), **_SENSOR_SITE, "satNo": 25544, "uct": False,
                  "source": "fake-udl", "dataMode": "TEST"}
        if kind == "eoobservation":
            out.append({**common, "ra": (120.0 + 0.05 * i) % 360.0,
                        "declination": 20.0 + 0.01 * (i % 100), "raUnc": 0.0003,
                        "declinationUnc": 0.0003, "mag": 3.5, "magUnc": 0.1,
                        "referenceFrame": "J2000"})
        elif kind == "radarobservation":
            out.append({**common, "azimuth": (90.0 + 0.2 * i) % 360.0,
                        "elevation": 10.0 + 0.1 * (i % 500), "range": 1200.0 - 0.5 * (i % 1000),
                        "rangeRate": -3.2, "azimuthUnc": 0.01, "elevationUnc": 0.01,
                        "rangeUnc": 0.02, "rangeRateUnc": 0.001, "senx": 3900.0,
                        "seny": -60.0, "senz": 5020.0})
        else:
            raise ValueError(f"unknown UDL kind {kind!r}: expected elset, eoobservation or "
                             "radarobservation")
    return out


# --------------------------------------------------------------------------------------------
# A partner's file drop


class FileServer(FakeServer):
    """A partner's HTTP(S) file drop (a plain static web server, as nginx / Apache serve one):
    ``GET /<path>`` with a strong ``ETag: "<sha256 hex>"`` and ``Last-Modified``; conditional
    GETs (``If-None-Match``, else ``If-Modified-Since``, RFC 9110 §13.1) answer 304 with no body.
    Optional HTTP Basic auth (as :class:`UdlServer`). ``.put(path, data, last_modified=None)``
    replaces a file (new ETag; Last-Modified now, or as given)."""

    def __init__(self, files: dict, username: str | None = None, password: str | None = None,
                 **kw):
        self.username, self.password = username, password
        self._files: dict[str, tuple[bytes, float]] = {}
        super().__init__(**kw)
        started = self.clock()
        for path, data in files.items():
            self.put(path, data, last_modified=started)

    def put(self, path: str, data: bytes, last_modified: dt.datetime | float | None = None):
        if isinstance(last_modified, dt.datetime):
            last_modified = last_modified.timestamp()
        with self._lock:
            self._files["/" + path.lstrip("/")] = (
                bytes(data), self.clock() if last_modified is None else last_modified)

    def handle(self, req: dict) -> Response:
        if self.username is not None and not _basic_auth_ok(req, self.username, self.password):
            return _UNAUTHORIZED
        with self._lock:
            found = self._files.get(req["path"])
        if found is None:
            return 404, {}, b"Not Found"
        data, mtime = found
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        stamp = dt.datetime.fromtimestamp(int(mtime), UTC)
        headers = {"ETag": etag, "Last-Modified": format_datetime(stamp, usegmt=True),
                   "Content-Type": "application/octet-stream"}
        h = req["headers"]
        if "If-None-Match" in h:
            tags = [t.strip().removeprefix("W/") for t in h["If-None-Match"].split(",")]
            if etag in tags or "*" in tags:
                return 304, headers, b""
        elif "If-Modified-Since" in h:
            try:
                if stamp <= parsedate_to_datetime(h["If-Modified-Since"]):
                    return 304, headers, b""
            except (TypeError, ValueError):
                pass                        # an unreadable date is ignored (RFC 9110)
        return 200, headers, data


def self_signed_context(tmp_path) -> tuple[ssl.SSLContext, str]:
    """(server SSL context, CA file path): a throw-away CA and a server certificate for
    127.0.0.1 (subjectAltName IP) signed by it, written under ``tmp_path``. Give the context
    to a server (``ssl_context=``) and the CA file to the client (``verify=ca_file``)."""
    # cryptography is imported here: only the HTTPS tests need it.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ssafuse test CA")])

    def build(subject, public_key, signer, *, ca: bool):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
             .public_key(public_key).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5))
             .not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(not ca, False, False, False, False, ca, ca, False,
                                          False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 ca_key.public_key()), False))
        if not ca:
            b = (b.add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                critical=False))
        return b.sign(signer, hashes.SHA256())

    ca_cert = build(ca_name, ca_key.public_key(), ca_key, ca=True)
    cert = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
                 key.public_key(), ca_key, ca=False)
    tmp = Path(tmp_path)
    ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, str(ca_file)

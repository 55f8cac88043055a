"""A polite HTTP client: one feed's requests, within its provider's limits and its deadline.

Every request first takes its place in the provider's shared rate limit
(:class:`~ssafuse.fetch.limits.RateLimiter`). Timeouts, dropped connections, truncated bodies
(fewer bytes than ``Content-Length``) and the answers 408, 429, 500, 502, 503 and 504 are
retried after an exponential backoff with jitter (1 s, 2 s, 4 s ... at most 60 s, each
times a random 0.5 to 1), or after the server's ``Retry-After``, for as long as the feed's
deadline allows; then the fetch fails with the last reason. Anything else is the answer.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field

import requests
import urllib3

from ..errors import SsafuseError
from .credentials import redact
from .limits import RateLimiter, RateLimitWait
from .remote import Remote

__all__ = ["FetchError", "Response", "PoliteClient", "KEPT_HEADERS"]

#: Answers worth asking again.
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
BACKOFF_BASE_S, BACKOFF_MAX_S = 1.0, 60.0
#: The response headers kept with a download (never cookies or authentication).
KEPT_HEADERS = ("content-type", "content-length", "content-encoding", "etag", "last-modified",
                "date", "cache-control", "expires", "retry-after", "server")


class FetchError(SsafuseError):
    """A feed could not be downloaded (its text never holds a secret)."""


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes
    url: str
    #: every request made for it, retries included
    attempts: int = 1

    def text_head(self, n: int = 300) -> str:
        return redact(self.body[:n].decode("utf-8", "replace").strip())


class _Transient(Exception):
    def __init__(self, why: str, retry_after: float | None = None):
        super().__init__(why)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number of seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    if value.strip().replace(".", "", 1).isdigit():  # delay-seconds
        return float(value)
    try:  # an HTTP date
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class PoliteClient:
    remote: Remote
    limiter: RateLimiter
    verify: bool | str = True
    clock: object = time.time
    sleep: object = time.sleep
    session: requests.Session = field(default_factory=requests.Session)
    #: requests sent (retries included)
    sent: int = 0

    def __post_init__(self):
        self.deadline = self.clock() + self.remote.deadline_s
        self.session.headers["User-Agent"] = "ssafuse (+https://github.com/ssafuse)"

    def request(self, method: str, url: str, *, retry_text: tuple[str, float] | None = None,
                **kwargs) -> Response:
        """Send one request, retried as the module says; ``retry_text``: ``(text, wait)``,
        an answer whose body holds ``text`` is retried after ``wait`` seconds (Space-Track's
        rate-limit page). Raises :class:`FetchError` when the deadline passes."""
        attempts, why = 0, ""
        while True:
            attempts += 1
            try:
                return self._once(method, url, attempts, retry_text, **kwargs)
            except _Transient as e:
                why = str(e)
                # never sooner than the backoff, even when the server says Retry-After: 0
                delay = max(e.retry_after or 0.0, min(
                    BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempts - 1)) * random.uniform(0.5, 1))
            except RateLimitWait as e:
                raise FetchError(f"{e}" + (f"; the last attempt: {redact(why)}" if why else "")
                                 ) from None
            if self.clock() + delay >= self.deadline:
                raise FetchError(f"gave up after {attempts} attempts within the feed's deadline "
                                 f"({self.remote.deadline_s:g} s): {redact(why)}")
            self.sleep(delay)

    def _read(self, r: requests.Response) -> bytes:
        """The body, decompressed, read as it arrives (``read1``: whatever the socket has, so
        the deadline is checked between reads even when a server drips a byte at a time):
        refused past ``max_bytes`` (a broken or hostile server, a decompression bomb) or past
        the deadline."""
        body = bytearray()
        while True:
            try:
                chunk = r.raw.read1(1 << 16, decode_content=True)
            except urllib3.exceptions.ReadTimeoutError:
                raise _Transient("the body stopped arriving (read timeout)") from None
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError):
                raise _Transient("body cut short: the connection closed early") from None
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > self.remote.max_bytes:
                raise FetchError(f"the answer exceeds the feed's max_bytes "
                                 f"({self.remote.max_bytes:,} bytes); not kept")
            if self.clock() > self.deadline:
                raise _Transient(f"the body was still arriving at the feed's deadline "
                                 f"({self.remote.deadline_s:g} s)")

    def _once(self, method: str, url: str, attempts: int, retry_text, **kwargs) -> Response:
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            raise FetchError(f"the feed's deadline ({self.remote.deadline_s:g} s) passed")
        self.limiter.acquire(self.deadline)
        remaining = self.deadline - self.clock()
        timeout = max(0.05, min(self.remote.timeout_s, remaining))
        self.sent += 1
        try:
            r = self.session.request(method, url, timeout=(min(timeout, 10.0), timeout),
                                     verify=self.verify, stream=True, **kwargs)
            with r:
                body = self._read(r)
        except requests.Timeout:
            raise _Transient(f"no answer within {timeout:.3g} s") from None
        except requests.exceptions.SSLError:  # asking again changes nothing
            raise FetchError(f"{redact(url)}: the server's certificate is not trusted (give "
                             "the feed's ca_file if it is a partner's own authority)") from None
        except requests.exceptions.ChunkedEncodingError:
            raise _Transient("body cut short: the connection closed early") from None
        except requests.RequestException as e:  # refused, reset
            raise _Transient(f"connection failed: {type(e).__name__}") from None
        expected = r.headers.get("Content-Length")
        if expected and expected.isdigit() and "Content-Encoding" not in r.headers \
                and int(expected) != len(body):
            raise _Transient(f"body cut short: {len(body)} of {expected} bytes")
        if retry_text and retry_text[0].encode() in body[:2000]:
            raise _Transient(f"HTTP {r.status_code}: {retry_text[0]}", retry_text[1])
        if r.status_code in RETRY_STATUS:
            raise _Transient(f"HTTP {r.status_code}", _retry_after(r.headers.get("Retry-After")))
        headers = {k: r.headers[k] for k in r.headers if k.lower() in KEPT_HEADERS}
        return Response(r.status_code, headers, body, r.url, attempts)

"""What a fetched feed asks for: the ``[[feeds]]`` keys of a feed with a ``provider``.

One place decides every provider's defaults (:data:`PROVIDERS`): its public address, the
rate limits it publishes, the minimum interval between two downloads of the same query, and
whether it needs a login. :func:`remote_from_table` checks a feed's keys against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .credentials import check_reference
from .limits import check_limits

__all__ = ["Provider", "PROVIDERS", "Remote", "remote_from_table", "REMOTE_KEYS"]


@dataclass(frozen=True)
class Provider:
    base_url: str | None
    #: ``(requests, seconds)`` windows the provider allows
    limits: tuple[tuple[int, float], ...]
    #: the same query is not downloaded again sooner than this
    min_interval_s: float
    #: ``"required"``, ``"optional"`` (a partner's drop may need one), or ``"none"``
    login: str


#: Every provider's defaults. Space-Track: 30 requests a minute and 300 an hour (its API use
#: policy; the ``spacetrack`` package enforces the same), GP data fetched at most hourly.
#: CelesTrak: GP data updates every 2 hours and a repeat inside that interval is answered 403
#: (celestrak.org/NORAD/documentation/gp-data-formats.php); no request rate is published, so
#: ours is a gentle 20 a minute. UDL: basic auth; no public rate is published, 3 a second is
#: our choice. A partner's HTTP drop: conditional requests (ETag) make repeats cheap.
PROVIDERS: dict[str, Provider] = {
    "spacetrack": Provider("https://www.space-track.org", ((30, 60.0), (300, 3600.0)), 3600.0,
                           "required"),
    "celestrak": Provider("https://celestrak.org", ((20, 60.0),), 7200.0, "none"),
    "udl": Provider("https://unifieddatalibrary.com", ((3, 1.0),), 0.0, "required"),
    "http": Provider(None, ((60, 60.0),), 0.0, "optional"),
}

#: The keys a fetched feed may have besides ``source``, ``format``, ``marking``, ``precedence``.
REMOTE_KEYS = {"provider", "base_url", "query", "path", "service", "endpoint", "credentials",
               "min_interval_s", "deadline_s", "timeout_s", "rate_limits", "window_hours",
               "page_size", "ca_file", "max_bytes"}

#: Keys that would put a secret in the configuration: refused, with where it goes instead.
SECRET_KEYS = {"username", "password", "user", "identity", "token", "api_key", "secret"}


@dataclass(frozen=True)
class Remote:
    """One fetched feed's request: see ``examples/nightly.toml`` for every key."""

    provider: str
    base_url: str
    #: Space-Track: the query path after ``/basicspacedata/query/`` (``class/gp/...``);
    #: CelesTrak, UDL, HTTP: query parameters
    query: str | tuple[tuple[str, str], ...] = ()
    #: HTTP: the file's path under ``base_url``
    path: str = ""
    #: UDL: ``elset`` | ``eoobservation`` | ``radarobservation``
    service: str = ""
    #: CelesTrak: ``gp`` (gp.php) or ``supgp`` (sup-gp.php)
    endpoint: str = "gp"
    credentials: str | None = None
    min_interval_s: float = 0.0
    deadline_s: float = 600.0
    timeout_s: float = 60.0
    rate_limits: tuple[tuple[int, float], ...] = ()
    #: UDL: the time window ending at the run's ``now`` (``obTime`` / ``epoch``)
    window_hours: float = 24.0
    page_size: int = 1000
    #: a CA bundle to verify HTTPS against (a partner's own certificate authority)
    ca_file: str | None = None
    #: the largest answer kept (decompressed), and for UDL all pages together
    max_bytes: int = 256 << 20
    login: str = field(default="none", compare=False)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def limiter_name(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{self.provider}-{parts.hostname}-{parts.port or ''}"

    def settings(self) -> dict:
        """What identifies the request (hashed into the run id and the download state)."""
        return {"provider": self.provider, "base_url": self.base_url,
                "query": self.query if isinstance(self.query, str) else dict(self.query),
                "path": self.path, "service": self.service, "endpoint": self.endpoint}


def _number(table: dict, key: str, default: float, lo: float = 0.0, integer=False):
    value = table.get(key, default)
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool) \
        and value >= lo and value == value and value != float("inf")
    if not ok:
        raise ValueError(f"{key} must be {'a whole number' if integer else 'a number'} of at "
                         f"least {lo:g}, got {value!r}")
    return int(value) if integer else float(value)


def _query(provider: str, value) -> str | tuple[tuple[str, str], ...]:
    if provider == "spacetrack":
        if not isinstance(value, str) or not value.strip("/").startswith("class/"):
            raise ValueError("a spacetrack feed's query is a path such as "
                             "'class/gp/decay_date/null-val/epoch/>now-30/format/3le', "
                             f"got {value!r}")
        return value.strip("/")
    if value is None:
        value = {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool)
            for k, v in value.items()):
        raise ValueError(f"a {provider} feed's query is a table of parameters such as "
                         f"{{ GROUP = \"active\", FORMAT = \"json\" }}, got {value!r}")
    return tuple(sorted((k, str(v)) for k, v in value.items()))


def _base_url(table: dict, provider: Provider, name: str) -> str:
    url = table.get("base_url", provider.base_url)
    if not isinstance(url, str) or not url:
        raise ValueError(f"a {name} feed needs base_url (the server's address)")
    if "@" in url.split("?")[0]:  # checked first: the address is never repeated then
        raise ValueError("base_url must not hold credentials (user:password@): name where "
                         "they are with credentials = \"env:NAME\", \"netrc\" or \"file:PATH\"")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ValueError(f"base_url must be an http(s) address without a query, got {url!r}")
    return url.rstrip("/")


#: Query parameter names that would carry a secret in a URL (kept in logs and manifests).
_SECRET_PARAM = re.compile(r"(?i)pass|secret|token|api_?key|auth|credential|signature")


def _no_secret_params(query, path: str) -> None:
    names = [k for k, _ in query] if isinstance(query, tuple) else []
    if "?" in path:
        names += [p.split("=")[0] for p in path.split("?", 1)[1].split("&")]
    bad = [n for n in names if _SECRET_PARAM.search(n)]
    if bad:
        raise ValueError(f"query parameter(s) {bad} would carry a secret in the URL, which "
                         "is logged and kept with the download; refused")


def remote_from_table(table: dict) -> Remote:
    """A feed's :class:`Remote` from its TOML table; ValueError naming the key otherwise."""
    secret = SECRET_KEYS & set(table)
    if secret:
        raise ValueError(f"{sorted(secret)}: credentials never go in the configuration; name "
                         "where they are with credentials = \"env:NAME\" (NAME_USERNAME and "
                         "NAME_PASSWORD), \"netrc\", or \"file:PATH\" (mode 0600)")
    name = table.get("provider")
    if name not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(map(repr, PROVIDERS))}, "
                         f"got {name!r}")
    prov = PROVIDERS[name]
    service, endpoint = table.get("service", ""), table.get("endpoint", "gp")
    if name == "udl" and service not in ("elset", "eoobservation", "radarobservation"):
        raise ValueError("a udl feed's service is 'elset', 'eoobservation' or "
                         f"'radarobservation', got {service!r}")
    if name == "celestrak" and endpoint not in ("gp", "supgp"):
        raise ValueError(f"a celestrak feed's endpoint is 'gp' or 'supgp', got {endpoint!r}")
    path = table.get("path", "")
    if not isinstance(path, str):
        raise ValueError(f"path takes the file's path under base_url, got {path!r}")
    query = _query(name, table.get("query"))
    _no_secret_params(query, path)
    ca_file = table.get("ca_file")
    if ca_file is not None and not (isinstance(ca_file, str) and ca_file):
        raise ValueError(f"ca_file takes a path, got {ca_file!r}")
    return Remote(
        provider=name, base_url=_base_url(table, prov, name),
        query=query, path=path.lstrip("/"), service=service,
        endpoint=endpoint, credentials=check_reference(table.get("credentials")),
        min_interval_s=_number(table, "min_interval_s", prov.min_interval_s),
        deadline_s=_number(table, "deadline_s", 600.0, lo=1.0),
        timeout_s=_number(table, "timeout_s", 60.0, lo=0.1),
        rate_limits=check_limits(table.get("rate_limits", [list(x) for x in prov.limits])),
        window_hours=_number(table, "window_hours", 24.0, lo=0.001),
        page_size=_number(table, "page_size", 1000, lo=1, integer=True),
        ca_file=ca_file, max_bytes=_number(table, "max_bytes", 256 << 20, lo=1, integer=True),
        login=prov.login)

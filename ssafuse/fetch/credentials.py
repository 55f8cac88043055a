"""Credentials for the providers: never in the configuration, never in a log line.

A feed names *where* its credentials are, never what they are (``credentials`` key):

* ``"env:NAME"``: the environment variables ``NAME_USERNAME`` and ``NAME_PASSWORD``;
* ``"netrc"`` (the default for a provider that needs a login): the ``machine`` entry of the
  base URL's host in ``$NETRC`` or ``~/.netrc`` (read with the standard library's
  :mod:`netrc`, which also refuses a ``~/.netrc`` that others may read);
* ``"file:PATH"``: a TOML secrets file, refused unless only its owner may read it (mode
  ``0600`` or stricter), holding ``username`` and ``password`` either at the top level or in a
  table per host (``[hosts."www.space-track.org"]``).

Every secret resolved is registered with :func:`redact`, which blanks it (and any URL's
``user:password@``) out of text: the fetch log lines, error messages and the raw downloads'
metadata pass through it.
"""

from __future__ import annotations

import logging
import netrc
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..errors import SsafuseError

__all__ = ["Credentials", "CredentialsError", "check_reference", "resolve", "redact",
           "redact_url", "RedactingFilter"]


class CredentialsError(SsafuseError):
    """Credentials that cannot be found or may not be used (names where it looked)."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never printed, even by a debugger or a traceback
        return "Credentials(<redacted>)"


#: Every secret this process resolved: blanked out of text by :func:`redact`.
_SECRETS: set[str] = set()

_PREFIXES = ("env:", "file:")


def check_reference(ref) -> str | None:
    """``ref`` if it names where credentials are (``env:NAME``, ``netrc``, ``file:PATH``,
    or ``None``); ValueError otherwise."""
    ok = ref is None or ref == "netrc" or (
        isinstance(ref, str) and ref.startswith(_PREFIXES) and len(ref.split(":", 1)[1]) > 0)
    if ok and isinstance(ref, str) and ref.startswith("env:"):
        ok = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ref[4:]) is not None
    if not ok:
        raise ValueError("credentials takes 'env:NAME' (variables NAME_USERNAME and "
                         "NAME_PASSWORD), 'netrc', or 'file:PATH' (a TOML file of mode 0600)"
                         " (the value given is not repeated here: it may be a secret)")
    return ref


def resolve(ref: str | None, host: str) -> Credentials:
    """The credentials ``ref`` names for ``host`` (see the module docstring); raises
    :class:`CredentialsError` saying where it looked, never what it found."""
    ref = check_reference(ref) or "netrc"
    if ref.startswith("env:"):
        name = ref[4:]
        user, password = os.environ.get(f"{name}_USERNAME"), os.environ.get(f"{name}_PASSWORD")
        if not user or not password:
            raise CredentialsError(f"credentials for {host}: set the environment variables "
                                   f"{name}_USERNAME and {name}_PASSWORD")
        creds = Credentials(user, password)
    elif ref == "netrc":
        creds = _from_netrc(host)
    else:
        creds = _from_file(os.path.expanduser(ref[5:]), host)
    _SECRETS.add(creds.password)
    return creds


def _from_netrc(host: str) -> Credentials:
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        _private(path, host)  # (netrc checks only a default ~/.netrc, and only sometimes)
        entry = netrc.netrc(path).authenticators(host)
    except FileNotFoundError:
        raise CredentialsError(f"credentials for {host}: no netrc file at {path} (or set "
                               "credentials = \"env:NAME\" or \"file:PATH\")") from None
    except netrc.NetrcParseError as e:  # its text may quote a password: never repeated
        raise CredentialsError(f"credentials for {host}: {path} does not parse (line "
                               f"{e.lineno})") from None
    except OSError as e:
        raise CredentialsError(f"credentials for {host}: cannot read {path}: "
                               f"{e.strerror or e}") from None
    if not entry or not entry[0] or not entry[2]:
        raise CredentialsError(f"credentials for {host}: {path} has no 'machine {host}' entry "
                               "with a login and a password")
    return Credentials(entry[0], entry[2])


def _private(path: str, host: str) -> None:
    """Refuse a secrets file that others may read (mode ``0600`` or stricter only)."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise CredentialsError(f"credentials for {host}: {path} may be read by others "
                               f"(mode {mode:04o}); refused. Run chmod 600 {path}")


def _from_file(path: str, host: str) -> Credentials:
    try:
        _private(path, host)
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise CredentialsError(f"credentials for {host}: cannot read {path}: "
                               f"{e.strerror or e}") from None
    except tomllib.TOMLDecodeError:
        raise CredentialsError(f"credentials for {host}: {path} is not valid TOML") from None
    hosts = data.get("hosts")
    entry = hosts.get(host, data) if isinstance(hosts, dict) else data
    entry = entry if isinstance(entry, dict) else {}
    user, password = entry.get("username"), entry.get("password")
    if not isinstance(user, str) or not isinstance(password, str) or not user or not password:
        raise CredentialsError(f"credentials for {host}: {path} needs username and password "
                               f"(at the top level or in [hosts.\"{host}\"])")
    return Credentials(user, password)


def redact_url(url: str) -> str:
    """``url`` without ``user:password@`` (what a log, a manifest or metadata may hold)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def redact(text: str) -> str:
    """``text`` with every secret this process resolved replaced by ``***``, and URLs'
    credentials removed."""
    text = re.sub(r"(\w+://)[^/@\s:]+:[^/@\s]+@", r"\1", text)
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record's text through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS or "@" in str(record.msg):
            record.msg = redact(record.getMessage())
            record.args = ()
        return True

"""The registry of formats: every format ssafuse reads, and sniffing a file's format.

An explicit list (astropy's ``io.registry`` and fsspec's ``registry`` without registration by
import side effect): the built-in adapters, the feed descriptions shipped in the
``ingest_formats`` package, then the ``*.toml`` descriptions of the caller's own folders
(``formats_dirs``; the CLI's ``--formats-dir``, the nightly config's ``formats_dir`` and the
``SSAFUSE_FORMATS_DIR`` environment variable all end up here). A description in a user folder
whose name is already taken (built-in or another folder's) is an error, never a silent
override.

Each format has ``identify(head)`` for sniffing and a stateless ``read(stream, uri)``;
:func:`detect` lists every format it tried when none matches and fails on ambiguity.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Iterable

from ..errors import AmbiguousFormatError, UnknownFormatError
from . import declarative, optical, tle
from .ccsds import cdm, omm, tdm
from .base import Format

__all__ = ["HEAD_BYTES", "ENV_FORMATS_DIR", "formats", "known_extension", "get_format", "detect"]

#: How much of a file :func:`detect` looks at.
HEAD_BYTES = 64 * 1024
#: The environment variable the command line's ``--formats-dir`` falls back to (several
#: folders separated by ``os.pathsep``; click splits it).
ENV_FORMATS_DIR = "SSAFUSE_FORMATS_DIR"

FormatsDirs = Iterable[str | os.PathLike] | str | os.PathLike | None


@lru_cache(maxsize=None)
def _builtin_formats() -> tuple[Format, ...]:
    return (tle.FORMAT, *omm.FORMATS, *optical.FORMATS, *tdm.FORMATS, *declarative.formats(),
            *cdm.formats())


def _dirs(formats_dirs: FormatsDirs) -> tuple[str, ...]:
    if formats_dirs is None:
        return ()
    if isinstance(formats_dirs, (str, os.PathLike)):
        formats_dirs = [formats_dirs]
    return tuple(os.fspath(d) for d in formats_dirs)


def formats(formats_dirs: FormatsDirs = None) -> tuple[Format, ...]:
    """Every format ssafuse reads: built-in adapters first, then the shipped
    ``ingest_formats/`` descriptions, then the ``*.toml`` descriptions in ``formats_dirs``
    (a folder or several, each in name order).

    Raises :class:`~ssafuse.formats.declarative.DescriptionError` for a bad description, or
    for one whose name another format already has."""
    files = []
    for folder in _dirs(formats_dirs):
        if not os.path.isdir(folder):
            raise declarative.DescriptionError("feed-description folder does not exist",
                                               path=folder)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".toml"):
                path = os.path.join(folder, name)
                st = os.stat(path)
                files.append((path, st.st_mtime_ns, st.st_size))
    return _with_user_formats(tuple(files))


@lru_cache(maxsize=16)
def _with_user_formats(files: tuple[tuple[str, int, int], ...]) -> tuple[Format, ...]:
    """The built-in formats and those the description ``files`` give, each file named with
    its modification time and size: an edited description is read again, an unchanged one
    once per process (ingest sniffs every file against the registry)."""
    out = list(_builtin_formats())
    taken = {f.name: "built in" for f in out}
    for path, _, _ in files:
        desc = declarative.load(path)
        if desc.name in taken:
            raise declarative.DescriptionError(
                f"feed description {desc.name!r} has the name of a format already "
                f"registered ({taken[desc.name]}); rename it", path=path, field="name")
        taken[desc.name] = path
        out.append(desc.to_format())
    return tuple(out)


def known_extension(formats_dirs: FormatsDirs = None):
    """A predicate: whether a path ends with an extension some format reads (``.tle``,
    ``.json``, ``.xml``, ... as ``ssafuse formats`` lists); for
    :func:`ssafuse.files.expand_inputs` over folders."""
    known = tuple({ext.lower() for f in formats(formats_dirs) for ext in f.extensions})

    def accept(path: str) -> bool:
        return path.lower().endswith(known)

    return accept


def get_format(name: str, formats_dirs: FormatsDirs = None) -> Format:
    """The format called ``name``; :class:`UnknownFormatError` listing the names otherwise."""
    known = formats(formats_dirs)
    for f in known:
        if f.name == name:
            return f
    raise UnknownFormatError(f"no format named {name!r}", tried=tuple(f.name for f in known))


def detect(head: bytes, path: str | None = None, formats_dirs: FormatsDirs = None) -> Format:
    """The format that recognises ``head`` (a file's first bytes).

    Raises :class:`UnknownFormatError` naming every format tried when none matches, and
    :class:`AmbiguousFormatError` when two of the same priority both match.
    """
    known = formats(formats_dirs)
    matches = []
    for f in known:
        try:
            if f.identify(head):
                matches.append(f)
        except Exception:  # a sniffer must never take a run down; it just did not match
            continue
    if not matches:
        raise UnknownFormatError("no format recognised this file", path=path,
                                 tried=tuple(f.name for f in known))
    best = max(f.priority for f in matches)
    top = [f for f in matches if f.priority == best]
    if len(top) > 1:
        raise AmbiguousFormatError("more than one format recognised this file; pass --format",
                                   path=path, tried=tuple(f.name for f in top))
    return top[0]

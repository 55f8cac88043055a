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

Encodings: every reader reads UTF-8 (and ASCII, and Latin-1 bytes where a reader meets
them). A file that starts with a UTF-16 byte order mark is read as the same text in UTF-8
(every format the registry gives re-encodes it, :class:`_Utf16Aware`; the whole file is held
in memory while it is). UTF-16 without a byte order mark cannot be told apart safely and is
refused with an error that says so and how to re-encode it.
"""

from __future__ import annotations

import codecs
import dataclasses
import io
import os
import re
from functools import lru_cache
from typing import BinaryIO, Callable, Iterable, Iterator

from ..errors import AmbiguousFormatError, UnknownFormatError
from . import crd, declarative, optical, tle
from .ccsds import cdm, omm, tdm
from .base import JSON_MAX_DEPTH, Batch, Format, json_depth

__all__ = ["HEAD_BYTES", "ENV_FORMATS_DIR", "formats", "known_extension", "get_format", "detect"]

#: How much of a file :func:`detect` looks at.
HEAD_BYTES = 64 * 1024
#: The environment variable the command line's ``--formats-dir`` falls back to (several
#: folders separated by ``os.pathsep``; click splits it).
ENV_FORMATS_DIR = "SSAFUSE_FORMATS_DIR"

FormatsDirs = Iterable[str | os.PathLike] | str | os.PathLike | None


_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
#: An XML declaration's encoding, which must say UTF-8 once the text is re-encoded.
_XML_ENCODING = re.compile(r"""^(\s*<\?xml\b[^>]*?\bencoding\s*=\s*)(["'])[^"']*\2""")
UTF16_MESSAGE = ("file is {encoding} encoded text{how}; ssafuse reads UTF-8/ASCII: re-encode "
                 "it, e.g. iconv -f {iconv} -t UTF-8")


def has_utf16_bom(head: bytes) -> bool:
    """Whether a file's first bytes are a UTF-16 byte order mark (and not UTF-32's)."""
    return head.startswith(_UTF16_BOMS) and not head.startswith(_UTF32_BOMS)


def looks_utf16(head: bytes) -> str | None:
    """``"UTF-16LE"`` or ``"UTF-16BE"`` when a file's first bytes look like UTF-16 text
    without a byte order mark: a NUL byte at every other position (what ASCII text becomes
    in UTF-16; text formats hold no NUL). Checked over the first 512 bytes, at least 8."""
    sample = head[:512]
    sample = sample[:len(sample) - len(sample) % 2]
    if len(sample) < 8:
        return None
    half = len(sample) // 2
    for name, zeros, text in (("UTF-16LE", sample[1::2], sample[0::2]),
                              ("UTF-16BE", sample[0::2], sample[1::2])):
        if zeros.count(0) >= 0.9 * half and text.count(0) <= 0.1 * half:
            return name
    return None


def utf8_of_utf16(data: bytes) -> bytes:
    """UTF-16 bytes with a byte order mark as UTF-8 bytes: the same text, the mark dropped,
    an unpaired surrogate as U+FFFD (one record refused, not the file); an XML declaration's
    encoding made UTF-8 (the text it declares is now UTF-8)."""
    data = data[:len(data) - len(data) % 2]
    text = data.decode("utf-16", errors="replace")
    return _XML_ENCODING.sub(r"\1\2UTF-8\2", text, count=1).encode("utf-8")


@dataclasses.dataclass(frozen=True)
class _Utf16Aware:
    """A format's ``read``, which reads a file with a UTF-16 byte order mark as the same
    text in UTF-8 (:func:`utf8_of_utf16`); any other file goes to ``read`` as it is."""

    read: Callable[[BinaryIO, str], Iterator[Batch]]

    def __call__(self, stream: BinaryIO, uri: str) -> Iterator[Batch]:
        first = stream.read(4)
        if has_utf16_bom(first):
            stream = io.BytesIO(utf8_of_utf16(first + stream.read()))
        elif stream.seekable():
            stream.seek(-len(first), io.SEEK_CUR)
        else:
            stream = io.BufferedReader(_Prefixed(first, stream))
        return self.read(stream, uri)


class _Prefixed(io.RawIOBase):
    """Bytes already read from a stream that cannot seek back, then the rest of it."""

    def __init__(self, first: bytes, stream: BinaryIO):
        self._first, self._stream = first, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._first:
            n = min(len(buffer), len(self._first))
            buffer[:n], self._first = self._first[:n], self._first[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _utf16_aware(f: Format) -> Format:
    return dataclasses.replace(f, read=_Utf16Aware(f.read))


@lru_cache(maxsize=None)
def _builtin_formats() -> tuple[Format, ...]:
    return tuple(map(_utf16_aware, (tle.FORMAT, *omm.FORMATS, *optical.FORMATS, *tdm.FORMATS,
                                    crd.FORMAT,
                                    *declarative.formats(), *cdm.formats())))


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
        out.append(_utf16_aware(desc.to_format()))
    return tuple(out)


def known_extension(formats_dirs: FormatsDirs = None):
    """A predicate: whether a path ends with an extension some format reads (``.tle``,
    ``.json``, ``.xml``, ... as ``ssafuse formats`` lists), or with one and ``.gz``; for
    :func:`ssafuse.files.expand_inputs` over folders."""
    known = tuple(sorted({ext.lower() + gz for f in formats(formats_dirs)
                          for ext in f.extensions for gz in ("", ".gz")}))

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
    :class:`AmbiguousFormatError` when two of the same priority both match. A ``head`` with
    a UTF-16 byte order mark is sniffed as the UTF-8 text it holds (the format's ``read``
    re-encodes the file alike); when nothing matches, the error says what the file looks
    like where that is the reason: UTF-16 without a byte order mark, or JSON nested deeper
    than :data:`~ssafuse.formats.base.JSON_MAX_DEPTH` levels.
    """
    known = formats(formats_dirs)
    sniffed = utf8_of_utf16(head) if has_utf16_bom(head) else head
    matches = []
    for f in known:
        try:
            if f.identify(sniffed):
                matches.append(f)
        except Exception:  # a sniffer must never take a run down; it just did not match
            continue
    if not matches:
        raise UnknownFormatError(_unrecognised(sniffed), path=path,
                                 tried=tuple(f.name for f in known))
    best = max(f.priority for f in matches)
    top = [f for f in matches if f.priority == best]
    if len(top) > 1:
        raise AmbiguousFormatError("more than one format recognised this file; pass --format",
                                   path=path, tried=tuple(f.name for f in top))
    return top[0]


def _unrecognised(head: bytes) -> str:
    """Why no format recognised a file whose first bytes are ``head``, as far as it shows."""
    utf16 = looks_utf16(head)
    if utf16:
        return UTF16_MESSAGE.format(encoding="UTF-16", how=f" ({utf16}, no byte order mark)",
                                    iconv=utf16)
    if head.startswith(_UTF32_BOMS):
        return UTF16_MESSAGE.format(encoding="UTF-32", how=" (with a byte order mark)",
                                    iconv="UTF-32")
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start in (b"[", b"{"):
        depth = json_depth(head.decode("utf-8", errors="replace"))
        if depth > JSON_MAX_DEPTH:
            return (f"no format recognised this file: it is JSON nested deeper than "
                    f"{JSON_MAX_DEPTH} levels ({depth} or more), which no feed does")
    return "no format recognised this file"

"""Exceptions. Raised where text is parsed or a caller asks for something impossible; the hot
paths (propagation, screening) report per-element error codes instead."""

from __future__ import annotations


class SsafuseError(Exception):
    """Base class for every error ssafuse raises on purpose."""


class FormatError(SsafuseError, ValueError):
    """Input text that does not match its format.

    Carries where the problem is (``path``, ``line`` or record number, ``field``) and, where it
    helps, the expected form next to what was found, as python-sgp4 and Orekit do::

        raise FormatError("TLE line 2 does not match the column layout", path=path, line=15,
                          field="inclination_deg", expected=LINE2_TEMPLATE, got=line)
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None, expected: str | None = None,
                 got: str | None = None):
        self.message = message
        self.path = path
        self.line = line
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ", ".join(p for p in (
            self.path and f"file {self.path}",
            self.line is not None and f"record {self.line}",
            self.field and f"field {self.field}",
        ) if p)
        text = self.message + (f" ({where})" if where else "")
        if self.expected is not None:
            text += f"\n  expected: {self.expected}"
        if self.got is not None:
            text += f"\n  got:      {self.got}"
        return text


class UnknownFormatError(FormatError):
    """No registered format recognised the file; ``tried`` lists the formats tried."""

    def __init__(self, message: str, *, path: str | None = None, tried: tuple[str, ...] = ()):
        self.tried = tuple(tried)
        super().__init__(message + (f"; formats tried: {', '.join(tried)}" if tried else ""),
                         path=path)


class AmbiguousFormatError(UnknownFormatError):
    """More than one format of the same priority recognised the file."""


class MarkingError(SsafuseError, ValueError):
    """A classification / releasability marking that cannot be parsed (never guessed)."""


class StoreError(SsafuseError):
    """The store directory is unusable (not a store, or a table that does not exist)."""

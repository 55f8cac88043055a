"""Shared test helpers: where the reference data is, and a skip when it is absent; the
Hypothesis profiles; mutations of real files for the readers' property tests."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "sample_tles"


def shared(relative: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent
    (a user's clone has no ../shared; CI always has it)."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (../shared/data ships with CI, "
                    "not with a clone)")
    return path


# --------------------------------------------------------------------------------------------
# Hypothesis profiles (issue 19). ``ci``, the default, is derandomized: every run tries the same
# examples, so a failure in CI replays on any machine. ``deep`` (``pytest
# --hypothesis-profile=deep``, README "Property tests") searches at random with 33 times the
# examples; what fails is printed as a ``@reproduce_failure`` blob and kept in a database in
# the temporary directory, tried first by the next deep run. Run it once per change to an
# adapter.

CI_EXAMPLES = 150
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", derandomize=True, max_examples=CI_EXAMPLES, deadline=None,
                          database=None, suppress_health_check=_HEALTH)
settings.register_profile(
    "deep", derandomize=False, max_examples=5000, deadline=None, print_blob=True,
    database=DirectoryBasedExampleDatabase(Path(tempfile.gettempdir()) / "ssafuse-hypothesis"),
    suppress_health_check=_HEALTH)
if settings.get_current_profile_name() == "default":   # --hypothesis-profile not given
    settings.load_profile("ci")


def examples(ci: int) -> int:
    """``max_examples`` for a test that needs another count than the profile's: ``ci`` under
    the ci profile, as many times more under another as its count is over CI's (about 33
    times under deep). A plain ``@settings(max_examples=n)`` would pin ``n`` in every
    profile."""
    return max(1, round(ci * settings().max_examples / CI_EXAMPLES))


# --------------------------------------------------------------------------------------------
# Mutations of real files: property tests of the readers start from real messages, so that
# their examples get past format detection into the parser body (issue 19)

#: Bytes a byte edit writes more often than others: those the readers' grammars turn on
#: (digits, signs, separators, quotes, markup, line ends, NUL, a control, Latin-1's NBSP, a
#: UTF-8 lead byte alone).
_SIGNIFICANT = tuple(b"0123456789.+-eE =,:;\"'<>/&#[]{}\t\r\n\x00\x1f\xa0\xc2\xff")
#: A field's value in any of the formats: a number, a time, a name (not a keyword, a key or a
#: tag's name: swapping values keeps the syntax valid and the layout known).
_FIELD = re.compile(rb"(?<![\w.+:<-])(?<!</)[+-]?\.?\w[\w.+:-]*")
_KEY_END = re.compile(rb'"?[ \t]*[=:]')     # after a KVN keyword, a JSON key, an attribute
_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _fields(data: bytes, numbers: bool | None = None) -> list[tuple[int, int]]:
    spans = [m.span() for m in _FIELD.finditer(data) if not _KEY_END.match(data, m.end())]
    if numbers is None:
        return spans
    return [(a, b) for a, b in spans if bool(_NUMBER.fullmatch(data[a:b])) == numbers]


def _index(draw, n: int) -> int:
    """An index below ``n`` counted from the middle: Hypothesis leans to small numbers (and
    shrinks to them), which here means the body of a file, not its first bytes."""
    return (n // 2 + draw(st.integers(0, n - 1))) % n


def _byte_edit(draw, data: bytearray, originals) -> bytearray:
    """``data`` with one edit at a drawn position: a byte replaced, bytes inserted, a run
    deleted or repeated, the end cut, a run or a line of one of ``originals`` spliced in."""
    at = _index(draw, len(data) + 1)
    size = draw(st.integers(1, 16))
    op = draw(st.sampled_from(["replace", "insert", "delete", "repeat", "cut", "splice",
                               "line"]))
    if op == "replace" and at < len(data):
        data[at] = draw(st.sampled_from(_SIGNIFICANT) | st.integers(0, 255))
    elif op == "insert":
        data[at:at] = draw(st.binary(min_size=1, max_size=size))
    elif op == "delete":
        del data[at:at + size]
    elif op == "repeat":
        data[at:at] = data[at:at + size]
    elif op == "cut":
        del data[at:]
    elif op == "splice":        # a run of another real file over a run of this one
        donor = draw(st.sampled_from(originals))
        start = _index(draw, len(donor) + 1)
        data[at:at + size] = donor[start:start + draw(st.integers(1, 64))]
    elif op == "line":          # a whole line of another real file in place of one of these
        lines = bytes(data).split(b"\n")
        donor = draw(st.sampled_from(originals)).split(b"\n")
        lines[_index(draw, len(lines))] = donor[_index(draw, len(donor))]
        data = bytearray(b"\n".join(lines))
    return data


def _field_edit(draw, data: bytearray, originals) -> bytearray:
    """``data`` with a value replaced by one of the same kind (number or text) from one of
    ``originals``: the syntax stays valid, so the reader's field checks see the value (an
    epoch where a name was, a mean motion where an eccentricity was)."""
    spans = _fields(data)
    if not spans:
        return data
    a, b = spans[_index(draw, len(spans))]
    donor = draw(st.sampled_from(originals))
    same_kind = _fields(donor, numbers=bool(_NUMBER.fullmatch(data[a:b])))
    if same_kind:
        c, d = same_kind[_index(draw, len(same_kind))]
        data[a:b] = donor[c:d]
    return data


@st.composite
def mutations_of(draw, originals) -> bytes:
    """One of ``originals`` (real files' bytes, one format) with one to four edits: in half
    the examples values swapped with the real files' (:func:`_field_edit`), which reach the
    reader's field checks; in the other half bytes edited (:func:`_byte_edit`), which reach
    its syntax checks past the header. Arbitrary bytes nearly always stop at format
    detection instead."""
    data = bytearray(draw(st.sampled_from(originals)))
    edit = _field_edit if draw(st.booleans()) else _byte_edit
    for _ in range(draw(st.integers(1, 4))):
        data = edit(draw, data, originals)
    return bytes(data)

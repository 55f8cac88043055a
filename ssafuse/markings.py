"""Classification and releasability markings.

Every record carries a classification and a releasability list, taken from the record itself
where its format has one (TLE classification column, OMM ``CLASSIFICATION_TYPE``, CDM
``CLASSIFICATION``, UDL ``classificationMarking``) or else from its feed's default. Anything
derived from several records carries the most restrictive classification and the intersection of
their releasability (:func:`combine`).

The forms read are the common banner-line forms::

    U  C  S  TS  R                        single-letter levels (TLE column 8)
    UNCLASSIFIED  RESTRICTED  CONFIDENTIAL  SECRET  TOP SECRET
    SECRET//REL TO USA, GBR, FVEY         releasability to trigraphs / tetragraphs
    SECRET//NOFORN                        releasable to no foreign partner
    UNCLASSIFIED//FOUO  CUI  ORCON  ...   dissemination controls (kept, not interpreted)

Anything else raises :class:`~ssafuse.errors.MarkingError`: a marking is never guessed.
ssafuse is unclassified software; markings are metadata it honours, not a security boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import pyarrow as pa

from .errors import MarkingError

#: Levels in increasing order of restriction.
LEVELS = ("UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET", "TOP SECRET")
_RANK = {name: i for i, name in enumerate(LEVELS)}
_LEVEL_ALIASES = {
    "U": "UNCLASSIFIED", "UNCLASSIFIED": "UNCLASSIFIED",
    "R": "RESTRICTED", "RESTRICTED": "RESTRICTED",
    "C": "CONFIDENTIAL", "CONFIDENTIAL": "CONFIDENTIAL",
    "S": "SECRET", "SECRET": "SECRET",
    "TS": "TOP SECRET", "TOP SECRET": "TOP SECRET",
}
#: Dissemination controls that are recognised and kept as they are.
DISSEMINATION_CONTROLS = frozenset({
    "FOUO", "FOR OFFICIAL USE ONLY", "CUI", "ORCON", "PROPIN", "IMCON", "RELIDO", "LIMDIS",
    "EXDIS", "NODIS", "SBU", "LES", "FISA",
})
#: Coalition tetragraphs expanded to their members when releasability is intersected or tested.
TETRAGRAPHS = {
    "FVEY": frozenset({"AUS", "CAN", "GBR", "NZL", "USA"}),
    "ACGU": frozenset({"AUS", "CAN", "GBR", "USA"}),
}
_CODE = re.compile(r"^[A-Z]{3,4}$")
_REL_TO = re.compile(r"^REL(?:EASABLE)?\s+TO\s+(.+)$")


@dataclass(frozen=True)
class Marking:
    """A parsed marking.

    ``releasable_to`` is ``None`` when the marking states no releasability caveat, an empty
    tuple when it forbids release to any partner (``NOFORN``), else sorted country codes.
    ``controls`` are sorted, and hold ``NOFORN`` exactly when ``releasable_to`` is empty, so
    that equal markings compare equal however they were written or combined.
    """

    classification: str = "UNCLASSIFIED"
    releasable_to: tuple[str, ...] | None = None
    controls: tuple[str, ...] = field(default=())

    def __post_init__(self):
        # One canonical form per meaning, so that equal markings compare equal whatever the
        # order they were written or combined in: codes and controls sorted and unique, and
        # NOFORN in ``controls`` exactly when ``releasable_to`` is empty.
        if self.classification not in _RANK:
            raise MarkingError(f"unknown classification {self.classification!r}; expected one "
                               f"of {', '.join(LEVELS)}")
        controls = set(self.controls)
        rel = () if "NOFORN" in controls else self.releasable_to
        if rel is not None:
            rel = tuple(sorted(set(rel)))
            if not rel:
                controls.add("NOFORN")
        object.__setattr__(self, "releasable_to", rel)
        object.__setattr__(self, "controls", tuple(sorted(controls)))

    def __str__(self) -> str:
        parts = [self.classification]
        if self.releasable_to is not None:
            parts.append("REL TO " + ", ".join(self.releasable_to) if self.releasable_to
                         else "NOFORN")
        parts.extend(c for c in self.controls if c != "NOFORN")
        return "//".join(parts)

    @property
    def rank(self) -> int:
        return _RANK[self.classification]

    def releasable(self, code: str) -> bool:
        """Whether a record with this marking may go to partner ``code`` (a trigraph)."""
        return releasable(self.releasable_to, code)


def releasable(releasable_to, code: str) -> bool:
    """Whether a ``releasable_to`` list (``None`` = no caveat) admits partner ``code``."""
    if releasable_to is None:
        return True
    return code in _expand(releasable_to) or code in set(releasable_to)


def _expand(codes) -> frozenset[str]:
    out: set[str] = set()
    for c in codes:
        out |= TETRAGRAPHS.get(c, {c})
    return frozenset(out)


def parse(text: str) -> Marking:
    """Parse a marking such as ``"SECRET//REL TO USA, GBR"`` or a TLE ``"U"``.

    Raises :class:`MarkingError` for anything that is not a recognised form.
    """
    return _parse(text)[0]


def _parse(text: str) -> tuple[Marking, bool, bool]:
    """Returns the marking and whether the text stated a level and a releasability."""
    if not isinstance(text, str) or not text.strip():
        raise MarkingError(f"empty marking {text!r}")
    norm = re.sub(r"\s+", " ", text.strip().upper())
    segments = [s.strip() for s in norm.split("//")]
    level = _LEVEL_ALIASES.get(segments[0])
    if level is None:
        raise MarkingError(
            f"unrecognised classification {segments[0]!r} in marking {text!r}; expected one of "
            "U, R, C, S, TS, UNCLASSIFIED, RESTRICTED, CONFIDENTIAL, SECRET, TOP SECRET")
    rel: set[str] | None = None
    controls: list[str] = []
    for segment in segments[1:]:
        if not segment:
            raise MarkingError(f"empty segment in marking {text!r}")
        # Controls of one category are separated by single slashes, and REL TO is one of
        # them (CAPCO banner form "SECRET//ORCON/REL TO USA, GBR").
        for token in (t.strip() for t in segment.split("/")):
            m = _REL_TO.match(token)
            if m:
                codes = [c.strip() for c in re.split(r"[,\s]+", m.group(1)) if c.strip()]
                bad = [c for c in codes if not _CODE.match(c)]
                if bad or not codes:
                    raise MarkingError(f"REL TO in marking {text!r} must list country trigraphs "
                                       f"or tetragraphs such as 'USA, GBR'; got {bad or codes}")
                rel = set(codes) if rel is None else rel & set(codes)
            elif token in ("NOFORN", "NF"):
                rel = set()
                controls.append("NOFORN")
            elif token in DISSEMINATION_CONTROLS:
                controls.append(token)
            else:
                raise MarkingError(f"unrecognised control {token!r} in marking {text!r}; known: "
                                   "REL TO ..., NOFORN, " + ", ".join(sorted(DISSEMINATION_CONTROLS)))
    marking = Marking(level, None if rel is None else tuple(sorted(rel)),
                      tuple(dict.fromkeys(controls)))
    return marking, True, rel is not None


def apply_default(record_text: str | None, default: Marking) -> tuple[Marking, str]:
    """The marking of one record: the feed's marking is a **floor**.

    A record may raise the classification, narrow the releasability or add controls; it never
    lowers what its feed is marked: the result is :func:`combine` of the record's own marking
    and the feed's (a TLE's ``U`` column in a SECRET feed is SECRET). A record that states
    nothing takes the feed's marking. Returns the marking and the text to keep as received.
    Raises :class:`MarkingError` when the record's own text cannot be parsed.
    :func:`lowers` says whether a record's own text conflicted with its feed's marking.
    """
    if record_text is None or not str(record_text).strip():
        return default, str(default)
    return combine([parse(str(record_text)), default]), str(record_text)


def lowers(record_text: str | None, default: Marking) -> bool:
    """Whether a record's own marking conflicts with its feed's: a lower level, or a
    releasability it states that is wider than the feed's. :func:`apply_default` keeps the
    stricter; the ingest counts these. ``False`` for a record that states nothing, and for
    releasability a record leaves unstated (a TLE's level-only column)."""
    if record_text is None or not str(record_text).strip():
        return False
    own, _, states_rel = _parse(str(record_text))
    if own.rank < default.rank:
        return True
    return states_rel and combine_releasability(
        [own.releasable_to, default.releasable_to]) != own.releasable_to


def combine(markings) -> Marking:
    """The marking of something derived from several records: the most restrictive
    classification and the intersection of releasability (``None`` admits everything)."""
    markings = list(markings)
    if not markings:
        raise ValueError("combine() needs at least one marking")
    level = max((m.classification for m in markings), key=_RANK.__getitem__)
    rel = combine_releasability(m.releasable_to for m in markings)
    controls = tuple(dict.fromkeys(c for m in markings for c in m.controls))
    return Marking(level, rel, controls)


def combine_releasability(lists) -> tuple[str, ...] | None:
    """Intersection of releasability lists; ``None`` entries (no caveat) admit everything.
    Tetragraphs are expanded to their members when lists with different codes meet."""
    result: frozenset[str] | None = None
    literal: frozenset[str] | None = None
    for rel in lists:
        if rel is None:
            continue
        codes = frozenset(rel)
        literal = codes if literal is None else literal & codes
        result = _expand(codes) if result is None else result & _expand(codes)
    if result is None:
        return None
    return tuple(sorted(result | (literal or frozenset())))


def most_restrictive(levels) -> str:
    """The most restrictive of several classification names."""
    return max(levels, key=_RANK.__getitem__)


# -- combining the markings of table rows ---------------------------------------------------

def row_marking(classification: str | None, releasable_to, text: str | None = None) -> Marking:
    """The :class:`Marking` of one row's ``classification`` / ``releasable_to`` columns;
    with ``text`` (its ``marking`` column) its dissemination controls are kept too (an
    unparseable text contributes none)."""
    controls: tuple[str, ...] = ()
    if text:
        try:
            controls = parse(text).controls
        except MarkingError:
            controls = ()
    return Marking(classification or "UNCLASSIFIED",
                   None if releasable_to is None else tuple(releasable_to), controls)


def combine_columns(parts: Sequence[tuple[Sequence, Sequence]], n: int,
                    rows: Sequence[Sequence[int | None]]) -> tuple[list, list, list]:
    """Row by row, the marking of each derived row from the source rows it was computed from.

    ``parts`` are the source tables' ``(classification, releasable_to)`` columns (as lists);
    ``rows[k]`` gives, for part ``k``, the index of the source row behind each of the ``n``
    derived rows (``None``: that part contributes nothing to that row). Returns the derived
    ``(classification, releasable_to, marking text)`` columns: the most restrictive level and
    the intersection of releasability (:func:`combine`). Distinct combinations are combined
    once."""
    cache: dict = {}
    levels, rels, texts = [], [], []
    for q in range(n):
        key = tuple(
            None if idx[q] is None else
            (cls[idx[q]], None if rel[idx[q]] is None else tuple(rel[idx[q]]))
            for (cls, rel), idx in zip(parts, rows))
        hit = cache.get(key)
        if hit is None:
            m = combine(Marking(c, r) for c, r in (k for k in key if k is not None))
            hit = cache[key] = (m.classification,
                                None if m.releasable_to is None else list(m.releasable_to),
                                str(m))
        levels.append(hit[0])
        rels.append(hit[1])
        texts.append(hit[2])
    return levels, rels, texts


def overall(parts) -> Marking:
    """One marking over many rows: ``(classification, releasable_to, marking text)``
    triples (duplicates are cheap), controls included; UNCLASSIFIED when there is nothing.
    A report's banner."""
    uniq = {(c or "UNCLASSIFIED", None if r is None else tuple(r), t) for c, r, t in parts}
    markings = [row_marking(c, r, t) for c, r, t in uniq]
    return combine(markings) if markings else Marking()


# -- the release rule ---------------------------------------------------------------------------

#: The release rule in words (for export manifests).
RELEASE_RULE = ("exported when releasable_to admits the partner (listed, or in a listed "
                "tetragraph), or when the record states no releasability caveat and is "
                "UNCLASSIFIED; NOFORN and classified records without REL TO are withheld")


def exportable(classification: str | None, releasable_to, code: str) -> bool:
    """Whether one record (its ``classification`` and ``releasable_to``) may go to partner
    ``code``: its releasability admits ``code`` (listed, or inside a listed tetragraph), or it
    states no releasability caveat **and** is UNCLASSIFIED. So ``NOFORN`` (an empty list) is
    never exported, and a classified record without ``REL TO`` is withheld."""
    if releasable_to is None:
        return (classification or "UNCLASSIFIED") == "UNCLASSIFIED"
    return releasable(list(releasable_to), code)


def releasable_mask(table: pa.Table, code: str) -> list[bool]:
    """:func:`exportable` for every row of a table with ``classification`` and
    ``releasable_to`` columns."""
    cls = table["classification"].to_pylist()
    rel = table["releasable_to"].to_pylist()
    cache: dict = {}
    out = []
    for c, r in zip(cls, rel):
        key = (c, None if r is None else tuple(r))
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = exportable(c, r, code)
        out.append(hit)
    return out


def split(table: pa.Table, code: str) -> tuple[pa.Table, int]:
    """``(rows releasable to code, number withheld)``."""
    mask = releasable_mask(table, code)
    kept = table.filter(pa.array(mask, pa.bool_())) if table.num_rows else table
    return kept, table.num_rows - kept.num_rows


def split_excluded(excluded: pa.Table, released_catalogue: pa.Table) -> tuple[pa.Table, int]:
    """Excluded objects carry no marking of their own: one goes to a partner when its
    catalogue entry does. ``(rows kept, number withheld)``."""
    ok = set(released_catalogue["object_id"].to_pylist())
    mask = [i in ok for i in excluded["object_id"].to_pylist()]
    kept = excluded.filter(pa.array(mask, pa.bool_())) if excluded.num_rows else excluded
    return kept, excluded.num_rows - kept.num_rows


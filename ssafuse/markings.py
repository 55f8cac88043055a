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
    UNCLASSIFIED//FOUO  SECRET//ORCON     dissemination controls (kept, not interpreted)

and the other nations' schemes of the **equivalence table** (:class:`Equivalences`; the
shipped one is ``ssafuse/data/markings.toml``), each handled as a canonical level with the
releasability and controls it implies::

    OFFICIAL  OFFICIAL-SENSITIVE  SECRET UK EYES ONLY              UK
    NATO UNCLASSIFIED ... NATO SECRET  COSMIC TOP SECRET           NATO (REL TO NATO)
    OFFICIAL  OFFICIAL: Sensitive  PROTECTED  ...  AUSTEO          Australia
    CUI  CUI//NOFORN  CUI//REL TO USA, GBR                         US

The active table is the shipped one, or the file named by ``$SSAFUSE_MARKINGS`` (read once,
on first use), or whatever :func:`use_equivalences` made active. Anything else raises
:class:`~ssafuse.errors.MarkingError`: a marking is never guessed. ssafuse is unclassified
software; markings are metadata it honours, not a security boundary.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Sequence

import pyarrow as pa

from .errors import MarkingError

#: Levels in increasing order of restriction.
LEVELS = ("UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET", "TOP SECRET")
_RANK = {name: i for i, name in enumerate(LEVELS)}
#: The canonical US-style level names (what ``str(Marking)`` prints) and their portion forms.
#: Built in: an equivalence table may list them only as themselves.
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
#: The environment variable naming a user equivalence table (TOML), read once on first use.
ENV_MARKINGS = "SSAFUSE_MARKINGS"
_CODE = re.compile(r"^[A-Z]{3,4}$")
_TRIGRAPH = re.compile(r"^[A-Z]{3}$")
_TETRAGRAPH = re.compile(r"^[A-Z]{4}$")
_REL_TO = re.compile(r"^REL(?:EASABLE)?\s+TO\s+(.+)$")
#: ``REL TO`` with or without its list (an empty list is an error that says so).
_REL_TO_ANY = re.compile(r"^REL(?:EASABLE)?\s+TO\b(.*)$")
#: The longest marking text read; real banner lines are under 200 characters (a REL TO list
#: of every NATO member is about 160).
MARKING_MAX = 1000
_REL_EXAMPLE = "'SECRET//REL TO USA, GBR'"
_SPACES = re.compile(r"\s+")
_COLON = re.compile(r"\s*:\s*")
_HYPHEN = re.compile(r"\s*-\s*")


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
    """The trigraphs a releasability list admits: groups (FVEY, NATO, ...) replaced by their
    members, as the active equivalence table's ``[groups]`` list them."""
    groups = active_equivalences().groups
    out: set[str] = set()
    for c in codes:
        out |= groups.get(c, {c})
    return frozenset(out)


# -- the equivalence table: how other nations' schemes are handled ---------------------------

@dataclass(frozen=True)
class Handling:
    """How one scheme marking or national caveat of an :class:`Equivalences` table is handled.

    ``level``: the canonical level it is handled as (one of :data:`LEVELS`); ``None`` for a
    caveat, which sets no level. ``releasable_to``: the releasability it implies (``None``:
    none, ``()``: NOFORN), trigraphs or groups. ``controls``: the dissemination controls it
    implies. ``schemes``: who writes it (``"UK"``, ``"NATO"``, ...), for messages."""

    level: str | None
    releasable_to: tuple[str, ...] | None = None
    controls: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Equivalences:
    """A marking equivalence table (build one with :func:`load_equivalences`; read-only).

    ``markings``: the normalised text of a classification as a scheme writes it (the first
    ``//`` segment, e.g. ``"NATO SECRET"``) -> :class:`Handling`; ``caveats``: national caveats
    (``"UK EYES ONLY"``) -> :class:`Handling` without a level; ``groups``: tetragraph / group
    code -> member trigraphs. ``source`` says where it came from; ``digest`` (sha256 of the
    handling, not of a file's text) is the same for tables that handle everything alike."""

    markings: dict[str, Handling] = field(repr=False)
    caveats: dict[str, Handling] = field(repr=False)
    groups: dict[str, frozenset[str]] = field(repr=False)
    source: str = "<table>"
    digest: str = field(init=False, default="")

    def __post_init__(self):
        object.__setattr__(self, "digest", _digest(self.markings, self.caveats, self.groups))

    def known(self) -> str:
        """The forms this table reads, for messages: canonical levels, each scheme's
        markings, the caveats."""
        by_scheme: dict[str, list[str]] = {}
        for text, h in self.markings.items():
            for scheme in h.schemes or ("unnamed",):
                by_scheme.setdefault(scheme, []).append(text)
        parts = [", ".join(_LEVEL_ALIASES)]
        parts += [f"{s}: {', '.join(texts)}" for s, texts in sorted(by_scheme.items())]
        if self.caveats:
            parts.append("caveats: " + ", ".join(self.caveats))
        return "; ".join(parts) + f" (equivalence table {self.source})"


def _digest(markings, caveats, groups) -> str:
    def handling(h: Handling):
        return [h.level, None if h.releasable_to is None else list(h.releasable_to),
                list(h.controls)]
    doc = {"markings": {k: handling(v) for k, v in markings.items()},
           "caveats": {k: handling(v) for k, v in caveats.items()},
           "groups": {k: sorted(v) for k, v in groups.items()}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _normalise(text: str) -> str:
    """Upper case, runs of spaces collapsed, spaces around ``:`` and ``-`` normalised
    (``"OFFICIAL:Sensitive"`` and ``"official : sensitive"`` are ``"OFFICIAL: SENSITIVE"``)."""
    text = _SPACES.sub(" ", text.strip().upper())
    return _HYPHEN.sub("-", _COLON.sub(": ", text)).strip()


_TABLE_KEYS = {"format", "inherit", "groups", "markings", "caveats"}
_ENTRY_KEYS = {"markings": {"handled_as", "releasable_to", "controls", "schemes"},
               "caveats": {"releasable_to", "controls", "schemes"}}
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_DEFAULT_TABLE = "data/markings.toml"  # inside the package


def _key(*parts) -> str:
    """A TOML key path as the user wrote it (``markings."NATO SECRET".handled_as``)."""
    return ".".join(p if _BARE_KEY.match(p) else json.dumps(p) for p in map(str, parts))


def _table_error(source: str, key: str, message: str) -> MarkingError:
    return MarkingError(f"marking equivalence table {source}: {key}: {message}")


def _groups_of(table, source: str) -> dict[str, frozenset[str]]:
    if not isinstance(table, dict):
        raise _table_error(source, "groups", 'must be a table of CODE = ["AAA", ...]')
    out = {}
    for name, members in table.items():
        if not _TETRAGRAPH.match(name):
            raise _table_error(source, _key("groups", name), "a group is named by a "
                               "tetragraph of 4 capital letters, such as FVEY or NATO")
        if not (isinstance(members, list) and members
                and all(isinstance(m, str) and _TRIGRAPH.match(m) for m in members)):
            raise _table_error(source, _key("groups", name), "members must be a non-empty "
                               f'list of country trigraphs such as ["AUS", "GBR"], got {members!r}')
        out[name] = frozenset(members)
    return out


def _handling_of(entry, kind: str, key: str, text: str, groups, source: str) -> Handling:
    """One ``[markings."TEXT"]`` or ``[caveats."TEXT"]`` entry, checked."""
    if not isinstance(entry, dict):
        raise _table_error(source, key, 'must be a table such as { handled_as = "RESTRICTED" }')
    unknown = set(entry) - _ENTRY_KEYS[kind]
    if unknown:
        raise _table_error(source, key, f"unknown key(s) {sorted(unknown)}; expected some of "
                                        f"{sorted(_ENTRY_KEYS[kind])}")
    level = entry.get("handled_as") if kind == "markings" else None
    if kind == "markings" and level not in _RANK:
        raise _table_error(source, key + ".handled_as", f"expected one of {', '.join(LEVELS)}, "
                                                        f"got {level!r}")
    rel = entry.get("releasable_to")
    if rel is not None and not (isinstance(rel, list) and all(
            isinstance(c, str) and (_TRIGRAPH.match(c) or c in groups) for c in rel)):
        raise _table_error(source, key + ".releasable_to", "expected a list of country "
                           f"trigraphs or groups of [groups] ({', '.join(sorted(groups))}); [] "
                           f"for NOFORN; got {rel!r}")
    controls = entry.get("controls", [])
    if not (isinstance(controls, list) and all(c in DISSEMINATION_CONTROLS for c in controls)):
        raise _table_error(source, key + ".controls", "expected a list of some of "
                           f"{', '.join(sorted(DISSEMINATION_CONTROLS))} (NOFORN is "
                           f"releasable_to = []); got {controls!r}")
    schemes = entry.get("schemes", [])
    if not (isinstance(schemes, list) and all(isinstance(s, str) and s for s in schemes)):
        raise _table_error(source, key + ".schemes", f'expected a list of names such as ["UK"], '
                                                     f"got {schemes!r}")
    if kind == "caveats" and rel is None and not controls:
        raise _table_error(source, key, "a caveat must imply releasable_to or controls")
    canonical = _LEVEL_ALIASES.get(text)
    if canonical is not None and (canonical != level or rel is not None or controls):
        raise _table_error(source, key, f"{text} is a canonical level, read as itself (it is "
                           f"what markings print); list it only as handled_as = {canonical!r} "
                           "without releasable_to or controls")
    return Handling(level, None if rel is None else tuple(sorted(set(rel))),
                    tuple(sorted(set(controls))), tuple(schemes))


def _entries_of(raw: dict, kind: str, groups, source: str) -> dict[str, Handling]:
    table = raw.get(kind, {})
    if not isinstance(table, dict):
        raise _table_error(source, kind, 'must be a table of "TEXT" = { ... } entries')
    out: dict[str, Handling] = {}
    seen: dict[str, str] = {}
    for text, entry in table.items():
        key, norm = _key(kind, text), _normalise(text)
        if not norm or "/" in norm:
            raise _table_error(source, key, "a marking text is not empty and holds no '/'")
        if norm in seen:
            raise _table_error(source, key, f"the same text as {seen[norm]} ({norm!r})")
        seen[norm] = key
        out[norm] = _handling_of(entry, kind, key, norm, groups, source)
    return out


def _check_caveat_names(caveats, markings, source: str) -> None:
    for text in caveats:
        if (text in markings or text in _LEVEL_ALIASES or text in DISSEMINATION_CONTROLS
                or text in ("NOFORN", "NF") or _REL_TO.match(text)):
            raise _table_error(source, _key("caveats", text), "a caveat may not take the "
                               "name of a level, a marking, a control, NOFORN or REL TO")


def _build(raw: dict, source: str, base: Equivalences | None) -> Equivalences:
    """A table from a parsed TOML document, over ``base`` unless it says ``inherit = false``."""
    unknown = set(raw) - _TABLE_KEYS
    if unknown:
        raise _table_error(source, "top level", f"unknown key(s) {sorted(unknown)}; expected "
                                                f"some of {sorted(_TABLE_KEYS)}")
    if raw.get("format", 1) != 1:
        raise _table_error(source, "format", f"expected 1, got {raw['format']!r}")
    inherit = raw.get("inherit", True)
    if not isinstance(inherit, bool):
        raise _table_error(source, "inherit", f"expected true or false, got {inherit!r}")
    start = base if inherit else None
    groups = {**(start.groups if start else {}), **_groups_of(raw.get("groups", {}), source)}
    markings = {**(start.markings if start else {}),
                **_entries_of(raw, "markings", groups, source)}
    caveats = {**(start.caveats if start else {}),
               **_entries_of(raw, "caveats", groups, source)}
    _check_caveat_names(caveats, markings, source)
    return Equivalences(markings, caveats, groups, source)


def _read_table(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as e:
        raise MarkingError(f"cannot read marking equivalence table {path}: "
                           f"{e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise MarkingError(f"marking equivalence table {path}: not valid TOML: {e}") from None


_lock = threading.RLock()
_default: Equivalences | None = None
_active: Equivalences | None = None


def default_equivalences() -> Equivalences:
    """The shipped table, ``ssafuse/data/markings.toml`` (read once)."""
    global _default
    with _lock:
        if _default is None:
            text = resources.files(__package__).joinpath(_DEFAULT_TABLE).read_text("utf-8")
            _default = _build(tomllib.loads(text), "ssafuse/" + _DEFAULT_TABLE, None)
        return _default


def load_equivalences(path: str | os.PathLike) -> Equivalences:
    """Read an equivalence table of your own: a TOML file shaped as
    ``ssafuse/data/markings.toml``. Its entries replace or add to the shipped ones, key by key
    (``inherit = false``: the file is the whole table). Raises :class:`MarkingError` naming the
    file and the key for anything wrong (an unknown key, a level that is not one of
    :data:`LEVELS`, a code that is neither a trigraph nor a group)."""
    path = os.fspath(path)
    return _build(_read_table(path), path, default_equivalences())


def active_equivalences() -> Equivalences:
    """The table :func:`parse` uses when given none: the one :func:`use_equivalences` made
    active, else the file ``$SSAFUSE_MARKINGS`` names (read on first use), else the shipped
    one. A bad file in ``$SSAFUSE_MARKINGS`` raises :class:`MarkingError` saying so."""
    global _active
    table = _active
    if table is None:
        with _lock:
            if _active is None:
                path = os.environ.get(ENV_MARKINGS, "").strip()
                try:
                    _active = load_equivalences(path) if path else default_equivalences()
                except MarkingError as e:
                    raise MarkingError(f"${ENV_MARKINGS}: {e}") from None
            table = _active
    return table


def use_equivalences(table: Equivalences | str | os.PathLike | None) -> Equivalences | None:
    """Make ``table`` the process's active equivalence table: an :class:`Equivalences`, or
    the path of a TOML file (read now, :func:`load_equivalences`). ``None``: back to
    ``$SSAFUSE_MARKINGS`` or the shipped table, resolved again on next use.

    Returns the table active before (``None`` when none had been resolved yet), so that a
    caller can put it back: ``previous = use_equivalences(mine)``, later
    ``use_equivalences(previous)``. One table for every thread of the process; other
    processes (Dask workers) each need it made active there."""
    global _active
    if table is not None and not isinstance(table, Equivalences):
        table = load_equivalences(table)
    with _lock:
        previous, _active = _active, table
    return previous


class _ActiveGroups(Mapping):
    """The ``groups`` of the active equivalence table, looked up at each access."""

    def __getitem__(self, code: str) -> frozenset[str]:
        return active_equivalences().groups[code]

    def __iter__(self):
        return iter(active_equivalences().groups)

    def __len__(self) -> int:
        return len(active_equivalences().groups)

    def __repr__(self) -> str:
        return f"TETRAGRAPHS({dict(active_equivalences().groups)!r})"


#: Coalition tetragraphs and groups (FVEY, ACGU, NATO, ...) -> member trigraphs: the
#: ``[groups]`` of the active equivalence table, expanded when releasability is intersected
#: or tested.
TETRAGRAPHS: Mapping[str, frozenset[str]] = _ActiveGroups()


# -- parsing --------------------------------------------------------------------------------

def parse(text: str, equivalences: Equivalences | None = None) -> Marking:
    """Parse a marking such as ``"SECRET//REL TO USA, GBR"``, a TLE ``"U"``, or another
    scheme's ``"NATO SECRET"``, ``"OFFICIAL-SENSITIVE UK EYES ONLY"``, ``"CUI//NOFORN"``.

    Scheme markings and caveats are handled as ``equivalences`` says (default: the active
    table, :func:`active_equivalences`); the releasability they imply is intersected with any
    ``REL TO`` or ``NOFORN`` the text states. Raises :class:`MarkingError` for anything that is
    not a recognised form, listing the forms the table knows.
    """
    return _parse(text, equivalences)[0]


def _head(segment: str, eq: Equivalences, text: str) -> tuple[str, list[Handling]]:
    """The level of the first ``//`` segment, and the scheme entry and caveats that segment
    names (``"SECRET UK EYES ONLY"``: SECRET, the caveat)."""
    implied: list[Handling] = []
    rest = segment
    while True:
        level = _LEVEL_ALIASES.get(rest)
        if level is not None:
            return level, implied
        handling = eq.markings.get(rest)
        if handling is not None:
            return handling.level, [handling, *implied]
        caveat = next((c for c in sorted(eq.caveats, key=len, reverse=True)
                       if rest.endswith(" " + c)), None)
        if caveat is None:
            raise MarkingError(f"unrecognised classification {segment!r} in marking {text!r}; "
                               f"known: {eq.known()}")
        implied.append(eq.caveats[caveat])
        rest = rest[:-len(caveat) - 1].rstrip()


def _rel_to_codes(listed: str, text: str) -> tuple[str, ...]:
    """The country codes of a ``REL TO`` list (``"USA, GBR"``), each checked."""
    if not listed.strip(" ,"):
        raise MarkingError(f"REL TO in marking {text!r} lists no country: it needs at least "
                           f"one country code, e.g. {_REL_EXAMPLE}")
    items = [c.strip() for c in listed.split(",")]
    if "" in items:
        where = ("before the first code" if not items[0] else "after the last code"
                 if not items[-1] else "between two commas")
        raise MarkingError(f"REL TO in marking {text!r} has an empty entry {where}; list "
                           f"country codes separated by ', ', e.g. {_REL_EXAMPLE}")
    codes = [c for item in items for c in item.split()]
    bad = [c for c in codes if not _CODE.match(c)]
    if bad:
        raise MarkingError(f"REL TO in marking {text!r} must list country trigraphs or "
                           f"tetragraphs (3 or 4 capital letters) such as 'USA, GBR'; "
                           f"got {bad}")
    return tuple(codes)


def _token(token: str, eq: Equivalences, text: str, rels: list, controls: list) -> None:
    """One control of a later ``//`` segment, added to ``rels`` / ``controls``."""
    m = _REL_TO_ANY.match(token)
    if m:
        rels.append(_rel_to_codes(m.group(1), text))
    elif token in ("NOFORN", "NF"):
        rels.append(())
        controls.append("NOFORN")
    elif token in DISSEMINATION_CONTROLS:
        controls.append(token)
    elif token in eq.caveats:
        caveat = eq.caveats[token]
        if caveat.releasable_to is not None:
            rels.append(caveat.releasable_to)
        controls.extend(caveat.controls)
    else:
        raise MarkingError(f"unrecognised control {token!r} in marking {text!r}; known: "
                           "REL TO ..., NOFORN, " + ", ".join(sorted(DISSEMINATION_CONTROLS))
                           + "".join(f", {c}" for c in eq.caveats))


def _check_text(text) -> None:
    """:class:`MarkingError` for text that cannot be a marking whatever the table says: not
    text, empty, longer than :data:`MARKING_MAX`, or holding a control or format character
    (NUL, ESC, a line break inside it, U+2028, a bidi override such as U+202E) that would
    hide or reorder what a reader sees."""
    if not isinstance(text, str):
        raise MarkingError(f"a marking is text, got {type(text).__name__} {text!r:.80}")
    if not text.strip():
        raise MarkingError(f"empty marking {text!r}")
    if len(text) > MARKING_MAX:
        raise MarkingError(f"marking is {len(text)} characters long, more than the "
                           f"{MARKING_MAX} a marking may be; it starts {text[:60]!r}")
    inner = text.strip()
    for i, ch in enumerate(inner):
        if unicodedata.category(ch) in _CONTROL_CATEGORIES:
            name = _CONTROL_NAMES.get(ch) or unicodedata.name(ch, "a control character")
            raise MarkingError(f"marking {text!r} holds control character U+{ord(ch):04X} "
                               f"({name}) at character {i + 1}; a marking is printable text")


#: Unicode categories never in a marking: controls (Cc), format characters (Cf: bidi
#: overrides, zero-width), line and paragraph separators (Zl, Zp), surrogates, private use
#: and unassigned code points. Leading and trailing blanks and line ends are stripped first.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_CONTROL_NAMES = {"\x00": "NUL", "\t": "TAB", "\n": "LINE FEED", "\r": "CARRIAGE RETURN",
                  "\x1b": "ESC", "\x7f": "DEL"}


def _parse(text: str, equivalences: Equivalences | None = None) -> tuple[Marking, bool, bool]:
    """Returns the marking and whether the text stated a level and a releasability (its
    own ``REL TO`` / ``NOFORN``, or one its scheme or caveats imply)."""
    _check_text(text)
    eq = active_equivalences() if equivalences is None else equivalences
    segments = [s.strip() for s in _normalise(text).split("//")]
    if not segments[0]:
        raise MarkingError(f"marking {text!r} starts with '//': the classification comes "
                           f"first, e.g. {_REL_EXAMPLE}; known: {eq.known()}")
    level, implied = _head(segments[0], eq, text)
    rels = [h.releasable_to for h in implied if h.releasable_to is not None]
    controls = [c for h in implied for c in h.controls]
    for i, segment in enumerate(segments[1:], 1):
        if not segment:
            where = ("ends with '//' and nothing after it" if i == len(segments) - 1
                     else "has an empty segment between two '//'")
            raise MarkingError(f"marking {text!r} {where}; after each '//' comes a control "
                               f"such as NOFORN or REL TO ..., e.g. {_REL_EXAMPLE}")
        # Controls of one category are separated by single slashes, and REL TO is one of
        # them (CAPCO banner form "SECRET//ORCON/REL TO USA, GBR").
        for token in (t.strip() for t in segment.split("/")):
            _token(token, eq, text, rels, controls)
    # Several releasability statements (a NATO level and a REL TO, a caveat) intersect,
    # groups expanded; one alone is kept as written.
    distinct = list(dict.fromkeys(tuple(sorted(set(r))) for r in rels))
    rel = (None if not distinct else distinct[0] if len(distinct) == 1
           else combine_releasability(distinct))
    return Marking(level, rel, tuple(dict.fromkeys(controls))), True, rel is not None


def apply_default(record_text: str | None, default: Marking) -> tuple[Marking, str]:
    """The marking of one record: the feed's marking is a **floor**.

    A record may raise the classification, narrow the releasability or add controls; it never
    lowers what its feed is marked: the result is :func:`combine` of the record's own marking
    and the feed's (a TLE's ``U`` column in a SECRET feed is SECRET). A record that states
    nothing takes the feed's marking. Returns the marking and the text for the ``marking``
    column: the record's own as received where it states exactly that marking (a national
    form such as ``OFFICIAL-SENSITIVE`` stays as written), else the marking that applies, so
    that the text never says less than the row (a ``U`` in a SECRET feed reads ``SECRET``,
    and a feed's ``ORCON`` is kept). Raises :class:`MarkingError` when the record's own text
    cannot be parsed. :func:`lowers` says whether a record's own text conflicted with its
    feed's marking.
    """
    if record_text is None or not str(record_text).strip():
        return default, str(default)
    own = parse(str(record_text))
    result = combine([own, default])
    return result, (str(record_text) if own == result else str(result))


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
    if literal and _expand(literal) == result:
        return tuple(sorted(literal))  # as written: "REL TO NATO", not its 32 members
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


#: A level's portion letters (TLE column 8, OMM CLASSIFICATION_TYPE): the level names'
#: shortest aliases.
LETTERS = {"UNCLASSIFIED": "U", "RESTRICTED": "R", "CONFIDENTIAL": "C", "SECRET": "S",
           "TOP SECRET": "TS"}


def letter(marking: Marking) -> str | None:
    """The TLE-style classification code of a bare level (``U``, ``R``, ``C``, ``S``, ``TS``);
    ``None`` when the marking carries releasability or controls a letter cannot say."""
    if marking.releasable_to is not None or marking.controls:
        return None
    return LETTERS[marking.classification]


def row_marking_text(classification: str | None, releasable_to,
                     marking: str | None) -> tuple[Marking, str]:
    """The marking a writer states for one row, and its text.

    The row's ``classification`` / ``releasable_to`` columns and its ``marking`` text are
    combined (:func:`combine`), so the result is never lower than either; the text is the
    row's own ``marking`` where that says exactly the result (a national form stays as
    written; a bare letter becomes the level's name), else the canonical form. Raises
    :class:`MarkingError` when the classification is missing or the text cannot be parsed:
    a marking is never guessed."""
    if not classification:
        raise MarkingError("the row has no classification")
    columns = Marking(classification, None if releasable_to is None else tuple(releasable_to))
    if marking is None or not str(marking).strip():
        return columns, str(columns)
    own = parse(str(marking))
    result = combine([own, columns])
    as_received = own == result and str(marking).strip() not in LETTERS.values()
    return result, (str(marking) if as_received else str(result))


#: How a message with no marking keyword (CDM 1.0, OMM 2.0, GP JSON) carries its marking: a
#: header COMMENT ``CLASSIFICATION: <marking>``; the readers take it back from there.
_COMMENT = re.compile(r"^\s*CLASSIFICATION\s*:\s*(\S.*?)\s*$", re.IGNORECASE)


def marking_comment(text: str) -> str:
    """The COMMENT text that states marking ``text``."""
    return f"CLASSIFICATION: {text}"


def comment_marking(comment: str | None) -> str | None:
    """The marking a COMMENT states (:func:`marking_comment`), else ``None``."""
    m = _COMMENT.match(comment) if isinstance(comment, str) else None
    return m.group(1) if m else None


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


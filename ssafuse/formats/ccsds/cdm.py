"""CCSDS Conjunction Data Messages (CCSDS 508.0-B-1, with the CDM-2 additions seen in practice):
read KVN and XML, write KVN and XML of version 1.0 (valid against CCSDS's NDM/XML schema) or 2.0.

>>> from ssafuse.formats.ccsds import cdm
>>> msg = cdm.read("conjunction.cdm")                        # doctest: +SKIP
>>> msg.header["MESSAGE_ID"], msg.relative["TCA"], msg.hbr_m()   # doctest: +SKIP
>>> text = cdm.dumps_kvn(msg); same = cdm.loads(text) == msg     # doctest: +SKIP

**Lenient when reading**: units in square brackets are optional (an unclosed bracket is
tolerated) and checked against the standard's unit where a wrong one would change a value's
scale; COMMENT lines anywhere; blank lines; either encoding (UTF-8 with or without BOM,
UTF-16 with BOM, Latin-1 as last resort) sniffed; KVN or XML sniffed; XML namespaces, ``nil``
and empty elements for optional values; XML parsed with defusedxml. Anything that cannot be read
unambiguously raises :class:`~ssafuse.errors.FormatError` naming the line (KVN) and keyword:
an unknown keyword, a keyword out of its section, a duplicate, a value that does not parse
(``CDMExample1InvalidTca``'s April 31st), a missing mandatory keyword (CCSDS 508.0-B-1 section
3), a missing or partial covariance, a 1.0 message's enumerated keyword (``COVARIANCE_METHOD``,
``OBJECT_TYPE``, ``REF_FRAME`` ...) holding a value the standard does not list.

**Strict when writing**: every mandatory keyword, only the keywords the message's version
defines (``keywords/cdm.csv``: a 1.0 message has no ``CLASSIFICATION``, ``OD_EPOCH`` or
``USER_DEFINED_*``; :func:`version_needed` says which version can hold a message), in the
standard's order, its enumerated values (``OBJECT_TYPE``, ``REF_FRAME`` ...), object COMMENTs
before ``OBJECT =``, values of the right type (finite numbers, valid times, text without line
breaks or outer spaces), units always written. What is written reads back to an equal :class:`Cdm`.

Values: numbers as ``float`` / ``int`` in the units of the standard (state in km and km/s,
covariance in m**2, m**2/s, m**2/s**2), times as ``int`` nanoseconds since 1970-01-01 UTC,
vectors (``DCP_SENSITIVITY_VECTOR_*``, ``CSIG3EIGVEC3``, ``COLLISION_PERCENTILE``) as tuples,
everything else as text.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from ...errors import FormatError
from ...files import atomic_write_bytes
from ...markings import comment_marking
from ...timeutil import format_epoch, parse_epoch
from ..base import Batch, Format, Reject, split_lines

__all__ = ["Cdm", "KEYWORDS", "VERSIONS", "read", "loads", "read_all", "loads_all", "dumps_kvn",
           "dumps_xml", "write_kvn", "write_xml", "version_needed", "stated_marking",
           "COVARIANCE_RTN", "identify_kvn", "identify_xml"]

# --- the keyword table (layout as data: keywords/cdm.csv) -----------------------------------
# name: (section, block, kind, unit). section: header | relative | object. block: the XML
# element the keyword sits in (and the KVN block its comments belong to). kind: text, float,
# int, time, vector. unit: what the standard states (None: unit-free).
_H, _R, _O = "header", "relative", "object"
_SHARED = ("CDRG_DRG", "CSRP_DRG", "CSRP_SRP", "CTHR_DRG", "CTHR_SRP", "CTHR_THR")
_XYZ = "@XYZ"
_TABLE = Path(__file__).with_name("keywords") / "cdm.csv"


def _load_table() -> tuple[dict, dict, dict]:
    """``(keywords, since, values)`` from ``keywords/cdm.csv``, in the standard's order.
    CDM-2's XYZ covariance block repeats six names of the RTN block; inside it they are kept as
    NAME@XYZ and written back under their own name in that block."""
    with open(_TABLE, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    keywords = {r["keyword"]: (r["section"], r["block"], r["kind"], r["unit"] or None)
                for r in rows}
    since = {r["keyword"]: r["since"] for r in rows}
    values = {r["keyword"]: tuple(r["values"].split("|")) for r in rows if r["values"]}
    return keywords, since, values


#: The CDM versions written: 508.0-B-1 (1.0, the default) and CDM 2.0 (Orekit's reading of it).
VERSIONS = ("1.0", "2.0")

#: Every keyword read and written: ``name -> (section, block, kind, unit)``.
KEYWORDS, _SINCE, _VALUES_1 = _load_table()
_USER = "USER_DEFINED_"

#: The 21 RTN position/velocity covariance keywords, lower triangle row by row (508.0-B-1).
COVARIANCE_RTN = tuple(k for k in KEYWORDS if re.fullmatch(r"C(R|T|N)(DOT)?_(R|T|N)(DOT)?", k))

_MANDATORY = {
    _H: ("CCSDS_CDM_VERS", "CREATION_DATE", "ORIGINATOR", "MESSAGE_ID"),
    _R: ("TCA", "MISS_DISTANCE"),
    _O: ("OBJECT", "OBJECT_DESIGNATOR", "CATALOG_NAME", "OBJECT_NAME",
         "INTERNATIONAL_DESIGNATOR", "EPHEMERIS_NAME", "COVARIANCE_METHOD", "MANEUVERABLE",
         "REF_FRAME", "X", "Y", "Z", "X_DOT", "Y_DOT", "Z_DOT") + COVARIANCE_RTN,
}
#: Keywords whose unit is checked on reading (a wrong unit would change the value's scale).
_UNIT_CHECKED = {"m", "km", "m/s", "km/s", "m**2", "m**2/s", "m**2/s**2"}
_UNIT_ALIASES = {"sec": "s", "^": "**"}


@dataclass
class Cdm:
    """One Conjunction Data Message.

    ``header``, ``relative`` and the two ``objects`` map keyword to value (see the module
    docstring for types); ``comments`` maps a block (``"header"``, ``"relative"``,
    ``"object1/metadata"``, ``"object2/stateVector"``, ...) to its COMMENT lines in order.
    Equal messages compare equal whatever the order their keywords were read in.
    """

    header: dict[str, Any] = field(default_factory=dict)
    relative: dict[str, Any] = field(default_factory=dict)
    objects: tuple[dict[str, Any], dict[str, Any]] = field(default_factory=lambda: ({}, {}))
    comments: dict[str, list[str]] = field(default_factory=dict)

    # -- convenience ---------------------------------------------------------------------
    @property
    def message_id(self) -> str | None:
        return self.header.get("MESSAGE_ID")

    @property
    def tca_ns(self) -> int:
        """TCA, nanoseconds since 1970-01-01 UTC."""
        return self.relative["TCA"]

    def covariance_rtn(self, index: int):
        """6x6 RTN position/velocity covariance of object ``index`` (0 or 1) as nested lists,
        in m**2, m**2/s, m**2/s**2 (symmetric, filled from the lower triangle)."""
        obj = self.objects[index]
        names = ("R", "T", "N", "RDOT", "TDOT", "NDOT")
        m = [[0.0] * 6 for _ in range(6)]
        for i, a in enumerate(names):
            for j, b in enumerate(names[:i + 1]):
                m[i][j] = m[j][i] = float(obj[f"C{a}_{b}"])
        return m

    def all_comments(self) -> list[str]:
        return [c for block in self.comments.values() for c in block]

    def hbr_m(self) -> float | None:
        """The combined hard-body radius in metres the message states: CARA's
        ``COMMENT HBR = 10 [m]`` (anywhere), else the sum of both objects' CDM-2 ``HBR``;
        ``None`` when it states none."""
        for text in self.all_comments():
            m = _HBR_COMMENT.match(text)
            if m:
                value = float(m.group(1))
                return value * (1000.0 if (m.group(2) or "m").lower() == "km" else 1.0)
        h = [o.get("HBR") for o in self.objects]
        if all(isinstance(x, float) for x in h):
            return h[0] + h[1]
        return None

    def to_json(self) -> str:
        """The whole message as JSON (times as ISO text), for the store's ``keywords_json``."""
        def conv(section: dict) -> dict:
            out = {}
            for k, v in section.items():
                kind = _kind(k)
                out[k] = format_epoch(v) + "Z" if kind == "time" and v is not None else (
                    list(v) if isinstance(v, tuple) else v)
            return out
        return json.dumps({"header": conv(self.header), "relative": conv(self.relative),
                           "objects": [conv(o) for o in self.objects],
                           "comments": self.comments}, sort_keys=True, ensure_ascii=False)


_HBR_COMMENT = re.compile(r"^\s*HBR\s*=\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
                          r"(?:\[\s*(m|km)\s*\])?\s*$", re.IGNORECASE)


def _kind(name: str) -> str:
    spec = KEYWORDS.get(name)
    return spec[2] if spec else "text"


def _block(name: str) -> str:
    spec = KEYWORDS.get(name)
    return spec[1] if spec else "userDefinedParameters"


def _section(name: str) -> str | None:
    if name.startswith(_USER):
        return _O
    spec = KEYWORDS.get(name)
    return spec[0] if spec else None


# --- value parsing --------------------------------------------------------------------------
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?"
_VALUE_UNIT = re.compile(r"^(?P<v>.*?)\s*(?:\[(?P<u>[^\]]*)\]?)?\s*$")


def _norm_unit(u: str) -> str:
    u = u.strip().lower().replace(" ", "")
    for a, b in _UNIT_ALIASES.items():
        u = u.replace(a, b)
    return u


#: What no CDM text may hold, read or written: control characters but the tab (C0, DEL, C1),
#: surrogates and the two non-characters XML 1.0 refuses.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _clean_text(name: str, text: str, line, path) -> str:
    """Text values and comments are one line of printable text: refuse control characters."""
    if _CONTROL.search(text):
        raise FormatError(f"{name} holds a control character or line break", path=path,
                          line=line, field=name, got=repr(text[:200]))
    return text


def _unit_family(u: str) -> str:
    return re.sub(r"\bk(?=m)", "", _norm_unit(u))


def _parse_value(name: str, raw: str | None, unit: str | None, line: int | None,
                 path: str | None):
    """Typed value of ``name`` from its text (``None`` when empty)."""
    kind = _kind(name)
    spec_unit = KEYWORDS[name][3] if name in KEYWORDS else None
    if raw is None:
        return None
    text = raw.strip()
    if kind in ("float", "int", "vector") and unit is None:
        m = _VALUE_UNIT.match(text)
        if m and m.group("u") is not None:
            text, unit = m.group("v").strip(), m.group("u")
    if text == "" or (kind in ("float", "int") and text.lower() == "nan"):
        # empty, or MATLAB's NaN as CARA's sample CDMs write unknown optional values: absent
        return None
    if unit is not None and unit.strip() and spec_unit in _UNIT_CHECKED \
            and _norm_unit(unit) != _norm_unit(spec_unit) \
            and _unit_family(unit) == _unit_family(spec_unit):
        # km where m is meant (or the reverse) would scale the value: refuse. A label of
        # another dimension (CARA's sample CDMs label RELATIVE_VELOCITY_* "[m]") cannot be a
        # scale and the standard fixes the unit, so it is read as the standard's.
        raise FormatError(f"{name} is in [{unit.strip()}], not in [{spec_unit}] as CCSDS "
                          "508.0-B-1 states", path=path, line=line, field=name,
                          expected=f"{name} = value [{spec_unit}]", got=raw.strip())
    if kind == "time":
        try:
            return parse_epoch(text)
        except FormatError as e:
            raise FormatError(f"{name}: {e.message}", path=path, line=line, field=name,
                              expected=e.expected or "YYYY-MM-DDThh:mm:ss.sss",
                              got=text) from None
    try:
        if kind == "float":
            if not re.fullmatch(_NUM, text):
                raise ValueError
            value = float(text.replace("d", "e").replace("D", "E"))
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
            return value
        if kind == "int":
            if not re.fullmatch(r"[-+]?\d+", text):
                raise ValueError
            return int(text)
        if kind == "vector":
            parts = text.split()
            if not parts or not all(re.fullmatch(_NUM, p) for p in parts):
                raise ValueError
            return tuple(float(p.replace("d", "e").replace("D", "E")) for p in parts)
        if kind == "text":
            return _clean_text(name, text, line, path)
    except ValueError:
        raise FormatError(f"{name} is not a {'number' if kind != 'int' else 'whole number'}"
                          + (" list" if kind == "vector" else ""), path=path, line=line,
                          field=name, expected=f"{name} = {'1.234E+02' if kind != 'int' else '42'}"
                          + (f" [{spec_unit}]" if spec_unit else ""), got=raw.strip()) from None
    return text


# --- decoding -------------------------------------------------------------------------------

def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if len(data) >= 4 and data[1:2] == b"\x00" and data[3:4] == b"\x00":
        return data.decode("utf-16-le", errors="replace")
    if len(data) >= 4 and data[0:1] == b"\x00" and data[2:3] == b"\x00":
        return data.decode("utf-16-be", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _looks_xml(text: str) -> bool:
    return text.lstrip("\ufeff \t\r\n").startswith("<")


def identify_kvn(head: bytes) -> bool:
    """Whether a file's first bytes look like a KVN CDM (``CCSDS_CDM_VERS =`` first)."""
    text = _decode(head[:4096])
    for line in split_lines(text):
        s = line.strip()
        if s:
            return bool(re.match(r"CCSDS_CDM_VERS\s*=", s))
    return False


def identify_xml(head: bytes) -> bool:
    """Whether a file's first bytes look like an XML CDM (``<cdm`` root element)."""
    text = _decode(head[:4096])
    return bool(re.search(r"<(?:\w+:)?cdm[\s>]", text)) and _looks_xml(text)


# --- reading ------------------------------------------------------------------------------

def read(path) -> Cdm:
    """Read one CDM file (KVN or XML, sniffed). Raises :class:`FormatError`."""
    with open(path, "rb") as fh:
        data = fh.read()
    return loads(data, path=str(path))


def read_all(path) -> list[Cdm]:
    """Every CDM in a file (an XML ``<ndm>`` container may hold several)."""
    with open(path, "rb") as fh:
        data = fh.read()
    return loads_all(data, path=str(path))


def loads(data: bytes | str, *, path: str | None = None) -> Cdm:
    """One CDM from its text or bytes (KVN or XML, sniffed)."""
    msgs = loads_all(data, path=path)
    if len(msgs) != 1:
        raise FormatError(f"expected one CDM, found {len(msgs)}", path=path)
    return msgs[0]


def loads_all(data: bytes | str, *, path: str | None = None) -> list[Cdm]:
    """Every CDM in ``data``; raises :class:`FormatError` for anything malformed."""
    if isinstance(data, bytes) and _looks_xml(_decode(data[:4096])) and not (
            data.startswith((b"\xff\xfe", b"\xfe\xff")) or data[1:2] == b"\x00"
            or data[:1] == b"\x00"):
        return _read_xml(data, path)   # the parser honours the declared encoding
    text = _decode(data)
    if _looks_xml(text):
        # text already decoded: drop the declaration's encoding, parse as UTF-8
        text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text.lstrip("\ufeff"), count=1)
        return _read_xml(text.encode("utf-8"), path)
    return [_read_kvn(text, path)]


_VERSION = re.compile(r"^[12]\.\d+$")
_KV = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*)$")


def _read_kvn(text: str, path: str | None) -> Cdm:
    msg = Cdm()
    section = None
    obj_index = -1
    pending: list[str] = []
    seen: dict[tuple[str, int], set] = {}

    def target(sec: str) -> dict:
        return {_H: msg.header, _R: msg.relative}.get(sec) if sec != _O else msg.objects[obj_index]

    last_block = "header"
    for lineno, raw in enumerate(split_lines(text), start=1):
        s = raw.strip()
        if not s:
            continue
        if s == "COMMENT" or s.startswith(("COMMENT ", "COMMENT\t")):
            pending.append(_clean_text("COMMENT", s[7:].strip(), lineno, path))
            continue
        m = _KV.match(s)
        if not m:
            raise FormatError("line is not 'KEYWORD = value' nor a COMMENT", path=path,
                              line=lineno, expected="KEYWORD = value [unit]", got=s[:200])
        name, value = m.group(1).upper(), m.group(2)
        sec = _section(name)
        if sec is None:
            raise FormatError(f"unknown keyword {name}", path=path, line=lineno, field=name,
                              expected="a CCSDS 508.0 CDM keyword or USER_DEFINED_*",
                              got=s[:200])
        if section is None and name != "CCSDS_CDM_VERS":
            raise FormatError("a KVN CDM must start with CCSDS_CDM_VERS", path=path,
                              line=lineno, field=name, expected="CCSDS_CDM_VERS = 1.0",
                              got=s[:200])
        order = {_H: 0, _R: 1, _O: 2}
        if name == "OBJECT":
            obj_index += 1
            want = f"OBJECT{obj_index + 1}"
            if obj_index > 1 or value.strip().upper() != want:
                raise FormatError(f"expected OBJECT = {want}" if obj_index <= 1 else
                                  "a CDM has exactly two objects", path=path, line=lineno,
                                  field="OBJECT", expected=f"OBJECT = {want}", got=s[:200])
            section = _O
        elif sec == _O:
            if section != _O:
                raise FormatError(f"{name} belongs to an object section, which starts with "
                                  "OBJECT = OBJECT1", path=path, line=lineno, field=name,
                                  got=s[:200])
        else:
            if section is not None and order[sec] < order[section]:
                raise FormatError(f"{name} belongs to the {sec} section and cannot follow the "
                                  f"{section if section != _O else 'object'} section",
                                  path=path, line=lineno, field=name, got=s[:200])
            section = sec
        if section == _O and name in _SHARED and any(
                re.fullmatch(r"C(X|Y|Z)(DOT)?_(X|Y|Z)(DOT)?", k) for k in msg.objects[obj_index]):
            name += _XYZ
        key = (section, obj_index)
        names = seen.setdefault(key, set())
        if name in names:
            raise FormatError(f"{name} appears twice in one section", path=path, line=lineno,
                              field=name, got=s[:200])
        names.add(name)
        block = _block(name)
        bkey = _block_key(section, obj_index, block)
        value_parsed = (_clean_text(name, value.strip(), lineno, path) or None) \
            if name.startswith(_USER) else \
            _parse_value(name, value, None, lineno, path)
        target(section)[name] = value_parsed
        if value_parsed is None and name != "OBJECT":
            continue   # an absent value: its comments go with the next keyword that is kept
        if pending:
            msg.comments.setdefault(bkey, []).extend(pending)
            pending = []
        last_block = bkey
    if pending:
        msg.comments.setdefault(last_block, []).extend(pending)
    _validate(msg, path)
    return msg


def _block_key(section: str, obj_index: int, block: str) -> str:
    if section == _H:
        return "header"
    if section == _R:
        return "relative"
    return f"object{obj_index + 1}/{block}"


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


_CONTAINERS = {"metadata", "data", "odParameters", "additionalParameters", "stateVector",
               "covarianceMatrix", "additionalCovarianceMetadata", "userDefinedParameters",
               "xyzCovarianceMatrix", "sig3EigVec3CovarianceMatrix"}


def _read_xml(data: bytes, path: str | None) -> list[Cdm]:
    try:
        root = DET.fromstring(data)
    except ParseError as e:
        line = getattr(e, "position", (None,))[0]
        raise FormatError(f"XML is not well formed: {e}", path=path, line=line) from None
    except DefusedXmlException as e:
        raise FormatError(f"XML refused (entities/DTD are not allowed): {e}",
                          path=path) from None
    except (ValueError, LookupError) as e:   # LookupError: an unknown declared encoding
        raise FormatError(f"XML cannot be parsed: {e}", path=path) from None
    tag = _local(root.tag)
    if tag == "ndm":
        cdms = [c for c in root if _local(c.tag) == "cdm"]
        if not cdms:
            raise FormatError("NDM container holds no <cdm>", path=path, field="cdm")
        return [_xml_cdm(c, path) for c in cdms]
    if tag != "cdm":
        raise FormatError(f"root element is <{tag}>, not <cdm>", path=path,
                          expected="<cdm id=\"CCSDS_CDM_VERS\" version=\"1.0\">", got=f"<{tag}>")
    return [_xml_cdm(root, path)]


def _xml_text(el) -> str | None:
    if el.get("nil", "").lower() == "true" or el.get(
            "{http://www.w3.org/2001/XMLSchema-instance}nil", "").lower() == "true":
        return None
    if len(el):
        raise FormatError(f"<{_local(el.tag)}> holds child elements, a value was expected",
                          field=_local(el.tag))
    return (el.text or "").strip()


def _xml_cdm(root, path) -> Cdm:
    msg = Cdm()
    version = root.get("version")
    if not version:
        raise FormatError("<cdm> has no version attribute", path=path, field="CCSDS_CDM_VERS",
                          expected='<cdm id="CCSDS_CDM_VERS" version="1.0">')
    msg.header["CCSDS_CDM_VERS"] = version.strip()
    children = [c for c in root if isinstance(c.tag, str)]
    header = [c for c in children if _local(c.tag) == "header"]
    body = [c for c in children if _local(c.tag) == "body"]
    if len(header) != 1 or len(body) != 1 or len(children) != 2:
        raise FormatError("<cdm> must hold one <header> and one <body>", path=path,
                          got=", ".join(f"<{_local(c.tag)}>" for c in children))
    _xml_leaves(header[0], msg, _H, -1, path, "header")
    segs = 0
    rel_seen = False
    for el in body[0]:
        if not isinstance(el.tag, str):
            continue
        t = _local(el.tag)
        if t == "relativeMetadataData":
            if rel_seen:
                raise FormatError("two <relativeMetadataData>", path=path)
            rel_seen = True
            _xml_leaves(el, msg, _R, -1, path, "relativeMetadataData")
        elif t == "segment":
            if segs >= 2:
                raise FormatError("a CDM has exactly two <segment>s", path=path, field="segment")
            for part in el:
                if not isinstance(part.tag, str):
                    continue
                pt = _local(part.tag)
                if pt not in ("metadata", "data"):
                    raise FormatError(f"unexpected <{pt}> in <segment>", path=path, field=pt)
                _xml_leaves(part, msg, _O, segs, path, pt)
            obj = msg.objects[segs].get("OBJECT")
            if obj is None or obj.upper() != f"OBJECT{segs + 1}":
                raise FormatError(f"segment {segs + 1} must state OBJECT = OBJECT{segs + 1}",
                                  path=path, field="OBJECT", got=str(obj))
            segs += 1
        else:
            raise FormatError(f"unexpected <{t}> in <body>", path=path, field=t)
    _validate(msg, path)
    return msg


def _xml_leaves(el, msg: Cdm, section: str, obj_index: int, path, block: str) -> None:
    target = {_H: msg.header, _R: msg.relative}.get(section) if section != _O \
        else msg.objects[obj_index]
    for child in el:
        if not isinstance(child.tag, str):
            continue
        name = _local(child.tag)
        if name == "COMMENT":
            msg.comments.setdefault(_block_key(section, obj_index, block), []).append(
                _clean_text("COMMENT", (child.text or "").strip(), None, path))
            continue
        if name in _CONTAINERS or name == "relativeStateVector":
            if section == _H or (section == _R and name != "relativeStateVector") or \
                    (section == _O and name == "relativeStateVector"):
                raise FormatError(f"unexpected <{name}> in <{_local(el.tag)}>", path=path,
                                  field=name)
            _xml_leaves(child, msg, section, obj_index, path, _XML_BLOCK.get(name, name))
            continue
        if section == _O and name in _SHARED and any(
                re.fullmatch(r"C(X|Y|Z)(DOT)?_(X|Y|Z)(DOT)?", k) for k in target):
            name += _XYZ
        sec = _section(name)
        if sec is None:
            raise FormatError(f"unknown keyword <{name}>", path=path, field=name,
                              expected="a CCSDS 508.0 CDM keyword or USER_DEFINED_*")
        if sec != section or name == "CCSDS_CDM_VERS":
            raise FormatError(f"<{name}> belongs to the {sec} section, not in "
                              f"<{_local(el.tag)}>", path=path, field=name)
        if name in target:
            raise FormatError(f"<{name}> appears twice", path=path, field=name)
        try:
            text = _xml_text(child)
        except FormatError as e:
            raise FormatError(e.message, path=path, field=name) from None
        if name.startswith(_USER):
            target[name] = _clean_text(name, text, None, path) or None if text else None
        else:
            target[name] = _parse_value(name, text, child.get("units"), None, path)


def _validate(msg: Cdm, path: str | None) -> None:
    """Mandatory keywords (CCSDS 508.0-B-1) present and non-empty; covariances complete."""
    for sec, names in ((_H, _MANDATORY[_H]), (_R, _MANDATORY[_R])):
        d = msg.header if sec == _H else msg.relative
        for n in names:
            if d.get(n) is None:
                raise FormatError(f"mandatory keyword {n} is missing or empty", path=path,
                                  field=n, expected=f"{n} = value")
    for i, obj in enumerate(msg.objects):
        if not obj:
            raise FormatError(f"OBJECT{i + 1} section is missing", path=path, field="OBJECT",
                              expected=f"OBJECT = OBJECT{i + 1}")
        for n in _MANDATORY[_O]:
            if obj.get(n) is None:
                what = ("covariance" if n in COVARIANCE_RTN else "state vector"
                        if n in ("X", "Y", "Z", "X_DOT", "Y_DOT", "Z_DOT") else "keyword")
                raise FormatError(f"OBJECT{i + 1}: mandatory {what} {n} is missing or empty",
                                  path=path, field=n, expected=f"{n} = value")
    version = msg.header.get("CCSDS_CDM_VERS", "")
    if not _VERSION.match(version):
        raise FormatError("CCSDS_CDM_VERS must be 1.x or 2.x", path=path,
                          field="CCSDS_CDM_VERS", expected="CCSDS_CDM_VERS = 1.0", got=version)
    # drop empty optional values: they carry nothing (XML nil / empty elements)
    for d in (msg.header, msg.relative, *msg.objects):
        for k in [k for k, v in d.items() if v is None]:
            del d[k]
        # a 1.0 message's enumerated keywords hold one of the standard's values, as the
        # writer requires: what is read can be written back
        for k, v in d.items():
            if version.startswith("1.") and k in _VALUES_1 and v not in _VALUES_1[k]:
                raise FormatError(f"{k} = {v!r} is not one of CDM 1.0's values", path=path,
                                  field=k, expected=f"{k} = {' | '.join(_VALUES_1[k])}",
                                  got=str(v))


# --- writing ------------------------------------------------------------------------------

def _defined(name: str, version: str) -> bool:
    """Whether CDM ``version`` (``'1.0'``, ``'2.0'``) defines keyword ``name``."""
    if name.startswith(_USER):
        return not version.startswith("1.")
    return name in _SINCE and _SINCE[name] <= version


def version_needed(msg: Cdm) -> str:
    """The lowest CDM version that defines every keyword and comment block of ``msg``: ``'1.0'``
    or ``'2.0'`` (a message read leniently may say 1.0 and use CDM 2.0 keywords; writing it
    strictly needs 2.0)."""
    names = [k for d in (msg.header, msg.relative, *msg.objects) for k in d]
    blocks = [b.split("/")[-1] for b in msg.comments]
    if all(_defined(k, "1.0") for k in names) and all(b in _BLOCKS_1 for b in blocks):
        return "1.0"
    return "2.0"


def _check_for_write(msg: Cdm) -> None:
    """Strict: the version's keywords only, its enumerated values, finite numbers, one-line
    text; :class:`ValueError` naming the keyword otherwise."""
    if not isinstance(msg, Cdm):
        raise TypeError("expected a Cdm")
    if len(msg.objects) != 2:
        raise ValueError("a CDM has exactly two objects")
    version = str(msg.header.get("CCSDS_CDM_VERS"))
    if version not in VERSIONS:
        raise ValueError(f"CCSDS_CDM_VERS must be '1.0' or '2.0', got {version!r}")
    sections = ((_H, msg.header), (_R, msg.relative), (_O, msg.objects[0]),
                (_O, msg.objects[1]))
    for sec, d in sections:
        for n in _MANDATORY[sec]:
            if d.get(n) is None:
                raise ValueError(f"cannot write a CDM without {n}")
        for k, v in d.items():
            if _section(k) != sec:
                raise ValueError(f"{k} is not a {sec} keyword")
            if not _defined(k, version):
                raise ValueError(f"{k} is not a CDM {version} keyword"
                                 + (" (it is CDM 2.0's)" if version == "1.0" else ""))
            _check_value(k, v, version)
    for i, o in enumerate(msg.objects):
        if str(o["OBJECT"]).upper() != f"OBJECT{i + 1}":
            raise ValueError(f"object {i + 1} must have OBJECT = OBJECT{i + 1}")
    for block, lines in msg.comments.items():
        if not _valid_block_key(block) or (version == "1.0" and block.split("/")[-1] not in
                                           _BLOCKS_1):
            raise ValueError(f"comment block {block!r} does not exist in CDM {version}")
        for c in lines:
            if not isinstance(c, str) or c != c.strip() or _CONTROL.search(c):
                raise ValueError(f"comment {c!r} must be one line without outer spaces or "
                                 "control characters")


def _check_value(k: str, v, version: str) -> None:
    kind = _kind(k) if not k.startswith(_USER) else "text"
    if kind == "float" and not (isinstance(v, (int, float)) and not isinstance(v, bool)
                                and v == v and abs(v) != float("inf")):
        raise ValueError(f"{k} must be a finite number, got {v!r}")
    if kind in ("int", "time") and not (isinstance(v, int) and not isinstance(v, bool)):
        raise ValueError(f"{k} must be an integer"
                         + (" (ns since 1970 UTC)" if kind == "time" else "") + f", got {v!r}")
    if kind == "vector" and not (isinstance(v, tuple) and v and all(
            isinstance(x, float) and x == x and abs(x) != float("inf") for x in v)):
        raise ValueError(f"{k} must be a non-empty tuple of finite floats, got {v!r}")
    if kind == "text":
        _check_text(k, v)
    if version == "1.0" and k in _VALUES_1 and v not in _VALUES_1[k]:
        raise ValueError(f"{k} = {v!r} is not a CDM 1.0 value; one of {', '.join(_VALUES_1[k])}")


def _check_text(k, v):
    if not isinstance(v, str) or not v or v != v.strip() or _CONTROL.search(v):
        raise ValueError(f"{k} must be non-empty one-line text without outer spaces or control "
                         f"characters, got {v!r}")


def _valid_block_key(block: str) -> bool:
    if block in ("header", "relative"):
        return True
    m = re.fullmatch(r"object([12])/(.+)", block)
    return bool(m) and m.group(2) in _OBJ_BLOCKS


def _fmt_value(k: str, v) -> str:
    kind = _kind(k) if not k.startswith(_USER) else "text"
    if kind == "float":
        return repr(float(v)).upper()
    if kind == "int":
        return str(v)
    if kind == "time":
        text = format_epoch(v)
        return text[:-6] if text.endswith("000000") else text
    if kind == "vector":
        return " ".join(repr(float(x)).upper() for x in v)
    return v


def _ordered(d: dict, section: str) -> list[str]:
    """``d``'s keywords in the standard's order (the keyword table's), user-defined last."""
    known = [k for k in KEYWORDS if k in d and KEYWORDS[k][0] == section]
    return known + sorted(k for k in d if k.startswith(_USER))


_OBJ_BLOCKS = ("metadata", "data", "odParameters", "additionalParameters", "stateVector",
               "covarianceMatrix", "covarianceMatrix#xyz", "covarianceMatrix#sig3",
               "additionalCovarianceMetadata", "userDefinedParameters")
#: The blocks CDM 1.0 has (508.0-B-1; its XML schema's elements).
_BLOCKS_1 = ("header", "relative", "metadata", "data", "odParameters", "additionalParameters",
             "stateVector", "covarianceMatrix")
#: XML element of a block whose name in the keyword table is not its element's: CDM 2.0's
#: XYZ and sigma/eigenvector covariances and additional covariance metadata each sit in a
#: further <covarianceMatrix>, as Orekit reads and its CDM 2.0 examples write them.
_XML_ELEMENT = {"covarianceMatrix#xyz": "covarianceMatrix",
                "covarianceMatrix#sig3": "covarianceMatrix",
                "additionalCovarianceMetadata": "covarianceMatrix"}
#: ... and the element names other producers use for them, read as those blocks.
_XML_BLOCK = {"xyzCovarianceMatrix": "covarianceMatrix#xyz",
              "sig3EigVec3CovarianceMatrix": "covarianceMatrix#sig3"}


def dumps_kvn(msg: Cdm) -> str:
    """The message as KVN text (strict: :class:`ValueError` for anything not writable)."""
    _check_for_write(msg)
    width = 36
    out: list[str] = []

    def emit_comments(block):
        for c in msg.comments.get(block, []):
            out.append(f"COMMENT {c}".rstrip())

    def emit(k, v):
        unit = KEYWORDS[k][3] if k in KEYWORDS else None
        out.append(f"{k.replace(_XYZ, ''):<{width}}= {_fmt_value(k, v)}"
                   + (f" [{unit}]" if unit else ""))

    keys = _ordered(msg.header, _H)
    emit("CCSDS_CDM_VERS", msg.header["CCSDS_CDM_VERS"])
    emit_comments("header")
    for k in keys[1:]:
        emit(k, msg.header[k])
    emit_comments("relative")
    for k in _ordered(msg.relative, _R):
        emit(k, msg.relative[k])
    for i, obj in enumerate(msg.objects):
        keys = _ordered(obj, _O)
        by_block: dict[str, list[str]] = {}
        for k in keys:
            by_block.setdefault(_block(k), []).append(k)
        for block in _OBJ_BLOCKS:
            if block == "metadata":
                # COMMENT lines open the object's block, before OBJECT = OBJECTn (508.0-B-1
                # 6.7.2; Orekit refuses them after it)
                emit_comments(f"object{i + 1}/metadata")
                emit("OBJECT", obj["OBJECT"])
                for k in by_block.get("metadata", [])[1:]:
                    emit(k, obj[k])
                continue
            emit_comments(f"object{i + 1}/{block}")
            for k in by_block.get(block, []):
                emit(k, obj[k])
    return "\n".join(out) + "\n"


def dumps_xml(msg: Cdm) -> str:
    """The message as CCSDS NDM/XML (``<cdm>``), strict as :func:`dumps_kvn`."""
    _check_for_write(msg)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<cdm xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
           'xsi:noNamespaceSchemaLocation="https://sanaregistry.org/r/ndmxml/'
           'ndmxml-1.0-master.xsd" id="CCSDS_CDM_VERS" '
           f'version={quoteattr(msg.header["CCSDS_CDM_VERS"])}>']

    def leaf(k, v, ind):
        unit = KEYWORDS[k][3] if k in KEYWORDS else None
        attr = f" units={quoteattr(unit)}" if unit else ""
        tag = k.replace(_XYZ, "")
        out.append(f"{ind}<{tag}{attr}>{escape(_fmt_value(k, v))}</{tag}>")

    def comments(block, ind):
        for c in msg.comments.get(block, []):
            out.append(f"{ind}<COMMENT>{escape(c)}</COMMENT>")

    out.append("  <header>")
    comments("header", "    ")
    for k in _ordered(msg.header, _H)[1:]:
        leaf(k, msg.header[k], "    ")
    out.append("  </header>")
    out.append("  <body>")
    out.append("    <relativeMetadataData>")
    comments("relative", "      ")
    rel = _ordered(msg.relative, _R)
    rsv = [k for k in rel if _block(k) == "relativeStateVector"]
    placed = False
    for k in rel:
        if _block(k) == "relativeStateVector":
            if not placed:
                out.append("      <relativeStateVector>")
                for r in rsv:
                    leaf(r, msg.relative[r], "        ")
                out.append("      </relativeStateVector>")
                placed = True
            continue
        leaf(k, msg.relative[k], "      ")
    out.append("    </relativeMetadataData>")
    for i, obj in enumerate(msg.objects):
        by_block: dict[str, list[str]] = {}
        for k in _ordered(obj, _O):
            by_block.setdefault(_block(k), []).append(k)
        out.append("    <segment>")
        out.append("      <metadata>")
        comments(f"object{i + 1}/metadata", "        ")
        for k in by_block.get("metadata", []):
            leaf(k, obj[k], "        ")
        out.append("      </metadata>")
        out.append("      <data>")
        comments(f"object{i + 1}/data", "        ")
        for block in _OBJ_BLOCKS[2:]:
            keys = by_block.get(block, [])
            if not keys and not msg.comments.get(f"object{i + 1}/{block}"):
                continue
            element = _XML_ELEMENT.get(block, block)
            out.append(f"        <{element}>")
            comments(f"object{i + 1}/{block}", "          ")
            for k in keys:
                leaf(k, obj[k], "          ")
            out.append(f"        </{element}>")
        out.append("      </data>")
        out.append("    </segment>")
    out.append("  </body>")
    out.append("</cdm>")
    return "\n".join(out) + "\n"


def write_kvn(msg: Cdm, path) -> None:
    """Write ``msg`` as a KVN file (UTF-8), atomically."""
    atomic_write_bytes(Path(path), dumps_kvn(msg).encode("utf-8"))


def write_xml(msg: Cdm, path) -> None:
    """Write ``msg`` as an XML file (UTF-8), atomically."""
    atomic_write_bytes(Path(path), dumps_xml(msg).encode("utf-8"))


def iter_messages(paths) -> Iterator[tuple[str, Cdm]]:
    """``(path, message)`` for every CDM in ``paths``; raises on the first malformed file."""
    for p in paths:
        for m in read_all(p):
            yield str(p), m


# --- ingest adapter (table "cdms") --------------------------------------------------------

def to_record(msg: Cdm) -> dict:
    """The ``cdms`` row of a message (times as int ns, lengths in km; see schema.CDMS)."""
    rel = msg.relative

    def obj_cols(i: int) -> dict:
        o = msg.objects[i - 1]
        des = str(o["OBJECT_DESIGNATOR"])
        cov = [o[k] for k in COVARIANCE_RTN]
        return {
            f"object{i}_id": int(des) if des.isdigit() and 0 < int(des) < 10**9 else None,
            f"object{i}_designator": des,
            f"object{i}_name": o.get("OBJECT_NAME"),
            f"object{i}_intl_designator": o.get("INTERNATIONAL_DESIGNATOR"),
            f"object{i}_ref_frame": o["REF_FRAME"],
            f"object{i}_covariance_method": o.get("COVARIANCE_METHOD"),
            f"object{i}_maneuverable": o.get("MANEUVERABLE"),
            f"object{i}_r_km": [o["X"], o["Y"], o["Z"]],
            f"object{i}_v_km_s": [o["X_DOT"], o["Y_DOT"], o["Z_DOT"]],
            f"object{i}_cov_rtn": cov,
        }

    def vec(prefix, scale):
        vals = [rel.get(f"{prefix}_{c}") for c in "RTN"]
        return None if any(v is None for v in vals) else [v * scale for v in vals]

    rec = {
        "message_id": msg.header["MESSAGE_ID"],
        "creation_date": msg.header["CREATION_DATE"],
        "originator": msg.header["ORIGINATOR"],
        "message_for": msg.header.get("MESSAGE_FOR"),
        "conjunction_id": rel.get("CONJUNCTION_ID"),
        "tca": rel["TCA"],
        "miss_distance_km": rel["MISS_DISTANCE"] / 1000.0,
        "relative_speed_km_s": (rel["RELATIVE_SPEED"] / 1000.0
                                if "RELATIVE_SPEED" in rel else None),
        "relative_position_rtn_km": vec("RELATIVE_POSITION", 1e-3),
        "relative_velocity_rtn_km_s": vec("RELATIVE_VELOCITY", 1e-3),
        "collision_probability": rel.get("COLLISION_PROBABILITY"),
        "collision_probability_method": rel.get("COLLISION_PROBABILITY_METHOD"),
        "hbr_m": msg.hbr_m(),
        **obj_cols(1), **obj_cols(2),
        "keywords_json": msg.to_json(),
    }
    marking = stated_marking(msg)
    if marking:
        rec["marking"] = marking
    return rec


def stated_marking(msg: Cdm) -> str | None:
    """The marking a message states: CDM 2.0's header CLASSIFICATION, else a header
    ``COMMENT CLASSIFICATION: <marking>`` (how a CDM 1.0, which has no such keyword, carries
    it; ssafuse writes its 1.0 messages so); ``None`` when it states none."""
    if "CLASSIFICATION" in msg.header:
        return msg.header["CLASSIFICATION"].strip().strip('"') or None
    return next(filter(None, map(comment_marking, msg.comments.get("header", []))), None)


def _ingest_read(stream, uri):
    data = stream.read()
    try:
        msgs = loads_all(data, path=uri)
    except FormatError as e:
        # A CDM file is one record: a malformed one is one reject (record 1), with the reason.
        reason = e.message + (f" (line {e.line})" if e.line else "")
        if e.expected is not None:
            reason += f"; expected {e.expected!r}"
        yield Batch([], [Reject(1, _decode(data[:512]), reason, e.field)], table="cdms")
        return
    records = []
    for i, m in enumerate(msgs, start=1):
        rec = to_record(m)
        rec["source_record"] = i
        rec["_raw"] = _decode(data[:512])
        records.append(rec)
    yield Batch(records, [], table="cdms")


def formats():
    """The ingest formats of this module (``cdm-kvn``, ``cdm-xml``), table ``cdms``."""
    return (
        Format("cdm-kvn", "cdms", "CCSDS 508.0 Conjunction Data Message, KVN",
               identify_kvn, _ingest_read, priority=10, extensions=(".cdm",)),
        Format("cdm-xml", "cdms", "CCSDS 508.0 Conjunction Data Message, XML (<cdm>)",
               identify_xml, _ingest_read, priority=10, extensions=()),
    )

"""Classification / releasability markings (ssafuse.markings).

Expected values follow the US banner-line and portion-mark conventions of the IC "Authorized
Classification and Control Markings Register" (CAPCO): classification first, then categories
separated by ``//``, controls within the dissemination category separated by a single ``/``
(``SECRET//ORCON/NOFORN``), releasability as ``REL TO`` followed by comma-separated country
trigraphs and coalition tetragraphs (``REL TO USA, GBR, FVEY``), ``NOFORN`` (portion form ``NF``)
for no foreign release. These are the forms the Unified Data Library's ``classificationMarking``
field carries ("Classification marking of the data in IC/CAPCO Portion-marked format", UDL API
model docs: ``U``, ``S//REL TO USA, GBR``) and the TLE classification column holds the single
letters (U, C, S).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssafuse import markings as mk
from ssafuse.errors import MarkingError

M = mk.Marking


@pytest.mark.parametrize("text, level", [
    ("U", "UNCLASSIFIED"), ("R", "RESTRICTED"), ("C", "CONFIDENTIAL"), ("S", "SECRET"),
    ("TS", "TOP SECRET"), ("UNCLASSIFIED", "UNCLASSIFIED"), ("CONFIDENTIAL", "CONFIDENTIAL"),
    ("SECRET", "SECRET"), ("TOP SECRET", "TOP SECRET"), (" top  secret ", "TOP SECRET"),
    ("u", "UNCLASSIFIED"),
])
def test_levels_alone_state_no_releasability(text, level):
    assert mk.parse(text) == M(level, None, ())


@pytest.mark.parametrize("text, expected", [
    ("SECRET//REL TO USA, GBR", M("SECRET", ("GBR", "USA"))),
    ("S//REL TO USA, GBR", M("SECRET", ("GBR", "USA"))),                 # portion form
    ("UNCLASSIFIED//REL TO USA, GBR, AUS", M("UNCLASSIFIED", ("AUS", "GBR", "USA"))),
    ("CONFIDENTIAL//REL TO USA, FVEY", M("CONFIDENTIAL", ("FVEY", "USA"))),
    ("TOP SECRET//NOFORN", M("TOP SECRET", (), ("NOFORN",))),
    ("S//NF", M("SECRET", (), ("NOFORN",))),                            # portion form of NOFORN
    ("UNCLASSIFIED//FOUO", M("UNCLASSIFIED", None, ("FOUO",))),
    ("UNCLASSIFIED//FOR OFFICIAL USE ONLY", M("UNCLASSIFIED", None, ("FOR OFFICIAL USE ONLY",))),
    ("SECRET//ORCON/NOFORN", M("SECRET", (), ("NOFORN", "ORCON"))),
    ("SECRET//ORCON/REL TO USA, GBR", M("SECRET", ("GBR", "USA"), ("ORCON",))),
    ("SECRET//REL TO USA, AUS/RELIDO", M("SECRET", ("AUS", "USA"), ("RELIDO",))),
    ("CONFIDENTIAL//PROPIN//REL TO USA, CAN", M("CONFIDENTIAL", ("CAN", "USA"), ("PROPIN",))),
])
def test_banner_and_portion_forms(text, expected):
    assert mk.parse(text) == expected


def test_parsed_marking_prints_as_a_banner_line():
    assert str(mk.parse("S//REL TO USA, GBR")) == "SECRET//REL TO GBR, USA"
    assert str(mk.parse("TS//NF")) == "TOP SECRET//NOFORN"
    assert str(mk.parse("U//FOUO")) == "UNCLASSIFIED//FOUO"
    assert str(mk.parse("U")) == "UNCLASSIFIED"


@pytest.mark.parametrize("text", [
    "", "   ", None, 5, "UNCLASS", "SEKRET", "(U)", "S/NF", "//NATO SECRET",
    "SECRET//", "SECRET////NOFORN", "SECRET//REL TO", "SECRET//REL TO US, GB",
    "SECRET//REL TO USA, GBR/", "SECRET//ORCON/", "SECRET//SI//NOFORN", "SECRET//NOFORM",
    "U//REL TO USA, GREAT BRITAIN",
])
def test_unparseable_markings_raise_never_guess(text):
    with pytest.raises(MarkingError):
        mk.parse(text)


def test_marking_with_unknown_level_cannot_be_built():
    with pytest.raises(MarkingError):
        M("SORTA SECRET")


# --- apply_default: what the record states, the feed's default for the rest --------------

FEED = mk.parse("SECRET//REL TO USA, GBR")


def test_record_without_marking_takes_the_feed_default():
    for text in (None, "", "  "):
        assert mk.apply_default(text, FEED) == (FEED, "SECRET//REL TO GBR, USA")


def test_the_feeds_marking_is_a_floor_a_record_never_lowers_it():
    # A TLE's classification column "U" in a SECRET//REL TO USA, GBR feed stays SECRET: the
    # stricter of the two wins (a record may raise, never lower), and the text kept for the
    # row says so: the record's own text only where it states exactly the row's marking.
    assert mk.apply_default("U", FEED) == (FEED, "SECRET//REL TO GBR, USA")
    assert mk.lowers("U", FEED)
    assert mk.apply_default("TS", FEED) == (M("TOP SECRET", ("GBR", "USA")),
                                            "TOP SECRET//REL TO GBR, USA")
    assert not mk.lowers("TS", FEED)
    m, text = mk.apply_default("U//FOUO", FEED)
    assert m == M("SECRET", ("GBR", "USA"), ("FOUO",)) and mk.parse(text) == m


def test_a_record_may_narrow_releasability_never_widen_it():
    wider = "UNCLASSIFIED//REL TO USA, GBR, AUS"
    assert mk.apply_default(wider, FEED) == (FEED, str(FEED))
    assert mk.lowers(wider, FEED)
    narrower = "SECRET//REL TO USA"
    assert mk.apply_default(narrower, FEED) == (M("SECRET", ("USA",)), narrower)
    assert not mk.lowers(narrower, FEED)
    assert mk.apply_default("S//NF", FEED) == (M("SECRET", (), ("NOFORN",)), "S//NF")


def test_a_feeds_controls_stay_in_the_rows_text():
    orcon = mk.parse("UNCLASSIFIED//ORCON/REL TO USA, GBR")
    m, text = mk.apply_default("U", orcon)
    assert m == orcon and "ORCON" in mk.parse(text).controls
    # a national form that states exactly the row's marking is kept as written
    assert mk.apply_default("OFFICIAL", mk.parse("UNCLASSIFIED")) == (
        mk.parse("UNCLASSIFIED"), "OFFICIAL")


def test_an_unclassified_feed_takes_what_the_record_states():
    public = mk.parse("UNCLASSIFIED")
    assert mk.apply_default("S//REL TO GBR", public) == (M("SECRET", ("GBR",)), "S//REL TO GBR")
    assert mk.apply_default("U", public) == (public, "U")
    assert not mk.lowers("S//REL TO GBR", public) and not mk.lowers(None, FEED)


def test_record_with_unparseable_marking_raises_not_defaulted():
    with pytest.raises(MarkingError):
        mk.apply_default("SECRET//REL TO NARNIA", FEED)


# --- combine: most restrictive level, intersection of releasability -----------------------

def combined(*texts):
    return mk.combine(mk.parse(t) for t in texts)


def test_combine_takes_the_most_restrictive_level():
    assert combined("U", "C").classification == "CONFIDENTIAL"
    assert combined("S", "U", "TS", "C").classification == "TOP SECRET"
    assert mk.most_restrictive(["SECRET", "UNCLASSIFIED"]) == "SECRET"


def test_combine_intersects_releasability():
    assert combined("U//REL TO USA, GBR, AUS", "S//REL TO USA, GBR").releasable_to == (
        "GBR", "USA")
    assert combined("U//REL TO USA, FVEY", "U//REL TO GBR, DEU").releasable_to == ("GBR",)
    assert combined("U//REL TO FVEY", "U//REL TO FVEY").releasable(code="NZL")
    assert not combined("U//REL TO FVEY", "U//REL TO FVEY").releasable("DEU")


def test_no_caveat_admits_everything_when_combined():
    assert combined("U", "S//REL TO USA, GBR") == M("SECRET", ("GBR", "USA"))
    assert combined("U", "C").releasable_to is None


def test_noforn_or_disjoint_releasability_combine_to_noforn():
    assert combined("U//REL TO USA, GBR", "TS//NOFORN").releasable_to == ()
    disjoint = combined("S//REL TO USA", "S//REL TO GBR")
    assert disjoint == M("SECRET", (), ("NOFORN",))
    assert str(disjoint) == "SECRET//NOFORN"
    assert mk.parse(str(disjoint)) == disjoint


def test_combine_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        mk.combine([])


def test_releasable_to_a_partner():
    m = mk.parse("SECRET//REL TO USA, FVEY")
    assert m.releasable("NZL") and m.releasable("USA") and not m.releasable("DEU")
    assert mk.parse("U").releasable("DEU")
    assert not mk.parse("S//NOFORN").releasable("GBR")


# --- properties ---------------------------------------------------------------------------

CODES = ["USA", "GBR", "AUS", "CAN", "NZL", "DEU", "FRA", "JPN", "FVEY", "ACGU", "NATO"]
CONTROLS = sorted(mk.DISSEMINATION_CONTROLS) + ["NOFORN"]
RELS = st.none() | st.sets(st.sampled_from(CODES), max_size=5).map(tuple)
MARKINGS = st.builds(M, st.sampled_from(mk.LEVELS), RELS,
                     st.lists(st.sampled_from(CONTROLS), max_size=3).map(tuple))
TEXTS = st.builds(
    lambda level, rel, controls, sep: "//".join(
        [level] + ([sep.join(controls)] if controls else [])
        + ([f"REL TO {', '.join(rel)}"] if rel else [])),
    st.sampled_from(["U", "C", "S", "TS", "UNCLASSIFIED", "SECRET", "TOP SECRET"]),
    st.lists(st.sampled_from(CODES), max_size=4),
    st.lists(st.sampled_from(CONTROLS), max_size=3), st.sampled_from(["/", "//"]))
ANY = MARKINGS | TEXTS.map(mk.parse)
PROPS = settings(deadline=None)   # examples and seeding: the profile's (tests/conftest.py)


def expanded(rel):
    return mk._expand(rel)


@PROPS
@given(ANY, ANY)
def test_combine_is_commutative(a, b):
    assert mk.combine([a, b]) == mk.combine([b, a])


@PROPS
@given(ANY, ANY, ANY)
def test_combine_is_associative(a, b, c):
    left = mk.combine([mk.combine([a, b]), c])
    right = mk.combine([a, mk.combine([b, c])])
    assert left == right == mk.combine([a, b, c])


@PROPS
@given(st.lists(ANY, min_size=1, max_size=4))
def test_combined_is_at_least_as_restrictive_as_each_input(ms):
    c = mk.combine(ms)
    assert all(c.rank >= m.rank for m in ms)
    if all(m.releasable_to is None for m in ms):
        assert c.releasable_to is None
    else:
        assert c.releasable_to is not None
        for m in ms:
            if m.releasable_to is not None:
                assert expanded(c.releasable_to) <= expanded(m.releasable_to)
    for code in CODES:
        if c.releasable(code):
            assert all(m.releasable(code) for m in ms), code


@PROPS
@given(ANY)
def test_text_round_trip(m):
    assert mk.parse(str(m)) == m
    c = mk.combine([m, m])
    assert mk.parse(str(c)) == c


@PROPS
@given(TEXTS)
def test_parse_is_case_and_space_insensitive(text):
    assert mk.parse(text.lower().replace(" ", "  ")) == mk.parse(text)

"""Other nations' marking schemes and the equivalence table (ssafuse/data/markings.toml).

Expected handling comes from the published schemes the shipped table encodes, not from
ssafuse's output:

* UK: Cabinet Office, Government Security Classifications (2014; revised 2018, 2023): tiers
  OFFICIAL, SECRET, TOP SECRET; OFFICIAL-SENSITIVE for the more sensitive OFFICIAL; NATO / EU
  RESTRICTED is protected in the UK as OFFICIAL-SENSITIVE (so OFFICIAL-SENSITIVE is handled as
  RESTRICTED); the national caveat "UK EYES ONLY" restricts to the UK (releasable to GBR).
* NATO: C-M(2002)49 "Security within the North Atlantic Treaty Organization": NATO
  UNCLASSIFIED, NATO RESTRICTED, NATO CONFIDENTIAL, NATO SECRET, COSMIC TOP SECRET, each the
  level of the same name, NATO information for NATO members only (REL TO NATO). Members: the
  32 of nato.int "NATO member countries" (Sweden the 32nd, 7 March 2024).
* Australia: PSPF Policy 8 "Sensitive and classified information" (2018 reform): OFFICIAL,
  OFFICIAL: Sensitive, PROTECTED, SECRET, TOP SECRET; CONFIDENTIAL discontinued, PROTECTED
  handled as the stricter neighbour CONFIDENTIAL, OFFICIAL: Sensitive as RESTRICTED (never
  lower); AUSTEO = Australian Eyes Only.
* US: 32 CFR Part 2002 (CUI): banner "CUI", with limited dissemination controls NOFORN and
  REL TO; handled as RESTRICTED with the control CUI, so that it is never exported to a
  foreign partner without an explicit REL TO (the release rule, ssafuse.markings.exportable).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from ssafuse import markings as mk
from ssafuse.cli import EXIT_OK, EXIT_USAGE, main
from ssafuse.errors import MarkingError
from ssafuse.nightly import ConfigError, load_config
from ssafuse.records import read_file
from ssafuse.store import Store

from conftest import SAMPLES

M = mk.Marking
NATO = ("NATO",)
# nato.int, "NATO member countries" (32 since Sweden's accession on 7 March 2024), ISO 3166-1
# alpha-3, written out here rather than read from the table under test.
NATO_MEMBERS = {
    "ALB", "BEL", "BGR", "CAN", "HRV", "CZE", "DNK", "EST", "FIN", "FRA", "DEU", "GRC", "HUN",
    "ISL", "ITA", "LVA", "LTU", "LUX", "MNE", "NLD", "MKD", "NOR", "POL", "PRT", "ROU", "SVK",
    "SVN", "ESP", "SWE", "TUR", "GBR", "USA"}


@pytest.fixture(autouse=True)
def _shipped_table_only(monkeypatch):
    """Each test starts from the shipped table and leaves the process's table as it was."""
    monkeypatch.delenv(mk.ENV_MARKINGS, raising=False)
    previous = mk.use_equivalences(None)
    yield
    mk.use_equivalences(previous)


SCHEME_TEXTS = [
    # UK GSC
    ("OFFICIAL", M("UNCLASSIFIED")),
    ("OFFICIAL-SENSITIVE", M("RESTRICTED")),
    ("Official-Sensitive", M("RESTRICTED")),
    ("SECRET", M("SECRET")),
    ("TOP SECRET", M("TOP SECRET")),
    ("OFFICIAL-SENSITIVE UK EYES ONLY", M("RESTRICTED", ("GBR",))),
    ("SECRET UK EYES ONLY", M("SECRET", ("GBR",))),
    ("SECRET//UK EYES ONLY", M("SECRET", ("GBR",))),
    ("TOP SECRET UK EYES ONLY", M("TOP SECRET", ("GBR",))),
    # NATO C-M(2002)49
    ("NATO UNCLASSIFIED", M("UNCLASSIFIED", NATO)),
    ("NATO RESTRICTED", M("RESTRICTED", NATO)),
    ("NATO CONFIDENTIAL", M("CONFIDENTIAL", NATO)),
    ("NATO SECRET", M("SECRET", NATO)),
    ("COSMIC TOP SECRET", M("TOP SECRET", NATO)),
    ("nato  secret", M("SECRET", NATO)),
    # Australia, PSPF
    ("OFFICIAL: Sensitive", M("RESTRICTED")),
    ("OFFICIAL:Sensitive", M("RESTRICTED")),
    ("official: sensitive", M("RESTRICTED")),
    ("PROTECTED", M("CONFIDENTIAL")),
    ("Protected", M("CONFIDENTIAL")),
    ("SECRET AUSTEO", M("SECRET", ("AUS",))),
    # US CUI, 32 CFR 2002
    ("CUI", M("RESTRICTED", None, ("CUI",))),
    ("CUI//NOFORN", M("RESTRICTED", (), ("CUI", "NOFORN"))),
    ("CUI//REL TO USA, GBR", M("RESTRICTED", ("GBR", "USA"), ("CUI",))),
    # schemes with the US forms: releasability intersects (a NATO level's REL TO NATO with
    # the text's REL TO), NOFORN wins, controls are kept
    ("NATO SECRET//REL TO USA, GBR", M("SECRET", ("GBR", "USA"))),
    ("NATO CONFIDENTIAL//REL TO USA, JPN", M("CONFIDENTIAL", ("USA",))),  # JPN: not NATO
    ("NATO SECRET//NOFORN", M("SECRET", (), ("NOFORN",))),
    ("NATO SECRET//UK EYES ONLY", M("SECRET", ("GBR",))),
    ("OFFICIAL-SENSITIVE//ORCON", M("RESTRICTED", None, ("ORCON",))),
    ("PROTECTED//REL TO AUS, USA", M("CONFIDENTIAL", ("AUS", "USA"))),
]


@pytest.mark.parametrize("text, expected", SCHEME_TEXTS)
def test_scheme_marking_is_handled_as_the_published_equivalent(text, expected):
    assert mk.parse(text) == expected


@pytest.mark.parametrize("text, expected", SCHEME_TEXTS)
def test_the_canonical_form_of_a_scheme_marking_reads_back_the_same(text, expected):
    assert mk.parse(str(mk.parse(text))) == expected


def test_the_nato_group_is_the_32_members():
    assert mk.TETRAGRAPHS["NATO"] == NATO_MEMBERS
    assert len(NATO_MEMBERS) == 32
    assert mk.TETRAGRAPHS["FVEY"] == {"AUS", "CAN", "GBR", "NZL", "USA"}


_CANDIDATES = sorted(NATO_MEMBERS | {"AUS", "NZL", "JPN", "KOR"})


def _partners(rel) -> set[str] | None:
    """The partners a ``releasable_to`` list admits (``None``: no caveat)."""
    return None if rel is None else {c for c in _CANDIDATES if mk.releasable(rel, c)}


def _udl_file(path: Path, texts: list[str]) -> Path:
    """A UDL ElSet feed (the shape of sample_tles/udl_elset_sample.json), one record per
    marking text, the records otherwise those of the sample's first element set."""
    first = json.loads((SAMPLES / "udl_elset_sample.json").read_text())[0]
    path.write_text(json.dumps([dict(first, classificationMarking=t) for t in texts]))
    return path


def test_read_file_keeps_each_scheme_text_as_received(tmp_path):
    texts = [t for t, _ in SCHEME_TEXTS]
    got = read_file(_udl_file(tmp_path / "feed.json", texts), source="partner",
                    format="udl-elset")
    assert got.rejected == 0 and got.accepted == len(texts)
    el = got.elements
    assert el["marking"].to_pylist() == texts
    assert el["classification"].to_pylist() == [m.classification for _, m in SCHEME_TEXTS]
    # the same partners admitted (combined with the feed's UNCLASSIFIED, a group may be
    # stored with its members spelled out: ssafuse.markings.combine_releasability)
    assert [_partners(r) for r in el["releasable_to"].to_pylist()] == [
        _partners(m.releasable_to) for _, m in SCHEME_TEXTS]


def test_a_record_with_an_unknown_scheme_is_rejected_not_guessed(tmp_path):
    got = read_file(_udl_file(tmp_path / "feed.json", ["NATO SECRET", "DIFFUSION RESTREINTE"]),
                    source="partner", format="udl-elset")
    assert got.accepted == 1 and got.rejected == 1
    assert "DIFFUSION RESTREINTE" in got.rejects["reason"][0].as_py()


@pytest.mark.parametrize("text", [
    "DIFFUSION RESTREINTE",           # a French level: no entry in the table
    "NATO SEKRET", "COSMIC SECRET", "OFFICIAL SENSITIVE COMMERCIAL", "PROTECTED-ISH",
    "UK EYES ONLY",                    # a caveat alone states no level
    "SECRET//CANADIAN EYES ONLY", "OFFICIAL//UK EYES", "//NATO SECRET",
])
def test_unknown_schemes_and_levels_are_refused_listing_the_known(text):
    with pytest.raises(MarkingError) as e:
        mk.parse(text)
    message = str(e.value)
    if "control" not in message:
        for known in ("TOP SECRET", "OFFICIAL-SENSITIVE", "NATO SECRET", "COSMIC TOP SECRET",
                      "OFFICIAL: SENSITIVE", "PROTECTED", "CUI", "UK EYES ONLY"):
            assert known in message, known
    else:
        assert "UK EYES ONLY" in message and "NOFORN" in message


# --- the release rule and the floor with the schemes ---------------------------------------

@pytest.mark.parametrize("text, to, not_to", [
    ("NATO SECRET", ["FRA", "USA", "GBR", "TUR", "SWE"], ["JPN", "AUS", "NZL"]),
    ("NATO UNCLASSIFIED", ["DEU"], ["JPN"]),      # NATO information: not outside NATO
    ("COSMIC TOP SECRET", ["CAN"], ["AUS"]),
    ("SECRET UK EYES ONLY", ["GBR"], ["USA", "AUS"]),
    ("OFFICIAL", ["JPN", "GBR"], []),             # UNCLASSIFIED, no caveat
    ("OFFICIAL-SENSITIVE", [], ["GBR", "USA"]),   # RESTRICTED without REL TO: withheld
    ("PROTECTED", [], ["AUS", "GBR"]),
    ("CUI", [], ["GBR", "CAN"]),                  # never as if it were plain UNCLASSIFIED
    ("CUI//REL TO USA, GBR", ["GBR"], ["FRA"]),
    ("CUI//NOFORN", [], ["GBR"]),
])
def test_exportable_expands_the_groups_schemes_imply(text, to, not_to):
    m = mk.parse(text)
    for code in to:
        assert mk.exportable(m.classification, m.releasable_to, code), code
    for code in not_to:
        assert not mk.exportable(m.classification, m.releasable_to, code), code


def test_releasable_mask_over_a_table_of_nato_records():
    marks = [mk.parse(t) for t in ("NATO SECRET", "NATO SECRET//REL TO USA", "OFFICIAL")]
    table = pa.table({
        "classification": [m.classification for m in marks],
        "releasable_to": pa.array([None if m.releasable_to is None else list(m.releasable_to)
                                   for m in marks], pa.list_(pa.string()))})
    assert mk.releasable_mask(table, "FRA") == [True, False, True]
    assert mk.releasable_mask(table, "JPN") == [False, False, True]


def test_the_feeds_marking_stays_a_floor_with_the_schemes():
    feed = mk.parse("NATO SECRET")
    m, text = mk.apply_default("OFFICIAL", feed)
    assert m.classification == "SECRET" and mk.parse(text) == m  # the text never says less
    assert all(m.releasable(code) for code in NATO_MEMBERS)     # still REL TO NATO ...
    assert not m.releasable("JPN") and not m.releasable("AUS")  # ... and nothing wider
    assert mk.lowers("OFFICIAL", feed)
    # a record may raise the level and narrow releasability within the feed's
    m, _ = mk.apply_default("COSMIC TOP SECRET//REL TO USA, FRA", feed)
    assert m == M("TOP SECRET", ("FRA", "USA"))
    m, _ = mk.apply_default("SECRET UK EYES ONLY", mk.parse("NATO RESTRICTED"))
    assert m == M("SECRET", ("GBR",))
    # a NATO record in a USA/GBR feed is releasable to the two only
    m, _ = mk.apply_default("NATO CONFIDENTIAL", mk.parse("SECRET//REL TO USA, GBR"))
    assert m == M("SECRET", ("GBR", "USA"))
    assert mk.lowers("NATO CONFIDENTIAL", mk.parse("SECRET//REL TO USA, GBR"))


# --- a table of one's own ------------------------------------------------------------------

def _table(tmp_path: Path, text: str, name: str = "mine.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MINE = """
# handle Australian PROTECTED as SECRET, and read a local scheme
[markings."PROTECTED"]
handled_as = "SECRET"
schemes = ["AUS"]

[markings."LOCAL CONFIDENTIAL"]
handled_as = "CONFIDENTIAL"
releasable_to = ["FVEY"]
schemes = ["LOCAL"]
"""


def test_a_users_table_overrides_one_default_and_keeps_the_rest(tmp_path):
    mine = mk.load_equivalences(_table(tmp_path, MINE))
    assert mk.parse("PROTECTED", mine) == M("SECRET")
    assert mk.parse("Local Confidential", mine) == M("CONFIDENTIAL", ("FVEY",))
    assert mk.parse("NATO SECRET", mine) == M("SECRET", NATO)         # defaults kept
    assert mk.parse("PROTECTED") == M("CONFIDENTIAL")                  # not active yet
    assert mine.digest != mk.default_equivalences().digest


def test_use_equivalences_makes_a_table_active_and_gives_back_the_previous(tmp_path):
    path = _table(tmp_path, MINE)
    previous = mk.use_equivalences(path)
    assert mk.parse("PROTECTED") == M("SECRET")
    assert mk.use_equivalences(previous).source == str(path)
    assert mk.parse("PROTECTED") == M("CONFIDENTIAL")


def test_the_environment_variable_names_the_table_read_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv(mk.ENV_MARKINGS, str(_table(tmp_path, MINE)))
    mk.use_equivalences(None)
    assert mk.parse("PROTECTED") == M("SECRET")
    monkeypatch.setenv(mk.ENV_MARKINGS, str(tmp_path / "absent.toml"))
    assert mk.parse("PROTECTED") == M("SECRET")   # read once, not per call
    mk.use_equivalences(None)
    with pytest.raises(MarkingError) as e:
        mk.parse("PROTECTED")
    assert mk.ENV_MARKINGS in str(e.value) and "absent.toml" in str(e.value)


def test_a_group_redefined_in_a_users_table_changes_release(tmp_path):
    mk.use_equivalences(_table(tmp_path, '[groups]\nNATO = ["FRA", "USA"]\n'))
    m = mk.parse("NATO SECRET")
    assert mk.exportable(m.classification, m.releasable_to, "FRA")
    assert not mk.exportable(m.classification, m.releasable_to, "DEU")
    assert mk.TETRAGRAPHS["NATO"] == {"FRA", "USA"}


def test_a_table_that_does_not_inherit_reads_only_its_own(tmp_path):
    only = mk.load_equivalences(_table(tmp_path, 'inherit = false\n[markings."OFFICIAL"]\n'
                                                 'handled_as = "UNCLASSIFIED"\n'))
    assert mk.parse("OFFICIAL", only) == M("UNCLASSIFIED")
    assert mk.parse("S//REL TO USA", only) == M("SECRET", ("USA",))  # built-in forms stay
    with pytest.raises(MarkingError):
        mk.parse("NATO SECRET", only)


@pytest.mark.parametrize("text, key", [
    ('[markings."PROTECTED"]\nhandled_as = "SECRETISH"\n', 'markings.PROTECTED.handled_as'),
    ('[markings."PROTECTED"]\nhandled_like = "SECRET"\n', 'markings.PROTECTED'),
    ('[markings."LOCAL"]\nschemes = ["X"]\n', 'markings.LOCAL.handled_as'),
    ('[markings."LOCAL"]\nhandled_as = "SECRET"\nreleasable_to = ["NARNIA"]\n',
     "markings.LOCAL.releasable_to"),
    ('[markings."LOCAL"]\nhandled_as = "SECRET"\ncontrols = ["NOFORN"]\n',
     "markings.LOCAL.controls"),
    ('[markings."SECRET"]\nhandled_as = "TOP SECRET"\n', 'markings.SECRET'),
    ('[markings."NATO SECRET"]\nhandled_as = "SECRET"\n[markings."nato  secret"]\n'
     'handled_as = "SECRET"\n', 'markings."nato  secret"'),
    ('[caveats."CAN EYES ONLY"]\nschemes = ["CAN"]\n', 'caveats."CAN EYES ONLY"'),
    ('[caveats."ORCON"]\nreleasable_to = ["USA"]\n', "caveats.ORCON"),
    ('[groups]\nNATO = []\n', "groups.NATO"),
    ('[groups]\nEU = ["FRA"]\n', "groups.EU"),
    ('marking = 1\n', "top level"),
    ('inherit = "yes"\n', "inherit"),
    ('format = 2\n', "format"),
    ('inherit = false\n[markings."NATO SECRET"]\nhandled_as = "SECRET"\n'
     'releasable_to = ["NATO"]\n', '"NATO SECRET".releasable_to'),
])
def test_a_malformed_table_is_refused_naming_the_key(tmp_path, text, key):
    path = _table(tmp_path, text)
    with pytest.raises(MarkingError) as e:
        mk.load_equivalences(path)
    assert key in str(e.value) and str(path) in str(e.value)


def test_a_table_that_is_not_toml_or_absent_is_refused_naming_the_file(tmp_path):
    with pytest.raises(MarkingError, match="not valid TOML"):
        mk.load_equivalences(_table(tmp_path, "[markings\n"))
    with pytest.raises(MarkingError, match="absent.toml"):
        mk.use_equivalences(tmp_path / "absent.toml")
    assert mk.parse("PROTECTED") == M("CONFIDENTIAL")  # a refused table is not made active


def test_a_table_travels_to_worker_processes_intact(tmp_path):
    mine = mk.load_equivalences(_table(tmp_path, MINE))
    again = pickle.loads(pickle.dumps(mine))
    assert again.digest == mine.digest and mk.parse("PROTECTED", again) == M("SECRET")


# --- wiring: the command line and the nightly configuration --------------------------------

def test_cli_markings_option_activates_a_users_table(tmp_path):
    feed = str(_udl_file(tmp_path / "feed.json", ["LOCAL CONFIDENTIAL"]))
    runner = CliRunner()
    args = ["ingest", feed, "--store", str(tmp_path / "store"), "--format", "udl-elset"]
    unknown = runner.invoke(main, args)   # the record's marking is unknown: rejected
    assert unknown.exit_code == EXIT_OK and "0 accepted" in unknown.output
    bad = runner.invoke(main, [*args, "--markings",
                               str(_table(tmp_path, 'format = 9\n', "bad.toml"))])
    assert bad.exit_code == EXIT_USAGE and "format" in bad.output
    ok = runner.invoke(main, [*args, "--source", "again", "--markings",
                              str(_table(tmp_path, MINE))])
    assert ok.exit_code == EXIT_OK and "1 accepted" in ok.output, ok.output
    el = Store(tmp_path / "store").table("elements", filter=None)
    kept = el.filter(pc.equal(el["source"], "again"))
    assert kept["classification"].to_pylist() == ["CONFIDENTIAL"]
    assert kept["marking"].to_pylist() == ["LOCAL CONFIDENTIAL"]


def _config(tmp_path: Path, markings: str = "", marking: str = "NATO SECRET") -> Path:
    path = tmp_path / "nightly.toml"
    path.write_text(f'store = "store"\n{markings}\n[[feeds]]\nsource = "nato"\n'
                    f'paths = ["feed.json"]\nmarking = "{marking}"\n')
    return path


def test_nightly_config_names_the_table_and_its_digest_joins_the_settings(tmp_path):
    _table(tmp_path, MINE)
    plain = load_config(_config(tmp_path))
    assert "markings" not in plain.settings()   # the shipped table: run ids unchanged
    cfg = load_config(_config(tmp_path, '[markings]\nequivalences = "mine.toml"\n',
                              marking="LOCAL CONFIDENTIAL"))
    assert cfg.equivalences.source == str(tmp_path / "mine.toml")
    assert mk.parse("PROTECTED", cfg.equivalences) == M("SECRET")
    assert cfg.settings()["markings"] == {"equivalences_sha256": cfg.equivalences.digest}
    assert cfg.settings_hash() != plain.settings_hash()
    # the feed's marking was checked with the config's table, not the process's
    with pytest.raises(ConfigError, match="LOCAL CONFIDENTIAL"):
        load_config(_config(tmp_path, marking="LOCAL CONFIDENTIAL"))


@pytest.mark.parametrize("markings, says", [
    ('[markings]\nequivalence = "mine.toml"\n', "unknown key"),
    ('[markings]\nequivalences = "absent.toml"\n', "markings.equivalences"),
    ('[markings]\nequivalences = "bad.toml"\n', "markings.PROTECTED.handled_as"),
    ('[markings]\nequivalences = 3\n', "markings.equivalences"),
])
def test_nightly_config_refuses_a_bad_markings_table(tmp_path, markings, says):
    _table(tmp_path, '[markings."PROTECTED"]\nhandled_as = "SECRETISH"\n', "bad.toml")
    with pytest.raises(ConfigError) as e:
        load_config(_config(tmp_path, markings))
    assert says in str(e.value) and "nightly.toml" in str(e.value)


def test_an_export_made_later_reads_markings_with_the_runs_table(tmp_path):
    # the operator's table says FVEY releases go to USA and GBR only; a feed REL TO FVEY
    # reaches AUS in no export, also one made by hand later without naming the table
    from _run_helpers import run_cli, run_dir
    _table(tmp_path, '[groups]\nFVEY = ["USA", "GBR"]\n', "policy.toml")
    cfg = tmp_path / "nightly.toml"
    cfg.write_text(
        f'store = "store"\n[markings]\nequivalences = "policy.toml"\n'
        f'[[feeds]]\nsource = "partner"\npaths = ["{SAMPLES / "udl_elset_sample.json"}"]\n'
        f'format = "udl-elset"\nmarking = "UNCLASSIFIED//REL TO FVEY"\n'
        f'[screen]\nstart = "2026-03-10T00:00:00Z"\ndays = 0.25\nthreshold_km = 200.0\n'
        f'workers = 1\nmax_epoch_gap_days = 365\n'  # (the sample's sets are of 2025-05)
        f'[exports]\nrelease_to = ["AUS"]\n')
    done = run_cli(cfg)
    assert done.returncode == 0, done.stdout + done.stderr
    rd = run_dir(tmp_path / "store")
    assert json.loads((rd / "exports" / "AUS" / "export.json").read_text())[
        "exported"]["catalogue"] == 0
    args = ["export", "--release-to", "AUS", "--run", str(rd), "--out", str(tmp_path / "aus")]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == EXIT_USAGE and "--markings" in refused.output, refused.output
    assert not (tmp_path / "aus" / "catalogue.parquet").exists()
    ok = CliRunner().invoke(main, [*args, "--markings", str(tmp_path / "policy.toml")])
    assert ok.exit_code == EXIT_OK, ok.output
    assert json.loads((tmp_path / "aus" / "export.json").read_text())[
        "exported"]["catalogue"] == 0

"""Shadow comparison: field-by-field diffs of two answers, rules, and that no PNR leaks."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpr_mainframe.register.generate import persons
from gateway.codec import LogonAnswer, LookupAnswer, Record, seal
from gateway.codec.fields import Value
from gateway.codec.messages import LookupRequest
from gateway.codec.records import LAYOUTS
from gateway.comparison import FieldKey, KeyPattern, Normaliser, Rules
from gateway.errors import ConfigError
from gateway.model import Family, FejlNr, Irregular
from gateway.render import AddressStyle, Task, render_answer
from gateway.shadow.compare import PLACEHOLDER, Comparison, compare
from gateway.shadow.pseudonym import Pseudonymiser

PNR = "0101601234"  # synthetic
OTHER_PNR = "0202702345"  # synthetic
REQUEST = LookupRequest("PRIV", "0002", "Tk3nAbCd", "DEMO0002", PNR)
TODAY = dt.date(2026, 1, 1)
PERSONS = list(persons(40, seed=7))
HISTORIC = Task()
PNR_RUN = re.compile(r"(?<!\d)\d{6}-?\d{4}(?!\d)")


def _start(day: dt.date = TODAY) -> Record:
    return Record(
        "000", {"PNR": "0" * 10, "OPGAVENR": "000201", "PRODDTO": day, "FORRIGE_PRODDTO": None}
    )


def _answer(
    records: Sequence[Record],
    family: Family = Family.PRIV,
    fejlnr: FejlNr = FejlNr.OK,
    token: str = "Tk3nAbCd",
) -> bytes:
    sealed = seal([_start(), *records], family) if records else ()
    answer = LookupAnswer(REQUEST.customer, "0", "6", token, REQUEST.user, fejlnr, sealed)
    return answer.encode(family)


def _person(**fields: Value) -> Record:
    return Record("001", {"PNR": PNR, "KOEN": "K", "STATUS": "01", **fields})


def _has_pnr(text: str) -> bool:
    """True when ``text`` holds a 10-digit run whose first six digits are a day (+ 60 or not)."""
    for found in PNR_RUN.finditer(text):
        digits = found[0].replace("-", "")
        day = int(digits[0:2])
        try:
            dt.date(2000, int(digits[2:4]), day - 60 if day > 60 else day)
        except ValueError:
            continue
        return True
    return False


def _keys(comparison: Comparison) -> set[str]:
    return {str(key) for key in comparison.keys}


def _diffs(comparison: Comparison) -> dict[str, tuple[str, str]]:
    return {str(d.key): (d.primary, d.candidate) for d in comparison.diffs}


def _rendered(index: int, family: Family, task: Task = HISTORIC) -> bytes:
    records = render_answer(PERSONS[index], family, task, 2, TODAY)
    return LookupAnswer.for_request(REQUEST, FejlNr.OK, records).encode(family)


def test_identical_answers_match_and_every_field_is_a_key() -> None:
    """Equal answers match; keys are DECODE, FEJLNR, presence of each type and every field."""
    data = _answer([_person(STANDARDADR="Boulevarden 8A,1 tv")])
    result = compare("lookup", Family.PRIV, data, data)
    assert result.matches and result.diffs == () and result.operation == "lookup"
    fields = {f"lookup / 001 / {s.name}" for s in LAYOUTS[Family.PRIV]["001"].fields}
    presence = {f"lookup / set / {t}" for t in LAYOUTS[Family.PRIV]}
    assert fields - {"lookup / 001 / RECTYPE"} <= _keys(result)
    assert presence | {"lookup / hdr / DECODE", "lookup / hdr / FEJLNR"} <= _keys(result)
    assert "lookup / 001 / RECTYPE" not in _keys(result)
    assert len(result.keys) == len(set(result.keys))


def test_a_changed_field_is_one_diff_with_both_display_values() -> None:
    """STANDARDADR in the 2023 style is a diff on exactly that key, values shown as text."""
    primary = _answer([_person(STANDARDADR="Boulevarden 8A,1 tv", POSTNR=800)])
    candidate = _answer([_person(STANDARDADR="Boulevarden 8A, 1. tv", POSTNR=800)])
    result = compare("lookup", Family.PRIV, primary, candidate)
    assert _diffs(result) == {
        "lookup / 001 / STANDARDADR": ("Boulevarden 8A,1 tv", "Boulevarden 8A, 1. tv")
    }
    assert str(result.diffs[0].key) == "lookup / 001 / STANDARDADR"


def test_dates_and_stamps_display_as_iso_text() -> None:
    """A YYYYMMDDHHMM stamp shows as 2020-01-02T10:30; an absent one as empty text."""
    primary = _answer([_person(TILFLYDTO=dt.datetime(2020, 1, 2, 10, 30))])
    candidate = _answer([_person(TILFLYDTO=None)])
    result = compare("lookup", Family.PRIV, primary, candidate)
    assert _diffs(result) == {"lookup / 001 / TILFLYDTO": ("2020-01-02T10:30", "")}


def test_header_echo_fields_are_not_compared() -> None:
    """Tokens (and the other echo fields) differ between sides by design: no diff, no key."""
    records = [_person()]
    result = compare(
        "lookup", Family.PRIV, _answer(records, token="AAAAAAAA"), _answer(records, token="BBBB")
    )
    assert result.matches
    assert not any(key.field in {"TOKEN", "KUNDENR", "BRUGER_ID"} for key in result.keys)


def test_fejlnr_and_presence_differ_when_one_side_has_no_person() -> None:
    """A 05 against a full answer: FEJLNR differs and the record counts differ."""
    primary = _answer([_person()])
    candidate = _answer([], fejlnr=FejlNr.PNR_UNKNOWN)
    diffs = _diffs(compare("lookup", Family.PRIV, primary, candidate))
    assert diffs["lookup / hdr / FEJLNR"] == ("00", "05")
    assert diffs["lookup / set / 001"] == ("1", "0")
    assert diffs["lookup / set / 000"] == ("1", "0")
    assert not any(key.startswith("lookup / 001 /") for key in diffs)


def test_a_missing_record_type_is_a_presence_diff_and_its_fields_are_not_keys() -> None:
    """A dropped 050 shows as set / 050 (1 vs 0) and the 999 counter; 050 fields are not sampled."""
    warning = Record("050", {"PNR": PNR, "KREDITADVTYPE": "0005"})
    result = compare("lookup", Family.PRIV, _answer([_person(), warning]), _answer([_person()]))
    assert _diffs(result) == {"lookup / set / 050": ("1", "0"), "lookup / 999 / ANTAL": ("2", "1")}
    assert not any(key.record == "050" for key in result.keys)


def test_repeated_records_pair_by_position_and_count_once_per_key() -> None:
    """Children are paired in order; a swapped child is one diff on BARN_PNR, keyed once."""
    kids = ["0101101234", "0202124567", "0303143456"]
    left = [Record("014", {"PNR": PNR, "BARN_PNR": kid}) for kid in kids]
    right = [Record("014", {"PNR": PNR, "BARN_PNR": kid}) for kid in [kids[0], kids[2], kids[1]]]
    result = compare("lookup", Family.OFF4, _answer(left, Family.OFF4), _answer(right, Family.OFF4))
    assert _diffs(result) == {"lookup / 014 / BARN_PNR": (PLACEHOLDER, PLACEHOLDER)}
    assert [str(k) for k in result.keys].count("lookup / 014 / BARN_PNR") == 1


def test_pnr_fields_go_through_redact_and_blank_or_zero_pnrs_stay() -> None:
    """PNRs become pseudonyms; "0000000000" (unknown parent) and blanks are no PNR and stay."""
    pseudonym = Pseudonymiser(b"k" * 32).pnr
    left = Record("015", {"PNR": PNR, "PNRMOR": OTHER_PNR, "PNRFAR": "0000000000"})
    right = Record("015", {"PNR": PNR, "PNRMOR": "0000000000", "PNRFAR": "0303143456"})
    result = compare(
        "lookup", Family.OFF4, _answer([left], Family.OFF4), _answer([right], Family.OFF4),
        redact=pseudonym,
    )  # fmt: skip
    assert _diffs(result) == {
        "lookup / 015 / PNRMOR": (pseudonym(OTHER_PNR), "0000000000"),
        "lookup / 015 / PNRFAR": ("0000000000", pseudonym("0303143456")),
    }


def test_a_pnr_field_is_redacted_even_when_it_is_not_date_shaped() -> None:
    """PNRGAELD holds a PNR by name: redacted whatever its digits look like."""
    result = compare(
        "lookup", Family.PRIV, _answer([_person(PNRGAELD="9999991234")]),
        _answer([_person(PNRGAELD="")]),
    )  # fmt: skip
    assert _diffs(result) == {"lookup / 001 / PNRGAELD": (PLACEHOLDER, "")}


def test_a_pnr_inside_free_text_is_redacted() -> None:
    """A date-shaped 10-digit run (hyphen or not, day + 60 too) in any text field is redacted."""
    left = Record("011", {"PNR": PNR, "KUNDEREF1": "ref 010160-1234", "KUNDEREF2": "6101601234"})
    right = Record("011", {"PNR": PNR, "KUNDEREF1": "ref 0101601234", "KUNDEREF2": "1234567890"})
    result = compare("lookup", Family.PRIV, _answer([left]), _answer([right]))
    assert _diffs(result) == {
        "lookup / 011 / KUNDEREF1": (f"ref {PLACEHOLDER}", f"ref {PLACEHOLDER}"),
        "lookup / 011 / KUNDEREF2": (PLACEHOLDER, "1234567890"),
    }


def test_an_undecodable_answer_is_a_decode_diff_not_an_exception() -> None:
    """Bad bytes on one side: one diff on hdr / DECODE, nothing else compared."""
    good = _answer([_person()])
    result = compare("lookup", Family.PRIV, good, good[:-5])
    assert _keys(result) == {"lookup / hdr / DECODE"}
    (diff,) = result.diffs
    assert diff.primary == "ok" and diff.candidate.startswith("undecodable: ")


def test_logon_answers_compare_fejlnr_only() -> None:
    """Logon answers: tokens differ by design; a different FEJLNR is the one diff."""
    ok = LogonAnswer("0002", "DEMO0002", FejlNr.OK, "Ab3dEf7H").encode()
    ok_other = LogonAnswer("0002", "DEMO0002", FejlNr.OK, "Zz9yXw8V").encode()
    bad = LogonAnswer("0002", "DEMO0002", FejlNr.BAD_CREDENTIALS).encode()
    assert compare("logon", Family.PRIV, ok, ok_other).matches
    result = compare("logon", Family.PRIV, ok, bad)
    assert _keys(result) == {"logon / hdr / DECODE", "logon / hdr / FEJLNR"}
    assert _diffs(result) == {"logon / hdr / FEJLNR": ("00", "01")}


def test_ignored_keys_are_neither_compared_nor_counted() -> None:
    """An ignore glob removes the keys it matches from keys and diffs alike."""
    rules = Rules.from_mapping({"ignore": ["lookup / 000 / PRODDTO", "* / 001 / *"]}, "compare")
    primary = _answer([_person(STANDARDADR="A")])
    candidate = LookupAnswer.decode(_answer([_person(STANDARDADR="B")]), Family.PRIV)
    shifted = (Record("000", {**candidate.records[0].fields, "PRODDTO": TODAY.replace(day=2)}),)
    records = shifted + candidate.records[1:]
    later = LookupAnswer.for_request(REQUEST, FejlNr.OK, records).encode(Family.PRIV)
    result = compare("lookup", Family.PRIV, primary, later, rules)
    assert result.matches
    assert not any(k.record == "001" or k.field == "PRODDTO" for k in result.keys)
    assert "lookup / set / 001" in _keys(result)


@pytest.mark.parametrize(
    ("names", "left", "right"),
    [
        (["trim"], "Boulevarden 8A", "  Boulevarden 8A"),
        (["casefold"], "BOULEVARDEN", "boulevarden"),
        (["collapse_spaces"], "Boulevarden  8A", "Boulevarden 8A"),
        (["trim", "casefold"], " ÆBLEVEJ", "æblevej"),
    ],
)
def test_normalisers_make_equivalent_values_match(names: list[str], left: str, right: str) -> None:
    """Each normaliser (and a chain of them) makes the values it is for compare equal."""
    rules = Rules.from_mapping({"normalise": {"lookup / 001 / STANDARDADR": names}}, "c")
    result = compare(
        "lookup", Family.PRIV, _answer([_person(STANDARDADR=left)]),
        _answer([_person(STANDARDADR=right)]), rules,
    )  # fmt: skip
    assert result.matches and "lookup / 001 / STANDARDADR" in _keys(result)
    assert not compare(
        "lookup", Family.PRIV, _answer([_person(STANDARDADR=left)]),
        _answer([_person(STANDARDADR=right)]),
    ).matches  # fmt: skip


def test_date_only_keeps_the_day_of_a_stamp_and_diffs_show_raw_values() -> None:
    """date_only hides a time-of-day change but not a day change; diffs show the raw values."""
    rules = Rules.from_mapping({"normalise": {"* / * / TILFLYDTO": ["date_only"]}}, "c")
    at = dt.datetime(2020, 1, 2, 10, 30)
    same_day = compare(
        "lookup", Family.PRIV, _answer([_person(TILFLYDTO=at)]),
        _answer([_person(TILFLYDTO=at.replace(hour=12))]), rules,
    )  # fmt: skip
    next_day = compare(
        "lookup", Family.PRIV, _answer([_person(TILFLYDTO=at)]),
        _answer([_person(TILFLYDTO=at.replace(day=3))]), rules,
    )  # fmt: skip
    assert same_day.matches
    assert _diffs(next_day) == {
        "lookup / 001 / TILFLYDTO": ("2020-01-02T10:30", "2020-01-03T10:30")
    }


def test_rules_from_mapping_reads_globs_and_normalisers() -> None:
    """The YAML shape becomes patterns and normalisers, in order."""
    rules = Rules.from_mapping(
        {
            "ignore": ["lookup / 000 / PRODDTO", "lookup / 011 / *"],
            "normalise": {"lookup / 001 / STANDARDADR": ["trim", "casefold"]},
        },
        "routes[0].compare",
    )
    assert rules.ignore == (
        KeyPattern("lookup", "000", "PRODDTO"),
        KeyPattern("lookup", "011", "*"),
    )
    key = FieldKey("lookup", "001", "STANDARDADR")
    assert rules.normalisers(key) == (Normaliser.TRIM, Normaliser.CASEFOLD)
    assert rules.ignores(FieldKey("lookup", "011", "KUNDEREF1"))
    assert not rules.ignores(key)
    assert Rules.from_mapping(None, "x") == Rules()


def test_rules_from_mapping_names_every_problem_by_path() -> None:
    """Bad keys, globs, typos and normaliser names are all reported with their YAML path."""
    raw = {
        "ignore": ["lookup / 001", "lookup / 001 / standardadr", 7],
        "normalise": {"lookup / 001 / ADRNVN": ["trim", "lower"], "* / * / BYNVN": []},
        "extra": 1,
    }
    with pytest.raises(ConfigError) as caught:
        Rules.from_mapping(raw, "routes[1].compare")
    problems = caught.value.problems
    assert problems[0] == "routes[1].compare.extra: unknown key (expected ignore, normalise)"
    assert any(p.startswith("routes[1].compare.ignore[0]: ") for p in problems)
    assert any(
        p.startswith("routes[1].compare.ignore[1]: ") and "matches no field" in p for p in problems
    )
    assert any(p.startswith("routes[1].compare.ignore[2]: ") for p in problems)
    assert any("ADRNVN'][1]: unknown normaliser 'lower'" in p for p in problems)
    assert any("BYNVN']: expected a non-empty list" in p for p in problems)
    assert len(problems) == 6
    with pytest.raises(ConfigError, match=r"^routes\[1\]\.compare: expected a mapping"):
        Rules.from_mapping(["x"], "routes[1].compare")


@settings(max_examples=40, deadline=None)
@given(index=st.integers(0, len(PERSONS) - 1), family=st.sampled_from(list(Family)))
def test_an_answer_always_matches_itself(index: int, family: Family) -> None:
    """Any rendered answer compared with itself matches, whatever records it holds."""
    data = _rendered(index, family)
    assert compare("lookup", family, data, data).matches


@settings(max_examples=40, deadline=None)
@given(index=st.integers(0, len(PERSONS) - 1), family=st.sampled_from(list(Family)))
def test_a_style_change_only_ever_touches_standardadr(index: int, family: Family) -> None:
    """The 2023 address style differs from the historic one in STANDARDADR and nowhere else."""
    task = Task(address_style=AddressStyle.STYLE_2023)
    result = compare("lookup", family, _rendered(index, family), _rendered(index, family, task))
    assert {d.key.field for d in result.diffs} <= {"STANDARDADR"}


@settings(max_examples=60, deadline=None)
@given(
    index=st.integers(0, len(PERSONS) - 1),
    left=st.integers(0, len(PERSONS) - 1),
    family=st.sampled_from(list(Family)),
)
def test_no_clear_pnr_ever_reaches_a_diff(index: int, left: int, family: Family) -> None:
    """Comparing two different persons yields many diffs, none holding a date-shaped PNR."""
    result = compare("lookup", family, _rendered(left, family), _rendered(index, family))
    assert left == index or result.diffs
    for diff in result.diffs:
        assert not _has_pnr(diff.primary) and not _has_pnr(diff.candidate)


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=400), operation=st.sampled_from(["lookup", "logon"]))
def test_arbitrary_bytes_never_raise(junk: bytes, operation: str) -> None:
    """Whatever a backend sends, compare returns a Comparison (a DECODE diff at worst)."""
    good = (
        _answer([_person()])
        if operation == "lookup"
        else LogonAnswer("0002", "DEMO0002", FejlNr.OK, "Ab3dEf7H").encode()
    )
    result = compare(operation, Family.PRIV, good, junk)
    assert isinstance(result, Comparison)
    assert all(not _has_pnr(d.primary + d.candidate) for d in result.diffs)


def test_blank_against_zero_is_a_difference_on_that_field_shown_as_what_it_is() -> None:
    """Spec §10: the mainframe's blank POSTNR and the candidate's 0000 are different values;
    the diff names the field and shows the blank as blank, nothing else differs."""
    primary = _answer([_person(POSTNR=Irregular("    "), KOMKOD=101)])
    candidate = _answer([_person(POSTNR=0, KOMKOD=101)])
    result = compare("lookup", Family.PRIV, primary, candidate)
    assert [(d.key.record, d.key.field, d.primary, d.candidate) for d in result.diffs] == [
        ("001", "POSTNR", "'    ' (blank)", "0")
    ]


def test_different_impossible_parts_differ_and_equal_ones_match() -> None:
    """Minute 99 against minute 98 is a difference on that field; the same irregular bytes
    on both sides are no difference at all."""

    def stamp(text: str) -> bytes:
        return _answer([_person(TILFLYDTO=Irregular(text))])

    assert compare("lookup", Family.PRIV, stamp("201201011299"), stamp("201201011299")).matches
    result = compare("lookup", Family.PRIV, stamp("201201011299"), stamp("201201011298"))
    assert [(d.key.field, d.primary) for d in result.diffs] == [
        ("TILFLYDTO", "'201201011299' (no calendar value)")
    ]


def test_records_after_an_error_number_are_compared_field_by_field() -> None:
    """An answer whose FEJLNR is not 00 may carry records (spec §10): they are compared too."""
    primary = _answer([_person(POSTNR=800)], fejlnr=FejlNr.PNR_UNKNOWN)
    candidate = _answer([_person(POSTNR=801)], fejlnr=FejlNr.PNR_UNKNOWN)
    result = compare("lookup", Family.PRIV, primary, candidate)
    assert [(d.key.record, d.key.field) for d in result.diffs] == [("001", "POSTNR")]

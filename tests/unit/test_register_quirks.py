"""The register's mainframe quirks (spec §10): produced at the share asked for, served as
stored, and carried by the modern side to the same bytes."""

from __future__ import annotations

import collections
import re
from dataclasses import replace
from functools import cache

import pytest

from cpr_mainframe.register import quirks
from cpr_mainframe.register.draw import REGISTER_DATE
from cpr_mainframe.register.generate import persons
from gateway.codec import LAYOUTS, LookupAnswer, decode_records
from gateway.codec.headers import MAX_DATA_LENGTH
from gateway.cprv1 import convert
from gateway.cprv1.pb.cpr.v1 import person_pb2
from gateway.domain.person import Person
from gateway.model import Family, FejlNr, Irregular
from gateway.render import Task, off4, priv, render_answer
from gateway.render.address import name_hidden

COUNT = 4000
TODAY = REGISTER_DATE.date()


@cache
def register(share: float = quirks.DEFAULT_SHARE) -> tuple[Person, ...]:
    """A 4,000-person register with quirks on ``share`` of it."""
    return tuple(quirks.apply(persons(COUNT, seed=1), seed=1, share=share))


def _kinds(people: tuple[Person, ...]) -> collections.Counter[str]:
    return collections.Counter(kind for p in people for kind in quirks.kinds_of(p))


def _answer(person: Person, family: Family) -> bytes:
    """The data part of the emulator's answer for ``person`` (it renders with this renderer)."""
    records = render_answer(person, family, Task(), 1234, TODAY)
    answer = LookupAnswer("1234", "0", "6", "Tk3nAbCd", "WXYZ0001", FejlNr.OK, records)
    return answer.encode(family)[28:]


def test_quirks_land_on_about_the_share_asked_for() -> None:
    """Every kind occurs, and the quirky persons are a few percent, as configured."""
    kinds = _kinds(register())
    assert set(kinds) >= {"blank_address", "no_address"}
    quirky = sum(1 for p in register() if quirks.kinds_of(p))
    assert 0.015 * COUNT < quirky < 0.045 * COUNT
    assert not _kinds(register(0.0))
    assert sum(1 for p in register(0.2) if quirks.kinds_of(p)) > 0.15 * COUNT


def test_the_same_seed_gives_the_same_quirks_and_the_rest_is_untouched() -> None:
    """Quirks are deterministic by seed; persons without one equal the plain register's."""
    again = tuple(quirks.apply(persons(COUNT, seed=1), seed=1))
    assert again == register()
    for quirky, plain in zip(register(), register(0.0), strict=True):
        assert quirky.pnr == plain.pnr
        if not quirks.kinds_of(quirky):
            assert quirky == plain


def test_a_share_outside_zero_to_one_is_refused() -> None:
    """The share is a fraction of persons."""
    with pytest.raises(ValueError, match="share"):
        list(quirks.apply(persons(1), seed=1, share=1.5))


def test_blank_address_fields_are_blank_on_the_wire_in_both_families() -> None:
    """A blank post code, municipality, road code or move-in time is spaces, never zeros."""
    checked = 0
    for person in register(0.5):  # six kinds share the quirky persons
        if not quirks.kinds_of(person) & {"blank_address", "no_address"}:
            continue
        if name_hidden(person, Task(), TODAY):  # protection blanks the block to zeros
            continue
        a = person.address
        assert a is not None
        priv = _fields(person, Family.PRIV, "001")
        off4 = _fields(person, Family.OFF4, "003")
        for model, name in ((a.post_code, "POSTNR"), (a.municipality, "KOMKOD")):
            if isinstance(model, Irregular):
                assert priv[name] == off4[name] == Irregular("    ")
        if isinstance(a.moved_in, Irregular) and a.moved_in.reason == "blank":
            assert priv["TILFLYDTO"] == _fields(person, Family.OFF4, "002")["TILFLYDTO"]
            assert priv["TILFLYDTO"] == Irregular(" " * 12)
        checked += 1
    assert checked > 50


def test_blank_relation_pnrs_are_blank_in_off4() -> None:
    """An unknown spouse or parent the quirk blanks is ten spaces in 012 / 015."""
    blanked = [p for p in register(0.5) if "blank_relation" in quirks.kinds_of(p)]
    assert blanked
    for person in blanked:
        records = decode_records(_answer(person, Family.OFF4), Family.OFF4)
        values = [v for r in records if r.type in ("012", "015") for v in r.fields.values()]
        assert Irregular(" " * 10) in values


def test_quirky_persons_survive_json_and_give_the_same_bytes_on_the_modern_side() -> None:
    """JSON and cpr.v1 round trips keep every quirk: both families render byte for byte."""
    for person in register(0.5):
        if not quirks.kinds_of(person):
            continue
        assert Person.from_json(person.to_json()) == person
        wire = convert.to_proto(person).SerializeToString()
        modern = convert.to_person(person_pb2.Person.FromString(wire))
        assert modern == person
        for family in Family:
            assert _answer(modern, family) == _answer(person, family)


def _fields(person: Person, family: Family, rectype: str) -> dict[str, object]:
    records = decode_records(_answer(person, family), family)
    (record,) = [r for r in records if r.type == rectype]
    return dict(record.fields)


def test_blank_is_not_zero_and_not_absent() -> None:
    """Irregular("    "), 0 and None are three different post codes after a round trip."""
    base = next(p for p in register(0.0) if p.address is not None)
    assert base.address is not None
    for code in (0, 1234, Irregular("    ")):
        person = _with_post_code(base, code)
        assert convert.to_person(convert.to_proto(person)).address == person.address
        assert Person.from_json(person.to_json()).address == person.address


def _with_post_code(person: Person, code: int | Irregular) -> Person:
    assert person.address is not None
    return replace(person, address=replace(person.address, post_code=code))


def test_impossible_date_time_parts_are_served_as_stored_in_both_families() -> None:
    """Minute 99, hour 25, day or month 00: the answer carries the very characters."""
    found = 0
    for person in register(0.5):
        if "impossible_stamp" not in quirks.kinds_of(person):
            continue
        a, civil = person.address, person.civil
        hidden = name_hidden(person, Task(), TODAY)
        shown = {
            Family.OFF4: [person.name.start, civil.start if civil else None],
            Family.PRIV: [civil.start if civil else None],
        }
        if a is not None and person.status.is_resident and not hidden:
            shown[Family.OFF4].append(a.moved_in)
            shown[Family.PRIV].append(a.moved_in)
        for family, values in shown.items():
            answer = _answer(person, family).decode("latin-1")
            for value in values:
                if isinstance(value, Irregular) and value.reason == "no calendar value":
                    assert value.text in answer
                    found += 1
    assert found > 50


def test_many_repeated_records_land_on_a_share_of_the_default_register() -> None:
    """Both repeat kinds occur at the default share, and only with quirks on."""
    kinds = _kinds(register())
    assert kinds["many_records"] > 10 and kinds["many_contacts"] > 10
    assert sum(kinds.values()) < 0.045 * COUNT


@pytest.mark.parametrize(
    ("kind", "families"),
    [("many_records", [Family.OFF4]), ("many_contacts", [Family.PRIV, Family.OFF4])],
)
def test_many_repeated_records_reach_the_data_cap_and_seal_cuts_trailing_repeats(
    kind: str, families: list[Family]
) -> None:
    """Their records pass 2880 bytes; the answer keeps a prefix of each type up to the cap."""
    cut = [p for p in register(0.5) if kind in quirks.kinds_of(p)]
    assert len(cut) > 50
    for person in cut:
        for family in families:
            _assert_cut_at_the_cap(person, family)


def _assert_cut_at_the_cap(person: Person, family: Family) -> None:
    """Seal's rule (spec §4.2): trailing repeated records go, one at a time, until the
    data fits; so the last one left out would not fit, and each type keeps its first ones."""
    length = {rectype: layout.length for rectype, layout in LAYOUTS[family].items()}
    renderer = priv if family is Family.PRIV else off4
    body = sorted(renderer.records(person, Task(), TODAY), key=lambda r: r.type)
    sealed = render_answer(person, family, Task(), 1234, TODAY)
    kept = list(sealed[1:-1])
    size = sum(length[r.type] for r in sealed)
    last_left_out = next(r for index, r in enumerate(body) if kept[index : index + 1] != [r])
    assert size <= MAX_DATA_LENGTH < size + length[last_left_out.type]
    for rectype in {r.type for r in body}:
        theirs = [r for r in body if r.type == rectype]
        ours = [r for r in kept if r.type == rectype]
        assert ours and ours == theirs[: len(ours)]
    assert sealed[-1].fields["ANTAL"] == len(kept)


def test_dates_with_day_or_month_00_are_served_as_stored_in_off4() -> None:
    """A spouse's or parent's birth date, a parent's since-date or the church start with an
    unknown day or month: the OFF4 answer carries the very characters, decoded as irregular."""
    assert _kinds(register())["impossible_date"] > 10
    found = 0
    for person in register(0.5):
        if "impossible_date" not in quirks.kinds_of(person):
            continue
        (date,) = [v for v in _relation_and_church_dates(person) if isinstance(v, Irregular)]
        assert re.fullmatch(r"\d{4}-(\d\d|00)-00", date.text)
        records = decode_records(_answer(person, Family.OFF4), Family.OFF4)
        values = [v for r in records if r.type in ("011", "012", "015") for v in r.fields.values()]
        assert date in values
        found += 1
    assert found > 50


def _relation_and_church_dates(person: Person) -> list[object]:
    spouse = person.civil.spouse if person.civil else None
    parents = [r for r in (person.mother, person.father) if r is not None]
    return [
        spouse.birth_date if spouse else None,
        *(date for parent in parents for date in (parent.birth_date, parent.since)),
        person.church.start if person.church else None,
    ]

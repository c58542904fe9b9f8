"""Person ⇄ cpr.v1.Person and Task ⇄ cpr.v1.Task: lossless, strict about shape, code tables."""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from typing import Any

import pytest

from cpr_mainframe.register import quirks
from cpr_mainframe.register.generate import persons
from gateway.cprv1 import convert, walk
from gateway.cprv1.pb.cpr.v1 import auth_pb2, person_pb2
from gateway.domain.person import (
    UNKNOWN_PNR,
    ContactAddress,
    Custody,
    CustodyType,
    Election,
    GuardianKind,
    Guardianship,
    Note,
    Person,
    Relative,
    Status,
)
from gateway.model import Family, FejlNr, Irregular
from gateway.render.task import AddressStyle, NameFormat, Task

COUNT = 2000


@cache
def register() -> tuple[Person, ...]:
    """A generated 2,000-person register (showcase households first), plus one complete person."""
    generated = tuple(quirks.apply(persons(COUNT, seed=3), seed=3))
    return (*generated, _complete(next(p for p in generated if p.address is not None)))


def _complete(person: Person) -> Person:
    """``person`` with the few optional fields the generator never fills set as well."""
    assert person.address is not None
    day = dt.date(2024, 5, 6)
    address = replace(person.address, supplementary=("Bygning 3",), supplementary_start=day)
    guardianship = Guardianship(dt.datetime(2020, 1, 2, 3, 4), GuardianKind.TEXT, "Værge", end=day)
    return replace(
        person,
        address=address,
        contact=ContactAddress(("c/o Hansen", "Danmark"), dt.datetime(2021, 1, 1), day),
        guardianship=guardianship,
        custody=(Custody(CustodyType.OTHER, dt.date(2010, 1, 1), "0101101234", end=day),),
        notes=(Note(1, "Note", dt.date(2019, 1, 1), day),),
        elections=(Election("0001", day, day, day),),
    )


def test_every_person_survives_the_round_trip() -> None:
    """to_person(to_proto(p)) == p for every person of a 2,000-person register."""
    for person in register():
        assert convert.to_person(convert.to_proto(person)) == person


def test_every_person_survives_the_wire() -> None:
    """Serialised to bytes and parsed back, every message still gives the same person."""
    for person in register():
        wire = convert.to_proto(person).SerializeToString()
        assert convert.to_person(person_pb2.Person.FromString(wire)) == person


def test_the_round_trip_data_sets_every_field() -> None:
    """Each field of Person and its parts holds a non-default value somewhere in the data."""
    assert _non_default_fields(register()) == _all_fields(Person)


def test_unknown_relatives_and_absent_guardian_pnr_are_absent_fields() -> None:
    """An unknown relative PNR and a None guardian PNR are absent, not zeros or empty strings."""
    relative = convert.to_proto(_with_mother(Relative())).mother
    assert not relative.HasField("pnr")
    known = convert.to_proto(_with_mother(Relative(pnr="0101801234"))).mother
    assert known.HasField("pnr") and known.pnr == "0101801234"
    guarded = next(p for p in register() if p.guardianship and p.guardianship.guardian_pnr is None)
    assert not convert.to_proto(guarded).guardianship.HasField("guardian_pnr")


def test_a_partly_known_date_is_a_date_value_holding_its_text() -> None:
    """Day or month 00 travels as DateValue.irregular; a date as DateValue.date; None absent."""
    for since, which in ((Irregular("2012-00-00"), "irregular"), (dt.date(2012, 3, 4), "date")):
        person = _with_mother(Relative(pnr="0101801234", since=since))
        mother = convert.to_proto(person).mother
        assert mother.since.WhichOneof("value") == which
        assert not mother.HasField("birth_date")
        assert convert.to_person(convert.to_proto(person)) == person


def _with_mother(mother: Relative) -> Person:
    return replace(register()[0], mother=mother)


def test_status_numbers_are_the_cpr_codes() -> None:
    """Each Status enum value's number is its two-digit CPR code (STATUS_DEAD = 90)."""
    for status in Status:
        message = convert.to_proto(replace(register()[0], status=status))
        assert message.status == int(status.value)


@pytest.mark.parametrize(
    ("spoil", "field"),
    [
        (lambda m: m.ClearField("birth_date"), "Person.birth_date"),
        (lambda m: m.ClearField("name"), "Person.name"),
        (lambda m: setattr(m, "status", person_pb2.STATUS_UNSPECIFIED), "Person.status"),
        (lambda m: setattr(m, "sex", 7), "Person.sex"),
        (lambda m: m.birth_date.MergeFrom(person_pb2.Date(month=2, day=30)), "Person.birth_date"),
        (lambda m: m.protections.add(), "Protection.type"),
        (
            lambda m: m.status_start.MergeFrom(person_pb2.DateTime(year=2020, month=13, day=1)),
            "Person.status_start",
        ),
    ],
    ids=[
        "no-birth-date",
        "no-name",
        "unspecified-status",
        "unknown-sex",
        "feb-30",
        "empty-part",
        "optional-month-13",
    ],
)
def test_an_invalid_message_is_a_value_error_naming_the_field(spoil: Any, field: str) -> None:
    """A required field absent, an unspecified or unknown enum, an impossible date: ValueError."""
    person = register()[0]
    message = convert.to_proto(person)
    spoil(message)
    with pytest.raises(ValueError, match=field) as caught:
        convert.to_person(message)
    assert person.pnr not in str(caught.value)


def test_builders_are_generated_once_per_type() -> None:
    """The generated builder is made once and reused, and reads every field of the type."""
    build = walk._builder(Person, person_pb2.Person.DESCRIPTOR)
    assert walk._builder(Person, person_pb2.Person.DESCRIPTOR) is build
    person = register()[0]
    assert build(convert.to_proto(person)) == person


def test_a_timestamp_with_seconds_is_refused() -> None:
    """The register's timestamps carry minutes only; seconds would be lost, so they are refused."""
    person = replace(register()[0], status_start=dt.datetime(2020, 1, 1, 12, 0, 30))
    with pytest.raises(ValueError, match="minutes only"):
        convert.to_proto(person)


def test_the_shape_check_notices_a_field_the_proto_lacks() -> None:
    """A model field without a proto counterpart is a TypeError when the plan is made."""

    @dataclasses.dataclass(frozen=True)
    class Note:  # same name as the message, one field too many
        number: int
        text: str
        start: dt.date | None = None
        end: dt.date | None = None
        author: str = ""

    with pytest.raises(TypeError, match="author"):
        walk.plan(Note, person_pb2.Note.DESCRIPTOR)


@pytest.mark.parametrize(
    "task",
    [
        Task(),
        Task(
            NameFormat.FIRST_LAST, False, True, frozenset({"001", "050"}), AddressStyle.STYLE_2023
        ),
        Task(off4_records=frozenset(), task_suffix="07"),
    ],
    ids=["defaults", "everything-changed", "no-records"],
)
def test_tasks_survive_the_round_trip(task: Task) -> None:
    """A customer's task comes back equal, its record types sent in ascending order."""
    message = auth_pb2.Task.FromString(convert.task_to_proto(task).SerializeToString())
    assert convert.to_task(message) == task
    assert list(message.off4_records) == sorted(task.off4_records)


def test_every_failed_outcome_has_a_fejlnr_and_travels_in_metadata() -> None:
    """Each AuthOutcome but UNSPECIFIED maps to a FEJLNR, and auth_error/auth_outcome agree."""
    outcomes = set(auth_pb2.AuthOutcome.values()) - {auth_pb2.AUTH_OUTCOME_UNSPECIFIED}
    assert set(convert.FEJLNR_OF_OUTCOME) == outcomes
    assert convert.FEJLNR_OF_OUTCOME[auth_pb2.AUTH_OUTCOME_SESSION_INVALID] is FejlNr.NEW_LOGON
    for outcome in outcomes:
        assert convert.auth_outcome(convert.auth_error(outcome)) == outcome
    assert convert.auth_outcome(None) is None
    assert convert.auth_outcome((("other-bin", b"\x08\x01"),)) is None


def test_transactions_name_the_families() -> None:
    """PRIV and OFF4 map both ways; UNSPECIFIED is no family (never granted)."""
    for family in Family:
        assert convert.family_of(convert.transaction_of(family)) is family
    assert convert.family_of(auth_pb2.TRANSACTION_UNSPECIFIED) is None


# ---- helpers -------------------------------------------------------------------------------


def _non_default_fields(values: typing.Iterable[Any]) -> set[str]:
    """``Class.field`` of every field holding a non-default value somewhere in ``values``."""
    seen: set[str] = set()
    for value in values:
        seen.update(_walk(value))
    return seen


def _walk(value: Any) -> Iterator[str]:
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            if field.default is dataclasses.MISSING or item != field.default:
                yield f"{type(value).__name__}.{field.name}"
            yield from _walk(item)
    elif isinstance(value, tuple):
        for item in value:
            yield from _walk(item)


def _all_fields(cls: type) -> set[str]:
    """``Class.field`` of every field of ``cls`` and of the dataclasses it contains."""
    names: set[str] = set()
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        names.add(f"{cls.__name__}.{field.name}")
        for part in _types_in(hints[field.name]):
            if isinstance(part, type) and dataclasses.is_dataclass(part):
                names |= _all_fields(part)
    return names


def _types_in(hint: Any) -> Iterator[Any]:
    yield hint
    for arg in typing.get_args(hint):
        yield from _types_in(arg)


def test_unknown_pnr_constant_is_what_absence_means() -> None:
    """An absent relative PNR reads back as the model's UNKNOWN_PNR (ten zeros)."""
    message = convert.to_proto(_with_mother(Relative(pnr=UNKNOWN_PNR)))
    assert convert.to_person(message).mother == Relative()

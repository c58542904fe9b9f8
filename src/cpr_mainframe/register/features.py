"""Optional facts a person may carry: protections, credit warnings, guardians, notes …

Each feature is a function ``(Draw, Person) -> Person`` with a rate. Random
households roll for every feature; the generator's showcase forces them, so a
small register still holds each one at least once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

from cpr_mainframe.register import vocabulary as vocab
from cpr_mainframe.register.draw import REGISTER_DATE, Draw
from gateway.domain.person import (
    ContactAddress,
    DanishAddress,
    Election,
    GuardianKind,
    Guardianship,
    MunicipalCondition,
    Name,
    Note,
    Person,
    Protection,
    ProtectionType,
)

Feature = Callable[[Draw, Person], Person]

_TODAY = REGISTER_DATE.date()
_FAR = dt.date(2040, 12, 31)


def adult_from(person: Person) -> dt.date:
    """The 18th birthday (the 1st of March for those born on 29 February)."""
    born = person.birth_date
    try:
        return born.replace(year=born.year + 18)
    except ValueError:
        return dt.date(born.year + 18, 3, 1)


def short_name(name: Name) -> str:
    """``First Last`` in at most 34 characters, as a guardian's name is written."""
    full = f"{name.first} {name.last}"
    return full if len(full) <= 34 else f"{name.first[0]}. {name.last}"[:34]


def address_lines(address: DanishAddress | None) -> tuple[str, ...]:
    """An address as letter lines of at most 34 characters."""
    if address is None:
        return ()
    street = f"{address.road_addressing_name} {address.house_number}".rstrip()
    if address.floor:
        street = f"{street}, {address.floor}. {address.door}".rstrip()
    return (street, f"{address.post_code:04d} {address.post_district}")


def guarded_by(d: Draw, ward: Person, guardian: Person) -> Person:
    """``ward`` under the guardianship of a person in the register."""
    start = d.stamp(adult_from(ward), _TODAY)
    return replace(
        ward,
        guardianship=Guardianship(
            start=start,
            kind=GuardianKind.PERSON,
            guardian_name=short_name(guardian.name),
            guardian_address=address_lines(guardian.address),
            guardian_pnr=guardian.pnr,
            guardian_since=start.date(),
            text_start=start.date(),
        ),
    )


def _professional_guardian(d: Draw, person: Person) -> Person:
    start = d.stamp(adult_from(person), _TODAY)
    name, lines = d.pick(vocab.PROFESSIONAL_GUARDIANS)
    guardianship = Guardianship(start, GuardianKind.TEXT, name, lines, text_start=start.date())
    return replace(person, guardianship=guardianship)


def _protect(kind: ProtectionType) -> Feature:
    def feature(d: Draw, person: Person) -> Person:
        start = d.day(max(adult_from(person), dt.date(1995, 1, 1)), _TODAY)
        # Name/address protection is granted a year at a time; the others run until revoked.
        end = start + dt.timedelta(days=365) if kind is ProtectionType.NAME_ADDRESS else None
        if end is not None and end <= _TODAY:
            end = d.day(_TODAY + dt.timedelta(days=1), dt.date(2030, 12, 31))
        return replace(person, protections=(*person.protections, Protection(kind, start, end)))

    return feature


def _ended_protection(d: Draw, person: Person) -> Person:
    start = d.day(dt.date(2000, 1, 1), dt.date(2015, 12, 31))
    ended = Protection(ProtectionType.MARKETING, start, d.day(start, dt.date(2020, 12, 31)))
    return replace(person, protections=(ended, *person.protections))


def _credit_warning(d: Draw, person: Person) -> Person:
    return replace(person, credit_warning=d.stamp(dt.date(2012, 1, 1), _TODAY))


def _future_credit_warning(d: Draw, person: Person) -> Person:
    # Far enough ahead to stay in the future for years after REGISTER_DATE.
    return replace(person, credit_warning=d.stamp(dt.date(2030, 1, 1), _FAR))


def _contact(d: Draw, person: Person) -> Person:
    lines = d.pick(vocab.CONTACT_LINES)
    return replace(person, contact=ContactAddress(lines, d.stamp(dt.date(2015, 1, 1), _TODAY)))


def _notes(d: Draw, person: Person) -> Person:
    count = 1 + d.rng.randrange(3)
    start = d.day(dt.date(2000, 1, 1), _TODAY)
    notes = tuple(Note(i + 1, d.pick(vocab.NOTE_LINES), start) for i in range(count))
    return replace(person, notes=notes)


def _conditions(d: Draw, person: Person) -> Person:
    condition = MunicipalCondition(
        type=d.pick("12"),
        code=f"{d.rng.randrange(100000):05d}",
        start=d.day(dt.date(2005, 1, 1), _TODAY),
        remark=d.pick(vocab.CONDITION_REMARKS),
    )
    return replace(person, conditions=(condition,))


def _elections(d: Draw, person: Person) -> Person:
    eligible = adult_from(person)
    election = Election(f"{d.rng.randrange(1, 4):04d}", eligible, d.day(eligible, _TODAY))
    return replace(person, elections=(election,))


def _customer_refs(d: Draw, person: Person) -> Person:
    count = 1 + d.rng.randrange(5)
    refs = tuple(f"KUNDE-{d.rng.randrange(10**8):08d}" for _ in range(count))
    return replace(person, customer_refs=refs)


#: name → (rate per living adult, feature). Rates are rough Danish orders of magnitude.
FEATURES: dict[str, tuple[float, Feature]] = {
    "name_address": (0.02, _protect(ProtectionType.NAME_ADDRESS)),
    "local_directory": (0.06, _protect(ProtectionType.LOCAL_DIRECTORY)),
    "marketing": (0.18, _protect(ProtectionType.MARKETING)),
    "ended_protection": (0.01, _ended_protection),
    "credit": (0.008, _credit_warning),
    "future_credit": (0.002, _future_credit_warning),
    "contact": (0.02, _contact),
    "guardian": (0.004, _professional_guardian),
    "notes": (0.01, _notes),
    "conditions": (0.005, _conditions),
    "elections": (0.01, _elections),
    "refs": (0.05, _customer_refs),
}


def decorate(d: Draw, person: Person, force: frozenset[str] = frozenset()) -> Person:
    """``person`` with each feature rolled for, and those in ``force`` for certain."""
    for name, (rate, feature) in FEATURES.items():
        if name in force or d.chance(rate):
            person = feature(d, person)
    return person

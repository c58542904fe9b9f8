"""The real mainframe's quirks (spec §10), laid on a share of the register's persons.

Real CPR answers hold blanks where the documentation promises zeros, and some persons
carry so many repeated records that their answers reach the data cap. A generated
register that never does leaves the modern side, its migration and the parity test
untested against them, so a share of persons (``share``, a few percent by default)
each carry one quirk kind, drawn among the kinds that apply to them. The draw uses
its own generator seeded from the register's seed: the same seed gives the same
quirks, and the persons without one are exactly those of a register without quirks.

Each quirk is a function ``(Random, Person) -> Person | None``: None when it does not
apply to that person.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from cpr_mainframe.register import vocabulary as vocab
from cpr_mainframe.register.draw import REGISTER_DATE
from cpr_mainframe.register.features import adult_from
from gateway.codec.headers import MAX_DATA_LENGTH
from gateway.codec.records import OFF4_LAYOUTS, PRIV_LAYOUTS
from gateway.domain.person import (
    UNKNOWN_PNR,
    ContactAddress,
    DanishAddress,
    MunicipalCondition,
    Note,
    Person,
    Protection,
    ProtectionType,
    Relative,
    Status,
)
from gateway.model import Irregular

#: The share of persons that carry a quirk unless the generator is told otherwise:
#: captured real answers show such values in a few percent of persons.
DEFAULT_SHARE = 0.03

Quirk = Callable[[random.Random, Person], Person | None]

_BLANK_CODE = Irregular(" " * 4)
_BLANK_PNR = Irregular(" " * 10)
_BLANK_STAMP = Irregular(" " * 12)


def _blank_address(rng: random.Random, person: Person) -> Person | None:
    """Some of post code, municipality, road code and moved-in time blank, the rest kept."""
    address = person.address
    if address is None or not person.status.is_resident:
        return None
    fields = ("post_code", "municipality", "road_code", "moved_in")
    chosen = set(rng.sample(fields, rng.randint(1, len(fields))))
    blanked = replace(
        address,
        post_code=_BLANK_CODE if "post_code" in chosen else address.post_code,
        municipality=_BLANK_CODE if "municipality" in chosen else address.municipality,
        road_code=_BLANK_CODE if "road_code" in chosen else address.road_code,
        moved_in=_BLANK_STAMP if "moved_in" in chosen else address.moved_in,
    )
    return replace(person, address=blanked)


def _no_address(rng: random.Random, person: Person) -> Person | None:
    """A resident whose address names no place: every code and the move-in time blank."""
    if person.address is None or not person.status.is_resident:
        return None
    nowhere = DanishAddress(
        municipality=_BLANK_CODE, road_code=_BLANK_CODE, road_name="",
        post_code=_BLANK_CODE, moved_in=_BLANK_STAMP,
    )  # fmt: skip
    return replace(person, address=nowhere)


def _blank_relation(rng: random.Random, person: Person) -> Person | None:
    """Relation PNRs the register does not know, blank instead of zeros: a spouse's or a
    parent's PNR of ten zeros, and the missing parent beside a known one."""
    civil = person.civil
    spouse = civil.spouse if civil else None
    mother, father = person.mother, person.father
    if (mother is None) != (father is None):  # one parent known: the other is not
        mother, father = mother or Relative(), father or Relative()
    if not any(_unknown(r) for r in (spouse, mother, father)):
        return None
    if civil is not None and spouse is not None:
        person = replace(person, civil=replace(civil, spouse=_blanked(spouse)))
    return replace(person, mother=mother and _blanked(mother), father=father and _blanked(father))


def _unknown(relative: Relative | None) -> bool:
    return relative is not None and relative.pnr == UNKNOWN_PNR


def _blanked(relative: Relative) -> Relative:
    return replace(relative, pnr=_BLANK_PNR) if _unknown(relative) else relative


def _impossible_stamp(rng: random.Random, person: Person) -> Person | None:
    """One date-time with a part no calendar has: minute 99, hour 25, day or month 00.

    The move-in time, the civil status start or the name's start, whichever it has.
    """
    address, civil, name = person.address, person.civil, person.name
    choices: list[tuple[dt.datetime, Callable[[Irregular], Person]]] = []
    if address is not None and isinstance(address.moved_in, dt.datetime):
        moved = address.moved_in
        choices.append((moved, lambda v: replace(person, address=replace(address, moved_in=v))))
    if civil is not None and isinstance(civil.start, dt.datetime):
        choices.append((civil.start, lambda v: replace(person, civil=replace(civil, start=v))))
    if isinstance(name.start, dt.datetime):
        choices.append((name.start, lambda v: replace(person, name=replace(name, start=v))))
    if not choices:
        return None
    stamp, put = rng.choice(choices)
    return put(_impossible(rng, stamp))


def _impossible(rng: random.Random, stamp: dt.datetime) -> Irregular:
    """``stamp`` as YYYYMMDDHHMM with one impossible part."""
    text = f"{stamp:%Y%m%d%H%M}"
    start, part = rng.choice(((10, "99"), (8, "25"), (6, "00"), (4, "00")))
    return Irregular(text[:start] + part + text[start + 2 :])


def _impossible_date(rng: random.Random, person: Person) -> Person | None:
    """One date the mainframe knows only in part: day ``00``, or month and day ``00``.

    A spouse's or parent's birth date (OFF4 012, 015), since when a parent is recorded
    (015) or the church membership's start (011), whichever it has.
    """
    spouse, church = person.civil.spouse if person.civil else None, person.church
    choices: list[tuple[dt.date, Callable[[Irregular], Person]]] = []
    if spouse is not None and isinstance(spouse.birth_date, dt.date):
        choices.append((spouse.birth_date, functools.partial(_with_spouse_birth_date, person)))
    for role in ("mother", "father"):
        choices += _relative_dates(person, role)
    if church is not None and isinstance(church.start, dt.date):
        choices.append((church.start, lambda v: replace(person, church=replace(church, start=v))))
    if not choices:
        return None
    day, put_date = rng.choice(choices)
    return put_date(_partly_known(rng, day))


def _relative_dates(
    person: Person, role: str
) -> list[tuple[dt.date, Callable[[Irregular], Person]]]:
    """(date, person with it replaced) for a parent's birth date and since-date."""
    relative: Relative | None = getattr(person, role)
    if relative is None:
        return []
    out: list[tuple[dt.date, Callable[[Irregular], Person]]] = []
    for name in ("birth_date", "since"):
        value = getattr(relative, name)
        if isinstance(value, dt.date):
            out.append((value, functools.partial(_with_relative_date, person, role, name)))
    return out


def _with_spouse_birth_date(person: Person, value: Irregular) -> Person:
    civil = person.civil
    assert civil is not None and civil.spouse is not None  # _impossible_date checked
    return replace(person, civil=replace(civil, spouse=replace(civil.spouse, birth_date=value)))


def _with_relative_date(person: Person, role: str, name: str, value: Irregular) -> Person:
    relative = getattr(person, role)
    return replace(person, **{role: replace(relative, **{name: value})})


def _partly_known(rng: random.Random, day: dt.date) -> Irregular:
    """``day`` as YYYY-MM-DD with the day, or the month and the day, unknown (``00``)."""
    if rng.random() < 0.5:
        return Irregular(f"{day:%Y-%m}-00")
    return Irregular(f"{day:%Y}-00-00")


def _many_records(rng: random.Random, person: Person) -> Person | None:
    """Notes (OFF4 019), municipal conditions (018) and ended protections (004), one or
    more of them, together more bytes than the data cap: the OFF4 answer is cut."""
    rectypes = rng.sample(sorted(_REPEATED), rng.randint(1, len(_REPEATED)))
    share = -(-_repeat_budget(rng) // len(rectypes))
    for rectype in rectypes:
        person = _REPEATED[rectype](rng, person, _records_in(share, OFF4_LAYOUTS[rectype].length))
    return person


def _many_contacts(rng: random.Random, person: Person) -> Person | None:
    """Ended contact addresses (PRIV 003, OFF4 006), more bytes than the data cap in
    either family: both answers are cut. Adults only, the periods one after another."""
    if not (person.status.is_resident or person.status is Status.EMIGRATED):
        return None
    count = _records_in(_repeat_budget(rng), PRIV_LAYOUTS["003"].length)  # the shorter
    current = person.contact
    newest = current.start.date() if current and current.start else _TODAY
    days = _distinct_days(rng, adult_from(person), newest, 2 * count)
    if days is None:
        return None
    former = tuple(
        ContactAddress(rng.choice(vocab.CONTACT_LINES), _minute_of(rng, start), end)
        for end, start in zip(days[0::2], days[1::2], strict=True)
    )
    return replace(person, former_contacts=former)


def _repeat_budget(rng: random.Random) -> int:
    """Bytes of repeated records to add: past the cap by up to a half of it, so the
    answer always reaches the cap and seal() always leaves some out."""
    return rng.randint(MAX_DATA_LENGTH + 1, MAX_DATA_LENGTH * 3 // 2)


def _records_in(budget: int, length: int) -> int:
    """How many records of ``length`` bytes it takes to hold ``budget`` bytes."""
    return -(-budget // length)


def _more_notes(rng: random.Random, person: Person, count: int) -> Person:
    first = len(person.notes) + 1
    notes = tuple(
        Note(first + i, rng.choice(vocab.NOTE_LINES), _day_since(rng, person, _NOTES_FROM))
        for i in range(count)
    )
    return replace(person, notes=(*person.notes, *notes))


def _more_conditions(rng: random.Random, person: Person, count: int) -> Person:
    conditions = tuple(
        MunicipalCondition(
            type=rng.choice("12"),
            code=f"{rng.randrange(100000):05d}",
            start=_day_since(rng, person, _NOTES_FROM),
            remark=rng.choice(vocab.CONDITION_REMARKS),
        )
        for _ in range(count)
    )
    return replace(person, conditions=(*person.conditions, *conditions))


def _more_ended_protections(rng: random.Random, person: Person, count: int) -> Person:
    """Local-directory and marketing protections asked for and revoked, ended by today:
    none is in force, so PRIV's 001 and name hiding are unchanged."""
    starts = sorted(_day_since(rng, person, _PROTECTIONS_FROM) for _ in range(count))
    ended = tuple(
        Protection(
            rng.choice((ProtectionType.LOCAL_DIRECTORY, ProtectionType.MARKETING)),
            start,
            min(start + dt.timedelta(days=rng.randint(30, 365)), _TODAY),
        )
        for start in starts
    )
    return replace(person, protections=(*person.protections, *ended))


#: OFF4 record type → how to give a person ``count`` more of it.
_REPEATED: dict[str, Callable[[random.Random, Person, int], Person]] = {
    "004": _more_ended_protections,
    "018": _more_conditions,
    "019": _more_notes,
}

_TODAY = REGISTER_DATE.date()
_NOTES_FROM = dt.date(2000, 1, 1)
_PROTECTIONS_FROM = dt.date(1995, 1, 1)


def _day_since(rng: random.Random, person: Person, earliest: dt.date) -> dt.date:
    """A day before today, from ``earliest`` or the birth date, whichever is later."""
    last = _TODAY - dt.timedelta(days=1)
    first = min(max(earliest, person.birth_date), last)
    return first + dt.timedelta(days=rng.randrange((last - first).days + 1))


def _distinct_days(
    rng: random.Random, first: dt.date, before: dt.date, count: int
) -> list[dt.date] | None:
    """``count`` different days in [first, before), latest first; None when too few."""
    span = (before - first).days
    if span < count:
        return None
    offsets = sorted(rng.sample(range(span), count), reverse=True)
    return [first + dt.timedelta(days=offset) for offset in offsets]


def _minute_of(rng: random.Random, day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60))


#: name → quirk; the names are what docs/emulator.md counts.
QUIRKS: dict[str, Quirk] = {
    "blank_address": _blank_address,
    "no_address": _no_address,
    "blank_relation": _blank_relation,
    "impossible_stamp": _impossible_stamp,
    "impossible_date": _impossible_date,
    "many_records": _many_records,
    "many_contacts": _many_contacts,
}


def apply(persons: Iterable[Person], seed: int, share: float = DEFAULT_SHARE) -> Iterator[Person]:
    """``persons`` with a quirk on about ``share`` of them, the same ones for the same seed."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"quirk share must lie in [0, 1], not {share}")
    rng = random.Random(f"quirks-{seed}")
    for person in persons:
        yield _one_quirk(rng, person) if rng.random() < share else person


def _one_quirk(rng: random.Random, person: Person) -> Person:
    for name in rng.sample(sorted(QUIRKS), len(QUIRKS)):
        quirky = QUIRKS[name](rng, person)
        if quirky is not None:
            return quirky
    return person


def kinds_of(person: Person) -> set[str]:
    """Which quirk kinds ``person`` carries (for counting; the register stores none of this)."""
    kinds = set()
    address = person.address
    if address is not None:
        if address.road_name == "" and isinstance(address.municipality, Irregular):
            kinds.add("no_address")
        elif any(_blank(v) for v in _address_values(address)):
            kinds.add("blank_address")
    civil = person.civil
    spouse = civil.spouse if civil else None
    if any(r is not None and _blank(r.pnr) for r in (spouse, person.mother, person.father)):
        kinds.add("blank_relation")
    stamps = (address.moved_in if address else None, civil.start if civil else None)
    if any(isinstance(v, Irregular) and not _blank(v) for v in (*stamps, person.name.start)):
        kinds.add("impossible_stamp")
    if any(isinstance(v, Irregular) and not _blank(v) for v in _dates(person)):
        kinds.add("impossible_date")
    if _repeated_bytes(person) > MAX_DATA_LENGTH:
        kinds.add("many_records")
    if person.former_contacts:
        kinds.add("many_contacts")
    return kinds


def _dates(person: Person) -> list[object]:
    """The dates :func:`_impossible_date` may have made partly known."""
    spouse = person.civil.spouse if person.civil else None
    dates: list[object] = [spouse.birth_date if spouse else None]
    for relative in (person.mother, person.father):
        if relative is not None:
            dates += [relative.birth_date, relative.since]
    return [*dates, person.church.start if person.church else None]


def _repeated_bytes(person: Person) -> int:
    """OFF4 bytes of the person's protections, municipal conditions and notes."""
    counts = {"004": person.protections, "018": person.conditions, "019": person.notes}
    return sum(OFF4_LAYOUTS[rectype].length * len(items) for rectype, items in counts.items())


def _blank(value: object) -> bool:
    return isinstance(value, Irregular) and value.reason == "blank"


def _address_values(address: DanishAddress) -> tuple[object, ...]:
    return (address.post_code, address.municipality, address.road_code, address.moved_in)

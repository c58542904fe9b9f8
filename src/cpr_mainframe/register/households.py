"""Households: small groups of persons whose links (spouse, parent, custody, PNRGAELD)
point at each other, so every link in the register lands on a real person.

Each household function takes a :class:`Draw` and options (``None`` = roll for
it) and returns its persons. Living adults are decorated with optional features.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

from cpr_mainframe.register import vocabulary as vocab
from cpr_mainframe.register.draw import REGISTER_DATE, Draw
from cpr_mainframe.register.features import decorate, guarded_by
from gateway.domain.person import (
    UNKNOWN_PNR,
    CivilState,
    CivilStatus,
    ContactAddress,
    Custody,
    CustodyType,
    ForeignAddress,
    Person,
    Relative,
    Separation,
    Sex,
    Status,
)
from gateway.model import Irregular

Household = Callable[[Draw], list[Person]]

_TODAY = REGISTER_DATE.date()
_OTHER = {Sex.MALE: Sex.FEMALE, Sex.FEMALE: Sex.MALE}


def _years(day: dt.date, years: int) -> dt.date:
    return day + dt.timedelta(days=round(365.25 * years))


def _sex(d: Draw) -> Sex:
    return d.pick((Sex.MALE, Sex.FEMALE))


def _relative(person: Person, since: dt.date | None = None) -> Relative:
    return Relative(person.pnr, person.birth_date, person.name, since)


def _civil(person: Person, status: CivilStatus, start: dt.datetime, other: Person) -> Person:
    civil = CivilState(status, start, _relative(other, start.date()))
    return replace(person, civil=civil)


def _housed(
    d: Draw, person: Person, moved_in: dt.datetime, status: Status = Status.RESIDENT
) -> Person:
    return replace(person, address=d.address(moved_in, status))


def _pair(
    d: Draw, same_sex: bool, first_year: int = 1940, last_year: int = 2000, sex: Sex | None = None
) -> tuple[Person, Person]:
    """Two adults of an age; the second often takes the first one's last name."""
    sex = sex or _sex(d)
    a = d.person(sex, d.born(first_year, last_year))
    born_b = d.day(_years(a.birth_date, -6), min(_years(a.birth_date, 6), _years(_TODAY, -19)))
    last = a.name.last if d.chance(0.5) else None
    b = d.person(sex if same_sex else _OTHER[sex], born_b, last=last)
    return a, b


def _since_adult(
    d: Draw, *people: Person, not_before: dt.date = dt.date(1950, 1, 1)
) -> dt.datetime:
    lo = max(not_before, *(_years(p.birth_date, 20) for p in people))
    return d.stamp(min(lo, _TODAY), _TODAY)


def _kids(
    d: Draw,
    mother: Person,
    father: Person | None,
    partner: Person | None,
    count: int,
    *,
    stepchild: bool = False,
    ward: bool = False,
    minors: bool = False,
) -> list[Person]:
    """Children of ``mother`` living with her; the first is the partner's stepchild if asked.

    ``ward`` puts the first adult child under the mother's guardianship; ``minors``
    makes every child under 18 (so custody is recorded).
    """
    lo, hi = _years(mother.birth_date, 20), min(_years(mother.birth_date, 42), _TODAY)
    if minors:
        lo = max(lo, _years(_TODAY, -17))
    births = sorted(d.day(lo, hi) for _ in range(count if lo <= hi else 0))
    kids = []
    for index, born in enumerate(births):
        own_father = None if stepchild and index == 0 else father
        kid = _kid(d, born, mother, own_father, partner)
        if ward and _years(born, 18) <= _TODAY:
            kid, ward = guarded_by(d, kid, mother), False
        kids.append(kid)
    return kids


def _kid(
    d: Draw, born: dt.date, mother: Person, father: Person | None, partner: Person | None
) -> Person:
    kid = d.person(_sex(d), born, last=(father or mother).name.last)
    address = mother.address
    if address is not None:
        arrived = dt.datetime(born.year, born.month, born.day)
        moved_in = address.moved_in if isinstance(address.moved_in, dt.datetime) else arrived
        address = replace(address, moved_in=max(moved_in, arrived))
    father_relative = _relative(father, born) if father else Relative()
    kid = replace(kid, address=address, mother=_relative(mother, born), father=father_relative)
    if _years(born, 18) <= _TODAY:
        return decorate(d, kid)
    custody = [Custody(CustodyType.MOTHER, born, mother.pnr, born)]
    if father is not None:
        custody.append(Custody(CustodyType.FATHER, born, father.pnr, born))
    elif partner is not None:
        kind = CustodyType.OTHER if partner.sex is Sex.FEMALE else CustodyType.OTHER_SECOND
        custody.append(Custody(kind, born, partner.pnr, born))
    return replace(kid, custody=tuple(custody))


def _parent_of(parent: Person, kids: list[Person]) -> Person:
    mine = tuple(k.pnr for k in kids if parent.pnr in _parent_pnrs(k))
    return replace(parent, children=(*parent.children, *mine)) if mine else parent


def _parent_pnrs(kid: Person) -> tuple[str | Irregular, ...]:
    return tuple(r.pnr for r in (kid.mother, kid.father) if r is not None)


def _child_count(d: Draw) -> int:
    return d.rng.choices((0, 1, 2, 3, 4), (25, 20, 35, 15, 5))[0]


def couple(
    d: Draw,
    *,
    partnership: bool | None = None,
    children: int | None = None,
    separated: bool | None = None,
    stepchild: bool | None = None,
    ward: bool = False,
    minors: bool = False,
) -> list[Person]:
    """Married (G) or registered partners (P) at one address, with the mother's children.

    Options left at None are rolled for. ``ward`` and ``minors`` pick parents old
    enough for an adult child, or young enough for children under 18.
    """
    partnership = d.chance(0.04) if partnership is None else partnership
    years = (
        (1945, 1960) if ward else (1985, 1990) if minors else (1940, 1985 if partnership else 1995)
    )
    # Partners asked to have children are two women: someone has to be the mother.
    sex = Sex.FEMALE if partnership and children else None
    a, b = _pair(d, same_sex=partnership, first_year=years[0], last_year=years[1], sex=sex)
    a = _housed(d, a, _since_adult(d, a, b))
    b = replace(b, address=a.address)
    status = CivilStatus.PARTNERSHIP if partnership else CivilStatus.MARRIED
    since = dt.date(1989, 10, 1) if partnership else dt.date(1950, 1, 1)
    start = _since_adult(d, a, b, not_before=since)
    a, b = _civil(a, status, start, b), _civil(b, status, start, a)
    if separated or (separated is None and d.chance(0.01)):
        separation = Separation(f"SEP{d.rng.randrange(10**9):09d}", d.day(start.date(), _TODAY))
        assert a.civil is not None
        a = replace(a, civil=replace(a.civil, separation=separation))
    a, b = decorate(d, a), decorate(d, b)
    if Sex.FEMALE not in (a.sex, b.sex):
        return [a, b]
    mother, partner = (a, b) if a.sex is Sex.FEMALE else (b, a)
    father = None if partnership else partner
    count = _child_count(d) if children is None else children
    step = d.chance(0.05) if stepchild is None else stepchild
    kids = _kids(d, mother, father, partner, count, stepchild=step, ward=ward, minors=minors)
    return [_parent_of(a, kids), _parent_of(b, kids), *kids]


def divorced(d: Draw, dissolved: bool = False) -> list[Person]:
    """A divorced pair (F) or a dissolved partnership (O), at two addresses."""
    a, b = _pair(d, same_sex=dissolved, last_year=1985)
    status = CivilStatus.DISSOLVED if dissolved else CivilStatus.DIVORCED
    start = _since_adult(d, a, b)
    a, b = _civil(a, status, start, b), _civil(b, status, start, a)
    a, b = _housed(d, a, start), _housed(d, b, start)
    a, b = decorate(d, a), decorate(d, b)
    if dissolved or d.chance(0.5):
        return [a, b]
    mother, father = (a, b) if a.sex is Sex.FEMALE else (b, a)
    kids = _kids(d, mother, father, None, 1 + d.rng.randrange(3))
    return [_parent_of(a, kids), _parent_of(b, kids), *kids]


def widowed(d: Draw, partnership: bool = False) -> list[Person]:
    """A widow(er) (E) or surviving partner (L) and the dead spouse (90, CIVST D)."""
    a, b = _pair(d, same_sex=partnership, first_year=1930, last_year=1975)
    married = _since_adult(
        d, a, b, not_before=dt.date(1989, 10, 1) if partnership else dt.date(1950, 1, 1)
    )
    died = d.stamp(married.date(), _TODAY)
    a = _housed(d, a, married)
    survivor = CivilStatus.SURVIVING_PARTNER if partnership else CivilStatus.WIDOWED
    a = decorate(d, _civil(a, survivor, died, b))
    b = replace(b, status=Status.DEAD, status_start=died, address=a.address)
    b = _civil(b, CivilStatus.DEAD, died, a)
    return [a, b]


def single(
    d: Draw, status: Status = Status.RESIDENT, force: frozenset[str] = frozenset()
) -> list[Person]:
    """One adult at an address of ``status``; now and then divorced from someone abroad."""
    person = d.person(_sex(d), d.born(1930, 2006), status)
    person = _housed(d, person, _since_adult(d, person), status)
    if d.chance(0.05):
        name = d.name(_OTHER[person.sex], person.status_start or REGISTER_DATE)
        start = _since_adult(d, person)
        spouse = Relative(UNKNOWN_PNR, _years(person.birth_date, 2), name, start.date())
        person = replace(person, civil=CivilState(CivilStatus.DIVORCED, start, spouse))
    return [decorate(d, person, force)]


def dead(d: Draw, first_year: int = 1895, last_year: int = 1990) -> list[Person]:
    """A person who died at the address they lived at (status 90, CIVST D)."""
    person = d.person(_sex(d), d.born(first_year, last_year))
    born = person.birth_date
    died = d.stamp(min(_years(born, 40), _TODAY), min(_years(born, 100), _TODAY))
    person = _housed(d, person, d.stamp(_years(born, 18), died.date()))
    civil = CivilState(CivilStatus.DEAD, died)
    return [replace(person, status=Status.DEAD, status_start=died, civil=civil)]


def emigrated(d: Draw, together: bool = False) -> list[Person]:
    """One person, or a married pair, who left Denmark (status 80) with a foreign address."""
    people = (
        list(_pair(d, same_sex=False, last_year=1990))
        if together
        else [d.person(_sex(d), d.born(1935, 2000))]
    )
    departed = _since_adult(d, *people)
    code, country, streets, cities = d.pick(vocab.COUNTRIES)
    lines = (d.pick(streets), d.pick(cities), country)
    foreign = ForeignAddress(lines, code, departed, departed)
    people = [
        replace(p, status=Status.EMIGRATED, status_start=departed, foreign=foreign) for p in people
    ]
    if together:
        start = d.stamp(_years(max(p.birth_date for p in people), 20), departed.date())
        a, b = people
        people = [
            _civil(a, CivilStatus.MARRIED, start, b),
            _civil(b, CivilStatus.MARRIED, start, a),
        ]
    else:
        people = [people[0]]
    return [decorate(d, p) for p in people]


def no_residence(d: Draw) -> list[Person]:
    """Status 20: a PNR kept for tax purposes, reachable only by contact address."""
    person = d.person(_sex(d), d.born(1950, 2000), Status.NO_RESIDENCE)
    contact = ContactAddress(d.pick(vocab.CONTACT_LINES), _since_adult(d, person))
    return [replace(person, contact=contact)]


def annulled(d: Draw) -> list[Person]:
    """Status 30: a number that should never have been issued; little more than a name."""
    person = d.person(_sex(d), d.born(1940, 2020), Status.ANNULLED)
    annulled_at = d.stamp(person.birth_date, _TODAY)
    return [replace(person, status_start=annulled_at, church=None, birthplace=None, occupation="")]


def disappeared(d: Draw) -> list[Person]:
    """Status 70: gone without trace, no current address."""
    person = d.person(_sex(d), d.born(1935, 2000))
    gone = _since_adult(d, person)
    return [replace(person, status=Status.DISAPPEARED, status_start=gone, disappeared=gone)]


def duplicate(d: Draw) -> list[Person]:
    """A resident and a deleted duplicate record of them (status 50, PNRGAELD)."""
    (real,) = single(d)
    deleted_at = d.stamp(real.birth_date, _TODAY)
    copy = replace(
        d.person(real.sex, real.birth_date, Status.DELETED, status_start=deleted_at),
        name=real.name,
        replaced_by=real.pnr,
    )
    return [real, copy]


def changed(d: Draw, sex_change: bool | None = None) -> list[Person]:
    """A resident whose birth date or sex was corrected, and the old record (status 60)."""
    (new,) = single(d)
    sex_change = d.chance(0.5) if sex_change is None else sex_change
    sex = _OTHER[new.sex] if sex_change else new.sex
    born = (
        new.birth_date
        if sex_change
        else new.birth_date - dt.timedelta(days=1 + d.rng.randrange(30))
    )
    changed_at = d.stamp(new.birth_date, _TODAY)
    old = d.person(sex, born, Status.CHANGED, status_start=changed_at)
    return [new, replace(old, name=new.name, replaced_by=new.pnr)]


def large_family(d: Draw, children: int | None = None) -> list[Person]:
    """A father of very many children (mother unknown): enough to overflow an OFF4 answer."""
    father = d.person(Sex.MALE, d.born(1925, 1940))
    father = decorate(d, _housed(d, father, _since_adult(d, father)))
    count = 70 + d.rng.randrange(30) if children is None else children
    lo, hi = _years(father.birth_date, 20), _years(father.birth_date, 60)
    kids = []
    for born in sorted(d.day(lo, hi) for _ in range(count)):
        kid = d.person(_sex(d), born, last=father.name.last)
        kid = _housed(d, kid, _since_adult(d, kid))
        kid = replace(kid, father=_relative(father, born), mother=Relative())
        kids.append(decorate(d, kid))
    return [_parent_of(father, kids), *kids]

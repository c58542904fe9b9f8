"""Seeded drawing of register facts: PNRs, names, addresses, dates.

:class:`Draw` owns the random generator and the set of PNRs handed out, so a
seed always yields the same register. Everything it returns fits its field.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Sequence
from typing import TypeVar

from cpr_mainframe.register import vocabulary as vocab
from gateway.domain.person import (
    Birthplace,
    Church,
    ChurchMembership,
    Citizenship,
    CivilState,
    CivilStatus,
    DanishAddress,
    Name,
    NameMarker,
    Person,
    Sex,
    Status,
)

T = TypeVar("T")

#: The register's "now": fixed, so the same seed gives the same register on any day.
REGISTER_DATE = dt.datetime(2026, 1, 1)

#: Spec §9: numbers issued from this day on need not pass modulus 11.
MOD11_OPTIONAL_FROM = dt.date(2007, 10, 1)

_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2)
_MARKERS = (NameMarker.ABBREVIATED, NameMarker.UNSUPPORTED, NameMarker.UNDOCUMENTED)
# Attempts to find a free PNR for one birth date before giving up; each date has
# hundreds of free numbers even in a 1,000,000-person register.
_PNR_ATTEMPTS = 1000


@functools.cache
def seventh_digits(year: int) -> tuple[int, ...]:
    """7th digits that put a PNR with this birth year in the right century (spec §9)."""
    if 1858 <= year <= 1899:
        return (5, 6, 7, 8)
    if 1900 <= year <= 1936:
        return (0, 1, 2, 3)
    if 1937 <= year <= 1999:
        return (0, 1, 2, 3, 4, 9)
    if 2000 <= year <= 2036:
        return (4, 5, 6, 7, 8, 9)
    if 2037 <= year <= 2057:
        return (5, 6, 7, 8)
    raise ValueError(f"no PNR century for birth year {year}")


class Draw:
    """Random register facts from one seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._used: set[str] = set()

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.rng.random() < p

    def pick(self, items: Sequence[T]) -> T:
        """One of ``items``."""
        return items[self.rng.randrange(len(items))]

    def day(self, lo: dt.date, hi: dt.date) -> dt.date:
        """A day in [lo, hi]."""
        return lo + dt.timedelta(days=self.rng.randrange(max((hi - lo).days, 0) + 1))

    def stamp(self, lo: dt.date, hi: dt.date) -> dt.datetime:
        """A minute on a day in [lo, hi]."""
        day = self.day(lo, hi)
        return dt.datetime(
            day.year, day.month, day.day, self.rng.randrange(24), self.rng.randrange(60)
        )

    def born(self, first_year: int, last_year: int) -> dt.date:
        """A birth date in the given years, never after the register date."""
        hi = min(dt.date(last_year, 12, 31), REGISTER_DATE.date())
        return self.day(dt.date(first_year, 1, 1), hi)

    def pnr(self, birth: dt.date, sex: Sex) -> str:
        """A fresh PNR for ``birth`` and ``sex``: century digit, parity, modulus 11 as issued."""
        prefix = f"{birth.day:02d}{birth.month:02d}{birth.year % 100:02d}"
        prefix_sum = sum(int(d) * w for d, w in zip(prefix, _WEIGHTS, strict=False))
        parity = 1 if sex is Sex.MALE else 0
        checked = birth < MOD11_OPTIONAL_FROM
        sevenths = seventh_digits(birth.year)
        for _ in range(_PNR_ATTEMPTS):
            seventh, middle = self.pick(sevenths), self.rng.randrange(100)
            if checked:
                # Weights of digits 7, 8 and 9 are 4, 3 and 2; digit 10 weighs 1.
                total = prefix_sum + 4 * seventh + 3 * (middle // 10) + 2 * (middle % 10)
                last = -total % 11
                if last == 10 or last % 2 != parity:
                    continue
            else:
                last = self.rng.randrange(parity, 10, 2)
            pnr = f"{prefix}{seventh}{middle:02d}{last}"
            if pnr not in self._used:
                self._used.add(pnr)
                return pnr
        raise RuntimeError("no free PNR left for a birth date")

    def name(self, sex: Sex, start: dt.datetime, last: str | None = None) -> Name:
        """A name; now and then long (to exercise abbreviation) or marked."""
        long = self.chance(0.02)
        if long:
            first = self.pick(vocab.LONG_FIRST)
            middle = self.pick(vocab.LONG_MIDDLE)
            last = last or self.pick(vocab.LONG_LAST)
        else:
            first = self.pick(vocab.MALE_FIRST if sex is Sex.MALE else vocab.FEMALE_FIRST)
            middle = self.pick(vocab.MIDDLE) if self.chance(0.4) else ""
            last = last or self.pick(vocab.LAST)
        markers = [self.pick(_MARKERS) if self.chance(0.01) else NameMarker.NONE for _ in "fml"]
        if not middle:
            markers[1] = NameMarker.NONE
        return Name(first, last, middle, markers[0], markers[1], markers[2], start)

    def address(self, moved_in: dt.datetime, status: Status = Status.RESIDENT) -> DanishAddress:
        """A Danish (01), special-road (03/07) or Greenlandic (05) address."""
        greenland = status in (Status.GREENLAND, Status.GREENLAND_SPECIAL_ROAD)
        muni, _, posts = self.pick(
            vocab.GREENLAND_MUNICIPALITIES if greenland else vocab.MUNICIPALITIES
        )
        post, district = self.pick(posts)
        if status in (Status.RESIDENT_SPECIAL_ROAD, Status.GREENLAND_SPECIAL_ROAD):
            road = self.pick(vocab.SPECIAL_ROADS)
            return DanishAddress(
                municipality=muni, road_code=9900 + self.rng.randrange(100), road_name=road,
                post_code=post, post_district=district, road_addressing_name=road[:20],
                moved_in=moved_in, moved_into_municipality=moved_in,
            )  # fmt: skip
        index = self.rng.randrange(len(vocab.GREENLAND_ROADS if greenland else vocab.ROADS))
        road, short = (vocab.GREENLAND_ROADS if greenland else vocab.ROADS)[index]
        floor, door = self._flat()
        arrived = self.stamp(dt.date(1960, 1, 1), moved_in.date())
        previous = self.pick(vocab.MUNICIPALITIES)[0] if self.chance(0.5) else 0
        return DanishAddress(
            municipality=muni,
            road_code=1 + (index * 389 + muni * 17) % 9000,  # same road, same code
            road_name=road,
            house_number=self._house_number(),
            floor=floor,
            door=door,
            building=str(self.rng.randrange(1, 3000)) if greenland else "",
            co_name=f"c/o {self.pick(vocab.LAST)}" if self.chance(0.02) else "",
            locality=self.pick(vocab.LOCALITIES) if self.chance(0.05) else "",
            town=self.pick(vocab.TOWNS) if self.chance(0.1) else "",
            post_code=post,
            post_district=district,
            road_addressing_name=short,
            moved_in=moved_in,
            moved_into_municipality=min(arrived, moved_in),
            previous_municipality=previous,
            moved_out_of_previous=min(arrived, moved_in) if previous else None,
            supplementary=("Indgang fra gården",) if self.chance(0.01) else (),
        )

    def _house_number(self) -> str:
        letter = self.pick("ABC") if self.chance(0.1) else ""
        return f"{self.rng.randrange(1, 250)}{letter}"

    def _flat(self) -> tuple[str, str]:
        if not self.chance(0.4):
            return "", ""
        floor = self.pick(("st", "st", "1", "1", "2", "3", "4", "5", "12", "kl"))
        door = self.pick(("tv", "th", "mf", "tv", "th", "3", "12"))
        return floor, door

    def person(
        self,
        sex: Sex,
        birth: dt.date,
        status: Status = Status.RESIDENT,
        *,
        last: str | None = None,
        status_start: dt.datetime | None = None,
    ) -> Person:
        """A person with the facts everyone has: name, citizenship, church, birthplace."""
        born_at = dt.datetime(birth.year, birth.month, birth.day, self.rng.randrange(24), 0)
        muni, muni_name, _ = self.pick(vocab.MUNICIPALITIES)
        danish = self.chance(0.93)
        country = "5100" if danish else self.pick(vocab.COUNTRIES)[0]
        adult = (REGISTER_DATE.date() - birth).days > 18 * 365
        return Person(
            pnr=self.pnr(birth, sex),
            birth_date=birth,
            sex=sex,
            status=status,
            name=self.name(sex, born_at, last),
            status_start=status_start or born_at,
            occupation=self.pick(vocab.OCCUPATIONS) if adult else "",
            citizenship=Citizenship(country, born_at),
            church=Church(
                ChurchMembership.MEMBER if self.chance(0.72) else ChurchMembership.NOT_MEMBER,
                birth + dt.timedelta(days=60),
            ),
            birthplace=Birthplace(muni, muni_name) if danish else None,
            civil=CivilState(CivilStatus.UNMARRIED, born_at),  # everyone is born unmarried
        )

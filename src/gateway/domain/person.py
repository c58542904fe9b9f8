"""A person as the CPR register holds it: frozen, slotted nouns and closed code lists.

The model carries everything the PRIV (spec §5) and OFF4 (spec §6) records need,
in register terms rather than wire terms: a house number is ``"8A"``, not
``"008A"``; a floor is ``"st"`` or ``"1"``. Renderers turn it into records, and
the modern backend will be built from it, so it names facts, not layouts.

Timestamps carry minutes only (the wire has no seconds). ``Person.to_json`` and
``Person.from_json`` are a compact, lossless storage form: dataclass fields by
name, defaults left out, dates as ``YYYYMMDD`` and timestamps as ``YYYYMMDDHHMM``.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import dataclass

from gateway.domain import _jsonform
from gateway.model import Irregular

#: Spec §6: an unknown parent or spouse is written as ten zeros.
UNKNOWN_PNR = "0" * 10

_MOD11_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)


class Sex(enum.StrEnum):
    """KOEN (spec §8.3)."""

    MALE = "M"
    FEMALE = "K"


class Status(enum.StrEnum):
    """STATUS (spec §8.1)."""

    RESIDENT = "01"
    RESIDENT_SPECIAL_ROAD = "03"
    GREENLAND = "05"
    GREENLAND_SPECIAL_ROAD = "07"
    NO_RESIDENCE = "20"
    ANNULLED = "30"
    DELETED = "50"
    CHANGED = "60"
    DISAPPEARED = "70"
    EMIGRATED = "80"
    DEAD = "90"

    @property
    def is_resident(self) -> bool:
        """Living at a Danish or Greenlandic address (01, 03, 05, 07)."""
        return self.value < "20"


class CivilStatus(enum.StrEnum):
    """CIVST (spec §8.2)."""

    UNMARRIED = "U"
    MARRIED = "G"
    DIVORCED = "F"
    WIDOWED = "E"
    PARTNERSHIP = "P"
    DISSOLVED = "O"
    SURVIVING_PARTNER = "L"
    DEAD = "D"

    @property
    def has_spouse(self) -> bool:
        """Statuses that name a (present, former or deceased) spouse or partner."""
        return self not in (CivilStatus.UNMARRIED, CivilStatus.DEAD)


class NameMarker(enum.StrEnum):
    """Name markers (spec §8.3)."""

    NONE = ""
    ABBREVIATED = "+"
    UNSUPPORTED = "*"
    UNDOCUMENTED = "="


class ProtectionType(enum.StrEnum):
    """BESKYTTYPE of the protections a person can ask for (spec §8.3)."""

    NAME_ADDRESS = "0001"
    LOCAL_DIRECTORY = "0002"
    MARKETING = "0003"


class CustodyType(enum.StrEnum):
    """Custody RELTYP (spec §8.3)."""

    MOTHER = "0003"
    FATHER = "0004"
    OTHER = "0005"
    OTHER_SECOND = "0006"


class GuardianKind(enum.StrEnum):
    """UMYN_RELTYP. project rule: the spec gives no codes; these two are ours."""

    PERSON = "0001"  # the guardian is a person in the register (RELPNR given)
    TEXT = "0002"  # the guardian is known by name and address only


class ChurchMembership(enum.StrEnum):
    """FKIRK. project rule: ``F`` member of the Folkekirke, ``U`` not a member."""

    MEMBER = "F"
    NOT_MEMBER = "U"


@dataclass(frozen=True, slots=True)
class Name:
    """A name in parts, each with its marker, and when it took effect."""

    first: str
    last: str
    middle: str = ""
    first_marker: NameMarker = NameMarker.NONE
    middle_marker: NameMarker = NameMarker.NONE
    last_marker: NameMarker = NameMarker.NONE
    start: dt.datetime | Irregular | None = None  # may carry impossible parts (spec §10)

    @property
    def given(self) -> str:
        """First and middle names, as PRIV's FORNVN holds them."""
        return f"{self.first} {self.middle}" if self.middle else self.first

    @property
    def marker(self) -> NameMarker:
        """One marker for the whole name (AEGTENVN_MRK, MORNVN_MRK …).

        project rule: the first set one of last, first, middle name.
        """
        for marker in (self.last_marker, self.first_marker, self.middle_marker):
            if marker is not NameMarker.NONE:
                return marker
        return NameMarker.NONE


@dataclass(frozen=True, slots=True)
class DanishAddress:
    """A current (or, for the dead, last) address in Denmark or Greenland.

    The codes and the move-in time may be :class:`Irregular` (spec §10): the mainframe
    sends blanks where it has no value, and a move-in time with impossible parts.
    """

    municipality: int | Irregular
    road_code: int | Irregular
    road_name: str
    house_number: str = ""  # "8A", "101"; blank on special road codes
    floor: str = ""  # "st", "kl", "1" … "99"
    door: str = ""  # "tv", "th", "mf" or a door number
    building: str = ""  # BNR, Greenland
    co_name: str = ""
    locality: str = ""
    town: str = ""  # BYNVN, supplementary town name
    post_code: int | Irregular = 0
    post_district: str = ""
    road_addressing_name: str = ""  # VEJADRNVN, at most 20 characters
    moved_in: dt.datetime | Irregular | None = None
    moved_into_municipality: dt.datetime | None = None
    previous_municipality: int = 0
    moved_out_of_previous: dt.datetime | None = None
    supplementary: tuple[str, ...] = ()  # up to 5 lines of 34
    supplementary_start: dt.date | None = None


@dataclass(frozen=True, slots=True)
class ForeignAddress:
    """Where an emigrated person lives: up to 5 lines, the country and when they left."""

    lines: tuple[str, ...]
    country: str  # 4-digit country code
    since: dt.datetime | None = None
    departed: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ContactAddress:
    """An address the person can be reached at, other than where they live."""

    lines: tuple[str, ...]
    start: dt.datetime | None = None
    end: dt.date | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Relative:
    """A spouse or parent as recorded on this person: PNR (or unknown) and name.

    Unknown is ten zeros; the mainframe also sends ten blanks (spec §10), an
    :class:`Irregular` that stays blank. The dates may be :class:`Irregular` too: the
    mainframe writes day or month ``00`` where it does not know them (``1956-03-00``).
    """

    pnr: str | Irregular = UNKNOWN_PNR
    birth_date: dt.date | Irregular | None = None
    name: Name | None = None
    since: dt.date | Irregular | None = None

    def __repr__(self) -> str:  # a PNR never reaches a log through repr
        return f"Relative(pnr=<redacted>, since={self.since!r})"


@dataclass(frozen=True, slots=True)
class Separation:
    """A legal separation, referenced from the civil status."""

    reference: str  # SEP_HENVIS, at most 12 characters
    start: dt.date | None = None


@dataclass(frozen=True, slots=True)
class CivilState:
    """Civil status, since when, and the spouse or partner it concerns."""

    status: CivilStatus
    start: dt.datetime | Irregular | None = None  # may carry impossible parts (spec §10)
    spouse: Relative | None = None
    separation: Separation | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Guardianship:
    """A guardianship over this person and who the guardian is."""

    start: dt.datetime
    kind: GuardianKind
    guardian_name: str
    guardian_address: tuple[str, ...] = ()
    guardian_pnr: str | None = None
    guardian_since: dt.date | None = None
    text_start: dt.date | None = None
    end: dt.date | None = None

    def active_on(self, day: dt.date) -> bool:
        """In force on ``day``."""
        return self.start.date() <= day and (self.end is None or self.end > day)

    def __repr__(self) -> str:
        return f"Guardianship(start={self.start!r}, kind={self.kind!r}, guardian=<redacted>)"


@dataclass(frozen=True, slots=True)
class Protection:
    """One protection (name/address, local directory, marketing) and its period."""

    type: ProtectionType
    start: dt.date
    end: dt.date | None = None

    def active_on(self, day: dt.date) -> bool:
        """In force on ``day``."""
        return self.start <= day and (self.end is None or self.end > day)


@dataclass(frozen=True, slots=True, repr=False)
class Custody:
    """Who has custody of this person (a child)."""

    type: CustodyType
    start: dt.date
    related_pnr: str
    related_since: dt.date | None = None
    end: dt.date | None = None

    def __repr__(self) -> str:
        return f"Custody(type={self.type!r}, start={self.start!r}, related_pnr=<redacted>)"


@dataclass(frozen=True, slots=True)
class Citizenship:
    """Citizenship by country code (``5100`` Denmark)."""

    country: str
    start: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Church:
    """Membership of the Folkekirke."""

    membership: ChurchMembership
    start: dt.date | Irregular | None = None  # may carry day or month 00 (spec §10)


@dataclass(frozen=True, slots=True)
class Birthplace:
    """Where the birth was registered: municipality code and its name (20)."""

    municipality: int
    text: str


@dataclass(frozen=True, slots=True)
class MunicipalCondition:
    """A municipal condition (KOMFORH): type, code, start and a remark (30)."""

    type: str
    code: str
    start: dt.date | None = None
    remark: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    """One numbered note line (40)."""

    number: int
    text: str
    start: dt.date | None = None
    end: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Election:
    """Election data: a 4-digit code and its dates."""

    code: str
    eligible_from: dt.date | None = None
    start: dt.date | None = None
    end: dt.date | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Person:
    """Everything the register knows about one PNR."""

    pnr: str
    birth_date: dt.date
    sex: Sex
    status: Status
    name: Name
    status_start: dt.datetime | None = None
    replaced_by: str = ""  # PNRGAELD: the PNR in force instead (status 50/60)
    occupation: str = ""
    address: DanishAddress | None = None
    foreign: ForeignAddress | None = None
    contact: ContactAddress | None = None
    # Ended contact addresses, most recent first: PRIV 003 and OFF4 006 repeat (spec §10).
    former_contacts: tuple[ContactAddress, ...] = ()
    civil: CivilState | None = None
    guardianship: Guardianship | None = None
    protections: tuple[Protection, ...] = ()
    credit_warning: dt.datetime | None = None  # start; may lie in the future
    children: tuple[str, ...] = ()
    mother: Relative | None = None
    father: Relative | None = None
    custody: tuple[Custody, ...] = ()
    citizenship: Citizenship | None = None
    church: Church | None = None
    birthplace: Birthplace | None = None
    conditions: tuple[MunicipalCondition, ...] = ()
    notes: tuple[Note, ...] = ()
    elections: tuple[Election, ...] = ()
    disappeared: dt.datetime | None = None
    customer_refs: tuple[str, ...] = ()  # up to 5 of 15 characters

    @property
    def contacts(self) -> tuple[ContactAddress, ...]:
        """Every contact address: the current one (if any), then the ended ones."""
        current = (self.contact,) if self.contact is not None else ()
        return (*current, *self.former_contacts)

    def protection(self, kind: ProtectionType, day: dt.date) -> Protection | None:
        """The protection of ``kind`` in force on ``day``, if any."""
        for protection in self.protections:
            if protection.type is kind and protection.active_on(day):
                return protection
        return None

    def to_json(self) -> str:
        """Compact, lossless JSON; defaults are left out."""
        return json.dumps(_jsonform.dump(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Person:
        """The person :meth:`to_json` wrote."""
        return _jsonform.load(cls, json.loads(text))

    def __repr__(self) -> str:  # a PNR never reaches a log through repr
        return f"Person(pnr=<redacted>, status={self.status.value})"


def passes_modulus11(pnr: str) -> bool:
    """The pre-2007 check (spec §9). Failing it never makes a PNR invalid."""
    total = sum(int(d) * w for d, w in zip(pnr, _MOD11_WEIGHTS, strict=True))
    return total % 11 == 0


def century(seventh: int, yy: int) -> int:
    """The century a PNR's 7th digit and two-digit year point at (spec §9 table)."""
    if seventh <= 3:
        return 1900
    if seventh in (4, 9):
        return 2000 if yy <= 36 else 1900
    if yy <= 57:
        return 2000
    return 1800


def birth_date_of(pnr: str) -> dt.date | None:
    """The birth date a 10-digit PNR encodes, or None when it is malformed."""
    if len(pnr) != 10 or not (pnr.isascii() and pnr.isdigit()):
        return None
    yy = int(pnr[4:6])
    try:
        return dt.date(century(int(pnr[6]), yy) + yy, int(pnr[2:4]), int(pnr[0:2]))
    except ValueError:
        return None

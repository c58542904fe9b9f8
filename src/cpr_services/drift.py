"""Realistic drift in the reference services, so shadow comparison has something true to find.

A migrated system rarely differs from the old one at random: it is configured a
little differently, it missed some updates, or it never loaded one source. Each
kind of drift here imitates one of those, deterministically, so that a test can
compute exactly which persons and which fields differ:

- ``standardadr_2023``: the new system is configured with the 2023 address style.
  STANDARDADR is rendered by the gateway from the person and the customer's task,
  so this flips the task's ``address_style`` in the ValidateSession answer.
- ``stale_address=SHARE``: for a fixed share of persons (chosen by a keyed hash of
  the PNR, :meth:`Drift.affects`) the new system still has the previous address:
  a house number two lower on the same road, moved in a year and a day earlier.
- ``missing_record=TYPE``: a source the new system never loaded; the person comes
  without it, so its record is missing from every answer (``050`` credit warnings,
  ``003`` contact addresses, ``004`` civil status; named by their PRIV record type).

Written on the command line as ``--drift standardadr_2023,stale_address=0.1,missing_record=050``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from gateway.domain.person import Person
from gateway.render.task import AddressStyle, Task

#: The demo stack's drift (`make run`): the way a real migration drifts (docs/shadow.md), so that
#: the default shadow has real findings and the default canary holds at 0% (docs/canary.md).
DEMO_DRIFT = "standardadr_2023,stale_address=0.1,missing_record=050"

#: Fixed personalisation: the same PNR is drifted in every process and release.
_PERSON = b"cpr-gw-drift"
#: The share is resolved to one in this many persons.
_BUCKETS = 10_000
#: How much earlier a stale address was moved into.
_STALE_BY = dt.timedelta(days=366)
#: Record type (PRIV numbering) → the person without the source that feeds it.
_SOURCES: dict[str, Callable[[Person], Person]] = {
    "050": lambda person: replace(person, credit_warning=None),
    "003": lambda person: replace(person, contact=None, former_contacts=()),
    "004": lambda person: replace(person, civil=None),
}


@dataclass(frozen=True, slots=True)
class Drift:
    """Which drift the reference services apply; the default is none."""

    #: Render STANDARDADR in the 2023 style instead of the customer's configured one.
    standardadr_2023: bool = False
    #: Share of persons (0-1) answered with their previous address.
    stale_address: float = 0.0
    #: PRIV record type whose source the new system lacks (see ``_SOURCES``), or "".
    missing_record: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.stale_address <= 1.0:
            raise ValueError(f"stale_address: {self.stale_address:g} is not a share from 0 to 1")
        if self.missing_record and self.missing_record not in _SOURCES:
            known = ", ".join(sorted(_SOURCES))
            raise ValueError(f"missing_record: {self.missing_record!r} (known: {known})")

    @classmethod
    def parse(cls, text: str) -> Drift:
        """``standardadr_2023,stale_address=0.1,missing_record=050``; ValueError when wrong."""
        drift = cls()
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, value = item.partition("=")
            if key == "standardadr_2023" and not value:
                drift = replace(drift, standardadr_2023=True)
            elif key == "stale_address" and value:
                drift = replace(drift, stale_address=_share(value))
            elif key == "missing_record" and value:
                drift = replace(drift, missing_record=value)
            else:
                raise ValueError(f"unknown drift {item!r} (known: {_KNOWN})")
        return drift

    @property
    def active(self) -> bool:
        """True when any drift is configured."""
        return self != Drift()

    @property
    def changes_persons(self) -> bool:
        """True when :meth:`apply` may answer a person otherwise than stored."""
        return bool(self.missing_record) or self.stale_address > 0

    def affects(self, pnr: str) -> bool:
        """Whether ``stale_address`` picks this PNR (the same answer on every run and host)."""
        digest = hashlib.blake2b(pnr.encode("ascii"), digest_size=8, person=_PERSON).digest()
        return int.from_bytes(digest, "big") % _BUCKETS < round(self.stale_address * _BUCKETS)

    def apply(self, person: Person) -> Person:
        """``person`` as the drifted system holds it."""
        if self.missing_record:
            person = _SOURCES[self.missing_record](person)
        if self.affects(person.pnr):
            person = _stale(person)
        return person

    def apply_task(self, task: Task) -> Task:
        """The customer's task as the drifted system is configured."""
        if self.standardadr_2023:
            return replace(task, address_style=AddressStyle.STYLE_2023)
        return task

    def __str__(self) -> str:
        parts = ["standardadr_2023"] if self.standardadr_2023 else []
        if self.stale_address:
            parts.append(f"stale_address={self.stale_address:g}")
        if self.missing_record:
            parts.append(f"missing_record={self.missing_record}")
        return ",".join(parts) or "none"


_KNOWN = "standardadr_2023, stale_address=SHARE, missing_record=TYPE"


def _share(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"stale_address: {value!r} is not a number") from None


def _stale(person: Person) -> Person:
    """The previous address on the same road: house number two lower, moved in earlier."""
    address = person.address
    if address is None:
        return person
    moved_in = address.moved_in
    if isinstance(moved_in, dt.datetime):  # an irregular one (spec §10) stays as it is
        moved_in -= _STALE_BY
    return replace(
        person,
        address=replace(
            address, house_number=_previous_number(address.house_number), moved_in=moved_in
        ),
    )


def _previous_number(house_number: str) -> str:
    """``"8A"`` → ``"6A"``, ``"1"`` → ``"3"`` (never below 1); blank stays blank."""
    digits = house_number[: len(house_number) - len(house_number.lstrip("0123456789"))]
    if not digits:
        return house_number
    number = int(digits)
    previous = number - 2 if number > 2 else number + 2
    return f"{previous}{house_number[len(digits) :]}"

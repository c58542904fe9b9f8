"""PRIV family person records (spec §5): 001, 002, 003, 004, 005, 011, 050.

project rule: name/address protection blanks fields but never removes records,
so the shape of an answer does not itself reveal a protection (beyond 001's
protection start, which the spec puts there on purpose).
"""

from __future__ import annotations

import datetime as dt
from functools import partial

from gateway.codec import Record
from gateway.codec.fields import Value
from gateway.codec.records import PRIV_LAYOUTS
from gateway.domain.person import Person, ProtectionType, Status
from gateway.render.address import (
    addressing_name,
    door_code,
    floor_code,
    house_number,
    name_hidden,
    standard_address,
)
from gateway.render.common import fit, lines, record
from gateway.render.task import Task

_record = partial(record, PRIV_LAYOUTS)


def records(person: Person, task: Task, today: dt.date) -> list[Record]:
    """The person records of a PRIV answer, before ordering and sealing."""
    hidden = name_hidden(person, task, today)
    out = [_current(person, task, today, hidden)]
    if person.status is Status.EMIGRATED:
        out.append(_foreign(person, hidden))
    out += _contact(person, hidden)
    out += _civil(person)
    out += _guardian(person, today)
    out += _references(person)
    out += _credit_warning(person)
    return out


def shows_address(person: Person, task: Task) -> bool:
    """Whether 001 carries an address block at all (before protection).

    project rule: residents (01, 03, 05, 07) show their address; the dead (90)
    show their last one only when the task asks; every other status shows none.
    """
    if person.address is None:
        return False
    return person.status.is_resident or (person.status is Status.DEAD and task.deceased_address)


def _current(person: Person, task: Task, today: dt.date, hidden: bool) -> Record:
    guardianship = person.guardianship
    protection = person.protection(ProtectionType.NAME_ADDRESS, today)
    marketing = person.protection(ProtectionType.MARKETING, today)
    values: dict[str, Value] = {
        "FOEDDTO": person.birth_date,
        "KOEN": person.sex.value,
        "STATUS": person.status.value,
        "STATUSHAENSTART": person.status_start,
        "PNRGAELD": person.replaced_by if person.status in (Status.DELETED, Status.CHANGED) else "",
        "UMYNDIG_START": guardianship.start
        if guardianship and guardianship.active_on(today)
        else None,
        "NVNADRBESK_START": _midnight(protection.start) if protection else None,
        "STILLING": fit(person.occupation, 34),
        "REKBESK_START": _midnight(marketing.start) if marketing else None,
    }
    # Protection blanks the whole address block, TILFLYDTO included: a move date
    # narrows down where someone lives.
    if not hidden:
        values |= _names(person, task)
        if shows_address(person, task):
            values |= _address(person, task)
    return _record("001", person.pnr, **values)


def _names(person: Person, task: Task) -> dict[str, Value]:
    name = person.name
    return {
        "ADRNVN": addressing_name(name, task.name_format),
        "FORNVN": fit(name.given, 50),
        "EFTERNVN": fit(name.last, 40),
    }


def _address(person: Person, task: Task) -> dict[str, Value]:
    address = person.address
    assert address is not None  # shows_address checked it
    return {
        "TILFLYDTO": address.moved_in,
        "CONVN": fit(address.co_name, 34),
        "LOKALITET": fit(address.locality, 34),
        "STANDARDADR": standard_address(address, task.address_style),
        "BYNVN": fit(address.town, 34),
        "POSTNR": address.post_code,
        "POSTDISTTXT": fit(address.post_district, 20),
        "KOMKOD": address.municipality,
        "VEJKOD": address.road_code,
        "HUSNR": house_number(address.house_number),
        "ETAGE": floor_code(address.floor),
        "SIDEDOER": door_code(address.door),
        "BNR": fit(address.building, 4),
        "VEJADRNVN": fit(address.road_addressing_name, 20),
    }


def _foreign(person: Person, hidden: bool) -> Record:
    """Spec §5: status 80 is always followed by a 002.

    project rule: when the register knows no foreign address, that 002 is blank.
    """
    foreign = person.foreign
    if foreign is None:
        return _record("002", person.pnr)
    return _record(
        "002", person.pnr, UDLANDADR_DTO=foreign.since, **lines("UDLANDADR", foreign.lines, hidden)
    )


def _contact(person: Person, hidden: bool) -> list[Record]:
    """One 003 per contact address: the current one, then the ended ones (spec §10).

    project rule: PRIV's 003 has no end date, so an ended address shows its start only.
    """
    return [
        _record(
            "003",
            person.pnr,
            KONTAKTADR_DTO=contact.start,
            **lines("KONTAKTADR", contact.lines, hidden),
        )
        for contact in person.contacts
    ]


def _civil(person: Person) -> list[Record]:
    civil = person.civil
    if civil is None:
        return []
    return [_record("004", person.pnr, CIVST=civil.status.value, CIVST_START=civil.start)]


def _guardian(person: Person, today: dt.date) -> list[Record]:
    """project rule: 005 is written only while the guardianship is in force."""
    g = person.guardianship
    if g is None or not g.active_on(today):
        return []
    fields = lines("VAERGEADR", g.guardian_address)
    return [_record("005", person.pnr, VAERGE_ADRNVN=fit(g.guardian_name, 34), **fields)]


def _references(person: Person) -> list[Record]:
    refs = person.customer_refs[:5]
    if not refs:
        return []
    return [
        _record("011", person.pnr, **{f"KUNDEREF{i + 1}": fit(r, 15) for i, r in enumerate(refs)})
    ]


def _credit_warning(person: Person) -> list[Record]:
    start = person.credit_warning
    if start is None:
        return []
    return [_record("050", person.pnr, KREDITADVTYPE="0005", KREDITADV_START=start)]


def _midnight(day: dt.date) -> dt.datetime:
    """project rule: protections are kept as days; 001 writes their start as 00:00."""
    return dt.datetime(day.year, day.month, day.day)

"""Names and addresses as the records write them (spec §5, §8.4), and who may see them.

Pure functions from register values to field text. Every result fits its field;
text is returned right-trimmed, as the codec decodes it, so a rendered record
equals its own decoded bytes.
"""

from __future__ import annotations

import datetime as dt

from gateway.domain.person import DanishAddress, Name, Person, ProtectionType
from gateway.render.common import fit
from gateway.render.task import AddressStyle, NameFormat, Task

ADRNVN_WIDTH = 34
STANDARDADR_WIDTH = 34


def addressing_name(name: Name, style: NameFormat, width: int = ADRNVN_WIDTH) -> str:
    """ADRNVN in the task's format, abbreviated to fit ``width`` (34).

    project rule: when the full name is too long, middle names become initials,
    then every given name but the first, then all of them; a last name that still
    does not fit is cut (the spec caps ADRNVN at 34, so this cut is sanctioned).
    """
    given = [*name.first.split(), *name.middle.split()]
    first_count = len(name.first.split())
    for keep in (len(given), first_count, 1, 0):
        words = [w if i < keep else f"{w[0]}." for i, w in enumerate(given)]
        text = _join_name(name.last, " ".join(words), style)
        if len(text) <= width:
            return text
    return text[:width].rstrip(" ")


def _join_name(last: str, given: str, style: NameFormat) -> str:
    if not given:
        return last
    if style is NameFormat.LAST_FIRST:
        return f"{last},{given}"
    return f"{given} {last}"


def house_number(raw: str) -> str:
    """HUSNR: three digits and a letter or space (``"8A"`` → ``"008A"``, ``"1"`` → ``"001"``).

    Returned right-trimmed; the field's padding restores the trailing space.
    """
    digits = raw[: len(raw) - len(raw.lstrip("0123456789"))]
    letter = raw[len(digits) :].strip()[:1].upper()
    return f"{digits[-3:].zfill(3)}{letter}" if raw else ""


def floor_code(raw: str) -> str:
    """ETAGE: ``st``, ``kl`` or a two-digit floor (``"1"`` → ``"01"``)."""
    return raw.zfill(2)[-2:] if raw.isdigit() else raw[:2]


def door_code(raw: str) -> str:
    """SIDEDOER, right-aligned in 4 (``"tv"`` → ``"  tv"``).

    project rule: a door number is right-aligned like a side (``"3"`` → ``"   3"``).
    """
    return raw[-4:].rjust(4) if raw else ""


def standard_address(address: DanishAddress, style: AddressStyle) -> str:
    """STANDARDADR in the configured style, at most 34 characters.

    Historic: ``Boulevarden 101,1 mf``, ``Industrivænget 2,st tv``.
    2023: ``Strandvejen 123A, st. tv``, ``Ahlefeldtsgade 22, 2.``.
    project rule: when the road name makes it too long, the road addressing name
    (VEJADRNVN, at most 20) is used instead.
    """
    for road in (address.road_name, address.road_addressing_name):
        text = _standard(road, address, style)
        if len(text) <= STANDARDADR_WIDTH:
            return text
    return fit(text, STANDARDADR_WIDTH)


def _standard(road: str, address: DanishAddress, style: AddressStyle) -> str:
    street = f"{road} {address.house_number}".rstrip()
    floor, door = address.floor, address.door
    if not (floor or door):
        return street
    if style is AddressStyle.HISTORIC:
        floor_text = str(int(floor)) if floor.isdigit() else floor
        return f"{street},{floor_text} {door}".rstrip() if floor else f"{street} {door}"
    floor_text = f"{int(floor)}." if floor.isdigit() else f"{floor}." if floor else ""
    return f"{street}, {floor_text} {door}".rstrip().replace(",  ", ", ")


def name_hidden(person: Person, task: Task, today: dt.date) -> bool:
    """Whether the task withholds this person's name and address (active 0001 protection)."""
    if not task.exclude_protected:
        return False
    return person.protection(ProtectionType.NAME_ADDRESS, today) is not None

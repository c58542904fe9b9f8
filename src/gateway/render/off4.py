"""OFF4 (authority) family person records (spec §6): 001-020 and 050.

project rules for OFF4:

* Name/address protection (with ``exclude_protected``) is rendered as in PRIV:
  the person's own name and address fields are blanked in 002, 003, 005, 006
  and 008; no record is removed, and 004 still says which protection applies.
  Relatives' names (012, 015) are the relatives' data and stay.
* ``deceased_address`` is a PRIV parameter: in OFF4 the dead have no 002 and
  their 003 carries only the addressing name (spec §6 for status 30 and above).
* 004 is written for every protection the register holds, ended ones included
  (SLET_DT says when it ended); likewise 017 for an ended guardianship.
* Names of relatives (AEGTENVN, MORNVN, FARNVN) use the task's name format, at
  most 34, and carry one marker: the first set one of last, first, middle name.
* UMRK (uncertainty) fields are blank: the register holds no uncertain dates.
* START_DT-PERSON is the birth date; SLUT_DT-PERSON is the status start of the
  statuses that end a record (30, 50, 60, 90), blank otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial

from gateway.codec import Record
from gateway.codec.fields import Value
from gateway.codec.records import OFF4_LAYOUTS
from gateway.domain.person import UNKNOWN_PNR, Name, Person, Relative, Status
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

_record = partial(record, OFF4_LAYOUTS)
_ENDED = (Status.ANNULLED, Status.DELETED, Status.CHANGED, Status.DEAD)


class _Context:
    """One rendering: the person, the task, the day, and whether names are hidden."""

    __slots__ = ("hidden", "person", "pnr", "task", "today")

    def __init__(self, person: Person, task: Task, today: dt.date) -> None:
        self.person = person
        self.pnr = person.pnr
        self.task = task
        self.today = today
        self.hidden = name_hidden(person, task, today)

    def name(self, name: Name | None) -> str:
        return addressing_name(name, self.task.name_format) if name else ""


def records(person: Person, task: Task, today: dt.date) -> list[Record]:
    """The person records of an OFF4 answer the task asks for, before sealing."""
    ctx = _Context(person, task, today)
    out: list[Record] = []
    for rectype, render in _RENDERERS:
        if rectype in task.off4_records:
            out.extend(render(ctx))
    return out


def _person(ctx: _Context) -> list[Record]:
    p = ctx.person
    ended = p.status_start.date() if p.status in _ENDED and p.status_start else None
    return [
        _record(
            "001",
            ctx.pnr,
            PNRGAELD=p.replaced_by if p.status in (Status.DELETED, Status.CHANGED) else "",
            STATUS=p.status.value,
            STATUSHAENSTART=p.status_start,
            KOEN=p.sex.value,
            FOED_DT=p.birth_date,
            START_DT_PERSON=p.birth_date,
            SLUT_DT_PERSON=ended,
            STILLING=fit(p.occupation, 34),
        )
    ]


def _address(ctx: _Context) -> list[Record]:
    p, a = ctx.person, ctx.person.address
    if a is None or not p.status.is_resident:  # spec §6: no 002 for the dead
        return []
    if ctx.hidden:
        return [_record("002", ctx.pnr)]
    return [
        _record(
            "002",
            ctx.pnr,
            KOMKOD=a.municipality,
            VEJKOD=a.road_code,
            HUSNR=house_number(a.house_number),
            ETAGE=floor_code(a.floor),
            SIDEDOER=door_code(a.door),
            BNR=fit(a.building, 4),
            CONVN=fit(a.co_name, 34),
            TILFLYDTO=a.moved_in,
            TILFLYKOMDTO=a.moved_into_municipality,
            FRAFLYKOMKOD=a.previous_municipality,
            FRAFLYKOMDTO=a.moved_out_of_previous,
            START_MYNKOD_ADRTXT=a.municipality if a.supplementary else 0,
            START_DT_ADRTXT=a.supplementary_start,
            **lines("SUPLADR", a.supplementary),
        )
    ]


def _clear_address(ctx: _Context) -> list[Record]:
    p, a = ctx.person, ctx.person.address
    if ctx.hidden:
        return [_record("003", ctx.pnr)]
    values: dict[str, Value] = {"ADRNVN": ctx.name(p.name)}
    # Spec §6: from status 30 on, 003 carries the addressing name alone.
    if a is not None and p.status.is_resident:
        values |= {
            "CONVN": fit(a.co_name, 34),
            "LOKALITET": fit(a.locality, 34),
            "STANDARDADR": standard_address(a, ctx.task.address_style),
            "BYNVN": fit(a.town, 34),
            "POSTNR": a.post_code,
            "POSTDISTTXT": fit(a.post_district, 20),
            "KOMKOD": a.municipality,
            "VEJKOD": a.road_code,
            "HUSNR": house_number(a.house_number),
            "ETAGE": floor_code(a.floor),
            "SIDEDOER": door_code(a.door),
            "BNR": fit(a.building, 4),
            "VEJADRNVN": fit(a.road_addressing_name, 20),
        }
    return [_record("003", ctx.pnr, **values)]


def _protections(ctx: _Context) -> list[Record]:
    return [
        _record("004", ctx.pnr, BESKYTTYPE=p.type.value, START_DT=p.start, SLET_DT=p.end)
        for p in ctx.person.protections
    ]


def _foreign(ctx: _Context) -> list[Record]:
    f = ctx.person.foreign
    if f is None:
        return []
    fields = lines("UDLANDADR", f.lines, ctx.hidden)
    return [_record("005", ctx.pnr, UDR_LANDEKOD=f.country, UDRDTO=f.departed, **fields)]


def _contact(ctx: _Context) -> list[Record]:
    """One 006 per contact address: the current one, then the ended ones (spec §10)."""
    return [
        _record(
            "006",
            ctx.pnr,
            START_DT=c.start.date() if c.start else None,
            SLET_DT=c.end,
            **lines("KONTAKTADR", c.lines, ctx.hidden),
        )
        for c in ctx.person.contacts
    ]


def _disappeared(ctx: _Context) -> list[Record]:
    gone = ctx.person.disappeared
    return [_record("007", ctx.pnr, FORSVINDDTO=gone)] if gone else []


def _name(ctx: _Context) -> list[Record]:
    n = ctx.person.name
    if ctx.hidden:
        return [_record("008", ctx.pnr, NVNHAENSTART=n.start)]
    return [
        _record(
            "008",
            ctx.pnr,
            FORNVN=fit(n.first, 50),
            FORNVN_MRK=n.first_marker.value,
            MELNVN=fit(n.middle, 40),
            MELNVN_MRK=n.middle_marker.value,
            EFTERNVN=fit(n.last, 40),
            EFTERNVN_MRK=n.last_marker.value,
            NVNHAENSTART=n.start,
            ADRNVN=ctx.name(n),
        )
    ]


def _birthplace(ctx: _Context) -> list[Record]:
    b = ctx.person.birthplace
    if b is None:
        return []
    return [
        _record(
            "009", ctx.pnr, START_MYNKOD_FOEDESTED=b.municipality, MYNTXT_FOEDESTED=fit(b.text, 20)
        )
    ]


def _citizenship(ctx: _Context) -> list[Record]:
    c = ctx.person.citizenship
    return [_record("010", ctx.pnr, LANDEKOD=c.country, HAENSTART=c.start)] if c else []


def _church(ctx: _Context) -> list[Record]:
    c = ctx.person.church
    return [_record("011", ctx.pnr, FKIRK=c.membership.value, START_DT=c.start)] if c else []


def _civil(ctx: _Context) -> list[Record]:
    c = ctx.person.civil
    if c is None:
        return []
    spouse = c.spouse or Relative()
    return [
        _record(
            "012",
            ctx.pnr,
            CIVST=c.status.value,
            AEGTEPNR=spouse.pnr,
            AEGTEFOED_DT=spouse.birth_date,
            AEGTENVN=ctx.name(spouse.name),
            AEGTENVN_MRK=spouse.name.marker.value if spouse.name else "",
            HAENSTART=c.start,
            SEP_HENVIS=fit(c.separation.reference, 12) if c.separation else "",
        )
    ]


def _separation(ctx: _Context) -> list[Record]:
    c = ctx.person.civil
    if c is None or c.separation is None:
        return []
    s = c.separation
    return [_record("013", ctx.pnr, SEP_HENVIS=fit(s.reference, 12), START_DT=s.start)]


def _children(ctx: _Context) -> list[Record]:
    return [_record("014", ctx.pnr, BARN_PNR=child) for child in ctx.person.children]


def _parents(ctx: _Context) -> list[Record]:
    mother, father = ctx.person.mother, ctx.person.father
    if mother is None and father is None:
        return []
    return [_record("015", ctx.pnr, **_parent(ctx, "MOR", mother), **_parent(ctx, "FAR", father))]


def _parent(ctx: _Context, role: str, parent: Relative | None) -> dict[str, Value]:
    parent = parent or Relative()
    return {
        f"{role}_DT": parent.since,
        f"PNR{role}": parent.pnr or UNKNOWN_PNR,
        f"{role}_FOED_DT": parent.birth_date,
        f"{role}NVN": ctx.name(parent.name),
        f"{role}NVN_MRK": parent.name.marker.value if parent.name else "",
    }


def _custody(ctx: _Context) -> list[Record]:
    return [
        _record(
            "016",
            ctx.pnr,
            RELTYP=c.type.value,
            START_DT=c.start,
            SLET_DT=c.end,
            RELPNR=c.related_pnr,
            START_DT_RELPNR=c.related_since,
        )
        for c in ctx.person.custody
    ]


def _guardianship(ctx: _Context) -> list[Record]:
    g = ctx.person.guardianship
    if g is None:
        return []
    return [
        _record(
            "017",
            ctx.pnr,
            START_DT=g.start.date(),
            SLET_DT=g.end,
            UMYN_RELTYP=g.kind.value,
            RELPNR=g.guardian_pnr or UNKNOWN_PNR,
            START_DT_RELPNR=g.guardian_since,
            VAERGE_NAVN=fit(g.guardian_name, 34),
            START_DT_RELPNR_TXT=g.text_start,
            **lines("RELTXT", g.guardian_address),
        )
    ]


def _conditions(ctx: _Context) -> list[Record]:
    return [
        _record(
            "018",
            ctx.pnr,
            KOMFORHTYP=fit(c.type, 1),
            KOMFORHKOD=fit(c.code, 5),
            START_DT=c.start,
            BEMAERK=fit(c.remark, 30),
        )
        for c in ctx.person.conditions
    ]


def _notes(ctx: _Context) -> list[Record]:
    return [
        _record(
            "019",
            ctx.pnr,
            NOTATNR=f"{n.number % 100:02d}",
            NOTATLINIE=fit(n.text, 40),
            START_DT=n.start,
            SLET_DT=n.end,
        )
        for n in ctx.person.notes
    ]


def _elections(ctx: _Context) -> list[Record]:
    return [
        _record(
            "020",
            ctx.pnr,
            VALGKODE=e.code,
            VALGRET_DT=e.eligible_from,
            START_DT=e.start,
            SLET_DT=e.end,
        )
        for e in ctx.person.elections
    ]


def _credit_warning(ctx: _Context) -> list[Record]:
    start = ctx.person.credit_warning
    return [_record("050", ctx.pnr, KREDITADVTYPE="0005", KREDITADV_START=start)] if start else []


_RENDERERS: tuple[tuple[str, Callable[[_Context], list[Record]]], ...] = (
    ("001", _person),
    ("002", _address),
    ("003", _clear_address),
    ("004", _protections),
    ("005", _foreign),
    ("006", _contact),
    ("007", _disappeared),
    ("008", _name),
    ("009", _birthplace),
    ("010", _citizenship),
    ("011", _church),
    ("012", _civil),
    ("013", _separation),
    ("014", _children),
    ("015", _parents),
    ("016", _custody),
    ("017", _guardianship),
    ("018", _conditions),
    ("019", _notes),
    ("020", _elections),
    ("050", _credit_warning),
)

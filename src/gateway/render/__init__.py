"""Render a register person into the records of a CPR Direkte answer. Pure: no I/O.

``render_answer`` is what the emulator (and the gateway's modern side) call to
produce the data part of a lookup answer for one person, one family and one
customer task. The result is sealed: 000 first, 999 last, at most 2880 bytes.
"""

from __future__ import annotations

import datetime as dt

from gateway.codec import Record, seal
from gateway.codec.records import LAYOUTS
from gateway.domain.person import Person
from gateway.model import Family
from gateway.render import off4, priv
from gateway.render.common import record
from gateway.render.task import AddressStyle, NameFormat, Task

__all__ = ["AddressStyle", "NameFormat", "Task", "render_answer"]


def render_answer(
    person: Person, family: Family, task: Task, customer: int, today: dt.date
) -> tuple[Record, ...]:
    """The complete, sealed records answering a lookup of ``person``."""
    start = record(
        LAYOUTS[family],
        "000",
        "0" * 10,
        OPGAVENR=f"{customer:04d}{task.task_suffix}",
        PRODDTO=today,
        FORRIGE_PRODDTO=None,
    )
    if family is Family.PRIV:
        body = priv.records(person, task, today)
    elif family is Family.OFF4:
        body = off4.records(person, task, today)
    else:  # pragma: no cover - Family has exactly these two members
        raise ValueError(f"no renderer for family {family}")
    return seal([start, *body], family)

"""Helpers every record renderer shares: complete records and fitted text."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.codec import Record
from gateway.codec.fields import Value
from gateway.codec.layout import Layout
from gateway.errors import CodecError


def record(layouts: Mapping[str, Layout], rectype: str, pnr: str, **values: Value) -> Record:
    """A record with every field of its layout: given values, the rest empty.

    Complete records compare equal to what the codec decodes from their bytes.
    """
    fields = layouts[rectype].blank()
    del fields["RECTYPE"]  # implied by Record.type
    fields["PNR"] = pnr
    unknown = set(values) - set(fields)
    if unknown:
        raise KeyError(f"{rectype}: no field {sorted(unknown)[0]}")
    fields.update(values)
    return Record(rectype, fields)


def fit(text: str, width: int) -> str:
    """``text`` right-trimmed, as the codec decodes it; it must fit ``width``.

    A value longer than its field is an encoding error, never a silent cut: an
    answer with a truncated name or address is a wrong answer. The generator keeps
    every value inside its field (tested); other sources fail loudly here.
    """
    trimmed = text.rstrip(" ")
    if len(trimmed) > width:
        raise CodecError(f"{len(trimmed)} characters do not fit a field of {width}")
    return trimmed


def lines(prefix: str, values: tuple[str, ...], hidden: bool = False) -> dict[str, Value]:
    """Fields prefix1..prefix5 of 34 characters from ``values``; blank when ``hidden``."""
    shown = () if hidden else values
    padded = (*shown, *("",) * _LINES)[:_LINES]
    return {f"{prefix}{i + 1}": fit(value, _LINE_WIDTH) for i, value in enumerate(padded)}


_LINES = 5
_LINE_WIDTH = 34

"""Record layouts as data: a layout is a table of fields; encode and decode walk it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.codec.fields import (
    ENCODING,
    Decoder,
    Encoder,
    FieldSpec,
    Kind,
    Value,
    codecs_of,
    is_printable_latin1,
)
from gateway.errors import CodecError

_Step = tuple[str, FieldSpec, Encoder, Decoder, Value, slice]


@dataclass(frozen=True, slots=True)
class Layout:
    """A fixed-width record: its name, total length, and fields that tile it exactly."""

    name: str
    length: int
    fields: tuple[FieldSpec, ...]
    by_name: Mapping[str, FieldSpec] = field(init=False, repr=False, compare=False)
    #: Per field, in order: (name, spec, encoder, decoder, its empty value, its slice).
    _plan: tuple[_Step, ...] = field(init=False, repr=False, compare=False)
    #: (name, slice) per field when every field is TEXT (:meth:`texts`); else None.
    _text_spans: tuple[tuple[str, slice], ...] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        offset = 0
        for spec in self.fields:
            if spec.start != offset:
                raise ValueError(f"layout {self.name}: {spec.name} starts at {spec.pos}")
            offset = spec.end
        if offset != self.length:
            raise ValueError(f"layout {self.name}: fields cover {offset} of {self.length} bytes")
        names = {spec.name: spec for spec in self.fields}
        if len(names) != len(self.fields):
            raise ValueError(f"layout {self.name}: duplicate field names")
        object.__setattr__(self, "by_name", MappingProxyType(names))
        plan = tuple(
            (s.name, s, *codecs_of(s.kind), s.empty(), slice(s.start, s.end)) for s in self.fields
        )
        object.__setattr__(self, "_plan", plan)
        all_text = all(spec.kind is Kind.TEXT for spec in self.fields)
        spans = tuple((name, where) for name, *_rest, where in plan) if all_text else None
        object.__setattr__(self, "_text_spans", spans)

    def texts(self, data: bytes) -> dict[str, str] | None:
        """What :meth:`decode` returns, made in one step, when every field of the layout is
        TEXT and ``data`` is one printable Latin-1 record of it (then no field can be
        irregular): each field's text, right-trimmed. None otherwise: decode it instead."""
        spans = self._text_spans
        if spans is None or len(data) != self.length or not is_printable_latin1(data):
            return None
        text = data.decode(ENCODING)
        return {name: text[where].rstrip(" ") for name, where in spans}

    def decode(self, data: bytes) -> dict[str, Value]:
        """Decode exactly one record's bytes into field values by name. Total: a field
        whose bytes are not what its kind promises is an :class:`~gateway.model.Irregular`."""
        if len(data) != self.length:
            raise CodecError(f"{self.name}: {len(data)} bytes, layout needs {self.length}")
        if is_printable_latin1(data):
            # The whole record at once: Latin-1 is one character per byte, so the fields'
            # slices of the text are their slices of the bytes (once per record, not per field).
            text = data.decode(ENCODING)
            try:
                return {
                    name: decode(spec, text[where])
                    for name, spec, _encode, decode, _empty, where in self._plan
                }
            except ValueError:
                pass
        # Field by field, slower: the fields that are not what they promise become Irregular.
        return {spec.name: spec.decode(data[spec.start : spec.end]) for spec in self.fields}

    def encode(self, values: Mapping[str, Value]) -> bytes:
        """Encode values by name; fields not given take their empty value."""
        unknown = values.keys() - self.by_name.keys()
        if unknown:
            raise CodecError(f"{self.name}: no field named {sorted(unknown)[0]!r}")
        # Each encoder returns exactly its field's width in characters; the record is
        # turned into bytes and checked for printable Latin-1 once, not once per field.
        try:
            parts = [
                encode(spec, values.get(name, empty))
                for name, spec, encode, _decode, empty, _where in self._plan
            ]
            data = "".join(parts).encode(ENCODING)
        except (CodecError, UnicodeEncodeError):
            data = b"\x00"  # an Irregular value, or a field at fault: see below
        if is_printable_latin1(data):
            return data
        # Field by field, slower: writes Irregular values as they came, names a field at fault.
        return b"".join(
            spec.encode(values[spec.name] if spec.name in values else spec.empty())
            for spec in self.fields
        )

    def blank(self) -> dict[str, Value]:
        """Every field at its empty value (a new dict: callers fill it in)."""
        return {name: empty for name, _spec, _encode, _decode, empty, _where in self._plan}


#: One row of a layout table: (name, 1-based position, length, kind).
Row = tuple[str, int, int, Kind]


def table(name: str, length: int, *rows: Row) -> Layout:
    """Build a layout from (name, pos, length, kind) rows, as the spec lists them."""
    return Layout(name, length, tuple(FieldSpec(n, p, ln, k) for n, p, ln, k in rows))


def text(name: str, pos: int, length: int) -> Row:
    """Row for an A field."""
    return (name, pos, length, Kind.TEXT)


def num(name: str, pos: int, length: int) -> Row:
    """Row for an N field."""
    return (name, pos, length, Kind.NUM)


def digits(name: str, pos: int, length: int) -> Row:
    """Row for a digit string kept as text (PNR, codes with meaningful zeros)."""
    return (name, pos, length, Kind.DIGITS)


def date(name: str, pos: int) -> Row:
    """Row for a YYYYMMDD date."""
    return (name, pos, 8, Kind.DATE)


def stamp(name: str, pos: int) -> Row:
    """Row for a YYYYMMDDHHMM timestamp."""
    return (name, pos, 12, Kind.STAMP)


def isodate(name: str, pos: int) -> Row:
    """Row for a YYYY-MM-DD date."""
    return (name, pos, 10, Kind.ISODATE)

"""Field kinds of fixed-width records: how one value becomes bytes and back.

Every kind is strict on encode (a value that does not fit is an error, never
silently truncated) and total on decode: bytes that are not what the kind promises
(a blank ``N`` field, a date with day ``00``, a minute ``99``) decode to an
:class:`~gateway.model.Irregular` that keeps them, and encoding that value gives the
same bytes back (spec §10). An irregular value is never made up here: whoever encodes
one has said so explicitly. Only the codec's own error type ever leaves here.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import CodecError
from gateway.model import Irregular

#: A decoded field value.
Value = str | int | dt.date | dt.datetime | Irregular | None

ENCODING = "latin-1"

# Printable Latin-1: ASCII 0x20-0x7E and 0xA0-0xFF. Control characters (C0, DEL
# and C1) never occur in CPR Direkte records.
_PRINTABLE = frozenset(range(0x20, 0x7F)) | frozenset(range(0xA0, 0x100))


_PRINTABLE_BYTES = bytes(sorted(_PRINTABLE))


def is_printable_latin1(data: bytes) -> bool:
    """True when every byte is a printable Latin-1 character."""
    # Deleting every printable byte leaves nothing; done in C, as every field of every
    # answer passes through here (a per-byte loop cost a lookup measurably: docs/benchmarks.md,
    # "Where the time goes, and what was changed": printable-Latin-1 check).
    return not data.translate(None, _PRINTABLE_BYTES)


def to_wire(text: str) -> bytes:
    """Latin-1 bytes of ``text``; a character outside printable Latin-1 is an error."""
    try:
        data = text.encode(ENCODING)
    except UnicodeEncodeError as exc:
        raise CodecError(f"character {text[exc.start]!r} is not Latin-1") from None
    if not is_printable_latin1(data):
        raise CodecError(f"control character in {text!r}")
    return data


class Kind(enum.Enum):
    """How a field's bytes are read; the letters match the spec's notation."""

    TEXT = "A"  # left-aligned, space padded; decodes to str without trailing spaces
    NUM = "N"  # right-aligned digits, zero padded; decodes to int
    DIGITS = "D"  # digits kept as text (PNR, codes with leading zeros)
    DATE = "YYYYMMDD"  # all zeros = None
    STAMP = "YYYYMMDDHHMM"  # all zeros = None
    ISODATE = "YYYY-MM-DD"  # blank = None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a layout: 1-based inclusive position, as the spec writes it."""

    name: str
    pos: int
    length: int
    kind: Kind = Kind.TEXT

    @property
    def start(self) -> int:
        """0-based offset of the field in its record."""
        return self.pos - 1

    @property
    def end(self) -> int:
        """0-based exclusive end offset."""
        return self.pos - 1 + self.length

    def empty(self) -> Value:
        """The value of an unused field: blank text, zero, no date."""
        if self.kind is Kind.TEXT:
            return ""
        if self.kind is Kind.NUM:
            return 0
        if self.kind is Kind.DIGITS:
            return "0" * self.length
        return None

    def decode(self, raw: bytes) -> Value:
        """Decode this field's bytes (exactly ``length`` of them); never fails: bytes
        that are not what the kind promises come back as an :class:`Irregular`."""
        text = raw.decode(ENCODING)
        if not is_printable_latin1(raw):
            return Irregular(text)
        try:
            return _DECODERS[self.kind](self, text)
        except ValueError:
            return Irregular(text)

    def encode(self, value: Value) -> bytes:
        """Encode ``value`` into exactly ``length`` bytes."""
        if isinstance(value, Irregular):
            return self._encode_irregular(value)
        text = _ENCODERS[self.kind](self, value)
        data = to_wire(text)
        if len(data) != self.length:
            raise CodecError(
                f"{self.name}: {len(data)} characters do not fit a field of {self.length}"
            )
        return data

    def _encode_irregular(self, value: Irregular) -> bytes:
        try:
            data = value.text.encode(ENCODING)
        except UnicodeEncodeError:
            raise CodecError(f"{self.name}: irregular value is not Latin-1") from None
        if len(data) != self.length:
            raise CodecError(f"{self.name}: irregular value of {len(data)} for {self.length}")
        return data


def _decode_text(spec: FieldSpec, text: str) -> Value:
    return text.rstrip(" ")


def _decode_num(spec: FieldSpec, text: str) -> Value:
    if not text.isascii() or not text.isdigit():
        raise ValueError(text)
    return int(text)


def _decode_digits(spec: FieldSpec, text: str) -> Value:
    if not text.isascii() or not text.isdigit():
        raise ValueError(text)
    return text


def _decode_date(spec: FieldSpec, text: str) -> Value:
    if text == "0" * 8:
        return None
    if not text.isascii() or not text.isdigit():
        raise ValueError(text)
    return dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))


def _decode_stamp(spec: FieldSpec, text: str) -> Value:
    if text == "0" * 12:
        return None
    if not text.isascii() or not text.isdigit():
        raise ValueError(text)
    return dt.datetime(
        int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12])
    )


def _decode_isodate(spec: FieldSpec, text: str) -> Value:
    if text == " " * 10:
        return None
    if not text.isascii() or len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(text)
    digits = text[0:4] + text[5:7] + text[8:10]
    if not digits.isdigit():
        raise ValueError(text)
    return dt.date(int(text[0:4]), int(text[5:7]), int(text[8:10]))


def _encode_text(spec: FieldSpec, value: Value) -> str:
    if not isinstance(value, str):
        raise CodecError(f"{spec.name}: text field given {type(value).__name__}")
    if len(value) > spec.length:
        raise CodecError(f"{spec.name}: {len(value)} characters do not fit {spec.length}")
    return value.ljust(spec.length)


def _encode_num(spec: FieldSpec, value: Value) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CodecError(f"{spec.name}: numeric field given {value!r}")
    text = str(value).rjust(spec.length, "0")
    if len(text) > spec.length:
        raise CodecError(f"{spec.name}: {value} has more than {spec.length} digits")
    return text


def _encode_digits(spec: FieldSpec, value: Value) -> str:
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
        raise CodecError(f"{spec.name}: digit field given a non-digit value")
    if len(value) != spec.length:
        raise CodecError(f"{spec.name}: needs exactly {spec.length} digits")
    return value


def _encode_date(spec: FieldSpec, value: Value) -> str:
    if value is None:
        return "0" * 8
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise CodecError(f"{spec.name}: date field given {type(value).__name__}")
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def _encode_stamp(spec: FieldSpec, value: Value) -> str:
    if value is None:
        return "0" * 12
    if not isinstance(value, dt.datetime):
        raise CodecError(f"{spec.name}: timestamp field given {type(value).__name__}")
    if value.second or value.microsecond or value.tzinfo is not None:
        raise CodecError(f"{spec.name}: timestamp carries more than minutes")
    return f"{value.year:04d}{value.month:02d}{value.day:02d}{value.hour:02d}{value.minute:02d}"


def _encode_isodate(spec: FieldSpec, value: Value) -> str:
    if value is None:
        return " " * 10
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise CodecError(f"{spec.name}: date field given {type(value).__name__}")
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


_DECODERS: dict[Kind, Decoder] = {
    Kind.TEXT: _decode_text,
    Kind.NUM: _decode_num,
    Kind.DIGITS: _decode_digits,
    Kind.DATE: _decode_date,
    Kind.STAMP: _decode_stamp,
    Kind.ISODATE: _decode_isodate,
}

#: How a field's value becomes its text (exactly ``length`` characters), and back.
Encoder = Callable[[FieldSpec, Value], str]
Decoder = Callable[[FieldSpec, str], Value]


def codecs_of(kind: Kind) -> tuple[Encoder, Decoder]:
    """The (encoder, decoder) of ``kind``: what :meth:`FieldSpec.encode` and
    :meth:`FieldSpec.decode` use, without the bytes and checks around them, for a layout
    that converts a whole record at once."""
    return _ENCODERS[kind], _DECODERS[kind]


_ENCODERS: dict[Kind, Encoder] = {
    Kind.TEXT: _encode_text,
    Kind.NUM: _encode_num,
    Kind.DIGITS: _encode_digits,
    Kind.DATE: _encode_date,
    Kind.STAMP: _encode_stamp,
    Kind.ISODATE: _encode_isodate,
}

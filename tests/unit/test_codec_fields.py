"""Field kinds: strict encode, strict decode, empty values."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.codec.fields import FieldSpec, Kind
from gateway.errors import CodecError
from gateway.model import Irregular


def test_text_pads_right_and_decodes_without_trailing_spaces() -> None:
    """A field is left-aligned and space padded; decoding drops the padding only."""
    spec = FieldSpec("X", 1, 6)
    assert spec.encode("Æble") == "Æble  ".encode("latin-1")
    assert spec.decode(b"  tv  ") == "  tv"


def test_text_that_does_not_fit_is_an_error_not_a_truncation() -> None:
    """Seven characters never become six."""
    with pytest.raises(CodecError, match="do not fit"):
        FieldSpec("X", 1, 6).encode("Abcdefg")


@pytest.mark.parametrize("value", ["€uro", "naïve\n", "Ł"])
def test_text_outside_printable_latin1_is_an_error(value: str) -> None:
    """Only printable Latin-1 reaches the wire."""
    with pytest.raises(CodecError):
        FieldSpec("X", 1, 10).encode(value)


def test_number_is_zero_padded_and_empty_is_zero() -> None:
    """N fields are right-aligned digits; an empty N field is all zeros."""
    spec = FieldSpec("N", 1, 4, Kind.NUM)
    assert spec.encode(851) == b"0851"
    assert spec.decode(b"0000") == 0
    assert spec.empty() == 0
    with pytest.raises(CodecError):
        spec.encode(12345)
    assert spec.decode(b"08 1") == Irregular("08 1")


def test_dates_zero_or_blank_mean_none() -> None:
    """YYYYMMDD and YYYYMMDDHHMM use zeros for none, YYYY-MM-DD uses blanks."""
    assert FieldSpec("D", 1, 8, Kind.DATE).decode(b"00000000") is None
    assert FieldSpec("S", 1, 12, Kind.STAMP).decode(b"000000000000") is None
    assert FieldSpec("I", 1, 10, Kind.ISODATE).decode(b" " * 10) is None
    assert FieldSpec("S", 1, 12, Kind.STAMP).decode(b"202301021304") == dt.datetime(
        2023, 1, 2, 13, 4
    )
    assert FieldSpec("I", 1, 10, Kind.ISODATE).encode(dt.date(1999, 12, 31)) == b"1999-12-31"


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        (Kind.DATE, b"20231301"),
        (Kind.DATE, b"2023-1-1"),
        (Kind.STAMP, b"202301012460"),
        (Kind.ISODATE, b"2023/01/01"),
        (Kind.ISODATE, b"2023-02-30"),
        (Kind.DIGITS, b"12345678x0"),
    ],
)
def test_invalid_dates_and_digits_decode_to_irregular_and_encode_back(
    kind: Kind, raw: bytes
) -> None:
    """Spec §10: bytes a kind does not promise are kept as an Irregular, never an error,
    and encoding it gives the same bytes."""
    spec = FieldSpec("F", 1, len(raw), kind)
    value = spec.decode(raw)
    assert value == Irregular(raw.decode("latin-1"))
    assert spec.encode(value) == raw


def test_timestamp_with_seconds_is_refused() -> None:
    """The wire holds minutes; seconds would be lost silently."""
    with pytest.raises(CodecError, match="more than minutes"):
        FieldSpec("S", 1, 12, Kind.STAMP).encode(dt.datetime(2020, 1, 1, 0, 0, 5))


def test_an_irregular_value_says_what_is_wrong_with_it() -> None:
    """Blank, non-digits, or digits that are no calendar value (dashed dates included)."""
    assert Irregular("    ").reason == "blank"
    assert Irregular("08 1").reason == "not digits"
    assert Irregular("201201011299").reason == "no calendar value"
    assert Irregular("1956-03-00").reason == "no calendar value"
    assert Irregular("1956/03/01").reason == "not digits"

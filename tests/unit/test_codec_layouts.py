"""Record layouts: each table tiles its record, and values round-trip byte-exactly."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codec.fields import FieldSpec, Kind, Value
from gateway.codec.headers import ANSWER_HEADER, LOGON_ANSWER, LOGON_REQUEST, LOOKUP_REQUEST
from gateway.codec.layout import Layout
from gateway.codec.messages import LookupRequest
from gateway.codec.records import LAYOUTS, OFF4_LAYOUTS, PRIV_LAYOUTS
from gateway.errors import CodecError
from gateway.model import Family, Irregular

ALL_LAYOUTS = [(family, layout) for family, table in LAYOUTS.items() for layout in table.values()]

SPEC_LENGTHS = {
    Family.PRIV: {
        "000": 35, "001": 469, "002": 195, "003": 195, "004": 26,
        "005": 217, "011": 88, "050": 29, "999": 21,
    },
    Family.OFF4: {
        "000": 35, "001": 106, "002": 306, "003": 249, "004": 37, "005": 200, "006": 203,
        "007": 26, "008": 193, "009": 37, "010": 30, "011": 25, "012": 95, "013": 36,
        "014": 23, "015": 147, "016": 58, "017": 272, "018": 60, "019": 75, "020": 47,
        "050": 29, "999": 21,
    },
}  # fmt: skip

_LATIN1_PRINTABLE = st.characters(
    codec="latin-1", categories=("L", "N", "P", "S", "Zs"), exclude_characters="\xa0\xad"
)


def test_families_hold_exactly_the_spec_record_types_and_lengths() -> None:
    """PRIV and OFF4 declare the spec's record types at the spec's lengths, nothing else."""
    for family, lengths in SPEC_LENGTHS.items():
        assert {k: v.length for k, v in LAYOUTS[family].items()} == lengths


def test_every_layout_starts_with_type_and_pnr() -> None:
    """Bytes 1-3 are the record type and 4-13 the PNR in every record."""
    for _family, layout in ALL_LAYOUTS:
        assert [(f.name, f.pos, f.length) for f in layout.fields[:2]] == [
            ("RECTYPE", 1, 3),
            ("PNR", 4, 10),
        ]


def test_a_layout_with_a_gap_is_refused_at_import_time() -> None:
    """Tables must tile the record; a gap is a programming error caught at once."""
    with pytest.raises(ValueError, match="starts at"):
        Layout("bad", 10, (FieldSpec("A", 1, 3), FieldSpec("B", 5, 6)))


def _value_for(spec: FieldSpec) -> st.SearchStrategy[Value]:
    """Valid values of one field, without trailing spaces (they are padding)."""
    if spec.kind is Kind.TEXT:
        return st.text(_LATIN1_PRINTABLE, max_size=spec.length).map(str.rstrip)
    if spec.kind is Kind.NUM:
        return st.integers(0, 10**spec.length - 1)
    if spec.kind is Kind.DIGITS:
        return st.text("0123456789", min_size=spec.length, max_size=spec.length)
    if spec.kind in (Kind.DATE, Kind.ISODATE):
        return st.none() | st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31))
    return st.none() | st.datetimes(dt.datetime(1000, 1, 1)).map(
        lambda t: t.replace(second=0, microsecond=0)
    )


@st.composite
def layout_values(draw: st.DrawFn) -> tuple[Layout, dict[str, Value]]:
    _family, layout = draw(st.sampled_from(ALL_LAYOUTS))
    return layout, {spec.name: draw(_value_for(spec)) for spec in layout.fields}


# The 469-byte PRIV 001 record has 30 fields; drawing them all is legitimately slow.
_WIDE = settings(suppress_health_check=[HealthCheck.too_slow])


@_WIDE
@given(layout_values())
def test_decode_of_encode_is_identity(case: tuple[Layout, dict[str, Value]]) -> None:
    """decode(encode(x)) == x for every valid value of every record type."""
    layout, values = case
    data = layout.encode(values)
    assert len(data) == layout.length
    assert layout.decode(data) == values


@_WIDE
@given(layout_values())
def test_encode_of_decode_is_identity(case: tuple[Layout, dict[str, Value]]) -> None:
    """encode(decode(b)) == b for every valid record's bytes."""
    layout, values = case
    data = layout.encode(values)
    assert layout.encode(layout.decode(data)) == data


@given(st.sampled_from(ALL_LAYOUTS), st.binary(min_size=0, max_size=500))
def test_arbitrary_bytes_raise_only_codec_error(case: tuple[Family, Layout], data: bytes) -> None:
    """Garbage never escapes the decoder as anything but CodecError (a wrong length); a
    record of the right length always decodes, and encodes back to the same bytes."""
    _family, layout = case
    with contextlib.suppress(CodecError):
        assert layout.encode(layout.decode(data)) == data


def test_unknown_field_name_is_refused() -> None:
    """A misspelt field name is an error, not silently ignored."""
    with pytest.raises(CodecError, match="no field named"):
        PRIV_LAYOUTS["004"].encode({"CIVSTAND": "G"})


def test_off4_and_priv_share_start_end_and_credit_warning() -> None:
    """000, 050 and 999 are the same records in both families."""
    for rtype in ("000", "050", "999"):
        assert PRIV_LAYOUTS[rtype] is OFF4_LAYOUTS[rtype]


def test_a_field_that_cannot_go_on_the_wire_is_named_in_the_error() -> None:
    """The record is converted at once; a bad field still gets an error that names it."""
    layout = PRIV_LAYOUTS["001"]
    good = layout.blank()
    good["PNR"] = "0101001234"
    assert layout.decode(layout.encode(good))["PNR"] == "0101001234"
    for bad in ("line\nbreak", "snowman ☃"):
        values = {**good, "ADRNVN": bad}
        with pytest.raises(CodecError, match=r"control character|not Latin-1") as raised:
            layout.encode(values)
        assert "PNR" not in str(raised.value)


def test_a_field_that_cannot_be_read_is_kept_under_its_own_name() -> None:
    """The record is read at once; bytes a field cannot hold become that field's Irregular
    value (the others decode as usual), and the record encodes back to the same bytes."""
    layout = PRIV_LAYOUTS["999"]
    data = bytearray(layout.encode(layout.blank()))
    antal = layout.by_name["ANTAL"]
    data[antal.start] = ord("x")
    values = layout.decode(bytes(data))
    assert values["ANTAL"] == Irregular("x" + "0" * (antal.length - 1))
    assert values["PNR"] == "0" * 10  # the other fields decode as usual
    assert layout.encode(values) == bytes(data)


_HEADER_LAYOUTS = [LOGON_REQUEST, LOOKUP_REQUEST, LOGON_ANSWER, ANSWER_HEADER]


@given(st.sampled_from(_HEADER_LAYOUTS), st.binary(min_size=20, max_size=40))
def test_texts_are_what_decode_gives_for_every_printable_record_of_text_fields(
    layout: Layout, data: bytes
) -> None:
    """Layout.texts, the one-step decoding of a record of TEXT fields, agrees with decode
    wherever it answers; it answers exactly for printable records of the layout's length
    when every field is TEXT."""
    texts = layout.texts(data)
    all_text = all(spec.kind is Kind.TEXT for spec in layout.fields)
    printable = not data.translate(None, bytes(range(0x20, 0x7F)) + bytes(range(0xA0, 0x100)))
    assert (texts is not None) == (all_text and printable and len(data) == layout.length)
    if texts is not None:
        assert texts == layout.decode(data)


@given(st.text(_LATIN1_PRINTABLE, min_size=39, max_size=39))
def test_a_lookup_decodes_the_same_through_either_path(text: str) -> None:
    """A printable lookup record goes through Layout.texts, one with a control character
    field by field: the same request where both can read it (a control character in KOMMA,
    which a request does not keep), and CodecError where a kept field holds one."""
    record = text.encode("latin-1")
    assert LOOKUP_REQUEST.texts(record) is not None
    control_in_comma = record[:4] + b"\x00" + record[5:]
    assert LOOKUP_REQUEST.texts(control_in_comma) is None
    assert LookupRequest.decode(control_in_comma) == LookupRequest.decode(record)
    with pytest.raises(CodecError):
        LookupRequest.decode(record[:38] + b"\x00")  # in the PNR

"""Answers (spec §4): headers, length fields, 999 counters and the 2880-byte rule."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.codec import LogonAnswer, LookupAnswer, Record, seal
from gateway.codec.headers import MAX_DATA_LENGTH, answer_fejlnr
from gateway.codec.messages import UNREAD, LookupRequest
from gateway.errors import CodecError
from gateway.model import Family, FejlNr, Irregular

PNR = "0101601234"  # synthetic
REQUEST = LookupRequest.decode(b"OFF4,000206Tk3nAbCdDEMO0002000101601234")


def _start() -> Record:
    return Record(
        "000",
        {"PNR": "0" * 10, "OPGAVENR": "000201", "PRODDTO": dt.date(2026, 11, 25),
         "FORRIGE_PRODDTO": None},
    )  # fmt: skip


def test_logon_answer_layout() -> None:
    """24 bytes: echo, 9/0, token, user, FEJLNR; blank token on failure."""
    ok = LogonAnswer("0001", "DEMO0001", FejlNr.OK, token="Ab3dEf7H").encode()
    assert ok == b"000190Ab3dEf7HDEMO000100"
    failed = LogonAnswer("0001", "DEMO0001", FejlNr.BAD_CREDENTIALS).encode()
    assert failed == b"000190        DEMO000101"
    assert LogonAnswer.decode(ok) == LogonAnswer("0001", "DEMO0001", FejlNr.OK, "Ab3dEf7H")


def test_fejlnr_is_read_at_the_same_place_in_logon_and_lookup_answers() -> None:
    """Bytes 23-24 of both answers (spec §4.1, §4.2), as bytes, without decoding the rest."""
    logon = LogonAnswer("0001", "DEMO0001", FejlNr.BAD_CREDENTIALS).encode()
    lookup = LookupAnswer.for_request(REQUEST, FejlNr.PNR_UNKNOWN).encode(Family.OFF4)
    assert (answer_fejlnr(logon), answer_fejlnr(lookup)) == (b"01", b"05")


def test_error_answer_is_the_header_alone_with_length_0028() -> None:
    """Project rule: an error answer is 28 bytes and says so in bytes 25-28."""
    data = LookupAnswer.for_request(REQUEST, FejlNr.PNR_UNKNOWN).encode(Family.OFF4)
    assert data == b"000206Tk3nAbCdDEMO0002050028"


def test_sealed_answer_has_counter_length_and_round_trips() -> None:
    """999 counts the records between 000 and 999; the length field is exact."""
    children = [Record("014", {"PNR": PNR, "BARN_PNR": f"01012{i:05d}"}) for i in range(3)]
    person = Record("001", {"PNR": PNR, "STATUS": "01", "KOEN": "M"})
    records = seal([*children, _start(), person], Family.OFF4)
    assert [r.type for r in records] == ["000", "001", "014", "014", "014", "999"]
    assert records[-1].fields["ANTAL"] == 4
    answer = LookupAnswer.for_request(REQUEST, FejlNr.OK, records)
    data = answer.encode(Family.OFF4)
    assert int(data[24:28]) == len(data) == 28 + 35 + 106 + 3 * 23 + 21
    decoded = LookupAnswer.decode(data, Family.OFF4)
    assert decoded.encode(Family.OFF4) == data
    assert [r.type for r in decoded.records] == [r.type for r in records]


def test_oversized_answers_drop_trailing_repeats_only() -> None:
    """Project rule: trailing repeated records go; 000, 001 and 999 stay; counter is honest."""
    person = Record("001", {"PNR": PNR, "STATUS": "01"})
    notes = [Record("019", {"PNR": PNR, "NOTATNR": f"{i:02d}"}) for i in range(50)]
    records = seal([_start(), person, *notes], Family.OFF4)
    size = sum({"000": 35, "001": 106, "019": 75, "999": 21}[r.type] for r in records)
    assert size <= MAX_DATA_LENGTH < size + 75
    kept = [r.fields["NOTATNR"] for r in records if r.type == "019"]
    assert kept == [f"{i:02d}" for i in range(len(kept))]  # the first ones survive
    assert records[-1].fields["ANTAL"] == len(records) - 2
    assert len(LookupAnswer.for_request(REQUEST, FejlNr.OK, records).encode(Family.OFF4)) <= 2908


def test_record_outside_the_family_cannot_be_encoded() -> None:
    """PRIV clients loop forever on unknown types, so the codec refuses to write one."""
    answer = LookupAnswer.for_request(REQUEST, FejlNr.OK, (Record("014", {"PNR": PNR}),))
    with pytest.raises(CodecError, match="not in this family"):
        answer.encode(Family.PRIV)


@pytest.mark.parametrize(
    "data",
    [
        b"000206Tk3nAbCdDEMO0002050029",  # length says 29, has 28
        b"000206Tk3nAbCdDEMO00020500",  # shorter than a header
        b"000206Tk3nAbCdDEMO0002130028",  # reserved FEJLNR
    ],
)
def test_answers_that_do_not_frame_raise_codec_error(data: bytes) -> None:
    """An answer whose length field lies, that is shorter than its header, or whose FEJLNR
    is reserved is a CodecError, never a crash (whatever frames decodes: spec §10)."""
    with pytest.raises(CodecError):
        LookupAnswer.decode(data, Family.OFF4)


def test_a_record_type_the_family_lacks_is_kept_unread_and_encodes_back() -> None:
    """Spec §10: data no layout reads (here a type 123) decodes to one UNREAD record that
    keeps its bytes, so the answer encodes back byte for byte."""
    data = b"000206Tk3nAbCdDEMO0002000049" + b"123" + b"0" * 18
    answer = LookupAnswer.decode(data, Family.OFF4)
    assert answer.records == (Record("123", {UNREAD: Irregular("123" + "0" * 18)}),)
    assert answer.encode(Family.OFF4) == data

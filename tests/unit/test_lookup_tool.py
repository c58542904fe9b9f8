"""What `cpr-gateway lookup` prints: every field of every record, irregular ones marked, and
a hex dump with the reason when an answer does not frame."""

from __future__ import annotations

from cpr_devtools.lookup import describe, hex_dump
from gateway.codec import LookupAnswer, Record
from gateway.model import Family, FejlNr, Irregular

PNR = "0101601234"  # synthetic


def _answer(fejlnr: FejlNr, *records: Record) -> bytes:
    return LookupAnswer("0001", "0", "6", "Tk3nAbCd", "DEMO0001", fejlnr, records).encode(
        Family.PRIV
    )


def test_an_irregular_field_is_shown_as_it_came_and_marked() -> None:
    """A blank POSTNR is printed quoted with why, and counted; the exit status follows 00."""
    record = Record("001", {"PNR": PNR, "POSTNR": Irregular("    "), "KOMKOD": 101})
    lines, status = describe(_answer(FejlNr.OK, record), Family.PRIV)
    assert status == 0
    assert "   POSTNR                 '    '  ! blank" in lines
    assert "   KOMKOD                 101" in lines
    assert lines[-1].startswith("1 field(s) not what their kind promises")


def test_records_after_an_error_are_printed_and_the_status_is_one() -> None:
    """FEJLNR 05 with a record: the record is shown, the exit status is 1."""
    lines, status = describe(_answer(FejlNr.PNR_UNKNOWN, Record("001", {"PNR": PNR})), Family.PRIV)
    assert status == 1
    assert lines[0].startswith("FEJLNR 05 (PNR_UNKNOWN)")
    assert "-- record 001" in lines


def test_an_answer_that_does_not_frame_is_a_hex_dump_with_the_reason() -> None:
    """A length field that lies: the reason, then every byte in hex; exit status 1."""
    raw = b"000106Tk3nAbCdDEMO0001000099"
    lines, status = describe(raw, Family.PRIV)
    assert status == 1
    assert lines[0] == "undecodable answer of 28 bytes: length field says 99, answer has 28 bytes"
    assert lines[1:] == hex_dump(raw)
    assert hex_dump(raw)[0].startswith("00000000  30 30 30 31 30 36 54 6b")
    assert hex_dump(raw)[1].endswith("|MO0001000099|")

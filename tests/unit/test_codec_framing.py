"""Request framing (spec §1): fed whole, byte by byte, and with trailing junk."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codec import LogonRequest, LookupRequest, RequestFramer, frame
from gateway.codec.framing import NO_COMMA, NOT_PRINTABLE, TOO_LONG
from gateway.errors import CodecError, FramingError
from gateway.model import Operation

LOGON = b"PRIV,123490WXYZ0001Ab1!cd2#" + b" " * 8
LOOKUP = b"PRIV,123406Tk3nAbCdWXYZ0001000101601234"


def test_spec_examples_frame_to_their_requests() -> None:
    """The spec's two example records frame as logon (35) and lookup (39)."""
    logon = frame(LOGON)
    assert isinstance(logon, LogonRequest)
    assert (logon.customer, logon.user, logon.password) == ("1234", "WXYZ0001", "Ab1!cd2#")
    assert logon.operation is Operation.LOGON
    lookup = frame(LOOKUP)
    assert isinstance(lookup, LookupRequest)
    assert (lookup.token, lookup.user, lookup.pnr) == ("Tk3nAbCd", "WXYZ0001", "0101601234")
    assert lookup.operation is Operation.LOOKUP


@pytest.mark.parametrize("record", [LOGON, LOOKUP])
def test_byte_by_byte_gives_the_same_request_as_whole(record: bytes) -> None:
    """Framing does not depend on how TCP splits the stream."""
    framer = RequestFramer()
    for i in range(len(record) - 1):
        framer.receive_data(record[i : i + 1])
        assert framer.next_request() is None
    framer.receive_data(record[-1:])
    assert framer.next_request() == frame(record)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PRIV;1234", NO_COMMA),
        (b"PRIV,1234\x00", NOT_PRINTABLE),
        (b"GET / HTTP/1.1", NO_COMMA),
        (b"GET / HTTP/1.1\r\n", NOT_PRINTABLE),
        (LOOKUP + b"X", TOO_LONG),
        (LOGON + b"  ", TOO_LONG),
        (b"PRIV,1234\x85", NOT_PRINTABLE),  # C1 control (NEL)
    ],
)
def test_unframeable_input_names_its_reason(data: bytes, reason: str) -> None:
    """Each project-rule rejection carries a metric-friendly reason."""
    framer = RequestFramer()
    framer.receive_data(data)
    with pytest.raises(FramingError) as info:
        framer.next_request()
    assert info.value.reason == reason
    assert info.value.wire is None  # closed without an answer


def test_tolerates_space_padded_customer_and_short_user() -> None:
    """Old clients space-pad KUNDENR and do not pad user ids to 8; framing keeps both."""
    request = frame(b"PRIV,  1206Tk3nAbCdWXYZ    000101601234")
    assert isinstance(request, LookupRequest)
    assert request.customer == "  12"
    assert request.user == "WXYZ"


def test_password_change_is_its_own_operation() -> None:
    """A logon record with a new password is a change_password write."""
    request = frame(b"PRIV,123490WXYZ0001Ab1!cd2#Xy9?ab3$")
    assert request.operation is Operation.CHANGE_PASSWORD
    assert request.operation.is_write


def test_subscription_operations_by_abon_type() -> None:
    """ABON_TYPE 1 and 3 are subscribe and unsubscribe."""
    assert frame(LOOKUP.replace(b"123406", b"123416")).operation is Operation.SUBSCRIBE
    assert frame(LOOKUP.replace(b"123406", b"123436")).operation is Operation.UNSUBSCRIBE


def test_repr_never_shows_pnr_or_password() -> None:
    """Requests cannot leak personal data or secrets through repr or a traceback."""
    assert "0101601234" not in repr(frame(LOOKUP))
    assert "Ab1!cd2#" not in repr(frame(LOGON))


@pytest.mark.parametrize("record", [LOGON, LOOKUP])
def test_encode_of_framed_request_is_identity(record: bytes) -> None:
    """A framed request re-encodes to the exact bytes the client sent."""
    assert frame(record).encode() == record


@given(st.binary(max_size=80))
def test_arbitrary_bytes_only_raise_codec_errors(data: bytes) -> None:
    """Whatever a client sends, the framer answers a request, 'more', or CodecError."""
    framer = RequestFramer()
    framer.receive_data(data)
    with contextlib.suppress(CodecError):
        framer.next_request()

"""PROXY protocol v2 headers (HAProxy proxy-protocol.txt §2.2): fed whole, byte by byte, with
what follows; every way a header can be cut short or garbled is a ProxyHeaderError."""

from __future__ import annotations

import ipaddress
import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codec.proxy_protocol import (
    MAX_BLOCK_LENGTH,
    SIGNATURE,
    Address,
    Command,
    ProxyHeader,
    ProxyHeaderReader,
    encode_header,
    parse_header,
)
from gateway.errors import PeerError, ProxyHeaderError

CLIENT = Address(ipaddress.IPv4Address("192.0.2.7"), 51234)
PROXY = Address(ipaddress.IPv4Address("10.0.0.5"), 5000)
CLIENT6 = Address(ipaddress.IPv6Address("2001:db8::7"), 51234)
PROXY6 = Address(ipaddress.IPv6Address("2001:db8::1"), 5000)


def header(ver_cmd: int, family: int, block: bytes) -> bytes:
    """A header built by hand from the spec's layout, not by the code under test."""
    return SIGNATURE + bytes([ver_cmd, family]) + struct.pack("!H", len(block)) + block


TCP4 = header(0x21, 0x11, bytes([192, 0, 2, 7, 10, 0, 0, 5]) + struct.pack("!HH", 51234, 5000))
TCP6 = header(
    0x21,
    0x21,
    CLIENT6.ip.packed + PROXY6.ip.packed + struct.pack("!HH", 51234, 5000),
)
#: A HAProxy health check: LOCAL, no address.
LOCAL = header(0x20, 0x00, b"")
#: TLVs after the addresses: a NOOP, a UNIQUE_ID.
TLVS = b"\x04\x00\x02ab" + b"\x05\x00\x04uid1"


def test_tcp_over_ipv4_names_the_client_and_the_proxy() -> None:
    """A PROXY command for TCP over IPv4 gives both endpoints, ports included."""
    assert parse_header(TCP4) == (ProxyHeader(Command.PROXY, CLIENT, PROXY), 28)


def test_tcp_over_ipv6_names_the_client_and_the_proxy() -> None:
    """A PROXY command for TCP over IPv6 gives both endpoints, ports included."""
    assert parse_header(TCP6) == (ProxyHeader(Command.PROXY, CLIENT6, PROXY6), 52)


def test_an_ipv4_mapped_source_is_the_ipv4_client() -> None:
    """A dual-stack proxy's ::ffff:a.b.c.d is the IPv4 client, so IPv4 allow-lists match it."""
    mapped = ipaddress.IPv6Address("::ffff:192.0.2.7").packed
    data = header(0x21, 0x21, mapped + PROXY6.ip.packed + struct.pack("!HH", 51234, 5000))
    parsed, _length = parse_header(data)
    assert parsed.source == CLIENT


def test_local_means_the_connection_s_own_endpoints() -> None:
    """LOCAL (a health check) carries no client, whatever family and block it shows."""
    assert parse_header(LOCAL) == (ProxyHeader(Command.LOCAL), 16)
    with_block = header(0x20, 0x11, TCP4[16:])
    assert parse_header(with_block) == (ProxyHeader(Command.LOCAL), 28)


@pytest.mark.parametrize("family", [0x00, 0x12, 0x22, 0x31, 0x32], ids=hex)
def test_families_without_tcp_addresses_carry_no_client(family: int) -> None:
    """UNSPEC, UDP and UNIX are valid and read as 'no address' (the spec allows falling back)."""
    data = header(0x21, family, b"\x00" * 216)
    assert parse_header(data) == (ProxyHeader(Command.PROXY), 16 + 216)


def test_tlvs_after_the_addresses_are_skipped() -> None:
    """TLVs lengthen the header; the addresses read the same and all of it is consumed."""
    data = header(0x21, 0x11, TCP4[16:] + TLVS)
    assert parse_header(data) == (ProxyHeader(Command.PROXY, CLIENT, PROXY), 28 + len(TLVS))


def test_byte_by_byte_asks_for_no_byte_beyond_the_header() -> None:
    """Fed one byte at a time, the reader wants exactly the header's bytes and no more."""
    data = header(0x21, 0x11, TCP4[16:] + TLVS)
    reader = ProxyHeaderReader()
    for index, byte in enumerate(data):
        assert reader.missing >= 1
        found = reader.receive_data(bytes([byte]))
        assert (found is None) == (index < len(data) - 1)
    assert reader.missing == 0
    assert found == ProxyHeader(Command.PROXY, CLIENT, PROXY)


def test_what_follows_the_header_is_left_alone() -> None:
    """With the client's TLS bytes behind it, the header's length stops before them."""
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    assert parse_header(TCP4 + hello)[1] == len(TCP4)


def test_more_than_missing_is_refused() -> None:
    """Offering bytes past the header is a caller's bug, not something to swallow."""
    with pytest.raises(ValueError, match="17 bytes offered, 16 wanted"):
        ProxyHeaderReader().receive_data(TCP4[:17])


@pytest.mark.parametrize("data", [TCP4, TCP6, LOCAL], ids=["tcp4", "tcp6", "local"])
def test_every_truncation_is_incomplete(data: bytes) -> None:
    """Each proper prefix of a valid header waits for more, then ends as an error at EOF."""
    for cut in range(1, len(data)):
        expected = f"closed after {cut} bytes of a PROXY header"
        with pytest.raises(ProxyHeaderError, match=f"^{re.escape(expected)}$"):
            parse_header(data[:cut])
    with pytest.raises(ProxyHeaderError, match=r"^closed before a PROXY header$"):
        parse_header(b"")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PROXY TCP4 192.0.2.7 10.0.0.5 51234 5000\r\n", "version 1 (text) PROXY header"),
        (b"PROXY UNKNOWN\r\n", "version 1 (text) PROXY header"),
        (b"PRIV,000190DEMO0001Demo#123        ", "no PROXY v2 signature"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "no PROXY v2 signature"),
        (SIGNATURE[:11] + b"X" + TCP4[12:], "no PROXY v2 signature"),
        (SIGNATURE + b"\x11\x11" + TCP4[14:], "version 1, not 2"),
        (SIGNATURE + b"\x31\x11" + TCP4[14:], "version 3, not 2"),
        (SIGNATURE + b"\x22\x11" + TCP4[14:], "command 0x2 is unassigned"),
        (SIGNATURE + b"\x2f\x11" + TCP4[14:], "command 0xf is unassigned"),
        (header(0x21, 0x41, b"\x00" * 12), "family 0x41 is not defined"),
        (header(0x21, 0x13, b"\x00" * 12), "family 0x13 is not defined"),
        (header(0x21, 0x11, b"\x00" * 11), "11 address bytes for family 0x11, needs 12"),
        (header(0x21, 0x21, b"\x00" * 12), "12 address bytes for family 0x21, needs 36"),
        (SIGNATURE + b"\x21\x11\xff\xff", f"65535 address bytes, over {MAX_BLOCK_LENGTH}"),
    ],
    ids=[
        "v1-tcp4",
        "v1-unknown",
        "cpr-request",
        "tls-hello",
        "signature-12th-byte",
        "version-1-binary",
        "version-3",
        "command-2",
        "command-f",
        "family-undefined",
        "transport-undefined",
        "tcp4-short",
        "tcp6-short",
        "too-long",
    ],
)
def test_garbled_headers_are_refused(data: bytes, message: str) -> None:
    """Whatever is not a valid v2 header is a peer error (closed unanswered), fed at once or
    byte by byte, and the message names what is wrong without echoing the bytes."""
    with pytest.raises(ProxyHeaderError, match=re.escape(message)):
        parse_header(data)
    reader = ProxyHeaderReader()
    with pytest.raises(ProxyHeaderError, match=re.escape(message)):
        for byte in data:
            reader.receive_data(bytes([byte]))
    assert ProxyHeaderError.wire is None and issubclass(ProxyHeaderError, PeerError)


def test_a_wrong_first_byte_is_refused_at_once() -> None:
    """No byte past the first that departs from the signature is waited for."""
    with pytest.raises(ProxyHeaderError, match="no PROXY v2 signature"):
        ProxyHeaderReader().receive_data(b"\x16")


@pytest.mark.parametrize(
    ("source", "destination"),
    [(CLIENT, PROXY), (CLIENT6, PROXY6)],
    ids=["ipv4", "ipv6"],
)
def test_encode_then_parse_round_trips(source: Address, destination: Address) -> None:
    """What the legacy backend sends reads back as the same endpoints."""
    data = encode_header(source, destination)
    assert parse_header(data) == (ProxyHeader(Command.PROXY, source, destination), len(data))


def test_encode_matches_the_spec_layout() -> None:
    """The encoder writes the hand-built bytes of the spec layout, and LOCAL as 16 bytes."""
    assert encode_header(CLIENT, PROXY) == TCP4
    assert encode_header(None) == LOCAL


def test_encode_without_destination_or_with_mixed_versions() -> None:
    """No destination: the unspecified address; IPv4 with IPv6: both sent as IPv6, and the
    IPv4 one reads back as itself."""
    alone, _length = parse_header(encode_header(CLIENT))
    assert alone.destination == Address(ipaddress.IPv4Address(0), 0)
    mixed, _length = parse_header(encode_header(CLIENT, PROXY6))
    assert (mixed.source, mixed.destination) == (CLIENT, PROXY6)


@given(
    st.binary(min_size=1, max_size=64),
    st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=16),
)
def test_any_bytes_any_split_end_in_a_header_an_error_or_a_wait(
    data: bytes, splits: list[int]
) -> None:
    """Arbitrary input never raises anything but ProxyHeaderError, however it is split."""
    reader = ProxyHeaderReader()
    offset = 0
    try:
        for size in splits * 8:
            if offset >= len(data) or not reader.missing:
                break
            chunk = data[offset : offset + min(size, reader.missing)]
            offset += len(chunk)
            reader.receive_data(chunk)
    except ProxyHeaderError:
        pass

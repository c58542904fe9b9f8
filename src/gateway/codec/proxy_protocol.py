"""PROXY protocol version 2, sans I/O: the header a proxy sends ahead of a connection it relays.

A load balancer in TCP mode (HAProxy ``send-proxy-v2``) opens its connection to us with
this header, in clear, before the client's own bytes (TLS included), so that we learn
whose connection it is (HAProxy's doc/proxy-protocol.txt, section 2.2). Layout::

    12 bytes  signature \\r\\n\\r\\n\\0\\r\\nQUIT\\n
     1 byte   version (high nibble, always 2) and command (0 LOCAL, 1 PROXY)
     1 byte   address family (high nibble) and transport (low nibble)
     2 bytes  length of what follows, big-endian
     then     source and destination address, source and destination port; then TLVs

Use :class:`ProxyHeaderReader` like the request framer: feed it what the socket
delivered, at most :attr:`~ProxyHeaderReader.missing` bytes at a time, so that not one
byte of what follows the header is read with it (it belongs to TLS).
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from gateway.errors import ProxyHeaderError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: Signature, version and command, family and transport, length.
FIXED_LENGTH = 16
#: What follows the fixed part: addresses and TLVs. The spec has a proxy send the whole
#: header at once, within one segment; a length beyond this page is garbage, and it bounds
#: what each connection waiting for its header may hold.
MAX_BLOCK_LENGTH = 4096
_VERSION = 0x2
_V1_PREFIX = b"PROXY"


class Command(enum.IntEnum):
    """What the connection is: the proxy's own (a health check) or relayed for a client."""

    LOCAL = 0x0
    PROXY = 0x1


_COMMANDS = frozenset(command.value for command in Command)


@dataclass(frozen=True, slots=True)
class _Family:
    """One (address family, transport) byte this module reads addresses of."""

    byte: int
    #: struct layout of source address, destination address, source port, destination port.
    layout: struct.Struct
    ip: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]


_TCP4 = _Family(0x11, struct.Struct("!4s4sHH"), ipaddress.IPv4Address)
_TCP6 = _Family(0x21, struct.Struct("!16s16sHH"), ipaddress.IPv6Address)
_FAMILIES = {family.byte: family for family in (_TCP4, _TCP6)}
#: Families AF_UNSPEC..AF_UNIX and transports UNSPEC..DGRAM are valid; the combinations
#: not in _FAMILIES (UDP, UNIX, UNSPEC) are accepted without addresses, as the spec allows.
_MAX_FAMILY, _MAX_TRANSPORT = 0x3, 0x2
_UNSPEC = 0x00


@dataclass(frozen=True, slots=True)
class Address:
    """An IP address and a TCP port."""

    ip: IPAddress
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What a header says.

    ``source`` is the client the proxy relays; None when the connection's own endpoints
    stand (a LOCAL connection, e.g. the proxy's health check, or an address family
    other than TCP over IPv4 or IPv6).
    """

    command: Command
    source: Address | None = None
    destination: Address | None = None


class ProxyHeaderReader:
    """Takes one header in as its bytes arrive, never asking for a byte beyond it."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def received(self) -> int:
        """Bytes taken so far."""
        return len(self._buffer)

    @property
    def missing(self) -> int:
        """Bytes still to come before the header is whole, as far as is known yet (at least 1
        until it is whole, 0 after)."""
        if len(self._buffer) < FIXED_LENGTH:
            return FIXED_LENGTH - len(self._buffer)
        return FIXED_LENGTH + _block_length(self._buffer) - len(self._buffer)

    def receive_data(self, data: bytes) -> ProxyHeader | None:
        """Take ``data`` (at most :attr:`missing` bytes); the header once whole, else None.

        Raises ProxyHeaderError as soon as the bytes so far cannot begin a valid header.
        """
        if len(data) > self.missing:
            raise ValueError(f"{len(data)} bytes offered, {self.missing} wanted")
        self._buffer += data
        if len(self._buffer) < FIXED_LENGTH:
            _check_signature(bytes(self._buffer))
            return None
        if len(self._buffer) - len(data) < FIXED_LENGTH:
            _check_fixed(bytes(self._buffer[:FIXED_LENGTH]))
        if self.missing:
            return None
        return _parse(bytes(self._buffer))

    def end_of_stream(self) -> ProxyHeaderError:
        """The error for a peer that stopped sending before its header was whole."""
        if not self._buffer:
            return ProxyHeaderError("closed before a PROXY header")
        return ProxyHeaderError(f"closed after {len(self._buffer)} bytes of a PROXY header")


def parse_header(data: bytes) -> tuple[ProxyHeader, int]:
    """The header at the start of ``data`` and its length (for tests and tools).

    Raises ProxyHeaderError when ``data`` does not start with a whole, valid header.
    """
    reader = ProxyHeaderReader()
    offset = 0
    while reader.missing and offset < len(data):
        chunk = data[offset : offset + reader.missing]
        offset += len(chunk)
        header = reader.receive_data(chunk)
        if header is not None:
            return header, offset
    raise reader.end_of_stream()


def encode_header(source: Address | None, destination: Address | None = None) -> bytes:
    """A header for a TCP connection relayed from ``source`` to ``destination``.

    ``source`` None makes a LOCAL header (no client to speak for). A ``destination``
    not given is the unspecified address, port 0. When the two are of different IP
    versions both are sent as IPv6 (an IPv4 one as IPv4-mapped).
    """
    if source is None:
        return SIGNATURE + bytes([_VERSION << 4 | Command.LOCAL, _UNSPEC]) + b"\0\0"
    if destination is None:
        destination = Address(type(source.ip)(0), 0)
    if source.ip.version != destination.ip.version:
        source, destination = _as_ipv6(source), _as_ipv6(destination)
    family = _TCP4 if source.ip.version == 4 else _TCP6
    block = family.layout.pack(
        source.ip.packed, destination.ip.packed, source.port, destination.port
    )
    fixed = bytes([_VERSION << 4 | Command.PROXY, family.byte]) + len(block).to_bytes(2, "big")
    return SIGNATURE + fixed + block


def _check_signature(head: bytes) -> None:
    """Bytes before the fixed part is whole: still a prefix of the signature?"""
    if SIGNATURE.startswith(head[: len(SIGNATURE)]):
        return
    if head.startswith(_V1_PREFIX):
        raise ProxyHeaderError("a version 1 (text) PROXY header is refused; send version 2")
    if not _V1_PREFIX.startswith(head):  # a text header cannot be told apart before 5 bytes
        raise ProxyHeaderError("no PROXY v2 signature")


def _check_fixed(fixed: bytes) -> None:
    """The 16 fixed bytes: signature, version, command, family and a length we accept."""
    _check_signature(fixed)
    version, command, family = fixed[12] >> 4, fixed[12] & 0x0F, fixed[13]
    if version != _VERSION:
        raise ProxyHeaderError(f"PROXY header version {version}, not 2")
    if command not in _COMMANDS:
        raise ProxyHeaderError(f"PROXY header command {command:#x} is unassigned")
    length = _block_length(fixed)
    if length > MAX_BLOCK_LENGTH:
        raise ProxyHeaderError(f"PROXY header of {length} address bytes, over {MAX_BLOCK_LENGTH}")
    if command == Command.LOCAL:
        return  # the family of a LOCAL header is ignored (spec)
    if family >> 4 > _MAX_FAMILY or family & 0x0F > _MAX_TRANSPORT:
        raise ProxyHeaderError(f"PROXY header family {family:#04x} is not defined")
    known = _FAMILIES.get(family)
    if known is not None and length < known.layout.size:
        what = f"{length} address bytes for family {family:#04x}"
        raise ProxyHeaderError(f"PROXY header has {what}, needs {known.layout.size}")


def _parse(header: bytes) -> ProxyHeader:
    """A whole, checked header; TLVs after the addresses are skipped."""
    command = Command(header[12] & 0x0F)
    family = _FAMILIES.get(header[13])
    if command == Command.LOCAL or family is None:
        return ProxyHeader(command)
    source, destination, source_port, destination_port = family.layout.unpack_from(
        header, FIXED_LENGTH
    )
    return ProxyHeader(
        command,
        Address(_unmapped(family.ip(source)), source_port),
        Address(_unmapped(family.ip(destination)), destination_port),
    )


def _block_length(fixed: bytes | bytearray) -> int:
    return int.from_bytes(fixed[14:16], "big")


def _unmapped(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (a dual-stack proxy's view of an IPv4 client) as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _as_ipv6(address: Address) -> Address:
    if isinstance(address.ip, ipaddress.IPv4Address):
        return Address(ipaddress.IPv6Address(f"::ffff:{address.ip}"), address.port)
    return address

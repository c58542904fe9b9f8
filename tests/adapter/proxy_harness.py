"""Clients and backends that speak PROXY protocol v2, for the listener and adapter tests.

A client behind a load balancer is simulated by sending the header the balancer would
send, from loopback, which the gateway under test is told to trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from pathlib import Path

from gateway_harness import LOGON_ANSWER, LOOKUP_ANSWER, Handler, read_request

from gateway.codec.proxy_protocol import (
    FIXED_LENGTH,
    Address,
    ProxyHeader,
    ProxyHeaderReader,
    encode_header,
)
from gateway.config.schema import ProxyProtocol
from gateway.tls import client_context

#: What the gateway under test trusts: the test's own loopback connections.
LOOPBACK = ProxyProtocol((ipaddress.ip_network("127.0.0.1/32"),))
#: A trusted network the test's connections do not come from.
ELSEWHERE = ProxyProtocol((ipaddress.ip_network("10.0.0.0/8"),))
#: The client a balancer names: TEST-NET-1, inside the allow-list the tests give a customer.
CLIENT = Address(ipaddress.IPv4Address("192.0.2.7"), 51234)
#: A client outside that allow-list (TEST-NET-2).
STRANGER = Address(ipaddress.IPv4Address("198.51.100.9"), 40000)
BALANCER_FRONT = Address(ipaddress.IPv4Address("10.0.0.5"), 5000)


def header_for(client: Address | None) -> bytes:
    """What HAProxy ``send-proxy-v2`` sends ahead of ``client``'s connection (None: LOCAL)."""
    return encode_header(client, BALANCER_FRONT)


async def exchange_after(port: int, prefix: bytes, record: bytes) -> bytes:
    """Send ``prefix`` and ``record`` in one write on a plaintext connection; read to EOF
    (a reset reads as what came before it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(prefix + record)
        with contextlib.suppress(ConnectionResetError):
            return await reader.read()
        return b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def tls_exchange_after(port: int, prefix: bytes, record: bytes, ca: Path) -> bytes:
    """A TLS client that sends ``prefix`` in clear in the same write as its ClientHello, and
    its record in the same write as its last handshake message (TLS 1.3: Finished), so the
    server gets what follows each step together with it; returns the answer until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        tls = _MemoryTls(client_context(ca), reader, writer)
        await tls.handshake(prefix)
        return await tls.exchange(record)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class _MemoryTls:
    """TLS done by hand over a plain stream, so the test decides what goes in each write."""

    def __init__(
        self, context: ssl.SSLContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname="localhost")
        self._reader, self._writer = reader, writer

    async def handshake(self, prefix: bytes) -> None:
        """Handshake, ``prefix`` sent in clear with the first flight; the last flight is kept
        back for :meth:`exchange`."""
        while True:
            try:
                self._tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                self._writer.write(prefix + self._outgoing.read())
                prefix = b""
                data = await self._reader.read(65536)
                if not data:
                    raise ConnectionResetError("closed during the TLS handshake") from None
                self._incoming.write(data)

    async def exchange(self, record: bytes) -> bytes:
        """Send the last handshake flight and ``record`` in one write; the answer until EOF."""
        self._tls.write(record)
        self._writer.write(self._outgoing.read())
        answer = bytearray()
        while True:
            try:
                chunk = self._tls.read(65536)
                if not chunk:  # the server's close_notify
                    return bytes(answer)
                answer += chunk
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return bytes(answer)
            data = await self._reader.read(65536)
            if not data:
                return bytes(answer)
            self._incoming.write(data)


async def read_proxy_header(reader: asyncio.StreamReader) -> ProxyHeader:
    """One PROXY v2 header off a stream, read exactly (the bytes after it stay unread)."""
    parser = ProxyHeaderReader()
    header = parser.receive_data(await reader.readexactly(FIXED_LENGTH))
    while header is None:
        header = parser.receive_data(await reader.readexactly(parser.missing))
    return header


def proxied_canned(headers: list[ProxyHeader]) -> Handler:
    """A backend behind ``proxy_protocol: true``: reads the header (kept in ``headers``),
    then answers logons and lookups with valid canned answers."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers.append(await read_proxy_header(reader))
        request = await read_request(reader)
        writer.write(LOGON_ANSWER if len(request) == 35 else LOOKUP_ANSWER)
        await writer.drain()

    return handle

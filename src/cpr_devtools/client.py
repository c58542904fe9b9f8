"""A CPR Direkte client that behaves like the existing ones.

New connection per request, one write, read until EOF, never half-close. Used by
the end-to-end tests, the traffic and benchmark tools, and operators poking at a
running stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

from gateway.codec import MAX_ANSWER_LENGTH, LogonAnswer, LogonRequest, LookupRequest
from gateway.model import FejlNr

#: A real client gives up eventually; callers wanting less wrap calls in asyncio.timeout.
_EXCHANGE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who is asking: transaction code, customer number and user id as sent on the wire."""

    transaction: str
    customer: str
    user: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a CPR Direkte server listens and how to reach it."""

    host: str
    port: int
    ssl: ssl.SSLContext | None = None
    server_hostname: str | None = None


async def exchange(endpoint: Endpoint, record: bytes) -> bytes:
    """Send one record on a new connection and return everything read until EOF."""
    async with asyncio.timeout(_EXCHANGE_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(
            endpoint.host,
            endpoint.port,
            ssl=endpoint.ssl,
            server_hostname=endpoint.server_hostname if endpoint.ssl else None,
        )
        try:
            writer.write(record)
            # One byte past the largest legal answer, so an oversized one is visible.
            return await read_to_eof(reader, MAX_ANSWER_LENGTH + 1)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


async def read_to_eof(reader: asyncio.StreamReader, limit: int) -> bytes:
    """Read until EOF, at most ``limit`` bytes."""
    chunks = bytearray()
    while len(chunks) < limit:
        chunk = await reader.read(limit - len(chunks))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


async def logon(endpoint: Endpoint, who: Credentials, password: str) -> str:
    """Log on and return the token; raises LogonFailed with the FEJLNR otherwise."""
    request = LogonRequest(who.transaction, who.customer, who.user, password)
    answer = LogonAnswer.decode(await exchange(endpoint, request.encode()))
    if answer.fejlnr is not FejlNr.OK:
        raise LogonFailed(answer.fejlnr)
    return answer.token


async def lookup(
    endpoint: Endpoint,
    who: Credentials,
    token: str,
    pnr: str,
    *,
    abon_type: str = "0",
    data_type: str = "6",
) -> bytes:
    """One lookup (or subscription change); returns the raw answer bytes."""
    request = LookupRequest(
        who.transaction, who.customer, token, who.user, pnr, abon_type, data_type
    )
    return await exchange(endpoint, request.encode())


class LogonFailed(Exception):
    """The server refused a logon."""

    def __init__(self, fejlnr: FejlNr) -> None:
        super().__init__(f"logon failed with FEJLNR {fejlnr.value}")
        self.fejlnr = fejlnr

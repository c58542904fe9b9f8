"""One CPR Direkte lookup on the wire, exactly as the existing clients do it.

A new connection (TLS verified against the target's CA, or plaintext), the
record in one write, everything read until the server closes, no half-close.
Built on a bare :class:`asyncio.Protocol` rather than streams: the generator's
own cost per request is part of what limits a benchmark on a small machine.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from gateway.codec.messages import HEADER_LENGTH, MAX_ANSWER_LENGTH

#: Read at most one byte past the largest legal answer (spec §1): a longer one is an error.
_READ_LIMIT = MAX_ANSWER_LENGTH + 1


@dataclass(frozen=True, slots=True)
class Target:
    """Where the clients connect; ``ca`` None means plaintext."""

    host: str
    port: int
    ca: Path | None
    server_name: str = "localhost"


def answer_problem(answer: bytes) -> str | None:
    """Why a lookup answer is not a good one, or None: FEJLNR 00 and a true length field."""
    if len(answer) < HEADER_LENGTH:
        return "no answer" if not answer else f"short answer ({len(answer)} bytes)"
    fejlnr = answer[22:24]
    if fejlnr != b"00":
        return f"FEJLNR {fejlnr.decode('latin-1')}"
    length = answer[24:HEADER_LENGTH]
    if not (length.isdigit() and int(length) == len(answer)):
        return "length field does not match the answer"
    return None


class Exchange(asyncio.Protocol):
    """One client connection: write ``first`` once connected, collect everything until EOF."""

    def __init__(self, first: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.first = first
        self.transport: asyncio.Transport | None = None
        self.connected = 0.0
        self.answer = bytearray()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection, TLS or not; not checked with isinstance: uvloop's TLS
        # transport has asyncio.Transport's methods without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.connected = time.perf_counter()
        self.transport.write(self.first)

    def data_received(self, data: bytes) -> None:
        self.answer += data
        if len(self.answer) >= _READ_LIMIT and self.transport is not None:
            self.transport.abort()  # longer than any legal answer: stop reading

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed.done():
            return
        if exc is None:
            self.closed.set_result(None)
        else:
            self.closed.set_exception(exc)

    def send(self, data: bytes) -> None:
        """Write more of the record (hold mode)."""
        assert self.transport is not None
        self.transport.write(data)

    def abort(self) -> None:
        """Drop the connection at once."""
        if self.transport is not None:
            self.transport.abort()


class Dialer:
    """Opens client connections to one target, TLS verified against its CA."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.context = ssl.create_default_context(cafile=target.ca) if target.ca else None

    async def connect(self, first: bytes) -> Exchange:
        """A connected :class:`Exchange` that has written ``first``."""
        loop = asyncio.get_running_loop()
        _transport, protocol = await loop.create_connection(
            lambda: Exchange(first, loop),
            self.target.host,
            self.target.port,
            ssl=self.context,
            server_hostname=self.target.server_name if self.context else None,
        )
        return protocol


@dataclass(frozen=True, slots=True)
class Outcome:
    error: str | None
    started: float
    connected: float
    done: float


async def finish(exchange: Exchange, started: float, limit_s: float) -> Outcome:
    """Wait for ``exchange``'s answer until EOF, at most ``limit_s`` seconds."""
    try:
        async with asyncio.timeout(limit_s):
            await exchange.closed
        error = answer_problem(bytes(exchange.answer))
    except TimeoutError:
        exchange.abort()
        error = "timeout"
    except (OSError, ssl.SSLError) as exc:
        error = describe(exc)
    return Outcome(error, started, exchange.connected, time.perf_counter())


async def exchange_once(dialer: Dialer, record: bytes, limit_s: float) -> Outcome:
    """One whole lookup on a new connection, within ``limit_s`` seconds."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit_s):
            exchange = await dialer.connect(record)
    except TimeoutError:
        return Outcome("connect timeout", started, started, time.perf_counter())
    except (OSError, ssl.SSLError) as exc:
        return Outcome(describe(exc), started, started, time.perf_counter())
    remaining = limit_s - (time.perf_counter() - started)
    return await finish(exchange, started, remaining)


def describe(exc: BaseException) -> str:
    """An error kind for the report: the exception type, and the TLS reason if any."""
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__

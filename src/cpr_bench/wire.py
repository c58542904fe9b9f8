"""One CPR Direkte lookup on the wire, exactly as the existing clients do it.

A new connection (TLS verified against the target's CA, or plaintext), the
record in one write, everything read until the server closes, no half-close.
The generator's own CPU per request is part of what limits a benchmark on a
small machine, where it shares the cores with the servers it measures, so both
paths are lean: TLS lookups run on a bare :class:`asyncio.Protocol` rather than
streams, and plaintext lookups (:class:`PlainLookup`) on a non-blocking socket
driven by the loop's reader and writer callbacks, with no task, future or
timeout context per request.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from gateway.codec.headers import (
    HEADER_LENGTH,
    MAX_ANSWER_LENGTH,
    answer_fejlnr,
    answer_length_field,
)
from gateway.runtime.tasks import TaskSet

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
    fejlnr = answer_fejlnr(answer)
    if fejlnr != b"00":
        return f"FEJLNR {fejlnr.decode('latin-1')}"
    length = answer_length_field(answer)
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


#: A resolved address: socket family and the address to connect to.
Address = tuple[socket.AddressFamily, tuple[Any, ...]]


class PlainLookup:
    """One plaintext lookup driven by the event loop's callbacks; ``done`` gets its Outcome.

    Connect without blocking, write the record once the socket is writable, read
    until the server closes, close. A timer bounds the whole exchange. This is the
    same conversation as :class:`Exchange` has, for less of the generator's CPU: no task,
    future, protocol or ``asyncio.timeout`` per request (docs/benchmarks.md, "Where the
    time goes, and what was changed": the load generator's plaintext lookups).
    """

    __slots__ = (
        "_done",
        "_fd",
        "_loop",
        "_record",
        "_sock",
        "_timer",
        "answer",
        "connected",
        "started",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        address: Address,
        record: bytes,
        limit_s: float,
        done: Callable[[Outcome], object],
    ) -> None:
        self._loop = loop
        self._record = record
        self._done: Callable[[Outcome], object] | None = done
        self.answer = bytearray()
        self.started = time.perf_counter()
        self.connected = 0.0  # until the connection is established
        family, sockaddr = address
        self._sock = sock = socket.socket(family, socket.SOCK_STREAM)
        self._fd = sock.fileno()
        sock.setblocking(False)
        self._timer = loop.call_later(limit_s, self._expired)
        code = sock.connect_ex(sockaddr)
        if code not in (0, errno.EINPROGRESS):
            self._finish(describe(_os_error(code)))
        elif not self._send():  # not established yet: write once it is
            loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        self._loop.remove_writer(self._fd)
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._finish(describe(_os_error(code)))
        elif not self._send():
            self._finish("not writable once connected")

    def _send(self) -> bool:
        """Write the record if the connection is up; False if it is still being set up.

        On loopback the handshake is usually done when ``connect`` returns, so the
        first try saves a round through the loop's writer callback.
        """
        try:
            sent = self._sock.send(self._record)
        except BlockingIOError:
            return False
        except OSError as exc:
            self._finish(describe(exc))
            return True
        self.connected = time.perf_counter()
        if sent != len(self._record):  # 39 bytes into an empty socket buffer: never seen
            self._finish("record not written in one write")
        else:
            self._loop.add_reader(self._fd, self._readable)
        return True

    def _readable(self) -> None:
        try:
            data = self._sock.recv(_READ_LIMIT)
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(describe(exc))
            return
        if data:
            self.answer += data
            if len(self.answer) >= _READ_LIMIT:  # longer than any legal answer
                self._finish(answer_problem(bytes(self.answer)) or "answer too long")
            return
        self._finish(answer_problem(bytes(self.answer)))

    def _expired(self) -> None:
        self._finish("timeout" if self.connected else "connect timeout")

    def _finish(self, error: str | None) -> None:
        done, self._done = self._done, None
        if done is None:
            return
        self._timer.cancel()
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._sock.close()
        connected = self.connected or self.started
        done(Outcome(error, self.started, connected, time.perf_counter()))


def _os_error(code: int) -> OSError:
    """The OSError subclass Python raises for ``code`` (ConnectionRefusedError, ...)."""
    return OSError(code, os.strerror(code))


class Dialer:
    """Opens client connections to one target, TLS verified against its CA."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.context = ssl.create_default_context(cafile=target.ca) if target.ca else None
        self._address: Address | None = None
        self._tasks = TaskSet()

    def start(self, record: bytes, limit_s: float, done: Callable[[Outcome], object]) -> None:
        """Begin one whole lookup (as :func:`exchange_once`); ``done`` gets its Outcome.

        Plaintext lookups run on loop callbacks alone (:class:`PlainLookup`); TLS
        lookups each in a task.
        """
        loop = asyncio.get_running_loop()
        if self.context is None:
            PlainLookup(loop, self._resolved(), record, limit_s, done)
            return

        async def lookup() -> None:
            done(await exchange_once(self, record, limit_s))

        self._tasks.spawn(lookup(), name="lookup")

    def _resolved(self) -> Address:
        """The target's address, looked up once (the benchmark's targets are loopback IPs)."""
        if self._address is None:
            family, _type, _proto, _name, sockaddr = socket.getaddrinfo(
                self.target.host, self.target.port, type=socket.SOCK_STREAM
            )[0]
            self._address = (family, sockaddr)
        return self._address

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
    if dialer.context is None:
        answered: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

        def done(outcome: Outcome) -> None:
            if not answered.done():  # the caller may have been cancelled meanwhile
                answered.set_result(outcome)

        dialer.start(record, limit_s, done)
        return await answered
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

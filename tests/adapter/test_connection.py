"""server.connection on real loopback sockets: one request, one answer, the bounds around it.

The gateway's and the emulator's listeners are tested through their own behaviour
elsewhere; here the shared protocol is driven directly, with a small owner that records
what it is told, so each stage and each way a connection can end is seen on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from gateway.codec import LookupRequest, Request
from gateway.errors import FramingError
from gateway.server.connection import Connections, OneRequest, describe_failure

RECORD = LookupRequest("PRIV", "0001", "TOKEN123", "USER0001", "0101001234").encode()
ANSWER = b"answer for " + RECORD

Answer = Callable[[Request, bytes], Awaitable[bytes]]


async def answer_at_once(_request: Request, record: bytes) -> bytes:
    return b"answer for " + record


@dataclass
class Owner:
    """What a server would do with each hook, kept for the test to look at."""

    answer: Answer = answer_at_once
    admit_up_to: int = 100
    patience_s: float = 5.0
    connections: Connections = field(default_factory=Connections)
    requests: list[bytes] = field(default_factory=list)
    rejected: list[tuple[str, int]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    finished: int = 0
    refused: int = 0
    received: int = 0  # bytes delivered to the protocol
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def protocol(self) -> OneRequest:
        return _Recording(self)

    def note(self) -> None:
        self.changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):  # a guard against hanging, not a measurement
            while not condition():
                self.changed.clear()
                await self.changed.wait()


class _Recording(OneRequest):
    def __init__(self, owner: Owner) -> None:
        super().__init__(owner.connections, owner.patience_s)
        self._owner = owner

    def admit(self) -> bool:
        self._owner.note()  # whoever waits for the connection count looks again
        if len(self._owner.connections) >= self._owner.admit_up_to:
            self._owner.refused += 1
            return False
        return True

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._owner.received += len(data)
        self._owner.note()

    async def answer(self, request: Request, record: bytes) -> bytes:
        self._owner.requests.append(record)
        self._owner.note()
        return await self._owner.answer(request, record)

    def rejected(self, error: FramingError, received: int) -> None:
        self._owner.rejected.append((error.reason, received))
        self._owner.note()

    def failed(self, error: Exception) -> None:
        self._owner.failed.append(describe_failure(error))
        self._owner.note()

    def finished(self) -> None:
        self._owner.finished += 1
        self._owner.note()


@contextlib.asynccontextmanager
async def serving(owner: Owner) -> AsyncIterator[int]:
    server = await asyncio.get_running_loop().create_server(owner.protocol, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await owner.connections.drain(1.0, "test over")


async def everything(reader: asyncio.StreamReader) -> bytes:
    """What the server sent until it closed; a reset counts as the end."""
    with contextlib.suppress(ConnectionResetError):
        return await reader.read()
    return b""


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection; what came back before the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await everything(reader)
    finally:
        writer.close()


async def test_a_record_in_pieces_is_answered_once_in_one_piece_and_closed() -> None:
    owner = Owner()
    async with serving(owner) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for start in range(0, len(RECORD), 7):
            writer.write(RECORD[start : start + 7])
            await writer.drain()
            await asyncio.sleep(0.01)
        assert await everything(reader) == ANSWER
        writer.close()
        await owner.until(lambda: owner.finished == 1)
    assert owner.requests == [RECORD]
    assert owner.rejected == [] and owner.failed == []
    assert len(owner.connections) == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"HELLO WORLD", "no_comma"), (RECORD + b"MORE", "too_long"), (b"PRIV,\x00", "not_printable")],
)
async def test_what_cannot_be_framed_is_rejected_and_closed_unanswered(
    data: bytes, reason: str
) -> None:
    owner = Owner()
    async with serving(owner) as port:
        assert await exchange(port, data) == b""
        await owner.until(lambda: owner.finished == 1)
    assert owner.rejected == [(reason, len(data))]
    assert owner.requests == []


async def test_a_record_not_complete_within_the_deadline_is_rejected_as_a_timeout() -> None:
    """The deadline bounds the whole record: a byte now and then does not extend it."""
    owner = Owner(patience_s=0.3)
    async with serving(owner) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for byte in RECORD[:10]:
            if writer.is_closing() or reader.at_eof():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)
        assert await everything(reader) == b""
        writer.close()
        await owner.until(lambda: owner.finished == 1)
    [(reason, received)] = owner.rejected
    assert reason == "timeout" and 0 < received <= 10


async def test_a_peer_closing_mid_record_is_incomplete() -> None:
    owner = Owner()
    async with serving(owner) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(RECORD[:20])
        writer.write_eof()
        assert await everything(reader) == b""
        writer.close()
        await owner.until(lambda: owner.finished == 1)
    assert owner.rejected == [("incomplete", 20)]


async def test_a_peer_resetting_mid_record_is_incomplete() -> None:
    owner = Owner()
    async with serving(owner) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(RECORD[:12])
            await owner.until(lambda: owner.received == 12)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        await owner.until(lambda: owner.finished == 1)
    assert owner.rejected == [("incomplete", 12)]


async def test_a_client_that_half_closes_after_its_record_still_gets_the_answer() -> None:
    owner = Owner()
    async with serving(owner) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(RECORD)
        writer.write_eof()
        assert await everything(reader) == ANSWER
        writer.close()
        await owner.until(lambda: owner.finished == 1)
    assert owner.rejected == []


async def test_a_client_that_leaves_mid_answer_does_not_cancel_it() -> None:
    """The request in a backend completes (a write must not be half made); nothing is sent."""
    release = asyncio.Event()
    completed: list[bytes] = []

    async def slow(_request: Request, record: bytes) -> bytes:
        await release.wait()
        completed.append(record)
        return ANSWER

    owner = Owner(answer=slow)
    async with serving(owner) as port:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(RECORD)
        await owner.until(lambda: owner.requests == [RECORD])
        writer.transport.abort()
        await asyncio.sleep(0.05)  # the server sees the reset while the answer is made
        assert owner.finished == 0 and len(owner.connections) == 1
        release.set()
        await owner.until(lambda: owner.finished == 1)
    assert completed == [RECORD]
    assert owner.failed == []


async def test_an_answer_that_fails_drops_only_that_connection() -> None:
    async def broken(_request: Request, record: bytes) -> bytes:
        if record == RECORD:
            raise KeyError("a bug")
        return b"fine"

    owner = Owner(answer=broken)
    other = LookupRequest("PRIV", "0001", "TOKEN123", "USER0001", "0202002345").encode()
    async with serving(owner) as port:
        assert await exchange(port, RECORD) == b""
        assert await exchange(port, other) == b"fine"
        await owner.until(lambda: owner.finished == 2)
    [failure] = owner.failed
    assert failure.startswith("KeyError at ") and "a bug" not in failure


async def test_a_framing_bug_drops_only_that_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a FramingError but a bug while framing: reported as a failure, not as the client's
    fault, and the connection is dropped."""

    def broken(_framer: object) -> None:
        raise IndexError("a bug")

    owner = Owner()
    async with serving(owner) as port:
        monkeypatch.setattr("gateway.server.connection.RequestFramer.next_request", broken)
        assert await exchange(port, RECORD) == b""
        await owner.until(lambda: owner.finished == 1)
    [failure] = owner.failed
    assert failure.startswith("IndexError at ") and owner.rejected == []


async def test_a_client_that_will_not_take_its_answer_is_aborted_after_the_same_patience() -> None:
    """An answer bigger than the socket buffers, never read: closing waits, then gives up."""
    big = b"x" * (32 * 1024 * 1024)

    async def huge(_request: Request, _record: bytes) -> bytes:
        return big

    owner = Owner(answer=huge, patience_s=0.3)
    async with serving(owner) as port:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
        writer.write(RECORD)
        await owner.until(lambda: owner.requests == [RECORD])
        await owner.until(lambda: owner.finished == 1)  # aborted: it never read
        writer.transport.abort()
    assert len(owner.connections) == 0 and owner.rejected == [] and owner.failed == []


async def test_over_the_limit_a_connection_is_refused_and_not_counted() -> None:
    owner = Owner(admit_up_to=1)
    async with serving(owner) as port:
        _first_reader, first = await asyncio.open_connection("127.0.0.1", port)
        await owner.until(lambda: len(owner.connections) == 1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await owner.until(lambda: owner.refused == 1)
        assert await everything(reader) == b""
        writer.close()
        first.write(RECORD)
        await owner.until(lambda: owner.finished == 1)
        first.close()
    assert len(owner.connections) == 0 and owner.finished == 1


async def test_drain_waits_for_answers_then_cuts_what_is_left() -> None:
    """Within the grace an answer in the making completes; past it, it is cancelled and its
    connection, like one still reading, is cut and counted."""
    quick_release = asyncio.Event()
    cancelled: list[str] = []

    async def held(_request: Request, record: bytes) -> bytes:
        if record == RECORD:
            await quick_release.wait()
            return ANSWER
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError as exc:
            cancelled.append(str(exc.args[0]) if exc.args else "")
            raise
        return b""

    owner = Owner(answer=held)
    stuck = LookupRequest("PRIV", "0001", "TOKEN123", "USER0001", "0202002345").encode()
    server = await asyncio.get_running_loop().create_server(owner.protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    quick_reader, quick = await asyncio.open_connection("127.0.0.1", port)
    quick.write(RECORD)
    stuck_reader, stuck_writer = await asyncio.open_connection("127.0.0.1", port)
    stuck_writer.write(stuck)
    _idle_reader, idle = await asyncio.open_connection("127.0.0.1", port)  # sends nothing
    await owner.until(lambda: len(owner.requests) == 2 and len(owner.connections) == 3)
    server.close()
    asyncio.get_running_loop().call_later(0.1, quick_release.set)
    assert await owner.connections.drain(0.5, "shutdown: grace period over") == 2
    assert await everything(quick_reader) == ANSWER
    assert await everything(stuck_reader) == b""
    assert cancelled == ["shutdown: grace period over"]
    assert len(owner.connections) == 0 and owner.finished == 3
    assert owner.rejected == []  # the server left, not the idle client
    for writer in (quick, stuck_writer, idle):
        writer.close()

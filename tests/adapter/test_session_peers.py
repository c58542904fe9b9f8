"""Workers of one gateway asking each other for sessions, over real Unix sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gateway.observe.events import Event, EventBus, SessionShared
from gateway.runtime.workers import socket_path
from gateway.sessions.peers import PeerDirectory, SessionPeers
from gateway.sessions.table import SessionBroker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Worker:
    """One worker's broker and peers, and the session events its bus saw."""

    def __init__(self, directory: Path, index: int, clock: Clock, timeout_s: float) -> None:
        self.broker = SessionBroker(idle_s=1800, clock=clock)
        self.events: list[tuple[str, str]] = []
        bus = EventBus()
        bus.subscribe(self._seen)
        where = PeerDirectory(directory, index)
        self.peers = SessionPeers(where, self.broker, bus, timeout_s=timeout_s, clock=clock)

    def _seen(self, event: Event) -> None:
        if isinstance(event, SessionShared):
            self.events.append((event.outcome, event.detail))


@asynccontextmanager
async def workers(
    tmp_path: Path, count: int, *, timeout_s: float = 2.0, clock: Clock | None = None
) -> AsyncIterator[list[Worker]]:
    clock = clock or Clock()
    started = [Worker(tmp_path, i, clock, timeout_s) for i in range(count)]
    for worker in started:
        await worker.peers.start()
    try:
        yield started
    finally:
        for worker in started:
            await worker.peers.aclose()


async def test_a_session_one_worker_opened_is_copied_to_the_one_that_asks(tmp_path: Path) -> None:
    async with workers(tmp_path, 3) as (first, second, third):
        second.broker.open("Tok", 1, "U", "mainframe", {"persons-v2": "Other"})
        assert await first.peers.fetch("Tok")
        session = first.broker.find("Tok", 1, "U")
        assert session is not None and session.token_for("persons-v2") == "Other"
        assert first.broker.find("Tok", 2, "U") is None  # the owner check still applies here
        assert first.events == [("found", "")]
        assert third.broker.live("Tok") is None  # only the asker keeps a copy


async def test_a_token_nobody_knows_is_asked_about_once(tmp_path: Path) -> None:
    """Every sibling says no: believed for a while, then asked about again."""
    clock = Clock()
    async with workers(tmp_path, 2, clock=clock) as (first, second):
        assert not await first.peers.fetch("Nobody")
        second.broker.open("Nobody", 1, "U", "mainframe", {})  # (a re-issued token)
        assert not await first.peers.fetch("Nobody")
        assert first.events == [("unknown", "")]
        clock.now += 11
        assert await first.peers.fetch("Nobody")
        assert first.events == [("unknown", ""), ("found", "")]


async def test_a_lone_worker_asks_nobody(tmp_path: Path) -> None:
    async with workers(tmp_path, 1) as (only,):
        assert not await only.peers.fetch("Tok")
        assert only.events == []


async def test_a_socket_left_by_a_dead_worker_counts_as_not_knowing(tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(socket_path(tmp_path, 5)))
    stale.close()  # the file stays, nobody listens: connection refused
    async with workers(tmp_path, 1) as (only,):
        assert not await only.peers.fetch("Tok")
        assert only.events == [("unknown", "")]


async def test_a_sibling_that_answers_garbage_is_a_failure_not_a_no(tmp_path: Path) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b'{"home": 1}\n')
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(garbage, path=str(socket_path(tmp_path, 9)))
    try:
        async with workers(tmp_path, 1) as (only,):
            assert not await only.peers.fetch("Tok")
            assert not await only.peers.fetch("Tok")  # not believed unknown: asked again
            assert only.events == [("failed", "ValueError")] * 2
    finally:
        server.close()
        await server.wait_closed()


async def test_a_sibling_that_never_answers_costs_the_timeout_and_no_more(tmp_path: Path) -> None:
    asked, done = asyncio.Event(), asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        asked.set()
        await done.wait()
        writer.close()

    server = await asyncio.start_unix_server(mute, path=str(socket_path(tmp_path, 9)))
    try:
        async with workers(tmp_path, 2, timeout_s=0.2) as (first, second):
            second.broker.open("Tok", 1, "U", "mainframe", {})
            # The worker that knows answers; the mute one does not hold it up.
            assert await asyncio.wait_for(first.peers.fetch("Tok"), 5)
            assert not await asyncio.wait_for(first.peers.fetch("Other"), 5)
            assert asked.is_set()
            assert first.events == [("found", ""), ("failed", "timeout")]
    finally:
        done.set()
        server.close()
        await server.wait_closed()


async def test_a_malformed_question_is_answered_by_a_close_and_the_worker_carries_on(
    tmp_path: Path,
) -> None:
    async with workers(tmp_path, 2) as (first, second):
        second.broker.open("Tok", 1, "U", "mainframe", {})
        reader, writer = await asyncio.open_unix_connection(str(socket_path(tmp_path, 1)))
        writer.write(b"[1, 2]\n")
        assert await reader.read() == b""
        writer.close()
        assert second.events == [("failed", "answering: ValueError")]
        assert await first.peers.fetch("Tok")


async def test_a_question_too_long_to_be_ours_is_answered_by_a_close(tmp_path: Path) -> None:
    async with workers(tmp_path, 1) as (only,):
        reader, writer = await asyncio.open_unix_connection(str(socket_path(tmp_path, 0)))
        writer.write(b"x" * 70_000)  # over the 64 KiB a question may take
        assert await reader.read() == b""
        writer.close()
        assert only.events == [("failed", "answering: LimitOverrunError")]


async def test_closing_removes_the_socket(tmp_path: Path) -> None:
    async with workers(tmp_path, 1):
        assert socket_path(tmp_path, 0).exists()
    assert not socket_path(tmp_path, 0).exists()

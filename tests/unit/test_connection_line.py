"""A backend's connection line: waits in order, refused at once only while a line stands."""

from __future__ import annotations

import asyncio

import pytest

from gateway.backends.connection_line import ConnectionLine
from gateway.errors import BackendBusy
from gateway.model import FejlNr


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _waiting(line: ConnectionLine) -> asyncio.Task[None]:
    task = asyncio.ensure_future(line.acquire())
    await asyncio.sleep(0)
    return task


async def _through_after(line: ConnectionLine, clock: Clock, wait_s: float) -> None:
    """One request waits ``wait_s`` for the only connection, then gets it and is done."""
    waiting = await _waiting(line)
    clock.now += wait_s
    line.release()  # the holder is done: the waiter gets its turn
    await waiting


async def test_free_connections_are_taken_and_the_next_waits_in_line() -> None:
    line = ConnectionLine("mainframe", 2, 0.05, clock=Clock())
    await line.acquire()
    await line.acquire()
    third = await _waiting(line)
    assert not third.done()
    line.release()
    await asyncio.sleep(0)
    assert third.done() and third.exception() is None


async def test_a_burst_that_clears_within_the_interval_refuses_nothing() -> None:
    clock = Clock()
    line = ConnectionLine("mainframe", 1, 0.05, interval_s=0.1, clock=clock)
    await line.acquire()
    await _through_after(line, clock, 0.08)  # above the target, once
    assert not line.refusing
    await _through_after(line, clock, 0.01)  # back within it
    assert not line.refusing


async def test_a_standing_line_refuses_new_requests_at_once_with_08_until_a_wait_is_short() -> None:
    clock = Clock()
    line = ConnectionLine("mainframe", 1, 0.05, interval_s=0.1, clock=clock)
    await line.acquire()
    for _ in range(3):  # waits above the target for more than an interval
        await _through_after(line, clock, 0.06)
    assert line.refusing
    with pytest.raises(BackendBusy) as refused:
        await line.acquire()
    assert refused.value.wire is FejlNr.NOT_ACTIVE
    assert refused.value.kind == "busy"
    line.release()  # the line empties: the next request finds a free connection
    await line.acquire()
    assert not line.refusing


async def test_a_cancelled_wait_holds_nothing() -> None:
    line = ConnectionLine("mainframe", 1, 0.05, clock=Clock())
    await line.acquire()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await line.acquire()
    line.release()
    await line.acquire()  # the connection freed is there to take

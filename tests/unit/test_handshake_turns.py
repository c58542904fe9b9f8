"""Handshake turns: a few handshakes at once per address, the rest in line, in order."""

from __future__ import annotations

import asyncio

import pytest

from gateway.server.turns import HandshakeTurns

A, B = "192.0.2.1", "192.0.2.2"


async def _started(turns: HandshakeTurns, address: str) -> asyncio.Task[None]:
    """A task waiting for (or holding) a turn of ``address``, once it has run."""
    task = asyncio.ensure_future(turns.take(address))
    await asyncio.sleep(0)
    return task


async def test_an_address_has_its_turns_at_once_and_then_waits() -> None:
    turns = HandshakeTurns(lambda: 2)
    first, second = await _started(turns, A), await _started(turns, A)
    third = await _started(turns, A)
    assert first.done() and second.done()
    assert not third.done()
    assert (turns.busy(A), turns.waiting(A)) == (2, 1)
    other = await _started(turns, B)
    assert other.done()  # another address is not behind A's line


async def test_a_turn_given_back_goes_to_the_next_in_line_in_order() -> None:
    turns = HandshakeTurns(lambda: 1)
    await _started(turns, A)
    later = [await _started(turns, A) for _ in range(3)]
    turns.give(A)
    await asyncio.sleep(0)
    assert [t.done() for t in later] == [True, False, False]
    assert (turns.busy(A), turns.waiting(A)) == (1, 2)
    for _ in range(3):
        turns.give(A)
        await asyncio.sleep(0)
    assert all(t.done() for t in later)
    assert (turns.busy(A), turns.waiting(A)) == (0, 0)


async def test_a_wait_cut_by_its_deadline_leaves_nothing_taken() -> None:
    turns = HandshakeTurns(lambda: 1)
    await _started(turns, A)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await turns.take(A)
    assert (turns.busy(A), turns.waiting(A)) == (1, 0)
    turns.give(A)
    assert turns.busy(A) == 0


async def test_a_turn_handed_over_as_its_wait_is_cut_passes_on() -> None:
    turns = HandshakeTurns(lambda: 1)
    await _started(turns, A)
    cut, next_one = await _started(turns, A), await _started(turns, A)
    turns.give(A)  # the turn is handed to ``cut``...
    cut.cancel()  # ...which is cancelled before it runs
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert cut.cancelled()
    assert next_one.done()
    assert (turns.busy(A), turns.waiting(A)) == (1, 0)


async def test_a_reload_applies_to_the_next_take() -> None:
    limit = [1]
    turns = HandshakeTurns(lambda: limit[0])
    await _started(turns, A)
    assert not (await _started(turns, A)).done()
    limit[0] = 3
    assert (await _started(turns, A)).done()


async def test_a_free_turn_is_taken_without_waiting_and_a_busy_one_is_not() -> None:
    """try_take: the common case costs no wait; a full address is left to take()'s line."""
    turns = HandshakeTurns(lambda: 1)
    assert turns.try_take(A)
    assert not turns.try_take(A)
    assert (turns.busy(A), turns.waiting(A)) == (1, 0)
    waiting = await _started(turns, A)
    turns.give(A)
    await asyncio.sleep(0)
    assert waiting.done()
    assert turns.busy(A) == 1

"""The batcher on its own: which items go in which call, and whose result reaches whom.

``send`` here is a function the test holds open (each call waits on a gate the test
releases), so that what arrives while calls are on the way can be arranged exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from gateway.backends.batching import Batcher


class Refused(Exception):
    """The per-item error the fake send gives for items starting with "bad"."""


@dataclass
class Calls:
    """A send that records each call and holds it until released."""

    sent: list[list[str]] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)
    gates: list[asyncio.Event] = field(default_factory=list)
    fail_with: Exception | None = None

    async def send(self, items: Sequence[str], timeout_s: float) -> list[str | Exception]:
        self.sent.append(list(items))
        self.timeouts.append(timeout_s)
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [Refused(item) if item.startswith("bad") else item.upper() for item in items]

    def release(self, index: int) -> None:
        self.gates[index].set()


async def _settle() -> None:
    """Let every ready task run (a few loop turns)."""
    for _ in range(5):
        await asyncio.sleep(0)


def _far() -> float:
    return asyncio.get_running_loop().time() + 60


async def test_an_item_alone_is_sent_at_once_in_a_call_of_its_own() -> None:
    calls = Calls()
    batcher: Batcher[str, str] = Batcher(calls.send, name="t")
    waiting = asyncio.ensure_future(batcher.submit("a", _far()))
    await _settle()
    assert calls.sent == [["a"]]
    calls.release(0)
    assert await waiting == "A"


async def test_what_arrives_while_calls_are_out_goes_together_and_each_gets_its_own() -> None:
    calls = Calls()
    batcher: Batcher[str, str] = Batcher(calls.send, name="t", calls_at_once=2)
    first = [asyncio.ensure_future(batcher.submit(i, _far())) for i in ("a", "b")]
    await _settle()
    later = [asyncio.ensure_future(batcher.submit(i, _far())) for i in ("c", "bad-d", "e")]
    await _settle()
    assert calls.sent == [["a"], ["b"]]  # both slots taken: c, bad-d, e queue
    assert batcher.queued == 3
    calls.release(1)
    await _settle()
    assert calls.sent == [["a"], ["b"], ["c", "bad-d", "e"]]
    calls.release(0)
    calls.release(2)
    assert await asyncio.gather(*first) == ["A", "B"]
    assert await later[0] == "C"
    with pytest.raises(Refused, match="bad-d"):
        await later[1]
    assert await later[2] == "E"
    assert (batcher.calls_sent, batcher.items_sent) == (3, 5)


async def test_a_call_carries_at_most_max_items() -> None:
    calls = Calls()
    batcher: Batcher[str, str] = Batcher(calls.send, name="t", calls_at_once=1, max_items=2)
    waiting = [asyncio.ensure_future(batcher.submit(i, _far())) for i in "abcde"]
    await _settle()
    for index in range(3):
        calls.release(index)
        await _settle()
    assert calls.sent == [["a"], ["b", "c"], ["d", "e"]]
    assert await asyncio.gather(*waiting) == list("ABCDE")


async def test_a_failed_call_fails_its_items_only() -> None:
    calls = Calls()
    batcher: Batcher[str, str] = Batcher(calls.send, name="t", calls_at_once=1)
    first = asyncio.ensure_future(batcher.submit("a", _far()))
    await _settle()
    second = asyncio.ensure_future(batcher.submit("b", _far()))
    calls.fail_with = ConnectionError("gone")
    calls.release(0)
    with pytest.raises(ConnectionError):
        await first
    await _settle()
    calls.fail_with = None
    calls.release(1)
    assert await second == "B"


async def test_a_call_returning_the_wrong_number_of_results_fails_its_items() -> None:
    calls = Calls()

    async def two_for_each_call(items: Sequence[str], timeout_s: float) -> list[str | Exception]:
        await calls.send(items, timeout_s)
        return ["x", "y"]

    batcher: Batcher[str, str] = Batcher(two_for_each_call, name="reads", calls_at_once=1)
    alone = asyncio.ensure_future(batcher.submit("a", _far()))
    await _settle()
    pair = [asyncio.ensure_future(batcher.submit(i, _far())) for i in ("b", "c")]
    await _settle()
    calls.release(0)
    with pytest.raises(RuntimeError, match="reads: 2 results for 1 items"):
        await alone
    await _settle()
    calls.release(1)
    assert await asyncio.gather(*pair) == ["x", "y"]


async def test_a_caller_that_gives_up_is_not_sent_and_does_not_disturb_the_others() -> None:
    calls = Calls()
    batcher: Batcher[str, str] = Batcher(calls.send, name="t", calls_at_once=1)
    on_the_way = asyncio.ensure_future(batcher.submit("a", _far()))
    await _settle()
    queued = [asyncio.ensure_future(batcher.submit(i, _far())) for i in ("b", "c")]
    await _settle()
    queued[0].cancel()  # its client went away while it queued
    on_the_way.cancel()  # and this one while its call was out
    await _settle()
    calls.release(0)
    await _settle()
    assert calls.sent == [["a"], ["c"]]
    calls.release(1)
    assert await queued[1] == "C"


async def test_the_call_gets_the_latest_deadline_of_its_items() -> None:
    calls = Calls()
    batcher: Batcher[str, str] = Batcher(calls.send, name="t", calls_at_once=1)
    now = asyncio.get_running_loop().time()
    first = asyncio.ensure_future(batcher.submit("a", now + 1))
    await _settle()
    rest = [asyncio.ensure_future(batcher.submit(i, now + t)) for i, t in (("b", 2), ("c", 7))]
    await _settle()
    calls.release(0)
    await _settle()
    calls.release(1)
    await asyncio.gather(first, *rest)
    assert 0 < calls.timeouts[0] <= 1
    assert 6 < calls.timeouts[1] <= 7


async def test_closing_lets_calls_finish_cancels_the_queue_and_refuses_new_items() -> None:
    calls = Calls()
    batcher: Batcher[str, str] = Batcher(calls.send, name="reads", calls_at_once=1)
    on_the_way = asyncio.ensure_future(batcher.submit("a", _far()))
    await _settle()
    queued = asyncio.ensure_future(batcher.submit("b", _far()))
    await _settle()
    closing = asyncio.ensure_future(batcher.aclose(grace_s=5))
    await _settle()
    calls.release(0)
    await closing
    assert await on_the_way == "A"
    assert queued.cancelled()
    assert calls.sent == [["a"]]
    with pytest.raises(RuntimeError, match="reads: closed"):
        await batcher.submit("c", _far())


async def test_a_call_whose_callers_all_gave_up_is_cancelled_and_frees_its_slot() -> None:
    calls = Calls()
    batcher: Batcher[str, str] = Batcher(calls.send, name="t", calls_at_once=1)
    stalled = [asyncio.ensure_future(batcher.submit(i, _far())) for i in ("a", "b")]
    await _settle()
    later = asyncio.ensure_future(batcher.submit("c", _far()))
    await _settle()
    assert calls.sent == [["a"]]  # "b" and "c" queue behind the stalled call
    stalled[0].cancel()  # the only caller of the call on the way gives up
    await _settle()
    assert calls.sent == [["a"], ["b", "c"]]  # cancelled, so the queue went out at once
    stalled[1].cancel()  # one of two callers gives up: the call goes on for the other
    await _settle()
    calls.release(1)
    assert await later == "C"
    assert stalled[1].cancelled()


async def test_items_of_different_groups_never_share_a_call_and_keep_their_order() -> None:
    """Grouped by first letter: a call carries the oldest item's group; the others wait in
    their order for the next call."""
    calls = Calls()
    batcher: Batcher[str, str] = Batcher(calls.send, name="t", group=lambda item: item[0])
    first = asyncio.ensure_future(batcher.submit("a1", _far()))
    await _settle()
    queued = [asyncio.ensure_future(batcher.submit(i, _far())) for i in ("b1", "a2", "b2", "c1")]
    await _settle()
    for index in range(4):
        calls.release(index)
        await _settle()
    assert calls.sent == [["a1"], ["b1", "b2"], ["a2"], ["c1"]]
    assert await asyncio.gather(first, *queued) == ["A1", "B1", "A2", "B2", "C1"]

"""Coalescing: what arrives while calls are on the way goes out together in the next call.

A gRPC call costs both sides about the same CPU whether it carries one read or
sixteen: nearly all of it is per call (``python -m cpr_bench.grpc_floor``; the figures
are in docs/benchmarks.md, "Where the time goes, and what was changed": modern route,
plaintext clients). So a worker sends a read at once when
fewer than ``calls_at_once`` calls are on the way, and otherwise queues it; each
call that returns sends what has queued meanwhile, up to ``max_items``, as one
call. Nothing waits for a timer: when the backend keeps up every read goes alone
and as soon as it arrives; under load the batches grow by themselves, exactly as
far as the backend is behind (like a database's group commit).

Each item keeps its own deadline: the call carries the latest of its items', and
a caller that stops waiting (its deadline, its client gone) leaves the call to
finish for the others; once all of a call's callers have stopped waiting, the call
is cancelled, so its slot goes to the items queued behind it. What the call gives
back for each item, a result or an exception, reaches that item's caller only.

Items may belong to groups that must not share a call (the gRPC adapter's reads each carry
their client's address, and a call carries one address): a call then takes the oldest
item's group, up to ``max_items`` of it, and the others keep their place in the queue.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.runtime.tasks import TaskSet

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Sends items in one call within a timeout (seconds): one result or exception per item,
#: in order. An exception it raises instead is every item's.
Send = Callable[[Sequence[Item], float], Awaitable[Sequence[Result | Exception]]]
#: The group an item belongs to: only items of one group share a call.
Group = Callable[[Item], Hashable]


@dataclass(slots=True)
class _Waiting(Generic[Item, Result]):
    item: Item
    expires: float  # loop time
    future: asyncio.Future[Result]


class Batcher(Generic[Item, Result]):
    """Sends submitted items through ``send``, several per call when calls are on the way."""

    def __init__(
        self,
        send: Send[Item, Result],
        *,
        name: str,
        calls_at_once: int = 1,
        max_items: int = 64,
        group: Group[Item] | None = None,
    ) -> None:
        """``group`` None: any items may share a call."""
        if calls_at_once < 1 or max_items < 1:
            raise ValueError("calls_at_once and max_items must be at least 1")
        self._send = send
        self._group = group
        self._name = name
        self._calls_at_once = calls_at_once
        self._max_items = max_items
        self._queue: deque[_Waiting[Item, Result]] = deque()
        self._calls = TaskSet()
        self._on_the_way = 0  # calls sent and not yet returned
        self._closed = False
        #: Calls sent and items they carried since start (for tests and benchmarks).
        self.calls_sent = 0
        self.items_sent = 0

    @property
    def queued(self) -> int:
        """Items waiting for a call."""
        return len(self._queue)

    async def submit(self, item: Item, expires: float) -> Result:
        """``item``'s result, sent by ``expires`` (loop time) at the latest; raises its error.

        RuntimeError after :meth:`aclose` (its owner stops using it before closing it).
        """
        if self._closed:
            raise RuntimeError(f"{self._name}: closed")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        waiting = _Waiting(item, expires, future)
        self._queue.append(waiting)
        self._launch_if_free()
        return await waiting.future

    async def aclose(self, grace_s: float = 1.0) -> None:
        """Let calls on the way finish within ``grace_s``; items still queued get CancelledError."""
        self._closed = True
        await self._calls.drain(grace_s, f"{self._name}: closing")
        while self._queue:
            self._queue.popleft().future.cancel()

    def _launch_if_free(self) -> None:
        """Send what is queued (up to ``max_items``) if fewer than ``calls_at_once`` are out."""
        if self._on_the_way >= self._calls_at_once or self._closed:
            return
        batch = self._next_batch()
        if batch:
            self._on_the_way += 1
            call = self._calls.spawn(self._call(batch), name=f"{self._name}: {len(batch)} items")
            abandoned = functools.partial(_cancel_if_abandoned, batch, call)
            for waiting in batch:
                waiting.future.add_done_callback(abandoned)

    def _next_batch(self) -> list[_Waiting[Item, Result]]:
        """Up to ``max_items`` queued items of the oldest one's group, taken from the queue."""
        batch: list[_Waiting[Item, Result]] = []
        others: list[_Waiting[Item, Result]] = []  # of other groups: they keep their place
        group: Hashable = None
        while self._queue and len(batch) < self._max_items:
            waiting = self._queue.popleft()
            if waiting.future.done():  # its caller gave up while it queued
                continue
            if self._group is not None:
                if not batch:
                    group = self._group(waiting.item)
                elif self._group(waiting.item) != group:
                    others.append(waiting)
                    continue
            batch.append(waiting)
        self._queue.extendleft(reversed(others))
        return batch

    async def _call(self, batch: list[_Waiting[Item, Result]]) -> None:
        self.calls_sent += 1
        self.items_sent += len(batch)
        timeout = max(w.expires for w in batch) - asyncio.get_running_loop().time()
        try:
            outcomes = await self._send([w.item for w in batch], max(timeout, 0.001))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{self._name}: {len(outcomes)} results for {len(batch)} items")
        except Exception as exc:
            outcomes = [exc] * len(batch)
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.future.cancel()
            raise
        finally:
            # This call's slot is free: the next one carries whatever queued meanwhile.
            self._on_the_way -= 1
            self._launch_if_free()
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if waiting.future.done():
                continue
            if isinstance(outcome, Exception):
                waiting.future.set_exception(outcome)
            else:
                waiting.future.set_result(outcome)


def _cancel_if_abandoned(
    batch: list[_Waiting[Item, Result]], call: asyncio.Task[None], _done: object
) -> None:
    """Cancel a call once every caller in it has given up: nobody waits for it, and it holds
    a slot that the reads queued behind it need (e.g. services that stall past every
    deadline)."""
    if not call.done() and all(waiting.future.cancelled() for waiting in batch):
        call.cancel("every caller gave up")

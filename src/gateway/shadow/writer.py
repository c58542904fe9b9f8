"""The one task that writes comparisons to the mismatch store, off the event loop.

The store is synchronous (a SQLite file, or PostgreSQL across the network); a
write per request on the loop would stall every client, for as long as the
store is slow or down. Comparisons go into a bounded queue instead, and one task
takes them out in batches and writes each batch in a worker thread
(``asyncio.to_thread``), one transaction per batch. A full queue means the store
cannot keep up: new samples are then lost and counted, never waited for. A
batch whose write fails (PostgreSQL down, or slower than the store's statement
timeout) is lost, counted and logged (``store_error``); the next batch tries
again, on a new connection if the old one broke.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable

from gateway.comparison import ShadowPolicy
from gateway.errors import GatewayError
from gateway.observe.events import EventBus, ShadowSamplesLost
from gateway.runtime.tasks import TaskSet
from gateway.shadow.store import MismatchStore, Sample

#: Samples waiting for the store at most. At a few hundred comparisons a second this is
#: several seconds of backlog: enough to ride out a slow fsync, small enough to bound memory.
MAX_PENDING = 4096
#: Samples per transaction: one commit per batch instead of one per comparison.
BATCH = 256


class SampleWriter:
    """Feeds a :class:`MismatchStore` from the event loop without ever blocking it."""

    def __init__(self, store: MismatchStore, bus: EventBus) -> None:
        self._store = store
        self._bus = bus
        self._pending: collections.deque[Sample] = collections.deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._tasks = TaskSet()

    def start(self) -> None:
        """Start the writing task (call from the running loop)."""
        self._tasks.spawn(self._run(), name="shadow-store-writer")

    def put(self, sample: Sample) -> None:
        """Queue one comparison for the store; lost (and counted) when the queue is full."""
        if self._closing or len(self._pending) >= MAX_PENDING:
            self._bus.emit(ShadowSamplesLost("queue_full", 1))
            return
        self._pending.append(sample)
        self._wake.set()

    async def set_thresholds(self, policies: Iterable[ShadowPolicy]) -> None:
        """Record each shadowed route's thresholds, so the report judges as the gateway does."""
        try:
            for policy in policies:
                await asyncio.to_thread(self._store.set_thresholds, policy.route, policy.thresholds)
        except GatewayError as exc:
            self._bus.emit(ShadowSamplesLost("store_error", 0, str(exc)))

    async def aclose(self, grace_s: float) -> None:
        """Write what is queued (for up to ``grace_s``), then close the store."""
        self._closing = True
        self._wake.set()
        await self._tasks.drain(grace_s, "shutdown: shadow store too slow")
        if self._pending:
            self._bus.emit(ShadowSamplesLost("queue_full", len(self._pending), "shutdown"))
            self._pending.clear()
        await asyncio.to_thread(self._store.close)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
                await self._write(batch)
            if self._closing:
                return

    async def _write(self, batch: list[Sample]) -> None:
        try:
            await asyncio.to_thread(self._store.record_many, batch)
        except (GatewayError, ValueError) as exc:  # StoreError, or a sample that held a PNR
            self._bus.emit(ShadowSamplesLost("store_error", len(batch), str(exc)))

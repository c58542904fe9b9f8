"""The one task that opens the mismatch store and writes comparisons to it, off the event loop.

The store is synchronous (a SQLite file, or PostgreSQL across the network); a
write per request on the loop would stall every client, for as long as the
store is slow or down. Comparisons go into a bounded queue instead, and one task
takes them out in batches and writes each batch in a worker thread
(``asyncio.to_thread``), one transaction per batch. A full queue means the store
cannot keep up: new samples are then lost and counted, never waited for. A
batch whose write fails (a statement slower than the store's statement timeout,
a connection that broke under it) is lost, counted and logged (``store_error``);
the next batch tries again, on a new connection.

The evidence is secondary: no client's answer depends on it. So a store that
cannot be reached, at start or later, costs the comparisons made meanwhile and
never the gateway. While the store is not open they are lost and counted at once
(``store_unavailable``), and the task tries to open it again after a backoff
(:class:`Backoff`); the outage is logged when it starts (again only if its cause
changes) and when the store is back, never per attempt or per comparison. Once
open, the store gets the routes' thresholds and takes comparisons again. What
only a change of configuration can mend (a file that is no store, credentials
PostgreSQL refuses, another schema version) fails the gateway's start instead,
when the first attempt finds it (:meth:`SampleWriter.start`); found later, it is
one more reason the store is not open, logged and retried.

Retention (``shadowing.retention``) is applied by the store on the write path; a
store that gets no comparisons for a while is pruned by this task every
``prune_every_s`` (a minute), so old evidence goes even when shadowing has stopped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import random
from collections.abc import Callable, Iterable

from gateway.comparison import ShadowPolicy, Thresholds
from gateway.errors import ConfigError, GatewayError
from gateway.observe.events import EventBus, ShadowSamplesLost, ShadowStoreState
from gateway.runtime.tasks import TaskSet
from gateway.shadow.store import AGE_PRUNE_INTERVAL, MismatchStore, Sample, StoreUnavailable

#: Samples waiting for the store at most. At a few hundred comparisons a second this is
#: several seconds of backlog: enough to ride out a slow fsync, small enough to bound memory.
MAX_PENDING = 4096
#: Samples per transaction: one commit per batch instead of one per comparison.
BATCH = 256
#: Seconds before the first new attempt to open a store that could not be opened, doubling
#: up to the last: a PostgreSQL back from a restart gets the evidence again within half a
#: minute, and a fleet does not hammer a server that is still starting.
RETRY_FIRST_S, RETRY_MOST_S = 1.0, 30.0
#: Seconds a gateway's start waits for its first attempt to open a PostgreSQL store: a server
#: that answers at all answers a connection and a few catalog queries well within it, so a
#: refusal still fails the start; one that does not answer delays the start no longer, and
#: the attempt goes on behind it.
START_WAIT_S = 3.0
#: ``ShadowSamplesLost.reason`` for comparisons made while the store was not open.
STORE_UNAVAILABLE = "store_unavailable"

#: What an attempt to open the store gave: the store, or why not.
Opened = MismatchStore | GatewayError


class Backoff:
    """Waits between attempts: ``first`` seconds, doubling up to ``most``; each wait is cut
    by up to half at random, so that a fleet's replicas do not all try in the same second."""

    def __init__(self, first: float = RETRY_FIRST_S, most: float = RETRY_MOST_S) -> None:
        self._first, self._most = first, most
        self._next = first

    def reset(self) -> None:
        """Start again from ``first`` (after a success)."""
        self._next = self._first

    def next(self) -> float:
        """Seconds to wait before the next attempt."""
        wait, self._next = self._next, min(self._next * 2, self._most)
        return wait * random.uniform(0.5, 1.0)  # spreads retries; not a secret


class SampleWriter:
    """Feeds the mismatch store from the event loop without ever blocking it; opens the store
    with ``open_store`` (blocking, run in a thread), again whenever it is lost."""

    def __init__(
        self,
        open_store: Callable[[], MismatchStore],
        bus: EventBus,
        prune_every_s: float = AGE_PRUNE_INTERVAL,
    ) -> None:
        self._open_store = open_store
        self._bus = bus
        self._prune_every_s = prune_every_s
        self._store: MismatchStore | None = None
        self._pending: collections.deque[Sample] = collections.deque()
        self._thresholds: dict[str, Thresholds] = {}
        self._thresholds_due = False
        self._backoff = Backoff()
        self._retry_in = 0.0
        #: Why the store is not open (as last announced); None while it is, or before the start.
        self._outage: str | None = None
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing = False
        self._tasks = TaskSet()

    async def start(self, *, wait_s: float | None = None) -> None:
        """Start the writing task, whose first step is to open the store (call from the loop).

        Waits for that first attempt for up to ``wait_s`` seconds (None: until it ends).
        ConfigError when it found the store unusable as configured. A store that cannot be
        reached now, or an attempt still running after ``wait_s``, does not stop the start:
        the task goes on trying, and comparisons are lost (and counted) until it succeeds.
        """
        first: asyncio.Task[Opened] | None
        first = self._tasks.spawn(self._attempt(), name="shadow-store-open")
        await asyncio.wait((first,), timeout=wait_s)
        if first.done():
            if isinstance(outcome := first.result(), ConfigError):
                raise outcome
            self._took(outcome)  # before start returns: the first comparisons find it open
            first = None
        self._tasks.spawn(self._run(first), name="shadow-store-writer")

    def put(self, sample: Sample) -> None:
        """Queue one comparison for the store; lost (and counted) when the queue is full or
        the store is not open."""
        if self._closing or len(self._pending) >= MAX_PENDING:
            self._bus.emit(ShadowSamplesLost("queue_full", 1))
        elif self._store is None:
            self._bus.emit(ShadowSamplesLost(STORE_UNAVAILABLE, 1))
        else:
            self._pending.append(sample)
            self._wake.set()

    def set_thresholds(self, policies: Iterable[ShadowPolicy]) -> None:
        """Record each shadowed route's thresholds, so the report judges as the gateway does.

        Never waits: the task writes them before the next comparisons, or once the store is
        open, and again each time it is opened anew.
        """
        self._thresholds = {policy.route: policy.thresholds for policy in policies}
        self._thresholds_due = True
        self._wake.set()

    async def aclose(self, grace_s: float) -> None:
        """Write what is queued (for up to ``grace_s``), then close the store."""
        self._closing = True
        self._closed.set()
        self._wake.set()
        await self._tasks.drain(grace_s, "shutdown: shadow store too slow")
        if self._pending:
            self._bus.emit(ShadowSamplesLost("queue_full", len(self._pending), "shutdown"))
            self._pending.clear()
        if self._store is not None:
            store, self._store = self._store, None
            await asyncio.to_thread(store.close)

    # -- the task ---------------------------------------------------------------------------

    async def _run(self, first: asyncio.Task[Opened] | None) -> None:
        if first is not None:  # still running when start stopped waiting
            self._took(await first)
        while True:
            if self._store is not None:
                await self._write_due()
            if self._closing:
                return
            if self._store is None:
                await self._wait_to_retry()
                if not self._closing:
                    self._took(await self._attempt())
            else:
                await self._idle()

    async def _idle(self) -> None:
        """Wait for work; prune the store when none came for ``prune_every_s``."""
        try:
            await asyncio.wait_for(self._wake.wait(), self._prune_every_s)
        except TimeoutError:
            await self._write(_prune, 0)
        else:
            self._wake.clear()

    async def _attempt(self) -> Opened:
        """One attempt to open the store, in a thread: the store, or why not."""
        future = asyncio.get_running_loop().run_in_executor(None, self._open_store)
        try:
            return await asyncio.shield(future)
        except GatewayError as exc:  # ConfigError, StoreUnavailable
            return exc
        except asyncio.CancelledError:
            future.add_done_callback(_close_unwanted)  # the thread cannot be stopped
            raise

    def _took(self, outcome: Opened) -> None:
        """Use the store an attempt opened, or wait for the next attempt."""
        if isinstance(outcome, MismatchStore):
            self._store, self._thresholds_due = outcome, True
            self._backoff.reset()
            if self._outage is not None:
                self._outage = None
                self._bus.emit(ShadowStoreState(available=True))
        else:
            self._unavailable(str(outcome))

    def _unavailable(self, why: str) -> None:
        """The store is not open: try again after a backoff; announce it if the cause is new."""
        self._retry_in = self._backoff.next()
        if why != self._outage:
            self._outage = why
            self._bus.emit(ShadowStoreState(available=False, detail=why))

    async def _wait_to_retry(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), self._retry_in)

    async def _write_due(self) -> None:
        """The thresholds if due, then the queued comparisons in batches, while it is open."""
        if self._thresholds_due:
            self._thresholds_due = False
            thresholds = list(self._thresholds.items())
            await self._write(functools.partial(_set_thresholds, thresholds=thresholds), 0)
        while self._pending and self._store is not None:
            batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            await self._write(functools.partial(_record, samples=batch), len(batch))
        if self._pending:  # queued before the store was lost
            self._bus.emit(ShadowSamplesLost(STORE_UNAVAILABLE, len(self._pending)))
            self._pending.clear()

    async def _write(self, write: Callable[[MismatchStore], None], samples: int) -> None:
        """Run ``write`` on the store in a thread; a failure costs ``samples``, counted."""
        store = self._store
        if store is None:
            return
        try:
            await asyncio.to_thread(write, store)
        except StoreUnavailable as exc:  # the connection broke and no new one can be made
            self._bus.emit(ShadowSamplesLost(STORE_UNAVAILABLE, samples))
            self._store = None
            await asyncio.to_thread(store.close)
            self._unavailable(str(exc))
        except (GatewayError, ValueError) as exc:  # StoreError, or a sample that held a PNR
            self._bus.emit(ShadowSamplesLost("store_error", samples, str(exc)))


def _record(store: MismatchStore, samples: list[Sample]) -> None:
    store.record_many(samples)


def _prune(store: MismatchStore) -> None:
    store.prune()


def _set_thresholds(store: MismatchStore, thresholds: list[tuple[str, Thresholds]]) -> None:
    for route, values in thresholds:
        store.set_thresholds(route, values)


def _close_unwanted(future: asyncio.Future[MismatchStore]) -> None:
    """Close a store whose attempt ended after the writer stopped waiting for it."""
    if not future.cancelled() and future.exception() is None:
        future.result().close()

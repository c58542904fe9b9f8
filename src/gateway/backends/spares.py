"""Connections to a CPR Direkte server opened ahead of the requests that will use them.

Every request to the mainframe needs a connection of its own (spec §1), and opening one
(the TCP connect, then the TLS handshake, two round trips and the server's work) sits
between the client's request and its answer. HAProxy in TCP mode hides it by connecting
when the client connects; the gateway learns where a request goes only from the request,
so it keeps a few connections ready instead (``spare_connections`` in routing.yaml): a
request takes a ready one, and a new one is opened behind it.

The mainframe does the same work per request either way: a spare is opened only to
replace one a request took, and only while requests come closer together than
``spare_max_age`` (sparse traffic would see each spare expire unused, a handshake for
nothing). A spare unused for ``spare_max_age`` is closed, not replaced; so when traffic
stops, at most ``spare_connections`` connections close without a request. A spare the
server closed meanwhile is found dead when taken and dropped.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from gateway.runtime.tasks import TaskSet


class SpareConnection(Protocol):
    """What a spare must say about itself (the legacy backend's ``_Exchange``)."""

    @property
    def usable(self) -> bool:
        """Connected (TLS done), nothing received, not closed: a request may go on it."""

    def close(self) -> None:
        """Give it up unused."""


C = TypeVar("C", bound=SpareConnection)


class Spares(Generic[C]):
    """Up to ``count`` connections opened ahead, each kept at most ``max_age`` seconds."""

    def __init__(
        self,
        opener: Callable[[], Awaitable[C]],
        count: int,
        max_age: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open = opener
        self._count = count
        self._max_age = max_age
        self._clock = clock
        #: Ready connections, oldest first, each with when it became ready.
        self._ready: collections.deque[tuple[C, float]] = collections.deque()
        self._opening = TaskSet()
        #: When the last request asked for a connection; None before the first.
        self._last_asked: float | None = None
        self._closed = False
        self._expiry: asyncio.TimerHandle | None = None
        #: Counts by outcome (gateway.observe.events.SPARE_OUTCOMES), read when the metrics
        #: are scraped: nothing is emitted per request.
        self.outcomes: Counter[str] = Counter()

    def __len__(self) -> int:
        """Connections ready now."""
        return len(self._ready)

    def take(self) -> C | None:
        """A ready connection for a request, or None (the request opens its own). Either
        way a replacement is opened behind it while requests come often enough."""
        now = self._clock()
        dense = self._last_asked is not None and now - self._last_asked < self._max_age
        self._last_asked = now
        taken = None
        while self._ready:
            connection, since = self._ready.popleft()
            if connection.usable and now - since < self._max_age:
                taken = connection
                break
            # The server closed it, or (its expiry not run yet) it is too old to trust.
            self.outcomes["stale" if not connection.usable else "expired"] += 1
            connection.close()
        self.outcomes["used" if taken is not None else "missed"] += 1
        if dense:
            self._replenish()
        return taken

    def gave_way(self) -> None:
        """A spare taken gave no answer (the server had closed it): counted as ``stale``."""
        self.outcomes["stale"] += 1

    async def aclose(self) -> None:
        """Close every spare and stop opening more (shutdown, or the backend retired)."""
        self._closed = True
        await self._opening.drain(0.0, "backend closed")
        if self._expiry is not None:
            self._expiry.cancel()
        self._expire(everything=True)

    def _replenish(self) -> None:
        if self._closed:
            return
        for _ in range(self._count - len(self._ready) - len(self._opening)):
            self._opening.spawn(self._open_one(), name="spare connection")

    async def _open_one(self) -> None:
        try:
            connection = await self._open()
        except Exception:  # a request that finds none connects (and reports failures) itself
            self.outcomes["failed"] += 1
            return
        if self._closed:
            connection.close()
            return
        self._ready.append((connection, self._clock()))
        if self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_later(self._max_age, self._expire)

    def _expire(self, *, everything: bool = False) -> None:
        """Close the spares past their age (all of them at close); look again when the
        oldest left would be."""
        self._expiry = None
        now = self._clock()
        while self._ready and (everything or now - self._ready[0][1] >= self._max_age):
            self._ready.popleft()[0].close()
            if not everything:
                self.outcomes["expired"] += 1
        if self._ready:
            due = self._ready[0][1] + self._max_age - now
            self._expiry = asyncio.get_running_loop().call_later(due, self._expire)

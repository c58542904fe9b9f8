"""A backend's connections per process, and the line of requests waiting for one.

A CPR Direkte backend gets at most ``max_connections`` connections from a gateway process;
a request beyond them waits in line. The wait is pure queueing, not the backend's work: a
slow mainframe with free connections adds nothing to it. When requests keep arriving
faster than the backend answers them, the line becomes a standing queue, and every
request in it waits for those ahead, up to its deadline. So the line is kept the way CoDel
keeps a router's queue (Nichols and Jacobson, "Controlling Queue Delay", 2012): once even
the shortest wait has been above ``target`` for a whole ``interval``, a request that finds
no free connection is refused at once (:class:`~gateway.errors.BackendBusy`, FEJLNR 08,
a project rule) instead of joining the line, until a request is through within ``target``
again. The requests already in line drain at the backend's pace, those that come find a
short line, and the ones refused learn it in no time, not after seconds in line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.errors import BackendBusy

#: How long the waits must stay above the target before new requests are refused: about
#: a few answers' time of a mainframe, so that a burst that clears by itself refuses none.
INTERVAL_S = 0.1


class ConnectionLine:
    """``size`` connections; the rest wait in order, or are refused while the line stands."""

    def __init__(
        self,
        name: str,
        size: int,
        target_s: float,
        *,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._size = size
        self._slots = asyncio.Semaphore(size)
        self._target_s = target_s
        self._interval_s = interval_s
        self._clock = clock
        #: When the waits, above the target since then, make the line a standing one.
        self._standing_at: float | None = None
        #: True while new requests that find no free connection are refused.
        self.refusing = False

    async def acquire(self) -> None:
        """A connection's turn: at once when one is free; else a place in line, or
        BackendBusy while the line stands. Cancelled (the deadline), nothing is held."""
        slots = self._slots
        if not slots.locked():
            await slots.acquire()  # free: taken without a wait
            self._waited(0.0)
            return
        if self.refusing:
            raise BackendBusy(
                f"{self._name}: all {self._size} connections busy and the line standing"
            )
        joined = self._clock()
        await slots.acquire()
        self._waited(self._clock() - joined)

    def release(self) -> None:
        """A connection is done: the next in line gets its turn."""
        self._slots.release()

    def _waited(self, wait_s: float) -> None:
        """CoDel's test, on each request through: a wait within the target ends a standing
        line at once; waits above it for a whole interval start one."""
        if wait_s < self._target_s:
            self._standing_at = None
            self.refusing = False
            return
        now = self._clock()
        if self._standing_at is None:
            self._standing_at = now + self._interval_s
        elif now >= self._standing_at:
            self.refusing = True

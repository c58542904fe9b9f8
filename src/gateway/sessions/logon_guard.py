"""The failed-logon limit: a customer number guessed at from one address is refused for a while.

``limits.failed_logons: {max: 10, window: 5m}``: once ``max`` logons of one customer number
from one source address were refused (01) within ``window``, the next ones are answered 01 by
the gateway itself, without asking any backend, until the oldest of those failures is
``window`` old. A successful logon resets nothing: the key is the customer and the address,
and another user there may be the one guessing. Pure, and bounded: the least recently
failed keys are forgotten beyond :data:`MAX_KEYS`.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from gateway.config.schema import FailedLogons

#: Keys (customer, address) remembered per process: each costs at most ``max`` timestamps,
#: so a flood of addresses cannot grow memory past a few tens of MB, and a guesser still
#: needs this many other keys' failures in between to be forgotten.
MAX_KEYS = 100_000


class LogonGuard:
    """Refused logons per (customer, address), and whether the next one is let through."""

    def __init__(
        self,
        limit: FailedLogons,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._max_keys = max_keys
        # Least recently failed first; each deque holds the key's latest failure times.
        self._failures: collections.OrderedDict[tuple[str, str], collections.deque[float]] = (
            collections.OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._failures)

    def blocks(self, customer: str, address: str) -> bool:
        """Whether a logon of ``customer`` from ``address`` is over the limit now."""
        times = self._failures.get((customer, address))
        if times is None or len(times) < self.limit.max:
            return False
        return self._clock() - times[-self.limit.max] < self.limit.window

    def failed(self, customer: str, address: str) -> None:
        """A logon of ``customer`` from ``address`` was refused (01) by its backend."""
        key = (customer, address)
        times = self._failures.get(key)
        if times is None or times.maxlen != self.limit.max:
            times = collections.deque(times or (), maxlen=self.limit.max)
        self._failures[key] = times
        self._failures.move_to_end(key)
        times.append(self._clock())
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def set_limit(self, limit: FailedLogons) -> None:
        """Apply a reloaded limit (counts so far are kept, up to the new ``max``)."""
        self.limit = limit

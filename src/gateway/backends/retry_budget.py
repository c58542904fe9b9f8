"""How many failed canary reads may be asked again of the primary: a share of the recent reads.

A canary route's lookup that its candidate fails is asked of the route's primary
(docs/canary.md, "Read fallback"), but only while the fallbacks of the last
:data:`WINDOW_S` seconds stay within ``retry_budget`` of the candidate's reads in them. A
candidate that fails everything then adds at most that share to the primary's load, never a
second copy of the canary's traffic. Pure: the clock is an argument.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

#: Seconds of reads the budget looks back over: long enough to hold a few reads on a quiet
#: route, short enough that a burst of failures long past does not spend today's budget.
WINDOW_S = 10
#: The window is kept as this many one-second slots, so that it slides second by second.
_SLOTS = WINDOW_S


@dataclass(slots=True)
class _Slot:
    second: int = -1
    reads: int = 0
    fallbacks: int = 0


class RetryBudget:
    """A route's fallback budget: at most ``ratio`` (0.1 is 10%) of its recent candidate reads."""

    def __init__(self, ratio: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ratio = ratio
        self._clock = clock
        self._slots = [_Slot() for _ in range(_SLOTS)]

    def read(self) -> None:
        """Count one of the candidate's reads."""
        self._now().reads += 1

    def spend(self) -> bool:
        """Whether one more fallback is within the budget; if so it is counted."""
        now = self._now()
        second = now.second
        live = [s for s in self._slots if second - s.second < WINDOW_S]
        reads = sum(s.reads for s in live)
        fallbacks = sum(s.fallbacks for s in live)
        if fallbacks >= self.ratio * reads:
            return False
        now.fallbacks += 1
        return True

    def _now(self) -> _Slot:
        second = int(self._clock())
        slot = self._slots[second % _SLOTS]
        if slot.second != second:
            slot.second, slot.reads, slot.fallbacks = second, 0, 0
        return slot

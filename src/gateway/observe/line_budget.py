"""A budget of log lines per kind per second, for events a client can make as fast as it likes.

A refused connection or an unframeable record is one event, and a flood of them would be a
flood of log lines: disk and CPU spent at an attacker's pace (a line costs about a quarter of
what a connection refused at accept costs the gateway; docs/benchmarks.md, "Admission").
Counters still count every event; the log keeps the first lines of each kind every second
and says on the next line it writes how many it left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

#: Lines of one kind written per second before the rest are left out.
DEFAULT_LINES_PER_SECOND = 10


class LineBudget:
    """How many lines of each kind may still be written this second, and how many were not."""

    __slots__ = ("_clock", "_per_second", "_windows")

    def __init__(
        self,
        per_second: int = DEFAULT_LINES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_second = per_second
        self._clock = clock
        #: kind -> [the second it counts in, lines written in it, lines left out since the last]
        self._windows: dict[Hashable, list[int]] = {}

    def take(self, kind: Hashable) -> int | None:
        """None when this line is left out; else how many of its kind were left out since the
        last one written (0 mostly), for that line to say."""
        second = int(self._clock())
        window = self._windows.get(kind)
        if window is None:
            window = self._windows[kind] = [second, 0, 0]
        if window[0] != second:
            window[0], window[1] = second, 0
        if window[1] >= self._per_second:
            window[2] += 1
            return None
        window[1] += 1
        left_out, window[2] = window[2], 0
        return left_out

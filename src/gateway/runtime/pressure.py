"""How busy the event loop is: the lateness of a timer, sampled continuously.

Everything a gateway process does shares one event loop: the clients' requests and the
shadow copies alike. When the loop falls behind, a callback that is due waits for the
CPU, and that wait is added to every client's answer. :class:`LoopLag` measures it the
direct way, by asking to be woken every ``interval`` and noting how late the wake-up
came; the shadow runner sheds copies while it stays high (docs/shadow.md), so that shadow
work never slows the clients down even when the machine runs out of CPU. "Stays": the
lateness that counts is the mean of the last few samples (100 ms), so a short blip (a
garbage collection, a password hash) sheds little or nothing, while an overload is acted
on within about a tenth of a second. (The least of the samples was tried: under real
overload the loop still catches up now and then, and too little was shed.)

An idle loop is not sampled: while ``idle()`` says nothing is being served, the sampler
waits for :meth:`LoopLag.resume` (a new connection) instead of waking 40 times a second
to find the loop on time: an idle gateway worker paid for that waking in CPU
(docs/benchmarks.md, "Where the time goes, and what was changed": the loop-lag sampler).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

#: How often the loop is sampled. Short enough to react within a few requests'
#: time; each sample is one timer, nothing else.
SAMPLE_INTERVAL_S = 0.025
#: Samples averaged into the lateness that counts (4 × 25 ms = 100 ms).
SUSTAINED_SAMPLES = 4


class LoopLag:
    """The event loop's recent lateness in seconds (0 until sampled)."""

    def __init__(
        self,
        interval_s: float = SAMPLE_INTERVAL_S,
        on_sample: Callable[[float], None] | None = None,
        sustained: int = SUSTAINED_SAMPLES,
        idle: Callable[[], bool] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._on_sample = on_sample
        self._recent: collections.deque[float] = collections.deque(maxlen=sustained)
        self._idle = idle
        self._resumed = asyncio.Event()
        #: True while the sampler waits out an idle spell (no timer armed).
        self.parked = False

    def __call__(self) -> float:
        """How late the loop ran timers, on average over the last ``sustained`` samples."""
        return sum(self._recent) / len(self._recent) if self._recent else 0.0

    def record(self, lag_s: float) -> None:
        """Take one sample: a timer ran ``lag_s`` seconds after it was due."""
        self._recent.append(lag_s)
        if self._on_sample is not None:
            self._on_sample(lag_s)

    def resume(self) -> None:
        """Work arrived: sample again if the sampler is waiting out an idle spell."""
        self._resumed.set()

    async def run(self) -> None:
        """Sample until cancelled; while idle, one punctual sample, then wait for work."""
        loop = asyncio.get_running_loop()
        while True:
            if self._idle is not None and self._idle():
                self.parked = True  # set first: whoever sees the 0.0 sample sees it parked
                self._recent.clear()
                self.record(0.0)  # an idle loop is on time, and the gauge says so
                self._resumed.clear()
                await self._resumed.wait()
                self.parked = False
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.record(max(loop.time() - due, 0.0))

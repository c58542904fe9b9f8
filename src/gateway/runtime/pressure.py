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

The loop is sampled only while it serves: a new connection starts the sampling
(:meth:`LoopLag.resume`), and the moment the last one is done (:meth:`LoopLag.rest`) the
pending sample is cancelled and one punctual sample says the loop is on time. An idle
gateway worker woke 40 times a second to find its loop on time (docs/benchmarks.md, "Where
the time goes, and what was changed": the loop-lag sampler); at a light load, where each
connection is over long before the next sample is due, the wake-up a sample cost came on
top of every few requests. A loop that falls behind has connections open throughout, and
is sampled throughout. The samples are timer callbacks, not a task: a sample costs one
timer, nothing else.
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
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The next sample (its timer, and when it is due); None while parked or stopped.
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
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

    async def run(self) -> None:
        """Sample, while not idle, until cancelled."""
        self._loop = asyncio.get_running_loop()
        self.parked = False
        self._next()
        try:
            await self._loop.create_future()  # the samples are timer callbacks
        finally:
            self._stop_timer()
            self._loop = None

    def resume(self) -> None:
        """Work arrived: sample again if the sampler is waiting out an idle spell."""
        if self.parked and self._loop is not None:
            self.parked = False
            self._arm()

    def rest(self) -> None:
        """Work may have ended: if the loop is idle now, stop sampling until :meth:`resume`."""
        if not self.parked and self._loop is not None and self._is_idle():
            self._stop_timer()
            self._park()

    def _next(self) -> None:
        if self._is_idle():
            self._park()
        else:
            self._arm()

    def _arm(self) -> None:
        assert self._loop is not None
        self._due = self._loop.time() + self.interval_s
        self._timer = self._loop.call_at(self._due, self._sample)

    def _sample(self) -> None:
        assert self._loop is not None
        self._timer = None
        self.record(max(self._loop.time() - self._due, 0.0))
        self._next()

    def _park(self) -> None:
        """An idle loop is on time, and the gauge says so (once per spell: no sample came
        since the last one said so, and nothing is recorded again)."""
        self.parked = True  # set first: whoever sees the 0.0 sample sees it parked
        if list(self._recent) != [0.0]:
            self._recent.clear()
            self.record(0.0)

    def _is_idle(self) -> bool:
        return self._idle is not None and self._idle()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

"""How busy the event loop is: the lateness of a timer, sampled continuously.

Everything a gateway process does shares one event loop: the clients' requests and the
shadow copies alike. When the loop falls behind, a callback that is due waits for the
CPU, and that wait is added to every client's answer. :class:`LoopLag` measures it the
direct way, by asking to be woken every ``interval`` and noting how late the wake-up
came; the shadow runner sheds copies while it is high (docs/shadow.md), so that shadow
work never slows the clients down even when the machine runs out of CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: How often the loop is sampled. Short enough to react within a few requests'
#: time; each sample is one timer, nothing else.
SAMPLE_INTERVAL_S = 0.025


class LoopLag:
    """The event loop's lateness in seconds, as of the last sample (0 until sampled)."""

    def __init__(
        self,
        interval_s: float = SAMPLE_INTERVAL_S,
        on_sample: Callable[[float], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._on_sample = on_sample
        self._lag_s = 0.0

    def __call__(self) -> float:
        """The last sample: how late the loop ran a timer that was due."""
        return self._lag_s

    async def run(self) -> None:
        """Sample until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self._lag_s = max(loop.time() - due, 0.0)
            if self._on_sample is not None:
                self._on_sample(self._lag_s)

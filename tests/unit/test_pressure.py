"""LoopLag: the event loop's lateness, as the shadow runner sheds by it."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from gateway.runtime.pressure import LoopLag


class Samples(list[float]):
    """The samples taken, and a way to wait for a number of them however slow the machine."""

    def __init__(self) -> None:
        super().__init__()
        self._taken = asyncio.Event()

    def take(self, lag_s: float) -> None:
        self.append(lag_s)
        self._taken.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self) < count:
                self._taken.clear()
                await self._taken.wait()


async def test_a_blocked_loop_is_measured_as_late() -> None:
    """While something holds the loop for 0.2 s, a sample comes at least that late.

    A lower bound only: how late an idle loop's samples are depends on the machine.
    """
    samples = Samples()
    lag_window = 2
    lag = LoopLag(interval_s=0.01, on_sample=samples.take, sustained=lag_window)
    sampler = asyncio.get_running_loop().create_task(lag.run())
    await samples.until(lag_window)
    assert lag() == pytest.approx(sum(samples[-lag_window:]) / lag_window)
    time.sleep(0.2)  # noqa: ASYNC251  (the point: hold the loop)
    await asyncio.sleep(0.05)
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    assert max(samples) >= 0.15
    assert min(samples) >= 0.0


def test_lateness_is_the_mean_of_the_last_samples() -> None:
    """A blip is diluted by the punctual samples around it and gone once it leaves the
    window; lateness throughout the window counts in full."""
    lag = LoopLag(sustained=4)
    assert lag() == 0.0
    for sample in (0.0, 0.02, 0.0, 0.0):
        lag.record(sample)
    assert lag() == pytest.approx(0.005)
    for sample in (0.0, 0.0, 0.0, 0.0):
        lag.record(sample)
    assert lag() == 0.0
    for sample in (0.02, 0.03, 0.04, 0.03):
        lag.record(sample)
    assert lag() == pytest.approx(0.03)


async def test_an_idle_loop_is_not_sampled_until_work_resumes_it() -> None:
    """While ``idle()`` holds: one punctual sample, then none; ``resume()`` starts again."""
    samples = Samples()
    idle = [True]
    lag = LoopLag(interval_s=0.01, on_sample=samples.take, idle=lambda: idle[0])
    lag.record(0.5)  # lateness left over from before the idle spell
    samples.clear()
    sampler = asyncio.get_running_loop().create_task(lag.run())
    await asyncio.sleep(0.1)
    assert samples == [0.0] and lag() == 0.0  # ten intervals, one sample
    assert lag.parked
    idle[0] = False
    lag.resume()
    await samples.until(3)  # sampling again
    assert not lag.parked
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler


async def test_the_last_connection_done_stops_the_sampling_at_once() -> None:
    """``rest()`` when idle cancels the pending sample (no wake-up for it) and says the loop
    is on time once; when not idle it changes nothing. A busy spell shorter than the
    interval costs no sample at all, and its parking records nothing new."""
    samples = Samples()
    busy = [True]
    lag = LoopLag(interval_s=0.02, on_sample=samples.take, idle=lambda: not busy[0])
    sampler = asyncio.get_running_loop().create_task(lag.run())
    await samples.until(2)
    lag.rest()  # still busy: sampling goes on
    await samples.until(3)
    busy[0] = False
    lag.rest()
    assert lag.parked and samples[-1] == 0.0 and lag() == 0.0
    taken = len(samples)
    await asyncio.sleep(0.1)
    assert len(samples) == taken  # cancelled: nothing more, not even the one that was due
    busy[0] = True
    lag.resume()
    busy[0] = False
    lag.rest()  # a connection over before its first sample was due
    await asyncio.sleep(0.05)
    assert len(samples) == taken and lag.parked
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler

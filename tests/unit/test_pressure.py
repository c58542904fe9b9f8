"""LoopLag: the event loop's lateness, as the shadow runner sheds by it."""

from __future__ import annotations

import asyncio
import contextlib
import time

from gateway.pressure import LoopLag


async def test_a_blocked_loop_is_measured_as_late() -> None:
    """While something holds the loop for 0.2 s, a sample comes at least that late.

    A lower bound only: how late an idle loop's samples are depends on the machine.
    """
    samples: list[float] = []
    lag_window = 2
    lag = LoopLag(interval_s=0.01, on_sample=samples.append, sustained=lag_window)
    sampler = asyncio.get_running_loop().create_task(lag.run())
    await asyncio.sleep(0.05)
    assert samples and lag() == min(samples[-lag_window:])
    time.sleep(0.2)  # noqa: ASYNC251  (the point: hold the loop)
    await asyncio.sleep(0.05)
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    assert max(samples) >= 0.15
    assert min(samples) >= 0.0


def test_only_sustained_lateness_counts() -> None:
    """One late sample among punctual ones is a blip (0); late throughout the window counts,
    as its least late sample."""
    lag = LoopLag(sustained=3)
    assert lag() == 0.0
    for sample in (0.0, 0.5, 0.0):
        lag.record(sample)
    assert lag() == 0.0
    for sample in (0.2, 0.3, 0.4):
        lag.record(sample)
    assert lag() == 0.2
    lag.record(0.0)
    assert lag() == 0.0

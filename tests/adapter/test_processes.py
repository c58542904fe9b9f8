"""Stopping child processes: ask with SIGTERM, wait, then SIGKILL one that will not go."""

from __future__ import annotations

import asyncio
import sys

from cpr_devtools.processes import stop

#: A child that says it is ready, then waits; with ``ignore`` it shrugs off SIGTERM.
_CHILD = """
import signal, sys, time
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


async def _child(mode: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, mode, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert await process.stdout.readline() == b"ready\n"
    return process


async def test_a_child_that_stops_on_sigterm_is_not_killed() -> None:
    process = await _child("obey")
    assert await stop(process, timeout_s=10) is True
    assert process.returncode == -15  # SIGTERM


async def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    process = await _child("ignore")
    assert await stop(process, timeout_s=0.2) is False
    assert process.returncode == -9  # SIGKILL


async def test_stopping_an_exited_child_is_a_no_op() -> None:
    process = await _child("obey")
    process.terminate()
    await process.wait()
    assert await stop(process, timeout_s=1) is True

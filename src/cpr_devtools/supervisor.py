"""Processes in the foreground, supervised as one set: how `cpr-gateway up` runs its parts.

:mod:`cpr_devtools.up` decides which parts the default stack has; this module only runs
parts. Each part runs as its own process (as it would in production), started in
dependency order, each awaited until its port accepts connections. Ctrl-C or
SIGTERM stops them in reverse order, each with its own graceful drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from cpr_devtools.processes import stop

#: How long a part may take to open its port before the stack gives up.
_START_TIMEOUT_S = 120.0
#: How long a part may take to drain after SIGTERM before it is killed.
_STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Listener:
    """An address a part opens; the part is up when all of its listeners accept."""

    host: str
    port: int
    what: str


@dataclass(frozen=True, slots=True)
class Part:
    """One process of the stack."""

    name: str
    argv: tuple[str, ...]
    listeners: tuple[Listener, ...]


async def run_stack(parts: Sequence[Part]) -> int:
    """Start every part, print where it listens, and wait for a signal or a crash."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running: list[tuple[Part, asyncio.subprocess.Process]] = []
    try:
        for part in parts:
            process = await asyncio.create_subprocess_exec(*part.argv)
            running.append((part, process))
            for listener in part.listeners:
                await _wait_until_listening(part, listener, process)
                print(f"  {listener.what:<40} {listener.host}:{listener.port}", flush=True)
        print("stack is up; Ctrl-C stops it", flush=True)
        return await _wait_for_stop_or_exit(stop, running)
    finally:
        await _stop_all(running)


async def _wait_until_listening(
    part: Part, listener: Listener, process: asyncio.subprocess.Process
) -> None:
    deadline = asyncio.get_running_loop().time() + _START_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline:
        if process.returncode is not None:
            raise SystemExit(f"{part.name} exited with {process.returncode} while starting")
        try:
            _reader, writer = await asyncio.open_connection(listener.host, listener.port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise SystemExit(f"{part.name} did not listen on {listener.host}:{listener.port} in time")


async def _wait_for_stop_or_exit(
    stop: asyncio.Event, running: list[tuple[Part, asyncio.subprocess.Process]]
) -> int:
    waits = {asyncio.ensure_future(p.wait()): part for part, p in running}
    stopper = asyncio.ensure_future(stop.wait())
    done, _pending = await asyncio.wait({stopper, *waits}, return_when=asyncio.FIRST_COMPLETED)
    for task in (stopper, *waits):
        if task not in done:
            task.cancel()
    if stopper in done:
        print("stopping…", flush=True)
        return 0
    crashed = next(waits[t] for t in done if t in waits)
    print(f"{crashed.name} exited unexpectedly; stopping the stack", file=sys.stderr, flush=True)
    return 1


async def _stop_all(running: list[tuple[Part, asyncio.subprocess.Process]]) -> None:
    for part, process in reversed(running):
        if not await stop(process, _STOP_TIMEOUT_S):
            print(f"{part.name} did not stop in time; killed it", file=sys.stderr)

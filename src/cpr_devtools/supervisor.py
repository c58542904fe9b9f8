"""Processes in the foreground, supervised as one set: how `cpr-gateway up` runs its parts.

:mod:`cpr_devtools.up` decides which parts the default stack has; this module only runs
parts. Each part runs as its own process (as it would in production), started in
dependency order, each awaited until its port accepts connections (and then, if it
says so, prepared for the parts after it). Ctrl-C or SIGTERM stops them in reverse
order, each with its own graceful drain. A part that exits stops the stack, unless it
is expendable: a fleet's gateway replica, which the load balancer takes out of service, or
the new services, which the gateway answers 09 for (and a canary rolls back from).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

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
    #: Called in a thread once the part accepts, before the next part starts: e.g. the
    #: databases that the parts after it need.
    after_start: Callable[[], None] | None = None
    #: The stack carries on when this part exits (a fleet's gateway replica, the services).
    expendable: bool = False


Running = list[tuple[Part, asyncio.subprocess.Process]]


async def run_stack(parts: Sequence[Part]) -> int:
    """Start every part, print where it listens, and wait for a signal or a crash."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running: Running = []
    try:
        if not await _unless_stopped(stop, _start_all(parts, running)):
            print("stopping…", flush=True)
            return 0
        print("stack is up; Ctrl-C stops it", flush=True)
        return await _wait_for_stop_or_exit(stop, running)
    except StartFailed as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    finally:
        await _stop_all(running)


class StartFailed(Exception):
    """A part exited or stayed silent while starting; the message says which and how."""


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> bool:
    """Run ``work`` to its end (True), or until ``stop`` is set (False, ``work`` cancelled):
    a stop signal is obeyed while the stack is still starting."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task.done():
        task.result()  # StartFailed from a part that did not come up
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


async def _start_all(parts: Sequence[Part], running: Running) -> None:
    for part in parts:
        process = await asyncio.create_subprocess_exec(*part.argv)
        running.append((part, process))
        for listener in part.listeners:
            await _wait_until_listening(part, listener, process)
            where = f"{listener.host}:{listener.port}"
            print(f"  {listener.what:<48} {where:<16} pid {process.pid}", flush=True)
        if part.after_start is not None:
            await asyncio.to_thread(part.after_start)


async def _wait_until_listening(
    part: Part, listener: Listener, process: asyncio.subprocess.Process
) -> None:
    deadline = asyncio.get_running_loop().time() + _START_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline:
        if process.returncode is not None:
            raise StartFailed(f"{part.name} exited with {process.returncode} while starting")
        try:
            _reader, writer = await asyncio.open_connection(listener.host, listener.port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise StartFailed(f"{part.name} did not listen on {listener.host}:{listener.port} in time")


async def _wait_for_stop_or_exit(stop: asyncio.Event, running: Running) -> int:
    waits = {asyncio.ensure_future(p.wait()): part for part, p in running}
    stopper = asyncio.ensure_future(stop.wait())
    try:
        while True:
            done, _pending = await asyncio.wait(
                {stopper, *waits}, return_when=asyncio.FIRST_COMPLETED
            )
            if stopper in done:
                print("stopping…", flush=True)
                return 0
            for task in done:
                part = waits.pop(task)
                if not part.expendable:
                    print(
                        f"{part.name} exited unexpectedly ({task.result()}); stopping the stack",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
                print(
                    f"{part.name} exited ({task.result()}); the others carry on",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for task in (stopper, *waits):
            task.cancel()


async def _stop_all(running: Running) -> None:
    for part, process in reversed(running):
        if not await stop(process, _STOP_TIMEOUT_S):
            print(f"{part.name} did not stop in time; killed it", file=sys.stderr)

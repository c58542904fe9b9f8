"""`cpr-gateway serve --workers N`: N gateway processes sharing one client port.

One Python process runs on one core; the CPR Direkte hop is mostly TLS handshakes
and byte relaying, so a busy gateway needs more than one. Each worker is a whole
``cpr-gateway serve`` process started with ``--reuse-port``: every worker binds
the client port with SO_REUSEPORT and the kernel spreads new connections among
them. Workers share nothing.

Worker ``i`` serves /metrics, /healthz and /readyz on ``admin.port + i`` (a port
of 0 stays 0: each worker picks a free one), because counters are per process
and a scrape must see each worker. The parent forwards SIGTERM and SIGINT (each
worker drains gracefully) and SIGHUP (each worker reloads its routing file);
when one worker exits, the others are stopped and the parent exits non-zero, so
a supervisor restarts the set as a whole rather than running short-handed.

Sessions are per worker: the broker that maps a client's token to each side's
token lives in the worker that saw the logon. A lookup the kernel hands to
another worker is relayed with the client's token unchanged. That is right when
it goes to the side that answered the logon, but a split or a shadow that sends
it to the other side gets 07 there. Until sessions are shared between workers,
run several workers only with routes that keep each session on one side.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.config.schema import GatewayConfig
from gateway.errors import ConfigError

#: Signals passed on to every worker: stop gracefully, or reload the routing file.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Each worker bounds its own drain by ``limits.grace_period``; this backstop on top of
#: it covers a worker that hangs anyway, so the set never outlives a stop by much.
STOP_BACKSTOP_S = 15.0


def admin_ports(config: GatewayConfig, workers: int) -> list[int]:
    """The admin port of each worker: ``admin.port + i``, or 0 for all when it is 0."""
    base = config.admin.port
    return [0 if base == 0 else base + i for i in range(workers)]


def check_workers(config: GatewayConfig, workers: int) -> None:
    """ConfigError unless ``workers`` processes can share ``config``'s ports."""
    problems = []
    if workers < 1:
        problems.append(f"--workers: must be at least 1, got {workers}")
    if workers > 1 and config.listen.port == 0:
        problems.append("listen.port: --workers needs a fixed port; with 0 each gets its own")
    last = config.admin.port + workers - 1
    if config.admin.port and last > 65535:
        problems.append(f"admin.port: {workers} workers need ports up to {last}")
    if problems:
        raise ConfigError(problems)


def worker_argv(config_path: Path, admin_port: int) -> list[str]:
    """The command line of one worker: ``cpr-gateway serve`` sharing the client port."""
    return [
        sys.executable,
        "-m",
        "gateway.cli",
        "serve",
        "--config",
        str(config_path),
        "--reuse-port",
        "--admin-port",
        str(admin_port),
    ]


async def run_workers(config_path: Path, config: GatewayConfig, workers: int) -> int:
    """Run ``workers`` gateway processes until a stop signal or until one of them exits.

    ``config`` is ``config_path`` already loaded: it is validated once here, so a
    broken file fails once with its problems instead of once per worker.
    Returns 0 after a requested stop, 1 when a worker exited on its own.
    """
    check_workers(config, workers)
    processes: list[asyncio.subprocess.Process] = []
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in FORWARDED:
        loop.add_signal_handler(sig, _forward, sig, processes, stop)
    try:
        for port in admin_ports(config, workers):
            processes.append(await asyncio.create_subprocess_exec(*worker_argv(config_path, port)))
        return await _supervise(processes, stop)
    finally:
        for sig in FORWARDED:
            loop.remove_signal_handler(sig)
        await stop_all(processes, STOP_BACKSTOP_S)


def _forward(
    sig: signal.Signals, processes: Sequence[asyncio.subprocess.Process], stop: asyncio.Event
) -> None:
    """Pass ``sig`` to every running worker; a stop signal also ends the supervision."""
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
    if sig is not signal.SIGHUP:
        stop.set()


async def _supervise(processes: Sequence[asyncio.subprocess.Process], stop: asyncio.Event) -> int:
    """Wait for a stop signal (0) or for any worker to exit (1)."""
    exits = [asyncio.ensure_future(p.wait()) for p in processes]
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _pending = await asyncio.wait({stopper, *exits}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stopper, *exits):
            task.cancel()
    if stopper in done:
        return 0
    crashed = next(i for i, task in enumerate(exits) if task in done)
    code = processes[crashed].returncode
    print(f"gateway worker {crashed} exited with {code}; stopping the others", file=sys.stderr)
    return 1


async def stop_all(processes: Sequence[asyncio.subprocess.Process], backstop_s: float) -> None:
    """SIGTERM every running worker, wait for their drains, kill any that outlive ``backstop_s``."""
    running = [p for p in processes if p.returncode is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    if not running:
        return
    waits = [asyncio.ensure_future(p.wait()) for p in running]
    _done, late = await asyncio.wait(waits, timeout=backstop_s)
    for process in running:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    for task in late:
        task.cancel()

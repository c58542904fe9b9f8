"""The servers a benchmark measures, each a real process started from a config it writes.

Every config goes into the run's directory (``var/bench/run-*/``) next to the
server's log, so a run can be inspected and any server started again by hand.
All listen on loopback ports picked free at start. :class:`Servers` owns the
processes and stops them all, gracefully, on the way out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from cpr_bench.measure import ProcessUsage, process_tree, usage
from cpr_devtools.processes import stop

#: A server gets this long to open its port(s); the gateway imports grpc and a cold
#: start on a busy two-core machine takes a few seconds.
_START_TIMEOUT_S = 60.0
#: Each server drains in a second or two after SIGTERM; this bounds one that does not.
_STOP_TIMEOUT_S = 15.0
_POLL_S = 0.1
LOOPBACK = "127.0.0.1"


@dataclass
class Server:
    """One started server: its process (and its children), where it listens, its log."""

    name: str
    process: asyncio.subprocess.Process
    port: int
    log: Path
    #: Every pid of the server: the process and, for gateway workers, its children.
    pids: list[int] = field(default_factory=list)
    #: A gateway's admin ports, one per worker (its /metrics); empty for other servers.
    admin_ports: tuple[int, ...] = ()

    def usage(self) -> ProcessUsage:
        """CPU so far and peak memory of all of the server's processes."""
        return usage(self.pids)

    def failure(self) -> str:
        """Why the server is not running: its exit code and the end of its log."""
        tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
        return f"{self.name} exited with {self.process.returncode}: " + " | ".join(tail)


class ServerFailed(Exception):
    """A server did not start; the message says why (exit code and its last log lines)."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports (gateway workers' admin ports)."""
    for _attempt in range(100):
        base = free_port()
        if base + count > 65536:
            continue
        if all(_is_free(base + i) for i in range(1, count)):
            return base
    raise ServerFailed(f"no {count} consecutive free ports found")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


class Servers:
    """Starts servers as subprocesses and stops every one of them at the end."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.started: list[Server] = []

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        ready: Sequence[tuple[int, str | None]],
        env: Mapping[str, str] | None = None,
    ) -> Server:
        """Run ``argv`` (with ``env`` added to this process's environment); wait until every
        (port, HTTP path) in ``ready`` answers.

        A path of None means "accepts TCP connections"; a path means an HTTP
        GET of it answers 200 (a gateway's /readyz, which turns 200 only once its
        client port accepts).
        """
        log = self.run_dir / f"{name}.log"
        environment = {**os.environ, **env} if env else None
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=environment
            )
        server = Server(name, process, port, log)
        self.started.append(server)
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                for ready_port, path in ready:
                    await _wait_ready(server, ready_port, path)
        except TimeoutError:
            raise ServerFailed(f"{name} not ready within {_START_TIMEOUT_S:g}s") from None
        server.pids = process_tree(process.pid)
        return server

    async def aclose(self) -> None:
        """Stop every server, newest first (the gateways before what they call)."""
        for server in reversed(self.started):
            await stop(server.process, _STOP_TIMEOUT_S)
        self.started.clear()


async def _wait_ready(server: Server, port: int, path: str | None) -> None:
    while not await _answers(port, path):
        if server.process.returncode is not None:
            raise ServerFailed(server.failure())
        await asyncio.sleep(_POLL_S)


async def _answers(port: int, path: str | None) -> bool:
    """Whether ``port`` accepts (and, given a path, answers GET ``path`` with 200)."""
    try:
        if path is None:
            _reader, writer = await asyncio.open_connection(LOOPBACK, port)
            await _close(writer)
            return True
        status, _body = await http_get(port, path)
    except OSError:
        return False
    return status == 200


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    """GET ``path`` from the HTTP server on loopback ``port``: (status, body)."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {LOOPBACK}\r\n\r\n".encode())
        response = await reader.read()
    finally:
        await _close(writer)
    head, _, body = response.partition(b"\r\n\r\n")
    fields = head.split(maxsplit=2)[1:2]
    return (int(fields[0]) if fields and fields[0].isdigit() else 0), body


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def cli(*args: str) -> list[str]:
    """The argv of a ``cpr-gateway`` subcommand, run by this very Python."""
    return [sys.executable, "-m", "gateway.cli", *args]


#: The counter the gateway keeps of shadow copies, by outcome (docs/shadow.md).
_SHADOW_COPIES = "cpr_gateway_shadow_requests_total"


async def shadow_copies(admin_ports: Sequence[int]) -> collections.Counter[str]:
    """Shadow copies so far by outcome (match, differs, error, timeout, dropped), summed
    over a gateway's workers, read from their /metrics."""
    counts: collections.Counter[str] = collections.Counter()
    for port in admin_ports:
        _status, body = await http_get(port, "/metrics")
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == _SHADOW_COPIES:
                    counts[sample.labels["outcome"]] += int(sample.value)
    return counts

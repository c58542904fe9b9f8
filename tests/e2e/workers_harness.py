"""`cpr-gateway serve --workers N` as a test runs it, and its admin ports asked over plain HTTP
as a supervisor or a scraper would."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

from cpr_bench.servers import http_get

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def serving_workers(
    config: Path, admin_port: int, workers: int = 2, stderr: IO[bytes] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`serve --config config --workers N`, ready on every worker's admin port; stopped with
    SIGTERM on the way out, which it must obey with exit status 0. Its stderr goes to
    ``stderr`` (unbuffered, as in a container) or nowhere."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
        "--workers", str(workers), cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr if stderr is not None else asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for index in range(workers):
            await wait_ready(admin_port + index)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0


async def wait_ready(port: int) -> None:
    """Wait until the admin server on ``port`` says ready (its client port accepts)."""
    for _ in range(300):
        try:
            status, _body = await http_get(port, "/readyz")
        except OSError:
            status = 0
        if status == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"admin port {port} never ready")


async def lookups_answered(port: int) -> float:
    """Lookups the gateway process behind admin ``port`` answered, from its /metrics."""
    return await _answered(port, "lookup")


async def logons_answered(port: int) -> float:
    """Logons the gateway process behind admin ``port`` answered, from its /metrics."""
    return await _answered(port, "logon")


async def _answered(port: int, operation: str) -> float:
    _status, raw = await http_get(port, "/metrics")
    body = raw.decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("cpr_gateway_requests_total{") and f'operation="{operation}"' in line
    )

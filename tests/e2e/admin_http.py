"""Asking a gateway process's admin port over plain HTTP, as a supervisor or scraper would."""

from __future__ import annotations

import asyncio


async def get(port: int, path: str) -> tuple[int, str]:
    """GET ``path`` from the admin server on loopback ``port``: (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        response = (await reader.read()).decode()
    finally:
        writer.close()
    head, _, body = response.partition("\r\n\r\n")
    status = head.split(maxsplit=2)[1:2]
    return (int(status[0]) if status and status[0].isdigit() else 0), body


async def wait_ready(port: int) -> None:
    """Wait until the admin server on ``port`` says ready (its client port accepts)."""
    for _ in range(300):
        try:
            status, _body = await get(port, "/readyz")
        except OSError:
            status = 0
        if status == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"admin port {port} never ready")


async def lookups_answered(port: int) -> float:
    """Lookups the gateway process behind admin ``port`` answered, from its /metrics."""
    _status, body = await get(port, "/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("cpr_gateway_requests_total{") and 'operation="lookup"' in line
    )


async def shadow_outcomes(port: int) -> dict[str, float]:
    """Shadow copies by outcome of the gateway process behind admin ``port``, from /metrics."""
    _status, body = await get(port, "/metrics")
    outcomes: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith("cpr_gateway_shadow_requests_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            value = float(line.rsplit(" ", 1)[1])
            if value:
                outcomes[outcome] = outcomes.get(outcome, 0) + value
    return outcomes

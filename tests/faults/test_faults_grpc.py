"""The fault matrix on the gRPC hop: gateway → the reference services (grpc.aio), through
a fault-injecting proxy. HTTP/2 keeps one connection for every call, so a fault that only
touches new connections (reset on connect, down) also resets the open one
(``drop_existing``), and a byte budget (reset, cut) counts from the moment it is set: it
breaks the next call on the open connection, and the channel with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_proxy import Faults
from faults_harness import DEADLINE_S, Cell, check_proxy_cell, fault_stack

from gateway.model import FejlNr

OK, NO_CONNECTION = FejlNr.OK, FejlNr.NO_CONNECTION

PRIMARY_CELLS = [
    Cell("latency 10 ms each way", Faults(latency_up=0.01, latency_down=0.01), OK),
    Cell("latency beyond the deadline", Faults(latency_down=DEADLINE_S + 1), NO_CONNECTION),
    Cell("latency beyond the deadline, upstream", Faults(latency_up=DEADLINE_S + 1), NO_CONNECTION),
    Cell("blackhole", Faults(blackhole=True), NO_CONNECTION),
    Cell("reset, then reset on connect", Faults(reset_on_connect=True), NO_CONNECTION, True),
    Cell("reset mid-call", Faults(reset_after=10), NO_CONNECTION),
    Cell("1-byte slicing", Faults(slice=True), OK),
    Cell("bandwidth 64 KiB/s", Faults(bandwidth=64 * 1024), OK),
    Cell("bandwidth 64 B/s", Faults(bandwidth=64), NO_CONNECTION),
    Cell("cut mid-answer", Faults(cut_after=10), NO_CONNECTION),
    Cell("down, then up", Faults(down=True), NO_CONNECTION),
]

SHADOW_CELLS = [
    Cell("latency beyond the deadline", Faults(latency_down=DEADLINE_S + 1), OK),
    Cell("blackhole", Faults(blackhole=True), OK),
    Cell("reset, then reset on connect", Faults(reset_on_connect=True), OK, True),
    Cell("cut mid-answer", Faults(cut_after=10), OK),
    Cell("down, then up", Faults(down=True), OK),
]


@pytest.mark.parametrize("cell", PRIMARY_CELLS, ids=lambda cell: cell.name)
async def test_services_primary_under_fault(cell: Cell, tmp_path: Path) -> None:
    """A fault between the gateway and the services when they answer every request: each
    client gets the cell's FEJLNR (09 when the services cannot answer), its own person,
    nothing leaks, and lookups succeed again once it clears."""
    async with fault_stack(tmp_path, primary="persons-v2") as stack:
        await check_proxy_cell(stack, "persons-v2", cell, "primary")


@pytest.mark.parametrize("cell", SHADOW_CELLS, ids=lambda cell: cell.name)
async def test_services_shadow_under_fault(cell: Cell, tmp_path: Path) -> None:
    """A fault on the services when they only get shadow copies (the mainframe answers):
    every client gets 00 and its own person."""
    async with fault_stack(tmp_path, primary="mainframe", shadow="persons-v2") as stack:
        await check_proxy_cell(stack, "persons-v2", cell, "shadow")

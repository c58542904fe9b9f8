"""The fault matrix on the legacy hop: gateway → mainframe emulator over TLS, through a
fault-injecting proxy. Where the mainframe is the lookups' primary, every fault that keeps
it from answering is 09 for the client; where it is only a shadow, the client gets 00."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_proxy import Faults
from faults_harness import DEADLINE_S, Cell, check_proxy_cell, fault_stack, lookup_round

from gateway.model import FejlNr

OK, NO_CONNECTION = FejlNr.OK, FejlNr.NO_CONNECTION

PRIMARY_CELLS = [
    Cell("latency 10 ms each way", Faults(latency_up=0.01, latency_down=0.01), OK),
    Cell("latency beyond the deadline", Faults(latency_down=DEADLINE_S + 1), NO_CONNECTION),
    Cell("latency beyond the deadline, upstream", Faults(latency_up=DEADLINE_S + 1), NO_CONNECTION),
    Cell("blackhole", Faults(blackhole=True), NO_CONNECTION),
    Cell("reset on connect", Faults(reset_on_connect=True), NO_CONNECTION),
    Cell("reset mid-handshake", Faults(reset_after=100), NO_CONNECTION),
    Cell("1-byte slicing", Faults(slice=True), OK),
    Cell("bandwidth 64 KiB/s", Faults(bandwidth=64 * 1024), OK),
    Cell("bandwidth 64 B/s", Faults(bandwidth=64), NO_CONNECTION),
    Cell("slow close 2 s", Faults(slow_close=2.0), OK),
    Cell("down, then up", Faults(down=True), NO_CONNECTION),
]

SHADOW_CELLS = [
    Cell("latency beyond the deadline", Faults(latency_down=DEADLINE_S + 1), OK),
    Cell("blackhole", Faults(blackhole=True), OK),
    Cell("reset on connect", Faults(reset_on_connect=True), OK),
    Cell("cut mid-answer", Faults(cut_after=200), OK),
    Cell("down, then up", Faults(down=True), OK),
]


@pytest.mark.parametrize("cell", PRIMARY_CELLS, ids=lambda cell: cell.name)
async def test_mainframe_primary_under_fault(cell: Cell, tmp_path: Path) -> None:
    """A fault between the gateway and the primary mainframe: each client gets the cell's
    FEJLNR (09 when the mainframe cannot answer), its own person, nothing leaks, and lookups
    succeed again once it clears."""
    async with fault_stack(tmp_path, primary="mainframe") as stack:
        await check_proxy_cell(stack, "mainframe", cell, "primary")


async def test_mainframe_primary_cut_mid_answer(tmp_path: Path) -> None:
    """The mainframe's connection closed partway through its answer (after the handshake):
    09, never a truncated answer passed on."""
    async with fault_stack(tmp_path, primary="mainframe") as stack:
        await lookup_round(stack, 1)
        # What a whole exchange sends back: handshake, answer, close_notify (24 bytes); 60
        # bytes short of it is inside the answer's record.
        whole = min(traffic.down for traffic in stack.legacy.finished)
        cell = Cell("cut mid-answer", Faults(cut_after=whole - 60), NO_CONNECTION)
        await check_proxy_cell(stack, "mainframe", cell, "primary")


@pytest.mark.parametrize("cell", SHADOW_CELLS, ids=lambda cell: cell.name)
async def test_mainframe_shadow_under_fault(cell: Cell, tmp_path: Path) -> None:
    """A fault on the mainframe when it only gets shadow copies (the services answer):
    every client gets 00 and its own person."""
    async with fault_stack(tmp_path, primary="persons-v2", shadow="mainframe") as stack:
        await check_proxy_cell(stack, "mainframe", cell, "shadow")

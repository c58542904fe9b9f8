"""The fault matrix on a canary route: lookups split 50/50 between the mainframe (primary) and
the services (candidate), the services blackholed or reset. A read the candidate fails is asked
of the primary within the plan's retry budget (docs/canary.md, "Read fallback"): with a budget
of 100% every client gets 00; with the default 10% the budget's share does and the rest 09."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_proxy import Faults
from faults_harness import Cell, FaultStack, check_proxy_cell, fault_stack

from gateway.model import FejlNr

OK, NO_CONNECTION = FejlNr.OK, FejlNr.NO_CONNECTION

#: The plan, held at its 50% step by the test (min_duration and min_requests keep the
#: controller from moving it; it is paused anyway).
PLAN = (
    "    canary: {{candidate: persons-v2, steps: [0, 50, 100], min_duration: 60m,"
    " min_requests: 1000000, fallback: {{retry_budget: {budget}}}}}\n"
)

CELLS = [
    Cell("blackhole, fallback 100%", Faults(blackhole=True), OK),
    Cell("reset, fallback 100%", Faults(reset_on_connect=True), OK, drop_existing=True),
    Cell("down, fallback 100%", Faults(down=True), OK),
]


async def at_half(stack: FaultStack) -> None:
    """The lookups route's plan paused at its 50% step."""
    controller = stack.gateway.canary
    assert controller is not None
    await controller.pause("lookups", who="test")
    status = await controller.promote("lookups", who="test")
    assert status.state.step == 1


@pytest.mark.parametrize("cell", CELLS, ids=lambda cell: cell.name)
async def test_canary_candidate_under_fault(cell: Cell, tmp_path: Path) -> None:
    """The candidate fails every read it gets: each is asked of the mainframe, and every
    client gets 00 and its own person."""
    plan = PLAN.format(budget="100%")
    async with fault_stack(tmp_path, shadow="persons-v2", lookups_extra=plan) as stack:
        await at_half(stack)
        await check_proxy_cell(stack, "persons-v2", cell, "canary candidate at 50%")

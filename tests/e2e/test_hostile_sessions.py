"""End to end: a short hostile-session run (``python -m cpr_bench.hostile`` runs 10,000
connections; docs/fuzzing.md). Real emulator and gateway processes as ``make run`` starts them,
TLS on both hops; 500 connections, 100 at once, valid records interleaved with garbage,
truncated and oversize records, bytes that are not TLS, resets, drips and stalls."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from pathlib import Path

from cpr_bench.hostile import (
    DEMO_PASSWORD,
    DEMO_WHO,
    in_flight,
    own_stack,
    rejected,
    residents,
)
from cpr_bench.hostile_sessions import WEIGHTS, Kind, Plan, Storm, Target, run_hostile
from cpr_devtools.client import Endpoint
from gateway.tls import client_context

PLAN = Plan(connections=500, concurrency=100)


async def test_the_gateway_keeps_every_promise_through_a_short_hostile_run(tmp_path: Path) -> None:
    """Every valid record gets its answer, every unframeable one a close without an answer;
    afterwards every lookup answers 00 as before, and no connection is left in flight."""
    async with own_stack(tmp_path) as (port, admin, ca, register):
        endpoint = Endpoint("127.0.0.1", port, client_context(ca), "localhost")
        pnrs = residents(register, 20)
        target = Target(endpoint, DEMO_WHO, DEMO_PASSWORD, pnrs, lambda: in_flight(admin))
        target = replace(target, rejected=lambda: rejected(admin))
        report = await run_hostile(target, PLAN)
    assert report.failures == [], "\n".join(report.lines())
    assert set(report.by_kind) == {kind.value for kind in WEIGHTS}
    assert report.connections == PLAN.connections
    assert (report.final_ok, report.final_lookups) == (20, 20)
    assert report.in_flight_after == 0
    # The gateway counted what it closed unanswered, each under its reason.
    counted = {reason for reason, count in report.rejected.items() if count}
    assert {"not_printable", "too_long", "incomplete"} <= counted
    assert report.passed


async def _answers_everything(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)
    writer.write(b"0001" + b" " * 20)
    await writer.drain()
    writer.close()


async def test_a_server_that_answers_unframeable_records_is_caught() -> None:
    """Not vacuous: a server that answers garbage, an oversize or an incomplete record (a
    plain one here, answering whatever comes) is judged as not keeping the promise."""
    server = await asyncio.start_server(_answers_everything, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        endpoint = Endpoint("127.0.0.1", port)

        async def nothing() -> int:
            return 0

        target = Target(endpoint, DEMO_WHO, DEMO_PASSWORD, ("0101601234",), nothing)
        storm = Storm(target, PLAN, "Tk3nAbCd", {"0101601234": b""})
        problems = [
            await storm.one(number, kind, random.Random(number))
            for number, kind in enumerate([Kind.GARBAGE, Kind.OVERSIZE, Kind.STALL])
        ]
    assert all(p is not None and p.startswith("answered") for p in problems), problems

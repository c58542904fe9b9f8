"""The canary read fallback through real gateways: a hung candidate's reads are answered by the
primary, and the canary still sees the candidate fail and rolls it back.

Both sides are fake CPR Direkte servers on loopback that answer alike (so the shadow's verdict
is clean and the plan climbs); the candidate then takes lookups and never answers (hung). The
controller, its SQLite store and the listener are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway_harness import (
    LOGON,
    LOGON_ANSWER,
    LOOKUP,
    LOOKUP_ANSWER,
    backend_server,
    free_port,
    read_request,
)

from cpr_devtools.client import Endpoint, exchange
from gateway.app import Gateway
from gateway.backends import build_backend
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.codec import LookupAnswer, LookupRequest
from gateway.config import load_routing
from gateway.config.canary import CanaryPlan, Fallback
from gateway.config.schema import BUCKETS, Match, Route, Split, SplitKey
from gateway.dispatch import Dispatcher
from gateway.model import Family, FejlNr, Operation
from gateway.observe.events import CanaryTransitioned, Event, EventBus, ReadFallback
from gateway.routing import RouteTable

#: A hang fails the test; a normal run takes a few seconds.
PATIENCE_S = 60
ROUTING = """
version: 1
listen: {{host: 127.0.0.1, port: 0, tls: null}}
admin: {{host: 127.0.0.1, port: 0}}
limits: {{read_timeout: 5s, max_connections: 256, grace_period: 2s}}
backends:
  mainframe: {{kind: legacy, address: "127.0.0.1:{primary}", tls: null}}
  candidate:
    kind: legacy
    address: "127.0.0.1:{candidate}"
    tls: null
    breaker: {{failures: 3, open_for: 1m}}
canary: {{store: "{store}"}}
routes:
  - name: logons
    match: {{operation: [logon, change_password]}}
    backend: mainframe
    deadline: 5s
  - name: lookups
    match: {{operation: [lookup]}}
    backend: mainframe
    deadline: 300ms
    shadow: [{{backend: candidate, sample: 100%, deadline: 300ms}}]
    thresholds: {{min_samples: 10, max_excess_rate: 0.01, noise_min_samples: 10}}
    canary:
      candidate: candidate
      steps: [0, 50, 100]
      min_duration: 100ms
      min_requests: 20
      interval: 200ms
      gates: {{max_error_excess: 5%, max_p99_ratio: 50}}
      fallback: {{retry_budget: {budget}}}
  - name: rest
    match: {{}}
    backend: mainframe
    deadline: 5s
# Never shed: clients, backends and gateways share the test's loop.
shadowing: {{shed_lag: 1m}}
"""
#: Synthetic person numbers: enough of them that the split sends some to each side.
PNRS = [f"0101{n:06d}" for n in range(200)]


@dataclass
class Candidate:
    """The candidate's fake: answers like the primary until ``hung``, then takes lookups and
    never answers them."""

    hung: bool = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if len(request) == len(LOGON.encode()):
            writer.write(LOGON_ANSWER)
        elif self.hung:
            await reader.read()  # until the gateway gives up and closes
            return
        else:
            writer.write(LOOKUP_ANSWER)
        await writer.drain()


@dataclass
class Stack:
    gateway: Gateway
    client: Endpoint
    candidate: Candidate
    transitions: list[CanaryTransitioned]
    fallbacks: list[ReadFallback]


@asynccontextmanager
async def stack(tmp_path: Path, budget: str) -> AsyncIterator[Stack]:
    candidate = Candidate()
    async with backend_server(_answers) as primary, backend_server(candidate.handle) as port:
        routing = tmp_path / "routing.yaml"
        store = tmp_path / "canary.sqlite"
        text = ROUTING.format(primary=primary, candidate=port, store=store, budget=budget)
        routing.write_text(text, encoding="utf-8")
        gateway = Gateway(load_routing(routing), watch_interval=None)
        host, listening = await gateway.start()
        try:
            transitions: list[CanaryTransitioned] = []
            fallbacks: list[ReadFallback] = []

            def keep(event: Event) -> None:
                if isinstance(event, CanaryTransitioned):
                    transitions.append(event)
                elif isinstance(event, ReadFallback):
                    fallbacks.append(event)

            gateway.bus.subscribe(keep)
            yield Stack(gateway, Endpoint(host, listening), candidate, transitions, fallbacks)
        finally:
            await gateway.aclose()


async def _answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await read_request(reader)
    writer.write(LOGON_ANSWER if len(request) == len(LOGON.encode()) else LOOKUP_ANSWER)
    await writer.drain()


async def lookups_until(s: Stack, done: Callable[[], bool]) -> list[FejlNr]:
    """Log on once, then look up person after person until ``done()``; every FEJLNR."""
    assert await exchange(s.client, LOGON.encode()) == LOGON_ANSWER
    seen: list[FejlNr] = []
    async with asyncio.timeout(PATIENCE_S):
        n = 0
        while not done():
            request = LookupRequest(
                LOOKUP.transaction, LOOKUP.customer, LOOKUP.token, LOOKUP.user, PNRS[n % 200]
            )
            answer = await exchange(s.client, request.encode())
            seen.append(LookupAnswer.decode(answer, Family.PRIV).fejlnr)
            n += 1
    return seen


def weight(gateway: Gateway) -> float:
    return gateway.metrics.value("cpr_gateway_canary_weight", route="lookups", backend="candidate")


async def test_a_hung_candidate_rolls_back_while_its_clients_get_the_primarys_answers(
    tmp_path: Path,
) -> None:
    """The plan climbs on a healthy candidate; hung, its reads time out (then fail at once, its
    breaker open) and are asked of the primary: every client gets 00, yet the canary counts the
    candidate's failures and the controller rolls the route back to 0%."""
    async with stack(tmp_path, "100%") as s:
        assert all(f is FejlNr.OK for f in await lookups_until(s, lambda: weight(s.gateway) > 0))
        s.candidate.hung = True
        rolled_back = lambda: any(t.kind == "rollback" for t in s.transitions)  # noqa: E731
        answers = await lookups_until(s, rolled_back)
        assert set(answers) == {FejlNr.OK}
        [rollback] = [t for t in s.transitions if t.kind == "rollback"]
        assert (rollback.to_step, rollback.who) == (0, "controller")
        assert "failures" in rollback.reason
        assert weight(s.gateway) == 0
        asked = [f for f in s.fallbacks if f.outcome == "asked"]
        assert asked and {f.failed for f in asked} == {"candidate"}
        counted = s.gateway.metrics.value(
            "cpr_gateway_read_fallbacks_total",
            route="lookups", backend="candidate", outcome="asked",
        )  # fmt: skip
        assert counted == len(asked)


async def test_with_the_fallback_off_a_hung_candidates_reads_answer_09(tmp_path: Path) -> None:
    """``retry_budget: 0%``: the candidate's failed reads are its clients' 09, as before."""
    async with stack(tmp_path, "0%") as s:
        await lookups_until(s, lambda: weight(s.gateway) > 0)
        s.candidate.hung = True
        answers = await lookups_until(s, lambda: any(t.kind == "rollback" for t in s.transitions))
        assert FejlNr.NO_CONNECTION in answers
        assert s.fallbacks == []


async def test_a_write_the_candidate_fails_is_never_asked_of_the_primary() -> None:
    """A subscription routed to the candidate that cannot be reached is answered 09: a write
    goes to exactly one side, and the primary never sees it (nor is a fallback counted)."""
    received: list[bytes] = []

    async def primary_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_request(reader))
        writer.write(LOOKUP_ANSWER)
        await writer.drain()

    bus, fallbacks = EventBus(), []
    bus.subscribe(lambda e: fallbacks.append(e) if isinstance(e, ReadFallback) else None)
    plan = CanaryPlan("candidate", steps=(0.0, 100.0), fallback=Fallback(retry_budget=1.0))
    subscriptions = Route(
        "subscriptions",
        Match(),  # the table's catch-all: subscriptions and lookups alike
        Split(SplitKey.PNR, (("mainframe", 0), ("candidate", BUCKETS))),
        1.0,
        canary=plan,
    )
    async with backend_server(primary_handler) as primary:
        backends = {
            "mainframe": build_backend(
                LegacyBackendConfig("mainframe", "127.0.0.1", primary, None)
            ),
            "candidate": build_backend(
                LegacyBackendConfig("candidate", "127.0.0.1", free_port(), None)
            ),
        }
        dispatcher = Dispatcher(RouteTable([subscriptions]), backends, bus)
        try:
            write = LookupRequest(
                LOOKUP.transaction, LOOKUP.customer, LOOKUP.token, LOOKUP.user, LOOKUP.pnr, "1"
            )
            assert write.operation is Operation.SUBSCRIBE
            answer = await dispatcher.handle(write, write.encode(), peer="test")
            assert LookupAnswer.decode(answer, Family.PRIV).fejlnr is FejlNr.NO_CONNECTION
            assert received == [] and fallbacks == []
            read = await dispatcher.handle(LOOKUP, LOOKUP.encode(), peer="test")  # the control
            assert read == LOOKUP_ANSWER and len(received) == 1 and len(fallbacks) == 1
        finally:
            await dispatcher.aclose()

"""The canary loop through real gateways: rollback on drift, promotion to 100%, a restart, a fleet.

Real emulator (the primary), real gRPC services on a store migrated from the same register
(drifted or not), real gateways from a routing.yaml whose lookup route has a step plan with
short intervals; clients log on and look up through the listener. Which side answered is
read from the gateway's own metrics (requests by route and backend).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mixed_harness import Client

# The adapter tier's throwaway PostgreSQL, for the replicas' shared store.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapter"))
from pg_server import Cluster, pg_dsn_fixture, postgres_fixture  # noqa: F401 (fixtures)

from cpr_devtools.client import Endpoint
from cpr_devtools.migration import migrate_register
from cpr_services.drift import Drift
from cpr_services.server import ModernServer
from emulator_harness import DEMO_OFF4, DEMO_PRIV, running_emulator
from gateway.app import Gateway
from gateway.canary.controller import CanaryController
from gateway.canary.model import Status
from gateway.codec import LookupAnswer
from gateway.config import load_routing
from gateway.errors import GatewayError
from gateway.model import Family, FejlNr
from gateway.observe.events import (
    CanaryJudged,
    CanaryStoreFailed,
    CanaryTransitioned,
    CanaryWeights,
    Event,
    ShadowVerdict,
)

DRIFT = Drift(standardadr_2023=True, stale_address=0.2)
#: A hang fails the test; a normal run takes seconds.
PATIENCE_S = 120
ROUTING = """
version: 1
listen: {{host: 127.0.0.1, port: 0, tls: null}}
admin: {{host: 127.0.0.1, port: 0}}
limits: {{read_timeout: 5s, max_connections: 256, grace_period: 2s}}
backends:
  mainframe: {{kind: legacy, address: "127.0.0.1:{legacy}", tls: null, connect_timeout: 1s}}
  persons-v2: {{kind: grpc, address: "127.0.0.1:{modern}", tls: null}}
canary: {{store: "{store}"}}
routes:
  - name: logons
    match: {{operation: [logon, change_password]}}
    backend: mainframe
    deadline: 5s
  - name: lookups
    match: {{operation: [lookup]}}
    backend: mainframe
    deadline: 5s
    shadow: [{{backend: persons-v2, sample: 100%, deadline: 5s}}]
    compare: {{ignore: ["lookup / 000 / PRODDTO"]}}
    thresholds: {{min_samples: 10, max_excess_rate: 0.01, noise_min_samples: 10}}
    canary:
      candidate: persons-v2
      steps: [0, 50, 100]
      min_duration: 100ms
      min_requests: 20
      interval: 200ms
      gates: {{max_error_excess: 5%, max_p99_ratio: 50}}
  - name: rest
    match: {{}}
    backend: mainframe
    deadline: 5s
# Never shed: clients, backends and gateways share the test's loop.
shadowing: {{shed_lag: 1m{shadow_store}}}
"""


@dataclass
class Stack:
    """Both sides and the routing file; gateways started on it are closed with the stack."""

    routing: Path
    pnrs: list[str]
    gateways: list[Gateway] = field(default_factory=list)
    #: The candidate's services, for a test that stops them.
    services: ModernServer | None = None

    async def start_gateway(self) -> tuple[Gateway, list[Client]]:
        """A gateway on the routing file, on a port of its own, and two clients of it."""
        gateway = Gateway(load_routing(self.routing), watch_interval=None)
        self.gateways.append(gateway)
        host, port = await gateway.start()
        endpoint = Endpoint(host, port)
        return gateway, [Client(DEMO_PRIV, endpoint), Client(DEMO_OFF4, endpoint)]

    async def stop(self, gateway: Gateway) -> None:
        self.gateways.remove(gateway)
        await gateway.aclose()


@asynccontextmanager
async def stack(
    tmp_path: Path, store: str, drift: Drift | None = None, *, shadow_store: bool = False
) -> AsyncIterator[Stack]:
    """Both sides and a routing file; ``shadow_store``: comparisons go to a mismatch store
    (the verdict is read from its counters), else they are only this gateway's tallies."""
    async with AsyncExitStack() as parts:
        emu = await parts.enter_async_context(
            running_emulator(persons=300, tls=False, workdir=tmp_path / "emu")
        )
        migrate_register(emu.config.register, tmp_path / "modern.sqlite", progress=False)
        modern = ModernServer(emu.config, tmp_path / "modern.sqlite", drift=drift or Drift())
        modern_port = await modern.start()
        parts.push_async_callback(modern.aclose, 0)
        routing = tmp_path / "routing.yaml"
        extra = ", store: shadow.sqlite, key_file: shadow.key" if shadow_store else ""
        routing.write_text(
            ROUTING.format(legacy=emu.port, modern=modern_port, store=store, shadow_store=extra)
        )
        built = Stack(routing, emu.pnrs(100), services=modern)
        try:
            yield built
        finally:
            for gateway in built.gateways:
                await gateway.aclose()


def controller(gateway: Gateway) -> CanaryController:
    assert gateway.canary is not None
    return gateway.canary


def answered_by(gateway: Gateway, backend: str) -> float:
    """Lookups the gateway's route ``lookups`` answered from ``backend`` (00 answers)."""
    return gateway.metrics.value(
        "cpr_gateway_requests_total",
        operation="lookup", route="lookups", backend=backend, fejlnr="00",
    )  # fmt: skip


def weight(gateway: Gateway, backend: str) -> float:
    return gateway.metrics.value("cpr_gateway_canary_weight", route="lookups", backend=backend)


async def lookups(clients: list[Client], pnrs: list[str], rounds: int) -> None:
    """Each client looks up ``rounds`` PNRs, in turn (PRIV and OFF4 both); every answer is 00,
    whatever the controller swaps in meanwhile."""

    async def run(index: int, client: Client) -> None:
        family = Family(client.user.who.transaction)
        for n in range(rounds):
            answer = await client.lookup(pnrs[(index * 31 + n * 7) % len(pnrs)], family)
            assert LookupAnswer.decode(answer, family).fejlnr is FejlNr.OK  # none lost to a swap

    await asyncio.gather(*(run(i, c) for i, c in enumerate(clients)))


async def traffic_until(clients: list[Client], pnrs: list[str], done: Callable[[], bool]) -> None:
    """Look up in rounds until ``done()``; a loop that never gets there fails the test."""
    async with asyncio.timeout(PATIENCE_S):
        while not done():
            await lookups(clients, pnrs, 10)


def transitions_of(gateway: Gateway) -> list[CanaryTransitioned]:
    seen: list[CanaryTransitioned] = []

    def keep(event: Event) -> None:
        if isinstance(event, CanaryTransitioned):
            seen.append(event)

    gateway.bus.subscribe(keep)
    return seen


@pytest.mark.parametrize("shadow_store", [False, True], ids=["runner", "mismatch-store"])
async def test_drift_rolls_the_route_back_and_the_candidate_gets_no_more_clients(
    tmp_path: Path, shadow_store: bool
) -> None:
    """At 50% on drifted services the first judgement with a verdict rolls the route back to
    0% and pauses it, with the reason; afterwards every client lookup is the mainframe's.
    The verdict comes from this gateway's comparisons, or from the mismatch store's."""
    store = str(tmp_path / "canary.sqlite")
    async with stack(tmp_path, store, DRIFT, shadow_store=shadow_store) as s:
        gateway, clients = await s.start_gateway()
        seen = transitions_of(gateway)
        status = await controller(gateway).promote("lookups", who="test")
        assert status.weights == {"mainframe": 50.0, "persons-v2": 50.0}
        await traffic_until(clients, s.pnrs, lambda: any(t.kind == "rollback" for t in seen))
        [rolled] = [t for t in seen if t.kind == "rollback"]
        assert (rolled.from_step, rolled.to_step, rolled.who) == (1, 0, "controller")
        assert "verdict differs" in rolled.reason
        [route] = controller(gateway).routes()
        assert (route.state.step, route.state.status) == (0, Status.PAUSED)
        assert route.weights == {"mainframe": 100.0, "persons-v2": 0.0}
        assert weight(gateway, "persons-v2") == 0
        kinds = [t.kind for t in controller(gateway).history("lookups")]
        assert kinds == ["start", "promote", "rollback"]
        served = answered_by(gateway, "persons-v2")
        assert served > 0  # it did serve clients at 50%
        before = answered_by(gateway, "mainframe")
        await lookups(clients, s.pnrs, 20)
        assert answered_by(gateway, "persons-v2") == served
        assert answered_by(gateway, "mainframe") == before + 40


async def test_clean_services_are_promoted_step_by_step_to_100(tmp_path: Path) -> None:
    """Without drift the route climbs 0 → 50 → 100% by itself, each step judged on its own
    evidence, and then every lookup is the candidate's."""
    async with stack(tmp_path, str(tmp_path / "canary.sqlite")) as s:
        gateway, clients = await s.start_gateway()
        seen = transitions_of(gateway)
        await traffic_until(clients, s.pnrs, lambda: any(t.kind == "complete" for t in seen))
        assert [(t.kind, t.from_step, t.to_step, t.who) for t in seen] == [
            ("promote", 0, 1, "controller"),
            ("complete", 1, 2, "controller"),
        ]
        [route] = controller(gateway).routes()
        assert route.state.status is Status.COMPLETED
        assert weight(gateway, "persons-v2") == 100
        before = answered_by(gateway, "mainframe")
        await lookups(clients, s.pnrs, 10)
        assert answered_by(gateway, "mainframe") == before


async def test_a_completed_route_rolls_back_when_its_services_stop(tmp_path: Path) -> None:
    """At 100% the candidate answers every client; stopped, it answers them 09, and the next
    judgement rolls the completed route back to 0%: the mainframe answers again (no new logon)."""
    async with stack(tmp_path, str(tmp_path / "canary.sqlite")) as s:
        gateway, clients = await s.start_gateway()
        seen = transitions_of(gateway)
        await traffic_until(clients, s.pnrs, lambda: any(t.kind == "complete" for t in seen))
        assert s.services is not None
        await s.services.aclose(0)
        async with asyncio.timeout(PATIENCE_S):
            while not any(t.kind == "rollback" for t in seen):
                for client in clients:  # answered 09 while the candidate is down
                    await client.lookup(s.pnrs[0], Family(client.user.who.transaction))
        [rolled] = [t for t in seen if t.kind == "rollback"]
        assert (rolled.from_step, rolled.to_step, rolled.who) == (2, 0, "controller")
        assert rolled.reason.startswith("completed, then: failures ")
        assert weight(gateway, "persons-v2") == 0
        await lookups(clients, s.pnrs, 10)  # every answer 00 again: the mainframe's


async def test_a_restarted_gateway_resumes_at_the_same_step(tmp_path: Path) -> None:
    """The state is in the store: a new gateway on the same file routes at the step the
    plan had reached, and starts no new plan."""
    async with stack(tmp_path, str(tmp_path / "canary.sqlite")) as s:
        first, _clients = await s.start_gateway()
        await controller(first).pause("lookups", who="test", reason="hold for the restart")
        await controller(first).promote("lookups", who="test")
        await s.stop(first)
        again, clients = await s.start_gateway()
        [route] = controller(again).routes()
        assert (route.state.step, route.state.status) == (1, Status.PAUSED)
        assert weight(again, "persons-v2") == 50
        kinds = [t.kind for t in controller(again).history("lookups")]
        assert kinds == ["start", "pause", "promote"]
        await lookups(clients, s.pnrs, 20)
        assert answered_by(again, "persons-v2") > 0 and answered_by(again, "mainframe") > 0


async def test_two_replicas_on_one_postgresql_store_apply_the_same_weight(
    tmp_path: Path, pg_dsn: str
) -> None:
    """An operator's change on one replica reaches the other within its polls."""
    async with stack(tmp_path, pg_dsn) as s:
        one, _ = await s.start_gateway()
        other, _ = await s.start_gateway()
        assert weight(one, "persons-v2") == weight(other, "persons-v2") == 0
        applied = asyncio.Event()
        other.bus.subscribe(
            lambda e: applied.set() if isinstance(e, CanaryWeights) and e.step == 1 else None
        )
        await controller(one).pause("lookups", who="test")
        await controller(one).promote("lookups", who="test")
        assert weight(one, "persons-v2") == 50
        async with asyncio.timeout(PATIENCE_S):
            await applied.wait()
        assert weight(other, "persons-v2") == 50
        assert weight(other, "mainframe") == 50
        [route] = controller(other).routes()
        assert (route.state.step, route.state.status) == (1, Status.PAUSED)


async def test_a_reload_keeps_the_step_in_force(tmp_path: Path) -> None:
    """The file's route names only the primary; a reload still routes at the plan's step."""
    async with stack(tmp_path, str(tmp_path / "canary.sqlite")) as s:
        gateway, clients = await s.start_gateway()
        await controller(gateway).pause("lookups", who="test")
        await controller(gateway).promote("lookups", who="test")
        s.routing.write_text(s.routing.read_text().replace("deadline: 5s", "deadline: 4s"))
        assert await gateway.reload()
        await lookups(clients, s.pnrs, 20)
        assert answered_by(gateway, "persons-v2") > 0 and answered_by(gateway, "mainframe") > 0
        assert weight(gateway, "persons-v2") == 50


async def test_a_store_that_cannot_be_reached_leaves_the_routes_as_written_until_it_can(
    tmp_path: Path, postgres: Cluster
) -> None:
    """A canary store whose database does not exist yet: the gateway starts, counts and logs
    the failure, and serves the file's routes (every lookup on the primary); once the
    database is there, the next tick starts the plan."""
    name = f"canary_later_{tmp_path.name[-12:].replace('-', '_')}"
    async with stack(tmp_path, postgres.dsn(name)) as s:
        gateway, clients = await s.start_gateway()
        failures = gateway.metrics.value("cpr_gateway_canary_store_errors_total", action="open")
        assert failures >= 1
        assert controller(gateway).routes() == []
        await lookups(clients, s.pnrs, 10)
        assert answered_by(gateway, "persons-v2") == 0
        applied = asyncio.Event()
        gateway.bus.subscribe(lambda e: applied.set() if isinstance(e, CanaryWeights) else None)
        with postgres.admin() as admin:
            admin.execute(f"CREATE DATABASE {name}")
        try:
            async with asyncio.timeout(PATIENCE_S):
                await applied.wait()
            [route] = controller(gateway).routes()
            assert (route.state.step, route.state.status) == (0, Status.RUNNING)
        finally:
            await s.stop(gateway)
            with postgres.admin() as admin:
                admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def test_two_replicas_under_traffic_climb_together_decided_once(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Both replicas serve clients; one decides on both's evidence: each promotion is made
    once (by one replica), and both end at 100%."""
    async with stack(tmp_path, pg_dsn) as s:
        one, one_clients = await s.start_gateway()
        other, other_clients = await s.start_gateway()
        seen_one, seen_other = transitions_of(one), transitions_of(other)

        def both_complete() -> bool:
            return all(
                route.state.status is Status.COMPLETED
                for gateway in (one, other)
                for route in controller(gateway).routes()
            )

        await traffic_until(one_clients + other_clients, s.pnrs, both_complete)
        made = sorted((t.kind, t.from_step, t.to_step) for t in seen_one + seen_other)
        assert made == [("complete", 1, 2), ("promote", 0, 1)]
        kinds = [t.kind for t in controller(other).history("lookups")]
        assert kinds == ["start", "promote", "complete"]
        assert weight(one, "persons-v2") == weight(other, "persons-v2") == 100
        assert answered_by(one, "persons-v2") > 0 and answered_by(other, "persons-v2") > 0


async def test_the_rollback_comes_at_the_first_judgement_after_the_verdict(tmp_path: Path) -> None:
    """Within one interval: once the comparisons say ``differs``, the next judgement rolls the
    route back (counted in judgements, not seconds: at most the one already under way holds)."""
    async with stack(tmp_path, str(tmp_path / "canary.sqlite"), DRIFT) as s:
        gateway, clients = await s.start_gateway()
        await controller(gateway).promote("lookups", who="test")
        judged_after: list[CanaryJudged] = []
        differs, rolled = asyncio.Event(), asyncio.Event()

        def watch(event: Event) -> None:
            if isinstance(event, ShadowVerdict) and event.verdict == "differs":
                differs.set()
            elif isinstance(event, CanaryJudged) and differs.is_set() and not rolled.is_set():
                judged_after.append(event)
            elif isinstance(event, CanaryTransitioned) and event.kind == "rollback":
                rolled.set()

        gateway.bus.subscribe(watch)
        async with asyncio.timeout(PATIENCE_S):
            while not differs.is_set():
                await lookups(clients, s.pnrs, 5)
            await rolled.wait()
        assert 1 <= len(judged_after) <= 2


async def test_a_store_that_fails_later_changes_nothing_until_it_is_back(
    tmp_path: Path, postgres: Cluster
) -> None:
    """The store's database stops taking connections mid-plan: every tick's failure is
    counted, the route keeps its weights and its clients their answers, an operator's change
    is refused; once the database is back, the change goes through."""
    name = f"canary_down_{tmp_path.name[-12:].replace('-', '_')}"
    with postgres.admin() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        async with stack(tmp_path, postgres.dsn(name)) as s:
            gateway, clients = await s.start_gateway()
            await controller(gateway).pause("lookups", who="test")
            await controller(gateway).promote("lookups", who="test")
            failed = asyncio.Event()
            gateway.bus.subscribe(
                lambda e: failed.set() if isinstance(e, CanaryStoreFailed) else None
            )
            with postgres.admin() as admin:
                admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
            async with asyncio.timeout(PATIENCE_S):
                await failed.wait()
            await lookups(clients, s.pnrs, 20)
            assert weight(gateway, "persons-v2") == 50
            assert answered_by(gateway, "persons-v2") > 0 and answered_by(gateway, "mainframe") > 0
            with pytest.raises(GatewayError):
                await controller(gateway).resume("lookups", who="test")
            [route] = controller(gateway).routes()
            assert (route.state.step, route.state.status) == (1, Status.PAUSED)
            with postgres.admin() as admin:
                admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
            status = await controller(gateway).resume("lookups", who="test")
            assert (status.state.step, status.state.status) == (1, Status.RUNNING)
    finally:
        with postgres.admin() as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")

"""Sessions across both sides: clients log on once and keep working while routes move.

Real emulator, real gRPC services on a store migrated from the same register,
a real gateway reading its routes from a real file, and clients that behave
like the existing ones: log on, look up on new connections, and log on again
after a 07 (the only recovery they know).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from workers_harness import lookups_answered, serving_workers

from cpr_bench.servers import free_port, free_ports, shadow_copies
from cpr_devtools.client import Endpoint, exchange, logon
from cpr_devtools.migration import migrate_register
from cpr_services.server import ModernServer
from emulator_harness import DEMO_OFF4, DEMO_PRIV, DemoUser, running_emulator
from gateway.app import Gateway
from gateway.codec import LookupAnswer, LookupRequest
from gateway.config import load_routing
from gateway.model import Family, FejlNr

CLIENTS = 6
LOOKUPS_PER_PHASE = 15

ROUTING = """
version: 1
listen: {{host: 127.0.0.1, port: {port}, tls: null}}
admin: {{host: 127.0.0.1, port: 0}}
limits: {{read_timeout: 5s, max_connections: 256, grace_period: 2s}}
backends:
  mainframe: {{kind: legacy, address: "127.0.0.1:{legacy}", tls: null, connect_timeout: 1s}}
  persons-v2: {{kind: grpc, address: "127.0.0.1:{modern}", tls: null}}
routes:
  - name: logons
    match: {{operation: [logon, change_password]}}
    backend: {logon_side}
    deadline: 5s
  - name: lookups
    match: {{operation: [lookup]}}
    split:
      key: pnr
      backends: {{mainframe: {legacy_share}, persons-v2: {modern_share}}}
    deadline: {lookup_deadline}
  - name: rest
    match: {{}}
    backend: mainframe
    deadline: 5s
"""


@dataclass
class Stack:
    """Both sides and a gateway whose routing file the test rewrites."""

    legacy: Endpoint
    modern: ModernServer
    routing: Path
    ports: dict[str, int]
    pnrs: list[str]
    gateway: Gateway | None = None

    def write_routes(self, logon_side: str, modern_share: int, lookup_deadline: str = "5s") -> None:
        self.routing.write_text(
            ROUTING.format(
                logon_side=logon_side,
                lookup_deadline=lookup_deadline,
                legacy_share=100 - modern_share,
                modern_share=modern_share,
                **self.ports,
            )
        )

    async def start_gateway(self) -> Endpoint:
        self.gateway = Gateway(load_routing(self.routing), watch_interval=None)
        host, port = await self.gateway.start()
        self.ports["port"] = port  # a restart comes back on the same port
        return Endpoint(host, port)


@asynccontextmanager
async def stack(tmp_path: Path, *, delay: float = 0.0) -> AsyncIterator[Stack]:
    async with running_emulator(persons=300, tls=False, workdir=tmp_path / "emu") as emu:
        store = tmp_path / "modern.sqlite"
        migrate_register(emu.config.register, store, progress=False)
        modern = ModernServer(emu.config, store, delay=delay)
        modern_port = await modern.start()
        ports = {"legacy": emu.port, "modern": modern_port, "port": 0}
        built = Stack(emu.endpoint, modern, tmp_path / "routing.yaml", ports, emu.pnrs())
        try:
            yield built
        finally:
            if built.gateway is not None:
                await built.gateway.aclose()
            await modern.aclose(0)


@dataclass
class Client:
    """An existing-style client: one logon, many lookups, a new logon after each 07."""

    user: DemoUser
    endpoint: Endpoint
    token: str = ""
    logons: int = 0
    answered: int = 0

    async def lookup(self, pnr: str, family: Family) -> bytes:
        if not self.token:
            await self._logon()
        for _attempt in range(2):
            who = self.user.who
            record = LookupRequest(who.transaction, who.customer, self.token, who.user, pnr)
            answer = await exchange(self.endpoint, record.encode())
            if LookupAnswer.decode(answer, family).fejlnr is not FejlNr.NEW_LOGON:
                self.answered += 1
                return answer
            await self._logon()
        raise AssertionError("07 again right after a fresh logon")

    async def _logon(self) -> None:
        self.token = await logon(self.endpoint, self.user.who, self.user.password)
        self.logons += 1


async def _phase(clients: list[Client], pnrs: list[str], family: Family) -> None:
    async def run(index: int, client: Client) -> None:
        for n in range(LOOKUPS_PER_PHASE):
            answer = await client.lookup(pnrs[(index * 31 + n * 7) % len(pnrs)], family)
            assert LookupAnswer.decode(answer, family).fejlnr is FejlNr.OK

    await asyncio.gather(*(run(i, c) for i, c in enumerate(clients)))


async def test_lookups_split_50_50_and_flipped_mid_run_need_no_new_logon(tmp_path: Path) -> None:
    """Logon on the mainframe, lookups split 50/50, then all logons and lookups moved: all 00."""
    async with stack(tmp_path) as s:
        s.write_routes(logon_side="mainframe", modern_share=50)
        endpoint = await s.start_gateway()
        clients = [Client(DEMO_PRIV if i % 2 else DEMO_OFF4, endpoint) for i in range(CLIENTS)]
        for family in (Family.PRIV, Family.OFF4):
            await _phase([c for c in clients if c.user.who.transaction == family], s.pnrs, family)
        s.write_routes(logon_side="persons-v2", modern_share=100)
        assert s.gateway is not None and await s.gateway.reload()
        for family in (Family.PRIV, Family.OFF4):
            await _phase([c for c in clients if c.user.who.transaction == family], s.pnrs, family)
        assert all(c.logons == 1 for c in clients)
        assert sum(c.answered for c in clients) == CLIENTS * LOOKUPS_PER_PHASE * 2
        fallbacks = s.gateway.metrics.value(
            "cpr_gateway_session_events_total", kind="fallback", backend="persons-v2"
        )
        assert fallbacks == 0


async def test_a_gateway_restart_costs_lookups_no_new_logon(tmp_path: Path) -> None:
    """Sessions are in memory: after a restart the gateway knows no token, and a lookup
    the other side refuses (07) is answered by the side that knows it (sessions rule 6)."""
    async with stack(tmp_path) as s:
        s.write_routes(logon_side="mainframe", modern_share=50)
        endpoint = await s.start_gateway()
        clients = [Client(DEMO_PRIV, endpoint) for _ in range(CLIENTS)]
        await _phase(clients, s.pnrs, Family.PRIV)
        assert s.gateway is not None
        await s.gateway.aclose()
        s.write_routes(logon_side="mainframe", modern_share=50)  # same port as before
        restarted = await s.start_gateway()
        assert restarted == endpoint
        await _phase(clients, s.pnrs, Family.PRIV)
        assert all(c.logons == 1 for c in clients)
        assert s.gateway is not None
        went_home = s.gateway.metrics.value(
            "cpr_gateway_session_events_total", kind="unknown_fallback", backend="mainframe"
        )
        assert went_home > 0  # the modern half was refused, then answered at home


async def test_a_modern_route_answers_byte_for_byte_like_the_legacy_one(tmp_path: Path) -> None:
    """Through the gateway with the client's one token, both routes give identical bytes."""
    async with stack(tmp_path) as s:
        s.write_routes(logon_side="mainframe", modern_share=100)
        endpoint = await s.start_gateway()
        for user in (DEMO_PRIV, DEMO_OFF4):
            who = user.who
            token = await logon(endpoint, who, user.password)
            for pnr in s.pnrs[:40]:
                record = LookupRequest(who.transaction, who.customer, token, who.user, pnr)
                via_modern = await exchange(endpoint, record.encode())
                direct = await exchange(s.legacy, record.encode())
                assert via_modern == direct
        # Every lookup was read through BatchReadPersons; one at a time, each went alone.
        assert s.gateway is not None
        reads = s.gateway.metrics.value("cpr_gateway_backend_batch_reads_sum", backend="persons-v2")
        calls = s.gateway.metrics.value(
            "cpr_gateway_backend_batch_reads_count", backend="persons-v2"
        )
        assert reads == calls == 2 * 40
        timed = s.gateway.metrics.value(
            "cpr_gateway_backend_batch_call_duration_seconds_count", backend="persons-v2"
        )
        assert timed == calls  # every call's duration observed once


async def test_a_stopped_or_slow_modern_side_gives_09_and_legacy_routes_carry_on(
    tmp_path: Path,
) -> None:
    """gRPC services gone: lookups routed there get 09 within the deadline; others still 00."""
    async with stack(tmp_path) as s:
        s.write_routes(logon_side="mainframe", modern_share=50)
        endpoint = await s.start_gateway()
        client = Client(DEMO_PRIV, endpoint)
        await client.lookup(s.pnrs[0], Family.PRIV)
        await s.modern.aclose(0)
        fejlnrs = set()
        for pnr in s.pnrs[:40]:
            answer = await asyncio.wait_for(client.lookup(pnr, Family.PRIV), 30)
            fejlnrs.add(LookupAnswer.decode(answer, Family.PRIV).fejlnr)
        assert fejlnrs == {FejlNr.OK, FejlNr.NO_CONNECTION}
        assert client.logons == 1
        assert s.gateway is not None
        errors = s.gateway.metrics.value(
            "cpr_gateway_backend_errors_total", backend="persons-v2", kind="unavailable"
        )
        assert errors > 0


async def test_a_slow_modern_side_gives_09_within_the_deadline(tmp_path: Path) -> None:
    """gRPC services slower than the route's deadline: 09 once the deadline passes, not later."""
    async with stack(tmp_path) as s:
        s.write_routes(logon_side="mainframe", modern_share=100, lookup_deadline="300ms")
        endpoint = await s.start_gateway()
        client = Client(DEMO_PRIV, endpoint)
        await client.lookup(s.pnrs[0], Family.PRIV)  # logged on at both sides
        s.modern.pace.delay = 30.0  # every call now outlives the 300 ms deadline
        answer = await asyncio.wait_for(client.lookup(s.pnrs[1], Family.PRIV), 10)
        assert LookupAnswer.decode(answer, Family.PRIV).fejlnr is FejlNr.NO_CONNECTION
        assert s.gateway is not None
        timeouts = s.gateway.metrics.value(
            "cpr_gateway_backend_errors_total", backend="persons-v2", kind="timeout"
        )
        assert timeouts == 1
        # The abandoned call is timed too: out for about the 300 ms deadline (it was sent a
        # moment after the caller's clock started).
        calls = s.gateway.metrics.value(
            "cpr_gateway_backend_batch_call_duration_seconds_count", backend="persons-v2"
        )
        took = s.gateway.metrics.value(
            "cpr_gateway_backend_batch_call_duration_seconds_sum", backend="persons-v2"
        )
        assert calls == 2
        assert took >= 0.2
        s.modern.pace.delay = 0.0


async def test_workers_share_sessions_so_a_split_needs_one_logon(tmp_path: Path) -> None:
    """`serve --workers 2`: the kernel hands a client's connections to either worker, and a
    lookup on the worker that did not see the logon still gets the other side's token."""
    async with stack(tmp_path) as s:
        port, admin = free_port(), free_ports(2)
        s.ports["port"] = port
        s.write_routes(logon_side="mainframe", modern_share=50)
        text = s.routing.read_text().replace("port: 0}", f"port: {admin}}}", 1)
        s.routing.write_text(text)
        log = tmp_path / "gateway.log"
        with log.open("wb") as shared_stderr:  # both workers write here
            async with serving_workers(s.routing, admin, stderr=shared_stderr):
                endpoint = Endpoint("127.0.0.1", port)
                clients = [Client(DEMO_PRIV, endpoint) for _ in range(CLIENTS)]
                await _phase(clients, s.pnrs, Family.PRIV)
                await _phase(clients, s.pnrs, Family.PRIV)
                assert [c.logons for c in clients] == [1] * CLIENTS
                assert sum(c.answered for c in clients) == CLIENTS * LOOKUPS_PER_PHASE * 2
                served = [await lookups_answered(admin + i) for i in range(2)]
                assert all(n > 0 for n in served), served  # both workers took a share
        # Every line whole, none mixed with the other worker's: one JSON object each.
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert sum(line["event"] == "request" for line in lines) >= sum(served)


SHADOWED = """
version: 1
listen: {{host: 127.0.0.1, port: {port}, tls: null}}
admin: {{host: 127.0.0.1, port: {admin}}}
backends:
  mainframe: {{kind: legacy, address: "127.0.0.1:{legacy}", tls: null}}
  persons-v2: {{kind: grpc, address: "127.0.0.1:{modern}", tls: null}}
routes:
  - name: lookups
    match: {{operation: [lookup]}}
    backend: mainframe
    deadline: 5s
    shadow: [{{backend: persons-v2, sample: 100%, deadline: 5s}}]
  - {{name: rest, match: {{}}, backend: mainframe, deadline: 5s}}
# Never shed: the test asserts that every copy ran (shedding: test_shadow_runner.py).
shadowing: {{shed_lag: 1m}}
"""


async def test_workers_share_sessions_so_every_shadow_copy_carries_its_sides_token(
    tmp_path: Path,
) -> None:
    """`serve --workers 2` shadowing every lookup: each copy, on whichever worker, matches."""
    async with stack(tmp_path) as s:
        port, admin = free_port(), free_ports(2)
        s.routing.write_text(SHADOWED.format(port=port, admin=admin, **{
            k: v for k, v in s.ports.items() if k != "port"
        }))  # fmt: skip
        async with serving_workers(s.routing, admin):
            clients = [Client(DEMO_PRIV, Endpoint("127.0.0.1", port)) for _ in range(CLIENTS)]
            await _phase(clients, s.pnrs, Family.PRIV)
            lookups = CLIENTS * LOOKUPS_PER_PHASE
            copies: Counter[str] = Counter()
            for _attempt in range(50):  # copies finish after the answers
                copies = await shadow_copies([admin, admin + 1])
                if copies.total() >= lookups:
                    break
                await asyncio.sleep(0.1)
            assert copies == Counter(match=lookups)
            assert [c.logons for c in clients] == [1] * CLIENTS

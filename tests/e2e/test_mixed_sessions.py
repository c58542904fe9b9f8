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
from pathlib import Path

from mixed_harness import CLIENTS, LOOKUPS_PER_PHASE, Client, phase, stack
from workers_harness import lookups_answered, serving_workers

from cpr_bench.servers import free_port, free_ports, shadow_copies
from cpr_devtools.client import Endpoint, exchange, logon
from emulator_harness import DEMO_OFF4, DEMO_PRIV
from gateway.codec import LookupAnswer, LookupRequest
from gateway.model import Family, FejlNr


async def test_lookups_split_50_50_and_flipped_mid_run_need_no_new_logon(tmp_path: Path) -> None:
    """Logon on the mainframe, lookups split 50/50, then all logons and lookups moved: all 00."""
    async with stack(tmp_path) as s:
        s.write_routes(logon_side="mainframe", modern_share=50)
        endpoint = await s.start_gateway()
        clients = [Client(DEMO_PRIV if i % 2 else DEMO_OFF4, endpoint) for i in range(CLIENTS)]
        for family in (Family.PRIV, Family.OFF4):
            await phase([c for c in clients if c.user.who.transaction == family], s.pnrs, family)
        s.write_routes(logon_side="persons-v2", modern_share=100)
        assert s.gateway is not None and await s.gateway.reload()
        for family in (Family.PRIV, Family.OFF4):
            await phase([c for c in clients if c.user.who.transaction == family], s.pnrs, family)
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
        await phase(clients, s.pnrs, Family.PRIV)
        assert s.gateway is not None
        await s.gateway.aclose()
        s.write_routes(logon_side="mainframe", modern_share=50)  # same port as before
        restarted = await s.start_gateway()
        assert restarted == endpoint
        await phase(clients, s.pnrs, Family.PRIV)
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
                await phase(clients, s.pnrs, Family.PRIV)
                await phase(clients, s.pnrs, Family.PRIV)
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
# Every copy needs the services' token from the logon's repeat: on a busy machine their
# password check may outlast the default budget, so this test gives it room.
sessions: {{fan_out_timeout: 10s}}
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
            await phase(clients, s.pnrs, Family.PRIV)
            lookups = CLIENTS * LOOKUPS_PER_PHASE
            copies: Counter[str] = Counter()
            for _attempt in range(50):  # copies finish after the answers
                copies = await shadow_copies([admin, admin + 1])
                if copies.total() >= lookups:
                    break
                await asyncio.sleep(0.1)
            assert copies == Counter(match=lookups)
            assert [c.logons for c in clients] == [1] * CLIENTS


async def test_a_slow_other_side_costs_a_logon_its_fan_out_budget_once_then_nothing(
    tmp_path: Path,
) -> None:
    """The client's logon is the mainframe's business: with the services slow (3 s a call),
    a logon waits sessions.fan_out_timeout for their repeat and is answered; the next logons
    skip them while that side is paused; the late repeat's token still joins its session."""
    async with stack(tmp_path, delay=3.0) as s:
        s.sessions = "sessions: {fan_out_timeout: 100ms}\n"
        s.write_routes(logon_side="mainframe", modern_share=0)
        endpoint = await s.start_gateway()
        assert s.gateway is not None
        late = asyncio.Event()
        s.gateway.bus.subscribe(
            lambda e: late.set() if getattr(e, "kind", "") == "side_logon_late" else None
        )
        tokens = [await logon(endpoint, DEMO_PRIV.who, DEMO_PRIV.password) for _ in range(3)]
        assert len(set(tokens)) == 3  # three logons, each answered (a token is a 00)
        metric = s.gateway.metrics.value
        events = "cpr_gateway_session_events_total"
        assert metric(events, kind="side_logon_skipped", backend="persons-v2") == 2
        async with asyncio.timeout(30):  # a hang fails; the repeat takes its 3 s
            await late.wait()
        session = s.gateway.sessions.live(tokens[0])
        assert session is not None and session.token_for("persons-v2") is not None
        assert metric("cpr_gateway_backend_errors_total", backend="persons-v2", kind="timeout") == 0

"""Gateway replicas sharing sessions in Redis: a logon through one serves lookups through
another, and a Redis that stops and comes back costs clients nothing worse than one 07.

Two real gateways (each its own sessions table) on one routing file with
``sessions.store`` naming a real redis-server, in front of the real emulator and the
real gRPC services; lookups split between the two sides, so a replica that does not
know a session would have to send the client's token to a side that never issued it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from mixed_harness import CLIENTS, LOOKUPS_PER_PHASE, Client, Stack, stack

from cpr_devtools.client import Endpoint, exchange
from emulator_harness import DEMO_OFF4, DEMO_PRIV
from gateway.app import Gateway
from gateway.codec import LookupAnswer, LookupRequest
from gateway.model import Family, FejlNr
from redis_harness import RedisServer, running_redis

#: Only a hang detector: traffic that has not ended by then has hung.
HANG_S = 120.0


@asynccontextmanager
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    """Both sides, Redis, and two gateway replicas sharing sessions through it; logons
    are answered by the mainframe and lookups split half and half."""
    async with running_redis(tmp_path / "redis") as redis, stack(tmp_path) as s:
        s.sessions = f"sessions: {{store: '{redis.url}', timeout: 200ms}}\n"
        s.write_routes(logon_side="mainframe", modern_share=50)
        first = await s.start_gateway()
        second = await s.start_replica()
        yield Fleet(s, redis, first, second)


@dataclass(frozen=True, slots=True)
class Fleet:
    stack: Stack
    redis: RedisServer
    first: Endpoint
    second: Endpoint


def _metric(gateway: Gateway | None, name: str, **labels: str) -> float:
    assert gateway is not None
    return gateway.metrics.value(name, **labels)


async def _checked_lookups(
    s: Stack, clients: list[Client], rounds: int = LOOKUPS_PER_PHASE
) -> None:
    """Every client's lookups answer 00 with the mainframe's very bytes for its PNR."""

    async def run(index: int, client: Client) -> None:
        family = Family(client.user.who.transaction)
        for n in range(rounds):
            pnr = s.pnrs[(index * 31 + n * 7) % len(s.pnrs)]
            answer = await client.lookup(pnr, family)
            assert LookupAnswer.decode(answer, family).fejlnr is FejlNr.OK
            who = client.user.who
            direct = LookupRequest(who.transaction, who.customer, client.token, who.user, pnr)
            assert answer == await exchange(s.legacy, direct.encode())  # nobody else's answer

    await asyncio.gather(*(run(i, c) for i, c in enumerate(clients)))


async def test_a_logon_through_one_replica_serves_lookups_through_the_other(
    tmp_path: Path,
) -> None:
    """Both families, lookups on both sides through replica 1 after a logon on replica 0:
    all 00 with one logon each, every session found in Redis, none guessed at home."""
    async with fleet(tmp_path) as f:
        s, first, second = f.stack, f.first, f.second
        users = (DEMO_PRIV, DEMO_OFF4)
        clients = [Client(users[i % 2], first, lookups_via=(second,)) for i in range(CLIENTS)]
        async with asyncio.timeout(HANG_S):
            await _checked_lookups(s, clients)
        assert [c.logons for c in clients] == [1] * CLIENTS
        replica = s.replicas[0]
        found = _metric(
            replica, "cpr_gateway_session_store_calls_total", call="fetch", outcome="ok"
        )
        assert found == CLIENTS  # each session fetched once, then served from the copy
        for side in ("mainframe", "persons-v2"):
            went_home = _metric(
                replica, "cpr_gateway_session_events_total", kind="unknown_fallback", backend=side
            )
            assert went_home == 0
        modern = _metric(replica, "cpr_gateway_requests_total", operation="lookup",
                         route="lookups", backend="persons-v2", fejlnr="00")  # fmt: skip
        assert modern > 0  # the split did send lookups to the side that needed the session


async def test_redis_stopped_and_started_under_traffic_costs_at_most_one_new_logon(
    tmp_path: Path,
) -> None:
    """Clients keep looking up through both replicas while Redis stops and comes back: no
    hang, every answer the mainframe's own for its PNR, at most one new logon each."""
    async with fleet(tmp_path) as f:
        s, redis, first, second = f.stack, f.redis, f.first, f.second
        clients = [Client(DEMO_PRIV, first, lookups_via=(second, first)) for _ in range(CLIENTS)]
        async with asyncio.timeout(HANG_S):
            traffic = asyncio.ensure_future(_checked_lookups(s, clients, rounds=60))
            await asyncio.sleep(0.3)
            await redis.stop()
            late = [Client(DEMO_OFF4, second, lookups_via=(first,)) for _ in range(CLIENTS)]
            await _checked_lookups(s, late)  # logons while Redis is down
            await redis.start()  # empty: every session it held is gone
            await traffic
            await _checked_lookups(s, [*clients, *late])
        assert all(c.logons <= 2 for c in [*clients, *late])
        failures = sum(
            _metric(g, "cpr_gateway_session_store_calls_total", call=call, outcome="error")
            for g in (s.gateway, *s.replicas)
            for call in ("fetch", "publish")
        )
        assert failures > 0  # Redis really was down while they worked

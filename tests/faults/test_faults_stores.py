"""The fault matrix's stores: a PostgreSQL that hangs (every process of its cluster stopped
with SIGSTOP: connections stay open, nothing answers) under the shadow store and under the
canary store, and the sessions' Redis killed, while clients look up. None of them is a
request's primary: every client gets 00, its own person, and nothing leaks."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from faults_harness import (
    HANG_GUARD_S,
    USERS,
    FaultStack,
    check_cell,
    fault_stack,
    lookup_round,
    one_lookup,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapter"))
from pg_server import Cluster, pg_dsn_fixture, postgres_fixture  # noqa: F401 (fixtures)

from cpr_devtools.client import logon
from cpr_services.drift import Drift
from gateway.model import FejlNr
from redis_harness import running_redis

#: The services answer every STANDARDADR in the 2023 style: each comparison differs, so the
#: shadow store has rows to write while it hangs.
DIFFERS = Drift(standardadr_2023=True)


def cluster_pids(cluster: Cluster) -> list[int]:
    """The postmaster and every process it started."""
    postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
            children.append(int(entry.name))
    return [postmaster, *children]


@contextmanager
def frozen(cluster: Cluster) -> Iterator[None]:
    """Every process of ``cluster`` stopped for the block, always continued after it."""
    pids = cluster_pids(cluster)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def assert_hung(dsn: str) -> None:
    """The cluster takes no new connection (so the fault is real)."""
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=1).close()


#: How long a store stays hung or down while clients are served: past a canary judgement
#: (every second here) and a shadow store's batch.
HOLD_S = 2.5


async def check_frozen_cell(stack: FaultStack, name: str, cluster: Cluster, dsn: str) -> None:
    """:func:`check_cell` with ``cluster`` hung as the fault, for :data:`HOLD_S`."""
    freeze = frozen(cluster)

    async def on() -> None:
        freeze.__enter__()
        assert_hung(dsn)

    async def off() -> None:
        freeze.__exit__(None, None, None)

    await check_cell(stack, name, FejlNr.OK, on, off, hold_s=HOLD_S)


async def test_shadow_store_hung(tmp_path: Path, postgres: Cluster, pg_dsn: str) -> None:
    """The shadow store's PostgreSQL hangs while every lookup is shadowed and differs:
    clients get 00 from the mainframe, and the store is written again once it is back."""
    shadowing = f'shadowing: {{store: "{pg_dsn}", key_file: shadow.key}}\n'
    async with fault_stack(
        tmp_path, shadow="persons-v2", top_level=shadowing, drift=DIFFERS
    ) as stack:
        await check_frozen_cell(stack, "PostgreSQL (shadow store) hung", postgres, pg_dsn)
        before = compared(pg_dsn)
        await lookup_round(stack)
        async with asyncio.timeout(HANG_GUARD_S):
            while True:
                if compared(pg_dsn) > before:
                    break
                await asyncio.sleep(0.1)


def compared(dsn: str) -> int:
    """Comparisons the shadow store has counted."""
    with psycopg.connect(dsn, connect_timeout=5) as db:
        row = db.execute("SELECT coalesce(sum(compared), 0) FROM cpr_shadow.request_counts")
        return int(row.fetchone()[0])  # type: ignore[index]


async def test_canary_store_hung(tmp_path: Path, postgres: Cluster, pg_dsn: str) -> None:
    """The canary store's PostgreSQL hangs while the controller judges every second:
    clients get 00 from the mainframe."""
    canary = (
        "    canary: {candidate: persons-v2, steps: [0, 50, 100], interval: 1s,"
        " min_duration: 60m, min_requests: 1000000}\n"
    )
    async with fault_stack(
        tmp_path,
        shadow="persons-v2",
        lookups_extra=canary,
        top_level=f'canary: {{store: "{pg_dsn}"}}\n',
    ) as stack:
        await check_frozen_cell(stack, "PostgreSQL (canary store) hung", postgres, pg_dsn)


async def test_sessions_redis_down(tmp_path: Path) -> None:
    """The sessions' Redis is killed while clients look up and log on (lookups are shadowed,
    so sessions span both sides): 00 for all, and sessions are shared again once a new
    Redis listens on the same port."""
    async with running_redis(tmp_path / "redis") as redis:
        sessions = f"sessions: {{store: {redis.url}}}\n"
        async with fault_stack(tmp_path, shadow="persons-v2", top_level=sessions) as stack:

            async def on() -> None:
                await redis.stop()
                await logon_during_fault(stack)

            await check_cell(
                stack, "Redis (sessions) down", FejlNr.OK, on, redis.start, hold_s=HOLD_S
            )


async def logon_during_fault(stack: FaultStack) -> None:
    """A logon is answered (00) while the store is down, and its token looks up."""
    user = USERS[0]
    token = await logon(stack.client, user.who, user.password)
    stack.tokens[user.who.user] = token
    looked = await one_lookup(stack, user, stack.pnrs[-1])
    assert looked.fejlnr == FejlNr.OK.value

"""Two replicas of the cpr.v1 services (real grpc.aio servers, port 0) on ONE store, a SQLite
file or a PostgreSQL database: a token either issues, the other accepts (issue 16)."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from pg_server import pg_dsn_fixture, postgres_fixture  # noqa: F401 (fixtures)

from cpr_devtools.migration import migrate_register
from cpr_mainframe import default_config_path, load_config
from cpr_services.server import ModernServer
from emulator_harness import TEST_PASSWORD_COST, FakeClock, first_pnr, register_of
from gateway.cprv1 import convert
from gateway.cprv1.pb.cpr.v1 import auth_pb2, auth_pb2_grpc, person_pb2, person_pb2_grpc

CONFIG = replace(load_config(default_config_path()), password_cost=TEST_PASSWORD_COST)
PRIV = auth_pb2.TRANSACTION_PRIV
PASSWORD = "Demo#123"  # DEMO0001 of customer 1 in the shipped emulator.yaml, granted PRIV
IDLE = dt.timedelta(minutes=CONFIG.token_idle_minutes)
SESSION_INVALID = (grpc.StatusCode.UNAUTHENTICATED, auth_pb2.AUTH_OUTCOME_SESSION_INVALID)


@pytest.fixture(scope="module")
def register_path() -> Path:
    """A 300-person register shared read-only by this module."""
    return register_of(300)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, register_path: Path) -> str:
    """One modern store for both replicas, holding the register's persons."""
    if request.param == "sqlite":
        location = str(tmp_path / "modern.sqlite")
    else:
        location = str(request.getfixturevalue("pg_dsn"))
    migrate_register(register_path, location, progress=False)
    return location


@pytest.fixture
def pnr(register_path: Path) -> str:
    """The PNR of a person in the store."""
    return first_pnr(register_path)


@dataclass
class Replica:
    """One started server and its AuthService and PersonService stubs."""

    channel: grpc.aio.Channel

    async def logon(self) -> str:
        request = auth_pb2.LogonRequest(
            customer=1, user="DEMO0001", password=PASSWORD, transaction=PRIV
        )
        return (await auth_pb2_grpc.AuthServiceStub(self.channel).Logon(request)).session

    async def validate(self, session: str, *, customer: int = 1, user: str = "DEMO0001") -> Any:
        request = _check(session, customer, user)
        return await auth_pb2_grpc.AuthServiceStub(self.channel).ValidateSession(request)

    async def read(self, session: str, pnr: str) -> person_pb2.ReadPersonResponse:
        request = person_pb2.ReadPersonRequest(session=_check(session), pnr=pnr)
        return await person_pb2_grpc.PersonServiceStub(self.channel).ReadPerson(request, timeout=5)


def _check(session: str, customer: int = 1, user: str = "DEMO0001") -> Any:
    return auth_pb2.ValidateSessionRequest(
        session=session, customer=customer, user=user, transaction=PRIV
    )


@asynccontextmanager
async def replica(store: str, clock: FakeClock) -> AsyncIterator[Replica]:
    """A ModernServer on 127.0.0.1 port 0 over ``store``, and a channel to it."""
    server = ModernServer(CONFIG, store, clock=clock)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Replica(channel)
    finally:
        await server.aclose(0)


@asynccontextmanager
async def two_replicas(store: str, clock: FakeClock) -> AsyncIterator[tuple[Replica, Replica]]:
    """Replicas A and B, both on ``store`` and ``clock``, running at once."""
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(store, clock))
        b = await stack.enter_async_context(replica(store, clock))
        yield a, b


async def failure(call: Awaitable[Any]) -> tuple[grpc.StatusCode, int | None]:
    """The status code of a call that must fail, and the AuthOutcome it carried (if any)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), convert.auth_outcome(caught.value.trailing_metadata())


def _session_rows(store: str) -> list[tuple[Any, ...]]:
    """Every row of the session table, read past the services."""
    sql = 'SELECT token_hash, customer, "user", last_use FROM session_token'
    if store.startswith("postgresql://"):
        with psycopg.connect(store) as db:
            return list(db.execute(sql).fetchall())
    with sqlite3.connect(store) as db:
        return list(db.execute(sql).fetchall())


async def test_a_token_from_replica_a_is_accepted_by_replica_b(store: str, pnr: str) -> None:
    """Logon on A; ValidateSession and ReadPerson on B accept the session and read the person."""
    clock = FakeClock()
    async with two_replicas(store, clock) as (a, b):
        session = await a.logon()
        task = await b.validate(session)
        answer = await b.read(session, pnr)
    customer = CONFIG.customer(1)
    assert customer is not None and convert.to_task(task.task) == customer.task
    assert answer.person.pnr == pnr


async def test_idle_expiry_is_shared_by_the_replicas(store: str, pnr: str) -> None:
    """A use on either replica restarts the idle time for both; idle, the token dies on both."""
    clock = FakeClock()
    async with two_replicas(store, clock) as (a, b):
        session = await a.logon()
        clock.advance(IDLE - dt.timedelta(minutes=1))
        await b.read(session, pnr)
        clock.advance(IDLE - dt.timedelta(minutes=1))
        await a.validate(session)  # alive: B's read restarted its idle time
        clock.advance(IDLE)
        on_b = await failure(b.validate(session))
        on_a = await failure(a.read(session, pnr))
    assert on_a == on_b == SESSION_INVALID


async def test_a_token_is_bound_to_its_customer_and_user_on_every_replica(store: str) -> None:
    """B refuses A's token for another user or customer, and it stays good for its owner."""
    clock = FakeClock()
    async with two_replicas(store, clock) as (a, b):
        session = await a.logon()
        other_user = await failure(b.validate(session, user="DEMO0002"))
        other_customer = await failure(b.validate(session, customer=2, user="DEMO0002"))
        await b.validate(session)
    assert other_user == other_customer == SESSION_INVALID


async def test_a_restart_of_a_replica_keeps_its_tokens(store: str, pnr: str) -> None:
    """A token issued before a replica stops is accepted by it after it starts again."""
    clock = FakeClock()
    async with replica(store, clock) as a:
        session = await a.logon()
    async with replica(store, clock) as a_again:
        answer = await a_again.read(session, pnr)
    assert answer.person.pnr == pnr


async def test_the_session_table_holds_no_token_in_clear(store: str) -> None:
    """What a read of the table gives: SHA-256 digests, customer, user id, last use; no token."""
    clock = FakeClock()
    async with two_replicas(store, clock) as (a, b):
        sessions = [await a.logon(), await b.logon()]
    rows = _session_rows(store)
    assert len(rows) == 2
    assert all(re.fullmatch(r"[0-9a-f]{64}", str(row[0])) for row in rows)
    assert {(row[1], row[2]) for row in rows} == {(1, "DEMO0001")}
    assert not any(session in repr(rows) for session in sessions)
    assert PASSWORD not in repr(rows)

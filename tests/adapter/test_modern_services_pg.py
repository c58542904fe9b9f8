"""The cpr.v1 services on a real grpc.aio server (port 0) with the store on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from pg_server import pg_dsn_fixture, postgres_fixture  # noqa: F401 (fixtures)

from cpr_devtools.migration import migrate_register
from cpr_mainframe import default_config_path, load_config
from cpr_mainframe.register.store import Register
from cpr_services.server import ModernServer
from emulator_harness import TEST_PASSWORD_COST, first_pnr, register_of
from gateway.backends.grpc_wire import SESSION_KEY
from gateway.cprv1 import convert
from gateway.cprv1.pb.cpr.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    person_pb2,
    person_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
)

CONFIG = replace(load_config(default_config_path()), password_cost=TEST_PASSWORD_COST)
PASSWORD = "Demo#123"  # DEMO0001 of customer 1 in the shipped emulator.yaml, granted PRIV


@pytest.fixture(scope="module")
def register_path() -> Path:
    """A 300-person register shared read-only by this module."""
    return register_of(300)


@pytest.fixture
def store(pg_dsn: str, register_path: Path) -> str:
    """The DSN of a fresh PostgreSQL modern store holding the register's persons."""
    migrate_register(register_path, pg_dsn, progress=False)
    return pg_dsn


@pytest.fixture
def pnr(register_path: Path) -> str:
    """The PNR of a person in the store."""
    return first_pnr(register_path)


@asynccontextmanager
async def channel_to(store: str) -> AsyncIterator[grpc.aio.Channel]:
    """A ModernServer on 127.0.0.1 port 0 over ``store``, and a channel to it."""
    server = ModernServer(CONFIG, store)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.aclose(0)


async def _in_session(channel: grpc.aio.Channel) -> tuple[tuple[str, bytes], ...]:
    """Metadata naming a fresh session of DEMO0001's (cpr_services.access)."""
    logged_on = await auth_pb2_grpc.AuthServiceStub(channel).Logon(_logon())
    session = auth_pb2.ValidateSessionRequest(
        session=logged_on.session,
        customer=1,
        user="DEMO0001",
        transaction=auth_pb2.TRANSACTION_PRIV,
    )
    return ((SESSION_KEY, session.SerializeToString()),)


def _logon(password: str = PASSWORD) -> auth_pb2.LogonRequest:
    return auth_pb2.LogonRequest(
        customer=1, user="DEMO0001", password=password, transaction=auth_pb2.TRANSACTION_PRIV
    )


async def test_get_person_returns_the_register_person(
    store: str, register_path: Path, pnr: str
) -> None:
    """GetPerson answers the person stored in PostgreSQL, equal to the register's."""
    register = Register.open(register_path)
    expected = register.get(pnr)
    register.close()
    async with channel_to(store) as channel:
        stub = person_pb2_grpc.PersonServiceStub(channel)
        session = await _in_session(channel)
        message = await stub.GetPerson(
            person_pb2.GetPersonRequest(pnr=pnr), timeout=5, metadata=session
        )
    assert convert.to_person(message) == expected


async def test_subscriptions_are_idempotent_and_survive_a_restart(store: str, pnr: str) -> None:
    """Create twice → created then not; after a restart it is still there and Delete ends it."""
    create = subscription_pb2.CreateSubscriptionRequest(customer=1, pnr=pnr)
    delete = subscription_pb2.DeleteSubscriptionRequest(customer=1, pnr=pnr)
    async with channel_to(store) as channel:
        stub = subscription_pb2_grpc.SubscriptionServiceStub(channel)
        session = await _in_session(channel)
        first = await stub.Create(create, metadata=session)
        second = await stub.Create(create, metadata=session)
    async with channel_to(store) as channel:
        stub = subscription_pb2_grpc.SubscriptionServiceStub(channel)
        session = await _in_session(channel)
        after_restart = await stub.Create(create, metadata=session)
        deleted = await stub.Delete(delete, metadata=session)
        again = await stub.Delete(delete, metadata=session)
    assert (first.created, second.created, after_restart.created) == (True, False, False)
    assert (deleted.deleted, again.deleted) == (True, False)


async def test_logon_gives_a_session_that_validates(store: str) -> None:
    """Users are seeded into PostgreSQL; a good logon's session validates; a bad one is refused."""
    async with channel_to(store) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        session = (await stub.Logon(_logon())).session
        task = await stub.ValidateSession(
            auth_pb2.ValidateSessionRequest(
                session=session, customer=1, user="DEMO0001", transaction=auth_pb2.TRANSACTION_PRIV
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await stub.Logon(_logon("Wrong#12"))
    customer = CONFIG.customer(1)
    assert customer is not None and convert.to_task(task.task) == customer.task
    assert wrong.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_a_changed_password_survives_a_restart(store: str) -> None:
    """ChangePassword is committed to PostgreSQL: after a restart only the new password works."""
    change = auth_pb2.ChangePasswordRequest(
        customer=1,
        user="DEMO0001",
        password=PASSWORD,
        new_password="New#4567",
        transaction=auth_pb2.TRANSACTION_PRIV,
    )
    async with channel_to(store) as channel:
        await auth_pb2_grpc.AuthServiceStub(channel).ChangePassword(change)
    async with channel_to(store) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        assert (await stub.Logon(_logon("New#4567"))).session
        with pytest.raises(grpc.aio.AioRpcError) as old:
            await stub.Logon(_logon())
    assert old.value.code() is grpc.StatusCode.UNAUTHENTICATED

"""The cpr.v1 services on a real grpc.aio server (port 0) over a real channel, on a real store."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ipaddress
import re
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import (  # type: ignore[import-untyped]
    reflection_pb2,
    reflection_pb2_grpc,
)

from cpr_accounts.clock import Clock, utc_now
from cpr_devtools.migration import migrate_register
from cpr_mainframe import EmulatorConfig, default_config_path, load_config
from cpr_mainframe.register.store import Register
from cpr_services.server import SERVICE_NAMES, ModernServer
from cpr_services.services import peer_address
from emulator_harness import TEST_PASSWORD_COST, FakeClock, first_pnr, register_of
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
from gateway.errors import ConfigError

CONFIG = replace(load_config(default_config_path()), password_cost=TEST_PASSWORD_COST)
PRIV = auth_pb2.TRANSACTION_PRIV
OFF4 = auth_pb2.TRANSACTION_OFF4
PASSWORD = "Demo#123"  # DEMO0001 of customer 1 in the shipped emulator.yaml, granted PRIV
#: Well-formed (a calendar date) but not in a generated register: its serial is out of range.
UNKNOWN_PNR = "0101019999"


@pytest.fixture(scope="module")
def register_path() -> Path:
    """A 300-person register shared read-only by this module."""
    return register_of(300)


@pytest.fixture
def store(tmp_path: Path, register_path: Path) -> Path:
    """A fresh modern store holding the register's persons."""
    target = tmp_path / "modern.sqlite"
    migrate_register(register_path, target, progress=False)
    return target


@pytest.fixture
def pnr(register_path: Path) -> str:
    """The PNR of a person in the store."""
    return first_pnr(register_path)


@dataclass
class Running:
    """A started server and stubs on a channel to it."""

    server: ModernServer
    port: int
    channel: grpc.aio.Channel

    @property
    def persons(self) -> person_pb2_grpc.PersonServiceStub:
        return person_pb2_grpc.PersonServiceStub(self.channel)

    @property
    def subscriptions(self) -> subscription_pb2_grpc.SubscriptionServiceStub:
        return subscription_pb2_grpc.SubscriptionServiceStub(self.channel)

    @property
    def auth(self) -> auth_pb2_grpc.AuthServiceStub:
        return auth_pb2_grpc.AuthServiceStub(self.channel)

    async def logon(self, password: str = PASSWORD, *, user: str = "DEMO0001", **kw: Any) -> str:
        request = auth_pb2.LogonRequest(customer=1, user=user, password=password, **kw)
        request.transaction = kw.get("transaction", PRIV)
        return (await self.auth.Logon(request)).session

    async def change(self, password: str, new: str) -> str:
        request = auth_pb2.ChangePasswordRequest(
            customer=1, user="DEMO0001", password=password, new_password=new, transaction=PRIV
        )
        return (await self.auth.ChangePassword(request)).session

    async def validate(
        self, session: str, *, user: str = "DEMO0001", transaction: convert.Transaction = PRIV
    ) -> auth_pb2.Task:
        request = auth_pb2.ValidateSessionRequest(
            session=session, customer=1, user=user, transaction=transaction
        )
        return (await self.auth.ValidateSession(request)).task

    async def in_session(self) -> tuple[tuple[str, bytes], ...]:
        """Metadata naming a fresh session of DEMO0001's, as the gateway sends with the calls
        whose messages hold no session (cpr_services.access)."""
        session = auth_pb2.ValidateSessionRequest(
            session=await self.logon(), customer=1, user="DEMO0001", transaction=PRIV
        )
        return ((SESSION_KEY, session.SerializeToString()),)


@asynccontextmanager
async def running(
    store: Path, config: EmulatorConfig = CONFIG, *, clock: Clock = utc_now, delay: float = 0.0
) -> AsyncIterator[Running]:
    """A ModernServer on 127.0.0.1 port 0 for the duration of the ``async with``."""
    server = ModernServer(config, store, clock=clock, delay=delay)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Running(server, port, channel)
    finally:
        await server.aclose(0)


async def failure(call: Awaitable[Any]) -> tuple[grpc.StatusCode, int | None]:
    """The status code of a call that must fail, and the AuthOutcome it carried (if any)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), convert.auth_outcome(caught.value.trailing_metadata())


# ---- PersonService ---------------------------------------------------------------------------


async def test_get_person_returns_the_register_person(
    store: Path, register_path: Path, pnr: str
) -> None:
    """GetPerson answers the stored person, equal to the register's after conversion."""
    register = Register.open(register_path)
    expected = register.get(pnr)
    register.close()
    async with running(store) as backend:
        message = await backend.persons.GetPerson(
            person_pb2.GetPersonRequest(pnr=pnr), timeout=5, metadata=await backend.in_session()
        )
    assert convert.to_person(message) == expected


async def test_get_person_unknown_and_malformed(store: Path) -> None:
    """An unknown PNR is NOT_FOUND, a malformed one INVALID_ARGUMENT; details never hold it."""
    async with running(store) as backend:
        session = await backend.in_session()
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await backend.persons.GetPerson(
                person_pb2.GetPersonRequest(pnr=UNKNOWN_PNR), metadata=session
            )
        malformed = await failure(
            backend.persons.GetPerson(person_pb2.GetPersonRequest(pnr="3213"), metadata=session)
        )
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    assert UNKNOWN_PNR not in (unknown.value.details() or "")
    assert malformed == (grpc.StatusCode.INVALID_ARGUMENT, None)


async def test_a_slow_call_exceeds_its_deadline_and_is_cancelled(store: Path, pnr: str) -> None:
    """Latency past the deadline: DEADLINE_EXCEEDED, and the server's handler is cancelled."""
    async with running(store, delay=60.0) as backend:
        read = person_pb2.ReadPersonRequest(pnr=pnr)  # proves itself (its session) when paced
        call = backend.persons.ReadPerson(read, timeout=0.2)
        assert (await failure(call))[0] is grpc.StatusCode.DEADLINE_EXCEEDED
        async with asyncio.timeout(10):  # a guard against hanging, not a measurement
            while backend.server.pace.cancelled == 0:  # noqa: ASYNC110 (the server's counter)
                await asyncio.sleep(0.01)
        assert backend.server.pace.cancelled == 1


async def test_a_taken_port_is_a_config_error(store: Path, tmp_path: Path) -> None:
    """A second server on the same port fails to start with ConfigError instead of sharing it."""
    async with running(store) as backend:
        second = ModernServer(CONFIG, tmp_path / "other.sqlite", port=backend.port)
        with pytest.raises(ConfigError, match="cannot listen"):
            await second.start()


# ---- health and reflection -------------------------------------------------------------------


async def test_health_reports_serving_for_the_server_and_each_service(store: Path) -> None:
    """grpc.health.v1 answers SERVING for "" and every cpr.v1 service, NOT_FOUND for others."""
    async with running(store) as backend:
        stub = health_pb2_grpc.HealthStub(backend.channel)
        for name in ("", *SERVICE_NAMES):
            answer = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, name
        unknown = await failure(stub.Check(health_pb2.HealthCheckRequest(service="cpr.v1.Nope")))
    assert unknown[0] is grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_services_and_serves_their_descriptors(store: Path) -> None:
    """Reflection lists cpr.v1, health and reflection, and returns the file defining Person."""
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="cpr.v1.Person"),
    ]
    async with running(store) as backend:
        stub = reflection_pb2_grpc.ServerReflectionStub(backend.channel)
        answers = [answer async for answer in stub.ServerReflectionInfo(iter(requests))]
    listed = {service.name for service in answers[0].list_services_response.service}
    assert listed == {
        *SERVICE_NAMES,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert answers[1].file_descriptor_response.file_descriptor_proto  # cpr/v1/person.proto


# ---- SubscriptionService ---------------------------------------------------------------------


async def test_subscriptions_are_idempotent_and_survive_a_restart(store: Path, pnr: str) -> None:
    """Create twice → created then not; after a restart it is still there and Delete ends it."""
    create = subscription_pb2.CreateSubscriptionRequest(customer=1, pnr=pnr)
    delete = subscription_pb2.DeleteSubscriptionRequest(customer=1, pnr=pnr)
    async with running(store) as backend:
        session = await backend.in_session()
        first = await backend.subscriptions.Create(create, metadata=session)
        second = await backend.subscriptions.Create(create, metadata=session)
    async with running(store) as backend:
        session = await backend.in_session()
        after_restart = await backend.subscriptions.Create(create, metadata=session)
        deleted = await backend.subscriptions.Delete(delete, metadata=session)
        again = await backend.subscriptions.Delete(delete, metadata=session)
    assert (first.created, second.created, after_restart.created) == (True, False, False)
    assert (deleted.deleted, again.deleted) == (True, False)


async def test_subscribing_to_an_unknown_or_malformed_pnr_fails(store: Path, pnr: str) -> None:
    """Unknown PNR → NOT_FOUND; malformed PNR → INVALID_ARGUMENT (a customer outside 1-9999,
    which no session names: test_services_access)."""
    request = subscription_pb2.CreateSubscriptionRequest
    async with running(store) as backend:
        session = await backend.in_session()
        create = functools.partial(backend.subscriptions.Create, metadata=session)
        unknown = await failure(create(request(customer=1, pnr=UNKNOWN_PNR)))
        malformed = await failure(create(request(customer=1, pnr="abc")))
        delete_unknown = await failure(
            backend.subscriptions.Delete(
                subscription_pb2.DeleteSubscriptionRequest(customer=1, pnr=UNKNOWN_PNR),
                metadata=session,
            )
        )
    assert unknown[0] is delete_unknown[0] is grpc.StatusCode.NOT_FOUND
    assert malformed[0] is grpc.StatusCode.INVALID_ARGUMENT


# ---- AuthService -----------------------------------------------------------------------------

OUTCOME = auth_pb2.AuthOutcome
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
BAD = (UNAUTHENTICATED, auth_pb2.AUTH_OUTCOME_BAD_CREDENTIALS)
SESSION_INVALID = (UNAUTHENTICATED, auth_pb2.AUTH_OUTCOME_SESSION_INVALID)
RULES = (grpc.StatusCode.INVALID_ARGUMENT, auth_pb2.AUTH_OUTCOME_PASSWORD_RULES)
DENIED = (grpc.StatusCode.PERMISSION_DENIED, auth_pb2.AUTH_OUTCOME_TRANSACTION_DENIED)


async def test_logon_gives_a_token_shaped_session_that_validates(store: Path) -> None:
    """A good logon answers 8 characters of [A-Za-z0-9]; ValidateSession returns the task."""
    async with running(store) as backend:
        session = await backend.logon()
        task = await backend.validate(session)
    customer = CONFIG.customer(1)
    assert re.fullmatch(r"[A-Za-z0-9]{8}", session)
    assert customer is not None and convert.to_task(task) == customer.task


async def test_logon_refusals_in_the_emulators_order(store: Path) -> None:
    """Unknown customer 06; wrong password or user 01 (before 14); right password, ungranted 14."""
    async with running(store) as backend:
        unknown_customer = await failure(
            backend.auth.Logon(auth_pb2.LogonRequest(customer=9, user="DEMO0001", password="x"))
        )
        wrong = await failure(backend.logon("Wrong#12"))
        stranger = await failure(backend.logon(user="NOBODY"))
        wrong_and_ungranted = await failure(backend.logon("Wrong#12", transaction=OFF4))
        ungranted = await failure(backend.logon(transaction=OFF4))
        unspecified = await failure(backend.logon(transaction=auth_pb2.TRANSACTION_UNSPECIFIED))
    assert unknown_customer == (grpc.StatusCode.NOT_FOUND, auth_pb2.AUTH_OUTCOME_CUSTOMER_UNKNOWN)
    assert wrong == stranger == wrong_and_ungranted == BAD
    assert ungranted == unspecified == DENIED


async def test_five_failures_in_a_row_lock_the_user(store: Path) -> None:
    """After 5 wrong passwords even the right one is BAD_CREDENTIALS; the lock is durable."""
    async with running(store) as backend:
        for _ in range(5):
            assert await failure(backend.logon("Wrong#12")) == BAD
    async with running(store) as backend:
        assert await failure(backend.logon()) == BAD


async def test_an_expired_password_must_be_changed(store: Path) -> None:
    """After 91 days Logon is PASSWORD_EXPIRED; ChangePassword logs on and replaces the old one."""
    clock = FakeClock()
    async with running(store, clock=clock) as backend:
        clock.advance(dt.timedelta(days=91))
        expired = await failure(backend.logon())
        session = await backend.change(PASSWORD, "New#4567")
        await backend.validate(session)
        assert await backend.logon("New#4567")
        assert await failure(backend.logon()) == BAD
    assert expired == (grpc.StatusCode.FAILED_PRECONDITION, auth_pb2.AUTH_OUTCOME_PASSWORD_EXPIRED)


async def test_new_password_rules(store: Path) -> None:
    """Breaking §7, reuse, empty, or a second change within 24 h is PASSWORD_RULES; others pass."""
    clock = FakeClock()
    async with running(store, clock=clock) as backend:
        assert await failure(backend.change(PASSWORD, "weakpass")) == RULES
        assert await failure(backend.change(PASSWORD, PASSWORD)) == RULES
        assert await failure(backend.change(PASSWORD, "")) == RULES
        assert await backend.change(PASSWORD, "New#4567")
        clock.advance(dt.timedelta(hours=23))
        assert await failure(backend.change("New#4567", "Newer#67")) == RULES
        clock.advance(dt.timedelta(hours=2))
        assert await backend.change("New#4567", "Newer#67")
        clock.advance(dt.timedelta(hours=25))
        assert await failure(backend.change("Newer#67", PASSWORD)) == RULES  # used before
        assert await backend.change("Newer#67", "Newest#8")


async def test_session_validation(store: Path) -> None:
    """Unknown, someone else's or idle sessions are invalid; use restarts idle time; grants hold."""
    clock = FakeClock()
    async with running(store, clock=clock) as backend:
        session = await backend.logon()
        unknown = await failure(backend.validate("AAAAAAAA"))
        other_user = await failure(backend.validate(session, user="DEMO0002"))
        ungranted = await failure(backend.validate(session, transaction=OFF4))
        clock.advance(dt.timedelta(minutes=29))
        await backend.validate(session)
        clock.advance(dt.timedelta(minutes=29))
        await backend.validate(session)  # 58 minutes after logon, 29 after last use
        clock.advance(dt.timedelta(minutes=30))
        idle = await failure(backend.validate(session))
    assert unknown == other_user == idle == SESSION_INVALID
    assert ungranted == DENIED


async def test_read_person_checks_the_session_as_validate_session_then_reads(
    store: Path, register_path: Path, pnr: str
) -> None:
    """ReadPerson = ValidateSession + GetPerson in one call: the same task and person, the
    session's refusals before the PNR's, and a use restarts the session's idle time."""
    register = Register.open(register_path)
    expected = register.get(pnr)
    register.close()
    clock = FakeClock()

    def read(session: str, target: str = pnr, transaction: convert.Transaction = PRIV) -> Any:
        check = auth_pb2.ValidateSessionRequest(
            session=session, customer=1, user="DEMO0001", transaction=transaction
        )
        request = person_pb2.ReadPersonRequest(session=check, pnr=target)
        return backend.persons.ReadPerson(request, timeout=5)

    async with running(store, clock=clock) as backend:
        session = await backend.logon()
        answer = await read(session)
        task = await backend.validate(session)
        clock.advance(dt.timedelta(minutes=29))
        await read(session)
        clock.advance(dt.timedelta(minutes=29))
        await backend.validate(session)  # alive: the read 29 minutes ago restarted it
        unknown_session_and_pnr = await failure(read("AAAAAAAA", UNKNOWN_PNR))
        ungranted_malformed = await failure(read(session, "3213", transaction=OFF4))
        unknown_pnr = await failure(read(session, UNKNOWN_PNR))
        malformed = await failure(read(session, "3213"))
    assert answer.task == task
    assert convert.to_person(answer.person) == expected
    assert unknown_session_and_pnr == SESSION_INVALID
    assert ungranted_malformed == DENIED
    assert unknown_pnr == (grpc.StatusCode.NOT_FOUND, None)
    assert malformed == (grpc.StatusCode.INVALID_ARGUMENT, None)


async def test_batch_read_gives_each_read_what_read_person_gives_it(
    store: Path, register_path: Path, pnr: str
) -> None:
    """BatchReadPersons answers each read, in order, with ReadPerson's answer or its status
    and outcome: one read's refusal is its own result and the others are still read."""
    register = Register.open(register_path)
    first, second = register.pnrs(limit=2)
    expected = {p: register.get(p) for p in (first, second)}
    register.close()

    def check(session: str, transaction: convert.Transaction = PRIV) -> Any:
        return auth_pb2.ValidateSessionRequest(
            session=session, customer=1, user="DEMO0001", transaction=transaction
        )

    async with running(store) as backend:
        session = await backend.logon()
        reads = [
            person_pb2.ReadPersonRequest(session=check(session), pnr=first),
            person_pb2.ReadPersonRequest(session=check("AAAAAAAA"), pnr=first),
            person_pb2.ReadPersonRequest(session=check(session), pnr=UNKNOWN_PNR),
            person_pb2.ReadPersonRequest(session=check(session, OFF4), pnr=first),
            person_pb2.ReadPersonRequest(session=check(session), pnr="3213"),
            person_pb2.ReadPersonRequest(session=check(session), pnr=second),
        ]
        batch = await backend.persons.BatchReadPersons(
            person_pb2.BatchReadPersonsRequest(reads=reads), timeout=5
        )
        one_by_one: list[Any] = []
        for read in reads:
            try:
                one_by_one.append(await backend.persons.ReadPerson(read, timeout=5))
            except grpc.aio.AioRpcError as exc:
                one_by_one.append((exc.code(), convert.auth_outcome(exc.trailing_metadata())))
        too_many = person_pb2.BatchReadPersonsRequest(reads=[reads[0]] * 257)
        oversized = await failure(backend.persons.BatchReadPersons(too_many, timeout=5))

    def outcome(result: person_pb2.ReadResult) -> Any:
        if result.HasField("read"):
            return result.read
        code = next(c for c in grpc.StatusCode if c.value[0] == result.failure.code)
        return code, result.failure.outcome or None

    assert [outcome(r) for r in batch.results] == one_by_one
    assert [o if isinstance(o, tuple) else None for o in one_by_one] == [
        None,
        SESSION_INVALID,
        (grpc.StatusCode.NOT_FOUND, None),
        DENIED,
        (grpc.StatusCode.INVALID_ARGUMENT, None),
        None,
    ]
    assert convert.to_person(batch.results[0].read.person) == expected[first]
    assert convert.to_person(batch.results[5].read.person) == expected[second]
    assert all(pnr not in r.failure.message for r in batch.results for pnr in (first, second))
    assert oversized == (grpc.StatusCode.INVALID_ARGUMENT, None)


async def test_sessions_and_passwords_outlive_the_server(store: Path) -> None:
    """Sessions are in the store (issue 16): after a restart an old session still validates,
    and a changed password still holds."""
    async with running(store) as backend:
        session = await backend.change(PASSWORD, "New#4567")
    async with running(store) as backend:
        await backend.validate(session)
        assert await backend.logon("New#4567")


async def test_a_caller_outside_the_customers_networks_is_denied(store: Path) -> None:
    """A customer that allows only 10.0.0.0/8 refuses a loopback caller: ADDRESS_DENIED."""
    customer = CONFIG.customers[0]
    fenced = replace(customer, allow=(ipaddress.ip_network("10.0.0.0/8"),))
    async with running(store, replace(CONFIG, customers=(fenced,))) as backend:
        refused = await failure(backend.logon())
    assert refused == (grpc.StatusCode.PERMISSION_DENIED, auth_pb2.AUTH_OUTCOME_ADDRESS_DENIED)


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:127.0.0.1:50051", "127.0.0.1"),
        ("ipv6:[::1]:50051", "::1"),
        ("ipv6:%5B::1%5D:50051", "::1"),
        ("unix:/tmp/socket", None),
        ("ipv4:nonsense", None),
    ],
)
def test_peer_address(peer: str, address: str | None) -> None:
    """grpc peer strings give their IP address; anything else gives None (never allowed)."""
    expected = ipaddress.ip_address(address) if address else None
    assert peer_address(peer) == expected

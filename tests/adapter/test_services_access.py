"""The services over mutual TLS: who may call (a session or the gateway's certificate), the
gateway's client certificate through its grpc backend, and repeats that lock nobody."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog

from cpr_devtools.migration import migrate_register
from cpr_devtools.pki import GATEWAY_CLIENT, DevPki, ensure_dev_pki
from cpr_mainframe import default_config_path, load_config
from cpr_services.server import ModernServer, ServiceTls
from emulator_harness import TEST_PASSWORD_COST, first_pnr, register_of
from gateway.backends.grpc import GrpcBackend
from gateway.backends.grpc_config import GrpcBackendConfig, grpc_target
from gateway.backends.grpc_wire import REPEAT_KEY, REPEAT_VALUE, SESSION_KEY
from gateway.codec import LogonAnswer, LogonRequest, LookupAnswer, LookupRequest
from gateway.config.schema import ClientTls
from gateway.cprv1.pb.cpr.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    person_pb2,
    person_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
)
from gateway.errors import BackendUnauthenticated, BackendUnavailable
from gateway.model import Family, FejlNr
from gateway.observe.logs import configure_logging

CONFIG = replace(load_config(default_config_path()), password_cost=TEST_PASSWORD_COST)
PASSWORD = "Demo#123"  # DEMO0001 of customer 1 in the shipped emulator.yaml, granted PRIV
#: A client certificate of the same CA that is not the gateway's.
STRANGER = "stranger-client"


@pytest.fixture(scope="module")
def register_path() -> Path:
    """A 300-person register shared read-only by this module."""
    return register_of(300)


@pytest.fixture
def store(tmp_path: Path, register_path: Path) -> Path:
    target = tmp_path / "modern.sqlite"
    migrate_register(register_path, target, progress=False)
    return target


@pytest.fixture
def pki(tmp_path: Path) -> DevPki:
    """A CA, the services' server certificate, the gateway's and a stranger's client ones."""
    return ensure_dev_pki(
        tmp_path / "tls", servers=("services",), clients=(GATEWAY_CLIENT, STRANGER)
    )


@dataclass
class Services:
    server: ModernServer
    port: int
    pki: DevPki

    @asynccontextmanager
    async def channel(self, client: str | None) -> AsyncIterator[grpc.aio.Channel]:
        """A TLS channel presenting ``client``'s certificate (None: none)."""
        pair: dict[str, bytes] = {}
        if client is not None:
            pair = {
                "private_key": self.pki.key(client).read_bytes(),
                "certificate_chain": self.pki.cert(client).read_bytes(),
            }
        credentials = grpc.ssl_channel_credentials(self.pki.ca_cert.read_bytes(), **pair)
        options = [("grpc.ssl_target_name_override", "localhost")]
        target = f"127.0.0.1:{self.port}"
        async with grpc.aio.secure_channel(target, credentials, options=options) as channel:
            yield channel

    def backend(self, *, present: bool = True) -> GrpcBackend:
        """The gateway's grpc backend, presenting its client certificate unless told not to."""
        cert, key = self.pki.cert(GATEWAY_CLIENT), self.pki.key(GATEWAY_CLIENT)
        tls = ClientTls(self.pki.ca_cert, "localhost", *((cert, key) if present else ()))
        config = GrpcBackendConfig("persons-v2", grpc_target(f"127.0.0.1:{self.port}"), tls)
        return GrpcBackend.from_config(config)


@asynccontextmanager
async def mutual(store: Path, pki: DevPki) -> AsyncIterator[Services]:
    """The services requiring client certificates of ``pki``'s CA; the gateway is
    GATEWAY_CLIENT."""
    tls = ServiceTls(pki.cert("services"), pki.key("services"), pki.ca_cert)
    server = ModernServer(CONFIG, store, tls=tls, gateway_identities=(GATEWAY_CLIENT,))
    port = await server.start()
    try:
        yield Services(server, port, pki)
    finally:
        await server.aclose(0)


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """The JSON log lines written meanwhile."""
    buffer = io.StringIO()
    configure_logging(json=True, stream=buffer)
    yield buffer
    structlog.reset_defaults()


def _events(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


async def _status(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code()


def _logon(password: str = PASSWORD) -> auth_pb2.LogonRequest:
    return auth_pb2.LogonRequest(
        customer=1, user="DEMO0001", password=password, transaction=auth_pb2.TRANSACTION_PRIV
    )


def _session_of(token: str, customer: int = 1) -> tuple[tuple[str, bytes], ...]:
    session = auth_pb2.ValidateSessionRequest(
        session=token, customer=customer, user="DEMO0001", transaction=auth_pb2.TRANSACTION_PRIV
    )
    return ((SESSION_KEY, session.SerializeToString()),)


async def test_calls_without_a_session_need_the_gateways_certificate(
    store: Path, pki: DevPki, register_path: Path, logged: io.StringIO
) -> None:
    """GetPerson and the subscription calls: the gateway's certificate passes; another
    certificate of the same CA is UNAUTHENTICATED (and logged) unless it names a valid
    session of the subscription's customer."""
    pnr = first_pnr(register_path)
    get = person_pb2.GetPersonRequest(pnr=pnr)
    create = subscription_pb2.CreateSubscriptionRequest(customer=1, pnr=pnr)
    async with mutual(store, pki) as services:
        async with services.channel(GATEWAY_CLIENT) as gateway:
            assert (await person_pb2_grpc.PersonServiceStub(gateway).GetPerson(get)).pnr == pnr
            subscriptions = subscription_pb2_grpc.SubscriptionServiceStub(gateway)
            assert (await subscriptions.Create(create)).created
            outside = subscription_pb2.CreateSubscriptionRequest(customer=0, pnr=pnr)
            invalid = await _status(subscriptions.Create(outside))
        async with services.channel(STRANGER) as stranger:
            persons = person_pb2_grpc.PersonServiceStub(stranger)
            subscriptions = subscription_pb2_grpc.SubscriptionServiceStub(stranger)
            refused = await _status(persons.GetPerson(get))
            refused_create = await _status(subscriptions.Create(create))
            token = (await auth_pb2_grpc.AuthServiceStub(stranger).Logon(_logon())).session
            in_session = await persons.GetPerson(get, metadata=_session_of(token))
            other_customer = await _status(
                subscriptions.Create(
                    subscription_pb2.CreateSubscriptionRequest(customer=2, pnr=pnr),
                    metadata=_session_of(token),
                )
            )
            garbage = await _status(persons.GetPerson(get, metadata=((SESSION_KEY, b"\xff"),)))
    assert invalid is grpc.StatusCode.INVALID_ARGUMENT  # the servicer's own check, reached
    assert refused is refused_create is other_customer is garbage is grpc.StatusCode.UNAUTHENTICATED
    assert in_session.pnr == pnr
    methods = [e["method"] for e in _events(logged) if e.get("event") == "caller_refused"]
    assert "/cpr.v1.PersonService/GetPerson" in methods
    assert pnr not in logged.getvalue()


async def test_a_client_without_a_certificate_cannot_connect(store: Path, pki: DevPki) -> None:
    """Client certificates are required: no certificate, no call (not even a logon); the
    gateway's backend without one answers 09 for it."""
    async with mutual(store, pki) as services:
        async with services.channel(None) as anonymous:
            code = await _status(auth_pb2_grpc.AuthServiceStub(anonymous).Logon(_logon()))
        backend = services.backend(present=False)
        try:
            request = LogonRequest("PRIV", "0001", "DEMO0001", PASSWORD)
            with pytest.raises(BackendUnavailable):
                await backend.call(request, request.encode(), deadline=2.0)
        finally:
            await backend.aclose()
    assert code is grpc.StatusCode.UNAVAILABLE


async def test_the_gateway_backend_logs_on_looks_up_and_subscribes_over_mtls(
    store: Path, pki: DevPki, register_path: Path
) -> None:
    """Through the gateway's own adapter with its client certificate: a logon, a batched read
    and a subscription with data (GetPerson after Create, in the client's session) answer 00."""
    pnr = first_pnr(register_path)
    async with mutual(store, pki) as services:
        backend = services.backend()
        try:
            request = LogonRequest("PRIV", "0001", "DEMO0001", PASSWORD)
            answer = LogonAnswer.decode(await backend.call(request, request.encode(), deadline=5))
            assert answer.fejlnr is FejlNr.OK
            read = LookupRequest("PRIV", "0001", answer.token, "DEMO0001", pnr)
            subscribe = LookupRequest("PRIV", "0001", answer.token, "DEMO0001", pnr, abon_type="1")
            fejlnr = [
                LookupAnswer.decode(
                    await backend.call(r, r.encode(), deadline=5), Family.PRIV
                ).fejlnr
                for r in (read, subscribe)
            ]
        finally:
            await backend.aclose()
    assert fejlnr == [FejlNr.OK, FejlNr.OK]


async def test_refused_repeats_from_the_gateway_lock_nobody(store: Path, pki: DevPki) -> None:
    """Six wrong passwords marked x-cpr-repeat from the gateway's certificate leave the user
    unlocked; the same marked logons from another certificate count, and lock it."""
    repeat = ((REPEAT_KEY, REPEAT_VALUE),)
    async with mutual(store, pki) as services:
        async with services.channel(GATEWAY_CLIENT) as gateway:
            auth = auth_pb2_grpc.AuthServiceStub(gateway)
            for _ in range(6):
                code = await _status(auth.Logon(_logon("Wrong#123"), metadata=repeat))
                assert code is grpc.StatusCode.UNAUTHENTICATED
            assert (await auth.Logon(_logon())).session  # not locked
        async with services.channel(STRANGER) as stranger:
            auth = auth_pb2_grpc.AuthServiceStub(stranger)
            for _ in range(5):
                await _status(auth.Logon(_logon("Wrong#123"), metadata=repeat))
            locked = await _status(auth.Logon(_logon()))
    assert locked is grpc.StatusCode.UNAUTHENTICATED


async def test_an_identity_needs_required_client_certificates(store: Path, pki: DevPki) -> None:
    """A gateway identity read from a certificate nobody verified would be anyone's: refused."""
    from gateway.errors import ConfigError

    tls = ServiceTls(pki.cert("services"), pki.key("services"))
    with pytest.raises(ConfigError, match="--client-ca"):
        ModernServer(CONFIG, store, tls=tls, gateway_identities=(GATEWAY_CLIENT,))


class _Unauthenticated(auth_pb2_grpc.AuthServiceServicer):
    """A fault: services that refuse the gateway itself (UNAUTHENTICATED, no outcome)."""

    async def Logon(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's name)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "who are you")

    ChangePassword = ValidateSession = Logon


async def test_services_refusing_the_gateway_answer_09_and_are_logged(
    logged: io.StringIO,
) -> None:
    """A bare UNAUTHENTICATED is the gateway's configuration, not the client's logon: the
    adapter raises BackendUnauthenticated (09, not a failure any breaker counts)."""
    server = grpc.aio.server()
    auth_pb2_grpc.add_AuthServiceServicer_to_server(_Unauthenticated(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    backend = GrpcBackend.from_config(
        GrpcBackendConfig("persons-v2", grpc_target(f"127.0.0.1:{port}"), None)
    )
    try:
        request = LogonRequest("PRIV", "0001", "DEMO0001", PASSWORD)
        with pytest.raises(BackendUnauthenticated) as caught:
            await backend.call(request, request.encode(), deadline=2.0)
    finally:
        await backend.aclose()
        await server.stop(0)
    assert caught.value.wire is FejlNr.NO_CONNECTION
    assert caught.value.kind == "unauthenticated"


async def test_without_tls_the_gateway_subscribes_in_its_clients_session(
    store: Path, register_path: Path
) -> None:
    """Plaintext services know no gateway: the adapter's subscription calls pass because they
    carry the client's session (and a stale session is the client's 07, not a refusal)."""
    pnr = first_pnr(register_path)
    server = ModernServer(CONFIG, store)
    port = await server.start()
    backend = GrpcBackend.from_config(
        GrpcBackendConfig("persons-v2", grpc_target(f"127.0.0.1:{port}"), None)
    )
    try:
        request = LogonRequest("PRIV", "0001", "DEMO0001", PASSWORD)
        token = LogonAnswer.decode(await backend.call(request, request.encode(), deadline=5)).token
        answers = []
        for abon_type, session in (("1", token), ("3", token), ("1", "Stale123")):
            change = LookupRequest("PRIV", "0001", session, "DEMO0001", pnr, abon_type=abon_type)
            answer = await backend.call(change, change.encode(), deadline=5)
            answers.append(LookupAnswer.decode(answer, Family.PRIV).fejlnr)
    finally:
        await backend.aclose()
        await server.aclose(0)
    assert answers == [FejlNr.OK, FejlNr.OK, FejlNr.NEW_LOGON]

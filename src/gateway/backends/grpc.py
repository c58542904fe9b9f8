"""The gRPC backend: CPR Direkte requests answered by the new services (``kind: grpc``).

A legacy request becomes calls to AuthService, PersonService and
SubscriptionService; the result becomes the exact PRIV or OFF4 answer the
customer's task asks for, rendered by the same code the mainframe emulator uses,
so a modern route answers byte for byte like the legacy one. The checks run in
the mainframe's order (docs/emulator.md); where the modern side decides, its
status codes map to FEJLNR as in docs/routing.md ("gRPC status → FEJLNR").

This is the only module that sees ``grpc.aio.AioRpcError``: statuses that mean
"this backend cannot serve" become BackendError (the client gets 09); statuses
that are answers (NOT_FOUND, UNAUTHENTICATED, ...) become their FEJLNR.

The channel (one per worker process) balances calls over the addresses its target names
or resolves to (``balancing``), pings idle connections (``keepalive``, paired with the
services in :mod:`gateway.backends.grpc_wire`), and every call carries the client's
address, when known, as metadata for the services' allow-list check.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
import grpc.aio

from gateway.backends.batching import Batcher
from gateway.backends.grpc_config import GrpcBackendConfig
from gateway.backends.grpc_wire import (
    CLIENT_ADDRESS_KEY,
    REPEAT_KEY,
    REPEAT_VALUE,
    SESSION_KEY,
    client_keepalive_options,
)
from gateway.codec import (
    LogonAnswer,
    LogonRequest,
    LookupAnswer,
    LookupRequest,
    Record,
    Request,
    customer_number,
    refusal,
)
from gateway.config.schema import ClientTls
from gateway.cprv1 import convert
from gateway.cprv1.pb.cpr.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    person_pb2,
    person_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
)
from gateway.domain.calendar import production_date
from gateway.domain.person import Person, birth_date_of
from gateway.errors import (
    BackendProtocolError,
    BackendTimeout,
    BackendUnauthenticated,
    BackendUnavailable,
    ConfigError,
)
from gateway.model import Family, FejlNr, Operation
from gateway.observe.events import EventBus, ReadsBatched
from gateway.render import render_answer
from gateway.render.task import Task

T = TypeVar("T")
#: Status codes by their number (a batch's ReadFailure carries the number).
_STATUS_OF_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
#: Batched reads: calls on the way at once per worker, and reads per call (services allow 256).
#: One call at a time makes the largest batches, and the services run one call at a time anyway
#: (one event loop): under overload one call answered sooner than two, and each read cost both
#: sides less (docs/benchmarks.md, "Where the time goes, and what was changed": one batch call
#: on the way per worker instead of two). When the services keep up, a read waits at most for
#: the one call on the way.
READ_CALLS_AT_ONCE = 1
READS_PER_CALL = 64
#: Call metadata: the client's address, or nothing when it is not known (and, on some calls,
#: the session as bytes).
Metadata = tuple[tuple[str, str | bytes], ...] | None


#: Statuses that mean "this backend cannot serve now": the client gets 09.
_UNAVAILABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
#: Statuses that are answers; the FEJLNR depends on the call (see _RPC_FEJLNR).
_PERSON_STATUS = {
    grpc.StatusCode.NOT_FOUND: FejlNr.PNR_UNKNOWN,
    grpc.StatusCode.INVALID_ARGUMENT: FejlNr.PNR_MISSING,
    grpc.StatusCode.RESOURCE_EXHAUSTED: FejlNr.NOT_ACTIVE,
}
_AUTH_STATUS = {
    grpc.StatusCode.NOT_FOUND: FejlNr.CUSTOMER_UNKNOWN,
    grpc.StatusCode.PERMISSION_DENIED: FejlNr.TRANSACTION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: FejlNr.NOT_ACTIVE,
}


class Refused(Exception):
    """A call's outcome is an answer with this FEJLNR, not a failure of the backend."""

    def __init__(self, fejlnr: FejlNr) -> None:
        super().__init__(fejlnr.value)
        self.fejlnr = fejlnr


@dataclass(frozen=True, slots=True)
class _Read:
    """One lookup's read, and the metadata its call must carry (its client's address)."""

    request: person_pb2.ReadPersonRequest
    metadata: Metadata


@dataclass(frozen=True, slots=True)
class _Calls:
    """What every gRPC call one request makes shares: its deadline and its metadata."""

    expires: float  # loop time
    metadata: Metadata


class GrpcBackend:
    """CPR Direkte in, gRPC out, CPR Direkte back."""

    def __init__(
        self, config: GrpcBackendConfig, channel: grpc.aio.Channel, bus: EventBus | None = None
    ) -> None:
        self._config = config
        self._channel = channel
        self._bus = bus
        self._auth = auth_pb2_grpc.AuthServiceStub(channel)
        self._persons = person_pb2_grpc.PersonServiceStub(channel)
        self._subscriptions = subscription_pb2_grpc.SubscriptionServiceStub(channel)
        #: Lookups go to PersonService.BatchReadPersons together when calls are on the way;
        #: reads of different clients' addresses never share a call (the call's metadata
        #: carries one address, and the services check each read against it).
        self.reads: Batcher[_Read, person_pb2.ReadPersonResponse] = Batcher(
            self._send_reads,
            name=f"{config.name}: reads",
            calls_at_once=READ_CALLS_AT_ONCE,
            max_items=READS_PER_CALL,
            group=_metadata_of,
        )

    @classmethod
    def from_config(cls, config: GrpcBackendConfig, bus: EventBus | None = None) -> GrpcBackend:
        """Open a channel (connected lazily, so a service that starts later is fine)."""
        target, options = config.target.uri, channel_options(config)
        if config.tls is None:
            return cls(config, grpc.aio.insecure_channel(target, options=options), bus)
        # An ipv4:/ipv6: target's authority is its address list, no name a certificate holds.
        options.append(("grpc.ssl_target_name_override", config.server_name))
        credentials = channel_credentials(config.name, config.tls)
        return cls(config, grpc.aio.secure_channel(target, credentials, options=options), bus)

    @property
    def name(self) -> str:
        """The backend's name from routing.yaml."""
        return self._config.name

    async def aclose(self) -> None:
        """Close the channel (reads on the way get a moment to finish)."""
        await self.reads.aclose()
        await self._channel.close()

    async def call(
        self,
        request: Request,
        raw: bytes,
        *,
        deadline: float,
        origin: str | None = None,
        repeat: bool = False,
    ) -> bytes:
        """The answer bytes for ``request``, built from gRPC calls made within ``deadline``.

        ``origin``, the client's IP address, travels with every call as metadata
        ``x-cpr-client-address`` (the services check their allow-lists against it); a
        ``repeat`` logon carries ``x-cpr-repeat: 1`` too (not counted towards a lock).
        """
        expires = asyncio.get_running_loop().time() + deadline
        metadata = _metadata(origin)
        if repeat:
            metadata = (*(metadata or ()), (REPEAT_KEY, REPEAT_VALUE))
        calls = _Calls(expires, metadata)
        try:
            async with asyncio.timeout(deadline):
                if isinstance(request, LogonRequest):
                    return await self._logon(request, calls)
                return await self._lookup(request, calls)
        except Refused as refused:
            return refusal(request, refused.fejlnr)
        except TimeoutError:
            raise BackendTimeout(f"{self.name}: no answer within {deadline:g}s") from None

    async def _logon(self, request: LogonRequest, calls: _Calls) -> bytes:
        if request.data_type != "0":
            raise Refused(FejlNr.DATA_TYPE_UNKNOWN)
        customer = _customer(request)
        transaction = _transaction(request.transaction)
        if request.operation is Operation.CHANGE_PASSWORD:
            changed = await self._rpc(
                self._auth.ChangePassword,
                auth_pb2.ChangePasswordRequest(
                    customer=customer,
                    user=request.user.strip(),
                    password=request.password,
                    new_password=request.new_password,
                    transaction=transaction,
                ),
                calls,
                _AUTH_STATUS,
            )
            session = changed.session
        else:
            logged_on = await self._rpc(
                self._auth.Logon,
                auth_pb2.LogonRequest(
                    customer=customer,
                    user=request.user.strip(),
                    password=request.password,
                    transaction=transaction,
                ),
                calls,
                _AUTH_STATUS,
            )
            session = logged_on.session
        return LogonAnswer(request.customer, request.user, FejlNr.OK, session).encode()

    async def _lookup(self, request: LookupRequest, calls: _Calls) -> bytes:
        if (unknown := request.unknown_type()) is not None:
            raise Refused(unknown)
        customer = _customer(request)
        session = auth_pb2.ValidateSessionRequest(
            session=request.token,
            customer=customer,
            user=request.user.strip(),
            transaction=_transaction(request.transaction),
        )
        person: person_pb2.Person | None = None
        if request.operation is Operation.LOOKUP and birth_date_of(request.pnr) is not None:
            # A read, the common case: the session check, then the person, in the mainframe's
            # order (PersonService.ReadPerson), batched with the worker's other reads.
            read_request = person_pb2.ReadPersonRequest(session=session, pnr=request.pnr)
            read = await self.reads.submit(_Read(read_request, calls.metadata), calls.expires)
            task, person = read.task, read.person
        else:
            validated = await self._rpc(self._auth.ValidateSession, session, calls, _AUTH_STATUS)
            task = validated.task
            if birth_date_of(request.pnr) is None:
                raise Refused(FejlNr.PNR_MISSING)
            # These calls' messages hold no session: it travels as metadata, so the services
            # can tell a client's call from anyone's (cpr_services.access).
            in_session = _in_session(calls, session)
            await self._change_subscription(request, customer, in_session)
            if request.data_type == "6":
                person = await self._get_person(request, in_session)
        family = Family(request.transaction)  # the session check granted it: PRIV or OFF4
        records: tuple[Record, ...] = ()
        if request.data_type == "6":
            assert person is not None  # read above for every DATA_TYPE 6
            records = render_answer(
                _person(person, self.name),
                family,
                _task(task.SerializeToString()),
                customer,
                production_date(),
            )
        return LookupAnswer.for_request(request, FejlNr.OK, records).encode(family)

    async def _get_person(self, request: LookupRequest, calls: _Calls) -> person_pb2.Person:
        return await self._rpc(
            self._persons.GetPerson,
            person_pb2.GetPersonRequest(pnr=request.pnr),
            calls,
            _PERSON_STATUS,
        )

    async def _change_subscription(
        self, request: LookupRequest, customer: int, calls: _Calls
    ) -> None:
        if request.operation is Operation.SUBSCRIBE:
            await self._rpc(
                self._subscriptions.Create,
                subscription_pb2.CreateSubscriptionRequest(customer=customer, pnr=request.pnr),
                calls,
                _PERSON_STATUS,
            )
        elif request.operation is Operation.UNSUBSCRIBE:
            await self._rpc(
                self._subscriptions.Delete,
                subscription_pb2.DeleteSubscriptionRequest(customer=customer, pnr=request.pnr),
                calls,
                _PERSON_STATUS,
            )

    async def _rpc(
        self,
        method: Callable[..., Awaitable[T]],
        message: object,
        calls: _Calls,
        answers: dict[grpc.StatusCode, FejlNr],
    ) -> T:
        """One call with what is left of the deadline; its status becomes an answer or an error."""
        remaining = calls.expires - asyncio.get_running_loop().time()
        try:
            return await method(message, timeout=max(remaining, 0.001), metadata=calls.metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc, answers) from None

    async def _send_reads(
        self, reads: Sequence[_Read], timeout_s: float
    ) -> list[person_pb2.ReadPersonResponse | Exception]:
        """One BatchReadPersons call (its reads share their metadata: the batcher groups them
        by it); each read's result, or what its refusal means here."""
        batch = person_pb2.BatchReadPersonsRequest(reads=[read.request for read in reads])
        sent = time.perf_counter()
        try:
            reply = await self._persons.BatchReadPersons(
                batch, timeout=timeout_s, metadata=reads[0].metadata
            )
        except grpc.aio.AioRpcError as exc:
            return [self._failed(exc, _PERSON_STATUS) for _ in reads]
        finally:
            if self._bus is not None:
                self._bus.emit(ReadsBatched(self.name, len(reads), time.perf_counter() - sent))
        if len(reply.results) != len(reads):
            problem = f"{self.name}: {len(reply.results)} results for {len(reads)} reads"
            return [BackendProtocolError(problem) for _ in reads]
        return [self._result(result) for result in reply.results]

    def _result(self, result: person_pb2.ReadResult) -> person_pb2.ReadPersonResponse | Exception:
        if result.HasField("read"):
            return result.read
        failure = result.failure
        code = _STATUS_OF_NUMBER.get(failure.code, grpc.StatusCode.UNKNOWN)
        return self._translate(code, failure.outcome or None, _PERSON_STATUS)

    def _failed(
        self, exc: grpc.aio.AioRpcError, answers: dict[grpc.StatusCode, FejlNr]
    ) -> Exception:
        return self._translate(exc.code(), convert.auth_outcome(exc.trailing_metadata()), answers)

    def _translate(
        self,
        code: grpc.StatusCode,
        outcome: convert.Outcome | None,
        answers: dict[grpc.StatusCode, FejlNr],
    ) -> Exception:
        if outcome is not None and outcome in convert.FEJLNR_OF_OUTCOME:
            return Refused(convert.FEJLNR_OF_OUTCOME[outcome])
        if code is grpc.StatusCode.UNAUTHENTICATED:
            # Without an outcome it is the services refusing the gateway itself (no valid
            # session, not its certificate): a configuration problem, not the client's.
            return BackendUnauthenticated(f"{self.name}: the services refused the gateway")
        if code in answers:
            return Refused(answers[code])
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return BackendTimeout(f"{self.name}: deadline exceeded")
        if code in _UNAVAILABLE:
            return BackendUnavailable(f"{self.name}: {code.name.lower()}")
        return BackendProtocolError(f"{self.name}: status {code.name}")


def channel_credentials(name: str, tls: ClientTls) -> grpc.ChannelCredentials:
    """TLS verifying the services against ``tls.ca``, presenting ``tls.cert``/``tls.key``
    (the gateway's identity, mutual TLS) when given; an unreadable file is a ConfigError.

    Read once per channel: the channel is long-lived, so the handshake is paid per
    connection to a replica, never per call.
    """
    files = {"ca": tls.ca, "cert": tls.cert, "key": tls.key}
    read: dict[str, bytes | None] = {}
    for key, path in files.items():
        try:
            read[key] = path.read_bytes() if path is not None else None
        except OSError as exc:
            raise ConfigError([f"backends.{name}.tls.{key}: cannot read: {exc}"]) from None
    return grpc.ssl_channel_credentials(
        root_certificates=read["ca"], private_key=read["key"], certificate_chain=read["cert"]
    )


def channel_options(config: GrpcBackendConfig) -> list[tuple[str, str | int]]:
    """The channel's balancing policy and keepalive (grpc's channel arguments)."""
    policy: dict[str, object] = {"loadBalancingConfig": [{config.balancing.value: {}}]}
    return [
        ("grpc.service_config", json.dumps(policy)),
        # The policy is ours to choose, not a DNS TXT record's.
        ("grpc.service_config_disable_resolution", 1),
        *client_keepalive_options(config.keepalive),
    ]


def _in_session(calls: _Calls, session: auth_pb2.ValidateSessionRequest) -> _Calls:
    """``calls`` with the session they are made in as metadata (grpc_wire.SESSION_KEY)."""
    sent = (SESSION_KEY, session.SerializeToString())
    return _Calls(calls.expires, (*(calls.metadata or ()), sent))


def _metadata(origin: str | None) -> Metadata:
    return None if origin is None else ((CLIENT_ADDRESS_KEY, origin),)


def _metadata_of(read: _Read) -> Metadata:
    """The batcher's group of a read: reads of one client address may share a call."""
    return read.metadata


def _customer(request: Request) -> int:
    """KUNDENR as a number; one that is not a number is an unknown customer (06)."""
    number = customer_number(request.customer)
    if number is None:
        raise Refused(FejlNr.CUSTOMER_UNKNOWN)
    return number


def _transaction(code: str) -> convert.Transaction:
    try:
        return convert.transaction_of(Family(code))
    except ValueError:
        return auth_pb2.TRANSACTION_UNSPECIFIED  # never granted: the service answers 14


@functools.lru_cache(maxsize=64)
def _task(serialized: bytes) -> Task:
    """The task a read carries: every read of a customer carries the same, converted once."""
    return convert.to_task(auth_pb2.Task.FromString(serialized))


def _person(message: person_pb2.Person, backend: str) -> Person:
    try:
        return convert.to_person(message)
    except ValueError as exc:
        raise BackendProtocolError(f"{backend}: not a valid person: {exc}") from None

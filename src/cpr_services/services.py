"""The cpr.v1 servicers (grpc.aio): PersonService, SubscriptionService and AuthService.

PersonService.ReadPerson is ValidateSession and GetPerson in one call, for the
gateway's lookups; it checks the session with the AuthService servicer's own method.
BatchReadPersons is ReadPerson for several reads in one call: the same checks, run
with a :class:`_ReadContext` whose abort ends one read (its status becomes that
read's ReadFailure) instead of the call.

Every call first refuses a deadline that has already passed, then waits the
injected ``delay`` (fault injection for tests and demos: a slow backend), then
does one short store operation on the event loop's thread. A call whose
deadline passes, or whose caller goes away, is cancelled by grpc wherever it
awaits; :attr:`Pace.cancelled` counts those.

AuthService applies the emulator's rules with the emulator's own code
(:class:`~cpr_accounts.auth.Authenticator` for password digests, the §7
password rules, history, 90-day expiry and the lock after 5 failures;
the rules of :mod:`cpr_accounts.tokens` for 8-character tokens and idle
expiry, kept in the store by the server so that replicas share them), in the
emulator's order. Outcomes map to status codes as the table in
``proto/cpr/v1/auth.proto`` says; a failed call also carries its
:class:`AuthOutcome` in trailing metadata (:func:`gateway.cprv1.convert.auth_outcome`
reads it), because UNAUTHENTICATED and PERMISSION_DENIED each stand for two FEJLNR.

Every check of a customer's allow-list (16) uses the caller's address: the peer's own, or,
when the peer is a trusted gateway (``trusted_gateways``), the client address the gateway sends
as metadata ``x-cpr-client-address`` (:mod:`gateway.backends.grpc_wire`). Metadata from any
other peer is ignored: anyone could send it.

Status details are short facts and never hold a PNR, password or token.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn, Protocol, TypeVar, cast

import grpc
import structlog
from google.protobuf.message import DecodeError

from cpr_accounts.auth import Authenticator
from cpr_accounts.clock import Clock
from cpr_accounts.customers import Customer, Directory, IPAddress, IPNetwork, User
from cpr_accounts.tokens import SessionTokens
from cpr_services.access import is_gateway_repeat
from cpr_services.drift import Drift
from cpr_services.store import ModernStore
from gateway.backends.grpc_wire import CLIENT_ADDRESS_KEY
from gateway.cprv1 import convert
from gateway.cprv1.pb.cpr.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    person_pb2,
    person_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
)
from gateway.domain.person import birth_date_of
from gateway.errors import BackendUnavailable
from gateway.model import FejlNr
from gateway.render.task import Task

_log = structlog.get_logger("cpr_services")
AuthOutcome = auth_pb2.AuthOutcome
_Handler = TypeVar("_Handler", bound=Callable[..., Awaitable[Any]])
_Context = grpc.aio.ServicerContext[Any, Any]
#: Reads one BatchReadPersons call may carry (person.proto).
MAX_BATCH_READS = 256
#: The services as migrated: no drift (see :mod:`cpr_services.drift`).
NO_DRIFT = Drift()

#: Status code of each failed AuthService outcome (the table in auth.proto).
STATUS_OF_OUTCOME: dict[convert.Outcome, grpc.StatusCode] = {
    auth_pb2.AUTH_OUTCOME_BAD_CREDENTIALS: grpc.StatusCode.UNAUTHENTICATED,
    auth_pb2.AUTH_OUTCOME_PASSWORD_EXPIRED: grpc.StatusCode.FAILED_PRECONDITION,
    auth_pb2.AUTH_OUTCOME_PASSWORD_RULES: grpc.StatusCode.INVALID_ARGUMENT,
    auth_pb2.AUTH_OUTCOME_CUSTOMER_UNKNOWN: grpc.StatusCode.NOT_FOUND,
    auth_pb2.AUTH_OUTCOME_SESSION_INVALID: grpc.StatusCode.UNAUTHENTICATED,
    auth_pb2.AUTH_OUTCOME_TRANSACTION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    auth_pb2.AUTH_OUTCOME_ADDRESS_DENIED: grpc.StatusCode.PERMISSION_DENIED,
}
_DETAILS: dict[convert.Outcome, str] = {
    auth_pb2.AUTH_OUTCOME_BAD_CREDENTIALS: "user id or password incorrect",
    auth_pb2.AUTH_OUTCOME_PASSWORD_EXPIRED: "password expired; a new password is required",
    auth_pb2.AUTH_OUTCOME_PASSWORD_RULES: "new password does not meet the rules",
    auth_pb2.AUTH_OUTCOME_CUSTOMER_UNKNOWN: "unknown customer number",
    auth_pb2.AUTH_OUTCOME_SESSION_INVALID: "session unknown or expired; log on again",
    auth_pb2.AUTH_OUTCOME_TRANSACTION_DENIED: "transaction not granted to this user",
    auth_pb2.AUTH_OUTCOME_ADDRESS_DENIED: "caller address not allowed for this customer",
}
_OUTCOME_OF_FEJLNR = {fejlnr: outcome for outcome, fejlnr in convert.FEJLNR_OF_OUTCOME.items()}


class Pace:
    """What every call does before its work: refuse a spent deadline, wait the injected delay."""

    def __init__(self, delay: float = 0.0) -> None:
        #: Seconds each call waits before its work (0 in production).
        self.delay = delay
        #: Calls cancelled mid-way since start: deadline passed or caller gone.
        self.cancelled = 0
        #: Calls started since start (a batch of reads is one).
        self.calls = 0

    async def start(self, context: _Context) -> None:
        """Abort with DEADLINE_EXCEEDED if no time is left; then wait ``delay``."""
        self.calls += 1
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed on arrival")
        if self.delay > 0:
            await asyncio.sleep(self.delay)


def _rpc(handler: _Handler) -> _Handler:
    """Wrap a servicer method: pace it, count its cancellation, a dead store → UNAVAILABLE."""

    @functools.wraps(handler)
    async def call(self: _Servicer, request: Any, context: _Context) -> Any:
        try:
            await self.pace.start(context)
            return await handler(self, request, context)
        except asyncio.CancelledError:
            self.pace.cancelled += 1
            raise
        except BackendUnavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "modern store unavailable")

    return cast(_Handler, call)


class _Servicer:
    pace: Pace


class CallContext(Protocol):
    """What the checks use of a call: the caller's address and metadata, the time left, abort.

    A grpc.aio context is one; so is :class:`_ReadContext`, one read of a batch.
    """

    def peer(self) -> str: ...

    def invocation_metadata(self) -> Iterable[tuple[str, str | bytes]] | None: ...

    def time_remaining(self) -> float | None: ...

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: tuple[tuple[str, bytes], ...] = (),
    ) -> NoReturn: ...


class ReadRefused(Exception):
    """One read of a batch ended as a ReadPerson call would have; the batch goes on."""

    def __init__(self, failure: person_pb2.ReadFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class _ReadContext:
    """The context each read of a BatchReadPersons call sees: the call's caller and deadline,
    but an abort ends only this read, with the status ReadPerson would have ended with."""

    def __init__(self, call: _Context) -> None:
        self._call = call

    def peer(self) -> str:
        return self._call.peer()

    def invocation_metadata(self) -> Iterable[tuple[str, str | bytes]] | None:
        return self._call.invocation_metadata()

    def time_remaining(self) -> float | None:
        return self._call.time_remaining()

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: tuple[tuple[str, bytes], ...] = (),
    ) -> NoReturn:
        outcome = convert.auth_outcome(trailing_metadata) or auth_pb2.AUTH_OUTCOME_UNSPECIFIED
        number = code.value[0]
        raise ReadRefused(person_pb2.ReadFailure(code=number, message=details, outcome=outcome))


#: Checks a session as AuthService.ValidateSession does; the customer's task, or the call ends.
Authorize = Callable[[auth_pb2.ValidateSessionRequest, CallContext], Awaitable[auth_pb2.Task]]


class PersonServicer(_Servicer, person_pb2_grpc.PersonServiceServicer):
    """GetPerson: the person with a PNR, from the modern store; ReadPerson: the same for a
    session, checked by ``authorize`` (:meth:`AuthServicer.authorize`) in the same call."""

    def __init__(
        self, store: ModernStore, pace: Pace, authorize: Authorize, drift: Drift = NO_DRIFT
    ) -> None:
        self._store = store
        self.pace = pace
        self._authorize = authorize
        self._drift = drift

    @_rpc
    async def GetPerson(  # noqa: N802 (the proto's method name)
        self, request: person_pb2.GetPersonRequest, context: _Context
    ) -> person_pb2.Person:
        """The person, NOT_FOUND (05) or INVALID_ARGUMENT (17)."""
        person = person_pb2.Person()
        await self._person(request.pnr, context, person)
        return person

    @_rpc
    async def ReadPerson(  # noqa: N802 (the proto's method name)
        self, request: person_pb2.ReadPersonRequest, context: _Context
    ) -> person_pb2.ReadPersonResponse:
        """ValidateSession's answer and checks (06, 16, 07, 14), then GetPerson's (17, 05)."""
        response = person_pb2.ReadPersonResponse()
        await self._read(request, context, response)
        return response

    @_rpc
    async def BatchReadPersons(  # noqa: N802 (the proto's method name)
        self, request: person_pb2.BatchReadPersonsRequest, context: _Context
    ) -> person_pb2.BatchReadPersonsResponse:
        """ReadPerson for each read in order; a read's refusal is its result, not the call's."""
        if len(request.reads) > MAX_BATCH_READS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"more than {MAX_BATCH_READS} reads in one call"
            )
        response = person_pb2.BatchReadPersonsResponse()
        one = _ReadContext(context)
        for read in request.reads:
            result = response.results.add()
            try:
                await self._read(read, one, result.read)
            except ReadRefused as refused:
                result.failure.CopyFrom(refused.failure)  # and the partial read is dropped
        return response

    async def _read(
        self,
        request: person_pb2.ReadPersonRequest,
        context: CallContext,
        into: person_pb2.ReadPersonResponse,
    ) -> None:
        into.task.CopyFrom(await self._authorize(request.session, context))
        await self._person(request.pnr, context, into.person)

    async def _person(self, pnr: str, context: CallContext, into: person_pb2.Person) -> None:
        """Fill ``into`` with the person; INVALID_ARGUMENT (17), NOT_FOUND (05) or INTERNAL."""
        await _check_pnr(pnr, context)
        try:
            found = self._stored(pnr, into)
        except (ValueError, DecodeError):
            await context.abort(grpc.StatusCode.INTERNAL, "stored person does not decode")
        if not found:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no person with this PNR")

    def _stored(self, pnr: str, into: person_pb2.Person) -> bool:
        """Fill ``into`` from the store's message as it is; False when there is no such person.

        Drift works on the model, so a drifting service goes the long way round.
        """
        if self._drift.changes_persons:
            person = self._store.get(pnr)
            if person is None:
                return False
            into.CopyFrom(convert.to_proto(self._drift.apply(person)))
            return True
        stored = self._store.person_message(pnr)
        if stored is None:
            return False
        into.MergeFromString(stored)
        return True


class SubscriptionServicer(_Servicer, subscription_pb2_grpc.SubscriptionServiceServicer):
    """Create / Delete: idempotent PNR subscriptions, committed before the answer."""

    def __init__(self, store: ModernStore, pace: Pace, clock: Clock) -> None:
        self._store = store
        self.pace = pace
        self._clock = clock

    @_rpc
    async def Create(  # noqa: N802 (the proto's method name)
        self, request: subscription_pb2.CreateSubscriptionRequest, context: _Context
    ) -> subscription_pb2.CreateSubscriptionResponse:
        """Subscribe; ``created`` is False when the subscription existed."""
        await self._check(request.customer, request.pnr, context)
        created = self._store.subscribe(request.customer, request.pnr, self._clock())
        return subscription_pb2.CreateSubscriptionResponse(created=created)

    @_rpc
    async def Delete(  # noqa: N802 (the proto's method name)
        self, request: subscription_pb2.DeleteSubscriptionRequest, context: _Context
    ) -> subscription_pb2.DeleteSubscriptionResponse:
        """Unsubscribe; ``deleted`` is False when there was none."""
        await self._check(request.customer, request.pnr, context)
        deleted = self._store.unsubscribe(request.customer, request.pnr)
        return subscription_pb2.DeleteSubscriptionResponse(deleted=deleted)

    async def _check(self, customer: int, pnr: str, context: _Context) -> None:
        if not 1 <= customer <= 9999:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "customer is not 1-9999")
        await _check_pnr(pnr, context)
        if not self._store.contains(pnr):
            await context.abort(grpc.StatusCode.NOT_FOUND, "no person with this PNR")


class AuthServicer(_Servicer, auth_pb2_grpc.AuthServiceServicer):
    """Logon, ChangePassword, ValidateSession: the emulator's rules, in its order."""

    def __init__(
        self,
        config: Directory,
        auth: Authenticator,
        sessions: SessionTokens,
        pace: Pace,
        clock: Clock,
        *,
        drift: Drift = NO_DRIFT,
        trusted_gateways: tuple[IPNetwork, ...] = (),
        gateway_identities: frozenset[str] = frozenset(),
    ) -> None:
        """``trusted_gateways``: peers whose ``x-cpr-client-address`` the allow-lists use;
        ``gateway_identities``: client certificate names whose marked repeats of a logon do
        not count towards a user's lock (cpr_services.access)."""
        self._gateway_identities = gateway_identities
        self._config = config
        self._auth = auth
        self._sessions = sessions
        self.pace = pace
        self._clock = clock
        self._drift = drift
        self._trusted_gateways = trusted_gateways

    @_rpc
    async def Logon(  # noqa: N802 (the proto's method name)
        self, request: auth_pb2.LogonRequest, context: _Context
    ) -> auth_pb2.LogonResponse:
        """A session, or 06, 16, 01, 14, 02 (first failing check decides)."""
        customer, user = await self._authenticate(request, context)
        now = self._clock()
        verdict = await self._auth.renew(customer.number, user.id, "", now)
        await _fail_unless_ok(verdict, context)
        return auth_pb2.LogonResponse(session=self._sessions.issue(customer.number, user.id, now))

    @_rpc
    async def ChangePassword(  # noqa: N802 (the proto's method name)
        self, request: auth_pb2.ChangePasswordRequest, context: _Context
    ) -> auth_pb2.ChangePasswordResponse:
        """The password changed and a session, or 06, 16, 01, 14, 03."""
        customer, user = await self._authenticate(request, context)
        if not request.new_password:
            await _fail(auth_pb2.AUTH_OUTCOME_PASSWORD_RULES, context)
        now = self._clock()
        verdict = await self._auth.renew(customer.number, user.id, request.new_password, now)
        await _fail_unless_ok(verdict, context)
        session = self._sessions.issue(customer.number, user.id, now)
        return auth_pb2.ChangePasswordResponse(session=session)

    @_rpc
    async def ValidateSession(  # noqa: N802 (the proto's method name)
        self, request: auth_pb2.ValidateSessionRequest, context: _Context
    ) -> auth_pb2.ValidateSessionResponse:
        """The customer's task, or 06, 16, 07, 14; a valid session's idle time restarts."""
        return auth_pb2.ValidateSessionResponse(task=await self.authorize(request, context))

    async def authorize(
        self, request: auth_pb2.ValidateSessionRequest, context: CallContext
    ) -> auth_pb2.Task:
        """ValidateSession without its own call: PersonService.ReadPerson checks with it."""
        customer = await self._customer(request.customer, context)
        user = customer.user(request.user)
        now = self._clock()
        if user is None or not self._sessions.use(request.session, customer.number, user.id, now):
            await _fail(auth_pb2.AUTH_OUTCOME_SESSION_INVALID, context)
        await _check_grant(user, request.transaction, context)
        return auth_pb2.Task.FromString(_task_message(self._drift.apply_task(customer.task)))

    async def _authenticate(
        self, request: auth_pb2.LogonRequest | auth_pb2.ChangePasswordRequest, context: _Context
    ) -> tuple[Customer, User]:
        """The customer and user after 06, 16, 01 and 14 have been ruled out."""
        customer = await self._customer(request.customer, context)
        user = customer.user(request.user)
        if user is None:  # as slow as a known user's check: ids cannot be probed by timing
            await self._auth.refuse(request.password)
        # The gateway repeating a logon the client made on another side: the password may
        # differ here, and that is no guess by the user (docs/sessions.md).
        counted = not is_gateway_repeat(context, self._gateway_identities)
        verified = user is not None and await self._auth.verify(
            customer.number, user.id, request.password, count_failure=counted
        )
        if user is None or not verified:
            await _fail(auth_pb2.AUTH_OUTCOME_BAD_CREDENTIALS, context)
        await _check_grant(user, request.transaction, context)
        return customer, user

    async def _customer(self, number: int, context: CallContext) -> Customer:
        """The customer, after 06 (unknown) and 16 (caller outside its networks)."""
        customer = self._config.customer(number)
        if customer is None:
            await _fail(auth_pb2.AUTH_OUTCOME_CUSTOMER_UNKNOWN, context)
        caller = caller_address(context, self._trusted_gateways)
        if caller is None or not customer.allows(caller):
            await _fail(auth_pb2.AUTH_OUTCOME_ADDRESS_DENIED, context)
        return customer


@functools.lru_cache(maxsize=64)
def _task_message(task: Task) -> bytes:
    """A customer's task as sent with every read: the same few tasks, converted once each."""
    return convert.task_to_proto(task).SerializeToString()


@functools.lru_cache(maxsize=1024)  # a caller's channel keeps its address and port
def peer_address(peer: str) -> IPAddress | None:
    """The IP address in a grpc peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``), or None."""
    kind, _, rest = urllib.parse.unquote(peer).partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None  # e.g. a unix socket: no address to check, so never allowed
    host = rest.rpartition(":")[0].strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def caller_address(context: CallContext, trusted: tuple[IPNetwork, ...]) -> IPAddress | None:
    """The address a call's allow-list check uses; None when there is none to check.

    The peer's own, unless the peer is in ``trusted`` and sent exactly one client address in
    metadata: then that one (one that is not an IP address is None, so the call is denied).
    """
    peer = peer_address(context.peer())
    if peer is None or not any(peer in network for network in trusted):
        return peer
    sent = [
        value for key, value in context.invocation_metadata() or () if key == CLIENT_ADDRESS_KEY
    ]
    if not sent:
        return peer  # the gateway does not know its client's address: its own is checked
    client = _client_address(sent[0]) if len(sent) == 1 else None
    if client is None:
        shown = [repr(value)[:48] for value in sent]  # what the gateway sent, never much of it
        _log.warning("client address from a trusted gateway refused", gateway=str(peer), sent=shown)
    return client


@functools.lru_cache(maxsize=1024)  # a gateway's clients are a few systems each
def _client_address(text: str | bytes) -> IPAddress | None:
    """An IP address sent as text (no port), or None."""
    try:
        return ipaddress.ip_address(text) if isinstance(text, str) else None
    except ValueError:
        return None


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``CIDR[,CIDR]`` (``--trusted-gateways``) as networks; empty text is none.

    ValueError names the part that is not a network (host bits set count as a mistake).
    """
    networks: list[IPNetwork] = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(part, strict=True))
        except ValueError as exc:
            raise ValueError(f"{part!r} is not a network: {exc}") from None
    return tuple(networks)


async def _check_pnr(pnr: str, context: CallContext) -> None:
    if birth_date_of(pnr) is None:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, "pnr is not 10 digits starting with a date"
        )


async def _check_grant(user: User, transaction: convert.Transaction, context: CallContext) -> None:
    family = convert.family_of(transaction)
    if family is None or family not in user.grants:
        await _fail(auth_pb2.AUTH_OUTCOME_TRANSACTION_DENIED, context)


async def _fail_unless_ok(verdict: FejlNr, context: CallContext) -> None:
    if verdict is not FejlNr.OK:
        await _fail(_OUTCOME_OF_FEJLNR[verdict], context)


async def _fail(outcome: convert.Outcome, context: CallContext) -> NoReturn:
    """End the call with the outcome's status code and the outcome in trailing metadata."""
    await context.abort(
        STATUS_OF_OUTCOME[outcome], _DETAILS[outcome], trailing_metadata=convert.auth_error(outcome)
    )

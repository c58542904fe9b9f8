"""One request, start to answer: route it, call the primary backend, answer 09 if it fails.

The deadline is the route's; the backend applies it to connect, write and read
together. Whatever happens, the client gets an answer built by the codec, and
the bus hears about it as typed events.

Tokens are brokered between sides (docs/sessions.md, :mod:`gateway.sessions.table`):
a successful logon is repeated on every other routed backend and their tokens
remembered; a later request carries the token of the side it is routed to.

A decision that names shadows is handed to the :class:`~gateway.shadow.runner.ShadowRunner`
after the answer is final and the request's event emitted: shadows never delay or
change the client's answer. A copy holds its backend's lease like a request does.

A reload swaps the route table and backends in one assignment (:meth:`Dispatcher.swap`);
each request keeps the pair it started with. A backend the new config no longer
has is closed once the last request using it has finished, never under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

from gateway.backends.base import Backend
from gateway.codec import (
    LogonRequest,
    LookupRequest,
    Request,
    customer_number,
    refusal,
    user_id,
)
from gateway.codec.messages import (
    answer_fejlnr,
    answer_token,
    answer_with_token,
    request_with_token,
)
from gateway.comparison import ShadowPolicy
from gateway.config.shadows import shadow_policies
from gateway.errors import BackendError, BackendProtocolError, BackendTimeout, BackendUnavailable
from gateway.model import FejlNr, Operation
from gateway.observe.events import BackendFailed, EventBus, RequestCompleted, SessionEvent
from gateway.routing import Decision, RouteTable
from gateway.runtime.tasks import TaskSet
from gateway.sessions.peers import SessionPeers
from gateway.sessions.table import Session, SessionBroker
from gateway.shadow.runner import ShadowJob, ShadowRunner

#: Metric label for each kind of backend failure.
_ERROR_KINDS: Mapping[type[BackendError], str] = {
    BackendUnavailable: "unavailable",
    BackendTimeout: "timeout",
    BackendProtocolError: "protocol",
}
_OK = FejlNr.OK.value.encode()
_NEW_LOGON = FejlNr.NEW_LOGON.value.encode()
#: Idle time after which a brokered session is forgotten: the mainframe's token expiry.
SESSION_IDLE_S = 30 * 60.0
#: Shutdown waits this long for backends to close; each adapter bounds its own close, so
#: this only guards against one that does not.
_CLOSE_TIMEOUT_S = 5.0


@dataclass(eq=False, slots=True)
class _Lease:
    """A backend and the requests using it; closed once retired and idle."""

    backend: Backend
    in_flight: int = 0
    retired: bool = False


@dataclass(frozen=True, slots=True)
class _Routing:
    """What one request routes with: replaced whole, never changed in place."""

    table: RouteTable
    leases: Mapping[str, _Lease]
    #: How each shadowed route is shadowed, by route name: built with the table, once.
    policies: Mapping[str, ShadowPolicy]

    @property
    def session_sides(self) -> frozenset[str]:
        """Backends any route sends requests or copies to: a logon is repeated on each."""
        routes = self.table.routes
        return frozenset(b for route in routes for b in (*route.backends, *route.copy_backends))


class Dispatcher:
    """Routes requests to backends; shared by every connection."""

    def __init__(
        self,
        table: RouteTable,
        backends: Mapping[str, Backend],
        bus: EventBus,
        clock: Callable[[], float] = time.perf_counter,
        sessions: SessionBroker | None = None,
        *,
        shadows: ShadowRunner | None = None,
        peers: SessionPeers | None = None,
    ) -> None:
        leases = {name: _Lease(b) for name, b in backends.items()}
        self._routing = _Routing(table, leases, shadow_policies(table.routes))
        self._bus = bus
        self._clock = clock
        self._closing = TaskSet()
        # Not ``sessions or ...``: an empty broker is falsy (it has a length).
        self.sessions = (
            sessions
            if sessions is not None
            else SessionBroker(idle_s=SESSION_IDLE_S, clock=time.monotonic)
        )
        #: Where shadow copies go; None: decisions' shadows are ignored.
        self.shadows = shadows
        #: The sibling workers asked for sessions this one has not seen (``--workers``).
        self._peers = peers

    @property
    def table(self) -> RouteTable:
        """The route table new requests are routed with."""
        return self._routing.table

    @property
    def backends(self) -> Mapping[str, Backend]:
        """The backends new requests may reach, by name."""
        return {name: lease.backend for name, lease in self._routing.leases.items()}

    def swap(self, table: RouteTable, backends: Mapping[str, Backend]) -> None:
        """Route new requests with ``table`` and ``backends``; requests in flight carry on.

        A backend object given again (the same instance) is kept with its requests
        in flight; every other current backend is retired and closed once idle.
        """
        old = self._routing
        kept = {id(lease.backend): lease for lease in old.leases.values()}
        leases = {name: kept.get(id(b)) or _Lease(b) for name, b in backends.items()}
        self._routing = _Routing(table, leases, shadow_policies(table.routes))
        still_used = {id(lease) for lease in leases.values()}
        for lease in old.leases.values():
            if id(lease) not in still_used:
                self._retire(lease)

    async def aclose(self) -> None:
        """Close every backend; call after the listener has drained."""
        for lease in self._routing.leases.values():
            self._retire(lease)
        await self._closing.drain(_CLOSE_TIMEOUT_S, "shutdown: backend close too slow")

    async def handle(self, request: Request, raw: bytes, *, peer: str) -> bytes:
        """The answer bytes for one framed request (``raw`` is what the client sent)."""
        started = self._clock()
        routing = self._routing  # one table and one set of backends for the whole request
        decision = routing.table.route(request)
        if isinstance(request, LogonRequest):
            answer, error = await self._logon(routing, decision, request, raw)
        else:
            decision, answer, error = await self._brokered(routing, decision, request, raw)
        self._bus.emit(
            RequestCompleted(
                peer=peer,
                operation=request.operation,
                route=decision.route,
                backend=decision.backend,
                fejlnr=answer_fejlnr(answer).decode("ascii"),
                duration_s=self._clock() - started,
                error=error,
            )
        )
        if decision.shadows and not error and self.shadows is not None:
            # The answer is final: the copies run after it, against the same backends.
            call = functools.partial(self._copy, routing)
            policy = routing.policies[decision.route]
            shadowed, noise = decision.shadows, decision.noise
            job = ShadowJob(policy, decision.backend, shadowed, noise, request, raw, answer, call)
            self.shadows.submit(job)
        return answer

    async def _logon(
        self, routing: _Routing, decision: Decision, request: LogonRequest, raw: bytes
    ) -> tuple[bytes, str]:
        """Log on at the routed side; on success repeat it on the others and open a session."""
        answer, error = await self._leased(routing, decision, request, raw)
        if answer_fejlnr(answer) != _OK:
            return answer, error
        others = routing.session_sides - {decision.backend}
        tokens = await self._fan_out(routing, decision, _plain_logon(request), others)
        customer = customer_number(request.customer)
        home_token = answer_token(answer)
        self.sessions.open(home_token, customer, user_id(request.user), decision.backend, tokens)
        self._bus.emit(SessionEvent("opened", decision.backend))
        return answer, error

    async def _fan_out(
        self, routing: _Routing, decision: Decision, logon: LogonRequest, sides: frozenset[str]
    ) -> dict[str, str]:
        """The token each other side gives the same logon; the password is not kept."""
        raw = logon.encode()

        async def one(side: str) -> tuple[str, str | None]:
            answer, _error = await self._leased(
                routing, replace(decision, backend=side), logon, raw
            )
            if answer_fejlnr(answer) == _OK:
                return side, answer_token(answer)
            self._bus.emit(SessionEvent("side_logon_failed", side))
            return side, None

        results = await asyncio.gather(*(one(side) for side in sorted(sides)))
        return {side: token for side, token in results if token}

    async def _brokered(
        self, routing: _Routing, decision: Decision, request: LookupRequest, raw: bytes
    ) -> tuple[Decision, bytes, str]:
        """Call the routed side with its own token for this session; answer with the client's."""
        client_token = request.token
        session = await self._session(routing, request)
        token = client_token  # a session the gateway does not know: the side decides
        if session is not None:
            side_token = session.token_for(decision.backend)
            if side_token is None and request.operation is Operation.LOOKUP:
                self._bus.emit(SessionEvent("fallback", decision.backend))
                decision = replace(decision, backend=session.home)
                side_token = client_token
            token = side_token or client_token
        if token != client_token:
            raw = request_with_token(raw, token)
            request = replace(request, token=token)
        answer, error = await self._leased(routing, decision, request, raw)
        if session is not None and answer_fejlnr(answer) == _NEW_LOGON:
            self.sessions.forget(client_token, decision.backend)
            self._bus.emit(SessionEvent("side_expired", decision.backend))
        if token != client_token:
            answer = answer_with_token(answer, client_token)
        return decision, answer, error

    async def _session(self, routing: _Routing, request: LookupRequest) -> Session | None:
        """The request's session: this worker's, or a sibling's copied here (sessions.peers).

        Siblings are asked only when a route reaches more than one side: otherwise the token
        always passes through unchanged and no session is needed.
        """
        customer, user = customer_number(request.customer), user_id(request.user)
        session = self.sessions.find(request.token, customer, user)
        if session is not None or self._peers is None or len(routing.session_sides) < 2:
            return session
        if await self._peers.fetch(request.token):
            return self.sessions.find(request.token, customer, user)
        return None

    async def _leased(
        self, routing: _Routing, decision: Decision, request: Request, raw: bytes
    ) -> tuple[bytes, str]:
        """Call the decided backend holding its lease, so a reload cannot close it under us."""
        with self._lease(routing, decision.backend) as backend:
            return await self._call(backend, decision, request, raw)

    async def _copy(
        self, routing: _Routing, name: str, request: Request, raw: bytes, deadline: float
    ) -> bytes:
        """A shadow copy's call: leased like a request; BackendError is the runner's to count."""
        with self._lease(routing, name) as backend:
            return await backend.call(request, raw, deadline=deadline)

    @contextlib.contextmanager
    def _lease(self, routing: _Routing, name: str) -> Iterator[Backend]:
        lease = routing.leases[name]
        lease.in_flight += 1
        try:
            yield lease.backend
        finally:
            lease.in_flight -= 1
            if lease.retired and lease.in_flight == 0:
                self._close(lease)

    async def _call(
        self, backend: Backend, decision: Decision, request: Request, raw: bytes
    ) -> tuple[bytes, str]:
        """The backend's answer, or 09 and why; a backend failure is never the client's."""
        try:
            return await backend.call(request, raw, deadline=decision.deadline), ""
        except BackendError as exc:
            kind = _ERROR_KINDS.get(type(exc), "other")
            self._bus.emit(BackendFailed(backend.name, decision.route, kind, str(exc)))
            return refusal(request, exc.wire), str(exc)

    def _retire(self, lease: _Lease) -> None:
        if lease.retired:
            return
        lease.retired = True
        if lease.in_flight == 0:
            self._close(lease)

    def _close(self, lease: _Lease) -> None:
        self._closing.spawn(lease.backend.aclose(), name=f"close-backend:{lease.backend.name}")


def _plain_logon(request: LogonRequest) -> LogonRequest:
    """The logon other sides get: a password change happened on the routed side only, so
    they are asked to log on with the new password, never to change theirs (a write goes
    to exactly one side)."""
    if request.operation is Operation.CHANGE_PASSWORD:
        return replace(request, password=request.new_password.ljust(8), new_password="")
    return request

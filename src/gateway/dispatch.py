"""One request, start to answer: route it, call the primary backend, answer 09 if it fails.

The deadline is the route's; the backend applies it to connect, write and read
together. Whatever happens, the client gets an answer built by the codec, and
the bus hears about it as typed events.

Tokens are brokered between sides (docs/sessions.md, :mod:`gateway.sessions.broker`):
a successful logon is repeated on every other routed backend and their tokens
remembered; a later request carries the token of the side it is routed to.

A decision that names shadows is handed to the :class:`~gateway.shadow.runner.ShadowRunner`
after the answer is final and the request's event emitted: shadows never delay or
change the client's answer. The job carries the backends the request was routed
with, and a copy holds its backend's lease like a request does.

A canary route's lookup that its candidate fails is asked of the route's primary, within the
plan's retry budget (docs/canary.md, "Read fallback"); a write never is. A logon, its guard and
its repeats on the other sides are :class:`~gateway.sessions.fan_out.LogonFanOut`'s.

A reload swaps the route table and backends in one assignment (:meth:`Dispatcher.swap`);
each request keeps the pair it started with. A backend the new config no longer
has is closed once the last request using it has finished, never under it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from gateway.backends.base import Backend
from gateway.backends.retry_budget import RetryBudget
from gateway.codec import (
    FramedRequest,
    LogonRequest,
    LookupRequest,
    Request,
    refusal,
)
from gateway.codec.headers import answer_fejlnr
from gateway.comparison import ShadowPolicy
from gateway.config.schema import Route, Sessions
from gateway.config.shadows import shadow_policies
from gateway.errors import BackendError
from gateway.model import FejlNr, Operation
from gateway.observe.events import (
    BackendFailed,
    EventBus,
    LookupAnswered,
    ReadFallback,
    RequestCompleted,
    SessionEvent,
)
from gateway.routing import Decision, RouteTable
from gateway.runtime.tasks import TaskSet
from gateway.sessions.broker import for_client, route_in_session, session_of
from gateway.sessions.fan_out import LogonFanOut
from gateway.sessions.logon_guard import LogonGuard
from gateway.sessions.shared import SharedSessions
from gateway.sessions.table import Session, SessionBroker
from gateway.shadow.runner import ShadowJob, ShadowRunner

_OK = FejlNr.OK.value.encode()
_NEW_LOGON = FejlNr.NEW_LOGON.value.encode()
#: Shutdown waits this long for backends to close; each adapter bounds its own close, so
#: this only guards against one that does not.
_CLOSE_TIMEOUT_S = 5.0


@dataclass(eq=False, slots=True)
class _Lease:
    """A backend and the requests using it; closed once retired and idle."""

    backend: Backend
    #: Where its close runs (the dispatcher's, drained at shutdown).
    closing: TaskSet
    in_flight: int = 0
    retired: bool = False

    def __enter__(self) -> Backend:
        """The backend, counted as in use until the block ends (a reload cannot close it).
        The lease is its own context manager: a generator-based one cost every request
        four more Python calls and a generator."""
        self.in_flight += 1
        return self.backend

    def __exit__(self, *exc: object) -> None:
        self.in_flight -= 1
        if self.retired and self.in_flight == 0:
            self._close()

    def retire(self) -> None:
        """No new request will use it: close it now if idle, else when the last one ends."""
        if self.retired:
            return
        self.retired = True
        if self.in_flight == 0:
            self._close()

    def _close(self) -> None:
        self.closing.spawn(self.backend.aclose(), name=f"close-backend:{self.backend.name}")


@dataclass(frozen=True, slots=True)
class _Canary:
    """What a canary route's read fallback needs: who answers instead, and within what."""

    primary: str
    candidate: str
    #: ``canary.fallback.retry_budget``: 0 is off.
    retry_budget: float


@dataclass(frozen=True, slots=True)
class _Routing:
    """What one request routes with: replaced whole, never changed in place.

    It is also the :class:`~gateway.shadow.runner.CopyBackends` a shadow job carries:
    a copy goes to the backends its request was routed with, even after a reload.
    """

    table: RouteTable
    leases: Mapping[str, _Lease]
    #: How each shadowed route is shadowed, by route name.
    policies: Mapping[str, ShadowPolicy]
    #: Backends any route sends requests or copies to: a logon is repeated on each.
    session_sides: frozenset[str]
    #: The canary routes whose failed candidate reads may be asked of the primary, by name.
    canaries: Mapping[str, _Canary]

    @classmethod
    def of(cls, table: RouteTable, leases: Mapping[str, _Lease]) -> _Routing:
        """Everything derived from the table is derived here, once per table."""
        routes = table.routes
        sides = frozenset(b for route in routes for b in (*route.backends, *route.copy_backends))
        canaries = {route.name: canary for route in routes if (canary := _canary_of(route))}
        return cls(table, leases, shadow_policies(routes), sides, canaries)

    async def call(self, backend: str, request: FramedRequest, *, deadline: float) -> bytes:
        """``backend``'s answer to a shadow copy, holding its lease; BackendError is the
        runner's to count."""
        with self.leases[backend] as held:
            return await held.call(
                request.request, request.raw, deadline=deadline, origin=request.origin
            )


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
        shared: SharedSessions | None = None,
    ) -> None:
        self._closing = TaskSet()
        leases = {name: _Lease(b, self._closing) for name, b in backends.items()}
        self._routing = _Routing.of(table, leases)
        self._bus = bus
        self._clock = clock
        # Not ``sessions or ...``: an empty broker is falsy (it has a length).
        self.sessions = (
            sessions
            if sessions is not None
            else SessionBroker(idle_s=Sessions().idle, clock=time.monotonic)
        )
        #: Where shadow copies go; None: decisions' shadows are ignored.
        self.shadows = shadows
        #: Where sessions this process has not seen are found (sibling workers or Redis).
        self._shared = shared
        #: Logons: guarded, answered by their routed side, repeated on the others.
        self._logons = LogonFanOut(bus, self.sessions, shared)
        #: Each canary route's fallback budget, kept across swaps (a step changes the table).
        self._budgets: dict[str, RetryBudget] = {}

    @property
    def fan_out_timeout(self) -> float:
        """Seconds a logon waits for each other side's logon (sessions.fan_out_timeout)."""
        return self._logons.fan_out_timeout

    @fan_out_timeout.setter
    def fan_out_timeout(self, seconds: float) -> None:
        self._logons.fan_out_timeout = seconds

    @property
    def logon_guard(self) -> LogonGuard:
        """Refused logons per customer and address (limits.failed_logons)."""
        return self._logons.guard

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
        leases = {name: kept.get(id(b)) or _Lease(b, self._closing) for name, b in backends.items()}
        self._routing = _Routing.of(table, leases)
        still_used = {id(lease) for lease in leases.values()}
        for lease in old.leases.values():
            if id(lease) not in still_used:
                lease.retire()

    async def aclose(self) -> None:
        """Close every backend; call after the listener has drained."""
        await self._logons.aclose(_CLOSE_TIMEOUT_S)
        for lease in self._routing.leases.values():
            lease.retire()
        await self._closing.drain(_CLOSE_TIMEOUT_S, "shutdown: backend close too slow")

    async def handle(
        self, request: Request, raw: bytes, *, peer: str, origin: str | None = None
    ) -> bytes:
        """The answer bytes for one framed request (``raw`` is what the client sent).

        ``peer`` names the client in events; ``origin``, its IP address, is passed to every
        backend call made for the request (the logon fan-out and shadow copies included).
        """
        started = self._clock()
        routing = self._routing  # one table and one set of backends for the whole request
        decision = routing.table.route(request)
        client = FramedRequest(request, raw, origin)
        if isinstance(request, LogonRequest):
            others = routing.session_sides - {decision.backend}
            call = functools.partial(self._logon_call, routing)
            answer, error = await self._logons.logon(
                decision, request, client, peer=peer, others=others, call=call
            )
        else:
            decision, answer, error = await self._brokered(routing, decision, request, client)
        fejlnr = answer_fejlnr(answer).decode("ascii")
        # After the answer is written (the caller writes it in this same step): the client
        # does not wait for the request's log line, metrics or audit record.
        self._bus.emit_soon(
            RequestCompleted(
                peer=peer,
                operation=request.operation,
                route=decision.route,
                backend=decision.backend,
                fejlnr=fejlnr,
                duration_s=self._clock() - started,
                error=error,
            )
        )
        if isinstance(request, LookupRequest) and self._bus.heard(LookupAnswered):
            # For the audit log (when there is one): who asked about whom.
            self._bus.emit_soon(_answered(request, origin or peer, decision, fejlnr))
        if decision.shadows and not error and self.shadows is not None:
            # The answer is final: the copies run after it, against the same backends.
            self.shadows.submit(
                ShadowJob(
                    routing.policies[decision.route],
                    decision.backend,
                    decision.shadows,
                    decision.noise,
                    client,
                    answer,
                    routing,
                )
            )
        return answer

    async def _brokered(
        self, routing: _Routing, decision: Decision, request: LookupRequest, client: FramedRequest
    ) -> tuple[Decision, bytes, str]:
        """Call the routed side with its own token for this session; answer with the client's."""
        session = await self._session(routing, request)
        side, sent = route_in_session(client, session, decision.backend)
        if side != decision.backend:
            self._bus.emit(SessionEvent("fallback", decision.backend))
            decision = replace(decision, backend=side)
        canary = routing.canaries.get(decision.route)
        if canary is None or canary.candidate != side or request.operation is not Operation.LOOKUP:
            canary = None  # not a candidate's read: nothing to fall back from
        else:
            self._budget(decision.route, canary).read()
        began = self._clock() if canary is not None else 0.0
        answer, error = await self._leased(routing, decision, sent)
        if error and canary is not None:
            failed_s = self._clock() - began
            fallback = await self._read_fallback(routing, decision, client, session, failed_s)
            if fallback is not None:
                return fallback
        if answer_fejlnr(answer) == _NEW_LOGON:
            if session is not None:
                left = self.sessions.forget(request.token, decision.backend)
                if self._shared is not None:
                    await self._shared.forgot(request.token, left)
                self._bus.emit(SessionEvent("side_expired", decision.backend))
            elif request.operation is Operation.LOOKUP and len(routing.session_sides) > 1:
                return await self._unknown_token(routing, decision, client, answer, error)
        return decision, for_client(answer, sent, request.token), error

    async def _read_fallback(
        self,
        routing: _Routing,
        failed: Decision,
        client: FramedRequest,
        session: Session | None,
        failed_s: float,
    ) -> tuple[Decision, bytes, str] | None:
        """A canary read its candidate failed, asked of the primary with the primary's token
        and the route's deadline; None when the budget is spent or nobody else can be asked
        (the client gets the candidate's failure). Either way the candidate's failure is
        counted as its own (ReadFallback), whoever answers the client."""
        route = failed.route
        canary = routing.canaries[route]
        side, sent = route_in_session(client, session, canary.primary)
        if side == failed.backend:
            outcome = "no_session"  # only the candidate holds a token for this session
        elif not self._budget(route, canary).spend():
            outcome = "over_budget"
        else:
            outcome = "asked"
        self._bus.emit(ReadFallback(route, failed.backend, failed_s, outcome))
        if outcome != "asked":
            return None
        primary = replace(failed, backend=side)
        answer, error = await self._leased(routing, primary, sent)
        return primary, for_client(answer, sent, client.token), error

    def _budget(self, route: str, canary: _Canary) -> RetryBudget:
        """The route's fallback budget, at the ratio its plan says now."""
        budget = self._budgets.get(route)
        if budget is None:
            budget = self._budgets[route] = RetryBudget(canary.retry_budget)
        budget.ratio = canary.retry_budget
        return budget

    async def _unknown_token(
        self,
        routing: _Routing,
        decision: Decision,
        client: FramedRequest,
        refused: bytes,
        error: str,
    ) -> tuple[Decision, bytes, str]:
        """A lookup with a token no session holds was refused (07) by its routed side: ask
        the other sides in turn with the same token, and answer with the first that knows
        it (the client's home side, whose session this process lost or never saw). Rule 6
        of docs/sessions.md, for a session nobody could find: a read goes home; a client
        whose token no side knows gets the routed side's 07."""
        for side in sorted(routing.session_sides - {decision.backend}):
            tried = replace(decision, backend=side)
            answer, side_error = await self._leased(routing, tried, client)
            if answer_fejlnr(answer) != _NEW_LOGON:
                self._bus.emit(SessionEvent("unknown_fallback", side))
                return tried, answer, side_error
        return decision, refused, error

    async def _session(self, routing: _Routing, request: LookupRequest) -> Session | None:
        """The request's session: this process's, or one copied here from where sessions
        are shared (sibling workers or Redis, gateway.sessions.shared).

        Others are asked only when a route reaches more than one side: otherwise the token
        always passes through unchanged and no session is needed.
        """
        session = session_of(self.sessions, request)
        if self._shared is None or len(routing.session_sides) < 2:
            return session
        if session is not None:
            self._shared.used(request.token)
            return session
        if await self._shared.fetch(request.token):
            return session_of(self.sessions, request)
        return None

    async def _logon_call(
        self, routing: _Routing, decision: Decision, sent: FramedRequest, repeat: bool
    ) -> tuple[bytes, str]:
        """A logon's call, or its repeat's on another side (the fan-out's Call)."""
        return await self._leased(routing, decision, sent, repeat=repeat)

    async def _leased(
        self, routing: _Routing, decision: Decision, sent: FramedRequest, *, repeat: bool = False
    ) -> tuple[bytes, str]:
        """The decided backend's answer, or its error's wire code and why (a backend failure
        is never the client's); the call holds the backend's lease, so a reload cannot close
        it under us. ``repeat``: a logon the gateway repeats for a client (Backend.call)."""
        with routing.leases[decision.backend] as backend:
            try:
                answer = await backend.call(
                    sent.request,
                    sent.raw,
                    deadline=decision.deadline,
                    origin=sent.origin,
                    repeat=repeat,
                )
                return answer, ""
            except BackendError as exc:
                self._bus.emit(BackendFailed(backend.name, decision.route, exc.kind, str(exc)))
                return refusal(sent.request, exc.wire), str(exc)


def _answered(
    request: LookupRequest, source: str, decision: Decision, fejlnr: str
) -> LookupAnswered:
    """The audit log's event for an answered request about a person (gateway.audit)."""
    return LookupAnswered(
        source,
        request.customer,
        request.user,
        request.pnr,
        request.transaction,
        request.operation,
        decision.route,
        decision.backend,
        fejlnr,
    )


def _canary_of(route: Route) -> _Canary | None:
    """A canary route's fallback; None for a route without a plan, or with the fallback off."""
    plan = route.canary
    if plan is None or plan.fallback.retry_budget == 0:
        return None
    return _Canary(route.primary, plan.candidate, plan.fallback.retry_budget)

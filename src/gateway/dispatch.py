"""One request, start to answer: route it, call the primary backend, answer 09 if it fails.

The deadline is the route's; the backend applies it to connect, write and read
together. Whatever happens, the client gets an answer built by the codec, and
the bus hears about it as typed events.

A reload swaps the route table and backends in one assignment (:meth:`Dispatcher.swap`);
each request keeps the pair it started with. A backend the new config no longer
has is closed once the last request using it has finished, never under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.backends.base import Backend
from gateway.codec import LogonAnswer, LogonRequest, LookupAnswer, Request
from gateway.errors import BackendError, BackendProtocolError, BackendTimeout, BackendUnavailable
from gateway.model import Family, FejlNr
from gateway.observe.events import BackendFailed, EventBus, RequestCompleted
from gateway.routing import Decision, RouteTable
from gateway.tasks import TaskSet

#: Metric label for each kind of backend failure.
_ERROR_KINDS: Mapping[type[BackendError], str] = {
    BackendUnavailable: "unavailable",
    BackendTimeout: "timeout",
    BackendProtocolError: "protocol",
}
#: Bytes 23-24 of every answer, logon and lookup alike (spec §4.1, §4.2).
_FEJLNR = slice(22, 24)
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


class Dispatcher:
    """Routes requests to backends; shared by every connection."""

    def __init__(
        self,
        table: RouteTable,
        backends: Mapping[str, Backend],
        bus: EventBus,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._routing = _Routing(table, {name: _Lease(b) for name, b in backends.items()})
        self._bus = bus
        self._clock = clock
        self._closing = TaskSet()

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
        self._routing = _Routing(table, leases)
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
        lease = routing.leases[decision.backend]
        lease.in_flight += 1
        try:
            answer, error = await self._call(lease.backend, decision, request, raw)
        finally:
            lease.in_flight -= 1
            if lease.retired and lease.in_flight == 0:
                self._close(lease)
        self._bus.emit(
            RequestCompleted(
                peer=peer,
                operation=request.operation,
                route=decision.route,
                backend=decision.backend,
                fejlnr=answer[_FEJLNR].decode("ascii"),
                duration_s=self._clock() - started,
                error=error,
            )
        )
        return answer

    async def _call(
        self, backend: Backend, decision: Decision, request: Request, raw: bytes
    ) -> tuple[bytes, str]:
        """The backend's answer, or 09 and why; a backend failure is never the client's."""
        try:
            return await backend.call(request, raw, deadline=decision.deadline), ""
        except BackendError as exc:
            kind = _ERROR_KINDS.get(type(exc), "other")
            self._bus.emit(BackendFailed(backend.name, decision.route, kind, str(exc)))
            return error_answer(request, FejlNr.NO_CONNECTION), str(exc)

    def _retire(self, lease: _Lease) -> None:
        if lease.retired:
            return
        lease.retired = True
        if lease.in_flight == 0:
            self._close(lease)

    def _close(self, lease: _Lease) -> None:
        self._closing.spawn(lease.backend.aclose(), name=f"close-backend:{lease.backend.name}")


def error_answer(request: Request, fejlnr: FejlNr) -> bytes:
    """An answer carrying only ``fejlnr``, echoing the request as the mainframe would."""
    if isinstance(request, LogonRequest):
        return LogonAnswer(request.customer, request.user, fejlnr).encode()
    return LookupAnswer.for_request(request, fejlnr).encode(_family(request.transaction))


def _family(transaction: str) -> Family:
    """The record family of a transaction code; an error answer has no records, so PRIV will do."""
    try:
        return Family(transaction)
    except ValueError:
        return Family.PRIV

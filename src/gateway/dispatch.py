"""One request, start to answer: route it, call the primary backend, answer 09 if it fails.

The deadline is the route's; the backend applies it to connect, write and read
together. Whatever happens, the client gets an answer built by the codec, and
the bus hears about it as typed events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from gateway.backends.base import Backend
from gateway.codec import LogonAnswer, LogonRequest, LookupAnswer, Request
from gateway.errors import BackendError, BackendProtocolError, BackendTimeout, BackendUnavailable
from gateway.model import Family, FejlNr
from gateway.observe.events import BackendFailed, EventBus, RequestCompleted
from gateway.routing import RouteTable

#: Metric label for each kind of backend failure.
_ERROR_KINDS: Mapping[type[BackendError], str] = {
    BackendUnavailable: "unavailable",
    BackendTimeout: "timeout",
    BackendProtocolError: "protocol",
}
#: Bytes 23-24 of every answer, logon and lookup alike (spec §4.1, §4.2).
_FEJLNR = slice(22, 24)


class Dispatcher:
    """Routes requests to backends; shared by every connection."""

    def __init__(
        self,
        table: RouteTable,
        backends: Mapping[str, Backend],
        bus: EventBus,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._table = table
        self._backends = backends
        self._bus = bus
        self._clock = clock

    async def handle(self, request: Request, raw: bytes, *, peer: str) -> bytes:
        """The answer bytes for one framed request (``raw`` is what the client sent)."""
        started = self._clock()
        decision = self._table.route(request)
        backend = self._backends[decision.backend]
        error = ""
        try:
            answer = await backend.call(request, raw, deadline=decision.deadline)
        except BackendError as exc:
            error = str(exc)
            kind = _ERROR_KINDS.get(type(exc), "other")
            self._bus.emit(BackendFailed(backend.name, decision.route, kind, error))
            answer = error_answer(request, FejlNr.NO_CONNECTION)
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

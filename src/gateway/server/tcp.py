"""The client-facing CPR Direkte listener: frame one request, answer it in one write, close.

Per connection (gateway.server.connection): frame one request within the read timeout;
hand it to the dispatcher; write the answer in a single write and close. A request
that cannot be framed is closed without an answer (spec §1, project rule). One
client's trouble never reaches another client or the server: every connection has
its own bounds, and a failure while answering drops only that connection.

Admission (gateway.server.admission): every connection holds a slot from accept to close,
within ``limits.max_connections`` per process and ``limits.max_connections_per_address``;
a listener with TLS or behind a balancer accepts for itself, so that a connection over a
limit is closed before any TLS work, and so is any while the process is behind (its loop
lag); a plaintext listener counts in ``connection_made``,
which for it is the accept. The TLS handshake has ``limits.handshake_timeout``, the first
byte ``limits.first_byte_timeout``, the whole request ``limits.read_timeout``. A framed
request that finds ``limits.max_in_flight`` others being answered gets its operation's
error answer with FEJLNR 08 at once (project rule), instead of queueing.

Behind a load balancer (``listen.proxy_protocol``), connections from its trusted
networks open with a PROXY v2 header naming the client, read before TLS
(gateway.server.proxy_gate); that client is then the connection's peer everywhere: logs,
events, the per-address limit and the ``origin`` that backends are told.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any

from gateway.codec import Request, refusal
from gateway.codec.proxy_protocol import Address
from gateway.config.schema import Limits, Listen
from gateway.dispatch import Dispatcher
from gateway.errors import ConfigError, FramingError
from gateway.model import FejlNr
from gateway.observe.events import (
    MAX_IN_FLIGHT,
    ConnectionClosed,
    ConnectionOpened,
    EventBus,
    InternalError,
    RequestRejected,
)
from gateway.runtime.elders import ROOM, Elders
from gateway.server.admission import AdmittingServer, Slot, Slots
from gateway.server.certificates import listener_context
from gateway.server.connection import Connections, OneRequest, describe_failure
from gateway.server.proxy_gate import listening_socket


class ClientListener:
    """Accepts CPR Direkte clients and serves one request per connection."""

    def __init__(
        self,
        listen: Listen,
        limits: Limits,
        dispatcher: Dispatcher,
        bus: EventBus,
        context: ssl.SSLContext | None = None,
        *,
        pressure: Callable[[], float] | None = None,
        elders: Elders | None = None,
    ) -> None:
        #: The TLS context to serve with (gateway.server.certificates reloads its pair);
        #: None: one is made from ``listen.tls``.
        self._context = context
        #: The event loop's sustained lag (gateway.runtime.pressure): a TLS listener refuses
        #: new connections at accept while it is high (gateway.server.admission).
        self._pressure = pressure
        self._listen = listen
        self._limits = limits
        self._dispatcher = dispatcher
        self._bus = bus
        self._server: asyncio.Server | AdmittingServer | None = None
        self._connections = Connections()
        #: Elder workers to leave light traffic to (gateway.runtime.elders), which see this
        #: process's open connections; None: a process on its own.
        self._elders = elders
        self._slots = Slots(lambda: self._limits, elders.publish if elders else None)
        self._fit_room()
        self._answering = _Answering()

    @property
    def accepting(self) -> bool:
        """True while the listening socket is open."""
        return self._server is not None and self._server.is_serving()

    @property
    def in_flight(self) -> int:
        """Connections being served right now."""
        return len(self._connections)

    @property
    def handshakes(self) -> tuple[int, int]:
        """Client TLS handshakes completed so far that resumed a session, and that did not:
        OpenSSL's own counts for the listener's context (nothing counted per connection
        here); (0, 0) without TLS."""
        if self._context is None:
            return 0, 0
        stats = self._context.session_stats()
        resumed = stats["hits"]
        return resumed, stats["accept_good"] - resumed

    @property
    def slots(self) -> Slots:
        """Connections counted against the limits, from accept (before TLS) to close."""
        return self._slots

    async def start(self, *, sock: socket.socket | None = None) -> tuple[str, int]:
        """Bind and start accepting; returns the bound (host, port).

        ``sock`` is a listening socket to accept on instead of binding one: the one
        ``serve --workers`` binds once and hands to every worker (gateway.runtime.workers).

        An address that cannot be bound or a certificate that cannot be loaded is
        a ConfigError, so the operator sees which setting to fix.
        """
        if self._context is None and self._listen.tls is not None:
            self._context = listener_context(self._listen.tls)
        context = self._context
        where: dict[str, Any] = {"sock": sock}
        if sock is None:
            where = {"host": self._listen.host, "port": self._listen.port}
        try:
            if context is not None or self._listen.proxy_protocol is not None:
                self._server = await self._admitting(context, sock)
            else:
                self._server = await asyncio.get_running_loop().create_server(
                    self._connection,
                    **where,
                    # Room in the kernel's accept queue for a burst up to the connection limit
                    # (asyncio's default of 100 overflows when many clients arrive at once).
                    backlog=self._limits.max_connections,
                )
        except OSError as exc:
            address = f"{self._listen.host}:{self._listen.port}"
            raise ConfigError([f"listen: cannot listen on {address}: {_reason(exc)}"]) from None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def update_limits(self, limits: Limits) -> None:
        """Use ``limits`` from now on (a reload): for connections accepted from now on, and
        for requests framed from now on (``max_in_flight``)."""
        self._limits = limits
        self._fit_room()

    def _fit_room(self) -> None:
        """A worker that cannot hold ``elders.ROOM`` connections is full at its limit: the
        younger workers must not wait for it to reach more."""
        if self._elders is not None:
            self._elders.room = min(ROOM, self._limits.max_connections)

    def stop_accepting(self) -> None:
        """Close the listening socket; connections already accepted carry on."""
        if self._server is not None:
            self._server.close()

    async def drain(self, grace_s: float) -> int:
        """Let in-flight connections finish within ``grace_s``; returns how many were cancelled."""
        if isinstance(self._server, AdmittingServer):
            await self._server.aclose()
        return await self._connections.drain(grace_s, "shutdown: grace period over")

    async def _admitting(
        self, context: ssl.SSLContext | None, sock: socket.socket | None
    ) -> AdmittingServer:
        """A listener that admits at accept, before a balancer's header and TLS."""
        server = AdmittingServer(
            self._slots,
            self._listen.proxy_protocol,
            context,
            self._connection,
            self._refused,
            pressure=self._pressure,
            elders=self._elders,
        )
        if sock is None:
            backlog = self._limits.max_connections
            sock = await listening_socket(self._listen.host, self._listen.port, backlog)
        server.start(sock)
        return server

    def _connection(
        self,
        source: Address | None = None,
        slot: Slot | None = None,
        accepted_from: tuple[str, str] | None = None,
    ) -> _Client:
        return _Client(
            self._connections,
            self._limits,
            self._dispatcher,
            self._bus,
            answering=self._answering,
            admitted=_Admitted(self._slots, slot, source, accepted_from),
        )

    def _refused(self, peer: str, reason: str, received: int, detail: str, count: int) -> None:
        self._bus.emit(RequestRejected(peer, reason, received, detail, count))


class _Answering:
    """Requests being answered at once in this process (``limits.max_in_flight``)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class _Admitted:
    """How a connection came in: its slot (None on a plaintext listener: taken when the
    connection is made), the client a trusted balancer named (None: the socket's peer), and
    the socket's peer as accepted (``host:port`` and the host; None: ask the transport)."""

    __slots__ = ("accepted_from", "slot", "slots", "source")

    def __init__(
        self,
        slots: Slots,
        slot: Slot | None,
        source: Address | None,
        accepted_from: tuple[str, str] | None = None,
    ) -> None:
        self.slots = slots
        self.slot = slot
        self.source = source
        self.accepted_from = accepted_from


class _Client(OneRequest):
    """One client connection: admitted within the limits, answered by the dispatcher."""

    def __init__(
        self,
        connections: Connections,
        limits: Limits,
        dispatcher: Dispatcher,
        bus: EventBus,
        *,
        answering: _Answering,
        admitted: _Admitted,
    ) -> None:
        super().__init__(connections, limits.read_timeout, limits.first_byte_timeout)
        self._max_in_flight = limits.max_in_flight
        self._dispatcher = dispatcher
        self._bus = bus
        self._answering = answering
        self._admitted = admitted
        self._peer = "unknown"
        self._origin: str | None = None

    def admit(self) -> bool:
        admitted = self._admitted
        self._peer, self._origin = _peer(self._transport, admitted)
        if admitted.slot is None:  # a plaintext listener: this is the accept
            slot = admitted.slots.take(self._origin)
            if isinstance(slot, str):
                self._bus.emit(RequestRejected(self._peer, slot, 0))
                return False
            admitted.slot = slot
        self._bus.emit(ConnectionOpened(self._peer))
        return True

    async def answer(self, request: Request, record: bytes) -> bytes:
        # ``record``: the exact bytes the client sent, relayed unchanged on the legacy route.
        answering = self._answering
        if answering.count >= self._max_in_flight:
            # Answered now rather than queued: a client waiting behind the others would
            # only time out, and its retry would add to the load (project rule: FEJLNR 08).
            self._bus.emit(RequestRejected(self._peer, MAX_IN_FLIGHT, len(record)))
            return refusal(request, FejlNr.NOT_ACTIVE)
        answering.count += 1
        try:
            return await self._dispatcher.handle(
                request, record, peer=self._peer, origin=self._origin
            )
        finally:
            answering.count -= 1

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._admitted.slot is not None:
            self._admitted.slot.release()

    def rejected(self, error: FramingError, received: int) -> None:
        self._bus.emit(RequestRejected(self._peer, error.reason, received))

    def failed(self, error: Exception) -> None:
        self._bus.emit(InternalError(self._peer, describe_failure(error)))

    def finished(self) -> None:
        self._bus.emit(ConnectionClosed(self._peer))


def _peer(transport: asyncio.BaseTransport | None, admitted: _Admitted) -> tuple[str, str | None]:
    """``host:port`` of the client, for logs (an address, never request contents), and its
    address alone, for backends (None when unknown): the one a trusted proxy named, else
    the socket's peer (as accepted, when the listener accepted it itself)."""
    source = admitted.source
    if source is not None:
        return str(source), str(source.ip)
    if admitted.accepted_from is not None:
        return admitted.accepted_from
    address = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}", str(address[0])
    return "unknown", None


def _reason(exc: OSError) -> str:
    """The plain errno text ("Address already in use"), without asyncio's wrapping."""
    return os.strerror(exc.errno) if exc.errno else str(exc)

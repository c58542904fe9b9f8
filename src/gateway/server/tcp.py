"""The client-facing CPR Direkte listener: frame one request, answer it in one write, close.

Per connection (gateway.server.connection): frame one request within the read timeout;
hand it to the dispatcher; write the answer in a single write and close. A request
that cannot be framed is closed without an answer (spec §1, project rule). One
client's trouble never reaches another client or the server: every connection has
its own bounds, and a failure while answering drops only that connection.

Behind a load balancer (``listen.proxy_protocol``), connections from its trusted
networks open with a PROXY v2 header naming the client, read before TLS by a listener
that accepts for itself (gateway.server.proxy_gate); that client is then the
connection's peer everywhere: logs, events and the ``origin`` that backends are told.
Without the setting the listener is built exactly as before.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Any

from gateway.codec import Request
from gateway.codec.proxy_protocol import Address
from gateway.config.schema import Limits, Listen, ProxyProtocol
from gateway.dispatch import Dispatcher
from gateway.errors import ConfigError, FramingError, ProxyHeaderError
from gateway.observe.events import (
    OVER_CAPACITY,
    PROXY_HEADER,
    ConnectionClosed,
    ConnectionOpened,
    EventBus,
    InternalError,
    RequestRejected,
)
from gateway.server.connection import Connections, OneRequest, describe_failure
from gateway.server.proxy_gate import GatedServer, listening_socket
from gateway.tls import server_context


class ClientListener:
    """Accepts CPR Direkte clients and serves one request per connection."""

    def __init__(
        self,
        listen: Listen,
        limits: Limits,
        dispatcher: Dispatcher,
        bus: EventBus,
        context: ssl.SSLContext | None = None,
    ) -> None:
        #: The TLS context to serve with (gateway.server.certificates reloads its pair);
        #: None: one is made from ``listen.tls``.
        self._context = context
        self._listen = listen
        self._limits = limits
        self._dispatcher = dispatcher
        self._bus = bus
        self._server: asyncio.Server | GatedServer | None = None
        self._connections = Connections()

    @property
    def accepting(self) -> bool:
        """True while the listening socket is open."""
        return self._server is not None and self._server.is_serving()

    @property
    def in_flight(self) -> int:
        """Connections being served right now."""
        return len(self._connections)

    async def start(self, *, sock: socket.socket | None = None) -> tuple[str, int]:
        """Bind and start accepting; returns the bound (host, port).

        ``sock`` is a listening socket to accept on instead of binding one: the one
        ``serve --workers`` binds once and hands to every worker (gateway.runtime.workers).

        An address that cannot be bound or a certificate that cannot be loaded is
        a ConfigError, so the operator sees which setting to fix.
        """
        context = self._context or _server_context(self._listen)
        where: dict[str, Any] = {"sock": sock}
        if sock is None:
            where = {"host": self._listen.host, "port": self._listen.port}
        try:
            if self._listen.proxy_protocol is not None:
                self._server = await self._gated(self._listen.proxy_protocol, context, sock)
            else:
                self._server = await asyncio.get_running_loop().create_server(
                    self._connection,
                    **where,
                    ssl=context,
                    # A client that stalls the handshake is as slow as one that stalls its record.
                    ssl_handshake_timeout=self._limits.read_timeout if context else None,
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
        """Use ``limits`` from now on (a reload); the TLS handshake timeout stays as started."""
        self._limits = limits

    def stop_accepting(self) -> None:
        """Close the listening socket; connections already accepted carry on."""
        if self._server is not None:
            self._server.close()

    async def drain(self, grace_s: float) -> int:
        """Let in-flight connections finish within ``grace_s``; returns how many were cancelled."""
        if isinstance(self._server, GatedServer):
            await self._server.aclose()
        return await self._connections.drain(grace_s, "shutdown: grace period over")

    async def _gated(
        self, trusted: ProxyProtocol, context: ssl.SSLContext | None, sock: socket.socket | None
    ) -> GatedServer:
        """A listener that reads a trusted source's PROXY header before TLS (proxy_gate)."""
        server = GatedServer(
            trusted, context, self._connection, lambda: self._limits.read_timeout, self._bad_header
        )
        if sock is None:
            backlog = self._limits.max_connections
            sock = await listening_socket(self._listen.host, self._listen.port, backlog)
        server.start(sock)
        return server

    def _connection(self, source: Address | None = None) -> _Client:
        return _Client(self._connections, self._limits, self._dispatcher, self._bus, source)

    def _bad_header(self, peer: str, error: ProxyHeaderError, received: int) -> None:
        self._bus.emit(RequestRejected(peer, PROXY_HEADER, received, str(error)))


class _Client(OneRequest):
    """One client connection: admitted within the limit, answered by the dispatcher."""

    def __init__(
        self,
        connections: Connections,
        limits: Limits,
        dispatcher: Dispatcher,
        bus: EventBus,
        source: Address | None = None,
    ) -> None:
        super().__init__(connections, limits.read_timeout)
        self._max_connections = limits.max_connections
        self._dispatcher = dispatcher
        self._bus = bus
        #: The client a trusted proxy named; None: the socket's peer is the client.
        self._source = source
        self._peer = "unknown"
        self._origin: str | None = None

    def admit(self) -> bool:
        self._peer, self._origin = _peer(self.transport, self._source)
        if len(self._connections) >= self._max_connections:
            self._bus.emit(RequestRejected(self._peer, OVER_CAPACITY, 0))
            return False
        self._bus.emit(ConnectionOpened(self._peer))
        return True

    async def answer(self, request: Request, record: bytes) -> bytes:
        # ``record``: the exact bytes the client sent, relayed unchanged on the legacy route.
        return await self._dispatcher.handle(request, record, peer=self._peer, origin=self._origin)

    def rejected(self, error: FramingError, received: int) -> None:
        self._bus.emit(RequestRejected(self._peer, error.reason, received))

    def failed(self, error: Exception) -> None:
        self._bus.emit(InternalError(self._peer, describe_failure(error)))

    def finished(self) -> None:
        self._bus.emit(ConnectionClosed(self._peer))


def _server_context(listen: Listen) -> ssl.SSLContext | None:
    """The listener's TLS context; a bad certificate or key is a config problem."""
    if listen.tls is None:
        return None
    try:
        tls = listen.tls
        return server_context(tls.cert, tls.key, min_version=tls.min_version, ciphers=tls.ciphers)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError([f"listen.tls: cannot load {listen.tls.cert}: {exc}"]) from None


def _peer(transport: asyncio.BaseTransport, source: Address | None) -> tuple[str, str | None]:
    """``host:port`` of the client, for logs (an address, never request contents), and its
    address alone, for backends (None when unknown): the one a trusted proxy named, else
    the socket's peer."""
    if source is not None:
        return str(source), str(source.ip)
    address = transport.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}", str(address[0])
    return "unknown", None


def _reason(exc: OSError) -> str:
    """The plain errno text ("Address already in use"), without asyncio's wrapping."""
    return os.strerror(exc.errno) if exc.errno else str(exc)

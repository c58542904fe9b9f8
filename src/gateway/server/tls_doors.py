"""A TLS listener's doors: admission at accept, then TLS, with no task per connection.

The event loop accepts (``create_server`` without TLS: in uvloop, in C) and hands each new
connection to one shared door protocol, before any byte is read. The door decides at once,
from the peer's address, as gateway.server.admission describes: over a limit, or while the
process is behind, the connection is closed with no TLS work and the refusal reported
(after the loop's current pass, one report per reason and address). An admitted
connection's transport is handed to the loop's own TLS protocol, which makes the
handshake within ``limits.handshake_timeout`` from accept and then gives the connection
to its own protocol; a future says how the handshake ended, and its callback gives the
address's turn back (gateway.server.turns) and, when the handshake failed, the slot.

This is what ``loop.connect_accepted_socket`` does for an accepted socket, without the
``accept`` call in Python, the socket object and the task that awaits the handshake:
~90 µs per connection less (docs/benchmarks.md, "The doors of a TLS listener"). A
listener behind a balancer reads the PROXY header before TLS, and keeps
gateway.server.admission's ``AdmittingServer``.

A connection whose address has all its turns in use waits for one in a door of its own
(:class:`_Waiting`): its first bytes are kept and reading paused, and the wait counts
against the handshake timeout.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections.abc import Callable
from typing import Any, cast

from gateway.observe.events import HANDSHAKE_TIMEOUT, OVERLOADED
from gateway.runtime.loops import tls_protocol
from gateway.server.admission import (
    CLOCK_SLACK_S,
    ConnectionFactory,
    RefusalHook,
    Slot,
    Slots,
)
from gateway.server.connection import OneRequest
from gateway.server.turns import HandshakeTurns


class TlsDoors:
    """Accepts TLS clients through the loop, admitting each at accept (see the module)."""

    def __init__(
        self,
        slots: Slots,
        context: ssl.SSLContext,
        factory: ConnectionFactory,
        refused: RefusalHook,
        *,
        pressure: Callable[[], float] | None = None,
    ) -> None:
        self._slots = slots
        self._context = context
        self._factory = factory
        self._refused = refused
        self._pressure = pressure
        self._turns = HandshakeTurns(lambda: slots.limits().handshakes_per_address)
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tls_protocol: Callable[..., Any] | None = None
        self._door = _Door(self)
        #: Transports admitted and not yet through their handshake (closed at shutdown).
        self._opening: set[asyncio.Transport] = set()
        #: Refusals not yet reported: (reason, address) → connections.
        self._refusals: dict[tuple[str, str], int] = {}

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening socket, while there is one."""
        return () if self._server is None else tuple(self._server.sockets)

    async def start(self, sock: socket.socket) -> None:
        """Accept on ``sock`` (listening) from now on; it is closed by :meth:`close`."""
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Inherited by every accepted socket (Linux): once here, not per connection.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._tls_protocol = tls_protocol(loop)
        # The backlog again: create_server listens anew, with asyncio's 100 by default.
        self._server = await loop.create_server(
            lambda: self._door, sock=sock, backlog=self._slots.limits().max_connections
        )

    def is_serving(self) -> bool:
        """True while connections are accepted."""
        return self._server is not None and self._server.is_serving()

    def close(self) -> None:
        """Stop accepting and close the listening socket; connections accepted carry on."""
        if self._server is not None:
            self._server.close()

    async def aclose(self) -> None:
        """At shutdown, after :meth:`close`: connections still in their handshake (or
        waiting for a turn) are closed, as if they had come a moment later."""
        for transport in list(self._opening):
            transport.abort()
        self._opening.clear()
        await asyncio.sleep(0)  # their connection_lost, before the caller drains the rest

    # -- at accept ------------------------------------------------------------------------

    def _arrived(self, transport: asyncio.Transport) -> None:
        """A connection just accepted, nothing read yet: admit it, or close it."""
        host, port = _host_port(transport.get_extra_info("peername"))
        slot: Slot | str = OVERLOADED
        if not self._shedding():
            slot = self._slots.take(host or None)
        if isinstance(slot, str):
            transport.abort()
            self._refuse(slot, host)
            return
        loop = self._loop
        assert loop is not None
        deadline = loop.time() + self._slots.limits().handshake_timeout
        app = self._factory(None, slot, (f"{host}:{port}", host) if host else None)
        if not isinstance(app, OneRequest):
            raise TypeError("a TLS door's connections are OneRequest protocols")
        self._opening.add(transport)
        if host and not self._turns.try_take(host):
            _Waiting(self, transport, app, slot, host=host, deadline=deadline)
            return
        self.start_tls(transport, app, slot, turn=host or None, deadline=deadline)

    def _shedding(self) -> bool:
        """As gateway.server.admission's: refuse at accept while the loop runs late."""
        if self._pressure is None:
            return False
        return self._pressure() > self._slots.limits().shed_lag

    def _refuse(self, reason: str, host: str) -> None:
        """A refusal, reported after this pass of the loop with any others like it: a
        flood is refused at the cost of its accepts and closes, not of a report for each."""
        if not self._refusals:
            assert self._loop is not None
            self._loop.call_soon(self._report_refusals)
        key = (reason, host)
        self._refusals[key] = self._refusals.get(key, 0) + 1

    def _report_refusals(self) -> None:
        refusals, self._refusals = self._refusals, {}
        for (reason, host), count in refusals.items():
            self._refused(host, reason, 0, "", count)

    # -- the handshake --------------------------------------------------------------------

    def start_tls(
        self,
        transport: asyncio.Transport,
        app: OneRequest,
        slot: Slot,
        *,
        turn: str | None,
        deadline: float,
        early: bytes = b"",
    ) -> None:
        """Hand ``transport`` to TLS, which gives it to ``app`` once handshaken; ``turn``
        is the address whose turn this handshake holds, ``early`` bytes read already."""
        loop = self._loop
        assert loop is not None and self._tls_protocol is not None
        waiter = loop.create_future()
        tls = self._tls_protocol(
            loop,
            app,
            self._context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=max(deadline - loop.time(), 0.001),
        )
        transport.set_protocol(tls)
        tls.connection_made(transport)
        if early:
            _feed(tls, early)
        waiter.add_done_callback(
            functools.partial(
                self._handshaken,
                transport=transport,
                app=app,
                slot=slot,
                turn=turn,
                deadline=deadline,
            )
        )

    def _handshaken(
        self,
        waiter: asyncio.Future[None],
        *,
        transport: asyncio.Transport,
        app: OneRequest,
        slot: Slot,
        turn: str | None,
        deadline: float,
    ) -> None:
        """The handshake is over: the turn goes back; a failed one's slot too. A failed
        handshake is unseen, as on any TLS listener; one cut by the timeout held a slot
        for the whole of it, which is worth knowing."""
        self._opening.discard(transport)
        if turn is not None:
            self._turns.give(turn)
        if not waiter.cancelled() and waiter.exception() is None and app.connected:
            return  # the connection's own protocol has it, and releases the slot
        self.not_through(transport, slot, deadline)

    def not_through(self, transport: asyncio.Transport, slot: Slot, deadline: float) -> None:
        """A connection that did not get through its door: closed, its slot released, and
        reported when the handshake timeout cut it."""
        self._opening.discard(transport)
        slot.release()
        transport.abort()
        assert self._loop is not None
        if self._loop.time() >= deadline - CLOCK_SLACK_S:
            patience = self._slots.limits().handshake_timeout
            peer = _peer(transport)
            self._refused(peer, HANDSHAKE_TIMEOUT, 0, f"no TLS handshake within {patience:g}s", 1)

    @property
    def turns(self) -> HandshakeTurns:
        return self._turns


class _Door(asyncio.Protocol):
    """Every connection's first protocol: it is in it only for its ``connection_made``."""

    def __init__(self, doors: TlsDoors) -> None:
        self._doors = doors

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._doors._arrived(cast(asyncio.Transport, transport))

    def data_received(self, data: bytes) -> None:  # pragma: no cover - never reading
        raise AssertionError("a door does not read")


class _Waiting(asyncio.Protocol):
    """A connection waiting for its address's turn to handshake: its first bytes kept,
    reading paused, until the turn comes (then TLS) or the deadline (then closed)."""

    def __init__(
        self,
        doors: TlsDoors,
        transport: asyncio.Transport,
        app: OneRequest,
        slot: Slot,
        *,
        host: str,
        deadline: float,
    ) -> None:
        self._doors = doors
        self._transport = transport
        self._app = app
        self._slot = slot
        self._host = host
        self._deadline = deadline
        self._early = bytearray()
        self._over = False
        loop = asyncio.get_running_loop()
        self._turn = doors.turns.reserve(host)
        self._turn.add_done_callback(self._granted)
        self._timer = loop.call_at(deadline, self._late)
        transport.set_protocol(self)

    def data_received(self, data: bytes) -> None:
        self._early += data
        self._transport.pause_reading()

    def eof_received(self) -> bool:
        return False  # gone before its turn: closed, and connection_lost cleans up

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._over:
            self._end()
            self._doors._opening.discard(self._transport)
            self._slot.release()

    def _granted(self, turn: asyncio.Future[None]) -> None:
        if turn.cancelled() or self._over:
            return
        self._over = True
        self._timer.cancel()
        transport = self._transport
        self._doors.start_tls(
            transport,
            self._app,
            self._slot,
            turn=self._host,
            deadline=self._deadline,
            early=bytes(self._early),
        )
        transport.resume_reading()

    def _late(self) -> None:
        if not self._over:
            self._end()
            self._doors.not_through(self._transport, self._slot, self._deadline)

    def _end(self) -> None:
        self._over = True
        self._timer.cancel()
        self._doors.turns.withdraw(self._host, self._turn)


def _feed(tls: Any, data: bytes) -> None:
    """Bytes read before TLS took the connection, handed to it as if just read (the loops'
    TLS protocols take bytes as buffered protocols do)."""
    while data:
        buffer = memoryview(tls.get_buffer(len(data)))
        size = min(len(buffer), len(data))
        buffer[:size] = data[:size]
        tls.buffer_updated(size)
        data = data[size:]


def _peer(transport: asyncio.Transport) -> str:
    host, port = _host_port(transport.get_extra_info("peername"))
    return f"{host}:{port}" if host else ":"


def _host_port(address: object) -> tuple[str, object]:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), address[1]
    return "", ""

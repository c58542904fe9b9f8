"""The door of a listener behind a load balancer: a PROXY v2 header first, then TLS, then the
connection's own protocol, told whose connection it is.

A load balancer in TCP mode (HAProxy ``send-proxy-v2``) opens each connection it relays
with a PROXY protocol v2 header, in clear, ahead of the client's TLS. A listener with
``proxy_protocol`` configured is therefore started without TLS, and each connection
goes through a :class:`_Gate`:

* from a source outside the trusted networks, nothing is read: the connection goes on
  at once as any other (TLS, then the request), and a PROXY header it sends is just bad
  bytes — it cannot claim another address;
* from a trusted source, the header is read first, within the read timeout and never a
  byte past it (the rest is TLS); a missing, garbled or slow header closes the connection
  unanswered and is reported to the listener; a good one names the client (None for a
  LOCAL header, the balancer's own health check, or an address family other than TCP).

TLS then starts on the same socket (``loop.start_tls``, one task per connection; neither
asyncio nor uvloop can wrap an accepted socket in TLS without one), bounded by the same
timeout as the listener's own handshakes.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import cast

from gateway.codec.proxy_protocol import FIXED_LENGTH, Address, ProxyHeaderReader
from gateway.config.schema import ProxyProtocol
from gateway.errors import ProxyHeaderError
from gateway.runtime.tasks import TaskSet

#: Builds a connection's own protocol, given the client a trusted proxy named; None when the
#: socket's peer is the client (an untrusted source, a LOCAL header, an UNSPEC family).
ConnectionFactory = Callable[[Address | None], asyncio.Protocol]
#: Hears of a trusted source whose header was missing, bad or late: the socket's peer
#: (``host:port``), what was wrong, and how many bytes it sent. The connection is closed.
RejectHook = Callable[[str, ProxyHeaderError, int], None]


class ProxyGate:
    """One listener's door: who is trusted, the TLS to start, and the TLS starts in flight."""

    def __init__(
        self, trusted: ProxyProtocol, context: ssl.SSLContext | None, rejected: RejectHook
    ) -> None:
        self._trusted = trusted
        self._context = context
        self._rejected = rejected
        self._tls_starts = TaskSet()
        self._closed = False

    def protocol(self, factory: ConnectionFactory, patience_s: float) -> asyncio.BaseProtocol:
        """The protocol of one accepted connection: ``patience_s`` bounds its header and its
        TLS handshake alike; ``factory`` builds what serves it afterwards."""
        return _Gate(self, factory, patience_s)

    async def aclose(self) -> None:
        """At shutdown, once the listener has closed: connections not yet through the door
        (in their TLS handshake, or finishing their header) are closed, as if they had come
        a moment later."""
        self._closed = True
        await self._tls_starts.drain(0.0, "shutdown: still in the TLS handshake")

    def _trusts(self, host: str) -> bool:
        return self._trusted.trusts(host)

    def _hand_over(
        self,
        transport: asyncio.Transport,
        app: asyncio.Protocol,
        patience_s: float,
    ) -> None:
        """The connection goes on with ``app``, through TLS when the listener has it."""
        if self._closed:
            transport.abort()
        elif self._context is None:
            transport.set_protocol(app)
            app.connection_made(transport)
            transport.resume_reading()
        else:
            self._tls_starts.spawn(
                self._start_tls(transport, app, self._context, patience_s), name="tls-after-gate"
            )

    async def _start_tls(
        self,
        transport: asyncio.Transport,
        app: asyncio.Protocol,
        context: ssl.SSLContext,
        patience_s: float,
    ) -> None:
        held = _Held()
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport, held, context, server_side=True, ssl_handshake_timeout=patience_s
            )
        except OSError:  # a failed or timed-out handshake; start_tls has closed the socket
            return  # unseen, like a failed handshake on a listener that has TLS itself
        if tls is None:  # typeshed allows it; start_tls returns None only for a closed loop
            transport.abort()
            return
        held.hand_over(tls, app)


class _Gate(asyncio.BufferedProtocol):
    """One connection at the door: a trusted source's header read, then handed over."""

    def __init__(self, gate: ProxyGate, factory: ConnectionFactory, patience_s: float) -> None:
        self._gate = gate
        self._factory = factory
        self._patience_s = patience_s
        self._reader = ProxyHeaderReader()
        self._buffer = bytearray(FIXED_LENGTH)
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._peer = "unknown"
        self._through = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        address = transport.get_extra_info("peername")
        host = str(address[0]) if isinstance(address, tuple) and address else ""
        if not self._gate._trusts(host):
            self._go_on(None)  # nothing read: what it sends is the client's own business
            return
        self._peer = f"{host}:{address[1]}"
        self._timer = asyncio.get_running_loop().call_later(self._patience_s, self._expired)

    def get_buffer(self, sizehint: int) -> memoryview:
        # Exactly what the header still needs: a read never takes the TLS bytes behind it.
        wanted = self._reader.missing
        if len(self._buffer) < wanted:
            self._buffer = bytearray(wanted)
        return memoryview(self._buffer)[:wanted]

    def buffer_updated(self, nbytes: int) -> None:
        if self._through:
            return
        try:
            header = self._reader.receive_data(bytes(self._buffer[:nbytes]))
        except ProxyHeaderError as exc:
            self._reject(exc)
            return
        if header is not None:
            self._stop_timer()
            self._go_on(header.source)

    def eof_received(self) -> bool:
        if not self._through:
            self._reject(self._reader.end_of_stream())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if not self._through:  # reset before its header was whole
            self._through = True
            self._gate._rejected(self._peer, self._reader.end_of_stream(), self._reader.received)

    def _go_on(self, source: Address | None) -> None:
        assert self._transport is not None
        self._through = True
        self._transport.pause_reading()  # resumed by whoever serves it next
        self._gate._hand_over(self._transport, self._factory(source), self._patience_s)

    def _expired(self) -> None:
        self._timer = None
        if not self._through:
            error = f"no whole PROXY header within {self._patience_s:g}s"
            self._reject(ProxyHeaderError(error))

    def _reject(self, error: ProxyHeaderError) -> None:
        assert self._transport is not None
        self._stop_timer()
        self._through = True
        self._gate._rejected(self._peer, error, self._reader.received)
        self._transport.close()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Held(asyncio.Protocol):
    """What TLS delivers between the end of the handshake and the hand-over.

    ``start_tls`` resumes its caller a loop turn after the handshake, and a client may send
    its record with its last handshake bytes: that record (one read's worth at most, as
    the caller resumes before the next read) is kept here and replayed in order.
    """

    def __init__(self) -> None:
        self._data = bytearray()
        self._eof = False
        self._lost = False
        self._error: Exception | None = None

    def data_received(self, data: bytes) -> None:
        self._data += data

    def eof_received(self) -> bool:
        self._eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost, self._error = True, exc

    def hand_over(self, transport: asyncio.Transport, app: asyncio.Protocol) -> None:
        """Connect ``app`` to the TLS transport and replay what came before it."""
        transport.set_protocol(app)
        app.connection_made(transport)
        if self._data:
            app.data_received(bytes(self._data))
        if self._eof:
            app.eof_received()
        if self._lost:
            app.connection_lost(self._error)

"""What a TLS proxy's two handshakes per lookup cost, measured in memory, without sockets.

A CPR Direkte lookup through a proxy costs the proxy two handshakes: the server side
of the client's, and the client side of its own to the mainframe. Both are run here
over memory BIOs with the contexts the gateway builds (``gateway.tls``), each timed on
its own side only (thread CPU time around that side's calls): no socket, event loop
or Python of the gateway's, so what is left of a lookup's cost beyond these two is the
proxy's own work (cpr_bench.breakdown). Each side does what uvloop's TLS transport
does with a handshake: wrap, handshake, read the peer's certificate, and (the client)
take the server's TLS 1.3 session tickets, which arrive after the handshake.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.backends.tls_resumption import ResumingContext
from gateway.tls import client_context, server_context

_SERVER_NAME = "localhost"


@dataclass(frozen=True, slots=True)
class HandshakeFloor:
    """CPU per handshake in µs: as the server (the client's hop), as the client (upstream)."""

    server_us: float
    client_us: float
    #: Whether the client side resumed a session (``measure(resumed=True)``).
    resumed: bool = False

    @property
    def both_us(self) -> float:
        return self.server_us + self.client_us


class _Side:
    """One end of a handshake over memory BIOs, with its own CPU clock."""

    def __init__(self, context: ssl.SSLContext, server: bool) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.cpu_ns = 0
        started = time.thread_time_ns()
        self.tls = context.wrap_bio(
            self.incoming, self.outgoing, server_side=server,
            server_hostname=None if server else _SERVER_NAME,
        )  # fmt: skip
        self.cpu_ns += time.thread_time_ns() - started
        self.done = False

    def step(self) -> None:
        """Handshake as far as the bytes so far allow; then the certificate, as uvloop does."""
        started = time.thread_time_ns()
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        else:
            self.done = True
            self.tls.getpeercert()
        self.cpu_ns += time.thread_time_ns() - started

    def read_tickets(self) -> None:
        """Take what came after the handshake (a TLS 1.3 server's session tickets)."""
        started = time.thread_time_ns()
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.read(1)
        self.cpu_ns += time.thread_time_ns() - started


def _pass(source: _Side, sink: _Side) -> None:
    data = source.outgoing.read()
    if data:
        sink.incoming.write(data)


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> tuple[int, int]:
    """One handshake: (server's, client's) CPU ns. A resuming client context gets the
    connection back afterwards, as the legacy backend hands it back (untimed: it costs
    nothing once a session is stored)."""
    c, s = _Side(client, server=False), _Side(server, server=True)
    for _ in range(10):
        c.step()
        _pass(c, s)
        s.step()
        _pass(s, c)
        if c.done and s.done:
            break
    else:
        raise RuntimeError("handshake did not finish in 10 flights")
    c.read_tickets()
    if isinstance(client, ResumingContext):
        # As a call ends: close_notify sent, then the connection handed back (a session
        # whose connection ends without one is one OpenSSL will not resume).
        with contextlib.suppress(ssl.SSLWantReadError):
            c.tls.unwrap()
        client.keep(c.tls)
    return s.cpu_ns, c.cpu_ns


def _client(ca: Path, resumed: bool = False) -> ssl.SSLContext:
    context = client_context(ca, kind=ResumingContext if resumed else ssl.SSLContext)
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF  # as the legacy backend's
    return context


def measure(
    gateway: tuple[Path, Path],
    mainframe: tuple[Path, Path],
    ca: Path,
    count: int = 300,
    *,
    resumed: bool = False,
) -> HandshakeFloor:
    """Median CPU of ``count`` handshakes each way: the gateway's certificate and key as the
    server, and as a client verifying the mainframe's (both signed by ``ca``); with
    ``resumed``, the client offers the session of an earlier handshake, as the legacy
    backend's ``tls_resumption`` does (the copy of the session it hands OpenSSL included)."""
    as_server = server_context(*gateway)
    towards_mainframe = server_context(*mainframe)
    client = _client(ca)
    upstream = _client(ca, resumed)
    for _ in range(10):  # warm: the first handshakes load providers and decoders
        _handshake(client, as_server)
    servers = sorted(_handshake(client, as_server)[0] for _ in range(count))
    _handshake(upstream, towards_mainframe)  # a full one first: the session to offer
    clients = sorted(_handshake(upstream, towards_mainframe)[1] for _ in range(count))
    if resumed and getattr(upstream, "resumed", 0) != count:
        raise RuntimeError("the server side did not resume every session offered")
    return HandshakeFloor(servers[count // 2] / 1e3, clients[count // 2] / 1e3, resumed)

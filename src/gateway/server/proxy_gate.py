"""A listener behind a load balancer: a PROXY v2 header first, then TLS, then the connection's
own protocol, told whose connection it is.

A load balancer in TCP mode (HAProxy ``send-proxy-v2``) opens each connection it relays
with a PROXY protocol v2 header, in clear, ahead of the client's TLS. A listener with
``proxy_protocol`` configured therefore accepts its connections itself (a
:class:`GatedServer` instead of ``loop.create_server``) and looks at each socket before
anything wraps it:

* from a source outside the trusted networks nothing is read: the socket becomes a
  connection at once, as on any listener (TLS, then the request), and a PROXY header it
  sends is just bad bytes; it cannot claim another address;
* from a trusted source the header is read first, within the read timeout and never a
  byte past it (``recv`` of exactly what the header still needs: the rest is TLS); a
  missing, garbled or late header closes the socket unanswered and is reported; a good
  one names the client (None for a LOCAL header, the balancer's own health check, or an
  address family other than TCP).

Then ``loop.connect_accepted_socket`` wraps the socket, with TLS when the listener has
it, exactly as ``create_server`` would have. Reading in clear before TLS needs the socket
before any transport has read from it, which neither asyncio nor uvloop lets a protocol
of ``create_server`` have; the price is an accept loop and a task per connection until
its handshake is done, paid only by a listener with the setting.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Callable

from gateway.codec.proxy_protocol import Address, ProxyHeaderReader
from gateway.config.schema import ProxyProtocol
from gateway.errors import ProxyHeaderError
from gateway.runtime.tasks import TaskSet

#: Builds a connection's own protocol, given the client a trusted proxy named; None when the
#: socket's peer is the client (an untrusted source, a LOCAL header, an UNSPEC family).
ConnectionFactory = Callable[[Address | None], asyncio.Protocol]
#: Hears of a trusted source whose header was missing, bad or late: the socket's peer
#: (``host:port``), what was wrong, and how many bytes it sent. The socket is then closed.
RejectHook = Callable[[str, ProxyHeaderError, int], None]
#: accept() errors that mean "out of descriptors or memory for now": wait, then accept again
#: (asyncio's own servers wait the same second).
_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_RETRY_S = 1.0


async def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A socket listening on ``host``'s first address (a name is resolved) and ``port``."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, _type, _proto, _name, address = infos[0]
    return socket.create_server(address, family=family, backlog=backlog)


class GatedServer:
    """Accepts on a listening socket and lets each connection through its door."""

    def __init__(
        self,
        trusted: ProxyProtocol,
        context: ssl.SSLContext | None,
        factory: ConnectionFactory,
        patience: Callable[[], float],
        rejected: RejectHook,
    ) -> None:
        self._trusted = trusted
        self._context = context
        self._factory = factory
        #: Seconds a connection has for its header, and again for its TLS handshake.
        self._patience = patience
        self._rejected = rejected
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._acceptor = TaskSet()
        #: Connections not yet through the door (reading a header, or in their handshake).
        self._doors = TaskSet()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening socket, while there is one."""
        return () if self._sock is None else (self._sock,)

    def start(self, sock: socket.socket) -> None:
        """Accept on ``sock`` (listening) from now on; it is closed by :meth:`close`."""
        sock.setblocking(False)
        self._sock = sock
        self._accepting = self._acceptor.spawn(self._accept_forever(sock), name="accept-gated")

    def is_serving(self) -> bool:
        """True while connections are accepted."""
        return self._accepting is not None and not self._accepting.done()

    def close(self) -> None:
        """Stop accepting and close the listening socket; connections accepted carry on."""
        if self._accepting is not None:
            self._accepting.cancel("listener closed")
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def aclose(self) -> None:
        """At shutdown, after :meth:`close`: connections not yet through the door are closed,
        as if they had come a moment later."""
        await self._acceptor.drain(0.0, "listener closed")
        await self._doors.drain(0.0, "shutdown: not yet through the door")

    async def _accept_forever(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, address = await loop.sock_accept(listening)
            except ConnectionAbortedError:
                continue  # the client left while queued
            except OSError as exc:
                if exc.errno not in _RESOURCES:
                    raise  # the listening socket is gone
                await asyncio.sleep(_ACCEPT_RETRY_S)
                continue
            self._doors.spawn(self._let_in(sock, address), name="gated-connection")

    async def _let_in(self, sock: socket.socket, address: object) -> None:
        """Read a trusted source's header, then make the socket a connection; a socket that
        does not become one is closed here."""
        through = False
        try:
            sock.setblocking(False)
            source = await self._source(sock, address)
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: self._factory(source),
                sock,
                ssl=self._context,
                ssl_handshake_timeout=self._patience() if self._context else None,
            )
            through = True
        except ProxyHeaderError:
            pass  # reported by _source
        except OSError:
            pass  # a failed or timed-out handshake: unseen, as on any TLS listener
        finally:
            if not through:
                sock.close()

    async def _source(self, sock: socket.socket, address: object) -> Address | None:
        """The client a trusted source's header names; None from any other source."""
        host, port = _host_port(address)
        if not self._trusted.trusts(host):
            return None
        reader = ProxyHeaderReader()
        try:
            return await self._header(sock, reader)
        except ProxyHeaderError as exc:
            self._rejected(f"{host}:{port}", exc, reader.received)
            raise

    async def _header(self, sock: socket.socket, reader: ProxyHeaderReader) -> Address | None:
        """The client a trusted source's header names, read within the patience."""
        return await read_proxy_header(sock, reader, self._patience())


async def read_proxy_header(
    sock: socket.socket, reader: ProxyHeaderReader, patience: float
) -> Address | None:
    """The client the PROXY v2 header on ``sock`` names (None: LOCAL or not TCP), read
    within ``patience`` seconds and never a byte past it (the rest is TLS); a missing,
    garbled or late header is a ProxyHeaderError, ``reader.received`` bytes in."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(patience):
            while True:
                data = await loop.sock_recv(sock, reader.missing)  # never past the header
                if not data:
                    raise reader.end_of_stream()
                header = reader.receive_data(data)
                if header is not None:
                    return header.source
    except TimeoutError:
        raise ProxyHeaderError(f"no whole PROXY header within {patience:g}s") from None
    except ConnectionError:
        raise reader.end_of_stream() from None


def _host_port(address: object) -> tuple[str, object]:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), address[1]
    return "", ""

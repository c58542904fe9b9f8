"""The legacy backend: a CPR Direkte server (the mainframe, or its emulator) over TCP/TLS.

It speaks exactly what clients speak: a new connection per request, the client's
bytes written unchanged, the answer read until EOF. The answer's shape is
checked and its bytes are returned untouched, so the gateway relays them
byte-identically. This is the only place that sees OSError, ssl.SSLError or a
timeout from this kind of backend; each becomes a BackendError. Over TLS, connections
resume the session of a recent verified handshake (``tls_resumption``,
gateway.backends.tls_resumption).

With ``proxy_protocol: true`` each connection opens with a PROXY v2 header, in clear
ahead of TLS, naming the client (its address; port 0, which the gateway does not pass
on), so that the server's per-address rules (the customers' IP allow-lists) apply to
the client and not to the gateway. A call without an origin sends a LOCAL header.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Iterator, Mapping
from typing import cast

from gateway.backends.base import Backend
from gateway.backends.breaker import BreakerBackend
from gateway.backends.connection_line import ConnectionLine
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.backends.spares import Spares
from gateway.backends.tls_resumption import ResumingContext
from gateway.codec import LogonRequest, Request
from gateway.codec.headers import (
    HEADER_LENGTH,
    LOGON_ANSWER_LENGTH,
    MAX_ANSWER_LENGTH,
    answer_fejlnr,
    answer_length_field,
)
from gateway.codec.proxy_protocol import Address, encode_header
from gateway.errors import (
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
)
from gateway.observe.events import EventBus, TlsSession
from gateway.tls import client_context

#: A backend that has sent EOF finishes closing at once; this bounds one that does not.
_CLOSE_TIMEOUT_S = 1.0


class LegacyBackend:
    """One named CPR Direkte server."""

    def __init__(
        self,
        config: LegacyBackendConfig,
        context: ssl.SSLContext | None,
        bus: EventBus | None = None,
    ) -> None:
        self._config = config
        self._context = context
        #: The context again when it offers sessions (``tls_resumption``), which each
        #: call's connection is handed back to.
        self._resuming = context if isinstance(context, ResumingContext) else None
        self._bus = bus
        self._server_name = (config.tls.server_name if config.tls else None) or config.host
        self._line = ConnectionLine(config.name, config.max_connections, config.queue_target)
        #: Connections opened ahead of requests (``spare_connections``); None: none are.
        self._spares: Spares[_Exchange] | None = None
        if config.spare_connections:
            count, age = config.spare_connections, config.spare_max_age
            self._spares = Spares(self._open_spare, count, age)

    @classmethod
    def from_config(cls, config: LegacyBackendConfig, bus: EventBus | None = None) -> LegacyBackend:
        """Build it, loading the CA (and the client certificate, when ``tls`` names one) now, so
        a bad file fails at start, not at the first request.

        ``bus`` hears of each TLS session stored to be offered, and of each the server did
        not resume (the dispatcher reports the calls themselves).
        """
        if config.tls is None:
            return cls(config, None, bus)
        tls = config.tls
        kind = ResumingContext if config.tls_resumption else ssl.SSLContext
        try:
            context = client_context(tls.ca, kind=kind)
        except (OSError, ssl.SSLError) as exc:
            where = f"backends.{config.name}.tls.ca"
            raise ConfigError([f"{where}: cannot load {tls.ca}: {exc}"]) from None
        if tls.cert is not None and tls.key is not None:  # presented when the server asks
            try:
                context.load_cert_chain(tls.cert, tls.key)
            except (OSError, ssl.SSLError) as exc:
                where = f"backends.{config.name}.tls.cert"
                raise ConfigError([f"{where}: cannot load {tls.cert}: {exc}"]) from None
        # A peer that closes without TLS close_notify has still sent a whole answer;
        # the shape check below catches a truncated one.
        context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
        return cls(config, context, bus)

    @property
    def name(self) -> str:
        """The backend's name from routing.yaml."""
        return self._config.name

    @property
    def handshakes(self) -> tuple[int, int]:
        """TLS connections answered so far that resumed a session, and that did not; (0, 0)
        without ``tls_resumption`` (or TLS)."""
        if self._resuming is None:
            return 0, 0
        return self._resuming.resumed, self._resuming.full

    async def call(
        self,
        request: Request,
        raw: bytes,
        *,
        deadline: float,
        origin: str | None = None,
        repeat: bool = False,
    ) -> bytes:
        """Send ``raw`` on a new connection and return the answer bytes, shape-checked.

        Waits for one of the ``max_connections`` connections first (or is refused,
        BackendBusy, while their line stands); the wait counts against ``deadline`` like
        the rest of the call. ``origin`` (the client's IP
        address) goes in the PROXY header when the backend is configured to get one.
        With ``spare_connections`` the request goes on a connection opened ahead when one
        is ready; one the server closed as the request went on it (nothing came back)
        gives way to a new connection.
        ``repeat`` cannot be told to a CPR Direkte server: the dispatcher holds back
        repeats it refused instead (gateway.sessions.refused_repeats).
        """
        exchange: _Exchange | None = None
        slot = False
        try:
            async with asyncio.timeout(deadline):
                await self._line.acquire()
                slot = True
                answer: bytes | None = None
                spares = self._spares
                if spares is not None and (exchange := spares.take()) is not None:
                    answer = await _answer_on_spare(exchange, raw)
                    if answer is None:
                        exchange.close()
                        spares.gave_way()
                if answer is None:
                    exchange = await self._connect(origin)
                    exchange.send(raw)
                    answer = await exchange.answer
            if self._resuming is not None and exchange is not None:  # (it is: answered on it)
                self._keep_session(exchange)
        except TimeoutError:
            if not slot:
                what = f"no free connection of {self._config.max_connections}"
                raise BackendTimeout(f"{self.name}: {what} within {deadline:g}s") from None
            raise BackendTimeout(f"{self.name}: no answer within {deadline:g}s") from None
        except ssl.SSLError as exc:
            if self._resuming is not None:
                self._resuming.forget()
            raise BackendUnavailable(f"{self.name}: TLS: {exc.reason or exc}") from None
        except OSError as exc:
            raise BackendUnavailable(f"{self.name}: {_describe(exc)}") from None
        finally:
            if exchange is not None:
                exchange.close()
            if slot:
                self._line.release()
        _check_shape(self.name, request, answer)
        return answer

    def _keep_session(self, exchange: _Exchange) -> None:
        """Hand the answered connection's TLS session to the context (tls_resumption)."""
        assert self._resuming is not None and exchange.transport is not None
        outcome = self._resuming.keep(exchange.transport.get_extra_info("ssl_object"))
        if outcome is not None and self._bus is not None:
            self._bus.emit(TlsSession(self.name, outcome))

    @property
    def spares(self) -> Mapping[str, int] | None:
        """What became of spare connections, by outcome (gateway.observe.events.SPARE_OUTCOMES);
        None without ``spare_connections``."""
        return None if self._spares is None else self._spares.outcomes

    async def aclose(self) -> None:
        """Close the spare connections; every call closes its own."""
        if self._spares is not None:
            await self._spares.aclose()

    async def _open_spare(self) -> _Exchange:
        """A connection for a request not yet come: no client to name (``spare_connections``
        and ``proxy_protocol`` do not go together). One that takes longer than a spare may
        wait is given up (a call's own deadline bounds its handshake; a spare has none)."""
        try:
            async with asyncio.timeout(self._config.spare_max_age):
                return await self._connect(None)
        except ssl.SSLError:
            if self._resuming is not None:
                self._resuming.forget()  # as after a call's TLS failure
            raise

    async def _connect(self, origin: str | None) -> _Exchange:
        """TCP connect within the connect timeout, the PROXY header if configured, then the
        TLS handshake (which sends what was written before it first).

        The connect timeout catches a backend that is not there; the handshake is
        bounded by the route's deadline like the rest of the call, because under a
        burst a live backend may take a while to get to our handshake.
        """
        loop = asyncio.get_running_loop()
        exchange = _Exchange(self.name, loop)
        timeout = self._config.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(
                    lambda: exchange, self._config.host, self._config.port
                )
        except TimeoutError:
            raise BackendUnavailable(f"{self.name}: no connection within {timeout:g}s") from None
        if self._config.proxy_protocol:
            transport.write(_proxy_header(origin, transport.get_extra_info("peername")))
        if self._context is not None:
            try:
                tls = await loop.start_tls(
                    transport, exchange, self._context, server_hostname=self._server_name
                )
            except BaseException:
                exchange.close()  # aborts, and nobody is left to take the failure as an answer
                raise
            assert tls is not None  # None only when the transport was closing: it raised
            exchange.transport = tls  # what the call writes to from now on
        return exchange


class _Exchange(asyncio.Protocol):
    """One call's connection: the request written, the answer collected until the backend
    closes. A protocol of its own rather than streams: a call costs no StreamReader,
    StreamWriter or read loop, and no wait for the close after the answer is whole."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self._name = name
        self._loop = loop
        self._data = bytearray()
        #: The answer's bytes once the backend has closed (EOF, with or without TLS
        #: close_notify); the error if the connection failed or the answer grew too long.
        self.answer: asyncio.Future[bytes] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._lost = False
        self._slow_close: asyncio.TimerHandle | None = None

    @property
    def usable(self) -> bool:
        """Connected, TLS done, nothing received, not closing: a request may go on it."""
        transport = self.transport
        return (
            transport is not None
            and not self._lost
            and not self._data
            and not self.answer.done()
            and not transport.is_closing()
        )

    @property
    def received(self) -> int:
        """Bytes of the answer so far."""
        return len(self._data)

    def send(self, raw: bytes) -> None:
        assert self.transport is not None, "not connected"
        self.transport.write(raw)

    def close(self) -> None:
        """After the call: a whole answer lets the connection finish closing by itself, within
        a bound; anything else (a failure, a deadline) aborts it at once."""
        answered = False
        if not self.answer.done():
            self.answer.cancel()  # nobody waits for it any more
        elif not self.answer.cancelled():
            answered = self.answer.exception() is None  # (an error is taken, never left lying)
        if self._lost or self.transport is None:
            return
        if answered:
            self._slow_close = self._loop.call_later(_CLOSE_TIMEOUT_S, self.transport.abort)
        else:
            self.transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called for the TCP transport only: start_tls does not call it again for the TLS
        # transport, which _connect sets once the handshake is done.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._data += data
        if len(self._data) > MAX_ANSWER_LENGTH and not self.answer.done():
            message = f"{self._name}: answer longer than {MAX_ANSWER_LENGTH} bytes"
            self.answer.set_exception(BackendProtocolError(message))
            assert self.transport is not None
            self.transport.abort()

    def eof_received(self) -> bool:
        self._finish(None)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._slow_close is not None:
            self._slow_close.cancel()
        self._finish(exc)

    def _finish(self, exc: Exception | None) -> None:
        if self.answer.done():
            return
        if exc is None:
            self.answer.set_result(bytes(self._data))
        else:
            self.answer.set_exception(exc)


def spare_outcomes(backends: Mapping[str, Backend]) -> Iterator[tuple[str, Mapping[str, int]]]:
    """Each legacy backend with spares (behind its breaker or not): its name and what became
    of its spares (``LegacyBackend.spares``), for the metrics at scrape time."""
    for name, backend in backends.items():
        inner = backend.backend if isinstance(backend, BreakerBackend) else backend
        if isinstance(inner, LegacyBackend) and inner.spares is not None:
            yield name, inner.spares


async def _answer_on_spare(exchange: _Exchange, raw: bytes) -> bytes | None:
    """``raw`` sent on a spare connection and its answer; None when the server had closed it
    (reset, or EOF before a byte): the request did not reach it, so it may go again."""
    exchange.send(raw)
    try:
        answer = await exchange.answer
    except OSError:
        if exchange.received:
            raise
        return None
    return answer or None


def _proxy_header(origin: str | None, backend: object) -> bytes:
    """A header for the client at ``origin``; its destination is the backend's own address
    (the client's connection to the gateway is not the adapter's to know)."""
    source = None if origin is None else _address(origin, 0)
    destination = _address(*backend[:2]) if isinstance(backend, tuple) else None
    return encode_header(source, destination)


def _address(host: object, port: object) -> Address | None:
    """``host`` and ``port`` as an Address; None when ``host`` is not an IP address."""
    try:
        return Address(ipaddress.ip_address(str(host)), int(str(port)))
    except ValueError:
        return None


def _check_shape(name: str, request: Request, answer: bytes) -> None:
    """The wire contract's shape (spec §4); contents are the backend's business."""
    fejlnr = answer_fejlnr(answer)
    if isinstance(request, LogonRequest):
        if len(answer) != LOGON_ANSWER_LENGTH:
            raise BackendProtocolError(f"{name}: logon answer of {len(answer)} bytes, not 24")
    else:
        length = answer_length_field(answer)
        if len(answer) < HEADER_LENGTH or not _is_digits(length):
            raise BackendProtocolError(
                f"{name}: lookup answer of {len(answer)} bytes has no header"
            )
        if int(length) != len(answer):
            raise BackendProtocolError(
                f"{name}: length field says {int(length)}, answer has {len(answer)} bytes"
            )
    if not _is_digits(fejlnr):
        raise BackendProtocolError(f"{name}: FEJLNR is not two digits")


def _is_digits(data: bytes) -> bool:
    return data.isascii() and data.isdigit()


def _describe(exc: OSError) -> str:
    """A short fact about a socket error (addresses and errno text; never payload)."""
    return f"{type(exc).__name__}: {exc.strerror or exc}"

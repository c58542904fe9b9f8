"""The emulator's listener: one request per connection, one write, close — like CPR Direkte.

Per connection (gateway.server.connection): frame one request within the read timeout
(else close without an answer: spec §1 project rule);
answer 04 in a maintenance window; otherwise take one of ``regions`` transaction
slots, as a mainframe region would, waiting in a queue of at most ``queue_limit``
(beyond it: 08 at once); spend ``service_time_ms`` in the slot; write the whole
answer in a single ``write`` and close without waiting for the client's EOF.

With ``listen.proxy_protocol`` set, connections from its trusted networks (a gateway
whose legacy backend has ``proxy_protocol: true``, or a load balancer) open with a
PROXY v2 header, read before TLS (gateway.server.proxy_gate); the client it names is the address the
customers' allow-lists (FEJLNR 16) are checked against.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass, field

import structlog

from cpr_accounts.auth import Authenticator
from cpr_accounts.clock import Clock, utc_now
from cpr_accounts.customers import IPAddress
from cpr_accounts.state import StateStore
from cpr_accounts.tokens import Sessions
from cpr_mainframe.handler import Handler, Outcome, refusal
from cpr_mainframe.handler import in_maintenance as closed_for_maintenance
from cpr_mainframe.register.store import Register
from cpr_mainframe.schema import EmulatorConfig
from gateway.codec import Request
from gateway.codec.proxy_protocol import Address
from gateway.errors import ConfigError, FramingError, ProxyHeaderError
from gateway.model import FejlNr
from gateway.observe.events import PROXY_HEADER
from gateway.server.connection import Connections, OneRequest, describe_failure
from gateway.server.proxy_gate import GatedServer, listening_socket
from gateway.tls import server_context

_log = structlog.get_logger("cpr_mainframe")

#: Reason label for a connection refused because max_connections are open.
OVER_CONNECTIONS = "over_connections"


@dataclass
class EmulatorStats:
    """Counters since start: why connections closed unanswered, and answers by FEJLNR."""

    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    answered: collections.Counter[FejlNr] = field(default_factory=collections.Counter)


class Emulator:
    """A CPR Direkte server answering from a synthetic register, like the mainframe does."""

    def __init__(self, config: EmulatorConfig, *, clock: Clock = utc_now) -> None:
        self.config = config
        self.stats = EmulatorStats()
        self._clock = clock
        self._regions = asyncio.Semaphore(config.regions)
        self._busy = 0
        self._queued = 0
        self._connections = Connections()
        self._server: asyncio.Server | GatedServer | None = None
        self._handler: Handler | None = None
        self._register: Register | None = None
        self._state: StateStore | None = None

    @property
    def busy(self) -> int:
        """Transaction slots (regions) in use right now."""
        return self._busy

    @property
    def queued(self) -> int:
        """Requests waiting for a free region right now."""
        return self._queued

    @property
    def connections(self) -> int:
        """Client connections open right now."""
        return len(self._connections)

    @property
    def state(self) -> StateStore:
        """The state store (users, subscriptions); only while running."""
        assert self._state is not None, "the emulator is not running"
        return self._state

    async def start(self) -> tuple[str, int]:
        """Open register and state, seed users, listen; returns the bound (host, port)."""
        context = _tls_context(self.config)
        try:
            self._register = Register.open(self.config.register)
            self._state = StateStore.open(self.config.state)
            auth = Authenticator(self._state, self.config.password_cost)
            await self._seed(auth)
            sessions = Sessions(dt.timedelta(minutes=self.config.token_idle_minutes))
            self._handler = Handler(
                self.config,
                register=self._register,
                state=self._state,
                auth=auth,
                sessions=sessions,
                clock=self._clock,
            )
            self._server = await self._listen(context)
        except BaseException:
            await self.aclose(0)
            raise
        host, port = self._server.sockets[0].getsockname()[:2]
        _log.info("emulator listening", host=host, port=port, tls=context is not None)
        return str(host), int(port)

    async def _listen(self, context: ssl.SSLContext | None) -> asyncio.Server | GatedServer:
        listen = self.config.listen
        if listen.proxy_protocol is not None:  # a trusted source's header comes before TLS
            server = GatedServer(
                listen.proxy_protocol,
                context,
                self._connection,
                lambda: self.config.read_timeout_s,
                self._bad_header,
            )
            backlog = self.config.max_connections
            server.start(await listening_socket(listen.host, listen.port, backlog))
            return server
        return await asyncio.get_running_loop().create_server(
            self._connection,
            self.config.listen.host,
            self.config.listen.port,
            ssl=context,
            # A client stalling its handshake is as slow as one stalling its record.
            ssl_handshake_timeout=self.config.read_timeout_s if context else None,
            # Room in the accept queue for a burst up to the connection limit (default: 100).
            backlog=self.config.max_connections,
        )

    async def aclose(self, grace: float) -> None:
        """Stop accepting, give in-flight requests ``grace`` seconds, then close everything."""
        if self._server is not None:
            self._server.close()
            if isinstance(self._server, GatedServer):
                await self._server.aclose()
            self._server = None
        cancelled = await self._connections.drain(grace, "emulator shutdown: grace period over")
        if cancelled:
            _log.warning("emulator shutdown cancelled requests", cancelled=cancelled)
        for closing in (self._register, self._state):
            if closing is not None:
                closing.close()
        self._register = self._state = None

    async def _seed(self, auth: Authenticator) -> None:
        """Users in config but not yet in the state get their configured password now."""
        now = self._clock()
        for customer in self.config.customers:
            for user in customer.users:
                if await auth.seed(customer.number, user.id, user.password, now):
                    _log.info("emulator user seeded", customer=customer.number, user=user.id)

    def _connection(self, source: Address | None = None) -> _Client:
        return _Client(self, source)

    def _bad_header(self, peer: str, error: ProxyHeaderError, received: int) -> None:
        self.stats.rejected[PROXY_HEADER] += 1
        _log.warning(
            "emulator request rejected",
            reason=PROXY_HEADER,
            detail=str(error),
            received=received,
            peer=peer,
        )

    async def _answer(self, request: Request, peer: IPAddress | None) -> Outcome:
        """04 when closed, 08 when the queue is full, else the handler's answer in a region."""
        assert self._handler is not None
        if closed_for_maintenance(self.config, self._clock()):
            return refusal(request, FejlNr.CLOSED)
        if self._regions.locked() and self._queued >= self.config.queue_limit:
            return refusal(request, FejlNr.NOT_ACTIVE)
        self._queued += 1
        try:
            await self._regions.acquire()
        finally:
            self._queued -= 1
        self._busy += 1
        try:
            if self.config.service_time_ms:
                await asyncio.sleep(self.config.service_time_ms / 1000)
            return await self._handler.handle(request, peer)
        finally:
            self._busy -= 1
            self._regions.release()


class _Client(OneRequest):
    """One client connection of the emulator: counted in its stats, answered by its handler."""

    def __init__(self, emulator: Emulator, source: Address | None = None) -> None:
        super().__init__(emulator._connections, emulator.config.read_timeout_s)
        self._emulator = emulator
        #: The client a trusted proxy named; None: the socket's peer is the client.
        self._source = source

    def admit(self) -> bool:
        if len(self._emulator._connections) >= self._emulator.config.max_connections:
            self._emulator.stats.rejected[OVER_CONNECTIONS] += 1
            return False
        return True

    async def answer(self, request: Request, record: bytes) -> bytes:
        started = asyncio.get_running_loop().time()
        client = _peer(self.transport) if self._source is None else self._source.ip
        outcome = await self._emulator._answer(request, client)
        self._emulator.stats.answered[outcome.fejlnr] += 1
        _log.info(
            "emulator request",
            operation=outcome.operation.value,
            customer=outcome.customer,
            fejlnr=outcome.fejlnr.value,
            duration_ms=round((asyncio.get_running_loop().time() - started) * 1000, 1),
        )
        return outcome.answer

    def rejected(self, error: FramingError, received: int) -> None:
        self._emulator.stats.rejected[error.reason] += 1
        _log.warning("emulator request rejected", reason=error.reason, received=received)

    def failed(self, error: Exception) -> None:
        _log.error("emulator internal error", where=describe_failure(error))


def _tls_context(config: EmulatorConfig) -> ssl.SSLContext | None:
    if config.tls is None:
        return None
    try:
        tls = config.tls
        return server_context(tls.cert, tls.key, client_ca=tls.client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"tls: cannot load {config.tls.cert}: {exc}"]) from None


def _peer(transport: asyncio.BaseTransport) -> IPAddress | None:
    """The client's address; an IPv4-mapped IPv6 address counts as the IPv4 one."""
    address = transport.get_extra_info("peername")
    if not (isinstance(address, tuple) and address):
        return None
    try:
        ip = ipaddress.ip_address(str(address[0]))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip

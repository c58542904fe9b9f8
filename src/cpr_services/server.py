"""The modern backend's gRPC server: cpr.v1 services, standard health, reflection.

``cpr-gateway backend`` runs one :class:`ModernServer`. Customers and users come
from an emulator.yaml-format config (only ``customers``, ``password_cost`` and
``token_idle_minutes`` are used here); users not yet in the store are seeded
with their configured password at start, as the emulator does, and from then on
the store's password digests are the truth. Persons come from the store
(``cpr-gateway migrate`` fills it), and so do sessions: any server on the same
store accepts a token another issued, and a restart logs nobody out.

Health (``grpc.health.v1.Health``) answers SERVING for ``""`` and each cpr.v1
service while the server runs and NOT_SERVING from the start of shutdown, so a
load balancer stops sending before calls are cut off. Reflection lists the
cpr.v1 services, health and reflection itself.

The server accepts the gateway's keepalive pings (paired in :mod:`gateway.backends.grpc_wire`),
and checks allow-lists against the client address a trusted gateway sends
(``trusted_gateways``; :func:`cpr_services.services.caller_address`).

With ``tls`` it serves TLS, and with a client CA it requires client certificates (mutual
TLS). Every call needs a valid session or the gateway's identity (``gateway_identities``,
the common names of the gateway's client certificates): :mod:`cpr_services.access`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection  # type: ignore[import-untyped]

from cpr_accounts.auth import Authenticator
from cpr_accounts.clock import Clock, utc_now
from cpr_accounts.customers import Directory, IPNetwork
from cpr_services.access import CallerCheck
from cpr_services.drift import Drift
from cpr_services.services import (
    NO_DRIFT,
    AuthServicer,
    Pace,
    PersonServicer,
    SubscriptionServicer,
)
from cpr_services.store import ModernStore
from gateway.backends.grpc_wire import ACCEPTED_PING_INTERVAL_S, server_keepalive_options
from gateway.cprv1.pb.cpr.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    person_pb2,
    person_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
)
from gateway.errors import ConfigError

_log = structlog.get_logger("cpr_services")

#: The cpr.v1 services, by full name (health entries and reflection).
SERVICE_NAMES = (
    person_pb2.DESCRIPTOR.services_by_name["PersonService"].full_name,
    subscription_pb2.DESCRIPTOR.services_by_name["SubscriptionService"].full_name,
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
)
#: Calls served at once; beyond it grpc answers RESOURCE_EXHAUSTED at once rather than
#: queueing without bound. Each call is one short store operation (or a password hash
#: on a worker thread), so this is far above what two cores get through in a call's deadline.
MAX_CONCURRENT_RPCS = 256
#: Every cpr.v1 request is a few short fields; a larger message is not from the gateway.
MAX_REQUEST_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ServiceTls:
    """The services' certificate and key, and the CA whose client certificates they require
    (None: no client certificate asked for)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """grpc's server credentials; ConfigError naming a file that cannot be read.

        With a client CA, a client certificate is required *and verified* (grpc only verifies
        one it requires): the gateway's identity is never read from an unverified one.
        """
        try:
            pair = (self.key.read_bytes(), self.cert.read_bytes())
            ca = self.client_ca.read_bytes() if self.client_ca is not None else None
        except OSError as exc:
            raise ConfigError(
                [f"backend: TLS: cannot read {exc.filename}: {exc.strerror}"]
            ) from None
        return grpc.ssl_server_credentials(
            [pair], root_certificates=ca, require_client_auth=ca is not None
        )


class ModernServer:
    """PersonService, SubscriptionService and AuthService on one port, plus health, reflection."""

    def __init__(
        self,
        config: Directory,
        store_path: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ServiceTls | None = None,
        gateway_identities: tuple[str, ...] = (),
        delay: float = 0.0,
        clock: Clock = utc_now,
        drift: Drift = NO_DRIFT,
        trusted_gateways: tuple[IPNetwork, ...] = (),
        accepted_ping_interval: float = ACCEPTED_PING_INTERVAL_S,
    ) -> None:
        """``delay`` (seconds) slows every call down: fault injection for deadline tests.

        ``drift`` makes the answers differ from the register on purpose, the way a
        migrated system realistically does (:mod:`cpr_services.drift`).
        ``trusted_gateways``: callers whose ``x-cpr-client-address`` the allow-lists use.
        ``accepted_ping_interval`` (seconds): keepalive pings arriving more often are strikes
        (a test pairs it with a short keepalive; the default pairs it with routing.yaml's).
        ``tls``: serve TLS (None: plaintext), and with ``tls.client_ca`` require client
        certificates; ``gateway_identities``: the common names of client certificates that are
        the gateway (cpr_services.access), which need ``tls.client_ca``.
        """
        if gateway_identities and (tls is None or tls.client_ca is None):
            raise ConfigError(["backend: --gateway-identity needs --client-ca (mutual TLS)"])
        self.gateway_identities = frozenset(gateway_identities)
        self.trusted_gateways = trusted_gateways
        self._accepted_ping_interval = accepted_ping_interval
        self.config = config
        self.store_path = store_path
        self.host = host
        self._port = port
        self._tls = tls
        self._clock = clock
        #: The drift every PersonService and ValidateSession answer carries.
        self.drift = drift
        #: The pacing every call goes through; ``pace.cancelled`` counts abandoned calls.
        self.pace = Pace(delay)
        self._store: ModernStore | None = None
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()

    async def start(self) -> int:
        """Open the store, seed users, listen and serve; returns the bound port."""
        try:
            self._store = ModernStore.open(self.store_path)
            auth = Authenticator(self._store.state, self.config.password_cost)
            await self._seed(auth)
            self._server = self._build(auth)
            port = self._bind(self._server)
            await self._server.start()
            for name in ("", *SERVICE_NAMES):
                await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        except BaseException:
            await self.aclose(0)
            raise
        _log.info(
            "modern backend listening",
            host=self.host,
            port=port,
            drift=str(self.drift),
            trusted_gateways=[str(network) for network in self.trusted_gateways],
            tls="off" if self._tls is None else "mutual" if self._tls.client_ca else "on",
            gateway_identities=sorted(self.gateway_identities),
        )
        return port

    async def aclose(self, grace: float | None = 5.0) -> None:
        """Report NOT_SERVING, let calls in flight finish for ``grace`` seconds, close the store."""
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def _build(self, auth: Authenticator) -> grpc.aio.Server:
        assert self._store is not None  # opened by start() just before
        sessions = self._store.sessions(dt.timedelta(minutes=self.config.token_idle_minutes))
        auth_service = AuthServicer(
            self.config,
            auth,
            sessions,
            self.pace,
            self._clock,
            drift=self.drift,
            trusted_gateways=self.trusted_gateways,
            gateway_identities=self.gateway_identities,
        )
        server = grpc.aio.server(
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
            interceptors=[CallerCheck(self.gateway_identities, auth_service.authorize)],
            options=[
                ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                # grpc shares a port with any other process by default; a taken port must fail.
                ("grpc.so_reuseport", 0),
                *server_keepalive_options(self._accepted_ping_interval),
            ],
        )
        person_pb2_grpc.add_PersonServiceServicer_to_server(
            PersonServicer(self._store, self.pace, auth_service.authorize, self.drift), server
        )
        subscription_pb2_grpc.add_SubscriptionServiceServicer_to_server(
            SubscriptionServicer(self._store, self.pace, self._clock), server
        )
        auth_pb2_grpc.add_AuthServiceServicer_to_server(auth_service, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        return server

    def _bind(self, server: grpc.aio.Server) -> int:
        address = f"{self.host}:{self._port}"
        try:
            if self._tls is None:
                return server.add_insecure_port(address)
            return server.add_secure_port(address, self._tls.credentials())
        except RuntimeError as exc:  # grpc's way of saying the address is taken or invalid
            raise ConfigError([f"backend: cannot listen on {address}: {exc}"]) from None

    async def _seed(self, auth: Authenticator) -> None:
        """Users in config but not yet in the store get their configured password now."""
        now = self._clock()
        for customer in self.config.customers:
            for user in customer.users:
                if await auth.seed(customer.number, user.id, user.password, now):
                    _log.info("modern backend user seeded", customer=customer.number, user=user.id)

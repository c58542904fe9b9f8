"""Lifecycle of the gateway: build from config, start the listeners, reload, drain on a signal.

Shutdown runs in a fixed order: /readyz turns 503 and the client port stops
accepting; in-flight requests get the grace period to finish; stragglers are
cancelled with a reason; then waiting shadow copies are dropped and running ones
get the grace period too; backends, the mismatch store and the admin server
close last.

Reloads (file change, SIGHUP, or :meth:`Gateway.reload`) re-read the file the
config came from. A valid file replaces routes, backends and limits for new
requests without dropping one in flight; an invalid one is rejected with its
path-qualified problems and the previous config stays in force. The listen and
admin addresses are bound sockets: a change to them is not applied until a
restart, and the gateway says so (log warning, ``cpr_gateway_config_restart_pending``).
"""

from __future__ import annotations

import asyncio
import functools
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import replace

from gateway.audit.writer import AuditLog, open_audit_log
from gateway.backends import Backend, build_backend
from gateway.backends.legacy import spare_outcomes
from gateway.canary.controller import CanaryController
from gateway.canary.evidence import RunnerTallies, ShadowTallies, StoreTallies
from gateway.config.diff import diff_configs, restart_needed
from gateway.config.load import load_routing
from gateway.config.schema import GatewayConfig, RequestLines, Route
from gateway.config.shadows import shadow_policies
from gateway.config.watch import FileWatcher
from gateway.dispatch import Dispatcher
from gateway.errors import ConfigError
from gateway.observe.events import (
    ConfigRejected,
    ConfigReloaded,
    ConnectionClosed,
    ConnectionOpened,
    Event,
    EventBus,
    Lifecycle,
    LookupAnswered,
    LoopLagSampled,
    OpenFileLimit,
    RequestCompleted,
)
from gateway.observe.logs import LOGGED, log_event
from gateway.observe.metrics import COUNTED, Metrics
from gateway.routing import RouteTable
from gateway.runtime import heap
from gateway.runtime.elders import Elders
from gateway.runtime.open_files import needed_for, raise_open_files
from gateway.runtime.pressure import LoopLag
from gateway.runtime.tasks import TaskSet
from gateway.server.admin import AdminServer
from gateway.server.api import AdminApi
from gateway.server.certificates import ListenerCertificates
from gateway.server.tcp import ClientListener
from gateway.server.tokens import AdminTokens, read_tokens
from gateway.sessions.peers import PeerDirectory, SessionPeers
from gateway.sessions.shared import SharedSessions
from gateway.sessions.table import SessionBroker
from gateway.shadow.pseudonym import Pseudonymiser, load_key
from gateway.shadow.runner import ShadowRunner
from gateway.shadow.sealing import Sealer
from gateway.shadow.store import MismatchStore
from gateway.shadow.writer import START_WAIT_S, SampleWriter
from gateway.storage.database import is_dsn
from gateway.tls import bound_tls_buffers

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Seconds between polls of the config file: a change applies within about two polls.
WATCH_INTERVAL_S = 1.0


class Gateway:
    """One gateway: client listener, router, backends, admin server, telemetry."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        metrics: Metrics | None = None,
        watch_interval: float | None = WATCH_INTERVAL_S,
        listen_socket: socket.socket | None = None,
        admin_port: int | None = None,
        peers: PeerDirectory | None = None,
        elders: Elders | None = None,
    ) -> None:
        """``listen_socket``, ``admin_port``, ``peers`` and ``elders`` are for one of several
        workers (gateway.runtime.workers): accept on the client socket they share, serve the
        admin endpoints on a port of its own, share sessions with the siblings
        (gateway.sessions.peers), and leave light traffic to elder workers
        (gateway.runtime.elders)."""
        self._listen_socket = listen_socket
        self._admin_port = admin_port
        self._peer_directory = peers
        self._elders = elders
        self._shared: SharedSessions | None = None
        #: The config in force (listen and admin stay as started until a restart).
        self.config = config
        #: Every event of this gateway; metrics and logs subscribe, tests may too.
        self.bus = EventBus()
        #: This gateway's series, in a registry of its own.
        self.metrics = metrics if metrics is not None else Metrics()
        self.bus.subscribe(self.metrics.on_event, *COUNTED)
        self.bus.subscribe(self._log, *LOGGED)
        self._watch_interval = watch_interval
        self._watcher: FileWatcher | None = None
        self._dispatcher: Dispatcher | None = None
        self._shadows: ShadowRunner | None = None
        self._writer: SampleWriter | None = None
        #: The audit log of lookups (docs/audit.md); None when routing.yaml has no audit.
        self._audit: AuditLog | None = None
        #: Seals and opens the mismatch store's values (from the shadow key; None: no store).
        self._sealer: Sealer | None = None
        self._listener: ClientListener | None = None
        #: The client port's certificate and key, reloaded when they change (None: no TLS).
        self._certificates: ListenerCertificates | None = None
        self._admin: AdminServer | None = None
        self._admin_address: tuple[str, int] | None = None
        self._canary: CanaryController | None = None
        self._draining = False
        # One reload at a time: a SIGHUP during a file-triggered reload waits its turn.
        self._reload_lock = asyncio.Lock()
        self._tasks = TaskSet()
        #: How late this process's event loop runs; the shadow runner sheds by it.
        self.loop_lag = LoopLag(
            on_sample=lambda lag: self.bus.emit(LoopLagSampled(lag)),
            idle=lambda: self._listener is None or self._listener.in_flight == 0,
        )
        self.bus.subscribe(self._resume_sampling, ConnectionOpened)
        self.bus.subscribe(self._rest_sampling, ConnectionClosed)

    def _log(self, event: Event) -> None:
        """The log subscriber under ``logging.requests`` (read per event, so a reload applies
        at once): with ``errors``, an answered request's line is left out, not its metrics."""
        if (
            type(event) is RequestCompleted
            and not event.error
            and self.config.logging.requests is RequestLines.ERRORS
        ):
            return
        log_event(event)

    def _resume_sampling(self, event: Event) -> None:
        self.loop_lag.resume()  # a connection opened

    def _rest_sampling(self, event: Event) -> None:
        self.loop_lag.rest()  # a connection closed: the last one, perhaps

    @property
    def admin_address(self) -> tuple[str, int]:
        """The bound admin (host, port); port 0 in config gets a free one."""
        if self._admin_address is None:
            raise RuntimeError("the gateway has not started")
        return self._admin_address

    @property
    def sessions(self) -> SessionBroker:
        """The brokered sessions of this process (docs/sessions.md)."""
        if self._dispatcher is None:
            raise RuntimeError("the gateway has not started")
        return self._dispatcher.sessions

    @property
    def shadows(self) -> ShadowRunner:
        """The shadow runner (its tallies are the live comparison counts)."""
        if self._shadows is None:
            raise RuntimeError("the gateway has not started")
        return self._shadows

    @property
    def canary(self) -> CanaryController | None:
        """The canary controller (docs/canary.md); None when no route has a plan."""
        return self._canary

    def ready(self) -> bool:
        """What /readyz reports: started, accepting, not draining."""
        return not self._draining and self._listener is not None and self._listener.accepting

    async def start(self) -> tuple[str, int]:
        """Build backends and start serving; returns the bound client (host, port).

        Raises ConfigError when a certificate, key or CA file cannot be loaded or
        an address cannot be bound. Watches the config file when it came from one.
        """
        bound_tls_buffers()
        config = self.config
        files = raise_open_files(needed_for(config))  # a warning when the hard limit is short
        self.bus.emit(OpenFileLimit(files.needed, files.soft, files.hard))
        api = await self._admin_api(config)  # first: a bad token file stops nothing half-open
        sessions = SessionBroker(idle_s=config.sessions.idle, clock=time.monotonic)
        self._shadows = await self._shadow_runner(config, sessions)
        self._shared = await self._share_sessions(config, sessions)
        backends = {name: build_backend(b, self.bus) for name, b in config.backends.items()}
        self._audit = await self._open_audit(config)
        self._dispatcher = Dispatcher(
            RouteTable(config.routes),
            backends,
            self.bus,
            sessions=sessions,
            shadows=self._shadows,
            shared=self._shared,
        )
        self._dispatcher.fan_out_timeout = config.sessions.fan_out_timeout
        self._dispatcher.logon_guard.set_limit(config.limits.failed_logons)
        if config.listen.tls is not None:
            self._certificates = ListenerCertificates(config.listen.tls, self.bus)
        context = self._certificates.context if self._certificates else None
        self._listener = ClientListener(
            config.listen,
            config.limits,
            self._dispatcher,
            self.bus,
            context,
            pressure=self.loop_lag,
            elders=self._elders,
        )
        self.metrics.count_connections(lambda: self._listener.in_flight if self._listener else 0)
        self.metrics.count_client_handshakes(
            lambda: self._listener.handshakes if self._listener else (0, 0)
        )
        self.metrics.count_spares(
            lambda: spare_outcomes(self._dispatcher.backends) if self._dispatcher else ()
        )
        try:
            await self._start_canary(config)
        except BaseException:
            await self._close_stores()
            raise
        admin = config.admin
        if self._admin_port is not None:  # config keeps the file's value, so reloads stay quiet
            admin = replace(admin, port=self._admin_port)
        self._admin = AdminServer(admin, self.metrics, self.ready, api)
        try:
            self._admin_address = await self._admin.start()
            try:
                host, port = await self._listener.start(sock=self._listen_socket)
            except BaseException:
                await self._admin.aclose()
                raise
        except BaseException:
            await self._close_stores()
            raise
        self._start_watching()
        self._tasks.spawn(self.loop_lag.run(), name="loop-lag")
        self.bus.emit(Lifecycle("listening", f"{host}:{port}"))
        return host, port

    async def _admin_api(self, config: GatewayConfig) -> AdminApi:
        """/api/v1 with the tokens of admin.token_file (read once, here: a restart applies a new
        file; ConfigError if it is unusable) and the canary controller in force."""
        path = config.admin.token_file
        tokens = AdminTokens() if path is None else await asyncio.to_thread(read_tokens, path)
        return AdminApi(
            lambda: self._canary,
            tokens,
            config.shadowing.store,
            self.bus.emit,
            shadow_sealer=lambda: self._sealer,
        )

    async def _open_audit(self, config: GatewayConfig) -> AuditLog | None:
        """The audit log of lookups, subscribed to the bus, when routing.yaml asks for one. A
        log that cannot be opened stops the start (ConfigError, after closing what the start
        had opened): a gateway told to keep one never serves without it (docs/audit.md)."""
        if config.audit is None:
            return None
        try:
            audit = await open_audit_log(config.audit, self.bus.emit)
        except ConfigError:
            await self._close_stores()
            raise
        self.bus.subscribe(audit.on_event, LookupAnswered)
        return audit

    async def _close_stores(self) -> None:
        """What a start that failed part-way had opened."""
        if self._canary is not None:
            await self._canary.aclose()
        if self._writer is not None:
            await self._writer.aclose(0)
        if self._shared is not None:
            await self._shared.aclose()
        if self._audit is not None:
            await self._audit.aclose(0)

    async def serve(self, stop: asyncio.Event | None = None, *, settle_heap: bool = False) -> None:
        """Start, serve until SIGTERM or SIGINT (or until ``stop`` is set), then drain.

        The signal handlers are in place before the ports open, so a signal that
        arrives during start-up still ends in a graceful drain, never a kill.
        SIGHUP reloads the config file. ``settle_heap``: once started, exempt the
        start-up heap from garbage collection (gateway.runtime.heap; for a process of its own).
        """
        stop = stop if stop is not None else asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        try:
            await self.start()
            if settle_heap:
                heap.settle()
            await stop.wait()
        finally:
            for sig in (*_STOP_SIGNALS, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.aclose()

    async def reload(self, trigger: str = "call") -> bool:
        """Re-read the config file and apply it if valid; True when it was applied.

        A rejected file leaves everything as it was and is reported as a
        ConfigRejected event (logged, counted) with every problem.
        """
        async with self._reload_lock:
            if self._dispatcher is None or self._listener is None or self._draining:
                return False
            source = self.config.source
            if source is None:
                self.bus.emit(ConfigRejected(trigger, ("the config was not loaded from a file",)))
                return False
            if self._watcher is not None:
                self._watcher.baseline()
            try:
                new = await asyncio.to_thread(load_routing, source)
                backends = await self._backends_for(new)
            except ConfigError as exc:
                self.bus.emit(ConfigRejected(trigger, tuple(exc.problems)))
                return False
            self._apply(new, backends, trigger)
            try:  # a plan the running config did not have; until it runs, the file's routes
                await self._start_canary(new)
            except ConfigError as exc:
                self.bus.emit(ConfigRejected(trigger, tuple(exc.problems)))
            if self._writer is not None:
                self._writer.set_thresholds(shadow_policies(new.routes).values())
            return True

    async def aclose(self) -> None:
        """Drain gracefully and release everything; safe to call twice."""
        if self._draining or self._listener is None or self._admin is None:
            return
        self._draining = True
        await self._tasks.drain(0, "shutdown: no more reloads")
        grace = self.config.limits.grace_period
        self.bus.emit(Lifecycle("draining", f"{self._listener.in_flight} in flight"))
        self._listener.stop_accepting()
        cancelled = await self._listener.drain(grace)
        if self._shadows is not None:  # after the clients: copies may still use the backends
            await self._shadows.aclose(grace)
        if self._canary is not None:  # after the clients: their answers are its last evidence
            await self._canary.aclose()
        if self._dispatcher is not None:
            await self._dispatcher.aclose()
        if self._shared is not None:  # siblings may still ask while this one drains
            await self._shared.aclose()
        if self._writer is not None:
            await self._writer.aclose(grace)
        if self._audit is not None:  # every request is answered: its last records are in
            await self._audit.aclose(grace)
        await self._admin.aclose()
        self.bus.emit(Lifecycle("stopped", f"{cancelled} cancelled after {grace:g}s"))

    async def _start_canary(self, config: GatewayConfig) -> None:
        """Start the canary controller when a route of ``config`` has a plan and none runs yet.

        The controller routes this gateway by the plans' state (applied through
        :meth:`_reroute`); ConfigError when its store cannot be used as configured.
        """
        if self._canary is not None or not any(r.canary for r in config.routes):
            return
        tallies: ShadowTallies
        if config.shadowing.store is not None:  # shared in a fleet: every replica's comparisons
            tallies = StoreTallies(config.shadowing.store)
        else:
            tallies = RunnerTallies(self.shadows)
        canary = CanaryController(
            config.routes, config.canary.store, self.bus, tallies, self._reroute
        )
        await canary.start()
        self._canary = canary

    def _reroute(self, routes: tuple[Route, ...]) -> None:
        """Route new requests by ``routes`` (the canary steps in force), same backends."""
        assert self._dispatcher is not None
        self._dispatcher.swap(RouteTable(routes), self._dispatcher.backends)

    async def _share_sessions(
        self, config: GatewayConfig, sessions: SessionBroker
    ) -> SharedSessions | None:
        """The one mechanism sessions are shared by in this deployment (docs/sessions.md):
        Redis when ``sessions.store`` names one, else the sibling workers, if any."""
        if config.sessions.store is not None:
            # Imported here: a gateway without a shared store never loads the Redis client.
            from gateway.sessions.redis_store import RedisSessions, read_password  # noqa: PLC0415

            secret = config.sessions.password_file
            return RedisSessions(
                config.sessions.store,
                sessions,
                self.bus,
                timeout_s=config.sessions.timeout,
                password=None if secret is None else read_password(secret),
            )
        if self._peer_directory is not None:
            return await self._start_peers(self._peer_directory, sessions)
        return None

    async def _start_peers(self, where: PeerDirectory, sessions: SessionBroker) -> SessionPeers:
        """Answer sibling workers' session questions; ConfigError when the socket cannot be made."""
        peers = SessionPeers(where, sessions, self.bus)
        try:
            await peers.start()
        except OSError as exc:
            raise ConfigError([f"sessions directory {where.path}: {exc.strerror or exc}"]) from None
        return peers

    async def _shadow_runner(self, config: GatewayConfig, sessions: SessionBroker) -> ShadowRunner:
        """The runner for shadow copies, writing to the mismatch store when one is configured.

        ConfigError when the pseudonym key cannot be used, or the store cannot be as configured;
        a PostgreSQL store that cannot be reached now is opened later (gateway.shadow.writer).
        """
        shadowing = config.shadowing
        pseudonymiser = None
        if shadowing.store is not None:
            key = await asyncio.to_thread(load_key, shadowing.key_file)
            pseudonymiser, self._sealer = Pseudonymiser(key), Sealer(key)
            open_store = functools.partial(
                MismatchStore.open,
                shadowing.store,
                max_rows=shadowing.retention.max_rows,
                max_age_s=shadowing.retention.max_age,
                sealer=self._sealer,
            )
            writer = SampleWriter(open_store, self.bus)
            writer.set_thresholds(shadow_policies(config.routes).values())
            # A file answers at once; a server that does not answer must not hold the start.
            await writer.start(wait_s=START_WAIT_S if is_dsn(shadowing.store) else None)
            self._writer = writer
        return ShadowRunner(
            self.bus,
            sessions,
            max_in_flight=shadowing.max_in_flight,
            max_queued=shadowing.max_queued,
            writer=self._writer,
            pseudonymiser=pseudonymiser,
            lag=self.loop_lag,
            shed_lag_s=shadowing.shed_lag,
        )

    def _start_watching(self) -> None:
        source = self.config.source
        if self._watch_interval is None:
            return
        if self._certificates is not None:  # polled at the config file's cadence
            watching = self._certificates.run(self._watch_interval)
            self._tasks.spawn(watching, name="certificate-watcher")
        if source is None:
            return
        self._watcher = FileWatcher(
            source, lambda: self.reload("file"), interval=self._watch_interval
        )
        self._tasks.spawn(self._watcher.run(), name="config-watcher")

    def _on_sighup(self) -> None:
        if not self._draining:
            if self._certificates is not None:
                self._certificates.reload("sighup")
            self._tasks.spawn(self.reload("sighup"), name="reload:sighup")

    async def _backends_for(self, new: GatewayConfig) -> dict[str, Backend]:
        """Backends for ``new``: a running one is kept when its config is unchanged.

        Raises ConfigError (e.g. an unreadable CA file) after closing what it built.
        """
        assert self._dispatcher is not None
        running: Mapping[str, Backend] = self._dispatcher.backends
        backends: dict[str, Backend] = {}
        built: list[Backend] = []
        try:
            for name, config in new.backends.items():
                if name in running and self.config.backends.get(name) == config:
                    backends[name] = running[name]
                else:
                    backends[name] = build_backend(config, self.bus)
                    built.append(backends[name])
        except ConfigError:
            for backend in built:
                await backend.aclose()
            raise
        return backends

    def _apply(self, new: GatewayConfig, backends: Mapping[str, Backend], trigger: str) -> None:
        """Swap routes and backends for new requests; listen and admin stay as bound."""
        assert self._dispatcher is not None and self._listener is not None
        changes = diff_configs(self.config, new)
        restart = restart_needed(self.config, new)
        # A canary route is served at the step in force, not as the file writes it.
        routes = self._canary.set_routes(new.routes) if self._canary else new.routes
        self._dispatcher.swap(RouteTable(routes), backends)
        self._dispatcher.sessions.set_idle(new.sessions.idle)
        self._dispatcher.fan_out_timeout = new.sessions.fan_out_timeout
        self._dispatcher.logon_guard.set_limit(new.limits.failed_logons)
        self._listener.update_limits(new.limits)
        self.config = replace(new, listen=self.config.listen, admin=self.config.admin)
        self.bus.emit(ConfigReloaded(trigger, tuple(changes), tuple(restart)))


async def run_gateway(
    config: GatewayConfig,
    *,
    stop: asyncio.Event | None = None,
    listen_socket: socket.socket | None = None,
    admin_port: int | None = None,
    peers: PeerDirectory | None = None,
    elders: Elders | None = None,
    settle_heap: bool = False,
) -> None:
    """Serve ``config`` until SIGTERM or SIGINT (or ``stop``), then drain and return.

    SIGHUP, or a change to the file ``config`` was loaded from, reloads it.
    ``settle_heap``: see :meth:`Gateway.serve` (the CLI's process sets it).
    """
    gateway = Gateway(
        config, listen_socket=listen_socket, admin_port=admin_port, peers=peers, elders=elders
    )
    await gateway.serve(stop, settle_heap=settle_heap)

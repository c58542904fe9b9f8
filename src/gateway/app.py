"""Lifecycle of the gateway: build from config, start the listeners, drain on a signal.

Shutdown runs in a fixed order: /readyz turns 503 and the client port stops
accepting; in-flight requests get the grace period to finish; stragglers are
cancelled with a reason; backends and the admin server close last.
"""

from __future__ import annotations

import asyncio
import signal

from gateway.backends import Backend, build_backend
from gateway.config.schema import GatewayConfig
from gateway.dispatch import Dispatcher
from gateway.observe.events import EventBus, Lifecycle
from gateway.observe.logs import log_event
from gateway.observe.metrics import Metrics
from gateway.routing import RouteTable
from gateway.server.admin import AdminServer
from gateway.server.tcp import ClientListener

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Gateway:
    """One gateway: client listener, router, backends, admin server, telemetry."""

    def __init__(self, config: GatewayConfig, *, metrics: Metrics | None = None) -> None:
        self.config = config
        #: Every event of this gateway; metrics and logs subscribe, tests may too.
        self.bus = EventBus()
        #: This gateway's series, in a registry of its own.
        self.metrics = metrics if metrics is not None else Metrics()
        self.bus.subscribe(self.metrics.on_event)
        self.bus.subscribe(log_event)
        self._backends: dict[str, Backend] = {}
        self._listener: ClientListener | None = None
        self._admin: AdminServer | None = None
        self._admin_address: tuple[str, int] | None = None
        self._draining = False

    @property
    def admin_address(self) -> tuple[str, int]:
        """The bound admin (host, port); port 0 in config gets a free one."""
        if self._admin_address is None:
            raise RuntimeError("the gateway has not started")
        return self._admin_address

    def ready(self) -> bool:
        """What /readyz reports: started, accepting, not draining."""
        return not self._draining and self._listener is not None and self._listener.accepting

    async def start(self) -> tuple[str, int]:
        """Build backends and start serving; returns the bound client (host, port).

        Raises ConfigError when a certificate, key or CA file cannot be loaded or
        an address cannot be bound.
        """
        config = self.config
        self._backends = {name: build_backend(b) for name, b in config.backends.items()}
        dispatcher = Dispatcher(RouteTable(config.routes), self._backends, self.bus)
        self._listener = ClientListener(config.listen, config.limits, dispatcher, self.bus)
        self._admin = AdminServer(config.admin, self.metrics, self.ready)
        self._admin_address = await self._admin.start()
        try:
            host, port = await self._listener.start()
        except BaseException:
            await self._admin.aclose()
            raise
        self.bus.emit(Lifecycle("listening", f"{host}:{port}"))
        return host, port

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Start, serve until SIGTERM or SIGINT (or until ``stop`` is set), then drain.

        The signal handlers are in place before the ports open, so a signal that
        arrives during start-up still ends in a graceful drain, never a kill.
        """
        stop = stop if stop is not None else asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            await stop.wait()
        finally:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            await self.aclose()

    async def aclose(self) -> None:
        """Drain gracefully and release everything; safe to call twice."""
        if self._draining or self._listener is None or self._admin is None:
            return
        self._draining = True
        grace = self.config.limits.grace_period
        self.bus.emit(Lifecycle("draining", f"{self._listener.in_flight} in flight"))
        self._listener.stop_accepting()
        cancelled = await self._listener.drain(grace)
        for backend in self._backends.values():
            await backend.aclose()
        await self._admin.aclose()
        self.bus.emit(Lifecycle("stopped", f"{cancelled} cancelled after {grace:g}s"))


async def run_gateway(config: GatewayConfig, *, stop: asyncio.Event | None = None) -> None:
    """Serve ``config`` until SIGTERM or SIGINT (or ``stop``), then drain and return."""
    await Gateway(config).serve(stop)

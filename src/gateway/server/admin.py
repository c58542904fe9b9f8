"""The admin HTTP server (aiohttp): /metrics, /healthz, /readyz, /api/v1 and the dashboard.

It listens on loopback by default and is for operators and Prometheus, not
clients. /readyz follows the client listener: 200 while it accepts, 503 while the
gateway drains, so a load balancer stops sending before connections are refused.
/api/v1 (:mod:`.api`) needs a bearer token; the dashboard at / is static files that
ask for one and then read /api/v1 (:mod:`.dashboard`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from aiohttp import web

from gateway.config.schema import Admin
from gateway.errors import ConfigError
from gateway.observe.metrics import CONTENT_TYPE, Metrics
from gateway.server.api import AdminApi
from gateway.server.dashboard import add_dashboard
from gateway.server.tokens import AdminTokens

#: Admin requests are tiny; a shutdown need not wait long for one.
_SHUTDOWN_TIMEOUT_S = 1.0
#: Request bodies: the largest the admin port takes is {"reason": ...} (api.MAX_REASON_CHARS).
MAX_BODY_BYTES = 16 * 1024


class AdminServer:
    """Serves metrics, health, the admin API and the dashboard on the admin address."""

    def __init__(
        self,
        admin: Admin,
        metrics: Metrics,
        ready: Callable[[], bool],
        api: AdminApi | None = None,
    ) -> None:
        """``api`` None: an API that refuses every call (no token, no canary)."""
        self._admin = admin
        self._metrics = metrics
        self._ready = ready
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/metrics", self._get_metrics)
        app.router.add_get("/healthz", self._get_healthz)
        app.router.add_get("/readyz", self._get_readyz)
        api = (
            api if api is not None else AdminApi(lambda: None, AdminTokens(), None, lambda _e: None)
        )
        app.add_subapp("/api/v1", api.app())
        add_dashboard(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)

    async def start(self) -> tuple[str, int]:
        """Bind and serve; returns the bound (host, port); ConfigError if it cannot bind."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._admin.host, self._admin.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            where = f"{self._admin.host}:{self._admin.port}"
            raise ConfigError([f"admin: cannot listen on {where}: {_reason(exc)}"]) from None
        host, port = self._runner.addresses[0][:2]
        return str(host), int(port)

    async def aclose(self) -> None:
        """Stop serving."""
        await self._runner.cleanup()

    async def _get_metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def _get_healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _get_readyz(self, _request: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")


def _reason(exc: OSError) -> str:
    """The plain errno text ("Address already in use"), without asyncio's wrapping."""
    return os.strerror(exc.errno) if exc.errno else str(exc)

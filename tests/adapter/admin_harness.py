"""A real gateway with a canary route and its admin token, for the admin API, CLI and dashboard
tests: two canned legacy backends (primary and candidate), the real controller on a SQLite
canary store, and a plan that never moves by itself during a test (only operators move it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from gateway_harness import backend_server, canned

from gateway.app import Gateway
from gateway.config import load_routing

SECRET = "s3cret-token-for-tests-0123456789"
ROUTE = "lookups"
ROUTING = """
version: 1
listen: {{host: 127.0.0.1, port: 0, tls: null}}
admin: {{host: 127.0.0.1, port: 0, token_file: admin.token}}
backends:
  mainframe: {{kind: legacy, address: "127.0.0.1:{primary}", tls: null}}
  persons-v2: {{kind: legacy, address: "127.0.0.1:{candidate}", tls: null}}
canary: {{store: canary.sqlite}}
routes:
  - name: lookups
    match: {{operation: [lookup]}}
    backend: mainframe
    deadline: 2s
    shadow: [{{backend: persons-v2, sample: 100%}}]
    canary:
      candidate: persons-v2
      steps: [0, 5, 50, 100]
      min_duration: 60m
      min_requests: 100000
      interval: 60m
      gates: {{max_error_excess: 0.5%, max_p99_ratio: 1.5}}
  - name: rest
    match: {{}}
    backend: mainframe
    deadline: 2s
shadowing: {{store: shadow.sqlite, key_file: shadow.key}}
"""


@dataclass
class CanaryGateway:
    """The running gateway, its admin URL and its token file."""

    gateway: Gateway
    admin: str
    token_file: Path

    async def call(
        self, method: str, path: str, token: str | None = SECRET, **kwargs: Any
    ) -> tuple[int, Any]:
        """One /api/v1 call (``path`` after /api/v1); the status and the JSON body."""
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.admin}/api/v1{path}", headers=headers, **kwargs) as r,
        ):
            return r.status, await r.json()


@asynccontextmanager
async def canary_gateway(
    tmp_path: Path, tokens: str = f"ops:{SECRET}\n"
) -> AsyncIterator[CanaryGateway]:
    """A gateway from a routing.yaml in ``tmp_path`` with ``tokens`` as its admin.token_file."""
    token_file = tmp_path / "admin.token"
    token_file.write_text(tokens)
    token_file.chmod(0o600)
    async with backend_server(canned()) as primary, backend_server(canned()) as candidate:
        routing = tmp_path / "routing.yaml"
        routing.write_text(ROUTING.format(primary=primary, candidate=candidate))
        gateway = Gateway(load_routing(routing), watch_interval=None)
        await gateway.start()
        try:
            host, port = gateway.admin_address
            yield CanaryGateway(gateway, f"http://{host}:{port}", token_file)
        finally:
            await gateway.aclose()

"""A real gateway with a canary route and its admin token, for the admin API, CLI and dashboard
tests: two canned legacy backends (primary and candidate), the real controller on a SQLite
canary store, and a plan that never moves by itself during a test (only operators move it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from gateway_harness import (
    LOGON,
    LOGON_ANSWER,
    LOOKUP,
    PNR,
    Handler,
    backend_server,
    canned,
    read_request,
)

from cpr_devtools.client import Endpoint, exchange
from gateway.app import Gateway
from gateway.codec import LookupAnswer, Record, seal
from gateway.config import load_routing
from gateway.model import Family, FejlNr

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
      interval: {interval}
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
    client: Endpoint

    async def lookups(self, count: int) -> None:
        """A logon (the session both sides serve), then ``count`` lookups through the client
        listener, one connection each."""
        await exchange(self.client, LOGON.encode())
        for _ in range(count):
            await exchange(self.client, LOOKUP.encode())

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
    tmp_path: Path,
    tokens: str = f"ops:{SECRET}\n",
    *,
    candidate: Handler | None = None,
    interval: str = "60m",
) -> AsyncIterator[CanaryGateway]:
    """A gateway from a routing.yaml in ``tmp_path`` with ``tokens`` as its admin.token_file;
    the candidate answers as ``candidate`` (default: as the primary), judged every ``interval``
    (never promoted by itself: its min_duration is an hour)."""
    token_file = tmp_path / "admin.token"
    token_file.write_text(tokens)
    token_file.chmod(0o600)
    async with (
        backend_server(canned()) as primary,
        backend_server(candidate or canned()) as candidate_port,
    ):
        routing = tmp_path / "routing.yaml"
        text = ROUTING.format(primary=primary, candidate=candidate_port, interval=interval)
        routing.write_text(text)
        gateway = Gateway(load_routing(routing), watch_interval=None)
        client_host, client_port = await gateway.start()
        try:
            host, port = gateway.admin_address
            admin = f"http://{host}:{port}"
            yield CanaryGateway(gateway, admin, token_file, Endpoint(client_host, client_port))
        finally:
            await gateway.aclose()


#: The candidate's answer to a lookup where it drifts: another surname than the primary's.
DRIFTED_LOOKUP = LookupAnswer.for_request(
    LOOKUP,
    FejlNr.OK,
    seal(
        [
            Record(
                "000", {"PNR": "0" * 10, "OPGAVENR": "000101", "PRODDTO": dt.date(2026, 11, 25)}
            ),
            Record("001", {"PNR": PNR, "KOEN": "M", "STATUS": "01", "EFTERNVN": "Hansen-Berg"}),
        ],
        Family.PRIV,
    ),
).encode(Family.PRIV)


async def drifted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A candidate that answers logons as the primary and lookups with another surname."""
    request = await read_request(reader)
    writer.write(LOGON_ANSWER if len(request) == 35 else DRIFTED_LOOKUP)
    await writer.drain()

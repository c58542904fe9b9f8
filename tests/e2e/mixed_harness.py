"""Both sides and gateways in front of them, and clients that behave like the existing ones.

Real emulator, real gRPC services on a store migrated from the same register, gateways
reading their routes from a real file, and clients that log on, look up on new
connections, and log on again after a 07 (the only recovery they know).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from cpr_devtools.client import Endpoint, exchange, logon
from cpr_devtools.migration import migrate_register
from cpr_services.server import ModernServer
from emulator_harness import DemoUser, running_emulator
from gateway.app import Gateway
from gateway.codec import LookupAnswer, LookupRequest
from gateway.config import load_routing
from gateway.model import Family, FejlNr

CLIENTS = 6
LOOKUPS_PER_PHASE = 15

ROUTING = """
version: 1
listen: {{host: 127.0.0.1, port: {port}, tls: null}}
admin: {{host: 127.0.0.1, port: 0}}
limits: {{read_timeout: 5s, max_connections: 256, grace_period: 2s}}
backends:
  mainframe: {{kind: legacy, address: "127.0.0.1:{legacy}", tls: null, connect_timeout: 1s}}
  persons-v2: {{kind: grpc, address: "127.0.0.1:{modern}", tls: null}}
routes:
  - name: logons
    match: {{operation: [logon, change_password]}}
    backend: {logon_side}
    deadline: 5s
  - name: lookups
    match: {{operation: [lookup]}}
    split:
      key: pnr
      backends: {{mainframe: {legacy_share}, persons-v2: {modern_share}}}
    deadline: {lookup_deadline}
  - name: rest
    match: {{}}
    backend: mainframe
    deadline: 5s
{sessions}"""


@dataclass
class Stack:
    """Both sides, a gateway whose routing file the test rewrites, and more replicas of it."""

    legacy: Endpoint
    modern: ModernServer
    routing: Path
    ports: dict[str, int]
    pnrs: list[str]
    gateway: Gateway | None = None
    #: YAML appended to the routing file (a ``sessions:`` section).
    sessions: str = ""
    #: Gateways started with :meth:`start_replica`, each on a port of its own.
    replicas: list[Gateway] = field(default_factory=list)

    def write_routes(self, logon_side: str, modern_share: int, lookup_deadline: str = "5s") -> None:
        self.routing.write_text(
            ROUTING.format(
                logon_side=logon_side,
                lookup_deadline=lookup_deadline,
                legacy_share=100 - modern_share,
                modern_share=modern_share,
                sessions=self.sessions,
                **self.ports,
            )
        )

    async def start_gateway(self) -> Endpoint:
        self.gateway = Gateway(load_routing(self.routing), watch_interval=None)
        host, port = await self.gateway.start()
        self.ports["port"] = port  # a restart comes back on the same port
        return Endpoint(host, port)

    async def start_replica(self) -> Endpoint:
        """Another gateway on the same routing file, on a port of its own."""
        config = load_routing(self.routing)
        replica = Gateway(
            replace(config, listen=replace(config.listen, port=0)), watch_interval=None
        )
        self.replicas.append(replica)
        host, port = await replica.start()
        return Endpoint(host, port)


@asynccontextmanager
async def stack(tmp_path: Path, *, delay: float = 0.0) -> AsyncIterator[Stack]:
    async with running_emulator(persons=300, tls=False, workdir=tmp_path / "emu") as emu:
        store = tmp_path / "modern.sqlite"
        migrate_register(emu.config.register, store, progress=False)
        modern = ModernServer(emu.config, store, delay=delay)
        modern_port = await modern.start()
        ports = {"legacy": emu.port, "modern": modern_port, "port": 0}
        built = Stack(emu.endpoint, modern, tmp_path / "routing.yaml", ports, emu.pnrs())
        try:
            yield built
        finally:
            for replica in built.replicas:
                await replica.aclose()
            if built.gateway is not None:
                await built.gateway.aclose()
            await modern.aclose(0)


@dataclass
class Client:
    """An existing-style client: one logon, many lookups, a new logon after each 07.

    It logs on through ``endpoint``; its lookups take turns over ``lookups_via`` when
    given (replicas of one gateway behind no load balancer), else go to ``endpoint`` too.
    """

    user: DemoUser
    endpoint: Endpoint
    token: str = ""
    logons: int = 0
    answered: int = 0
    lookups_via: tuple[Endpoint, ...] = ()

    async def lookup(self, pnr: str, family: Family) -> bytes:
        if not self.token:
            await self._logon()
        for _attempt in range(2):
            who = self.user.who
            record = LookupRequest(who.transaction, who.customer, self.token, who.user, pnr)
            answer = await exchange(self._next_endpoint(), record.encode())
            if LookupAnswer.decode(answer, family).fejlnr is not FejlNr.NEW_LOGON:
                self.answered += 1
                return answer
            await self._logon()
        raise AssertionError("07 again right after a fresh logon")

    def _next_endpoint(self) -> Endpoint:
        if not self.lookups_via:
            return self.endpoint
        return self.lookups_via[self.answered % len(self.lookups_via)]

    async def _logon(self) -> None:
        self.token = await logon(self.endpoint, self.user.who, self.user.password)
        self.logons += 1


async def phase(clients: list[Client], pnrs: list[str], family: Family) -> None:
    async def run(index: int, client: Client) -> None:
        for n in range(LOOKUPS_PER_PHASE):
            answer = await client.lookup(pnrs[(index * 31 + n * 7) % len(pnrs)], family)
            assert LookupAnswer.decode(answer, family).fejlnr is FejlNr.OK

    await asyncio.gather(*(run(i, c) for i, c in enumerate(clients)))

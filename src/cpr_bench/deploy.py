"""Start what the selected scenarios need: data, emulators, gRPC services, HAProxy, gateways.

Data is made once and kept under ``var/bench/`` (a register of N persons, and
the modern store migrated from it); certificates are the development CA's under
``var/tls/``, the same ones ``make run`` uses. Servers are started fresh for each
run, with their configs and logs in the run's directory. A scenario that cannot
run here (HAProxy not installed, a config the gateway refuses such as a
``shadow`` key before shadows exist) is reported with the reason, never faked.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cpr_bench.configs import (
    TlsFiles,
    Via,
    emulator_yaml,
    gateway_yaml,
    haproxy_cfg,
    write_pem,
)
from cpr_bench.scenarios import Scenario
from cpr_bench.servers import (
    LOOPBACK,
    Server,
    ServerFailed,
    Servers,
    cli,
    free_port,
    free_ports,
)
from cpr_bench.wire import Target
from cpr_devtools.haproxy import haproxy_argv, haproxy_binary
from cpr_devtools.migration import migrate_register
from cpr_devtools.pki import ensure_dev_pki
from cpr_devtools.redis_server import redis_argv
from cpr_mainframe.register.generate import generate
from gateway.config import load_routing
from gateway.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Deployed:
    """A scenario ready to measure: where clients go, and whose CPU and memory to read."""

    scenario: Scenario
    target: Target
    #: The hop being measured (gateway or HAProxy); None when clients reach the emulator.
    proxy: Server | None
    #: What answers behind it: the emulator, the gRPC services, or both.
    behind: tuple[Server, ...]


def data_files(bench_dir: Path, persons: int) -> tuple[Path, Path]:
    """The register and modern store for ``persons``: (register, store); made on first use."""
    return bench_dir / f"register-{persons}.sqlite", bench_dir / f"modern-{persons}.sqlite"


class Stack:
    """Every server of a run, started once; scenarios share the emulator and gRPC services."""

    def __init__(
        self,
        var: Path,
        run_dir: Path,
        persons: int,
        *,
        audit: bool = False,
        request_lines: str = "all",
    ) -> None:
        self.run_dir = run_dir
        #: Where every gateway writes its audit log, when the run keeps one.
        self.audit = run_dir / "audit" if audit else None
        #: Every gateway's ``logging.requests``.
        self.request_lines = request_lines
        self.servers = Servers(run_dir)
        pki = ensure_dev_pki(var / "tls")
        self.gateway_tls = TlsFiles(pki.cert("gateway"), pki.key("gateway"), pki.ca_cert)
        self.emulator_tls = TlsFiles(pki.cert("emulator"), pki.key("emulator"), pki.ca_cert)
        self.register, self.store = data_files(var / "bench", persons)
        self.persons = persons
        self._shared: dict[str, Server] = {}
        #: Scenarios that cannot run here, with the reason.
        self.unavailable: dict[str, str] = {}

    async def deploy(self, wanted: Iterable[Scenario]) -> dict[str, Deployed]:
        """Start what ``wanted`` needs; the scenarios that run (the rest are unavailable).

        The shared servers (emulators, gRPC services) must start, or the run fails
        with ServerFailed; a proxy that does not start only takes its scenario out.
        """
        wanted = list(wanted)
        shared = _shared_names(wanted)
        await asyncio.to_thread(self._prepare_data, "modern" in shared)
        started = await asyncio.gather(*(self._start_shared(name) for name in shared))
        self._shared = dict(zip(shared, started, strict=True))
        done = await asyncio.gather(*(self._deploy(s) for s in wanted))
        return {d.scenario.name: d for d in done if d is not None}

    async def aclose(self) -> None:
        """Stop every server."""
        await self.servers.aclose()

    def _prepare_data(self, modern: bool) -> None:
        self.register.parent.mkdir(parents=True, exist_ok=True)
        if not self.register.exists():
            print(f"generating a register of {self.persons} persons (once)…", flush=True)
            partial = self.register.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            generate(partial, count=self.persons, seed=1)
            partial.rename(self.register)
        if modern and not self.store.exists():
            print("migrating it into the modern store (once)…", flush=True)
            partial = self.store.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            migrate_register(self.register, partial, progress=False)
            partial.rename(self.store)
        elif modern:
            # Unchanged rows are read and left alone (seconds); rows a newer program stores
            # differently (e.g. the services' message form) are rewritten, so the services are
            # measured as a freshly migrated store serves them.
            migrate_register(self.register, self.store, progress=False)

    async def _deploy(self, scenario: Scenario) -> Deployed | None:
        try:
            return await self._start(scenario)
        except (ServerFailed, ConfigError) as exc:
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            self.unavailable[scenario.name] = "; ".join(problems)
            return None

    async def _start(self, scenario: Scenario) -> Deployed:
        via = scenario.via
        emulator = self._shared["emulator-tls"]
        if via is Via.DIRECT:
            server = emulator if scenario.tls else self._shared["emulator-plain"]
            return Deployed(scenario, self._target(server.port, scenario.tls), None, (server,))
        if via is Via.HAPROXY:
            proxy = await self._haproxy(scenario)
            behind: tuple[Server, ...] = (emulator,)
        else:
            proxy = await self._gateway(scenario)
            modern = self._shared.get("modern")
            if via is Via.LEGACY:
                behind = (emulator,)
            else:
                assert modern is not None  # started whenever a scenario needs it
                behind = (modern,) if via is Via.MODERN else (emulator, modern)
                if via is Via.SESSIONS_REDIS:
                    behind += (self._shared["redis"],)
        return Deployed(scenario, self._target(proxy.port, scenario.tls), proxy, behind)

    def _session_store(self, scenario: Scenario) -> str | None:
        if scenario.via is not Via.SESSIONS_REDIS:
            return None
        return f"redis://{LOOPBACK}:{self._shared['redis'].port}/0"

    def _target(self, port: int, tls: bool) -> Target:
        return Target(LOOPBACK, port, self.gateway_tls.ca if tls else None)

    async def _start_shared(self, name: str) -> Server:
        """An emulator, or the gRPC services (which read customers and users from the same
        kind of file; its listen and TLS settings are the emulator's business, unused)."""
        port = free_port()
        if name == "redis":
            return await self.servers.start(name, _redis_argv(port, self.run_dir), port,
                                            [(port, None)])  # fmt: skip
        tls = self.emulator_tls if name == "emulator-tls" else None
        config = self.run_dir / f"{name}.yaml"
        state = self.run_dir / f"{name}-state.sqlite"
        config.write_text(emulator_yaml(port, tls, self.register, state))
        if name == "modern":
            argv = cli("backend", "--config", str(config), "--store", str(self.store))
            argv += ["--port", str(port)]
        else:
            argv = cli("emulator", "--config", str(config))
        return await self.servers.start(name, argv, port, [(port, None)])

    async def _haproxy(self, scenario: Scenario) -> Server:
        binary = haproxy_binary()
        if binary is None:
            raise ServerFailed("haproxy is not installed (apt-get install haproxy)")
        port = free_port()
        pem = None
        if scenario.tls:
            pem = write_pem(
                self.gateway_tls.cert, self.gateway_tls.key, self.run_dir / "gateway.pem"
            )
        config = self.run_dir / f"{scenario.name}.cfg"
        config.write_text(
            haproxy_cfg(
                port=port,
                pem=pem,
                emulator_port=self._shared["emulator-tls"].port,
                emulator_ca=self.emulator_tls.ca,
                threads=scenario.workers,
                reuse=scenario.session_reuse,
            )
        )
        argv = haproxy_argv(binary, config)
        return await self.servers.start(scenario.name, argv, port, [(port, None)])

    async def _gateway(self, scenario: Scenario) -> Server:
        port, admin = free_port(), free_ports(scenario.workers)
        modern = self._shared.get("modern")
        config = self.run_dir / f"{scenario.name}.yaml"
        config.write_text(
            gateway_yaml(
                scenario.via,
                port=port,
                admin_port=admin,
                tls=self.gateway_tls if scenario.tls else None,
                emulator_port=self._shared["emulator-tls"].port,
                emulator_ca=self.emulator_tls.ca,
                modern_port=modern.port if modern is not None else 0,
                session_store=self._session_store(scenario),
                audit=self.audit,
                request_lines=self.request_lines,
                product_limits=scenario.product_limits,
                tls_resumption=scenario.session_reuse,
                spare_connections=scenario.spare_connections,
            )
        )
        load_routing(config)  # a config the gateway refuses makes the scenario unavailable
        argv = cli("serve", "--config", str(config))
        if scenario.accounting is not None:  # the same command, its functions accounted
            wrapper = ["-m", "cpr_bench.accounting", "--output", str(scenario.accounting)]
            wrapper += ["--calls"] if scenario.count_calls else []
            argv[1:3] = [*wrapper, "--"]
        if scenario.workers > 1:
            argv += ["--workers", str(scenario.workers)]
        ready = [(admin + i, "/readyz") for i in range(scenario.workers)]
        env = {"PYTHONPATH": str(scenario.source / "src")} if scenario.source else None
        server = await self.servers.start(scenario.name, argv, port, ready, env)
        server.admin_ports = tuple(p for p, _path in ready)
        return server


def _shared_names(wanted: list[Scenario]) -> list[str]:
    """The shared servers ``wanted`` needs; every scenario but a modern one uses the emulator."""
    names = ["emulator-tls"]
    if any(s.via is Via.DIRECT and not s.tls for s in wanted):
        names.append("emulator-plain")
    if any(s.via in (Via.MODERN, Via.SHADOW, Via.SESSIONS, Via.SESSIONS_REDIS) for s in wanted):
        names.append("modern")
    if any(s.via is Via.SESSIONS_REDIS for s in wanted):
        names.append("redis")
    return names


def _redis_argv(port: int, run_dir: Path) -> list[str]:
    """A redis-server for the sessions of one run: loopback, nothing written to disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerFailed("redis-server is not installed (apt-get install redis-server)")
    return redis_argv(binary, port, run_dir)

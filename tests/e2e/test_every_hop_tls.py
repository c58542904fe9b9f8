"""`make run`'s stack with TLS on every hop: the shipped routing.yaml and emulator.yaml, the
development PKI `cpr-gateway up` makes, and the services started with `up`'s own TLS
arguments (mutual TLS, the gateway's certificate as its identity). A client's logon and
lookup go through the gateway over TLS, the mainframe answers over TLS, and the lookup's
shadow copy reaches the services over mutual TLS in the session the logon's repeat opened."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import yaml

from cpr_bench.servers import Servers, cli, free_port
from cpr_devtools.client import Endpoint, logon, lookup
from cpr_devtools.migration import migrate_register
from cpr_devtools.pki import DevPki
from cpr_devtools.up import ensure_admin_token, prepare_var, services_tls
from cpr_mainframe.config import load_config
from cpr_mainframe.register.store import Register
from cpr_mainframe.server import Emulator
from emulator_harness import DEMO_PRIV
from gateway.app import Gateway
from gateway.codec import LookupAnswer
from gateway.config import load_routing
from gateway.model import Family, FejlNr
from gateway.tls import client_context

ROOT = Path(__file__).resolve().parents[2]
PERSONS = 300


@asynccontextmanager
async def make_run_stack(root: Path) -> AsyncIterator[tuple[Gateway, Endpoint, str]]:
    """The default stack under ``root`` (its var/ as `up` prepares it) on free ports; yields
    the gateway, a TLS client endpoint for it, and a PNR of the register."""
    var = root / "var"
    prepare_var(var, PERSONS)
    pki = DevPki(var / "tls")
    migrate_register(var / "register.sqlite", var / "modern.sqlite", progress=False)
    shutil.copy(ROOT / "emulator.yaml", root / "emulator.yaml")
    emulator_config = load_config(root / "emulator.yaml")
    async with AsyncExitStack() as stack:
        emulator = Emulator(
            replace(emulator_config, listen=replace(emulator_config.listen, port=0))
        )
        _host, emulator_port = await emulator.start()
        stack.push_async_callback(emulator.aclose, 1.0)

        services = Servers(root)
        stack.push_async_callback(services.aclose)
        services_port = free_port()
        argv = cli(
            "backend",
            *("--config", str(root / "emulator.yaml"), "--store", str(var / "modern.sqlite")),
            *("--port", str(services_port)),
            *services_tls(pki),  # exactly what `cpr-gateway up` passes
        )
        await services.start("services", argv, services_port, [(services_port, None)])

        routing = yaml.safe_load((ROOT / "routing.yaml").read_text())
        routing["listen"]["port"] = 0
        routing["admin"]["port"] = 0
        routing["backends"]["mainframe"]["address"] = f"127.0.0.1:{emulator_port}"
        routing["backends"]["persons-v2"]["address"] = f"127.0.0.1:{services_port}"
        (root / "routing.yaml").write_text(yaml.safe_dump(routing))
        config = load_routing(root / "routing.yaml")
        ensure_admin_token(config.admin.token_file, "")  # as `up` does
        gateway = Gateway(config)
        _host, port = await gateway.start()
        stack.push_async_callback(gateway.aclose)

        register = Register.open(var / "register.sqlite")
        pnr = register.pnrs(limit=1)[0]
        register.close()
        yield gateway, Endpoint("127.0.0.1", port, client_context(pki.ca_cert), "localhost"), pnr


async def test_a_logon_and_a_lookup_go_through_with_tls_on_every_hop(tmp_path: Path) -> None:
    """Client → gateway (TLS), gateway → mainframe (TLS, client certificate presented),
    gateway → services (mutual TLS): the logon and the lookup answer 00, and the lookup's
    shadow copy is answered by the services (compared, not an error)."""
    async with make_run_stack(tmp_path) as (gateway, client, pnr):
        token = await logon(client, DEMO_PRIV.who, DEMO_PRIV.password)
        answer = LookupAnswer.decode(await lookup(client, DEMO_PRIV.who, token, pnr), Family.PRIV)
        assert answer.fejlnr is FejlNr.OK

        def copies(outcome: str) -> float:
            return gateway.metrics.value(
                "cpr_gateway_shadow_requests_total",
                operation="lookup",
                backend="persons-v2",
                outcome=outcome,
            )

        async with asyncio.timeout(30):  # a guard against hanging, not a measurement
            while copies("match") + copies("differs") + copies("error") == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert copies("match") == 1
        assert copies("error") == 0

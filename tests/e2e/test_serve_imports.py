"""A running `cpr-gateway serve` loads no simulator: not the emulator, the register, the
reference services, the benchmark or the developer tools, although it serves both sides; and
no driver of a store it was not given (Redis, PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from workers_harness import ROOT, wait_ready

from cpr_bench.servers import free_port, free_ports
from cpr_devtools.client import Endpoint, logon, lookup
from cpr_devtools.migration import migrate_register
from cpr_services.server import ModernServer
from emulator_harness import DEMO_PRIV, running_emulator
from gateway.codec import LookupAnswer
from gateway.model import Family, FejlNr

ROUTING = """
version: 1
listen: {{host: 127.0.0.1, port: {port}, tls: null}}
admin: {{host: 127.0.0.1, port: {admin}}}
limits: {{read_timeout: 5s, max_connections: 64, grace_period: 1s}}
backends:
  mainframe: {{kind: legacy, address: "127.0.0.1:{legacy}", tls: null, connect_timeout: 1s}}
  persons-v2: {{kind: grpc, address: "127.0.0.1:{modern}", tls: null}}
routes:
  - name: lookups
    match: {{operation: [lookup]}}
    split: {{key: pnr, backends: {{mainframe: 50, persons-v2: 50}}}}
    deadline: 5s
    shadow:
      - {{backend: persons-v2, sample: 100%, deadline: 2s}}
  - name: rest
    match: {{}}
    backend: mainframe
    deadline: 5s
"""

#: Runs the real entry point, then reports what the process had loaded when it stopped.
PROBE = """
import json, sys
from gateway.cli import main
status = main(["serve", "--config", sys.argv[1]])
tops = {name.split(".")[0] for name in sys.modules}
print("LOADED " + json.dumps({
    "status": status,
    "simulators": sorted(tops & {"cpr_accounts", "cpr_mainframe", "cpr_services",
                                 "cpr_bench", "cpr_devtools"}),
    "drivers": sorted(tops & {"redis", "psycopg"}),
    "served": sorted(m for m in ("gateway.backends.grpc", "gateway.backends.legacy",
                                 "gateway.shadow.runner", "gateway.render") if m in sys.modules),
}))
"""


async def test_serving_both_sides_loads_no_simulator_module(tmp_path: Path) -> None:
    """Lookups answered by the mainframe and the gRPC services, with shadows, and still no
    module of a package beside the product in the gateway's process."""
    async with running_emulator(persons=50, tls=False, workdir=tmp_path / "emu") as emu:
        store = tmp_path / "modern.sqlite"
        migrate_register(emu.config.register, store, progress=False)
        modern = ModernServer(emu.config, store)
        modern_port = await modern.start()  # before choosing free ports: it binds port 0
        ports = {"port": free_port(), "admin": free_ports(1), "legacy": emu.port}
        ports["modern"] = modern_port
        config = tmp_path / "routing.yaml"
        config.write_text(ROUTING.format(**ports))
        try:
            report, answers = await _serve_and_look_up(config, ports, emu.pnrs()[:20])
        finally:
            await modern.aclose(0)
    assert {LookupAnswer.decode(a, Family.PRIV).fejlnr for a in answers} == {FejlNr.OK}
    assert report["status"] == 0
    assert report["simulators"] == []
    assert report["drivers"] == []  # no shared session store, no PostgreSQL store configured
    assert report["served"] == [
        "gateway.backends.grpc",
        "gateway.backends.legacy",
        "gateway.render",
        "gateway.shadow.runner",
    ]


async def _serve_and_look_up(
    config: Path, ports: dict[str, int], pnrs: list[str]
) -> tuple[dict[str, Any], list[bytes]]:
    """The probe's report after it served ``pnrs`` and was stopped, and the answers."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE, str(config), cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        ready = asyncio.ensure_future(wait_ready(ports["admin"]))
        exited = asyncio.ensure_future(process.wait())
        await asyncio.wait((ready, exited), return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():  # it stopped before it was ready: say why
            ready.cancel()
            assert process.stderr is not None
            raise AssertionError((await process.stderr.read()).decode()[-2000:])
        exited.cancel()
        endpoint = Endpoint("127.0.0.1", ports["port"])
        token = await logon(endpoint, DEMO_PRIV.who, DEMO_PRIV.password)
        answers = [await lookup(endpoint, DEMO_PRIV.who, token, pnr) for pnr in pnrs]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(process.communicate(), 20)
    line = next(x for x in out.decode().splitlines() if x.startswith("LOADED "))
    report: dict[str, Any] = json.loads(line.removeprefix("LOADED "))
    return report, answers

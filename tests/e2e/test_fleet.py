"""The fleet on one machine, as `make fleet` runs it: `cpr-gateway up --replicas 2`.

Real processes throughout: Redis, PostgreSQL, the emulator, two services replicas, two
gateway replicas and HAProxy, each started by the supervisor from the shipped routing.yaml
and emulator.yaml, with every port moved by a free ``--port-offset``. Clients behave like
the existing ones (src/cpr_devtools/client.py): TLS, a new connection per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from cpr_bench.servers import http_get, shadow_copies
from cpr_devtools.client import Endpoint, logon, lookup
from cpr_devtools.fleet_configs import SHADOW_DB, FleetPlan, FleetPorts
from cpr_mainframe.register.store import Register
from emulator_harness import DEMO_OFF4, DEMO_PRIV, DemoUser
from gateway.codec import LookupAnswer, LookupRequest
from gateway.config import load_routing
from gateway.errors import CodecError
from gateway.model import Family, FejlNr
from gateway.routing import RouteTable
from gateway.tls import client_context

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = 2
PERSONS = 300
#: PNRs looked up per family on each side of the lookup split (_split_routing).
PER_SIDE = 6
#: Clients sending lookups through HAProxy while a replica stops; each has at most one
#: request in flight, so at most this many requests can be lost with the replica.
CLIENTS = 4
#: Lookups each client sends after HAProxy has taken the stopped replica out.
AFTER_REMOVAL = 10
#: How long the fleet may take to start (a cold start runs initdb and a migration).
START_TIMEOUT_S = 240


@dataclass
class Fleet:
    """A running `cpr-gateway up --replicas 2`, its var/ and its parts' process ids."""

    process: asyncio.subprocess.Process
    var: Path
    plan: FleetPlan
    pids: dict[str, int] = field(default_factory=dict)

    def endpoint(self, port: int) -> Endpoint:
        """A TLS endpoint on loopback, verified against the fleet's development CA."""
        return Endpoint("127.0.0.1", port, client_context(self.var / "tls" / "ca.crt"), "localhost")

    def replica(self, index: int) -> Endpoint:
        return self.endpoint(self.plan.ports.gateway + index)

    @property
    def balancer(self) -> Endpoint:
        return self.endpoint(self.plan.ports.balancer)

    @property
    def stderr(self) -> str:
        return (self.var.parent / "up.err").read_text(errors="replace")

    async def stop(self) -> int:
        """SIGTERM the supervisor, as Ctrl-C would; its exit status once all is stopped."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 120)


def _free_offset() -> int:
    """A port offset at which every port of the fleet is free on loopback right now."""
    for _attempt in range(200):
        offset = random.randrange(1000, 15000)
        if all(_is_free(port) for port in FleetPorts().shifted(offset).every(REPLICAS)):
            return offset
    raise AssertionError("no port offset with every fleet port free")


def _accepts(port: int) -> bool:
    """Whether something listens on loopback ``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError:
        return False
    return True


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _fresh_root() -> Path:
    """A directory for one fleet's var/ and logs; PostgreSQL runs as its own user when we
    are root, so that user must be able to get in."""
    root = Path(tempfile.mkdtemp(prefix="cpr-fleet-"))
    root.chmod(0o755)
    return root


def _split_routing(root: Path) -> Path:
    """The shipped routing.yaml with its lookup canary (held at 0% by the demo drift) written
    as a fixed 50/50 split instead, so that lookups reach both sides of every replica."""
    shipped = (ROOT / "routing.yaml").read_text()
    plan = shipped[shipped.index("    canary:\n") : shipped.index("  - name: all-legacy")]
    split = "    split: {key: pnr, backends: {mainframe: 50, persons-v2: 50}}\n    deadline: 2s"
    text = shipped.replace(plan, "").replace("    backend: mainframe\n    deadline: 2s", split, 1)
    path = root / "routing.yaml"
    path.write_text(text)
    return path


@asynccontextmanager
async def running_fleet() -> AsyncIterator[Fleet]:
    """`up --replicas 2` in a fresh directory, until it says the stack is up; stopped and
    its directory removed on the way out."""
    root, offset = _fresh_root(), _free_offset()
    argv = (
        *(sys.executable, "-m", "gateway.cli", "up", "--replicas", str(REPLICAS)),
        *("--routing", str(_split_routing(root))),
        *("--emulator-config", str(ROOT / "emulator.yaml")),
        *("--var", str(root / "var"), "--persons", str(PERSONS), "--port-offset", str(offset)),
    )
    with (root / "up.err").open("wb") as err:  # every part's stderr too
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=err, start_new_session=True
        )
    ports = FleetPorts().shifted(offset)
    fleet = Fleet(process, root / "var", FleetPlan(REPLICAS, root / "var", ports, "0.0.0.0"))
    up = asyncio.Event()
    reading = asyncio.ensure_future(_read_output(fleet, up))
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            await asyncio.wait(
                {reading, asyncio.ensure_future(up.wait())}, return_when="FIRST_COMPLETED"
            )
        assert up.is_set(), f"up exited before the stack was up: {fleet.stderr[-3000:]}"
        yield fleet
    finally:
        await _stop_for_good(process)
        reading.cancel()
        shutil.rmtree(root, ignore_errors=True)


async def _read_output(fleet: Fleet, up: asyncio.Event) -> None:
    """Read what `up` prints (so that it never blocks on a full pipe): the parts' pids from
    its listener lines, and "stack is up"."""
    assert fleet.process.stdout is not None
    async for raw in fleet.process.stdout:
        line = raw.decode(errors="replace").rstrip()
        if line.startswith("  ") and " pid " in line:
            what, _, pid = line.strip().rpartition(" pid ")
            fleet.pids[what.split(" 127.0.0.1:")[0].strip()] = int(pid)
        elif line == "stack is up; Ctrl-C stops it":
            up.set()


async def _stop_for_good(process: asyncio.subprocess.Process) -> None:
    """A fleet a test left running (it failed half-way): stopped, or killed with its parts."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 120)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


def _sides(fleet: Fleet, user: DemoUser) -> dict[str, list[str]]:
    """PNRs of the register by the backend the fleet's own route table sends them to."""
    with contextlib.closing(Register.open(fleet.var / "register.sqlite")) as register:
        pnrs = register.pnrs(limit=PERSONS)
    table = RouteTable(load_routing(fleet.plan.routing_path(0)).routes)
    sides: dict[str, list[str]] = {}
    who = user.who
    for pnr in pnrs:
        request = LookupRequest(who.transaction, who.customer, "token", who.user, pnr)
        sides.setdefault(table.route(request).backend, []).append(pnr)
    return {backend: found[:PER_SIDE] for backend, found in sides.items()}


async def _lookups_by_backend(admin_port: int) -> Counter[str]:
    """Lookups a replica answered, by backend, from its /metrics."""
    _status, body = await http_get(admin_port, "/metrics")
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if (
                sample.name == "cpr_gateway_requests_total"
                and sample.labels["operation"] == "lookup"
            ):
                counts[sample.labels["backend"]] += int(sample.value)
    return counts


async def _fejlnr(endpoint: Endpoint, user: DemoUser, token: str, pnr: str) -> FejlNr:
    answer = await lookup(endpoint, user.who, token, pnr)
    return LookupAnswer.decode(answer, Family(user.who.transaction)).fejlnr


def _diff_compared(dsn: str) -> int:
    """Comparisons `cpr-gateway diff` reports from the fleet's shared shadow store."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "diff", "--store", dsn, "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    return sum(op["requests"]["compared"] for op in report["operations"])


async def test_a_logon_on_one_replica_serves_lookups_on_the_other_and_through_haproxy() -> None:
    """Logon through replica 0, lookups through replica 1 (PRIV and OFF4, both sides of the
    lookup split), then the same through HAProxy: all 00. `cpr-gateway diff` on the shared
    PostgreSQL store counts the comparisons of both replicas."""
    async with running_fleet() as fleet:
        for user in (DEMO_PRIV, DEMO_OFF4):
            sides = _sides(fleet, user)
            assert {side: len(found) for side, found in sides.items()} == {
                "mainframe": PER_SIDE,
                "persons-v2": PER_SIDE,
            }
            pnrs = [pnr for side in sides.values() for pnr in side]
            token = await logon(fleet.replica(0), user.who, user.password)
            assert {await _fejlnr(fleet.replica(1), user, token, pnr) for pnr in pnrs} == {
                FejlNr.OK
            }
            token = await logon(fleet.balancer, user.who, user.password)
            assert {await _fejlnr(fleet.balancer, user, token, pnr) for pnr in pnrs} == {FejlNr.OK}
        answered = [await _lookups_by_backend(fleet.plan.ports.admin + i) for i in range(2)]
        assert set(answered[1]) == {"mainframe", "persons-v2"}, answered
        assert answered[0].total() > 0, answered  # HAProxy gave replica 0 a share too
        assert answered[0].total() + answered[1].total() == 2 * 2 * 2 * PER_SIDE

        admins = [fleet.plan.ports.admin + i for i in range(2)]
        per_replica: list[int] = []
        reported = -1
        for _attempt in range(100):  # copies are compared and stored after the answers
            copies = [await shadow_copies([port]) for port in admins]
            per_replica = [c["match"] + c["differs"] for c in copies]
            reported = _diff_compared(fleet.plan.dsn(SHADOW_DB))
            if reported == sum(per_replica) and all(per_replica):
                break
            await asyncio.sleep(0.3)
        assert all(n > 0 for n in per_replica), per_replica
        assert reported == sum(per_replica)
        assert await fleet.stop() == 0


@dataclass
class Traffic:
    """Lookups through HAProxy by clients logged on once, counted before and after a point."""

    fleet: Fleet
    pnrs: list[str]
    phase: str = "before"
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Set once the clients have had some lookups answered: the fleet is under traffic.
    warm: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, index: int) -> None:
        user = DEMO_PRIV if index % 2 else DEMO_OFF4
        token = await logon(self.fleet.balancer, user.who, user.password)
        sent_after = 0
        for n in range(10_000):
            pnr = self.pnrs[(index * 31 + n * 7) % len(self.pnrs)]
            phase = self.phase
            try:
                outcome = (await _fejlnr(self.fleet.balancer, user, token, pnr)).name
            except (OSError, CodecError, TimeoutError) as exc:  # a connection lost mid-way
                outcome = type(exc).__name__
            self.answers[phase, outcome] += 1
            if self.answers["before", "OK"] >= 5 * CLIENTS:
                self.warm.set()
            if phase == "after":
                sent_after += 1
                if sent_after == AFTER_REMOVAL:
                    return
        raise AssertionError("the replica was never taken out")


async def _server_states(socket_path: Path) -> dict[str, int]:
    """HAProxy's view of each gateway replica: 2 running, 0 stopped (`show servers state`)."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    writer.write(b"show servers state gateways\n")
    text = (await reader.read()).decode()
    writer.close()
    rows = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    return {row[3]: int(row[5]) for row in rows[1:] if len(row) > 5}


async def test_a_replica_stopped_mid_traffic_costs_only_its_requests_in_flight() -> None:
    """SIGTERM to replica 1 under traffic through HAProxy: at most the requests in flight
    are lost, HAProxy's health check takes it out, every later lookup is 00, and the rest of
    the fleet carries on until it is stopped as a whole."""
    async with running_fleet() as fleet:
        with contextlib.closing(Register.open(fleet.var / "register.sqlite")) as register:
            traffic = Traffic(fleet, register.pnrs(limit=PERSONS))
        async with asyncio.TaskGroup() as clients:
            for index in range(CLIENTS):
                clients.create_task(traffic.client(index), name=f"client-{index}")
            await traffic.warm.wait()
            os.kill(fleet.pids["gateway replica 1 (CPR Direkte, TLS)"], signal.SIGTERM)
            traffic.phase = "during"
            for _attempt in range(300):
                if (await _server_states(fleet.plan.stats_socket)).get("gateway-1") == 0:
                    break
                await asyncio.sleep(0.1)
            assert (await _server_states(fleet.plan.stats_socket))["gateway-1"] == 0
            traffic.phase = "after"
        lost = sum(n for (phase, outcome), n in traffic.answers.items() if outcome != "OK")
        assert lost <= CLIENTS, traffic.answers
        assert traffic.answers["after", "OK"] == CLIENTS * AFTER_REMOVAL, traffic.answers
        assert "gateway-1 exited (0); the others carry on" in fleet.stderr
        assert fleet.process.returncode is None
        assert await fleet.stop() == 0
        for port in (fleet.plan.ports.balancer, fleet.plan.ports.redis, fleet.plan.ports.postgres):
            assert not _accepts(port), port

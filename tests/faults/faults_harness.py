"""The fault matrix's stack, and the checks every cell makes.

Both sides run for real in the test's process: the mainframe emulator over TLS and the
reference gRPC services (grpc.aio, port 0) over mutual TLS (the gateway presents its client
certificate, its identity there), each behind a :class:`~fault_proxy.FaultProxy`, and a
gateway reading a real routing.yaml in front of them. Clients behave like the existing ones
(one logon, then lookups on new connections, several at once, each asking for a different
person).

A cell (:func:`check_cell`) is: a healthy round; the resources the process holds then
(file descriptors, asyncio tasks, the proxies' connections); the fault; a round of
concurrent lookups under it, each answered within the route's deadline plus a hang guard
(a hang check, not a timing test) with the cell's FEJLNR and, when 00, its own person; the
fault cleared; the recovery: a whole round answered 00 within :data:`RECOVERY_S`, then at
least 99% of :data:`AFTER_LOOKUPS` lookups 00; and the resources back where they were.

What a cell measured (the slowest answer under the fault against the deadline + 100 ms,
the recovery) is appended as a JSON line to the file named by ``CPR_FAULTS_REPORT``, if
set, for docs/faults.md; the tests assert none of it but the recovery bound.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fault_proxy import HEALTHY, FaultProxy, Faults, fault_proxy

from cpr_devtools.client import Endpoint, exchange, logon
from cpr_devtools.migration import migrate_register
from cpr_devtools.pki import GATEWAY_CLIENT, ensure_dev_pki
from cpr_services.drift import Drift
from cpr_services.server import ModernServer, ServiceTls
from emulator_harness import DEMO_OFF4, DEMO_PRIV, DemoUser, RunningEmulator, running_emulator
from gateway.app import Gateway
from gateway.codec import LookupAnswer, LookupRequest
from gateway.codec.headers import answer_fejlnr
from gateway.config import load_routing
from gateway.model import Family, FejlNr
from gateway.observe.events import BackendFailed

#: The lookups route's deadline: short, so that a cell that waits it out stays quick, and
#: long enough that eight TLS lookups at once (both sides, the proxy and the clients all in
#: this one process) meet it on a loaded 2-core machine (docs/faults.md: why not shorter).
DEADLINE_S = 2.0
#: How much longer than the deadline an answer may take before it counts as a hang.
HANG_GUARD_S = 10.0
#: The issue's bound: success is back this soon after a fault clears.
RECOVERY_S = 5.0
#: Lookups at once in a round, each for a different person.
CLIENTS = 8
#: Lookups after the recovery, of which at least 99% must be answered 00.
AFTER_LOOKUPS = 100
#: Logons happen before the faults; their deadline only needs to be generous.
_LOGON_DEADLINE = "2s"

ROUTING = """\
version: 1
listen: {{host: 127.0.0.1, port: 0, tls: null}}
admin: {{host: 127.0.0.1, port: 0}}
limits: {{read_timeout: 5s, max_connections: 512, grace_period: 2s}}
backends:
  mainframe:
    kind: legacy
    address: "127.0.0.1:{legacy}"
    tls: {{ca: "{ca}", server_name: localhost}}
    connect_timeout: 1s
  persons-v2:
    kind: grpc
    address: "127.0.0.1:{modern}"
    tls: {{ca: "{ca}", server_name: localhost, cert: "{client_cert}", key: "{client_key}"}}
routes:
  - name: logons
    match: {{operation: [logon, change_password]}}
    backend: {primary}
    deadline: {logon_deadline}
  - name: lookups
    match: {{operation: [lookup]}}
    backend: {primary}
    deadline: {deadline_ms}ms
{lookups_extra}
  - name: rest
    match: {{}}
    backend: {primary}
    deadline: {logon_deadline}
{top_level}"""

USERS = (DEMO_PRIV, DEMO_OFF4)


@dataclass
class FaultStack:
    """The two sides behind their proxies, the gateway, and two logged-on clients."""

    emulator: RunningEmulator
    services: ModernServer
    legacy: FaultProxy
    modern: FaultProxy
    gateway: Gateway
    client: Endpoint
    pnrs: list[str]
    #: Each demo user's token from its logon through the gateway.
    tokens: dict[str, str] = field(default_factory=dict)
    #: Lookups asked so far: each round asks for persons the last one did not.
    asked: int = 0
    #: Every backend failure the gateway has reported, in order.
    failures: list[BackendFailed] = field(default_factory=list)

    def proxy_of(self, backend: str) -> FaultProxy:
        """The proxy in front of ``mainframe`` or ``persons-v2``."""
        return self.legacy if backend == "mainframe" else self.modern


@dataclass(frozen=True, slots=True)
class Lookup:
    """One client lookup under test: who asked for whom, what came back, how soon."""

    pnr: str
    family: Family
    fejlnr: str
    answer: bytes
    seconds: float


@asynccontextmanager
async def fault_stack(
    tmp_path: Path,
    *,
    primary: str = "mainframe",
    shadow: str | None = None,
    top_level: str = "",
    lookups_extra: str = "",
    drift: Drift | None = None,
) -> AsyncIterator[FaultStack]:
    """Both sides behind proxies and a gateway routing everything to ``primary``; lookups
    copied to ``shadow`` when given. ``top_level`` is YAML appended to routing.yaml,
    ``lookups_extra`` YAML keys added to the lookups route; ``drift`` is the services'."""
    async with AsyncExitStack() as stack:
        emu = await stack.enter_async_context(
            running_emulator(persons=300, workdir=tmp_path / "emu")
        )
        assert emu.ca is not None
        # The emulator's CA signs the services' certificate and the gateway's client one too.
        pki = ensure_dev_pki(emu.ca.parent, ("emulator", "services"), (GATEWAY_CLIENT,))
        services = ModernServer(
            emu.config,
            migrated_store(emu, tmp_path),
            tls=ServiceTls(pki.cert("services"), pki.key("services"), client_ca=pki.ca_cert),
            gateway_identities=(GATEWAY_CLIENT,),
            drift=drift or Drift(),
        )
        stack.push_async_callback(services.aclose, 0)
        modern_port = await services.start()
        legacy = await stack.enter_async_context(fault_proxy(emu.port))
        modern = await stack.enter_async_context(fault_proxy(modern_port))
        if shadow is not None:
            lookups_extra = f"    shadow: [{{backend: {shadow}}}]\n{lookups_extra}"
        routing = tmp_path / "routing.yaml"
        routing.write_text(
            ROUTING.format(
                legacy=legacy.port,
                modern=modern.port,
                ca=emu.ca,
                client_cert=pki.cert(GATEWAY_CLIENT),
                client_key=pki.key(GATEWAY_CLIENT),
                primary=primary,
                deadline_ms=round(DEADLINE_S * 1000),
                logon_deadline=_LOGON_DEADLINE,
                lookups_extra=lookups_extra.rstrip("\n"),
                top_level=top_level,
            )
        )
        gateway = Gateway(load_routing(routing), watch_interval=None)
        stack.push_async_callback(gateway.aclose)
        host, port = await gateway.start()
        built = FaultStack(emu, services, legacy, modern, gateway, Endpoint(host, port), emu.pnrs())
        gateway.bus.subscribe(
            lambda event: built.failures.append(event) if isinstance(event, BackendFailed) else None
        )
        for user in USERS:
            built.tokens[user.who.user] = await logon(built.client, user.who, user.password)
        yield built


_stores: dict[Path, Path] = {}


def migrated_store(emu: RunningEmulator, tmp_path: Path) -> Path:
    """A copy of the services' store migrated from the emulator's register (once per process)."""
    register = emu.config.register
    made = _stores.get(register)
    if made is None:
        directory = Path(tempfile.mkdtemp(prefix="cpr-faults-store-"))
        atexit.register(shutil.rmtree, directory, True)  # one copy serves the whole process
        made = directory / "modern.sqlite"
        migrate_register(register, made, progress=False)
        _stores[register] = made
    copy = tmp_path / "modern.sqlite"
    shutil.copyfile(made, copy)
    copy.chmod(0o600)
    return copy


async def one_lookup(stack: FaultStack, user: DemoUser, pnr: str) -> Lookup:
    """A lookup on a new connection, bounded by the deadline plus the hang guard."""
    who = user.who
    record = LookupRequest(who.transaction, who.customer, stack.tokens[who.user], who.user, pnr)
    started = time.perf_counter()
    async with asyncio.timeout(DEADLINE_S + HANG_GUARD_S):
        answer = await exchange(stack.client, record.encode())
    seconds = time.perf_counter() - started
    family = Family(who.transaction)
    return Lookup(pnr, family, answer_fejlnr(answer).decode("ascii"), answer, seconds)


async def lookup_round(stack: FaultStack, clients: int = CLIENTS) -> list[Lookup]:
    """``clients`` lookups at once, each for a different person, by both demo users."""
    first = stack.asked
    stack.asked += clients
    pnrs = [stack.pnrs[(first + n) % len(stack.pnrs)] for n in range(clients)]
    done = await asyncio.gather(
        *(one_lookup(stack, USERS[n % len(USERS)], pnr) for n, pnr in enumerate(pnrs))
    )
    assert_own_persons(done)
    return done


def assert_own_persons(done: list[Lookup]) -> None:
    """Every answer that carries a person carries the one its client asked for (another
    client's answer would name another person in its 001 record)."""
    for lookup in done:
        if lookup.fejlnr != FejlNr.OK.value:
            continue
        assert person_of(lookup) == lookup.pnr, "a client got another client's person"


def person_of(lookup: Lookup) -> str:
    """The PNR of the person an answer is about (its 001 record)."""
    records = LookupAnswer.decode(lookup.answer, lookup.family).records
    return str(next(r.fields["PNR"] for r in records if r.type == "001"))


@dataclass(frozen=True, slots=True)
class Held:
    """What the process holds: a leak shows as more of any of these after a cell."""

    fds: int
    tasks: int
    proxied: int

    def within(self, baseline: Held) -> bool:
        return (
            self.fds <= baseline.fds
            and self.tasks <= baseline.tasks
            and self.proxied <= baseline.proxied
        )


def held_now(stack: FaultStack) -> Held:
    fds = len(os.listdir("/proc/self/fd"))
    proxied = stack.legacy.open_connections + stack.modern.open_connections
    return Held(fds, len(asyncio.all_tasks()), proxied)


async def settled(stack: FaultStack, baseline: Held | None = None) -> Held:
    """What the process holds once closes in progress are done: the same figure twice in a
    row (or back within ``baseline``); after the hang guard, whatever it holds then (the
    caller's assertion says what stayed)."""
    last = held_now(stack)
    deadline = time.perf_counter() + HANG_GUARD_S
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
        now = held_now(stack)
        if now.within(baseline) if baseline is not None else now == last:
            return now
        last = now
    return last


@dataclass(frozen=True, slots=True)
class Cell:
    """One fault, and the FEJLNR every client gets under it."""

    name: str
    faults: Faults
    expected: FejlNr
    #: Reset the connections open when the fault starts (a gRPC channel's, which would
    #: otherwise not see a fault that only touches new connections).
    drop_existing: bool = False


@dataclass(frozen=True, slots=True)
class Measured:
    """What a cell measured, for docs/faults.md."""

    cell: str
    fejlnrs: list[str]
    #: The slowest answer of the healthy round before the fault: what the machine gave then.
    healthy_s: float
    slowest_s: float
    recovery_s: float
    after_ok: int


Switch = Callable[[], Awaitable[None]]


async def check_cell(
    stack: FaultStack,
    name: str,
    expected: FejlNr,
    on: Switch,
    off: Switch,
    *,
    hold_s: float = 0.0,
) -> Measured:
    """Every check of one cell (the module docstring); ``on`` starts the fault, ``off``
    clears it. Rounds go on under the fault for ``hold_s`` seconds (at least one round), so
    that a fault a background task meets only now and then (a store written every second)
    is met while clients are served."""
    healthy = await lookup_round(stack)
    assert {x.fejlnr for x in healthy} == {FejlNr.OK.value}, "not healthy before the fault"
    baseline = await settled(stack)
    failed_before = len(stack.failures)
    try:
        await on()
        under = await rounds_for(stack, hold_s)
    finally:  # even when starting the fault failed halfway (a store left stopped hangs others)
        await off()
    cleared = time.perf_counter()
    during = _failures(stack, failed_before)
    failed_before = len(stack.failures)
    recovery_s, after_ok = await recovery(stack, cleared)
    after = _failures(stack, failed_before)
    fejlnrs = sorted({x.fejlnr for x in under})
    slowest = max(x.seconds for x in under)
    measured = Measured(
        name, fejlnrs, max(x.seconds for x in healthy), slowest, recovery_s, after_ok
    )
    report(measured)
    assert fejlnrs == [expected.value], (
        f"{name}: answered {fejlnrs}, not {expected.value}: {during}"
    )
    assert after_ok >= AFTER_LOOKUPS * 99 // 100, (
        f"{name}: {after_ok}/{AFTER_LOOKUPS} after: {after}"
    )
    held = await settled(stack, baseline)
    assert held.within(baseline), f"{name}: holds {held}, held {baseline} before the fault"
    return measured


def _failures(stack: FaultStack, since: int) -> list[str]:
    """The backend failures the gateway reported since the ``since``-th, as short facts."""
    return [f"{f.backend} {f.kind}: {f.detail}" for f in stack.failures[since:]]


async def rounds_for(stack: FaultStack, hold_s: float) -> list[Lookup]:
    """Lookup rounds, one after the other, until ``hold_s`` seconds have passed (at least one)."""
    until = time.perf_counter() + hold_s
    done = await lookup_round(stack)
    while time.perf_counter() < until:
        done += await lookup_round(stack)
    return done


async def check_proxy_cell(stack: FaultStack, backend: str, cell: Cell, role: str) -> Measured:
    """:func:`check_cell` with ``cell``'s faults on ``backend``'s proxy; ``role`` (primary,
    shadow) names the cell."""
    proxy = stack.proxy_of(backend)

    async def on() -> None:
        await proxy.inject(cell.faults, drop_existing=cell.drop_existing)

    async def off() -> None:
        await proxy.inject(HEALTHY)

    return await check_cell(stack, f"{backend} ({role}): {cell.name}", cell.expected, on, off)


async def recovery(stack: FaultStack, cleared: float) -> tuple[float, int]:
    """Seconds from ``cleared`` until a whole round is answered 00 (at most
    :data:`RECOVERY_S`), and how many of :data:`AFTER_LOOKUPS` lookups then are."""
    async with asyncio.timeout(RECOVERY_S):
        while True:
            done = await lookup_round(stack)
            if all(x.fejlnr == FejlNr.OK.value for x in done):
                break
    recovered = time.perf_counter() - cleared
    ok = 0
    for _round in range(AFTER_LOOKUPS // CLIENTS + 1):
        wanted = min(CLIENTS, AFTER_LOOKUPS - _round * CLIENTS)
        if wanted <= 0:
            break
        done = await lookup_round(stack, wanted)
        ok += sum(x.fejlnr == FejlNr.OK.value for x in done)
    return recovered, ok


def report(measured: Measured) -> None:
    """Append ``measured`` to ``$CPR_FAULTS_REPORT`` when that is set."""
    path = os.environ.get("CPR_FAULTS_REPORT")
    if not path:
        return
    line = {
        "cell": measured.cell,
        "fejlnr": measured.fejlnrs,
        "healthy_ms": round(measured.healthy_s * 1000, 1),
        "slowest_ms": round(measured.slowest_s * 1000, 1),
        "deadline_plus_100_ms": round(DEADLINE_S * 1000 + 100),
        "recovery_ms": round(measured.recovery_s * 1000, 1),
        "after_ok": f"{measured.after_ok}/{AFTER_LOOKUPS}",
    }
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")

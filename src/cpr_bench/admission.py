"""The admission phases: `cpr-gateway bench --phase idle-flood --phase overload`.

Both run one gateway on its legacy route with TLS and the product's default limits
(``Scenario.product_limits``: 64 connections per source address, 3 s to the first byte,
256 requests in flight per process), in front of the emulator, as the other phases do.

* **idle-flood** — lookups at a light open-loop rate from one loopback address
  (127.0.0.2), first alone, then while another address (127.0.0.1) keeps 2,500 TLS
  connections trying to be open, handshaken and idle: every one the gateway closes is
  opened again a second later, as an attacker would. Reported: the lookups' share of
  ``00`` and their p99 in both runs (targets: ≥ 99.9 %, p99 ≤ 1.5 × without the flood).
  ``--flood-idle`` runs the flood's process under SCHED_IDLE, so that its own TLS client work
  takes only CPU nothing else wants, as an attacker's on a machine of its own would.
* **overload** — the saturating rate is measured first (a closed loop), then lookups are
  offered in an open loop at twice that rate from many loopback addresses (127.0.1.x),
  so that no per-address limit is what refuses them. Reported: what was answered ``00``
  and its p99, what was refused early (``08`` at once, or closed at accept), what failed
  otherwise.

Latency is counted from when a lookup was due (open loop) or sent (closed loop) to the
server's close, as in the other phases. The load runs in spawned processes of its own,
as the load generator's does; the flood has a process of its own too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import multiprocessing
import os
import re
import ssl
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from cpr_bench.configs import Via
from cpr_bench.deploy import Deployed, Stack
from cpr_bench.loadgen import raise_fd_limit
from cpr_bench.measure import intended_start, percentile, usage
from cpr_bench.records import lookup_records
from cpr_bench.scenarios import Scenario
from cpr_bench.wire import Exchange, Target, answer_problem
from gateway.runtime.loops import run as run_loop
from gateway.tls import client_context

#: The phases this module runs, by name.
ADMISSION_PHASES = ("idle-flood", "overload")
#: The flood's address and the measured clients' address (Linux routes 127/8 to loopback).
FLOOD_SOURCE = "127.0.0.1"
CLIENT_SOURCE = "127.0.0.2"
#: Overload clients come from 127.0.1.1 … 127.0.1.N, round-robin.
_OVERLOAD_NET = "127.0.1."
#: A lookup not answered within this is an error (as in the other phases).
_TIMEOUT_S = 5.0
#: A flood connection the gateway closed (or refused) is opened again after this long.
_FLOOD_RETRY_S = 1.0
#: The flood is measured once it has had time to fill its slots and have them cut once
#: (the first-byte timeout, 3 s, plus the reconnect).
_FLOOD_SETTLE_S = 5.0
#: Seconds of load before each phase that are not counted.
_WARM_UP_S = 1.0
_REJECT = re.compile(r'^cpr_gateway_rejected_total\{reason="([a-z_]+)"\} ([0-9.e+]+)$', re.M)


@dataclass(frozen=True, slots=True)
class AdmissionSettings:
    """Sizes of the admission phases."""

    #: Seconds measured per run.
    duration_s: float = 10.0
    #: idle-flood: the measured clients' open-loop rate, lookups/s.
    rate: float = 50.0
    #: idle-flood: connections the flood keeps trying to hold.
    flood: int = 2500
    #: idle-flood: the flood process's niceness. An attacker's TLS client work runs on its own
    #: machine; on one machine, 19 lets the flood's client side take only CPU that the gateway
    #: and the measured clients leave (the gateway's own cost of the flood is paid in full).
    flood_nice: int = 0
    #: idle-flood: run the flood process under SCHED_IDLE, stronger than any niceness: it
    #: runs only on CPU that nothing else wants, and never delays the wake-up of the
    #: gateway, the emulator or the measured clients (nice 19 still takes a share).
    flood_idle: bool = False
    #: overload: closed-loop clients that find the saturating rate; and source addresses.
    clients: int = 32
    sources: int = 64
    #: Gateway worker processes, and load processes.
    workers: int = os.cpu_count() or 1
    generators: int = os.cpu_count() or 1
    persons: int = 10_000


@dataclass
class Run:
    """One measured run: each lookup's outcome (``00``, ``08``, or what went wrong) and
    latency; the gateway's rejections meanwhile, by reason."""

    label: str
    offered: float
    seconds: float
    outcomes: list[tuple[str, float]] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    note: str = ""

    def latencies(self, outcome: str) -> list[float]:
        """Sorted latencies (s) of lookups with ``outcome``."""
        return sorted(t for o, t in self.outcomes if o == outcome)

    def share(self, outcome: str) -> float:
        """Percent of lookups with ``outcome``."""
        return 100.0 * sum(o == outcome for o, _ in self.outcomes) / max(len(self.outcomes), 1)


# -- one lookup, and loads of them (in load processes) ----------------------------------


async def _lookup(target: Target, context: ssl.SSLContext, record: bytes, source: str) -> str:
    """One lookup on a new TLS connection from ``source``: ``00``, ``08`` or what failed."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            _transport, exchange = await loop.create_connection(
                lambda: Exchange(record, loop),
                target.host,
                target.port,
                ssl=context,
                server_hostname=target.server_name,
                local_addr=(source, 0),
            )
            await exchange.closed
    except TimeoutError:
        return "timeout"
    except (OSError, ssl.SSLError) as exc:
        return "closed at accept" if _at_accept(exc) else type(exc).__name__
    problem = answer_problem(bytes(exchange.answer))
    if problem is None:
        return "00"
    return problem.removeprefix("FEJLNR ")


def _context(target: Target) -> ssl.SSLContext:
    """The clients' TLS context: the admission phases are TLS phases."""
    assert target.ca is not None, "the admission phases run with TLS"
    return client_context(target.ca)


def _at_accept(exc: BaseException) -> bool:
    """A TLS client sees a connection closed at accept as an end of file in its handshake."""
    return isinstance(exc, ssl.SSLEOFError | ConnectionResetError | ssl.SSLZeroReturnError)


@dataclass(frozen=True, slots=True)
class _Job:
    target: Target
    records: tuple[bytes, ...]
    sources: tuple[str, ...]
    #: Open loop: lookups/s for this process (0: closed loop of ``clients``).
    rate: float
    clients: int
    duration_s: float
    start_at: float
    index: int


def _run_job(job: _Job) -> list[tuple[str, float]]:
    """A load process: its part of an open or closed loop; (outcome, latency) per lookup."""
    raise_fd_limit()
    return run_loop(_open(job) if job.rate else _closed(job))


async def _open(job: _Job) -> list[tuple[str, float]]:
    context = _context(job.target)
    outcomes: list[tuple[str, float]] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(number: int, due: float) -> None:
        record = job.records[number % len(job.records)]
        source = job.sources[number % len(job.sources)]
        outcome = await _lookup(job.target, context, record, source)
        outcomes.append((outcome, time.perf_counter() - due))

    for number in range(int(job.rate * job.duration_s)):
        due = intended_start(job.start_at, job.rate, number)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.get_running_loop().create_task(one(number + job.index, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending)
    return outcomes


async def _closed(job: _Job) -> list[tuple[str, float]]:
    context = _context(job.target)
    outcomes: list[tuple[str, float]] = []
    end = job.start_at + job.duration_s

    async def client(number: int) -> None:
        source = job.sources[number % len(job.sources)]
        while (started := time.perf_counter()) < end:
            record = job.records[number % len(job.records)]
            outcome = await _lookup(job.target, context, record, source)
            outcomes.append((outcome, time.perf_counter() - started))

    delay = job.start_at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    await asyncio.gather(*(client(job.index + n * 1000) for n in range(job.clients)))
    return outcomes


async def _load(
    pool: concurrent.futures.ProcessPoolExecutor, processes: int, job: _Job
) -> list[tuple[str, float]]:
    """``job`` split over ``processes`` load processes from one common start."""
    loop = asyncio.get_running_loop()
    start_at = time.perf_counter() + 0.5
    parts = [
        _Job(
            job.target,
            job.records,
            job.sources,
            job.rate / processes,
            max(job.clients // processes, 1),
            job.duration_s,
            start_at,
            index,
        )
        for index in range(processes)
    ]
    results = await asyncio.gather(*(loop.run_in_executor(pool, _run_job, p) for p in parts))
    return [outcome for part in results for outcome in part]


# -- the flood (a process of its own) --------------------------------------------------


class _Idle(asyncio.Protocol):
    """A connection that sends nothing and notes when the server closes it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _run_flood(
    target: Target, count: int, until: float, nice: int = 0, idle: bool = False
) -> dict[str, int]:
    """The flood process: ``count`` connections from FLOOD_SOURCE, each handshaken and left
    idle, opened again a second after the gateway closes or refuses it, until ``until``;
    at niceness ``nice``, and with ``idle`` under the idle scheduling policy."""
    os.nice(nice)
    if idle:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    raise_fd_limit()
    return run_loop(_flood(target, count, until))


async def _flood(target: Target, count: int, until: float) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    context = _context(target)
    tally: Counter[str] = Counter()

    async def keep_one() -> None:
        while time.perf_counter() < until:
            tally["attempts"] += 1
            try:
                async with asyncio.timeout(_TIMEOUT_S):
                    _transport, idle = await loop.create_connection(
                        lambda: _Idle(loop),
                        target.host,
                        target.port,
                        ssl=context,
                        server_hostname=target.server_name,
                        local_addr=(FLOOD_SOURCE, 0),
                    )
            except (TimeoutError, OSError, ssl.SSLError):
                tally["refused"] += 1
            else:
                tally["handshaken"] += 1
                left = until - time.perf_counter()
                if left > 0:
                    await asyncio.wait([idle.closed], timeout=left)
                if idle.transport is not None:
                    idle.transport.abort()
            await asyncio.sleep(_FLOOD_RETRY_S)

    await asyncio.gather(*(keep_one() for _ in range(count)))
    return dict(tally)


# -- the phases ------------------------------------------------------------------------


async def _rejections(d: Deployed) -> Counter[str]:
    """The gateway's ``cpr_gateway_rejected_total`` by reason, summed over its workers."""
    ports = d.proxy.admin_ports if d.proxy is not None else ()

    def scrape(port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())

    counts: Counter[str] = Counter()
    for port in ports:
        text = await asyncio.to_thread(scrape, port)
        for reason, value in _REJECT.findall(text):
            counts[reason] += int(float(value))
    return counts


async def _measured(
    d: Deployed,
    label: str,
    offered: float,
    seconds: float,
    load: Awaitable[list[tuple[str, float]]],
) -> Run:
    """``load`` run, with the gateway's rejections counted around it."""
    before = await _rejections(d)
    outcomes = await load
    after = await _rejections(d)
    run = Run(label, offered, seconds, outcomes)
    run.rejected = +(after - before)
    return run


async def _warm_up(
    d: Deployed,
    pool: concurrent.futures.ProcessPoolExecutor,
    records: tuple[bytes, ...],
    s: AdmissionSettings,
) -> None:
    """A second of light load, not counted (the first connections of fresh processes are
    slow), then wait until the servers are idle again."""
    job = _Job(d.target, records, (CLIENT_SOURCE,), s.rate, 0, _WARM_UP_S, 0.0, 0)
    await _load(pool, s.generators, job)
    await _settle(d)


async def _settle(d: Deployed) -> None:
    """Until the gateway and the emulator use under a tenth of a core (at most 20 s)."""
    pids = [pid for server in (d.proxy, *d.behind) if server is not None for pid in server.pids]
    last = usage(pids).cpu_s
    for _ in range(80):
        await asyncio.sleep(0.25)
        now = usage(pids).cpu_s
        if now - last < 0.025:
            return
        last = now


async def idle_flood(
    d: Deployed,
    pool: concurrent.futures.ProcessPoolExecutor,
    records: tuple[bytes, ...],
    s: AdmissionSettings,
) -> list[Run]:
    """The light load alone, then beside the flood."""
    job = _Job(d.target, records, (CLIENT_SOURCE,), s.rate, 0, s.duration_s, 0.0, 0)
    alone = await _measured(
        d, "without the flood", s.rate, s.duration_s, _load(pool, s.generators, job)
    )
    loop = asyncio.get_running_loop()
    until = time.perf_counter() + _FLOOD_SETTLE_S + s.duration_s + 1.0
    with concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn")
    ) as flooder:
        flooding = loop.run_in_executor(
            flooder, _run_flood, d.target, s.flood, until, s.flood_nice, s.flood_idle
        )
        await asyncio.sleep(_FLOOD_SETTLE_S)
        beside = await _measured(
            d,
            f"beside {s.flood:,} idle TLS connections from another address",
            s.rate,
            s.duration_s,
            _load(pool, s.generators, job),
        )
        tally = await flooding
    beside.note = (
        f"the flood: {tally.get('attempts', 0):,} connection attempts,"
        f" {tally.get('handshaken', 0):,} handshaken and left idle,"
        f" {tally.get('refused', 0):,} refused; niceness {s.flood_nice}"
        f"{', SCHED_IDLE' if s.flood_idle else ''}"
    )
    return [alone, beside]


async def overload(
    d: Deployed,
    pool: concurrent.futures.ProcessPoolExecutor,
    records: tuple[bytes, ...],
    s: AdmissionSettings,
) -> list[Run]:
    """The saturating rate (closed loop), then twice it offered (open loop)."""
    sources = tuple(f"{_OVERLOAD_NET}{n}" for n in range(1, s.sources + 1))
    closed = _Job(d.target, records, sources, 0.0, s.clients, s.duration_s, 0.0, 0)
    saturated = await _measured(
        d, f"saturation: {s.clients} clients, closed loop", 0.0, s.duration_s,
        _load(pool, s.generators, closed),
    )  # fmt: skip
    rate = len(saturated.latencies("00")) / s.duration_s
    saturated.offered = rate
    opened = _Job(d.target, records, sources, 2 * rate, 0, s.duration_s, 0.0, 0)
    twice = await _measured(
        d, "twice the saturating rate, open loop", 2 * rate, s.duration_s,
        _load(pool, s.generators, opened),
    )  # fmt: skip
    return [saturated, twice]


_PHASES = {"idle-flood": idle_flood, "overload": overload}


async def run_admission(s: AdmissionSettings, var: Path, names: Sequence[str]) -> Path:
    """Run the named admission phases, printing each one's table; returns the report's file
    (markdown, under ``var/bench``)."""
    unknown = set(names) - set(ADMISSION_PHASES)
    if unknown:
        raise ValueError(f"unknown admission phases {sorted(unknown)}")
    raise_fd_limit()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = var / "bench" / f"admission-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(var, run_dir, s.persons)
    scenario = Scenario("gateway-admission-tls", Via.LEGACY, True, s.workers, product_limits=True)
    pool = concurrent.futures.ProcessPoolExecutor(
        s.generators, mp_context=multiprocessing.get_context("spawn")
    )
    sections = []
    try:
        deployed = (await stack.deploy([scenario]))[scenario.name]
        records = await lookup_records(deployed, stack.register)
        for name in names:
            await _warm_up(deployed, pool, records, s)
            runs = await _PHASES[name](deployed, pool, records, s)
            sections.append(_section(name, runs, s))
            print(sections[-1], flush=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        await stack.aclose()
    load = os.getloadavg()[0]
    head = (
        f"Measured {stamp} UTC: {s.workers} gateway worker(s), {s.generators} load"
        f" process(es), {s.duration_s:g} s per run; load average after the run {load:.1f}."
    )
    path = run_dir / "admission.md"
    path.write_text("\n\n".join([head, *sections]) + "\n")
    print(head)
    return path


def _ms(ordered: list[float], q: float) -> str:
    return "–" if not ordered else f"{percentile(ordered, q) * 1000:,.1f}"


def _section(name: str, runs: list[Run], s: AdmissionSettings) -> str:
    """One phase's table, and what it shows against its target."""
    lines = [
        f"#### {name}",
        "",
        "| run | offered/s | lookups | `00` % | p50 ms | p99 ms (`00`) | `08` % | p99 ms (`08`)"
        " | closed at accept % | p99 ms (closed) | other errors | gateway rejected |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        good, refused = run.latencies("00"), run.latencies("08")
        closed = run.latencies("closed at accept")
        others = Counter(o for o, _ in run.outcomes if o not in {"00", "08", "closed at accept"})
        lines.append(
            f"| {run.label} | {run.offered:,.0f} | {len(run.outcomes):,} | {run.share('00'):.2f}"
            f" | {_ms(good, 50)} | {_ms(good, 99)} | {run.share('08'):.2f} | {_ms(refused, 99)}"
            f" | {run.share('closed at accept'):.2f} | {_ms(closed, 99)}"
            f" | {', '.join(f'{k} ×{v}' for k, v in others.most_common()) or '0'}"
            f" | {', '.join(f'{k} {v:,}' for k, v in sorted(run.rejected.items())) or '0'} |"
        )
    notes = [run.note for run in runs if run.note]
    if name == "idle-flood":
        alone, beside = (percentile(r.latencies("00"), 99) for r in runs)
        notes.append(
            f"`00` beside the flood: {runs[1].share('00'):.2f} % (target ≥ 99.9 %); p99"
            f" {beside / alone:.2f} × without it (target ≤ 1.5 ×)"
        )
    return "\n".join([*lines, "", *(f"- {n}" for n in notes)])


def main(argv: list[str] | None = None) -> int:
    """`python -m cpr_bench.admission [--phase NAME] [--var DIR]`."""
    import argparse  # noqa: PLC0415  (only the command line needs it)

    parser = argparse.ArgumentParser(prog="python -m cpr_bench.admission", description=__doc__)
    parser.add_argument("--var", type=Path, default=Path("var"))
    parser.add_argument("--phase", action="append", choices=ADMISSION_PHASES, default=[])
    defaults = AdmissionSettings()
    parser.add_argument("--duration", type=float, default=defaults.duration_s)
    parser.add_argument("--flood", type=int, default=defaults.flood)
    parser.add_argument("--flood-nice", type=int, default=defaults.flood_nice)
    parser.add_argument("--flood-idle", action="store_true", help="the flood under SCHED_IDLE")
    args = parser.parse_args(argv)
    settings = AdmissionSettings(
        duration_s=args.duration,
        flood=args.flood,
        flood_nice=args.flood_nice,
        flood_idle=args.flood_idle,
    )
    phases = args.phase or list(ADMISSION_PHASES)
    print(f"written: {run_loop(run_admission(settings, args.var.resolve(), phases))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

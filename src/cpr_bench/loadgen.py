"""The load generator: many CPR Direkte clients behaving exactly like the real ones.

Every lookup opens a new connection (TLS unless the target is plaintext), writes
its 39-byte record in one write, reads until EOF and never half-closes; the
token comes from one logon made beforehand (:mod:`cpr_bench.run`); the wire
side of one lookup is :mod:`cpr_bench.wire`.
An answer counts as good only when its FEJLNR is ``00`` and its length field
matches its size.

Three workloads:

* **open loop** — requests are due at a fixed rate whatever the server does, and
  latency is counted from when each was *due*, so a server that stalls cannot
  hide its delay by slowing the generator down (coordinated omission);
* **closed loop** — a fixed number of clients, each sending its next lookup when
  the last one is answered: the saturation throughput;
* **hold** — open many connections, send the first bytes of a record on each, hold
  them all open, then complete every record at one moment: memory per connection.

One Python process cannot generate much TLS, so :class:`Generator` splits every
workload evenly over several processes; each process reports its own CPU and how
late it sent (``lags``), which tells when the generator itself was the limit.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import enum
import functools
import multiprocessing
import os
import resource
import ssl
import time
from dataclasses import dataclass, field, replace

from cpr_bench.measure import intended_start
from cpr_bench.wire import Dialer, Outcome, Target, describe, exchange_once, finish
from gateway.runtime import heap
from gateway.runtime.loops import run as run_loop
from gateway.runtime.tasks import TaskSet

#: Requests one generator process keeps in flight in an open loop. Past it the server is far
#: behind; each further request is counted as an error instead of opening ever more sockets.
MAX_IN_FLIGHT = 4000
#: TLS handshakes one process runs at once while opening held connections: enough to open
#: thousands in seconds without a burst that the server's accept queue would drop.
_HANDSHAKES_AT_ONCE = 32
#: Bytes of a record sent before holding: under the 10 bytes that decide a record's length,
#: so the server can only wait for the rest.
_HOLD_PREFIX = 8
#: After a failed exchange a closed-loop client pauses this long, so a refused port does not
#: turn into a busy loop of errors.
_ERROR_PAUSE_S = 0.01


class LoadMode(enum.StrEnum):
    """How requests are paced (see the module docstring)."""

    OPEN = "open"
    CLOSED = "closed"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class Workload:
    """What to send: pacing, size and duration of one measurement."""

    mode: LoadMode
    #: Seconds measured (open, closed), or seconds the connections are held (hold).
    duration_s: float
    #: Seconds before the measured window whose requests are not counted.
    warmup_s: float = 0.5
    #: Open loop: requests per second offered, all processes together.
    rate: float = 0.0
    #: Closed loop: clients; hold: connections held; all processes together.
    concurrency: int = 0
    #: A request not answered within this many seconds is an error.
    timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Job:
    """One process's share of a workload."""

    workload: Workload
    target: Target
    #: Encoded lookup records, used round-robin.
    records: tuple[bytes, ...]
    #: time.perf_counter() (CLOCK_MONOTONIC, one clock for every process) of the start.
    start_at: float
    index: int
    of: int


@dataclass
class JobResult:
    """What one or more generator processes saw; merged with :meth:`merge`."""

    #: Seconds, of successful measured requests: from due (open), sent (closed), release (hold).
    latencies: list[float] = field(default_factory=list)
    #: Seconds from connect to an established (TLS) connection, of the same requests.
    connects: list[float] = field(default_factory=list)
    #: Open loop: seconds each measured request was sent after it was due.
    lags: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Good answers among measured requests.
    ok: int = 0
    #: Every exchange attempted, warm-up included: the divisor for CPU per request.
    exchanges: int = 0
    #: Hold: connections that were open, their record half-sent, at the release.
    held: int = 0
    #: CPU seconds of the generator processes.
    cpu_s: float = 0.0
    #: time.perf_counter() when the last measured request finished.
    last_done: float = 0.0

    def record(self, error: str | None, latency: float, connect: float, done: float) -> None:
        """Count one measured request that finished at ``done``."""
        self.last_done = max(self.last_done, done)
        if error is not None:
            self.errors[error] += 1
            return
        self.ok += 1
        self.latencies.append(latency)
        self.connects.append(connect)

    def merge(self, other: JobResult) -> JobResult:
        """Both results as one."""
        return JobResult(
            self.latencies + other.latencies,
            self.connects + other.connects,
            self.lags + other.lags,
            self.errors + other.errors,
            self.ok + other.ok,
            self.exchanges + other.exchanges,
            self.held + other.held,
            self.cpu_s + other.cpu_s,
            max(self.last_done, other.last_done),
        )


def share(total: int, index: int, of: int) -> int:
    """Process ``index``'s part of ``total`` split over ``of`` processes (parts differ by ≤1)."""
    return total // of + (1 if index < total % of else 0)


async def _sleep_until(when: float) -> None:
    delay = when - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def _open_loop(job: Job, result: JobResult) -> None:
    w = job.workload
    dialer = Dialer(job.target)
    measure_from = job.start_at + w.warmup_s
    in_flight = 0
    all_done = asyncio.Event()

    def answered(due: float, lag: float, outcome: Outcome) -> None:
        nonlocal in_flight
        in_flight -= 1
        if in_flight == 0:
            all_done.set()
        result.exchanges += 1
        if due >= measure_from:
            result.lags.append(lag)
            result.record(
                outcome.error,
                outcome.done - due,
                outcome.connected - outcome.started,
                outcome.done,
            )

    # No task per request: the lookup runs on callbacks (Dialer.start) and reports here.
    for index in range(job.index, int(w.rate * (w.warmup_s + w.duration_s)), job.of):
        due = intended_start(job.start_at, w.rate, index)
        await _sleep_until(due)
        if in_flight >= MAX_IN_FLIGHT:
            if due >= measure_from:
                result.errors["generator: too many in flight"] += 1
            continue
        in_flight += 1
        all_done.clear()
        lag = time.perf_counter() - due
        record = job.records[index % len(job.records)]
        dialer.start(record, w.timeout_s, functools.partial(answered, due, lag))
    if in_flight:
        # Every lookup ends within its timeout, so this bound is only a safety net.
        async with asyncio.timeout(w.timeout_s + 1):
            await all_done.wait()


async def _closed_loop(job: Job, result: JobResult) -> None:
    w = job.workload
    dialer = Dialer(job.target)
    measure_from = job.start_at + w.warmup_s
    end = measure_from + w.duration_s
    clients = share(w.concurrency, job.index, job.of)

    async def client(first: int) -> None:
        index = first
        while (started := time.perf_counter()) < end:
            outcome = await exchange_once(
                dialer, job.records[index % len(job.records)], w.timeout_s
            )
            index += clients * job.of
            result.exchanges += 1
            if started >= measure_from:
                result.record(
                    outcome.error,
                    outcome.done - started,
                    outcome.connected - started,
                    outcome.done,
                )
            if outcome.error is not None:
                await asyncio.sleep(_ERROR_PAUSE_S)

    await _sleep_until(job.start_at)
    tasks = TaskSet()
    for number in range(clients):
        tasks.spawn(client(job.index + number * job.of), name=f"client-{number}")
    await tasks.drain(end - time.perf_counter() + w.timeout_s + 1, "load generator: overran")


async def _hold(job: Job, result: JobResult) -> None:
    w = job.workload
    dialer = Dialer(job.target)
    release = job.start_at + w.duration_s
    opening = asyncio.Semaphore(_HANDSHAKES_AT_ONCE)

    async def held(index: int) -> None:
        record = job.records[index % len(job.records)]
        started = time.perf_counter()
        result.exchanges += 1
        try:
            async with opening, asyncio.timeout(w.timeout_s):
                exchange = await dialer.connect(record[:_HOLD_PREFIX])
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            result.errors[f"hold: {describe(exc)}"] += 1
            return
        if time.perf_counter() >= release:
            exchange.abort()
            result.errors["hold: opened after the release"] += 1
            return
        result.held += 1
        await _sleep_until(release)
        exchange.send(record[_HOLD_PREFIX:])
        outcome = await finish(exchange, release, w.timeout_s)
        result.record(
            outcome.error,
            outcome.done - release,
            exchange.connected - started,
            outcome.done,
        )

    await _sleep_until(job.start_at)
    tasks = TaskSet()
    count = share(w.concurrency, job.index, job.of)
    for number in range(count):
        tasks.spawn(held(job.index + number * job.of), name=f"held-{number}")
    await tasks.drain(w.duration_s + 2 * w.timeout_s + 1, "load generator: hold overran")


_RUNNERS = {LoadMode.OPEN: _open_loop, LoadMode.CLOSED: _closed_loop, LoadMode.HOLD: _hold}


def run_job(job: Job) -> JobResult:
    """Run one process's share of a workload (the entry point in each generator process)."""
    raise_fd_limit()
    result = JobResult()
    cpu = time.process_time()
    run_loop(_RUNNERS[job.workload.mode](job, result))
    result.cpu_s = time.process_time() - cpu
    return result


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit; returns the new soft limit.

    Every connection held or in flight is a descriptor, and servers started from
    this process inherit the limit.
    """
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _warm(seconds: float) -> int:
    """A pool process's first job: be started, with its start-up heap settled (runtime.heap),
    so that no full collection of it pauses a measurement."""
    heap.settle()
    time.sleep(seconds)
    return os.getpid()


class Generator:
    """A pool of generator processes; each workload is split evenly over all of them."""

    #: Seconds between handing out the jobs and their common start: enough for every
    #: process to receive its job, so none starts late.
    LEAD_S = 0.3

    def __init__(self, processes: int) -> None:
        self.processes = processes
        # Spawned, not forked: the parent runs an event loop and server subprocesses.
        self._pool = concurrent.futures.ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn")
        )

    async def start(self) -> None:
        """Start every process now, so that the first measurement does not pay for it.

        Each is handed a short sleep at once, so the pool starts all of them.
        """
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, _warm, 0.5) for _ in range(self.processes))
        )

    def next_start(self) -> float:
        """A start time (time.perf_counter()) that every process can still meet."""
        return time.perf_counter() + self.LEAD_S

    async def run(
        self,
        workload: Workload,
        target: Target,
        records: tuple[bytes, ...],
        start_at: float,
        processes: int | None = None,
    ) -> JobResult:
        """Run ``workload`` against ``target`` from ``start_at``; merged.

        Split over ``processes`` of the pool (default: all of them).
        """
        loop = asyncio.get_running_loop()
        of = min(processes or self.processes, self.processes)
        job = Job(workload, target, records, start_at, 0, of)
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self._pool, run_job, replace(job, index=index))
                for index in range(of)
            )
        )
        merged = JobResult()
        for part in parts:
            merged = merged.merge(part)
        return merged

    def close(self) -> None:
        """Stop the processes."""
        self._pool.shutdown(wait=True, cancel_futures=True)

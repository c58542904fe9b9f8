"""What splitting light traffic over the workers costs: ``python -m cpr_bench.worker_split``.

At the light phase's rate the benchmark's gateway (``serve --workers N``, one process per
core) lets every worker take connections from the shared accept queue, so each sees 1/N of
them and finds its caches as the other processes left them; HAProxy's threads share one
address space. This measures the difference in one run, window after window in turn: the
gateway's workers as they run, the same gateway with all but one of its workers stopped
(SIGSTOP for the window, so one worker takes every connection and the others are not even
woken: the most that keeping light traffic on one worker could save), and HAProxy with as
many threads. The stopped workers are resumed after each window, whatever happens.

Stopping is not a way to run the gateway (a stopped worker answers nothing); the figure
says whether a way of keeping light traffic on one worker is worth building on a machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cpr_bench.accounting import median
from cpr_bench.breakdown import BreakdownSettings, warm, window
from cpr_bench.configs import Via
from cpr_bench.deploy import Deployed, Stack
from cpr_bench.loadgen import Generator
from cpr_bench.records import lookup_records
from cpr_bench.scenarios import Scenario
from gateway.runtime.loops import run as run_loop

#: The hops, in the order a window measures them (every other window in reverse).
SPLIT, ONE, HAPROXY = "gateway, every worker", "gateway, one worker running", "haproxy"
HOPS = (SPLIT, ONE, HAPROXY)


@dataclass(frozen=True, slots=True)
class Ratio:
    """Per-window ratios of one hop's CPU per lookup to another's, summarised."""

    name: str
    median: float
    low: float
    high: float


def ratios(costs: dict[str, list[float]], pairs: Iterable[tuple[str, str]]) -> list[Ratio]:
    """For each (a, b): a's CPU per lookup over b's, window by window (both were measured in
    the same window, so a drift of the machine's speed cancels), median and range."""
    out = []
    for a, b in pairs:
        each = [x / y for x, y in zip(costs[a], costs[b], strict=True) if y > 0]
        if each:
            out.append(Ratio(f"{a} ÷ {b}", median(each), min(each), max(each)))
    return out


def workers_of(pids: Sequence[int]) -> list[int]:
    """The worker processes of ``serve --workers N`` from its process tree (root first)."""
    return sorted(pids[1:])


@contextlib.contextmanager
def stopped(pids: Iterable[int]) -> Iterator[None]:
    """``pids`` stopped (SIGSTOP) for the block, and continued after it, raise or not."""
    held = []
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            held.append(pid)
        yield
    finally:
        for pid in held:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def run_split(s: BreakdownSettings, workers: int, var: Path) -> str:
    """The gateway with ``workers`` workers, with one of them running, and HAProxy with as
    many threads, at ``s.rate`` lookups/s, ``s.windows`` windows each in turn."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = var / "bench" / f"worker-split-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(var, run_dir, s.persons)
    gateway = Scenario("gateway-legacy-tls", Via.LEGACY, True, workers, session_reuse=True)
    haproxy = Scenario("haproxy-tls", Via.HAPROXY, True, workers, session_reuse=True)
    quiet = replace(s, perf=False)
    generator = Generator(s.generators)
    try:
        await generator.start()
        deployed = await stack.deploy([gateway, haproxy])
        if len(deployed) < 2:
            raise SystemExit(f"not started: {stack.unavailable}")
        hops: dict[str, tuple[Deployed, tuple[bytes, ...]]] = {}
        for name, scenario in ((SPLIT, gateway), (HAPROXY, haproxy)):
            d = deployed[scenario.name]
            hops[name] = (d, await lookup_records(d, stack.register))
        hops[ONE] = hops[SPLIT]
        await warm(generator, (hops[SPLIT], hops[HAPROXY]), quiet, run_dir)
        proxy = hops[SPLIT][0].proxy
        assert proxy is not None  # a gateway scenario has its hop
        rest = workers_of(proxy.pids)[1:]
        costs: dict[str, list[float]] = {name: [] for name in HOPS}
        for number in range(s.windows):
            line = []
            for name in HOPS if number % 2 == 0 else reversed(HOPS):
                with stopped(rest if name == ONE else ()):
                    cost = await window(generator, *hops[name], quiet, profile_dir=run_dir)
                costs[name].append(cost.total_us)
                line.append(f"{name} {cost.total_us:,.0f} µs")
            print(f"window {number + 1}: {'; '.join(line)} per lookup", flush=True)
    finally:
        generator.close()
        await stack.aclose()
    text = _report(costs, s, workers, stamp)
    (run_dir / "worker-split.md").write_text(text + "\n")
    return text


def _report(costs: dict[str, list[float]], s: BreakdownSettings, workers: int, stamp: str) -> str:
    head = (
        f"Measured {stamp} UTC: {s.rate:g} TLS lookups/s, {s.windows} windows of"
        f" {s.duration_s:g} s per hop in turn; the gateway with {workers} workers and HAProxy"
        f" with {workers} threads; load average after {os.getloadavg()[0]:.1f}."
    )
    rows = [f"| {name} | {median(costs[name]):,.0f} |" for name in HOPS]
    table = "\n".join(["| hop | CPU per lookup, µs (median) |", "|---|---|", *rows])
    pairs = ((SPLIT, HAPROXY), (ONE, HAPROXY), (ONE, SPLIT))
    lines = [f"- {r.name}: {r.median:.3f} ({r.low:.3f}-{r.high:.3f})" for r in ratios(costs, pairs)]
    return "\n\n".join([head, table, "Per window, median (range):\n\n" + "\n".join(lines)])


def main(argv: list[str] | None = None) -> int:
    """`python -m cpr_bench.worker_split [--workers N] [--windows W] [--duration S]`."""
    parser = argparse.ArgumentParser(prog="python -m cpr_bench.worker_split", description=__doc__)
    defaults = BreakdownSettings()
    parser.add_argument("--var", type=Path, default=Path("var"))
    parser.add_argument("--rate", type=float, default=defaults.rate)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers: at least 2 (there is nothing to split with one)")
    settings = BreakdownSettings(args.rate, args.duration, windows=args.windows, perf=False)
    started = time.monotonic()
    print(run_loop(run_split(settings, args.workers, args.var.resolve())))
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

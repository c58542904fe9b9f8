"""Where a lookup's CPU goes in the gateway: ``python -m cpr_bench.breakdown`` (``make breakdown``).

One gateway process on its legacy route with TLS on both hops (the ``light-tls-100``
scenario with one worker), HAProxy with one thread, and the bare relay
(cpr_bench.bare_relay: the least a Python TLS proxy on uvloop does), each in front of
the emulator, get lookups at the light phase's open-loop rate. Two kinds of window:

1. **measured**, each hop in turn: CPU per lookup from /proc (``utime`` and ``stime``
   apart), split by library with perf when it is installed (cpr_bench.perf_split);
2. **profiled**, the gateway again with py-spy reading its Python stacks.

Each sample is put in one stage of a lookup's life (:data:`STAGES`): OpenSSL's work
wherever it is called from, else the innermost frame of the gateway's own code, else the
event loop. A stage's share of the samples times the measured CPU per lookup is its cost
in µs. The two handshakes are also measured apart, in memory (cpr_bench.tls_floor).

The stacks are kept (``stacks-gateway.txt``, py-spy's raw format) so the rules can be
checked and refined against them, and so is each stage's most sampled Python frames
(``top-frames.txt``), the list to start tuning from. A profiler that cannot attach (no
ptrace or perf_event permission) is reported and its table left out; the CPU figures stand.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cpr_bench import accounting, perf_split, tls_floor
from cpr_bench.configs import Via
from cpr_bench.deploy import Deployed, Stack
from cpr_bench.loadgen import Generator, LoadMode, Workload
from cpr_bench.measure import cpu_times
from cpr_bench.records import lookup_records
from cpr_bench.scenarios import Scenario
from cpr_bench.servers import LOOPBACK, free_port
from cpr_bench.stages import IDLE, STAGES, parse_raw, top_frames
from cpr_bench.tls_floor import HandshakeFloor
from cpr_bench.wire import Target
from gateway.runtime.loops import run as run_loop

#: The scenario of the gateway from ``--against``.
AGAINST = "gateway-against-tls"


@dataclass(frozen=True, slots=True)
class BreakdownSettings:
    """Sizes of a breakdown run."""

    #: Lookups/s offered, open loop (the light phase's rate: every path keeps up).
    rate: float = 100.0
    #: Seconds per window (measured, then profiled).
    duration_s: float = 20.0
    #: py-spy samples per second.
    sample_rate: int = 1000
    #: py-spy's native frames too (OpenSSL, uvloop, libc). Off by default: to unwind C stacks
    #: it stops the process for every sample, which catches it at system calls far more often
    #: than it spends there (getpid, ~0.2 µs, came out as 3 % of a worker); Python stacks are
    #: read without stopping it. What the C code costs comes from perf instead.
    native: bool = False
    #: The library split of every hop by perf, when perf is installed.
    perf: bool = True
    #: Only measured windows (CPU per lookup of the gateway and the bare relay in turn, no
    #: profiler): for A/B runs.
    measure_only: bool = False
    #: How many pairs of windows when ``measure_only`` or ``against`` (windows with ``account``).
    windows: int = 3
    #: Every hop with a full TLS handshake per connection towards the mainframe (HAProxy's
    #: ``no-ssl-reuse``, the gateway's ``tls_resumption: false``, the bare relay's
    #: ``--full-handshakes``) instead of each resuming sessions, as they do by default.
    full_handshakes: bool = False
    #: Another source tree (a work tree of an earlier commit): its gateway runs beside this
    #: one's and the two are measured in turn, in one run (an A/B; nothing else is measured).
    against: Path | None = None
    #: The gateway's functions accounted in place (cpr_bench.accounting), each window: alone,
    #: or with ``against``, both trees' gateways (a tree from before the accounting runs
    #: unaccounted).
    account: bool = False
    #: Like ``account``, but every call the gateway makes is counted instead (calls per
    #: lookup, which do not move with the machine; cpr_bench.accounting ``--calls``).
    calls: bool = False
    #: Worker processes of each gateway (``serve --workers``) with ``against`` or
    #: ``measure_only``; the profiled and accounted runs read one process.
    workers: int = 1
    generators: int = os.cpu_count() or 1
    persons: int = 10_000


@dataclass(frozen=True, slots=True)
class Cost:
    """CPU per lookup of one path's hop, from /proc: user and system time, in µs."""

    user_us: float
    system_us: float
    lookups: int
    #: Share of the hop's CPU by library group (cpr_bench.perf_split); empty without perf.
    libraries: dict[str, float] = field(default_factory=dict)

    @property
    def total_us(self) -> float:
        return self.user_us + self.system_us


async def window(
    generator: Generator,
    d: Deployed,
    records: tuple[bytes, ...],
    s: BreakdownSettings,
    *,
    profile_dir: Path,
    profile_to: Path | None = None,
) -> Cost:
    """One window of open-loop load on ``d``: perf records it (files in ``profile_dir``), or
    with ``profile_to`` py-spy samples it into that file instead."""
    assert d.proxy is not None
    pids = d.proxy.pids
    workload = Workload(LoadMode.OPEN, s.duration_s, warmup_s=0.0, rate=s.rate)
    spy = recording = None
    if profile_to is not None:
        spy = await _py_spy(pids, s, profile_to)
    elif s.perf and perf_split.available():
        recording = perf_split.Recording(pids, profile_dir / f"perf-{d.scenario.name}.data")
        await recording.start()
    before = cpu_times(pids)
    result = await generator.run(workload, d.target, records, generator.next_start())
    after = cpu_times(pids)
    libraries = await recording.stop() if recording is not None else {}
    if recording is not None and not libraries:
        print(f"{d.scenario.name}: perf recorded nothing (see perf_event_paranoid)", flush=True)
    if spy is not None and await spy.wait() != 0:
        assert profile_to is not None  # spy runs only with it
        problem = profile_to.with_suffix(".log").read_text(errors="replace")[-300:]
        print(f"py-spy could not sample: {problem}", flush=True)
    errors = sum(result.errors.values())
    if errors:
        print(f"{d.scenario.name}: {errors} errors ({dict(result.errors)})", flush=True)
    lookups = max(result.exchanges, 1)
    return Cost(
        (after[0] - before[0]) / lookups * 1e6,
        (after[1] - before[1]) / lookups * 1e6,
        result.exchanges,
        libraries,
    )


async def _py_spy(
    pids: Sequence[int], s: BreakdownSettings, output: Path
) -> asyncio.subprocess.Process:
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    [pid] = pids  # one gateway process: its stacks are the whole hop's
    argv = [binary, "record", "--pid", str(pid), "--format", "raw"]
    argv += ["--native"] if s.native else ["--nonblocking"]
    argv += ["--rate", str(s.sample_rate), "--duration", str(round(s.duration_s + 1))]
    argv += ["--output", str(output)]
    with output.with_suffix(".log").open("wb") as log:  # its progress and complaints
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=log
        )
    await asyncio.sleep(0.5)  # attached before the load starts
    return process


def _library_table(hops: dict[str, Cost]) -> list[str]:
    """CPU per lookup of each hop, by library (perf's shares of the /proc total)."""
    groups = [g for g, _ in perf_split.GROUPS] + [perf_split.OTHER_LIBRARIES]
    shown = [g for g in groups if any(c.libraries.get(g, 0.0) >= 0.005 for c in hops.values())]
    lines = [
        "| hop | CPU per lookup µs (user + system) | " + " | ".join(shown) + " |",
        "|---|---|" + "---|" * len(shown),
    ]
    for name, cost in hops.items():
        cells = [f"{cost.libraries.get(g, 0.0) * cost.total_us:,.0f}" for g in shown]
        lines.append(
            f"| {name} | {cost.total_us:,.0f} ({cost.user_us:,.0f} + {cost.system_us:,.0f})"
            f" | " + " | ".join(cells) + " |"
        )
    return lines


HAPROXY, BARE, GATEWAY = ("HAProxy (1 thread)", "bare relay", "gateway (1 process)")


def _table(hops: dict[str, Cost], samples: Counter[str], floor: HandshakeFloor) -> str:
    gateway, haproxy, bare = hops[GATEWAY], hops[HAPROXY], hops[BARE]
    total = sum(n for stage, n in samples.items() if stage != IDLE)
    lines = ["CPU per lookup, by library (perf):", ""]
    if any(c.libraries for c in hops.values()):
        lines += _library_table(hops)
    else:
        lines += [f"| {n} | {c.total_us:,.0f} µs |" for n, c in hops.items()]
        lines.append("(perf is not installed: no split by library)")
    lines += [
        "",
        f"- gateway ÷ HAProxy {gateway.total_us / max(haproxy.total_us, 1):.2f} ×; bare relay ÷"
        f" HAProxy {bare.total_us / max(haproxy.total_us, 1):.2f} ×; the gateway beyond the bare"
        f" relay {gateway.total_us - bare.total_us:,.0f} µs per lookup",
        f"- the two handshakes alone, in memory (cpr_bench.tls_floor): {floor.server_us:,.0f} µs"
        f" as the client hop's server + {floor.client_us:,.0f} µs as the mainframe's client"
        f" ({'resuming' if floor.resumed else 'a full handshake'}) ="
        f" {floor.both_us:,.0f} µs",
        "",
    ]
    if not total:
        return "\n".join([*lines, "py-spy took no samples of the gateway: no table by stage."])
    lines += [
        f"The gateway's CPU per lookup by stage (py-spy, {total:,} samples):",
        "",
        "| stage | share of samples | µs per lookup |",
        "|---|---|---|",
    ]
    for stage in STAGES:
        share = samples[stage] / total
        lines.append(f"| {stage} | {share * 100:.1f} % | {share * gateway.total_us:,.0f} |")
    lines.append(f"| **all** (user + system, /proc) | 100 % | {gateway.total_us:,.0f} |")
    return "\n".join(lines)


async def run_breakdown(s: BreakdownSettings, var: Path) -> Path:
    """The whole breakdown (or, with ``measure_only`` or ``against``, only its comparison);
    the table is printed and written to the run's directory."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = var / "bench" / f"breakdown-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(var, run_dir, s.persons)
    reuse = not s.full_handshakes
    ledgers = run_dir / "accounting" if s.account or s.calls else None
    ours = Scenario(
        "gateway-legacy-tls",
        Via.LEGACY,
        True,
        s.workers,
        session_reuse=reuse,
        count_calls=s.calls,
    )
    scenarios = [replace(ours, accounting=None if ledgers is None else ledgers / ours.name)]
    if s.against is not None:
        against = replace(ours, name=AGAINST, source=s.against)
        if ledgers is not None and _accounts(s.against, calls=s.calls):
            against = replace(against, accounting=ledgers / AGAINST)
        scenarios.append(against)
    elif not s.measure_only and not s.account and not s.calls:
        scenarios.append(Scenario("haproxy-tls", Via.HAPROXY, True, 1, session_reuse=reuse))
    generator = Generator(s.generators)
    try:
        await generator.start()
        deployed = await stack.deploy(scenarios)
        if any(sc.name not in deployed for sc in scenarios):
            raise SystemExit(f"not started: {stack.unavailable}")
        gateway = deployed["gateway-legacy-tls"]
        hop = (gateway, await lookup_records(gateway, stack.register))
        if s.against is not None:
            other = deployed[AGAINST]
            theirs = ("against", other, await lookup_records(other, stack.register))
            await _in_turn(generator, [("this tree", *hop), theirs], s, run_dir)
            return run_dir
        if s.account or s.calls:
            await _in_turn(generator, [("gateway", *hop)], s, run_dir)
            return run_dir
        bare = await _bare_relay(stack, gateway, full_handshakes=s.full_handshakes)
        relay = (bare, await lookup_records(bare, stack.register))
        if s.measure_only:
            await _in_turn(generator, [("gateway", *hop), ("bare relay", *relay)], s, run_dir)
            return run_dir
        haproxy = deployed["haproxy-tls"]
        text = await _whole(generator, stack, hop, relay, haproxy=haproxy, s=s, run_dir=run_dir)
    finally:
        generator.close()
        await stack.aclose()
    head = (
        f"Measured {stamp} UTC: one gateway process, one HAProxy thread and the bare relay,"
        f" {s.rate:g} TLS lookups/s for {s.duration_s:g} s per window, TLS sessions towards the"
        f" mainframe {'never resumed' if s.full_handshakes else 'resumed'}; load average after"
        f" {os.getloadavg()[0]:.1f}."
    )
    path = run_dir / "breakdown.md"
    path.write_text(f"{head}\n\n{text}\n")
    print(f"{head}\n\n{text}")
    return path


async def _whole(
    generator: Generator,
    stack: Stack,
    gateway: tuple[Deployed, tuple[bytes, ...]],
    relay: tuple[Deployed, tuple[bytes, ...]],
    *,
    haproxy: Deployed,
    s: BreakdownSettings,
    run_dir: Path,
) -> str:
    """Every hop measured (perf along), the gateway profiled, the handshakes in memory."""
    hops = {HAPROXY: (haproxy, await lookup_records(haproxy, stack.register))}
    hops[BARE] = relay
    hops[GATEWAY] = gateway
    await warm(generator, hops.values(), s, run_dir)
    costs = {name: await window(generator, *hop, s, profile_dir=run_dir)
             for name, hop in hops.items()}  # fmt: skip
    stacks = run_dir / "stacks-gateway.txt"
    await window(generator, *gateway, s, profile_dir=run_dir, profile_to=stacks)
    lines = stacks.read_text().splitlines() if stacks.exists() else []
    (run_dir / "top-frames.txt").write_text(top_frames(lines))
    tls = stack.gateway_tls, stack.emulator_tls
    floor = await asyncio.to_thread(
        tls_floor.measure,
        (tls[0].cert, tls[0].key),
        (tls[1].cert, tls[1].key),
        tls[0].ca,
        resumed=not s.full_handshakes,
    )
    return _table(costs, parse_raw(lines), floor)


async def warm(
    generator: Generator,
    hops: Iterable[tuple[Deployed, tuple[bytes, ...]]],
    s: BreakdownSettings,
    run_dir: Path,
) -> None:
    """Two seconds of load on each hop, not counted: fresh processes are slow at first."""
    quiet = replace(s, duration_s=2.0, perf=False)
    for hop in hops:
        await window(generator, *hop, quiet, profile_dir=run_dir)


async def _in_turn(
    generator: Generator,
    hops: Sequence[tuple[str, Deployed, tuple[bytes, ...]]],
    s: BreakdownSettings,
    run_dir: Path,
) -> None:
    """Hops measured in turn, window after window (A B, then B A, so that a drift favours
    neither): each window's figures and, of two hops, their ratio (first ÷ second), then
    the medians. The machine's speed drifts by a tenth or more over minutes here, and both
    hops drift with it, so the ratio is the steadier figure. An accounted gateway's
    functions (cpr_bench.accounting) are read before and after each of its windows."""
    plain = replace(s, perf=False)
    await warm(generator, (hop[1:] for hop in hops), s, run_dir)
    names = [hop[0] for hop in hops]
    costs: dict[str, list[float]] = {name: [] for name in names}
    ledgers: dict[str, list[accounting.Window]] = {name: [] for name in names}
    ratios = []
    for number in range(s.windows):
        pair = {}
        for name, deployed, records in hops if number % 2 == 0 else reversed(hops):
            pair[name], ledger = await _accounted_window(
                generator, deployed, records, plain, run_dir
            )
            costs[name].append(pair[name].total_us)
            if ledger is not None:
                ledgers[name].append(ledger)
        line = "; ".join(
            f"{name} {c.total_us:,.0f} µs ({c.user_us:,.0f} user + {c.system_us:,.0f} system)"
            for name, c in ((n, pair[n]) for n in names)
        )
        if len(names) == 2:
            ratios.append(pair[names[0]].total_us / max(pair[names[1]].total_us, 1))
            line += f" per lookup; ratio {ratios[-1]:.3f}"
        print(f"window {number + 1}: {line}", flush=True)
    medians = [f"{name} {accounting.median(v):,.0f} µs" for name, v in costs.items()]
    summary = f"median: {', '.join(medians)}"
    if ratios:
        middle = accounting.median(ratios)
        summary += f"; median ratio {middle:.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
    print(summary)
    accounted = {name: windows for name, windows in ledgers.items() if windows}
    if accounted:
        if s.calls:
            text = accounting.calls_table(accounted)
        else:
            text = accounting.table(accounted, accounting.clock_cost_us())
        (run_dir / "accounting.md").write_text(text + "\n")
        print(text)


def _accounts(tree: Path, *, calls: bool) -> bool:
    """Whether ``tree``'s gateway can be accounted (its cpr_bench.accounting exists), or with
    ``calls`` its calls counted (that module has ``--calls``)."""
    module = tree / "src/cpr_bench/accounting.py"
    return module.exists() and (not calls or '"--calls"' in module.read_text())


async def _accounted_window(
    generator: Generator,
    d: Deployed,
    records: tuple[bytes, ...],
    s: BreakdownSettings,
    run_dir: Path,
) -> tuple[Cost, accounting.Window | None]:
    """A measured window; with the gateway's functions accounted, what they spent in it."""
    directory = d.scenario.accounting
    if directory is None or d.proxy is None:
        return await window(generator, d, records, s, profile_dir=run_dir), None
    pid = d.proxy.pids[0]
    before = await _ledger(directory, pid)
    cost = await window(generator, d, records, s, profile_dir=run_dir)
    after = await _ledger(directory, pid)
    return cost, accounting.between(before, after, cost.lookups)


async def _ledger(directory: Path, pid: int) -> dict[str, Any]:
    """The accounted process's figures once everything before now is in them."""
    await asyncio.sleep(accounting.WRITE_INTERVAL_S * 2.5)
    return accounting.read(directory, pid)


async def _bare_relay(stack: Stack, gateway: Deployed, *, full_handshakes: bool) -> Deployed:
    """cpr_bench.bare_relay in front of the gateway's emulator, with the gateway's certificate."""
    [emulator] = gateway.behind
    port = free_port()
    tls = stack.gateway_tls
    argv = [sys.executable, "-m", "cpr_bench.bare_relay", "--port", str(port)]
    argv += ["--cert", str(tls.cert), "--key", str(tls.key), "--ca", str(tls.ca)]
    argv += ["--upstream-port", str(emulator.port)]
    argv += ["--full-handshakes"] if full_handshakes else []
    server = await stack.servers.start("bare-relay-tls", argv, port, [(port, None)])
    scenario = Scenario("bare-relay-tls", Via.HAPROXY, True, 1)  # a TLS hop in front, as HAProxy
    return Deployed(scenario, Target(LOOPBACK, port, tls.ca), server, (emulator,))


def main(argv: list[str] | None = None) -> int:
    """`python -m cpr_bench.breakdown [--rate R] [--duration S] [--var DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m cpr_bench.breakdown", description=__doc__)
    defaults = BreakdownSettings()
    parser.add_argument("--var", type=Path, default=Path("var"))
    parser.add_argument("--rate", type=float, default=defaults.rate)
    parser.add_argument("--duration", type=float, default=defaults.duration_s)
    parser.add_argument("--sample-rate", type=int, default=defaults.sample_rate)
    parser.add_argument(
        "--native", action="store_true", help="py-spy samples C frames too (stops the process)"
    )
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="CPU per lookup of the gateway and the bare relay in turn (A/B)",
    )
    parser.add_argument("--windows", type=int, default=defaults.windows)
    parser.add_argument(
        "--full-handshakes",
        action="store_true",
        help="every hop without TLS session resumption towards the mainframe",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="another source tree: its gateway beside this one's, in turn (A/B in one run)",
    )
    parser.add_argument(
        "--account",
        action="store_true",
        help="the gateway's functions' CPU per lookup, in place (cpr_bench.accounting)",
    )
    parser.add_argument(
        "--calls",
        action="store_true",
        help="every call the gateway makes, per lookup (cpr_bench.accounting --calls)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="gateway worker processes (serve --workers), with --against or --measure-only",
    )
    args = parser.parse_args(argv)
    if args.workers != 1 and (
        not (args.against or args.measure_only) or args.account or args.calls
    ):
        parser.error("--workers: only with --against or --measure-only, without accounting")
    if args.workers < 1:
        parser.error("--workers: at least 1")
    settings = BreakdownSettings(
        args.rate,
        args.duration,
        args.sample_rate,
        native=args.native,
        measure_only=args.measure_only,
        windows=args.windows,
        full_handshakes=args.full_handshakes,
        against=args.against.resolve() if args.against else None,
        account=args.account,
        calls=args.calls,
        workers=args.workers,
    )
    started = time.monotonic()
    path = run_loop(run_breakdown(settings, args.var.resolve()))
    print(f"written: {path} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

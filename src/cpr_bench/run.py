"""`cpr-gateway bench`: start every scenario's servers, run the interleaved phases, report.

Each measurement: log on through the scenario's path (like a real client, once),
read the hop's and the backends' /proc counters, run the workload on every
generator process from one common start, read the counters again. Results go to
``var/bench/bench-<time>.json`` and ``.md`` (and ``latest.*``); configs and
server logs to ``var/bench/run-<time>/``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cpr_bench.configs import Via
from cpr_bench.deploy import Deployed, Stack
from cpr_bench.loadgen import Generator, LoadMode, raise_fd_limit
from cpr_bench.measure import (
    ProcessUsage,
    machine_share,
    machine_times,
    reset_peak,
    usage,
)
from cpr_bench.records import BenchClient, bench_client, logon_through
from cpr_bench.report import Sample, machine, pool, to_json, to_markdown, update_docs
from cpr_bench.scenarios import Phase, Settings, interleave, needed, phases, scenarios
from cpr_bench.servers import shadow_copies
from cpr_bench.targets import check_targets
from cpr_devtools.client import LogonFailed

#: Seconds a logon before a measurement may take.
_LOGON_TIMEOUT_S = 10.0
#: Hold: memory is read this long before the release, with every connection open.
_BEFORE_RELEASE_S = 0.3
#: Servers count as settled after start-up when together they use less CPU than this
#: share of one core; they are given at most _SETTLE_LIMIT_S to get there.
_IDLE_SHARE = 0.1
_SETTLE_LIMIT_S = 20.0
_SETTLE_STEP_S = 0.25


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run wrote, and its report."""

    json_path: Path
    markdown_path: Path
    markdown: str
    report: dict[str, Any]


async def run_bench(
    settings: Settings, var: Path, plan: list[Phase] | None = None, docs: Path | None = None
) -> Outcome:
    """Run ``plan`` (default: the full benchmark) and write the report under ``var/bench``.

    ``var`` must be absolute: the servers' configs live in the run directory, and a relative
    path written into them would be read from there.
    """
    plan = plan if plan is not None else phases(settings)
    raise_fd_limit()  # inherited by every server started below
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    bench_dir = var / "bench"
    run_dir = bench_dir / f"run-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    catalogue = scenarios(settings)
    stack = Stack(
        var, run_dir, settings.persons, audit=settings.audit, request_lines=settings.request_lines
    )
    generator = Generator(max(settings.generators, settings.plain_generators))
    began, times_before = time.monotonic(), machine_times()
    load_before = os.getloadavg()[0]  # other work on the machine skews every number
    try:
        deployed = await stack.deploy(catalogue[name] for name in needed(plan))
        await generator.start()
        client = bench_client(stack.register)
        pids = [os.getpid(), *(pid for server in stack.servers.started for pid in server.pids)]
        peaks = "per measurement" if reset_peak(pids) else "since each server started"
        measurer = _Measurer(deployed, generator, client, pids, settings)
        samples = await measurer.all(plan, settings.rounds)
    finally:
        generator.close()
        await stack.aclose()
    elapsed = time.monotonic() - began
    meta = {
        "started": started.isoformat(),
        "duration_s": round(elapsed, 1),
        "machine": machine(),
        "settings": {**asdict(settings), "phases": [p.name for p in plan]},
        "unavailable": stack.unavailable,
        "rss_peak": peaks,
        "load_before": round(load_before, 2),
        "stolen_share": round(
            machine_share(machine_times().stolen_s - times_before.stolen_s, elapsed), 4
        ),
    }
    rows = pool(samples)
    targets = check_targets(rows)
    report = to_json(rows, samples, targets, meta)
    markdown = to_markdown(rows, targets, meta, stack.unavailable)
    json_path, markdown_path = bench_dir / f"bench-{stamp}.json", bench_dir / f"bench-{stamp}.md"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    markdown_path.write_text(markdown)
    shutil.copyfile(json_path, bench_dir / "latest.json")
    shutil.copyfile(markdown_path, bench_dir / "latest.md")
    if docs is not None:
        update_docs(docs, markdown)
    return Outcome(json_path, markdown_path, markdown, report)


async def _settle(pids: list[int]) -> None:
    """Wait until the servers are idle: started (imports, first connections), and done with
    what the last measurement left (an overloaded one leaves queues behind)."""
    deadline = time.monotonic() + _SETTLE_LIMIT_S
    last = usage(pids).cpu_s
    while time.monotonic() < deadline:
        await asyncio.sleep(_SETTLE_STEP_S)
        now = usage(pids).cpu_s
        if now - last < _IDLE_SHARE * _SETTLE_STEP_S:
            return
        last = now


@dataclass(frozen=True, slots=True)
class _Measurer:
    """What every measurement of a run uses; ``ours`` are the run's own processes."""

    deployed: dict[str, Deployed]
    generator: Generator
    client: BenchClient
    ours: list[int]
    settings: Settings

    async def all(self, plan: list[Phase], rounds: int) -> list[Sample]:
        """Every step of the plan in interleaved order, each on idle servers."""
        samples = []
        steps = [step for step in interleave(plan, rounds) if step[2] in self.deployed]
        for number, (round_number, phase, name) in enumerate(steps, 1):
            await _settle(self.ours)
            before, mine = machine_times(), usage(self.ours).cpu_s
            started = time.monotonic()
            sample = await self.one(self.deployed[name], phase, round_number)
            # What else ran on the machine meanwhile, and what the hypervisor kept for other
            # guests: either skews every number of this sample.
            sample.elapsed_s = time.monotonic() - started
            ours = usage(self.ours).cpu_s - mine + sample.result.cpu_s
            after = machine_times()
            sample.foreign_cpu_s = max(after.busy_s - before.busy_s - ours, 0.0)
            sample.stolen_cpu_s = after.stolen_s - before.stolen_s
            samples.append(sample)
            print(f"[{number}/{len(steps)}] {_progress(sample)}", flush=True)
        return samples

    async def one(self, d: Deployed, phase: Phase, round_number: int) -> Sample:
        """One scenario, one phase, one round."""
        workload = phase.workload
        sample = Sample(phase.name, d.scenario.name, round_number, workload, d.scenario.tls)
        try:
            token = await _logon(d, self.client)
        except (LogonFailed, OSError, TimeoutError) as exc:
            sample.failure = f"logon: {exc or type(exc).__name__}"
            return sample
        records = self.client.records(token)
        reset_peak(d.proxy.pids if d.proxy is not None else ())
        admin = d.proxy.admin_ports if d.scenario.via is Via.SHADOW and d.proxy else ()
        copies_before = await shadow_copies(admin)
        hop_before, behind_before = _usage(d)
        start_at = self.generator.next_start()
        s = self.settings
        processes = s.generators if d.scenario.tls else s.plain_generators
        running = asyncio.ensure_future(
            self.generator.run(workload, d.target, records, start_at, processes)
        )
        if workload.mode is LoadMode.HOLD:
            release = start_at + workload.duration_s
            await asyncio.sleep(release - _BEFORE_RELEASE_S - time.perf_counter())
            hop_now, behind_now = _usage(d)
            sample.rss_held = (hop_now if hop_now is not None else behind_now).rss
        sample.result = await running
        hop_after, behind_after = _usage(d)
        if hop_after is not None and hop_before is not None:
            sample.hop = hop_after - hop_before
        sample.behind = behind_after - behind_before
        if admin:  # shadow drops are counted, not hidden (issue 5, P4)
            sample.shadow_copies = dict(await shadow_copies(admin) - copies_before)
        sample.window_s = workload.duration_s
        if workload.mode is LoadMode.OPEN:  # answers arriving after the schedule count too
            measured_from = start_at + workload.warmup_s
            sample.window_s = max(workload.duration_s, sample.result.last_done - measured_from)
        return sample


async def _logon(d: Deployed, client: BenchClient) -> str:
    async with asyncio.timeout(_LOGON_TIMEOUT_S):
        return await logon_through(d, client)


def _usage(d: Deployed) -> tuple[ProcessUsage | None, ProcessUsage]:
    """(hop, behind) usage now; the hop is None when clients reach the emulator directly."""
    hop = d.proxy.usage() if d.proxy is not None else None
    behind = usage(pid for server in d.behind for pid in server.pids)
    return hop, behind


def _progress(sample: Sample) -> str:
    result = sample.result
    head = f"round {sample.round + 1} {sample.phase} {sample.scenario}:"
    if sample.failure:
        return f"{head} {sample.failure}"
    lat = sorted(result.latencies)
    p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
    errors = sum(result.errors.values())
    return f"{head} {result.ok} ok, {errors} errors, p50 {p50:.1f} ms"

"""A run's results as JSON and as a markdown table, with the machine they were measured on.

One row per (phase, scenario): the rounds are pooled before percentiles are
taken, and the spread of the rounds' p99 is kept to show the noise. Hop CPU is
per request: the CPU seconds the measured hop's processes (the gateway's
workers, or HAProxy) used during the measurements, divided by every exchange
sent, warm-up included, since the CPU window includes it too.
"""

from __future__ import annotations

import collections
import math
import os
import platform
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cpr_bench.loadgen import JobResult, LoadMode, Workload
from cpr_bench.measure import LatencySummary, ProcessUsage, machine_share

_MB = 1024 * 1024
#: An open-loop measurement whose generator sent this late (p99) was limited by the
#: generator, not the server: its latencies are flagged in the table.
GENERATOR_LAG_S = 0.005
#: A row is flagged when processes outside the benchmark used more than this share of
#: the machine's CPU during its measurements.
NOISE_SHARE = 0.1
#: A row is flagged when the hypervisor took more than this share of the machine's CPU
#: (steal time) during its measurements: lower than NOISE_SHARE, as stolen time is
#: capacity gone outright, in bursts that hit latency hardest.
STEAL_SHARE = 0.05
#: Share of the offered rate a path must answer to count as keeping up (see Row.kept_up).
KEPT_UP = 0.95
DOCS_BEGIN = "<!-- bench:begin -->"
DOCS_END = "<!-- bench:end -->"


@dataclass
class Sample:
    """One round of one scenario in one phase, as measured."""

    phase: str
    scenario: str
    round: int
    workload: Workload
    tls: bool
    result: JobResult = field(default_factory=JobResult)
    #: Seconds over which good answers are counted for requests/s.
    window_s: float = 0.0
    #: Usage of the measured hop (gateway, HAProxy) during the sample; None when direct.
    hop: ProcessUsage | None = None
    #: Usage of what answers behind it (emulator, gRPC services) during the sample.
    behind: ProcessUsage | None = None
    #: Hold: resident memory of the hop (or the emulator, direct) with every connection open.
    rss_held: int | None = None
    #: Why nothing was measured (e.g. the logon failed).
    failure: str | None = None
    #: Wall-clock seconds of the measurement; CPU seconds that processes outside the
    #: benchmark used on the machine meanwhile, and that the hypervisor took (steal).
    elapsed_s: float = 0.0
    foreign_cpu_s: float = 0.0
    stolen_cpu_s: float = 0.0
    #: Shadow copies made during the sample, by outcome; None when the path has no shadow.
    shadow_copies: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """Every round of one scenario in one phase, pooled."""

    phase: str
    scenario: str
    mode: str
    load: str
    #: Requests/s offered (open loop), clients (closed loop) or connections (hold).
    offered: float
    rounds: int
    ok: int
    errors: dict[str, int]
    latency_ms: dict[str, float]
    #: Lowest and highest p99 of the single rounds, ms.
    p99_spread_ms: tuple[float, float]
    rps: float
    connect_p50_ms: float
    send_lag_p99_ms: float
    hop_cpu_ms: float | None
    hop_rss_peak_mb: float | None
    #: The lowest of the rounds' peaks: memory kept from an earlier phase raises the others.
    hop_rss_low_mb: float | None
    hop_processes: int | None
    behind_cpu_ms: float | None
    generator_cpu_ms: float
    tls_handshakes_per_s: float
    held: int | None
    rss_held_mb: float | None
    failures: list[str]
    #: Share of the machine's CPU that other processes used during the measurements.
    foreign_share: float
    #: Share of the machine's CPU that the hypervisor took during them (steal time).
    stolen_share: float
    #: Shadow copies by outcome over every round (dropped ones included); None: no shadow.
    shadow_copies: dict[str, int] | None = None

    @property
    def error_count(self) -> int:
        """Every failed request."""
        return sum(self.errors.values())

    @property
    def kept_up(self) -> bool:
        """Open loop: answered (nearly) the whole offered rate, without errors.

        5% below the offered rate is allowed: the window ends at the last answer,
        so even a server that keeps up shows a rate a latency's worth lower.
        """
        return self.error_count == 0 and self.rps >= KEPT_UP * self.offered

    @property
    def noisy(self) -> bool:
        """True when other processes used a notable share of the machine meanwhile."""
        return self.foreign_share > NOISE_SHARE

    @property
    def robbed(self) -> bool:
        """True when the hypervisor took a notable share of the machine's CPU meanwhile."""
        return self.stolen_share > STEAL_SHARE

    @property
    def generator_bound(self) -> bool:
        """True when the generator sent late enough to have been the limit."""
        return self.send_lag_p99_ms > GENERATOR_LAG_S * 1000


def pool(samples: Sequence[Sample]) -> list[Row]:
    """One row per (phase, scenario), in the order first measured."""
    groups: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.phase, sample.scenario), []).append(sample)
    return [_row(group) for group in groups.values()]


def _row(group: Sequence[Sample]) -> Row:
    first = group[0]
    merged = JobResult()
    for sample in group:
        merged = merged.merge(sample.result)
    latency = LatencySummary.of(merged.latencies)
    spread = [LatencySummary.of(s.result.latencies).p99 * 1000 for s in group if s.result.ok]
    window = sum(s.window_s for s in group)
    exchanges = max(merged.exchanges, 1)
    hops = [s.hop for s in group if s.hop is not None]
    behinds = [s.behind for s in group if s.behind is not None]
    held = [s.rss_held for s in group if s.rss_held is not None]
    is_hold = first.workload.mode is LoadMode.HOLD
    rps = merged.ok / window if window > 0 else 0.0
    return Row(
        phase=first.phase,
        scenario=first.scenario,
        mode=first.workload.mode.value,
        load=_load(first.workload),
        offered=first.workload.rate
        if not first.workload.concurrency
        else first.workload.concurrency,
        rounds=len(group),
        ok=merged.ok,
        errors=dict(merged.errors),
        latency_ms={
            "p50": latency.p50 * 1000,
            "p90": latency.p90 * 1000,
            "p99": latency.p99 * 1000,
            "max": latency.max * 1000,
        },
        p99_spread_ms=(min(spread), max(spread)) if spread else (math.nan, math.nan),
        rps=math.nan if is_hold else rps,
        connect_p50_ms=LatencySummary.of(merged.connects).p50 * 1000,
        send_lag_p99_ms=LatencySummary.of(merged.lags).p99 * 1000 if merged.lags else 0.0,
        hop_cpu_ms=sum(h.cpu_s for h in hops) / exchanges * 1000 if hops else None,
        hop_rss_peak_mb=max(h.rss_peak for h in hops) / _MB if hops else None,
        hop_rss_low_mb=min(h.rss_peak for h in hops) / _MB if hops else None,
        hop_processes=hops[-1].processes if hops else None,
        behind_cpu_ms=sum(b.cpu_s for b in behinds) / exchanges * 1000 if behinds else None,
        generator_cpu_ms=merged.cpu_s / exchanges * 1000,
        tls_handshakes_per_s=rps if first.tls and not is_hold else 0.0,
        held=merged.held if is_hold else None,
        rss_held_mb=max(held) / _MB if held else None,
        failures=[s.failure for s in group if s.failure],
        foreign_share=_share(group, lambda s: s.foreign_cpu_s),
        stolen_share=_share(group, lambda s: s.stolen_cpu_s),
        shadow_copies=_shadow_copies(group),
    )


def _shadow_copies(group: Sequence[Sample]) -> dict[str, int] | None:
    counted = [collections.Counter(s.shadow_copies) for s in group if s.shadow_copies is not None]
    if not counted:
        return None
    return dict(sorted(sum(counted, collections.Counter()).items()))


def shadow_text(row: Row) -> str:
    """``row``'s shadow copies by outcome, e.g. ``1,204 match, 596 dropped``."""
    copies = row.shadow_copies or {}
    return ", ".join(f"{n:,} {outcome}" for outcome, n in copies.items()) or "none"


def _share(group: Sequence[Sample], cpu_s: Callable[[Sample], float]) -> float:
    """What share of the machine's CPU over ``group``'s measurements ``cpu_s`` amounts to."""
    return machine_share(sum(cpu_s(s) for s in group), sum(s.elapsed_s for s in group))


def _load(workload: Workload) -> str:
    if workload.mode is LoadMode.OPEN:
        return f"{workload.rate:g}/s offered"
    if workload.mode is LoadMode.CLOSED:
        return f"{workload.concurrency} clients"
    return f"{workload.concurrency} held {workload.duration_s:g}s"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpuinfo("model name") or platform.processor() or "unknown",
        # A virtual machine's cores are shared with other guests (see steal time).
        "virtual": "hypervisor" in (_cpuinfo("flags") or "").split(),
        "memory_gib": round(_meminfo_kib("MemTotal") / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "haproxy": _haproxy_version(),
    }


def _cpuinfo(key: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return None


def _meminfo_kib(key: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == key:
                return int(value.split()[0])
    except OSError:
        pass
    return 0


def _haproxy_version() -> str | None:
    try:
        out = subprocess.run(
            ["haproxy", "-v"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return None
    return out.splitlines()[0] if out else None


def to_json(
    rows: Sequence[Row],
    samples: Sequence[Sample],
    targets: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """Everything of a run as plain JSON values (NaN becomes null)."""
    rounds = [
        {
            "phase": s.phase,
            "scenario": s.scenario,
            "round": s.round,
            "ok": s.result.ok,
            "errors": dict(s.result.errors),
            "hop_rss_peak_mb": s.hop.rss_peak / _MB if s.hop is not None else None,
            "foreign_cpu_s": s.foreign_cpu_s,
            "stolen_cpu_s": s.stolen_cpu_s,
            "latency_ms": {
                k: v * 1000
                for k, v in asdict(LatencySummary.of(s.result.latencies)).items()
                if k != "count"
            },
            "failure": s.failure,
        }
        for s in samples
    ]
    report: dict[str, Any] = _finite(
        {**meta, "results": [asdict(r) for r in rows], "rounds": rounds, "targets": targets}
    )
    return report


def _finite(value: Any) -> Any:
    """JSON has no NaN: an unmeasured number is null."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_markdown(
    rows: Sequence[Row],
    targets: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
    unavailable: Mapping[str, str],
) -> str:
    """The table a person reads: machine, one section per phase, targets, what was not run."""
    m = meta["machine"]
    lines = [
        f"Measured {meta['started']} on {m['nproc']} × {m['cpu']}"
        + (" (virtual machine)" if m.get("virtual") else "")
        + f", {m['memory_gib']} GiB, "
        f"Python {m['python']}, Linux {m['kernel']}"
        + (f", {m['haproxy']}" if m.get("haproxy") else "")
        + f"; {meta['settings']['rounds']} interleaved rounds of "
        f"{meta['settings']['duration_s']:g}s per scenario"
        + (f"; load average before the run {meta['load_before']}" if "load_before" in meta else "")
        + (
            f"; the hypervisor took {meta['stolen_share']:.1%} of the CPU over the run (steal)."
            if "stolen_share" in meta
            else "."
        ),
        "",
        _LEGEND.format(peak=meta.get("rss_peak", "since each server started")),
        "",
    ]
    for phase in dict.fromkeys(r.phase for r in rows):
        in_phase = [r for r in rows if r.phase == phase]
        lines += [f"#### {phase}", "", *_table(in_phase), ""]
        for r in in_phase:
            if r.shadow_copies is not None:
                lines += [f"Shadow copies of {r.scenario}: {shadow_text(r)}.", ""]
    if targets:
        lines += ["#### Targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        lines += [
            f"| {t['key']} | {t['goal']} | {t['measured']} | {_met(t['met'])} |" for t in targets
        ]
        lines.append("")
    for name, reason in unavailable.items():
        lines.append(f"- **{name}**: not available — {reason}")
    return "\n".join(lines).rstrip() + "\n"


_LEGEND = (
    "req/s: good answers per second. Latency: from when each request was due (open loop) or"
    " sent (closed loop; hold: from the release), to the server's close. hop: the gateway"
    " (all its processes) or HAProxy; backend: the emulator and/or the gRPC services behind"
    " it. CPU per request includes warm-up requests. Peak RSS (VmHWM): {peak}; a range is"
    " the lowest and highest round (memory a burst left behind raises the later rounds)."
    " ⚠gen: the generator sent late (p99 > 5 ms), so the whole machine was the limit."
    " ⚠busy: other processes used over 10% of the machine meanwhile."
    " ⚠steal: the hypervisor took over 5% of the machine's CPU meanwhile (steal time: the"
    " cores of a virtual machine are shared, so it had that much less capacity)."
)
_HEADER = (
    "| scenario | load | req/s | p50 ms | p90 ms | p99 ms (rounds) | max ms | errors "
    "| hop CPU ms/req | hop peak RSS MB | backend CPU ms/req | TLS hs/s |"
)


def _table(rows: Sequence[Row]) -> list[str]:
    lines = [_HEADER, "|---" * 12 + "|"]
    for r in rows:
        lat = r.latency_ms
        flag = (
            (" ⚠gen" if r.generator_bound else "")
            + (" ⚠busy" if r.noisy else "")
            + (" ⚠steal" if r.robbed else "")
        )
        p99 = f"{_n(lat['p99'])} ({_n(r.p99_spread_ms[0])}–{_n(r.p99_spread_ms[1])})"
        rps = _n(r.rps, 0) if r.held is None else f"{r.held} held"
        rss = _n(r.hop_rss_peak_mb, 0)
        low = r.hop_rss_low_mb
        if low is not None and r.hop_rss_peak_mb is not None and low < 0.9 * r.hop_rss_peak_mb:
            rss = f"{_n(low, 0)}–{rss}"
        if r.rss_held_mb is not None:
            rss = f"{_n(r.rss_held_mb, 0)} held / {rss} peak"
        hop_cpu = _n(r.hop_cpu_ms, 2)
        if r.hop_processes and r.hop_processes > 1:
            hop_cpu += f" ({r.hop_processes} proc)"
        lines.append(
            f"| {r.scenario} | {r.load} | {rps} | {_n(lat['p50'])}{flag} | {_n(lat['p90'])} "
            f"| {p99} | {_n(lat['max'])} | {_errors(r)} | {hop_cpu} | {rss} "
            f"| {_n(r.behind_cpu_ms, 2)} | {_n(r.tls_handshakes_per_s, 0)} |"
        )
    return lines


def _n(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:,.{digits}f}"


def _errors(row: Row) -> str:
    if row.failures:
        return "failed: " + "; ".join(row.failures)
    if not row.errors:
        return "0"
    kinds = ", ".join(f"{k} ×{v}" for k, v in sorted(row.errors.items(), key=lambda kv: -kv[1]))
    return f"{row.error_count} ({kinds})"


def _met(met: bool | None) -> str:
    return "not measured" if met is None else ("**met**" if met else "**not met**")


def update_docs(path: Path, markdown: str) -> None:
    """Put ``markdown`` between the bench markers of ``path`` (the rest is left as written)."""
    text = path.read_text()
    head, begin, rest = text.partition(DOCS_BEGIN)
    _old, end, tail = rest.partition(DOCS_END)
    if not begin or not end:
        raise ValueError(f"{path} has no {DOCS_BEGIN} … {DOCS_END} section")
    path.write_text(f"{head}{DOCS_BEGIN}\n{markdown}{DOCS_END}{tail}")

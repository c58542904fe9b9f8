"""What a benchmark run measures: scenarios (paths to the mainframe) and phases (workloads).

A **scenario** is one path from the client to the emulator: direct, through
HAProxy, or through the gateway on its legacy route, its modern route (gRPC
services), or the legacy route with a shadow to the modern side; each with TLS
or plaintext on the client-facing hop. Each scenario has its own server
processes, so their CPU and memory are its alone.

A **phase** is a workload run against several scenarios. Rounds interleave them
(phase 1: A B C, phase 2: …, then again), so that whatever else the machine does
hits every scenario alike, instead of one unlucky scenario taking it all; every other
round takes a phase's scenarios in reverse (A B C, then C B A), so that a machine
that speeds up or slows down over a round favours no scenario of the phase.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cpr_bench.configs import Via, check_hold
from cpr_bench.loadgen import LoadMode, Workload


@dataclass(frozen=True, slots=True)
class Scenario:
    """One path to the emulator; ``workers`` is gateway processes or HAProxy threads."""

    name: str
    via: Via
    tls: bool
    workers: int = 1
    #: A gateway with the product's default limits instead of the benchmark's open ones
    #: (cpr_bench.configs.BENCH_LIMITS): the admission phases.
    product_limits: bool = False
    #: A gateway run from another source tree's ``src`` (an A/B of two versions in one run,
    #: cpr_bench.breakdown --against); None: this one.
    source: Path | None = None
    #: A gateway whose functions are accounted in place, writing its figures to this
    #: directory (cpr_bench.accounting; one process); None: not accounted.
    accounting: Path | None = None
    #: With ``accounting``: every call counted instead of chosen functions timed
    #: (cpr_bench.accounting ``--calls``).
    count_calls: bool = False
    #: TLS sessions resumed towards the mainframe, as both hops do by default (HAProxy's
    #: ``ssl-reuse``, the gateway's ``tls_resumption``); False: a full handshake per
    #: connection on either (cpr_bench.breakdown --full-handshakes). The same on both, so
    #: that both do the same TLS work.
    session_reuse: bool = True
    #: The legacy backend's ``spare_connections`` (0: none, the product's default).
    spare_connections: int = 0


@dataclass(frozen=True, slots=True)
class Phase:
    """One workload against some scenarios, in this order within a round."""

    name: str
    workload: Workload
    scenarios: tuple[str, ...]
    #: Run in the first round only (holding thousands of connections is not repeated).
    once: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    """Sizes of a run; the defaults are the full benchmark (a few minutes on two cores)."""

    duration_s: float = 2.5
    warmup_s: float = 0.5
    rounds: int = 2
    #: Open loop, TLS clients, at a rate every path sustains on a small machine: the added
    #: latency and CPU of each hop when nothing is saturated (P5, and context for P1, P4).
    light_rate: float = 100.0
    #: Open loop, TLS client hop (target P1).
    tls_rate: float = 500.0
    #: Open loop, shadow on and off (target P4).
    shadow_rate: float = 300.0
    #: Open loop, plaintext client hop (target P3).
    plain_rate: float = 1000.0
    #: Closed loop: clients at once (targets P2, P5).
    concurrency: int = 32
    #: Connections held open at once (target P6), and for how long.
    hold: int = 2000
    hold_s: float = 8.0
    #: Gateway worker processes, and HAProxy threads, in the scenarios that scale.
    workers: int = os.cpu_count() or 1
    #: Load generator processes for TLS clients: a client's TLS handshake is dear enough that
    #: one process cannot send the TLS rates on time (docs/benchmarks.md, "What is not met,
    #: and why": P1).
    generators: int = os.cpu_count() or 1
    #: Load generator processes for plaintext clients. One process carries the plaintext rate
    #: with a fraction of a core (docs/benchmarks.md, "Where the time goes, and what was
    #: changed": the load generator's plaintext lookups); a second one would only be one
    #: more process contending for the cores the servers need.
    plain_generators: int = 1
    #: Persons in the synthetic register.
    persons: int = 10_000
    #: Only these phases (by name); empty for all.
    phases: tuple[str, ...] = ()
    #: Every gateway keeps the audit log of lookups (docs/audit.md) in the run's directory,
    #: as `make run` does: its cost is this run's figures against a run without.
    audit: bool = False
    #: Every gateway's ``logging.requests``: ``all`` (the product's default), or ``errors``
    #: (no line per answered request, as the benchmark's HAProxy writes none).
    request_lines: str = "all"

    def __post_init__(self) -> None:
        check_hold(self.hold_s)


#: Settings of the smoke run in ``make test``: every mode, tiny, no HAProxy, no gRPC. Yet
#: each phase gives every process measured some 30 ms of CPU or more: /proc counts CPU in
#: 10 ms ticks, and a phase whose servers used less than one would report no CPU at all
#: (20 resumed lookups, or 10 held connections, cost the emulator about one tick).
SMOKE = Settings(
    duration_s=1.0,
    warmup_s=0.2,
    rounds=1,
    tls_rate=50.0,
    concurrency=2,
    hold=40,
    hold_s=1.0,
    workers=1,
    generators=1,
    persons=300,
)


def scenarios(settings: Settings) -> dict[str, Scenario]:
    """Every scenario by name."""
    w = settings.workers
    catalogue = [
        Scenario("direct-tls", Via.DIRECT, True),
        Scenario("direct-plain", Via.DIRECT, False),
        Scenario("haproxy-tls", Via.HAPROXY, True, w),
        Scenario("haproxy-plain", Via.HAPROXY, False, w),
        Scenario("gateway-legacy-tls", Via.LEGACY, True, w),
        Scenario("gateway-legacy-plain", Via.LEGACY, False, w),
        # The legacy route with a connection to the mainframe opened ahead of each request.
        Scenario("gateway-spares-tls", Via.LEGACY, True, w, spare_connections=1),
        Scenario("gateway-modern-tls", Via.MODERN, True, w),
        Scenario("gateway-modern-plain", Via.MODERN, False, w),
        # Shadow on against gateway-legacy-tls (shadow off): the same workers, which share
        # sessions (gateway.sessions.peers), so each copy finds its side's token.
        Scenario("gateway-shadow-tls", Via.SHADOW, True, w),
        Scenario("gateway-shadow-plain", Via.SHADOW, False, w),
        # Every lookup needs its session (logons on one side, lookups on the other): sessions
        # in the embedded store against sessions in Redis, on the same workers.
        Scenario("gateway-sessions-tls", Via.SESSIONS, True, w),
        Scenario("gateway-sessions-redis-tls", Via.SESSIONS_REDIS, True, w),
    ]
    return {s.name: s for s in catalogue}


def phases(settings: Settings) -> list[Phase]:
    """The full benchmark's phases, or the selected ones."""
    s = settings
    tls_paths = ("direct-tls", "haproxy-tls", "gateway-legacy-tls", "gateway-modern-tls")
    plain_paths = (
        "direct-plain",
        "haproxy-plain",
        "gateway-legacy-plain",
        "gateway-modern-plain",
        "gateway-shadow-plain",
    )
    shadow_pair = ("gateway-legacy-tls", "gateway-shadow-tls")
    every = [
        Phase(
            f"light-tls-{s.light_rate:g}",
            _open(s, s.light_rate),
            (*tls_paths, shadow_pair[1], "gateway-spares-tls"),
        ),
        Phase(f"open-tls-{s.tls_rate:g}", _open(s, s.tls_rate), tls_paths),
        Phase(f"open-shadow-{s.shadow_rate:g}", _open(s, s.shadow_rate), shadow_pair),
        Phase(f"open-plain-{s.plain_rate:g}", _open(s, s.plain_rate), plain_paths),
        Phase(
            f"closed-tls-{s.concurrency}",
            _closed(s),
            (*tls_paths, shadow_pair[1], "gateway-spares-tls"),
        ),
        Phase(f"closed-plain-{s.concurrency}", _closed(s), plain_paths),
        Phase(
            f"light-sessions-{s.light_rate:g}",
            _open(s, s.light_rate),
            ("gateway-sessions-tls", "gateway-sessions-redis-tls"),
        ),
        Phase(
            f"hold-{s.hold}",
            Workload(LoadMode.HOLD, s.hold_s, concurrency=s.hold),
            ("haproxy-tls", "gateway-legacy-tls"),
            once=True,
        ),
    ]
    return _select(every, s.phases)


def _select(every: list[Phase], names: tuple[str, ...]) -> list[Phase]:
    """The phases named (all when none are); ValueError for a name not among them."""
    if not names:
        return every
    unknown = set(names) - {p.name for p in every}
    if unknown:
        raise ValueError(f"unknown phases {sorted(unknown)}; known: {[p.name for p in every]}")
    return [p for p in every if p.name in names]


def smoke_phases(settings: Settings) -> list[Phase]:
    """The smoke run: each mode once against direct and the gateway's legacy route."""
    paths = ("direct-tls", "gateway-legacy-tls")
    every = [
        Phase("smoke-open", _open(settings, settings.tls_rate), paths),
        Phase("smoke-closed", _closed(settings), paths),
        Phase(
            "smoke-hold",
            Workload(LoadMode.HOLD, settings.hold_s, concurrency=settings.hold),
            ("gateway-legacy-tls",),
            once=True,
        ),
    ]
    return _select(every, settings.phases)


def interleave(plan: list[Phase], rounds: int) -> Iterator[tuple[int, Phase, str]]:
    """(round, phase, scenario) in run order: A B C of each phase, then every phase again,
    with each phase's scenarios reversed in every other round (C B A)."""
    for round_number in range(rounds):
        for phase in plan:
            if phase.once and round_number > 0:
                continue
            names = phase.scenarios if round_number % 2 == 0 else reversed(phase.scenarios)
            for name in names:
                yield round_number, phase, name


def needed(plan: list[Phase]) -> list[str]:
    """The scenarios a plan uses, in first-use order."""
    return list(dict.fromkeys(name for phase in plan for name in phase.scenarios))


def _open(settings: Settings, rate: float) -> Workload:
    return Workload(LoadMode.OPEN, settings.duration_s, settings.warmup_s, rate=rate)


def _closed(settings: Settings) -> Workload:
    return Workload(
        LoadMode.CLOSED, settings.duration_s, settings.warmup_s, concurrency=settings.concurrency
    )

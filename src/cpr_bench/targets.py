"""The targets P1–P6 (issue 5, tightened by issue 19), judged from a run's rows: reported,
never asserted.

A target is *met* or *not met* only when it was measurable: its rows exist
(phase run, HAProxy installed, shadows built) and, for the open-loop targets,
the baseline path kept up with the offered rate. When the baseline itself could
not (a machine too small for the rate: direct to the emulator already falls
behind), the gateway is not to blame and the target is "not measurable here";
the light phase's numbers are given as context instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cpr_bench.report import Row, shadow_text

#: P6's bound on the gateway's resident memory.
RSS_LIMIT_MB = 200.0
#: P6's number of concurrent client connections.
P6_CONNECTIONS = 2000

Find = Callable[[str, str], Row | None]


def check_targets(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Each target: key, goal, what was measured, and met (True, False, None = not measured)."""

    def find(phase_prefix: str, scenario: str) -> Row | None:
        return next(
            (r for r in rows if r.phase.startswith(phase_prefix) and r.scenario == scenario),
            None,
        )

    return [check(find) for check in (_p1, _p1_spares, _p2, _p3, _p4, _p5, _p6, _s1)]


def _target(key: str, goal: str, measured: str, met: bool | None) -> dict[str, Any]:
    return {"key": key, "goal": goal, "measured": measured, "met": met}


def _ran(*rows: Row | None) -> bool:
    return all(r is not None and r.ok > 0 for r in rows)


def _first_ran(
    find: Find, prefixes: tuple[str, ...], scenarios: tuple[str, ...], required: int
) -> list[Row | None] | None:
    """The rows of ``scenarios`` in the first phase (by name prefix, in order) where the first
    ``required`` of them ran; None when no phase has them. The light phase comes first
    wherever it judges: every path keeps up there."""
    for prefix in prefixes:
        rows = [find(prefix, s) for s in scenarios]
        if _ran(*rows[:required]):
            return rows
    return None


def _behind(row: Row) -> str:
    """Why ``row``, a baseline, does not count: it fell behind the offered load."""
    return (
        f"not measurable here: {row.scenario} itself answered {row.rps:,.0f}/s of"
        f" {row.load} with {row.error_count} errors (the machine is saturated)"
    )


_P1_GOAL = (
    "legacy route, TLS, open loop where every path keeps up (the light phase): added p50"
    " over direct ≤ HAProxy's added p50 + 0.5 ms; p99 ≤ HAProxy's; 0 errors"
)


def _p1(find: Find) -> dict[str, Any]:
    return _p1_of("P1", _P1_GOAL, "gateway-legacy-tls", find)


def _p1_spares(find: Find) -> dict[str, Any]:
    goal = f"P1 with a spare connection to the mainframe (spare_connections: 1): {_P1_GOAL}"
    return _p1_of("P1s", goal, "gateway-spares-tls", find)


def _p1_of(key: str, goal: str, gateway: str, find: Find) -> dict[str, Any]:
    names = (gateway, "direct-tls", "haproxy-tls")
    rows = _first_ran(find, ("light-tls-", "open-tls-"), names, required=2)
    if rows is None:
        return _target(key, goal, "not run", None)
    gw, direct, ha = rows
    assert gw is not None and direct is not None
    if not direct.kept_up:
        return _target(key, goal, _behind(direct), None)
    measured = f"{gw.load}: {_p1_text(gw, direct, ha)}"
    if ha is None or not ha.ok:
        return _target(key, goal, measured, None)  # judged against HAProxy, or not at all
    added = gw.latency_ms["p50"] - direct.latency_ms["p50"]
    haproxy_added = ha.latency_ms["p50"] - direct.latency_ms["p50"]
    met = (
        added <= haproxy_added + 0.5
        and gw.latency_ms["p99"] <= ha.latency_ms["p99"]
        and gw.error_count == 0
    )
    return _target(key, goal, measured, met)


def _p1_text(gw: Row, direct: Row, ha: Row | None) -> str:
    added = gw.latency_ms["p50"] - direct.latency_ms["p50"]
    text = f"added p50 {added:.2f} ms"
    if ha is not None and ha.ok:
        haproxy_added = ha.latency_ms["p50"] - direct.latency_ms["p50"]
        text += (
            f" (HAProxy {haproxy_added:.2f} ms), p99 {gw.latency_ms['p99']:.1f} vs"
            f" {ha.latency_ms['p99']:.1f} ms = {gw.latency_ms['p99'] / ha.latency_ms['p99']:.2f}"
            " × HAProxy"
        )
    return f"{text}, {gw.error_count} errors"


def _p2(find: Find) -> dict[str, Any]:
    goal = "legacy route saturation throughput ≥ 100% of HAProxy's"
    gw, ha = find("closed-tls-", "gateway-legacy-tls"), find("closed-tls-", "haproxy-tls")
    if not _ran(gw, ha):
        return _target("P2", goal, "not run", None)
    assert gw is not None and ha is not None
    ratio = gw.rps / ha.rps
    measured = f"{gw.rps:,.0f} vs {ha.rps:,.0f} req/s ({gw.load}, TLS) = {ratio:.0%}"
    return _target("P2", goal, measured, ratio >= 1.0)


def _p3(find: Find) -> dict[str, Any]:
    goal = "modern route, plaintext client: ≥ 1,000 lookups/s with p99 ≤ 25 ms"
    row, direct = find("open-plain-", "gateway-modern-plain"), find("open-plain-", "direct-plain")
    if not _ran(row):
        return _target("P3", goal, "not run", None)
    assert row is not None
    p99 = row.latency_ms["p99"]
    measured = f"{row.load}: {row.rps:,.0f}/s answered, p99 {p99:.1f} ms, {row.error_count} errors"
    if row.offered < 1000:
        return _target("P3", goal, measured + " (offered below 1,000/s)", None)
    if direct is not None and not direct.kept_up:
        return _target("P3", goal, f"{measured}; {_behind(direct)}", None)
    return _target("P3", goal, measured, row.kept_up and p99 <= 25)


def _p4(find: Find) -> dict[str, Any]:
    goal = (
        "shadow on: primary p99 ≤ 1.2 × shadow off (same workers), open loop where both keep"
        " up (the light phase)"
    )
    names = ("gateway-shadow-tls", "gateway-legacy-tls")
    rows = _first_ran(find, ("light-tls-", "open-shadow-"), names, required=2)
    if rows is None:
        return _target("P4", goal, "not run", None)
    on, off = rows
    assert on is not None and off is not None
    if not off.kept_up:
        return _target("P4", goal, _behind(off), None)
    ratio = on.latency_ms["p99"] / off.latency_ms["p99"]
    measured = f"{on.load}: {_p4_text(on, off)}"
    return _target("P4", goal, measured, ratio <= 1.2 and on.error_count == 0)


def _p4_text(on: Row | None, off: Row | None) -> str:
    assert on is not None and off is not None
    ratio = on.latency_ms["p99"] / off.latency_ms["p99"]
    return (
        f"p99 {on.latency_ms['p99']:.1f} vs {off.latency_ms['p99']:.1f} ms = {ratio:.2f}×,"
        f" {on.error_count} errors; shadow copies: {shadow_text(on)}"
    )


def _p5(find: Find) -> dict[str, Any]:
    goal = "gateway CPU per lookup, legacy route ≤ 1.2 × HAProxy's"
    names = ("gateway-legacy-tls", "haproxy-tls")
    rows = _first_ran(find, ("light-tls-", "open-tls-"), names, required=2)
    if rows is None:
        return _target("P5", goal, "not run", None)
    gw, ha = rows
    assert gw is not None and ha is not None
    if gw.hop_cpu_ms is None or ha.hop_cpu_ms is None or ha.hop_cpu_ms <= 0:
        return _target("P5", goal, "no CPU figures", None)
    ratio = gw.hop_cpu_ms / ha.hop_cpu_ms
    measured = f"{gw.load}, TLS: {gw.hop_cpu_ms:.2f} vs {ha.hop_cpu_ms:.2f} ms = {ratio:.1f}×"
    return _target("P5", goal, measured, ratio <= 1.2)


def _p6(find: Find) -> dict[str, Any]:
    goal = f"gateway RSS ≤ {RSS_LIMIT_MB:.0f} MB with {P6_CONNECTIONS:,} concurrent connections"
    row = find("hold-", "gateway-legacy-tls")
    if row is None or row.held is None or row.rss_held_mb is None:
        return _target("P6", goal, "not run", None)
    peak = row.hop_rss_peak_mb or 0.0
    measured = (
        f"{row.held} held: {row.rss_held_mb:.0f} MB resident while held, {peak:.0f} MB peak"
        f" ({row.hop_processes or 1} processes together); {row.error_count} errors after release"
    )
    if row.held < P6_CONNECTIONS:
        return _target("P6", goal, measured + f" (fewer than {P6_CONNECTIONS:,} held)", None)
    return _target("P6", goal, measured, max(row.rss_held_mb, peak) <= RSS_LIMIT_MB)


def _s1(find: Find) -> dict[str, Any]:
    goal = (
        "sessions in Redis vs the embedded store, every lookup brokered: added p50 ≤ 0.3 ms,"
        " gateway CPU per lookup ≤ 1.15 ×"
    )
    redis, embedded = (
        find("light-sessions-", s) for s in ("gateway-sessions-redis-tls", "gateway-sessions-tls")
    )
    if not _ran(redis, embedded):
        return _target("S1", goal, "not run", None)
    assert redis is not None and embedded is not None
    added = redis.latency_ms["p50"] - embedded.latency_ms["p50"]
    measured = f"{redis.load}: added p50 {added:.2f} ms, {redis.error_count} errors"
    if redis.hop_cpu_ms is None or embedded.hop_cpu_ms is None or embedded.hop_cpu_ms <= 0:
        return _target("S1", goal, measured + "; no CPU figures", None)
    ratio = redis.hop_cpu_ms / embedded.hop_cpu_ms
    measured += f"; CPU {redis.hop_cpu_ms:.2f} vs {embedded.hop_cpu_ms:.2f} ms = {ratio:.2f}×"
    return _target("S1", goal, measured, added <= 0.3 and ratio <= 1.15 and redis.error_count == 0)

"""The run's plan: interleaved order, phase selection, every scenario a phase names exists."""

from __future__ import annotations

import pytest

from cpr_bench.configs import Via
from cpr_bench.loadgen import LoadMode, Workload
from cpr_bench.scenarios import (
    SMOKE,
    Phase,
    Settings,
    interleave,
    needed,
    phases,
    scenarios,
    smoke_phases,
)

A = Workload(LoadMode.OPEN, 1.0, rate=10)


def test_rounds_interleave_scenarios_within_each_phase() -> None:
    """Round by round: A B C of phase 1, then phase 2, then all again, each phase's order
    reversed every other round: noise hits all alike, and a drift favours none."""
    plan = [Phase("p", A, ("a", "b", "c")), Phase("q", A, ("d",))]
    order = [(r, p.name, s) for r, p, s in interleave(plan, 3)]
    assert order == [
        (0, "p", "a"), (0, "p", "b"), (0, "p", "c"), (0, "q", "d"),
        (1, "p", "c"), (1, "p", "b"), (1, "p", "a"), (1, "q", "d"),
        (2, "p", "a"), (2, "p", "b"), (2, "p", "c"), (2, "q", "d"),
    ]  # fmt: skip


def test_a_once_phase_runs_in_the_first_round_only() -> None:
    """Holding thousands of connections is measured once, not every round."""
    plan = [Phase("p", A, ("a",)), Phase("hold", A, ("a",), once=True)]
    assert [p.name for _r, p, _s in interleave(plan, 3)] == ["p", "hold", "p", "p"]


def test_every_scenario_a_phase_names_exists() -> None:
    """The full and the smoke plan only name scenarios of the catalogue."""
    for settings, plan in ((Settings(), phases(Settings())), (SMOKE, smoke_phases(SMOKE))):
        assert set(needed(plan)) <= set(scenarios(settings))


def test_the_smoke_run_needs_neither_haproxy_nor_grpc() -> None:
    """`make test` may run where HAProxy is not installed: the smoke plan is direct and legacy."""
    catalogue = scenarios(SMOKE)
    vias = {catalogue[name].via for name in needed(smoke_phases(SMOKE))}
    assert vias == {Via.DIRECT, Via.LEGACY}
    assert {p.workload.mode for p in smoke_phases(SMOKE)} == set(LoadMode)


def test_the_full_plan_covers_every_path_with_tls_and_plaintext() -> None:
    """Direct, HAProxy, legacy, modern and shadow, each with a TLS and a plaintext client hop."""
    catalogue = scenarios(Settings())
    used = {(catalogue[n].via, catalogue[n].tls) for n in needed(phases(Settings()))}
    for via in (Via.DIRECT, Via.HAPROXY, Via.LEGACY, Via.MODERN, Via.SHADOW):
        assert {(via, True), (via, False)} <= used


def test_phases_are_selected_by_name() -> None:
    """--phase picks phases; an unknown name is refused with the known ones listed."""
    settings = Settings(phases=("closed-tls-32",))
    assert [p.name for p in phases(settings)] == ["closed-tls-32"]
    with pytest.raises(ValueError, match="unknown phases"):
        phases(Settings(phases=("nope",)))


def test_shadow_on_is_compared_with_shadow_off_on_the_same_workers() -> None:
    """Workers share sessions, so shadow on runs as many gateway processes as shadow off."""
    settings = Settings(workers=4)
    catalogue = scenarios(settings)
    assert catalogue["gateway-shadow-tls"].workers == 4
    assert catalogue["gateway-legacy-tls"].workers == 4
    (shadow,) = [p for p in phases(settings) if p.name.startswith("open-shadow-")]
    assert shadow.scenarios == ("gateway-legacy-tls", "gateway-shadow-tls")

"""The judge on synthetic evidence: when a step is promoted, held or rolled back, and why."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.canary.gates import FAILURE_FEJLNR, MIN_P99_SAMPLE, judge, rate_sample
from gateway.canary.model import (
    Action,
    CanaryState,
    Evidence,
    SideFigures,
    Status,
    Verdict,
)
from gateway.config.canary import CanaryPlan, Gates
from gateway.model import FejlNr

PLAN = CanaryPlan(
    candidate="persons-v2",
    steps=(0.0, 1.0, 5.0, 25.0, 50.0, 100.0),
    min_duration=600.0,
    min_requests=500,
    gates=Gates(max_error_excess=0.005, max_p99_ratio=1.5),
)
SINCE = 1_000_000.0
LATER = SINCE + 900.0  # past min_duration
PRIMARY = SideFigures(requests=50_000, failures=50, p99_s=0.040)
HEALTHY = SideFigures(requests=600, failures=1, p99_s=0.045)
CLEAN = Evidence(Verdict.CLEAN, 612, PRIMARY, HEALTHY)
GATES = ["verdict", "error_excess", "p99_ratio", "duration", "requests"]


def _state(step: int, status: Status = Status.RUNNING, reason: str = "") -> CanaryState:
    return CanaryState("lookups", step, status, reason, SINCE)


def test_a_clean_step_that_lasted_and_has_its_requests_is_promoted() -> None:
    """Every gate passed, min_duration and min_requests met: promote, each gate's figures kept."""
    judgement = judge(PLAN, _state(2), CLEAN, LATER)
    assert judgement.action is Action.PROMOTE
    assert [gate.name for gate in judgement.gates] == GATES
    assert all(gate.passed for gate in judgement.gates)
    assert judgement.reason.startswith("step 2 (5%) passed: verdict clean on 612 comparisons; ")
    error = judgement.gates[1]
    assert error.figure == pytest.approx(1 / 600 - 50 / 50_000) and error.threshold == 0.005
    assert judgement.gates[2].figure == pytest.approx(0.045 / 0.040)


def test_shadow_only_step_is_judged_on_the_verdict_and_comparisons() -> None:
    """At 0% the candidate answers nobody: comparisons count, the rate gates do not hold it."""
    evidence = Evidence(Verdict.CLEAN, 612, PRIMARY, SideFigures())
    judgement = judge(PLAN, _state(0), evidence, LATER)
    assert judgement.action is Action.PROMOTE
    assert judgement.gates[4].figure == 612
    assert [gate.passed for gate in judgement.gates] == [True, None, None, True, True]
    few = judge(PLAN, _state(0), replace(evidence, comparisons=499), LATER)
    assert few.action is Action.HOLD and few.reason == "499 of 500 comparisons"


def test_a_young_step_holds() -> None:
    """Good figures do not promote before min_duration."""
    judgement = judge(PLAN, _state(2), CLEAN, SINCE + 240.0)
    assert judgement.action is Action.HOLD
    assert judgement.reason == "lasted 4m of 10m"
    assert judgement.gates[3].passed is None


def test_a_step_with_too_few_candidate_answers_holds() -> None:
    """At a real weight, min_requests counts the candidate's answers, not the comparisons."""
    evidence = replace(CLEAN, candidate=replace(HEALTHY, requests=312, failures=0))
    judgement = judge(PLAN, _state(2), evidence, LATER)
    assert judgement.action is Action.HOLD
    assert judgement.reason == "312 of 500 candidate answers"


def test_inconclusive_holds_and_never_promotes() -> None:
    """An inconclusive verdict holds even when everything else passed, at any step."""
    evidence = replace(CLEAN, verdict=Verdict.INCONCLUSIVE, comparisons=12)
    for step in range(5):
        judgement = judge(PLAN, _state(step), evidence, LATER)
        assert judgement.action is Action.HOLD
        assert judgement.reason.startswith("verdict inconclusive on 12 comparisons: never promotes")
        assert judgement.gates[0].passed is None


def test_a_differing_verdict_rolls_back_and_says_which_fields() -> None:
    """differs above the safe step is a rollback with the fields (names) and the comparisons."""
    evidence = replace(
        CLEAN,
        verdict=Verdict.DIFFERS,
        comparisons=412,
        differing_fields=("STANDARDADR", "ADRNVN", "BYNVN", "POSTNR"),
    )
    judgement = judge(PLAN, _state(1), evidence, SINCE + 30.0)
    assert judgement.action is Action.ROLLBACK
    assert judgement.reason == (
        "verdict differs: 4 fields (STANDARDADR, ADRNVN, BYNVN, …) on 412 comparisons"
    )
    assert judgement.gates[0].passed is False


def test_a_differing_verdict_at_the_safe_step_holds_with_the_reason() -> None:
    """At step 0 there is nothing to roll back to: hold, and say why."""
    evidence = replace(
        CLEAN, verdict=Verdict.DIFFERS, comparisons=412, differing_fields=("STANDARDADR",)
    )
    judgement = judge(PLAN, _state(0), evidence, LATER)
    assert judgement.action is Action.HOLD
    assert judgement.reason == (
        "held at step 0 (0%), the safe step: verdict differs: 1 field (STANDARDADR) "
        "on 412 comparisons"
    )


def test_a_candidate_failing_beyond_the_margin_rolls_back() -> None:
    """5 failures in 60 answers (8%) against 0.1% is beyond the 0.5 point margin and chance."""
    evidence = replace(CLEAN, candidate=replace(HEALTHY, requests=60, failures=5))
    judgement = judge(PLAN, _state(1), evidence, SINCE + 30.0)
    assert judgement.action is Action.ROLLBACK
    assert judgement.reason == (
        "failures 8.3% vs the primary's 0.1% on 60 answers (+8.2 points, at most 0.5)"
    )
    assert judgement.gates[1].passed is False


def test_one_failure_of_two_never_rolls_back() -> None:
    """A rate needs rate_sample() answers; below it the gate says nothing and the step holds."""
    evidence = replace(CLEAN, candidate=SideFigures(requests=2, failures=1, p99_s=0.04))
    judgement = judge(PLAN, _state(1), evidence, LATER)
    assert judgement.action is Action.HOLD
    assert judgement.gates[1].passed is None
    assert "failures: 2 candidate answers, 50 needed to judge" in judgement.reason


def test_a_rate_over_the_margin_but_within_chance_holds() -> None:
    """1 failure in 60 (1.7%) is over a 0.5 point margin, but not beyond chance: hold."""
    evidence = replace(CLEAN, candidate=replace(HEALTHY, requests=60, failures=1))
    judgement = judge(PLAN, _state(1), evidence, LATER)
    assert judgement.action is Action.HOLD
    assert judgement.gates[1].passed is None
    assert "over the margin, not yet beyond chance" in judgement.reason


@given(
    requests=st.integers(min_value=1, max_value=10_000),
    share=st.floats(min_value=0.0, max_value=1.0),
)
def test_the_error_gate_never_fails_below_its_sample_nor_within_the_margin(
    requests: int, share: float
) -> None:
    """Whatever the figures: no rollback on fewer answers than rate_sample(), nor at a rate
    within the margin of the primary's."""
    failures = round(requests * share)
    candidate = SideFigures(requests=requests, failures=failures, p99_s=0.04)
    gate = judge(PLAN, _state(1), replace(CLEAN, candidate=candidate), LATER).gates[1]
    excess = failures / requests - PRIMARY.failures / PRIMARY.requests
    if requests < rate_sample(PLAN):
        assert gate.passed is None
    elif excess <= PLAN.gates.max_error_excess:
        assert gate.passed is True
    else:
        assert gate.passed in (None, False)


def test_a_slow_candidate_rolls_back() -> None:
    """A p99 twice the primary's, on enough answers, is over a 1.5x ratio: rollback."""
    evidence = replace(CLEAN, candidate=replace(HEALTHY, p99_s=0.080))
    judgement = judge(PLAN, _state(3), evidence, SINCE + 30.0)
    assert judgement.action is Action.ROLLBACK
    assert judgement.reason == "p99 80 ms vs the primary's 40 ms (2.00x, at most 1.5x)"


def test_a_p99_of_few_answers_is_not_judged() -> None:
    """Below MIN_P99_SAMPLE answers a slow p99 (the slowest answer) holds, never rolls back."""
    candidate = SideFigures(requests=MIN_P99_SAMPLE - 1, failures=0, p99_s=1.0)
    judgement = judge(PLAN, _state(1), replace(CLEAN, candidate=candidate), LATER)
    assert judgement.action is Action.HOLD
    assert judgement.gates[2].passed is None


def test_every_failed_gate_is_in_the_reason() -> None:
    """Two failed gates: one rollback naming both."""
    candidate = SideFigures(requests=600, failures=60, p99_s=0.2)
    evidence = Evidence(Verdict.DIFFERS, 412, PRIMARY, candidate)
    judgement = judge(PLAN, _state(2), evidence, LATER)
    assert judgement.action is Action.ROLLBACK
    assert judgement.reason.count("; ") == 2


def test_paused_always_holds() -> None:
    """Even a failing candidate is not rolled back by the judge while an operator holds it."""
    failing = replace(CLEAN, verdict=Verdict.DIFFERS)
    for evidence in (CLEAN, failing):
        judgement = judge(PLAN, _state(2, Status.PAUSED, "operator"), evidence, LATER)
        assert judgement.action is Action.HOLD
        assert [gate.name for gate in judgement.gates] == GATES
    paused = judge(PLAN, _state(2, Status.PAUSED, "by ops"), CLEAN, LATER)
    assert paused.reason == "paused at step 2 (5%): by ops"


def test_a_completed_route_holds_while_clean_and_rolls_back_when_it_breaks() -> None:
    """At 100% the copies go to the primary and every answer is the candidate's: a verdict
    that differs, or failures beyond the margin over none (the primary answers no client),
    roll a completed route back; it is never promoted."""
    everything = SideFigures(requests=600, failures=0, p99_s=0.045)
    calm = Evidence(Verdict.CLEAN, 612, SideFigures(), everything)
    completed = _state(5, Status.COMPLETED)
    held = judge(PLAN, completed, calm, LATER)
    assert held.action is Action.HOLD and held.reason == "completed: step 5 (100%)"
    drifted = judge(PLAN, completed, replace(calm, verdict=Verdict.DIFFERS), LATER)
    assert drifted.action is Action.ROLLBACK
    assert drifted.reason.startswith("completed, then: verdict differs")
    down = replace(calm, candidate=SideFigures(requests=60, failures=60, p99_s=0.001))
    stopped = judge(PLAN, completed, down, SINCE + 1.0)
    assert stopped.action is Action.ROLLBACK
    assert stopped.reason == (
        "completed, then: failures 100.0% vs the primary's 0% on 60 answers"
        " (+100 points, at most 0.5)"
    )


def test_the_last_step_is_never_promoted() -> None:
    """A running route at 100% holds: there is no next step."""
    judgement = judge(PLAN, _state(5), CLEAN, LATER)
    assert judgement.action is Action.HOLD


def test_a_step_outside_the_plan_holds() -> None:
    """A state left by a longer plan (before a reload) is held, not crashed on."""
    assert judge(PLAN, _state(9), CLEAN, LATER).action is Action.HOLD


def test_failure_fejlnr_are_the_service_failures_only() -> None:
    """09, 04 and 08 count; not found, bad credentials and log on again do not."""
    assert {FejlNr.NO_CONNECTION, FejlNr.CLOSED, FejlNr.NOT_ACTIVE} == FAILURE_FEJLNR
    assert "09" in FAILURE_FEJLNR  # events carry the two wire characters
    for business in (FejlNr.OK, FejlNr.PNR_UNKNOWN, FejlNr.BAD_CREDENTIALS, FejlNr.NEW_LOGON):
        assert business not in FAILURE_FEJLNR

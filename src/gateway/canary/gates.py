"""The judge: a route's plan, state and step evidence → hold, promote or roll back, and why.

Pure: no I/O, no clock (``now`` is an argument). docs/canary.md ("The gates") is the reference;
the rules in short:

* **verdict**: the shadow's verdict on the candidate must be ``clean`` to promote;
  ``inconclusive`` holds; ``differs`` rolls back (above ``safe_step``; at it, holds).
* **error_excess**: the candidate's rate of failure answers (:data:`FAILURE_FEJLNR`) less the
  primary's must be at most ``max_error_excess``.
* **p99_ratio**: the candidate's latency p99 over the primary's at most ``max_p99_ratio``.
* **duration** and **requests**: a step is promoted only once it has lasted ``min_duration``
  and has ``min_requests`` candidate answers (shadow comparisons at a 0% step).

The small-sample rule: a rate gate says nothing (``passed`` None: hold) below
:func:`rate_sample` candidate answers; above it, a failure rate over the margin rolls back
only when it is beyond chance (the lower Wilson bound of the candidate's rate is still over
it), and a p99 is judged only from :data:`MIN_P99_SAMPLE` answers per side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.canary.model import (
    Action,
    CanaryState,
    Evidence,
    GateResult,
    Judgement,
    SideFigures,
    Status,
    Verdict,
)
from gateway.config.canary import CanaryPlan
from gateway.model import FejlNr

#: The answers that count as failures: the service could not answer (spec §4.3: 04 closed,
#: 08 not active, 09 no connection, which the gateway also answers for a backend that failed
#: or timed out). Business answers (01-03, 05, 06, 10, 11, 14, 16, 17) are the register's or
#: the request's, and 07 (log on again) is the session's: neither says the service is broken.
FAILURE_FEJLNR: frozenset[FejlNr] = frozenset(
    {FejlNr.CLOSED, FejlNr.NOT_ACTIVE, FejlNr.NO_CONNECTION}
)
#: A rate gate is judged on at least this many candidate answers (and a tenth of the step's
#: ``min_requests``): one failure of two answers is not a rate.
MIN_RATE_SAMPLE = 20
#: A p99 is judged on at least this many answers per side: the p99 of 200 is the second
#: slowest, so one slow answer alone cannot fail the gate.
MIN_P99_SAMPLE = 200
#: Latencies below this count as it: a ratio of two sub-millisecond figures says nothing.
LATENCY_FLOOR_S = 0.001
#: A one-sided 97.5% bound: a failure rate over the margin rolls back only beyond chance.
_Z = 1.96
#: The gates whose failure rolls a route back; the others only make it wait.
_QUALITY = ("verdict", "error_excess", "p99_ratio")
_FIELDS_SHOWN = 3


@dataclass(frozen=True, slots=True)
class _Check:
    """A gate's result, what it means in a phrase, and whether an undecided result holds."""

    result: GateResult
    why: str
    #: False for a rate gate at a 0% step without candidate answers: the verdict judges it.
    blocks: bool = True


def judge(plan: CanaryPlan, state: CanaryState, evidence: Evidence, now: float) -> Judgement:
    """What the step's evidence calls for; every gate's figures ride along, whatever the action."""
    if not 0 <= state.step < len(plan.steps):
        reason = f"step {state.step} is not in the plan's {len(plan.steps)} steps: held"
        return Judgement(Action.HOLD, reason)
    weight = plan.steps[state.step]
    checks = (
        _verdict(evidence),
        _error_excess(plan, evidence, weight),
        _p99_ratio(plan, evidence, weight),
        _duration(plan, state, now),
        _requests(plan, evidence, weight),
    )
    action, reason = _decide(plan, state, checks)
    return Judgement(action, reason, tuple(check.result for check in checks))


def rate_sample(plan: CanaryPlan) -> int:
    """Candidate answers a rate gate needs before it says anything."""
    return max(MIN_RATE_SAMPLE, math.ceil(plan.min_requests / 10))


def _decide(plan: CanaryPlan, state: CanaryState, checks: Iterable[_Check]) -> tuple[Action, str]:
    label = f"step {state.step} ({plan.steps[state.step]:g}%)"
    if state.status is Status.PAUSED:
        return Action.HOLD, f"paused at {label}" + (f": {state.reason}" if state.reason else "")
    failed = [c.why for c in checks if c.result.passed is False and c.result.name in _QUALITY]
    if state.status is Status.COMPLETED:
        # Still judged: the copies to the primary and the failure answers keep coming.
        if failed:
            return Action.ROLLBACK, f"completed, then: {'; '.join(failed)}"
        return Action.HOLD, f"completed: {label}"
    if failed and state.step > plan.safe_step:
        return Action.ROLLBACK, "; ".join(failed)
    if failed:
        return Action.HOLD, f"held at {label}, the safe step: {'; '.join(failed)}"
    if state.step == len(plan.steps) - 1:
        return Action.HOLD, f"at the last step, {label}"
    waiting = [c.why for c in checks if c.result.passed is None and c.blocks]
    if waiting:
        return Action.HOLD, "; ".join(waiting)
    passed = [c.why for c in checks if c.result.passed]
    return Action.PROMOTE, f"{label} passed: {'; '.join(passed)}"


def _verdict(evidence: Evidence) -> _Check:
    verdict, count = evidence.verdict, evidence.comparisons
    passed = {Verdict.CLEAN: True, Verdict.DIFFERS: False}.get(verdict)
    result = GateResult("verdict", verdict.value, Verdict.CLEAN.value, passed)
    if verdict is Verdict.DIFFERS:
        return _Check(result, f"verdict differs: {_fields(evidence)}on {count} comparisons")
    if verdict is Verdict.INCONCLUSIVE:
        return _Check(result, f"verdict inconclusive on {count} comparisons: never promotes")
    return _Check(result, f"verdict clean on {count} comparisons")


def _fields(evidence: Evidence) -> str:
    """``3 fields (STANDARDADR, ADRNVN, BYNVN) `` or nothing when the names are not known."""
    names = evidence.differing_fields
    if not names:
        return ""
    shown = ", ".join(names[:_FIELDS_SHOWN]) + (", …" if len(names) > _FIELDS_SHOWN else "")
    return f"{len(names)} field{'s' if len(names) != 1 else ''} ({shown}) "


def _error_excess(plan: CanaryPlan, evidence: Evidence, weight: float) -> _Check:
    limit = plan.gates.max_error_excess
    candidate, primary = evidence.candidate, evidence.primary
    if candidate.requests == 0 and weight == 0:
        return _not_applicable("error_excess", limit, "failures")
    rate, base = candidate.failure_rate, primary.failure_rate
    if base is None and weight == 100:
        base = 0.0  # the primary answers no client at 100%: the margin is over none
    needed = rate_sample(plan)
    if rate is None or base is None or candidate.requests < needed:
        why = f"failures: {_answers(candidate, primary, needed)}"
        return _Check(GateResult("error_excess", None, limit, None), why, weight > 0)
    excess = rate - base
    figures = (
        f"failures {_pct(rate)} vs the primary's {_pct(base)} on {candidate.requests} answers "
        f"({_points(excess)} points, at most {_points(limit, sign=False)})"
    )
    if excess <= limit:
        return _Check(GateResult("error_excess", excess, limit, True), figures)
    beyond_chance = _wilson_lower(candidate.failures, candidate.requests) - base > limit
    if beyond_chance:
        return _Check(GateResult("error_excess", excess, limit, False), figures)
    why = f"{figures}: over the margin, not yet beyond chance"
    return _Check(GateResult("error_excess", excess, limit, None), why, weight > 0)


def _p99_ratio(plan: CanaryPlan, evidence: Evidence, weight: float) -> _Check:
    limit = plan.gates.max_p99_ratio
    candidate, primary = evidence.candidate, evidence.primary
    if candidate.requests == 0 and weight == 0:
        return _not_applicable("p99_ratio", limit, "p99")
    needed = max(rate_sample(plan), MIN_P99_SAMPLE)
    fewest = min(candidate.requests, primary.requests)
    if candidate.p99_s is None or primary.p99_s is None or fewest < needed:
        why = (
            f"p99: {candidate.requests} candidate and {primary.requests} primary answers, "
            f"{needed} of each needed to judge"
        )
        return _Check(GateResult("p99_ratio", None, limit, None), why, weight > 0)
    ratio = max(candidate.p99_s, LATENCY_FLOOR_S) / max(primary.p99_s, LATENCY_FLOOR_S)
    why = (
        f"p99 {_ms(candidate.p99_s)} vs the primary's {_ms(primary.p99_s)} "
        f"({ratio:.2f}x, at most {limit:g}x)"
    )
    return _Check(GateResult("p99_ratio", ratio, limit, ratio <= limit), why)


def _duration(plan: CanaryPlan, state: CanaryState, now: float) -> _Check:
    lasted = max(0.0, now - state.since)
    passed = lasted >= plan.min_duration
    why = f"lasted {_span(lasted)} of {_span(plan.min_duration)}"
    return _Check(GateResult("duration", lasted, plan.min_duration, passed or None), why)


def _requests(plan: CanaryPlan, evidence: Evidence, weight: float) -> _Check:
    count, what = (
        (evidence.comparisons, "comparisons")
        if weight == 0
        else (evidence.candidate.requests, "candidate answers")
    )
    passed = count >= plan.min_requests
    why = f"{count} of {plan.min_requests} {what}"
    return _Check(GateResult("requests", count, plan.min_requests, passed or None), why)


def _not_applicable(name: str, limit: float, what: str) -> _Check:
    why = f"{what}: no candidate answers at 0%, the verdict judges the step"
    return _Check(GateResult(name, None, limit, None), why, blocks=False)


def _answers(candidate: SideFigures, primary: SideFigures, needed: int) -> str:
    if candidate.requests >= needed and primary.requests == 0:
        return "no primary answers to compare with"
    return f"{candidate.requests} candidate answers, {needed} needed to judge"


def _wilson_lower(successes: int, trials: int) -> float:
    """The lower bound of the Wilson score interval of ``successes / trials`` (trials > 0)."""
    p, z2 = successes / trials, _Z * _Z
    centre = p + z2 / (2 * trials)
    spread = _Z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return (centre - spread) / (1 + z2 / trials)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2g}%" if fraction < 0.01 else f"{fraction * 100:.1f}%"


def _points(fraction: float, *, sign: bool = True) -> str:
    points = fraction * 100
    shown = f"{points:+.2g}" if abs(points) < 10 else f"{points:+.0f}"
    return shown if sign else shown.lstrip("+")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.2g} ms"


def _span(seconds: float) -> str:
    return f"{seconds / 60:.0f}m" if seconds >= 60 else f"{seconds:.0f}s"

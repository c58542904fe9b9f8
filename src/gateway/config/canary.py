"""``routes[].canary`` in routing.yaml: a route's step plan from its primary to a candidate.

The values are here, beside their parser (as a backend kind's config is beside its adapter);
the controller that follows a plan is :mod:`gateway.canary`. docs/canary.md is the reference.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import reader as r
from gateway.config.reader import Problem, Problems, Skip, show
from gateway.model import Operation


@dataclass(frozen=True, slots=True)
class Gates:
    """What the candidate must show, at every step, to be promoted (and not to be rolled back)."""

    #: The candidate's rate of failure answers (09 and the other non-business FEJLNR) may
    #: exceed the primary's by at most this much (a fraction: 0.005 is half a percentage point).
    max_error_excess: float = 0.005
    #: The candidate's latency p99 may be at most this many times the primary's.
    max_p99_ratio: float = 1.5


@dataclass(frozen=True, slots=True)
class Fallback:
    """What a lookup the candidate fails gets: the primary's answer, within a budget
    (docs/canary.md, "Read fallback"). Writes are never asked twice."""

    #: Fallbacks may be at most this share (0.1 is 10%) of the route's candidate reads over
    #: the last seconds (gateway.backends.retry_budget), so that a failing candidate adds at
    #: most that to the primary's load; 0 turns the fallback off.
    retry_budget: float = 0.10


@dataclass(frozen=True, slots=True)
class CanaryPlan:
    """A route's way from its primary to its candidate (routing.yaml ``routes[].canary``).

    The route's ``backend`` is its primary; at step ``s`` the controller splits the route
    ``100 - steps[s]`` / ``steps[s]`` between primary and candidate by ``key`` (sticky:
    the candidate holds the lowest buckets, so a promotion only moves keys onto it and a
    rollback only moves them off).
    """

    candidate: str
    #: What the split hashes (a :class:`gateway.config.schema.SplitKey` value): ``pnr`` keeps
    #: each person on one side, ``customer`` each customer.
    key: str = "pnr"
    #: Percentages of the route's requests on the candidate, increasing; 0 is "shadow only".
    steps: tuple[float, ...] = (0.0, 1.0, 5.0, 25.0, 50.0, 100.0)
    #: Seconds a step lasts at least before it may be promoted.
    min_duration: float = 600.0
    #: Requests the step's evidence needs at least: candidate answers, or shadow comparisons
    #: at a 0% step.
    min_requests: int = 500
    #: Seconds between two evaluations.
    interval: float = 30.0
    gates: Gates = field(default_factory=Gates)
    #: The step a failed gate rolls back to (0 for reads: shadow only).
    safe_step: int = 0
    #: A failed candidate read asked of the primary, within a budget.
    fallback: Fallback = field(default_factory=Fallback)


@dataclass(frozen=True, slots=True)
class CanarySettings:
    """The top-level ``canary:`` section: where every replica reads and writes the plans' state."""

    #: A SQLite file, or a ``postgresql://`` DSN that every replica of a fleet shares. The
    #: loader resolves the default beside routing.yaml. Changes on restart.
    store: Path | str = Path("var/canary.sqlite")


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What a route's plan is checked against: the route as read so far."""

    #: Every backend name routing.yaml defines.
    backends: frozenset[str]
    #: The route's ``backend`` (its primary); None when it splits instead.
    primary: str | None
    #: What the route can match (every operation for an absent ``operation`` key).
    operations: frozenset[Operation]
    #: The backends the route shadows to.
    shadows: frozenset[str]
    #: Those of them that get dual-write copies (subscribe and unsubscribe too).
    dual_writes: frozenset[str] = frozenset()


#: The split keys a plan may name: :class:`gateway.config.schema.SplitKey`'s values (schema
#: imports this module, so it cannot be imported here; a unit test keeps the two equal).
SPLIT_KEYS = ("pnr", "customer")
#: A write (or a logon, which the writes' sessions hang on) switches whole: off, then on.
WHOLE_STEPS = (0.0, 100.0)
_WHOLE_OPERATIONS = frozenset(
    {Operation.LOGON, Operation.CHANGE_PASSWORD, Operation.SUBSCRIBE, Operation.UNSUBSCRIBE}
)
_PLAN_KEYS = (
    "candidate", "key", "steps", "min_duration", "min_requests", "interval", "gates", "safe_step",
    "fallback",
)  # fmt: skip
_PLAN, _GATES, _FALLBACK = CanaryPlan(candidate=""), Gates(), Fallback()


def parse_canary(reader: Problems, raw: object, path: str, route: RouteContext) -> CanaryPlan:
    """``routes[].canary``: a plan, checked against its route; problems recorded by YAML path."""
    s = reader.section(raw, path, _PLAN_KEYS)
    plan = CanaryPlan(
        s.get("candidate", lambda value, _at: _candidate(value, route)),
        s.get("key", _split_key, _PLAN.key),
        s.get("steps", _steps, _PLAN.steps),
        s.get("min_duration", r.positive_duration, _PLAN.min_duration),
        s.get("min_requests", r.positive_int, _PLAN.min_requests),
        s.get("interval", r.positive_duration, _PLAN.interval),
        s.get("gates", lambda value, at: _gates(reader, value, at), _GATES),
        s.get("safe_step", r.integer, _PLAN.safe_step),
        s.get("fallback", lambda value, at: _fallback(reader, value, at), _FALLBACK),
    )
    s.done()
    problems = list(_plan_problems(plan, route))
    for where, message in problems:
        reader.problem(f"{path}{where}", message)
    if problems:
        raise Skip
    return plan


def parse_settings(
    reader: Problems, raw: object, path: str, store: Callable[[object, str], Path | str]
) -> CanarySettings:
    """The top-level ``canary:`` section; ``store`` reads a DSN or resolves a file path."""
    s = reader.section(raw, path, ("store",))
    settings = CanarySettings(s.get("store", store, store(str(CanarySettings().store), path)))
    s.done()
    return settings


def describe(plan: CanaryPlan) -> str:
    """The plan in one line, as check-config and the config diff show it."""
    steps = "/".join(f"{step:g}" for step in plan.steps)
    gates = plan.gates
    return (
        f"{plan.candidate} by {plan.key}, steps {steps}%, each at least "
        f"{_seconds(plan.min_duration)} and {plan.min_requests} requests, judged every "
        f"{_seconds(plan.interval)}; gates: verdict clean, failures at most "
        f"{gates.max_error_excess * 100:g} points above the primary's, p99 at most "
        f"{gates.max_p99_ratio:g}x; a failed gate rolls back to step {plan.safe_step} "
        f"({plan.steps[plan.safe_step]:g}%); {_fallback_text(plan.fallback)}"
    )


def plan_changes(old: CanaryPlan, new: CanaryPlan) -> list[str]:
    """What differs between two plans, key by key: ``min_requests 500 → 900``."""
    shown = (
        ("candidate", lambda plan: plan.candidate),
        ("key", lambda plan: plan.key),
        ("steps", lambda plan: "/".join(f"{step:g}" for step in plan.steps) + "%"),
        ("min_duration", lambda plan: _seconds(plan.min_duration)),
        ("min_requests", lambda plan: str(plan.min_requests)),
        ("interval", lambda plan: _seconds(plan.interval)),
        ("gates.max_error_excess", lambda plan: f"{plan.gates.max_error_excess * 100:g}%"),
        ("gates.max_p99_ratio", lambda plan: f"{plan.gates.max_p99_ratio:g}"),
        ("safe_step", lambda plan: str(plan.safe_step)),
        ("fallback.retry_budget", lambda plan: f"{plan.fallback.retry_budget * 100:g}%"),
    )
    return [f"{key} {show(old)} → {show(new)}" for key, show in shown if show(old) != show(new)]


def _candidate(raw: object, route: RouteContext) -> str:
    if not isinstance(raw, str):
        raise Problem(f"expected a backend name, got {show(raw)}")
    if raw not in route.backends:
        raise Problem(f"unknown backend {show(raw)}")
    if raw == route.primary:
        raise Problem(f"{raw!r} is the route's own backend (its primary); name the new one")
    return raw


def _split_key(raw: object, _path: str) -> str:
    if raw not in SPLIT_KEYS:
        raise Problem(f"expected {' or '.join(SPLIT_KEYS)}, got {show(raw)}")
    assert isinstance(raw, str)
    return raw


def _steps(raw: object, path: str) -> tuple[float, ...]:
    """Percentages, strictly increasing, ending at 100; at least two (where to start, the end)."""
    if not isinstance(raw, list) or len(raw) < 2:
        raise Problem(f"expected a list of at least two percentages ending at 100, got {show(raw)}")
    steps = tuple(r.percentage(item, path) for item in raw)
    if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
        raise Problem(f"steps must increase strictly, got {_show_steps(steps)}")
    if steps[-1] != 100:
        raise Problem(f"the last step must be 100, got {_show_steps(steps)}")
    return steps


def _gates(reader: Problems, raw: object, path: str) -> Gates:
    s = reader.section(raw, path, ("max_error_excess", "max_p99_ratio"))
    gates = Gates(
        s.get("max_error_excess", _fraction, _GATES.max_error_excess),
        s.get("max_p99_ratio", _ratio, _GATES.max_p99_ratio),
    )
    s.done()
    return gates


def _fallback(reader: Problems, raw: object, path: str) -> Fallback:
    s = reader.section(raw, path, ("retry_budget",))
    fallback = Fallback(s.get("retry_budget", _fraction, _FALLBACK.retry_budget))
    s.done()
    return fallback


def _fallback_text(fallback: Fallback) -> str:
    if fallback.retry_budget == 0:
        return "a failed read is not asked of the primary"
    share = f"{fallback.retry_budget * 100:g}%"
    return f"a failed read is asked of the primary, up to {share} of the candidate's reads"


def _plan_problems(plan: CanaryPlan, route: RouteContext) -> Iterator[tuple[str, str]]:
    """What the plan may not do on this route, as (path suffix, message)."""
    if route.primary is None:
        yield "", "a canary route names one backend, its primary, not a split"
    whole = sorted(op.value for op in route.operations & _WHOLE_OPERATIONS)
    if whole and plan.steps != WHOLE_STEPS:
        yield (
            ".steps",
            f"route matches {', '.join(whole)}, which never split: steps must be exactly "
            f"[0, 100], got {_show_steps(plan.steps)}",
        )
    if Operation.CHANGE_PASSWORD in route.operations:
        yield (
            "",
            "route matches change_password, which a canary never switches: a password changed"
            " on one side only would not open the other after a rollback (docs/canary.md,"
            ' "Writes"); give password changes a route of their own without a canary',
        )
    writes = route.operations & {Operation.SUBSCRIBE, Operation.UNSUBSCRIBE}
    if writes and plan.candidate not in route.dual_writes:
        yield (
            ".candidate",
            f"route matches {', '.join(sorted(op.value for op in writes))}: a canary of writes"
            " needs every write on both sides, so that a rollback loses none: add shadow:"
            f" [{{backend: {plan.candidate}, dual_write: true}}] to the route",
        )
    if not whole and plan.candidate not in route.shadows:
        yield (
            ".candidate",
            f"a canary of lookups is judged on the shadow's verdict: add "
            f"shadow: [{{backend: {plan.candidate}}}] to the route",
        )
    if not 0 <= plan.safe_step < len(plan.steps) - 1:
        yield (
            ".safe_step",
            f"expected a step below the last, 0 to {len(plan.steps) - 2}, got {plan.safe_step}",
        )


def _fraction(raw: object, path: str) -> float:
    """A percentage (``0.5%``) as a fraction (0.005)."""
    return r.percentage(raw, path) / 100


def _ratio(raw: object, _path: str) -> float:
    """A ratio of at least 1 (a candidate may be no faster than required to be)."""
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not 1 <= raw < math.inf:
        raise Problem(f"expected a ratio of 1 or more, e.g. 1.5, got {show(raw)}")
    return float(raw)


def _show_steps(steps: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{step:g}" for step in steps) + "]"


def _seconds(value: float) -> str:
    return f"{value / 60:g}m" if value >= 60 and value % 60 == 0 else f"{value:g}s"

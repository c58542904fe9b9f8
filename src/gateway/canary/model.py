"""The canary's values: the evidence a step is judged on, the judgement, and a route's state.

Plain data, no I/O. The step plan itself is configuration
(:class:`gateway.config.canary.CanaryPlan`); the controller (:mod:`.controller`) gathers
:class:`Evidence`, :func:`gateway.canary.gates.judge` turns plan and evidence into a
:class:`Judgement`, and the store (:mod:`.store`) keeps :class:`CanaryState` and
:class:`Transition` where every replica reads them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SideFigures:
    """One side's answers on the route since the step began, over every replica."""

    requests: int = 0
    #: Answers with a failure FEJLNR (not a business answer such as "not found").
    failures: int = 0
    #: Latency p99 in seconds; None without requests.
    p99_s: float | None = None

    @property
    def failure_rate(self) -> float | None:
        return None if self.requests == 0 else self.failures / self.requests


class Verdict(enum.StrEnum):
    """The shadow's verdict on the candidate for the route (docs/shadow.md, "Verdicts")."""

    CLEAN = "clean"
    DIFFERS = "differs"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a route's current step has shown, over every replica."""

    verdict: Verdict
    #: Shadow comparisons of the candidate behind the verdict.
    comparisons: int
    primary: SideFigures
    candidate: SideFigures
    #: The fields the verdict calls different (names only, never values), for the reason.
    differing_fields: tuple[str, ...] = ()


class Action(enum.StrEnum):
    HOLD = "hold"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's figure against its threshold; ``passed`` None: not enough evidence yet."""

    name: str
    figure: float | str | None
    threshold: float | str
    passed: bool | None


@dataclass(frozen=True, slots=True)
class Judgement:
    """What a step's evidence calls for, why, and every gate's figures."""

    action: Action
    reason: str
    gates: tuple[GateResult, ...] = ()


class Status(enum.StrEnum):
    RUNNING = "running"
    #: Held by an operator or by a rollback; only resume (or an operator's promote) moves it.
    PAUSED = "paused"
    #: At the last step (100%): the candidate is the route's side.
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class CanaryState:
    """Where a route's plan stands; the same in every replica (read from the store)."""

    route: str
    step: int
    status: Status
    reason: str
    #: When the step began (seconds since the epoch): its evidence counts from here.
    since: float


@dataclass(frozen=True, slots=True)
class Transition:
    """One entry of a route's history: a step taken, a rollback, a pause, with why and who."""

    at: float
    route: str
    #: ``start``, ``promote``, ``rollback``, ``pause``, ``resume``, ``complete``.
    kind: str
    from_step: int
    to_step: int
    reason: str
    #: ``controller`` or the operator named by the admin API.
    who: str
    #: The figures that drove it (gate name → figure), for the dashboard and the audit.
    figures: Mapping[str, float | str | None] = field(default_factory=dict)

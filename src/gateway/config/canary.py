"""``routes[].canary`` in routing.yaml: a route's step plan from its primary to a candidate.

The values are here, beside their parser (as a backend kind's config is beside its adapter);
the controller that follows a plan is :mod:`gateway.canary`. docs/canary.md is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Gates:
    """What the candidate must show, at every step, to be promoted (and not to be rolled back)."""

    #: The candidate's rate of failure answers (09 and the other non-business FEJLNR) may
    #: exceed the primary's by at most this much (a fraction: 0.005 is half a percentage point).
    max_error_excess: float = 0.005
    #: The candidate's latency p99 may be at most this many times the primary's.
    max_p99_ratio: float = 1.5


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

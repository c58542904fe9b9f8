"""What a canary route routes like at its step: the plan and state made into a plain split.

Pure: routes and states in, routes out, for :class:`gateway.routing.RouteTable`. At step
``s`` a canary route's target is ``Split(key, ((primary, 100 - w), (candidate, w)))`` with
``w = steps[s]``. The candidate is listed last, so it holds the lowest buckets
(:meth:`gateway.config.schema.Split.ranges`): a promotion only moves keys onto it, a rollback
only moves them off. At 0% and 100% the split keeps its empty side (the router leaves an
empty range out), so every step has the same shape. Shadows, noise and the plan are kept,
with one exception: at 100% a shadow of the candidate becomes a shadow of the primary. The
candidate answers every client then, and the copies to the primary keep the evidence coming
(a completed route still rolls back when the two drift apart, docs/canary.md) and, for a
write route's dual-write shadow, keep every write on both sides, so a rollback loses none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from gateway.canary.model import CanaryState
from gateway.config.canary import CanaryPlan
from gateway.config.schema import BUCKETS, Route, Split, SplitKey

_PER_PERCENT = BUCKETS // 100


def effective_routes(
    routes: Iterable[Route], states: Mapping[str, CanaryState]
) -> tuple[Route, ...]:
    """``routes`` with every canary route at its state's step (step 0 without a state)."""
    return tuple(effective_route(route, states.get(route.name)) for route in routes)


def effective_route(route: Route, state: CanaryState | None) -> Route:
    """One route at its step; a route without a plan is returned as it is."""
    plan = route.canary
    if plan is None:
        return route
    weight = round(_percent(plan, state) * _PER_PERCENT)
    primary = route.primary
    shares = ((primary, BUCKETS - weight), (plan.candidate, weight))
    shadows = route.shadows
    if weight == BUCKETS:
        shadows = tuple(
            replace(shadow, backend=primary) if shadow.backend == plan.candidate else shadow
            for shadow in shadows
        )
    return replace(route, target=Split(SplitKey(plan.key), shares), shadows=shadows)


def weights_of(route: Route, state: CanaryState | None) -> dict[str, float]:
    """Percent of the route's requests per backend at the state's step: primary, candidate.

    A route without a plan sends everything where its target says (a split: its shares).
    """
    plan = route.canary
    if plan is None:
        target = route.target
        if isinstance(target, Split):
            return {backend: buckets / _PER_PERCENT for backend, buckets in target.shares}
        return {target: 100.0}
    percent = _percent(plan, state)
    return {route.primary: 100.0 - percent, plan.candidate: percent}


def _percent(plan: CanaryPlan, state: CanaryState | None) -> float:
    """The candidate's percent at the state's step. A step the plan does not have (a reload
    shortened it before the controller caught up) counts as the safe step, never as more."""
    step = 0 if state is None else state.step
    if not 0 <= step < len(plan.steps):
        step = plan.safe_step
    return plan.steps[step]

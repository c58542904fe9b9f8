"""What a new routing.yaml would change, as lines an operator reads before deploying it.

:func:`diff_tables` compares two route lists by what they *do*: for every class
of request (operation × transaction × named customer × named user, the same
classes the loader's overlap check uses) it asks both tables where the request
goes, and reports each class whose backend shares, split layout or deadline
differ, e.g.::

    lookup: mainframe 100% → mainframe 95%, persons-v2 5% (split by pnr; 5% of requests move)
    lookup, transaction OFF4, customer not 0012: mainframe 100% → persons-v2 100% (...)
    lookup: shadows none → persons-v2 100% within 1s, noise mainframe-2 20%

Classes that change the same way are merged, and a dimension that covers all its
values is left out of the label; ``not`` lists the values a change leaves out.
Renaming or reordering routes without changing where requests go reports
nothing. Pure: no I/O, usable by the CLI and by reloads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from gateway.config.canary import describe, plan_changes
from gateway.config.schema import (
    BUCKETS,
    OTHER,
    Case,
    FailedLogons,
    GatewayConfig,
    Match,
    Route,
    Sessions,
    Split,
    SplitKey,
)
from gateway.model import Operation

_PER_PERCENT = BUCKETS / 100


@dataclass(frozen=True, slots=True)
class _Outcome:
    """Where one class of requests goes under one table."""

    #: (backend, buckets) as configured, for display.
    shares: tuple[tuple[str, int], ...]
    #: Non-empty (backend, start, end) bucket ranges: what decides each key's side.
    ranges: tuple[tuple[str, int, int], ...]
    #: The split key; None when one backend takes everything (no key matters then).
    key: SplitKey | None
    deadline: float
    #: Shadows that copy this operation, and the noise instance: compared, never answering.
    copies: str = "none"

    @classmethod
    def of(cls, route: Route, operation: Operation) -> _Outcome:
        target = route.target
        copies = _copies(route, operation)
        if not isinstance(target, Split):
            whole = ((target, 0, BUCKETS),)
            return cls(((target, BUCKETS),), whole, None, route.deadline, copies)
        ranges = tuple(r for r in target.ranges() if r[2] > r[1])
        key = target.key if len(ranges) > 1 else None
        return cls(target.shares, ranges, key, route.deadline, copies)

    def same_answers(self, other: _Outcome) -> bool:
        """Whether every request goes to the same backend with the same deadline."""
        return (self.ranges, self.key, self.deadline) == (other.ranges, other.key, other.deadline)

    def same_effect(self, other: _Outcome) -> bool:
        """Same answers and the same copies."""
        return self.same_answers(other) and self.copies == other.copies


@dataclass(frozen=True, slots=True)
class _Change:
    """A set of request classes that change the same way (values per dimension)."""

    operation: Operation
    transactions: frozenset[str]
    customers: frozenset[int]
    users: frozenset[str]
    old: _Outcome
    new: _Outcome


def diff_tables(old: Sequence[Route], new: Sequence[Route]) -> list[str]:
    """One line per operation (and narrower class) whose routing differs; [] when none does."""
    matches = [route.match for route in (*old, *new)]
    domains = _domains(matches)
    changes: list[_Change] = []
    for case in Match().cases(matches):
        operation = case[0]
        before = _Outcome.of(_first(old, case), operation)
        after = _Outcome.of(_first(new, case), operation)
        if not before.same_effect(after):
            operation, transaction, customer, user = case
            assert customer is not None  # cases use numbers, never "unparseable"
            changes.append(
                _Change(
                    operation,
                    frozenset({transaction}),
                    frozenset({customer}),
                    frozenset({user}),
                    before,
                    after,
                )
            )
    for dimension in ("transactions", "users", "customers"):
        changes = _merge(changes, dimension)
    return [_line(change, domains) for change in changes]


def restart_needed(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """Settings that differ but cannot change in a running gateway: listen, admin, shadowing,
    the canary store, the audit log, and where sessions are shared (their idle expiry changes
    live)."""
    names = ("listen", "admin", "shadowing", "canary", "audit")
    changed = [name for name in names if getattr(old, name) != getattr(new, name)]
    if _restart_part(old.sessions) != _restart_part(new.sessions):
        changed.append("sessions.store")
    return changed


def _restart_part(sessions: Sessions) -> Sessions:
    """``sessions`` without what a reload applies (the idle time, the fan-out timeout)."""
    return replace(sessions, idle=0.0, fan_out_timeout=0.0)


def diff_configs(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """Everything ``new`` changes compared with ``old``: settings, backends, then routing."""
    lines = [f"{name}: changed (takes effect on restart)" for name in restart_needed(old, new)]
    for field in fields(old.limits):
        before, after = getattr(old.limits, field.name), getattr(new.limits, field.name)
        if before != after:
            lines.append(f"limits.{field.name}: {_show_limit(before)} → {_show_limit(after)}")
    for key in ("idle", "fan_out_timeout"):
        before, after = getattr(old.sessions, key), getattr(new.sessions, key)
        if before != after:
            lines.append(f"sessions.{key}: {_show_limit(before)} → {_show_limit(after)}")
    if old.logging.requests != new.logging.requests:
        lines.append(f"logging.requests: {old.logging.requests} → {new.logging.requests}")
    for name in sorted(set(old.backends) | set(new.backends)):
        was, now = old.backends.get(name), new.backends.get(name)
        if was is None and now is not None:
            lines.append(f"backend {name}: added (kind {now.kind})")
        elif now is None:
            lines.append(f"backend {name}: removed")
        elif was != now:
            lines.append(f"backend {name}: changed (a new {now.kind} backend replaces it)")
    return [*lines, *diff_tables(old.routes, new.routes), *_canary_lines(old.routes, new.routes)]


def _canary_lines(old: Sequence[Route], new: Sequence[Route]) -> list[str]:
    """A line per route whose step plan is added, changed or removed (a reload applies it)."""
    before = {route.name: route.canary for route in old}
    after = {route.name: route.canary for route in new}
    lines: list[str] = []
    for name in dict.fromkeys([*after, *before]):  # the new file's order, then routes removed
        was, now = before.get(name), after.get(name)
        if was == now:
            continue
        if was is None:
            assert now is not None
            lines.append(f"route {name}: canary added: {describe(now)}")
        elif now is None:
            lines.append(f"route {name}: canary removed")
        else:
            lines.append(f"route {name}: canary {', '.join(plan_changes(was, now))}")
    return lines


def _first(routes: Sequence[Route], case: Case) -> Route:
    """The route that takes ``case``; a valid table always has one (the catch-all)."""
    return next(route for route in routes if route.match.admits(*case))


def _domains(matches: Sequence[Match]) -> dict[str, frozenset[object]]:
    """Every value of each dimension the cases run through."""
    cases = list(Match().cases(matches))
    return {
        "transactions": frozenset(case[1] for case in cases),
        "customers": frozenset(case[2] for case in cases),
        "users": frozenset(case[3] for case in cases),
    }


def _merge(changes: Iterable[_Change], dimension: str) -> list[_Change]:
    """Merge changes that differ only in ``dimension``, keeping first-seen order."""
    groups: dict[tuple[object, ...], list[_Change]] = defaultdict(list)
    for change in changes:
        rest = tuple(getattr(change, f.name) for f in fields(change) if f.name != dimension)
        groups[rest].append(change)
    merged: list[_Change] = []
    for group in groups.values():
        values = frozenset().union(*(getattr(change, dimension) for change in group))
        changed: dict[str, Any] = {dimension: values}
        merged.append(replace(group[0], **changed))
    return merged


def _line(change: _Change, domains: dict[str, frozenset[object]]) -> str:
    """``lookup, transaction OFF4, customer not 0012: old → new (notes)``."""
    label = [change.operation.value]
    for dimension, word, other, show in (
        ("transactions", "transaction", OTHER.transaction, str),
        ("customers", "customer", OTHER.customer, _show_customer),
        ("users", "user", OTHER.user, str),
    ):
        values: frozenset[object] = getattr(change, dimension)
        domain = domains[dimension]
        if values == domain:  # a dimension that covers everything goes unsaid
            continue
        if other in values:  # "every value but these" is the short and exact way to say it
            label.append(f"{word} not {_listing(domain - values, show)}")
        else:
            label.append(f"{word} {_listing(values, show)}")
    return f"{', '.join(label)}: {_transition(change.old, change.new)}"


def _listing(values: Iterable[object], show: Callable[[Any], str]) -> str:
    return "/".join(sorted(show(value) for value in values))


def _show_limit(value: object) -> str:
    # Durations are the float limits (seconds); counts are ints.
    if isinstance(value, FailedLogons):
        return f"{value.max} in {value.window:g}s"
    return f"{value:g}s" if isinstance(value, float) else str(value)


def _show_customer(value: int) -> str:
    return f"{value:04d}"


def _transition(old: _Outcome, new: _Outcome) -> str:
    if old.same_answers(new):
        return f"shadows {old.copies} → {new.copies}"
    notes: list[str] = []
    if old.copies != new.copies:
        notes.append(f"shadows {old.copies} → {new.copies}")
    if old.ranges == new.ranges and old.key == new.key:
        text = f"deadline {old.deadline:g}s → {new.deadline:g}s"
    else:
        text = f"{_show_shares(old)} → {_show_shares(new)}"
        if new.key is not None:
            notes.append(f"split by {new.key.value}")
        notes.append(_movement(old, new))
        if old.deadline != new.deadline:
            notes.append(f"deadline {old.deadline:g}s → {new.deadline:g}s")
    return f"{text} ({'; '.join(notes)})" if notes else text


def _movement(old: _Outcome, new: _Outcome) -> str:
    """How many requests change backend; exact when both sides hash the same key."""
    if old.key is not None and new.key is not None and old.key != new.key:
        return f"split key {old.key.value} → {new.key.value}: keys are reshuffled"
    kept = sum(
        max(0, min(end, new_end) - max(start, new_start))
        for backend, start, end in old.ranges
        for new_backend, new_start, new_end in new.ranges
        if backend == new_backend
    )
    return f"{(BUCKETS - kept) / _PER_PERCENT:g}% of requests move"


def _copies(route: Route, operation: Operation) -> str:
    """The copies ``operation`` gets on ``route``, as the diff shows them."""
    shadows = [
        f"{shadow.backend} {shadow.sample / _PER_PERCENT:g}% within {shadow.deadline:g}s"
        for shadow in route.shadows
        if shadow.dual_write or not operation.is_write
    ]
    if shadows and route.noise is not None and operation is Operation.LOOKUP:
        shadows.append(f"noise {route.noise.backend} {route.noise.sample / _PER_PERCENT:g}%")
    return ", ".join(shadows) or "none"


def _show_shares(outcome: _Outcome) -> str:
    return ", ".join(
        f"{backend} {buckets / _PER_PERCENT:g}%" for backend, buckets in outcome.shares
    )

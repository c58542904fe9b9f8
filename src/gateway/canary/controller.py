"""The canary controller: follows each canary route's plan, and applies the fleet's state here.

Every gateway runs one. Each tick (the shortest ``plan.interval`` of its routes) it

1. adds this replica's answer counts (gateway.canary.evidence) to the store;
2. if it holds the decider's lease (one replica of the fleet does; gateway.canary.store),
   judges each route whose interval is up (gateway.canary.gates) on the evidence of every
   replica since the step began, and writes a promotion or a rollback with its history;
3. reads every route's state and, where it changed, applies the weights of its step:
   the file's routes with the canary steps in force (gateway.canary.weights) replace the
   dispatcher's table, which keeps requests in flight on the table they started with.

An operator's pause, resume, promote or rollback (the admin API) is written the same way
and applied here at once; the other replicas apply it within a tick. A store that fails
is counted and logged (``canary_store_failed``), and the routes keep the weights they
have: no change is ever made without the evidence and the state to back it. A gateway
whose store cannot be reached at start serves the file's routes (every request on the
primary) until it can.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from gateway.canary.control import RouteStatus
from gateway.canary.evidence import (
    AnswerCounter,
    ShadowTallies,
    baseline,
    route_verdict,
    side_figures,
    since_baseline,
)
from gateway.canary.gates import judge
from gateway.canary.model import (
    Action,
    CanaryState,
    Evidence,
    Judgement,
    Status,
    Transition,
)
from gateway.canary.store import CanaryStore, CanaryStoreError, StoredState
from gateway.canary.weights import effective_routes, weights_of
from gateway.config.canary import CanaryPlan
from gateway.config.schema import Route
from gateway.errors import ConfigError, GatewayError
from gateway.observe.events import (
    CanaryJudged,
    CanaryStoreFailed,
    CanaryTransitioned,
    CanaryWeights,
    EventBus,
    ReadFallback,
    RequestCompleted,
)
from gateway.runtime.tasks import TaskSet
from gateway.shadow.noise import Tally

T = TypeVar("T")
#: Who the controller's own transitions are recorded as.
CONTROLLER = "controller"
#: History entries each route keeps in memory for the admin API (read at every change).
HISTORY_KEPT = 100
#: The decider's lease lasts this many ticks: a replica that stops renewing it (gone,
#: or its store calls failing) is replaced after about that long.
_LEASE_TICKS = 3


class CanaryController:
    """Follows the canary routes' plans (one decider per fleet) and applies their state here.

    Implements :class:`gateway.canary.control.CanaryControl`. ``apply`` receives the routes
    new requests are routed with (the file's, with the steps in force).
    """

    def __init__(
        self,
        routes: Sequence[Route],
        location: str | Path,
        bus: EventBus,
        tallies: ShadowTallies,
        apply: Callable[[tuple[Route, ...]], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._location = location
        self._bus = bus
        self._tallies = tallies
        self._apply_routes = apply
        self._clock = clock
        #: This replica, in the lease and in its evidence rows: unique per Gateway object.
        self.replica = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
        self.counter = AnswerCounter()
        bus.subscribe(self.counter.on_event, RequestCompleted, ReadFallback)
        self._routes: tuple[Route, ...] = ()
        self._plans: dict[str, Route] = {}
        self._store: CanaryStore | None = None
        self._stored: dict[str, StoredState] = {}
        self._history: dict[str, list[Transition]] = {}
        #: The states this replica routes by now; None: the file's routes (none applied yet).
        self._applied: dict[str, CanaryState] | None = None
        self._leader = False
        #: The last failure's message, while the store keeps failing with it (logged once).
        self._failing: str | None = None
        self._tasks = TaskSet()
        self.set_routes(routes)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, start every new plan, apply the states, and start ticking.

        ConfigError when the store cannot be used as configured; a store that cannot be
        reached now is tried again every tick (the file's routes are served meanwhile).
        """
        try:
            await self._open()
        except ConfigError:
            await self._tallies.aclose()
            raise
        if self._store is not None:
            await self._guarded("start", self._sync())
        self._tasks.spawn(self._run(), name="canary-controller")

    async def aclose(self) -> None:
        """Stop ticking, hand this replica's last counts to the store, give up the lease."""
        await self._tasks.drain(0, "shutdown: canary controller")
        if self._store is not None:
            store = self._store
            await self._guarded("flush", self._flush())
            if self._leader:
                await self._guarded("lease", asyncio.to_thread(store.release_lease, self.replica))
            await asyncio.to_thread(store.close)
            self._store = None
        await self._tallies.aclose()

    def set_routes(self, routes: Sequence[Route]) -> tuple[Route, ...]:
        """Follow the plans of ``routes`` (a reload's); returns the routes to serve now: them,
        with the steps in force. A new plan starts at the next tick."""
        self._routes = tuple(routes)
        self._plans = {route.name: route for route in routes if route.canary is not None}
        for name in (self._history.keys() | (self._applied or {}).keys()) - self._plans.keys():
            self._history.pop(name, None)
            self.counter.forget(name)
        return self._effective()

    @property
    def tick_s(self) -> float:
        """Seconds between ticks: the shortest interval of the plans."""
        return min((_plan(r).interval for r in self._plans.values()), default=math.inf)

    # -- CanaryControl ------------------------------------------------------------------------

    def routes(self) -> list[RouteStatus]:
        """Every canary route with a stored state, in the file's order."""
        return [self._status(name) for name in self._plans if name in self._stored]

    def history(self, route: str, limit: int = 100) -> list[Transition]:
        """The newest ``limit`` (at most :data:`HISTORY_KEPT`) entries of ``route``, oldest
        first (as of this gateway's last read of the store)."""
        self._plan_of(route)
        return self._history.get(route, [])[-limit:]

    async def pause(self, route: str, who: str, reason: str = "") -> RouteStatus:
        """Hold ``route`` at its step until resumed; ValueError when it is held or complete."""
        state = await self._current(route)
        if state.status is not Status.RUNNING:
            raise ValueError(f"route {route} is {state.status.value}, not running")
        after = replace(state, status=Status.PAUSED, reason=reason or f"paused by {who}")
        return await self._operate(state, after, "pause", who)

    async def resume(self, route: str, who: str) -> RouteStatus:
        """Let ``route``'s plan go on from its step, with fresh evidence; ValueError unless
        paused."""
        state = await self._current(route)
        if state.status is not Status.PAUSED:
            raise ValueError(f"route {route} is {state.status.value}, not paused")
        after = replace(state, status=Status.RUNNING, reason=f"resumed by {who}")
        return await self._operate(state, after, "resume", who)

    async def promote(self, route: str, who: str) -> RouteStatus:
        """Move ``route`` to its next step now; ValueError at the last step."""
        state = await self._current(route)
        steps = _plan(self._plans[route]).steps
        if state.step >= len(steps) - 1:
            raise ValueError(f"route {route} is at its last step ({steps[-1]:g}%)")
        after = _promoted(state, len(steps), f"promoted by {who}")
        kind = "complete" if after.status is Status.COMPLETED else "promote"
        return await self._operate(state, after, kind, who)

    async def rollback(self, route: str, who: str, reason: str = "") -> RouteStatus:
        """Move ``route`` back to its safe step and pause it; ValueError when it is there, held."""
        state = await self._current(route)
        safe = min(state.step, _plan(self._plans[route]).safe_step)
        if state.status is Status.PAUSED and state.step == safe:
            raise ValueError(f"route {route} is paused at its safe step already")
        after = _rolled_back(state, safe, reason or f"rolled back by {who}")
        return await self._operate(state, after, "rollback", who)

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s if self._plans else 1.0)
            try:
                await self._tick()
            except Exception as exc:  # a bug here must not stop the ticks, nor the gateway
                self._failed("tick", exc)

    async def _tick(self) -> None:
        if self._store is None:
            if not await self._guarded("open", self._open()) or self._store is None:
                return
            await self._guarded("start", self._sync())
        await self._guarded("flush", self._flush())
        if self._plans and await self._guarded("lease", self._take_lease()):
            for name in list(self._plans):
                await self._guarded("judge", self._evaluate(name))
        if await self._guarded("poll", self._sync()):
            self._failing = None

    async def _open(self) -> None:
        try:
            self._store = await asyncio.to_thread(CanaryStore.open, self._location)
        except CanaryStoreError as exc:
            self._failed("open", exc)

    async def _sync(self) -> None:
        """Start the plans that have no state yet, read every state, and apply what changed."""
        store = self._require_store()
        stored = await asyncio.to_thread(store.states)
        for name in self._plans.keys() - stored.keys():
            await self._start_plan(store, name)
        if self._plans.keys() - stored.keys():
            stored = await asyncio.to_thread(store.states)
        await self._read_history(store, stored)
        self._stored = stored
        self._apply_states({name: s.state for name, s in stored.items() if name in self._plans})

    async def _start_plan(self, store: CanaryStore, name: str) -> None:
        now = self._clock()
        state = CanaryState(name, 0, Status.RUNNING, "plan started", now)
        start = Transition(now, name, "start", 0, 0, "plan started", CONTROLLER)
        base = baseline(await self._tally(name, None))
        if await asyncio.to_thread(store.start, state, base, start):  # else another replica did
            self._bus.emit(CanaryTransitioned(name, "start", 0, 0, start.reason, CONTROLLER))

    async def _read_history(self, store: CanaryStore, stored: Mapping[str, StoredState]) -> None:
        """Re-read the history of each route whose state changed (every change adds to it)."""
        for name, now in stored.items():
            before = self._stored.get(name)
            if name in self._plans and (before is None or before.state != now.state):
                self._history[name] = await asyncio.to_thread(store.history, name, HISTORY_KEPT)

    def _apply_states(self, states: dict[str, CanaryState]) -> None:
        if states == self._applied:
            return
        self._applied = states
        self._apply_routes(self._effective())
        for name, state in states.items():
            if state.status is Status.PAUSED:  # not judged; a resume starts afresh anyway
                self.counter.forget(name)
            else:
                self.counter.track(name, state.since)
            weights = weights_of(self._plans[name], state)
            self._bus.emit(CanaryWeights(name, state.step, tuple(weights.items())))

    def _effective(self) -> tuple[Route, ...]:
        if not self._applied:
            return self._routes
        return tuple(effective_routes(self._routes, self._applied))

    async def _flush(self) -> None:
        rows = self.counter.take()
        if not rows:
            return
        try:
            await asyncio.to_thread(self._require_store().add_evidence, self.replica, rows,
                                    self._clock())  # fmt: skip
        except CanaryStoreError:
            self.counter.put_back(rows)  # counted again with the next flush
            raise

    async def _take_lease(self) -> bool:
        store, now = self._require_store(), self._clock()
        lease = self.tick_s * _LEASE_TICKS
        self._leader = await asyncio.to_thread(store.take_lease, self.replica, now, lease)
        return self._leader

    async def _evaluate(self, name: str) -> None:
        """Judge ``name`` if its interval is up, and act on the judgement."""
        stored, route = self._stored.get(name), self._plans[name]
        plan, now = _plan(route), self._clock()
        if stored is None or stored.state.status is Status.PAUSED:
            return
        last = stored.evaluated_at if stored.evaluated_at is not None else stored.state.since
        if now < last + plan.interval:
            return
        evidence = await self._evidence(route, stored)
        judgement = judge(plan, stored.state, evidence, now)
        store = self._require_store()
        await asyncio.to_thread(store.set_evaluation, name, judgement.gates, evidence, now)
        self._bus.emit(CanaryJudged(name, _numeric(judgement)))
        await self._act(stored.state, plan, judgement)

    async def _evidence(self, route: Route, stored: StoredState) -> Evidence:
        state, candidate = stored.state, _plan(route).candidate
        rows = await asyncio.to_thread(self._require_store().evidence, route.name, state.since)
        tally = since_baseline(await self._tally(route.name, state), stored.baseline)
        shadow = route_verdict(tally, route.thresholds)
        primary, ours = side_figures(rows.get(route.primary)), side_figures(rows.get(candidate))
        return Evidence(shadow.verdict, shadow.comparisons, primary, ours, shadow.differing_fields)

    async def _act(self, state: CanaryState, plan: CanaryPlan, judgement: Judgement) -> None:
        figures = {g.name: g.figure for g in judgement.gates}
        if judgement.action is Action.ROLLBACK:
            safe = min(state.step, plan.safe_step)
            after = _rolled_back(state, safe, judgement.reason)
            await self._change(state, after, "rollback", CONTROLLER, figures)
        elif judgement.action is Action.PROMOTE and state.step < len(plan.steps) - 1:
            after = _promoted(state, len(plan.steps), judgement.reason)
            kind = "complete" if after.status is Status.COMPLETED else "promote"
            await self._change(state, after, kind, CONTROLLER, figures)

    # -- changes ------------------------------------------------------------------------------

    async def _current(self, route: str) -> CanaryState:
        """``route``'s state as stored now; KeyError for a route without a plan."""
        self._plan_of(route)
        stored = await self._store_call(self._require_store().states)
        if route not in stored:
            raise CanaryStoreError(f"route {route} has no state yet; try again shortly")
        return stored[route].state

    async def _operate(
        self, before: CanaryState, after: CanaryState, kind: str, who: str
    ) -> RouteStatus:
        if not await self._change(before, after, kind, who, {}):
            raise ValueError(f"route {before.route} changed meanwhile; look again and retry")
        return self._status(before.route)

    async def _change(
        self,
        before: CanaryState,
        after: CanaryState,
        kind: str,
        who: str,
        figures: Mapping[str, float | str | None],
    ) -> bool:
        """Write ``after`` (if the state is still ``before``) with its history, and apply it here
        at once; a new step (or a resumed one) starts its evidence afresh. False when the
        state had changed."""
        new_step = after.step != before.step or kind == "resume"
        if new_step:
            after = replace(after, since=self._clock())
        old = self._stored.get(before.route)
        base = (
            baseline(await self._tally(before.route, after))
            if new_step or old is None
            else old.baseline
        )
        t = Transition(self._clock(), before.route, kind, before.step, after.step, after.reason,
                       who, dict(figures))  # fmt: skip
        store = self._require_store()
        if not await self._store_call(store.change, before, after, base, t):
            return False
        # Written: applied here now, or at the next tick if the store cannot be read back.
        if not await self._guarded("poll", self._sync()) and old is not None:
            self._stored[before.route] = replace(old, state=after, baseline=base)
            self._history.setdefault(before.route, []).append(t)
        event = CanaryTransitioned(before.route, kind, before.step, after.step, after.reason, who)
        self._bus.emit(event)
        return True

    # -- helpers ------------------------------------------------------------------------------

    def _status(self, name: str) -> RouteStatus:
        route, stored = self._plans[name], self._stored[name]
        plan, state = _plan(route), stored.state
        last = stored.evaluated_at if stored.evaluated_at is not None else state.since
        paused = state.status is Status.PAUSED
        return RouteStatus(
            route=name,
            primary=route.primary,
            candidate=plan.candidate,
            steps=plan.steps,
            state=state,
            weights=weights_of(route, state),
            gates=stored.gates,
            next_evaluation=None if paused else last + plan.interval,
            evidence=stored.evidence,
        )

    def _plan_of(self, route: str) -> CanaryPlan:
        if route not in self._plans:
            raise KeyError(route)
        return _plan(self._plans[route])

    def _require_store(self) -> CanaryStore:
        if self._store is None:
            raise CanaryStoreError(f"canary store {self._location}: not open")
        return self._store

    async def _tally(self, name: str, state: CanaryState | None) -> Tally:
        """The comparisons of ``name``'s shadow at ``state``: of the candidate, or at 100%
        (where the copies go the other way, canary.weights) of the primary."""
        route = self._plans[name]
        candidate = _plan(route).candidate
        at_full = weights_of(route, state)[candidate] == 100
        return await self._tallies.tally(name, route.primary if at_full else candidate)

    async def _store_call(self, call: Callable[..., T], *args: object) -> T:
        """``call(*args)`` in a thread (a store call for an operator); failures are reported
        and raised (the admin API answers 503 for them)."""
        try:
            return await asyncio.to_thread(call, *args)
        except GatewayError as exc:
            self._failed("change", exc)
            raise

    def _failed(self, action: str, exc: Exception) -> None:
        """Count a failure; log it only when it is not the one the last tick had."""
        detail = str(exc) if isinstance(exc, GatewayError) else f"{type(exc).__name__}: {exc}"
        self._bus.emit(CanaryStoreFailed(action, detail, repeated=detail == self._failing))
        self._failing = detail

    async def _guarded(self, action: str, work: Awaitable[object]) -> bool:
        """Await ``work``; a failed store (or shadow store) is reported and the tick goes on."""
        try:
            result = await work
        except GatewayError as exc:
            self._failed(action, exc)
            return False
        return bool(result) if result is not None else True


def _plan(route: Route) -> CanaryPlan:
    assert route.canary is not None
    return route.canary


def _promoted(state: CanaryState, steps: int, reason: str) -> CanaryState:
    """The next step; the last one completes the plan (a paused route stays paused)."""
    step = state.step + 1
    status = Status.COMPLETED if step == steps - 1 else state.status
    return replace(state, step=step, status=status, reason=reason)


def _rolled_back(state: CanaryState, step: int, reason: str) -> CanaryState:
    return replace(state, step=step, status=Status.PAUSED, reason=reason)


def _numeric(judgement: Judgement) -> tuple[tuple[str, float], ...]:
    """The gates' figures that are numbers (a verdict is not), for the gate gauges."""
    return tuple(
        (g.name, float(g.figure))
        for g in judgement.gates
        if isinstance(g.figure, int | float) and not isinstance(g.figure, bool)
    )

"""What a canary step is judged on: answers per side, and the shadow's comparisons since it began.

:class:`AnswerCounter` subscribes to the event bus and counts, per canary route and
backend, the answers, the failure answers (:data:`gateway.canary.gates.FAILURE_FEJLNR`;
a candidate's failed read that the primary answered instead counts as the candidate's failure
and the primary's answer) and a latency histogram, under the step the request was routed in
(the step's ``since``, which the controller sets as it applies each state). The controller takes
the counts every interval and adds them to the store, where the deciding replica sums
every replica's.

The shadow's side comes from a :class:`ShadowTallies`: the mismatch store's counters when
the gateway has one (shared in a fleet: every replica's comparisons), else this process's
runner. Both are cumulative, so a step's comparisons are the counters now less the
counters when the step began (its *baseline*, kept in the state). Noise counters are not
subtracted: they measure the primary, not the step.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.canary.gates import FAILURE_FEJLNR
from gateway.canary.model import SideFigures, Verdict
from gateway.canary.store import EvidenceRow
from gateway.comparison import FieldKey, Thresholds
from gateway.observe.events import Event, ReadFallback, RequestCompleted
from gateway.shadow.noise import FieldStats, OperationStats, Tally, real_differences, verdict
from gateway.shadow.runner import ShadowRunner
from gateway.shadow.store import MismatchStore

#: Upper bounds (seconds) of the latency buckets: 100 µs up to about a minute, each a fourth
#: root of two above the last, so that a p99 read off them is within 19% of the true one,
#: finer than any sensible ``max_p99_ratio``. The last bucket takes everything above.
LATENCY_BOUNDS: tuple[float, ...] = tuple(0.0001 * 2 ** (i / 4) for i in range(78))


def latency_bucket(seconds: float) -> int:
    """The index of the bucket ``seconds`` falls in (``len(LATENCY_BOUNDS)`` above the last)."""
    return bisect.bisect_left(LATENCY_BOUNDS, seconds)


def p99(buckets: Mapping[int, int]) -> float | None:
    """The 99th percentile latency of a histogram: the upper bound of the bucket it falls in
    (the last bound for the open bucket); None when it is empty."""
    total = sum(buckets.values())
    if total == 0:
        return None
    wanted, seen = math.ceil(total * 0.99), 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= wanted:
            return LATENCY_BOUNDS[min(index, len(LATENCY_BOUNDS) - 1)]
    return LATENCY_BOUNDS[-1]  # unreachable: the counts add up to total


def side_figures(row: EvidenceRow | None) -> SideFigures:
    """One side's figures from its summed evidence (none: no requests)."""
    if row is None:
        return SideFigures()
    return SideFigures(row.requests, row.failures, p99(row.latency))


@dataclass(slots=True)
class _Counts:
    requests: int = 0
    failures: int = 0
    latency: dict[int, int] = field(default_factory=dict)


class AnswerCounter:
    """Counts the answers of canary routes per backend and step; subscribe :meth:`on_event`."""

    def __init__(self) -> None:
        #: The ``since`` of the step each canary route is routed in now, by route.
        self._steps: dict[str, float] = {}
        self._counts: dict[tuple[str, str, float], _Counts] = {}

    def track(self, route: str, since: float) -> None:
        """Count ``route``'s answers from now on under the step that began at ``since``."""
        self._steps[route] = since

    def forget(self, route: str) -> None:
        """Stop counting ``route`` (it has no canary any more)."""
        self._steps.pop(route, None)

    def on_event(self, event: Event) -> None:
        """Count a canary route's answer, and a candidate's failed read that the primary then
        answered (gateway.dispatch's read fallback): the client's answer is the primary's, the
        failure still the candidate's, or a failing candidate would never be rolled back."""
        if type(event) is RequestCompleted:
            failed = event.fejlnr in FAILURE_FEJLNR
            self._count(event.route, event.backend, event.duration_s, failed)
        elif type(event) is ReadFallback and event.outcome == "asked":
            self._count(event.route, event.failed, event.failed_duration_s, True)

    def _count(self, route: str, backend: str, duration_s: float, failed: bool) -> None:
        since = self._steps.get(route)
        if since is None:
            return
        counts = self._counts.get((route, backend, since))
        if counts is None:
            counts = self._counts[(route, backend, since)] = _Counts()
        counts.requests += 1
        counts.failures += failed
        index = latency_bucket(duration_s)
        counts.latency[index] = counts.latency.get(index, 0) + 1

    def take(self) -> list[EvidenceRow]:
        """The counts since the last take, which start again from zero."""
        taken, self._counts = self._counts, {}
        return [
            EvidenceRow(route, backend, since, c.requests, c.failures, c.latency)
            for (route, backend, since), c in taken.items()
        ]

    def put_back(self, rows: Iterable[EvidenceRow]) -> None:
        """Return counts the store did not take, to be flushed with the next ones."""
        for row in rows:
            counts = self._counts.setdefault((row.route, row.backend, row.since), _Counts())
            counts.requests += row.requests
            counts.failures += row.failures
            for index, n in row.latency.items():
                counts.latency[index] = counts.latency.get(index, 0) + n


# -- the shadow's side ------------------------------------------------------------------------


class ShadowTallies(Protocol):
    """Where the shadow comparisons of a route's candidate are counted."""

    async def tally(self, route: str, backend: str) -> Tally:
        """The cumulative counters of ``backend`` shadowing ``route`` (noise included)."""
        ...

    async def aclose(self) -> None:
        """Release what it holds."""
        ...


class RunnerTallies:
    """This process's comparisons (the runner's tallies): a gateway without a mismatch store."""

    def __init__(self, runner: ShadowRunner) -> None:
        self._runner = runner

    async def tally(self, route: str, backend: str) -> Tally:
        """A copy of the runner's tally, taken on the loop the runner counts on."""
        return _copy(self._runner.tally(route, backend))

    async def aclose(self) -> None:
        """Nothing to release."""


class StoreTallies:
    """The mismatch store's counters: every replica's comparisons when the store is shared.

    Opened for reading on first use (the gateway's writer creates it), read in a worker
    thread; a store not there yet reads as no comparisons.
    """

    def __init__(self, location: str | Path) -> None:
        self._location = location
        self._store: MismatchStore | None = None

    async def tally(self, route: str, backend: str) -> Tally:
        """The store's counters of ``backend`` on ``route``; StoreError when it fails."""
        return await asyncio.to_thread(self._read, route, backend)

    def _read(self, route: str, backend: str) -> Tally:
        if self._store is None:
            self._store = MismatchStore.open(self._location, prune=False, create=False)
        return self._store.tally(route, backend)

    async def aclose(self) -> None:
        """Close the reading connection."""
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None


def baseline(tally: Tally) -> str:
    """The candidate's counters of ``tally`` as the text a state keeps (its step's start)."""
    return json.dumps(
        {
            "fields": [
                [k.operation, k.record, k.field, s.samples, s.differs]
                for k, s in sorted(tally.fields.items(), key=lambda item: str(item[0]))
                if s.samples
            ],
            "operations": [
                [name, ops.compared, ops.differing]
                for name, ops in sorted(tally.operations.items())
                if ops.compared
            ],
        }
    )


def since_baseline(tally: Tally, base: str) -> Tally:
    """``tally`` less the candidate's counters in ``base`` (noise kept whole). A counter below
    its baseline (this process restarted, or the store was reset) counts from zero."""
    start = json.loads(base) if base else {}
    fields = {FieldKey(o, r, f): (n, d) for o, r, f, n, d in start.get("fields", [])}
    operations = {name: (n, d) for name, n, d in start.get("operations", [])}
    result = Tally()
    for key, s in tally.fields.items():
        n, d = _less((s.samples, s.differs), fields.get(key, (0, 0)))
        result.fields[key] = FieldStats(n, d, s.noise_samples, s.noise_differs)
    for name, ops in tally.operations.items():
        n, d = _less((ops.compared, ops.differing), operations.get(name, (0, 0)))
        result.operations[name] = OperationStats(n, d, ops.noise_compared, ops.noise_differing)
    return result


@dataclass(frozen=True, slots=True)
class ShadowFigures:
    """The shadow's side of a step's evidence."""

    verdict: Verdict
    #: Comparisons the verdict rests on.
    comparisons: int
    #: The fields that really differ (names from the layouts, never values).
    differing_fields: tuple[str, ...]


def route_verdict(tally: Tally, thresholds: Thresholds) -> ShadowFigures:
    """The verdict over every operation the candidate was compared on: differs if any
    operation differs, clean only if all are."""
    judged = [
        (verdict(tally, name, thresholds).value, ops.compared)
        for name, ops in tally.operations.items()
        if ops.compared
    ]
    comparisons = sum(compared for _verdict, compared in judged)
    verdicts = {v for v, _compared in judged}
    fields = tuple(
        dict.fromkeys(
            key.field for name in sorted(tally.operations)
            for key in real_differences(tally, name, thresholds)
        )
    )  # fmt: skip
    if Verdict.DIFFERS.value in verdicts:
        return ShadowFigures(Verdict.DIFFERS, comparisons, fields)
    if verdicts == {Verdict.CLEAN.value}:
        return ShadowFigures(Verdict.CLEAN, comparisons, ())
    return ShadowFigures(Verdict.INCONCLUSIVE, comparisons, fields)


def _less(now: tuple[int, int], then: tuple[int, int]) -> tuple[int, int]:
    if now[0] < then[0] or now[1] < then[1]:
        return now
    return now[0] - then[0], now[1] - then[1]


def _copy(tally: Tally) -> Tally:
    copied = Tally()
    for key, s in tally.fields.items():
        copied.fields[key] = FieldStats(s.samples, s.differs, s.noise_samples, s.noise_differs)
    for name, o in tally.operations.items():
        copied.operations[name] = OperationStats(
            o.compared, o.differing, o.noise_compared, o.noise_differing
        )
    return copied

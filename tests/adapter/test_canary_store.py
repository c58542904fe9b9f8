"""The canary store on a real SQLite file and a real PostgreSQL: state, history, evidence, lease."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import pg_dsn_fixture, postgres_fixture  # noqa: F401 (fixtures)

from gateway.canary.model import (
    CanaryState,
    Evidence,
    GateResult,
    SideFigures,
    Status,
    Transition,
    Verdict,
)
from gateway.canary.store import CanaryStore, CanaryStoreError, EvidenceRow
from gateway.errors import ConfigError


@pytest.fixture(name="location", params=["sqlite", "postgresql"])
def location_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test runs on a SQLite file and on a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "var" / "canary.sqlite")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture(name="store")
def store_fixture(location: str) -> Iterator[CanaryStore]:
    store = CanaryStore.open(location)
    yield store
    store.close()


def _state(step: int = 0, since: float = 100.0, status: Status = Status.RUNNING) -> CanaryState:
    return CanaryState("lookups", step, status, "plan started", since)


def _transition(kind: str, from_step: int, to_step: int, at: float = 100.0) -> Transition:
    return Transition(
        at, "lookups", kind, from_step, to_step, kind, "controller", {"verdict": "clean"}
    )


def test_a_plan_starts_once_and_a_reopened_store_resumes_it(location: str) -> None:
    """The first start writes the state and its history; a second (another replica) writes
    nothing; a store opened again (a restart) reads the same state."""
    with_store = CanaryStore.open(location)
    assert with_store.start(_state(), '{"fields": []}', _transition("start", 0, 0))
    assert not with_store.start(_state(since=200.0), "{}", _transition("start", 0, 0, 200.0))
    with_store.close()
    again = CanaryStore.open(location)
    try:
        stored = again.states()["lookups"]
        assert stored.state == _state()
        assert stored.baseline == '{"fields": []}'
        assert stored.gates == () and stored.evidence is None and stored.evaluated_at is None
        assert [t.kind for t in again.history("lookups")] == ["start"]
    finally:
        again.close()


def test_a_change_applies_only_to_the_state_it_was_judged_on(store: CanaryStore) -> None:
    """An update made on a stale state (an operator changed it meanwhile) writes nothing."""
    store.start(_state(), "{}", _transition("start", 0, 0))
    promoted = _state(step=1, since=150.0)
    assert store.change(_state(), promoted, "{}", _transition("promote", 0, 1, 150.0))
    paused = CanaryState("lookups", 0, Status.PAUSED, "drift", 160.0)
    assert not store.change(_state(), paused, "{}", _transition("rollback", 1, 0, 160.0))
    assert store.states()["lookups"].state == promoted
    history = store.history("lookups")
    assert [(t.kind, t.from_step, t.to_step) for t in history] == [
        ("start", 0, 0),
        ("promote", 0, 1),
    ]
    assert history[-1].figures == {"verdict": "clean"}


def test_evidence_sums_every_replica_of_the_current_step_only(store: CanaryStore) -> None:
    """Rows of two replicas add up per backend; rows of an earlier step are not counted and
    go when the step changes."""
    store.start(_state(), "{}", _transition("start", 0, 0))
    store.add_evidence("a", [EvidenceRow("lookups", "mainframe", 100.0, 10, 1, {3: 9, 40: 1})], 101)
    store.add_evidence("b", [EvidenceRow("lookups", "mainframe", 100.0, 5, 0, {3: 5})], 102)
    store.add_evidence("b", [EvidenceRow("lookups", "mainframe", 50.0, 7, 7, {3: 7})], 102)
    summed = store.evidence("lookups", 100.0)["mainframe"]
    assert (summed.requests, summed.failures, dict(summed.latency)) == (15, 1, {3: 14, 40: 1})
    store.change(_state(), _state(1, 150.0), "{}", _transition("promote", 0, 1, 150.0))
    assert store.evidence("lookups", 100.0) == {}


def test_reading_the_evidence_folds_it_into_one_row_per_backend(
    store: CanaryStore, location: str
) -> None:
    """A judgement leaves the sums behind: the next one reads them plus what came since."""
    store.start(_state(), "{}", _transition("start", 0, 0))
    for replica in ("a", "b", "c"):
        rows = [EvidenceRow("lookups", backend, 100.0, 4, 1, {5: 4}) for backend in ("x", "y")]
        store.add_evidence(replica, rows, 101)
    first = store.evidence("lookups", 100.0)
    store.add_evidence("a", [EvidenceRow("lookups", "x", 100.0, 1, 0, {6: 1})], 102)
    again = store.evidence("lookups", 100.0)
    assert (first["x"].requests, first["x"].failures, dict(first["x"].latency)) == (12, 3, {5: 12})
    assert (again["x"].requests, again["x"].failures, dict(again["x"].latency)) == (
        13, 3, {5: 12, 6: 1},
    )  # fmt: skip
    assert again["y"] == first["y"]
    reader = CanaryStore.open(location)  # what is in the table, not what this object says
    try:
        assert reader.evidence("lookups", 100.0) == again
    finally:
        reader.close()
    count = store._run(lambda db: db.execute("SELECT count(*) FROM canary_evidence").rows[0][0])
    assert count == 2


def test_an_evaluation_is_kept_for_every_replica(store: CanaryStore) -> None:
    """Gates and the evidence behind them come back as they were written."""
    store.start(_state(), "{}", _transition("start", 0, 0))
    gates = (GateResult("verdict", "clean", "clean", True), GateResult("p99_ratio", 1.2, 1.5, True))
    evidence = Evidence(Verdict.CLEAN, 40, SideFigures(30, 1, 0.002), SideFigures(10, 0, None))
    store.set_evaluation("lookups", gates, evidence, 130.0)
    stored = store.states()["lookups"]
    assert (stored.gates, stored.evidence, stored.evaluated_at) == (gates, evidence, 130.0)


def test_one_replica_holds_the_lease_until_it_runs_out(store: CanaryStore, location: str) -> None:
    """A second replica cannot take a lease that is held; it can once the lease expired,
    and a released lease is free at once."""
    other = CanaryStore.open(location)
    try:
        assert store.take_lease("a", now=1000.0, duration_s=3.0)
        assert not other.take_lease("b", now=1001.0, duration_s=3.0)
        assert store.take_lease("a", now=1002.0, duration_s=3.0)  # renewed: until 1005
        assert not other.take_lease("b", now=1004.0, duration_s=3.0)
        assert other.take_lease("b", now=1006.0, duration_s=3.0)
        assert not store.take_lease("a", now=1007.0, duration_s=3.0)
        other.release_lease("b")
        assert store.take_lease("a", now=1007.5, duration_s=3.0)
    finally:
        other.close()


def test_a_server_that_cannot_be_reached_is_unavailable_not_a_config_error(
    tmp_path: Path,
) -> None:
    """A PostgreSQL that does not answer may come back: the controller tries again."""
    dsn = f"postgresql:///nothing?host={tmp_path}&port=1&user=postgres&password=secret"
    with pytest.raises(CanaryStoreError) as caught:
        CanaryStore.open(dsn)
    assert caught.value.unavailable
    assert "secret" not in str(caught.value)


def test_a_file_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    """Only a change of configuration mends a store path under a file."""
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="canary store"):
        CanaryStore.open(tmp_path / "file" / "canary.sqlite")

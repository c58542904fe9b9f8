"""Stored tokens: the in-memory rules, kept in a real SQLite file or PostgreSQL database that
several store connections share, hashed at rest."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pg_server import pg_dsn_fixture, postgres_fixture  # noqa: F401 (fixtures)

from cpr_accounts.stored_tokens import StoredSessions
from cpr_accounts.tokens import Sessions, SessionTokens
from cpr_services.store import ModernStore
from gateway.errors import BackendUnavailable
from gateway.storage.database import SqliteDatabase

T0 = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
IDLE = dt.timedelta(minutes=30)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new modern store's location: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "modern.sqlite")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def stores(location: str) -> Iterator[tuple[ModernStore, ModernStore]]:
    """Two store connections on one database, as two replicas hold them."""
    first = ModernStore.open(location)
    second = ModernStore.open(location)
    yield first, second
    first.close()
    second.close()


def _rows(location: str) -> list[tuple[object, ...]]:
    """Every row of the session table, read past the store."""
    sql = 'SELECT token_hash, customer, "user", last_use FROM session_token'
    if location.startswith("postgresql://"):
        with psycopg.connect(location) as db:
            return list(db.execute(sql).fetchall())
    with sqlite3.connect(location) as db:
        return list(db.execute(sql).fetchall())


def test_both_kinds_are_session_tokens(stores: tuple[ModernStore, ModernStore]) -> None:
    """The emulator's kind and the stored kind satisfy the one interface the services use."""
    kinds: list[SessionTokens] = [Sessions(IDLE), stores[0].sessions(IDLE)]
    tokens = [kind.issue(1, "U", T0) for kind in kinds]
    assert [kind.use(token, 1, "U", T0) for kind, token in zip(kinds, tokens, strict=True)] == [
        True,
        True,
    ]


def test_a_token_issued_through_one_connection_is_accepted_through_another(
    stores: tuple[ModernStore, ModernStore],
) -> None:
    """Tokens are 8 of [A-Za-z0-9], differ between logons, and every connection accepts them."""
    issuer, other = (store.sessions(IDLE) for store in stores)
    tokens = {issuer.issue(1, "DEMO0001", T0) for _ in range(50)}
    assert len(tokens) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9]{8}", token) for token in tokens)
    assert all(other.use(token, 1, "DEMO0001", T0) for token in tokens)


def test_a_token_is_bound_to_its_customer_and_user(
    stores: tuple[ModernStore, ModernStore],
) -> None:
    """Another customer or user cannot use a token, and trying does not spoil it for its owner."""
    issuer, other = (store.sessions(IDLE) for store in stores)
    token = issuer.issue(1, "DEMO0001", T0)
    assert not other.use(token, 2, "DEMO0001", T0)
    assert not other.use(token, 1, "OTHER", T0)
    assert other.use(token, 1, "DEMO0001", T0)


def test_idle_expiry_counts_from_the_last_use_on_any_connection(
    stores: tuple[ModernStore, ModernStore],
) -> None:
    """A use through one connection restarts the idle time for all; an idle token is removed."""
    first, second = (store.sessions(IDLE) for store in stores)
    token = first.issue(1, "U", T0)
    assert second.use(token, 1, "U", T0 + 29 * MINUTE)
    assert first.use(token, 1, "U", T0 + 58 * MINUTE)
    assert not second.use(token, 1, "U", T0 + 88 * MINUTE)
    assert len(first) == 0
    assert not first.use(token, 1, "U", T0 + 88 * MINUTE)


def test_unknown_token_is_refused(stores: tuple[ModernStore, ModernStore]) -> None:
    """A token never issued is refused, whatever characters it has."""
    sessions = stores[0].sessions(IDLE)
    assert not sessions.use("Tk3nAbCd", 1, "U", T0)
    assert not sessions.use("Tøkæn\x00?", 1, "U", T0)


def test_expired_tokens_are_deleted_on_issue(stores: tuple[ModernStore, ModernStore]) -> None:
    """Issuing a token deletes the idle ones, so the table follows the live sessions."""
    sessions = stores[0].sessions(IDLE)
    for _ in range(10):
        sessions.issue(1, "U", T0)
    sessions.issue(1, "U", T0 + IDLE)
    assert len(sessions) == 1


def test_the_table_is_bounded_by_forgetting_the_least_recently_used(
    stores: tuple[ModernStore, ModernStore],
) -> None:
    """Beyond the bound the token unused the longest goes; a recently used one stays."""
    first, second = (store.sessions(IDLE, limit=2) for store in stores)
    oldest = first.issue(1, "U", T0)
    middle = first.issue(1, "U", T0 + MINUTE)
    assert second.use(oldest, 1, "U", T0 + 2 * MINUTE)
    newest = second.issue(1, "U", T0 + 3 * MINUTE)
    assert len(first) == 2
    assert [first.use(t, 1, "U", T0 + 4 * MINUTE) for t in (oldest, middle, newest)] == [
        True,
        False,
        True,
    ]


def test_the_table_holds_no_token_in_clear(
    location: str, stores: tuple[ModernStore, ModernStore]
) -> None:
    """Each row keeps the token's SHA-256, the customer, the user id and the last use; nothing
    in the table is a token that could be presented."""
    sessions = stores[0].sessions(IDLE)
    tokens = [sessions.issue(1, "DEMO0001", T0) for _ in range(3)]
    rows = _rows(location)
    assert len(rows) == 3
    assert all(re.fullmatch(r"[0-9a-f]{64}", str(row[0])) for row in rows)
    assert {(row[1], row[2]) for row in rows} == {(1, "DEMO0001")}
    text = repr(rows)
    assert not any(token in text for token in tokens)
    assert not any(sessions.use(str(row[0])[:8], 1, "DEMO0001", T0) for row in rows)


def test_a_failing_database_is_backend_unavailable(tmp_path: Path) -> None:
    """A statement that fails (here: no session table) becomes BackendUnavailable, no token."""
    db = SqliteDatabase.open(tmp_path / "empty.sqlite")
    sessions = StoredSessions(db, IDLE)
    try:
        with pytest.raises(BackendUnavailable, match="session store failed"):
            sessions.issue(1, "U", T0)
        with pytest.raises(BackendUnavailable, match="session store failed"):
            sessions.use("Tk3nAbCd", 1, "U", T0)
    finally:
        db.close()


def test_a_use_soon_after_the_last_is_not_written_back(
    stores: tuple[ModernStore, ModernStore],
) -> None:
    """Reads are not writes: a use within a sixtieth of the idle time (30 s of 30 minutes)
    of the stored last use is accepted without refreshing it, so the token then expires at
    most that much early, never late; a later use is written back."""
    first, second = (store.sessions(IDLE) for store in stores)
    token = first.issue(1, "U", T0)
    assert second.use(token, 1, "U", T0 + dt.timedelta(seconds=20))  # not written back
    assert not first.use(token, 1, "U", T0 + 30 * MINUTE + dt.timedelta(seconds=10))
    token = first.issue(1, "U", T0)
    assert second.use(token, 1, "U", T0 + dt.timedelta(seconds=40))  # written back
    assert first.use(token, 1, "U", T0 + 30 * MINUTE + dt.timedelta(seconds=30))

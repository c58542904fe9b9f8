"""The modern store and the migration into it, on a real PostgreSQL server (fresh databases)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_server import Cluster, pg_dsn_fixture, postgres_fixture  # noqa: F401 (fixtures)
from psycopg.conninfo import conninfo_to_dict

from cpr_accounts.auth import Authenticator
from cpr_devtools.migration import migrate_register
from cpr_mainframe.register.store import Register
from cpr_services.schema import PG_MIGRATIONS, upgrade
from cpr_services.store import ModernStore
from emulator_harness import TEST_PASSWORD_COST, register_of
from gateway.cprv1.convert import to_proto
from gateway.errors import BackendUnavailable, ConfigError
from gateway.model import FejlNr
from gateway.storage.postgres import PostgresDatabase, redact

COUNT = 300
T0 = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def register_path() -> Path:
    """A generated 300-person register, shared read-only by this module."""
    return register_of(COUNT)


def _query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as db:
        return db.execute(sql).fetchall()


def _content(dsn: str) -> list[list[tuple[Any, ...]]]:
    """Every row of the store's tables, in a fixed order."""
    return [
        _query(dsn, "SELECT * FROM person ORDER BY pnr"),
        _query(dsn, "SELECT * FROM meta ORDER BY key"),
        _query(dsn, "SELECT * FROM schema_version ORDER BY version"),
    ]


def test_migration_copies_every_person_exactly(register_path: Path, pg_dsn: str) -> None:
    """Every register person is in the PostgreSQL store afterwards, equal to the register's,
    and stored as the message the services answer with too (BYTEA)."""
    report = migrate_register(register_path, pg_dsn, progress=False, batch_size=64)
    assert (report.read, report.inserted, report.updated, report.unchanged) == (COUNT, COUNT, 0, 0)
    assert (report.stored, report.schema_version) == (COUNT, len(PG_MIGRATIONS))
    register = Register.open(register_path)
    store = ModernStore.open(pg_dsn)
    try:
        for person in register.iter_persons():
            assert store.get(person.pnr) == person
            assert store.person_message(person.pnr) == to_proto(person).SerializeToString()
        assert store.meta()["source.seed"] == register.meta["seed"]
        assert store.stale_messages() == 0
    finally:
        store.close()
        register.close()


def test_migrating_twice_changes_nothing(register_path: Path, pg_dsn: str) -> None:
    """A second run finds everyone unchanged and leaves every row of the database as it was."""
    migrate_register(register_path, pg_dsn, progress=False)
    before = _content(pg_dsn)
    again = migrate_register(register_path, pg_dsn, progress=False)
    assert (again.read, again.inserted, again.updated, again.unchanged) == (COUNT, 0, 0, COUNT)
    assert again.stored == COUNT
    assert _content(pg_dsn) == before


def test_a_changed_person_is_replaced(register_path: Path, pg_dsn: str) -> None:
    """Upserting the register again with one person changed updates exactly that person."""
    migrate_register(register_path, pg_dsn, progress=False)
    register = Register.open(register_path)
    persons = list(register.iter_persons())
    register.close()
    persons[7] = replace(persons[7], occupation="Lokomotivfører")
    store = ModernStore.open(pg_dsn)
    try:
        counts = store.upsert(persons)
        assert (counts.inserted, counts.updated, counts.unchanged) == (0, 1, COUNT - 1)
        assert store.get(persons[7].pnr) == persons[7]
    finally:
        store.close()


def test_a_new_database_is_at_the_latest_version(pg_dsn: str) -> None:
    """Opening an empty database applies every migration, one schema_version row each."""
    store = ModernStore.open(pg_dsn)
    try:
        assert (store.schema_version(), store.count()) == (len(PG_MIGRATIONS), 0)
    finally:
        store.close()
    rows = _query(pg_dsn, "SELECT version FROM schema_version ORDER BY version")
    assert [row[0] for row in rows] == list(range(1, len(PG_MIGRATIONS) + 1))


def test_an_older_database_is_brought_up_to_date(pg_dsn: str) -> None:
    """A database at version 1 with a person gets the later migrations and keeps the person."""
    db = PostgresDatabase(pg_dsn)
    assert upgrade(db, PG_MIGRATIONS[:1]) == 1
    db.execute("INSERT INTO person VALUES ('0101011234', '01', 'M', '1901-01-01', 1, 1, 1, '{}')")
    db.close()
    store = ModernStore.open(pg_dsn)
    try:
        assert store.schema_version() == len(PG_MIGRATIONS)
        assert store.contains("0101011234")
        assert store.subscribe(1, "0101011234", T0)
    finally:
        store.close()


def test_a_database_newer_than_the_program_is_refused(pg_dsn: str) -> None:
    """A schema version this program does not know is a ConfigError naming both versions."""
    ModernStore.open(pg_dsn).close()
    with psycopg.connect(pg_dsn) as db:
        db.execute("INSERT INTO schema_version VALUES (99, '2030-01-01T00:00:00+00:00')")
    with pytest.raises(
        ConfigError, match=f"version 99 is newer than this program's {len(PG_MIGRATIONS)}"
    ):
        ModernStore.open(pg_dsn)


def test_another_database_is_refused_untouched(pg_dsn: str) -> None:
    """A database holding someone else's tables is refused, and gets no table of ours."""
    with psycopg.connect(pg_dsn) as db:
        db.execute("CREATE TABLE invoice (id INTEGER PRIMARY KEY)")
    with pytest.raises(ConfigError, match="not a modern store"):
        ModernStore.open(pg_dsn)
    tables = _query(pg_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == [("invoice",)]


def test_the_dialects_have_the_same_tables_and_columns(pg_dsn: str) -> None:
    """SQLite's and PostgreSQL's migrations give the same tables with the same column names."""
    ModernStore.open(pg_dsn).close()
    sqlite = sqlite3.connect(":memory:")
    upgrade(sqlite)
    tables = [
        row[0] for row in sqlite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    ]
    in_sqlite = {t: [c[1] for c in sqlite.execute(f'PRAGMA table_info("{t}")')] for t in tables}
    sqlite.close()
    columns = _query(
        pg_dsn,
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    )
    in_postgres: dict[str, list[str]] = {}
    for table, column in columns:
        in_postgres.setdefault(table, []).append(column)
    assert in_postgres == in_sqlite


async def test_users_and_subscriptions_work_on_postgresql(pg_dsn: str) -> None:
    """The emulator's state code on PostgreSQL: seed, lock after 5, unlock, change, history."""
    store = ModernStore.open(pg_dsn)
    auth = Authenticator(store.state, TEST_PASSWORD_COST)
    try:
        assert await auth.seed(1, "U", "Demo#123", T0)
        assert not await auth.seed(1, "U", "Demo#123", T0)
        for _ in range(5):
            assert not await auth.verify(1, "U", "Wrong#12")
        state = store.state.user(1, "U")
        assert state is not None and (state.failures, state.locked, state.set_at) == (5, True, T0)
        store.state.unlock(1, "U")
        assert await auth.verify(1, "U", "Demo#123")
        later = T0 + dt.timedelta(days=2)
        assert await auth.renew(1, "U", "New#5678", later) is FejlNr.OK
        assert await auth.verify(1, "U", "New#5678")
        again = later + dt.timedelta(days=2)
        assert await auth.renew(1, "U", "Demo#123", again) is FejlNr.PASSWORD_RULES  # used before
        changed = store.state.user(1, "U")
        assert changed is not None and (changed.failures, changed.changed_at) == (0, later)
        assert store.subscribe(1, "0101601234", T0) and not store.subscribe(1, "0101601234", T0)
        assert store.subscriptions.of(1) == ["0101601234"]
        assert store.subscriptions.created(1, "0101601234") == T0
    finally:
        store.close()


def test_an_unreachable_server_is_a_config_error_without_the_password(tmp_path: Path) -> None:
    """No server behind the DSN: ConfigError naming the DSN, its password replaced by ***."""
    dsn = f"postgresql://cpr:s3cret@/cpr?host={tmp_path}/nowhere&password=s3cret2"
    with pytest.raises(ConfigError) as caught:
        ModernStore.open(dsn)
    message = caught.value.problems[0]
    assert message.startswith(f"store: cannot open {redact(dsn)}: ")
    assert "s3cret" not in message and "cpr:***@" in message


def test_redact_leaves_paths_and_password_free_dsns_alone() -> None:
    """redact() changes only passwords, in the user part and in the query."""
    assert redact("var/modern.sqlite") == "var/modern.sqlite"
    assert redact("postgresql://cpr@db:5432/cpr") == "postgresql://cpr@db:5432/cpr"
    assert redact("postgresql:///cpr?host=/run/pg") == "postgresql:///cpr?host=/run/pg"
    assert redact("postgresql://cpr:pw@db/cpr?password=x&sslmode=require") == (
        "postgresql://cpr:***@db/cpr?password=***&sslmode=require"
    )


def test_a_lost_connection_fails_one_call_then_reconnects(postgres: Cluster, pg_dsn: str) -> None:
    """The session is killed: the next read is BackendUnavailable, the one after works again."""
    store = ModernStore.open(pg_dsn)
    try:
        with postgres.admin() as admin:
            ended = admin.execute(
                # The timeout makes the call wait until the backend has really exited.
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (conninfo_to_dict(pg_dsn)["dbname"],),
            ).fetchall()
        assert ended == [(True,)]
        with pytest.raises(BackendUnavailable, match="modern store read failed"):
            store.count()
        assert store.count() == 0
    finally:
        store.close()

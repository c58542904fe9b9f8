"""The mismatch store on real SQLite files and a real PostgreSQL server (each store test runs
on both), and the pseudonym key on real files."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_server import pg_dsn_fixture, postgres_fixture  # noqa: F401 (fixtures)

from gateway.comparison import FieldKey, Thresholds
from gateway.errors import ConfigError
from gateway.observe.events import EventBus
from gateway.shadow.compare import Comparison, FieldDiff
from gateway.shadow.noise import FieldStats, OperationStats, Tally
from gateway.shadow.pseudonym import KEY_ENV, Pseudonymiser, is_pseudonym, load_key
from gateway.shadow.sealing import CLEAR, NO_KEY, OTHER_KEY, SEALED, Sealer
from gateway.shadow.store import AGE_PRUNE_INTERVAL, SCHEMA_VERSION, MismatchStore, Sample
from gateway.shadow.store_db import PG_SCHEMA
from gateway.shadow.writer import SampleWriter

PNR = "0101601234"  # synthetic
PSEUDONYM = Pseudonymiser(b"s" * 32).pnr(PNR)
ADDRESS = FieldKey("lookup", "001", "STANDARDADR")
DAY = FieldKey("lookup", "000", "PRODDTO")
KEYS = (ADDRESS, DAY)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _sample(
    *differing: FieldKey, noise: bool = False, n: int = 0, at: float | None = None
) -> Sample:
    diffs = tuple(FieldDiff(key, f"old {n}", f"new {n}") for key in differing)
    other = "mainframe-2" if noise else "persons-v2"
    comparison = Comparison(KEYS, diffs, "lookup")
    return Sample("lookups", "mainframe", other, comparison, PSEUDONYM, noise, at)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """Where a store test's store lives: a file in a directory not made yet, or a fresh
    PostgreSQL database."""
    if request.param == "sqlite":
        yield tmp_path / "var" / "shadow.sqlite"
    else:
        yield request.getfixturevalue("pg_dsn")


def _query(location: Path | str, sql: str) -> list[tuple[Any, ...]]:
    """``sql`` run on the store's tables with the engine's own driver, committed."""
    if isinstance(location, Path):
        with closing(sqlite3.connect(location)) as db, db:
            return list(db.execute(sql))
    with psycopg.connect(location, autocommit=True) as pg:
        pg.execute(f"SET search_path TO {PG_SCHEMA}")
        cursor = pg.execute(sql)
        return cursor.fetchall() if cursor.description else []


def _rows(location: Path | str) -> list[tuple[object, ...]]:
    return _query(
        location, "SELECT field, primary_value, candidate_value, subject FROM mismatch ORDER BY id"
    )


def _stored_text(location: Path | str) -> str:
    """Everything the store holds, as text: the file's bytes, or every row of every table."""
    if isinstance(location, Path):
        return location.read_bytes().decode("latin-1")
    tables = ("schema_version", "mismatch", "field_counts", "request_counts", "thresholds")
    return repr([_query(location, f"SELECT * FROM {table}") for table in tables])


def test_open_creates_a_versioned_schema_and_reopens(location: Path | str) -> None:
    """A new store gets the schema and its version; opening it again works."""
    MismatchStore.open(location).close()
    assert _query(location, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    with MismatchStore.open(location) as store:
        assert store.row_count() == 0


def test_open_refuses_another_version(location: Path | str) -> None:
    """A store from another schema version is a ConfigError."""
    MismatchStore.open(location).close()
    _query(location, "UPDATE schema_version SET version = 99")
    with pytest.raises(ConfigError, match="schema version"):
        MismatchStore.open(location)


def test_open_refuses_a_file_that_is_no_database(tmp_path: Path) -> None:
    """A file that is no SQLite database is a ConfigError naming it."""
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match=r"junk\.sqlite"):
        MismatchStore.open(junk)


def test_record_keeps_each_difference_with_pseudonym_and_counts_matches_too(
    location: Path | str,
) -> None:
    """Rows only for diffs; counters for every comparison, so rates stay exact."""
    with MismatchStore.open(location) as store:
        store.record(_sample(ADDRESS))
        store.record(_sample())
        store.record(_sample(DAY, noise=True))
        assert _rows(location) == [
            ("STANDARDADR", "old 0", "new 0", PSEUDONYM),
            ("PRODDTO", "old 0", "new 0", PSEUDONYM),
        ]
        tally = store.tally("lookups", "persons-v2")
    assert tally.fields[ADDRESS] == FieldStats(2, 1, 1, 0)
    assert tally.fields[DAY] == FieldStats(2, 0, 1, 1)
    assert tally.operations["lookup"] == OperationStats(2, 1, 1, 1)


def test_the_stored_tally_equals_the_in_memory_one_after_pruning(location: Path | str) -> None:
    """Counters survive row pruning: the store's tally is exactly the in-memory tally."""
    memory = Tally()
    with MismatchStore.open(location, max_rows=3) as store:
        for i in range(40):
            sample = _sample(*KEYS[: i % 3], n=i, noise=i % 4 == 0)
            store.record(sample)
            (memory.record_noise if sample.noise else memory.record_comparison)(sample.comparison)
        assert store.row_count() == 3
        assert store.tally("lookups", "persons-v2") == memory


def test_a_clear_pnr_as_subject_is_refused_and_nothing_is_written(location: Path | str) -> None:
    """The subject must be a pseudonym; a PNR there is a ValueError and no row."""
    with MismatchStore.open(location) as store:
        bad = Sample("lookups", "mainframe", "persons-v2", _sample(ADDRESS).comparison, PNR)
        with pytest.raises(ValueError, match="pseudonym"):
            store.record_many([_sample(ADDRESS), bad])
        assert store.row_count() == 0
        assert store.tally("lookups", "persons-v2") == Tally()


def test_values_are_scrubbed_of_pnrs_before_they_are_stored(location: Path | str) -> None:
    """Even a diff built by hand with a PNR in it reaches the store redacted."""
    leaky = FieldDiff(FieldKey("lookup", "011", "KUNDEREF1"), f"ref {PNR}", "010160-1234")
    comparison = Comparison((leaky.key,), (leaky,), "lookup")
    with MismatchStore.open(location) as store:
        store.record(Sample("lookups", "mainframe", "persons-v2", comparison, PSEUDONYM))
    assert _rows(location) == [("KUNDEREF1", "ref <pnr>", "<pnr>", PSEUDONYM)]
    assert PNR not in _stored_text(location)


def test_rows_are_bounded_by_count_keeping_the_newest(location: Path | str) -> None:
    """Beyond max_rows the oldest rows go, on every write."""
    with MismatchStore.open(location, max_rows=5) as store:
        for i in range(8):
            store.record(_sample(ADDRESS, n=i))
        assert store.row_count() == 5
        newest = store.examples("lookups", "persons-v2", ADDRESS, limit=10)
    assert [e.primary for e in newest] == [f"old {i}" for i in range(7, 2, -1)]


def test_rows_are_bounded_by_age_on_open_and_periodically_on_write(location: Path | str) -> None:
    """Rows older than max_age_s go when the store opens and once per prune interval."""
    path, clock = location, Clock()
    with MismatchStore.open(path, max_age_s=100, clock=clock) as store:
        store.record(_sample(ADDRESS, at=clock.now - 90))
        store.record(_sample(ADDRESS, at=clock.now))
        clock.now += AGE_PRUNE_INTERVAL / 2  # the first row is past its age; no prune is due
        store.record(_sample(DAY, at=clock.now))
        assert store.row_count() == 3
        clock.now += AGE_PRUNE_INTERVAL / 2
        store.record(_sample())
        assert store.row_count() == 2
    clock.now += 1000
    with MismatchStore.open(path, max_age_s=100, clock=clock) as store:
        assert store.row_count() == 0
        assert store.tally("lookups", "persons-v2").fields[ADDRESS].samples == 4


def test_concurrent_writers_lose_no_count(location: Path | str) -> None:
    """Four threads writing at once: every sample is counted exactly once."""
    with MismatchStore.open(location) as store:

        def write() -> None:
            for i in range(50):
                store.record(_sample(ADDRESS, n=i))

        threads = [threading.Thread(target=write) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.tally("lookups", "persons-v2").fields[ADDRESS] == FieldStats(200, 200)
        assert store.row_count() == 200


def test_thresholds_and_reset(location: Path | str) -> None:
    """Stored thresholds are read back per route; reset forgets a route's rows and counters."""
    with MismatchStore.open(location) as store:
        assert store.thresholds("lookups") == Thresholds()
        store.set_thresholds("lookups", Thresholds(50, 0.02, 5))
        assert store.thresholds("lookups") == Thresholds(50, 0.02, 5)
        store.record(_sample(ADDRESS))
        store.reset("other-route")
        assert store.row_count() == 1
        store.reset("lookups")
        assert store.row_count() == 0 and store.targets() == []
        assert store.thresholds("lookups") == Thresholds()


def test_pseudonyms_are_keyed_stable_and_short() -> None:
    """p: + 16 hex; the same PNR and key give the same pseudonym, another key another one."""
    first, second = Pseudonymiser(b"a" * 32), Pseudonymiser(b"b" * 32)
    assert first.pnr(PNR) == first.pnr(f" {PNR} ")
    assert first.pnr(PNR) != second.pnr(PNR) and first.pnr(PNR) != first.pnr("0202702345")
    assert is_pseudonym(first.pnr(PNR)) and len(first.pnr(PNR)) == 18
    assert not is_pseudonym(PNR) and PNR not in repr(first)
    with pytest.raises(ValueError, match="16 bytes"):
        Pseudonymiser(b"short")


def test_load_key_generates_a_private_key_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No file, no variable: a random key is written with mode 0600 and read back next time."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = tmp_path / "var" / "shadow.key"
    key = load_key(path)
    assert len(key) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert load_key(path) == key


def test_load_key_prefers_the_file_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An existing file wins over the variable; without a file the variable is used as is."""
    monkeypatch.setenv(KEY_ENV, "an environment key of some length")
    assert load_key(None) == b"an environment key of some length"
    assert load_key(tmp_path / "absent.key") == b"an environment key of some length"
    assert not (tmp_path / "absent.key").exists()
    path = tmp_path / "shadow.key"
    path.write_text("00" * 32)
    path.chmod(0o600)
    assert load_key(path) == bytes(32)


def test_load_key_refuses_readable_short_or_garbled_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key others can read, a short key or non-hex text is a ConfigError naming the file."""
    path = tmp_path / "shadow.key"
    path.write_text("ab" * 32)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="lets others read it"):
        load_key(path)
    path.chmod(0o600)
    path.write_text("ab" * 4)
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        load_key(path)
    path.write_text("not hex")
    with pytest.raises(ConfigError, match="expected hex"):
        load_key(path)
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ConfigError, match=KEY_ENV):
        load_key(None)


def test_no_key_anywhere_without_a_path_is_a_random_process_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a path or variable each call makes a fresh random key (nothing is written)."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert load_key(None) != load_key(None)
    assert os.environ.get(KEY_ENV) is None


# -- values sealed at rest --------------------------------------------------------------------

NAME = FieldKey("lookup", "001", "NAVN")
#: What a differing name and address look like in a store: none of it may be there in clear.
PERSONAL = ("Ærøsen,Anne Sofie", "Ærøsen,Anne-Sofie", "Nørregade 12,3 th", "Nørregade 12, 3. th")
SEALER = Sealer(b"k" * 32)


def _personal_sample() -> Sample:
    diffs = (FieldDiff(NAME, *PERSONAL[:2]), FieldDiff(ADDRESS, *PERSONAL[2:]))
    comparison = Comparison((NAME, ADDRESS), diffs, "lookup")
    return Sample("lookups", "mainframe", "persons-v2", comparison, PSEUDONYM)


def _stored_everywhere(location: Path | str) -> str:
    """The store's text, SQLite's write-ahead log included (rows may still sit there)."""
    text = _stored_text(location)
    if isinstance(location, Path) and (wal := location.with_name(location.name + "-wal")).exists():
        text += wal.read_bytes().decode("latin-1")
    return text


def test_names_and_addresses_are_sealed_at_rest(location: Path | str) -> None:
    """With the gateway's key no differing value is in the database in clear (nor in SQLite's
    log), each row says so, and the pseudonym is stored as it was (searchable)."""
    with MismatchStore.open(location, sealer=SEALER) as store:
        store.record(_personal_sample())
        assert [f for _, _, f in store.raw_values()] == [SEALED, SEALED]
    stored = _stored_everywhere(location)
    for value in PERSONAL:
        for spelling in (value, value.encode("utf-8").decode("latin-1")):
            assert spelling not in stored
    assert [row[3] for row in _rows(location)] == [PSEUDONYM, PSEUDONYM]


def test_sealed_values_open_with_the_key_and_only_with_it(location: Path | str) -> None:
    """The key shows the values; no key or another key shows that they are encrypted."""
    with MismatchStore.open(location, sealer=SEALER) as store:
        store.record(_personal_sample())
        [mine] = store.examples("lookups", "persons-v2", NAME)
    assert (mine.primary, mine.candidate, mine.readable) == (*PERSONAL[:2], True)
    with MismatchStore.open(location, prune=False, create=False) as keyless:
        [none] = keyless.examples("lookups", "persons-v2", NAME)
    assert (none.primary, none.candidate, none.readable) == (NO_KEY, NO_KEY, False)
    assert none.subject == PSEUDONYM
    other = Sealer(b"o" * 32)
    with MismatchStore.open(location, prune=False, create=False, sealer=other) as wrong:
        [theirs] = wrong.examples("lookups", "persons-v2", ADDRESS)
    assert (theirs.primary, theirs.readable) == (OTHER_KEY, False)


def test_a_sealed_value_moved_to_another_column_does_not_open(location: Path | str) -> None:
    """The row and side are bound to the value: swapped columns open to nothing."""
    with MismatchStore.open(location, sealer=SEALER) as store:
        store.record(_personal_sample())
    _query(
        location,
        "UPDATE mismatch SET primary_value = candidate_value, candidate_value = primary_value",
    )
    with MismatchStore.open(location, sealer=SEALER) as store:
        [swapped] = store.examples("lookups", "persons-v2", NAME)
    assert (swapped.primary, swapped.candidate) == (OTHER_KEY, OTHER_KEY)


def test_a_store_of_clear_rows_from_before_is_upgraded_and_still_reads(
    location: Path | str,
) -> None:
    """A version 1 store (values in clear, no value_format) opens as version 2: its rows are
    marked clear and read as they are, next to new sealed rows."""
    with MismatchStore.open(location) as store:
        store.record(_sample(ADDRESS, n=1))
    _query(location, "ALTER TABLE mismatch DROP COLUMN value_format")
    _query(location, "UPDATE schema_version SET version = 1")
    with MismatchStore.open(location, sealer=SEALER) as store:
        store.record(_sample(ADDRESS, n=2))
        newest, oldest = store.examples("lookups", "persons-v2", ADDRESS)
        formats = [f for _, _, f in store.raw_values()]
    assert _query(location, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert formats == [CLEAR, SEALED]
    assert (oldest.primary, oldest.candidate, oldest.readable) == ("old 1", "new 1", True)
    assert (newest.primary, newest.candidate, newest.readable) == ("old 2", "new 2", True)


async def test_the_writer_prunes_old_evidence_while_no_comparison_comes(
    location: Path | str,
) -> None:
    """Retention is applied while the gateway runs, not only at start or on a write: rows
    that pass max_age_s go at the writer's next idle prune."""
    clock = Clock()
    with MismatchStore.open(location, max_age_s=100, clock=clock) as store:
        store.record(_sample(ADDRESS, at=clock.now))
    open_store = functools.partial(
        MismatchStore.open, location, max_age_s=100, clock=clock, sealer=SEALER
    )
    writer = SampleWriter(open_store, EventBus(), prune_every_s=0.01)
    await writer.start()
    try:
        with MismatchStore.open(location, prune=False) as reader:
            assert reader.row_count() == 1  # the open's prune left it: not old yet
            clock.now += 101
            for _ in range(1000):  # the deadline is for a broken writer, never reached otherwise
                if reader.row_count() == 0:
                    break
                await asyncio.sleep(0.01)
            assert reader.row_count() == 0
    finally:
        await writer.aclose(1.0)

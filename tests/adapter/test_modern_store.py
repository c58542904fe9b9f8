"""The modern store and the migration into it, on real SQLite files."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cpr_devtools.migration import migrate_register
from cpr_mainframe.register import quirks
from cpr_mainframe.register.generate import persons
from cpr_mainframe.register.store import Register
from cpr_services.store import MESSAGE_FORMAT, MIGRATIONS, ModernStore, upgrade
from emulator_harness import register_of
from gateway.cprv1 import convert
from gateway.domain.person import Person
from gateway.errors import ConfigError

COUNT = 300


@pytest.fixture
def register_path() -> Path:
    """A generated 300-person register, shared read-only by the tests of this process."""
    return register_of(COUNT)


@pytest.fixture
def register(register_path: Path) -> Iterator[Register]:
    """The register, opened read-only."""
    opened = Register.open(register_path)
    yield opened
    opened.close()


def _dump(path: Path) -> list[str]:
    """Every schema statement and row of the file, as SQL text."""
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def test_migration_copies_every_person_exactly(
    tmp_path: Path, register_path: Path, register: Register
) -> None:
    """Every register person is in the store afterwards, equal to the register's."""
    report = migrate_register(
        register_path, tmp_path / "modern.sqlite", progress=False, batch_size=64
    )
    assert (report.read, report.inserted, report.updated, report.unchanged) == (COUNT, COUNT, 0, 0)
    assert (report.stored, report.schema_version) == (COUNT, len(MIGRATIONS))
    store = ModernStore.open(tmp_path / "modern.sqlite")
    try:
        for person in register.iter_persons():
            assert store.get(person.pnr) == person
        assert store.meta()["source.seed"] == register.meta["seed"]
    finally:
        store.close()


def test_migrating_twice_changes_nothing(tmp_path: Path, register_path: Path) -> None:
    """A second run reads everyone, finds them unchanged, and leaves the file's content as is."""
    target = tmp_path / "modern.sqlite"
    migrate_register(register_path, target, progress=False)
    before = _dump(target)
    again = migrate_register(register_path, target, progress=True)
    assert (again.read, again.inserted, again.updated, again.unchanged) == (COUNT, 0, 0, COUNT)
    assert again.stored == COUNT
    assert _dump(target) == before


def test_a_changed_person_is_replaced(tmp_path: Path, register_path: Path) -> None:
    """When a register row changes between runs, the re-run updates exactly that person."""
    source = tmp_path / "register.sqlite"
    shutil.copy(register_path, source)
    target = tmp_path / "modern.sqlite"
    migrate_register(source, target, progress=False)
    db = sqlite3.connect(source)
    with db:
        pnr, data = db.execute("SELECT pnr, data FROM person LIMIT 1").fetchone()
        changed = replace(Person.from_json(data), occupation="Lokomotivfører")
        db.execute("UPDATE person SET data = ? WHERE pnr = ?", (changed.to_json(), pnr))
    db.close()
    report = migrate_register(source, target, progress=False)
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, COUNT - 1)
    store = ModernStore.open(target)
    try:
        assert store.get(pnr) == changed
    finally:
        store.close()


def test_each_person_is_also_stored_as_the_message_the_services_answer_with(
    tmp_path: Path, register_path: Path, register: Register
) -> None:
    """The stored message is the person's cpr.v1.Person, made by this program's conversion;
    an unknown PNR has none."""
    migrate_register(register_path, tmp_path / "modern.sqlite", progress=False)
    store = ModernStore.open(tmp_path / "modern.sqlite")
    try:
        for person in register.iter_persons():
            stored = store.person_message(person.pnr)
            assert stored == convert.to_proto(person).SerializeToString()
        assert store.person_message("0101019999") is None
    finally:
        store.close()


def test_a_person_of_each_quirk_kind_is_stored_and_read_back_exactly(tmp_path: Path) -> None:
    """Blanks, impossible parts and many repeated records survive the store, both forms."""
    chosen: dict[str, Person] = {}
    for person in quirks.apply(persons(2000, seed=1), seed=1, share=0.5):
        for kind in quirks.kinds_of(person):
            chosen.setdefault(kind, person)
    assert set(chosen) == set(quirks.QUIRKS)
    store = ModernStore.open(tmp_path / "modern.sqlite")
    try:
        store.upsert(list({p.pnr: p for p in chosen.values()}.values()))
        for person in chosen.values():
            assert store.get(person.pnr) == person
            assert store.person_message(person.pnr) == convert.to_proto(person).SerializeToString()
    finally:
        store.close()


@pytest.mark.parametrize("written_as", [None, "0123456789abcdef"], ids=["before-v4", "other"])
def test_a_message_of_another_format_is_not_used_and_the_next_migration_rewrites_it(
    tmp_path: Path, register_path: Path, register: Register, written_as: str | None
) -> None:
    """Rows written before schema version 4, or by a program whose person.proto or conversion
    differed, are answered from ``data`` (never from their message); migrating again
    rewrites exactly those rows."""
    target = tmp_path / "modern.sqlite"
    migrate_register(register_path, target, progress=False)
    pnr = register.pnrs(limit=1)[0]
    db = sqlite3.connect(target)
    with db:  # what an older program left: a message that is not this person's
        db.execute(
            "UPDATE person SET message = ?, message_format = ? WHERE pnr = ?",
            (b"" if written_as is None else b"\x0a\x02no", written_as, pnr),
        )
    db.close()
    person = register.get(pnr)
    assert person is not None
    expected = convert.to_proto(person).SerializeToString()
    store = ModernStore.open(target)
    try:
        assert store.person_message(pnr) == expected
        assert store.stale_messages() == 1  # what `cpr-gateway up` migrates again for
    finally:
        store.close()
    report = migrate_register(register_path, target, progress=False)
    assert (report.updated, report.unchanged) == (1, COUNT - 1)
    store = ModernStore.open(target)
    try:
        assert store.stale_messages() == 0
    finally:
        store.close()
    db = sqlite3.connect(target)
    row = db.execute("SELECT message, message_format FROM person WHERE pnr = ?", (pnr,)).fetchone()
    db.close()
    assert row == (expected, MESSAGE_FORMAT)


def test_iter_persons_reads_everyone_once_in_order(register: Register) -> None:
    """Paging by last PNR yields every person exactly once, ascending, across page boundaries."""
    pnrs = [person.pnr for person in register.iter_persons(page=7)]
    assert pnrs == register.pnrs()


def test_a_new_store_is_at_the_latest_version(tmp_path: Path) -> None:
    """Opening a new file applies every migration, one schema_version row each."""
    store = ModernStore.open(tmp_path / "var" / "modern.sqlite")
    try:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.count() == 0
    finally:
        store.close()
    db = sqlite3.connect(tmp_path / "var" / "modern.sqlite")
    rows = db.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    db.close()
    assert [row[0] for row in rows] == list(range(1, len(MIGRATIONS) + 1))


def test_an_older_store_is_brought_up_to_date(tmp_path: Path, register_path: Path) -> None:
    """A file at version 1 with persons in it gets the later migrations and keeps its persons."""
    target = tmp_path / "modern.sqlite"
    db = sqlite3.connect(target)
    assert upgrade(db, MIGRATIONS[:1]) == 1
    db.execute("INSERT INTO person VALUES ('0101011234', '01', 'M', '1901-01-01', 1, 1, 1, '{}')")
    db.commit()
    db.close()
    store = ModernStore.open(target)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.contains("0101011234")
        assert store.subscribe(1, "0101011234", dt.datetime(2026, 1, 1))
    finally:
        store.close()


def test_a_store_newer_than_the_program_is_refused(tmp_path: Path) -> None:
    """A schema version this program does not know is a ConfigError naming both versions."""
    target = tmp_path / "modern.sqlite"
    ModernStore.open(target).close()
    db = sqlite3.connect(target)
    with db:
        db.execute("INSERT INTO schema_version VALUES (99, '2030-01-01T00:00:00+00:00')")
    db.close()
    with pytest.raises(
        ConfigError, match=f"version 99 is newer than this program's {len(MIGRATIONS)}"
    ):
        ModernStore.open(target)


def test_another_database_is_refused_untouched(tmp_path: Path, register_path: Path) -> None:
    """Pointing the store at a register file fails, and the register is not modified."""
    copy = tmp_path / "register.sqlite"
    shutil.copy(register_path, copy)
    before = copy.read_bytes()
    with pytest.raises(ConfigError, match="not a modern store"):
        ModernStore.open(copy)
    assert copy.read_bytes() == before


def test_subscriptions_are_idempotent_and_survive_reopening(tmp_path: Path) -> None:
    """Subscribe twice → True then False; the subscription is there after close and reopen."""
    target = tmp_path / "modern.sqlite"
    store = ModernStore.open(target)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert (store.subscribe(7, "0101011234", now), store.subscribe(7, "0101011234", now)) == (
        True,
        False,
    )
    store.close()
    store = ModernStore.open(target)
    try:
        assert store.subscriptions.of(7) == ["0101011234"]
        assert (store.unsubscribe(7, "0101011234"), store.unsubscribe(7, "0101011234")) == (
            True,
            False,
        )
    finally:
        store.close()

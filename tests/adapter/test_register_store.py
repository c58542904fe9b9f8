"""The register store on a real SQLite file: lookups, listings, read-only, bad files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cpr_mainframe.register import Register, quirks
from cpr_mainframe.register.generate import GENERATOR_VERSION, generate, persons
from gateway.domain.person import Status
from gateway.errors import BackendUnavailable, ConfigError

COUNT = 300


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A freshly generated 300-person register file."""
    target = tmp_path / "register.db"
    generate(target, count=COUNT, seed=5)
    return target


@pytest.fixture
def register(path: Path) -> Iterator[Register]:
    """The register at ``path``, opened read-only."""
    register = Register.open(path)
    yield register
    register.close()


def test_get_returns_exactly_the_generated_person(register: Register) -> None:
    """A stored person comes back equal to the one the generator made."""
    for person in quirks.apply(persons(COUNT, seed=5), seed=5):
        assert register.get(person.pnr) == person


def test_unknown_pnr_is_none(register: Register) -> None:
    """A well-formed PNR that is not stored is None (the emulator answers 05)."""
    assert register.get("0000000000") is None


def test_pnrs_are_sorted_limited_and_filtered_by_status(register: Register) -> None:
    """pnrs() lists in ascending order, honours limit, and picks by status."""
    everyone = register.pnrs()
    assert everyone == sorted(everyone) and len(everyone) == COUNT == register.count()
    assert register.pnrs(limit=10) == everyone[:10]
    dead = register.pnrs(status=Status.DEAD.value)
    assert dead and all(p is not None and p.status is Status.DEAD for p in map(register.get, dead))
    assert register.pnrs(limit=1, status=Status.DEAD.value) == dead[:1]


def test_meta_records_how_the_register_was_made(register: Register) -> None:
    """meta holds seed, count, generator version and the register date."""
    assert register.meta == {
        "seed": "5",
        "count": str(COUNT),
        "generator_version": GENERATOR_VERSION,
        "register_date": "2026-01-01",
    }


def test_register_is_opened_read_only(register: Register) -> None:
    """The store never writes: SQLite refuses writes on its connection."""
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        register._db.execute("DELETE FROM person")


def test_generate_replaces_an_existing_file_and_leaves_no_temp_files(path: Path) -> None:
    """A second generate over the same path swaps the file in whole."""
    generate(path, count=10, seed=6)
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    register = Register.open(path)
    assert register.count() == 10
    register.close()


def test_lookups_from_many_threads_agree(register: Register) -> None:
    """One Register serves concurrent threads (the emulator may use a thread pool)."""
    pnrs = register.pnrs() * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(register.get, pnrs))
    assert [p.pnr for p in found if p is not None] == pnrs


def test_missing_or_foreign_files_are_config_errors(tmp_path: Path) -> None:
    """Opening no file, or a file that is not a register, fails at open with the path."""
    with pytest.raises(ConfigError, match="no file"):
        Register.open(tmp_path / "absent.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="not a register"):
        Register.open(junk)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(ConfigError, match="not a register"):
        Register.open(empty)


def test_closed_register_reads_fail_as_backend_errors(register: Register) -> None:
    """After close, a read is a BackendUnavailable, never a raw sqlite3 error."""
    register.close()
    with pytest.raises(BackendUnavailable):
        register.get("0101601234")

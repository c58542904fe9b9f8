"""Files with personal data or secrets are created 0600 in directories created 0700
(gateway.storage.files), by the real code paths that make them; SQLite's side files too."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.canary.store import CanaryStore
from gateway.shadow.store import MismatchStore
from gateway.storage.database import SqliteDatabase
from gateway.storage.files import private_directory, private_file, write_private


@pytest.fixture(autouse=True)
def _usual_umask() -> Iterator[None]:
    """The modes must not depend on a strict umask: run under the common 022."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def assert_private_tree(root: Path, top: Path) -> None:
    """Every file under ``top`` is 0600 and every directory from ``top`` down 0700."""
    for directory in (top, *(p for p in top.rglob("*") if p.is_dir())):
        assert mode(directory) == 0o700, directory
    files = [p for p in top.rglob("*") if p.is_file()]
    assert files, "nothing was created"
    for file in files:
        assert mode(file) == 0o600, file.relative_to(root)


def test_private_directory_makes_every_missing_level_0700(tmp_path: Path) -> None:
    made = private_directory(tmp_path / "a" / "b" / "c")
    assert made.is_dir()
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3


def test_an_existing_directory_and_file_keep_their_modes(tmp_path: Path) -> None:
    """The operator's choice stands; only what is made here gets the private modes."""
    (tmp_path / "shared").mkdir(mode=0o755)
    (tmp_path / "shared" / "old.sqlite").write_bytes(b"")
    (tmp_path / "shared" / "old.sqlite").chmod(0o640)
    private_file(tmp_path / "shared" / "old.sqlite")
    private_file(tmp_path / "shared" / "new" / "store.sqlite")
    assert mode(tmp_path / "shared") == 0o755
    assert mode(tmp_path / "shared" / "old.sqlite") == 0o640
    assert mode(tmp_path / "shared" / "new") == 0o700
    assert mode(tmp_path / "shared" / "new" / "store.sqlite") == 0o600


def test_private_file_leaves_what_is_in_it(tmp_path: Path) -> None:
    path = tmp_path / "kept"
    write_private(path, b"data")
    private_file(path)
    assert path.read_bytes() == b"data"


def test_write_private_tightens_a_file_before_the_secret_goes_in(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "server.key"
    write_private(path, b"first")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    path.chmod(0o644)
    write_private(path, b"second")
    assert mode(path) == 0o600
    assert path.read_bytes() == b"second"


@pytest.mark.parametrize("journal", ["WAL", "DELETE"])
def test_sqlite_side_files_take_the_main_files_mode(tmp_path: Path, journal: str) -> None:
    """SQLite makes -wal, -shm and -journal with the main file's mode (os_unix.c), so a
    main file created 0600 is enough; checked while a transaction holds them open."""
    db = SqliteDatabase.open(tmp_path / "var" / "test.sqlite")
    try:
        db.execute(f"PRAGMA journal_mode = {journal}")
        db.execute("CREATE TABLE t (x)")
        with db.transaction():
            db.execute("INSERT INTO t VALUES (1)")
            names = sorted(p.name for p in (tmp_path / "var").iterdir())
            assert len(names) >= 2, names  # the side file(s) exist now
            assert_private_tree(tmp_path, tmp_path / "var")
    finally:
        db.close()


def test_shadow_store_file_and_directory_are_private(tmp_path: Path) -> None:
    store = MismatchStore.open(tmp_path / "var" / "shadow" / "shadow.sqlite")
    try:
        assert (tmp_path / "var" / "shadow" / "shadow.sqlite-wal").exists()
        assert_private_tree(tmp_path, tmp_path / "var")
    finally:
        store.close()


def test_canary_store_file_and_directory_are_private(tmp_path: Path) -> None:
    store = CanaryStore.open(tmp_path / "var" / "canary.sqlite")
    try:
        assert (tmp_path / "var" / "canary.sqlite-wal").exists()
        assert_private_tree(tmp_path, tmp_path / "var")
    finally:
        store.close()


def test_a_second_store_on_a_live_file_leaves_the_writers_wal_in_place(tmp_path: Path) -> None:
    """Opening a store whose file this process already has open (the canary's evidence and the
    admin API's report beside the writer) keeps SQLite's locks: another process that reads and
    closes does not take itself for the last one and delete the live WAL."""
    path = tmp_path / "shadow.sqlite"
    reader = "import sqlite3, sys; db = sqlite3.connect(sys.argv[1])"
    reader += "; db.execute('SELECT count(*) FROM mismatch').fetchall(); db.close()"
    with MismatchStore.open(path) as writer:
        writer.reset()  # a write: the WAL holds it
        with MismatchStore.open(path, prune=False, create=False) as second:
            second.row_count()
            subprocess.run([sys.executable, "-c", reader, str(path)], check=True)
            assert path.with_name("shadow.sqlite-wal").exists()

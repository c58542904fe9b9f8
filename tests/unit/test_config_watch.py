"""The config file watcher, one poll at a time: settle, then reload only on new content."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.config.watch import FileWatcher


async def _never() -> None:
    raise AssertionError("poll() is driven by hand here; run() is not")


def _watcher(tmp_path: Path, text: str = "version: 1\n") -> tuple[FileWatcher, Path]:
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    return FileWatcher(path, _never), path


def _polls(watcher: FileWatcher, count: int) -> list[bool]:
    return [watcher.poll() for _ in range(count)]


def test_an_unchanged_file_never_fires(tmp_path: Path) -> None:
    """The file as it was at start is the loaded one."""
    watcher, _path = _watcher(tmp_path)
    assert _polls(watcher, 3) == [False, False, False]


def test_new_content_fires_once_after_it_has_settled(tmp_path: Path) -> None:
    """The first poll sees the change and waits; the next fires; later ones stay quiet."""
    watcher, path = _watcher(tmp_path)
    path.write_text("version: 2\n", encoding="utf-8")
    assert _polls(watcher, 4) == [False, True, False, False]


def test_a_file_still_being_written_is_not_read_half_way(tmp_path: Path) -> None:
    """Each poll that sees another change waits one more poll."""
    watcher, path = _watcher(tmp_path)
    path.write_text("version: 1\nlisten:", encoding="utf-8")
    assert watcher.poll() is False
    path.write_text("version: 1\nlisten: {}\n", encoding="utf-8")
    assert _polls(watcher, 3) == [False, True, False]


def test_same_bytes_with_a_new_mtime_is_not_a_change(tmp_path: Path) -> None:
    """A touch, or a save without edits, does not reload."""
    watcher, path = _watcher(tmp_path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert _polls(watcher, 3) == [False, False, False]


def test_a_same_size_rewrite_with_the_old_mtime_is_still_seen(tmp_path: Path) -> None:
    """The content hash catches what size and a coarse mtime miss."""
    watcher, path = _watcher(tmp_path, "backend: old\n")
    stat = path.stat()
    path.write_text("backend: new\n", encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _polls(watcher, 2) == [False, True]


def test_a_vanished_file_fires_once_and_again_when_back(tmp_path: Path) -> None:
    """A missing file is reported (to be rejected) once, not every second; restored, it loads."""
    watcher, path = _watcher(tmp_path)
    path.unlink()
    assert _polls(watcher, 3) == [False, True, False]
    watcher.baseline()  # what the gateway's reload does, before it rejects the missing file
    path.write_text("version: 1\n", encoding="utf-8")
    assert _polls(watcher, 2) == [False, True]


def test_baseline_takes_the_current_file_as_loaded(tmp_path: Path) -> None:
    """After a reload by another trigger (SIGHUP), the watcher does not reload the same file."""
    watcher, path = _watcher(tmp_path)
    path.write_text("version: 2\n", encoding="utf-8")
    watcher.baseline()
    assert _polls(watcher, 3) == [False, False, False]

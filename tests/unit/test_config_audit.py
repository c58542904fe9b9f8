"""routing.yaml's audit section: its defaults, where its files resolve, and its problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import check_config, load_routing
from gateway.config.audit import Audit, FsyncPolicy
from gateway.config.diff import restart_needed

MINIMAL = """\
version: 1
listen: {host: 127.0.0.1, port: 0, tls: null}
backends: {mainframe: {kind: legacy, address: "127.0.0.1:5001", tls: null}}
routes: [{name: all, match: {}, backend: mainframe, deadline: 5s}]
"""


def _write(tmp_path: Path, audit: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(MINIMAL + audit)
    return path


def test_no_audit_section_means_no_audit_log(tmp_path: Path) -> None:
    """Absent: the gateway keeps no audit log."""
    assert load_routing(_write(tmp_path, "")).audit is None


def test_defaults_and_paths_beside_routing_yaml(tmp_path: Path) -> None:
    """Only the directory is required; the key sits beside it, fsync every second, 64 MiB files."""
    audit = load_routing(_write(tmp_path, "audit: {directory: var/audit}\n")).audit
    assert audit == Audit(
        tmp_path / "var/audit", tmp_path / "var/audit.key", FsyncPolicy.INTERVAL, 1.0, 64 * 2**20
    )


def test_every_key_as_agreed(tmp_path: Path) -> None:
    """The spellings of issue 18: fsync policy, interval, key file and rotation size."""
    text = (
        "audit: {directory: /srv/audit, key_file: keys/a.key, fsync: every,"
        " fsync_interval: 250ms, rotate_size: 512KiB}\n"
    )
    audit = load_routing(_write(tmp_path, text)).audit
    assert audit == Audit(
        Path("/srv/audit"), tmp_path / "keys/a.key", FsyncPolicy.EVERY, 0.25, 512 * 1024
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("audit: {}", "audit.directory: required"),
        ("audit: {directory: a, fsync: sometimes}", "audit.fsync: unknown fsync policy"),
        ("audit: {directory: a, rotate_size: 64MB}", "audit.rotate_size: bad size '64MB'"),
        ("audit: {directory: a, rotate_size: 10B}", "audit.rotate_size: '10B' is below"),
        ("audit: {directory: a, fsync_interval: 0s}", "audit.fsync_interval:"),
        ("audit: {directory: a, rotate: 1MiB}", "audit.rotate: unknown key"),
    ],
)
def test_problems_name_the_key(tmp_path: Path, text: str, problem: str) -> None:
    """A bad audit section is refused at load with the key's path and the bad value."""
    problems = check_config(_write(tmp_path, text + "\n"))
    assert any(p.startswith(problem) for p in problems), problems


def test_a_changed_audit_section_needs_a_restart(tmp_path: Path) -> None:
    """The writer keeps its files open: a reload says the change waits for a restart."""
    before = load_routing(_write(tmp_path, ""))
    after = load_routing(_write(tmp_path, "audit: {directory: var/audit}\n"))
    assert restart_needed(before, after) == ["audit"]

"""How a redis-server for gateway sessions is run here: loopback, nothing kept on disk.

Sessions are re-created by a logon, so there is nothing to keep across a restart: no
snapshots, no append-only file. The fleet (`make fleet`), the benchmark and the tests
all start their Redis with this one command line.
"""

from __future__ import annotations

from pathlib import Path

LOOPBACK = "127.0.0.1"


def redis_argv(program: str, port: int, workdir: Path) -> list[str]:
    """``program`` (a redis-server) on loopback ``port``, working in ``workdir``."""
    return [
        program,
        *("--bind", LOOPBACK, "--port", str(port)),
        *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
        *("--loglevel", "warning"),
    ]

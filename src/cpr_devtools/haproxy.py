"""HAProxy as the development tools run it: where the program is, how it is started, and the
head of a TCP-mode config.

The benchmark (:mod:`cpr_bench.configs`) and the fleet (:mod:`cpr_devtools.fleet_configs`)
each write their own frontend and backend after this head.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path


def haproxy_binary() -> str | None:
    """The haproxy executable, or None when it is not installed."""
    return shutil.which("haproxy")


def haproxy_argv(binary: str, config: Path) -> tuple[str, ...]:
    """HAProxy in the foreground (``-db``: no daemon, messages on stderr), so that whoever
    started it stops it with SIGTERM like any other process."""
    return (binary, "-db", "-f", str(config))


def tcp_head(*, maxconn: int, timeout_s: int, settings: Sequence[str] = ()) -> list[str]:
    """The ``global`` and ``defaults`` sections of a TCP-mode proxy, one line each.

    ``settings`` are further ``global`` lines (``nbthread 2``, a stats socket). A client
    and a server may each be silent for ``timeout_s`` (their read timeout); a connection
    may wait as long in a server's queue.
    """
    return [
        "global",
        *(f"    {line}" for line in settings),
        f"    maxconn {maxconn}",
        "defaults",
        "    mode tcp",
        "    timeout connect 1s",
        f"    timeout queue {timeout_s}s",
        f"    timeout client {timeout_s}s",
        f"    timeout server {timeout_s}s",
    ]

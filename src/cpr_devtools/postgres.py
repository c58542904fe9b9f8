"""PostgreSQL for the fleet on one machine: Debian's server programs, one cluster under var/,
and the databases the fleet keeps in it.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to, and runs as,
the ``postgres`` user that Debian's package creates (tests/adapter/pg_server.py does the same).
``setpriv`` switches user and then *is* the server (runuser would stay as its parent and
turn a stop signal into a kill two seconds later), so a supervisor's SIGTERM reaches it.
Logons are trusted on loopback: this is a development cluster, reachable only from this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from gateway.storage.files import private_directory

#: Where Debian's postgresql-NN packages put the server programs, one directory per version.
DEBIAN_VERSIONS = Path("/usr/lib/postgresql")
#: The superuser initdb creates; the fleet's services connect as it.
SUPERUSER = "postgres"


class ClusterError(Exception):
    """The cluster cannot be made or reached; the message says what to do."""


def server_bin(versions: Path = DEBIAN_VERSIONS) -> Path | None:
    """The bin directory of the newest installed PostgreSQL, or None when there is none."""
    found = [
        path.parent for path in versions.glob("*/bin/postgres") if path.parent.parent.name.isdigit()
    ]
    return max(found, key=lambda path: int(path.parent.name), default=None)


def cluster_user() -> str | None:
    """Who runs the cluster: ``postgres`` when we are root, else whoever we are (None)."""
    return SUPERUSER if os.geteuid() == 0 else None


def as_user(user: str | None, argv: Sequence[str]) -> tuple[str, ...]:
    """``argv`` run as ``user`` (its own group, no other groups), or as is for None."""
    if user is None:
        return tuple(argv)
    return ("setpriv", "--reuid", user, "--regid", user, "--clear-groups", "--", *argv)


@dataclass(frozen=True, slots=True)
class Cluster:
    """A cluster under ``root``: its data in ``root/data``, its unix socket in ``root``."""

    root: Path
    host: str
    port: int

    @property
    def data(self) -> Path:
        """The data directory (initdb's ``-D``)."""
        return self.root / "data"

    def dsn(self, database: str) -> str:
        """A ``postgresql://`` URL for ``database`` as the superuser, over TCP."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def server_argv(self, bin_dir: Path, user: str | None) -> tuple[str, ...]:
        """The server in the foreground as ``user``, listening on ``host:port`` only (and
        its socket)."""
        server = (
            str(bin_dir / "postgres"),
            *("-D", str(self.data), "-p", str(self.port), "-k", str(self.root)),
            *("-c", f"listen_addresses={self.host}"),
        )
        return as_user(user, server)


def let_through(cluster: Cluster, user: str | None, top: Path) -> None:
    """Let ``user``, who runs the cluster (we are root), pass through the directories from
    ``top`` down to the cluster's, which are made 0700: search only (o+x, as 0711), so it
    reaches its own directory but lists nothing above it, where every file is 0600."""
    if user is None:
        return
    top = top.resolve()
    for directory in cluster.root.resolve().parents:
        if directory != top and top not in directory.parents:
            break
        directory.chmod(directory.stat().st_mode & 0o777 | 0o011)


def init_cluster(cluster: Cluster, bin_dir: Path, user: str | None) -> bool:
    """initdb the cluster unless it exists; True when it was made now.

    ClusterError with initdb's own message when it fails (e.g. ``user`` cannot reach
    the directory: every directory above it must be searchable by that user).
    """
    if (cluster.data / "PG_VERSION").exists():
        return False
    private_directory(cluster.root)
    if user is not None:
        shutil.chown(cluster.root, user, user)
    initdb = (str(bin_dir / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", SUPERUSER)
    done = subprocess.run(as_user(user, initdb), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ClusterError(f"initdb failed ({done.returncode}): {done.stderr.strip()}")
    return True


def ensure_databases(cluster: Cluster, names: Iterable[str]) -> None:
    """Create each database of ``names`` that does not exist yet."""
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as admin:
        for name in names:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            if admin.execute(query, (name,)).fetchone() is None:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

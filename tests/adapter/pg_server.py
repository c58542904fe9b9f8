"""A throwaway PostgreSQL cluster (Debian's newest) for the PostgreSQL tests: one per session.

The cluster lives in a temporary directory and listens only on a unix socket
there (no TCP port to collide on). PostgreSQL refuses to run as root, so when
the tests run as root it is run as the ``postgres`` user. Missing binaries fail
the tests with a message saying what to install: they are never skipped.

Use it by importing the fixtures into a test module, then ask for ``pg_dsn`` (a
fresh, empty database for each test) or ``postgres`` (the cluster)::

    from pg_server import pg_dsn_fixture, postgres_fixture  # noqa: F401 (fixtures)
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import TupleRow

from cpr_devtools.postgres import as_user, cluster_user, server_bin

#: Only names the socket file: the cluster listens on no TCP port.
PORT = 5432
#: Durability costs time and a crashed test cluster is thrown away anyway.
_SERVER_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running cluster: its socket directory and its data directory."""

    socket_dir: Path
    data_dir: Path

    def dsn(self, database: str) -> str:
        """A ``postgresql://`` URL for ``database`` as the superuser, over the socket."""
        return f"postgresql:///{database}?host={self.socket_dir}&port={PORT}&user=postgres"

    def admin(self) -> psycopg.Connection[TupleRow]:
        """An autocommit superuser connection to the ``postgres`` database."""
        return psycopg.connect(self.dsn("postgres"), autocommit=True)


def _run(argv: list[str]) -> None:
    run_as = as_user(cluster_user(), argv)  # the postgres user when we are root
    done = subprocess.run(run_as, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr.strip()}")


def _installed() -> Path:
    """The newest installed Debian PostgreSQL's server programs; pytest.fail without one."""
    bin_dir = server_bin()
    if bin_dir is None or not all((bin_dir / p).exists() for p in ("initdb", "pg_ctl")):
        pytest.fail("PostgreSQL is not installed (no initdb, pg_ctl): apt-get install postgresql")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("tests run as root need the 'postgres' user to run PostgreSQL")
    return bin_dir


def start_cluster() -> Cluster:
    """initdb and start a cluster in a new temporary directory; pytest.fail when it cannot."""
    bin_dir = _installed()
    root = Path(tempfile.mkdtemp(prefix="cpr-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    cluster = Cluster(root, root / "data")
    data = str(cluster.data_dir)
    options = f"-k {root} -p {PORT} -c listen_addresses='' {_SERVER_OPTIONS}"
    try:
        _run([str(bin_dir / "initdb"), "-D", data, "-A", "trust", "-U", "postgres"])
        log = str(root / "server.log")
        _run([str(bin_dir / "pg_ctl"), "-D", data, "-o", options, "-l", log, "-w", "start"])
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    """Stop the server and delete its directory."""
    try:
        pg_ctl = str(_installed() / "pg_ctl")
        _run([pg_ctl, "-D", str(cluster.data_dir), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(cluster.socket_dir, ignore_errors=True)


class _Shared:
    """The one cluster of this process, and how many session fixtures hold it."""

    cluster: Cluster | None = None
    holders = 0


@contextmanager
def shared_cluster() -> Iterator[Cluster]:
    """The one cluster of this process, started by the first holder, stopped by the last.

    Each test module that imports the session fixture gets its own copy of it
    from pytest; counting holders keeps them all on one cluster.
    """
    if _Shared.cluster is None:
        _Shared.cluster = start_cluster()
    _Shared.holders += 1
    try:
        yield _Shared.cluster
    finally:
        _Shared.holders -= 1
        if _Shared.holders == 0:
            cluster, _Shared.cluster = _Shared.cluster, None
            stop_cluster(cluster)


@pytest.fixture(name="postgres", scope="session")
def postgres_fixture() -> Iterator[Cluster]:
    """The session's PostgreSQL cluster."""
    with shared_cluster() as cluster:
        yield cluster


_names = itertools.count(1)


@pytest.fixture(name="pg_dsn")
def pg_dsn_fixture(postgres: Cluster) -> Iterator[str]:
    """The DSN of a new, empty database, dropped after the test."""
    name = f"test_{os.getpid()}_{next(_names)}"
    with postgres.admin() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres.dsn(name)
    with postgres.admin() as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")

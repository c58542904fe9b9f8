"""The mismatch store of a fleet: several gateways writing into one real PostgreSQL store, the
report over all of them, a store that fails or slows down under the writer, and one that is
not there when a gateway starts (the gateway serves, and fills it once it is)."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiohttp
import psycopg
import pytest
import structlog
from gateway_harness import (
    LOGON,
    LOOKUP,
    LOOKUP_ANSWER,
    backend_server,
    canned,
    free_port,
    gateway_config,
    running,
)
from pg_server import Cluster, pg_dsn_fixture, postgres_fixture  # noqa: F401 (fixtures)
from psycopg.conninfo import conninfo_to_dict

from cpr_devtools.client import Endpoint, exchange
from cpr_services.schema import PG_MIGRATIONS
from cpr_services.store import ModernStore
from gateway import storage
from gateway.app import Gateway
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.cli import main
from gateway.codec import LogonAnswer
from gateway.comparison import FieldKey, Shadow, Thresholds, Verdict
from gateway.config.schema import BUCKETS, GatewayConfig, Match, Route, Shadowing
from gateway.errors import ConfigError
from gateway.model import FejlNr, Operation
from gateway.observe.events import (
    Event,
    EventBus,
    ShadowCompleted,
    ShadowSamplesLost,
    ShadowStoreState,
)
from gateway.observe.logs import configure_logging, log_event
from gateway.observe.metrics import Metrics
from gateway.shadow.compare import Comparison, FieldDiff
from gateway.shadow.pseudonym import Pseudonymiser
from gateway.shadow.report import build_report
from gateway.shadow.store import SCHEMA_VERSION, MismatchStore, Sample, StoreUnavailable
from gateway.shadow.store_db import PG_SCHEMA
from gateway.shadow.writer import SampleWriter

ADDRESS = FieldKey("lookup", "001", "STANDARDADR")
DAY = FieldKey("lookup", "000", "PRODDTO")
PSEUDONYM = Pseudonymiser(b"f" * 32).pnr("0101601234")  # a synthetic PNR
#: Comparisons each replica writes in the two-replica tests, in batches of BATCH.
PER_REPLICA, BATCH = 400, 8
#: Stays out of the test's way: a hang in the code under test fails, it does not block CI.
HANG_GUARD_S = 60.0
E = TypeVar("E")


def _sample(replica: str, n: int) -> Sample:
    """Every third comparison differs on the address; the values name the replica. Replicas
    meet the fields in different orders (as answers of different shapes do)."""
    diffs = (FieldDiff(ADDRESS, f"{replica} old {n}", f"{replica} new {n}"),) if n % 3 == 0 else ()
    keys = (ADDRESS, DAY) if replica.endswith("a") else (DAY, ADDRESS)
    return Sample("lookups", replica, "persons-v2", Comparison(keys, diffs, "lookup"))


def _write_as_replicas(dsn: str, replicas: tuple[str, ...], max_rows: int = 100_000) -> None:
    """Each replica opens its own store on ``dsn`` and writes PER_REPLICA comparisons in
    batches, all replicas at once; fails the test with any replica's error."""
    start = threading.Barrier(len(replicas))
    failures: list[BaseException] = []

    def replica(name: str) -> None:
        try:
            with MismatchStore.open(dsn, max_rows=max_rows) as store:
                store.set_thresholds("lookups", Thresholds(min_samples=50))
                start.wait()
                for first in range(0, PER_REPLICA, BATCH):
                    store.record_many(_sample(name, n) for n in range(first, first + BATCH))
        except BaseException as exc:
            failures.append(exc)

    _run_threads([functools.partial(replica, name) for name in replicas])
    assert failures == []


def _run_threads(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_GUARD_S)
        assert not thread.is_alive()


def test_two_replicas_write_into_one_store_and_one_report_covers_both(pg_dsn: str) -> None:
    """Two gateways' stores writing at once: every comparison of both is counted once (no lost
    increment, no deadlock), and the report judges their evidence together."""
    _write_as_replicas(pg_dsn, ("mainframe-a", "mainframe-b"))
    with MismatchStore.open(pg_dsn, prune=False, create=False) as reader:
        (op,) = build_report(reader).operations
        rows = reader.row_count()
    differing = len(range(0, PER_REPLICA, 3))
    assert (op.requests.compared, op.requests.differing) == (2 * PER_REPLICA, 2 * differing)
    assert op.verdict is Verdict.DIFFERS and op.thresholds == Thresholds(min_samples=50)
    (field,) = op.fields
    assert (field.key, field.stats.samples, field.stats.differs) == (
        ADDRESS,
        2 * PER_REPLICA,
        2 * differing,
    )
    assert rows == 2 * differing
    assert op.fields_compared == 2  # PRODDTO compared, never differing


def test_pruning_by_several_writers_keeps_the_bound_and_every_count(pg_dsn: str) -> None:
    """Replicas pruning the same store (one at a time) keep its rows bounded, newest first,
    and never touch the counters."""
    _write_as_replicas(pg_dsn, ("mainframe-a", "mainframe-b", "mainframe-c"), max_rows=50)
    with MismatchStore.open(pg_dsn, max_rows=50) as store:  # opening prunes once more, alone
        assert store.row_count() == 50
        tally = store.tally("lookups", "persons-v2")
        newest = store.examples("lookups", "persons-v2", ADDRESS, limit=1)
    assert tally.operations["lookup"].compared == 3 * PER_REPLICA
    last_differing = max(n for n in range(PER_REPLICA) if n % 3 == 0)
    assert newest[0].primary.endswith(f"old {last_differing}")


async def test_two_running_gateways_fill_one_store_and_diff_counts_both(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two real gateways (replicas of one routing.yaml, shadowing.store a DSN) serving at once:
    once they have stopped, the report counts every shadowed lookup of both."""
    lookups = 5
    async with backend_server(canned()) as primary, backend_server(canned()) as shadow:
        config = _shadowed_config(primary, shadow, pg_dsn, tmp_path)
        async with running(config) as first, running(config) as second:
            for run in (first, second):
                compared = _completions(run.gateway, lookups)
                logon = LogonAnswer.decode(await exchange(run.client, LOGON.encode()))
                assert logon.fejlnr is FejlNr.OK
                for _ in range(lookups):
                    assert await exchange(run.client, LOOKUP.encode()) == LOOKUP_ANSWER
                await asyncio.wait_for(compared.wait(), HANG_GUARD_S)
    capsys.readouterr()  # the gateways' own log lines
    assert main(["diff", "--store", pg_dsn, "--json"]) == 0
    (op,) = json.loads(capsys.readouterr().out)["operations"]
    assert (op["route"], op["backend"]) == ("lookups", "persons-v2")
    assert (op["requests"]["compared"], op["requests"]["differing"]) == (2 * lookups, 0)


def _shadowed_config(
    primary: int,
    shadow: int,
    store: str | Path,
    tmp_path: Path,
    thresholds: Thresholds = Thresholds(),  # noqa: B008 - frozen
) -> GatewayConfig:
    """Lookups to ``mainframe`` shadowed 100% to ``persons-v2``, stored at ``store``."""
    base = gateway_config(primary)
    lookups = Route(
        "lookups",
        Match(frozenset({Operation.LOOKUP})),
        "mainframe",
        2.0,
        (Shadow("persons-v2", BUCKETS, 5.0),),
        thresholds=thresholds,
    )
    backends = {
        **base.backends,
        "persons-v2": LegacyBackendConfig("persons-v2", "127.0.0.1", shadow, None),
    }
    # Never shed: client, backends and gateways share the test's loop.
    shadowing = Shadowing(store=store, key_file=tmp_path / "shadow.key", shed_lag=60.0)
    return replace(base, backends=backends, routes=(lookups, *base.routes), shadowing=shadowing)


def _completions(gateway: Gateway, count: int) -> asyncio.Event:
    """Set once ``gateway`` has finished ``count`` shadow comparisons."""
    done, seen = asyncio.Event(), [0]

    def watch(event: Event) -> None:
        if isinstance(event, ShadowCompleted):
            seen[0] += 1
            if seen[0] >= count:
                done.set()

    gateway.bus.subscribe(watch)
    return done


def test_gateways_starting_together_create_the_store_once(pg_dsn: str) -> None:
    """Six first starts at once on an empty database: all open it, one schema, one version."""
    start = threading.Barrier(6)
    failures: list[BaseException] = []

    def first_start() -> None:
        try:
            start.wait()
            MismatchStore.open(pg_dsn).close()
        except BaseException as exc:
            failures.append(exc)

    _run_threads([first_start] * 6)
    assert failures == []
    with psycopg.connect(pg_dsn) as db:
        versions = db.execute(f"SELECT version FROM {PG_SCHEMA}.schema_version").fetchall()
    assert versions == [(SCHEMA_VERSION,)]


def test_the_store_shares_a_database_with_the_services_store(pg_dsn: str) -> None:
    """Its tables live in their own schema: the services' store migrates the same database
    as if it were empty, and both keep working."""
    with MismatchStore.open(pg_dsn) as store:
        store.record(_sample("mainframe", 0))
    services = ModernStore.open(pg_dsn)
    try:
        assert services.schema_version() == len(PG_MIGRATIONS) and services.count() == 0
    finally:
        services.close()
    with MismatchStore.open(pg_dsn) as store:
        assert store.row_count() == 1


def test_diff_reports_every_replica_of_a_postgresql_store(
    pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cpr-gateway diff --store postgresql://…` counts both replicas' comparisons."""
    _write_as_replicas(pg_dsn, ("mainframe-a", "mainframe-b"))
    assert main(["diff", "--store", pg_dsn, "--json"]) == 0
    (op,) = json.loads(capsys.readouterr().out)["operations"]
    assert op["requests"]["compared"] == 2 * PER_REPLICA and op["verdict"] == "differs"
    assert main(["diff", "--store", pg_dsn]) == 0
    assert f"{2 * PER_REPLICA} requests compared" in capsys.readouterr().out


def test_diff_needs_only_read_rights(
    postgres: Cluster, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A role with USAGE on the store's schema and SELECT on its tables runs the report."""
    _write_as_replicas(pg_dsn, ("mainframe-a",))
    with postgres.admin() as admin:
        admin.execute("CREATE ROLE report_reader LOGIN")
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as db:
            db.execute(f"GRANT USAGE ON SCHEMA {PG_SCHEMA} TO report_reader")
            db.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {PG_SCHEMA} TO report_reader")
        reader = pg_dsn.replace("user=postgres", "user=report_reader")
        assert main(["diff", "--store", reader, "--json"]) == 0
        (op,) = json.loads(capsys.readouterr().out)["operations"]
        assert op["requests"]["compared"] == PER_REPLICA
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as db:
            db.execute("DROP OWNED BY report_reader")
        with postgres.admin() as admin:
            admin.execute("DROP ROLE report_reader")


def test_diff_reads_the_store_routing_yaml_names(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --store, diff reads the store of the routing.yaml it is given: here a DSN."""
    _write_as_replicas(pg_dsn, ("mainframe-a",))
    config = tmp_path / "routing.yaml"
    config.write_text(_routing(f"'{pg_dsn}'"), encoding="utf-8")
    assert main(["diff", "--config", str(config), "--json"]) == 0
    (op,) = json.loads(capsys.readouterr().out)["operations"]
    assert op["requests"]["compared"] == PER_REPLICA


def test_diff_finds_no_store_without_making_one(
    pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database without the store's tables: exit 1, 'no shadow store', and still none."""
    assert main(["diff", "--store", pg_dsn]) == 1
    assert "no shadow store at postgresql:///" in capsys.readouterr().err
    with psycopg.connect(pg_dsn) as db:
        schemas = db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (PG_SCHEMA,))
        assert schemas.fetchall() == []


def test_an_unreachable_store_is_named_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server that refuses the connection: exit 1, the DSN shown with *** for its password."""
    dsn = "postgresql://gateway:s3cret-pw@127.0.0.1:1/shadow"
    assert main(["diff", "--store", dsn]) == 1
    err = capsys.readouterr().err
    assert "shadow store postgresql://gateway:***@127.0.0.1:1/shadow: cannot open it" in err
    assert "s3cret-pw" not in err


def test_a_dsn_without_psycopg_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where psycopg is not installed (injected: None in sys.modules, and the PostgreSQL
    adapter not loaded yet), opening a DSN is a ConfigError naming the extra; diff says so."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "gateway.storage.postgres", raising=False)
    monkeypatch.delattr(storage, "postgres", raising=False)
    dsn = "postgresql://gateway:s3cret-pw@db.internal/shadow"
    with pytest.raises(ConfigError, match=r"install 'cpr-gateway\[postgres\]'") as raised:
        MismatchStore.open(dsn)
    assert "s3cret-pw" not in str(raised.value) and "gateway:***@db.internal" in str(raised.value)
    assert main(["diff", "--store", dsn]) == 1
    assert "needs psycopg" in capsys.readouterr().err


# -- a store that fails under the writer ------------------------------------------------------


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """JSON logs captured in memory; structlog's defaults are restored afterwards."""
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    yield stream
    structlog.reset_defaults()


class Arrivals(Generic[E]):
    """The bus's events of one type, awaitable one by one."""

    def __init__(self, bus: EventBus, kind: type[E]) -> None:
        self._kind = kind
        self._queue: asyncio.Queue[E] = asyncio.Queue()
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, self._kind):
            self._queue.put_nowait(event)

    async def next(self) -> E:
        return await asyncio.wait_for(self._queue.get(), HANG_GUARD_S)


def _telemetry() -> tuple[EventBus, Metrics]:
    """A bus that feeds a fresh registry and the log subscriber."""
    bus, metrics = EventBus(), Metrics()
    bus.subscribe(metrics.on_event)
    bus.subscribe(log_event)
    return bus, metrics


def _lost(metrics: Metrics, reason: str) -> float | None:
    return metrics.registry.get_sample_value(
        "cpr_gateway_shadow_samples_lost_total", {"reason": reason}
    )


def _store_lines(log_output: io.StringIO) -> list[dict[str, Any]]:
    """The logged lines about the store: lost samples, and the store going and coming."""
    names = ("shadow_samples_lost", "shadow_store_unavailable", "shadow_store_available")
    logged = [json.loads(line) for line in log_output.getvalue().splitlines()]
    return [line for line in logged if line["event"] in names]


async def test_a_store_that_is_slow_or_down_costs_only_its_samples(
    postgres: Cluster, pg_dsn: str, log_output: io.StringIO
) -> None:
    """A batch that fails (a statement past its timeout, a connection cut under it) is counted
    and logged as store_error and lost. Once no new connection is accepted, the store is not
    open: samples are store_unavailable, logged once; the writer opens it again when it can,
    and the comparisons after that are stored."""
    bus, metrics = _telemetry()
    losses, states = Arrivals(bus, ShadowSamplesLost), Arrivals(bus, ShadowStoreState)
    short = pg_dsn + "&options=-c%20statement_timeout%3D100"  # the DSN's own value wins
    writer = SampleWriter(functools.partial(MismatchStore.open, short), bus)
    await writer.start()
    database = conninfo_to_dict(pg_dsn)["dbname"]
    with postgres.admin() as admin:
        with psycopg.connect(pg_dsn) as locker:  # slow: the counters are locked
            locker.execute(f"LOCK TABLE {PG_SCHEMA}.field_counts IN ACCESS EXCLUSIVE MODE")
            writer.put(_sample("mainframe", 0))
            slow = await losses.next()
        admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )
        writer.put(_sample("mainframe", 1))  # the connection was cut
        cut = await losses.next()
        writer.put(_sample("mainframe", 2))  # no new one is accepted
        down = await losses.next()
        gone = await states.next()
        writer.put(_sample("mainframe", 3))  # lost at once while the store is not open
        while_gone = await losses.next()
        admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
    back = await states.next()
    writer.put(_sample("mainframe", 6))
    await writer.aclose(HANG_GUARD_S)
    assert [(e.reason, e.count) for e in (slow, cut)] == [("store_error", 1)] * 2
    assert [(e.reason, e.count) for e in (down, while_gone)] == [("store_unavailable", 1)] * 2
    assert "statement timeout" in slow.detail
    assert not gone.available and "not currently accepting connections" in gone.detail
    assert back.available
    assert (_lost(metrics, "store_error"), _lost(metrics, "store_unavailable")) == (2, 2)
    lines = [(line["event"], line.get("reason")) for line in _store_lines(log_output)]
    assert lines == [
        *[("shadow_samples_lost", "store_error")] * 2,
        ("shadow_store_unavailable", None),
        ("shadow_store_available", None),
    ]
    with MismatchStore.open(pg_dsn, prune=False) as reader:
        assert reader.tally("lookups", "persons-v2").operations["lookup"].compared == 1
        assert reader.row_count() == 1  # sample 6 differs; 0 to 3 never arrived


def test_a_sqlite_store_never_loads_psycopg(tmp_path: Path) -> None:
    """A gateway and a report on a SQLite store do not import psycopg (an optional extra)."""
    config = tmp_path / "routing.yaml"
    config.write_text(_routing("shadow.sqlite"), encoding="utf-8")
    code = (
        "import sys, gateway.app, gateway.cli\n"
        "from pathlib import Path\n"
        "from gateway.config import load_routing\n"
        "from gateway.shadow.store import MismatchStore\n"
        f"config = load_routing(Path({str(config)!r}))\n"
        "MismatchStore.open(config.shadowing.store).close()\n"
        f"assert gateway.cli.main(['diff', '--config', {str(config)!r}]) == 0\n"
        "print('psycopg' in sys.modules, 'gateway.storage.postgres' in sys.modules)\n"
    )
    result = _python(code)
    assert result.splitlines()[-1] == "False False"
    with sqlite3.connect(tmp_path / "shadow.sqlite") as db:  # beside routing.yaml, as before
        assert list(db.execute("SELECT version FROM schema_version")) == [(SCHEMA_VERSION,)]


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _routing(store: str) -> str:
    """A small valid routing.yaml whose shadowing.store is ``store`` (YAML text)."""
    return (
        "version: 1\n"
        "listen: {host: 127.0.0.1, port: 0, tls: null}\n"
        "backends:\n"
        '  mainframe: {kind: legacy, address: "127.0.0.1:5001", tls: null}\n'
        "routes:\n"
        "  - {name: rest, match: {}, backend: mainframe, deadline: 5s}\n"
        f"shadowing: {{store: {store}}}\n"
    )


# -- a store that is not there at start -------------------------------------------------------


async def _get(gateway: Gateway, path: str) -> tuple[int, str]:
    host, port = gateway.admin_address
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{host}:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def _lookups(client: Endpoint, count: int) -> None:
    """Log on, then ``count`` lookups, each answered 00 as the primary answers it."""
    logon = LogonAnswer.decode(await exchange(client, LOGON.encode()))
    assert logon.fejlnr is FejlNr.OK
    for _ in range(count):
        assert await exchange(client, LOOKUP.encode()) == LOOKUP_ANSWER


async def test_a_gateway_whose_store_is_down_starts_and_serves(
    tmp_path: Path, log_output: io.StringIO
) -> None:
    """shadowing.store a DSN to a closed port: the gateway starts, /readyz says ready, every
    lookup is answered 00; each comparison is lost as store_unavailable, and the one cause
    is logged once, with the DSN's password hidden."""
    lookups = 5
    dsn = f"postgresql://gateway:s3cret-pw@127.0.0.1:{free_port()}/shadow"
    async with (
        backend_server(canned()) as primary,
        backend_server(canned()) as shadow,
        running(_shadowed_config(primary, shadow, dsn, tmp_path)) as run,
    ):
        losses = Arrivals(run.gateway.bus, ShadowSamplesLost)
        assert await _get(run.gateway, "/readyz") == (200, "ready\n")
        await _lookups(run.client, lookups)
        lost = [await losses.next() for _ in range(lookups)]
        counted = _lost(run.gateway.metrics, "store_unavailable")
    assert {(e.reason, e.count) for e in lost} == {("store_unavailable", 1)} and counted == lookups
    (line,) = _store_lines(log_output)
    assert line["event"] == "shadow_store_unavailable" and line["level"] == "warning"
    assert "gateway:***@127.0.0.1" in line["detail"] and "Connection refused" in line["detail"]
    assert "s3cret-pw" not in log_output.getvalue()


async def test_a_store_created_after_the_start_gets_the_later_comparisons(
    postgres: Cluster, tmp_path: Path, log_output: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    """A DSN whose database does not exist yet: the gateway starts and serves; once the
    database is created, the writer makes the store in it (no restart), the route's
    thresholds and the comparisons made since land there, and diff reports them."""
    database = f"late_{os.getpid()}"
    dsn, later = postgres.dsn(database), 4
    try:
        async with backend_server(canned()) as primary, backend_server(canned()) as shadow:
            config = _shadowed_config(primary, shadow, dsn, tmp_path, Thresholds(min_samples=3))
            async with running(config) as run:
                losses = Arrivals(run.gateway.bus, ShadowSamplesLost)
                states = Arrivals(run.gateway.bus, ShadowStoreState)
                await _lookups(run.client, 1)
                assert (await losses.next()).reason == "store_unavailable"
                with postgres.admin() as admin:
                    admin.execute(f"CREATE DATABASE {database}")
                assert (await states.next()).available
                compared = _completions(run.gateway, later)
                await _lookups(run.client, later)
                await asyncio.wait_for(compared.wait(), HANG_GUARD_S)
        capsys.readouterr()  # anything the gateway printed
        assert main(["diff", "--store", dsn, "--json"]) == 0
        (op,) = json.loads(capsys.readouterr().out)["operations"]
    finally:
        with postgres.admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    assert op["requests"]["compared"] == later and op["thresholds"]["min_samples"] == 3
    events = [line["event"] for line in _store_lines(log_output)]
    assert events == ["shadow_store_unavailable", "shadow_store_available"]


async def test_a_server_that_drops_every_connection_is_retried_and_logged_once(
    log_output: io.StringIO,
) -> None:
    """A server that takes each connection and drops it (a proxy whose PostgreSQL is down):
    the writer starts without the store, attempt follows attempt, comparisons are lost as
    they come, and one warning covers them all."""
    attempts, third = [0], asyncio.Event()

    async def drop(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts[0] += 1
        if attempts[0] == 3:
            third.set()
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # No TLS or GSS: one TCP connection per attempt.
    dsn = (
        f"postgresql://gateway:s3cret-pw@127.0.0.1:{port}/shadow?sslmode=disable&gssencmode=disable"
    )
    bus, metrics = _telemetry()
    writer = SampleWriter(functools.partial(MismatchStore.open, dsn), bus)
    async with server:
        await writer.start()
        writer.put(_sample("mainframe", 0))
        await asyncio.wait_for(third.wait(), HANG_GUARD_S)
        writer.put(_sample("mainframe", 1))
        await writer.aclose(HANG_GUARD_S)
    assert _lost(metrics, "store_unavailable") == 2
    (line,) = _store_lines(log_output)
    assert line["event"] == "shadow_store_unavailable"
    assert "server closed the connection unexpectedly" in line["detail"]
    assert "s3cret-pw" not in log_output.getvalue()


def _closed_port(_postgres: Cluster, _pg_dsn: str) -> str:
    return f"postgresql://gateway:s3cret-pw@127.0.0.1:{free_port()}/shadow"


def _no_server_on_the_socket(_postgres: Cluster, _pg_dsn: str) -> str:
    return "postgresql:///shadow?host=/nonexistent&user=gateway&password=s3cret-pw"


def _database_not_created(postgres: Cluster, _pg_dsn: str) -> str:
    return postgres.dsn("never_created")


def _database_closed(postgres: Cluster, pg_dsn: str) -> str:
    database = conninfo_to_dict(pg_dsn)["dbname"]
    with postgres.admin() as admin:
        admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
    return pg_dsn


@pytest.mark.parametrize(
    "where", [_closed_port, _no_server_on_the_socket, _database_not_created, _database_closed]
)
def test_a_server_that_cannot_take_a_connection_now_is_unavailable(
    postgres: Cluster, pg_dsn: str, where: Callable[[Cluster, str], str]
) -> None:
    """Down, no socket, a database not created yet or closed to connections: StoreUnavailable
    (tried again later), not a ConfigError; the message never holds the password."""
    dsn = where(postgres, pg_dsn)
    with pytest.raises(StoreUnavailable, match="cannot open it") as raised:
        MismatchStore.open(dsn)
    assert not isinstance(raised.value, ConfigError) and "s3cret-pw" not in str(raised.value)


def _role_refused(postgres: Cluster) -> str:
    return postgres.dsn("postgres").replace("user=postgres", "user=ghost")


@pytest.mark.parametrize(
    ("where", "says"),
    [
        (_role_refused, 'role "ghost" does not exist'),
        (lambda _: "postgresql://gateway:s3cret-pw@db/shadow?bogus=1", "not a valid DSN"),
        (lambda _: "postgresql://gateway:s3cret-pw@[::1/shadow", "not a valid DSN"),
        (lambda _: "postgresql://gateway:s3cret-pw@db:port/shadow", "port 'port'"),
        (lambda _: "postgresql://gateway:s3cret-pw@127.0.0.1/shadow?sslmode=maybe", "sslmode"),
    ],
)
async def test_what_only_a_config_change_mends_fails_the_writers_start(
    postgres: Cluster, where: Callable[[Cluster], str], says: str
) -> None:
    """A role the server refuses, a DSN libpq cannot read or use: the first attempt is a
    ConfigError, which the writer's start raises (the gateway then refuses to start)."""
    writer = SampleWriter(functools.partial(MismatchStore.open, where(postgres)), EventBus())
    with pytest.raises(ConfigError, match=re.escape(says)) as raised:
        await writer.start()
    assert "s3cret-pw" not in str(raised.value)


@pytest.mark.parametrize("store", ["junk.sqlite", "a-file/var/shadow.sqlite"])
async def test_a_sqlite_store_that_cannot_be_used_fails_the_gateways_start(
    tmp_path: Path, store: str
) -> None:
    """A SQLite file that is no store, or a directory that cannot be made (a file is in the
    way): the gateway refuses to start with a ConfigError naming the file."""
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    (tmp_path / "a-file").write_text("in the way", encoding="utf-8")
    config = _shadowed_config(free_port(), free_port(), tmp_path / store, tmp_path)
    with pytest.raises(ConfigError, match=re.escape(store)):
        await Gateway(config).start()

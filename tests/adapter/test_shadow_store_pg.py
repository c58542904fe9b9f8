"""The mismatch store of a fleet: several gateways writing into one real PostgreSQL store, the
report over all of them, and a store that fails or slows down under the writer."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import structlog
from gateway_harness import (
    LOGON,
    LOOKUP,
    LOOKUP_ANSWER,
    backend_server,
    canned,
    gateway_config,
    running,
)
from pg_server import Cluster, pg_dsn_fixture, postgres_fixture  # noqa: F401 (fixtures)
from psycopg.conninfo import conninfo_to_dict

from cpr_devtools.client import exchange
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
from gateway.observe.events import Event, EventBus, ShadowCompleted, ShadowSamplesLost
from gateway.observe.logs import configure_logging, log_event
from gateway.observe.metrics import Metrics
from gateway.shadow.compare import Comparison, FieldDiff
from gateway.shadow.pseudonym import Pseudonymiser
from gateway.shadow.report import build_report
from gateway.shadow.store import MismatchStore, Sample
from gateway.shadow.store_db import PG_SCHEMA
from gateway.shadow.writer import SampleWriter

ADDRESS = FieldKey("lookup", "001", "STANDARDADR")
DAY = FieldKey("lookup", "000", "PRODDTO")
PSEUDONYM = Pseudonymiser(b"f" * 32).pnr("0101601234")  # a synthetic PNR
#: Comparisons each replica writes in the two-replica tests, in batches of BATCH.
PER_REPLICA, BATCH = 400, 8
#: Stays out of the test's way: a hang in the code under test fails, it does not block CI.
HANG_GUARD_S = 60.0


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


def _shadowed_config(primary: int, shadow: int, store: str, tmp_path: Path) -> GatewayConfig:
    """Lookups to ``mainframe`` shadowed 100% to ``persons-v2``, stored at ``store``."""
    base = gateway_config(primary)
    lookups = Route(
        "lookups",
        Match(frozenset({Operation.LOOKUP})),
        "mainframe",
        2.0,
        (Shadow("persons-v2", BUCKETS, 5.0),),
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
    assert versions == [(1,)]


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


class Losses:
    """The bus's ShadowSamplesLost events, awaitable one by one."""

    def __init__(self, bus: EventBus) -> None:
        self._queue: asyncio.Queue[ShadowSamplesLost] = asyncio.Queue()
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ShadowSamplesLost):
            self._queue.put_nowait(event)

    async def next(self) -> ShadowSamplesLost:
        return await asyncio.wait_for(self._queue.get(), HANG_GUARD_S)


async def test_a_store_that_is_slow_or_down_costs_only_its_samples(
    postgres: Cluster, pg_dsn: str, log_output: io.StringIO
) -> None:
    """Each failing batch (a statement past its timeout, a connection cut, a server refusing
    connections) is counted and logged as store_error and lost; the writer goes on, and the
    first batch after the store is back is stored."""
    bus, metrics = EventBus(), Metrics()
    bus.subscribe(metrics.on_event)
    bus.subscribe(log_event)
    losses = Losses(bus)
    short = pg_dsn + "&options=-c%20statement_timeout%3D100"  # the DSN's own value wins
    store = await asyncio.to_thread(MismatchStore.open, short)
    writer = SampleWriter(store, bus)
    writer.start()
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
        admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
    writer.put(_sample("mainframe", 3))
    await writer.aclose(HANG_GUARD_S)
    assert [(e.reason, e.count) for e in (slow, cut, down)] == [("store_error", 1)] * 3
    assert "statement timeout" in slow.detail
    lost = {"reason": "store_error"}
    assert metrics.registry.get_sample_value("cpr_gateway_shadow_samples_lost_total", lost) == 3
    logged = [json.loads(line) for line in log_output.getvalue().splitlines()]
    warned = [line for line in logged if line["event"] == "shadow_samples_lost"]
    assert [line["reason"] for line in warned] == ["store_error"] * 3
    with MismatchStore.open(pg_dsn, prune=False) as reader:
        assert reader.tally("lookups", "persons-v2").operations["lookup"].compared == 1
        assert reader.row_count() == 1  # sample 3 differs; 0, 1 and 2 never arrived


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
        assert list(db.execute("SELECT version FROM schema_version")) == [(1,)]


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

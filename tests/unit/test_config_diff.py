"""check-config --against: what a new routing.yaml changes, computed from the route tables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.config import diff_configs, diff_tables
from gateway.config.diff import restart_needed
from gateway.config.schema import (
    Admin,
    FailedLogons,
    GatewayConfig,
    Limits,
    Listen,
    Logging,
    Match,
    RequestLines,
    Route,
    Sessions,
    Split,
    SplitKey,
)
from gateway.model import Operation

LOOKUP = frozenset({Operation.LOOKUP})


def _route(name: str, target: str | Split, deadline: float = 5.0, **match: object) -> Route:
    return Route(name, Match(**match), target, deadline)  # type: ignore[arg-type]


def _canary(percent: int, key: SplitKey = SplitKey.PNR) -> list[Route]:
    split = Split(key, (("mainframe", (100 - percent) * 100), ("persons-v2", percent * 100)))
    return [_route("lookups-canary", split, 2.0, operations=LOOKUP), _route("all", "mainframe")]


ALL_LEGACY = [_route("all-legacy", "mainframe")]


def test_nothing_changed_reports_nothing() -> None:
    """The same table, and a table with renamed routes that route alike, give no lines."""
    assert diff_tables(ALL_LEGACY, ALL_LEGACY) == []
    assert diff_tables(_canary(5), _canary(5)) == []
    assert diff_tables(ALL_LEGACY, [_route("everything", "mainframe")]) == []


def test_a_new_canary_on_lookups() -> None:
    """Adding a 5% canary names the operation, both distributions and how much moves."""
    assert diff_tables(ALL_LEGACY, _canary(5)) == [
        "lookup: mainframe 100% → mainframe 95%, persons-v2 5% "
        "(split by pnr; 5% of requests move; deadline 5s → 2s)"
    ]


def test_raising_a_canary_moves_only_the_difference() -> None:
    """5% → 10% moves 5% of lookups, because the new side's keys stay where they are."""
    assert diff_tables(_canary(5), _canary(10)) == [
        "lookup: mainframe 95%, persons-v2 5% → mainframe 90%, persons-v2 10% "
        "(split by pnr; 5% of requests move)"
    ]


def test_one_operation_moved_whole() -> None:
    """Moving logons to another backend is one line for logon; other operations are silent."""
    new = [_route("logons", "persons-v2", operations=frozenset({Operation.LOGON})), *ALL_LEGACY]
    assert diff_tables(ALL_LEGACY, new) == [
        "logon: mainframe 100% → persons-v2 100% (100% of requests move)"
    ]


def test_a_transaction_is_named_when_only_it_changes() -> None:
    """Per operation × transaction: OFF4 lookups moving is labelled with OFF4."""
    new = [_route("off4", "persons-v2", operations=LOOKUP, transactions=frozenset({"OFF4"}))]
    assert diff_tables(ALL_LEGACY, [*new, *ALL_LEGACY]) == [
        "lookup, transaction OFF4: mainframe 100% → persons-v2 100% (100% of requests move)"
    ]


def test_customers_and_the_rest_are_told_apart() -> None:
    """A change for all but one customer says so with 'not'."""
    old = [_route("off4", "persons-v2", operations=LOOKUP, transactions=frozenset({"OFF4"}))]
    new = [_route("vip", "persons-v2", operations=LOOKUP, customers=frozenset({12}))]
    assert diff_tables([*old, *ALL_LEGACY], [*new, *ALL_LEGACY]) == [
        "lookup, transaction OFF4, customer not 0012: persons-v2 100% → mainframe 100% "
        "(100% of requests move)",
        "lookup, transaction not OFF4, customer 0012: mainframe 100% → persons-v2 100% "
        "(100% of requests move)",
    ]


def test_a_user_route_lists_each_operation() -> None:
    """A route for one user changes every operation of that user, one line each."""
    new = [_route("demo", "persons-v2", users=frozenset({"DEMO01"})), *ALL_LEGACY]
    lines = diff_tables(ALL_LEGACY, new)
    assert [line.split(":")[0] for line in lines] == [
        f"{operation.value}, user DEMO01" for operation in Operation
    ]


def test_a_deadline_change_alone() -> None:
    """Where requests go is unchanged; only the time they get differs."""
    new = [_route("all-legacy", "mainframe", 2.0, operations=LOOKUP), *ALL_LEGACY]
    assert diff_tables(ALL_LEGACY, new) == ["lookup: deadline 5s → 2s"]


def test_a_new_split_key_reshuffles_keys() -> None:
    """Same shares hashed by another key: the line says keys change sides unpredictably."""
    assert diff_tables(_canary(5), _canary(5, SplitKey.CUSTOMER)) == [
        "lookup: mainframe 95%, persons-v2 5% → mainframe 95%, persons-v2 5% "
        "(split by customer; split key pnr → customer: keys are reshuffled)"
    ]


def test_reordering_a_split_moves_keys_even_with_equal_shares() -> None:
    """Order decides the bucket layout, so swapping a 50/50 split moves every key."""
    ab = Split(SplitKey.PNR, (("a", 5000), ("b", 5000)))
    ba = Split(SplitKey.PNR, (("b", 5000), ("a", 5000)))
    assert diff_tables([_route("s", ab)], [_route("s", ba)]) == [
        f"{operation.value}: a 50%, b 50% → b 50%, a 50% (split by pnr; 100% of requests move)"
        for operation in Operation
    ]


def _config(**changes: object) -> GatewayConfig:
    base = GatewayConfig(
        listen=Listen("0.0.0.0", 5000, None),
        admin=Admin(),
        limits=Limits(),
        backends={"mainframe": LegacyBackendConfig("mainframe", "127.0.0.1", 5001, None)},
        routes=tuple(ALL_LEGACY),
        source=Path("routing.yaml"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_config_diff_names_settings_backends_then_routes() -> None:
    """Listener changes need a restart; limits, backends and routes are listed after them."""
    old = _config()
    new = _config(
        listen=Listen("0.0.0.0", 5005, None),
        limits=Limits(read_timeout=5.0),
        backends={
            "mainframe": LegacyBackendConfig("mainframe", "127.0.0.1", 5009, None),
            "persons-v2": LegacyBackendConfig("persons-v2", "127.0.0.1", 5002, None),
        },
        routes=tuple(_canary(5)),
    )
    assert diff_configs(old, new) == [
        "listen: changed (takes effect on restart)",
        "limits.read_timeout: 10s → 5s",
        "backend mainframe: changed (a new legacy backend replaces it)",
        "backend persons-v2: added (kind legacy)",
        "lookup: mainframe 100% → mainframe 95%, persons-v2 5% "
        "(split by pnr; 5% of requests move; deadline 5s → 2s)",
    ]
    assert diff_configs(new, old)[3] == "backend persons-v2: removed"
    assert diff_configs(old, old) == []


def test_request_lines_change_on_reload_and_are_named() -> None:
    """logging.requests applies on reload (no restart); the diff names both values."""
    new = _config(logging=Logging(RequestLines.ERRORS))
    assert diff_configs(_config(), new) == ["logging.requests: all → errors"]
    assert restart_needed(_config(), new) == []


def test_a_new_failed_logon_limit_is_named_with_both_values() -> None:
    """limits.failed_logons is applied on reload; the diff shows it as max in window."""
    new = _config(limits=Limits(failed_logons=FailedLogons(max=5, window=60.0)))
    assert diff_configs(_config(), new) == ["limits.failed_logons: 10 in 300s → 5 in 60s"]


def test_a_new_session_idle_time_is_named_with_both_values() -> None:
    """sessions.idle is applied on reload, and check-config --against says what it becomes."""
    listen = Listen("127.0.0.1", 5000, None)
    old = GatewayConfig(listen, Admin(), Limits(), {}, tuple(ALL_LEGACY))
    new = replace(old, sessions=Sessions(idle=1200.0))
    assert diff_configs(old, new) == ["sessions.idle: 1800s → 1200s"]


def test_a_new_session_store_takes_effect_on_restart() -> None:
    """Where sessions are shared cannot change under running requests: a restart does it."""
    listen = Listen("127.0.0.1", 5000, None)
    old = GatewayConfig(listen, Admin(), Limits(), {}, tuple(ALL_LEGACY))
    shared = replace(old, sessions=Sessions(store="redis://127.0.0.1:6390/0"))
    assert restart_needed(old, shared) == ["sessions.store"]
    assert diff_configs(old, shared) == ["sessions.store: changed (takes effect on restart)"]
    quicker = replace(shared, sessions=Sessions(store="redis://127.0.0.1:6390/0", timeout=0.02))
    assert restart_needed(shared, quicker) == ["sessions.store"]
    longer = replace(shared, sessions=Sessions(store="redis://127.0.0.1:6390/0", idle=60.0))
    assert restart_needed(shared, longer) == []  # the idle time is applied live

"""routing.yaml loading: the shape it accepts, its defaults, and every problem it names."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.backends.grpc_config import GrpcBackendConfig
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.config import (
    BACKEND_KINDS,
    Admin,
    ClientTls,
    Limits,
    Match,
    ServerTls,
    Sessions,
    check_config,
    load_routing,
)
from gateway.config.breaker import Breaker
from gateway.config.schema import FailedLogons, Logging, RequestLines
from gateway.errors import ConfigError
from gateway.model import Operation

REPO_ROUTING = Path(__file__).resolve().parents[2] / "routing.yaml"

VALID = """\
version: 1
listen: {host: 0.0.0.0, port: 5000, tls: {cert: tls/gw.crt, key: tls/gw.key}}
admin: {host: 127.0.0.1, port: 9100}
limits: {read_timeout: 500ms, max_connections: 16, grace_period: 1m}
backends:
  mainframe:
    kind: legacy
    address: 127.0.0.1:5001
    tls: {ca: tls/ca.crt, server_name: localhost}
    connect_timeout: 1.5s
    max_connections: 32
  v6:
    kind: legacy
    address: "[::1]:5002"
    tls: null
routes:
  - name: offentlige
    match: {operation: [lookup], transaction: [OFF4], customer: ["0012"]}
    backend: v6
    deadline: 2s
  - name: all-legacy
    match: {}
    backend: mainframe
    deadline: 5s
"""

MINIMAL = """\
version: 1
listen: {host: 127.0.0.1, port: 0, tls: null}
backends: {mainframe: {kind: legacy, address: "127.0.0.1:5001", tls: null}}
routes: [{name: all, match: {}, backend: mainframe, deadline: 5s}]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _problems(tmp_path: Path, text: str) -> list[str]:
    return check_config(_write(tmp_path, text))


def test_full_config_becomes_frozen_values(tmp_path: Path) -> None:
    """Every key of the documented shape lands in the matching dataclass field."""
    config = load_routing(_write(tmp_path, VALID))
    assert config.listen.tls == ServerTls(tmp_path / "tls/gw.crt", tmp_path / "tls/gw.key")
    assert config.admin == Admin("127.0.0.1", 9100)
    assert config.limits == Limits(read_timeout=0.5, max_connections=16, grace_period=60.0)
    assert config.backends["mainframe"] == LegacyBackendConfig(
        "mainframe", "127.0.0.1", 5001, ClientTls(tmp_path / "tls/ca.crt", "localhost"), 1.5, 32
    )
    assert config.backends["v6"] == LegacyBackendConfig("v6", "::1", 5002, None)
    first, last = config.routes
    assert first.match == Match(frozenset({Operation.LOOKUP}), frozenset({"OFF4"}), frozenset({12}))
    assert (first.name, first.target, first.deadline) == ("offentlige", "v6", 2.0)
    assert last.match.is_catch_all


def test_relative_paths_resolve_against_the_yaml_directory(tmp_path: Path) -> None:
    """A config loaded from another working directory still finds its certificates."""
    sub = tmp_path / "etc"
    sub.mkdir()
    config = load_routing(_write(sub, VALID))
    assert config.listen.tls is not None
    assert config.listen.tls.cert == sub / "tls/gw.crt"


def test_optional_sections_take_their_defaults(tmp_path: Path) -> None:
    """admin, limits, connect_timeout and max_connections may be left out; tls: null means
    plaintext."""
    config = load_routing(_write(tmp_path, MINIMAL))
    assert config.admin == Admin()
    assert config.limits == Limits()
    assert config.listen.tls is None
    backend = config.backends["mainframe"]
    assert isinstance(backend, LegacyBackendConfig)
    assert backend.connect_timeout == 1.0
    assert backend.max_connections == 64
    assert backend.tls_resumption is True


def test_logging_requests_is_all_unless_errors_is_asked(tmp_path: Path) -> None:
    """Every request's line by default; ``logging: {requests: errors}`` keeps only failed
    ones; any other value is named as the key's problem."""
    assert load_routing(_write(tmp_path, MINIMAL)).logging == Logging(RequestLines.ALL)
    quiet = load_routing(_write(tmp_path, MINIMAL + "logging: {requests: errors}\n"))
    assert quiet.logging == Logging(RequestLines.ERRORS)
    [problem] = _problems(tmp_path, MINIMAL + "logging: {requests: some}\n")
    assert problem == "logging.requests: unknown request lines 'some' (known: all, errors)"


def test_tls_resumption_can_be_turned_off(tmp_path: Path) -> None:
    """``tls_resumption: false``: a full handshake per connection; anything not a boolean is
    named as the key's problem."""
    off = MINIMAL.replace("tls: null}}", "tls: null, tls_resumption: false}}")
    backend = load_routing(_write(tmp_path, off)).backends["mainframe"]
    assert isinstance(backend, LegacyBackendConfig) and backend.tls_resumption is False
    bad = MINIMAL.replace("tls: null}}", "tls: null, tls_resumption: sometimes}}")
    [problem] = _problems(tmp_path, bad)
    assert problem.startswith("backends.mainframe.tls_resumption: ")


def test_spare_connections_are_off_unless_asked_and_refused_with_a_proxy_header(
    tmp_path: Path,
) -> None:
    """``spare_connections`` defaults to none (5 s of age when asked); a count out of 0-16,
    or spares beside ``proxy_protocol`` (whose header must name a client not yet come),
    is named as the key's problem."""
    backend = load_routing(_write(tmp_path, MINIMAL)).backends["mainframe"]
    assert isinstance(backend, LegacyBackendConfig)
    assert (backend.spare_connections, backend.spare_max_age) == (0, 5.0)
    asked = MINIMAL.replace("tls: null}}", "tls: null, spare_connections: 2, spare_max_age: 2s}}")
    backend = load_routing(_write(tmp_path, asked)).backends["mainframe"]
    assert isinstance(backend, LegacyBackendConfig)
    assert (backend.spare_connections, backend.spare_max_age) == (2, 2.0)
    for extra, problem in (
        ("spare_connections: 17", "backends.mainframe.spare_connections: must be 0-16, got 17"),
        ("spare_connections: -1", "backends.mainframe.spare_connections: must be 0-16, got -1"),
        ("spare_max_age: 0s", "backends.mainframe.spare_max_age: must be greater than 0, got '0s'"),
        (
            "spare_connections: 1, proxy_protocol: true",
            "backends.mainframe.spare_connections: cannot be used with proxy_protocol",
        ),
    ):
        bad = MINIMAL.replace("tls: null}}", f"tls: null, {extra}}}}}")
        assert _problems(tmp_path, bad) == [problem]


def test_session_tickets_default_to_two_and_can_be_turned_off(tmp_path: Path) -> None:
    """The client port sends OpenSSL's 2 TLS 1.3 tickets unless ``session_tickets`` says
    otherwise (0: none)."""
    tls = "tls: {cert: a.crt, key: a.key}"
    default = load_routing(_write(tmp_path, MINIMAL.replace("tls: null}\n", tls + "}\n")))
    assert default.listen.tls is not None and default.listen.tls.session_tickets == 2
    none = tls.replace("}", ", session_tickets: 0}")
    off = load_routing(_write(tmp_path, MINIMAL.replace("tls: null}\n", none + "}\n")))
    assert off.listen.tls is not None and off.listen.tls.session_tickets == 0


#: Both backends of the shipped routing.yaml: var/'s CA, and the gateway's client certificate.
MUTUAL_TLS = ClientTls(
    REPO_ROUTING.parent / "var/tls/ca.crt",
    "localhost",
    REPO_ROUTING.parent / "var/tls/gateway-client.crt",
    REPO_ROUTING.parent / "var/tls/gateway-client.key",
)


def test_the_shipped_routing_yaml_is_valid() -> None:
    """The repository's default routing.yaml loads: lookups on the mainframe (a connection to it
    opened ahead of each request) under a canary plan towards persons-v2 (which their shadow
    reaches), the rest on the mainframe."""
    config = load_routing(REPO_ROUTING)
    assert (config.listen.host, config.listen.port) == ("0.0.0.0", 5000)
    assert (config.admin.host, config.admin.port) == ("127.0.0.1", 9100)
    assert config.backends["mainframe"] == LegacyBackendConfig(
        "mainframe",
        "127.0.0.1",
        5001,
        MUTUAL_TLS,
        spare_connections=1,
    )
    persons = config.backends["persons-v2"]
    assert isinstance(persons, GrpcBackendConfig) and persons.tls == MUTUAL_TLS
    assert [r.backends for r in config.routes] == [("mainframe",), ("mainframe",)]
    lookups = config.routes[0]
    assert lookups.canary is not None and lookups.canary.candidate == "persons-v2"
    assert [shadow.backend for shadow in lookups.shadows] == ["persons-v2"]
    assert config.routes[-1].match.is_catch_all


def test_load_raises_one_error_with_every_problem(tmp_path: Path) -> None:
    """Loading does not stop at the first problem: all of them come in one ConfigError."""
    text = MINIMAL.replace("port: 0", "port: high").replace("deadline: 5s", "deadline: soon")
    with pytest.raises(ConfigError) as caught:
        load_routing(_write(tmp_path, text))
    assert caught.value.problems == [
        "listen.port: expected an integer, got 'high'",
        "routes[0].deadline: bad duration 'soon' (expected e.g. 500ms, 10s, 1m)",
    ]


def test_a_valid_file_has_no_problems(tmp_path: Path) -> None:
    """check_config answers an empty list for a good file."""
    assert _problems(tmp_path, VALID) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("version: 1", "version: 2", "version: unsupported version 2 (expected 1)"),
        (
            "tls: null}",
            "tls: null, backlog: 5}",
            "listen.backlog: unknown key (expected host, port, tls, proxy_protocol)",
        ),
        ("port: 0", "port: 70000", "listen.port: port 70000 is outside 0-65535"),
        ("port: 0", "port: '5000'", "listen.port: expected an integer, got '5000'"),
        ("port: 0", "port: true", "listen.port: expected an integer, got True"),
        ("host: 127.0.0.1", "host: ''", "listen.host: expected a non-empty string, got ''"),
        (
            "tls: null}",
            "tls: {cert: a.crt}}",
            "listen.tls.key: required",
        ),
        (
            "tls: null}",
            "tls: [a.crt, a.key]}",
            "listen.tls: expected a mapping with keys cert, key, min_version, ciphers, "
            "session_tickets, got ['a.crt', 'a.key']",
        ),
        (
            "tls: null}",
            "tls: {cert: a.crt, key: a.key, min_version: TLSv1.1}}",
            "listen.tls.min_version: expected TLSv1.2 or TLSv1.3, got 'TLSv1.1'",
        ),
        (
            "tls: null}",
            "tls: {cert: a.crt, key: a.key, session_tickets: 9}}",
            "listen.tls.session_tickets: expected 0-8, got 9",
        ),
        (
            "tls: null}",
            "tls: {cert: a.crt, key: a.key, session_tickets: -1}}",
            "listen.tls.session_tickets: expected 0-8, got -1",
        ),
        (
            "tls: null}",
            "tls: {cert: a.crt, key: a.key, session_tickets: no}}",
            "listen.tls.session_tickets: expected an integer, got False",
        ),
        (
            "tls: null}",
            "tls: {cert: a.crt, key: a.key, ciphers: 'ECDHE;rm -rf'}}",
            "listen.tls.ciphers: expected an OpenSSL cipher string like ECDHE+AESGCM, "
            "got 'ECDHE;rm -rf'",
        ),
        (
            'address: "127.0.0.1:5001"',
            'address: "127.0.0.1"',
            "backends.mainframe.address: expected host:port with a port in 1-65535, "
            "got '127.0.0.1'",
        ),
        (
            'address: "127.0.0.1:5001"',
            'address: "127.0.0.1:0"',
            "backends.mainframe.address: expected host:port with a port in 1-65535, "
            "got '127.0.0.1:0'",
        ),
        (
            "kind: legacy",
            "kind: soap",
            # The message lists every kind of gateway.config.kinds.
            f"backends.mainframe.kind: unknown kind 'soap' (known: {', '.join(BACKEND_KINDS)})",
        ),
        ("kind: legacy, ", "", "backends.mainframe.kind: required"),
        (
            "tls: null}}",
            "tls: null, deadline: 5s}}",
            "backends.mainframe.deadline: unknown key "
            "(expected kind, address, tls, connect_timeout, max_connections, queue_target, "
            "proxy_protocol, tls_resumption, breaker, spare_connections, spare_max_age)",
        ),
        (
            "tls: null}}",
            "tls: {ca: ca.crt, verify: false}}}",
            "backends.mainframe.tls.verify: unknown key (expected ca, server_name, cert, key)",
        ),
        (
            "tls: null}}",
            "tls: {ca: ca.crt, cert: gateway-client.crt}}}",
            "backends.mainframe.tls.key: required with a client certificate (cert and key)",
        ),
        (
            "tls: null}}",
            "tls: null, connect_timeout: 0ms}}",
            "backends.mainframe.connect_timeout: must be greater than 0, got '0ms'",
        ),
        (
            "tls: null}}",
            "tls: null, max_connections: 0}}",
            "backends.mainframe.max_connections: must be greater than 0, got 0",
        ),
        ("deadline: 5s", "deadline: 0s", "routes[0].deadline: must be greater than 0, got '0s'"),
        (
            "deadline: 5s",
            "deadline: 5",
            "routes[0].deadline: bad duration 5 (expected e.g. 500ms, 10s, 1m)",
        ),
        (
            "deadline: 5s",
            "deadline: -1s",
            "routes[0].deadline: bad duration '-1s' (expected e.g. 500ms, 10s, 1m)",
        ),
        (
            "backend: mainframe",
            "backend: persons-v2",
            "routes[0].backend: unknown backend 'persons-v2'",
        ),
        ("name: all, ", "", "routes[0].name: required"),
        (
            "name: all",
            "name: all routes",
            "routes[0].name: a name is letters, digits, '_', '.', '-' (at most 63), "
            "got 'all routes'",
        ),
        (
            "deadline: 5s}",
            "deadline: 5s, shadow: []}",
            "routes[0].shadow: expected a non-empty list of shadows, got []",
        ),
        (
            "deadline: 5s}",
            "deadline: 5s, mirror: []}",
            "routes[0].mirror: unknown key (expected name, match, backend, split, deadline, "
            "shadow, noise, compare, thresholds, canary)",
        ),
        (
            "backend: mainframe, ",
            "",
            "routes[0].backend: required (or split)",
        ),
        ("routes: [", "routes: [] #", "routes: expected a non-empty list of routes, got []"),
        (
            "routes: [{name: all, match: {}, backend: mainframe, deadline: 5s}]",
            "",
            "routes: required",
        ),
    ],
)
def test_each_problem_is_named_by_its_yaml_path(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    """A single mistake yields exactly one message naming its path and the bad value."""
    assert old in MINIMAL
    assert _problems(tmp_path, MINIMAL.replace(old, new, 1)) == [problem]


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        (
            "{read_timeout: 10 s}",
            "limits.read_timeout: bad duration '10 s' (expected e.g. 500ms, 10s, 1m)",
        ),
        ("{read_timeout: 0s}", "limits.read_timeout: must be greater than 0, got '0s'"),
        ("{max_connections: 0}", "limits.max_connections: must be greater than 0, got 0"),
        (
            "{grace_period: 1h}",
            "limits.grace_period: bad duration '1h' (expected e.g. 500ms, 10s, 1m)",
        ),
        ("{handshake_timeout: 0s}", "limits.handshake_timeout: must be greater than 0, got '0s'"),
        (
            "{first_byte_timeout: 3}",
            "limits.first_byte_timeout: bad duration 3 (expected e.g. 500ms, 10s, 1m)",
        ),
        (
            "{max_connections_per_address: -1}",
            "limits.max_connections_per_address: must be greater than 0, got -1",
        ),
        ("{max_in_flight: 0}", "limits.max_in_flight: must be greater than 0, got 0"),
        (
            "{handshakes_per_address: 0}",
            "limits.handshakes_per_address: must be greater than 0, got 0",
        ),
        ("{failed_logons: {max: 0}}", "limits.failed_logons.max: must be greater than 0, got 0"),
        (
            "{failed_logons: {window: 5}}",
            "limits.failed_logons.window: bad duration 5 (expected e.g. 500ms, 10s, 1m)",
        ),
        (
            "{timeout: 1s}",
            "limits.timeout: unknown key (expected read_timeout, max_connections, grace_period, "
            "handshake_timeout, shed_lag, first_byte_timeout, max_connections_per_address, "
            "handshakes_per_address, max_in_flight, "
            "failed_logons)",
        ),
        (
            "5s",
            "limits: expected a mapping with keys read_timeout, max_connections, grace_period, "
            "handshake_timeout, shed_lag, first_byte_timeout, max_connections_per_address, "
            "handshakes_per_address, max_in_flight, "
            "failed_logons, got '5s'",
        ),
    ],
)
def test_limit_problems(tmp_path: Path, limits: str, problem: str) -> None:
    """Durations need a unit, bounds must be positive, and unknown limits are named."""
    assert _problems(tmp_path, f"{MINIMAL}limits: {limits}\n") == [problem]


def test_a_misspelt_key_is_unknown_and_the_right_one_missing(tmp_path: Path) -> None:
    """Both facts are reported: the key given is unknown and the key needed is absent."""
    assert _problems(tmp_path, MINIMAL.replace("tls: null}", "tsl: null}", 1)) == [
        "listen.tls: required",
        "listen.tsl: unknown key (expected host, port, tls, proxy_protocol)",
    ]


def test_a_bad_backend_name_is_named(tmp_path: Path) -> None:
    """Backend names become metric labels, so they are plain; routes still see the name."""
    text = MINIMAL.replace("backends: {mainframe:", "backends: {main frame:")
    assert _problems(tmp_path, text) == [
        "backends.main frame: a backend name is letters, digits, '_', '.', '-' (at most 63)",
        "routes[0].backend: unknown backend 'mainframe'",
    ]


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    """A misspelt section is reported instead of silently ignored."""
    assert _problems(tmp_path, f"{MINIMAL}rotues: []\n") == [
        "rotues: unknown key (expected version, listen, admin, limits, sessions, backends, "
        "routes, shadowing, canary, audit, logging)"
    ]


def test_admission_limits_are_read(tmp_path: Path) -> None:
    """The handshake and first-byte timeouts and the per-address and in-flight bounds."""
    limits = (
        "limits: {handshake_timeout: 2s, first_byte_timeout: 500ms,"
        " max_connections_per_address: 8, max_in_flight: 32}\n"
    )
    assert load_routing(_write(tmp_path, f"{MINIMAL}{limits}")).limits == Limits(
        handshake_timeout=2.0,
        first_byte_timeout=0.5,
        max_connections_per_address=8,
        max_in_flight=32,
    )


def test_the_failed_logon_limit_is_read_and_defaults_to_10_in_5_minutes(tmp_path: Path) -> None:
    """``limits.failed_logons``: per customer and source address; either key may be left out."""
    limits = "limits: {failed_logons: {max: 3}}\n"
    assert load_routing(_write(tmp_path, f"{MINIMAL}{limits}")).limits == Limits(
        failed_logons=FailedLogons(max=3, window=300.0)
    )
    assert Limits().failed_logons == FailedLogons(max=10, window=300.0)


def test_every_backend_kind_has_a_breaker_on_by_default(tmp_path: Path) -> None:
    """``breaker: {failures, open_for}`` on a backend; absent, 5 failures and 2 s."""
    text = MINIMAL.replace("tls: null}}", "tls: null, breaker: {failures: 3}}}", 1)
    assert text != MINIMAL
    config = load_routing(_write(tmp_path, text))
    assert config.backends["mainframe"].breaker == Breaker(failures=3, open_for=2.0)
    assert load_routing(_write(tmp_path, MINIMAL)).backends["mainframe"].breaker == Breaker()


def test_breaker_problems_are_named(tmp_path: Path) -> None:
    """A bad breaker value is named by its path."""
    text = MINIMAL.replace("tls: null}}", "tls: null, breaker: {open_for: 0s, fails: 1}}}", 1)
    assert _problems(tmp_path, text) == [
        "backends.mainframe.breaker.open_for: must be greater than 0, got '0s'",
        "backends.mainframe.breaker.fails: unknown key (expected failures, open_for)",
    ]


def test_grace_period_may_be_zero(tmp_path: Path) -> None:
    """A zero grace period is legal: shut down by cancelling at once."""
    assert load_routing(_write(tmp_path, f"{MINIMAL}limits: {{grace_period: 0s}}\n")).limits == (
        Limits(grace_period=0.0)
    )


@pytest.mark.parametrize(
    ("match", "problem"),
    [
        (
            "{operation: [lokup]}",
            "routes[0].match.operation[0]: unknown operation 'lokup' "
            "(known: logon, change_password, lookup, subscribe, unsubscribe)",
        ),
        (
            "{operation: lookup}",
            "routes[0].match.operation: expected a non-empty list, got 'lookup'",
        ),
        ("{operation: []}", "routes[0].match.operation: expected a non-empty list, got []"),
        (
            "{transaction: [PRIV, priv]}",
            "routes[0].match.transaction[1]: expected a 4-character transaction code like PRIV, "
            "got 'priv'",
        ),
        (
            "{customer: [0012]}",
            'routes[0].match.customer[0]: expected a quoted customer number like "0012", got 10',
        ),
        (
            '{customer: ["12345"]}',
            'routes[0].match.customer[0]: expected a quoted customer number like "0012", '
            "got '12345'",
        ),
        (
            "{pnr: [x]}",
            "routes[0].match.pnr: unknown key (expected operation, transaction, customer, user)",
        ),
        (
            '{user: ["DEMO00012"]}',
            "routes[0].match.user[0]: expected a user id of 1-8 characters, got 'DEMO00012'",
        ),
        (
            "{user: ['  ']}",
            "routes[0].match.user[0]: expected a user id of 1-8 characters, got '  '",
        ),
        ("{user: [7]}", "routes[0].match.user[0]: expected a user id of 1-8 characters, got 7"),
    ],
)
def test_match_problems(tmp_path: Path, match: str, problem: str) -> None:
    """Match values are checked item by item, against the closed operation list."""
    text = MINIMAL.replace(
        "routes: [", f"routes: [{{name: first, match: {match}, backend: mainframe, deadline: 1s}}, "
    )
    assert _problems(tmp_path, text) == [problem]


def test_a_space_padded_customer_number_is_that_customer(tmp_path: Path) -> None:
    """Config customers compare as numbers, like the old client's "  12"."""
    text = MINIMAL.replace(
        "routes: [",
        'routes: [{name: c, match: {customer: ["  12"]}, backend: mainframe, deadline: 1s}, ',
    )
    assert load_routing(_write(tmp_path, text)).routes[0].match.customers == frozenset({12})


def test_unreadable_file_and_bad_yaml_are_problems(tmp_path: Path) -> None:
    """A missing file, broken YAML and duplicate keys are reported, not raised as tracebacks."""
    [missing] = check_config(tmp_path / "nope.yaml")
    assert missing.startswith(f"cannot read {tmp_path / 'nope.yaml'}")
    [broken] = _problems(tmp_path, "version: [1\n")
    assert broken.startswith("not valid YAML:")
    assert "\n" not in broken
    assert _problems(tmp_path, f"{MINIMAL}version: 1\n") == ["line 5: duplicate key 'version'"]
    assert _problems(tmp_path, "- just\n- a list\n") == [
        "(top level): expected a mapping with keys version, listen, admin, limits, sessions, "
        "backends, routes, shadowing, canary, audit, logging, got ['just', 'a list']"
    ]


def test_a_bad_backend_is_reported_once_not_again_at_its_routes(tmp_path: Path) -> None:
    """Routes naming a backend with its own problems do not repeat them as unknown names."""
    text = MINIMAL.replace('address: "127.0.0.1:5001"', 'address: "nowhere"')
    assert _problems(tmp_path, text) == [
        "backends.mainframe.address: expected host:port with a port in 1-65535, got 'nowhere'"
    ]


def test_sessions_idle_is_a_real_key_with_the_mainframe_default(tmp_path: Path) -> None:
    """docs/sessions.md's sessions.idle: 30 minutes when absent, any positive duration, and
    the section's problems named by their path."""
    assert load_routing(_write(tmp_path, MINIMAL)).sessions == Sessions(idle=1800.0)
    given = load_routing(_write(tmp_path, f"{MINIMAL}sessions: {{idle: 20m}}\n"))
    assert given.sessions == Sessions(idle=1200.0)
    assert _problems(tmp_path, f"{MINIMAL}sessions: {{idle: 0s}}\n") == [
        "sessions.idle: must be greater than 0, got '0s'"
    ]
    assert _problems(tmp_path, f"{MINIMAL}sessions: {{ttl: 20m}}\n") == [
        "sessions.ttl: unknown key (expected idle, store, timeout, password_file, fan_out_timeout)"
    ]


def test_sessions_store_is_memory_or_a_redis_url_and_timeout_a_positive_duration(
    tmp_path: Path,
) -> None:
    """The shared session store: in memory by default, Redis when given its URL; a bad URL
    is named by its path and never echoes a password it may carry."""
    default = load_routing(_write(tmp_path, MINIMAL)).sessions
    assert (default.store, default.timeout) == (None, 0.05)
    memory = load_routing(_write(tmp_path, f"{MINIMAL}sessions: {{store: memory}}\n"))
    assert memory.sessions.store is None
    text = f"{MINIMAL}sessions: {{store: 'redis://:pw@10.0.0.5:6379/2', timeout: 20ms}}\n"
    shared = load_routing(_write(tmp_path, text)).sessions
    assert (shared.store, shared.timeout) == ("redis://:pw@10.0.0.5:6379/2", 0.02)
    assert _problems(tmp_path, f"{MINIMAL}sessions: {{store: redis}}\n") == [
        "sessions.store: expected memory or a redis:// or rediss:// URL, got 'redis'"
    ]
    secret = f"{MINIMAL}sessions: {{store: 'http://u:secret@host/'}}\n"
    assert _problems(tmp_path, secret) == [
        "sessions.store: expected memory or a redis:// or rediss:// URL, got a URL"
    ]
    assert _problems(tmp_path, f"{MINIMAL}sessions: {{timeout: 0s}}\n") == [
        "sessions.timeout: must be greater than 0, got '0s'"
    ]
    text = f"{MINIMAL}sessions: {{store: 'redis://10.0.0.5/0', password_file: secret/redis}}\n"
    with_secret = load_routing(_write(tmp_path, text)).sessions
    assert with_secret.password_file == tmp_path / "secret" / "redis"  # beside routing.yaml

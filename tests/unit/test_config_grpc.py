"""``kind: grpc`` in routing.yaml: target forms, balancing, keepalive, and every problem named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.backends.grpc_config import Balancing, GrpcBackendConfig, Target, grpc_target
from gateway.backends.grpc_wire import (
    ACCEPTED_PING_INTERVAL_S,
    DEFAULT_KEEPALIVE_S,
    MAX_CONNECTION_AGE_GRACE_S,
    MAX_CONNECTION_AGE_S,
    MIN_KEEPALIVE_S,
    client_keepalive_options,
    server_keepalive_options,
)
from gateway.config import ClientTls, check_config, load_routing

HEAD = """\
version: 1
listen: {host: 127.0.0.1, port: 0, tls: null}
routes: [{name: all, match: {}, backend: modern, deadline: 5s}]
backends:
  modern:
"""


def _routing(tmp_path: Path, backend: str) -> Path:
    path = tmp_path / "routing.yaml"
    body = textwrap.indent(textwrap.dedent(backend), " " * 4)
    path.write_text(HEAD + body, encoding="utf-8")
    return path


def _modern(tmp_path: Path, backend: str) -> GrpcBackendConfig:
    config = load_routing(_routing(tmp_path, backend)).backends["modern"]
    assert isinstance(config, GrpcBackendConfig)
    return config


def test_host_port_becomes_a_dns_target_with_the_defaults(tmp_path: Path) -> None:
    """``host:port`` as before: resolved by DNS, round_robin, 30s keepalive."""
    config = _modern(tmp_path, "kind: grpc\naddress: cpr-services:50051\ntls: null\n")
    assert config.target == Target("dns:///cpr-services:50051", ("cpr-services",))
    assert config.balancing is Balancing.ROUND_ROBIN
    assert config.keepalive == DEFAULT_KEEPALIVE_S == 30.0


def test_every_key_lands_in_its_field(tmp_path: Path) -> None:
    """A target URI, pick_first and a keepalive in minutes; TLS verifies the target's host."""
    config = _modern(
        tmp_path,
        """\
        kind: grpc
        address: "dns:///cpr-services.cpr.svc:50051"
        tls: {ca: null}
        balancing: pick_first
        keepalive: 2m
        """,
    )
    assert config.target == Target("dns:///cpr-services.cpr.svc:50051", ("cpr-services.cpr.svc",))
    assert config.tls == ClientTls(None, None)
    assert (config.balancing, config.keepalive) == (Balancing.PICK_FIRST, 120.0)
    assert config.server_name == "cpr-services.cpr.svc"


@pytest.mark.parametrize(
    ("address", "uri", "hosts"),
    [
        ("127.0.0.1:50051", "dns:///127.0.0.1:50051", ("127.0.0.1",)),
        ("[::1]:50051", "dns:///[::1]:50051", ("::1",)),
        ("dns:///localhost:50051", "dns:///localhost:50051", ("localhost",)),
        (
            "ipv4:127.0.0.1:50051,127.0.0.1:50052",
            "ipv4:127.0.0.1:50051,127.0.0.1:50052",
            ("127.0.0.1", "127.0.0.1"),
        ),
        ("ipv4:10.0.0.7:443", "ipv4:10.0.0.7:443", ("10.0.0.7",)),
        (
            "ipv6:[::1]:50051,[fd00::2]:50051",
            "ipv6:[::1]:50051,[fd00::2]:50051",
            ("::1", "fd00::2"),
        ),
    ],
)
def test_target_forms(address: str, uri: str, hosts: tuple[str, ...]) -> None:
    """Each accepted spelling and the target grpc is given for it."""
    assert grpc_target(address) == Target(uri, hosts)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        (
            "50051",
            "expected host:port, dns:///host:port, ipv4:ADDR:PORT[,...] or ipv6:[ADDR]:PORT[,...], "
            "got '50051'",
        ),
        (
            "dns://8.8.8.8/cpr:50051",
            "a dns: target is dns:///host:port (no DNS server named), "
            "got 'dns://8.8.8.8/cpr:50051'",
        ),
        ("dns:///cpr-services", "a dns: target is dns:///host:port, got 'dns:///cpr-services'"),
        ("ipv4:127.0.0.1", "ipv4: '127.0.0.1' is not ADDR:PORT with a port in 1-65535"),
        ("ipv4:127.0.0.1:50051,", "ipv4: '' is not ADDR:PORT with a port in 1-65535"),
        ("ipv4:cpr:50051", "ipv4: 'cpr:50051' is not ADDR:PORT with a port in 1-65535"),
        ("ipv4:127.0.0.1:0", "ipv4: '127.0.0.1:0' is not ADDR:PORT with a port in 1-65535"),
        ("ipv4:[::1]:50051", "ipv4: '[::1]:50051' is not ADDR:PORT"),
        ("ipv6:127.0.0.1:50051", "ipv6: '127.0.0.1:50051' is not [ADDR]:PORT"),
        ("ipv6:::1:50051", "ipv6: '::1:50051' is not [ADDR]:PORT with a port in 1-65535"),
        (
            "unix:/run/cpr.sock",
            "expected host:port, dns:///host:port, ipv4:ADDR:PORT[,...] or "
            "ipv6:[ADDR]:PORT[,...], got 'unix:/run/cpr.sock'",
        ),
    ],
)
def test_a_bad_address_is_named_by_its_path(tmp_path: Path, address: str, problem: str) -> None:
    """A target grpc would misread or that names no port fails at load, with the value."""
    path = _routing(tmp_path, f'kind: grpc\naddress: "{address}"\ntls: null\n')
    assert check_config(path) == [f"backends.modern.address: {problem}"]


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (
            "balancing: least_request",
            "backends.modern.balancing: expected round_robin or pick_first, got 'least_request'",
        ),
        (
            "keepalive: 5s",
            "backends.modern.keepalive: must be within 10s-60m (the services accept pings down "
            "to half the shortest), got '5s'",
        ),
        (
            "keepalive: 61m",
            "backends.modern.keepalive: must be within 10s-60m (the services accept pings down "
            "to half the shortest), got '61m'",
        ),
        (
            "keepalive: 30",
            "backends.modern.keepalive: bad duration 30 (expected e.g. 500ms, 10s, 1m)",
        ),
        ("keepalive: 0s", "backends.modern.keepalive: must be greater than 0, got '0s'"),
        (
            "balance: round_robin",
            "backends.modern.balance: unknown key (expected kind, address, tls, balancing, "
            "keepalive, breaker)",
        ),
    ],
)
def test_bad_balancing_and_keepalive_are_named(tmp_path: Path, keys: str, problem: str) -> None:
    """One mistake, one message naming its path and value."""
    path = _routing(tmp_path, f"kind: grpc\naddress: 127.0.0.1:50051\ntls: null\n{keys}\n")
    assert check_config(path) == [problem]


def test_tls_over_several_hosts_needs_a_server_name(tmp_path: Path) -> None:
    """Replicas at different addresses share no host name to verify: tls.server_name says it."""
    several = 'kind: grpc\naddress: "ipv4:10.0.0.1:50051,10.0.0.2:50051"\n'
    assert check_config(_routing(tmp_path, several + "tls: {ca: null}\n")) == [
        "backends.modern.tls.server_name: required when the address names several hosts"
    ]
    named = _modern(tmp_path, several + "tls: {ca: null, server_name: cpr-services}\n")
    assert named.server_name == "cpr-services"
    plaintext = _modern(tmp_path, several + "tls: null\n")
    assert plaintext.target.hosts == ("10.0.0.1", "10.0.0.2")


def test_one_host_twice_is_verified_by_that_host(tmp_path: Path) -> None:
    """Two replicas on one machine (the local fleet): the certificate's name is that host."""
    text = 'kind: grpc\naddress: "ipv4:127.0.0.1:50051,127.0.0.1:50052"\ntls: {ca: null}\n'
    assert _modern(tmp_path, text).server_name == "127.0.0.1"


def test_the_services_accept_every_keepalive_the_config_accepts() -> None:
    """The pairing: the services take pings twice as often as the shortest keepalive, pings
    without calls included, and the channel keeps pinging an idle connection."""
    assert ACCEPTED_PING_INTERVAL_S * 2 <= MIN_KEEPALIVE_S
    server = dict(server_keepalive_options())
    assert server == {
        "grpc.keepalive_permit_without_calls": 1,
        "grpc.http2.min_ping_interval_without_data_ms": ACCEPTED_PING_INTERVAL_S * 1000,
        # Connections end now and then so that a channel re-resolves its dns: name.
        "grpc.max_connection_age_ms": MAX_CONNECTION_AGE_S * 1000,
        "grpc.max_connection_age_grace_ms": MAX_CONNECTION_AGE_GRACE_S * 1000,
    }
    client = dict(client_keepalive_options(MIN_KEEPALIVE_S))
    assert client["grpc.keepalive_time_ms"] == MIN_KEEPALIVE_S * 1000
    assert client["grpc.keepalive_permit_without_calls"] == 1
    assert client["grpc.http2.max_pings_without_data"] == 0

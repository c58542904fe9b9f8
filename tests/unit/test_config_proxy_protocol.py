"""routing.yaml's PROXY protocol keys: ``listen.proxy_protocol.trusted`` and a legacy backend's
``proxy_protocol``, with the problems they can have."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.config import load_routing
from gateway.config.schema import ProxyProtocol
from gateway.errors import ConfigError

TEMPLATE = """\
version: 1
listen: {{host: 127.0.0.1, port: 0, tls: null{listen}}}
backends: {{mainframe: {{kind: legacy, address: "127.0.0.1:5001", tls: null{backend}}}}}
routes: [{{name: all, match: {{}}, backend: mainframe, deadline: 5s}}]
"""


def _write(tmp_path: Path, listen: str = "", backend: str = "") -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(TEMPLATE.format(listen=listen, backend=backend), encoding="utf-8")
    return path


def test_absent_means_nobody_sends_a_header(tmp_path: Path) -> None:
    """Without the keys, the socket's peer is the client and backends get no header."""
    config = load_routing(_write(tmp_path))
    assert config.listen.proxy_protocol is None
    backend = config.backends["mainframe"]
    assert isinstance(backend, LegacyBackendConfig) and backend.proxy_protocol is False


def test_trusted_networks_and_a_proxied_backend_load(tmp_path: Path) -> None:
    """The agreed spelling loads into networks and a flag."""
    listen = ", proxy_protocol: {trusted: [127.0.0.1/32, 10.0.0.0/8, '2001:db8::/32']}"
    config = load_routing(_write(tmp_path, listen, ", proxy_protocol: true"))
    assert config.listen.proxy_protocol == ProxyProtocol(
        (
            ipaddress.ip_network("127.0.0.1/32"),
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("2001:db8::/32"),
        )
    )
    backend = config.backends["mainframe"]
    assert isinstance(backend, LegacyBackendConfig) and backend.proxy_protocol is True


@pytest.mark.parametrize(
    ("listen", "backend", "problems"),
    [
        (
            ", proxy_protocol: {trusted: []}",
            "",
            ["listen.proxy_protocol.trusted: expected a non-empty list, got []"],
        ),
        (
            ", proxy_protocol: {trusted: [10.0.0.1/8, nonsense]}",
            "",
            [
                "listen.proxy_protocol.trusted[0]: not a network in CIDR notation: '10.0.0.1/8'"
                " (10.0.0.1/8 has host bits set)",
                "listen.proxy_protocol.trusted[1]: not a network in CIDR notation: 'nonsense'"
                " ('nonsense' does not appear to be an IPv4 or IPv6 network)",
            ],
        ),
        (
            ", proxy_protocol: {trusted: [10.0.0.0/8], version: 1}",
            "",
            ["listen.proxy_protocol.version: unknown key (expected trusted)"],
        ),
        (", proxy_protocol: {}", "", ["listen.proxy_protocol.trusted: required"]),
        (
            "",
            ", proxy_protocol: yes-please",
            ["backends.mainframe.proxy_protocol: expected true or false, got 'yes-please'"],
        ),
    ],
    ids=["empty", "bad-networks", "unknown-key", "no-trusted", "backend-not-a-flag"],
)
def test_problems_name_the_path_and_the_value(
    tmp_path: Path, listen: str, backend: str, problems: list[str]
) -> None:
    """Every mistake is reported at its YAML path, with the bad value."""
    with pytest.raises(ConfigError) as caught:
        load_routing(_write(tmp_path, listen, backend))
    assert caught.value.problems == problems


@pytest.mark.parametrize(
    ("host", "trusted"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("::ffff:10.1.2.3", True),
        ("192.0.2.7", False),
        ("::1", False),
        ("not-an-address", False),
    ],
)
def test_trusts_is_membership_in_a_network(host: str, trusted: bool) -> None:
    """A peer is trusted when its address lies in a listed network, IPv4-mapped or not."""
    networks = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))
    assert ProxyProtocol(networks).trusts(host) is trusted

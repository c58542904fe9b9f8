"""emulator.yaml's ``listen.proxy_protocol.trusted``: the sources whose connections open with a
PROXY v2 header, loaded into networks, with path-qualified problems."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from cpr_mainframe import load_config
from gateway.config.schema import ProxyProtocol
from gateway.errors import ConfigError

TEMPLATE = """\
listen: {{host: 127.0.0.1, port: 5001{proxy}}}
tls: null
register: reg.sqlite
state: state.sqlite
customers:
  - number: "0001"
    allow: [192.0.2.0/24]
    users:
      - {{id: U1, password: "Demo#123", grants: [PRIV]}}
"""


def _write(tmp_path: Path, proxy: str) -> Path:
    path = tmp_path / "emulator.yaml"
    path.write_text(TEMPLATE.format(proxy=proxy), encoding="utf-8")
    return path


def test_absent_means_the_socket_s_peer_is_the_client(tmp_path: Path) -> None:
    """Without the key no source may send a header."""
    assert load_config(_write(tmp_path, "")).listen.proxy_protocol is None


def test_trusted_networks_load(tmp_path: Path) -> None:
    """The gateway's spelling: ``proxy_protocol: {trusted: [CIDR, ...]}``."""
    config = load_config(
        _write(tmp_path, ", proxy_protocol: {trusted: [127.0.0.1/32, 10.0.0.0/8]}")
    )
    networks = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))
    assert config.listen.proxy_protocol == ProxyProtocol(networks)


@pytest.mark.parametrize(
    ("proxy", "problems"),
    [
        (
            ", proxy_protocol: {trusted: []}",
            ["listen.proxy_protocol.trusted: expected a non-empty list, got []"],
        ),
        (
            ", proxy_protocol: {trusted: [10.0.0.1/8]}",
            [
                "listen.proxy_protocol.trusted[0]: not a network in CIDR notation: '10.0.0.1/8'"
                " (10.0.0.1/8 has host bits set)"
            ],
        ),
        (", proxy_protocol: {}", ["listen.proxy_protocol.trusted: required"]),
        (
            ", proxy_protocol: {trusted: [10.0.0.0/8], v: 2}",
            ["listen.proxy_protocol.v: unknown key (expected trusted)"],
        ),
    ],
    ids=["empty", "host-bits", "no-trusted", "unknown-key"],
)
def test_problems_name_the_path(tmp_path: Path, proxy: str, problems: list[str]) -> None:
    """Each mistake is reported at its YAML path with the bad value."""
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, proxy))
    assert caught.value.problems == problems

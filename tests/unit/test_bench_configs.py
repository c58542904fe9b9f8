"""What a benchmark run writes: configs the real loaders accept, HAProxy doing the gateway's job."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cpr_accounts.digests import PasswordCost
from cpr_bench.configs import (
    READ_TIMEOUT_S,
    TlsFiles,
    Via,
    check_hold,
    emulator_yaml,
    gateway_yaml,
    haproxy_cfg,
    write_pem,
)
from cpr_devtools.pki import ensure_dev_pki
from cpr_mainframe.config import load_config
from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.config import load_routing
from gateway.config.schema import Limits


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    pki = ensure_dev_pki(tmp_path_factory.mktemp("tls"))
    return TlsFiles(pki.cert("gateway"), pki.key("gateway"), pki.ca_cert)


@pytest.mark.parametrize("via", [Via.LEGACY, Via.MODERN])
def test_gateway_configs_load(via: Via, tls: TlsFiles, tmp_path: Path) -> None:
    """Each gateway scenario's routing.yaml is valid, with the ports and TLS it was given."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        gateway_yaml(
            via,
            port=15000,
            admin_port=19100,
            tls=tls,
            emulator_port=15001,
            emulator_ca=tls.ca,
            modern_port=15051,
        )
    )
    config = load_routing(path)
    assert (config.listen.port, config.admin.port) == (15000, 19100)
    assert config.listen.tls is not None
    assert config.limits.read_timeout == READ_TIMEOUT_S
    assert [r.backends for r in config.routes] == [
        ("mainframe",) if via is Via.LEGACY else ("persons-v2",)
    ]


@pytest.mark.parametrize("resuming", [True, False])
def test_the_gateways_tls_resumption_follows_the_scenario(
    resuming: bool, tls: TlsFiles, tmp_path: Path
) -> None:
    """The legacy backend resumes sessions unless the run asks for full handshakes, and the
    key is written only then (a tree from before it loads the default run's config)."""
    path = tmp_path / "routing.yaml"
    text = gateway_yaml(Via.LEGACY, port=15000, admin_port=19100, tls=tls, emulator_port=15001,
                        emulator_ca=tls.ca, modern_port=0, tls_resumption=resuming)  # fmt: skip
    path.write_text(text)
    backend = load_routing(path).backends["mainframe"]
    assert isinstance(backend, LegacyBackendConfig)
    assert backend.tls_resumption is resuming
    assert ("tls_resumption" in text) is not resuming


@pytest.mark.parametrize("lines", ["all", "errors"])
def test_the_gateways_request_lines_follow_the_run(
    lines: str, tls: TlsFiles, tmp_path: Path
) -> None:
    """``--request-lines errors`` gives every gateway ``logging.requests: errors``; the key is
    written only then."""
    path = tmp_path / "routing.yaml"
    text = gateway_yaml(Via.LEGACY, port=15000, admin_port=19100, tls=tls, emulator_port=15001,
                        emulator_ca=tls.ca, modern_port=0, request_lines=lines)  # fmt: skip
    path.write_text(text)
    assert load_routing(path).logging.requests == lines
    assert ("logging" in text) is (lines != "all")


@pytest.mark.parametrize("product_limits", [False, True], ids=["bench", "product"])
def test_admission_is_opened_up_except_for_the_admission_phases(
    product_limits: bool, tls: TlsFiles, tmp_path: Path
) -> None:
    """The hop-cost phases' gateways admit whatever the connection limit allows (one client
    address, held connections, thousands of requests framed at once); the admission phases'
    gateway has the product's defaults."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        gateway_yaml(
            Via.LEGACY,
            port=15000,
            admin_port=19100,
            tls=tls,
            emulator_port=15001,
            emulator_ca=tls.ca,
            modern_port=15051,
            product_limits=product_limits,
        )
    )
    limits = load_routing(path).limits
    if product_limits:
        assert replace(limits, grace_period=Limits().grace_period) == Limits()
    else:
        assert limits.max_connections_per_address == limits.max_connections
        assert limits.max_in_flight == limits.max_connections
        assert limits.first_byte_timeout == limits.read_timeout == READ_TIMEOUT_S


def test_shadow_config_shadows_lookups_to_the_modern_side(tmp_path: Path) -> None:
    """The shadow scenario sends lookups to the mainframe and names persons-v2 as their shadow."""
    text = gateway_yaml(
        Via.SHADOW,
        port=1,
        admin_port=2,
        tls=None,
        emulator_port=3,
        emulator_ca=tmp_path / "ca.crt",
        modern_port=4,
    )
    assert "shadow:" in text
    assert "persons-v2" in text
    assert "sample: 100%" in text


@pytest.mark.parametrize("store", [None, "redis://127.0.0.1:6390/0"])
def test_sessions_configs_broker_every_lookup_in_the_store_given(
    store: str | None, tmp_path: Path
) -> None:
    """Logons stay on the mainframe and lookups go to the services, so every lookup needs its
    session; the Redis scenario names the store, the embedded one does not."""
    path = tmp_path / "routing.yaml"
    via = Via.SESSIONS if store is None else Via.SESSIONS_REDIS
    path.write_text(
        gateway_yaml(
            via,
            port=1,
            admin_port=2,
            tls=None,
            emulator_port=3,
            emulator_ca=tmp_path / "ca.crt",
            modern_port=4,
            session_store=store,
        )
    )
    config = load_routing(path)
    assert [(r.name, r.backends) for r in config.routes] == [
        ("lookups", ("persons-v2",)),
        ("rest", ("mainframe",)),
    ]
    assert config.sessions.store == store


@pytest.mark.parametrize("audit", [False, True])
def test_the_audit_option_gives_the_gateway_the_shipped_audit_log(
    audit: bool, tmp_path: Path
) -> None:
    """`bench --audit`: each gateway keeps the audit log in the run's directory; without it,
    none (the figures to compare)."""
    path = tmp_path / "routing.yaml"
    where = tmp_path / "audit"
    path.write_text(
        gateway_yaml(
            Via.LEGACY,
            port=1,
            admin_port=2,
            tls=None,
            emulator_port=3,
            emulator_ca=tmp_path / "ca.crt",
            modern_port=4,
            audit=where if audit else None,
        )
    )
    config = load_routing(path).audit
    if audit:
        assert config is not None and (config.directory, config.fsync.value) == (where, "interval")
    else:
        assert config is None


def test_plaintext_gateway_config_has_no_tls(tmp_path: Path, tls: TlsFiles) -> None:
    """tls=None is a plaintext client hop; the mainframe hop keeps TLS."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        gateway_yaml(
            Via.LEGACY,
            port=1,
            admin_port=2,
            tls=None,
            emulator_port=3,
            emulator_ca=tls.ca,
            modern_port=4,
        )
    )
    config = load_routing(path)
    assert config.listen.tls is None
    assert getattr(config.backends["mainframe"], "tls", None) is not None


def test_emulator_config_loads_with_zero_service_time(tmp_path: Path, tls: TlsFiles) -> None:
    """The emulator runs the shipped customers with no service time and cheap digests."""
    path = tmp_path / "emulator.yaml"
    path.write_text(emulator_yaml(15001, tls, tmp_path / "r.sqlite", tmp_path / "s.sqlite"))
    config = load_config(path)
    assert config.service_time_ms == 0
    assert config.listen.port == 15001
    assert config.tls is not None
    assert config.password_cost == PasswordCost(memory_kib=8, iterations=1, lanes=1)
    assert {c.number for c in config.customers} == {1, 2}


def test_haproxy_terminates_tls_like_the_gateway(tmp_path: Path) -> None:
    """TLS with the given certificate on the client side, verified TLS to the emulator with
    sessions resumed (as the gateway's tls_resumption does by default), TCP mode."""
    pem = tmp_path / "gateway.pem"
    cfg = haproxy_cfg(port=5000, pem=pem, emulator_port=5001, emulator_ca=Path("/ca"), threads=2)
    assert "mode tcp" in cfg
    assert f"bind 127.0.0.1:5000 ssl crt {pem}" in cfg
    assert "server emulator 127.0.0.1:5001 ssl verify required ca-file /ca" in cfg
    assert "no-ssl-reuse" not in cfg
    # The gateway's admission towards the mainframe: 64 per worker, waiting up to the deadline.
    assert "verifyhost localhost maxconn 128" in cfg
    assert "timeout queue 30s" in cfg
    assert "nbthread 2" in cfg


def test_haproxy_with_full_handshakes_does_not_reuse_sessions(tmp_path: Path) -> None:
    """The breakdown's --full-handshakes: the same but for ``no-ssl-reuse``."""
    args = {"port": 5000, "pem": tmp_path / "g.pem", "emulator_port": 5001,
            "emulator_ca": Path("/ca"), "threads": 1}  # fmt: skip
    reusing, full = haproxy_cfg(**args), haproxy_cfg(**args, reuse=False)  # type: ignore[arg-type]
    assert " no-ssl-reuse maxconn 64" in full
    assert reusing == full.replace(" no-ssl-reuse", "")


def test_haproxy_plaintext_client_side() -> None:
    """Without a PEM the client side is plaintext; the emulator side stays TLS."""
    cfg = haproxy_cfg(port=5000, pem=None, emulator_port=5001, emulator_ca=Path("/ca"), threads=1)
    assert "bind 127.0.0.1:5000\n" in cfg
    assert "5001 ssl verify required" in cfg


def test_pem_holds_certificate_then_key_for_the_owner_only(tmp_path: Path, tls: TlsFiles) -> None:
    """HAProxy's PEM is certificate and key in one file, mode 0600."""
    pem = write_pem(tls.cert, tls.key, tmp_path / "x.pem")
    assert pem.read_bytes() == tls.cert.read_bytes() + tls.key.read_bytes()
    assert pem.stat().st_mode & 0o077 == 0


def test_holds_near_the_read_timeout_are_refused() -> None:
    """A hold that the servers' read timeout would cut short is a settings error."""
    check_hold(READ_TIMEOUT_S - 10)
    with pytest.raises(ValueError, match="read timeout"):
        check_hold(READ_TIMEOUT_S)

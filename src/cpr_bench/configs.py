"""The configs a benchmark run writes: emulator.yaml, routing.yaml per gateway, haproxy.cfg.

Pure text builders, so that what is measured can be read (and tested) without
starting anything. Every path written is absolute; every address is loopback.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cpr_devtools.haproxy import tcp_head
from cpr_mainframe.config import default_config_path
from gateway.backends.legacy_config import LEGACY_MAX_CONNECTIONS

#: Argon2id's lowest accepted cost: the benchmark logs on once per measurement and
#: measures lookups, not password hashing.
PASSWORD_COST = {"memory_kib": 8, "iterations": 1, "lanes": 1}
#: Seconds a client may take over its record. Above the longest hold of held
#: connections (see :func:`check_hold`), so that held connections are not cut.
READ_TIMEOUT_S = 30
#: Connections each server (and each gateway worker) accepts: above the largest
#: hold, so that the bound measured is the server's memory, not its limit.
MAX_CONNECTIONS = 8192
#: The gateway's limits in the phases that measure what a hop costs: every client of the
#: benchmark comes from one address, the hold phase keeps thousands of connections open past
#: any first-byte deadline and then frames all their requests at one moment, so admission
#: (per address, first byte, requests in flight) is opened up to the connection limit, and
#: what is measured is the hop, not its admission (measured on its own: cpr_bench.admission).
BENCH_LIMITS = {
    "read_timeout": f"{READ_TIMEOUT_S}s",
    "first_byte_timeout": f"{READ_TIMEOUT_S}s",
    "max_connections": MAX_CONNECTIONS,
    "max_connections_per_address": MAX_CONNECTIONS,
    "max_in_flight": MAX_CONNECTIONS,
    "grace_period": "2s",
    # Nor is a connection closed at accept for the loop's lateness: a profiler's pauses
    # (cpr_bench.breakdown) must not turn into refusals.
    "shed_lag": "10s",
}
#: The emulator stands in for a mainframe with ample capacity: regions and queue
#: far above the load, so that a refusal (08) never masks what the hops cost.
REGIONS = 64
QUEUE_LIMIT = 8192
#: Per backend call; generous so that only a real stall shows as an error.
DEADLINE = "5s"


class Via(enum.StrEnum):
    """The path between the client and the mainframe emulator."""

    DIRECT = "direct"
    HAPROXY = "haproxy"
    LEGACY = "gateway-legacy"
    MODERN = "gateway-modern"
    SHADOW = "gateway-shadow"
    #: Logons at the mainframe, lookups at the services: every lookup is rewritten with the
    #: session's token for the services. Sessions in the embedded store (workers share them).
    SESSIONS = "gateway-sessions"
    #: The same, with sessions shared in Redis (sessions.store), as a fleet runs.
    SESSIONS_REDIS = "gateway-sessions-redis"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Certificate and key a server presents, and the CA that clients trust."""

    cert: Path
    key: Path
    ca: Path


def check_hold(hold_s: float) -> None:
    """ValueError when connections would be held longer than the servers' read timeout."""
    if hold_s >= READ_TIMEOUT_S - 5:
        raise ValueError(f"hold of {hold_s:g}s is too close to the {READ_TIMEOUT_S}s read timeout")


def emulator_yaml(
    port: int, tls: TlsFiles | None, register: Path, state: Path, base: Path | None = None
) -> str:
    """The shipped emulator.yaml (customers, users, tasks) with the benchmark's settings."""
    raw: dict[str, Any] = yaml.safe_load((base or default_config_path()).read_text())
    raw.update(
        listen={"host": "127.0.0.1", "port": port},
        tls=None if tls is None else {"cert": str(tls.cert), "key": str(tls.key)},
        register=str(register),
        state=str(state),
        password_cost=PASSWORD_COST,
        regions=REGIONS,
        queue_limit=QUEUE_LIMIT,
        max_connections=MAX_CONNECTIONS,
        read_timeout_s=READ_TIMEOUT_S,
        service_time_ms=0,
        maintenance=False,
        maintenance_windows=[],
    )
    return yaml.safe_dump(raw, sort_keys=False)


def gateway_yaml(
    via: Via,
    *,
    port: int,
    admin_port: int,
    tls: TlsFiles | None,
    emulator_port: int,
    emulator_ca: Path,
    modern_port: int,
    session_store: str | None = None,
    audit: Path | None = None,
    product_limits: bool = False,
    tls_resumption: bool = True,
    request_lines: str = "all",
    spare_connections: int = 0,
) -> str:
    """routing.yaml of one gateway scenario: legacy only, modern only, legacy with a shadow,
    or logons on legacy and lookups on modern (sessions in ``session_store`` when given; the
    audit log of lookups in ``audit`` when given, as routing.yaml ships it). ``limits`` are
    the benchmark's (:data:`BENCH_LIMITS`), or with ``product_limits`` the product's own
    defaults (the admission phases, cpr_bench.admission). ``tls_resumption`` False: the
    legacy backend does a full handshake per connection, ``spare_connections`` its spares,
    and ``request_lines`` is the
    gateway's ``logging.requests`` (each key is left out at its default, so that a tree
    from before it runs the same configuration: breakdown --against)."""
    mainframe: dict[str, object] = {
        "kind": "legacy",
        "address": f"127.0.0.1:{emulator_port}",
        "tls": {"ca": str(emulator_ca), "server_name": "localhost"},
        "connect_timeout": "1s",
    }
    if not tls_resumption:
        mainframe["tls_resumption"] = False
    if spare_connections:
        mainframe["spare_connections"] = spare_connections
    modern = {"kind": "grpc", "address": f"127.0.0.1:{modern_port}", "tls": None}
    backends: dict[str, object]
    if via is Via.LEGACY:
        backends = {"mainframe": mainframe}
        routes = [_route("all", {}, "mainframe")]
    elif via is Via.MODERN:
        backends = {"persons-v2": modern}
        routes = [_route("all", {}, "persons-v2")]
    elif via is Via.SHADOW:
        backends = {"mainframe": mainframe, "persons-v2": modern}
        lookups = _route("lookups", {"operation": ["lookup"]}, "mainframe")
        lookups["shadow"] = [{"backend": "persons-v2", "sample": "100%", "deadline": "1s"}]
        routes = [lookups, _route("rest", {}, "mainframe")]
    elif via in (Via.SESSIONS, Via.SESSIONS_REDIS):
        backends = {"mainframe": mainframe, "persons-v2": modern}
        lookups = _route("lookups", {"operation": ["lookup"]}, "persons-v2")
        routes = [lookups, _route("rest", {}, "mainframe")]
    else:
        raise ValueError(f"{via} is not a gateway")
    config = {
        "version": 1,
        "listen": {
            "host": "127.0.0.1",
            "port": port,
            "tls": None if tls is None else {"cert": str(tls.cert), "key": str(tls.key)},
        },
        "admin": {"host": "127.0.0.1", "port": admin_port},
        "limits": {"grace_period": "2s"} if product_limits else BENCH_LIMITS,
        "backends": backends,
        "routes": routes,
    }
    if session_store is not None:
        config["sessions"] = {"store": session_store}
    if request_lines != "all":
        config["logging"] = {"requests": request_lines}
    if audit is not None:
        config["audit"] = {"directory": str(audit), "fsync": "interval", "fsync_interval": "1s"}
    return yaml.safe_dump(config, sort_keys=False)


def _route(name: str, match: dict[str, object], backend: str) -> dict[str, object]:
    return {"name": name, "match": match, "backend": backend, "deadline": DEADLINE}


def haproxy_cfg(
    *,
    port: int,
    pem: Path | None,
    emulator_port: int,
    emulator_ca: Path,
    threads: int,
    reuse: bool = True,
) -> str:
    """HAProxy in TCP mode doing what the gateway's legacy route does on the wire.

    Client side: TLS with the gateway's certificate (``pem``: certificate and key in one
    file), or plaintext when None. Mainframe side: TLS verified against the development
    CA, the last session resumed (HAProxy's default, ``ssl-reuse``), as the gateway does
    by default (``tls_resumption``). At most as many connections to the mainframe at
    once as the gateway's workers open together (``max_connections`` each), the rest
    waiting in HAProxy's queue: the same admission policy. In TCP mode HAProxy connects
    to the server when the client connects, not when its request arrives, so a queued
    client's wait includes its own think time; the queue timeout is therefore the client
    timeout, not the gateway's route deadline.

    ``reuse`` False: a full handshake per connection (``no-ssl-reuse``), for a run whose
    gateway has ``tls_resumption: false`` (cpr_bench.breakdown --full-handshakes).
    """
    towards_mainframe = LEGACY_MAX_CONNECTIONS * threads
    tls = f" ssl crt {pem}" if pem is not None else ""
    threads_line = f"nbthread {threads}"
    return "\n".join(
        [
            *tcp_head(maxconn=MAX_CONNECTIONS, timeout_s=READ_TIMEOUT_S, settings=[threads_line]),
            "frontend cpr",
            f"    bind 127.0.0.1:{port}{tls}",
            "    default_backend mainframe",
            "backend mainframe",
            f"    server emulator 127.0.0.1:{emulator_port} ssl verify required"
            f" ca-file {emulator_ca} sni str(localhost) verifyhost localhost"
            f"{'' if reuse else ' no-ssl-reuse'} maxconn {towards_mainframe}",
            "",
        ]
    )


def write_pem(cert: Path, key: Path, pem: Path) -> Path:
    """Certificate and key in one file, as HAProxy wants them; readable by the owner only."""
    pem.touch(mode=0o600, exist_ok=True)
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem

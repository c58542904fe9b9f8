"""``kind: legacy`` in routing.yaml: a CPR Direkte server reached over TCP, TLS optional.

The configuration is apart from the adapter (:mod:`gateway.backends.legacy`), like the
gRPC kind's, so that reading routing.yaml loads no adapter; both halves are named in
:data:`gateway.config.kinds.BACKEND_KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.breaker import Breaker, parse_breaker
from gateway.config.load import RoutingReader
from gateway.config.reader import address, flag, positive_duration, positive_int
from gateway.config.schema import ClientTls

#: A legacy backend's default ``max_connections`` per gateway process.
LEGACY_MAX_CONNECTIONS = 64


@dataclass(frozen=True, slots=True)
class LegacyBackendConfig:
    """A CPR Direkte server (the mainframe or its emulator), one TCP connection per request."""

    name: str
    host: str
    port: int
    tls: ClientTls | None
    connect_timeout: float = 1.0
    #: Connections open to it at once from one gateway process; further requests wait
    #: for one within their route's deadline. A burst of clients then reaches the
    #: mainframe as a steady stream, and the gateway's memory stays bounded.
    max_connections: int = LEGACY_MAX_CONNECTIONS
    #: Once the wait for one of those connections has stayed above this for 100 ms, a
    #: request that finds none free is answered 08 at once instead of joining the line
    #: (gateway.backends.connection_line); a wait within it ends the refusals.
    queue_target: float = 0.05
    #: Open each connection with a PROXY protocol v2 header naming the client, so that the
    #: server's per-address rules (the customers' IP allow-lists) see the client, not us.
    proxy_protocol: bool = False
    #: Offer the TLS session of a recent verified handshake to new connections, as HAProxy
    #: does (gateway.backends.tls_resumption): a call then costs no certificate check.
    tls_resumption: bool = True
    #: After this many failed calls in a row, calls fail at once for a while (a dead
    #: mainframe costs its clients no deadline each).
    breaker: Breaker = field(default_factory=Breaker)
    kind: str = "legacy"


# Defaults come from an instance: on a slotted dataclass, ``LegacyBackendConfig.port`` is a
# descriptor.
_DEFAULTS = LegacyBackendConfig("", "", 0, None)


def parse_config(reader: RoutingReader, name: str, raw: object, path: str) -> LegacyBackendConfig:
    """``address`` and ``tls`` (null for plaintext); ``connect_timeout``, ``max_connections``,
    ``queue_target``, ``proxy_protocol``, ``tls_resumption``, ``breaker``."""
    keys = (
        "kind", "address", "tls", "connect_timeout", "max_connections", "queue_target",
        "proxy_protocol", "tls_resumption", "breaker",
    )  # fmt: skip
    section = reader.section(raw, path, keys)
    section.get("kind", lambda value, _path: value)
    host_port = section.get("address", address)
    tls = section.get("tls", reader.client_tls)
    timeout = section.get("connect_timeout", positive_duration, _DEFAULTS.connect_timeout)
    most = section.get("max_connections", positive_int, _DEFAULTS.max_connections)
    target = section.get("queue_target", positive_duration, _DEFAULTS.queue_target)
    proxied = section.get("proxy_protocol", flag, _DEFAULTS.proxy_protocol)
    resuming = section.get("tls_resumption", flag, _DEFAULTS.tls_resumption)
    breaker = section.get("breaker", lambda v, p: parse_breaker(reader, v, p), _DEFAULTS.breaker)
    section.done()  # raises Skip after any bad value, so host_port is a pair below
    return LegacyBackendConfig(
        name, *host_port, tls, timeout, most, target, proxied, resuming, breaker
    )

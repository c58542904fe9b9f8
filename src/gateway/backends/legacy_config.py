"""``kind: legacy`` in routing.yaml: a CPR Direkte server reached over TCP, TLS optional.

The configuration is apart from the adapter (:mod:`gateway.backends.legacy`), like the
gRPC kind's, so that reading routing.yaml loads no adapter; both halves are named in
:data:`gateway.config.kinds.BACKEND_KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.breaker import Breaker, parse_breaker
from gateway.config.load import RoutingReader
from gateway.config.reader import Problem, address, flag, integer, positive_duration, positive_int
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
    #: Connections kept open ahead of the requests that will use them, per process
    #: (gateway.backends.spares): a request then waits for no connect or handshake.
    spare_connections: int = 0
    #: A spare unused this long is closed; requests further apart than this get none.
    spare_max_age: float = 5.0
    kind: str = "legacy"


# Defaults come from an instance: on a slotted dataclass, ``LegacyBackendConfig.port`` is a
# descriptor.
_DEFAULTS = LegacyBackendConfig("", "", 0, None)


def parse_config(reader: RoutingReader, name: str, raw: object, path: str) -> LegacyBackendConfig:
    """``address`` and ``tls`` (null for plaintext); ``connect_timeout``, ``max_connections``,
    ``queue_target``, ``proxy_protocol``, ``tls_resumption``, ``breaker``, ``spare_connections``,
    ``spare_max_age``."""
    keys = (
        "kind", "address", "tls", "connect_timeout", "max_connections", "queue_target",
        "proxy_protocol", "tls_resumption", "breaker", "spare_connections", "spare_max_age",
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
    spares = section.get("spare_connections", _spare_count, _DEFAULTS.spare_connections)
    spare_age = section.get("spare_max_age", positive_duration, _DEFAULTS.spare_max_age)
    if spares and proxied:
        # The PROXY header names the client and goes first, before the request is known.
        reader.problem(f"{path}.spare_connections", "cannot be used with proxy_protocol")
    section.done()  # raises Skip after any bad value, so host_port is a pair below
    return LegacyBackendConfig(
        name, *host_port, tls, timeout, most, target, proxied, resuming, breaker, spares, spare_age
    )


def _spare_count(raw: object, path: str) -> int:
    value = integer(raw, path)
    if not 0 <= value <= _MAX_SPARES:
        raise Problem(f"must be 0-{_MAX_SPARES}, got {value}")
    return value


#: More spares than this would hold the mainframe's connections for nothing: one request
#: takes one, and the next is opened behind it in a handshake's time.
_MAX_SPARES = 16

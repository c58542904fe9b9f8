"""``kind: grpc`` in routing.yaml: the new services behind one gRPC target.

The configuration is apart from the adapter (:mod:`gateway.backends.grpc`) so that reading
routing.yaml, and a gateway whose routes are all legacy, never load grpcio: every worker
process would pay its memory (docs/benchmarks.md, "Memory figures once quoted in code
comments"). Both halves are named in
:data:`gateway.config.kinds.BACKEND_KINDS`; the adapter, and grpcio with it, is imported
when the first ``kind: grpc`` backend is built.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

from gateway.backends.grpc_wire import DEFAULT_KEEPALIVE_S, MAX_KEEPALIVE_S, MIN_KEEPALIVE_S
from gateway.config.breaker import Breaker, parse_breaker
from gateway.config.load import RoutingReader
from gateway.config.reader import Problem, Skip, address, positive_duration, show
from gateway.config.schema import ClientTls

_TARGET_FORMS = "host:port, dns:///host:port, ipv4:ADDR:PORT[,...] or ipv6:[ADDR]:PORT[,...]"


class Balancing(enum.Enum):
    """How a channel spreads calls over the addresses its target resolves to."""

    #: Each call to the next ready address in turn (with one address, that one).
    ROUND_ROBIN = "round_robin"
    #: Every call to the first address that connects, the next one only when it fails.
    PICK_FIRST = "pick_first"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a channel connects: a gRPC target URI, and the hosts it names."""

    #: What grpc resolves: ``dns:///host:port``, ``ipv4:a:p,b:p`` or ``ipv6:[a]:p,[b]:p``.
    uri: str
    #: Every host named, in order (one for ``dns:``): TLS verifies the first by default.
    hosts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GrpcBackendConfig:
    """The new services behind one gRPC target (``kind: grpc``)."""

    name: str
    target: Target
    tls: ClientTls | None
    balancing: Balancing = Balancing.ROUND_ROBIN
    #: Seconds without traffic after which each connection is pinged (grpc_wire).
    keepalive: float = DEFAULT_KEEPALIVE_S
    #: After this many failed calls in a row, calls fail at once for a while.
    breaker: Breaker = field(default_factory=Breaker)
    kind: str = "grpc"

    @property
    def server_name(self) -> str:
        """The name the services' certificate must carry: ``tls.server_name`` or the host."""
        named = self.tls.server_name if self.tls is not None else None
        return named or self.target.hosts[0]


# Defaults come from an instance: on a slotted dataclass, ``GrpcBackendConfig.keepalive`` is a
# descriptor.
_DEFAULTS = GrpcBackendConfig("", Target("", ("",)), None)


def parse_config(reader: RoutingReader, name: str, raw: object, path: str) -> GrpcBackendConfig:
    """``address`` and ``tls`` (null for plaintext); ``balancing``, ``keepalive``, ``breaker``."""
    keys = ("kind", "address", "tls", "balancing", "keepalive", "breaker")
    section = reader.section(raw, path, keys)
    section.get("kind", lambda value, _path: value)
    target = section.get("address", grpc_target)
    tls = section.get("tls", reader.client_tls)
    balancing = section.get("balancing", _balancing, _DEFAULTS.balancing)
    keepalive = section.get("keepalive", _keepalive, _DEFAULTS.keepalive)
    breaker = section.get("breaker", lambda v, p: parse_breaker(reader, v, p), _DEFAULTS.breaker)
    section.done()  # raises Skip after any bad value, so every value is real below
    if tls is not None and tls.server_name is None and len(set(target.hosts)) > 1:
        reader.problem(f"{path}.tls.server_name", "required when the address names several hosts")
        raise Skip
    return GrpcBackendConfig(name, target, tls, balancing, keepalive, breaker)


def grpc_target(raw: object, _path: str = "") -> Target:
    """``host:port`` (resolved by DNS, as ``dns:///host:port``) or a gRPC target URI."""
    if not isinstance(raw, str):
        raise Problem(f"expected {_TARGET_FORMS}, got {show(raw)}")
    scheme, colon, rest = raw.partition(":")
    if colon and scheme == "dns":
        return _dns(rest, raw)
    if colon and scheme in ("ipv4", "ipv6"):
        return _addresses(scheme, rest)
    try:
        host, port = address(raw)
    except Problem:
        raise Problem(f"expected {_TARGET_FORMS}, got {show(raw)}") from None
    return Target(f"dns:///{_joined(host, port)}", (host,))


def _dns(rest: str, raw: str) -> Target:
    if not rest.startswith("///"):
        raise Problem(f"a dns: target is dns:///host:port (no DNS server named), got {show(raw)}")
    try:
        host, port = address(rest[3:])
    except Problem:
        raise Problem(f"a dns: target is dns:///host:port, got {show(raw)}") from None
    return Target(f"dns:///{_joined(host, port)}", (host,))


def _addresses(scheme: str, rest: str) -> Target:
    """``ipv4:`` / ``ipv6:`` and a comma-separated list of addresses, each with its port."""
    version = 4 if scheme == "ipv4" else 6
    form = "ADDR:PORT" if version == 4 else "[ADDR]:PORT"
    pairs: list[tuple[str, int]] = []
    for part in rest.split(","):
        try:
            host, port = address(part)
            parsed = ipaddress.ip_address(host)
        except (Problem, ValueError):
            raise Problem(f"{scheme}: {show(part)} is not {form} with a port in 1-65535") from None
        if parsed.version != version or (version == 6) != part.startswith("["):
            raise Problem(f"{scheme}: {show(part)} is not {form}")
        pairs.append((str(parsed), port))
    uri = f"{scheme}:" + ",".join(_joined(host, port) for host, port in pairs)
    return Target(uri, tuple(host for host, _port in pairs))


def _joined(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _balancing(raw: object, _path: str) -> Balancing:
    for policy in Balancing:
        if raw == policy.value:
            return policy
    raise Problem(f"expected {' or '.join(p.value for p in Balancing)}, got {show(raw)}")


def _keepalive(raw: object, path: str) -> float:
    seconds = positive_duration(raw, path)
    if not MIN_KEEPALIVE_S <= seconds <= MAX_KEEPALIVE_S:
        raise Problem(
            f"must be within {MIN_KEEPALIVE_S:g}s-{MAX_KEEPALIVE_S / 60:g}m (the services accept "
            f"pings down to half the shortest), got {show(raw)}"
        )
    return seconds

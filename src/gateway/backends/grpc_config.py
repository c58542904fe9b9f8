"""``kind: grpc`` in routing.yaml: the new services behind one gRPC address.

The configuration is apart from the adapter (:mod:`gateway.backends.grpc`) so that reading
routing.yaml, and a gateway whose routes are all legacy, never load grpcio (about 10 MB
per process, which counts with several workers; docs/benchmarks.md, P6). The adapter is
imported when the first ``kind: grpc`` backend is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.backends.base import register
from gateway.config import RoutingReader, register_backend_parser
from gateway.config.reader import address as parse_address
from gateway.config.schema import ClientTls
from gateway.observe.events import EventBus

if TYPE_CHECKING:
    from gateway.backends.grpc import GrpcBackend


@dataclass(frozen=True, slots=True)
class GrpcBackendConfig:
    """The new services behind one gRPC address (``kind: grpc``)."""

    name: str
    host: str
    port: int
    tls: ClientTls | None
    kind: str = "grpc"


def parse_config(reader: RoutingReader, name: str, raw: object, path: str) -> GrpcBackendConfig:
    """``address`` and ``tls`` (null for plaintext)."""
    section = reader.section(raw, path, ("kind", "address", "tls"))
    section.get("kind", lambda value, _path: value)
    host, port = section.get("address", parse_address)
    tls = section.get("tls", reader.client_tls)
    section.done()
    return GrpcBackendConfig(name, host, port, tls)


def build(config: GrpcBackendConfig, bus: EventBus | None) -> GrpcBackend:
    """The adapter for ``config``; the first call loads grpcio."""
    from gateway.backends.grpc import GrpcBackend  # noqa: PLC0415  (see the module docstring)

    return GrpcBackend.from_config(config, bus)


register("grpc", build)
register_backend_parser("grpc", parse_config)

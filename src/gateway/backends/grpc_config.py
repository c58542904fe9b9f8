"""``kind: grpc`` in routing.yaml: the new services behind one gRPC address.

The configuration is apart from the adapter (:mod:`gateway.backends.grpc`) so that reading
routing.yaml, and a gateway whose routes are all legacy, never load grpcio: every worker
process would pay its memory (docs/benchmarks.md, "Memory figures once quoted in code
comments"). Both halves are named in
:data:`gateway.config.kinds.BACKEND_KINDS`; the adapter, and grpcio with it, is imported
when the first ``kind: grpc`` backend is built.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.load import RoutingReader
from gateway.config.reader import address
from gateway.config.schema import ClientTls


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
    host_port = section.get("address", address)
    tls = section.get("tls", reader.client_tls)
    section.done()  # raises Skip after any bad value, so host_port is a pair below
    return GrpcBackendConfig(name, *host_port, tls)

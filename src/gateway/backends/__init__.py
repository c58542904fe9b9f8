"""Backends, one module per ``kind`` behind one :class:`Backend` protocol.

Importing a kind's module registers it, so every kind is imported here; the gRPC adapter
itself is loaded only when a ``kind: grpc`` backend is built (:mod:`.grpc_config`).
"""

from gateway.backends import grpc_config
from gateway.backends.base import Backend, build_backend, register, registered_kinds
from gateway.backends.legacy import LegacyBackend

__all__ = [
    "Backend",
    "LegacyBackend",
    "build_backend",
    "grpc_config",
    "register",
    "registered_kinds",
]

"""Backends, one module per ``kind`` behind one :class:`Backend` protocol.

Importing an adapter module registers its kind, so every adapter is imported here.
"""

from gateway.backends.base import Backend, build_backend, register, registered_kinds
from gateway.backends.grpc import GrpcBackend
from gateway.backends.legacy import LegacyBackend

__all__ = [
    "Backend",
    "GrpcBackend",
    "LegacyBackend",
    "build_backend",
    "register",
    "registered_kinds",
]

"""Backends, one adapter per ``kind`` behind one :class:`Backend` protocol.

Each kind is a config module (``legacy_config``, ``grpc_config``: its frozen config and the
parser of its routing.yaml section) beside its adapter (``legacy``, ``grpc``); the table
:data:`gateway.config.kinds.BACKEND_KINDS` names both. An adapter is imported when the
first backend of its kind is built, so a gateway without ``kind: grpc`` never loads grpcio.
"""

from gateway.backends.base import Backend, Factory, build_backend
from gateway.backends.legacy import LegacyBackend

__all__ = ["Backend", "Factory", "LegacyBackend", "build_backend"]

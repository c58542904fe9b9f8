"""Every backend ``kind:`` routing.yaml knows: the parser of its section and its adapter, together.

This table is the one place a kind is registered. The config loader finds a kind's parser
here and :func:`gateway.backends.build_backend` finds its adapter here, so nobody has to
import anything first for a kind to exist.

Both are named by import path (``module:attribute``), as uvicorn names its loops and
protocols, and loaded when first used: the parsers live beside their adapters in
:mod:`gateway.backends`, which imports this package, so importing them from here would
make config and backends import each other; and a kind's heavy libraries (grpcio for
``grpc``) are loaded only when a backend of that kind is built, never to read routing.yaml.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class BackendKind:
    """Where one kind's two halves live, as ``module:attribute`` import paths."""

    #: Reads the kind's section of routing.yaml into its frozen config: a
    #: :data:`gateway.config.load.BackendParser`. Its module loads no adapter library.
    parser: str
    #: Builds the adapter from that config: a :data:`gateway.backends.base.Factory`.
    adapter: str


#: The kinds, in the order an "unknown kind" message lists them.
BACKEND_KINDS: Mapping[str, BackendKind] = MappingProxyType(
    {
        "legacy": BackendKind(
            parser="gateway.backends.legacy_config:parse_config",
            adapter="gateway.backends.legacy:LegacyBackend.from_config",
        ),
        "grpc": BackendKind(
            parser="gateway.backends.grpc_config:parse_config",
            adapter="gateway.backends.grpc:GrpcBackend.from_config",
        ),
    }
)


def load_attribute(path: str) -> object:
    """The object ``module:attribute`` names (the attribute may be dotted), importing its module."""
    module_name, _, attribute = path.partition(":")
    found: object = importlib.import_module(module_name)
    for name in attribute.split("."):
        found = getattr(found, name)
    return found

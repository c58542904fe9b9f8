"""routing.yaml → frozen dataclasses, with path-qualified errors (see :mod:`.load`)."""

from gateway.config.diff import diff_configs, diff_tables
from gateway.config.load import (
    BACKEND_PARSERS,
    BackendParser,
    RoutingReader,
    check_config,
    load_routing,
    register_backend_parser,
)
from gateway.config.schema import (
    Admin,
    BackendConfig,
    ClientTls,
    GatewayConfig,
    LegacyBackendConfig,
    Limits,
    Listen,
    Match,
    Route,
    ServerTls,
    Split,
    SplitKey,
)

__all__ = [
    "BACKEND_PARSERS",
    "Admin",
    "BackendConfig",
    "BackendParser",
    "ClientTls",
    "GatewayConfig",
    "LegacyBackendConfig",
    "Limits",
    "Listen",
    "Match",
    "Route",
    "RoutingReader",
    "ServerTls",
    "Split",
    "SplitKey",
    "check_config",
    "diff_configs",
    "diff_tables",
    "load_routing",
    "register_backend_parser",
]

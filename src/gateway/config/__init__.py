"""routing.yaml → frozen dataclasses, with path-qualified errors (see :mod:`.load`)."""

from gateway.config.diff import diff_configs, diff_tables
from gateway.config.kinds import BACKEND_KINDS, BackendKind
from gateway.config.load import (
    BackendParser,
    RoutingReader,
    check_config,
    load_routing,
)
from gateway.config.schema import (
    Admin,
    BackendConfig,
    ClientTls,
    GatewayConfig,
    Limits,
    Listen,
    Match,
    Route,
    ServerTls,
    Sessions,
    Split,
    SplitKey,
)

__all__ = [
    "BACKEND_KINDS",
    "Admin",
    "BackendConfig",
    "BackendKind",
    "BackendParser",
    "ClientTls",
    "GatewayConfig",
    "Limits",
    "Listen",
    "Match",
    "Route",
    "RoutingReader",
    "ServerTls",
    "Sessions",
    "Split",
    "SplitKey",
    "check_config",
    "diff_configs",
    "diff_tables",
    "load_routing",
]

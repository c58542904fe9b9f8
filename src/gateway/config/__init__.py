"""routing.yaml → frozen dataclasses, with path-qualified errors (see :mod:`.load`)."""

from gateway.config.load import BACKEND_PARSERS, check_config, load_routing
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
)

__all__ = [
    "BACKEND_PARSERS",
    "Admin",
    "BackendConfig",
    "ClientTls",
    "GatewayConfig",
    "LegacyBackendConfig",
    "Limits",
    "Listen",
    "Match",
    "Route",
    "ServerTls",
    "check_config",
    "load_routing",
]

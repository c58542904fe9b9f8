"""What routing.yaml means, as frozen values: listeners, limits, named backends, ordered routes.

Everything here is already validated: :mod:`gateway.config.load` is the only
producer, and nothing downstream re-checks a name or a duration. Durations are
seconds as floats; file paths are absolute (resolved against the YAML file).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.model import Operation


@dataclass(frozen=True, slots=True)
class ServerTls:
    """Certificate and key a listener presents."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Listen:
    """The client-facing CPR Direkte listener; ``tls`` None means plaintext."""

    host: str
    port: int
    tls: ServerTls | None


@dataclass(frozen=True, slots=True)
class Admin:
    """The admin HTTP server (/metrics, /healthz, /readyz); keep it off public interfaces."""

    host: str = "127.0.0.1"
    port: int = 9100


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a client may cost us, and how long a shutdown may take."""

    #: Seconds a client has to deliver its whole request (not per read: drip-feeding does not pay).
    read_timeout: float = 10.0
    #: Concurrent client connections; beyond it a connection is accepted and closed at once.
    max_connections: int = 2048
    #: Seconds in-flight requests get to finish after a shutdown signal.
    grace_period: float = 10.0


@dataclass(frozen=True, slots=True)
class ClientTls:
    """How a backend's certificate is verified; ``ca`` None means the system trust store."""

    ca: Path | None
    server_name: str | None


@dataclass(frozen=True, slots=True)
class LegacyBackendConfig:
    """A CPR Direkte server (the mainframe or its emulator), one TCP connection per request."""

    name: str
    host: str
    port: int
    tls: ClientTls | None
    connect_timeout: float = 1.0
    kind: str = "legacy"


#: Every backend kind's config; later kinds (grpc) join this union.
BackendConfig = LegacyBackendConfig


@dataclass(frozen=True, slots=True)
class Match:
    """Which requests a route takes; a None dimension matches anything.

    Customer numbers are kept as integers so that ``"  12"`` and ``"0012"`` are
    the same customer (old clients space-pad KUNDENR).
    """

    operations: frozenset[Operation] | None = None
    transactions: frozenset[str] | None = None
    customers: frozenset[int] | None = None

    @property
    def is_catch_all(self) -> bool:
        """True for ``match: {}``."""
        return self.operations is None and self.transactions is None and self.customers is None

    def admits(self, operation: Operation, transaction: str, customer: int | None) -> bool:
        """Whether a request with these properties matches (``customer`` None: unparseable)."""
        if self.operations is not None and operation not in self.operations:
            return False
        if self.transactions is not None and transaction not in self.transactions:
            return False
        return self.customers is None or customer in self.customers

    def covered_by(self, earlier: Sequence[Match]) -> list[int] | None:
        """Indices of ``earlier`` matches that together take all this one takes, else None.

        Exact, not heuristic: it tries every combination of the values any match
        names, plus one value none names, which stands for all the others.
        """
        other_transaction, other_customer = "", -1  # values no valid match can name
        transactions = self.transactions or {other_transaction}.union(
            *(m.transactions or () for m in earlier)
        )
        customers = self.customers or {other_customer}.union(*(m.customers or () for m in earlier))
        used: set[int] = set()
        cases = itertools.product(self.operations or Operation, transactions, customers)
        for case in cases:
            taker = next((i for i, m in enumerate(earlier) if m.admits(*case)), None)
            if taker is None:
                return None
            used.add(taker)
        return sorted(used)


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the ordered route list; the first matching route wins."""

    name: str
    match: Match
    backend: str
    #: Seconds the backend gets for connect, write and read together.
    deadline: float


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """A whole, valid routing.yaml."""

    listen: Listen
    admin: Admin
    limits: Limits
    backends: Mapping[str, BackendConfig]
    routes: tuple[Route, ...]
    #: The file this was loaded from, for messages; None when built in code.
    source: Path | None = None

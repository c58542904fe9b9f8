"""What routing.yaml means, as frozen values: listeners, limits, named backends, ordered routes.

A route sends what its :class:`Match` takes to one backend or a sticky weighted
:class:`Split`, and may send sampled copies to :class:`Shadow` backends whose
answers are compared with the real one (never returned to the client);
:class:`Shadowing` bounds that work for the whole gateway.

Everything here is already validated: :mod:`gateway.config.load` is the only
producer, and nothing downstream re-checks a name or a duration. Durations are
seconds as floats; file paths are absolute (resolved against the YAML file).
"""

from __future__ import annotations

import enum
import ipaddress
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from gateway.comparison import Noise, Rules, Shadow, Thresholds
from gateway.config.audit import Audit
from gateway.config.breaker import Breaker
from gateway.config.canary import CanaryPlan, CanarySettings
from gateway.model import Operation

#: A match dimension's value type: transaction codes and user ids, or customer numbers.
T = TypeVar("T", str, int)


#: ``listen.tls.min_version`` values, lowest first (gateway.tls maps them to ssl's versions);
#: anything older is refused at load (TLS 1.0 and 1.1 are deprecated by RFC 8996).
TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")


@dataclass(frozen=True, slots=True)
class ServerTls:
    """Certificate and key a listener presents (reloaded when the files change), and what
    it accepts of a client's TLS."""

    cert: Path
    key: Path
    #: The lowest protocol version accepted: ``TLSv1.2`` or ``TLSv1.3`` (gateway.tls). The
    #: defaults are gateway.tls's, written out here: this module imports no I/O (not ssl).
    min_version: str = "TLSv1.2"
    #: TLS 1.2 cipher suites, as an OpenSSL cipher string (TLS 1.3's are OpenSSL's own).
    ciphers: str = "ECDHE+AESGCM:ECDHE+CHACHA20"
    #: TLS 1.3 session tickets sent after each full handshake (OpenSSL's and HAProxy's 2);
    #: 0 when no consumer resumes sessions, which saves the server issuing them.
    session_tickets: int = 2


@dataclass(frozen=True, slots=True)
class ProxyProtocol:
    """Sources that open every connection with a PROXY protocol v2 header (a load balancer
    in TCP mode), which then names the client; every other source must not send one."""

    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def trusts(self, host: str) -> bool:
        """True when the connection's own peer ``host`` lies in a trusted network (an
        IPv4-mapped IPv6 address counts as the IPv4 one)."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.trusted)


@dataclass(frozen=True, slots=True)
class Listen:
    """The client-facing CPR Direkte listener; ``tls`` None means plaintext."""

    host: str
    port: int
    tls: ServerTls | None
    #: Who sends a PROXY v2 header first; None: nobody (the socket's peer is the client).
    proxy_protocol: ProxyProtocol | None = None


@dataclass(frozen=True, slots=True)
class Admin:
    """The admin HTTP server (/metrics, /healthz, /readyz, /api/v1 and the dashboard); keep it
    off public interfaces."""

    host: str = "127.0.0.1"
    port: int = 9100
    #: The bearer token of /api/v1 and the dashboard (a file, e.g. a mounted Secret); None:
    #: the API answers 401 to everything, never open.
    token_file: Path | None = None


class RequestLines(enum.StrEnum):
    """Which requests get their canonical log line (``logging.requests``)."""

    #: Every request: operation, route, backend, FEJLNR, latency, peer.
    ALL = "all"
    #: Only requests a backend failed (answered 08 or 09 on its behalf); the metrics count
    #: and time every request either way.
    ERRORS = "errors"


@dataclass(frozen=True, slots=True)
class Logging:
    """What the gateway logs besides its events (``logging`` in routing.yaml)."""

    requests: RequestLines = RequestLines.ALL


@dataclass(frozen=True, slots=True)
class FailedLogons:
    """``limits.failed_logons``: at most ``max`` logons refused (01) per customer and source
    address within ``window`` seconds; beyond, that customer's logons from that address are
    answered 01 by the gateway, without asking any backend, until the oldest is a window old.
    Per gateway process."""

    max: int = 10
    window: float = 300.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a client may cost us, and how long a shutdown may take."""

    #: Seconds a client has to deliver its whole request (not per read: drip-feeding does not pay).
    read_timeout: float = 10.0
    #: Concurrent client connections per process, counted at accept (before TLS); beyond it
    #: a connection is closed at once, with no TLS work spent on it.
    max_connections: int = 2048
    #: Seconds in-flight requests get to finish after a shutdown signal.
    grace_period: float = 10.0
    #: Seconds from accept to the end of the TLS handshake (and a trusted PROXY header before
    #: it): a handshake costs CPU, so one that stalls is cut long before a request would be.
    handshake_timeout: float = 3.0
    #: While the event loop runs this late (gateway.runtime.pressure: the mean of the last
    #: 100 ms of samples), a new TLS connection is closed at accept: past its capacity a
    #: process refuses early instead of letting every admitted request grow late. A busy
    #: loop at full load runs a few milliseconds late; an overloaded one, tens.
    shed_lag: float = 0.030
    #: Seconds from the end of the handshake to the request's first byte: a connection that
    #: never sends is shed in seconds instead of holding its slot for the whole read_timeout.
    first_byte_timeout: float = 3.0
    #: Connections at once from one source address (the PROXY-named one behind a trusted
    #: balancer), so that one client cannot take every slot of max_connections.
    max_connections_per_address: int = 64
    #: TLS handshakes in progress at once per process from one source address; its other
    #: new connections wait their turn (within ``handshake_timeout``), so that a burst from
    #: one address cannot hold the CPU that every other client's handshake needs.
    handshakes_per_address: int = 4
    #: Requests being answered at once per process; beyond it a framed request is answered
    #: at once with FEJLNR 08 (project rule) instead of queueing behind the others.
    max_in_flight: int = 256
    #: Refused logons per (customer, source address) before the gateway answers that
    #: customer's logons from there 01 itself for a while (gateway.sessions.logon_guard).
    failed_logons: FailedLogons = FailedLogons()


@dataclass(frozen=True, slots=True)
class Sessions:
    """Brokered sessions: one client logon, a token per side (docs/sessions.md)."""

    #: Seconds a session lives without use: the mainframe's token expiry (spec §4.4; 30
    #: minutes by project rule). A reload applies a new value to live sessions at once.
    idle: float = 30 * 60.0
    #: Where sessions are shared: None keeps them in this process (the workers of one
    #: gateway ask each other over Unix sockets); a ``redis://`` or ``rediss://`` URL shares
    #: them between every worker and replica. Changes on restart.
    store: str | None = None
    #: Seconds each call to the shared store may take before the request goes on without it.
    timeout: float = 0.05
    #: A file holding the store's password (a mounted Secret), so that ``store`` carries
    #: none; None: the URL's own, if any. Read at start.
    password_file: Path | None = None
    #: Seconds a logon waits for the other sides to log on too (docs/sessions.md, "The
    #: other sides' logons"): the client's logon is its primary's business, so a slow or hung
    #: other side costs it this at most. A reload applies a new value at once.
    fan_out_timeout: float = 0.25


@dataclass(frozen=True, slots=True)
class ClientTls:
    """How a backend's certificate is verified; ``ca`` None means the system trust store.

    ``cert`` and ``key`` (both or neither) are the gateway's own certificate, presented to a
    backend that asks for one (mutual TLS): its identity towards the services.
    """

    ca: Path | None
    server_name: str | None
    cert: Path | None = None
    key: Path | None = None


class BackendConfig(Protocol):
    """What every backend kind's config has; each kind adds its own fields.

    A kind's config lives beside its adapter in :mod:`gateway.backends`, and
    :data:`gateway.config.kinds.BACKEND_KINDS` names its parser and adapter; nothing
    here needs to know the kinds. Configs must be frozen dataclasses: a reload keeps
    a running backend whose config compares equal.
    """

    @property
    def name(self) -> str:
        """The backend's name in routing.yaml (a metric label)."""
        ...

    @property
    def kind(self) -> str:
        """The ``kind:`` that picked the parser and picks the adapter."""
        ...

    @property
    def breaker(self) -> Breaker:
        """The backend's circuit breaker (every kind has one: gateway.backends.breaker)."""
        ...


@dataclass(frozen=True, slots=True)
class Match:
    """Which requests a route takes; a None dimension matches anything.

    Customer numbers are kept as integers so that ``"  12"`` and ``"0012"`` are
    the same customer (old clients space-pad KUNDENR); user ids are kept
    right-trimmed (see :func:`gateway.codec.user_id`).
    """

    operations: frozenset[Operation] | None = None
    transactions: frozenset[str] | None = None
    customers: frozenset[int] | None = None
    users: frozenset[str] | None = None

    @property
    def is_catch_all(self) -> bool:
        """True for ``match: {}``."""
        return (
            self.operations is None
            and self.transactions is None
            and self.customers is None
            and self.users is None
        )

    def admits(
        self, operation: Operation, transaction: str, customer: int | None, user: str = ""
    ) -> bool:
        """Whether a request with these properties matches.

        ``customer`` is None when KUNDENR is not a number; ``user`` is already
        right-trimmed.
        """
        if self.operations is not None and operation not in self.operations:
            return False
        if self.transactions is not None and transaction not in self.transactions:
            return False
        if self.customers is not None and customer not in self.customers:
            return False
        return self.users is None or user in self.users

    def covered_by(self, earlier: Sequence[Match]) -> list[int] | None:
        """Indices of ``earlier`` matches that together take all this one takes, else None.

        Exact, not heuristic: it tries every combination of the values any match
        names, plus one value none names, which stands for all the others.
        """
        used: set[int] = set()
        for case in self.cases(earlier):
            taker = next((i for i, m in enumerate(earlier) if m.admits(*case)), None)
            if taker is None:
                return None
            used.add(taker)
        return sorted(used)

    def cases(self, others: Sequence[Match]) -> Iterator[Case]:
        """One representative request for every class of requests this match takes.

        Two requests fall in one class when no match in ``others`` (or this one)
        tells them apart; a value no match names (:data:`OTHER`) stands for all of
        the values nobody names.
        """
        every = (self, *others)
        return itertools.product(
            [op for op in Operation if self.operations is None or op in self.operations],
            _values(self.transactions, OTHER.transaction, (m.transactions for m in every)),
            _values(self.customers, OTHER.customer, (m.customers for m in every)),
            _values(self.users, OTHER.user, (m.users for m in every)),
        )


#: (operation, transaction, customer, user), the arguments of :meth:`Match.admits`.
Case = tuple[Operation, str, int | None, str]


@dataclass(frozen=True, slots=True)
class _Other:
    """Values no valid match can name, each standing for "any value nobody names"."""

    transaction: str = ""  # transaction codes in a match are 4 characters
    customer: int = -1  # customer numbers are 0-9999
    user: str = ""  # user ids in a match are not empty


#: The stand-ins :meth:`Match.cases` uses for values no match names.
OTHER = _Other()


def _values(
    own: frozenset[T] | None, other: T, dimensions: Iterable[frozenset[T] | None]
) -> list[T]:
    """``own`` values sorted; or, when ``own`` is None, every value named anywhere plus ``other``.

    Sorted so that anything derived from the cases (the diff) reads the same on every run.
    """
    if own is not None:
        return sorted(own)
    named: set[T] = set()
    for dimension in dimensions:
        named.update(dimension or ())
    values = sorted(named)
    values.append(other)
    return values


class SplitKey(enum.StrEnum):
    """What a split hashes to pick a side, so that one key always lands on one side."""

    #: The person number of a lookup or subscription; a logon (no PNR) falls back to KUNDENR.
    PNR = "pnr"
    #: KUNDENR: every request of one customer goes to one side.
    CUSTOMER = "customer"


#: A split divides this many buckets; a weight of 1% is 100 buckets.
BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class Split:
    """A weighted, sticky split of a route's requests between backends.

    ``shares`` keeps the YAML order, which decides the bucket layout (see
    :mod:`gateway.routing`): list the established backend first and the new one
    last.
    """

    key: SplitKey
    #: (backend, buckets out of :data:`BUCKETS`) in YAML order; the buckets add up to BUCKETS.
    shares: tuple[tuple[str, int], ...]

    def ranges(self) -> tuple[tuple[str, int, int], ...]:
        """(backend, first bucket, end bucket) per backend: the last listed starts at 0.

        Growing the last backend's share therefore only ever adds buckets at its
        end, and every key already on it stays there.
        """
        result: list[tuple[str, int, int]] = []
        start = 0
        for backend, buckets in reversed(self.shares):
            result.append((backend, start, start + buckets))
            start += buckets
        return tuple(result)


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the ordered route list; the first matching route wins."""

    name: str
    match: Match
    #: One backend's name, or a split between backends.
    target: str | Split
    #: Seconds the backend gets for connect, write and read together.
    deadline: float
    #: Backends that get a copy; their answers are compared, never returned.
    shadows: tuple[Shadow, ...] = ()
    #: A second primary instance for noise comparisons, or None.
    noise: Noise | None = None
    #: What the comparison ignores and normalises.
    compare: Rules = field(default_factory=Rules)
    #: When a shadow's differences are enough to call, and real.
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: The step plan from this route's backend (its primary) to a candidate, which a
    #: controller follows (docs/canary.md); None: the route is as written.
    canary: CanaryPlan | None = None

    @property
    def backends(self) -> tuple[str, ...]:
        """Every backend this route may send to (one request still goes to exactly one)."""
        if isinstance(self.target, Split):
            return tuple(backend for backend, _ in self.target.shares)
        return (self.target,)

    @property
    def primary(self) -> str:
        """The established side: the one backend, or a split's first listed backend."""
        return self.target.shares[0][0] if isinstance(self.target, Split) else self.target

    @property
    def copy_backends(self) -> tuple[str, ...]:
        """Backends that get copies (shadows, then noise); each needs a session token too."""
        noise = (self.noise.backend,) if self.noise else ()
        return (*(shadow.backend for shadow in self.shadows), *noise)


@dataclass(frozen=True, slots=True)
class Retention:
    """How much of the mismatch store is kept; the older rows go first."""

    max_rows: int = 100_000
    #: Seconds a sample is kept.
    max_age: float = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Shadowing:
    """Bounds on shadow work for the whole gateway, and where mismatches are kept."""

    #: Shadowed requests being worked on at once; each costs a backend call per shadow.
    max_in_flight: int = 64
    #: Shadowed requests waiting for a slot; beyond it a copy is dropped (and counted).
    max_queued: int = 256
    #: The mismatch store: a SQLite file, or a ``postgresql://`` DSN that every replica
    #: writes into (gateway.shadow.store_db); None keeps counts and logs only.
    store: Path | str | None = None
    #: The pseudonym key (hex, mode 0600; created when missing); None: a key per process.
    key_file: Path | None = None
    retention: Retention = Retention()
    #: While the event loop runs this many seconds late, new copies are dropped (and
    #: counted): the clients' requests get the CPU (gateway.runtime.pressure).
    shed_lag: float = 0.010


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
    shadowing: Shadowing = Shadowing()
    sessions: Sessions = Sessions()
    #: Where the canary plans' state is kept (routes[].canary is each route's plan).
    canary: CanarySettings = field(default_factory=CanarySettings)
    #: The audit log of lookups (docs/audit.md); None: no audit log.
    audit: Audit | None = None
    logging: Logging = Logging()

"""Typed events the core emits, and the tiny synchronous bus that telemetry subscribes to.

The core (listener, dispatcher, app) knows nothing about metrics or logs: it emits
these values, and :mod:`.metrics` and :mod:`.logs` subscribe. Fields hold config
names and closed code lists only, never record contents and never a PNR.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from gateway.codec.framing import REASONS
from gateway.model import Operation

#: Why a connection was closed without an answer, beyond the framing reasons.
OVER_CAPACITY = "over_capacity"
#: A trusted proxy's connection did not open with a valid PROXY v2 header in time.
PROXY_HEADER = "proxy_header"
#: A source address already held ``limits.max_connections_per_address`` connections.
PER_ADDRESS = "per_address"
#: A TLS handshake did not end within ``limits.handshake_timeout`` of accept.
HANDSHAKE_TIMEOUT = "handshake_timeout"
#: A connection sent no byte within ``limits.first_byte_timeout`` of its handshake.
IDLE = "idle"
#: A TLS listener's event loop ran late (its lag over limits.shed_lag): a new
#: connection was closed at accept (gateway.server.admission).
OVERLOADED = "overloaded"
#: A framed request found ``limits.max_in_flight`` requests being answered: it was answered
#: at once with FEJLNR 08 (the one reason that gets an answer).
MAX_IN_FLIGHT = "max_in_flight"
#: What became of legacy backends' spare connections and of the requests that looked for one
#: (gateway.backends.spares; ``cpr_gateway_backend_spares_total{outcome}``): a request went on
#: a spare (``used``) or found none ready (``missed``); a spare closed unused at its age
#: (``expired``), found closed by the server (``stale``: when taken, or when it gave no answer
#: and the request went again on a new connection), or not opened at all (``failed``).
SPARE_OUTCOMES = ("used", "missed", "expired", "stale", "failed")
#: Every ``RequestRejected.reason``; metrics pre-create one series per reason.
REJECT_REASONS = (
    *REASONS,
    OVER_CAPACITY,
    PROXY_HEADER,
    PER_ADDRESS,
    HANDSHAKE_TIMEOUT,
    IDLE,
    OVERLOADED,
    MAX_IN_FLIGHT,
)


@dataclass(frozen=True, slots=True)
class ConnectionOpened:
    """A client connection was accepted and is being served."""

    peer: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """A served client connection is gone, answered or not."""

    peer: str


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """A connection was closed without an answer (unframeable request, no capacity, too
    slow), or a framed request was answered 08 at once for capacity (``max_in_flight``)."""

    peer: str
    reason: str
    #: Bytes received before giving up; never the bytes themselves (they may hold a PNR).
    received: int
    #: What was wrong, when the reason alone does not say (a PROXY header's problem).
    detail: str = ""
    #: Connections refused alike: those refused at accept are reported once per reason and
    #: address for each batch of accepts (the peer is then the address alone).
    count: int = 1


@dataclass(frozen=True, slots=True)
class RequestCompleted:
    """A framed request was answered (by the backend, or with 09 on its behalf)."""

    peer: str
    operation: Operation
    route: str
    backend: str
    #: The two FEJLNR characters of the answer.
    fejlnr: str
    duration_s: float
    #: Why the backend failed (its error message), or empty when it answered.
    error: str = ""


@dataclass(frozen=True, slots=True)
class LookupAnswered:
    """A request about one person (a lookup or a subscription change) was answered: what the
    audit log keeps of it (gateway.audit), emitted beside its RequestCompleted.

    The one event that holds a PNR in clear: the audit log pseudonymises it before anything
    is written, no other subscriber reads it, and its repr leaves it out.
    """

    #: The client's IP address (the one a trusted PROXY header named, behind a balancer).
    source: str
    #: KUNDENR and BRUGER-ID as the client sent them.
    customer: str
    user: str
    pnr: str = field(repr=False)
    #: CPRTRANS, and what the request asked (lookup, subscribe, unsubscribe).
    transaction: str
    operation: Operation
    route: str
    #: The side that answered (a fallback's side when the routed one could not).
    backend: str
    #: The two FEJLNR characters of the answer.
    fejlnr: str


@dataclass(frozen=True, slots=True)
class BackendFailed:
    """A backend call failed; the client got 09 (or, for a canary read, the primary's answer)."""

    backend: str
    route: str
    #: ``unavailable``, ``timeout``, ``protocol``, ``open`` (its circuit breaker was open:
    #: the backend was not called) or ``unauthenticated`` (the services refused the gateway
    #: itself: a configuration problem, logged ``backend_unauthenticated``).
    kind: str
    #: The error's message: a short fact with no PNR (the backends guarantee it).
    detail: str


@dataclass(frozen=True, slots=True)
class TlsSession:
    """A legacy backend's TLS session resumption (gateway.backends.tls_resumption): a full
    handshake's session ``stored``, to be offered to the next connections (about once per
    5 minutes per process while the server resumes them), or an offered one ``refused``
    by the server (single-use tickets, a restart, new ticket keys): that call was answered
    after a full handshake, and nothing is offered to the server for a while."""

    backend: str
    outcome: str


#: Every ``TlsSession.outcome``.
TLS_SESSION_OUTCOMES = ("stored", "refused")


#: Every ``BreakerChanged.state`` (gateway.backends.breaker.State).
BREAKER_STATES = ("closed", "open", "half_open")


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    """A backend's circuit breaker changed state (gateway.backends.breaker): ``open`` (its
    calls fail at once for a while), ``half_open`` (one trial call goes through), ``closed``."""

    backend: str
    state: str
    #: The failed calls in a row that opened it.
    failures: int
    #: What made it change: the last failure's message, or how the trial went.
    detail: str


#: Every ``ReadFallback.outcome``: ``no_session``: the session holds no token for the primary
#: and its home is the candidate, so there is nobody to ask.
FALLBACK_OUTCOMES = ("asked", "over_budget", "no_session")


@dataclass(frozen=True, slots=True)
class ReadFallback:
    """A canary route's lookup failed on ``failed`` (its candidate): ``asked`` of the primary
    (its answer is the request's RequestCompleted), or not (``over_budget``, ``no_session``: the
    client got the failure). When asked, the canary's evidence counts the candidate's failure
    from this event, as the request's RequestCompleted is the primary's answer; otherwise from
    the RequestCompleted, as for any failed read."""

    route: str
    #: The side that failed the read (its BackendFailed says how), and how long it took to.
    failed: str
    failed_duration_s: float
    outcome: str


@dataclass(frozen=True, slots=True)
class LogonRefused:
    """A logon was answered 01 by the gateway without asking any backend: its customer had
    ``limits.failed_logons`` refused logons from this address lately (gateway.sessions.logon_guard).
    Never the password."""

    customer: str
    user: str
    #: The source address (the PROXY-named one behind a load balancer).
    address: str


@dataclass(frozen=True, slots=True)
class ReadsBatched:
    """A gRPC backend's BatchReadPersons call is over (gateway.backends.batching): answered,
    failed or abandoned."""

    backend: str
    #: Lookups the call carried: 1 while the services keep up, more as far as they are behind.
    reads: int
    #: From sending to the answer (or failure): every read in it waited this long, plus
    #: however long it queued for the call (at most the call before it).
    duration_s: float


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """The session broker did something worth counting (see docs/sessions.md)."""

    #: ``opened`` (a logon fanned out), ``side_logon_failed`` (another side refused or
    #: failed the fan-out logon), ``fallback`` (a read went to the home side because the
    #: routed side holds no token), ``side_expired`` (a side answered 07 and lost its token),
    #: ``unknown_fallback`` (a read with a token no session holds, refused by the routed side,
    #: was answered by ``backend``, the side that knew the token), ``side_logon_skipped`` (a
    #: logon was not repeated on ``backend``: its last repeat failed or was late moments ago),
    #: ``side_logon_late`` (a repeat that outlived the logon's answer gave its token after all),
    #: ``side_logon_held`` (not repeated on ``backend``: it refused this user's repeat with
    #: this password lately, and a side that counts failed logons must not count another).
    kind: str
    backend: str


@dataclass(frozen=True, slots=True)
class SessionShared:
    """A worker asked its siblings for a session it did not know (gateway.sessions.peers)."""

    #: ``found`` (a sibling had it; copied here), ``unknown`` (no sibling has it), or
    #: ``failed`` (a sibling did not answer properly or in time; ``detail`` says how).
    outcome: str
    detail: str = ""


#: Every ``SessionStoreCall.call`` and ``.outcome``.
SESSION_STORE_CALLS = ("fetch", "publish", "forget", "touch")
SESSION_STORE_OUTCOMES = ("ok", "miss", "timeout", "error", "skipped")


@dataclass(frozen=True, slots=True)
class SessionStoreCall:
    """A call to the shared session store (gateway.sessions.redis_store) ended.

    ``outcome``: ``ok``; ``miss`` (a fetch found no session); ``timeout`` or ``error`` (the
    request went on without the store; ``detail`` names the error's type); ``skipped`` (not
    tried: the store failed moments ago and is given time to come back).
    """

    call: str
    outcome: str
    detail: str = ""


#: Every ``ShadowCompleted.outcome``.
SHADOW_OUTCOMES = ("match", "differs", "error", "timeout", "dropped")


@dataclass(frozen=True, slots=True)
class ShadowCompleted:
    """A copy of a request sent to a shadow (or noise) backend ended; the client never saw it.

    ``outcome`` is one of :data:`SHADOW_OUTCOMES`; ``reason`` says why an error or a
    drop happened (``no_session``, ``unavailable``, ``timeout``, ``protocol``, ``open``:
    its breaker was open and it was not sent, ``queue_full``, ``overload``, ``shutdown``).
    ``fields`` are the (record, field) keys that differed, names from the layouts only, never
    values.
    """

    route: str
    operation: Operation
    backend: str
    outcome: str
    reason: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    #: True for a noise comparison (a second instance of the primary side).
    noise: bool = False


@dataclass(frozen=True, slots=True)
class ShadowVerdict:
    """What the comparisons so far say about one shadow of a route for one operation."""

    route: str
    backend: str
    operation: str
    #: ``clean``, ``differs`` or ``inconclusive`` (gateway.comparison.Verdict).
    verdict: str


@dataclass(frozen=True, slots=True)
class ShadowQueue:
    """Shadowed requests waiting for a slot changed (the bound is ``shadowing.max_queued``)."""

    depth: int


@dataclass(frozen=True, slots=True)
class LoopLagSampled:
    """How late the event loop ran a timer that was due (:mod:`gateway.runtime.pressure`)."""

    lag_s: float


@dataclass(frozen=True, slots=True)
class ShadowSamplesLost:
    """Comparisons that did not reach the mismatch store (its queue was full, or it failed)."""

    #: ``queue_full``, ``store_error``, or ``store_unavailable`` (the store was not open:
    #: announced once by ShadowStoreState, not per sample).
    reason: str
    count: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ShadowStoreState:
    """The mismatch store could not be opened or reached (once per run of failed attempts
    with one cause, not per attempt or lost comparison), or is open again after that."""

    available: bool
    #: Why it is not available (the database's message, a DSN without its password).
    detail: str = ""


#: The admin API's calls (``AdminCall.call``): reading, and the changes an operator may ask.
ADMIN_READS = ("routes", "history", "shadow")
ADMIN_CHANGES = ("pause", "resume", "promote", "rollback")
#: ``AdminCall.result`` besides ``ok``: why the admin API refused a call.
ADMIN_REFUSALS = (
    "unauthorized",
    "bad_request",
    "too_large",
    "not_found",
    "conflict",
    "unavailable",
)


@dataclass(frozen=True, slots=True)
class AdminCall:
    """An /api/v1 call (server/api.py): what was asked, by whom, and how it ended."""

    #: One of :data:`ADMIN_READS` or :data:`ADMIN_CHANGES`.
    call: str
    #: The route it named ("" for none); a config name.
    route: str
    #: The token's name; "" when no valid token came with it.
    who: str
    #: ``ok`` or one of :data:`ADMIN_REFUSALS`.
    result: str
    #: The operator's reason for a change, or why it was refused.
    detail: str = ""


@dataclass(frozen=True, slots=True)
class InternalError:
    """Our own bug surfaced while serving a connection; the client was closed, not answered."""

    peer: str
    error: str


@dataclass(frozen=True, slots=True)
class OpenFileLimit:
    """The process's open-file limit, as raised at start (gateway.runtime.open_files)."""

    #: Descriptors the configuration can use at once (connections, backends, a margin).
    needed: int
    #: The soft limit now in force, and the hard limit it may not pass.
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """The gateway changed phase: ``listening``, ``draining``, ``stopped``."""

    phase: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ConfigReloaded:
    """A changed routing.yaml is in force for new requests."""

    #: What started the reload: ``file`` (the watcher), ``sighup``, or ``call``.
    trigger: str
    #: What changed, one line each (see gateway.config.diff); empty when nothing did.
    changes: tuple[str, ...]
    #: Settings that differ in the file but only take effect on a restart (listen, admin,
    #: shadowing).
    restart_needed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConfigRejected:
    """A reload failed; the previous routes and backends stay in force."""

    #: ``file``, ``sighup`` or ``call``, as for ConfigReloaded.
    trigger: str
    #: Path-qualified problems, e.g. ``routes[1].split.backends: percentages add up to 90``.
    problems: tuple[str, ...]


#: Every ``AuditLost.reason``: the writer's buffer was full, or the disk refused a write.
AUDIT_LOSS_REASONS = ("buffer_full", "write_error")


@dataclass(frozen=True, slots=True)
class AuditLost:
    """Answered lookups the audit log could not write (gateway.audit); the log itself says so
    too, with a ``lost`` record in its chain, once it can write again."""

    #: One of :data:`AUDIT_LOSS_REASONS`.
    reason: str
    count: int
    #: The disk's error, for ``write_error``.
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AuditFile:
    """The audit log opened or closed one of its files, or found a torn last line on start.

    ``head`` is the SHA-256 of the file's last line so far: logged, it is a copy of the
    chain's end outside the audit directory, against which a rewritten tail shows.
    """

    #: ``opened``, ``closed`` or ``torn`` (bytes after the last whole line, from a crash).
    action: str
    file: str
    head: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CertificatesReloaded:
    """The client port's certificate and key were loaded again (gateway.server.certificates)."""

    #: ``file`` (the files changed) or ``sighup``.
    trigger: str
    #: ``ok`` (new handshakes present the new pair) or ``rejected`` (the old pair stays).
    result: str
    #: The certificate file when ok; what is wrong when rejected.
    detail: str


#: Every ``CanaryTransitioned.kind`` (gateway.canary.model.Transition.kind).
CANARY_KINDS = ("start", "promote", "rollback", "pause", "resume", "complete")


@dataclass(frozen=True, slots=True)
class CanaryWeights:
    """This gateway routes a canary route by a new state (gateway.canary.controller)."""

    route: str
    step: int
    #: Percent of the route's requests per backend: (primary, share), (candidate, share).
    weights: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class CanaryTransitioned:
    """A canary route's state changed: by the controller (``who`` ``controller``) or an
    operator; emitted by the gateway that made the change."""

    route: str
    #: One of :data:`CANARY_KINDS`.
    kind: str
    from_step: int
    to_step: int
    reason: str
    who: str


@dataclass(frozen=True, slots=True)
class CanaryJudged:
    """The deciding gateway judged a canary route's step; its gates' figures that are numbers."""

    route: str
    figures: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class CanaryStoreFailed:
    """The canary store failed: nothing changed, the routes keep their weights.

    ``action`` says what failed: ``open``, ``start``, ``flush`` (this replica's counts wait
    for the next), ``lease``, ``judge``, ``poll``, ``change`` (an operator's), or ``tick``
    (anything else that went wrong in a tick: a bug, logged with its type).
    """

    action: str
    #: The store's message (a DSN without its password).
    detail: str
    #: The same failure as the tick before: counted, not logged again.
    repeated: bool = False


Event = (
    ConnectionOpened
    | ConnectionClosed
    | RequestRejected
    | RequestCompleted
    | LookupAnswered
    | BackendFailed
    | TlsSession
    | ReadsBatched
    | BreakerChanged
    | ReadFallback
    | LogonRefused
    | SessionEvent
    | SessionShared
    | SessionStoreCall
    | ShadowCompleted
    | ShadowVerdict
    | ShadowQueue
    | ShadowSamplesLost
    | ShadowStoreState
    | LoopLagSampled
    | AdminCall
    | InternalError
    | OpenFileLimit
    | Lifecycle
    | ConfigReloaded
    | ConfigRejected
    | CertificatesReloaded
    | CanaryWeights
    | CanaryTransitioned
    | CanaryJudged
    | CanaryStoreFailed
    | AuditLost
    | AuditFile
)
Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers each event to its subscribers, synchronously, in subscription order.

    A subscriber names the event types it handles (or none: every event), and the bus
    keeps, per type, the subscribers it goes to: an event costs only the subscribers that
    act on it. Most events a request emits go to one or two of them, and a subscriber
    that had to look at every event and pass over most paid for that on every request
    (docs/benchmarks.md, "In place, function by function").

    A failing subscriber is logged and skipped: telemetry must never cost a client
    its answer.
    """

    def __init__(self) -> None:
        self._subscriptions: list[tuple[Subscriber, frozenset[type]]] = []
        #: Per event type, the subscribers it goes to; filled as types are first emitted.
        self._routes: dict[type, tuple[Subscriber, ...]] = {}

    def subscribe(self, subscriber: Subscriber, *kinds: type) -> None:
        """Add ``subscriber`` for later events of ``kinds`` (of every type when none)."""
        self._subscriptions.append((subscriber, frozenset(kinds)))
        self._routes.clear()

    def heard(self, kind: type) -> bool:
        """Whether any subscriber takes events of ``kind`` (an event nobody takes need not
        be made)."""
        subscribers = self._routes.get(kind)
        if subscribers is None:
            subscribers = self._routes[kind] = self._subscribers_of(kind)
        return bool(subscribers)

    def emit_soon(self, event: Event) -> None:
        """Hand ``event`` to its subscribers once the running callback or task step is done:
        a request's own events wait until its answer is written (the answer is written in
        the step that made it), so that the client does not wait for its telemetry."""
        asyncio.get_running_loop().call_soon(self.emit, event)

    def _subscribers_of(self, kind: type) -> tuple[Subscriber, ...]:
        return tuple(each for each, kinds in self._subscriptions if kind in kinds or not kinds)

    def emit(self, event: Event) -> None:
        """Hand ``event`` to every subscriber of its type."""
        kind = type(event)
        subscribers = self._routes.get(kind)
        if subscribers is None:
            subscribers = self._routes[kind] = self._subscribers_of(kind)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                structlog.get_logger("gateway.events").exception(
                    "subscriber_failed", event_type=kind.__name__
                )

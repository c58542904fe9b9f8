"""Prometheus metrics, fed by events; the only module that imports prometheus_client.

Labels come from config names and closed code lists (operation, route, backend,
FEJLNR, reason), never from record contents. Each :class:`Metrics` owns its
registry, so tests get a fresh one and nothing lands in the global default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.comparison import Verdict
from gateway.observe.events import (
    AUDIT_LOSS_REASONS,
    CANARY_KINDS,
    REJECT_REASONS,
    SESSION_STORE_CALLS,
    SESSION_STORE_OUTCOMES,
    SPARE_OUTCOMES,
    AdminCall,
    AuditLost,
    BackendFailed,
    BreakerChanged,
    CanaryJudged,
    CanaryStoreFailed,
    CanaryTransitioned,
    CanaryWeights,
    CertificatesReloaded,
    ConfigRejected,
    ConfigReloaded,
    Event,
    LogonRefused,
    LoopLagSampled,
    ReadFallback,
    ReadsBatched,
    RequestCompleted,
    RequestRejected,
    SessionEvent,
    SessionShared,
    SessionStoreCall,
    ShadowCompleted,
    ShadowQueue,
    ShadowSamplesLost,
    ShadowVerdict,
    TlsSession,
)

#: Lookups per BatchReadPersons call: 1 while the services keep up (READS_PER_CALL at most).
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
#: Seconds; spans a loopback hit (~1 ms) to the longest sensible route deadline.
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: What the /metrics endpoint answers with.
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: The events :meth:`Metrics.on_event` counts: what it subscribes to.
COUNTED = (
    ShadowCompleted,
    ShadowVerdict,
    ShadowQueue,
    ShadowSamplesLost,
    AuditLost,
    LoopLagSampled,
    RequestCompleted,
    RequestRejected,
    BackendFailed,
    TlsSession,
    ReadsBatched,
    BreakerChanged,
    ReadFallback,
    LogonRefused,
    SessionEvent,
    SessionShared,
    SessionStoreCall,
    AdminCall,
    ConfigReloaded,
    ConfigRejected,
    CertificatesReloaded,
    CanaryWeights,
    CanaryTransitioned,
    CanaryJudged,
    CanaryStoreFailed,
)


class Metrics:
    """The gateway's series, registered in one registry; subscribe :meth:`on_event` to a bus
    for the events it counts (:data:`COUNTED`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._client_handshakes: _ClientHandshakes | None = None
        self._spares: _Spares | None = None
        self.requests = Counter(
            "cpr_gateway_requests", "Answered requests.",
            ("operation", "route", "backend", "fejlnr"), registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "cpr_gateway_request_duration_seconds", "Routing plus backend time per request.",
            ("operation", "route", "backend"), buckets=_DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            "cpr_gateway_rejected", "Connections closed without an answer.", ("reason",), registry=r
        )
        #: Read from the listener when scraped (:meth:`count_connections`), not kept per
        #: connection: two updates fewer per request, and a count that cannot drift.
        self.in_flight = Gauge(
            "cpr_gateway_connections_in_flight", "Client connections being served.", registry=r
        )
        self.backend_errors = Counter(
            "cpr_gateway_backend_errors", "Failed backend calls (answered 09).",
            ("backend", "kind"), registry=r,
        )  # fmt: skip
        self.tls_sessions = Counter(
            "cpr_gateway_tls_sessions",
            "A legacy backend's TLS sessions (tls_resumption): stored to be offered, or an "
            "offered one the server refused.",
            ("backend", "outcome"), registry=r,
        )  # fmt: skip
        self._isolation_series(r)
        self.reloads = Counter(
            "cpr_gateway_config_reloads", "Config reloads by result: ok, or rejected (old kept).",
            ("result",), registry=r,
        )  # fmt: skip
        self.last_reload_ok = Gauge(
            "cpr_gateway_config_last_reload_successful",
            "1 when the last reload was applied (or none was tried), 0 when it was rejected.",
            registry=r,
        )
        self.tls_reloads = Counter(
            "cpr_gateway_tls_reloads",
            "Reloads of the client port's certificate and key: ok, or rejected (old kept).",
            ("result",), registry=r,
        )  # fmt: skip
        self.restart_pending = Gauge(
            "cpr_gateway_config_restart_pending",
            "1 when the applied file changes listen, admin or shadowing (restart needed).",
            registry=r,
        )
        self.batch_reads = Histogram(
            "cpr_gateway_backend_batch_reads",
            "Lookups per gRPC call (BatchReadPersons): above 1, the services are behind.",
            ("backend",), buckets=_BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_call = Histogram(
            "cpr_gateway_backend_batch_call_duration_seconds",
            "Time from sending a BatchReadPersons call to its answer or failure.",
            ("backend",), buckets=_DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.sessions = Counter(
            "cpr_gateway_session_events",
            "Session brokering: opened, side_logon_failed, fallback, side_expired.",
            ("kind", "backend"), registry=r,
        )  # fmt: skip
        self.session_peers = Counter(
            "cpr_gateway_session_peer_lookups",
            "Sessions asked of sibling workers: found, unknown, failed.",
            ("outcome",), registry=r,
        )  # fmt: skip
        self.session_store = Counter(
            "cpr_gateway_session_store_calls",
            "Calls to the shared session store (Redis), by call and outcome.",
            ("call", "outcome"), registry=r,
        )  # fmt: skip
        self.admin_calls = Counter(
            "cpr_gateway_admin_calls", "Admin API calls by call and result (ok or why refused).",
            ("call", "result"), registry=r,
        )  # fmt: skip
        self.audit_dropped = Counter(
            "cpr_gateway_audit_dropped",
            "Answered lookups the audit log did not write: buffer_full, write_error.",
            ("reason",), registry=r,
        )  # fmt: skip
        for reason in AUDIT_LOSS_REASONS:
            self.audit_dropped.labels(reason)
        self._shadow_series(r)
        self._canary_series(r)
        # The series each request updates, by its labels: ``labels()`` checks and converts
        # its arguments on every call, which is most of a request's metrics cost. Bounded
        # like the labels themselves: config names and closed code lists.
        self._request_series: dict[tuple[str, str, str, str], tuple[Counter, Histogram]] = {}
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)  # every reason shows, at 0, from the start
        for outcome in ("found", "unknown", "failed"):
            self.session_peers.labels(outcome)
        for call in SESSION_STORE_CALLS:
            for outcome in SESSION_STORE_OUTCOMES:
                self.session_store.labels(call, outcome)
        for result in ("ok", "rejected"):
            self.reloads.labels(result)
        self.last_reload_ok.set(1)

    def _isolation_series(self, r: CollectorRegistry) -> None:
        self.breaker_open = Gauge(
            "cpr_gateway_backend_breaker_open",
            "1 while a backend's circuit breaker is open or half-open (its calls fail at once).",
            ("backend",), registry=r,
        )  # fmt: skip
        self.breaker_changes = Counter(
            "cpr_gateway_backend_breaker_transitions",
            "Circuit breaker changes by backend and the state entered: open, half_open, closed.",
            ("backend", "state"), registry=r,
        )  # fmt: skip
        self.read_fallbacks = Counter(
            "cpr_gateway_read_fallbacks",
            "Canary reads the candidate failed: asked of the primary, or not (over_budget).",
            ("route", "backend", "outcome"), registry=r,
        )  # fmt: skip
        self.logons_refused = Counter(
            "cpr_gateway_logons_refused",
            "Logons answered 01 by the gateway itself: limits.failed_logons reached for the "
            "customer and source address.",
            registry=r,
        )

    def _on_backend(self, event: BackendFailed | TlsSession | ReadsBatched) -> None:
        match event:
            case BackendFailed():
                self.backend_errors.labels(event.backend, event.kind).inc()
            case TlsSession():
                self.tls_sessions.labels(event.backend, event.outcome).inc()
            case ReadsBatched():
                self.batch_reads.labels(event.backend).observe(event.reads)
                self.batch_call.labels(event.backend).observe(event.duration_s)

    def _on_isolation(self, event: BreakerChanged | ReadFallback | LogonRefused) -> None:
        match event:
            case BreakerChanged():
                self.breaker_open.labels(event.backend).set(event.state != "closed")
                self.breaker_changes.labels(event.backend, event.state).inc()
            case ReadFallback():
                self.read_fallbacks.labels(event.route, event.failed, event.outcome).inc()
            case LogonRefused():
                self.logons_refused.inc()

    def _shadow_series(self, r: CollectorRegistry) -> None:
        self.shadow_requests = Counter(
            "cpr_gateway_shadow_requests",
            "Copies sent to shadow and noise backends, by outcome: match, differs, error, "
            "timeout, dropped.",
            ("operation", "backend", "outcome"), registry=r,
        )  # fmt: skip
        self.shadow_differences = Counter(
            "cpr_gateway_shadow_field_differences",
            "Fields that differed between a shadow's answer and the client's.",
            ("operation", "record", "field"), registry=r,
        )  # fmt: skip
        self.shadow_verdict = Gauge(
            "cpr_gateway_shadow_verdict",
            "1 for the current verdict of a route's shadow on an operation, 0 for the others.",
            ("route", "backend", "operation", "verdict"), registry=r,
        )  # fmt: skip
        self.shadow_queue = Gauge(
            "cpr_gateway_shadow_queue_depth", "Shadowed requests waiting for a slot.", registry=r
        )
        self.shadow_lost = Counter(
            "cpr_gateway_shadow_samples_lost",
            "Comparisons not stored: queue_full (store too slow), store_error, or "
            "store_unavailable (not open: down, unreachable, being retried).",
            ("reason",), registry=r,
        )  # fmt: skip
        for reason in ("queue_full", "store_error", "store_unavailable"):
            self.shadow_lost.labels(reason)
        self.loop_lag = Gauge(
            "cpr_gateway_event_loop_lag_seconds",
            "How late the event loop ran a timer that was due (last sample); shadow copies "
            "are dropped while it exceeds shadowing.shed_lag.",
            registry=r,
        )

    def _canary_series(self, r: CollectorRegistry) -> None:
        self.canary_weight = Gauge(
            "cpr_gateway_canary_weight",
            "Percent of a canary route's requests this gateway sends to each backend.",
            ("route", "backend"), registry=r,
        )  # fmt: skip
        self.canary_step = Gauge(
            "cpr_gateway_canary_step", "The step (index) a canary route is at.", ("route",),
            registry=r,
        )  # fmt: skip
        self.canary_transitions = Counter(
            "cpr_gateway_canary_transitions",
            "Canary state changes this gateway made, by kind: start, promote, rollback, pause, "
            "resume, complete.",
            ("route", "kind"), registry=r,
        )  # fmt: skip
        self.canary_gate = Gauge(
            "cpr_gateway_canary_gate",
            "A canary route's gate figure at its last evaluation (on the deciding gateway).",
            ("route", "gate"), registry=r,
        )  # fmt: skip
        self.canary_store_errors = Counter(
            "cpr_gateway_canary_store_errors",
            "Failed canary store calls, by action (the routes kept their weights).",
            ("action",), registry=r,
        )  # fmt: skip
        for action in ("open", "start", "flush", "lease", "judge", "poll", "change", "tick"):
            self.canary_store_errors.labels(action)

    def _on_canary(
        self, event: CanaryWeights | CanaryTransitioned | CanaryJudged | CanaryStoreFailed
    ) -> None:
        match event:
            case CanaryWeights():
                self.canary_step.labels(event.route).set(event.step)
                for backend, share in event.weights:
                    self.canary_weight.labels(event.route, backend).set(share)
                for kind in CANARY_KINDS:  # at 0 from the first, so that increase() sees a 1
                    self.canary_transitions.labels(event.route, kind)
            case CanaryTransitioned():
                self.canary_transitions.labels(event.route, event.kind).inc()
            case CanaryJudged():
                for gate, figure in event.figures:
                    self.canary_gate.labels(event.route, gate).set(figure)
            case CanaryStoreFailed():
                self.canary_store_errors.labels(event.action).inc()

    def _on_shadow(self, event: ShadowCompleted) -> None:
        operation = event.operation.value
        self.shadow_requests.labels(operation, event.backend, event.outcome).inc()
        if not event.noise:
            for record, field in event.fields:
                self.shadow_differences.labels(operation, record, field).inc()

    def _on_verdict(self, event: ShadowVerdict) -> None:
        for verdict in Verdict:
            current = 1 if verdict.value == event.verdict else 0
            labels = (event.route, event.backend, event.operation, verdict.value)
            self.shadow_verdict.labels(*labels).set(current)

    def _on_lost(self, event: ShadowSamplesLost | AuditLost) -> None:
        """Shadow comparisons, or answered lookups' audit records, that were not kept."""
        lost = self.shadow_lost if isinstance(event, ShadowSamplesLost) else self.audit_dropped
        lost.labels(event.reason).inc(event.count)

    def on_event(self, event: Event) -> None:
        """Update the series an event concerns."""
        match event:
            case ShadowCompleted():
                self._on_shadow(event)
            case ShadowVerdict():
                self._on_verdict(event)
            case ShadowQueue():
                self.shadow_queue.set(event.depth)
            case ShadowSamplesLost() | AuditLost():
                self._on_lost(event)
            case LoopLagSampled():
                self.loop_lag.set(event.lag_s)
            case RequestCompleted():
                count, duration = self._series_of(event)
                count.inc()
                duration.observe(event.duration_s)
            case RequestRejected():
                self.rejected.labels(event.reason).inc(event.count)
            case BackendFailed() | TlsSession() | ReadsBatched():
                self._on_backend(event)
            case BreakerChanged() | ReadFallback() | LogonRefused():
                self._on_isolation(event)
            case SessionEvent():
                self.sessions.labels(event.kind, event.backend).inc()
            case SessionShared():
                self.session_peers.labels(event.outcome).inc()
            case SessionStoreCall():
                self.session_store.labels(event.call, event.outcome).inc()
            case AdminCall():
                self.admin_calls.labels(event.call, event.result).inc()
            case ConfigReloaded():
                self.reloads.labels("ok").inc()
                self.last_reload_ok.set(1)
                self.restart_pending.set(1 if event.restart_needed else 0)
            case ConfigRejected():
                self.reloads.labels("rejected").inc()
                self.last_reload_ok.set(0)
            case CertificatesReloaded():
                self.tls_reloads.labels(event.result).inc()
            case CanaryWeights() | CanaryTransitioned() | CanaryJudged() | CanaryStoreFailed():
                self._on_canary(event)
            case _:
                pass

    def count_connections(self, in_flight: Callable[[], int]) -> None:
        """``cpr_gateway_connections_in_flight`` is what ``in_flight`` says when scraped."""
        self.in_flight.set_function(in_flight)

    def count_client_handshakes(self, handshakes: Callable[[], tuple[int, int]]) -> None:
        """``cpr_gateway_client_tls_handshakes_total{session}``: the client port's TLS
        handshakes that resumed a session and that did not, as ``handshakes`` says when
        scraped (OpenSSL counts them for the listener's context: nothing is counted per
        connection). Whether any consumer resumes decides ``listen.tls.session_tickets``."""
        if self._client_handshakes is None:
            self._client_handshakes = _ClientHandshakes(handshakes)
            self.registry.register(self._client_handshakes)
        self._client_handshakes.handshakes = handshakes

    def count_spares(self, spares: Callable[[], Iterable[tuple[str, Mapping[str, int]]]]) -> None:
        """``cpr_gateway_backend_spares_total{backend,outcome}``: what became of each legacy
        backend's spare connections, as ``spares`` says when scraped (each backend counts
        its own: nothing is emitted per request). A reload that replaces a backend starts
        its counts again, which Prometheus reads as a counter reset."""
        if self._spares is None:
            self._spares = _Spares(spares)
            self.registry.register(self._spares)
        self._spares.spares = spares

    def _series_of(self, event: RequestCompleted) -> tuple[Counter, Histogram]:
        key = (event.operation, event.route, event.backend, event.fejlnr)
        series = self._request_series.get(key)
        if series is None:
            labels = (event.operation.value, event.route, event.backend)
            series = (self.requests.labels(*labels, event.fejlnr), self.duration.labels(*labels))
            self._request_series[key] = series
        return series

    def value(self, name: str, **labels: str) -> float:
        """Current value of one sample (0 when absent); for tests and tools."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class _ClientHandshakes(Collector):
    """The client port's handshakes, resumed and full, read from the listener at scrape."""

    def __init__(self, handshakes: Callable[[], tuple[int, int]]) -> None:
        self.handshakes = handshakes

    def collect(self) -> Iterator[Metric]:
        resumed, full = self.handshakes()
        family = CounterMetricFamily(
            "cpr_gateway_client_tls_handshakes",
            "Client TLS handshakes by session: resumed (a ticket offered and taken) or full.",
            labels=("session",),
        )
        family.add_metric(("resumed",), resumed)
        family.add_metric(("full",), full)
        yield family


class _Spares(Collector):
    """Legacy backends' spare connections by outcome, read from the backends at scrape."""

    def __init__(self, spares: Callable[[], Iterable[tuple[str, Mapping[str, int]]]]) -> None:
        self.spares = spares

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "cpr_gateway_backend_spares",
            "Legacy backends' spare connections (spare_connections): requests that went on one"
            " (used) or found none ready (missed); spares closed unused at their age (expired),"
            " found closed by the server (stale), or not opened (failed).",
            labels=("backend", "outcome"),
        )
        for backend, outcomes in self.spares():
            for outcome in SPARE_OUTCOMES:
                family.add_metric((backend, outcome), outcomes.get(outcome, 0))
        yield family

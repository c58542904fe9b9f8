"""Structured logs: the only place that configures structlog, and the log subscriber.

One canonical line per request (operation, route, backend, fejlnr, latency_ms,
peer), JSON when the output is not a terminal. Never a PNR, password or token:
events do not carry them, and this module logs only event fields.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from json.encoder import encode_basestring_ascii
from typing import Any, TextIO

import structlog

from gateway.model import Operation
from gateway.observe.events import (
    ADMIN_CHANGES,
    AdminCall,
    AuditFile,
    AuditLost,
    BackendFailed,
    BreakerChanged,
    CanaryStoreFailed,
    CanaryTransitioned,
    CertificatesReloaded,
    ConfigRejected,
    ConfigReloaded,
    Event,
    InternalError,
    Lifecycle,
    LogonRefused,
    OpenFileLimit,
    ReadFallback,
    RequestCompleted,
    RequestRejected,
    SessionShared,
    SessionStoreCall,
    ShadowCompleted,
    ShadowSamplesLost,
    ShadowStoreState,
    TlsSession,
)
from gateway.observe.line_budget import LineBudget

#: The events :func:`log_event` may write a line for: what it subscribes to. (Connections
#: opened and closed, answered lookups and the loop's lag are counted, never logged.)
LOGGED = (
    RequestCompleted,
    RequestRejected,
    AdminCall,
    AuditLost,
    AuditFile,
    InternalError,
    Lifecycle,
    OpenFileLimit,
    ConfigReloaded,
    ConfigRejected,
    BackendFailed,
    CertificatesReloaded,
    TlsSession,
    SessionShared,
    SessionStoreCall,
    ShadowCompleted,
    ShadowSamplesLost,
    ShadowStoreState,
    CanaryTransitioned,
    CanaryStoreFailed,
    BreakerChanged,
    ReadFallback,
    LogonRefused,
)

#: Bound afresh by each :func:`configure_logging`: a bound logger skips the lookup of the
#: configuration (and a new output object) that the lazy proxy does on every line.
_log: Any = structlog.get_logger("gateway")
#: Lines per rejection reason per second (observe/line_budget).
_rejections = LineBudget()
#: Where an answered request's line goes when it is written directly (JSON at info or below),
#: None otherwise; see :func:`_answered_line`.
_answered: structlog.WriteLogger | None = None


def configure_logging(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog once per process: JSON unless ``stream`` (stderr) is a terminal."""
    out = stream if stream is not None else sys.stderr
    as_json = not out.isatty() if json is None else json
    # Tracebacks without local variables: a frame's locals may hold request bytes (a PNR).
    last: list[Any] = (
        [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ]
        if as_json
        else [structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)]
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *last,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # One write per line, newline included: workers share stderr, and an unbuffered
        # stream (PYTHONUNBUFFERED=1) would otherwise get the text and the newline in two
        # writes, which another process's line can come between.
        logger_factory=structlog.WriteLoggerFactory(out),
        # Not cached by structlog: a reconfigured process (or test) must reach every logger.
        cache_logger_on_first_use=False,
    )
    global _log, _rejections, _answered  # noqa: PLW0603  (this module's logger follows its configuration)
    _rejections = LineBudget()  # a new configuration starts with a whole budget
    _log = structlog.get_logger("gateway").bind()
    info = logging.getLevelNamesMapping()[level.upper()] <= logging.INFO
    _answered = structlog.WriteLogger(out) if as_json and info else None


def log_event(event: Event) -> None:
    """The log subscriber: one line per request, rejection, internal error, phase and reload."""
    match event:
        case RequestCompleted():
            if event.error:
                _log.warning("request", error=event.error, **_request_fields(event))
            elif _answered is not None:
                _answered_line(event, _answered)
            else:
                _log.info("request", **_request_fields(event))
        case RequestRejected():
            _log_rejected(event)
        case AdminCall() | AuditLost() | AuditFile():
            _log_trail(event)
        case InternalError():
            _log.error("internal_error", error=event.error, peer=event.peer)
        case Lifecycle() | OpenFileLimit():
            _log_process(event)
        case ConfigReloaded():
            _log.info("config_reloaded", trigger=event.trigger, changes=list(event.changes))
            if event.restart_needed:
                _log.warning("config_needs_restart", settings=list(event.restart_needed))
        case ConfigRejected():
            _log.error("config_rejected", trigger=event.trigger, problems=list(event.problems))
        case BackendFailed(kind="unauthenticated"):  # the services refused the gateway itself
            _log.error("backend_unauthenticated", **_failure(event))
        case CertificatesReloaded():
            _log_certificates(event)
        case TlsSession(outcome="refused"):
            _log.info("tls_resumption_refused", backend=event.backend)
        case SessionShared(outcome="failed"):
            _log.warning("session_peer_failed", detail=event.detail)
        case SessionStoreCall(outcome="timeout" | "error"):
            _log.warning(
                "session_store_failed", call=event.call, outcome=event.outcome, detail=event.detail
            )
        case ShadowCompleted():
            _log_shadow(event)
        case ShadowSamplesLost(reason="store_unavailable"):
            pass  # counted; logged once per outage, as its ShadowStoreState
        case ShadowSamplesLost():
            _log.warning(
                "shadow_samples_lost", reason=event.reason, count=event.count, detail=event.detail
            )
        case ShadowStoreState(available=False):
            _log.warning("shadow_store_unavailable", detail=event.detail)
        case ShadowStoreState():
            _log.info("shadow_store_available")
        case CanaryTransitioned():
            level = _log.warning if event.kind == "rollback" else _log.info
            level(
                "canary_transition",
                route=event.route,
                kind=event.kind,
                **{"from": event.from_step, "to": event.to_step},
                reason=event.reason,
                who=event.who,
            )
        case CanaryStoreFailed(repeated=False):
            _log.warning("canary_store_failed", action=event.action, detail=event.detail)
        case _:
            _log_isolation(event)


def _request_fields(event: RequestCompleted) -> dict[str, Any]:
    return {
        "operation": event.operation.value,
        "route": event.route,
        "backend": event.backend,
        "fejlnr": event.fejlnr,
        "latency_ms": round(event.duration_s * 1000, 3),
        "peer": event.peer,
    }


def _answered_line(event: RequestCompleted, out: structlog.WriteLogger) -> None:
    """An answered request's line as structlog renders it (the same keys in the same order,
    the same timestamp), without its processors: it is the one line every request writes,
    and in a loaded process the processors cost several times the JSON itself
    (docs/benchmarks.md, "In place, function by function"). Its text is made here as
    ``json.dumps`` makes it (strings through the same C escaper, the float's repr), without
    building a dict and passing it through the encoder's Python layers (tested byte for byte)."""
    stamp = dt.datetime.now(tz=dt.UTC).isoformat().replace("+00:00", "Z")
    out.msg(
        f'{{"operation": {_OPERATIONS[event.operation]}, "route": {_quote(event.route)}, '
        f'"backend": {_quote(event.backend)}, "fejlnr": {_quote(event.fejlnr)}, '
        f'"latency_ms": {round(event.duration_s * 1000, 3)!r}, "peer": {_quote(event.peer)}, '
        f'"event": "request", "level": "info", "timestamp": "{stamp}"}}'
    )


#: A string as ``json.dumps`` writes it (ASCII, escaped).
_quote = encode_basestring_ascii
#: Each operation's name as a JSON string.
_OPERATIONS = {operation: _quote(operation.value) for operation in Operation}


def _log_rejected(event: RequestRejected) -> None:
    """A refused connection or record, within its reason's line budget (a client sets the pace)."""
    left_out = _rejections.take(event.reason)
    if left_out is None:
        return
    fields: dict[str, Any] = {"reason": event.reason}
    if event.detail:
        fields["detail"] = event.detail
    if left_out:
        fields["left_out"] = left_out
    if event.count > 1:
        fields["count"] = event.count
    _log.info("rejected", **fields, received=event.received, peer=event.peer)


def _log_process(event: Lifecycle | OpenFileLimit) -> None:
    """The process's phases; its open-file limit, a warning when below what is needed."""
    if isinstance(event, Lifecycle):
        _log.info(event.phase, detail=event.detail)
        return
    fields = {"needed": event.needed, "soft": event.soft, "hard": event.hard}
    if event.soft < event.needed:
        _log.warning("open_file_limit_low", **fields)
    else:
        _log.info("open_file_limit", **fields)


def _log_trail(event: AdminCall | AuditLost | AuditFile) -> None:
    """The audit trails: the admin API's calls, and the audit log of lookups' losses and files
    (never a LookupAnswered: that event holds a PNR)."""
    match event:
        case AdminCall():
            _log_admin(event)
        case AuditLost():
            _log.warning(
                "audit_records_lost", reason=event.reason, count=event.count, detail=event.detail
            )
        case AuditFile(action="torn"):
            _log.warning("audit_file_torn", file=event.file, head=event.head, detail=event.detail)
        case AuditFile():
            _log.info(f"audit_file_{event.action}", file=event.file, head=event.head)


def _log_admin(event: AdminCall) -> None:
    """Every change asked of the admin API, done or not (the audit); a refused read too."""
    fields = {"route": event.route, "who": event.who or None, "result": event.result}
    detail = {"detail": event.detail} if event.detail else {}
    if event.call in ADMIN_CHANGES:
        level = _log.info if event.result == "ok" else _log.warning
        level("admin_action", verb=event.call, **fields, **detail)
    elif event.result != "ok":
        _log.info("admin_refused", call=event.call, **fields, **detail)


def _log_isolation(event: Event) -> None:
    """A breaker's change, a canary read left without a fallback, a logon the limit refused
    (its customer, user and address; never the password); nothing for other events."""
    match event:
        case BreakerChanged():
            _log_breaker(event)
        case ReadFallback(outcome="over_budget"):
            _log.warning("read_fallback_over_budget", route=event.route, backend=event.failed)
        case LogonRefused():
            _log.warning(
                "logon_refused",
                reason="failed_logons",
                customer=event.customer,
                user=event.user,
                address=event.address,
            )
        case _:
            pass


def _failure(event: BackendFailed) -> dict[str, str]:
    return {"backend": event.backend, "route": event.route, "detail": event.detail}


def _log_certificates(event: CertificatesReloaded) -> None:
    """A reload of the client port's pair: info when in force, error when refused."""
    if event.result == "ok":
        _log.info("tls_reloaded", trigger=event.trigger, cert=event.detail)
    else:
        _log.error("tls_reload_rejected", trigger=event.trigger, problem=event.detail)


def _log_breaker(event: BreakerChanged) -> None:
    """One line per change of a breaker, never per call it refuses; a dead backend's
    trials (every ``open_for``) at debug, so that only opening and closing are seen."""
    fields = {"backend": event.backend, "failures": event.failures, "detail": event.detail}
    if event.state == "closed":
        _log.info("breaker_closed", **fields)
    elif event.state == "open" and not event.detail.startswith("trial call failed"):
        _log.warning("breaker_open", **fields)
    else:
        _log.debug(f"breaker_{event.state}", **fields)


def _log_shadow(event: ShadowCompleted) -> None:
    """One line per differing shadow comparison (field names only); failures at debug."""
    fields = {
        "route": event.route,
        "operation": event.operation.value,
        "backend": event.backend,
    }
    if event.outcome == "differs" and not event.noise:
        _log.info("shadow_differs", fields=[f"{r}/{f}" for r, f in event.fields], **fields)
    elif event.outcome in ("error", "timeout", "dropped"):
        _log.debug(f"shadow_{event.outcome}", reason=event.reason, **fields)

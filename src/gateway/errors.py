"""One error tree, split by who is at fault.

Each error carries what the client gets on the wire: a FEJLNR, or ``None`` for
"close the connection without an answer" (the spec's project rule for requests
that cannot be framed). The dispatcher answers a failed backend call with its
error's FEJLNR. Messages are short facts that may include the offending
value, but never a PNR or a password.
"""

from __future__ import annotations

from typing import ClassVar

from gateway.model import FejlNr


class GatewayError(Exception):
    """Root of every error this project raises on purpose."""

    #: What the client receives: a FEJLNR, or None for a clean close.
    wire: ClassVar[FejlNr | None] = FejlNr.NO_CONNECTION


class PeerError(GatewayError):
    """The peer (client or backend) sent bytes that break the wire contract."""

    wire = None


class CodecError(PeerError):
    """Bytes do not decode, or a value does not encode, under a record layout."""


class FramingError(CodecError):
    """A request cannot be framed; the project rule is to close without answering."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        #: A closed, low-cardinality reason usable as a metric label.
        self.reason = reason


class ProxyHeaderError(PeerError):
    """A connection from a trusted proxy does not open with a valid PROXY v2 header; it is
    closed without an answer."""


class BackendError(GatewayError):
    """A backend could not serve the request; the client gets 09."""

    wire: ClassVar[FejlNr] = FejlNr.NO_CONNECTION
    #: A closed, low-cardinality name of the failure, usable as a metric label.
    kind: ClassVar[str] = "other"


class BackendUnavailable(BackendError):
    """The backend refused, reset or could not be reached."""

    kind = "unavailable"


class BackendTimeout(BackendError):
    """The backend did not answer within the route's deadline."""

    kind = "timeout"


class BackendOpen(BackendError):
    """The backend's circuit breaker is open: it failed call after call, and is not asked
    again until its ``open_for`` has passed (gateway.backends.breaker)."""

    kind = "open"


class BackendBusy(BackendError):
    """Every connection the gateway may open to the backend is busy, and requests have been
    waiting for one longer than its ``queue_target`` for a while: the request is refused
    at once rather than put in a line that would make it late (gateway.backends.connection_line).
    The client gets 08, as for any refusal for capacity (project rule); the backend is up,
    so no breaker counts it."""

    wire = FejlNr.NOT_ACTIVE
    kind = "busy"


class BackendUnauthenticated(BackendError):
    """The backend refused the gateway itself (gRPC UNAUTHENTICATED without an outcome: no
    valid session and not the gateway's certificate): a configuration problem, logged
    ``backend_unauthenticated``; not a failure of the side, so no breaker counts it."""

    kind = "unauthenticated"


class BackendProtocolError(BackendError):
    """The backend answered something that is not a valid CPR Direkte answer."""

    kind = "protocol"


class ConfigError(GatewayError):
    """Configuration is wrong; raised at load time, never at request time."""

    wire = None

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        #: Path-qualified messages, e.g. ``routes[2].backend: unknown backend 'x'``.
        self.problems = problems

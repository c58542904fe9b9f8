"""The one small protocol every backend kind implements, and how a ``kind`` becomes an adapter.

A backend turns one framed request into the exact answer bytes the client gets.
It applies the route's deadline itself and raises only :class:`BackendError`
subclasses: foreign exceptions (OSError, ssl.SSLError, TimeoutError, later
grpc.aio.AioRpcError) are translated inside the adapter and never travel up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from gateway.backends.breaker import BreakerBackend
from gateway.codec import Request
from gateway.config.kinds import BACKEND_KINDS, load_attribute
from gateway.config.schema import BackendConfig
from gateway.observe.events import EventBus


class Backend(Protocol):
    """A place requests can be sent to."""

    @property
    def name(self) -> str:
        """The backend's name from routing.yaml (a metric label)."""
        ...

    async def call(
        self,
        request: Request,
        raw: bytes,
        *,
        deadline: float,
        origin: str | None = None,
        repeat: bool = False,
    ) -> bytes:
        """Answer ``request`` (``raw`` is the bytes the client sent) within ``deadline`` seconds.

        ``origin`` is the client's IP address as text (no port; None when unknown), for a
        backend that applies per-address rules: the legacy kind can send it in a PROXY v2
        header, the gRPC kind sends it as metadata ``x-cpr-client-address``.

        ``repeat`` marks a logon the gateway repeats on this side for a client that logged on
        elsewhere (docs/sessions.md): the gRPC kind sends metadata ``x-cpr-repeat: 1``, so
        that a refusal does not count towards the user's lock; the legacy kind cannot say it.

        Returns answer bytes that satisfy the wire contract's shape; raises
        BackendUnavailable, BackendTimeout or BackendProtocolError otherwise.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and pools; called once, at shutdown."""
        ...


#: Builds a backend from its validated config section; the bus is for its own telemetry
#: (None: nobody listens). Each kind's is named in :data:`gateway.config.kinds.BACKEND_KINDS`.
Factory = Callable[[Any, EventBus | None], Backend]


def build_backend(config: BackendConfig, bus: EventBus | None = None) -> Backend:
    """The adapter for ``config.kind`` behind its circuit breaker (``config.breaker``); may
    raise ConfigError (e.g. an unreadable CA file).

    ``bus`` hears what the adapter itself has to tell (e.g. how it batches calls) and the
    breaker's changes. The first backend of a kind imports its adapter module, and that
    module's libraries.
    """
    factory = cast(Factory, load_attribute(BACKEND_KINDS[config.kind].adapter))
    return BreakerBackend(factory(config, bus), config.breaker, bus)

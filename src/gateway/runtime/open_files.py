"""The open-file limit a gateway process needs, raised at start as far as the system allows.

Every client connection is a descriptor from accept to close, and so is every backend
connection; distributions start processes with a soft limit of 1024, fewer than the
default ``limits.max_connections`` alone. Past the limit, accept fails with EMFILE and
the listener pauses (gateway.server.admission), so clients would be turned away well
below the configured limits. The soft limit is therefore raised towards what the
configuration needs, never past the hard limit (only root may raise that), and a hard
limit that is too low is reported, so that an operator raises it (``LimitNOFILE=`` in a
systemd unit, ``ulimit -Hn``, the container runtime's ``nofile``).
"""

from __future__ import annotations

import resource
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.config.schema import GatewayConfig

#: Descriptors beyond the connections: the listening and admin sockets, the event loop's
#: own, log files, stores (SQLite, PostgreSQL, Redis), gRPC channels, sibling workers'
#: sockets, a shadow copy's backend connection; a few dozen in practice, room for more.
MARGIN = 256


@dataclass(frozen=True, slots=True)
class OpenFiles:
    """The open-file limit before and after :func:`raise_open_files`, and what was needed."""

    needed: int
    before: int
    soft: int
    hard: int

    @property
    def short(self) -> bool:
        """True when the limit now in force is below what the configuration needs."""
        return self.soft < self.needed


def needed_for(config: GatewayConfig) -> int:
    """Descriptors ``config`` can use at once in one process: every client connection, every
    backend connection the legacy backends allow, and :data:`MARGIN`."""
    return config.limits.max_connections + _backend_connections(config.backends.values()) + MARGIN


def raise_open_files(needed: int) -> OpenFiles:
    """Raise the soft RLIMIT_NOFILE to ``needed`` (never lowered, never past the hard limit)."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    soft = before
    if before != resource.RLIM_INFINITY and before < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
            soft = ceiling
        except (ValueError, OSError):
            pass  # a platform that refuses: the limit stays, and is reported short
    return OpenFiles(needed, before, _finite(soft), _finite(hard))


def _backend_connections(backends: Iterable[object]) -> int:
    """The sum of the backends' ``max_connections`` (the legacy kind's bound; others have
    a few channels, within the margin)."""
    total = 0
    for backend in backends:
        bound = getattr(backend, "max_connections", None)
        if isinstance(bound, int):
            total += bound
    return total


def _finite(limit: int) -> int:
    """RLIM_INFINITY as a number that compares above any need."""
    return 2**62 if limit == resource.RLIM_INFINITY else limit

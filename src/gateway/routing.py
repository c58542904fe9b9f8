"""The router: a pure function from a request to a :class:`Decision`, compiled from config.

Ordered routes, first match wins; the config loader guarantees a final catch-all,
so every request gets a decision. No I/O here (an AST test keeps it that way).

A split route picks its backend by bucket. The split key (the PNR, or KUNDENR)
is hashed with BLAKE2b, which is stable across processes and releases, unlike
``hash()``; the first 8 bytes of the digest modulo :data:`BUCKETS` are the
bucket. Backends hold consecutive bucket ranges, and the **last listed backend
holds the lowest buckets**, ``[0, its share)``, the one listed before it the next
range, and so on (:meth:`Split.ranges`). Raising the last backend's share only
extends its range upwards, so every key already on it stays on it, and a key that
is still on an earlier backend was there before. The same key lands in the same
bucket in every route and every process, so one person (or customer) sees one
side everywhere.

A request without a PNR (logon, password change) in a ``key: pnr`` split is
hashed by its customer number instead, so a customer's logons are sticky too.

Shadows are sampled the same way, sticky by PNR but with their own hash
personalisation, so which persons are shadowed is independent of which side a
split gives them. A write is copied only to shadows that say ``dual_write`` (and
a password change never: the loader refuses such a shadow); a shadow is left out
when the request already goes to its backend. Noise copies go to a share of the
shadowed lookups that are answered by the route's established side.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gateway.codec import LookupRequest, Request, customer_number, user_id
from gateway.comparison import Noise, Shadow
from gateway.config.schema import BUCKETS, Route, Split, SplitKey
from gateway.model import Operation

#: Fixed personalisation: the same key maps to the same bucket in every release.
_PERSON = b"cpr-gw-split"
#: Shadow and noise samples hash with their own personalisation: independent of splits.
_SHADOW_PERSON = b"cpr-gw-shadow"
_NOISE_PERSON = b"cpr-gw-noise"


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes and how long the backend gets."""

    route: str
    #: The one backend that answers; a write, split or not, reaches no other.
    backend: str
    #: Seconds for the backend call (connect, write and read together).
    deadline: float
    #: Shadows that get a copy of this request; their answers are compared, never returned.
    shadows: tuple[Shadow, ...] = ()
    #: The second primary instance that also gets a copy, for noise; None for most requests.
    noise: Noise | None = None


def bucket(key: str, person: bytes = _PERSON) -> int:
    """The split bucket of ``key``, in ``[0, BUCKETS)``; the same on every run and host."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=person).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def split_key(request: Request, key: SplitKey) -> str:
    """The text a split hashes for ``request``: its PNR, or its customer number.

    The customer number is normalised (``"  12"`` and ``"0012"`` are one
    customer); one that is not a number is used right-trimmed as sent.
    """
    if key is SplitKey.PNR and isinstance(request, LookupRequest):
        return request.pnr
    number = customer_number(request.customer)
    return f"customer:{request.customer.rstrip()}" if number is None else f"customer:{number}"


class _Chooser:
    """A split compiled for lookup: bucket range ends and the decision for each range."""

    def __init__(self, route: Route, split: Split) -> None:
        self._key = split.key
        # Empty ranges (a 0% share) are left out: no bucket falls in them.
        ranges = [r for r in split.ranges() if r[2] > r[1]]
        self._ends = [end for _backend, _start, end in ranges]
        self._decisions = [Decision(route.name, b, route.deadline) for b, _s, _e in ranges]

    def choose(self, request: Request) -> Decision:
        index = bisect.bisect_right(self._ends, bucket(split_key(request, self._key)))
        return self._decisions[index]


class RouteTable:
    """Routes compiled for lookup; cheap per call and safe to share between tasks."""

    def __init__(self, routes: Sequence[Route]) -> None:
        if not routes or not routes[-1].match.is_catch_all:
            raise ValueError("a route table needs a final catch-all route")
        self.routes = tuple(routes)
        self._compiled = tuple((r, _compile(r)) for r in routes)

    def route(self, request: Request) -> Decision:
        """The decision of the first route that takes ``request``."""
        operation = request.operation
        customer = customer_number(request.customer)
        user = user_id(request.user)
        for route, target in self._compiled:
            if route.match.admits(operation, request.transaction, customer, user):
                decision = target if isinstance(target, Decision) else target.choose(request)
                return _with_copies(route, decision, request) if route.shadows else decision
        raise AssertionError("unreachable: the last route is a catch-all")


def _compile(route: Route) -> Decision | _Chooser:
    if isinstance(route.target, Split):
        return _Chooser(route, route.target)
    return Decision(route.name, route.target, route.deadline)


def _with_copies(route: Route, decision: Decision, request: Request) -> Decision:
    """``decision`` with the shadows (and noise) this request is sampled for."""
    operation = request.operation
    if operation is Operation.CHANGE_PASSWORD:
        return decision  # never copied; the loader refuses such a shadow, this is the backstop
    key = split_key(request, SplitKey.PNR)
    sampled = bucket(key, _SHADOW_PERSON)
    shadows = tuple(
        shadow
        for shadow in route.shadows
        if sampled < shadow.sample
        and shadow.backend != decision.backend
        and (shadow.dual_write or not operation.is_write)
    )
    noise = route.noise
    if (
        noise is None
        or not shadows
        or operation is not Operation.LOOKUP
        or decision.backend != route.primary
        or bucket(key, _NOISE_PERSON) >= noise.sample
    ):
        noise = None
    return replace(decision, shadows=shadows, noise=noise)

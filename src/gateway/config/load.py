"""routing.yaml → :class:`GatewayConfig`, with every problem named by its YAML path.

Loading never stops at the first problem: each section is read to the end and
all problems are raised together in one :class:`ConfigError`, e.g.
``routes[2].backend: unknown backend 'persons-v2'``. Unknown names, unreachable
routes, split weights that do not add up to 100 and a missing catch-all fail
here, never at request time.

Each backend kind's section is read by the parser that
:data:`gateway.config.kinds.BACKEND_KINDS` names for its ``kind:``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import cast

from gateway.codec import user_id
from gateway.comparison import Rules, Shadow, Thresholds
from gateway.config import reader as r
from gateway.config import shadows as sh
from gateway.config.audit import parse_audit
from gateway.config.canary import (
    CanaryPlan,
    CanarySettings,
    RouteContext,
    parse_canary,
    parse_settings,
)
from gateway.config.kinds import BACKEND_KINDS, load_attribute
from gateway.config.reader import Problem, Problems, Skip, show
from gateway.config.schema import (
    BUCKETS,
    TLS_VERSIONS,
    Admin,
    BackendConfig,
    ClientTls,
    FailedLogons,
    GatewayConfig,
    Limits,
    Listen,
    Logging,
    Match,
    ProxyProtocol,
    RequestLines,
    Route,
    ServerTls,
    Sessions,
    Shadowing,
    Split,
    SplitKey,
)
from gateway.errors import ConfigError
from gateway.model import Operation

_VERSION = 1
_TRANSACTION = re.compile(r"[A-Z0-9]{4}")
_USER_LENGTH = 8  # BRUGER-ID (spec §3)
_PER_PERCENT = BUCKETS // 100
_OPERATIONS = {operation.value: operation for operation in Operation}
# Defaults come from instances: on a slotted dataclass, ``Admin.host`` is a descriptor.
_ADMIN, _LIMITS, _SESSIONS = Admin(), Limits(), Sessions()
_SHADOWING = Shadowing()
_SERVER_TLS = ServerTls(Path(), Path())
_SPLIT_KEY = r.one_of(SplitKey, "split key")
_REQUEST_LINES = r.one_of(RequestLines, "request lines")
#: The characters of an OpenSSL cipher string (``ECDHE+AESGCM:!aNULL:@SECLEVEL=2``).
_CIPHER_STRING = re.compile(r"[A-Za-z0-9_+\-!:,@=. ]{1,512}")
#: ``listen.tls.session_tickets`` at most: a client uses one per connection it resumes.
MAX_SESSION_TICKETS = 8
_ROUTE_KEYS = (
    "name", "match", "backend", "split", "deadline", "shadow", "noise", "compare", "thresholds",
    "canary",
)  # fmt: skip


#: URL schemes of a shared session store (sessions.store).
_REDIS_SCHEMES = ("redis://", "rediss://")


def load_routing(path: Path) -> GatewayConfig:
    """Load and validate ``path``; raises ConfigError listing every problem found."""
    reader = RoutingReader(path.resolve().parent)
    raw = r.read_yaml(path)
    try:
        config = reader.gateway(raw, path)
    except Skip:
        raise ConfigError(reader.problems) from None
    if reader.problems:
        raise ConfigError(reader.problems)
    return config


def check_config(path: Path) -> list[str]:
    """Every problem of ``path`` as path-qualified messages; empty when it is valid."""
    try:
        load_routing(path)
    except ConfigError as exc:
        return exc.problems
    return []


class RoutingReader(Problems):
    """Reads routing.yaml section by section; relative files resolve against ``base``.

    A backend kind's parser (see :data:`BackendParser`) gets this reader and
    may use :meth:`section`, :meth:`problem`, :meth:`file`, :meth:`optional_file`
    and :meth:`client_tls`, plus the scalar parsers of :mod:`gateway.config.reader`.
    """

    def __init__(self, base: Path) -> None:
        super().__init__()
        self.base = base

    def gateway(self, raw: object, source: Path) -> GatewayConfig:
        """The whole document."""
        keys = (
            "version",
            "listen",
            "admin",
            "limits",
            "sessions",
            "backends",
            "routes",
            "shadowing",
            "canary",
            "audit",
            "logging",
        )
        s = self.section(raw, "", keys)
        s.get("version", _version)
        listen = s.get("listen", self.listen)
        admin = s.get("admin", self.admin, _ADMIN)
        limits = s.get("limits", self.limits, _LIMITS)
        sessions = s.get("sessions", self.sessions, _SESSIONS)
        backends = s.get("backends", self.backends)
        named = raw.get("backends") if isinstance(raw, dict) else None
        # Routes are checked against every name given, even of a backend with problems of its
        # own, so one typo is reported once and not again at every route that uses it.
        known = set(named) if isinstance(named, dict) else set()
        routes = s.get("routes", lambda value, path: self.routes(value, path, known))
        shadowing = s.get(
            "shadowing", lambda value, path: sh.shadowing(self, value, path, self.file), _SHADOWING
        )
        canary = s.get("canary", self.canary, None) or self.canary({}, "canary")
        audit = s.get("audit", lambda value, p: parse_audit(self, value, p, self.file), None)
        logging = s.get("logging", self.logging, Logging())
        s.done()
        return GatewayConfig(
            listen, admin, limits, backends, routes, source, shadowing, sessions, canary,
            audit=audit, logging=logging,
        )  # fmt: skip

    def logging(self, raw: object, path: str) -> Logging:
        """``requests``: ``all`` (the default) or ``errors``."""
        s = self.section(raw, path, ("requests",))
        requests = s.get("requests", _REQUEST_LINES, RequestLines.ALL)
        s.done()
        return Logging(requests)

    def listen(self, raw: object, path: str) -> Listen:
        """The client-facing listener; ``tls`` must be given (null = plaintext, on purpose)."""
        s = self.section(raw, path, ("host", "port", "tls", "proxy_protocol"))
        listen = Listen(
            s.get("host", r.host),
            s.get("port", r.port),
            s.get("tls", self.server_tls),
            s.get("proxy_protocol", self.proxy_protocol, None),
        )
        s.done()
        return listen

    def proxy_protocol(self, raw: object, path: str) -> ProxyProtocol:
        """``trusted``: the networks (CIDR) whose connections open with a PROXY v2 header."""
        s = self.section(raw, path, ("trusted",))
        trusted = s.get("trusted", lambda value, p: tuple(self.items(value, p, _network)))
        s.done()
        return ProxyProtocol(trusted)

    def server_tls(self, raw: object, path: str) -> ServerTls | None:
        """Certificate and key, or None for plaintext; the lowest version and TLS 1.2 suites."""
        if raw is None:
            return None
        s = self.section(raw, path, ("cert", "key", "min_version", "ciphers", "session_tickets"))
        tls = ServerTls(
            s.get("cert", self.file),
            s.get("key", self.file),
            s.get("min_version", _min_version, _SERVER_TLS.min_version),
            s.get("ciphers", _ciphers, _SERVER_TLS.ciphers),
            s.get("session_tickets", _session_tickets, _SERVER_TLS.session_tickets),
        )
        s.done()
        return tls

    def admin(self, raw: object, path: str) -> Admin:
        """The admin HTTP server."""
        s = self.section(raw, path, ("host", "port", "token_file"))
        admin = Admin(
            s.get("host", r.host, _ADMIN.host),
            s.get("port", r.port, _ADMIN.port),
            s.get("token_file", self.optional_file, None),
        )
        s.done()
        return admin

    def limits(self, raw: object, path: str) -> Limits:
        """Timeouts and bounds on clients (connections, requests), grace period."""
        keys = (
            "read_timeout",
            "max_connections",
            "grace_period",
            "handshake_timeout",
            "shed_lag",
            "first_byte_timeout",
            "max_connections_per_address",
            "handshakes_per_address",
            "max_in_flight",
            "failed_logons",
        )
        s = self.section(raw, path, keys)
        limits = Limits(
            s.get("read_timeout", r.positive_duration, _LIMITS.read_timeout),
            s.get("max_connections", r.positive_int, _LIMITS.max_connections),
            s.get("grace_period", r.duration, _LIMITS.grace_period),
            s.get("handshake_timeout", r.positive_duration, _LIMITS.handshake_timeout),
            s.get("shed_lag", r.positive_duration, _LIMITS.shed_lag),
            s.get("first_byte_timeout", r.positive_duration, _LIMITS.first_byte_timeout),
            s.get(
                "max_connections_per_address",
                r.positive_int,
                _LIMITS.max_connections_per_address,
            ),
            s.get("handshakes_per_address", r.positive_int, _LIMITS.handshakes_per_address),
            s.get("max_in_flight", r.positive_int, _LIMITS.max_in_flight),
            s.get("failed_logons", self.failed_logons, _LIMITS.failed_logons),
        )
        s.done()
        return limits

    def failed_logons(self, raw: object, path: str) -> FailedLogons:
        """``{max: 10, window: 5m}``: refused logons per customer and address, and over when."""
        s = self.section(raw, path, ("max", "window"))
        limit = FailedLogons(
            s.get("max", r.positive_int, _LIMITS.failed_logons.max),
            s.get("window", r.positive_duration, _LIMITS.failed_logons.window),
        )
        s.done()
        return limit

    def sessions(self, raw: object, path: str) -> Sessions:
        """How long a brokered session lives without use, and where sessions are shared."""
        keys = ("idle", "store", "timeout", "password_file", "fan_out_timeout")
        s = self.section(raw, path, keys)
        sessions = Sessions(
            s.get("idle", r.positive_duration, _SESSIONS.idle),
            s.get("store", _session_store, _SESSIONS.store),
            s.get("timeout", r.positive_duration, _SESSIONS.timeout),
            s.get("password_file", self.optional_file, None),
            s.get("fan_out_timeout", r.positive_duration, _SESSIONS.fan_out_timeout),
        )
        s.done()
        return sessions

    def canary(self, raw: object, path: str) -> CanarySettings:
        """Where the canary plans' state is kept: a file beside routing.yaml, or a DSN."""
        return parse_settings(self, raw, path, lambda v, p: sh.store_location(v, p, self.file))

    def backends(self, raw: object, path: str) -> Mapping[str, BackendConfig]:
        """Named backends, each built by the parser of its ``kind``."""
        if not isinstance(raw, dict) or not raw:
            raise Problem(f"expected a mapping of backend names to backends, got {show(raw)}")
        result: dict[str, BackendConfig] = {}
        failed = False
        for name, value in raw.items():
            try:
                result[name] = self.backend(name, value, f"{path}.{name}")
            except Skip:
                failed = True
        if failed:
            raise Skip
        return MappingProxyType(result)

    def backend(self, name: object, raw: object, path: str) -> BackendConfig:
        """One backend; the ``kind`` key picks the parser."""
        if not r.is_name(name):
            self.problem(path, f"a backend name is {r.NAME_RULE}")
            raise Skip
        if not isinstance(raw, dict):
            self.problem(path, f"expected a mapping with a kind, got {show(raw)}")
            raise Skip
        kind = raw.get("kind")
        parser = _parser_of(kind) if isinstance(kind, str) else None
        if parser is None:
            known = ", ".join(BACKEND_KINDS)
            what = "required" if kind is None else f"unknown kind {show(kind)} (known: {known})"
            self.problem(f"{path}.kind", what)
            raise Skip
        return parser(self, str(name), raw, path)

    def client_tls(self, raw: object, path: str) -> ClientTls | None:
        """How to verify a backend, and the certificate to present to it; None for plaintext."""
        if raw is None:
            return None
        s = self.section(raw, path, ("ca", "server_name", "cert", "key"))
        tls = ClientTls(
            s.get("ca", self.optional_file, None),
            s.get("server_name", r.host, None),
            s.get("cert", self.optional_file, None),
            s.get("key", self.optional_file, None),
        )
        s.done()
        if (tls.cert is None) != (tls.key is None):
            missing = "key" if tls.key is None else "cert"
            self.problem(f"{path}.{missing}", "required with a client certificate (cert and key)")
            raise Skip
        return tls

    def file(self, raw: object, path: str) -> Path:
        """A file path, resolved against the YAML file's directory."""
        return self.base / r.string(raw, path)

    def optional_file(self, raw: object, path: str) -> Path | None:
        """A file path or null."""
        return None if raw is None else self.file(raw, path)

    def routes(self, raw: object, path: str, backends: set[object]) -> tuple[Route, ...]:
        """The ordered route list, then the checks that need all of it."""
        if not isinstance(raw, list) or not raw:
            raise Problem(f"expected a non-empty list of routes, got {show(raw)}")
        routes: list[Route] = []
        for index, item in enumerate(raw):
            with contextlib.suppress(Skip):  # recorded; carry on to report the other routes
                routes.append(self.route(item, f"{path}[{index}]", backends))
        if len(routes) != len(raw):
            raise Skip
        for where, message in _route_order_problems(routes):
            self.problem(f"{path}{where}", message)
        return tuple(routes)

    def route(self, raw: object, path: str, backends: set[object]) -> Route:
        """One route: name, match, a backend or a split, deadline; shadows and their rules."""
        s = self.section(raw, path, _ROUTE_KEYS)
        name = s.get("name", r.name)
        match = s.get("match", self.match)
        backend = s.get("backend", lambda value, _path: sh.backend_ref(value, backends), None)
        split = s.get("split", lambda value, p: self.split(value, p, backends), None)
        deadline = s.get("deadline", r.positive_duration)
        none: tuple[Shadow, ...] = ()
        shadows = s.get(
            "shadow", lambda v, p: sh.shadow_list(self, v, p, backends, deadline or 1.0), none
        )
        noise = s.get("noise", lambda value, p: sh.noise(self, value, p, backends), None)
        rules = s.get("compare", lambda value, p: sh.rules(self, value, p), Rules())
        thresholds = s.get("thresholds", lambda v, p: sh.thresholds(self, v, p), Thresholds())
        context = RouteContext(
            frozenset(str(known) for known in backends),
            None if isinstance(raw, dict) and "split" in raw else backend or "",
            (match.operations if match else None) or frozenset(Operation),
            frozenset(shadow.backend for shadow in shadows or ()),
            frozenset(shadow.backend for shadow in shadows or () if shadow.dual_write),
        )
        canary: CanaryPlan | None = s.get(
            "canary", lambda value, p: parse_canary(self, value, p, context), None
        )
        target = _one_target(self, raw, path, backend, split)
        s.done()
        if target is None:  # the problem is recorded already
            raise Skip
        route = Route(name, match, target, deadline, shadows, noise, rules, thresholds, canary)
        for where, message in sh.copy_problems(route):
            self.problem(f"{path}{where}", message)
        return route

    def match(self, raw: object, path: str) -> Match:
        """What a route takes; every key is a list and an absent key matches anything."""
        s = self.section(raw, path, ("operation", "transaction", "customer", "user"))
        match = Match(
            s.get("operation", lambda v, p: frozenset(self.items(v, p, _operation)), None),
            s.get("transaction", lambda v, p: frozenset(self.items(v, p, _transaction)), None),
            s.get("customer", lambda v, p: frozenset(self.items(v, p, _customer)), None),
            s.get("user", lambda v, p: frozenset(self.items(v, p, _user)), None),
        )
        s.done()
        return match

    def split(self, raw: object, path: str, backends: set[object]) -> Split:
        """A sticky weighted split: the hashed key and percentages summing to 100."""
        s = self.section(raw, path, ("key", "backends"))
        key = s.get("key", _SPLIT_KEY)
        shares = s.get("backends", lambda v, p: self.shares(v, p, backends))
        s.done()
        return Split(key, shares)

    def shares(self, raw: object, path: str, backends: set[object]) -> tuple[tuple[str, int], ...]:
        """``{backend: percent}`` in YAML order, as buckets out of BUCKETS."""
        if not isinstance(raw, dict) or not raw:
            raise Problem(f"expected a mapping of backend names to percentages, got {show(raw)}")
        shares: list[tuple[str, int]] = []
        for name, weight in raw.items():
            try:
                shares.append((sh.backend_ref(name, backends), sh.percent_buckets(weight)))
            except Problem as problem:
                self.problem(f"{path}.{name}", str(problem))
        if len(shares) != len(raw):
            raise Skip
        total = sum(buckets for _, buckets in shares)
        if total != BUCKETS:
            raise Problem(f"percentages add up to {total / _PER_PERCENT:g}, not 100")
        return tuple(shares)


#: Reads one backend section: (reader, name, raw mapping, YAML path) → the kind's frozen config.
#: Report problems through the reader (or raise Problem/Skip), never by returning a partial config.
BackendParser = Callable[[RoutingReader, str, object, str], BackendConfig]


def _parser_of(kind: str) -> BackendParser | None:
    """The parser :data:`BACKEND_KINDS` names for ``kind`` (its module imported now), or None."""
    found = BACKEND_KINDS.get(kind)
    return None if found is None else cast(BackendParser, load_attribute(found.parser))


def _version(raw: object, _path: str) -> int:
    if raw != _VERSION or isinstance(raw, bool):
        raise Problem(f"unsupported version {show(raw)} (expected {_VERSION})")
    return _VERSION


def _one_target(
    reader: RoutingReader, raw: object, path: str, backend: str | None, split: Split | None
) -> str | Split | None:
    """The route's target, or None with the problem recorded: give ``backend`` or ``split``."""
    if not isinstance(raw, dict):
        return None  # "expected a mapping" is recorded already
    if "backend" in raw and "split" in raw:
        reader.problem(path, "give backend or split, not both")
        return None
    if "backend" not in raw and "split" not in raw:
        reader.problem(f"{path}.backend", "required (or split)")
        return None
    return backend if "backend" in raw else split


def _session_store(raw: object, _path: str) -> str | None:
    """``memory`` (None: in this process) or a Redis URL; a bad value never echoes a password."""
    if raw == "memory":
        return None
    if isinstance(raw, str) and raw.startswith(_REDIS_SCHEMES):
        return raw
    shown = show(raw) if not isinstance(raw, str) or "@" not in raw else "a URL"
    raise Problem(f"expected memory or a redis:// or rediss:// URL, got {shown}")


def _network(raw: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network in CIDR notation, host bits zero (``10.0.0.0/8``, ``127.0.0.1/32``)."""
    try:
        return ipaddress.ip_network(raw if isinstance(raw, str) else "", strict=True)
    except ValueError as exc:
        raise Problem(f"not a network in CIDR notation: {show(raw)} ({exc})") from None


def _min_version(raw: object, _path: str) -> str:
    """``TLSv1.2`` or ``TLSv1.3``: nothing older is ever accepted (RFC 8996)."""
    if not isinstance(raw, str) or raw not in TLS_VERSIONS:
        raise Problem(f"expected {' or '.join(TLS_VERSIONS)}, got {show(raw)}")
    return raw


def _ciphers(raw: object, _path: str) -> str:
    """An OpenSSL cipher string by its shape (suite names, ``+ - ! : , @ =``); whether it
    selects a suite this OpenSSL has is known when the listener's context is made, at start
    (reading routing.yaml loads no ssl)."""
    if not isinstance(raw, str) or not _CIPHER_STRING.fullmatch(raw):
        raise Problem(f"expected an OpenSSL cipher string like ECDHE+AESGCM, got {show(raw)}")
    return raw


def _session_tickets(raw: object, path: str) -> int:
    """0-8: more than a client could use is a mistake (OpenSSL sends 2, as does HAProxy)."""
    value = r.integer(raw, path)
    if not 0 <= value <= MAX_SESSION_TICKETS:
        raise Problem(f"expected 0-{MAX_SESSION_TICKETS}, got {value}")
    return value


def _user(raw: object) -> str:
    # Compared right-trimmed, like the request's BRUGER-ID.
    value = user_id(raw) if isinstance(raw, str) else ""
    if not value or len(value) > _USER_LENGTH or not value.isprintable():
        raise Problem(f"expected a user id of 1-{_USER_LENGTH} characters, got {show(raw)}")
    return value


def _operation(raw: object) -> Operation:
    operation = _OPERATIONS.get(raw) if isinstance(raw, str) else None
    if operation is None:
        raise Problem(f"unknown operation {show(raw)} (known: {', '.join(_OPERATIONS)})")
    return operation


def _transaction(raw: object) -> str:
    if not isinstance(raw, str) or not _TRANSACTION.fullmatch(raw):
        raise Problem(f"expected a 4-character transaction code like PRIV, got {show(raw)}")
    return raw


def _customer(raw: object) -> int:
    # YAML reads an unquoted 0012 as the octal number 10, so only strings are trusted.
    digits = raw.strip() if isinstance(raw, str) else ""
    if not (isinstance(raw, str) and len(raw) <= 4 and digits.isascii() and digits.isdigit()):
        raise Problem(f'expected a quoted customer number like "0012", got {show(raw)}')
    return int(raw)


def _route_order_problems(routes: list[Route]) -> Iterable[tuple[str, str]]:
    """Duplicate names, a catch-all that is missing or not last, and unreachable routes."""
    seen: dict[str, int] = {}
    for index, route in enumerate(routes):
        if route.name in seen:
            first = seen[route.name]
            yield f"[{index}].name", f"duplicate route name {route.name!r} (see routes[{first}])"
        seen.setdefault(route.name, index)
    catch_all = next((i for i, route in enumerate(routes) if route.match.is_catch_all), None)
    if catch_all is None:
        yield "", "no catch-all route: the last route must have an empty match (match: {})"
    last = len(routes) if catch_all is None else catch_all + 1
    for index in range(last, len(routes)):
        yield f"[{index}]", f"comes after the catch-all routes[{catch_all}] and can never match"
    for index in range(1, last):
        covering = routes[index].match.covered_by([route.match for route in routes[:index]])
        if covering:
            names = ", ".join(f"routes[{i}]" for i in covering)
            yield f"[{index}]", f"unreachable: {names} already match everything it matches"

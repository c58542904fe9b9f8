"""The shadow keys of routing.yaml: a route's ``shadow``, ``noise``, ``compare``, ``thresholds``,
and the top-level ``shadowing`` section.

Read by :class:`gateway.config.load.RoutingReader` with the same path-qualified
problems as everything else. What a shadow may copy is checked here, at load,
against what the route can match: a route that can match a write needs
``dual_write: true`` on each shadow, and a route that can match a password
change can have no shadow at all (a password changes on exactly one side).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from gateway.comparison import Noise, Rules, Shadow, ShadowPolicy, Thresholds
from gateway.config import reader as r
from gateway.config.reader import Problem, Problems, Skip, show
from gateway.config.schema import BUCKETS, Retention, Route, Shadowing
from gateway.errors import ConfigError
from gateway.model import Operation
from gateway.storage.database import is_dsn, redact

_PER_PERCENT = BUCKETS // 100
_SHADOW_KEYS = ("backend", "sample", "deadline", "dual_write")
_RETENTION = Retention()
_SHADOWING = Shadowing()
_UNITS = {"h": 3600.0, "d": 24 * 3600.0}
#: A YAML value and its path → a file path resolved against the YAML file, or a Problem.
FileParser = Callable[[object, str], Path]


def percent_buckets(raw: object) -> int:
    """A percentage 0-100 with at most two decimals (``95``, ``0.5``), as buckets out of BUCKETS."""
    return round(r.percent(raw) * _PER_PERCENT)


def sample(raw: object, path: str = "") -> int:
    """A share of requests: ``100%`` (YAML reads it as text) or a bare percentage ``20``."""
    return round(r.percentage(raw, path) * _PER_PERCENT)


def shadow_list(
    reader: Problems, raw: object, path: str, backends: set[object], deadline: float
) -> tuple[Shadow, ...]:
    """``shadow:``, a non-empty list; a shadow's deadline defaults to the route's."""
    if not isinstance(raw, list) or not raw:
        raise Problem(f"expected a non-empty list of shadows, got {show(raw)}")
    shadows: list[Shadow] = []
    for index, item in enumerate(raw):
        with contextlib.suppress(Skip):  # recorded; carry on to report the other shadows
            shadows.append(_shadow(reader, item, f"{path}[{index}]", backends, deadline))
    if len(shadows) != len(raw):
        raise Skip
    return tuple(shadows)


def _shadow(
    reader: Problems, raw: object, path: str, backends: set[object], deadline: float
) -> Shadow:
    s = reader.section(raw, path, _SHADOW_KEYS)
    shadow = Shadow(
        s.get("backend", lambda value, _path: backend_ref(value, backends)),
        s.get("sample", sample, BUCKETS),
        s.get("deadline", r.positive_duration, deadline),
        s.get("dual_write", r.flag, False),
    )
    s.done()
    return shadow


def noise(reader: Problems, raw: object, path: str, backends: set[object]) -> Noise:
    """``noise: {backend, sample}``: the second primary instance and its share."""
    s = reader.section(raw, path, ("backend", "sample"))
    found = Noise(
        s.get("backend", lambda value, _path: backend_ref(value, backends)),
        s.get("sample", sample),
    )
    s.done()
    return found


def rules(reader: Problems, raw: object, path: str) -> Rules:
    """``compare:`` (see :meth:`Rules.from_mapping`), its problems recorded like every other."""
    try:
        return Rules.from_mapping(raw, path)
    except ConfigError as exc:
        reader.problems.extend(exc.problems)
        raise Skip from None


def thresholds(reader: Problems, raw: object, path: str) -> Thresholds:
    """``thresholds:`` (see :meth:`Thresholds.from_mapping`)."""
    try:
        return Thresholds.from_mapping(raw, path)
    except ConfigError as exc:
        reader.problems.extend(exc.problems)
        raise Skip from None


def shadowing(reader: Problems, raw: object, path: str, file: FileParser) -> Shadowing:
    """The top-level ``shadowing:`` section; ``file`` resolves a path against the YAML file."""
    keys = ("max_in_flight", "max_queued", "store", "key_file", "retention", "shed_lag")
    s = reader.section(raw, path, keys)

    def optional_file(value: object, at: str) -> Path | None:
        return None if value is None else file(value, at)

    def store(value: object, at: str) -> Path | str | None:
        return None if value is None else store_location(value, at, file)

    found = Shadowing(
        s.get("max_in_flight", r.positive_int, _SHADOWING.max_in_flight),
        s.get("max_queued", _count, _SHADOWING.max_queued),
        s.get("store", store, None),
        s.get("key_file", optional_file, None),
        s.get("retention", lambda value, at: _retention(reader, value, at), _RETENTION),
        s.get("shed_lag", r.positive_duration, _SHADOWING.shed_lag),
    )
    s.done()
    return found


def store_location(raw: object, path: str, file: FileParser) -> Path | str:
    """A store: a ``postgresql://`` DSN kept as written, or a file resolved by ``file``."""
    return _store_dsn(raw) if is_dsn(raw) else file(raw, path)


def _store_dsn(raw: object) -> str:
    """A PostgreSQL mismatch store's DSN, kept as written (a path is resolved, a DSN not)."""
    if importlib.util.find_spec("psycopg") is None:  # looks, never imports
        raise Problem(
            f"{redact(str(raw))} is a PostgreSQL store, which needs psycopg: "
            "install 'cpr-gateway[postgres]'"
        )
    return str(raw)


def _retention(reader: Problems, raw: object, path: str) -> Retention:
    s = reader.section(raw, path, ("max_rows", "max_age"))
    found = Retention(
        s.get("max_rows", r.positive_int, _RETENTION.max_rows),
        s.get("max_age", _age, _RETENTION.max_age),
    )
    s.done()
    return found


def shadow_policies(routes: Iterable[Route]) -> dict[str, ShadowPolicy]:
    """What the shadow runner needs of each shadowed route, by route name."""
    return {route.name: _policy(route) for route in routes if route.shadows}


def _policy(route: Route) -> ShadowPolicy:
    primary, deadline, rules = route.primary, route.deadline, route.compare
    return ShadowPolicy(route.name, primary, deadline, route.shadows, rules, route.thresholds)


def copy_problems(route: Route) -> Iterator[tuple[str, str]]:
    """What a route's shadows and noise may not do, as (path suffix, message)."""
    operations = route.match.operations or frozenset(Operation)
    writes = [op.value for op in Operation if op in operations and op.is_write]
    seen: dict[str, int] = {}
    for index, shadow in enumerate(route.shadows):
        at = f".shadow[{index}]"
        if shadow.backend in seen:
            yield (
                f"{at}.backend",
                f"{shadow.backend!r} is shadowed twice (see shadow[{seen[shadow.backend]}])",
            )
        seen.setdefault(shadow.backend, index)
        if shadow.backend == route.target:  # a split's backend may be shadowed: a canary
            yield f"{at}.backend", f"{shadow.backend!r} is the route's own backend"
        yield from _write_problems(at, shadow, operations, writes)
    yield from _noise_problems(route)
    if not route.shadows:
        for key, unset in (("compare", Rules()), ("thresholds", Thresholds())):
            if getattr(route, key) != unset:
                yield f".{key}", "only used with shadow"


def _write_problems(
    at: str, shadow: Shadow, operations: frozenset[Operation], writes: list[str]
) -> Iterator[tuple[str, str]]:
    if Operation.CHANGE_PASSWORD in operations:
        yield (
            at,
            (
                "route matches change_password, which is never shadowed (a password changes on "
                "one side only); give the shadow a route without it"
            ),
        )
    elif writes and not shadow.dual_write:
        what = "a write" if len(writes) == 1 else "writes"
        yield (
            at,
            f"route matches {' and '.join(writes)}, {what}; shadowing it needs dual_write: true",
        )
    elif shadow.dual_write and not writes:
        yield f"{at}.dual_write", "the route matches no write (subscribe, unsubscribe)"


def _noise_problems(route: Route) -> Iterator[tuple[str, str]]:
    found = route.noise
    if found is None:
        return
    if not route.shadows:
        yield ".noise", "only used with shadow (noise is measured on shadowed lookups)"
    if found.backend in route.backends:
        yield (
            ".noise.backend",
            (
                f"{found.backend!r} is one of the route's own backends; noise needs a second "
                "instance of the primary side under its own backend name"
            ),
        )
    if any(shadow.backend == found.backend for shadow in route.shadows):
        yield ".noise.backend", f"{found.backend!r} is also a shadow of this route"


def backend_ref(raw: object, backends: set[object]) -> str:
    """The name of a backend defined under ``backends:``."""
    if not isinstance(raw, str):
        raise Problem(f"expected a backend name, got {show(raw)}")
    if raw not in backends:
        raise Problem(f"unknown backend {show(raw)}")
    return raw


def _count(raw: object, path: str) -> int:
    value = r.integer(raw, path)
    if value < 0:
        raise Problem(f"must be 0 or more, got {value}")
    return value


def _age(raw: object, path: str) -> float:
    """A retention age: the usual durations, plus hours and days (``12h``, ``7d``)."""
    if isinstance(raw, str) and raw[-1:] in _UNITS:
        try:
            seconds = float(raw[:-1]) * _UNITS[raw[-1]]
        except ValueError:
            seconds = -1.0
        if seconds > 0:
            return seconds
        raise Problem(f"bad age {show(raw)} (expected e.g. 12h, 7d)")
    return r.positive_duration(raw, path)

"""Reading YAML into values while collecting every problem under its YAML path.

The machinery behind :mod:`gateway.config.load`, kept apart from what
routing.yaml means: a strict YAML loader, :class:`Section` (a mapping read key by
key, unknown keys reported), and parsers for the scalar kinds a config uses
(ports, durations, percentages, addresses, names). A parser raises :class:`Problem` with a
short fact; the section records it under the value's path and carries on.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

from gateway.errors import ConfigError

T = TypeVar("T")
E = TypeVar("E", bound=enum.StrEnum)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}
#: Names become metric labels: keep them short and plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
NAME_RULE = "letters, digits, '_', '.', '-' (at most 63)"
_ADDRESS = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s]+)):(?P<port>\d{1,5})")
_MISSING: Any = object()


class Problem(Exception):
    """One value is wrong; the section it belongs to records it under the value's path."""


class Skip(Exception):
    """A section had problems (already recorded); its value cannot be built."""


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key ({{}}): PyYAML's own check refuses it below
                break
            if duplicate:
                line = key_node.start_mark.line + 1
                raise ConfigError([f"line {line}: duplicate key {key!r}"])
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> object:
    """The document at ``path``; unreadable files and bad YAML are a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read {path}: {exc}"]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}".replace("\n", " ")]) from None


def show(value: object) -> str:
    """A short rendering of an offending value for a message: its repr, cut at 40 characters.

    Only those characters are ever built: a few hundred bytes of YAML aliases make lists of
    billions of items (each level repeating the one below), whose whole repr takes minutes.
    """
    text = ""
    for piece in _repr_pieces(value):
        text += piece
        if len(text) > _SHOWN:
            return text[: _SHOWN - 3] + "..."
    return text


#: Characters of an offending value a message shows.
_SHOWN = 40


def _repr_pieces(value: object) -> Iterator[str]:
    """``repr(value)`` piece by piece, lists and mappings lazily (YAML makes no tuples)."""
    if isinstance(value, list):
        yield "["
        for index, item in enumerate(value):
            yield ", " if index else ""
            yield from _repr_pieces(item)
        yield "]"
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield f"{', ' if index else ''}{key!r}: "
            yield from _repr_pieces(item)
        yield "}"
    else:
        yield repr(value)


class Problems:
    """Collects path-qualified problems while a document is read to its end."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        """Record one problem at a YAML path."""
        self.problems.append(f"{path or '(top level)'}: {message}")

    def section(self, raw: object, path: str, keys: tuple[str, ...]) -> Section:
        """Start reading ``raw`` as a mapping that may hold ``keys``."""
        return Section(self, raw, path, keys)

    def items(self, raw: object, path: str, parse: Callable[[Any], T]) -> list[T]:
        """A non-empty list, each item parsed and its problems recorded under ``path[i]``."""
        if not isinstance(raw, list) or not raw:
            raise Problem(f"expected a non-empty list, got {show(raw)}")
        values: list[T] = []
        for index, item in enumerate(raw):
            try:
                values.append(parse(item))
            except Problem as problem:
                self.problem(f"{path}[{index}]", str(problem))
        if len(values) != len(raw):
            raise Skip
        return values


class Section:
    """A YAML mapping read key by key; keys nobody asked for are reported as unknown.

    :meth:`get` returns a placeholder for a bad value so reading can go on;
    :meth:`done` raises Skip if there was one, so no placeholder is ever used.
    """

    def __init__(self, owner: Problems, raw: object, path: str, keys: tuple[str, ...]) -> None:
        self._owner, self._path, self._keys = owner, path, keys
        self._mapping = isinstance(raw, dict)
        self._failed = not self._mapping
        if self._failed:
            owner.problem(path, f"expected a mapping with keys {', '.join(keys)}, got {show(raw)}")
        self._raw: dict[Any, Any] = raw if isinstance(raw, dict) else {}

    def at(self, key: str) -> str:
        """The YAML path of ``key`` in this section."""
        return f"{self._path}.{key}" if self._path else key

    def get(self, key: str, parse: Callable[[Any, str], T], default: T = _MISSING) -> T:
        """The parsed value of ``key``, or ``default`` when absent (required without one)."""
        assert key in self._keys, key
        if not self._mapping:
            return cast(T, None)  # "expected a mapping" said it all; no "required" for each key
        if key not in self._raw:
            if default is not _MISSING:
                return default
            self._fail(self.at(key), "required")
            return cast(T, None)
        try:
            return parse(self._raw[key], self.at(key))
        except Problem as problem:
            self._fail(self.at(key), str(problem))
        except Skip:
            self._failed = True
        return cast(T, None)  # never seen: done() raises Skip first

    def _fail(self, path: str, message: str) -> None:
        self._owner.problem(path, message)
        self._failed = True

    def done(self) -> None:
        """Report unknown keys; raise Skip when any value was bad."""
        for key in self._raw:
            if key not in self._keys:
                self._fail(self.at(str(key)), f"unknown key (expected {', '.join(self._keys)})")
        if self._failed:
            raise Skip


def string(raw: object, _path: str = "") -> str:
    """A non-empty string."""
    if not isinstance(raw, str) or not raw:
        raise Problem(f"expected a non-empty string, got {show(raw)}")
    return raw


def host(raw: object, path: str = "") -> str:
    """A host name or address (no spaces)."""
    value = string(raw, path)
    if any(c.isspace() for c in value):
        raise Problem(f"expected a host name or address, got {show(raw)}")
    return value


def flag(raw: object, _path: str = "") -> bool:
    """A YAML boolean: true or false (not yes/no strings, not 0/1)."""
    if not isinstance(raw, bool):
        raise Problem(f"expected true or false, got {show(raw)}")
    return raw


def integer(raw: object, _path: str = "") -> int:
    """An integer (YAML booleans are not integers here)."""
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise Problem(f"expected an integer, got {show(raw)}")
    return raw


def port(raw: object, path: str = "") -> int:
    """A port to listen on; 0 asks the system for a free one."""
    value = integer(raw, path)
    if not 0 <= value <= 65535:
        raise Problem(f"port {value} is outside 0-65535")
    return value


def positive_int(raw: object, path: str = "") -> int:
    """An integer greater than 0."""
    value = integer(raw, path)
    if value <= 0:
        raise Problem(f"must be greater than 0, got {value}")
    return value


def duration(raw: object, _path: str = "") -> float:
    """Seconds from ``500ms``, ``10s``, ``1.5m``; a bare number is refused (which unit?)."""
    found = _DURATION.fullmatch(raw) if isinstance(raw, str) else None
    if found is None:
        raise Problem(f"bad duration {show(raw)} (expected e.g. 500ms, 10s, 1m)")
    return float(found[1]) * _UNITS[found[2]]


def positive_duration(raw: object, path: str = "") -> float:
    """A duration greater than 0."""
    seconds = duration(raw, path)
    if seconds <= 0:
        raise Problem(f"must be greater than 0, got {show(raw)}")
    return seconds


def percent(raw: object, _path: str = "") -> float:
    """A percentage 0-100 with at most two decimals, written as a number (``95``, ``0.5``)."""
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not 0 <= raw <= 100:
        raise Problem(f"expected a percentage from 0 to 100, got {show(raw)}")
    if abs(round(raw * 100) - raw * 100) > 1e-6:
        raise Problem(f"a percentage has at most two decimals, got {show(raw)}")
    return float(raw)


def percentage(raw: object, path: str = "") -> float:
    """A percentage written ``20%`` (YAML reads it as text) or as a bare number ``20``, ``0.5``."""
    if isinstance(raw, str) and raw.endswith("%"):
        try:
            number = float(raw[:-1])
        except ValueError:
            pass
        else:
            return percent(number, path)
    elif not isinstance(raw, str):
        return percent(raw, path)
    raise Problem(f"expected a percentage like 20% or 100%, got {show(raw)}")


def one_of(kind: type[E], what: str) -> Callable[[object, str], E]:
    """A reader of one of ``kind``'s values, named ``what`` in the problem it reports."""

    def read(raw: object, _path: str = "") -> E:
        for member in kind:
            if raw == member.value:
                return member
        known = ", ".join(member.value for member in kind)
        raise Problem(f"unknown {what} {show(raw)} (known: {known})")

    return read


def address(raw: object, _path: str = "") -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` to connect to (port 1-65535)."""
    found = _ADDRESS.fullmatch(raw) if isinstance(raw, str) else None
    if found is None or not 0 < int(found["port"]) <= 65535:
        raise Problem(f"expected host:port with a port in 1-65535, got {show(raw)}")
    return found["v6"] or found["host"], int(found["port"])


def name(raw: object, _path: str = "") -> str:
    """A name fit to be a metric label."""
    if not is_name(raw):
        raise Problem(f"a name is {NAME_RULE}, got {show(raw)}")
    assert isinstance(raw, str)
    return raw


def is_name(raw: object) -> bool:
    """Whether ``raw`` is a name fit to be a metric label."""
    return isinstance(raw, str) and _NAME.fullmatch(raw) is not None

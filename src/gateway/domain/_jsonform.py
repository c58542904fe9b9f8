"""Frozen dataclasses ⇄ compact JSON values, driven by the classes' type hints.

Dataclasses become objects keyed by field name with default values left out,
tuples become lists, enums their values, dates ``YYYYMMDD`` and timestamps
``YYYYMMDDHHMM``, an :class:`~gateway.model.Irregular` value ``{"irregular": text}``
(an object, so it can never be mistaken for the text, number or date it stands in
for). Loading walks the same hints, so what :func:`dump` writes,
:func:`load` restores exactly; anything else is a ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import types
import typing
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

from gateway.model import Irregular

T = TypeVar("T")

_MISSING = dataclasses.MISSING


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any, Any], ...]:
    """(name, type hint, default) of each field, resolved once per class."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name], f.default) for f in dataclasses.fields(cls))


def dump(value: Any) -> Any:
    """The JSON value of a model value."""
    kind = type(value)
    dumper = _DUMPERS.get(kind)
    if dumper is None:
        dumper = _DUMPERS[kind] = _dumper_for(kind)
    return dumper(value)


def _dumper_for(kind: type) -> Callable[[Any], Any]:
    # Chosen once per type: the generator dumps a million persons.
    if kind is Irregular:  # a dataclass too, but stored in its own form
        return _dump_irregular
    if dataclasses.is_dataclass(kind):
        return functools.partial(_dump_dataclass, _fields(kind))
    if issubclass(kind, enum.Enum):
        return _dump_enum
    if kind is dt.datetime:
        return _dump_stamp
    if kind is dt.date:
        return _dump_date
    if kind is tuple:
        return _dump_tuple
    if kind in (str, int, type(None)):
        return _identity
    raise ValueError(f"cannot store a {kind.__name__}")


def _dump_dataclass(fields: tuple[tuple[str, Any, Any], ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, _hint, default in fields:
        item = getattr(value, name)
        if item is default or (default is not _MISSING and item == default):
            continue
        # Text and numbers are most values; skip the dispatch for them.
        out[name] = item if type(item) in _PLAIN else dump(item)
    return out


_PLAIN = frozenset({str, int})


def _dump_enum(value: enum.Enum) -> Any:
    return value.value


def _dump_stamp(value: dt.datetime) -> str:
    if value.second or value.microsecond or value.tzinfo is not None:
        raise ValueError("timestamps carry minutes only")
    return f"{value.year:04d}{value.month:02d}{value.day:02d}{value.hour:02d}{value.minute:02d}"


def _dump_date(value: dt.date) -> str:
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def _dump_tuple(value: tuple[Any, ...]) -> list[Any]:
    return [dump(item) for item in value]


def _dump_irregular(value: Irregular) -> dict[str, str]:
    return {_IRREGULAR: value.text}


_IRREGULAR = "irregular"


def _identity(value: Any) -> Any:
    return value


_DUMPERS: dict[type, Callable[[Any], Any]] = {}


def load(cls: type[T], raw: Any) -> T:
    """The dataclass ``cls`` whose JSON value is ``raw``."""
    value: T = _loader_for(cast(Hashable, cls))(raw)
    return value


@functools.cache
def _loader_for(hint: Any) -> Callable[[Any], Any]:
    # Compiled once per type hint: a lookup loads a whole person tree.
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        args = typing.get_args(hint)
        (inner,) = [arg for arg in args if arg not in (type(None), Irregular)]
        load = _loader_for(inner)
        if Irregular in args:
            load = functools.partial(_load_or_irregular, load)
        if type(None) in args:
            load = functools.partial(_load_optional, load)
        return load
    if origin is tuple:
        return functools.partial(_load_tuple, _loader_for(typing.get_args(hint)[0]))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return functools.partial(_load_dataclass, hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if hint is dt.datetime:
        return _load_stamp
    if hint is dt.date:
        return _load_date
    if hint in (str, int):
        return functools.partial(_expect, kind=hint)
    raise ValueError(f"no loader for {hint!r}")


def _load_optional(inner: Callable[[Any], Any], raw: Any) -> Any:
    return None if raw is None else inner(raw)


def _load_or_irregular(inner: Callable[[Any], Any], raw: Any) -> Any:
    if isinstance(raw, dict):
        if set(raw) != {_IRREGULAR}:
            raise ValueError(f"irregular value with keys {sorted(raw)}")
        return Irregular(_expect(raw[_IRREGULAR], str))
    return inner(raw)


def _load_tuple(item: Callable[[Any], Any], raw: Any) -> tuple[Any, ...]:
    return tuple(item(entry) for entry in _expect(raw, list))


def _load_dataclass(cls: type, raw: Any) -> Any:
    loaders = _field_loaders(cls)
    values = _expect(raw, dict)
    try:
        return cls(**{name: loaders[name](item) for name, item in values.items()})
    except KeyError as exc:
        raise ValueError(f"{cls.__name__}: unknown field {exc.args[0]!r}") from None


@functools.cache
def _field_loaders(cls: type) -> dict[str, Callable[[Any], Any]]:
    return {name: _loader_for(hint) for name, hint, _ in _fields(cls)}


def _load_stamp(raw: Any) -> dt.datetime:
    text = _expect(raw, str)
    if len(text) != 12 or not text.isdigit():
        raise ValueError(f"timestamp {text!r}")
    return dt.datetime(
        int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12])
    )


def _load_date(raw: Any) -> dt.date:
    text = _expect(raw, str)
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"date {text!r}")
    return dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))


def _expect(raw: Any, kind: type[T]) -> T:
    if not isinstance(raw, kind) or isinstance(raw, bool):
        raise ValueError(f"expected {kind.__name__}, got {type(raw).__name__}")
    return raw

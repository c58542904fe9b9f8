"""Per-route comparison rules: which fields to ignore and how to normalise values first. Pure.

A route's ``compare:`` section in routing.yaml::

    compare:
      ignore: ["lookup / 000 / PRODDTO", "lookup / 011 / *"]
      normalise:
        "lookup / 001 / STANDARDADR": [trim, casefold]
        "* / * / ADRNVN": [trim]

Keys are ``operation / record / field`` (:class:`FieldKey`); each segment of a
pattern is a shell-style glob (``*``, ``?``, ``[..]``), matched case-sensitively.
A pattern that can match no key at all is a config error, so a typo
(``standardadr``) fails at load instead of silently comparing nothing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gateway.codec.records import LAYOUTS
from gateway.errors import ConfigError
from gateway.model import Operation

#: The record segment of keys about the answer header (FEJLNR, DECODE).
HEADER = "hdr"
#: The record segment of keys about which records are present (field = record type).
PRESENCE = "set"
#: Header keys every comparison may produce.
HEADER_FIELDS = ("DECODE", "FEJLNR")

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class FieldKey:
    """What was compared, e.g. ``lookup / 001 / STANDARDADR``.

    ``record`` is a record type, ``hdr`` for header facts (``FEJLNR``,
    ``DECODE``), or ``set`` for record presence (``field`` = the record type).
    Every segment comes from config or layouts, so a key is a safe metric label.
    """

    operation: str
    record: str
    field: str

    def __str__(self) -> str:
        return f"{self.operation} / {self.record} / {self.field}"

    @classmethod
    def parse(cls, text: str) -> FieldKey:
        """The key ``str(key)`` printed; ValueError for anything else."""
        parts = [part.strip() for part in text.split("/")]
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{text!r} is not 'operation / record / field'")
        return cls(*parts)


class Normaliser(enum.StrEnum):
    """A rewrite applied to both values of a field before they are compared."""

    TRIM = "trim"  # strip leading and trailing white space
    CASEFOLD = "casefold"  # compare without case
    DATE_ONLY = "date_only"  # "2020-01-02T10:30" → "2020-01-02": keep the day of a timestamp
    COLLAPSE_SPACES = "collapse_spaces"  # runs of white space become one space

    def apply(self, value: str) -> str:
        """``value`` rewritten by this normaliser."""
        return _APPLY[self](value)


_APPLY: Mapping[Normaliser, Callable[[str], str]] = {
    Normaliser.TRIM: str.strip,
    Normaliser.CASEFOLD: str.casefold,
    Normaliser.DATE_ONLY: lambda value: value.partition("T")[0],
    Normaliser.COLLAPSE_SPACES: lambda value: _SPACES.sub(" ", value),
}


@dataclass(frozen=True, slots=True)
class KeyPattern:
    """A glob over field keys, one glob per segment: ``operation / record / field``."""

    operation: str
    record: str
    field: str

    @classmethod
    def parse(cls, text: str) -> KeyPattern:
        """``"lookup / 001 / *"`` → KeyPattern; ValueError unless there are three segments."""
        parts = [part.strip() for part in text.split("/")]
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{text!r} is not 'operation / record / field'")
        return cls(*parts)

    def matches(self, key: FieldKey) -> bool:
        """True when every segment's glob matches the key's segment."""
        return (
            fnmatchcase(key.operation, self.operation)
            and fnmatchcase(key.record, self.record)
            and fnmatchcase(key.field, self.field)
        )

    def matches_some_key(self) -> bool:
        """True when some key a comparison can produce matches (typos fail at load)."""
        return any(
            fnmatchcase(op, self.operation)
            and fnmatchcase(record, self.record)
            and fnmatchcase(name, self.field)
            for op in (o.value for o in Operation)
            for record, name in _every_record_field()
        )

    def __str__(self) -> str:
        return f"{self.operation} / {self.record} / {self.field}"


def _every_record_field() -> Iterator[tuple[str, str]]:
    """(record, field) of every key any comparison can produce, in either family."""
    for name in HEADER_FIELDS:
        yield HEADER, name
    for layouts in LAYOUTS.values():
        for rectype, layout in layouts.items():
            yield PRESENCE, rectype
            for spec in layout.fields:
                if spec.name != "RECTYPE":
                    yield rectype, spec.name


@dataclass(frozen=True, slots=True)
class Rules:
    """What a route's comparison ignores and normalises; the default compares everything as is.

    ``normalise`` holds (pattern, normalisers) in YAML order; every pattern that
    matches a key contributes its normalisers, in that order.
    """

    ignore: tuple[KeyPattern, ...] = ()
    normalise: tuple[tuple[KeyPattern, tuple[Normaliser, ...]], ...] = ()

    def ignores(self, key: FieldKey) -> bool:
        """True when ``key`` is not compared at all (and so not counted as a sample)."""
        return any(pattern.matches(key) for pattern in self.ignore)

    def normalisers(self, key: FieldKey) -> tuple[Normaliser, ...]:
        """The normalisers applied to ``key``'s values, in order."""
        return tuple(n for pattern, ns in self.normalise if pattern.matches(key) for n in ns)

    @classmethod
    def from_mapping(cls, raw: object, path: str) -> Rules:
        """Rules from a route's ``compare:`` mapping; ConfigError with every problem under ``path``.

        ``raw`` is the YAML value (``None`` means no rules); ``path`` is where it
        sits, e.g. ``routes[1].compare``.
        """
        if raw is None:
            return cls()
        problems: list[str] = []
        if not isinstance(raw, Mapping):
            raise ConfigError([f"{path}: expected a mapping with keys ignore, normalise"])
        for key in raw:
            if key not in ("ignore", "normalise"):
                problems.append(f"{path}.{key}: unknown key (expected ignore, normalise)")
        ignore = _ignore(raw.get("ignore", []), f"{path}.ignore", problems)
        normalise = _normalise(raw.get("normalise", {}), f"{path}.normalise", problems)
        if problems:
            raise ConfigError(problems)
        return cls(ignore, normalise)


def _ignore(raw: object, path: str, problems: list[str]) -> tuple[KeyPattern, ...]:
    if not isinstance(raw, list):
        problems.append(f"{path}: expected a list of 'operation / record / field' globs")
        return ()
    patterns: list[KeyPattern] = []
    for index, item in enumerate(raw):
        pattern = _pattern(item, f"{path}[{index}]", problems)
        if pattern is not None:
            patterns.append(pattern)
    return tuple(patterns)


def _normalise(
    raw: object, path: str, problems: list[str]
) -> tuple[tuple[KeyPattern, tuple[Normaliser, ...]], ...]:
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: expected a mapping of key glob to a list of normalisers")
        return ()
    rules: list[tuple[KeyPattern, tuple[Normaliser, ...]]] = []
    for text, names in raw.items():
        at = f"{path}[{text!r}]"
        pattern = _pattern(text, at, problems)
        normalisers = _normalisers(names, at, problems)
        if pattern is not None and normalisers is not None:
            rules.append((pattern, normalisers))
    return tuple(rules)


def _pattern(raw: object, path: str, problems: list[str]) -> KeyPattern | None:
    if not isinstance(raw, str):
        problems.append(f"{path}: expected 'operation / record / field', got {_show(raw)}")
        return None
    try:
        pattern = KeyPattern.parse(raw)
    except ValueError as exc:
        problems.append(f"{path}: {exc}")
        return None
    if not pattern.matches_some_key():
        problems.append(f"{path}: {raw!r} matches no field of any answer")
        return None
    return pattern


def _normalisers(raw: object, path: str, problems: list[str]) -> tuple[Normaliser, ...] | None:
    known = ", ".join(n.value for n in Normaliser)
    if not isinstance(raw, list) or not raw:
        problems.append(f"{path}: expected a non-empty list of normalisers ({known})")
        return None
    found: list[Normaliser] = []
    for index, name in enumerate(raw):
        try:
            found.append(Normaliser(name))
        except ValueError:
            problems.append(f"{path}[{index}]: unknown normaliser {_show(name)} (known: {known})")
    return tuple(found) if len(found) == len(raw) else None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

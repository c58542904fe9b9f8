"""Compare two answers to one request field by field. Pure: bytes in, a Comparison out.

Both answers are decoded with the codec and compared as displayed text:

* ``hdr / DECODE``: whether each side decoded (a diff, never an exception);
* ``hdr / FEJLNR``: the error number;
* ``set / <rectype>``: how many records of each type of the family are present
  (logon answers have no records);
* ``<rectype> / <field>``: every field of every record, repeated records paired
  by their position within their type.

The header's echo fields (KUNDENR, BRUGER-ID, ABON/DATA_TYPE, TOKEN) are not
compared: tokens differ between sides by design and the gateway rewrites them.

No clear PNR leaves this module: values of PNR fields, and any 10-digit run
whose first six digits are a date, go through ``redact`` before they are put in
a :class:`FieldDiff`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from gateway.codec.fields import Value
from gateway.codec.messages import LogonAnswer, LookupAnswer, Record
from gateway.codec.records import LAYOUTS
from gateway.comparison import HEADER, PRESENCE, FieldKey, Normaliser, Rules
from gateway.errors import CodecError
from gateway.model import Family, Irregular, Operation

#: Fields that hold a PNR by name; their whole value is redacted.
PNR_FIELDS = frozenset({"PNR", "PNRGAELD", "AEGTEPNR", "BARN_PNR", "PNRMOR", "PNRFAR", "RELPNR"})
#: What the default redactor shows instead of a PNR.
PLACEHOLDER = "<pnr>"
#: Operations whose answer is the 24-byte logon answer.
_LOGON_ANSWERS = frozenset({Operation.LOGON.value, Operation.CHANGE_PASSWORD.value})
#: A PNR inside free text: DDMMYY, optional hyphen, SSSS, not part of a longer digit run.
_PNR_IN_TEXT = re.compile(r"(?<!\d)(\d{6})-?(\d{4})(?!\d)")
_OK = "ok"


def placeholder(_pnr: str) -> str:
    """The default redactor: every PNR looks the same."""
    return PLACEHOLDER


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One field whose values differ; both values are display text, already redacted."""

    key: FieldKey
    primary: str
    candidate: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """The outcome of comparing one pair of answers.

    ``keys`` lists each compared key once (ignored keys are absent), so a key's
    sample count is exact; ``diffs`` holds at most one diff per key (for repeated
    records, the first differing position).
    """

    keys: tuple[FieldKey, ...]
    diffs: tuple[FieldDiff, ...]
    operation: str = ""

    @property
    def matches(self) -> bool:
        """True when no compared field differs."""
        return not self.diffs


def compare(  # noqa: PLR0917 - the agreed API; rules and redact are often positional
    operation: str,
    family: Family,
    primary: bytes,
    candidate: bytes,
    rules: Rules = Rules(),  # noqa: B008 - a frozen, immutable default
    redact: Callable[[str], str] = placeholder,
) -> Comparison:
    """Compare ``candidate`` with ``primary``, both answers to one ``operation`` request.

    ``redact`` maps a clear PNR to what may be shown (the store passes an HMAC
    pseudonymiser). Never raises for bad answers: see ``hdr / DECODE``.
    """
    pairs = _Pairs(_plan(rules, operation), redact)
    left, left_error = _decode(operation, family, primary)
    # The common case of a migration going well: the same bytes decode to the same answer.
    same = candidate == primary
    right, right_error = (left, left_error) if same else _decode(operation, family, candidate)
    pairs.add(HEADER, "DECODE", scrub(left_error, redact), scrub(right_error, redact))
    if left is not None and right is not None:
        pairs.add(HEADER, "FEJLNR", left.fejlnr.value, right.fejlnr.value)
        if isinstance(left, LookupAnswer) and isinstance(right, LookupAnswer):
            _compare_records(pairs, family, left.records, right.records)
    return pairs.comparison(operation)


def _decode(
    operation: str, family: Family, data: bytes
) -> tuple[LogonAnswer | LookupAnswer | None, str]:
    """The decoded answer and ``ok``, or None and what is wrong with it."""
    try:
        if operation in _LOGON_ANSWERS:
            return LogonAnswer.decode(data), _OK
        return LookupAnswer.decode(data, family), _OK
    except CodecError as exc:
        return None, f"undecodable: {exc}"


def _compare_records(
    pairs: _Pairs, family: Family, left: Sequence[Record], right: Sequence[Record]
) -> None:
    by_type_left, by_type_right = _by_type(left), _by_type(right)
    for rectype in sorted(LAYOUTS[family]):
        count_left = len(by_type_left.get(rectype, ()))
        count_right = len(by_type_right.get(rectype, ()))
        pairs.add(PRESENCE, rectype, str(count_left), str(count_right))
    for rectype in sorted(by_type_left):
        for ours, theirs in zip(
            by_type_left[rectype], by_type_right.get(rectype, []), strict=False
        ):
            for name, value in ours.fields.items():
                pairs.add(rectype, name, value, theirs.fields.get(name))


def _by_type(records: Sequence[Record]) -> dict[str, list[Record]]:
    grouped: dict[str, list[Record]] = {}
    for record in records:
        grouped.setdefault(record.type, []).append(record)
    return grouped


@dataclass(frozen=True, slots=True)
class _Slot:
    """What a route's rules say about one key, worked out once."""

    key: FieldKey
    ignored: bool
    normalisers: tuple[Normaliser, ...]
    pnr: bool


class _Plan(dict[tuple[str, str], _Slot]):
    """Slots by (record, field) for one (rules, operation), filled as keys are first seen."""

    def __init__(self, rules: Rules, operation: str) -> None:
        super().__init__()
        self.rules, self.operation = rules, operation

    def __missing__(self, name: tuple[str, str]) -> _Slot:
        key = FieldKey(self.operation, *name)
        rules = self.rules
        pnr = name[0] not in (HEADER, PRESENCE) and name[1] in PNR_FIELDS
        slot = self[name] = _Slot(key, rules.ignores(key), rules.normalisers(key), pnr)
        return slot


# A plan holds at most one slot per key of the layouts (about 1500), and there is one
# plan per (route rules, operation) in use; 256 covers any sane routing.yaml, and a
# reload that replaces the rules just lets the old plans age out.
@functools.lru_cache(maxsize=256)
def _plan(rules: Rules, operation: str) -> _Plan:
    return _Plan(rules, operation)


class _Pairs:
    """Collects compared keys (once each, in order) and the first diff of each key."""

    def __init__(self, plan: _Plan, redact: Callable[[str], str]) -> None:
        self._plan, self._redact = plan, redact
        self._keys: dict[tuple[str, str], _Slot] = {}  # an ordered set of compared keys
        self._diffs: dict[tuple[str, str], FieldDiff] = {}

    def add(self, record: str, field: str, primary: Value, candidate: Value) -> None:
        """Compare one pair of values of ``record / field``; displayed only when they differ."""
        name = (record, field)
        slot = self._plan[name]
        if slot.ignored:
            return
        self._keys[name] = slot
        if primary == candidate or name in self._diffs:
            return
        left, right = display(primary), display(candidate)
        for normaliser in slot.normalisers:
            left, right = normaliser.apply(left), normaliser.apply(right)
        if left == right:
            return
        self._diffs[name] = FieldDiff(
            slot.key, self._shown(slot, primary), self._shown(slot, candidate)
        )

    def _shown(self, slot: _Slot, value: Value) -> str:
        """``value`` as a diff may show it: no PNR in clear, a blank kept visibly blank."""
        text = display(value)
        if isinstance(value, Irregular) and value.reason == "blank":
            return text
        return _redact_field(text, self._redact) if slot.pnr else scrub(text, self._redact)

    def comparison(self, operation: str) -> Comparison:
        keys = tuple(slot.key for slot in self._keys.values())
        return Comparison(keys, tuple(self._diffs.values()), operation)


def display(value: Value) -> str:
    """A decoded value as the text a diff shows and compares; no value is ``""``; bytes that
    are not what the field's kind promises (spec §10) show quoted, with what is wrong."""
    if value is None:
        return ""
    if isinstance(value, Irregular):
        return f"{value.text!r} ({value.reason})"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _redact_field(value: str, redact: Callable[[str], str]) -> str:
    """A PNR field: redacted whole, unless it holds no PNR (blank, or one digit repeated)."""
    stripped = value.strip()
    if not stripped or len(set(stripped)) == 1:
        return value
    return redact(stripped)


def scrub(text: str, redact: Callable[[str], str] = placeholder) -> str:
    """``text`` with every date-shaped 10-digit run (a PNR, with or without hyphen) redacted."""

    def replace(found: re.Match[str]) -> str:
        return redact(found[1] + found[2]) if _is_ddmmyy(found[1]) else found[0]

    return _PNR_IN_TEXT.sub(replace, text)


def _is_ddmmyy(digits: str) -> bool:
    """True when six digits are a calendar day, or one with 60 added to the day.

    Replacement numbers (erstatningspersonnumre) add 60 to the day; they name a
    person just the same. 2000 is a leap year, so 29 February passes.
    """
    day, month = int(digits[0:2]), int(digits[2:4])
    try:
        dt.date(2000, month, day - 60 if day > 60 else day)
    except ValueError:
        return False
    return True


def iter_keys(comparison: Comparison) -> Iterator[tuple[FieldKey, bool]]:
    """Each compared key with whether it differs."""
    differing = {diff.key for diff in comparison.diffs}
    for key in comparison.keys:
        yield key, key in differing

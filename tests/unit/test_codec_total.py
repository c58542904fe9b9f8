"""Spec §10, project rule: decoding is total and lossless. Real answers, mutated the ways the
real mainframe's differ from the documented shape, decode, and encode back byte for byte.

The answers start as the renderer's (both families, every record type the register gives),
then get blanks in N, date and PNR fields, impossible date and time parts, non-digits,
repeated records, records after a non-zero FEJLNR and data no layout reads. Examples per
run: ``CPR_CODEC_EXAMPLES`` (``make fuzz`` runs many more than ``make test``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpr_mainframe.register import Register
from emulator_harness import register_of
from gateway.codec import LookupAnswer, Record
from gateway.codec.fields import FieldSpec, Kind
from gateway.codec.headers import HEADER_LENGTH, MAX_DATA_LENGTH
from gateway.codec.records import LAYOUTS
from gateway.model import Family, FejlNr
from gateway.render import Task, render_answer

EXAMPLES = int(os.environ.get("CPR_CODEC_EXAMPLES", "2000"))
TODAY = dt.date(2026, 1, 1)
#: Both families with every record type their layouts know.
TASKS = {
    Family.PRIV: Task(),
    Family.OFF4: Task(off4_records=frozenset(LAYOUTS[Family.OFF4]) - {"000", "999"}),
}
IRREGULAR_KINDS = (Kind.NUM, Kind.DIGITS, Kind.DATE, Kind.STAMP)
#: Where an answer's FEJLNR sits (spec §4.2), written here as the spec says, not as the codec does.
FEJLNR = slice(22, 24)
ERRORS = [f.value for f in FejlNr if f is not FejlNr.OK]


@pytest.fixture(scope="module")
def answers() -> Iterator[dict[Family, list[bytes]]]:
    """Rendered answers of 150 register persons, both families (sealed, at most 2,880)."""
    register = Register.open(register_of(150))
    try:
        persons = list(register.iter_persons())
    finally:
        register.close()
    yield {
        family: [_frame(render_answer(p, family, TASKS[family], 1, TODAY), family) for p in persons]
        for family in Family
    }


def _frame(records: tuple[Record, ...], family: Family) -> bytes:
    answer = LookupAnswer("0001", "0", "6", "ABcd1234", "DEMO0001", FejlNr.OK, records)
    return answer.encode(family)


def _with_length(data: bytes) -> bytes:
    """``data`` with its header's length field made true again (framing holds)."""
    return data[:24] + f"{len(data):04d}".encode() + data[HEADER_LENGTH:]


def _fields(family: Family, body: bytes) -> list[tuple[int, FieldSpec]]:
    """(record offset, field) for every N, digit, date and date-time field in ``body``."""
    layouts = LAYOUTS[family]
    return [
        (start, spec)
        for start, _end in _record_spans(family, body)
        for spec in layouts[body[start : start + 3].decode()].fields
        if spec.kind in IRREGULAR_KINDS
    ]


def _record_spans(family: Family, body: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record in ``body``, by its type's layout length."""
    layouts, spans, offset = LAYOUTS[family], [], 0
    while offset < len(body):
        length = layouts[body[offset : offset + 3].decode()].length
        spans.append((offset, offset + length))
        offset += length
    return spans


@st.composite
def mutated(draw: st.DrawFn, answers: dict[Family, list[bytes]]) -> tuple[Family, bytes]:
    """A rendered answer with the real mainframe's irregularities drawn into it."""
    family = draw(st.sampled_from(list(Family)))
    data = bytearray(draw(st.sampled_from(answers[family])))
    body = bytes(data[HEADER_LENGTH:])
    for _ in range(draw(st.integers(0, 6))):
        offset, spec = draw(st.sampled_from(_fields(family, body)))
        at = HEADER_LENGTH + offset + spec.start
        data[at : at + spec.length] = draw(_irregular_text(spec))
    if draw(st.booleans()):  # a repeated record, as long as the data cap allows
        start, end = draw(st.sampled_from(_record_spans(family, body)))
        if len(data) - HEADER_LENGTH + end - start <= MAX_DATA_LENGTH:
            data[HEADER_LENGTH + end : HEADER_LENGTH + end] = data[
                HEADER_LENGTH + start : HEADER_LENGTH + end
            ]
    if draw(st.booleans()):  # records after an error number
        data[22:24] = draw(
            st.sampled_from([f.value for f in FejlNr if f is not FejlNr.OK])
        ).encode()
    if draw(st.booleans()):  # a record type the family lacks, or a record cut short
        tail = draw(st.sampled_from([b"123" + b"0" * 20, bytes(data[HEADER_LENGTH:][:40])]))
        if len(data) - HEADER_LENGTH + len(tail) <= MAX_DATA_LENGTH:
            data += tail
    return family, _with_length(bytes(data))


def _irregular_text(spec: FieldSpec) -> st.SearchStrategy[bytes]:
    """What the real mainframe puts where the kind promises otherwise (spec §10)."""
    n = spec.length
    choices = [st.just(b" " * n), st.just(b"0" * (n - 1) + b" "), st.just(b"x" * n)]
    if spec.kind is Kind.DATE:
        choices += [st.just(b"20120100"), st.just(b"20121300"), st.just(b"19990231")]
    if spec.kind is Kind.STAMP:
        choices += [st.just(b"201201011299"), st.just(b"201201012500"), st.just(b"201200000000")]
    return st.one_of(choices)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_framed_answer_decodes_and_encodes_back_byte_for_byte(
    answers: dict[Family, list[bytes]], data: st.DataObject
) -> None:
    """Blanks, impossible dates and times, non-digits, repeats, records after an error and
    data no layout reads: decode never fails, and encode gives the same bytes."""
    family, answer = data.draw(mutated(answers))
    decoded = LookupAnswer.decode(answer, family)
    assert decoded.encode(family) == answer


def test_the_mutations_really_reach_the_decoder(answers: dict[Family, list[bytes]]) -> None:
    """The property above is not vacuous: a blanked date-time decodes to an Irregular that
    says so, in the field it came from."""
    answer = bytearray(answers[Family.PRIV][0])
    offset, spec = next(
        (o, s) for o, s in _fields(Family.PRIV, bytes(answer[HEADER_LENGTH:]))
        if s.kind is Kind.STAMP
    )  # fmt: skip
    at = HEADER_LENGTH + offset + spec.start
    answer[at : at + spec.length] = b" " * spec.length
    record = LookupAnswer.decode(bytes(answer), Family.PRIV).records[
        [s for s, _e in _record_spans(Family.PRIV, bytes(answer[HEADER_LENGTH:]))].index(offset)
    ]
    value = record.fields[spec.name]
    assert str(value) == " " * spec.length
    assert getattr(value, "reason", None) == "blank"

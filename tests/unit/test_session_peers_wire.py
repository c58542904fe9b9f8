"""What sibling workers say to each other about sessions: one JSON line each way."""

from __future__ import annotations

import pytest

from gateway.sessions.peers import (
    decode_answer,
    decode_question,
    encode_answer,
    encode_question,
)
from gateway.sessions.table import Session


def test_a_question_and_an_answer_round_trip() -> None:
    session = Session(12, "DEMO0001", "mainframe", {"mainframe": "Tok", "persons-v2": "Other"})
    assert decode_question(encode_question("Tok ÆØ")) == "Tok ÆØ"
    assert decode_answer(encode_answer(session)) == session


def test_not_knowing_is_null_and_a_customerless_session_keeps_none() -> None:
    assert encode_answer(None) == b"null\n"
    assert decode_answer(b"null\n") is None
    answer = decode_answer(encode_answer(Session(None, "U", "home", {"home": "Tok"})))
    assert answer is not None and answer.customer is None


@pytest.mark.parametrize(
    "line",
    [
        b"[]",
        b'"Tok"',
        b'{"customer": 1, "user": "U", "home": "a", "tokens": {"b": "T"}}',  # home has no token
        b'{"customer": true, "user": "U", "home": "a", "tokens": {"a": "T"}}',
        b'{"customer": 1, "user": 5, "home": "a", "tokens": {"a": "T"}}',
        b'{"customer": 1, "user": "U", "home": "a", "tokens": {"a": 5}}',
        b'{"customer": 1, "user": "U", "home": "a"}',
        b"{not json",
    ],
)
def test_a_malformed_answer_is_refused(line: bytes) -> None:
    with pytest.raises(ValueError):
        decode_answer(line)


@pytest.mark.parametrize("line", [b"null", b'{"token": 5}', b"[1]", b"\xff"])
def test_a_malformed_question_is_refused(line: bytes) -> None:
    with pytest.raises(ValueError):
        decode_question(line)

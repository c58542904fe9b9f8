"""Token brokering as docs/sessions.md states it, for the dispatcher and the shadow runner."""

from __future__ import annotations

import pytest

from gateway.codec import FramedRequest, LogonRequest, LookupRequest, frame
from gateway.codec.headers import answer_token
from gateway.sessions.broker import (
    for_client,
    for_side,
    open_session,
    route_in_session,
    session_of,
)
from gateway.sessions.table import Session, SessionBroker

LOOKUP = b"PRIV,000106Tk3nAbCdDEMO0001000101601234"
SUBSCRIBE = b"PRIV,000116Tk3nAbCdDEMO0001000101601234"
LOGON = b"PRIV,000190DEMO0001Ab1!cd2#        "
ANSWER = b"000106Tk3nAbCdDEMO0001000028"
SESSION = Session(1, "DEMO0001", "mainframe", {"mainframe": "Tk3nAbCd", "persons-v2": "Zz9Yy8Xx"})


def _framed(record: bytes) -> FramedRequest:
    return FramedRequest(frame(record), record)


def test_a_token_swap_changes_the_bytes_and_the_value_together() -> None:
    """The rewritten request carries the new token at bytes 12-19 and in its value."""
    rewritten = _framed(LOOKUP).with_token("Zz9Yy8Xx")
    assert rewritten.raw == b"PRIV,000106Zz9Yy8XxDEMO0001000101601234"
    assert rewritten.request == frame(rewritten.raw)
    with pytest.raises(TypeError):
        _framed(LOGON).with_token("Zz9Yy8Xx")


def test_a_side_gets_its_own_token_and_its_answer_goes_back_with_the_clients() -> None:
    """Rule 3: the request carries the side's token; the answer, the client's again."""
    client = _framed(LOOKUP)
    sent = for_side(client, SESSION, "persons-v2")
    assert sent is not None and sent.token == "Zz9Yy8Xx"
    answer = for_client(ANSWER.replace(b"Tk3nAbCd", b"Zz9Yy8Xx"), sent, client.token)
    assert answer == ANSWER


def test_nothing_is_rewritten_on_the_home_side_or_for_an_unknown_session() -> None:
    """Rules 1 and 4: the home side and an unknown token see the client's own bytes."""
    client = _framed(LOOKUP)
    assert for_side(client, SESSION, "mainframe") is client
    assert for_side(client, None, "persons-v2") is client
    stale = b"000106Tk3nAbCdDEMO0001070028"
    assert for_client(stale, client, client.token) is stale
    logon = _framed(LOGON)
    assert for_side(logon, SESSION, "persons-v2") is logon


def test_a_lookup_falls_back_to_the_home_side_and_a_write_never_does() -> None:
    """Rule 6: a read for a side without a token goes home; a write stays on its side."""
    session = Session(1, "DEMO0001", "mainframe", {"mainframe": "Tk3nAbCd"})
    lookup, subscribe = _framed(LOOKUP), _framed(SUBSCRIBE)
    assert for_side(lookup, session, "persons-v2") is None
    assert route_in_session(lookup, session, "persons-v2") == ("mainframe", lookup)
    assert route_in_session(subscribe, session, "persons-v2") == ("persons-v2", subscribe)
    assert route_in_session(lookup, SESSION, "persons-v2")[0] == "persons-v2"


def test_a_logon_opens_the_session_its_lookups_find() -> None:
    """The client's token is the home side's answer's; the session is the logon's user's."""
    table = SessionBroker(idle_s=1800, clock=lambda: 0.0)
    logon = frame(LOGON)
    assert isinstance(logon, LogonRequest)
    answer = b"000190Tk3nAbCdDEMO000100"
    open_session(table, logon, answer, "mainframe", {"persons-v2": "Zz9Yy8Xx"})
    lookup = frame(LOOKUP)
    assert isinstance(lookup, LookupRequest) and answer_token(answer) == "Tk3nAbCd"
    found = session_of(table, lookup)
    assert found is not None and found.token_for("persons-v2") == "Zz9Yy8Xx"

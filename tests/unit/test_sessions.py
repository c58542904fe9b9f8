"""The session broker: token per side, idle expiry, ownership, forgetting a side."""

from __future__ import annotations

from gateway.codec.headers import answer_token, answer_with_token, request_with_token
from gateway.sessions.table import SessionBroker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _broker(clock: Clock, **kwargs: int) -> SessionBroker:
    return SessionBroker(idle_s=1800, clock=clock, **kwargs)


def test_a_logon_maps_the_client_token_to_every_side() -> None:
    """The home side's token is the client's; other sides' tokens are found by it."""
    broker = _broker(Clock())
    broker.open("HomeTok1", 1, "DEMO0001", "mainframe", {"persons-v2": "ModernT1"})
    session = broker.find("HomeTok1", 1, "DEMO0001")
    assert session is not None
    assert session.token_for("mainframe") == "HomeTok1"
    assert session.token_for("persons-v2") == "ModernT1"


def test_sessions_expire_after_idle_time_and_use_refreshes_them() -> None:
    """Idle longer than the limit: gone; used within it: kept alive."""
    clock = Clock()
    broker = _broker(clock)
    broker.open("Tok", 1, "U", "mainframe", {})
    clock.now += 1700
    assert broker.find("Tok", 1, "U") is not None
    clock.now += 1700
    assert broker.find("Tok", 1, "U") is not None
    clock.now += 1801
    assert broker.find("Tok", 1, "U") is None
    assert len(broker) == 0


def test_a_token_of_another_customer_or_user_is_not_found() -> None:
    """Spec §4.4: a token issued to another customer or user is not theirs."""
    broker = _broker(Clock())
    broker.open("Tok", 1, "DEMO0001", "mainframe", {})
    assert broker.find("Tok", 2, "DEMO0001") is None
    assert broker.find("Tok", 1, "DEMO0002") is None
    assert broker.find("Tok", 1, "DEMO0001") is not None


def test_forgetting_a_side_keeps_the_others_and_forgetting_home_ends_the_session() -> None:
    """A 07 from one side drops only that side's token; from home, the whole session."""
    broker = _broker(Clock())
    broker.open("Tok", 1, "U", "mainframe", {"persons-v2": "Other"})
    broker.forget("Tok", "persons-v2")
    session = broker.find("Tok", 1, "U")
    assert session is not None and session.token_for("persons-v2") is None
    broker.forget("Tok", "mainframe")
    assert broker.find("Tok", 1, "U") is None


def test_the_number_of_sessions_is_bounded_least_recently_used_first() -> None:
    """Memory is bounded; the session used longest ago goes first."""
    broker = _broker(Clock(), max_sessions=2)
    broker.open("A", 1, "U", "m", {})
    broker.open("B", 1, "U", "m", {})
    assert broker.find("A", 1, "U") is not None  # A is now the most recent
    broker.open("C", 1, "U", "m", {})
    assert broker.find("B", 1, "U") is None
    assert broker.find("A", 1, "U") is not None


def test_token_rewriting_touches_only_the_token_bytes() -> None:
    """Requests carry the token at 12-19, answers at 7-14; nothing else changes."""
    request = b"PRIV,000106Tk3nAbCdDEMO0001000101601234"
    rewritten = request_with_token(request, "Zz9Yy8Xx")
    assert rewritten == b"PRIV,000106Zz9Yy8XxDEMO0001000101601234"
    answer = b"000106Zz9Yy8XxDEMO0001050028"
    assert answer_with_token(answer, "Tk3nAbCd") == b"000106Tk3nAbCdDEMO0001050028"
    assert answer_token(b"000190        DEMO000101") == ""


def test_an_adopted_copy_is_found_like_an_own_session_and_lives_on_its_own_clock() -> None:
    """A sibling worker's session copied here: same tokens, same owner check, fresh idle clock."""
    clock = Clock()
    theirs, mine = _broker(clock), _broker(clock)
    theirs.open("Tok", 1, "U", "mainframe", {"persons-v2": "Other"})
    copy = theirs.live("Tok")
    assert copy is not None
    clock.now += 1000
    mine.adopt("Tok", copy)
    assert mine.find("Tok", 2, "U") is None
    found = mine.find("Tok", 1, "U")
    assert found is not None and found.token_for("persons-v2") == "Other"
    clock.now += 1000  # 2000 s after the original logon, 1000 s after the copy was made
    assert mine.find("Tok", 1, "U") is not None
    assert theirs.find("Tok", 1, "U") is None


def test_live_ignores_the_owner_but_not_the_idle_time() -> None:
    """What a sibling is told: the session whoever asks, unless it has expired."""
    clock = Clock()
    broker = _broker(clock)
    broker.open("Tok", 7, "U", "mainframe", {})
    session = broker.live("Tok")
    assert session is not None and (session.customer, session.user) == (7, "U")
    clock.now += 1801
    assert broker.live("Tok") is None
    assert broker.live("Unknown") is None


def test_a_new_idle_time_applies_to_live_sessions_at_once() -> None:
    """A reload's sessions.idle: a session idle longer than the new time is gone at once."""
    clock = Clock()
    broker = _broker(clock)
    broker.open("Tok", 1, "U", "mainframe", {})
    clock.now += 1000
    broker.set_idle(900)
    assert broker.find("Tok", 1, "U") is None

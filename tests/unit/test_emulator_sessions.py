"""Tokens: format, binding to customer and user, idle expiry with an injected clock, bound."""

from __future__ import annotations

import datetime as dt
import re

from cpr_accounts.tokens import Sessions

T0 = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
IDLE = dt.timedelta(minutes=30)


def test_token_is_8_characters_of_letters_and_digits() -> None:
    """Tokens are 8 characters from [A-Za-z0-9] and differ between logons."""
    sessions = Sessions(IDLE)
    tokens = {sessions.issue(1, "DEMO0001", T0) for _ in range(50)}
    assert len(tokens) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9]{8}", token) for token in tokens)


def test_token_is_bound_to_its_customer_and_user() -> None:
    """Another customer or user cannot use a token, and trying does not spoil it for its owner."""
    sessions = Sessions(IDLE)
    token = sessions.issue(1, "DEMO0001", T0)
    assert not sessions.use(token, 2, "DEMO0001", T0)
    assert not sessions.use(token, 1, "OTHER", T0)
    assert sessions.use(token, 1, "DEMO0001", T0)


def test_idle_expiry_counts_from_the_last_use() -> None:
    """A token stays alive while used within the idle time and dies after it."""
    sessions = Sessions(IDLE)
    token = sessions.issue(1, "U", T0)
    assert sessions.use(token, 1, "U", T0 + dt.timedelta(minutes=29))
    assert sessions.use(token, 1, "U", T0 + dt.timedelta(minutes=58))
    assert not sessions.use(token, 1, "U", T0 + dt.timedelta(minutes=88))
    assert not sessions.use(token, 1, "U", T0 + dt.timedelta(minutes=89))


def test_unknown_token_is_refused() -> None:
    """A token never issued is refused."""
    assert not Sessions(IDLE).use("Tk3nAbCd", 1, "U", T0)


def test_expired_tokens_are_forgotten_on_issue() -> None:
    """Issuing a token drops the idle ones, so memory follows the live sessions."""
    sessions = Sessions(IDLE)
    for _ in range(10):
        sessions.issue(1, "U", T0)
    sessions.issue(1, "U", T0 + IDLE)
    assert len(sessions) == 1


def test_bound_forgets_the_least_recently_used_token() -> None:
    """Beyond the bound the token unused the longest goes; a recently used one stays."""
    sessions = Sessions(IDLE, limit=2)
    first = sessions.issue(1, "U", T0)
    second = sessions.issue(1, "U", T0)
    assert sessions.use(first, 1, "U", T0)
    sessions.issue(1, "U", T0)
    assert len(sessions) == 2
    assert sessions.use(first, 1, "U", T0)
    assert not sessions.use(second, 1, "U", T0)

"""Refused logon repeats are held per side, user and password, as an HMAC, for a while."""

from __future__ import annotations

from gateway.sessions.refused_repeats import HOLD_S, RefusedRepeats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_refused_password_is_held_and_another_password_is_not() -> None:
    memory = RefusedRepeats(Clock())
    memory.refused("mainframe", 1, "DEMO0001", "Old#1234")
    assert memory.held("mainframe", 1, "DEMO0001", "Old#1234")
    assert not memory.held("mainframe", 1, "DEMO0001", "New#1234")
    assert not memory.held("persons-v2", 1, "DEMO0001", "Old#1234")
    assert not memory.held("mainframe", 1, "DEMO0002", "Old#1234")


def test_the_hold_ends_after_hold_s_and_an_accepted_repeat_clears_it() -> None:
    clock = Clock()
    memory = RefusedRepeats(clock)
    memory.refused("mainframe", 1, "DEMO0001", "Old#1234")
    clock.now += HOLD_S
    assert not memory.held("mainframe", 1, "DEMO0001", "Old#1234")
    memory.refused("mainframe", 1, "DEMO0001", "Old#1234")
    memory.accepted("mainframe", 1, "DEMO0001")
    assert not memory.held("mainframe", 1, "DEMO0001", "Old#1234")


def test_no_password_is_kept_in_clear_and_memory_is_bounded() -> None:
    memory = RefusedRepeats(Clock(), max_keys=2)
    for user in ("A", "B", "C"):
        memory.refused("mainframe", 1, user, "Secret#1")
    assert len(memory) == 2
    assert "Secret#1" not in repr(vars(memory))  # digests only
    assert not memory.held("mainframe", 1, "A", "Secret#1")

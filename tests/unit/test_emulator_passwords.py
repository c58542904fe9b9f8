"""Password rules of spec §7 as a table: what a new password must and must not be."""

from __future__ import annotations

import pytest

from cpr_accounts.auth import SPECIALS, password_problem

GOOD = ["Demo#123", "aB3~aaaa", "Zz9\\zzzz", "1aA,....", "Qw3rty:]", "xY7`{}[;"]
BAD = [
    ("Demo#12", "exactly 8"),
    ("Demo#1234", "exactly 8"),
    ("", "exactly 8"),
    ("demo#123", "no upper-case"),
    ("DEMO#123", "no lower-case"),
    ("Demo#abc", "no digit"),
    ("Demo1234", "no special"),
    ('Demo"123', "outside"),
    ("Demo'123", "outside"),
    ("Demo<123", "outside"),
    ("Demo>123", "outside"),
    ("Demo&123", "outside"),
    ("Demo?123", "outside"),
    ("Demo’123", "outside"),
    ("Demoæ#12", "outside"),
    ("Demoø#12", "outside"),
    ("Demoå#12", "outside"),
    ("Demo #12", "outside"),
    ("Demoé#12", "outside"),
]


@pytest.mark.parametrize("password", GOOD)
def test_good_passwords_pass(password: str) -> None:
    """Eight characters with lower, upper, digit and an allowed special are accepted."""
    assert password_problem(password) is None


@pytest.mark.parametrize(("password", "why"), BAD)
def test_bad_passwords_say_why_without_echoing(password: str, why: str) -> None:
    """Each broken rule is named, and the message never contains the password."""
    problem = password_problem(password)
    assert problem is not None and why in problem
    assert password not in problem or password == ""


def test_every_listed_special_counts() -> None:
    """Each of the 25 special characters of §7 satisfies the special-character rule."""
    assert len(SPECIALS) == 25
    for special in SPECIALS:
        assert password_problem(f"Ab1{special}cdef") is None, special

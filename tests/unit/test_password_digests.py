"""Password digests: their stored form says how they were made, the default is the guidance."""

from __future__ import annotations

import hashlib

import pytest

from cpr_accounts.digests import DIGEST_BYTES, PasswordCost, Scrypt, derive, scheme_of

SALT = b"s" * 16
CHEAP = PasswordCost(memory_kib=8, iterations=1, lanes=1)


def test_the_default_cost_is_owasps_argon2id_guidance() -> None:
    """m = 19 MiB, t = 2, p = 1 unless configured otherwise."""
    assert PasswordCost() == PasswordCost(memory_kib=19456, iterations=2, lanes=1)


def test_an_argon2id_digest_carries_its_cost() -> None:
    """A new digest is header + 32 bytes, and its header gives back the cost it was made with."""
    stored = derive("Demo#123", SALT, CHEAP)
    assert stored.startswith(b"$argon2id$v=19$m=8,t=1,p=1$")
    assert len(stored) == len(CHEAP.header) + DIGEST_BYTES
    assert scheme_of(stored, 0) == CHEAP


def test_the_digest_depends_on_password_salt_and_cost() -> None:
    """Another password, salt or cost gives another digest; the same inputs the same one."""
    stored = derive("Demo#123", SALT, CHEAP)
    assert derive("Demo#123", SALT, CHEAP) == stored
    assert derive("Demo#124", SALT, CHEAP) != stored
    assert derive("Demo#123", b"t" * 16, CHEAP) != stored
    assert derive("Demo#123", SALT, PasswordCost(16, 1, 1))[-DIGEST_BYTES:] != stored[-32:]


def test_an_old_scrypt_digest_is_recognised_and_still_derived_alike() -> None:
    """32 bytes without a header are scrypt at the user's N, as written before Argon2id."""
    old = hashlib.scrypt(b"Demo#123", salt=SALT, n=1024, r=8, p=1, dklen=32)
    assert scheme_of(old, 1024) == Scrypt(1024)
    assert derive("Demo#123", SALT, Scrypt(1024)) == old


@pytest.mark.parametrize(
    "stored",
    [b"", b"x" * 31, b"$argon2id$v=19$m=8,t=1,p=1$" + b"x" * 31,
     b"$argon2i$v=19$m=8,t=1,p=1$" + b"x" * 32, b"$argon2id$v=19$m=4,t=1,p=1$" + b"x" * 32,
     b"$argon2id$v=19$m=99999999,t=1,p=1$" + b"x" * 32],
)  # fmt: skip
def test_a_digest_in_no_known_form_is_refused(stored: bytes) -> None:
    """A truncated digest, another algorithm, or a cost out of bounds is a ValueError."""
    with pytest.raises(ValueError, match=r"password digest|memory_kib"):
        scheme_of(stored, 0)


def test_a_headerless_digest_of_a_user_without_scrypt_is_refused() -> None:
    """32 bytes are only scrypt for a user whose cost column names an N."""
    with pytest.raises(ValueError, match="no known form"):
        scheme_of(b"x" * 32, 0)


@pytest.mark.parametrize(
    ("memory_kib", "iterations", "lanes"), [(7, 1, 1), (15, 1, 2), (8, 0, 1), (8, 1, 0), (8, 65, 1)]
)
def test_a_cost_out_of_bounds_is_refused(memory_kib: int, iterations: int, lanes: int) -> None:
    """Below Argon2's minimum memory per lane, or a zero, is a ValueError."""
    with pytest.raises(ValueError, match="must be"):
        PasswordCost(memory_kib, iterations, lanes)

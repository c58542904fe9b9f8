"""Passwords, users and locks (spec §7): rules, scrypt digests, logon and password change.

Rules for a new password: exactly 8 characters; at least one lower-case letter,
one upper-case letter, one digit and one special character from
``~ ` ! @ # $ % ^ * ( ) _ - + = , . / \\ { } [ ] ; :``; nothing else (project
rule: letters are ASCII, so ``" ' < > & ?``, ``’`` and ``æ ø å`` are out, and so
are spaces and other accented letters); never a password the user had before;
at most one change per 24 hours (project rule: counted from the user's own last
change, so a seeded password can be changed at once). A password is valid 90
days from when it was set; five failed logons in a row lock the user id, and a
locked user id gets 01 even with the right password until it is unlocked.

Hashing runs in a worker thread: scrypt takes tens of milliseconds by design,
and the event loop must keep serving other connections meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import secrets
import string

from cpr_accounts.state import StateStore
from gateway.model import FejlNr

PASSWORD_LENGTH = 8
SPECIALS = frozenset("~`!@#$%^*()_-+=,./\\{}[];:")
_ALLOWED = frozenset(string.ascii_letters + string.digits) | SPECIALS
#: Spec §7.
PASSWORD_VALIDITY = dt.timedelta(days=90)
CHANGE_INTERVAL = dt.timedelta(hours=24)
LOCK_AFTER = 5
_SALT_BYTES = 16
_DIGEST_BYTES = 32
#: scrypt's r and p as RFC 7914 recommends for interactive logons; N comes from config.
_BLOCK_SIZE, _PARALLEL = 8, 1


def password_problem(password: str) -> str | None:
    """Why ``password`` breaks the composition rules, or None; never echoes the password."""
    if len(password) != PASSWORD_LENGTH:
        return f"must be exactly {PASSWORD_LENGTH} characters, has {len(password)}"
    if any(c not in _ALLOWED for c in password):
        return "has a character outside ASCII letters, digits and the allowed specials"
    checks = (
        (string.ascii_lowercase, "has no lower-case letter"),
        (string.ascii_uppercase, "has no upper-case letter"),
        (string.digits, "has no digit"),
        (SPECIALS, "has no special character"),
    )
    for alphabet, message in checks:
        if not any(c in alphabet for c in password):
            return message
    return None


def new_salt() -> bytes:
    """A fresh random salt for a user's digests."""
    return secrets.token_bytes(_SALT_BYTES)


async def digest(password: str, salt: bytes, cost: int) -> bytes:
    """scrypt of ``password`` (Latin-1, as on the wire), computed off the event loop."""
    data = password.encode("latin-1", errors="replace")
    return await asyncio.to_thread(_scrypt, data, salt, cost)


def _scrypt(data: bytes, salt: bytes, cost: int) -> bytes:
    # 128 * N * r bytes of memory, plus headroom, so large N is not refused by OpenSSL's default.
    maxmem = 128 * cost * _BLOCK_SIZE * 2
    return hashlib.scrypt(
        data, salt=salt, n=cost, r=_BLOCK_SIZE, p=_PARALLEL, maxmem=maxmem, dklen=_DIGEST_BYTES
    )


class Authenticator:
    """Checks logons and changes passwords against the state store."""

    def __init__(self, state: StateStore, cost: int) -> None:
        self._state = state
        self._cost = cost

    async def seed(self, customer: int, user: str, password: str, now: dt.datetime) -> bool:
        """Store ``user`` with its configured password unless known; True when it was new."""
        if self._state.user(customer, user) is not None:
            return False
        salt = new_salt()
        first = await digest(password, salt, self._cost)
        self._state.add_user(customer, user, salt=salt, cost=self._cost, digest=first, now=now)
        return True

    async def verify(self, customer: int, user: str, password: str) -> bool:
        """True for the right password of an unlocked user; counts failures and locks."""
        state = self._state.user(customer, user)
        if state is None or state.locked:
            return False
        if hmac.compare_digest(await digest(password, state.salt, state.cost), state.digest):
            self._state.clear_failures(customer, user)
            return True
        self._state.record_failure(customer, user, LOCK_AFTER)
        return False

    async def renew(self, customer: int, user: str, new_password: str, now: dt.datetime) -> FejlNr:
        """After a verified logon: change the password if one is given, else check its age.

        ``00`` when the user may go on; ``03`` for a new password that breaks §7;
        ``02`` for an expired password and no new one.
        """
        state = self._state.user(customer, user)
        assert state is not None  # verify() succeeded for this user a moment ago
        if not new_password:
            expired = now - state.set_at > PASSWORD_VALIDITY
            return FejlNr.PASSWORD_EXPIRED if expired else FejlNr.OK
        if password_problem(new_password) is not None:
            return FejlNr.PASSWORD_RULES
        if state.changed_at is not None and now - state.changed_at < CHANGE_INTERVAL:
            return FejlNr.PASSWORD_RULES
        new_digest = await digest(new_password, state.salt, state.cost)
        if self._state.used_before(customer, user, new_digest):
            return FejlNr.PASSWORD_RULES
        self._state.set_password(customer, user, new_digest, now)
        return FejlNr.OK

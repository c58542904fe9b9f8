"""Passwords, users and locks (spec §7): rules, digests, logon and password change.

Rules for a new password: exactly 8 characters; at least one lower-case letter,
one upper-case letter, one digit and one special character from
``~ ` ! @ # $ % ^ * ( ) _ - + = , . / \\ { } [ ] ; :``; nothing else (project
rule: letters are ASCII, so ``" ' < > & ?``, ``’`` and ``æ ø å`` are out, and so
are spaces and other accented letters); never a password the user had before;
at most one change per 24 hours (project rule: counted from the user's own last
change, so a seeded password can be changed at once). A password is valid 90
days from when it was set; five failed logons in a row lock the user id, and a
locked user id gets 01 even with the right password until it is unlocked.

Digests are Argon2id at the configured cost (:mod:`cpr_accounts.digests`); a user
whose stored digest has another cost (an scrypt digest of before, a cost since raised)
gets one at the configured cost on the next successful logon. Every logon costs one
digest, whether the user exists, is locked or not: an unknown user id is checked
against a dummy salt, so that the answer's timing does not tell which ids exist.
Hashing runs in a worker thread: it takes tens of milliseconds by design, and the
event loop must keep serving other connections meanwhile.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import string

from cpr_accounts.digests import PasswordCost, Scheme, digest, scheme_of
from cpr_accounts.state import NO_SCRYPT, StateStore, UserState
from gateway.model import FejlNr

PASSWORD_LENGTH = 8
SPECIALS = frozenset("~`!@#$%^*()_-+=,./\\{}[];:")
_ALLOWED = frozenset(string.ascii_letters + string.digits) | SPECIALS
#: Spec §7.
PASSWORD_VALIDITY = dt.timedelta(days=90)
CHANGE_INTERVAL = dt.timedelta(hours=24)
LOCK_AFTER = 5
_SALT_BYTES = 16


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


class Authenticator:
    """Checks logons and changes passwords against the state store; new digests at ``cost``."""

    def __init__(self, state: StateStore, cost: PasswordCost) -> None:
        self._state = state
        self._cost = cost
        #: What an unknown user's password is hashed with: never stored, never compared.
        self._dummy_salt = new_salt()

    async def seed(self, customer: int, user: str, password: str, now: dt.datetime) -> bool:
        """Store ``user`` with its configured password unless known; True when it was new."""
        if self._state.user(customer, user) is not None:
            return False
        salt = new_salt()
        first = await digest(password, salt, self._cost)
        self._state.add_user(customer, user, salt=salt, cost=NO_SCRYPT, digest=first, now=now)
        return True

    async def refuse(self, password: str) -> None:
        """Spend on ``password`` what checking a known user's costs, for a user id that does
        not exist: the refusal then takes as long as a wrong password's."""
        await digest(password, self._dummy_salt, self._cost)

    async def verify(
        self, customer: int, user: str, password: str, *, count_failure: bool = True
    ) -> bool:
        """True for the right password of an unlocked user; counts failures and locks
        (``count_failure`` False: a wrong password is not counted, for a logon the gateway
        repeats from another side).

        One digest whatever the user's state (unknown and locked included); a right password
        whose digest has another cost than the configured one is re-hashed at it.
        """
        state = self._state.user(customer, user)
        if state is None:
            await self.refuse(password)
            return False
        scheme = scheme_of(state.digest, state.cost)
        right = hmac.compare_digest(await digest(password, state.salt, scheme), state.digest)
        if state.locked:
            return False
        if not right:
            if count_failure:
                self._state.record_failure(customer, user, LOCK_AFTER)
            return False
        self._state.clear_failures(customer, user)
        if scheme != self._cost:
            await self._rehash(state, password)
        return True

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
        if await self._used_before(state, new_password):
            return FejlNr.PASSWORD_RULES
        new_digest = await digest(new_password, state.salt, self._cost)
        self._state.set_password(customer, user, new_digest, now)
        return FejlNr.OK

    async def _rehash(self, state: UserState, password: str) -> None:
        """Store the (verified) ``password`` at the configured cost in place of the old digest;
        its age and history stay (a concurrent change of password wins)."""
        fresh = await digest(password, state.salt, self._cost)
        self._state.rehash(state.customer, state.user, old=state.digest, new=fresh)

    async def _used_before(self, state: UserState, password: str) -> bool:
        """True when the user has had ``password``: one digest per cost found in its history
        (usually one; two after an scrypt digest was re-hashed), not one per old password."""
        history = self._state.history(state.customer, state.user)
        schemes: set[Scheme] = {scheme_of(old, state.cost) for old in history}
        for scheme in schemes:
            if await digest(password, state.salt, scheme) in history:
                return True
        return False

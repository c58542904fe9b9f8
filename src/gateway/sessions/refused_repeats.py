"""Repeats of a logon another side refused: not tried again with the same password for a while.

The gateway repeats a client's successful logon on the other sides (docs/sessions.md, "The
other sides' logons"). Where the user's password differs there, the repeat is refused with
01, and a side that counts failed logons (the mainframe cannot be told a logon is the
gateway's repeat) would lock the user after a few of the client's logons. So a repeat
refused with 01 for (side, customer, user) is not made again for :data:`HOLD_S` seconds with
the same password: at most one counted failure per distinct password. The password is
kept only as an HMAC under a key made at random per process, never in clear; pure, and
bounded (:data:`MAX_KEYS`, :data:`MAX_PASSWORDS`).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

#: Seconds a refused repeat is not made again with the same password (agreed for issue 18:
#: longer than the mainframe's failed-logon window, so a held repeat never adds a failure).
HOLD_S = 15 * 60.0
#: (side, customer, user) entries kept; the least recently refused go first.
MAX_KEYS = 100_000
#: Distinct refused passwords kept per entry: a client trying more than this within
#: HOLD_S is guessing, and its oldest guesses may then be repeated once more.
MAX_PASSWORDS = 8

_Key = tuple[str, int | None, str]


class RefusedRepeats:
    """Which repeats were refused with 01 lately, by side, customer, user and password digest."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._secret = secrets.token_bytes(32)
        #: Per key, the refused passwords' digests and when each was refused.
        self._refused: collections.OrderedDict[_Key, dict[bytes, float]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._refused)

    def held(self, side: str, customer: int | None, user: str, password: str) -> bool:
        """Whether the repeat on ``side`` with ``password`` was refused within HOLD_S."""
        refused = self._refused.get((side, customer, user))
        if not refused:
            return False
        when = refused.get(self._digest(password))
        return when is not None and self._clock() - when < HOLD_S

    def refused(self, side: str, customer: int | None, user: str, password: str) -> None:
        """``side`` refused the repeat with 01."""
        key = (side, customer, user)
        refused = self._refused.setdefault(key, {})
        self._refused.move_to_end(key)
        refused[self._digest(password)] = self._clock()
        if len(refused) > MAX_PASSWORDS:
            del refused[min(refused, key=refused.__getitem__)]
        while len(self._refused) > self._max_keys:
            self._refused.popitem(last=False)

    def accepted(self, side: str, customer: int | None, user: str) -> None:
        """``side`` accepted a repeat for the user: what it refused before no longer counts."""
        self._refused.pop((side, customer, user), None)

    def _digest(self, password: str) -> bytes:
        text = password.encode("latin-1", "replace")
        return hmac.new(self._secret, text, hashlib.sha256).digest()

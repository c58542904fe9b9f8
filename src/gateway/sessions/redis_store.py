"""Sessions shared by every worker and replica of a fleet, in Redis (``sessions.store``).

Each process still serves from its own :class:`~.table.SessionBroker`; Redis is
where a session is found when this process has not seen it (a logon answered by
another replica, or before this one restarted). docs/sessions.md, "Where sessions
live", says what a client sees when Redis is slow or down.

- **Keys reveal nothing.** A session's key is ``cpr-gateway:session:`` and the
  SHA-256 of the client's token, so reading the keys gives no token a client could
  use. The value is the session's JSON form (customer number, user id, home side,
  every side's token): no PNR and no password, ever.
- **Idle expiry is the key's time to live**, ``sessions.idle``: a fetch renews it
  (GETEX), and so does a request served from this process's copy, at most once per
  :data:`TOUCH_FRACTION` of the expiry per session, without waiting for it.
- **Every call has a deadline** (``sessions.timeout``). A call that fails or is late
  is counted and logged, and the request goes on as if the store did not know the
  session. For :data:`RETRY_AFTER_S` after a failure no call is tried (counted as
  ``skipped``), so a Redis that hangs costs one request one deadline, not every one.
- The logon waits for its session to be stored (within the deadline), so the
  client's next request, wherever it lands, finds it. A 07 that empties a side's
  token rewrites the stored session; one from the home side deletes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.errors import ConfigError
from gateway.observe.events import EventBus, SessionStoreCall
from gateway.runtime.tasks import TaskSet
from gateway.sessions.shared import decode_session, encode_session
from gateway.sessions.table import Session, SessionBroker

KEY_PREFIX = "cpr-gateway:session:"
#: Seconds without calls after one failed: long enough that a down store costs little,
#: short enough that a store back up is used again at once.
RETRY_AFTER_S = 1.0
#: A session served from this process's copy renews its key at most once per this share of
#: the idle expiry: the key then never expires while the session is in use anywhere.
TOUCH_FRACTION = 1 / 60
#: Renewals on their way at once at most; beyond it one is left out (the next request's
#: renewal makes up for it).
MAX_TOUCHES_IN_FLIGHT = 256
#: Sessions whose last renewal is remembered; beyond it the oldest is forgotten (and renewed
#: again on its next use).
MAX_REMEMBERED = 100_000
#: Connections to Redis per process at most; calls beyond wait for one within their deadline.
MAX_CONNECTIONS = 32

T = TypeVar("T")


def read_password(path: Path) -> str:
    """The store's password from ``path`` (a mounted Secret): its first line, as written.

    ConfigError naming the file (never its content) when it cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError([f"sessions.password_file {path}: {reason}"]) from None
    return text.splitlines()[0] if text else ""


def session_key(client_token: str) -> str:
    """The Redis key of ``client_token``'s session: a digest, never the token itself."""
    return KEY_PREFIX + hashlib.sha256(client_token.encode("latin-1")).hexdigest()


class RedisSessions:
    """One process's side of the shared session store."""

    def __init__(
        self,
        url: str,
        broker: SessionBroker,
        bus: EventBus,
        *,
        timeout_s: float,
        password: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis: Redis = Redis.from_url(
            url,
            password=password,  # a password in the URL itself wins
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # The deadline is ours; a retry inside it would only hide a failing store.
            retry=Retry(NoBackoff(), 0),
            max_connections=MAX_CONNECTIONS,
        )
        self._broker = broker
        self._bus = bus
        self._timeout_s = timeout_s
        self._clock = clock
        self._retry_at = 0.0
        self._renewed: OrderedDict[str, float] = OrderedDict()
        self._touches = TaskSet()

    async def fetch(self, client_token: str) -> bool:
        """Copy ``client_token``'s session from Redis into this process, renewing its expiry."""
        key, ttl = session_key(client_token), self._ttl()
        text = await self._call("fetch", lambda r: r.getex(key, ex=ttl))
        if text is None:
            return False
        try:
            session = decode_session(text)
        except ValueError as exc:  # not ours: another program wrote under our prefix
            self._bus.emit(SessionStoreCall("fetch", "error", f"malformed: {exc}"))
            return False
        if session is None:
            return False
        self._broker.adopt(client_token, session)
        self._remember_renewal(client_token)
        return True

    async def opened(self, client_token: str, session: Session) -> None:
        """Store a session a logon here opened, before the client hears of it."""
        key, value, ttl = session_key(client_token), encode_session(session), self._ttl()
        await self._call("publish", lambda r: r.set(key, value, ex=ttl))
        self._remember_renewal(client_token)

    async def forgot(self, client_token: str, left: Session | None) -> None:
        """A side answered 07: store what is left of the session, or delete it."""
        key = session_key(client_token)
        if left is None:
            self._renewed.pop(client_token, None)
            await self._call("forget", lambda r: r.delete(key))
        else:
            value = encode_session(left)
            await self._call("forget", lambda r: r.set(key, value, keepttl=True, xx=True))

    def used(self, client_token: str) -> None:
        """Renew the stored session's expiry now and then, without waiting for it."""
        now = self._clock()
        renewed = self._renewed.get(client_token)
        if renewed is not None and now - renewed < self._broker.idle_s * TOUCH_FRACTION:
            return
        if len(self._touches) >= MAX_TOUCHES_IN_FLIGHT:
            return
        self._remember_renewal(client_token)
        key = session_key(client_token)
        self._touches.spawn(
            self._call("touch", lambda r: r.expire(key, self._ttl())), name="session-touch"
        )

    async def aclose(self) -> None:
        """Let renewals on their way finish (within the deadline), then disconnect."""
        await self._touches.drain(self._timeout_s, "shutdown: session store renewals too slow")
        await self._redis.aclose()

    async def _call(self, call: str, command: Callable[[Redis], Awaitable[T]]) -> T | None:
        """``command``'s result, or None (counted, logged) when the store fails or is late."""
        if self._clock() < self._retry_at:
            self._bus.emit(SessionStoreCall(call, "skipped"))
            return None
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await command(self._redis)
        except TimeoutError:
            self._failed(call, "timeout", "deadline")
            return None
        except (RedisError, OSError) as exc:
            self._failed(call, "error", type(exc).__name__)
            return None
        self._bus.emit(SessionStoreCall(call, "miss" if result is None else "ok"))
        return result

    def _failed(self, call: str, outcome: str, detail: str) -> None:
        self._retry_at = self._clock() + RETRY_AFTER_S
        self._bus.emit(SessionStoreCall(call, outcome, detail))

    def _ttl(self) -> int:
        return max(1, math.ceil(self._broker.idle_s))

    def _remember_renewal(self, client_token: str) -> None:
        self._renewed.pop(client_token, None)
        self._renewed[client_token] = self._clock()
        while len(self._renewed) > MAX_REMEMBERED:
            self._renewed.popitem(last=False)

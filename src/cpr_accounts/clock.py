"""A backend's notion of now: an aware datetime, injected so that tests can move time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The real clock."""
    return dt.datetime.now(dt.UTC)

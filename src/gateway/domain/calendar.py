"""CPR's calendar: the production day is the date in Copenhagen, on every side.

The 000 record's PRODDTO is "the day of the lookup". The emulator and the
modern route must agree on it to the byte, so both take it from here.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

TIMEZONE = "Europe/Copenhagen"


@functools.cache
def local_zone() -> dt.tzinfo:
    """Europe/Copenhagen, or UTC on a system without time zone data."""
    try:
        return zoneinfo.ZoneInfo(TIMEZONE)
    except zoneinfo.ZoneInfoNotFoundError:
        return dt.UTC


def production_date(now: dt.datetime | None = None) -> dt.date:
    """The CPR production day of ``now`` (default: this instant)."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(local_zone()).date()

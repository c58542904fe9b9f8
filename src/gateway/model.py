"""Values shared by every layer: closed code lists as enums, and the irregular field value."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FejlNr(enum.StrEnum):
    """CPR Direkte error numbers (spec §4.3); the value is the two wire characters."""

    OK = "00"
    BAD_CREDENTIALS = "01"
    PASSWORD_EXPIRED = "02"
    PASSWORD_RULES = "03"
    CLOSED = "04"
    PNR_UNKNOWN = "05"
    CUSTOMER_UNKNOWN = "06"
    NEW_LOGON = "07"
    NOT_ACTIVE = "08"
    NO_CONNECTION = "09"
    ABON_TYPE_UNKNOWN = "10"
    DATA_TYPE_UNKNOWN = "11"
    TRANSACTION_DENIED = "14"
    IP_DENIED = "16"
    PNR_MISSING = "17"


class Operation(enum.StrEnum):
    """What a request asks for; routes match on these names."""

    LOGON = "logon"
    CHANGE_PASSWORD = "change_password"
    LOOKUP = "lookup"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"

    @property
    def is_write(self) -> bool:
        """Writes change state on the answering side and must go to exactly one side."""
        return self in _WRITES


_WRITES = frozenset({Operation.CHANGE_PASSWORD, Operation.SUBSCRIBE, Operation.UNSUBSCRIBE})


class Family(enum.StrEnum):
    """Record families, named by the transaction code that asks for them."""

    PRIV = "PRIV"
    OFF4 = "OFF4"


@dataclass(frozen=True, slots=True)
class Irregular:
    """A field's text that is not what its kind promises, kept exactly as it came (spec §10).

    The real mainframe sends spaces where the documentation promises zeros, and dates and
    date-times with parts no calendar has (day ``00``, minute ``99``). Such a value is
    neither zero nor absent: it is these characters, and encoding it gives them back.
    """

    text: str

    @property
    def reason(self) -> str:
        """What is irregular about it, in a few words (for reports and tools)."""
        text = self.text
        if not text.strip(" "):
            return "blank"
        if len(text) == 10 and text[4] == text[7] == "-":  # a YYYY-MM-DD date
            text = text[:4] + text[5:7] + text[8:]
        if not (text.isascii() and text.isdigit()):
            return "not digits"
        return "no calendar value"

    def __str__(self) -> str:
        return self.text

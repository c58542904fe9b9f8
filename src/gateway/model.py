"""Values shared by every layer: closed code lists as enums, requests as frozen dataclasses."""

from __future__ import annotations

import enum


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

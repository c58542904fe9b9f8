"""Sans-IO CPR Direkte codec: framing, record layouts as data, encode/decode. No I/O here."""

from gateway.codec.framing import FramedRequest, RequestFramer, frame
from gateway.codec.headers import MAX_ANSWER_LENGTH, customer_number, user_id
from gateway.codec.messages import (
    LogonAnswer,
    LogonRequest,
    LookupAnswer,
    LookupRequest,
    Record,
    Request,
    decode_records,
    refusal,
    seal,
)
from gateway.codec.records import LAYOUTS

__all__ = [
    "LAYOUTS",
    "MAX_ANSWER_LENGTH",
    "FramedRequest",
    "LogonAnswer",
    "LogonRequest",
    "LookupAnswer",
    "LookupRequest",
    "Record",
    "Request",
    "RequestFramer",
    "customer_number",
    "decode_records",
    "frame",
    "refusal",
    "seal",
    "user_id",
]

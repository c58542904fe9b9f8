"""Requests and answers of CPR Direkte (spec §3, §4): frozen values and their byte forms.

Requests decode leniently: every field is kept as the text the client sent
(right-trimmed), because deciding what is wrong with it is the server's job and
earns a FEJLNR, not a codec error. Answers encode strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.codec.fields import ENCODING, Value
from gateway.codec.headers import (
    ANSWER_HEADER,
    HEADER_LENGTH,
    LOGON_ANSWER,
    LOGON_REQUEST,
    LOOKUP_REQUEST,
    MAX_DATA_LENGTH,
)
from gateway.codec.layout import Layout
from gateway.codec.records import END, LAYOUTS
from gateway.errors import CodecError
from gateway.model import Family, FejlNr, Irregular, Operation


def _str(values: Mapping[str, Value], name: str) -> str:
    """A header field's text: every request and header field is a TEXT or digit field, and
    one that holds control characters (or non-digits in FEJLNR) leaves the header unread."""
    value = values[name]
    if isinstance(value, Irregular):
        raise CodecError(f"{name}: header field is {value.reason}")
    assert isinstance(value, str)  # the header layouts have TEXT and digit fields only
    return value


@dataclass(frozen=True, slots=True)
class LogonRequest:
    """A 35-byte logon, possibly carrying a new password (spec §3.1)."""

    transaction: str
    customer: str
    user: str
    password: str
    new_password: str = ""
    abon_type: str = "9"
    data_type: str = "0"

    @property
    def operation(self) -> Operation:
        """Logon, or a password change when a new password is given."""
        return Operation.CHANGE_PASSWORD if self.new_password.strip() else Operation.LOGON

    def encode(self) -> bytes:
        """The request as a client writes it."""
        return LOGON_REQUEST.encode(
            {
                "CPRTRANS": self.transaction,
                "KOMMA": ",",
                "KUNDENR": self.customer,
                "ABON_TYPE": self.abon_type,
                "DATA_TYPE": self.data_type,
                "BRUGER_ID": self.user,
                "KENDEORD": self.password,
                "NYT_KENDEORD": self.new_password,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> LogonRequest:
        """Decode a framed 35-byte logon record."""
        v = LOGON_REQUEST.decode(data)
        return cls(
            transaction=_str(v, "CPRTRANS"),
            customer=_str(v, "KUNDENR"),
            user=_str(v, "BRUGER_ID"),
            # Passwords are exactly 8 characters and may end in a space.
            password=data[19:27].decode(ENCODING),
            new_password=_str(v, "NYT_KENDEORD"),
            abon_type=_str(v, "ABON_TYPE"),
            data_type=_str(v, "DATA_TYPE"),
        )

    def __repr__(self) -> str:  # never show passwords, not even in a traceback
        return (
            f"LogonRequest(transaction={self.transaction!r}, customer={self.customer!r}, "
            f"user={self.user!r}, password=<redacted>)"
        )


#: The lookup record's fields a LookupRequest keeps (all but KOMMA).
_LOOKUP_FIELDS = (
    "CPRTRANS",
    "KUNDENR",
    "TOKEN",
    "BRUGER_ID",
    "PNR",
    "ABON_TYPE",
    "DATA_TYPE",
    "FEJLNR",
)

#: Spec §3.2: ABON_TYPE 0 (leave subscriptions), 1 (subscribe), 3 (unsubscribe).
_ABON_TYPES = frozenset({"0", "1", "3"})
#: Spec §3.2: DATA_TYPE 6 (person data per task) or 0 (header only).
_DATA_TYPES = frozenset({"0", "6"})


@dataclass(frozen=True, slots=True)
class LookupRequest:
    """A 39-byte lookup or subscription change (spec §3.2)."""

    transaction: str
    customer: str
    token: str
    user: str
    pnr: str
    abon_type: str = "0"
    data_type: str = "6"
    fejlnr: str = "00"

    @property
    def operation(self) -> Operation:
        """Lookup, or a subscription change by ABON_TYPE."""
        if self.abon_type == "1":
            return Operation.SUBSCRIBE
        if self.abon_type == "3":
            return Operation.UNSUBSCRIBE
        return Operation.LOOKUP

    def unknown_type(self) -> FejlNr | None:
        """10 for an ABON_TYPE other than 0/1/3, then 11 for a DATA_TYPE other than 0/6.

        The first checks every CPR Direkte server makes of a lookup (spec §3.2); the
        emulator and the gRPC adapter both ask here, so they cannot drift apart.
        """
        if self.abon_type not in _ABON_TYPES:
            return FejlNr.ABON_TYPE_UNKNOWN
        if self.data_type not in _DATA_TYPES:
            return FejlNr.DATA_TYPE_UNKNOWN
        return None

    def encode(self) -> bytes:
        """The request as a client writes it."""
        return LOOKUP_REQUEST.encode(
            {
                "CPRTRANS": self.transaction,
                "KOMMA": ",",
                "KUNDENR": self.customer,
                "ABON_TYPE": self.abon_type,
                "DATA_TYPE": self.data_type,
                "TOKEN": self.token,
                "BRUGER_ID": self.user,
                "FEJLNR": self.fejlnr,
                "PNR": self.pnr,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> LookupRequest:
        """Decode a framed 39-byte lookup record."""
        # Every lookup passes here: a printable record's fields are all text at once, with
        # no field to check (Layout.texts); only a record with a control character goes
        # field by field, where one in a header field leaves the header unread.
        v = LOOKUP_REQUEST.texts(data)
        if v is None:
            fields = LOOKUP_REQUEST.decode(data)
            v = {name: _str(fields, name) for name in _LOOKUP_FIELDS}
        return cls(
            transaction=v["CPRTRANS"],
            customer=v["KUNDENR"],
            token=v["TOKEN"],
            user=v["BRUGER_ID"],
            pnr=v["PNR"],
            abon_type=v["ABON_TYPE"],
            data_type=v["DATA_TYPE"],
            fejlnr=v["FEJLNR"],
        )

    def __repr__(self) -> str:  # a PNR never reaches a log through repr
        return (
            f"LookupRequest(transaction={self.transaction!r}, customer={self.customer!r}, "
            f"user={self.user!r}, abon_type={self.abon_type!r}, pnr=<redacted>)"
        )


Request = LogonRequest | LookupRequest


@dataclass(frozen=True, slots=True)
class LogonAnswer:
    """The 24-byte logon answer (spec §4.1)."""

    customer: str
    user: str
    fejlnr: FejlNr
    token: str = ""

    def encode(self) -> bytes:
        """Answer bytes; the token is blank unless the logon succeeded."""
        return LOGON_ANSWER.encode(
            {
                "KUNDENR": self.customer,
                "ABON_TYPE": "9",
                "DATA_TYPE": "0",
                "TOKEN": self.token,
                "BRUGER_ID": self.user,
                "FEJLNR": self.fejlnr.value,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> LogonAnswer:
        """Decode a 24-byte logon answer."""
        v = LOGON_ANSWER.decode(data)
        if (v["ABON_TYPE"], v["DATA_TYPE"]) != ("9", "0"):
            raise CodecError("logon answer: ABON_TYPE/DATA_TYPE must be 9/0")
        return cls(
            customer=_str(v, "KUNDENR"),
            user=_str(v, "BRUGER_ID"),
            fejlnr=_fejlnr(_str(v, "FEJLNR")),
            token=_str(v, "TOKEN"),
        )


def _fejlnr(raw: str) -> FejlNr:
    try:
        return FejlNr(raw)
    except ValueError:
        raise CodecError(f"FEJLNR {raw!r} is reserved") from None


@dataclass(frozen=True, slots=True)
class Record:
    """One data record: its type and its field values (PNR included, RECTYPE implied)."""

    type: str
    fields: Mapping[str, Value] = field(hash=False)


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    """A lookup answer: the 28-byte header and its data records (spec §4.2)."""

    customer: str
    abon_type: str
    data_type: str
    token: str
    user: str
    fejlnr: FejlNr
    records: tuple[Record, ...] = ()

    @classmethod
    def for_request(
        cls, request: LookupRequest, fejlnr: FejlNr, records: tuple[Record, ...] = ()
    ) -> LookupAnswer:
        """An answer that echoes the request's header fields."""
        return cls(
            customer=request.customer,
            abon_type=request.abon_type,
            data_type=request.data_type,
            token=request.token,
            user=request.user,
            fejlnr=fejlnr,
            records=records,
        )

    def encode(self, family: Family) -> bytes:
        """Header plus records; the length field is computed, never given."""
        layouts = LAYOUTS[family]
        body = b"".join(_encode_record(layouts, record) for record in self.records)
        if len(body) > MAX_DATA_LENGTH:
            raise CodecError(f"answer data of {len(body)} bytes exceeds {MAX_DATA_LENGTH}")
        header = ANSWER_HEADER.encode(
            {
                "KUNDENR": self.customer,
                "ABON_TYPE": self.abon_type,
                "DATA_TYPE": self.data_type,
                "TOKEN": self.token,
                "BRUGER_ID": self.user,
                "FEJLNR": self.fejlnr.value,
                "LENGTH": HEADER_LENGTH + len(body),
            }
        )
        return header + body

    @classmethod
    def decode(cls, data: bytes, family: Family) -> LookupAnswer:
        """Decode a whole answer; the length field must match the bytes given (framing).

        Total past framing (spec §10): records after a non-zero FEJLNR, repeated records,
        fields that are not what their kind promises and data no layout reads all decode,
        and :meth:`encode` gives the same bytes back. A FEJLNR outside spec §4.3 is still a
        CodecError: the answer's meaning depends on it.
        """
        if len(data) < HEADER_LENGTH:
            raise CodecError(f"answer of {len(data)} bytes is shorter than its header")
        v = ANSWER_HEADER.decode(data[:HEADER_LENGTH])
        if v["LENGTH"] != len(data):
            raise CodecError(f"length field says {v['LENGTH']}, answer has {len(data)} bytes")
        return cls(
            customer=_str(v, "KUNDENR"),
            abon_type=_str(v, "ABON_TYPE"),
            data_type=_str(v, "DATA_TYPE"),
            token=_str(v, "TOKEN"),
            user=_str(v, "BRUGER_ID"),
            fejlnr=_fejlnr(_str(v, "FEJLNR")),
            records=decode_records(data[HEADER_LENGTH:], family),
        )


def refusal(request: Request, fejlnr: FejlNr) -> bytes:
    """The answer that carries only ``fejlnr``, echoing ``request`` as the mainframe does.

    A logon gets a 24-byte answer with a blank token; a lookup gets the 28-byte
    header alone (project rule), whose bytes do not depend on the family.
    """
    if isinstance(request, LogonRequest):
        return LogonAnswer(request.customer, request.user, fejlnr).encode()
    return LookupAnswer.for_request(request, fejlnr).encode(Family.PRIV)


def _encode_record(layouts: Mapping[str, Layout], record: Record) -> bytes:
    unread = record.fields.get(UNREAD)
    if isinstance(unread, Irregular) and len(record.fields) == 1:
        return unread.text.encode(ENCODING)  # kept as it came: see decode_records
    layout = layouts.get(record.type)
    if layout is None:
        raise CodecError(f"record type {record.type!r} is not in this family")
    return layout.encode({"RECTYPE": record.type, **record.fields})


#: The one field of a stretch of answer data no layout reads (spec §10, project rule:
#: decoding is total): from a record type the family does not have (its length is
#: unknown, so it runs to the end) or a record cut short by the end of the data.
UNREAD = "UNREAD"


def decode_records(data: bytes, family: Family) -> tuple[Record, ...]:
    """Split concatenated records by their type's layout length and decode each.

    Total: what no layout reads is kept, as it came, in a last record whose only field
    is :data:`UNREAD`; encoding the records gives ``data`` back.
    """
    layouts = LAYOUTS[family]
    records: list[Record] = []
    offset = 0
    while offset < len(data):
        rectype = data[offset : offset + 3].decode(ENCODING)
        layout = layouts.get(rectype)
        if layout is None or offset + layout.length > len(data):
            rest = Irregular(data[offset:].decode(ENCODING))
            records.append(Record(rectype, {UNREAD: rest}))
            break
        values = layout.decode(data[offset : offset + layout.length])
        del values["RECTYPE"]
        records.append(Record(rectype, values))
        offset += layout.length
    return tuple(records)


def seal(records: list[Record], family: Family) -> tuple[Record, ...]:
    """Order records, fit them into 2880 bytes and close them with 999 (spec §4.2).

    ``records`` holds 000 and the person records, without 999. Trailing repeated
    records are dropped until everything fits (project rule); 000 and 001 never are.
    """
    layouts = LAYOUTS[family]
    ordered = sorted(records, key=lambda r: r.type)  # stable: repeats keep their order
    size = sum(layouts[r.type].length for r in ordered) + END.length
    while size > MAX_DATA_LENGTH:
        index = _last_repeated(ordered)
        if index is None:
            raise CodecError(f"{size} bytes of unrepeated records exceed {MAX_DATA_LENGTH}")
        size -= layouts[ordered.pop(index).type].length
    count = sum(1 for r in ordered if r.type != "000")
    return (*ordered, Record("999", {"PNR": "9" * 10, "ANTAL": count}))


def _last_repeated(records: list[Record]) -> int | None:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.type] = counts.get(record.type, 0) + 1
    for index in range(len(records) - 1, -1, -1):
        rtype = records[index].type
        if counts[rtype] > 1 and rtype not in ("000", "001"):
            return index
    return None

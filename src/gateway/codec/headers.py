"""The fixed part of every record (spec §3, §4): request and answer headers as layout tables,
their lengths, and named accessors to their fields in raw bytes.

Whoever needs a token, a FEJLNR or a length field out of bytes it relays (the dispatcher,
the session broker, a backend checking an answer's shape, the benchmark's client) asks here:
no module outside the codec knows an offset.
"""

from __future__ import annotations

from gateway.codec.fields import ENCODING
from gateway.codec.layout import Layout, digits, num, table, text
from gateway.errors import CodecError

LOGON_LENGTH = 35
LOOKUP_LENGTH = 39
LOGON_ANSWER_LENGTH = 24
HEADER_LENGTH = 28
#: Spec §1: at most 2880 data bytes after the 28-byte header.
MAX_DATA_LENGTH = 2880
MAX_ANSWER_LENGTH = HEADER_LENGTH + MAX_DATA_LENGTH

LOGON_REQUEST = table(
    "logon request",
    LOGON_LENGTH,
    text("CPRTRANS", 1, 4),
    text("KOMMA", 5, 1),
    text("KUNDENR", 6, 4),
    text("ABON_TYPE", 10, 1),
    text("DATA_TYPE", 11, 1),
    text("BRUGER_ID", 12, 8),
    text("KENDEORD", 20, 8),
    text("NYT_KENDEORD", 28, 8),
)
LOOKUP_REQUEST = table(
    "lookup request",
    LOOKUP_LENGTH,
    text("CPRTRANS", 1, 4),
    text("KOMMA", 5, 1),
    text("KUNDENR", 6, 4),
    text("ABON_TYPE", 10, 1),
    text("DATA_TYPE", 11, 1),
    text("TOKEN", 12, 8),
    text("BRUGER_ID", 20, 8),
    text("FEJLNR", 28, 2),
    text("PNR", 30, 10),
)
LOGON_ANSWER = table(
    "logon answer",
    LOGON_ANSWER_LENGTH,
    text("KUNDENR", 1, 4),
    text("ABON_TYPE", 5, 1),
    text("DATA_TYPE", 6, 1),
    text("TOKEN", 7, 8),
    text("BRUGER_ID", 15, 8),
    digits("FEJLNR", 23, 2),
)
ANSWER_HEADER = table(
    "answer header",
    HEADER_LENGTH,
    text("KUNDENR", 1, 4),
    text("ABON_TYPE", 5, 1),
    text("DATA_TYPE", 6, 1),
    text("TOKEN", 7, 8),
    text("BRUGER_ID", 15, 8),
    digits("FEJLNR", 23, 2),
    num("LENGTH", 25, 4),
)


def _where(layout: Layout, name: str) -> slice:
    """The bytes field ``name`` occupies in ``layout``'s records."""
    spec = layout.by_name[name]
    return slice(spec.start, spec.end)


#: Where the token sits: bytes 12-19 of a lookup request, bytes 7-14 of every answer
#: (a logon answer is a lookup answer's header less its length field).
_REQUEST_TOKEN = _where(LOOKUP_REQUEST, "TOKEN")
_ANSWER_TOKEN = _where(ANSWER_HEADER, "TOKEN")
TOKEN_LENGTH = _REQUEST_TOKEN.stop - _REQUEST_TOKEN.start
#: Bytes 23-24 of every answer, logon and lookup alike (spec §4.1, §4.2).
_ANSWER_FEJLNR = _where(ANSWER_HEADER, "FEJLNR")
#: Bytes 25-28 of a lookup answer: the answer's size, header included (spec §4.2).
_ANSWER_LENGTH = _where(ANSWER_HEADER, "LENGTH")


def request_with_token(raw: bytes, token: str) -> bytes:
    """A framed lookup record carrying ``token`` instead of its own (all else unchanged)."""
    return raw[: _REQUEST_TOKEN.start] + _token_bytes(token) + raw[_REQUEST_TOKEN.stop :]


def answer_with_token(raw: bytes, token: str) -> bytes:
    """An answer (logon or lookup) carrying ``token`` instead of its own."""
    return raw[: _ANSWER_TOKEN.start] + _token_bytes(token) + raw[_ANSWER_TOKEN.stop :]


def answer_token(raw: bytes) -> str:
    """The token an answer carries, right-trimmed (blank after a failed logon)."""
    return raw[_ANSWER_TOKEN].decode(ENCODING).rstrip(" ")


def answer_fejlnr(raw: bytes) -> bytes:
    """The two FEJLNR bytes of an answer, logon or lookup (``b"00"``: it succeeded); unchecked."""
    return raw[_ANSWER_FEJLNR]


def answer_length_field(raw: bytes) -> bytes:
    """The four LENGTH bytes of a lookup answer's header (its whole size); unchecked."""
    return raw[_ANSWER_LENGTH]


def _token_bytes(token: str) -> bytes:
    data = token.encode(ENCODING, errors="strict").ljust(TOKEN_LENGTH)
    if len(data) != TOKEN_LENGTH:
        raise CodecError(f"a token is {TOKEN_LENGTH} characters, not {len(token)}")
    return data


def user_id(raw: str) -> str:
    """BRUGER-ID as routes and sessions compare it: right-trimmed, since clients pad it or not."""
    return raw.rstrip(" ")


def customer_number(raw: str) -> int | None:
    """KUNDENR as a number, tolerating the space padding one old client sends."""
    stripped = raw.strip()
    if not stripped or not stripped.isascii() or not stripped.isdigit():
        return None
    return int(stripped)

"""Sans-IO request framing (spec §1): bytes in, one request out, no I/O.

Use it like h11: feed whatever the socket delivered to :meth:`receive_data`,
then ask :meth:`next_request`; ``None`` means "need more bytes". A request that
cannot be framed raises :class:`FramingError`, whose ``reason`` is a short label
for metrics; the project rule is to close such a connection without answering.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.codec.fields import is_printable_latin1
from gateway.codec.headers import LOGON_LENGTH, LOOKUP_LENGTH, request_with_token
from gateway.codec.messages import LogonRequest, LookupRequest, Request
from gateway.errors import FramingError

#: Bytes 1-10 decide the record length (comma at byte 5, ABON_TYPE at byte 10).
_DECIDING_PREFIX = 10

#: Closed set of reasons a request is not framed; used as a metric label.
NO_COMMA = "no_comma"
NOT_PRINTABLE = "not_printable"
TOO_LONG = "too_long"
INCOMPLETE = "incomplete"
TIMEOUT = "timeout"
REASONS = (NO_COMMA, NOT_PRINTABLE, TOO_LONG, INCOMPLETE, TIMEOUT)


def record_length(prefix: bytes) -> int | None:
    """Length of the record that starts with ``prefix``, or None until byte 10 is known."""
    if len(prefix) < _DECIDING_PREFIX:
        return None
    return LOGON_LENGTH if prefix[9:10] == b"9" else LOOKUP_LENGTH


class RequestFramer:
    """Accumulates one connection's bytes until they form exactly one request.

    The buffer never holds more than one record plus what one read delivered:
    anything past the longest record (39 bytes) is an error at once.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received so far."""
        return len(self._buffer)

    @property
    def record(self) -> bytes:
        """The bytes received so far: once a request is framed, exactly its record."""
        return bytes(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer."""
        self._buffer += data

    def next_request(self) -> Request | None:
        """The framed request, None if more bytes are needed, or FramingError."""
        buf = bytes(self._buffer)
        if not is_printable_latin1(buf):
            raise FramingError(NOT_PRINTABLE, "byte outside printable Latin-1")
        if len(buf) >= 5 and buf[4:5] != b",":
            raise FramingError(NO_COMMA, f"byte 5 is {buf[4:5]!r}")
        length = record_length(buf)
        if length is None:
            return None
        if len(buf) > length:
            raise FramingError(TOO_LONG, f"{len(buf)} bytes for a {length}-byte record")
        if len(buf) < length:
            return None
        if length == LOGON_LENGTH:
            return LogonRequest.decode(buf)
        return LookupRequest.decode(buf)

    def end_of_stream(self) -> FramingError:
        """The error for a peer that closed before completing its record."""
        return FramingError(INCOMPLETE, f"peer closed after {len(self._buffer)} bytes")


@dataclass(frozen=True, slots=True)
class FramedRequest:
    """A framed request: its parsed value and its exact bytes, kept in step.

    The bytes are what a legacy backend relays unchanged; the value is what routing
    and the gRPC adapter read. Make another only through :meth:`with_token`, which
    changes both. ``origin`` is the client's IP address as text (None when unknown):
    every backend call made for the request, copies included, is told it.
    """

    request: Request
    raw: bytes
    origin: str | None = None

    @property
    def token(self) -> str:
        """The session token the request carries; a logon carries none (``""``)."""
        request = self.request
        return request.token if isinstance(request, LookupRequest) else ""

    def with_token(self, token: str) -> FramedRequest:
        """The same lookup carrying ``token``, in its bytes and its value alike."""
        request = self.request
        if not isinstance(request, LookupRequest):
            raise TypeError("a logon carries no token")
        changed = replace(request, token=token)
        return FramedRequest(changed, request_with_token(self.raw, token), self.origin)


def frame(data: bytes) -> Request:
    """Frame a complete request in one go (for clients, tests and tools)."""
    framer = RequestFramer()
    framer.receive_data(data)
    request = framer.next_request()
    if request is None:
        raise framer.end_of_stream()
    return request

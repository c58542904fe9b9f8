"""The fuzz targets: one function per parser of hostile bytes, each checking the parser's promise.

A target takes any byte string. It returns when the parser kept its promise; otherwise it
raises: an ``AssertionError`` naming the broken promise, or whatever exception the parser let
escape. libFuzzer (via :mod:`.worker`) counts either as a crash, and a call that runs past its
time limit as a hang. Where a target slices its input as a socket would, the first byte chooses
the slices (so a reproducer is one file, and replays the same way).

Every promise checked here is written down elsewhere: the framer's in
``gateway/codec/framing.py`` and docs/project-rules.md, the decoder's in spec §10 and
docs/project-rules.md ("Decoding is total and lossless"), the loader's in
``gateway/config/load.py`` (only ConfigError), the PROXY reader's in
``gateway/codec/proxy_protocol.py``.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from pathlib import Path

from cpr_devtools.pki import ensure_dev_pki
from gateway.codec import LogonAnswer, LookupAnswer, RequestFramer, frame
from gateway.codec.fields import is_printable_latin1
from gateway.codec.framing import INCOMPLETE, REASONS
from gateway.codec.headers import HEADER_LENGTH, LOGON_LENGTH, LOOKUP_LENGTH
from gateway.codec.proxy_protocol import (
    FIXED_LENGTH,
    ProxyHeader,
    ProxyHeaderReader,
    encode_header,
    parse_header,
)
from gateway.config import load_routing
from gateway.errors import CodecError, ConfigError, FramingError, ProxyHeaderError
from gateway.model import Family, FejlNr

Target = Callable[[bytes], None]

#: The largest slice a socket read hands the framer in these targets: a whole lookup record and
#: then some, so that one slice can complete a record and overrun it at once.
_LARGEST_SLICE = LOOKUP_LENGTH + 9
#: The largest slice a PROXY header arrives in; the reader asks for at most what it misses.
_LARGEST_HEADER_SLICE = 64
#: Bytes 23-24 of an answer hold its FEJLNR, 25-28 a lookup answer's length (spec §4.1, §4.2).
_FEJLNR, _LENGTH = slice(22, 24), slice(24, 28)
_FEJLNRS = frozenset(f.value.encode() for f in FejlNr)


def _slices(data: bytes) -> tuple[random.Random, bytes]:
    """Where slice sizes are drawn from (seeded by the first byte), and the stream: the rest."""
    return random.Random(data[0]), data[1:]


def request_framer(data: bytes) -> None:
    """RequestFramer fed ``data`` in slices: it frames one request or refuses with a
    FramingError of a known reason; it never holds more than a record without deciding; a
    framed request is exactly the bytes received, frames the same in one piece, and encodes
    back to those bytes (requests decode as sent, spec §3)."""
    if not data:
        return
    sizes, stream = _slices(data)
    framer, fed = RequestFramer(), 0
    while fed < len(stream):
        fed = min(fed + sizes.randint(1, _LARGEST_SLICE), len(stream))
        framer.receive_data(stream[framer.buffered : fed])
        try:
            request = framer.next_request()
        except FramingError as refused:
            assert refused.reason in REASONS, f"unknown reason {refused.reason!r}"
            return
        if request is not None:
            record = framer.record
            assert record == stream[:fed], "the record is not the bytes received"
            assert len(record) in (LOGON_LENGTH, LOOKUP_LENGTH), f"{len(record)}-byte record"
            assert frame(record) == request, "framing in one piece differs"
            assert request.encode() == record, "the request does not encode back"
            return
        assert framer.buffered <= LOOKUP_LENGTH, f"{framer.buffered} bytes held undecided"
    assert framer.end_of_stream().reason == INCOMPLETE


def answer_decoder(data: bytes) -> None:
    """An answer from a backend, decoded: a logon answer (24 bytes) or a lookup answer of
    either family. Decoding refuses only with CodecError; a lookup answer that frames (its
    length field true, its FEJLNR one of spec §4.3, its header text printable) always decodes
    (spec §10); whatever decodes encodes back to the same bytes. The first byte picks the kind
    and family, and whether the length field is made true first (most mutations break it)."""
    if not data:
        return
    selector, answer = data[0], data[1:]
    if selector & 0b010:
        _check_logon_answer(answer)
        return
    if selector & 0b100:
        answer = _with_true_length(answer)
    _check_lookup_answer(answer, Family.OFF4 if selector & 0b001 else Family.PRIV)


def _check_logon_answer(answer: bytes) -> None:
    try:
        decoded = LogonAnswer.decode(answer)
    except CodecError:
        return
    assert decoded.encode() == answer, "a logon answer does not encode back"


def _check_lookup_answer(answer: bytes, family: Family) -> None:
    try:
        decoded = LookupAnswer.decode(answer, family)
    except CodecError as refused:
        assert not _frames(answer), f"a framed answer was refused: {refused}"
        return
    assert decoded.encode(family) == answer, "a lookup answer does not encode back"


def _frames(answer: bytes) -> bool:
    """Whether ``answer`` frames as a lookup answer by the rules written in docs/project-rules.md
    (not by the codec's own code): length field true, FEJLNR assigned, header text printable."""
    if len(answer) < HEADER_LENGTH:
        return False
    length = answer[_LENGTH]
    return (
        length.isdigit()
        and int(length) == len(answer)
        and answer[_FEJLNR] in _FEJLNRS
        and is_printable_latin1(answer[: _FEJLNR.start])
    )


def _with_true_length(answer: bytes) -> bytes:
    if not HEADER_LENGTH <= len(answer) <= 9999:
        return answer
    return answer[: _LENGTH.start] + f"{len(answer):04d}".encode() + answer[_LENGTH.stop :]


class RoutingLoader:
    """load_routing on ``data`` written as routing.yaml: only ConfigError may come out.

    The file sits in a directory of its own that holds what the shipped routing.yaml names
    (var/tls's certificates, an admin token), so that a mutation of a valid file can stay valid
    and reach past the file checks into every section.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory or Path(tempfile.mkdtemp(prefix="fuzz-routing-"))
        self._path = self._directory / "routing.yaml"
        ensure_dev_pki(self._directory / "var" / "tls")
        token = self._directory / "var" / "admin.token"
        token.touch(mode=0o600, exist_ok=True)
        token.write_text("fuzz:not-a-secret\n")

    @property
    def directory(self) -> Path:
        """Where the file is written; relative paths in it resolve here."""
        return self._directory

    def __call__(self, data: bytes) -> None:
        self._path.write_bytes(data)
        try:
            load_routing(self._path)
        except ConfigError as refused:
            assert refused.problems, "a ConfigError without a problem"
            assert all(isinstance(p, str) and p for p in refused.problems)


def proxy_header(data: bytes) -> None:
    """ProxyHeaderReader fed a connection's first bytes in slices of at most what it misses:
    it refuses only with ProxyHeaderError, asks for at least one byte until the header is
    whole, takes exactly the header's bytes (never one of what follows), agrees with
    parse_header, and a header it names a client in encodes back to the same header."""
    if not data:
        return
    sizes, stream = _slices(data)
    reader, taken = ProxyHeaderReader(), 0
    while taken < len(stream):
        missing = reader.missing
        assert missing >= 1, "a header not yet whole asks for nothing"
        size = min(missing, sizes.randint(1, _LARGEST_HEADER_SLICE), len(stream) - taken)
        chunk, taken = stream[taken : taken + size], taken + size
        try:
            header = reader.receive_data(chunk)
        except ProxyHeaderError:
            _check_parse_refuses(stream)
            return
        if header is not None:
            _check_whole(reader, header, stream, taken)
            return
    assert isinstance(reader.end_of_stream(), ProxyHeaderError)


def _check_whole(reader: ProxyHeaderReader, header: ProxyHeader, stream: bytes, taken: int) -> None:
    assert reader.missing == 0 and reader.received == taken
    assert taken == FIXED_LENGTH + int.from_bytes(stream[14:16], "big"), "read past the header"
    assert parse_header(stream) == (header, taken), "parse_header disagrees"
    if header.source is not None:
        again, _length = parse_header(encode_header(header.source, header.destination))
        assert again == header, "the header does not encode back"


def _check_parse_refuses(stream: bytes) -> None:
    try:
        parse_header(stream)
    except ProxyHeaderError:
        return
    raise AssertionError("parse_header accepts what the reader refused")


#: Every target by name, as `python -m cpr_devtools.fuzz` and its worker call them. The
#: loader is a class: its directory is made when the worker starts.
TARGETS: dict[str, Callable[[], Target]] = {
    "framer": lambda: request_framer,
    "answers": lambda: answer_decoder,
    "routing": RoutingLoader,
    "proxy": lambda: proxy_header,
}

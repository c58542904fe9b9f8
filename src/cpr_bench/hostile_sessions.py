"""A hostile-session run against a live gateway (``python -m cpr_bench.hostile``, docs/fuzzing.md).

Many connections, a few hundred at once, each one of :class:`Kind`: valid logons and lookups
(sent whole or dripped a few bytes at a time) interleaved with garbage, truncated and oversize
records, bytes that are not TLS, abrupt resets and stalls. Every connection is judged by what
the gateway promises it: a valid record gets its correct answer (a lookup the same bytes it got
before the storm, a logon 00 and a token), a record that cannot be framed is closed unanswered
(docs/project-rules.md), a stalled one is closed by the gateway's timeouts. An overloaded
gateway may shed a valid one instead (08 at once, or refused at accept or cut in its handshake,
counted under a reason): shed ones are reported apart and must not outnumber the refusals the
gateway counted. Afterwards every reference lookup again answers 00 with the same bytes, and the
gateway's connections in flight (its /metrics) return to 0: none leaked.

The clients come from many loopback addresses (127.77.0.x), as a crowd of clients would, so that
a per-address connection limit measures the gateway and not the test's single address.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import enum
import random
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from cpr_devtools.client import Credentials, Endpoint, exchange, read_to_eof
from gateway.codec import MAX_ANSWER_LENGTH, LogonAnswer, LogonRequest, LookupRequest
from gateway.codec.framing import INCOMPLETE, NO_COMMA, NOT_PRINTABLE, TOO_LONG
from gateway.codec.headers import HEADER_LENGTH, answer_fejlnr
from gateway.errors import CodecError
from gateway.model import FejlNr

#: The TLS record type of an alert: what a TLS server may send to bytes that are not TLS.
_TLS_ALERT = 0x15
#: Reading an answer stops one byte past the largest legal one, so an oversized one shows.
_READ_LIMIT = MAX_ANSWER_LENGTH + 1


class Kind(enum.StrEnum):
    """What one connection does, and what the gateway must do with it."""

    LOOKUP = "lookup"  # a valid lookup: the reference answer, byte for byte
    LOGON = "logon"  # a valid logon: 00 and a token
    DRIP = "drip"  # a valid lookup a few bytes at a time: the reference answer
    GARBAGE = "garbage"  # bytes with a control byte, after the handshake: closed unanswered
    PLAINTEXT = "plaintext"  # bytes instead of a TLS handshake: closed, at most a TLS alert
    TRUNCATED = "truncated"  # part of a record, then the client closes
    OVERSIZE = "oversize"  # a whole record with more after it, in one write: closed unanswered
    RESET = "reset"  # nothing, part of a record or all of it, then a TCP reset
    STALL = "stall"  # part of a record, then silence: the gateway's timeouts close it


#: Connections of each kind per 100. Stalls are few: each holds its slot until a timeout.
WEIGHTS: dict[Kind, int] = {
    Kind.LOOKUP: 30, Kind.LOGON: 6, Kind.DRIP: 5, Kind.GARBAGE: 12, Kind.PLAINTEXT: 8,
    Kind.TRUNCATED: 12, Kind.OVERSIZE: 12, Kind.RESET: 13, Kind.STALL: 2,
}  # fmt: skip
#: Kinds that carry a valid record and must get its answer.
VALID = frozenset({Kind.LOOKUP, Kind.LOGON, Kind.DRIP})
#: What a connection of a valid kind comes to when the gateway closed it without an answer (or
#: refused it at accept): shed, as an overloaded gateway may, if it counted a refusal for it.
SHED = "shed"
#: What a valid record comes to when the gateway answered it 08 at once for capacity
#: (max_in_flight, a project rule): refused as promised, not answered wrongly.
BUSY = "busy"
#: The gateway's reasons for closing that a valid record can never earn: framing refusals.
_FRAMING = frozenset({NO_COMMA, NOT_PRINTABLE, TOO_LONG, INCOMPLETE})


@dataclass(frozen=True, slots=True)
class Plan:
    """How big a run is."""

    connections: int = 10_000
    concurrency: int = 200
    #: Client source addresses, 127.77.0.1 onwards (0: the system's choice).
    sources: int = 64
    #: Longest a drip takes over its record; below the gateway's read timeout.
    drip_s: float = 1.0
    #: Longest the client waits for any one connection to end: beyond the gateway's timeouts.
    client_timeout_s: float = 40.0
    #: Longest to wait after the storm for the gateway's connections in flight to reach 0.
    settle_s: float = 30.0
    seed: int = 1


@dataclass(frozen=True, slots=True)
class Target:
    """The gateway under test: its client endpoint, who logs on, and what it serves."""

    endpoint: Endpoint
    who: Credentials
    password: str
    #: PNRs whose lookups answer 00 (residents of the register behind the gateway).
    pnrs: tuple[str, ...]
    #: The gateway's connections in flight now (its /metrics, or the object in a test).
    in_flight: Callable[[], Awaitable[int]]
    #: The gateway's count of connections it closed unanswered, by reason (its /metrics).
    rejected: Callable[[], Awaitable[collections.Counter[str]]] | None = None


@dataclass
class Report:
    """What a run saw; :attr:`passed` says whether the gateway kept every promise."""

    connections: int = 0
    seconds: float = 0.0
    #: When the storm began (UTC, ISO 8601): a failure's "t+" is counted from here.
    began: str = ""
    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    #: (kind, what went wrong), the first few of each kind.
    failures: list[tuple[str, str]] = field(default_factory=list)
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Connections with a valid record closed unanswered, or refused, by the gateway.
    shed: int = 0
    #: Valid records answered 08 for capacity.
    busy: int = 0
    #: What the gateway counted as closed unanswered during the run, by reason.
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    final_lookups: int = 0
    final_ok: int = 0
    in_flight_after: int = -1

    @property
    def refusals(self) -> int:
        """Connections the gateway closed for a reason other than framing (overload, the
        connection limits, its timeouts): at least as many as the valid ones it shed."""
        return sum(n for reason, n in self.rejected.items() if reason not in _FRAMING)

    @property
    def passed(self) -> bool:
        """Every connection as promised (a valid one shed only as the gateway counted it),
        every final lookup 00 and unchanged, nothing leaked."""
        return (
            not self.failed
            and self.shed <= self.refusals
            and self.final_ok == self.final_lookups
            and self.in_flight_after == 0
        )

    def lines(self) -> list[str]:
        """The report as text, one fact a line."""
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(self.by_kind.items()))
        out = [
            f"connections: {self.connections:,} in {self.seconds:.1f} s from {self.began}"
            f" ({kinds})",
            f"not as promised: {sum(self.failed.values()):,}"
            + "".join(f", {k} {n}" for k, n in sorted(self.failed.items())),
            f"valid records shed: {self.shed:,} (the gateway's refusals other than framing:"
            f" {self.refusals:,}); answered 08 for capacity: {self.busy:,}",
            "the gateway closed unanswered: "
            + (", ".join(f"{k} {n:,}" for k, n in sorted(self.rejected.items())) or "-"),
            f"final lookups: {self.final_ok} of {self.final_lookups} answered 00 as before",
            f"connections in flight afterwards: {self.in_flight_after}",
            f"result: {'PASSED' if self.passed else 'FAILED'}",
        ]
        out += [f"  {kind}: {what}" for kind, what in self.failures[:20]]
        return out

    def note(self, kind: Kind, problem: str | None) -> None:
        """Count one connection of ``kind``; ``problem`` None when it went as promised."""
        self.by_kind[kind.value] += 1
        if problem == SHED:
            self.shed += 1
        elif problem == BUSY:
            self.busy += 1
        elif problem is not None:
            self.failed[kind.value] += 1
            if self.failed[kind.value] <= 3:
                self.failures.append((kind.value, problem))


class Storm:
    """One run's connections: what each sends, and the judgement of what came back.

    ``token`` is a live session's; ``reference`` the answer each PNR's lookup must get.
    """

    def __init__(self, target: Target, plan: Plan, token: str, reference: dict[str, bytes]):
        self.target, self.plan, self.token, self.reference = target, plan, token, reference
        self.rng = random.Random(plan.seed)
        endpoint = target.endpoint
        self.tls = endpoint.ssl
        self.host, self.port = endpoint.host, endpoint.port
        self.server_name = endpoint.server_hostname if endpoint.ssl else None
        self.began = time.monotonic()

    # -- records

    def lookup(self, pnr: str) -> bytes:
        who = self.target.who
        return LookupRequest(who.transaction, who.customer, self.token, who.user, pnr).encode()

    def logon(self) -> bytes:
        who = self.target.who
        return LogonRequest(who.transaction, who.customer, who.user, self.target.password).encode()

    def any_record(self, rng: random.Random) -> bytes:
        return self.logon() if rng.random() < 0.2 else self.lookup(rng.choice(self.target.pnrs))

    # -- connections

    async def connect(
        self, number: int, *, tls: bool = True
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        local = None
        if self.plan.sources:
            local = (f"127.77.0.{1 + number % self.plan.sources}", 0)
        context = self.tls if tls else None
        return await asyncio.open_connection(
            self.host,
            self.port,
            ssl=context,
            server_hostname=self.server_name if context else None,
            local_addr=local,
        )

    async def one(self, number: int, kind: Kind, rng: random.Random) -> str | None:
        """Run connection ``number`` of ``kind``; what went wrong (and when, since the storm
        began: to be found in the gateway's log), or None."""
        problem = await self._one(number, kind, rng)
        if problem in (None, SHED, BUSY):
            return problem
        return f"{problem} (t+{time.monotonic() - self.began:.1f} s)"

    async def _one(self, number: int, kind: Kind, rng: random.Random) -> str | None:
        try:
            async with asyncio.timeout(self.plan.client_timeout_s):
                return await _SESSIONS[kind](self, number, rng)
        except TimeoutError:
            return f"still open after {self.plan.client_timeout_s:g} s"
        except (OSError, ssl.SSLError, EOFError):
            # Refused at accept, cut in the handshake, reset: what the gateway may do to any
            # connection it sheds, and to a hostile one always.
            return SHED if kind in VALID else None


async def _valid_lookup(storm: Storm, number: int, rng: random.Random) -> str | None:
    pnr = rng.choice(storm.target.pnrs)
    reader, writer = await storm.connect(number)
    async with _closing(writer):
        writer.write(storm.lookup(pnr))
        answer = await read_to_eof(reader, _READ_LIMIT)
    return _judge_lookup(answer, storm.reference[pnr])


async def _drip(storm: Storm, number: int, rng: random.Random) -> str | None:
    pnr = rng.choice(storm.target.pnrs)
    record = storm.lookup(pnr)
    reader, writer = await storm.connect(number)
    async with _closing(writer):
        pieces = _split(record, rng.randint(2, 8), rng)
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(storm.plan.drip_s / len(pieces))
        answer = await read_to_eof(reader, _READ_LIMIT)
    return _judge_lookup(answer, storm.reference[pnr])


async def _valid_logon(storm: Storm, number: int, _rng: random.Random) -> str | None:
    reader, writer = await storm.connect(number)
    async with _closing(writer):
        writer.write(storm.logon())
        answer = await read_to_eof(reader, _READ_LIMIT)
    if not answer:
        return SHED
    try:
        decoded = LogonAnswer.decode(answer)
    except CodecError as exc:
        return f"logon answered {len(answer)} bytes that do not decode: {exc}"
    if decoded.fejlnr is FejlNr.NOT_ACTIVE:
        return BUSY
    if decoded.fejlnr is not FejlNr.OK or not decoded.token:
        return f"logon answered FEJLNR {decoded.fejlnr.value}"
    return None


async def _garbage(storm: Storm, number: int, rng: random.Random) -> str | None:
    data = bytearray(rng.randbytes(rng.randint(1, 300)))
    data[rng.randrange(len(data))] = rng.randrange(0x20)  # a control byte: never framed
    return await _unanswered(storm, number, bytes(data))


async def _oversize(storm: Storm, number: int, rng: random.Random) -> str | None:
    extra = rng.choice([rng.randint(1, 40), rng.randint(41, 4000), 65536])
    filler = bytes(rng.choice(b"ABCDEFGH0123456789 ") for _ in range(min(extra, 64)))
    data = storm.any_record(rng) + (filler * (extra // len(filler) + 1))[:extra]
    return await _unanswered(storm, number, data)


async def _unanswered(storm: Storm, number: int, data: bytes) -> str | None:
    """Send ``data`` in one write; the gateway must close without a byte of answer."""
    reader, writer = await storm.connect(number)
    async with _closing(writer):
        writer.write(data)
        answer = await _read_until_closed(reader)
    return f"answered {len(answer)} bytes to an unframeable request" if answer else None


async def _plaintext(storm: Storm, number: int, rng: random.Random) -> str | None:
    data = rng.choice([storm.any_record(rng), rng.randbytes(rng.randint(1, 600))])
    reader, writer = await storm.connect(number, tls=False)
    async with _closing(writer):
        writer.write(data)
        answer = await _read_until_closed(reader)
    if answer and answer[0] != _TLS_ALERT:
        return f"answered {answer[:8]!r}… in clear to bytes that are not TLS"
    return None


async def _truncated(storm: Storm, number: int, rng: random.Random) -> str | None:
    record = storm.any_record(rng)
    _reader, writer = await storm.connect(number)
    async with _closing(writer):
        writer.write(record[: rng.randint(1, len(record) - 1)])
        await writer.drain()
    return None


async def _reset(storm: Storm, number: int, rng: random.Random) -> str | None:
    record = storm.any_record(rng)
    during_handshake = rng.random() < 0.3
    _reader, writer = await storm.connect(number, tls=not during_handshake)
    if during_handshake:
        writer.write(rng.choice([b"", b"\x16\x03\x01", rng.randbytes(5)]))
    else:
        writer.write(record[: rng.randint(0, len(record))])
    await writer.drain()
    await asyncio.sleep(rng.random() * 0.05)
    _abort(writer)
    return None


async def _stall(storm: Storm, number: int, rng: random.Random) -> str | None:
    """Part of a record (or nothing at all), then silence until the gateway closes."""
    record = storm.any_record(rng)
    reader, writer = await storm.connect(number)
    async with _closing(writer):
        writer.write(record[: rng.randint(0, len(record) - 1)])
        answer = await _read_until_closed(reader)
    return f"answered {len(answer)} bytes to an incomplete request" if answer else None


_SESSIONS: dict[Kind, Callable[[Storm, int, random.Random], Awaitable[str | None]]] = {
    Kind.LOOKUP: _valid_lookup, Kind.LOGON: _valid_logon, Kind.DRIP: _drip,
    Kind.GARBAGE: _garbage, Kind.PLAINTEXT: _plaintext, Kind.TRUNCATED: _truncated,
    Kind.OVERSIZE: _oversize, Kind.RESET: _reset, Kind.STALL: _stall,
}  # fmt: skip


def _judge_lookup(answer: bytes, reference: bytes) -> str | None:
    if answer == reference:
        return None
    if not answer:
        return SHED
    if len(answer) == HEADER_LENGTH and answer_fejlnr(answer) == FejlNr.NOT_ACTIVE.value.encode():
        return BUSY
    return f"lookup answered FEJLNR {answer_fejlnr(answer)!r}, {len(answer)} bytes, not as before"


def _split(record: bytes, parts: int, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(record)), min(parts - 1, len(record) - 1)))
    return [record[a:b] for a, b in zip([0, *cuts], [*cuts, len(record)], strict=True)]


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """What the gateway sends until it closes; a reset or a TLS error counts as closed."""
    try:
        return await read_to_eof(reader, _READ_LIMIT)
    except (ConnectionResetError, ssl.SSLError):
        return b""


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed client or a middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.asynccontextmanager
async def _closing(writer: asyncio.StreamWriter) -> AsyncIterator[None]:
    """Close ``writer`` on the way out, waiting a moment at most for the close to finish."""
    try:
        yield
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(1):
                await writer.wait_closed()


async def run_hostile(target: Target, plan: Plan) -> Report:
    """The whole run: reference answers, the storm, the final lookups, the leak check."""
    report = Report()
    token, reference = await _calm(target)
    storm = Storm(target, plan, token, reference)
    kinds = storm.rng.choices(list(WEIGHTS), list(WEIGHTS.values()), k=plan.connections)
    rejected_before = await target.rejected() if target.rejected else collections.Counter()
    began, storm.began = time.monotonic(), time.monotonic()
    report.began = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    await _storm(storm, kinds, report)
    report.seconds = time.monotonic() - began
    if target.rejected:
        report.rejected = await target.rejected() - rejected_before
    report.connections = len(kinds)
    again = await _lookups(target, token)
    report.final_lookups = len(again)
    report.final_ok = sum(1 for pnr, answer in again.items() if answer == reference[pnr])
    report.in_flight_after = await _settled(target, plan.settle_s)
    return report


async def _calm(target: Target) -> tuple[str, dict[str, bytes]]:
    """Log on, and look up every PNR once before the storm: the answers each lookup must get."""
    answer = LogonAnswer.decode(await exchange(target.endpoint, _logon_of(target)))
    if answer.fejlnr is not FejlNr.OK:
        raise RuntimeError(f"the first logon answered FEJLNR {answer.fejlnr.value}")
    reference = await _lookups(target, answer.token)
    refused = {p: a[:30] for p, a in reference.items() if answer_fejlnr(a) != b"00"}
    if refused:
        raise RuntimeError(f"lookups before the storm did not answer 00: {len(refused)}")
    return answer.token, reference


def _logon_of(target: Target) -> bytes:
    who = target.who
    return LogonRequest(who.transaction, who.customer, who.user, target.password).encode()


async def _lookups(target: Target, token: str) -> dict[str, bytes]:
    who = target.who
    found = {}
    for pnr in target.pnrs:
        record = LookupRequest(who.transaction, who.customer, token, who.user, pnr).encode()
        found[pnr] = await exchange(target.endpoint, record)
    return found


async def _storm(storm: Storm, kinds: Sequence[Kind], report: Report) -> None:
    """Every connection, at most ``concurrency`` at once, each with its own random stream."""
    slots = asyncio.Semaphore(storm.plan.concurrency)

    async def connection(number: int, kind: Kind) -> None:
        try:
            report.note(
                kind, await storm.one(number, kind, random.Random(storm.plan.seed + number))
            )
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        for number, kind in enumerate(kinds):
            await slots.acquire()
            group.create_task(connection(number, kind), name=f"hostile-{number}")


async def _settled(target: Target, within_s: float) -> int:
    """The gateway's connections in flight once they reach 0, or after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        now = await target.in_flight()
        if now == 0 or time.monotonic() >= deadline:
            return now
        await asyncio.sleep(0.2)

"""Seed corpora: real records for each target to start from (docs/fuzzing.md).

Requests as clients write them, answers as the register renders them (both families, every
record type, error answers, logon answers), the shipped routing.yaml and the documentation's
examples, and PROXY headers as a balancer sends them. Each seed is laid out as its target reads
input (a first byte that picks slices or the kind of answer), so that the fuzzer starts from
inputs that reach deep into the parser instead of guessing its way there.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from cpr_mainframe.register.generate import generate
from cpr_mainframe.register.store import Register
from gateway.codec import LAYOUTS, LogonAnswer, LogonRequest, LookupAnswer, LookupRequest, Record
from gateway.codec.proxy_protocol import SIGNATURE, Address, encode_header
from gateway.domain.person import Person
from gateway.model import Family, FejlNr
from gateway.render import Task, render_answer

#: Persons rendered into answer seeds: enough for every record type of both families.
_PERSONS = 40
#: The register's fixed "today" (docs/project-rules.md), so seeds are the same on any day.
_TODAY = dt.date(2026, 1, 1)
#: First bytes that make the slicing targets feed a seed whole, byte by byte and in between.
_SLICINGS = (0, 7, 200)
_PRIV, _OFF4, _LOGON, _TRUE_LENGTH = 0b000, 0b001, 0b010, 0b100
_YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


def requests() -> list[bytes]:
    """Logons, password changes, lookups and subscriptions as clients send them, and the
    near misses the framer refuses (no comma, a control byte, one byte too many)."""
    records = [
        LogonRequest("PRIV", "0001", "DEMO0001", "Demo#123").encode(),
        LogonRequest("OFF4", "  12", "DEMO0002", "Demo#456", "New#4567").encode(),
        LookupRequest("PRIV", "0001", "Tk3nAbCd", "DEMO0001", "0101601234").encode(),
        LookupRequest("OFF4", "0002", "Tk3nAbCd", "DEMO0002", "0101601234", "1", "0").encode(),
        LookupRequest("PRIV", "0001", "Tk3nAbCd", "DEMO0001", "", "3").encode(),
    ]
    logon, lookup = records[0], records[2]
    near = [b"PRIV;" + logon[5:], logon[:20] + b"\x07" + logon[21:], lookup + b"X"]
    return [bytes([s]) + r for s in _SLICINGS for r in records + near]


def answers(persons: int = _PERSONS) -> list[bytes]:
    """Rendered answers of ``persons`` register persons in both families, error answers and
    logon answers, each behind the selector byte that decodes it as what it is."""
    seeds = [bytes([_LOGON]) + a for a in _logon_answers()]
    for family, selector in ((Family.PRIV, _PRIV), (Family.OFF4, _OFF4)):
        for answer in _lookup_answers(family, persons):
            seeds += [bytes([selector]) + answer, bytes([selector | _TRUE_LENGTH]) + answer]
    return seeds


def _logon_answers() -> list[bytes]:
    return [
        LogonAnswer("0001", "DEMO0001", FejlNr.OK, "Tk3nAbCd").encode(),
        LogonAnswer("0001", "DEMO0001", FejlNr.BAD_CREDENTIALS).encode(),
        LogonAnswer("  12", "DEMO0002", FejlNr.PASSWORD_EXPIRED).encode(),
    ]


def _lookup_answers(family: Family, persons: int) -> Iterator[bytes]:
    task = Task()
    if family is Family.OFF4:
        task = Task(off4_records=frozenset(LAYOUTS[Family.OFF4]) - {"000", "999"})
    for person in _persons(persons):
        yield _answer(render_answer(person, family, task, 1, _TODAY), family)
    yield _answer((), family, FejlNr.PNR_UNKNOWN)


def _answer(records: tuple[Record, ...], family: Family, fejlnr: FejlNr = FejlNr.OK) -> bytes:
    return LookupAnswer("0001", "0", "6", "Tk3nAbCd", "DEMO0001", fejlnr, records).encode(family)


def _persons(count: int) -> list[Person]:
    """``count`` persons of a register generated for the purpose (seed 1, as the tests')."""
    with tempfile.TemporaryDirectory(prefix="fuzz-register-") as directory:
        path = Path(directory) / "register.sqlite"
        generate(path, count=count, seed=1)
        register = Register.open(path)
        try:
            return list(register.iter_persons())
        finally:
            register.close()


def routing_documents(routing: Path, docs: Path | None = None) -> list[bytes]:
    """The shipped routing.yaml as it is and without its comments (quicker to mutate), and
    every routing example in ``docs`` (routing.md, canary.md, shadow.md)."""
    text = routing.read_text()
    seeds = [text.encode(), _compact(yaml.safe_load(text)), _ALIASES]
    for page in sorted(docs.glob("*.md")) if docs is not None else ():
        for block in _YAML_BLOCK.findall(page.read_text()):
            seeds.append(block.encode())
    return seeds


#: Aliases that make a list of 9**6 items out of a few hundred bytes (a "billion laughs"):
#: whatever walks such a value whole, in a message or a check, hangs the loader.
_ALIASES = b"""version: 1
a: &a [x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
listen: *f
limits: {read_timeout: *f}
backends: {x: *f}
routes: *f
"""


def _compact(document: object) -> bytes:
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=True, width=1 << 16)
    return text.encode()


def proxy_headers() -> list[bytes]:
    """Headers as HAProxy sends them: IPv4, IPv6, mixed versions, LOCAL, a UNIX family
    without addresses and one with TLVs after its addresses; each followed by a TLS hello's
    first bytes (what the reader must never take)."""
    v4 = Address(ipaddress.IPv4Address("192.0.2.10"), 40123)
    v6 = Address(ipaddress.IPv6Address("2001:db8::7"), 443)
    ours = Address(ipaddress.IPv4Address("198.51.100.1"), 5000)
    headers = [encode_header(v4, ours), encode_header(v6), encode_header(v4, v6)]
    headers.append(encode_header(None))
    unix = SIGNATURE + bytes([0x21, 0x31]) + (216).to_bytes(2, "big") + bytes(216)
    with_tlvs = encode_header(v4, ours)
    tlvs = bytes([0x04, 0x00, 0x03]) + b"abc"  # PP2_TYPE_NOOP, three bytes
    with_tlvs = with_tlvs[:14] + (12 + len(tlvs)).to_bytes(2, "big") + with_tlvs[16:] + tlvs
    tls_hello = bytes([0x16, 0x03, 0x01, 0x00, 0xC8, 0x01])
    return [bytes([s]) + h + tls_hello for s in _SLICINGS for h in [*headers, unix, with_tlvs]]

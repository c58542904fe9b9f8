"""`cpr-gateway lookup`: one logon and one lookup, like an existing client, answer decoded.

Every answer that frames is printed whole, record by record; a field whose bytes are not what
its kind promises (spec §10: a blank number, minute 99) is shown as it came and marked. An
answer that does not frame is printed as a hex dump with the reason, and the exit status is 1.
"""

from __future__ import annotations

import argparse

from cpr_devtools.client import Credentials, Endpoint, LogonFailed, logon, lookup
from gateway.codec import LookupAnswer
from gateway.errors import CodecError
from gateway.model import Family, FejlNr, Irregular
from gateway.tls import client_context

#: Bytes per line of a hex dump, as xxd and hexdump -C show them.
_DUMP_WIDTH = 16


async def run_lookup(args: argparse.Namespace) -> int:
    """Print the answer to a lookup of ``args.pnr`` (the operator asked for this PNR)."""
    context = None if args.plaintext else client_context(args.ca)
    endpoint = Endpoint(args.host, args.port, context, "localhost")
    who = Credentials(args.transaction, args.customer, args.user)
    try:
        token = await logon(endpoint, who, args.password)
    except LogonFailed as exc:
        print(f"logon: FEJLNR {exc.fejlnr.value} ({exc.fejlnr.name})")
        return 1
    lines, status = describe(await lookup(endpoint, who, token, args.pnr), Family(args.transaction))
    print("\n".join(lines))
    return status


def describe(raw: bytes, family: Family) -> tuple[list[str], int]:
    """The lines that show ``raw`` to an operator, and the exit status (0 only for 00)."""
    try:
        answer = LookupAnswer.decode(raw, family)
    except CodecError as exc:
        return [f"undecodable answer of {len(raw)} bytes: {exc}", *hex_dump(raw)], 1
    lines = [f"FEJLNR {answer.fejlnr.value} ({answer.fejlnr.name}), {len(raw)} bytes"]
    irregular = 0
    for record in answer.records:
        lines.append(f"-- record {record.type}")
        for name, value in record.fields.items():
            if isinstance(value, Irregular):
                irregular += 1
                lines.append(f"   {name:<22} {value.text!r}  ! {value.reason}")
            elif value not in ("", None, 0):
                lines.append(f"   {name:<22} {value}")
    if irregular:
        lines.append(f"{irregular} field(s) not what their kind promises (marked !, spec §10)")
    return lines, 0 if answer.fejlnr is FejlNr.OK else 1


def hex_dump(data: bytes) -> list[str]:
    """``data`` as offset, hex bytes and printable Latin-1, a line per 16 bytes."""
    lines = []
    for offset in range(0, len(data), _DUMP_WIDTH):
        chunk = data[offset : offset + _DUMP_WIDTH]
        text = "".join(chr(b) if 0x20 <= b < 0x7F or b >= 0xA0 else "." for b in chunk)
        lines.append(f"{offset:08x}  {chunk.hex(' '):<{_DUMP_WIDTH * 3 - 1}}  |{text}|")
    return lines

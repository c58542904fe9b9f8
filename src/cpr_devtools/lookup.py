"""`cpr-gateway lookup`: one logon and one lookup, like an existing client, answer decoded."""

from __future__ import annotations

import argparse

from cpr_devtools.client import Credentials, Endpoint, LogonFailed, logon, lookup
from gateway.codec import LookupAnswer
from gateway.errors import CodecError
from gateway.model import Family
from gateway.tls import client_context


async def run_lookup(args: argparse.Namespace) -> int:
    """Print each record of the answer as field=value lines (the operator asked for this PNR)."""
    context = None if args.plaintext else client_context(args.ca)
    endpoint = Endpoint(args.host, args.port, context, "localhost")
    who = Credentials(args.transaction, args.customer, args.user)
    try:
        token = await logon(endpoint, who, args.password)
    except LogonFailed as exc:
        print(f"logon: FEJLNR {exc.fejlnr.value} ({exc.fejlnr.name})")
        return 1
    raw = await lookup(endpoint, who, token, args.pnr)
    try:
        answer = LookupAnswer.decode(raw, Family(args.transaction))
    except (CodecError, ValueError) as exc:
        print(f"undecodable answer of {len(raw)} bytes: {exc}")
        return 1
    print(f"FEJLNR {answer.fejlnr.value} ({answer.fejlnr.name}), {len(raw)} bytes")
    for record in answer.records:
        print(f"-- record {record.type}")
        for name, value in record.fields.items():
            if value not in ("", None, 0):
                print(f"   {name:<22} {value}")
    return 0 if answer.fejlnr.value == "00" else 1

"""Lookup records for a deployed path: a fresh logon, then one record per resident."""

from __future__ import annotations

from pathlib import Path

from cpr_bench.deploy import Deployed
from cpr_devtools.client import Credentials, Endpoint, logon
from cpr_mainframe.config import default_config_path, load_config
from cpr_mainframe.register.store import Register
from gateway.codec import LookupRequest
from gateway.model import Family
from gateway.tls import client_context


async def lookup_records(d: Deployed, register_path: Path, count: int = 1000) -> tuple[bytes, ...]:
    """Records of ``count`` residents of the register, with a token of a logon through ``d``
    (as the benchmark's other phases send them)."""
    config = load_config(default_config_path())
    customer, user = next(
        (c, u) for c in config.customers for u in c.users if Family.PRIV in u.grants
    )
    register = Register.open(register_path)
    try:
        pnrs = tuple(register.pnrs(limit=count, status="01"))
    finally:
        register.close()
    who = Credentials(Family.PRIV.value, f"{customer.number:04d}", user.id)
    target = d.target
    context = client_context(target.ca) if target.ca else None
    endpoint = Endpoint(target.host, target.port, context, target.server_name)
    token = await logon(endpoint, who, user.password)
    return tuple(
        LookupRequest(who.transaction, who.customer, token, who.user, pnr).encode() for pnr in pnrs
    )

"""Who the benchmark's clients are and whom they look up, and their lookup records for a
deployed path (a logon through it, then one record per resident)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cpr_bench.deploy import Deployed
from cpr_devtools.client import Credentials, Endpoint, logon
from cpr_mainframe.config import default_config_path, load_config
from cpr_mainframe.register.store import Register
from gateway.codec import LookupRequest
from gateway.model import Family
from gateway.tls import client_context

#: Distinct persons looked up, round-robin: enough that no single row is all that is read.
PNRS = 1000


@dataclass(frozen=True, slots=True)
class BenchClient:
    """Who the generated clients are, and whom they look up."""

    who: Credentials
    password: str
    pnrs: tuple[str, ...]

    def records(self, token: str) -> tuple[bytes, ...]:
        """One encoded lookup per person, with ``token`` from a logon."""
        who = self.who
        return tuple(
            LookupRequest(who.transaction, who.customer, token, who.user, pnr).encode()
            for pnr in self.pnrs
        )


def bench_client(register_path: Path, count: int = PNRS) -> BenchClient:
    """The shipped config's first PRIV user, looking up ``count`` residents (full-size
    answers)."""
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
    return BenchClient(who, user.password, pnrs)


async def logon_through(d: Deployed, client: BenchClient) -> str:
    """A logon through ``d``'s client port; its token."""
    target = d.target
    context = client_context(target.ca) if target.ca else None
    endpoint = Endpoint(target.host, target.port, context, target.server_name)
    return await logon(endpoint, client.who, client.password)


async def lookup_records(d: Deployed, register_path: Path) -> tuple[bytes, ...]:
    """Lookup records for residents of the register, with a token of a logon through ``d``
    (as the benchmark's phases send them)."""
    client = bench_client(register_path)
    return client.records(await logon_through(d, client))

"""cpr_bench.bare_relay, the benchmark's floor for a Python proxy on uvloop: over real TLS on
both hops it relays a record and its answer byte for byte, as the breakdown needs it to, and
resumes its TLS session towards the mainframe as the gateway does."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from gateway_harness import LOGON, LOGON_ANSWER, LOOKUP, LOOKUP_ANSWER, backend_server, canned

from cpr_bench.bare_relay import Relay, RelayedClient
from cpr_devtools.client import Endpoint, exchange
from cpr_devtools.pki import ensure_dev_pki
from gateway.backends.tls_resumption import ResumingContext
from gateway.tls import client_context, server_context


async def test_a_record_and_its_answer_cross_both_tls_hops_unchanged(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path, servers=("gateway", "emulator"))
    received: list[bytes] = []
    backend = server_context(pki.cert("emulator"), pki.key("emulator"))
    async with backend_server(canned(received), backend) as port:
        outbound = client_context(pki.ca_cert, kind=ResumingContext)
        assert isinstance(outbound, ResumingContext)
        outbound.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
        relay = Relay("127.0.0.1", port, outbound)
        inbound = server_context(pki.cert("gateway"), pki.key("gateway"))
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: RelayedClient(relay), "127.0.0.1", 0, ssl=inbound)
        async with server:
            front = server.sockets[0].getsockname()[1]
            client = Endpoint("127.0.0.1", front, client_context(pki.ca_cert), "localhost")
            assert await exchange(client, LOOKUP.encode()) == LOOKUP_ANSWER
            assert await exchange(client, LOGON.encode()) == LOGON_ANSWER
    assert received == [LOOKUP.encode(), LOGON.encode()]
    assert (outbound.resumed, outbound.full) == (1, 1)

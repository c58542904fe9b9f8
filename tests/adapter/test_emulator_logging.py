"""The emulator's request log: one line per request, and never a PNR, password or token."""

from __future__ import annotations

from structlog.testing import capture_logs

from cpr_devtools.client import exchange, logon
from emulator_harness import DEMO_PRIV, running_emulator
from gateway.codec import LogonRequest, LookupRequest


async def test_one_line_per_request_without_secrets() -> None:
    """Logon, lookup, a password change and garbage each log one line naming no secret."""
    async with running_emulator() as emu:
        pnr = emu.pnrs(1)[0]
        with capture_logs() as logs:
            token = await logon(emu.endpoint, DEMO_PRIV.who, DEMO_PRIV.password)
            lookup = LookupRequest("PRIV", "0001", token, "DEMO0001", pnr)
            await exchange(emu.endpoint, lookup.encode())
            change = LogonRequest("PRIV", "0001", "DEMO0001", DEMO_PRIV.password, "New#5678")
            await exchange(emu.endpoint, change.encode())
            await exchange(emu.endpoint, b"no comma here")
    requests = [line for line in logs if line["event"] == "emulator request"]
    assert [(line["operation"], line["fejlnr"]) for line in requests] == [
        ("logon", "00"),
        ("lookup", "00"),
        ("change_password", "00"),
    ]
    assert all(line["customer"] == 1 and "duration_ms" in line for line in requests)
    assert [line["reason"] for line in logs if line["event"] == "emulator request rejected"] == [
        "no_comma"
    ]
    text = repr(logs)
    for secret in (pnr, token, DEMO_PRIV.password, "New#5678"):
        assert secret not in text

"""Through the real gateway: every lookup lands in the audit log, and `cpr-gateway audit`
answers "who looked up this person" and "whom did this user look up" without a PNR in clear."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from gateway_harness import LOGON, LOOKUP, PNR, backend_server, canned, gateway_config, running
from proxy_harness import CLIENT, LOOPBACK, exchange_after, header_for

from cpr_devtools.client import exchange
from gateway.app import Gateway
from gateway.cli import main
from gateway.codec import LookupRequest
from gateway.config import load_routing
from gateway.config.audit import Audit
from gateway.errors import ConfigError
from gateway.observe.logs import configure_logging
from gateway.shadow.pseudonym import Pseudonymiser, load_key

OTHER_PNR = "0202602345"  # synthetic
OTHER = replace(LOOKUP, user="DEMO0002", pnr=OTHER_PNR)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    try:
        yield stream
    finally:
        configure_logging()


@pytest.fixture
async def audited(tmp_path: Path, log_output: io.StringIO) -> Audit:
    """A gateway that audited a logon and two lookups (two users, two persons), then stopped."""
    audit = Audit(tmp_path / "audit", tmp_path / "audit.key")
    async with (
        backend_server(canned()) as port,
        running(replace(gateway_config(port), audit=audit)) as run,
    ):
        for request in (LOGON, LOOKUP, OTHER):
            await exchange(run.client, request.encode())
    return audit


def _audit(capsys: pytest.CaptureFixture[str], audit: Audit, *args: str) -> tuple[int, str]:
    where = ["--directory", str(audit.directory), "--key-file", str(audit.key_file)]
    status = main(["audit", *args, *where])
    return status, capsys.readouterr().out


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


async def test_who_looked_up_this_person(
    audited: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    """--pnr finds the person's lookups by pseudonym; the PNR is never printed back."""
    status, out = _audit(capsys, audited, "--pnr", PNR, "--json")
    [found] = _lines(out)
    assert status == 0 and PNR not in out
    assert (found["customer"], found["user"], found["source"]) == ("0001", "DEMO0001", "127.0.0.1")
    assert (found["side"], found["route"], found["fejlnr"]) == ("mainframe", "all", "00")
    assert str(found["pnr"]).startswith("p:")


async def test_whom_did_this_user_look_up(
    audited: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    """--user lists that user's lookups with the persons as pseudonyms (text output)."""
    status, out = _audit(capsys, audited, "--user", "DEMO0002")
    [line] = out.splitlines()
    assert status == 0 and "user=DEMO0002" in line and "pnr=p:" in line
    assert OTHER_PNR not in out


async def test_by_customer_and_since(audited: Audit, capsys: pytest.CaptureFixture[str]) -> None:
    """--customer compares as a number (1 is 0001); --since keeps what is at or after it."""
    assert len(_lines(_audit(capsys, audited, "--customer", "1", "--json")[1])) == 2
    assert len(_lines(_audit(capsys, audited, "--customer", "2", "--json")[1])) == 0
    recent = _audit(capsys, audited, "--customer", "1", "--since", "1h", "--json")[1]
    assert len(_lines(recent)) == 2
    future = _audit(capsys, audited, "--customer", "1", "--since", "2999-01-01", "--json")[1]
    assert _lines(future) == []


async def test_the_chain_verifies_and_nothing_leaks(
    audited: Audit, capsys: pytest.CaptureFixture[str], log_output: io.StringIO
) -> None:
    """verify says the chain is whole; no PNR in clear in the files or the logs, which name
    each file with its head hash."""
    status, out = _audit(capsys, audited, "verify")
    assert status == 0 and "chain whole" in out
    files = "".join(path.read_text() for path in audited.directory.glob("*.jsonl"))
    assert '"kind":"lookup"' in files
    for text in (files, log_output.getvalue()):
        assert PNR not in text and OTHER_PNR not in text
    assert '"event": "audit_file_closed"' in log_output.getvalue()


async def test_without_a_filter_the_query_is_refused(
    audited: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    """A query names a person, a customer or a user: it never dumps the whole log."""
    assert main(["audit", "--directory", str(audited.directory)]) == 2
    assert "give --pnr, --customer or --user" in capsys.readouterr().err


async def test_a_gateway_does_not_start_without_its_audit_log(tmp_path: Path) -> None:
    """When the audit directory cannot be made, the start fails with the reason."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    audit = Audit(blocker / "audit", tmp_path / "audit.key")
    async with backend_server(canned()) as port:
        gateway = Gateway(replace(gateway_config(port), audit=audit))
        with pytest.raises(ConfigError, match=r"audit\.directory"):
            await gateway.start()


SPLIT = """
version: 1
listen: {{host: 127.0.0.1, port: 0, tls: null}}
admin: {{host: 127.0.0.1, port: 0}}
backends:
  left: {{kind: legacy, address: "127.0.0.1:{left}", tls: null}}
  right: {{kind: legacy, address: "127.0.0.1:{right}", tls: null}}
routes:
  - name: lookups
    match: {{operation: [lookup]}}
    split: {{key: pnr, backends: {{left: 50, right: 50}}}}
    deadline: 2s
  - name: rest
    match: {{}}
    backend: left
    deadline: 2s
audit: {{directory: audit}}
"""


async def test_the_side_recorded_is_the_side_that_answered(tmp_path: Path) -> None:
    """Lookups split between two sides: each record names the side its request reached."""
    received: dict[str, list[bytes]] = {"left": [], "right": []}
    pnrs = [f"0101{n:06d}" for n in range(20)]
    async with (
        backend_server(canned(received["left"])) as left,
        backend_server(canned(received["right"])) as right,
    ):
        routing = tmp_path / "routing.yaml"
        routing.write_text(SPLIT.format(left=left, right=right))
        async with running(load_routing(routing)) as run:
            for pnr in pnrs:
                await exchange(run.client, replace(LOOKUP, pnr=pnr).encode())
    key = Pseudonymiser(load_key(tmp_path / "audit.key", what="audit key"))
    sides = {
        str(record["pnr"]): str(record["side"])
        for path in (tmp_path / "audit").glob("*.jsonl")
        for record in map(json.loads, path.read_text().splitlines())
        if record["kind"] == "lookup"
    }
    reached = {
        key.pnr(LookupRequest.decode(raw).pnr): side for side in received for raw in received[side]
    }
    assert sides == reached and set(sides.values()) == {"left", "right"}


async def test_behind_a_balancer_the_source_is_the_client_its_header_names(
    tmp_path: Path,
) -> None:
    """A trusted PROXY v2 header names the client: the record's source is that address, not
    the balancer's."""
    audit = Audit(tmp_path / "audit", tmp_path / "audit.key")
    async with backend_server(canned()) as port:
        config = replace(gateway_config(port), audit=audit)
        config = replace(config, listen=replace(config.listen, proxy_protocol=LOOPBACK))
        async with running(config) as run:
            await exchange_after(run.client.port, header_for(CLIENT), LOOKUP.encode())
    [record] = [
        json.loads(line)
        for path in audit.directory.glob("*.jsonl")
        for line in path.read_text().splitlines()
        if '"kind":"lookup"' in line
    ]
    assert record["source"] == str(CLIENT.ip) == "192.0.2.7"

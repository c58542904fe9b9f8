"""No PNR in clear anywhere the shadow flow leaves traces: store, report, logs, metrics, and
the audit log of the lookups.

The whole flow runs for real (emulator, drifted gRPC services, a gateway that
shadows every lookup, debug-level logging of every part into one buffer), and
then every artefact is scanned for every PNR of the register, not only the ones
looked up: a replaced PNR, a spouse's or a child's must not leak either.
"""

from __future__ import annotations

import io
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from test_shadow_drift import DRIFT, _look_up_all, stack

from cpr_mainframe.register.store import Register
from emulator_harness import DEMO_OFF4, DEMO_PRIV
from gateway.observe.logs import configure_logging
from gateway.shadow.pseudonym import load_key
from gateway.shadow.report import build_report, render_json, render_text
from gateway.shadow.sealing import Sealer
from gateway.shadow.store import MismatchStore

_TEN_DIGITS = re.compile(r"(?<!\d)\d{10}(?!\d)")


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    """Every structlog line of every part, at debug level, as JSON."""
    buffer = io.StringIO()
    configure_logging(json=True, level="debug", stream=buffer)
    try:
        yield buffer
    finally:
        configure_logging()


def _register_pnrs(register_path: Path) -> set[str]:
    """Every PNR the register holds, and every PNR its persons refer to."""
    register = Register.open(register_path)
    try:
        pnrs = set(register.pnrs())
        for pnr in list(pnrs):
            person = register.get(pnr)
            assert person is not None
            pnrs.update(_TEN_DIGITS.findall(person.to_json()))
    finally:
        register.close()
    pnrs.discard("0000000000")  # "unknown parent": not a person
    return pnrs


def _store_text(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return "\n".join(db.iterdump())


def _leaks(text: str, pnrs: set[str]) -> set[str]:
    return {found for found in _TEN_DIGITS.findall(text) if found in pnrs}


async def test_no_pnr_in_store_report_logs_or_metrics(
    tmp_path: Path, log_buffer: io.StringIO
) -> None:
    """A full shadow run with drift leaves no PNR in clear in any artefact."""
    async with stack(tmp_path, DRIFT) as s:
        pnrs_used = s.primary.pnrs(60)
        await _look_up_all(s, [DEMO_PRIV, DEMO_OFF4], pnrs_used)
        metrics = generate_latest(s.gateway.metrics.registry).decode()
        register_path = s.primary.config.register
    sealer = Sealer(load_key(s.store.with_name("shadow.key")))  # the report shows the values
    with MismatchStore.open(s.store, prune=False, sealer=sealer) as store:
        report = build_report(store)
        assert report_has_findings(render_text(report))
        artefacts = {
            "report (text)": render_text(report),
            "report (json)": render_json(report),
            "mismatch store": _store_text(s.store),
            "logs": log_buffer.getvalue(),
            "metrics": metrics,
            "audit log": "".join(p.read_text() for p in (tmp_path / "audit").glob("*.jsonl")),
        }
    everyone = _register_pnrs(register_path)
    assert set(pnrs_used) <= everyone
    # Every part logged into the buffer: the gateway, the emulator and the shadow runner.
    for event in ('"event": "request"', '"event": "emulator request"', "shadow"):
        assert event in artefacts["logs"], f"no {event} line was captured"
    for name, text in artefacts.items():
        assert text, f"{name} is empty: the scan would prove nothing"
        assert not _leaks(text, everyone), f"PNR in clear in the {name}"


def report_has_findings(text: str) -> bool:
    """The report names drifted fields, so it holds the values where a PNR could hide."""
    return "STANDARDADR" in text and "differs" in text

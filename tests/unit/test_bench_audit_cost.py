"""`python -m cpr_bench.audit_cost` runs and prints a figure per fsync policy."""

from __future__ import annotations

import pytest

from cpr_bench.audit_cost import main


def test_it_prints_the_cost_without_and_with_each_fsync_policy_and_paced(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One line without the audit log, one per policy with what it adds, one paced."""
    assert main(["--lookups", "200", "--rate", "100", "--seconds", "0.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "audit off",
        "audit fsync every",
        "audit fsync interval",
        "audit fsync never",
        "at 100 lookups/s",
    ]
    assert all("µs CPU per lookup" in line for line in lines[:-1])
    assert "µs per lookup" in lines[-1]

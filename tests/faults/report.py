"""Print a fault-matrix run's figures as the table rows docs/faults.md quotes.

CPR_FAULTS_REPORT=/tmp/faults.jsonl .venv/bin/pytest -q tests/faults
.venv/bin/python tests/faults/report.py /tmp/faults.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(path: Path) -> list[str]:
    """One Markdown table row per cell, in the order the cells ran."""
    out = [
        "| cell | client got | slowest answer (ms) | deadline + 100 ms | healthy before (ms) "
        "| recovery (ms) | 00 after |",
        "|---|---|---|---|---|---|---|",
    ]
    for line in path.read_text(encoding="utf-8").splitlines():
        cell = json.loads(line)
        out.append(
            f"| {cell['cell']} | {', '.join(cell['fejlnr'])} | {cell['slowest_ms']:.0f} "
            f"| {cell['deadline_plus_100_ms']} | {cell['healthy_ms']:.0f} "
            f"| {cell['recovery_ms']:.0f} | {cell['after_ok']} |"
        )
    return out


if __name__ == "__main__":
    print("\n".join(rows(Path(sys.argv[1]))))

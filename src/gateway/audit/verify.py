"""`cpr-gateway audit verify`: walk every writer's chain and report the first break.

Each writer's files are read in sequence order as one chain: every whole line must be a
record whose ``prev`` is the SHA-256 of the whole line before it (the first line of all:
``GENESIS``). A file may end in a torn line (bytes without a newline: a crash cut a write)
when the writer's next file opens with a ``start`` record that says how many bytes it
left (``torn``); the torn bytes are outside the chain. A torn end of a writer's last file is
a crash the writer has not restarted from yet: reported, not a break.

What a chain cannot show (docs/audit.md, "Tamper evidence"): whole lines cut off the end of
a writer's last file, or whole last files removed, leave a shorter chain that is still
whole. The ``audit_file`` log lines carry each file's head hash outside the directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.audit.files import writers
from gateway.audit.record import GENESIS, START, hash_of, parse


@dataclass(frozen=True, slots=True)
class Break:
    """Where a chain first fails: the file, the line number (1-based) and why."""

    file: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file.name} line {self.line}: {self.reason}"


@dataclass(slots=True)
class ChainReport:
    """What verifying one writer's chain found."""

    writer: str
    files: int = 0
    records: int = 0
    #: Torn ends, each accounted for by the next file's start record (or the last file's).
    notes: list[str] = field(default_factory=list)
    broken: Break | None = None


def verify_directory(directory: Path) -> list[ChainReport]:
    """One report per writer whose files are in ``directory``."""
    return [
        verify_chain(writer, [p for _, p in files]) for writer, files in writers(directory).items()
    ]


def verify_chain(writer: str, files: list[Path]) -> ChainReport:
    """Walk ``files`` (one writer's, in order) as one chain; stop at the first break."""
    report = ChainReport(writer, files=len(files))
    head, torn_before = GENESIS, None
    for path in files:
        first = True
        for number, line, whole in _lines(path):
            if not whole:
                torn_before = (path, len(line))
                break
            record = parse(line)
            if record is None:
                report.broken = Break(path, number, "not a JSON record with a prev")
                return report
            if first and torn_before is not None:
                problem = _torn_accounted(record, torn_before[1])
                if problem:
                    report.broken = Break(path, number, problem)
                    return report
                report.notes.append(
                    f"{torn_before[0].name}: a torn last line ({torn_before[1]} bytes), "
                    f"reported by {path.name}"
                )
                torn_before = None
            if record["prev"] != head:
                why = "prev does not match the line before it (changed, inserted or removed)"
                report.broken = Break(path, number, why)
                return report
            head, first = hash_of(line), False
            report.records += 1
    if torn_before is not None:
        report.notes.append(
            f"{torn_before[0].name}: a torn last line ({torn_before[1]} bytes): a crash; "
            "the writer's next start reports it"
        )
    return report


def _torn_accounted(record: dict[str, object], torn: int) -> str:
    """Why a file after a torn line does not account for it, or "" when it does."""
    if record.get("kind") != START or record.get("torn") != torn:
        return f"the file before ends in a torn line of {torn} bytes no start record reports"
    return ""


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line without its newline, whether it was whole) for every line."""
    with path.open("rb") as file:
        for number, raw in enumerate(file, 1):
            whole = raw.endswith(b"\n")
            yield number, raw[:-1] if whole else raw, whole

"""The audit log on a real directory: records, modes, the chain across rotation and restarts,
torn lines after a crash, losses written down, and the verifier's first break."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.audit import writer as writer_module
from gateway.audit.files import writers
from gateway.audit.record import GENESIS, hash_of
from gateway.audit.verify import verify_directory
from gateway.audit.writer import AuditLog, open_audit_log
from gateway.config.audit import Audit, FsyncPolicy
from gateway.model import Operation
from gateway.observe.events import AuditFile, AuditLost, Event, LookupAnswered
from gateway.shadow.pseudonym import Pseudonymiser, is_pseudonym

PNR = "0101601234"  # synthetic
KEY = bytes(range(32))


def lookup(pnr: str = PNR, user: str = "DEMO0001", customer: str = "0001") -> LookupAnswered:
    return LookupAnswered(
        "10.1.2.3", customer, user, pnr, "PRIV", Operation.LOOKUP, "all", "mainframe", "00"
    )


def settings(tmp_path: Path, **changes: object) -> Audit:
    values: dict[str, object] = {
        "directory": tmp_path / "audit",
        "key_file": tmp_path / "audit.key",
        "fsync": FsyncPolicy.EVERY,
    }
    return Audit(**{**values, **changes})  # type: ignore[arg-type]


def records(directory: Path) -> Iterator[dict[str, object]]:
    for files in writers(directory).values():
        for _, path in files:
            for line in path.read_bytes().splitlines():
                yield json.loads(line)


async def write(log: AuditLog, *events: LookupAnswered) -> None:
    for event in events:
        log.on_event(event)
    await log.aclose()


async def started(audit: Audit, seen: list[Event] | None = None, **kwargs: object) -> AuditLog:
    sink = seen if seen is not None else []
    log = AuditLog(audit, Pseudonymiser(KEY), sink.append, host="h", **kwargs)  # type: ignore[arg-type]
    await log.start()
    return log


async def test_a_lookup_becomes_one_chained_record_with_the_pnr_pseudonymised(
    tmp_path: Path,
) -> None:
    """Who, whom (as a keyed pseudonym), when, from where, through which side, with what answer."""
    audit = settings(tmp_path)
    await write(await started(audit), lookup())
    start, record = records(audit.directory)
    assert start["kind"] == "start" and start["reason"] == "start" and start["prev"] == GENESIS
    assert record["pnr"] == Pseudonymiser(KEY).pnr(PNR) and is_pseudonym(str(record["pnr"]))
    expected = {"kind": "lookup", "customer": "0001", "user": "DEMO0001", "source": "10.1.2.3"}
    assert expected.items() <= record.items()
    assert (record["transaction"], record["operation"], record["route"]) == (
        "PRIV",
        "lookup",
        "all",
    )
    assert (record["side"], record["fejlnr"]) == ("mainframe", "00")
    assert str(record["time"]).endswith("Z")
    assert PNR not in (audit.directory / "audit-h-0.000001.jsonl").read_text()


async def test_files_are_0600_in_a_0700_directory_and_the_key_is_made_0600(
    tmp_path: Path,
) -> None:
    """The log and its key hold personal data and a secret: owner only."""
    audit = settings(tmp_path)
    log = await open_audit_log(audit, lambda _event: None)
    await write(log, lookup())
    assert stat.S_IMODE(audit.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(audit.key_file.stat().st_mode) == 0o600
    for path in audit.directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


async def test_rotation_chains_each_file_to_the_one_before(tmp_path: Path) -> None:
    """A file that reaches rotate_size is closed; the next one's start record chains to it."""
    audit = settings(tmp_path, rotate_size=1024)
    seen: list[Event] = []
    await write(await started(audit, seen), *(lookup() for _ in range(20)))
    files = writers(audit.directory)["audit-h-0"]
    assert len(files) > 2
    first_line_of_second = files[1][1].read_bytes().splitlines()[0]
    last_line_of_first = files[0][1].read_bytes().splitlines()[-1]
    assert json.loads(first_line_of_second)["prev"] == hash_of(last_line_of_first)
    assert json.loads(first_line_of_second)["reason"] == "rotate"
    [report] = verify_directory(audit.directory)
    assert report.broken is None and report.records == 20 + len(files)
    closed = [e for e in seen if isinstance(e, AuditFile) and e.action == "closed"]
    assert closed[-1].head == hash_of(files[-1][1].read_bytes().splitlines()[-1])


async def test_a_restart_continues_the_chain_in_a_new_file(tmp_path: Path) -> None:
    """The restarted process takes its slot again and chains to the last line on disk."""
    audit = settings(tmp_path)
    await write(await started(audit), lookup())
    await write(await started(audit), lookup())
    files = writers(audit.directory)["audit-h-0"]
    assert [n for n, _ in files] == [1, 2]
    restart = json.loads(files[1][1].read_bytes().splitlines()[0])
    assert restart["reason"] == "restart" and restart["torn"] == 0
    [report] = verify_directory(audit.directory)
    assert report.broken is None and report.records == 4


async def test_processes_at_once_write_files_of_their_own(tmp_path: Path) -> None:
    """Two live writers on one host and directory never share a file: each has its own slot."""
    audit = settings(tmp_path)
    one, two = await started(audit), await started(audit)
    assert (one.writer, two.writer) == ("audit-h-0", "audit-h-1")
    await write(one, lookup())
    await write(two, lookup())
    assert [r.broken for r in verify_directory(audit.directory)] == [None, None]


async def test_a_torn_last_line_is_reported_and_the_chain_goes_on(tmp_path: Path) -> None:
    """A crash mid-write leaves bytes without a newline: the restart reports them (event and
    start record), they stay outside the chain, and the verifier accepts them as accounted."""
    audit = settings(tmp_path)
    await write(await started(audit), lookup())
    first = audit.directory / "audit-h-0.000001.jsonl"
    with first.open("ab") as file:
        file.write(b'{"time":"2026-')
    [before] = verify_directory(audit.directory)
    assert before.broken is None and "torn last line" in before.notes[0]
    seen: list[Event] = []
    await write(await started(audit, seen), lookup())
    assert any(isinstance(e, AuditFile) and e.action == "torn" for e in seen)
    restart = json.loads((audit.directory / "audit-h-0.000002.jsonl").read_bytes().splitlines()[0])
    assert restart["torn"] == len(b'{"time":"2026-')
    [after] = verify_directory(audit.directory)
    assert after.broken is None and after.records == 4, after


async def test_a_full_buffer_is_counted_and_written_down(tmp_path: Path) -> None:
    """Beyond max_pending a lookup is dropped, never waited for: an AuditLost event, and a
    lost record in the chain, say how many."""
    audit = settings(tmp_path)
    seen: list[Event] = []
    log = await started(audit, seen, max_pending=0)
    await write(log, lookup(), lookup(), lookup())
    lost = [r for r in records(audit.directory) if r["kind"] == "lost"]
    assert lost == [{**lost[0], "reason": "buffer_full", "count": 3}]
    assert [(e.reason, e.count) for e in seen if isinstance(e, AuditLost)] == [("buffer_full", 3)]


async def test_a_failed_write_is_counted_and_a_new_file_carries_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk refuses once (a fault injected into os.write): that batch is lost and counted,
    the next write opens a new file (recover) with a lost record, and the chain is whole."""
    audit = settings(tmp_path)
    seen: list[Event] = []
    log = await started(audit, seen)
    real_write, failures = os.write, [OSError(errno.ENOSPC, "No space left on device")]

    met = threading.Event()

    def failing(fd: int, data: bytes) -> int:
        if failures:
            met.set()
            raise failures.pop()
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing)
    log.on_event(lookup())
    await asyncio.to_thread(met.wait)  # the writer's thread met the fault with that lookup
    await write(log, lookup())
    kinds = [(r["kind"], r.get("reason")) for r in records(audit.directory)]
    assert kinds == [
        ("start", "start"),
        ("start", "recover"),
        ("lost", "write_error"),
        ("lookup", None),
    ]
    assert any(isinstance(e, AuditLost) and e.reason == "write_error" for e in seen)
    [report] = verify_directory(audit.directory)
    assert report.broken is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda lines: lines[:1] + lines[2:], "prev does not match"),
        (lambda lines: [lines[0], lines[1].replace(b'"00"', b'"01"'), *lines[2:]], "prev does"),
        (lambda lines: [lines[0], b"not json", *lines[1:]], "not a JSON record"),
    ],
    ids=["removed", "changed", "inserted"],
)
async def test_verify_reports_the_first_break(tmp_path: Path, change: object, reason: str) -> None:
    """A removed, changed or inserted line breaks the chain where it is."""
    audit = settings(tmp_path)
    await write(await started(audit), lookup(), lookup(), lookup())
    path = audit.directory / "audit-h-0.000001.jsonl"
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join(change(lines)) + b"\n")  # type: ignore[operator]
    [report] = verify_directory(audit.directory)
    assert report.broken is not None and reason in report.broken.reason
    assert report.broken.line in (2, 3)


async def test_a_torn_line_nobody_reports_is_a_break(tmp_path: Path) -> None:
    """Bytes cut from the end of a file that a later file follows were not a crash's."""
    audit = settings(tmp_path)
    await write(await started(audit), lookup())
    await write(await started(audit), lookup())
    first = audit.directory / "audit-h-0.000001.jsonl"
    first.write_bytes(first.read_bytes()[:-5])
    [report] = verify_directory(audit.directory)
    assert report.broken is not None and "torn line" in report.broken.reason


class _FailingOnce(Pseudonymiser):
    """A fault injected into the writer's own step (as a bug would raise)."""

    def __init__(self, key: bytes, met: threading.Event) -> None:
        super().__init__(key)
        self.met = met

    def pnr(self, pnr: str) -> str:
        if not self.met.is_set():
            self.met.set()
            raise RuntimeError("injected")
        return super().pnr(pnr)


async def test_a_bug_in_the_writer_loses_that_tick_counted_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    """An exception in a tick is counted as lost lookups; the next lookup is written in a new
    file that chains on, so the thread outlives its own bugs."""
    audit = settings(tmp_path)
    seen: list[Event] = []
    met = threading.Event()
    log = AuditLog(audit, _FailingOnce(KEY, met), seen.append, host="h")
    await log.start()
    log.on_event(lookup())
    await asyncio.to_thread(met.wait)
    await write(log, lookup())
    kinds = [(r["kind"], r.get("reason")) for r in records(audit.directory)]
    assert kinds == [
        ("start", "start"),
        ("start", "recover"),
        ("lost", "write_error"),
        ("lookup", None),
    ]
    assert [e.detail for e in seen if isinstance(e, AuditLost)] == ["RuntimeError: injected"]
    [report] = verify_directory(audit.directory)
    assert report.broken is None


_WRITER = """
import asyncio, sys
from pathlib import Path
from gateway.audit.writer import AuditLog
from gateway.config.audit import Audit, FsyncPolicy
from gateway.model import Operation
from gateway.observe.events import LookupAnswered
from gateway.shadow.pseudonym import Pseudonymiser

async def main() -> None:
    audit = Audit(Path(sys.argv[1]), Path(sys.argv[2]), FsyncPolicy.EVERY)
    log = AuditLog(audit, Pseudonymiser(bytes(range(32))), lambda _e: None, host="h")
    await log.start()
    event = LookupAnswered("10.0.0.1", "0001", "U", "0101601234", "PRIV",
                           Operation.LOOKUP, "all", "mainframe", "00")
    sent = 0
    while True:
        log.on_event(event)
        sent += 1
        if sent == 200:
            print("sent", flush=True)
        await asyncio.sleep(0.001)

asyncio.run(main())
"""


async def test_a_killed_writer_is_followed_by_a_whole_chain(tmp_path: Path) -> None:
    """SIGKILL mid-stream (no shutdown, no final fsync): the next process takes the slot back
    and goes on from the last whole line on disk; the chain verifies."""
    audit = settings(tmp_path)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITER, str(audit.directory), str(audit.key_file),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert await process.stdout.readline() == b"sent\n"
    process.kill()
    await process.wait()
    await write(await started(audit), lookup())
    files = writers(audit.directory)["audit-h-0"]
    assert len(files) == 2
    [report] = verify_directory(audit.directory)
    assert report.broken is None and report.records >= 3


async def test_a_disk_that_keeps_refusing_leaves_no_empty_files_and_a_whole_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes fail for a while (a fault injected into os.write): a file opened meanwhile whose
    start record could not be written is removed again, every lookup in between is counted,
    and once the disk takes writes the chain goes on, the loss written into it."""
    monkeypatch.setattr(writer_module, "RETRY_AFTER_S", 0.0)  # retry at once: no waiting
    audit = settings(tmp_path)
    seen: list[Event] = []
    log = await started(audit, seen)
    real_write, broken, hits = os.write, threading.Event(), threading.Semaphore(0)

    def failing(fd: int, data: bytes) -> int:
        if broken.is_set():
            hits.release()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing)
    broken.set()
    log.on_event(lookup())
    await asyncio.to_thread(hits.acquire)  # the lookup's write failed: the file is given up
    log.on_event(lookup())
    await asyncio.to_thread(hits.acquire)  # a new file's start record failed too
    broken.clear()
    await write(log, lookup())
    files = writers(audit.directory)["audit-h-0"]
    assert all(path.stat().st_size > 0 for _, path in files)
    kinds = [(r["kind"], r.get("reason"), r.get("count")) for r in records(audit.directory)]
    assert kinds == [
        ("start", "start", None),
        ("start", "recover", None),
        ("lost", "write_error", 2),
        ("lookup", None, None),
    ]
    [report] = verify_directory(audit.directory)
    assert report.broken is None


@pytest.mark.parametrize("policy", list(FsyncPolicy))
async def test_every_fsync_policy_writes_a_whole_chain(tmp_path: Path, policy: FsyncPolicy) -> None:
    """The policy changes when the disk is asked to keep the lines, never what is written."""
    audit = settings(tmp_path, fsync=policy, fsync_interval=0.001, rotate_size=2048)
    await write(await started(audit), *(lookup() for _ in range(12)))
    kinds = [r["kind"] for r in records(audit.directory)]
    assert kinds.count("lookup") == 12 and "lost" not in kinds
    [report] = verify_directory(audit.directory)
    assert report.broken is None and report.files > 1


def test_the_event_that_carries_a_pnr_never_shows_it() -> None:
    """LookupAnswered holds the PNR for the audit log only: its repr (tracebacks, debuggers,
    a careless log line) leaves it out."""
    assert PNR not in repr(lookup()) and PNR not in str(lookup())

"""Run every fuzz target under libFuzzer and report each one's executions and outcome.

Each target runs in a process of its own (:mod:`.worker`) with a number of executions, a time
limit per execution (a call that outlives it is a hang, and a failure) and a memory limit. Its
seeds are written afresh from :mod:`.seeds`; the corpus libFuzzer grows is kept under
``var/fuzz/<target>/corpus`` for the next run; a crash or hang leaves its input as
``var/fuzz/<target>/crash-*`` or ``timeout-*``, which ``python -m cpr_devtools.fuzz.worker
TARGET FILE`` replays.
"""

from __future__ import annotations

import enum
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cpr_devtools.fuzz import seeds
from gateway.codec.headers import LOOKUP_LENGTH, MAX_ANSWER_LENGTH
from gateway.codec.proxy_protocol import FIXED_LENGTH, MAX_BLOCK_LENGTH

#: libFuzzer's exit codes, set explicitly so that an outcome never depends on its defaults.
_ERROR_EXIT, _TIMEOUT_EXIT = 77, 70
#: A call that takes a second is a thousand times the slowest target's usual call (the
#: loader's few milliseconds): a hang, not a slow input.
TIME_LIMIT_S = 1
#: Memory a target process may use before libFuzzer calls it a crash (out-of-memory).
RSS_LIMIT_MB = 2048
_DONE = re.compile(rb"Done (\d+) runs in (\d+) second")
_PROGRESS = re.compile(rb"^#(\d+)\s", re.MULTILINE)
_COVERAGE = re.compile(rb"cov: (\d+)")


@dataclass(frozen=True, slots=True)
class Spec:
    """One target: its longest input, its share of a full run, and its seeds."""

    max_len: int
    runs: int
    seeds: Callable[[Path], list[bytes]]


def _routing_seeds(repo: Path) -> list[bytes]:
    return seeds.routing_documents(repo / "routing.yaml", repo / "docs")


def _proxy_seeds(_repo: Path) -> list[bytes]:
    return seeds.proxy_headers()


#: The targets and a full run's executions: 10**6 together. The loader's executions are fewer
#: because each parses a YAML document of up to a few kilobytes (milliseconds, not microseconds).
SPECS: dict[str, Spec] = {
    # Two records and the slicing byte: anything longer is refused at byte 40 anyway.
    "framer": Spec(2 * LOOKUP_LENGTH + 1, 300_000, lambda _repo: seeds.requests()),
    # The longest answer the spec allows, and the selector byte.
    "answers": Spec(MAX_ANSWER_LENGTH + 1, 300_000, lambda _repo: seeds.answers()),
    # The shipped routing.yaml with room to grow.
    "routing": Spec(8192, 100_000, _routing_seeds),
    # The longest header accepted, what follows it, and the slicing byte.
    "proxy": Spec(
        FIXED_LENGTH + MAX_BLOCK_LENGTH + 64, 300_000, lambda _repo: seeds.proxy_headers()
    ),
}


class Outcome(enum.StrEnum):
    """How a target's run ended."""

    OK = "ok"
    CRASH = "crash"
    HANG = "hang"
    ERROR = "error"  # the worker did not run (a missing atheris, a bad flag)


@dataclass(frozen=True, slots=True)
class Result:
    """One target's run: executions done, wall time, coverage reached, and how it ended."""

    target: str
    executions: int
    seconds: float
    coverage: int
    outcome: Outcome
    #: The input that crashed or hung, when there was one.
    artifact: Path | None
    #: The end of the worker's output when it did not end well.
    detail: str = ""


def run_target(name: str, runs: int, work: Path, repo: Path, spec: Spec | None = None) -> Result:
    """Fuzz ``name`` for ``runs`` executions; seeds and corpus under ``work/name``.

    ``name`` is one of :data:`SPECS`, or ``module:attribute`` naming what makes a target
    (given with its ``spec``): how the tests show that a crash and a hang are caught.
    """
    spec = spec or SPECS[name]
    directory = work / name.replace(":", "-")
    corpus, seed_dir = directory / "corpus", directory / "seeds"
    corpus.mkdir(parents=True, exist_ok=True)
    _write_seeds(seed_dir, spec.seeds(repo))
    argv = [
        sys.executable, "-m", "cpr_devtools.fuzz.worker", name,
        f"-runs={runs}", f"-max_len={spec.max_len}", f"-timeout={TIME_LIMIT_S}",
        f"-rss_limit_mb={RSS_LIMIT_MB}", f"-error_exitcode={_ERROR_EXIT}",
        f"-timeout_exitcode={_TIMEOUT_EXIT}", f"-artifact_prefix={directory}/",
        str(corpus), str(seed_dir),
    ]  # fmt: skip
    before = set(directory.glob("crash-*")) | set(directory.glob("timeout-*"))
    began = time.monotonic()
    done = subprocess.run(argv, capture_output=True, check=False, cwd=directory)
    seconds = time.monotonic() - began
    output = done.stdout + done.stderr
    (directory / "last-run.log").write_bytes(output)
    artifacts = sorted((set(directory.glob("crash-*")) | set(directory.glob("timeout-*"))) - before)
    return Result(
        name,
        _executions(output),
        seconds,
        _coverage(output),
        _outcome(done.returncode, output),
        artifacts[0] if artifacts else None,
        "" if done.returncode == 0 else _tail(output),
    )


def _write_seeds(directory: Path, inputs: list[bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    for number, data in enumerate(inputs):
        (directory / f"seed-{number:04d}").write_bytes(data)


def _outcome(code: int, output: bytes) -> Outcome:
    if code == 0 and _DONE.search(output):
        return Outcome.OK
    if code == _TIMEOUT_EXIT or b"libFuzzer: timeout" in output:
        return Outcome.HANG
    if code == _ERROR_EXIT or b"ERROR: libFuzzer" in output:
        return Outcome.CRASH
    return Outcome.ERROR


def _executions(output: bytes) -> int:
    """Executions done: libFuzzer's closing count, or its last progress line's."""
    done = _DONE.search(output)
    if done:
        return int(done.group(1))
    progress = _PROGRESS.findall(output)
    return int(progress[-1]) if progress else 0


def _coverage(output: bytes) -> int:
    found = _COVERAGE.findall(output)
    return int(found[-1]) if found else 0


def _tail(output: bytes, lines: int = 25) -> str:
    return "\n".join(output.decode(errors="replace").splitlines()[-lines:])


def report_line(result: Result) -> str:
    """One line per target for the terminal and docs/fuzzing.md."""
    line = (
        f"{result.target:8} {result.executions:>9,} executions  {result.seconds:7.1f} s"
        f"  cov {result.coverage:4}  {result.outcome.value}"
    )
    if result.artifact is not None:
        line += f"  input: {result.artifact}"
    return line

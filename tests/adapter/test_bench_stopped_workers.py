"""cpr_bench.worker_split stops the workers it does not measure for a window and always
continues them after it: a real child process, its state read from /proc."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpr_bench.worker_split import stopped


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _until(pid: int, wanted: set[str]) -> str:
    """The process's state once the kernel has delivered the signal (it is asynchronous)."""
    for _ in range(500):
        state = _state(pid)
        if state in wanted:
            return state
        time.sleep(0.01)
    return _state(pid)


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_a_stopped_worker_runs_again_after_the_window(child: subprocess.Popen[bytes]) -> None:
    with stopped([child.pid]):
        assert _until(child.pid, {"T"}) == "T"
    assert _until(child.pid, {"S", "R"}) in {"S", "R"}


def test_a_failed_window_still_continues_the_worker(child: subprocess.Popen[bytes]) -> None:
    with pytest.raises(RuntimeError), stopped([child.pid]):
        assert _until(child.pid, {"T"}) == "T"
        raise RuntimeError("the window failed")
    assert _until(child.pid, {"S", "R"}) in {"S", "R"}

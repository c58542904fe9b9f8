"""`python -m cpr_bench.breakdown --workers N`: only where whole processes are compared (an
A/B with --against, or --measure-only); the profiled and accounted runs read one process."""

from __future__ import annotations

import pytest

from cpr_bench.breakdown import main


@pytest.mark.parametrize(
    "argv",
    [
        ["--workers", "2"],
        ["--workers", "2", "--against", "/tmp", "--account"],
        ["--workers", "2", "--measure-only", "--calls"],
        ["--workers", "0", "--measure-only"],
    ],
)
def test_workers_are_refused_where_one_process_is_read(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2

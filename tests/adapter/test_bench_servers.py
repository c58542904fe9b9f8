"""cpr_bench.servers: a benchmark server started with environment of its own (how the
breakdown's --against runs a gateway from another source tree), stopped at the end."""

from __future__ import annotations

import sys
from pathlib import Path

from cpr_bench.servers import Servers, free_port

_LISTEN_AND_SAY = (
    "import os, signal, socket, sys\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "print(os.environ.get('CPR_BENCH_MARK', 'unset'), flush=True)\n"
    "signal.sigwait([signal.SIGTERM])\n"
)


async def test_a_server_gets_the_environment_it_is_given_and_no_other_does(
    tmp_path: Path,
) -> None:
    servers = Servers(tmp_path)
    given, plain = free_port(), free_port()
    argv = [sys.executable, "-c", _LISTEN_AND_SAY]
    try:
        marked = await servers.start("marked", [*argv, str(given)], given, [(given, None)],
                                     {"CPR_BENCH_MARK": "the other tree"})  # fmt: skip
        unmarked = await servers.start("unmarked", [*argv, str(plain)], plain, [(plain, None)])
    finally:
        await servers.aclose()
    assert marked.log.read_text().strip() == "the other tree"
    assert unmarked.log.read_text().strip() == "unset"

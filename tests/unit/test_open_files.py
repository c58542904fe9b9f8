"""The open-file limit: what a configuration needs, and the soft limit raised towards it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

from gateway.backends.legacy_config import LegacyBackendConfig
from gateway.config.schema import Admin, GatewayConfig, Limits, Listen
from gateway.runtime.open_files import MARGIN, needed_for


def test_needed_counts_clients_backend_connections_and_a_margin() -> None:
    """Every client connection, every connection the legacy backends allow, and the margin."""
    mainframe = replace(
        LegacyBackendConfig("mainframe", "127.0.0.1", 5001, None), max_connections=40
    )
    v6 = replace(mainframe, name="v6", max_connections=24)
    config = GatewayConfig(
        Listen("127.0.0.1", 0, None),
        Admin(),
        Limits(max_connections=1000),
        {"mainframe": mainframe, "v6": v6},
        (),
    )
    assert needed_for(config) == 1000 + 40 + 24 + MARGIN


def _in_a_child(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter (limits are per process) and return its lines."""
    prelude = "import resource\nfrom gateway.runtime.open_files import raise_open_files\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_the_soft_limit_is_raised_to_what_is_needed_within_the_hard_limit() -> None:
    """From a low soft limit: raised to the need when the hard limit allows, to the hard
    limit (and reported short) when it does not; never lowered."""
    code = (
        "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "a = raise_open_files(300)\n"
        "b = raise_open_files(200)\n"
        "c = raise_open_files(hard + 1 if hard != resource.RLIM_INFINITY else 2 ** 20)\n"
        "now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "finite = hard != resource.RLIM_INFINITY\n"
        "print(a.before, a.soft, a.short, b.soft, b.short, c.short == finite, now == c.soft)\n"
    )
    assert _in_a_child(code) == ["256", "300", "False", "300", "False", "True", "True"]

"""Which event loops the async tests run on.

Production runs on uvloop (:mod:`gateway.runtime.loops`), with ``CPR_GATEWAY_LOOP=asyncio`` as a
supported way back, so the adapter tier (real servers over real sockets and TLS) runs every
test on both loops; the unit tier, where the loop is incidental, runs on the default one.
The e2e tier starts real processes, which pick their loop as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from gateway.runtime.loops import loop_factory

_ADAPTER_TIER = Path(__file__).parent / "adapter"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Both loops for the adapter tier, the production default elsewhere."""
    if item.path.is_relative_to(_ADAPTER_TIER):
        return {"uvloop": loop_factory("uvloop"), "asyncio": loop_factory("asyncio")}
    return {"default": loop_factory()}

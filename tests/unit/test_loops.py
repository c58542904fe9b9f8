"""runtime.loops: every process's event loop, uvloop unless CPR_GATEWAY_LOOP says asyncio."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from gateway.runtime.loops import LOOP_ENV, chosen_loop, run


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOOP_ENV, raising=False)
    assert chosen_loop() == "uvloop"
    assert run(_loop_type()) is uvloop.Loop


def test_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOP_ENV, " Asyncio ")
    assert chosen_loop() == "asyncio"
    assert not issubclass(run(_loop_type()), uvloop.Loop)


def test_an_unknown_loop_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOP_ENV, "trio")
    with pytest.raises(
        ValueError, match="CPR_GATEWAY_LOOP='trio': expected one of uvloop, asyncio"
    ):
        chosen_loop()

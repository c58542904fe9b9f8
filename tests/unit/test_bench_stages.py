"""cpr_bench.stages: sampled stacks sorted into a lookup's stages; and the in-memory TLS
handshake floor the breakdown reads them beside. The stacks are shaped as py-spy's raw output
of a gateway worker (outermost frame first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpr_bench.stages import GC, IDLE, OTHER, STAGES, parse_raw, stage_of, top_frames
from cpr_bench.tls_floor import measure
from cpr_devtools.pki import ensure_dev_pki


def _stack(*frames: str) -> str:
    return ";".join(frames)


_ROOT = _stack("<module> (cli.py:9)", "run_forever (loop.c:1)", "uv_run", "Handle__run (loop.c:2)")
_TASK = _stack(_ROOT, "OneRequest._answer (/src/gateway/server/connection.py:197)")
_DISPATCH = _stack(
    _TASK,
    "_Client.answer (/src/gateway/server/tcp.py:242)",
    "Dispatcher.handle (/src/gateway/dispatch.py:248)",
)


def test_the_innermost_frame_of_the_gateways_code_names_the_stage() -> None:
    """A log line written from dispatch is telemetry; a backend call is the upstream's."""
    log = _stack(
        _DISPATCH,
        "EventBus.emit (/src/gateway/observe/events.py:540)",
        "dumps (json/__init__.py:234)",
    )
    call = _stack(
        _DISPATCH,
        "LegacyBackend.call (/src/gateway/backends/legacy.py:115)",
        "open_connection (asyncio/streams.py:48)",
    )
    assert stage_of(log) == "telemetry"
    assert stage_of(call) == "upstream connect and relay"
    assert stage_of(_DISPATCH) == "dispatch"
    assert stage_of(f"{_DISPATCH};RouteTable.route (/src/gateway/routing.py:107)") == "routing"


def test_openssls_work_is_tls_wherever_it_is_called_from() -> None:
    """A handshake started by the upstream connect is a handshake; an answer's write is a record."""
    upstream = _stack(
        _DISPATCH,
        "LegacyBackend._connect (/src/gateway/backends/legacy.py:151)",
        "SSLProtocol__do_handshake (loop.c:3)",
        "SSLObject.do_handshake (ssl.py:979)",
    )
    write = f"{_TASK};SSLProtocol__write_appdata (loop.c:4);write (libc.so.6)"
    assert stage_of(upstream) == "TLS handshakes (both hops)"
    assert stage_of(write) == "TLS records and shutdown"


def test_waiting_collecting_and_the_bare_loop() -> None:
    assert stage_of(f"{_ROOT};uv__io_poll (libuv.so);epoll_pwait (libc.so.6)") == IDLE
    assert stage_of(f"{_TASK};gc_collect_main (gcmodule.c:1)") == GC
    accept = "run_forever (loop.c:1);uv__server_io (libuv.so);accept4 (libc.so.6)"
    assert stage_of(accept) == "accept and admission"
    assert stage_of(f"{_ROOT};uv__read (libuv.so);read (libc.so.6)") == OTHER


def test_raw_lines_are_counted_per_stage_and_the_top_frames_listed() -> None:
    lines = [
        f"{_DISPATCH};SessionBroker.find (/src/gateway/sessions/table.py:105) 3\n",
        f"{_ROOT};uv__io_poll (libuv.so);epoll_pwait (libc.so.6) 5\n",
        f"{_DISPATCH} 2\n",
        "not a sample line\n",
    ]
    counts = parse_raw(lines)
    assert counts == {"session": 3, IDLE: 5, "dispatch": 2}
    assert set(counts) - {IDLE} <= set(STAGES)
    top = top_frames(lines)
    assert (
        "session: 3 samples\n       3  SessionBroker.find (/src/gateway/sessions/table.py:105)"
        in top
    )


@pytest.mark.parametrize("resumed", [False, True], ids=["full", "resumed"])
def test_the_handshake_floor_is_measured_on_each_side(resumed: bool, tmp_path: Path) -> None:
    """Both sides complete real handshakes with the development certificates (resuming an
    earlier session upstream, when asked: measure checks that each one did); each side's
    CPU is its own (a positive figure; how large is the benchmark's business)."""
    pki = ensure_dev_pki(tmp_path, servers=("gateway", "emulator"))
    floor = measure(
        (pki.cert("gateway"), pki.key("gateway")),
        (pki.cert("emulator"), pki.key("emulator")),
        pki.ca_cert,
        count=5,
        resumed=resumed,
    )
    assert floor.server_us > 0
    assert floor.client_us > 0
    assert floor.both_us == floor.server_us + floor.client_us
    assert floor.resumed is resumed

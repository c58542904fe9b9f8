"""`cpr-gateway serve --workers N`: N processes share the client port and stop as one set."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from workers_harness import ROOT, logons_answered, serving_workers, wait_ready

from cpr_bench.measure import process_tree
from cpr_bench.servers import free_port, free_ports, http_get
from cpr_devtools.client import Endpoint, logon
from cpr_devtools.pki import ensure_dev_pki
from emulator_harness import DEMO_PRIV, running_emulator
from gateway.tls import client_context

ROUTING = """
version: 1
listen: {{host: 127.0.0.1, port: {port}, tls: null}}
admin: {{host: 127.0.0.1, port: {admin}}}
limits: {{read_timeout: 5s, max_connections: 64, grace_period: 1s}}
backends:
  mainframe: {{kind: legacy, address: "127.0.0.1:{backend}", tls: null, connect_timeout: 1s}}
routes:
  - {{name: all, match: {{}}, backend: mainframe, deadline: 5s}}
"""


def _free_ports(count: int) -> list[int]:
    """A client port, and the first of ``count`` consecutive admin ports."""
    return [free_port(), free_ports(count)]


def _listening_inode(port: int) -> str:
    """The socket inode listening on TCP ``port`` (IPv4), from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if int(local.rsplit(":", 1)[1], 16) == port and state == "0A":  # 0A: LISTEN
            return inode
    raise AssertionError(f"nothing listens on {port}")


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` has open."""
    links = (os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir())
    return {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}


def _mapped_files(pid: int) -> str:
    """What process ``pid`` has mapped: its shared libraries and extension modules."""
    return Path(f"/proc/{pid}/maps").read_text()


async def test_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    """Two workers answer on one port (each with its own admin port); SIGTERM stops all."""
    async with running_emulator(tls=False) as emu:
        port, admin = _free_ports(2)
        config = tmp_path / "routing.yaml"
        config.write_text(ROUTING.format(port=port, admin=admin, backend=emu.port))
        async with serving_workers(config, admin) as process:
            assert len(process_tree(process.pid)) == 3
            # The parent only supervises: no event loop, TLS or gateway code is resident in
            # it beside the workers' own copies (docs/benchmarks.md, P6).
            loaded = _mapped_files(process.pid)
            assert "uvloop" not in loaded and "_ssl" not in loaded and "_asyncio" not in loaded
            endpoint = Endpoint("127.0.0.1", port)
            tokens = [await logon(endpoint, DEMO_PRIV.who, DEMO_PRIV.password) for _ in range(6)]
            assert all(len(token) == 8 for token in tokens)


async def test_the_parent_sleeps_and_passes_a_reload_on_to_every_worker(tmp_path: Path) -> None:
    """Idle, the parent does not wake (it waits on its workers and its signals, no polling);
    a SIGHUP wakes it, reaches every worker as a reload, and the set keeps running."""
    async with running_emulator(tls=False) as emu:
        port, admin = _free_ports(2)
        config = tmp_path / "routing.yaml"
        config.write_text(ROUTING.format(port=port, admin=admin, backend=emu.port))
        async with serving_workers(config, admin) as process:
            before = _voluntary_switches(process.pid)
            await asyncio.sleep(1.0)
            # Polling ten times a second, as it once did, would be ten switches here.
            assert _voluntary_switches(process.pid) - before <= 1
            process.send_signal(signal.SIGHUP)
            for index in range(2):
                assert await _reloads_ok(admin + index) == 1.0
            assert process.returncode is None


def _voluntary_switches(pid: int) -> int:
    """How often process ``pid`` has given up its core to wait (its wake-ups)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc")


async def _reloads_ok(admin: int) -> float:
    """The worker's successful reloads, from its /metrics, once it has done one (10 s)."""
    for _ in range(100):
        _status, raw = await http_get(admin, "/metrics")
        for line in raw.decode().splitlines():
            if line.startswith('cpr_gateway_config_reloads_total{result="ok"}'):
                count = float(line.rsplit(" ", 1)[1])
                if count > 0:
                    return count
        await asyncio.sleep(0.1)
    return 0.0


async def test_a_broken_routing_file_fails_once_before_any_worker_starts(tmp_path: Path) -> None:
    """The parent validates first: one list of problems, exit 1, no worker started."""
    config = tmp_path / "routing.yaml"
    config.write_text(ROUTING.format(port=1, admin=0, backend=1).replace("5s}", "never}"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
        "--workers", "2", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    problems = err.decode().splitlines()
    assert sum("routes[0].deadline" in line for line in problems) == 1, problems
    assert not any("worker" in line for line in problems), problems


async def test_one_worker_dying_stops_the_set(tmp_path: Path) -> None:
    """When a worker exits, the parent stops the others and exits 1 for its supervisor."""
    async with running_emulator(tls=False) as emu:
        port, admin = _free_ports(2)
        config = tmp_path / "routing.yaml"
        config.write_text(ROUTING.format(port=port, admin=admin, backend=emu.port))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
            "--workers", "2", cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await wait_ready(admin)
        await wait_ready(admin + 1)
        workers = [pid for pid in process_tree(process.pid) if pid != process.pid]
        os.kill(workers[0], signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), 20) == 1
        with pytest.raises(ProcessLookupError):
            os.kill(workers[1], 0)  # the other worker was stopped (and reaped) too


async def test_the_workers_accept_on_the_one_socket_the_parent_bound(tmp_path: Path) -> None:
    """One accept queue for the set: both workers hold the same listening socket (not one
    SO_REUSEPORT socket each), and the parent has let go of its copy."""
    async with running_emulator(tls=False) as emu:
        port, admin = _free_ports(2)
        config = tmp_path / "routing.yaml"
        config.write_text(ROUTING.format(port=port, admin=admin, backend=emu.port))
        async with serving_workers(config, admin) as process:
            listening = _listening_inode(port)
            parent, *workers = process_tree(process.pid)
            assert parent == process.pid and len(workers) == 2
            assert all(listening in _socket_inodes(pid) for pid in workers)
            assert listening not in _socket_inodes(parent)


async def test_a_port_in_use_fails_once_before_any_worker_starts(tmp_path: Path) -> None:
    """The parent binds the client port: taken, it says so once and exits 1."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = tmp_path / "routing.yaml"
        config.write_text(ROUTING.format(port=port, admin=0, backend=1))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
            "--workers", "2", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    (line,) = err.decode().splitlines()
    assert line == f"listen: cannot listen on 127.0.0.1:{port}: Address already in use"


async def test_a_port_the_workers_hold_is_not_shared(tmp_path: Path) -> None:
    """A plain `serve` on a port the workers hold fails loudly instead of sharing it."""
    async with running_emulator(tls=False) as emu:
        port, admin = _free_ports(2)
        config = tmp_path / "routing.yaml"
        config.write_text(ROUTING.format(port=port, admin=admin, backend=emu.port))
        async with serving_workers(config, admin):
            other = tmp_path / "other.yaml"
            other.write_text(ROUTING.format(port=port, admin=0, backend=emu.port))
            lone = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "serve", "--config", str(other), cwd=ROOT,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _out, err = await asyncio.wait_for(lone.communicate(), 60)
            assert lone.returncode == 1
            assert b"cannot listen" in err


async def test_a_temp_directory_too_deep_for_unix_sockets_fails_once_before_any_worker(
    tmp_path: Path,
) -> None:
    """Workers share sessions over Unix sockets under $TMPDIR; a path too long to bind is
    said once by the parent, and no worker starts."""
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    config = tmp_path / "routing.yaml"
    config.write_text(ROUTING.format(port=free_port(), admin=0, backend=1))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
        "--workers", "2", cwd=ROOT, env={**os.environ, "TMPDIR": str(deep)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    (line,) = err.decode().splitlines()
    assert "socket paths would be" in line and "set TMPDIR" in line
    assert list(deep.iterdir()) == []  # nothing left behind


async def test_light_traffic_stays_on_the_eldest_worker(tmp_path: Path) -> None:
    """One client at a time over TLS: the eldest worker takes them and the younger rests
    (gateway.runtime.elders), where before each took about half. The younger may take one
    that the eldest left queued for two of its looks (a machine that stalled the eldest)."""
    pki = ensure_dev_pki(tmp_path, servers=("gateway",))
    async with running_emulator(tls=False) as emu:
        port, admin = _free_ports(2)
        config = tmp_path / "routing.yaml"
        routing = ROUTING.format(port=port, admin=admin, backend=emu.port)
        tls = f"{{cert: {pki.cert('gateway')}, key: {pki.key('gateway')}}}"
        config.write_text(routing.replace("tls: null}", f"tls: {tls}}}", 1))
        async with serving_workers(config, admin):
            endpoint = Endpoint("127.0.0.1", port, client_context(pki.ca_cert), "localhost")
            for _ in range(30):
                await logon(endpoint, DEMO_PRIV.who, DEMO_PRIV.password)
            eldest, younger = [await logons_answered(admin + index) for index in (0, 1)]
    assert eldest + younger == 30
    assert younger <= 2

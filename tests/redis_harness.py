"""A throwaway redis-server on a loopback port, which a test may stop, freeze and start again.

No persistence and no other clients: each server lives in a temporary directory
and dies with its test. A missing ``redis-server`` fails the test with a message
saying what to install (`make test` installs it); it is never skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from cpr_bench.servers import free_port
from cpr_devtools.redis_server import redis_argv

#: Seconds a starting server has to answer PING before the test fails.
_START_TIMEOUT_S = 20.0


@dataclass
class RedisServer:
    """One redis-server process; ``url`` stays the same across stop and start."""

    workdir: Path
    port: int
    #: The server's requirepass; clients from :meth:`client` use it.
    password: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        process = self.process = await asyncio.to_thread(self._spawn)
        async with asyncio.timeout(_START_TIMEOUT_S):
            while not await self._answers():
                if process.poll() is not None:
                    raise AssertionError(f"redis-server exited with {process.returncode}")
                await asyncio.sleep(0.02)

    def _spawn(self) -> subprocess.Popen[bytes]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is missing: apt-get install redis-server")
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = redis_argv(binary, self.port, self.workdir)
        if self.password is not None:
            argv += ["--requirepass", self.password]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL)

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGCONT)  # a frozen server cannot stop
        self.process.terminate()
        await asyncio.to_thread(self.process.wait)
        self.process = None

    def freeze(self) -> None:
        """Stop the process without closing its sockets: calls hang until :meth:`thaw`."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def client(self) -> Redis:
        return Redis.from_url(self.url, password=self.password)

    async def _answers(self) -> bool:
        client = self.client()
        try:
            return bool(await client.ping())
        except Exception:  # not up yet: any failure means "ask again"
            return False
        finally:
            await client.aclose()


@asynccontextmanager
async def running_redis(workdir: Path, password: str | None = None) -> AsyncIterator[RedisServer]:
    server = RedisServer(workdir, free_port(), password)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()

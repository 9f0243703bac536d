"""A real ``redis-server`` for the proxy tests: loopback, free port, killed at teardown.

Needs Debian's ``redis-server`` package (``.ci/run`` installs it).  A missing
binary fails the test with that instruction; it is never skipped.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` child process (no persistence, loopback only)."""

    def __init__(self, workdir: Path) -> None:
        if not Path(REDIS_SERVER).exists():
            pytest.fail("redis-server is not installed: apt-get install redis-server")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.log = workdir / "redis.log"
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", self.host,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(workdir),
                "--logfile", str(self.log),
                "--protected-mode", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis.Redis(
            host=self.host, port=self.port, socket_timeout=5, socket_connect_timeout=5
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                if self.client.ping():
                    return
            except redis.exceptions.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log.read_text() if self.log.exists() else ""
                self.stop()
                pytest.fail(f"redis-server did not start on port {self.port}:\n{log}")
            time.sleep(0.05)

    def keys(self) -> list[bytes]:
        """Every key in the server's database 0."""
        return list(self.client.keys("*"))

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections hang instead of failing."""
        self.proc.send_signal(signal.SIGSTOP)

    def stop(self) -> None:
        """Kill the server and reap it (works on a paused server too)."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def running_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """Body of a ``redis_server`` fixture: a fresh server, killed afterwards."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(workdir)
    try:
        yield server
    finally:
        server.stop()

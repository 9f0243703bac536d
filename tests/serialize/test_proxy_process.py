"""Proxy references across real interpreters: lazy resolution with no set-up, Redis, failures.

The receiving side is always a fresh ``python`` process that only imports
serdoctor: the payload alone tells it where the proxied objects are.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _redis import RedisServer, running_redis
from proxystore.connectors.file import FileConnector
from proxystore.connectors.redis import RedisConnector
from proxystore.store import Store

import serdoctor
from serdoctor.serialize import _envelope as env
from serdoctor.serialize.proxy._policy import ProxyPolicy
from serdoctor.serialize.proxy._redis import redis_store
from serdoctor.serialize.proxy._store import default_store

MB = 1 << 20

# A receiver: load the payload in argv[1], report laziness, resolve, report hash or error.
RECEIVER = textwrap.dedent(
    """
    import hashlib, json, sys, time
    import serdoctor
    from proxystore.proxy import is_resolved
    from serdoctor.errors import ProxyResolutionError

    data = open(sys.argv[1], "rb").read()
    start = time.monotonic()
    obj = serdoctor.loads(data)
    lazy = not is_resolved(obj["payload"])
    report = {"lazy": lazy, "loads": time.monotonic() - start}
    start = time.monotonic()
    try:
        first = obj["payload"][:1]
        report["first_byte"] = time.monotonic() - start
        report["sha256"] = hashlib.sha256(bytes(obj["payload"])).hexdigest()
    except ProxyResolutionError as exc:
        report["error"] = str(exc)
        report["elapsed"] = time.monotonic() - start
    print(json.dumps(report))
    """
)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, killed at teardown."""
    yield from running_redis(tmp_path)


def _receive(payload_file: Path, timeout: float = 90) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", RECEIVER, str(payload_file)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _key(data: bytes) -> str:
    header, _ = env.read_head(data)
    [entry] = header.extra["proxies"]
    return str(entry["key"])


@pytest.mark.timeout(180)
def test_receiver_resolves_lazily_with_no_set_up(tmp_path: Path) -> None:
    blob = os.urandom(100 * MB)
    s = serdoctor.Serializer(proxy=ProxyPolicy())  # the default FileConnector store
    with s.proxy_scope():
        data = s.dumps({"payload": blob, "note": "hi"})
        assert len(data) < 2048
        store_dir = default_store().connector.store_dir
        assert len(os.listdir(store_dir)) == 2  # the object and its .ready marker
        (tmp_path / "payload").write_bytes(data)
        report = _receive(tmp_path / "payload")
    assert report["lazy"] is True
    assert report["sha256"] == hashlib.sha256(blob).hexdigest()
    assert os.listdir(store_dir) == []  # the scope evicted it


@pytest.mark.timeout(300)
def test_redis_round_trips_100_mb_between_two_processes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    blob = os.urandom(100 * MB)
    s = serdoctor.Serializer(
        proxy=ProxyPolicy(store=redis_store(redis_server.host, redis_server.port))
    )
    # The peer loads our object, sends back its reversal through the same Redis
    # (its own policy, its own scope), and evicts when we say we are done.
    peer = textwrap.dedent(
        f"""
        import sys, serdoctor
        from serdoctor.serialize.proxy._policy import ProxyPolicy
        from serdoctor.serialize.proxy._redis import redis_store
        store = redis_store("127.0.0.1", {redis_server.port})
        s = serdoctor.Serializer(proxy=ProxyPolicy(store=store))
        obj = s.loads(open(sys.argv[1], "rb").read())
        reply = bytes(obj["payload"])[::-1]
        with s.proxy_scope():
            open(sys.argv[2], "wb").write(s.dumps({{"payload": reply}}))
            print("ready", flush=True)
            sys.stdin.readline()
        print("evicted", flush=True)
        """
    )
    with s.proxy_scope():
        data = s.dumps({"payload": blob})
        assert len(data) < 2048
        assert redis_server.keys() == [_key(data).encode()]
        (tmp_path / "out").write_bytes(data)
        proc = subprocess.Popen(
            [sys.executable, "-c", peer, str(tmp_path / "out"), str(tmp_path / "back")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdin is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
            reply_data = (tmp_path / "back").read_bytes()
            assert len(reply_data) < 2048 and len(redis_server.keys()) == 2
            assert bytes(s.loads(reply_data)["payload"]) == blob[::-1]
            proc.stdin.write("done\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "evicted"
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        assert redis_server.keys() == [_key(data).encode()]
    assert redis_server.keys() == []


def test_plain_proxystore_redis_store_works_too(tmp_path: Path, redis_server: RedisServer) -> None:
    store = Store("plain-redis", RedisConnector(redis_server.host, redis_server.port))
    s = serdoctor.Serializer(proxy=ProxyPolicy(store=store))
    blob = os.urandom(2 * MB)
    with s.proxy_scope():
        (tmp_path / "p").write_bytes(s.dumps({"payload": blob}))
        report = _receive(tmp_path / "p")
    assert report["sha256"] == hashlib.sha256(blob).hexdigest()
    assert redis_server.keys() == []


def test_redis_server_gone_is_a_clear_error(tmp_path: Path, redis_server: RedisServer) -> None:
    s = serdoctor.Serializer(
        proxy=ProxyPolicy(store=redis_store(redis_server.host, redis_server.port, name="gone"))
    )
    data = s.dumps({"payload": os.urandom(2 * MB)})
    (tmp_path / "p").write_bytes(data)
    redis_server.stop()
    report = _receive(tmp_path / "p")
    assert report["lazy"] is True
    assert "'gone'" in report["error"] and _key(data) in report["error"]
    assert f"127.0.0.1:{redis_server.port}" in report["error"]
    assert "unreachable" in report["error"]
    assert report["elapsed"] < 10


def test_frozen_redis_server_times_out_instead_of_hanging(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    store = redis_store(redis_server.host, redis_server.port, name="frozen", timeout=1.0)
    s = serdoctor.Serializer(proxy=ProxyPolicy(store=store))
    data = s.dumps({"payload": os.urandom(2 * MB)})
    (tmp_path / "p").write_bytes(data)
    redis_server.pause()  # accepts nothing, answers nothing
    report = _receive(tmp_path / "p", timeout=60)
    assert "'frozen'" in report["error"] and _key(data) in report["error"]
    assert "Timeout" in report["error"]
    assert report["elapsed"] < 10


def test_deleted_store_directory_is_a_clear_error_in_the_receiver(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    store = Store("short-lived", FileConnector(str(directory)), cache_size=0)
    s = serdoctor.Serializer(proxy=ProxyPolicy(store=store))
    data = s.dumps({"payload": os.urandom(2 * MB)})
    (tmp_path / "p").write_bytes(data)
    shutil.rmtree(directory)
    report = _receive(tmp_path / "p")
    assert report["lazy"] is True
    assert "'short-lived'" in report["error"] and _key(data) in report["error"]
    assert str(directory) in report["error"] and "removed" in report["error"]
    assert not directory.exists()  # the receiver did not recreate it


def test_default_store_is_removed_at_interpreter_exit(tmp_path: Path) -> None:
    sender = textwrap.dedent(
        """
        import sys, serdoctor
        from serdoctor.serialize.proxy._policy import ProxyPolicy
        s = serdoctor.Serializer(proxy=ProxyPolicy())
        data = s.dumps({"payload": b"x" * (2 << 20)})
        open(sys.argv[1], "wb").write(data)
        print(s.proxy.plan_after({"payload": b"x" * (2 << 20)}, 2 << 20).store.connector.store_dir)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", sender, str(tmp_path / "p")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    store_dir = proc.stdout.strip()
    assert store_dir and not os.path.exists(store_dir)
    report = _receive(tmp_path / "p")  # the sender is gone, and so is its store
    assert "does not exist any more" in report["error"]

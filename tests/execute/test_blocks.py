"""Blocks through LocalProvider: scale out under load, in when idle, fail clearly."""

from __future__ import annotations

import time

import pytest

from _procs import alive
from serdoctor.errors import BlockError
from serdoctor.execute import Executor, LocalProvider

FAST = {"heartbeat": 0.2, "heartbeat_threshold": 2.0, "scale_interval": 0.2}


def _wait(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.timeout(90)
def test_scale_out_under_load_then_in_when_idle() -> None:
    with Executor(
        workers=0, provider=LocalProvider(), init_blocks=0, min_blocks=0, max_blocks=2,
        workers_per_block=1, max_idletime=1.0, **FAST,
    ) as ex:  # fmt: skip
        assert ex.blocks() == []
        futures = [ex.submit(time.sleep, 0.5) for _ in range(8)]
        _wait(lambda: len(ex.blocks()) == 2, 20, "two blocks under load")
        assert [f.result(timeout=60) for f in futures] == [None] * 8
        assert {b.block_id for b in ex.pools() if b.state == "active"} == {"block-1", "block-2"}
        assert len(ex.blocks()) == 2  # never more than max_blocks
        _wait(lambda: all(b.state == "cancelled" for b in ex.blocks()), 20, "idle blocks cancelled")
        assert all("idle" in b.reason for b in ex.blocks())


@pytest.mark.timeout(60)
def test_blocks_that_fail_before_registering_fail_the_queued_tasks_with_their_words() -> None:
    provider = LocalProvider(worker_init="echo module python/3.11 not found >&2; exit 3")
    with Executor(workers=0, provider=provider, init_blocks=1, max_blocks=1,
                  max_block_failures=3, **FAST) as ex:  # fmt: skip
        future = ex.submit(abs, -1)
        with pytest.raises(BlockError) as info:
            future.result(timeout=40)
        message = str(info.value)
        assert "3 blocks failed in a row" in message
        assert "exit code 3" in message and "module python/3.11 not found" in message
        assert [b.state for b in ex.blocks()] == ["failed"] * 3
        with pytest.raises(BlockError, match="no more are submitted"):
            ex.submit(abs, -2)


@pytest.mark.timeout(60)
def test_shutdown_cancels_every_block_it_started() -> None:
    ex = Executor(workers=0, provider=LocalProvider(), init_blocks=2, max_blocks=2,
                  workers_per_block=1, **FAST)  # fmt: skip
    assert ex.submit(abs, -7).result(timeout=30) == 7
    _wait(lambda: len([p for p in ex.pools() if p.state == "active"]) == 2, 20, "two pools")
    pids = [p.pid for p in ex.pools()]
    ex.shutdown()
    assert all(b.state == "cancelled" for b in ex.blocks())
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "a block's pool outlived shutdown"
        time.sleep(0.05)


def test_bad_block_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="min_blocks <= max_blocks"):
        Executor(workers=0, provider=LocalProvider(), min_blocks=3, max_blocks=1)

"""The executor's blocks as real Slurm jobs: scale out and in, bad partition, scancel, shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _slurm import SlurmCluster

from serdoctor.errors import BlockError, ManagerLost
from serdoctor.execute import Executor, SlurmProvider

pytestmark = pytest.mark.timeout(120)
FAST = {"heartbeat": 0.2, "heartbeat_threshold": 3.0, "scale_interval": 0.5}


def _wait(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _queue_empty(slurm: SlurmCluster) -> None:
    _wait(lambda: slurm.queue() == [], 20, f"jobs left in squeue: {slurm.queue()}")


def test_scale_out_from_zero_to_two_jobs_then_in(slurm_env: SlurmCluster) -> None:
    with Executor(
        workers=0, provider=SlurmProvider("debug", walltime="00:10:00"), init_blocks=0,
        min_blocks=0, max_blocks=2, workers_per_block=1, max_idletime=2.0, **FAST,
    ) as ex:  # fmt: skip
        futures = [ex.submit(time.sleep, 1.0) for _ in range(6)]
        _wait(lambda: len(ex.blocks()) == 2, 30, "two blocks submitted")
        assert all(b.job_id and b.job_id.isdigit() for b in ex.blocks())
        assert [f.result(timeout=90) for f in futures] == [None] * 6
        assert len(slurm_env.queue()) <= 2
        _wait(lambda: all(b.state == "cancelled" for b in ex.blocks()), 30, "idle jobs cancelled")
    _queue_empty(slurm_env)


def test_a_bad_partition_fails_the_queued_tasks_with_slurms_words(slurm_env: SlurmCluster) -> None:
    with Executor(workers=0, provider=SlurmProvider("no-such-partition"), init_blocks=1,
                  max_blocks=1, max_block_failures=2, **FAST) as ex:  # fmt: skip
        future = ex.submit(abs, -1)
        with pytest.raises(BlockError, match=r"(?i)invalid partition"):
            future.result(timeout=60)
        assert all(b.state == "refused" for b in ex.blocks())
    _queue_empty(slurm_env)


def test_scancel_of_a_block_mid_task_loses_or_retries_its_tasks(slurm_env: SlurmCluster) -> None:
    with Executor(workers=0, provider=SlurmProvider(walltime="00:10:00"), init_blocks=1,
                  max_blocks=1, workers_per_block=1, retries=1, **FAST) as ex:  # fmt: skip
        assert ex.submit(abs, -3).result(timeout=60) == 3
        (block,) = ex.blocks()
        slow = ex.submit(time.sleep, 3)
        time.sleep(0.5)
        subprocess.run(["scancel", block.job_id or ""], env=slurm_env.env, check=True, timeout=30)
        # the pool leaves (requeued) or is lost (ManagerLost); with retries it runs again
        with contextlib.suppress(ManagerLost):
            assert slow.result(timeout=90) is None
        _wait(lambda: any(b.state == "cancelled" for b in ex.blocks()), 30, "block seen cancelled")
    _queue_empty(slurm_env)


def test_shutdown_leaves_squeue_empty(slurm_env: SlurmCluster) -> None:
    ex = Executor(workers=0, provider=SlurmProvider(walltime="00:10:00"), init_blocks=2,
                  max_blocks=2, workers_per_block=1, **FAST)  # fmt: skip
    try:
        assert ex.submit(abs, -4).result(timeout=60) == 4
        _wait(lambda: len(slurm_env.queue()) == 2, 30, "two jobs")
    finally:
        ex.shutdown()
    _queue_empty(slurm_env)


_CLIENT = """
import time
from serdoctor.execute import Executor, SlurmProvider

ex = Executor(workers=0, provider=SlurmProvider(walltime="00:10:00"), init_blocks=1,
              max_blocks=1, workers_per_block=1, heartbeat=0.2, heartbeat_threshold=3.0,
              scale_interval=0.5)
ex.submit(abs, -1).result(timeout=60)
print("ready", flush=True)
ex.submit(time.sleep, 120)
time.sleep(120)
"""


def test_a_killed_client_leaves_no_job_running(slurm_env: SlurmCluster, tmp_path: Path) -> None:
    """SIGKILL the client mid-task: its block's pool loses the interchange and the job ends."""
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(_CLIENT))
    client = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
        env=slurm_env.env, start_new_session=True,
    )  # fmt: skip
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "ready"
        assert len(slurm_env.queue()) == 1
        os.kill(client.pid, signal.SIGKILL)  # the client alone: what it started must notice
        client.wait(10)
        start = time.monotonic()
        # heartbeat_threshold (3 s) for the pool to give up, then Slurm ends the job
        _wait(lambda: slurm_env.queue() == [], 30, f"jobs left in squeue: {slurm_env.queue()}")
        assert time.monotonic() - start < 30
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
        if client.stdout is not None:
            client.stdout.close()
        if slurm_env.queue():  # never leave a job for the next test
            slurm_env.run("scancel", *slurm_env.queue(), check=False)

"""A small run recorded through the real MonitorWriter, as the executor records one."""

from __future__ import annotations

from pathlib import Path

from serdoctor.errors import IncompatiblePythonError
from serdoctor.monitor import MonitorWriter


def record_run(db: Path, *, t0: float = 1_000_000.0) -> str:
    """Six tasks on two pools: four done (one after a retry), two failed by one cause."""
    w = MonitorWriter(db, executor={"workers": 2})
    w.pool_registered(
        "pool-a", host="node1", pid=101, python="3.11.7", env_digest="d1", workers=2, when=t0
    )
    w.pool_registered(
        "pool-b", host="node2", pid=202, python="3.12.1", env_digest="d2", workers=2, when=t0,
        mismatch="python 3.11 vs 3.12",
    )  # fmt: skip
    for task in range(6):
        w.task_submitted(task, "analysis.step", method="cloudpickle", payload_bytes=500, when=t0)
    t = t0 + 0.1
    for task in range(4):
        pool, worker = ("pool-a", f"w{task % 2}")
        w.try_sent(task, 0, pool=pool, method="cloudpickle", payload_bytes=500, when=t)
        w.task_status(task, "sent", pool=pool, when=t)
        w.try_started(task, 0, pool=pool, worker=worker, when=t + 0.01)
        w.task_status(task, "running", pool=pool, worker=worker, when=t + 0.01)
        if task == 3:
            w.try_ended(task, 0, exception=RuntimeError("worker 7 died"), when=t + 0.2)
            w.task_status(task, "retried", attempt=0, when=t + 0.2)
            w.try_sent(task, 1, pool=pool, method="cloudpickle", payload_bytes=500, when=t + 0.3)
            w.try_started(task, 1, pool=pool, worker="w1", when=t + 0.31)
            w.try_ended(task, 1, result_bytes=80, when=t + 0.5)
            w.task_status(task, "done", attempt=1, when=t + 0.5)
        else:
            w.try_ended(task, 0, result_bytes=80, when=t + 0.3)
            w.task_status(task, "done", when=t + 0.3)
        w.pool_heartbeat("pool-a", 2, when=t + 0.05 * task)
    for task in (4, 5):
        w.try_sent(task, 0, pool="pool-b", method="cloudpickle", payload_bytes=500, when=t)
        w.try_ended(
            task, 0,
            exception=IncompatiblePythonError(
                f"task {task}: by-value code from Python 3.11 cannot run on Python 3.12"
            ),
            when=t + 0.05,
        )  # fmt: skip
        w.task_status(task, "failed", when=t + 0.05)
    w.pool_heartbeat("pool-b", 0, when=t + 0.1)
    w.pool_lost("pool-b", when=t + 0.6)
    w.block_state("block-0", "running", provider="local", job_id="local-1", when=t0)
    w.close()
    return w.run_id

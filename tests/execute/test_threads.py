"""Numerical libraries' thread pools are shared out among a pool's workers."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from serdoctor.execute import Executor
from serdoctor.execute._pool import THREAD_VARS

FAST = {"heartbeat": 0.2, "heartbeat_threshold": 1.5}
CPUS = len(os.sched_getaffinity(0))


def _settings() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in THREAD_VARS}


def _blas_threads() -> tuple[int, int]:
    """The worker's OS threads before and after numpy (OpenBLAS) loads."""
    before = len(os.listdir("/proc/self/task"))
    import numpy

    numpy.ones((64, 64)) @ numpy.ones((64, 64))  # (OpenBLAS starts its pool at load)
    return before, len(os.listdir("/proc/self/task"))


@pytest.mark.timeout(60)
def test_local_workers_share_the_cpus_and_numpy_starts_no_more_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in THREAD_VARS:  # as on a machine where nobody set them
        monkeypatch.delenv(name, raising=False)
    each = str(max(1, CPUS // 2))
    with Executor(workers=2, **FAST) as ex:
        assert ex.submit(_settings).result(timeout=20) == dict.fromkeys(THREAD_VARS, each)
        before, after = ex.submit(_blas_threads).result(timeout=30)
        assert after - before == int(each) - 1  # OpenBLAS: its pool, less the calling thread
    assert all(name not in os.environ for name in THREAD_VARS)  # yours are left alone


@pytest.mark.timeout(60)
def test_a_setting_of_yours_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "5")  # in your environment
    with Executor(workers=2, worker_env={"OMP_NUM_THREADS": "3"}, **FAST) as ex:
        got = ex.submit(_settings).result(timeout=20)
    assert got["OMP_NUM_THREADS"] == "3" and got["MKL_NUM_THREADS"] == "5"
    assert got["OPENBLAS_NUM_THREADS"] == str(max(1, CPUS // 2))


@pytest.mark.timeout(60)
def test_a_pool_started_by_hand_shares_its_own_cpus() -> None:
    # pinned to one CPU (as a Slurm job's share would be): its one worker gets one thread
    with Executor(workers=0, **FAST) as ex:
        argv = shlex.split(ex.worker_command(workers=1))
        argv[0] = str(Path(sys.executable).parent / "ser-doctor")
        env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), *sys.path])
        pool = subprocess.Popen(
            ["taskset", "-c", "0", *argv], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            assert ex.submit(_settings).result(timeout=30) == dict.fromkeys(THREAD_VARS, "1")
        finally:
            pool.terminate()
            err = pool.communicate(timeout=10)[1]
        assert "Traceback" not in err

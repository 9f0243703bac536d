"""The fault suite: kill each part for real, check what the user sees, how long it took,
and that no process is left behind."""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from _procs import alive, workers_of
from serdoctor.errors import InterchangeLost, ManagerLost, WorkerLost
from serdoctor.execute import Executor

pytestmark = pytest.mark.timeout(60)
THRESHOLD = 1.5


def _kill_self(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(10)


def _segfault() -> None:
    ctypes.string_at(0)


def _exit(code: int) -> None:
    os._exit(code)


def _kill_once(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return "second try"


def _children(kind: str) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if any(kind in part for part in p.cmdline())
    ]


def _gone(pids: list[int], seconds: float) -> float:
    """Seconds until every pid has exited (fails after ``seconds``)."""
    start = time.monotonic()
    while True:
        running = [pid for pid in pids if alive(pid)]
        if not running:
            return time.monotonic() - start
        assert time.monotonic() - start < seconds, f"still running: {running}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("task", "arg", "words"),
    [
        (_kill_self, signal.SIGKILL, "killed by SIGKILL"),
        (_segfault, None, "killed by SIGSEGV"),
        (_exit, 3, "exited with code 3"),
    ],
)
def test_a_dying_worker_fails_its_task_with_worker_lost(
    executor: Executor, task: object, arg: object, words: str
) -> None:
    others = [executor.submit(time.sleep, 0.3) for _ in range(3)]
    start = time.monotonic()
    doomed = executor.submit(task, arg) if arg is not None else executor.submit(task)  # type: ignore[arg-type]
    with pytest.raises(WorkerLost, match=words) as info:
        doomed.result(timeout=20)
    assert time.monotonic() - start < 5
    assert "the worker was replaced" in str(info.value)
    assert [f.result(timeout=20) for f in others] == [None] * 3  # others unaffected
    assert executor.submit(abs, -5).result(timeout=20) == 5  # a replacement serves


def test_worker_lost_is_retried_within_the_budget(tmp_path: Path) -> None:
    with Executor(workers=1, retries=1, heartbeat=0.2, heartbeat_threshold=THRESHOLD) as ex:
        assert ex.submit(_kill_once, str(tmp_path / "once")).result(timeout=20) == "second try"


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_a_lost_pool_fails_its_tasks_with_manager_lost(how: str) -> None:
    # a pool process of its own (the embedded pool lives in the interchange's process)
    with Executor(workers=0, heartbeat=0.2, heartbeat_threshold=THRESHOLD) as ex:
        argv = shlex.split(ex.worker_command(workers=2))
        argv[0] = str(Path(sys.executable).parent / "ser-doctor")
        proc = subprocess.Popen(argv, start_new_session=True)
        try:
            ex.submit(abs, 1).result(timeout=30)
            pool = psutil.Process(proc.pid)
            victims = pool.children()
            assert len(victims) == 2
            futures = [ex.submit(time.sleep, 5) for _ in range(2)]
            time.sleep(0.3)  # they are on the pool now
            start = time.monotonic()
            os.kill(pool.pid, getattr(signal, how))
            for f in futures:
                with pytest.raises(ManagerLost, match="sent no heartbeat") as info:
                    f.result(timeout=20)
            took = time.monotonic() - start
            assert THRESHOLD - 0.3 <= took < THRESHOLD + 3, took  # from its last heartbeat
            assert pool.pid == int(str(info.value).split("(pid ")[1].split(")")[0])
        finally:
            proc.kill()
            proc.wait(10)
        # the pool's workers do not outlive it
        _gone([pool.pid, *[v.pid for v in victims]], 10)


def test_a_dead_interchange_fails_pending_futures_and_shutdown_returns() -> None:
    # (a slow heartbeat: the end of the socket pair to it, not a heartbeat, tells)
    ex = Executor(workers=1, heartbeat=5.0, heartbeat_threshold=30.0)
    ex.submit(abs, 1).result(timeout=20)
    (interchange,) = [p for p in _children("serdoctor.execute._interchange")
                      if p.parent().pid == os.getpid()]  # fmt: skip
    pool_pids = [p.pid for p in workers_of(interchange)]  # the local pool's workers
    assert len(pool_pids) == 1
    pending = [ex.submit(time.sleep, 5) for _ in range(3)]
    start = time.monotonic()
    interchange.kill()
    for f in pending:
        with pytest.raises(InterchangeLost, match="exited with code"):
            f.result(timeout=20)
    assert time.monotonic() - start < 2.0
    with pytest.raises(InterchangeLost):
        ex.submit(abs, 2)
    start = time.monotonic()
    ex.shutdown()
    assert time.monotonic() - start < 10
    _gone(pool_pids, THRESHOLD + 5)


def test_a_task_submitted_as_the_interchange_is_found_lost_fails_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Executor(workers=1, heartbeat=0.2, heartbeat_threshold=THRESHOLD) as ex:
        serialize = ex._dump

        def then_lost(task: object) -> object:  # the IO thread finds it lost, and sweeps
            frames = serialize(task)  # its tasks, after submit() checked and before the
            ex._broken = "the interchange (pid 1) exited with code -9"  # task is listed
            return frames

        monkeypatch.setattr(ex, "_dump", then_lost)
        future = ex.submit(abs, -1)
        with pytest.raises(InterchangeLost, match="exited with code -9"):
            future.result(timeout=5)
        assert not ex._tasks


def test_a_killed_client_leaves_no_process_behind(tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(
        textwrap.dedent("""
        import os, sys, time, psutil, serdoctor
        ex = serdoctor.Executor(workers=2, heartbeat=0.2, heartbeat_threshold=30)
        ex.submit(abs, 1).result(timeout=20)
        kids = psutil.Process().children(recursive=True)
        print(" ".join(str(k.pid) for k in kids), flush=True)
        ex.submit(time.sleep, 60)
        time.sleep(60)
    """)
    )
    client = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert client.stdout is not None
        pids = [int(p) for p in client.stdout.readline().split()]
        assert len(pids) >= 3  # the interchange and the local pool's two workers
        os.kill(client.pid, signal.SIGKILL)
        client.wait(10)
        # at once: the interchange sees its end of the socket pair to the client close
        # (not after heartbeat_threshold, 30 s here), and its workers die with it
        took = _gone(pids, 10)
        assert took < 3
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)

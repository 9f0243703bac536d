"""Pools started elsewhere: ``ser-doctor worker`` processes, late attach, another Python."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _other_python import OTHER

from serdoctor.errors import IncompatiblePythonError
from serdoctor.execute import Executor, PoolInfo

ROOT = Path(__file__).resolve().parents[2]
FAST = {"heartbeat": 0.2, "heartbeat_threshold": 1.5}


def _start(command: str, python_bin: Path | None = None) -> subprocess.Popen[str]:
    argv = shlex.split(command)
    if python_bin is not None:  # the same command, from another interpreter's venv
        argv[0] = str(python_bin / "ser-doctor")
    else:
        argv[0] = str(Path(sys.executable).parent / "ser-doctor")
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    return err


def _wait_pools(ex: Executor, n: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while len([p for p in ex.pools() if p.state != "lost"]) < n:
        assert time.monotonic() < deadline, ex.pools()
        time.sleep(0.05)


@pytest.mark.timeout(60)
def test_a_pool_started_by_hand_attaches_late_and_runs_waiting_tasks() -> None:
    with Executor(workers=0, **FAST) as ex:
        early = [ex.submit(pow, 2, i) for i in range(5)]  # no pool yet: they wait
        time.sleep(0.5)
        assert not any(f.done() for f in early)
        command = ex.worker_command(workers=2)
        assert command.startswith("ser-doctor worker tcp://127.0.0.1:")
        key_file = Path(shlex.split(command)[shlex.split(command).index("--key-file") + 1])
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        first, second = _start(command), _start(command)
        try:
            assert [f.result(timeout=30) for f in early] == [1, 2, 4, 8, 16]
            _wait_pools(ex, 2)
            pids = {ex.submit(os.getpid).result(timeout=20) for _ in range(20)}
            assert pids  # workers of either pool
            # one pool leaves (SIGTERM) with tasks queued: they finish on the other
            slow = [ex.submit(time.sleep, 0.2) for _ in range(8)]
            _stop(first)
            assert [f.result(timeout=30) for f in slow] == [None] * 8
            assert ex.submit(abs, -3).result(timeout=20) == 3
        finally:
            _stop(first)
            err = _stop(second)
        assert "Traceback" not in err


@pytest.mark.timeout(30)
def test_bad_worker_arguments_get_one_clear_line(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).parent / "ser-doctor")
    bad_key = tmp_path / "key"
    bad_key.write_text("nonsense")
    bad_key.chmod(0o600)
    deep_key = tmp_path / "deep-key"  # JSON nested past Python's recursion limit
    deep_key.write_text("[" * 100_000)
    deep_key.chmod(0o600)
    cases = [
        (["worker", "localhost:5000", "--key-file", str(bad_key)], "not an interchange address"),
        (["worker", "tcp://127.0.0.1:5000", "--key-file", str(tmp_path / "missing")],
         "cannot read key file"),
        (["worker", "tcp://127.0.0.1:5000", "--key-file", str(bad_key)],
         "not a serdoctor key file"),
        (["worker", "tcp://127.0.0.1:5000", "--key-file", str(deep_key)],
         "not a serdoctor key file"),
    ]  # fmt: skip
    for args, words in cases:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=20)
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "Traceback" not in proc.stderr


# -- a pool on another Python ------------------------------------------------------------


@pytest.mark.timeout(700)
def test_a_python_312_pool_gets_by_reference_tasks_and_by_value_ones_fail_clearly(
    other_python_bin: Path,
) -> None:
    with Executor(workers=0, grace=2.0, **FAST) as ex:
        pool = _start(ex.worker_command(workers=1), other_python_bin)
        try:
            with pytest.warns(RuntimeWarning, match=rf"python: {OTHER} \(pool\) vs "):
                _wait_pools(ex, 1)
            (info,) = ex.pools()
            assert info.python == OTHER
            # by reference: runs on the other Python (the worker reports its own version)
            assert ex.submit(platform.python_version).result(timeout=20) == OTHER
            # by value (a lambda): no pool on the client's Python -> a clear error, no hang
            start = time.monotonic()
            with pytest.raises(IncompatiblePythonError, match="cannot run on the attached pools"):
                ex.submit(lambda: 1).result(timeout=20)
            assert time.monotonic() - start < 2.0 + 3
        finally:
            _stop(pool)


@pytest.mark.timeout(700)
def test_on_mismatch_error_refuses_the_pool_with_the_reason(other_python_bin: Path) -> None:
    with Executor(workers=0, on_mismatch="error", **FAST) as ex:
        pool = _start(ex.worker_command(workers=1), other_python_bin)
        try:
            deadline = time.monotonic() + 30
            while not any(p.state == "refused" for p in ex.pools()):
                assert time.monotonic() < deadline, ex.pools()
                time.sleep(0.05)
            (info,) = [p for p in ex.pools() if p.state == "refused"]
            assert "python" in info.reason.lower() and OTHER in info.reason
            err = pool.communicate(timeout=10)[1]
            assert "refused" in err and pool.returncode == 3
        finally:
            _stop(pool)


# -- a pool from another serdoctor -------------------------------------------------------


def _speaking(tmp_path: Path, protocol: int) -> str:
    """A folder whose sitecustomize makes serdoctor speak executor ``protocol``."""
    folder = tmp_path / f"protocol{protocol}"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        f"from serdoctor.execute import _messages\n_messages.PROTOCOL = {protocol}\n"
    )
    return str(folder)


def _wait_refused(ex: Executor, seconds: float = 30) -> PoolInfo:
    deadline = time.monotonic() + seconds
    while not any(p.state == "refused" for p in ex.pools()):
        assert time.monotonic() < deadline, ex.pools()
        time.sleep(0.05)
    (info,) = [p for p in ex.pools() if p.state == "refused"]
    return info


@pytest.mark.timeout(90)
@pytest.mark.parametrize("side", ["pool", "interchange"])
def test_a_pool_speaking_another_protocol_is_refused_and_exits_saying_so(
    tmp_path: Path, side: str, caplog: pytest.LogCaptureFixture
) -> None:
    # one side runs a serdoctor whose messages differ (protocol 99): it must never get
    # a task, in either direction; both sides say which serdoctor each one runs
    other = {"PYTHONPATH": _speaking(tmp_path, 99)}
    with Executor(workers=0, worker_env=other if side == "interchange" else None, **FAST) as ex:
        waiting = ex.submit(pow, 3, 2)
        command = shlex.split(ex.worker_command(workers=1))
        command[0] = str(Path(sys.executable).parent / "ser-doctor")
        env = {**os.environ, **other} if side == "pool" else None
        odd = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
        try:
            info = _wait_refused(ex)
            ours, theirs = (2, 99) if side == "pool" else (99, 2)
            assert f"protocol {theirs}" in info.reason and f"executor {ours}" in info.reason
            assert "install the same serdoctor version" in info.reason
            assert info.reason in caplog.text  # the client's log says it too
            err = odd.communicate(timeout=20)[1]
            assert odd.returncode == 3, err
            assert f"the interchange speaks executor protocol {ours}" in err
            assert f"this pool {theirs}" in err and "Traceback" not in err
            assert not waiting.done()  # the refused pool took nothing
            good = subprocess.Popen(
                command, stderr=subprocess.PIPE, text=True, env={**os.environ, **other}
                if side == "interchange" else None,
            )  # fmt: skip
            try:
                assert waiting.result(timeout=30) == 9
            finally:
                _stop(good)
        finally:
            _stop(odd)

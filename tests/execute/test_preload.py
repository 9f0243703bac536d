"""``preload=``: modules a pool imports once, before it forks its workers."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from _procs import workers_of
from serdoctor.errors import WorkerLost
from serdoctor.execute import Executor

FAST = {"heartbeat": 0.2, "heartbeat_threshold": 1.5}

# A module that notes every process that imports it.
PROBE = """
import os
with open(os.environ["SD_PROBE_LOG"], "a") as log:
    log.write(f"{os.getpid()}\\n")
"""


def _probe(tmp_path: Path) -> tuple[dict[str, str], Path]:
    (tmp_path / "sd_probe_mod.py").write_text(PROBE)
    log = tmp_path / "imports.log"
    log.touch()
    return {"PYTHONPATH": str(tmp_path), "SD_PROBE_LOG": str(log)}, log


def _loaded(pause: float = 0.0) -> object:
    # a lambda travels by value: the workers' PYTHONPATH does not hold this test module
    return lambda: (
        __import__("time").sleep(pause),
        "sd_probe_mod" in __import__("sys").modules,
        __import__("os").getpid(),
    )[1:]


def _interchange() -> psutil.Process:
    (found,) = [p for p in psutil.Process().children() if "interchange" in " ".join(p.cmdline())]
    return found


@pytest.mark.timeout(60)
def test_a_preloaded_module_is_imported_once_before_the_workers_fork(tmp_path: Path) -> None:
    env, log = _probe(tmp_path)
    with Executor(workers=2, worker_env=env, **FAST) as ex:  # without: workers lack it
        assert not ex.submit(_loaded()).result(timeout=20)[0]
    assert log.read_text() == ""
    with Executor(workers=2, preload=["sd_probe_mod"], worker_env=env, **FAST) as ex:
        interchange = _interchange()
        workers = {w.pid for w in workers_of(interchange)}
        seen = {ex.submit(_loaded()).result(timeout=20) for _ in range(20)}
        assert seen and all(loaded for loaded, _ in seen)
        assert {pid for _, pid in seen} <= workers
        assert log.read_text().split() == [str(interchange.pid)]  # once, before the fork
        # a replacement worker starts with it too, and does not import it again
        with pytest.raises(WorkerLost):
            ex.submit(os._exit, 3).result(timeout=20)
        futures = [ex.submit(_loaded(pause=0.2)) for _ in range(6)]  # both workers busy
        seen = {f.result(timeout=20) for f in futures}
        assert all(loaded for loaded, _ in seen)
        assert {pid for _, pid in seen} - workers  # the replacement ran some of them
        assert log.read_text().split() == [str(interchange.pid)]


@pytest.mark.timeout(60)
def test_a_module_that_cannot_be_preloaded_fails_the_constructor_clearly(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(ValueError, match=r"preload: cannot import 'sd_no_such_module' with .*"
                                         r"ModuleNotFoundError"):  # fmt: skip
        Executor(workers=1, preload=["sd_no_such_module"], **FAST)
    broken = tmp_path / "sd_broken_mod.py"
    broken.write_text("raise RuntimeError('this module is broken')\n")
    with pytest.raises(ValueError, match=r"'sd_broken_mod'.*RuntimeError: this module is broken"):
        Executor(workers=1, preload=["sd_broken_mod"], worker_env={"PYTHONPATH": str(tmp_path)})
    with pytest.raises(ValueError, match="a list of module names, not a string"):
        Executor(workers=1, preload="numpy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'numpy; rm' is not a module name"):
        Executor(workers=1, preload=["numpy; rm"])
    deadline = time.monotonic() + 10
    while left := [p for p in psutil.Process().children(recursive=True) if p.pid not in before]:
        assert time.monotonic() < deadline, left  # the interchanges it started are gone
        time.sleep(0.05)


@pytest.mark.timeout(60)
def test_a_pool_started_elsewhere_preloads_what_worker_command_names(tmp_path: Path) -> None:
    env, log = _probe(tmp_path)
    with Executor(workers=0, preload=["sd_probe_mod"], **FAST) as ex:
        argv = shlex.split(ex.worker_command(workers=2))
        assert argv[argv.index("--preload") + 1] == "sd_probe_mod"
        argv[0] = str(Path(sys.executable).parent / "ser-doctor")
        pool = subprocess.Popen(
            argv, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            seen = {ex.submit(_loaded()).result(timeout=30) for _ in range(10)}
            assert all(loaded for loaded, _ in seen)
            assert log.read_text().split() == [str(pool.pid)]
        finally:
            pool.terminate()
            err = pool.communicate(timeout=10)[1]
    assert "Traceback" not in err


@pytest.mark.timeout(30)
def test_ser_doctor_worker_refuses_a_module_it_cannot_preload(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text('{"key": "' + "ab" * 32 + '"}')
    key.chmod(0o600)
    exe = str(Path(sys.executable).parent / "ser-doctor")
    proc = subprocess.run(
        [exe, "worker", "tcp://127.0.0.1:5000", "--key-file", str(key),
         "--preload", "sd_no_such_module"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "preload: cannot import 'sd_no_such_module'" in proc.stderr
    assert "Traceback" not in proc.stderr

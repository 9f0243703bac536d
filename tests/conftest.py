"""Shared fixtures: every test must leave no child process behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import configuration as _hypothesis_configuration

from _procs import alive

_HYPOTHESIS_HOME = Path(tempfile.mkdtemp(prefix="serdoctor-hypothesis-"))


def pytest_configure(config: pytest.Config) -> None:
    """Keep hypothesis's caches out of the working tree."""
    _hypothesis_configuration.set_hypothesis_home_dir(_HYPOTHESIS_HOME)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)


def _children() -> set[int]:
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        pids.update(int(p) for p in text.split())
    return pids


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Fail a test that leaves a child process or a thread running."""
    before = _children()
    threads_before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    extra = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    while extra and time.monotonic() < deadline:
        time.sleep(0.05)
        extra = [t for t in extra if t.is_alive()]
    if extra:
        pytest.fail(f"test left threads running: {[t.name for t in extra]}")
    deadline = time.monotonic() + 5
    leaked = {p for p in _children() - before if alive(p)}
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = {p for p in _children() - before if alive(p)}
    if leaked:
        for pid in leaked:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
            with contextlib.suppress(ChildProcessError):  # reaped: no zombie for later tests
                os.waitpid(pid, 0)
        pytest.fail(f"test left child processes running: {sorted(leaked)}")


# --- running code in fresh interpreters ---------------------------------------------------

import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

RunPython = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_python(tmp_path: Path) -> RunPython:
    """Run a script in a fresh interpreter; ``path=`` entries go on its PYTHONPATH.

    The child starts in ``tmp_path`` and sees only the given extra paths (plus
    its installed packages): modules that exist only on one side stay there.
    """
    counter = iter(range(1_000_000))

    def run(
        script: str,
        *args: str,
        path: Sequence[Path] = (),
        python: str = sys.executable,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        file = tmp_path / f"script_{next(counter)}.py"
        file.write_text(textwrap.dedent(script))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        if path:
            env["PYTHONPATH"] = os.pathsep.join(str(p) for p in path)
        proc = subprocess.run(
            [python, str(file), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=tmp_path,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"fresh interpreter failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


def make_distribution(root: Path, name: str, version: str, source: str) -> Path:
    """Write an importable package ``name`` with dist-info metadata under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    (info / "RECORD").write_text(f"{name}/__init__.py,,\n")
    return root


@pytest.fixture
def distribution(tmp_path: Path) -> Callable[[str, str, str], Path]:
    """Factory: ``distribution(name, version, source)`` -> a folder for PYTHONPATH."""

    def make(name: str, version: str, source: str) -> Path:
        return make_distribution(tmp_path / f"site-{name}-{version}", name, version, source)

    return make

"""``run_inspect`` in a real interpreter: exit codes, JSON on stdout, never a traceback.

The typer command (``ser-doctor inspect``) is a thin wrapper over ``run_inspect``;
these tests run the same function the way the CLI does, in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import corpus
import pytest

RUN = (
    "import sys; from serdoctor.diagnostics import run_inspect; "
    "sys.exit(run_inspect(sys.argv[1], json_output='--json' in sys.argv, "
    "sketch='--sketch' in sys.argv))"
)
CRASH = (
    "import sys; from serdoctor.diagnostics.inspect import _api as _inspect, run_inspect\n"
    "def boom(*a): raise ZeroDivisionError('simulated bug')\n"
    "_inspect._predict = boom\n"
    "sys.exit(run_inspect(sys.argv[1], json_output='--json' in sys.argv))"
)


def _run(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli")
    return {case.name: path for case, path in corpus.write_corpus(folder)}


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("plain_protocol_4", 0),
        ("cloudpickle_closure", 0),
        ("os_system_global", 1),
        ("computed_global_rot13", 1),
        ("dangerous_then_malformed", 1),
        ("truncated", 2),
        ("bad_memo_reference", 2),
        ("gzip_file", 2),
        ("empty_file", 2),
    ],
)
def test_exit_codes_in_a_subprocess(
    name: str, code: int, files: dict[str, Path], tmp_path: Path
) -> None:
    proc = _run(RUN, str(files[name]), "--sketch", cwd=tmp_path)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr == ""
    as_json = _run(RUN, str(files[name]), "--json", cwd=tmp_path)
    assert as_json.returncode == code
    data = json.loads(as_json.stdout)
    assert data["exit_code"] == code and data["schema_version"] == 1
    assert not (tmp_path / corpus.MARKER).exists()


def test_missing_file_in_a_subprocess(tmp_path: Path) -> None:
    proc = _run(RUN, str(tmp_path / "nope.pkl"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "cannot read" in proc.stdout and "Traceback" not in proc.stderr


def test_internal_error_in_a_subprocess(files: dict[str, Path], tmp_path: Path) -> None:
    for extra in ((), ("--json",)):
        proc = _run(CRASH, str(files["os_system_global"]), *extra, cwd=tmp_path)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        assert "simulated bug" in " ".join(proc.stdout.split())  # rich may wrap lines
    data = json.loads(_run(CRASH, str(files["plain_protocol_4"]), "--json", cwd=tmp_path).stdout)
    assert data["verdict"] == "internal-error" and data["exit_code"] == 3


@pytest.mark.timeout(120)
def test_a_large_file_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    import io
    import pickle

    from rich.console import Console

    from serdoctor.diagnostics import run_inspect
    from serdoctor.diagnostics.inspect._render import PROGRESS_FROM

    path = tmp_path / "big.pkl"
    path.write_bytes(pickle.dumps([bytes(PROGRESS_FROM + (1 << 20))]))
    seen: list[int] = []

    from serdoctor.diagnostics import inspect_file

    inspect_file(path, progress=seen.append)
    assert seen and seen == sorted(seen) and seen[-1] <= path.stat().st_size

    terminal = io.StringIO()
    assert run_inspect(str(path), console=Console(file=terminal, force_terminal=True)) == 0
    assert "inspecting" in terminal.getvalue()
    for kwargs in ({"json_output": True, "force_terminal": True}, {"force_terminal": False}):
        out = io.StringIO()
        console = Console(file=out, force_terminal=kwargs.pop("force_terminal"))
        assert run_inspect(str(path), console=console, **kwargs) == 0
        assert "inspecting" not in out.getvalue()

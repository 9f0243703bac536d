"""Payloads made here (3.11), loaded for real by Python 3.10 and 3.12 with serdoctor installed.

The interpreters come from pyenv; a missing one fails the test (it does not skip):
these machines are supposed to have them, and CI checks that they do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import serdoctor

ROOT = Path(__file__).resolve().parents[2]


def _interpreter(minor: str) -> Path:
    try:
        versions = subprocess.run(
            ["pyenv", "versions", "--bare"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"pyenv is needed for the cross-version tests and failed: {exc}")
    matches = sorted(
        (v for v in versions if v.startswith(minor + ".") and v.replace(".", "").isdigit()),
        key=lambda v: tuple(int(p) for p in v.split(".")),
    )
    if not matches:
        pytest.fail(f"Python {minor} is not installed in pyenv (have: {versions}); install it")
    prefix = subprocess.run(
        ["pyenv", "prefix", matches[-1]], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()
    return Path(prefix) / "bin" / "python3"


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    made: dict[str, Path] = {}

    def get(minor: str) -> Path:
        if minor not in made:
            base = _interpreter(minor)
            venv = tmp_path_factory.mktemp(f"venv{minor}")
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYENV_VERSION")}
            subprocess.run([str(base), "-m", "venv", str(venv)], check=True, timeout=120, env=env)
            python = venv / "bin" / "python"
            proc = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", str(ROOT)],
                capture_output=True,
                text=True,
                timeout=600,
                env=env,
            )
            assert proc.returncode == 0, f"installing serdoctor into {minor} failed:\n{proc.stderr}"
            made[minor] = python
        return made[minor]

    return get


LOADER = """
import sys, serdoctor, os.path
data = open(sys.argv[1], "rb").read()
try:
    obj = serdoctor.loads(data)
except serdoctor.IncompatiblePythonError as exc:
    print("INCOMPATIBLE", exc)
else:
    print("LOADED", obj["join"]("a", "b"), obj["data"], obj["values"])
"""


def _by_value_maker():
    factor = 7
    return lambda x: x * factor


@pytest.mark.timeout(900)
@pytest.mark.parametrize("minor", ["3.12", "3.10"])
def test_payloads_across_python_versions(venv_python, tmp_path: Path, minor: str) -> None:
    import os.path

    python = venv_python(minor)
    by_reference = tmp_path / "ref.sdoc"
    by_reference.write_bytes(
        serdoctor.dumps({"join": os.path.join, "data": {"k": (1, 2.5)}, "values": {1, 2}})
    )
    by_value = tmp_path / "value.sdoc"
    by_value.write_bytes(serdoctor.dumps(_by_value_maker()))
    script = tmp_path / "load.py"
    script.write_text(LOADER)

    def load(path: Path) -> str:
        proc = subprocess.run(
            [str(python), str(script), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert load(by_reference) == "LOADED a/b {'k': (1, 2.5)} {1, 2}"
    refused = load(by_value)
    assert refused.startswith("INCOMPATIBLE")
    here = ".".join(map(str, sys.version_info[:3]))
    assert here in refused  # the version that made it
    assert f"{minor}." in refused  # the version trying to load it
    assert "importable" in refused and "by reference" in refused

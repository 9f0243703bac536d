"""Another Python (3.12, or 3.11 when the tests run on 3.12) with serdoctor installed."""

from __future__ import annotations

import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python(version: str) -> Path:
    root = subprocess.run(
        ["pyenv", "prefix", version], capture_output=True, text=True, check=False
    ).stdout.strip()
    exe = Path(root) / "bin" / "python3"
    if not exe.exists():
        pytest.fail(f"Python {version} is not installed: pyenv install {version}")
    return exe


#: The pool's Python: 3.12, or 3.11 when the tests themselves run on 3.12.
OTHER = "3.11.7" if platform.python_version().startswith("3.12") else "3.12.1"
OTHER_MINOR = ".".join(OTHER.split(".")[:2])


@pytest.fixture(scope="session")
def other_python_bin() -> Iterator[Path]:
    """A venv of another Python (``OTHER``) with this serdoctor installed, built once."""
    folder = Path(tempfile.mkdtemp(prefix="serdoctor-other-python-"))
    try:
        subprocess.run([str(_python(OTHER)), "-m", "venv", str(folder)], check=True, timeout=120)
        subprocess.run(
            [str(folder / "bin" / "pip"), "install", "-q", f"{ROOT}[dask]"],
            check=True, timeout=600, capture_output=True,
        )  # fmt: skip
        yield folder / "bin"
    finally:
        shutil.rmtree(folder, ignore_errors=True)

"""By-value code: cloudpickle, dill and raw code objects made by real interpreters of other
Python versions (pyenv), with the version inferred from the code-object layout and bytecode."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import dill
import pytest

from serdoctor.diagnostics import inspect_bytes, inspect_file

RUNNING = "{}.{}".format(*sys.version_info[:2])
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
MINORS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]


def _interpreter(minor: str) -> str:
    found = sorted(PYENV_ROOT.glob(f"versions/{minor}.*/bin/python{minor}"))
    assert found, f"Python {minor} is not installed under {PYENV_ROOT} (pyenv install {minor})"
    return str(found[-1])


@pytest.fixture(scope="module")
def pure_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only cloudpickle and dill (pure Python, importable by any 3.8+)."""
    folder = tmp_path_factory.mktemp("pure")
    for module in (cloudpickle, dill):
        package = Path(module.__file__).parent
        (folder / package.name).symlink_to(package)
    return folder


MAKE = """
import cloudpickle, dill, sys
scale = 3

def outer():
    import os
    offset = 7
    def inner(x, y=2):
        total = 0
        for i in range(x):
            total += i * scale + offset
        return os.path.join(str(total), str(y))
    return inner

class Local:
    def double(self):
        return scale * 2

folder = sys.argv[1]
open(folder + "/cloudpickle.pkl", "wb").write(cloudpickle.dumps((outer(), Local)))
open(folder + "/dill.pkl", "wb").write(dill.dumps(outer(), recurse=True))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("minor", MINORS)
def test_python_version_of_by_value_code(
    minor: str, tmp_path: Path, run_python: Any, pure_packages: Path
) -> None:
    run_python(MAKE, str(tmp_path), path=[pure_packages], python=_interpreter(minor))
    for producer in ("cloudpickle", "dill"):
        report = inspect_file(tmp_path / f"{producer}.pkl")
        assert report.exit_code == 0, (producer, report.findings)
        functions = [d for d in report.by_value if d.kind == "function"]
        assert functions, producer
        inner = [d for d in functions if d.name == "inner"]
        assert inner, [d.name for d in functions]
        code = inner[0]
        assert code.producer == producer
        assert minor in code.python, (minor, code.python, code.python_basis)
        if minor in ("3.11", "3.12", "3.13"):
            # this function calls and loops: its bytecode fits exactly one 3.11+ minor
            assert code.python == [minor], (minor, code.python)
        assert code.filename and code.firstlineno
        if producer == "cloudpickle":
            assert "7" in code.closure and "os" in code.hidden_imports
            classes = [d for d in report.by_value if d.kind == "class"]
            assert classes and classes[0].name == "Local"
        mismatch = [f for f in report.findings if f.category == "python-mismatch"]
        problems = " ".join(report.load.problems) if report.load else ""
        if RUNNING in code.python:
            assert not mismatch
        else:
            assert mismatch and "needs Python" in problems
    assert inspect_file(tmp_path / "dill.pkl").load.loader == "dill.load"


def test_calling_by_value_code_at_load_is_dangerous() -> None:
    def payload() -> None:
        print("this would run at load")

    class Runner:
        def __reduce__(self) -> tuple[Any, ...]:
            return (payload, ())

    report = inspect_bytes(cloudpickle.dumps(Runner()))
    assert report.exit_code == 1
    assert any(f.category == "by-value-code" for f in report.dangerous)


def test_by_value_class_with_setstate_runs_code_on_build() -> None:
    class Sneaky:
        def __setstate__(self, state: Any) -> None:
            self.__dict__.update(state)

    obj = Sneaky()
    obj.x = 1
    report = inspect_bytes(cloudpickle.dumps(obj))
    assert report.exit_code == 1
    assert any("__setstate__" in f.message for f in report.dangerous)


def test_plain_by_value_instance_is_not_dangerous() -> None:
    class Plain:
        def __init__(self) -> None:
            self.value = 3

    report = inspect_bytes(cloudpickle.dumps(Plain()))
    assert report.exit_code == 0, report.findings
    assert [d.name for d in report.by_value if d.kind == "class"] == ["Plain"]


def test_report_json_of_by_value_code() -> None:
    k = 5
    data = json.loads(inspect_bytes(cloudpickle.dumps(lambda x: x + k)).to_json())
    entry = data["by_value"][0]
    assert entry["kind"] == "function" and entry["producer"] == "cloudpickle"
    # a tiny lambda's bytecode can be valid for neighbouring versions: the running one
    # is among the candidates, and the layout basis is stated
    assert RUNNING in entry["python"]["candidates"]
    assert entry["python"]["matches_running"] is True
    assert "bytecode" in entry["python"]["basis"]

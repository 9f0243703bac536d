"""Inspecting runs nothing from the file: no command, no import, no unpickling."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import corpus
import pytest

from serdoctor.diagnostics import inspect_bytes, inspect_file

EVIL_MODULE = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
class Thing:
    def __setstate__(self, state):
        pathlib.Path({marker!r}).write_text("setstate ran")
"""


class _Evil:
    """Pickles as ``os.system('touch <marker>')``: the classic payload (never loaded)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, (f"touch {self.marker}",))


def test_nothing_runs_in_a_fresh_interpreter(tmp_path: Path, run_python: Any) -> None:
    """Every dangerous corpus file, a module that writes a file when imported, numpy
    pickles: after inspecting them all, no marker exists and nothing was imported."""
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    files = [str(p) for _, p in corpus.write_corpus(tmp_path / "corpus")]
    site = tmp_path / "site"
    site.mkdir()
    import_marker = marker_dir / "imported"
    (site / "serdoctor_evil_marker_mod.py").write_text(
        EVIL_MODULE.format(marker=str(import_marker))
    )
    classic = tmp_path / "classic.pkl"
    classic.write_bytes(pickle.dumps(_Evil(marker_dir / "classic"), protocol=2))
    uses_evil = tmp_path / "uses_evil.pkl"
    uses_evil.write_bytes(
        corpus.asm(
            corpus.sglob("serdoctor_evil_marker_mod", "Thing"),
            corpus.EMPTY_TUPLE,
            corpus.NEWOBJ,
            corpus.EMPTY_DICT,
            corpus.BUILD,
        )
    )
    files += [str(classic), str(uses_evil)]
    proc = run_python(
        """
        import json, sys
        from serdoctor.diagnostics import inspect_file
        before = set(sys.modules)
        codes = {path: inspect_file(path).exit_code for path in sys.argv[1:]}
        new = sorted(set(sys.modules) - before)
        print(json.dumps({"codes": codes, "new": new}))
        """,
        *files,
        path=[site],
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not list(marker_dir.iterdir()), "something from a pickle ran"
    assert not (tmp_path / corpus.MARKER).exists()
    assert result["codes"][str(classic)] == 1
    assert result["codes"][str(uses_evil)] == 0  # found, reported available, not imported
    imported = result["new"]
    for name in (
        "serdoctor_evil_marker_mod",
        "numpy",
        "cloudpickle",
        "dill",
        "subprocess",
        "importlib.util_no_such",
        "runpy",
        "pty",
        "socket",
        "ctypes",
    ):
        assert name not in imported, f"inspect imported {name}"


def test_inspect_never_unpickles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With every unpickling entry point booby-trapped, the whole corpus still inspects."""

    cases = corpus.cases()  # built first: making them uses the pickler and copyreg

    def trap(*args: object, **kwargs: object) -> None:
        raise AssertionError("inspect tried to unpickle")

    import _pickle
    import copyreg

    for module, name in (
        (pickle, "loads"),
        (pickle, "load"),
        (pickle, "Unpickler"),
        (pickle, "_loads"),
        (pickle, "_Unpickler"),
        (_pickle, "loads"),
        (_pickle, "load"),
        (_pickle, "Unpickler"),
        (copyreg, "_reconstructor"),
    ):
        monkeypatch.setattr(module, name, trap)
    for case in cases:
        report = inspect_bytes(case.data)
        assert report.internal_error is None, (case.name, report.internal_error)
        assert report.exit_code == case.expect.exit_code, case.name


def test_availability_check_does_not_import(tmp_path: Path, run_python: Any) -> None:
    """A package whose __init__ writes a marker is found (with its version) but not run."""
    root = tmp_path / "site"
    pkg = root / "serdoctor_probe_pkg"
    (pkg / "sub").mkdir(parents=True)
    marker = tmp_path / "imported"
    (pkg / "__init__.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\nclass Model: pass\n"
    )
    (pkg / "sub" / "__init__.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('y')\nclass Deep: pass\n"
    )
    info = root / "serdoctor_probe_pkg-2.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: serdoctor_probe_pkg\nVersion: 2.1\n"
    )
    data = corpus.asm(
        corpus.sglob("serdoctor_probe_pkg", "Model"),
        corpus.POP,
        corpus.sglob("serdoctor_probe_pkg.sub", "Deep"),
        corpus.POP,
        corpus.sglob("serdoctor_probe_pkg", "Missing"),
        corpus.POP,
        corpus.sglob("serdoctor_probe_pkg.nosub", "X"),
        corpus.POP,
        corpus.NONE,
    )
    path = tmp_path / "probe.pkl"
    path.write_bytes(data)
    proc = run_python(
        """
        import json, sys
        from serdoctor.diagnostics import inspect_file
        report = inspect_file(sys.argv[1])
        print(json.dumps({i.target: [i.availability.status, i.availability.version]
                          for i in report.imports}))
        print("serdoctor_probe_pkg" in sys.modules)
        """,
        str(path),
        path=[root],
    )
    lines = proc.stdout.strip().splitlines()
    found = json.loads(lines[-2])
    assert lines[-1] == "False"
    assert not marker.exists()
    assert found["serdoctor_probe_pkg.Model"] == ["available", "2.1"]
    assert found["serdoctor_probe_pkg.sub.Deep"] == ["available", "2.1"]
    assert found["serdoctor_probe_pkg.Missing"][0] == "missing-name"
    assert found["serdoctor_probe_pkg.nosub.X"][0] == "missing-submodule"


def test_reference_alone_is_not_dangerous_but_call_is() -> None:
    ref = corpus.asm(corpus.sglob("subprocess", "Popen"))
    assert inspect_bytes(ref).exit_code == 0
    called = corpus.asm(corpus.call(corpus.sglob("subprocess", "Popen"), corpus.sbu("ls")))
    assert inspect_bytes(called).exit_code == 1


def test_a_real_file_is_not_modified(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    data = pickle.dumps({"a": list(range(100))}, protocol=5)
    path.write_bytes(data)
    assert inspect_file(path).exit_code == 0
    assert path.read_bytes() == data
    assert sys.modules.get("serdoctor_evil_marker_mod") is None

"""serdoctor.check and `ser-doctor check` / `ser-doctor env`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import serdoctor
from serdoctor.cli import app
from serdoctor.diagnostics._check import check

JOBS = """
import threading

class Settings:
    def __init__(self):
        self.pool = {"size": 4, "guard": None}
        self.name = "run-1"

class Job:
    def __init__(self):
        self.settings = Settings()
        self.settings.pool["guard"] = Guarded()

class Guarded:
    def __init__(self):
        self.guard = (n for n in range(3))

job = Job()
good = {"numbers": [1, 2, 3], "name": "fine"}

def scale(x):
    return 2 * x

fn = lambda x: x + 1
"""


def _module(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "jobs_for_check.py").write_text(JOBS)
    return site


def test_check_names_the_path_through_attributes_and_items() -> None:
    class Guarded:
        def __init__(self) -> None:
            self.guard = (n for n in range(3))

    class Settings:
        def __init__(self) -> None:
            self.pool = {"size": 4, "guard": Guarded()}

    class Job:
        def __init__(self) -> None:
            self.settings = Settings()

    report = check(Job(), name="job")
    assert not report.ok and report.exit_code == 1
    assert report.path == "job.settings.pool['guard'].guard"
    assert report.type_name == "generator"
    assert report.remedy == "Send the values it produces (list(gen)) or the function that makes it."
    assert "suspended frame cannot be copied" in (report.error or "")
    assert report.to_dict()["path"] == report.path


def test_check_good_object_and_fresh_interpreter() -> None:
    report = check({"a": [1, 2]}, fresh=True)
    assert report.ok and report.exit_code == 0
    assert report.explanation is not None and report.explanation.method == "pickle"
    assert report.fresh is not None and report.fresh.ok
    assert "builtins.dict" in report.fresh.detail


def test_cli_check_module_attribute(tmp_path: Path, monkeypatch) -> None:
    site = _module(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    runner = CliRunner()
    bad = runner.invoke(app, ["check", "jobs_for_check:job", "--json"])
    assert bad.exit_code == 1, bad.output
    data = json.loads(bad.output)
    assert data["path"] == "job.settings.pool['guard'].guard"
    assert data["type"] == "generator"
    good = runner.invoke(app, ["check", "jobs_for_check:fn"])
    assert good.exit_code == 0, good.output
    assert "cloudpickle" in good.output and "lambda" in good.output
    missing = runner.invoke(app, ["check", "jobs_for_check:nothing"])
    assert missing.exit_code == 2 and "cannot load" in missing.output
    sys.modules.pop("jobs_for_check", None)


def test_cli_check_fresh_in_subprocess(tmp_path: Path) -> None:
    site = _module(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "serdoctor.cli", "check", "jobs_for_check:scale", "--fresh"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=site,
    )
    assert proc.returncode == 0, proc.stderr
    assert "arrived" in proc.stdout and "pickle" in proc.stdout


def test_cli_check_payload_file(tmp_path: Path) -> None:
    path = tmp_path / "obj.sdoc"
    path.write_bytes(serdoctor.dumps({"x": 1}))
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 0 and "can be sent" in result.output


def test_cli_env_and_diff(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["env", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["serdoctor"] == serdoctor.__version__
    a = tmp_path / "a.json"
    a.write_text(result.output)
    same = runner.invoke(app, ["env", "diff", str(a), str(a)])
    assert same.exit_code == 0 and "match" in same.output
    data["python"] = "3.9.0"
    data["distributions"]["mylab"] = "2.1"
    b = tmp_path / "b.json"
    b.write_text(json.dumps(data))
    differ = runner.invoke(app, ["env", "diff", str(a), str(b), "--json"])
    assert differ.exit_code == 1
    diff = json.loads(differ.output)
    assert diff["matters"] and diff["differences"][0]["what"] == "python"
    table = runner.invoke(app, ["env", "diff", str(a), str(b)])
    assert table.exit_code == 1 and "breaks" in table.output
    broken = runner.invoke(app, ["env", "diff", str(a), str(tmp_path / "missing.json")])
    assert broken.exit_code == 2 and "error" in broken.output
    text = runner.invoke(app, ["env"])
    assert text.exit_code == 0 and "cloudpickle" in text.output


def test_cli_version_and_help() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.strip() == f"ser-doctor {serdoctor.__version__}"
    assert "inspect" in runner.invoke(app, ["--help"]).output

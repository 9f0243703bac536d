"""The environment fingerprint and what differences mean."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import serdoctor
from serdoctor.serialize import Environment


def test_fingerprint_describes_this_interpreter() -> None:
    import platform

    import cloudpickle
    import dill

    env = serdoctor.environment()
    assert env.python == platform.python_version()
    assert env.cloudpickle == cloudpickle.__version__ and env.dill == dill.__version__
    assert env.serdoctor == serdoctor.__version__
    assert env.distributions["serdoctor"] == serdoctor.__version__
    again = Environment.from_dict(json.loads(env.to_json()))
    assert again == env
    assert not env.diff(again)
    assert str(env.diff(again)) == "the environments match"


def test_diff_sorts_by_consequence() -> None:
    here = serdoctor.environment()
    there = dataclasses.replace(
        here,
        python="3.9.18" if not here.python.startswith("3.9.") else "3.12.1",
        machine="aarch64",
        dill="0.0.1",
        distributions={**here.distributions, "mylab": "2.1"},
    )
    diff = here.diff(there)
    assert diff.matters
    by_what = {d.what: d for d in diff.differences}
    assert by_what["python"].severity == "breaks" and "by-value" in by_what["python"].why
    assert by_what["dill"].severity == "breaks"
    assert by_what["package mylab"].severity == "may matter"
    assert "not installed here" in by_what["package mylab"].why
    assert by_what["machine"].severity == "info"
    assert next(d.severity for d in diff.differences) == "breaks"
    assert diff.to_dict()["matters"] is True


def test_patch_and_platform_differences_do_not_matter() -> None:
    here = serdoctor.environment()
    major, minor, _ = here.python.split(".")
    there = dataclasses.replace(here, python=f"{major}.{minor}.99", platform="Darwin 23")
    diff = here.diff(there)
    assert diff and not diff.matters


def test_bad_fingerprint_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        Environment.load(bad)
    bad.write_text('{"python": "3.11.7"}')
    with pytest.raises(ValueError, match="env --json"):
        Environment.load(bad)
    bad.write_text("[" * 100_000)  # nested past the recursion limit: still "not JSON"
    with pytest.raises(ValueError, match="not JSON"):
        Environment.load(bad)

"""The corpus: every case gives the findings, imports and exit code it must.

Malicious and obfuscated cases are hand-assembled opcode streams that are never
loaded; only benign cases we built ourselves are ever passed to ``pickle.loads``
(to check that "would load here" is right).
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import corpus  # tests/diagnostics/corpus (the test folder is on sys.path)
import pytest
from rich.console import Console

from serdoctor.diagnostics import inspect_bytes, inspect_file, run_inspect

CASES = corpus.cases()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    return {case.name: path for case, path in corpus.write_corpus(folder)}


def test_corpus_covers_every_group() -> None:
    groups = {case.group for case in CASES}
    assert groups == {"benign", "by-value", "malicious", "obfuscated", "malformed"}
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}:{c.name}" for c in CASES])
def test_case(case: corpus.Case, corpus_dir: dict[str, Path]) -> None:
    report = inspect_file(corpus_dir[case.name])
    corpus.check(case, report)
    json.dumps(report.to_dict())  # always JSON-ready


@pytest.mark.parametrize("case", [c for c in CASES if c.group == "benign"], ids=lambda c: c.name)
def test_would_load_prediction_matches_pickle(case: corpus.Case) -> None:
    """For benign pickles we made ourselves, "would load here" agrees with pickle.loads."""
    report = inspect_bytes(case.data)
    predicted = report.load is not None and report.load.would_load
    buffers_needed = report.out_of_band_buffers
    try:
        if buffers_needed:
            pickle.loads(case.data)  # without the buffers it must fail
        else:
            stream = io.BytesIO(case.data)
            while stream.tell() < len(case.data):
                pickle.load(stream)
        loaded = True
    except Exception:
        loaded = False
    assert predicted == loaded, (case.name, report.load)


EXIT_CASES = {
    "plain_protocol_5": 0,
    "cloudpickle_closure": 0,
    "os_system_global": 1,
    "memo_trick": 1,
    "dangerous_then_malformed": 1,
    "truncated": 2,
    "empty_file": 2,
    "text_not_pickle": 2,
}


@pytest.mark.parametrize(("name", "code"), sorted(EXIT_CASES.items()))
def test_run_inspect_exit_codes(name: str, code: int, corpus_dir: dict[str, Path]) -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    assert run_inspect(str(corpus_dir[name]), console=console) == code
    text = out.getvalue()
    assert "Traceback" not in text
    assert {0: "CLEAN", 1: "DANGEROUS", 2: "MALFORMED"}[code] in text


@pytest.mark.parametrize(("name", "code"), sorted(EXIT_CASES.items()))
def test_run_inspect_json(name: str, code: int, corpus_dir: dict[str, Path]) -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)
    assert (
        run_inspect(str(corpus_dir[name]), json_output=True, sketch=True, console=console) == code
    )
    data = json.loads(out.getvalue())
    assert data["schema"] == "serdoctor-inspect" and data["schema_version"] == 1
    assert data["exit_code"] == code
    assert isinstance(data["sketch"], list)


def test_dangerous_report_shows_the_command(corpus_dir: dict[str, Path]) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    run_inspect(str(corpus_dir["os_system_global"]), sketch=True, console=console)
    text = out.getvalue()
    assert f"os.system('touch {corpus.MARKER}')" in text
    assert "DANGEROUS" in text and "from os import system" in text


def test_largest_value_path_and_size(corpus_dir: dict[str, Path]) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    run_inspect(str(corpus_dir["big_bytes_value"]), console=console)
    assert "['payload']: bytes, 293.0 KiB @" in out.getvalue()


def test_malformed_output_keeps_what_was_found(corpus_dir: dict[str, Path]) -> None:
    report = inspect_file(corpus_dir["dangerous_then_malformed"])
    assert report.exit_code == 1 and report.error is not None
    assert [i.target for i in report.imports] == ["os.system"]
    data = report.to_dict()
    assert data["verdict"] == "dangerous" and data["error"]["kind"] == "malformed"


def test_unreadable_path_is_exit_2(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    assert run_inspect(str(tmp_path / "missing.pkl"), console=console) == 2
    assert "cannot read" in out.getvalue()
    assert run_inspect(str(tmp_path), console=console) == 2  # a directory


def test_internal_error_is_exit_3_without_traceback(
    monkeypatch: pytest.MonkeyPatch, corpus_dir: dict[str, Path]
) -> None:
    from serdoctor.diagnostics.inspect import _api as _inspect

    def boom(*args: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(_inspect, "_finish", boom)
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    code = run_inspect(str(corpus_dir["os_system_global"]), console=console)
    assert code == 3, "a crash must never read as dangerous or clean"
    text = out.getvalue()
    assert "Traceback" not in text and "Internal error" in text and "simulated bug" in text

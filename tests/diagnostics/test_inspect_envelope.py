"""serdoctor envelopes: the JSON header is decoded, the body analysed as a pickle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import corpus
import pytest

import serdoctor
from serdoctor.diagnostics import inspect_bytes, inspect_file
from serdoctor.serialize import _envelope

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _envelope_with_body(body: bytes, **fields: object) -> bytes:
    header = _envelope.Header(
        method=str(fields.get("method", "pickle")),
        python=str(fields.get("python", "3.11.7")),
        implementation="cpython",
        by_value=bool(fields.get("by_value", False)),
        requires=dict(fields.get("requires", {})),  # type: ignore[arg-type]
        libraries={},
        body=len(body),
        buffers=(),
        serdoctor=serdoctor.__version__,
    )
    return b"".join(bytes(f) for f in _envelope.pack(header, body, [], None))


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.sdoc")), ids=lambda p: p.stem)
def test_golden_payloads(path: Path) -> None:
    report = inspect_file(path)
    parsed = _envelope.parse(path.read_bytes())
    assert report.exit_code == 0, (report.findings, report.error)
    assert report.format == "serdoctor-envelope"
    env = report.envelope
    assert env is not None
    assert env.method == parsed.header.method and env.python == parsed.header.python
    assert env.signed == parsed.header.signed
    assert env.buffers == list(parsed.header.buffers)
    assert report.out_of_band_buffers == len(parsed.header.buffers)
    assert report.load is not None and report.load.loader == "serdoctor.loads"
    made_here = parsed.header.python.rsplit(".", 1)[0] == "{}.{}".format(*sys.version_info[:2])
    if parsed.header.by_value and not made_here:
        # by-value code from another Python minor: the doctor predicts the refusal
        assert not report.load.would_load
        assert any("IncompatiblePythonError" in p for p in report.load.problems)
    else:
        assert report.load.would_load, report.load.problems
    data = json.loads(report.to_json())
    assert data["envelope"]["method"] == parsed.header.method


def test_fresh_payloads() -> None:
    k = 3
    report = inspect_bytes(serdoctor.dumps(lambda x: x + k))
    assert report.envelope is not None
    assert report.envelope.method == "cloudpickle" and report.envelope.by_value
    [fn] = report.by_value
    # serdoctor's own reducer: code as marshal bytes, read without marshal.loads
    assert (fn.kind, fn.producer, fn.name) == ("function", "serdoctor", "<lambda>")
    assert "{}.{}".format(*sys.version_info[:2]) in fn.python and fn.firstlineno
    assert report.exit_code == 0
    signed = inspect_bytes(serdoctor.Serializer(key=b"k" * 32).dumps({"a": 1}))
    assert signed.envelope is not None and signed.envelope.signed
    assert "Serializer(key=KEY)" in signed.load.call  # type: ignore[union-attr]


def test_requirements_are_checked_here() -> None:
    data = _envelope_with_body(
        b"\x80\x04N.", requires={"numpy": "2.0.0", "serdoctor_not_installed": "1.0"}
    )
    report = inspect_bytes(data)
    assert report.exit_code == 0
    env = report.envelope
    assert env is not None
    assert env.requirements["numpy"].ok
    assert env.requirements["serdoctor_not_installed"].status == "missing-module"
    assert "serdoctor_not_installed" in report.load.missing_modules  # type: ignore[union-attr]
    assert not report.load.would_load  # type: ignore[union-attr]


def test_python_mismatch_of_by_value_payload() -> None:
    data = _envelope_with_body(b"\x80\x04N.", by_value=True, python="3.99.1", method="cloudpickle")
    report = inspect_bytes(data)
    problems = " ".join(report.load.problems)  # type: ignore[union-attr]
    assert "IncompatiblePythonError" in problems and "3.99.1" in problems


def test_dangerous_body_inside_an_envelope() -> None:
    body = corpus.asm(corpus.call(corpus.sglob("os", "system"), corpus.sbu(corpus.CMD)))
    report = inspect_bytes(_envelope_with_body(body))
    assert report.exit_code == 1
    assert report.dangerous[0].target == "os.system"
    assert report.dangerous[0].offset is not None and report.dangerous[0].offset > len(
        _envelope.MAGIC
    )  # offsets are file offsets, past the header


@pytest.mark.parametrize(
    "damage",
    ["truncate_body", "truncate_header", "garbage_header", "extra_bytes", "wrong_version"],
)
def test_damaged_envelopes_are_malformed(damage: str) -> None:
    good = serdoctor.dumps({"a": [1, 2, 3]})
    if damage == "truncate_body":
        data = good[:-3]
    elif damage == "truncate_header":
        data = good[:20]
    elif damage == "garbage_header":
        data = good[:11] + b"{not json" + good[20:]
    elif damage == "extra_bytes":
        data = good + b"\x00\x01"
    else:
        data = good[:5] + b"\x09" + good[6:]
    report = inspect_bytes(data)
    assert report.exit_code == 2, (damage, report.error)
    assert report.internal_error is None
    assert report.error_kind in ("malformed-envelope", "truncated", "malformed"), damage

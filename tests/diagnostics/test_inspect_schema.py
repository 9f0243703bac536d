"""The --json output matches docs/inspect-schema.md, key for key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cloudpickle
import corpus

import serdoctor
from serdoctor.diagnostics import inspect_bytes
from serdoctor.diagnostics.inspect._api import SCHEMA_VERSION
from serdoctor.serialize import _envelope

DOC = Path(__file__).resolve().parents[2] / "docs" / "inspect-schema.md"


def _documented() -> dict[str, set[str]]:
    """Section title -> the keys listed in the first column of its table."""
    sections: dict[str, set[str]] = {}
    title = "top"
    for line in DOC.read_text().splitlines():
        if line.startswith("## ") or line.startswith("### "):
            title = line.lstrip("#").strip().strip("`")
            continue
        if line.startswith("| `"):
            first = line.split("|")[1]
            sections.setdefault(title, set()).update(re.findall(r"`([a-z_0-9]+)`", first))
    return sections


def _sample() -> dict[str, Any]:
    body = corpus.asm(
        corpus.call(corpus.sglob("os", "system"), corpus.sbu("id")),
        corpus.POP,
        corpus.call(corpus.sglob("datetime", "date"), corpus.sbb(b"\x07\xe8\x01\x02")),
    )
    k = 1
    body += cloudpickle.dumps(lambda x: x + k)  # two stacked pickles
    header = _envelope.Header(
        method="cloudpickle",
        python="3.11.7",
        implementation="cpython",
        by_value=True,
        requires={"numpy": "2.0"},
        libraries={},
        body=len(body),
        buffers=(),
        serdoctor=serdoctor.__version__,
    )
    data = b"".join(bytes(f) for f in _envelope.pack(header, body, [], None)) + b"junk"
    return inspect_bytes(data).to_dict()


def test_json_keys_are_the_documented_ones() -> None:
    doc = _documented()
    data = _sample()
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert set(data) == doc["Top level"]
    assert set(data["envelope"]) == doc["envelope"]
    assert set(data["pickles"][0]) == doc["pickles[]"]
    assert set(data["imports"][0]) == doc["imports[]"]
    assert set(data["imports"][0]["availability"]) == doc["availability"]
    assert set(data["by_value"][0]) == doc["by_value[]"]
    assert set(data["findings"][0]) == doc["findings[]"]
    assert set(data["values"]) == doc["values"]
    assert set(data["load"]) == doc["load"]
    assert set(data["error"]) == doc["error"]
    assert data["error"]["kind"] == "malformed-envelope"  # the trailing "junk"
    assert data["verdict"] == "dangerous" and data["pickle_count"] == 2


def test_documented_categories_cover_the_findings() -> None:
    text = DOC.read_text()
    categories = {f.category for case in corpus.cases() for f in inspect_bytes(case.data).findings}
    for category in categories:
        assert f"`{category}`" in text, category

"""The method registry: ordered, names are unique, plugins come through entry points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import serdoctor
from serdoctor.errors import RegistryError, UnsafePayloadError
from serdoctor.serialize import DumpContext, LoadContext, Method
from serdoctor.serialize._methods import registry


class JsonMethod:
    name = "test-json"
    python_bound = False

    def dumps(self, obj: Any, context: DumpContext) -> bytes:
        return json.dumps(obj).encode()

    def loads(self, data: memoryview, context: LoadContext) -> Any:
        return json.loads(bytes(data))

    def versions(self) -> dict[str, str]:
        return {}


@pytest.fixture
def json_method():
    method = serdoctor.register_method(JsonMethod())
    yield method
    registry.unregister("test-json")


def test_builtin_methods_in_order() -> None:
    assert registry.names()[:3] == ["pickle", "cloudpickle", "dill"]
    assert all(isinstance(registry.get(n), Method) for n in ("pickle", "cloudpickle", "dill"))


def test_taken_name_raises(json_method: JsonMethod) -> None:
    with pytest.raises(RegistryError, match="already registered"):
        serdoctor.register_method(JsonMethod())
    with pytest.raises(RegistryError, match="already registered"):
        serdoctor.register_method(registry.get("pickle"))
    assert serdoctor.register_method(JsonMethod(), replace=True).name == "test-json"


def test_not_a_method_raises() -> None:
    with pytest.raises(RegistryError, match="not a serializer method"):
        serdoctor.register_method(object())  # type: ignore[arg-type]


def test_unknown_method_name_fails_at_construction() -> None:
    with pytest.raises(RegistryError, match="no serializer method named 'nope'"):
        serdoctor.Serializer(methods=("nope",))


def test_registered_method_is_used_and_recorded(json_method: JsonMethod) -> None:
    s = serdoctor.Serializer(methods=("test-json", "pickle"))
    data = s.dumps({"a": [1, 2]})
    assert s.read_header(data).method == "test-json"
    assert s.loads(data) == {"a": [1, 2]}
    # sets are not JSON: the stack falls to pickle and says why
    report = s.explain({1, 2})
    assert report.method == "pickle"
    assert report.attempts[0].method == "test-json"
    assert "not JSON serializable" in report.attempts[0].reason
    with pytest.raises(UnsafePayloadError):
        serdoctor.loads(data)  # the default serializer does not accept test-json


PLUGIN = """
import json

class YamlishMethod:
    name = "plugin-json"
    python_bound = False

    def dumps(self, obj, context):
        return json.dumps(obj).encode()

    def loads(self, data, context):
        return json.loads(bytes(data))

    def versions(self):
        return {"fakeplug": "1.0"}
"""


def test_entry_point_plugin(run_python, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "fakeplug.py").write_text(PLUGIN)
    info = site / "fakeplug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[serdoctor.methods]\nplugin-json = fakeplug:YamlishMethod\n"
    )
    result = run_python(
        """
        import serdoctor
        from serdoctor.serialize._methods import registry
        s = serdoctor.Serializer(methods=("plugin-json",))
        data = s.dumps({"x": [1, "two"]})
        print(s.read_header(data).method, s.loads(data), "plugin-json" in registry.names())
        try:
            serdoctor.register_method(registry.get("plugin-json"))
        except serdoctor.errors.RegistryError as exc:
            print("TAKEN")
        """,
        path=[site],
    )
    assert result.stdout.splitlines() == ["plugin-json {'x': [1, 'two']} True", "TAKEN"]


def test_broken_entry_point_is_reported(run_python, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    info = site / "broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[serdoctor.methods]\nbad = nosuchmodule:Thing\n")
    result = run_python(
        """
        import serdoctor
        try:
            serdoctor.Serializer(methods=("bad",))
        except serdoctor.errors.RegistryError as exc:
            print(exc)
        """,
        path=[site],
    )
    assert "entry point 'bad'" in result.stdout and "nosuchmodule" in result.stdout


def test_reimported_cloudpickle_and_dill_are_picked_up() -> None:
    """Test runners (pytester) re-import modules; cached pickler classes must follow."""
    import math
    import sys

    fn = eval("lambda x: math.floor(x)", {"__name__": "nowhere", "math": math})
    saved = {
        m: sys.modules[m] for m in list(sys.modules) if m.split(".")[0] in ("cloudpickle", "dill")
    }
    try:
        for name in saved:
            del sys.modules[name]
        import cloudpickle  # noqa: F401
        import dill  # noqa: F401

        for methods in (("pickle", "cloudpickle"), ("dill",)):
            s = serdoctor.Serializer(methods=methods)
            assert s.loads(s.dumps(fn))(2.5) == 2
    finally:
        sys.modules.update(saved)

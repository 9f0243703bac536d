"""Round trips that cloudpickle users expect (issue 10, section 3)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import types
import weakref
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import serdoctor
from serdoctor.errors import DeserializationError, SerializationError


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_module_made_at_run_time_travels_by_value(tmp_path: Path) -> None:
    m = types.ModuleType("mod_made_at_run_time")
    m.x = 41  # type: ignore[attr-defined]
    m.f = lambda: m.x + 1  # type: ignore[attr-defined]
    back = serdoctor.loads(serdoctor.dumps(m))
    assert back.x == 41 and back.f() == 42
    assert serdoctor.explain(m).by_value
    (tmp_path / "m.sdoc").write_bytes(serdoctor.dumps(m))
    code = (
        "import sys, serdoctor; m = serdoctor.loads(open(sys.argv[1], 'rb').read()); print(m.f())"
    )
    assert _run(code, str(tmp_path / "m.sdoc")) == "42"


class _Referent:
    pass


def test_what_cannot_come_back_right_is_refused_at_dumps_with_the_reason() -> None:
    c = _Referent()
    with pytest.raises(SerializationError, match=r"obj\[1\].*weak reference proxy"):
        serdoctor.dumps([c, weakref.proxy(c)])
    for name in ("__name__", "__abstractmethods__"):
        with pytest.raises(SerializationError, match="descriptor") as info:
            serdoctor.dumps(type.__dict__[name])
        assert "environment" not in str(info.value)


@pytest.fixture
def by_value_module(tmp_path: Path) -> Iterator[types.ModuleType]:
    """A real importable module, registered with cloudpickle.register_pickle_by_value."""
    (tmp_path / "parity_mod_xyz.py").write_text("def g(x):\n    return x * 3\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import parity_mod_xyz  # type: ignore[import-not-found]

        yield parity_mod_xyz
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("parity_mod_xyz", None)


@pytest.mark.timeout(60)
def test_register_pickle_by_value_is_honoured(by_value_module: types.ModuleType) -> None:
    s = serdoctor.Serializer()
    assert not s.explain(by_value_module.g).by_value  # importable: by reference
    cloudpickle.register_pickle_by_value(by_value_module)
    try:
        report = s.explain(by_value_module.g)
        data = s.dumps(by_value_module.g)
    finally:
        cloudpickle.unregister_pickle_by_value(by_value_module)
    assert report.by_value and "register_pickle_by_value" in str(report)
    code = "import sys, serdoctor; print(serdoctor.loads(bytes.fromhex(sys.argv[1]))(2))"
    assert _run(code, data.hex()) == "6"  # the child cannot import the module
    assert not s.explain(by_value_module.g).by_value  # unregistered: by reference again


def test_pickle_signatures_buffer_callback_and_buffers() -> None:
    a = np.arange(131072, dtype="float64")
    kept: list[pickle.PickleBuffer] = []
    data = serdoctor.dumps(a, buffer_callback=kept.append)
    assert kept and all(isinstance(b, pickle.PickleBuffer) for b in kept)
    assert len(data) < 100_000  # the megabyte went to the callback
    np.testing.assert_array_equal(serdoctor.loads(data, buffers=kept), a)
    with pytest.raises(DeserializationError, match="buffers"):
        serdoctor.loads(data)
    in_band = serdoctor.dumps(a, buffer_callback=lambda _buf: True)  # true: keep it in band
    np.testing.assert_array_equal(serdoctor.loads(in_band), a)
    s = serdoctor.Serializer(key=b"p" * 32)
    kept = []
    signed = s.dumps({"a": a}, 5, buffer_callback=kept.append)
    np.testing.assert_array_equal(s.loads(signed, buffers=kept)["a"], a)
    kept[0] = pickle.PickleBuffer(bytearray(bytes(kept[0].raw())[:-1] + b"\x01"))
    with pytest.raises(DeserializationError):  # a changed buffer breaks the signature
        s.loads(signed, buffers=kept)
    assert serdoctor.loads(serdoctor.dumps({"a": 1}, protocol=4)) == {"a": 1}
    with pytest.raises(ValueError, match="protocol"):
        serdoctor.dumps({}, protocol=99)
    with pytest.raises(ValueError, match="buffer_callback"):
        serdoctor.dumps({}, protocol=4, buffer_callback=kept.append)


def test_a_function_dumps_to_the_same_bytes_again_in_one_process() -> None:
    data = serdoctor.dumps(os.path.join)
    assert serdoctor.dumps(os.path.join) == data
    assert serdoctor.dumps(serdoctor.loads(data)) == data


_MAKE_CLOSURE = """
import sys, serdoctor
def make():
    import xml.etree.ElementTree
    return lambda: xml.etree.ElementTree.Comment("hi").text
open(sys.argv[1], "wb").write(serdoctor.dumps(make()))
"""
_CALL_IT = """
import sys, serdoctor
assert "xml.etree" not in sys.modules, "the test needs an interpreter without xml.etree"
print(serdoctor.loads(open(sys.argv[1], "rb").read())())
"""


@pytest.mark.timeout(60)
def test_a_closure_reaching_a_submodule_through_its_package_works_elsewhere(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "closure.sdoc")
    _run(_MAKE_CLOSURE, path)
    assert _run(_CALL_IT, path) == "hi"


_DUMP_THREE = """
import hashlib, serdoctor
def f(x, y=2):
    "doc"
    return [x, y, {"k": x}, ("a", "b"), 1.5]
def make(n):
    def add(x):
        return x + n
    return add
lam = lambda q: (q, "text")
out = []
for fn in (f, make(3), lam):
    data = serdoctor.dumps(fn)
    again = serdoctor.dumps(serdoctor.loads(data))
    out.append(hashlib.sha256(data).hexdigest() + ("" if again == data else " rebuilt-differs"))
print(" ".join(out))
"""


@pytest.mark.timeout(90)
def test_by_value_functions_give_the_same_bytes_in_every_process_and_seed() -> None:
    seen = {
        _run(_DUMP_THREE, env={**os.environ, "PYTHONHASHSEED": seed})
        for seed in ("0", "1", "12345")
    }
    assert len(seen) == 1, seen
    assert "rebuilt-differs" not in seen.pop()

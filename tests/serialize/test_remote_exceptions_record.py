"""The exception record in-process: its contents, limits, malformed input, frames.

The behaviour across interpreters is in ``test_remote_exceptions.py``; these
tests pin the parts that need no second process: what the record may contain,
that the outer pickle names nothing but the rebuild function, and that the
loader never raises whatever the record holds.
"""

from __future__ import annotations

import copy
import io
import pickle
import pickletools
import sys
import traceback
import types
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import serdoctor
from serdoctor.serialize import _envelope
from serdoctor.serialize._exc_frames import MAX_FRAMES, build_traceback, capture_frames
from serdoctor.serialize._exc_values import MAX_TEXT, group_types, truncate
from serdoctor.serialize._remote_exc import (
    RemoteBaseException,
    RemoteChainTruncated,
    RemoteException,
    _rebuild_exception,
    reduce_exception,
)

GROUP: Any = group_types()[1]
PRIMITIVES = (type(None), bool, int, float, complex, str, bytes)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BaseException):
            return reduce_exception(obj)
        return NotImplemented


def roundtrip(obj: Any) -> Any:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=5).dump(obj)
    return pickle.loads(buffer.getvalue())


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """A module ``fake_remote_lib`` that exists while sending and vanishes before loading."""
    module = types.ModuleType("fake_remote_lib")
    source = (
        "class LibError(ValueError):\n"
        "    def __init__(self, msg, code):\n"
        "        super().__init__(msg)\n"
        "        self.code = code\n"
        "class Stop(KeyboardInterrupt):\n"
        "    pass\n"
    )
    exec(compile(source, "<fake_remote_lib>", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "fake_remote_lib", module)
    yield module


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(key)
            yield from walk(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from walk(item)


def test_record_holds_only_primitives(fake_module: types.ModuleType) -> None:
    exc = raised(fake_module.LibError("boom", 7))
    exc.__context__ = raised(KeyError(object()))
    rebuild, (record,) = reduce_exception(exc)
    assert rebuild is _rebuild_exception
    for value in walk(record):
        assert isinstance(value, (*PRIMITIVES, list, tuple, dict)), type(value)


def test_outer_pickle_names_only_the_rebuild_function(fake_module: types.ModuleType) -> None:
    exc = raised(fake_module.LibError("boom", 7))
    data = pickle.dumps(reduce_exception(exc)[1])
    globals_named = [arg for op, arg, _ in pickletools.genops(data) if "GLOBAL" in op.name]
    assert globals_named == []  # the record itself names nothing
    payload = serdoctor.dumps({"error": exc})
    header = _envelope.parse(payload).header
    assert "fake_remote_lib" not in header.requires, header.requires


def test_missing_module_gives_cached_stand_in_class(
    fake_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = io.BytesIO()
    _Pickler(buffer).dump([raised(fake_module.LibError("one", 1)), fake_module.Stop("halt")])
    monkeypatch.delitem(sys.modules, "fake_remote_lib")
    first, stop = pickle.loads(buffer.getvalue())
    second, _ = pickle.loads(buffer.getvalue())
    assert type(first) is type(second)
    assert isinstance(first, ValueError) and isinstance(first, RemoteException)
    assert (str(first), first.code, first.remote_type) == ("one", 1, "fake_remote_lib.LibError")
    assert isinstance(stop, KeyboardInterrupt) and isinstance(stop, RemoteBaseException)
    assert not isinstance(stop, Exception)
    # stand-ins copy and pickle (plain pickle too) as themselves
    for clone in (copy.copy(first), copy.deepcopy(first), pickle.loads(pickle.dumps(first))):
        assert type(clone) is type(first) and str(clone) == "one" and clone.code == 1


def test_exceptions_inside_arguments_keep_identity() -> None:
    cause = KeyError("k")
    exc = ValueError("outer", cause, {"nested": cause})
    exc.__cause__ = cause
    back = roundtrip(exc)
    assert type(back.args[1]) is KeyError
    assert back.args[1] is back.__cause__ is back.args[2]["nested"]


def test_remote_exception_itself_travels() -> None:
    for exc in (RemoteException("plain"), RemoteChainTruncated("cut")):
        back = roundtrip(exc)
        assert type(back) is type(exc) and str(back) == str(exc)
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc)


def test_truncate_marks_what_went() -> None:
    text = truncate("a" * (MAX_TEXT + 10))
    assert text.endswith("... [serdoctor: 10 characters truncated] ...")
    middle = truncate("a" * 50 + "b" * 50, 20, keep_tail=True)
    assert middle.startswith("a" * 10) and middle.endswith("b" * 10) and "80 characters" in middle


# ---------------------------------------------------------------- frames


def _deep(n: int) -> None:
    if n:
        _deep(n - 1)
    raise ValueError("deep")


def test_frames_are_capped_with_a_marker() -> None:
    exc = raised_call(_deep, 400)
    frames = capture_frames(exc.__traceback__)
    assert len(frames) == MAX_FRAMES + 1
    assert frames[MAX_FRAMES // 2][1] == f"<{402 - MAX_FRAMES} frames omitted by serdoctor>"
    assert frames[-1][1] == "_deep" and frames[0][1] == "raised_call"


def raised_call(fn: Any, *args: Any) -> BaseException:
    try:
        fn(*args)
    except BaseException as caught:
        return caught
    raise AssertionError("no exception")


def test_rebuilt_frames_print_like_the_original_without_carets() -> None:
    frames = [
        ["/nowhere/remote_mod.py", "handler", 12, "remote_mod", "    result = compute(x) + 1"],
        ["/nowhere/remote_mod.py", "compute", 3, "remote_mod", "    return 1 / 0"],
    ]
    exc = ZeroDivisionError("division by zero")
    exc.__traceback__ = build_traceback(frames)
    text = "".join(traceback.format_exception(exc))
    assert text == (
        "Traceback (most recent call last):\n"
        '  File "/nowhere/remote_mod.py", line 12, in handler\n'
        "    result = compute(x) + 1\n"
        '  File "/nowhere/remote_mod.py", line 3, in compute\n'
        "    return 1 / 0\n"
        "ZeroDivisionError: division by zero\n"
    )
    assert capture_frames(exc.__traceback__) == frames  # and they travel again unchanged


def test_build_traceback_skips_garbage() -> None:
    assert build_traceback(None) is None
    assert build_traceback([["x"], 3, [1, 2, 3, 4, 5], None]) is None
    tb = build_traceback([["f.py", "f", -5, None, ""], ["g.py", "g", 2, 7, 8]])
    assert tb is not None and tb.tb_lineno == 1 and tb.tb_next is not None


# ---------------------------------------------------------------- malformed records


BAD_RECORDS: list[Any] = [
    None,
    42,
    {},
    {"format": "serdoctor.exception/1"},
    {"format": "serdoctor.exception/1", "root": 3, "nodes": []},
    {"format": "serdoctor.exception/1", "root": 0, "nodes": [None]},
    {"format": "serdoctor.exception/1", "root": 0, "nodes": [{"mro": "nope", "cause": 9}]},
    {
        "format": "serdoctor.exception/1",
        "root": 0,
        "nodes": [
            {
                "mro": [["builtins", "ValueError"]],
                "pickle": b"garbage",
                "refs": ["x"],
                "args": "not a list",
                "attrs": {"__class__": 1, 3: 4, "ok": 5},
                "notes": "not a list",
                "frames": [["f.py", "f", 1, None, "line"], "junk"],
                "group": {"message": 1, "members": [0, 7]},
                "cause": 0,
                "context": -1,
            }
        ],
    },
    {
        "format": "serdoctor.exception/1",
        "root": 0,
        "nodes": [{"mro": [["os", "system"], ["builtins", "ExceptionGroup"]], "group": {}}],
    },
]


@pytest.mark.parametrize("record", BAD_RECORDS)
def test_malformed_records_never_raise(record: Any) -> None:
    exc = _rebuild_exception(record)
    assert isinstance(exc, BaseException)
    "".join(traceback.format_exception(exc))


_primitive = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


def _sample_record() -> dict[str, Any]:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise GROUP("grp", [ValueError("v"), inner]) from inner
    except GROUP as exc:
        record: dict[str, Any] = reduce_exception(exc)[1][0]
    return record


_SAMPLE = _sample_record()
_FIELDS = sorted({key for node in _SAMPLE["nodes"] for key in node})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 10), st.sampled_from(_FIELDS), _primitive), min_size=1, max_size=4
    )
)
def test_mutated_records_never_raise(mutations: list[tuple[int, str, Any]]) -> None:
    record = copy.deepcopy(_SAMPLE)
    for index, field, value in mutations:
        nodes = record["nodes"]
        nodes[index % len(nodes)][field] = value
    exc = _rebuild_exception(record)
    assert isinstance(exc, BaseException)
    "".join(traceback.format_exception(exc))
    assert isinstance(_rebuild_exception(reduce_exception(exc)[1][0]), BaseException)

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
from serdoctor.serialize.exceptions._frames import MAX_FRAMES, build_traceback, capture_frames
from serdoctor.serialize.exceptions._remote import (
    RemoteBaseException,
    RemoteChainTruncated,
    RemoteException,
    _rebuild_exception,
    reduce_exception,
)
from serdoctor.serialize.exceptions._values import (
    CHAIN,
    MAX_TEXT,
    chain_node_dict,
    group_types,
    truncate,
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


# ---------------------------------------------------------------- fast paths


def _binop() -> float:
    x = 1
    return x / 0


def _subscript() -> int:
    table: dict[str, int] = {}
    return table["missing"] + 1


def _multiline() -> int:
    return int(
        "not a number",
    )


def _unicode() -> None:
    raise ValueError("é")  # ünïcödé 中文 on the line


def _noted() -> None:
    error = TypeError("noted")
    if sys.version_info >= (3, 11):
        error.add_note("first")
        error.add_note("second\nline")
    raise error


def _chained() -> None:
    try:
        {}["k"]
    except KeyError as inner:
        raise ValueError("outer", 42) from inner


TEXT_CASES = {
    "binop": lambda: raised_call(_binop),
    "subscript": lambda: raised_call(_subscript),
    "multiline": lambda: raised_call(_multiline),
    "unicode": lambda: raised_call(_unicode),
    "noted": lambda: raised_call(_noted),
    "chained": lambda: raised_call(_chained),
    "recursion": lambda: raised_call(_deep, 10),
    "never raised": lambda: KeyError("k"),
    "local class": lambda: raised(type("Local", (LookupError,), {})("local")),
}


@pytest.mark.parametrize("name", sorted(TEXT_CASES))
def test_traceback_texts_are_what_traceback_prints(name: str) -> None:
    exc = TEXT_CASES[name]()
    record = reduce_exception(exc)[1][0]
    back = _rebuild_exception(record)
    assert back.remote_traceback == "".join(traceback.format_exception(exc))
    if isinstance(record, dict):
        own = "".join(
            traceback.TracebackException(type(exc), exc, exc.__traceback__).format(chain=False)
        )
        assert record["nodes"][0]["tb"] == own


def test_builtin_exceptions_travel_without_their_pickle() -> None:
    exc = raised_call(_chained)
    if sys.version_info >= (3, 11):
        exc.add_note("a note")
    record = reduce_exception(exc)[1][0]
    # a chain record: (tag, nodes), each node (tb, cause, context, suppress, class, args,
    # frames, notes) and no pickle; the nodes are the exact nodes of a full record
    assert record[0] == CHAIN and len(record[1]) == 2
    assert [node[4] for node in record[1]] == ["ValueError", "KeyError"]
    assert [node[5] for node in record[1]] == [("outer", 42), ("k",)]
    assert record[1][0][1:4] == (1, 1, True)
    full = [chain_node_dict(node) for node in record[1]]
    assert [node.get("exact") for node in full] == [True, True]
    assert all(node.get("pickle") is None for node in full)
    back = roundtrip(exc)
    assert type(back) is ValueError and back.args == ("outer", 42)
    assert type(back.__cause__) is KeyError and back.__cause__ is back.__context__
    assert back.__suppress_context__ is True
    assert getattr(back, "__notes__", None) == getattr(exc, "__notes__", None)
    # C members come back too (plain pickle drops AttributeError.name)
    for made in (StopIteration(5), SystemExit(3), AttributeError("no", name="thing")):
        again = roundtrip(raised(made))
        assert type(again) is type(made) and again.args == made.args
    assert roundtrip(raised(StopIteration(5))).value == 5
    assert roundtrip(raised(SystemExit(3))).code == 3
    assert roundtrip(raised(AttributeError("no", name="thing"))).name == "thing"
    # a subclass, or an argument that is not a primitive, still needs its pickle
    for needs_pickle in (raised(type("Sub", (ValueError,), {})("x")), ValueError([1, 2])):
        node = reduce_exception(needs_pickle)[1][0]["nodes"][0]
        assert not node.get("exact") and isinstance(node["pickle"], bytes)


def test_never_raised_builtins_travel_as_a_compact_record() -> None:
    rebuild, (record,) = reduce_exception(ValueError("bad value"))
    assert record == ("ValueError", ("bad value",), "ValueError: bad value\n")
    back = rebuild(record)
    assert type(back) is ValueError and back.args == ("bad value",)
    assert back.remote_traceback == "ValueError: bad value\n"
    assert roundtrip(RuntimeError()).remote_traceback == "RuntimeError\n"
    # anything more than args takes the full record
    for full in (KeyError(("a", 1)), SystemExit(3)):
        assert isinstance(reduce_exception(full)[1][0], dict)
    assert reduce_exception(raised(ValueError("raised")))[1][0][0] == CHAIN


@pytest.mark.parametrize(
    "record",
    [
        (),
        ("ValueError",),
        ("ValueError", "not a tuple", "text"),
        ("ValueError", (), 3),
        ("NoSuchBuiltin", ("x",), "NoSuchBuiltin: x\n"),
        ("UnicodeDecodeError", ("too", "few"), "UnicodeDecodeError: ?\n"),
        ("print", (), "print\n"),
    ],
)
def test_malformed_compact_records_never_raise(record: Any) -> None:
    exc = _rebuild_exception(record)
    assert isinstance(exc, BaseException)
    "".join(traceback.format_exception(exc))


def test_rebuilt_tracebacks_leave_no_reference_cycles() -> None:
    import gc

    exc = raised_call(_chained)
    back = roundtrip(exc)
    frame = back.__traceback__.tb_frame
    names = set()
    while frame is not None:  # the stub frames do not keep the loader's stack alive
        names.add(frame.f_code.co_name)
        frame = frame.f_back
    assert not names & {"roundtrip", "rebuild", "_finish", "build_traceback"}, names
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            roundtrip(exc)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_tracebacklimit_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    exc = raised_call(_deep, 5)
    monkeypatch.setattr(sys, "tracebacklimit", 2, raising=False)
    back = roundtrip(exc)
    assert back.remote_traceback == "".join(traceback.format_exception(exc))


def test_records_of_the_first_format_still_load() -> None:
    # /1 records had every field in every node and a pickle for every exception
    exc = raised_call(_chained)
    tag, nodes = reduce_exception(exc)[1][0]
    assert tag == CHAIN
    record: dict[str, Any] = {"root": 0, "nodes": [chain_node_dict(n) for n in nodes]}
    defaults = {"attrs": {}, "notes": None, "cause": None, "context": None, "suppress": False}
    for node in record["nodes"]:
        node.update({**defaults, **node, "exact": False, "group": None, "refs": []})
        node.update(str="?", repr="?", by_value=None, pickle_error=None)
        node["pickle"] = pickle.dumps(
            ValueError("outer", 42) if node is record["nodes"][0] else KeyError("k")
        )
    record["format"] = "serdoctor.exception/1"
    back = _rebuild_exception(record)
    assert type(back) is ValueError and back.args == ("outer", 42)
    assert type(back.__cause__) is KeyError and back.__suppress_context__ is True
    assert back.remote_traceback == "".join(traceback.format_exception(exc))


@pytest.mark.timeout(60)
def test_tblib_reducers_installed_by_dask_do_not_change_the_records(run_python: Any) -> None:
    # distributed calls tblib.pickling_support.install(), which puts a copyreg reducer on
    # every exception class; the compact path and exact records must not notice.
    out = run_python(
        """
        import copyreg
        from tblib import pickling_support
        import serdoctor
        from serdoctor.serialize.exceptions._values import compact_args
        pickling_support.install()
        assert ValueError in copyreg.dispatch_table
        print(compact_args(ValueError("bad value")))
        back = serdoctor.loads(serdoctor.dumps(KeyError("k")))
        print(type(back).__name__, back.args)
        """
    ).stdout.split("\n")
    assert out[:2] == ["('bad value',)", "KeyError ('k',)"]


# ---------------------------------------------------------------- chain records


class _Custom(Exception):
    pass


def _mixed() -> None:
    try:
        raise _Custom("custom cause")
    except _Custom as inner:
        raise ValueError("outer") from inner


def test_a_chain_with_one_node_that_needs_more_is_sent_as_a_full_record() -> None:
    exc = raised_call(_mixed)
    record = reduce_exception(exc)[1][0]
    assert isinstance(record, dict)
    outer, custom = record["nodes"]
    assert outer["mro"] == [("builtins", "ValueError")] and outer["exact"] is True
    assert outer["cause"] == 1 and isinstance(custom["pickle"], bytes)
    back = roundtrip(exc)
    assert type(back) is ValueError and type(back.__cause__) is _Custom
    assert back.remote_traceback == "".join(traceback.format_exception(exc))


def test_chain_and_full_records_of_one_exception_rebuild_alike() -> None:
    exc = raised_call(_chained)
    if sys.version_info >= (3, 11):
        exc.add_note("a note")
    tag, nodes = reduce_exception(exc)[1][0]
    full = {"format": "serdoctor.exception/2", "root": 0,
            "nodes": [chain_node_dict(n) for n in nodes]}  # fmt: skip
    a, b = _rebuild_exception((tag, nodes)), _rebuild_exception(full)
    for x, y in ((a, b), (a.__cause__, b.__cause__)):
        assert type(x) is type(y) and x.args == y.args
        assert x.remote_traceback == y.remote_traceback  # type: ignore[union-attr]
        assert traceback.format_exception(x) == traceback.format_exception(y)
    assert a.__suppress_context__ and a.__cause__ is a.__context__
    assert getattr(a, "__notes__", None) == getattr(exc, "__notes__", None)


_CHAIN_SAMPLE = reduce_exception(raised_call(_chained))[1][0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 10), st.integers(0, 9), _primitive), min_size=1, max_size=4),
    st.integers(0, 3),
)
def test_mutated_chain_records_never_raise(mutations: list[tuple[int, int, Any]], cut: int) -> None:
    tag, nodes = _CHAIN_SAMPLE
    changed = [list(node) for node in nodes]
    for index, position, value in mutations:
        node = changed[index % len(changed)]
        if position < len(node):
            node[position] = value
        else:
            del node[-1]  # a node of the wrong length
    record = (tag, tuple(tuple(node) for node in changed)[: len(changed) - cut % 2])
    exc = _rebuild_exception(record)
    assert isinstance(exc, BaseException)
    "".join(traceback.format_exception(exc))
    assert isinstance(_rebuild_exception(reduce_exception(exc)[1][0]), BaseException)
    for broken in ((tag, ()), (tag, "x"), ("other/1", nodes), (tag, (None,))):
        assert isinstance(_rebuild_exception(broken), BaseException)


class _Frozen(Exception):
    """An exception whose own __setattr__ refuses everything (and counts its calls)."""

    calls = 0

    def __setattr__(self, name: str, value: Any) -> None:
        type(self).calls += 1
        raise AttributeError(f"{type(self).__name__} is frozen")


def _frozen_chain() -> None:
    try:
        {}["k"]
    except KeyError as inner:
        raise _Frozen("cold") from inner


def test_a_class_with_its_own_setattr_gets_its_links_and_text_past_it() -> None:
    exc = raised_call(_frozen_chain)
    _Frozen.calls = 0
    back = roundtrip(exc)
    assert type(back) is _Frozen and back.args == ("cold",)
    assert type(back.__cause__) is KeyError and back.__suppress_context__
    assert back.remote_traceback == "".join(traceback.format_exception(exc))  # type: ignore[attr-defined]
    assert back.__traceback__ is not None
    assert _Frozen.calls == 0  # its __setattr__ was never asked

"""Round-trip equality, the differ's messages, and assert_roundtrip (here and in a child)."""

from __future__ import annotations

import collections
import decimal
import math
import os
import pickle
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import serdoctor
from serdoctor.errors import SerializationError
from serdoctor.testing import (
    RoundTrip,
    RoundTripDifference,
    assert_roundtrip,
    find_difference,
    roundtrip_equal,
)
from serdoctor.testing import _samples as samples

NAN = math.nan


def message(sent: Any, got: Any) -> str:
    found = find_difference(sent, got)
    assert isinstance(found, RoundTripDifference)
    return str(found)


# -- equality -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        NAN,
        -0.0,
        complex(NAN, -0.0),
        [NAN, {"x": (NAN,)}],
        decimal.Decimal("NaN"),
        decimal.Decimal("sNaN"),
        {NAN: 1, (NAN, 2): 2},
        {NAN, 1.5, frozenset({NAN})},
        samples.Record(NAN, [NAN]),
        samples.Pair(NAN, samples.Point(NAN, 1)),
        samples.TaggedError("boom", NAN, tag=[NAN]),
        np.array([NAN, -0.0, math.inf]),
        collections.deque([NAN]),
        collections.OrderedDict(a=NAN),
    ],
    ids=repr,
)
def test_a_pickled_copy_is_equal_though_nan_is_not_nan(value: Any) -> None:
    copy = pickle.loads(pickle.dumps(value))
    assert roundtrip_equal(value, copy)
    assert roundtrip_equal(value, value)


def test_message_names_the_path_and_both_values() -> None:
    assert message([0, 1, {"x": 1.0}], [0, 1, {"x": 1.5}]) == "at [2]['x']: sent 1.0, got 1.5"
    assert message(1.0, 2.0) == "at the top level: sent 1.0, got 2.0"
    assert message(samples.Record("a", [1]), samples.Record("a", [2])) == (
        "at .value[0]: sent 1, got 2"
    )


@pytest.mark.parametrize(
    ("sent", "got", "expected"),
    [
        (0.0, -0.0, "sent 0.0, got -0.0"),
        (1, 1.0, "sent int 1, got float 1.0"),
        (1, True, "sent int 1, got bool True"),
        (
            decimal.Decimal("1.0"),
            decimal.Decimal("1.00"),
            "sent Decimal('1.0'), got Decimal('1.00')",
        ),
        ([1, 2, 3], [1, 2], "sent a list of 3 items, got 2 items"),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, "same keys in another order"),
        ({"a": 1}, {"b": 1}, "key 'a' was sent but is missing"),
        ({1.5}, {2.5}, "element 1.5 was sent but no equal element came back"),
        (frozenset({1}), frozenset({True}), "element 1 was sent"),
        (collections.defaultdict(list), collections.defaultdict(set), "at .default_factory"),
        (ValueError("a", 1), ValueError("a", 2), "at .args[1]: sent 1, got 2"),
        (ValueError("a"), KeyError("a"), "sent ValueError ValueError('a'), got KeyError"),
        (samples.TaggedError(tag=1), samples.TaggedError(tag=2), "at .tag: sent 1, got 2"),
        (samples.Color.RED, samples.Color.GREEN, "sent <Color.RED: 1>, got <Color.GREEN"),
        (samples.Pair(1, 2), samples.Pair(1, 3), "at .right: sent 2, got 3"),
        (samples.SlottedPoint(1, 2), samples.SlottedPoint(1, 5), "at .y: sent 2, got 5"),
        (bytearray(b"ab"), bytearray(b"ac"), "sent bytearray(b'ab'), got bytearray(b'ac')"),
        (int, float, "sent <class 'int'>, got <class 'float'>"),
        (os, sys, "sent <module 'os'"),
    ],
)
def test_what_differs_is_said(sent: Any, got: Any, expected: str) -> None:
    assert expected in message(sent, got)


def test_shared_references_must_stay_shared_and_distinct_ones_distinct() -> None:
    shared: list[int] = []
    assert "shared reference was lost" in message([shared, shared], [[], []])
    other: list[int] = []
    assert "distinct objects were merged" in message([[], []], [other, other])
    assert roundtrip_equal([shared, shared], pickle.loads(pickle.dumps([shared, shared])))


def test_cycles_compare_without_recursing_forever() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    assert roundtrip_equal(cyclic, pickle.loads(pickle.dumps(cyclic)))
    broken: list[Any] = [2]
    broken.append(broken)
    assert message(cyclic, broken) == "at [0]: sent 1, got 2"


def test_functions_compare_by_name_code_defaults_closure_and_globals() -> None:
    import cloudpickle

    lam = samples.compile_lambda("(x * k) + 1", {"k": 3, "payload": [NAN]})
    assert roundtrip_equal(lam, cloudpickle.loads(cloudpickle.dumps(lam)))
    assert "at <closure k>: sent 1, got 2" in message(samples.make_adder(1), samples.make_adder(2))
    assert "at .__defaults__[0]" in message(
        samples.compile_lambda("x", {"k": 1}), samples.compile_lambda("x", {"k": 2})
    )
    assert "came back with other code" in message(
        samples.compile_lambda("x + 1"), samples.compile_lambda("x + 2")
    )
    assert "sent function" in message(samples.double, samples.negate)
    fact = samples.make_factorial()
    assert roundtrip_equal(fact, cloudpickle.loads(cloudpickle.dumps(fact)))
    # a global the code uses is part of the function's value
    g1: dict[str, Any] = {"__name__": "m", "K": 1}
    g2: dict[str, Any] = {"__name__": "m", "K": 2}
    f1 = types.FunctionType(compile("lambda: K", "<x>", "eval").co_consts[0], g1)
    f2 = types.FunctionType(compile("lambda: K", "<x>", "eval").co_consts[0], g2)
    assert message(f1, f2) == "at .__globals__['K']: sent 1, got 2"


def test_exceptions_compare_by_class_name_so_stand_ins_pass() -> None:
    stand_in = type("SampleError", (Exception,), {"__module__": samples.__name__})
    assert roundtrip_equal(samples.SampleError(1, "x"), stand_in(1, "x"))
    assert "args" in message(samples.SampleError(1), stand_in(2))


def test_arrays_compare_dtype_shape_and_every_bit() -> None:
    a = np.arange(12.0).reshape(3, 4)[:, ::2]
    assert roundtrip_equal(a, a.copy())
    changed = a.copy()
    changed[2, 1] = 7
    assert message(a, changed) == "at [2, 1]: sent np.float64(10.0), got np.float64(7.0)"
    assert "sent dtype <f8, got dtype <f4" in message(a, a.astype("f4"))
    assert "sent shape (3, 2), got shape (2, 3)" in message(a, a.T.copy())
    assert "got np.float64(-0.0)" in message(np.array([0.0]), np.array([-0.0]))
    # numpy unpickles in-band arrays in native byte order: the values are what count
    big_endian = np.arange(3).astype(">i8")
    assert roundtrip_equal(big_endian, big_endian.astype("<i8"))
    objects = np.array([1, "a", None], dtype=object)
    assert "at [1]: sent 'a', got 'b'" in message(objects, np.array([1, "b", None], dtype=object))


def test_objects_with_their_own_eq_and_without_reduce() -> None:
    import array

    assert roundtrip_equal(array.array("d", [NAN]), array.array("d", [NAN]))
    assert not roundtrip_equal(array.array("d", [1.0]), array.array("d", [2.0]))
    lock = threading.Lock()
    assert "sent <unlocked _thread.lock" in message(lock, threading.Lock())


# -- assert_roundtrip ---------------------------------------------------------------------


class Corrupting:
    """A serializer that changes what it loads: pickle, then ``mutate``."""

    def __init__(self, mutate: Any) -> None:
        self.mutate = mutate

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj)

    def loads(self, data: bytes) -> Any:
        return self.mutate(pickle.loads(data))


def test_returns_the_copy_made_by_the_default_stack() -> None:
    value = {"a": [1, NAN], "f": samples.make_adder(2)}
    got = assert_roundtrip(value)
    assert got is not value and got["f"](1) == 3


def test_failure_says_where_and_which_method() -> None:
    with pytest.raises(AssertionError) as info:
        assert_roundtrip([1, {"x": 1.0}], serializer=Corrupting(lambda v: [1, {"x": 1.5}]))
    text = str(info.value)
    assert "at [1]['x']: sent 1.0, got 1.5" in text
    assert "unrecognised payload" in text  # not a serdoctor envelope

    class Meddling(serdoctor.Serializer):
        def loads(self, data: Any, *, raw: bool = False) -> Any:
            return [*super().loads(data, raw=raw), "extra"]

    with pytest.raises(AssertionError, match=r"method 'pickle', by reference"):
        assert_roundtrip([1], serializer=Meddling())


def test_dump_failures_are_assertion_errors_with_the_cause() -> None:
    with pytest.raises(AssertionError, match="could not dump") as info:
        assert_roundtrip(lambda: 1, serializer=serdoctor.Serializer(methods=("pickle",)))
    assert isinstance(info.value.__cause__, SerializationError)


def test_eq_overrides_the_structural_comparison() -> None:
    assert assert_roundtrip([1, 2], eq=lambda a, b: True) == [1, 2]
    with pytest.raises(AssertionError, match="says they differ") as info:
        assert_roundtrip(1.5, serializer=Corrupting(lambda v: 2.5), eq=lambda a, b: a == b)
    assert "structurally: at the top level: sent 1.5, got 2.5" in str(info.value)


def test_frames() -> None:
    arr = np.arange(100_000, dtype="f8")
    got = assert_roundtrip({"a": arr}, frames=True)
    assert np.array_equal(got["a"], arr)
    with pytest.raises(TypeError, match="dumps_frames"):
        assert_roundtrip(1, serializer=Corrupting(lambda v: v), frames=True)


# -- in a fresh interpreter --------------------------------------------------------------


def explode_unless_in(pid: int) -> None:
    """Loading this in another process fails: what a broken payload looks like there."""
    if os.getpid() != pid:
        raise RuntimeError(f"refusing to load outside process {pid}")


class OnlyLoadsHere:
    def __reduce__(self) -> tuple[Any, ...]:
        return (explode_unless_in, (os.getpid(),))


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point tempfile at tmp_path, so a leftover temporary file would be seen."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_fresh_process_round_trip_of_code_that_travels_by_value(private_tmp: Path) -> None:
    value = [samples.make_composed(samples.make_adder(3), samples.compile_lambda("x * 2"))]
    got = assert_roundtrip(value, fresh_process=True)
    assert got[0](5) == 13
    got = assert_roundtrip(
        {"a": np.arange(50_000)},
        serializer=serdoctor.Serializer(methods=("cloudpickle",)),
        fresh_process=True,
        frames=True,
    )
    assert got["a"][-1] == 49_999
    assert list(private_tmp.iterdir()) == []


def test_fresh_process_failure_shows_the_child_traceback(private_tmp: Path) -> None:
    with pytest.raises(AssertionError) as info:
        assert_roundtrip(OnlyLoadsHere(), fresh_process=True)
    text = str(info.value)
    assert "the fresh interpreter failed on the payload (method 'pickle', by reference)" in text
    assert "while loading the payload in a fresh interpreter" in text
    assert "refusing to load outside process" in text
    assert "Traceback" in text
    assert list(private_tmp.iterdir()) == []


def test_fresh_process_is_killed_after_its_timeout(private_tmp: Path) -> None:
    class Sleeps:
        def __reduce__(self) -> tuple[Any, ...]:
            return (time.sleep, (30,))

    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"within 1 s; it was killed"):
        assert_roundtrip(Sleeps(), serializer=serdoctor.Serializer(), fresh_process=True, timeout=1)
    assert time.monotonic() - start < 15
    assert list(private_tmp.iterdir()) == []


def test_fresh_process_needs_a_picklable_serializer() -> None:
    class Unpicklable(Corrupting):
        def __reduce__(self) -> Any:
            raise TypeError("not me")

    with pytest.raises(SerializationError, match="cannot be pickled"):
        assert_roundtrip(1, serializer=Unpicklable(lambda v: v), fresh_process=True)


# -- RoundTrip -------------------------------------------------------------------------


def test_round_trip_object_defaults_and_overrides() -> None:
    pickle_only = serdoctor.Serializer(methods=("pickle",))
    rt = RoundTrip(pickle_only)
    assert rt([1, NAN])[0] == 1
    with pytest.raises(AssertionError, match="could not dump"):
        rt(samples.make_adder(1))
    assert rt(samples.make_adder(1), serdoctor.Serializer())(1) == 2
    assert rt.with_serializer(None)(samples.make_adder(1))(2) == 3
    assert "fresh_process=False" in repr(rt)

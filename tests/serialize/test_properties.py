"""Property tests: generated values survive every method of the stack.

Each method gets the values it must handle: ``pickle`` everything that travels
by reference (:func:`picklable_values`); ``cloudpickle``, ``dill`` and the
default stack also functions that must travel by value
(:func:`roundtrip_values`). A few examples also cross into a fresh interpreter.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings

import serdoctor
from serdoctor.errors import SerializationError
from serdoctor.serialize import default_serializer
from serdoctor.serialize._methods import registry
from serdoctor.testing import _samples as samples
from serdoctor.testing import (
    assert_roundtrip,
    by_value_functions,
    picklable_values,
    roundtrip_values,
)

BUILT_IN = ("pickle", "cloudpickle", "dill")

# database=None: no example database is written; deadline=None: the first
# call of a method imports it, and a 1 MiB array is slow to generate, not to send.
PROPERTY = settings(
    max_examples=120,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FRESH = settings(PROPERTY, max_examples=4)

SERIALIZERS = {
    "pickle": serdoctor.Serializer(methods=("pickle",)),
    "cloudpickle": serdoctor.Serializer(methods=("cloudpickle",)),
    "dill": serdoctor.Serializer(methods=("dill",)),
}


# Edge cases every run checks, whatever hypothesis happens to draw.
_BIG = bytearray(range(256)) * 300  # 75 KiB: large enough to travel out of band
BY_REFERENCE_EXAMPLES = [
    [_BIG, _BIG],  # one object twice: it must come back as one object twice
    {"nan": float("nan"), "neg0": -0.0, "big": 2**200},
    np.arange(24, dtype=">i4").reshape(4, 6)[:, ::2],
]
BY_VALUE_EXAMPLES = [
    samples.make_factorial(),  # a closure that refers to itself
    samples.compile_lambda("math.floor(x) + k", {"k": 2}),  # uses a module global
    samples.make_composed(samples.make_adder(1), samples.compile_lambda("x * 3")),
]


def with_examples(values: list[Any]) -> Callable[[Any], Any]:
    def decorate(test: Any) -> Any:
        for value in reversed(values):
            test = example(value)(test)
        return test

    return decorate


def behaves_the_same(sent: Any, got: Any) -> None:
    """A generated function computes what the original computes."""
    if callable(sent) and hasattr(sent, "__code__"):
        if sent.__code__.co_argcount:
            assert got(7) == sent(7)
            assert got(-3) == sent(-3)
        else:
            assert serdoctor.testing.roundtrip_equal(sent(), got())


def test_every_built_in_method_is_covered() -> None:
    assert set(BUILT_IN) <= set(registry.names())
    assert set(SERIALIZERS) == set(BUILT_IN)


# -- in this process ----------------------------------------------------------------------


@PROPERTY
@with_examples(BY_REFERENCE_EXAMPLES)
@given(picklable_values())
def test_pickle_round_trips_what_travels_by_reference(value: Any) -> None:
    assert_roundtrip(value, serializer=SERIALIZERS["pickle"])


@PROPERTY
@with_examples(BY_REFERENCE_EXAMPLES + BY_VALUE_EXAMPLES)
@given(roundtrip_values())
def test_cloudpickle_round_trips_functions_too(value: Any) -> None:
    behaves_the_same(value, assert_roundtrip(value, serializer=SERIALIZERS["cloudpickle"]))


@PROPERTY
@with_examples(BY_REFERENCE_EXAMPLES + BY_VALUE_EXAMPLES)
@given(roundtrip_values())
def test_dill_round_trips_functions_too(value: Any) -> None:
    behaves_the_same(value, assert_roundtrip(value, serializer=SERIALIZERS["dill"]))


@PROPERTY
@with_examples(BY_REFERENCE_EXAMPLES + BY_VALUE_EXAMPLES)
@given(roundtrip_values())
def test_default_stack_round_trips_everything(value: Any) -> None:
    behaves_the_same(value, assert_roundtrip(value))


@PROPERTY
@with_examples(BY_REFERENCE_EXAMPLES + BY_VALUE_EXAMPLES)
@given(roundtrip_values())
def test_default_stack_round_trips_through_frames(value: Any) -> None:
    # the flat payload is the frames laid end to end (docs/format.md)
    stack = default_serializer()
    assert b"".join(stack.dumps_frames(value)) == stack.dumps(value)
    behaves_the_same(value, assert_roundtrip(value, frames=True))


@PROPERTY
@with_examples(BY_REFERENCE_EXAMPLES + BY_VALUE_EXAMPLES)
@given(roundtrip_values())
def test_signed_payloads_round_trip(value: Any) -> None:
    assert_roundtrip(value, serializer=serdoctor.Serializer(key=b"0123456789abcdef" * 2))


@PROPERTY
@with_examples(BY_VALUE_EXAMPLES)
@given(by_value_functions())
def test_pickle_alone_refuses_by_value_functions(fn: Any) -> None:
    with pytest.raises(SerializationError) as info:
        SERIALIZERS["pickle"].dumps(fn)
    assert isinstance(info.value, pickle.PicklingError)


@PROPERTY
@with_examples(BY_VALUE_EXAMPLES)
@given(by_value_functions())
def test_the_default_stack_sends_by_value_functions_by_value(fn: Any) -> None:
    assert serdoctor.explain(fn).method in ("cloudpickle", "dill")


# -- through a fresh interpreter -------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize("method", BUILT_IN)
def test_fresh_interpreter_round_trip_per_method(method: str) -> None:
    values = picklable_values() if method == "pickle" else roundtrip_values()

    @FRESH
    @given(values)
    def check(value: Any) -> None:
        got = assert_roundtrip(value, serializer=SERIALIZERS[method], fresh_process=True)
        behaves_the_same(value, got)

    check()


@pytest.mark.timeout(300)
@FRESH
@given(roundtrip_values())
def test_fresh_interpreter_round_trip_default_stack_frames(value: Any) -> None:
    behaves_the_same(value, assert_roundtrip(value, fresh_process=True, frames=True))

"""The strategies generate what they promise, and keep their contracts."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import math
import pickle
import sys
import unicodedata
import zoneinfo
from collections.abc import Callable
from typing import Any

import cloudpickle
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

import serdoctor.testing as sdt
from serdoctor.testing import _samples as samples

FIND = settings(
    max_examples=5000,
    database=None,
    deadline=None,
    phases=[Phase.generate],  # any example will do: no shrinking
    suppress_health_check=list(HealthCheck),
)
CHECK = settings(max_examples=60, database=None, deadline=None)


class Opaque:
    """Wraps a drawn value so hypothesis never reprs it (a 512 KiB buffer is slow to print)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"<{type(self.value).__name__}>"


def exists(strategy: st.SearchStrategy[Any], predicate: Callable[[Any], bool]) -> Any:
    """Some value drawn from ``strategy`` satisfies ``predicate`` (or ``find`` raises)."""
    return find(strategy.map(Opaque), lambda o: predicate(o.value), settings=FIND).value


def is_nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def walk(value: Any) -> list[Any]:
    """Every sub-value reachable through containers, fields, args and closures."""
    out: list[Any] = []
    stack = [value]
    while stack and len(out) < 10_000:
        item = stack.pop()
        out.append(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset, collections.deque)):
            stack.extend(item)
        elif isinstance(item, BaseException):
            stack.extend(item.args)
        elif callable(item) and getattr(item, "__closure__", None):
            stack.extend(c.cell_contents for c in item.__closure__)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            stack.extend(vars(item).values())
    return out


@pytest.mark.parametrize(
    "predicate",
    [
        is_nan,
        lambda x: isinstance(x, float) and math.isinf(x) and x < 0,
        lambda x: isinstance(x, float) and x == 0 and math.copysign(1, x) < 0,
        lambda x: isinstance(x, int) and abs(x) > 2**64,
        lambda x: isinstance(x, complex) and math.isnan(x.imag),
        lambda x: isinstance(x, decimal.Decimal) and x.is_snan(),
        lambda x: isinstance(x, decimal.Decimal) and x.is_infinite(),
        lambda x: isinstance(x, fractions.Fraction) and x.denominator > 1,
    ],
    ids=[
        "nan",
        "-inf",
        "-0.0",
        "big-int",
        "complex-nan",
        "decimal-snan",
        "decimal-inf",
        "fraction",
    ],
)
def test_numbers_cover_the_edges(predicate: Callable[[Any], bool]) -> None:
    exists(sdt.numbers(), predicate)


def test_texts_include_surrogates_bytes_and_big_buffers() -> None:
    exists(
        sdt.texts(),
        lambda s: isinstance(s, str) and any(unicodedata.category(c) == "Cs" for c in s),
    )
    exists(sdt.texts(), lambda b: type(b) is bytearray and len(b) > 0)
    big = exists(sdt.texts(), lambda b: isinstance(b, (bytes, bytearray)) and len(b) >= 64 << 10)
    assert len(set(big[:4096])) > 1  # random content, not zeros
    exists(sdt.primitives(), lambda x: x is Ellipsis)


@pytest.mark.parametrize(
    "predicate",
    [
        lambda d: type(d) is datetime.datetime and d.tzinfo is None,
        lambda d: type(d) is datetime.datetime and isinstance(d.tzinfo, zoneinfo.ZoneInfo),
        lambda d: type(d) is datetime.datetime and type(d.tzinfo) is datetime.timezone,
        lambda d: type(d) is datetime.time and d.tzinfo is not None,
        lambda d: type(d) is datetime.date,
        lambda d: type(d) is datetime.timedelta and d < datetime.timedelta(0),
    ],
    ids=["naive", "zoneinfo", "fixed-offset", "aware-time", "date", "negative-timedelta"],
)
def test_temporals_cover_naive_and_aware(predicate: Callable[[Any], bool]) -> None:
    exists(sdt.temporals(), predicate)


def test_enums_cover_each_kind() -> None:
    exists(sdt.enums(), lambda e: e is samples.Priority.HIGH)
    exists(sdt.enums(), lambda e: e == samples.Permission.READ | samples.Permission.EXECUTE)
    exists(sdt.enums(), lambda e: isinstance(e, samples.Color))


@CHECK
@given(sdt.hashables())
def test_hashables_are_hashable(value: Any) -> None:
    hash(value)
    {value}  # noqa: B018


def test_hashables_include_nan_inside_tuples() -> None:
    exists(sdt.hashables(), lambda t: isinstance(t, tuple) and any(map(is_nan, walk(t))))


def test_exceptions_and_dataclasses() -> None:
    exists(sdt.exceptions(), lambda e: isinstance(e, samples.TaggedError) and e.tag is not None)
    exists(sdt.exceptions(), lambda e: isinstance(e, FileNotFoundError))
    exists(sdt.dataclass_instances(st.integers()), lambda d: isinstance(d, samples.SlottedPoint))
    if sys.version_info >= (3, 11):
        exists(sdt.exceptions(), lambda e: getattr(e, "__notes__", None))
        exists(sdt.exceptions(), lambda e: type(e).__name__ == "ExceptionGroup")


@pytest.mark.parametrize(
    "predicate",
    [
        lambda a: a.ndim == 0,
        lambda a: a.ndim >= 2 and a.flags.f_contiguous and not a.flags.c_contiguous,
        lambda a: a.size > 1 and not (a.flags.c_contiguous or a.flags.f_contiguous),
        lambda a: a.dtype.hasobject and a.size > 0,
        lambda a: a.dtype.byteorder == ">",
        lambda a: a.dtype.kind == "U" and a.size > 0,
        lambda a: a.dtype.kind == "M",
        lambda a: a.nbytes >= 1 << 19,
        lambda a: a.dtype.kind == "f" and bool(np.isnan(a).any()),
    ],
    ids=[
        "0-d",
        "fortran",
        "strided",
        "object",
        "big-endian",
        "unicode",
        "datetime64",
        "big",
        "nan",
    ],
)
def test_numpy_arrays_cover_dtypes_and_layouts(predicate: Callable[[Any], bool]) -> None:
    exists(sdt.numpy_arrays(), predicate)


def test_functions_come_in_every_kind() -> None:
    def kinds(value: Any) -> set[str]:
        found = set()
        for item in walk(value):
            if callable(item) and hasattr(item, "__code__"):
                if item.__module__ == samples.GENERATED_MODULE:
                    found.add("lambda")
                elif "<locals>" in item.__qualname__:
                    found.add("closure")
                else:
                    found.add("module-level")
        return found

    for kind in ("lambda", "closure", "module-level"):
        exists(sdt.roundtrip_values(), lambda v, kind=kind: kind in kinds(v))
    exists(sdt.by_value_functions(), lambda f: "fact" in f.__qualname__)
    exists(sdt.by_value_functions(), lambda f: f.__qualname__.startswith("make_composed"))


@CHECK
@given(sdt.picklable_values())
def test_picklable_values_need_nothing_but_pickle(value: Any) -> None:
    pickle.loads(pickle.dumps(value, protocol=5))


@CHECK
@given(sdt.by_value_functions())
def test_by_value_functions_defeat_plain_pickle_but_not_cloudpickle(fn: Any) -> None:
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(fn, protocol=5)
    copy = cloudpickle.loads(cloudpickle.dumps(fn))
    if fn.__code__.co_argcount:
        assert copy(7) == fn(7)


def test_nesting_goes_deeper_than_one_level() -> None:
    exists(
        sdt.roundtrip_values(),
        lambda v: (
            isinstance(v, (list, dict))
            and any(
                isinstance(x, (list, tuple, dict, set)) and x
                for x in (v.values() if isinstance(v, dict) else v)
            )
        ),
    )


def test_functions_and_numpy_can_be_left_out() -> None:
    @CHECK
    @given(sdt.roundtrip_values(functions=False, numpy=False))
    def check(value: Any) -> None:
        for item in walk(value):
            assert not isinstance(item, np.ndarray)
            assert getattr(item, "__module__", None) != samples.GENERATED_MODULE

    check()


def test_strategy_reprs_are_short() -> None:
    # hypothesis writes a strategy's repr when a filter retries; deep trees warn when huge
    for strategy in (sdt.roundtrip_values(), sdt.containers(sdt.primitives()), sdt.hashables()):
        assert len(repr(strategy)) < 60, repr(strategy)


def test_public_names_are_sorted_and_resolve() -> None:
    assert sdt.__all__ == sorted(sdt.__all__)
    for name in sdt.__all__:
        assert getattr(sdt, name) is not None
    with pytest.raises(AttributeError):
        sdt.no_such_name  # noqa: B018

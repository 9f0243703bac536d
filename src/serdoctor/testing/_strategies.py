"""Hypothesis strategies for values that must survive a round trip.

Two families, split by what a method must be able to send::

    picklable_values()      everything plain pickle sends: scalars, containers,
                            dataclasses, exceptions, enums, numpy arrays, and
                            functions and classes that travel by reference
    roundtrip_values()      the above plus functions that must travel by value
                            (lambdas, closures): cloudpickle, dill, serdoctor

The building blocks are public too, so users can mix them into strategies for
their own types: :func:`primitives`, :func:`numbers`, :func:`texts`,
:func:`temporals`, :func:`enums`, :func:`hashables`, :func:`containers`,
:func:`dataclass_instances`, :func:`exceptions`, :func:`importable_functions`,
:func:`by_value_functions`, :func:`numpy_arrays`.

Every function the strategies make takes one ``int`` (closures made with
``make_getter`` take nothing), so a test may call the received copy and compare
its result with the original's.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import functools
import importlib.util
import math
import operator
import random
import sys
from collections.abc import Callable
from typing import Any, ParamSpec

from hypothesis import strategies as st

from serdoctor.testing import _samples

__all__ = [
    "by_value_functions",
    "containers",
    "dataclass_instances",
    "enums",
    "exceptions",
    "hashables",
    "importable_functions",
    "numbers",
    "numpy_arrays",
    "picklable_values",
    "primitives",
    "roundtrip_values",
    "temporals",
    "texts",
]

Strategy = st.SearchStrategy[Any]
P = ParamSpec("P")

_EDGE_FLOATS = [
    math.nan,
    -math.nan,
    math.inf,
    -math.inf,
    -0.0,
    0.0,
    5e-324,
    sys.float_info.max,
    sys.float_info.min,
]
_EDGE_INTS = [0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**100, -(10**300)]


def _has_numpy() -> bool:
    return importlib.util.find_spec("numpy") is not None


def _named(name: str, strategy: Strategy) -> Strategy:
    """``strategy`` under a short repr (``name()``).

    Hypothesis puts a strategy's repr in its statistics whenever a filter or a
    uniqueness check retries a draw; the repr of a deep ``one_of`` tree runs to
    tens of kilobytes and triggers a warning.
    """

    def draw_from(draw: Callable[[Strategy], Any]) -> Any:
        return draw(strategy)

    draw_from.__name__ = draw_from.__qualname__ = name
    return st.composite(draw_from)()


def _short_repr(make: Callable[P, Strategy]) -> Callable[P, Strategy]:
    """Decorate a strategy factory so that what it returns has a short repr."""

    @functools.wraps(make)
    def factory(*args: P.args, **kwargs: P.kwargs) -> Strategy:
        return _named(make.__name__, make(*args, **kwargs))

    return factory


# -- scalars -----------------------------------------------------------------------


@_short_repr
def numbers() -> Strategy:
    """Numbers that are hard to send exactly.

    Ints (small, 64-bit edges, hundreds of digits), floats (NaN, ±inf, -0.0,
    subnormals), complex (with NaN/inf parts), ``Decimal`` (NaN, sNaN, ±Infinity,
    any precision) and ``Fraction``.
    """
    return st.one_of(
        st.integers(),
        st.sampled_from(_EDGE_INTS),
        st.integers(min_value=-(2**1000), max_value=2**1000),
        st.floats(),
        st.sampled_from(_EDGE_FLOATS),
        st.complex_numbers(),
        st.builds(complex, st.sampled_from(_EDGE_FLOATS), st.sampled_from(_EDGE_FLOATS)),
        st.decimals(),
        st.fractions(),
    )


def _big_buffer(seed: int, size: int, kind: type[Any]) -> Any:
    return kind(random.Random(seed).randbytes(size))


@_short_repr
def texts() -> Strategy:
    """Text and binary values, some large.

    ``str`` over every code point (lone surrogates included: pickle sends them),
    ``bytes``, ``bytearray``, and now and then a buffer of up to 512 KiB (big enough
    to travel as a separate frame).
    """
    return st.one_of(
        st.text(st.characters()),
        st.text(st.one_of(st.characters(), st.characters(categories=["Cs"]))),
        st.binary(),
        st.binary().map(bytearray),
        st.builds(
            _big_buffer,
            st.integers(0, 2**32 - 1),
            st.integers(64 << 10, 512 << 10),
            st.sampled_from([bytes, bytearray]),
        ),
    )


@_short_repr
def primitives() -> Strategy:
    """``None``, ``bool``, ``Ellipsis``, ``NotImplemented``, :func:`numbers` and :func:`texts`."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from([Ellipsis, NotImplemented]),
        numbers(),
        texts(),
    )


def _tzinfos() -> Strategy:
    offsets = st.timedeltas(
        min_value=datetime.timedelta(hours=-23, minutes=-59),
        max_value=datetime.timedelta(hours=23, minutes=59),
    )
    fixed = st.one_of(
        st.just(datetime.timezone.utc),
        st.builds(datetime.timezone, offsets),
        st.builds(datetime.timezone, offsets, st.text(st.characters(codec="ascii"), min_size=1)),
    )
    try:
        import zoneinfo

        if zoneinfo.available_timezones():
            return st.one_of(fixed, st.timezones())
    except ImportError:  # pragma: no cover - zoneinfo is in the stdlib from 3.9
        pass
    return fixed  # pragma: no cover - no time zone database on this machine


@_short_repr
def temporals() -> Strategy:
    """Dates, times, time deltas and time zones.

    ``date``, ``time`` and ``datetime`` (naive, fixed offsets and IANA zones,
    both folds), ``timedelta`` and ``tzinfo`` objects themselves.
    """
    zones = _tzinfos()
    return st.one_of(
        st.dates(),
        st.times(),
        st.times(timezones=zones),
        st.datetimes(),
        st.datetimes(timezones=zones),
        st.timedeltas(),
        zones,
    )


@_short_repr
def enums() -> Strategy:
    """Members of an ``Enum``, an ``IntEnum`` (a 10**20 value) and ``Flag`` combinations."""
    return st.one_of(
        st.sampled_from(list(_samples.Color)),
        st.sampled_from(list(_samples.Priority)),
        st.integers(0, 7).map(_samples.Permission),
    )


@_short_repr
def hashables() -> Strategy:
    """Values usable as dict keys and set elements.

    Values usable as dict keys and set elements (NaNs included), nested in tuples,
    frozensets and frozen dataclasses.
    """
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        numbers().filter(lambda n: not (isinstance(n, decimal.Decimal) and n.is_snan())),
        st.text(st.characters()),
        st.binary(),
        temporals(),
        enums(),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.tuples(inner, inner),
            st.frozensets(inner, max_size=3),
            st.builds(_samples.Point, inner, inner),
        ),
        max_leaves=4,
    )


# -- functions and classes --------------------------------------------------------------


@_short_repr
def importable_functions() -> Strategy:
    """Callables and classes that travel by reference.

    Functions, builtins, partials and classes that travel by reference (importable
    by name), so even plain pickle sends them.
    """
    module_level = [_samples.identity, _samples.double, _samples.negate, _samples.square]
    return st.one_of(
        st.sampled_from([*module_level, abs, operator.neg, math.factorial]),
        st.builds(functools.partial, st.just(operator.add), st.integers()),
        st.sampled_from(
            [int, dict, _samples.Record, _samples.Point, _samples.Color, ValueError, datetime.date]
        ),
    )


_EXPRESSIONS: Strategy = st.recursive(
    st.one_of(st.sampled_from(["x", "k"]), st.integers(-9, 9).map(str)),
    lambda inner: st.one_of(
        st.builds("({} {} {})".format, inner, st.sampled_from(["+", "-", "*"]), inner),
        inner.map("abs({})".format),
        inner.map("math.floor({})".format),
    ),
    max_leaves=5,
)


def _unary(children: Strategy) -> Strategy:
    """Functions ``int -> int``: module-level ones, adders, lambdas."""
    return st.one_of(
        st.sampled_from([_samples.identity, _samples.double, _samples.negate]),
        st.builds(_samples.make_adder, st.integers()),
        st.builds(_lambda, _EXPRESSIONS, st.integers(-5, 5), children),
    )


def _lambda(expression: str, k: int, payload: Any) -> Callable[..., Any]:
    return _samples.compile_lambda(expression, {"k": k, "payload": payload})


@_short_repr
def by_value_functions(children: Strategy | None = None) -> Strategy:
    """Functions no interpreter can import, so their code must travel by value.

    Lambdas compiled from generated expressions (with an int default ``k`` and a
    ``payload`` default drawn from ``children``), closures over ints, over
    ``children`` values and over other functions, and a closure that refers to
    itself. Plain pickle cannot send any of them.
    """
    children = primitives() if children is None else children
    unary = _unary(children)
    return st.one_of(
        st.builds(_lambda, _EXPRESSIONS, st.integers(-5, 5), children),
        st.builds(_samples.make_adder, st.integers()),
        st.builds(_samples.make_getter, children),
        st.builds(_samples.make_composed, unary, unary),
        st.builds(_samples.make_factorial),
    )


# -- composites --------------------------------------------------------------------


@_short_repr
def dataclass_instances(children: Strategy) -> Strategy:
    """Instances of user-defined classes holding ``children``.

    A mutable dataclass, a frozen one, a slotted one and a plain class, holding
    ``children``.
    """
    return st.one_of(
        st.builds(_samples.Record, children, children, st.lists(children, max_size=3)),
        st.builds(_samples.Point, children, children),
        st.builds(_samples.SlottedPoint, children, children),
        st.builds(_samples.Pair, children, children),
    )


def _with_notes(exc: BaseException, notes: list[str]) -> BaseException:
    for note in notes:
        exc.add_note(note)  # type: ignore[attr-defined,unused-ignore]
    return exc


@_short_repr
def exceptions(children: Strategy | None = None) -> Strategy:
    """Exceptions, builtin and user-defined.

    Builtin and user-defined exceptions whose ``args`` (and attributes) are drawn
    from ``children``; ``OSError`` subclasses chosen by errno; on Python 3.11+
    ``__notes__`` and exception groups.
    """
    children = primitives() if children is None else children
    args = st.lists(children, max_size=3)
    kinds = st.sampled_from([ValueError, KeyError, RuntimeError, Exception, _samples.SampleError])
    base = st.one_of(
        st.builds(lambda cls, a: cls(*a), kinds, args),
        st.builds(lambda a, tag: _samples.TaggedError(*a, tag=tag), args, children),
        st.builds(OSError, st.integers(1, 40), st.text(), st.text()),
    )
    if sys.version_info >= (3, 11):
        from builtins import ExceptionGroup

        noted = st.builds(_with_notes, base, st.lists(st.text(), min_size=1, max_size=2))
        group = st.builds(ExceptionGroup, st.text(), st.lists(base, min_size=1, max_size=3))
        return st.one_of(base, noted, group)
    return base


@_short_repr
def containers(children: Strategy) -> Strategy:
    """Containers of ``children``.

    Lists, tuples, dicts (keys from :func:`hashables`), sets, frozensets, deques,
    ``OrderedDict`` and ``defaultdict``, dataclasses and exceptions, holding
    ``children``; also one child referenced twice, and a dict that contains
    itself (shared references and cycles must survive too).
    """
    keys = hashables()
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(keys, children, max_size=4),
        st.sets(keys, max_size=4),
        st.frozensets(keys, max_size=4),
        st.lists(children, max_size=3).map(collections.deque),
        st.dictionaries(keys, children, max_size=3).map(collections.OrderedDict),
        st.dictionaries(st.text(), st.lists(children, max_size=2), max_size=3).map(
            lambda d: collections.defaultdict(list, d)
        ),
        dataclass_instances(children),
        exceptions(children),
        children.map(_shared),
        children.map(_cyclic),
    )


def _shared(value: Any) -> list[Any]:
    """The same object twice: it must come back as one object, twice."""
    return [value, value]


def _cyclic(value: Any) -> dict[str, Any]:
    """A dict that contains itself (through a list): the cycle must survive."""
    cycle: dict[str, Any] = {"value": value}
    cycle["self"] = [cycle]
    return cycle


@_short_repr
def numpy_arrays() -> Strategy:
    """Numpy arrays of every kind of dtype and layout.

    Numpy arrays (needs numpy): every scalar dtype in both byte orders, byte and
    unicode strings, floats full of NaN/±inf/-0.0, object arrays of
    :func:`primitives`; 0 to 3 dimensions; C, Fortran, transposed, strided and
    reversed layouts; now and then 1 MiB or so.
    """
    import numpy as np
    from hypothesis.extra import numpy as npst

    shapes = npst.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    dtypes = st.one_of(
        npst.scalar_dtypes(),
        npst.integer_dtypes(endianness="?"),
        npst.floating_dtypes(endianness="?"),
        npst.complex_number_dtypes(endianness="?"),
        npst.byte_string_dtypes(max_len=4),
        npst.unicode_string_dtypes(max_len=4),
    )
    plain = npst.arrays(dtypes, shapes)
    inexact = st.one_of(
        npst.floating_dtypes(endianness="?"), npst.complex_number_dtypes(endianness="?")
    )
    special = npst.arrays(
        inexact, shapes, elements=st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1.5])
    )
    objects = npst.arrays(np.dtype(object), shapes, elements=primitives())
    big = st.builds(
        lambda n, dtype: np.arange(n).astype(dtype),
        st.integers(10_000, 200_000),
        st.sampled_from(["f8", "i4", ">i8", "c16", "u1"]),
    )
    layouts = st.sampled_from([_as_is, _fortran, _transposed, _strided, _reversed])
    return st.builds(lambda layout, a: layout(a), layouts, st.one_of(plain, special, objects, big))


def _as_is(a: Any) -> Any:
    return a


def _fortran(a: Any) -> Any:
    import numpy as np

    return np.asfortranarray(a)


def _transposed(a: Any) -> Any:
    return a.T


def _strided(a: Any) -> Any:
    return a[..., ::2] if a.ndim else a


def _reversed(a: Any) -> Any:
    return a[::-1] if a.ndim else a


# -- everything --------------------------------------------------------------------------


def _leaves(numpy: bool | None, *extra: Strategy) -> Strategy:
    leaves = [primitives(), temporals(), enums(), importable_functions(), *extra]
    if numpy or (numpy is None and _has_numpy()):
        leaves.append(numpy_arrays())
    return st.one_of(*leaves)


@_short_repr
def picklable_values(*, numpy: bool | None = None, max_leaves: int = 10) -> Strategy:
    """Nested values every method must round-trip, plain pickle included.

    Leaves are :func:`primitives`, :func:`temporals`, :func:`enums`,
    :func:`importable_functions` and, when ``numpy`` is true (``None``: when
    numpy is importable), :func:`numpy_arrays`; they nest in :func:`containers`
    up to ``max_leaves`` leaves. No function here needs to travel by value.
    """
    return st.recursive(_leaves(numpy), containers, max_leaves=max_leaves)


@_short_repr
def roundtrip_values(
    *, functions: bool = True, numpy: bool | None = None, max_leaves: int = 10
) -> Strategy:
    """Nested values that the default serializer (and cloudpickle, dill) must round-trip.

    :func:`picklable_values` plus, when ``functions`` is true,
    :func:`by_value_functions` anywhere in the structure (closures capturing
    containers, lambdas with payload defaults, functions inside dicts...).
    """
    if not functions:
        return picklable_values(numpy=numpy, max_leaves=max_leaves)
    return st.recursive(
        _leaves(numpy, by_value_functions()),
        lambda children: st.one_of(containers(children), by_value_functions(children)),
        max_leaves=max_leaves,
    )

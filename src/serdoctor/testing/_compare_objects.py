"""Comparison rules of values compared by what they hold: exceptions, numpy arrays, objects.

Exceptions compare by class name, args and attributes (a received exception
may be a stand-in of another class with the same name); numpy arrays and
scalars by dtype (byte order aside), shape and bytes, or item by item for
object arrays; any other object by its own ``__eq__``, else by what pickle
would send for it (``__reduce_ex__``: constructor, arguments, state, items).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from serdoctor.serialize import _paths as step
from serdoctor.testing._difference import (
    MISSING,
    Comparer,
    RoundTripDifference,
    short,
    types_differ,
    values_differ,
)

__all__ = ["array_difference", "exception_difference", "object_difference"]


def exception_difference(
    walker: Comparer, a: BaseException, b: Any, path: str
) -> RoundTripDifference | None:
    """The first difference between exception ``a`` (sent) and ``b`` (received), or None."""
    if not isinstance(b, BaseException) or type(a).__qualname__ != type(b).__qualname__:
        return types_differ(a, b, path)
    seen = walker.seen(a, b, path)
    if seen is True:
        return None
    if isinstance(seen, RoundTripDifference):
        return seen
    return walker.diff(a.args, b.args, f"{path}.args") or walker.attributes(a, b, path)


def array_difference(
    walker: Comparer, np: Any, a: Any, b: Any, path: str
) -> RoundTripDifference | None:
    """The first difference between numpy array or scalar ``a`` and ``b``, or None."""
    if type(a) is not type(b):
        return types_differ(a, b, path)
    if a.dtype != b.dtype:
        native = a.dtype.newbyteorder("=")
        if native != b.dtype.newbyteorder("="):
            return RoundTripDifference(
                path, a, b, f"sent dtype {a.dtype.str}, got dtype {b.dtype.str}"
            )
        # Only the byte order differs: numpy itself unpickles in-band arrays in
        # native order. The values are what must survive; compare them natively.
        a, b = a.astype(native), b.astype(native)
    if a.shape != b.shape:
        return RoundTripDifference(path, a, b, f"sent shape {a.shape}, got shape {b.shape}")
    if isinstance(a, np.generic):
        same = a.tobytes() == b.tobytes()
        return None if same else values_differ(a, b, path)
    seen = walker.seen(a, b, path)
    if seen is True:
        return None
    if isinstance(seen, RoundTripDifference):
        return seen
    if a.dtype.hasobject:
        for index in np.ndindex(a.shape):
            found = walker.diff(a[index], b[index], path + step.index(_index(index)))
            if found:
                return found
        return None
    if a.tobytes() == b.tobytes():
        return None
    for index in np.ndindex(a.shape):
        if a[index].tobytes() != b[index].tobytes():
            return values_differ(a[index], b[index], path + step.index(_index(index)))
    return values_differ(a, b, path)  # pragma: no cover - bytes differ somewhere


def object_difference(walker: Comparer, a: Any, b: Any, path: str) -> RoundTripDifference | None:
    """Compare ``a`` and ``b`` by ``__eq__``, else by their ``__reduce_ex__``."""
    eq: Any = type(a).__eq__
    own_eq = eq is not object.__eq__
    if own_eq:
        try:
            result = a == b
            if result is True or (type(result).__name__ == "bool_" and bool(result)):
                return None
        except Exception:
            pass
    try:
        ra, rb = _reduce(a), _reduce(b)
    except Exception:
        found = values_differ(a, b, path)
        how = "their __eq__ says no" if own_eq else "no __eq__, and no __reduce_ex__ to compare"
        return dataclasses.replace(found, reason=f"{found.reason} ({how})")
    if isinstance(ra, str) or isinstance(rb, str):
        return None if ra == rb else values_differ(a, b, path)
    return _reduced(walker, ra, rb, path)


def _reduced(
    walker: Comparer, ra: tuple[Any, ...], rb: tuple[Any, ...], path: str
) -> RoundTripDifference | None:
    ra, rb = (*ra, None, None, None)[:5], (*rb, None, None, None)[:5]
    found = walker.diff(ra[0], rb[0], path + step.reduce_constructor())
    if found:
        return found
    args_a, args_b = tuple(ra[1] or ()), tuple(rb[1] or ())
    if len(args_a) != len(args_b):
        return RoundTripDifference(
            path,
            args_a,
            args_b,
            f"rebuilt from {short(args_a)} when sent, from {short(args_b)} when received",
        )
    for j, (u, v) in enumerate(zip(args_a, args_b, strict=True)):
        found = walker.diff(u, v, path + step.reduce_arg(j))
        if found:
            return found
    found = _state(walker, ra[2], rb[2], path)
    if found:
        return found
    for i in (3, 4):
        x = None if ra[i] is None else list(ra[i])
        y = None if rb[i] is None else list(rb[i])
        found = walker.diff(x, y, path + step.reduce_items(dict_items=i == 4))
        if found:
            return found
    return None


def _state(walker: Comparer, x: Any, y: Any, path: str) -> RoundTripDifference | None:
    """Compare pickle state; a dict (or ``(dict, slots)``) reads as attributes."""
    if isinstance(x, tuple) and len(x) == 2 and all(s is None or isinstance(s, dict) for s in x):
        merged_x = {**(x[0] or {}), **(x[1] or {})}
        merged_y = {**(y[0] or {}), **(y[1] or {})} if isinstance(y, tuple) else y
        return _state(walker, merged_x, merged_y, path)
    if isinstance(x, dict) and isinstance(y, dict) and all(isinstance(k, str) for k in x):
        for name, value in x.items():
            if name not in y:
                return RoundTripDifference(
                    path + step.attr(name),
                    value,
                    MISSING,
                    f"attribute {name!r} was sent but is missing after the round trip",
                )
            found = walker.diff(value, y[name], path + step.attr(name))
            if found:
                return found
        extra = [k for k in y if k not in x]
        if extra:
            return RoundTripDifference(
                path + step.attr(extra[0]),
                MISSING,
                y[extra[0]],
                f"attribute {extra[0]!r} was not sent but came back",
            )
        return None
    return walker.diff(x, y, path + step.reduce_state())


def _index(index: tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in index)


def _reduce(obj: Any) -> str | tuple[Any, ...]:
    reduced = obj.__reduce_ex__(4)
    if isinstance(reduced, str):
        return reduced
    return tuple(reduced)

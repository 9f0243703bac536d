"""Comparison rules of functions: name, code, defaults, closure cells and used globals.

A function that travels by value (``__main__``, a lambda, a by-value module)
comes back as a new function object; it is the same function when its module,
qualified name, code, defaults and keyword defaults, closure cells and the
globals its code (and the code nested in it) may use all compare equal.
"""

from __future__ import annotations

import types
from typing import Any

from serdoctor.serialize import _paths as step
from serdoctor.testing._difference import MISSING, Comparer, RoundTripDifference, values_differ

__all__ = ["function_difference"]


def function_difference(
    walker: Comparer, a: types.FunctionType, b: Any, path: str
) -> RoundTripDifference | None:
    """The first difference between function ``a`` (sent) and ``b`` (received), or None."""
    for attr in ("__module__", "__qualname__"):
        if getattr(a, attr) != getattr(b, attr):
            return RoundTripDifference(
                path,
                a,
                b,
                f"sent function {a.__module__}.{a.__qualname__}, "
                f"got {b.__module__}.{b.__qualname__}",
            )
    if a.__code__ != b.__code__:
        return RoundTripDifference(
            path, a, b, f"function {a.__qualname__} came back with other code"
        )
    found = walker.diff(a.__defaults__, b.__defaults__, f"{path}.__defaults__") or walker.diff(
        a.__kwdefaults__, b.__kwdefaults__, f"{path}.__kwdefaults__"
    )
    if found:
        return found
    for name, cell_a, cell_b in zip(
        a.__code__.co_freevars, a.__closure__ or (), b.__closure__ or (), strict=False
    ):
        found = _cell(walker, cell_a, cell_b, path + step.closure(name))
        if found:
            return found
    for name in sorted(_global_names(a.__code__)):
        if name not in a.__globals__:
            continue
        if name not in b.__globals__:
            return RoundTripDifference(
                path + step.global_(name),
                a.__globals__[name],
                MISSING,
                f"global {name!r} used by {a.__qualname__} is missing after the round trip",
            )
        found = walker.diff(a.__globals__[name], b.__globals__[name], path + step.global_(name))
        if found:
            return found
    return walker.attributes(a, b, path)


def _cell(
    walker: Comparer, a: types.CellType, b: types.CellType, path: str
) -> RoundTripDifference | None:
    try:
        x = a.cell_contents
    except ValueError:  # an empty cell
        x = MISSING
    try:
        y = b.cell_contents
    except ValueError:
        y = MISSING
    if x is MISSING or y is MISSING:
        return None if x is y else values_differ(x, y, path)
    return walker.diff(x, y, path)


def _global_names(code: types.CodeType) -> set[str]:
    """Names a code object (and the code nested in it) may look up as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names

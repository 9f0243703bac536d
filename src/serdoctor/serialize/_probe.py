"""Finding the exact sub-object that cannot be serialized.

When every method fails on an object, :func:`find_culprit` walks the object
graph the way pickle would reach it (container items, the state returned by
``__reduce_ex__``, a function's closure cells, globals and defaults) and
descends into the first child that still fails, until it reaches an object
whose children all succeed: that object is the culprit. Its path reads like
Python: ``args[1]['pool']._lock`` (the steps are ``_paths``', shared by every
walk over an object graph).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from serdoctor.serialize import _paths as step

MAX_DEPTH = 200
MAX_CHILDREN = 10_000
_CLASS_SKIP = frozenset({"__dict__", "__weakref__", "__doc__", "__module__", "__qualname__"})


@dataclass(frozen=True)
class Culprit:
    """The deepest sub-object that cannot be sent, and why."""

    path: str
    type_name: str
    error: str
    obj: Any = field(default=None, repr=False, compare=False)  #: the object itself


def _type_name(obj: Any) -> str:
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _state_children(obj: Any) -> Iterator[tuple[str, Any]]:
    try:
        reduced = obj.__reduce_ex__(5)
    except Exception:
        reduced = None
    if not isinstance(reduced, tuple):
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            for name, value in attrs.items():
                yield step.attr(name), value
        return
    args = reduced[1] if len(reduced) > 1 else ()
    state = reduced[2] if len(reduced) > 2 else None
    slots: Any = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    for part in (state, slots):
        if isinstance(part, dict):
            for name, value in part.items():
                yield (step.attr(name) if isinstance(name, str) else step.key(name)), value
        elif part is not None:
            yield step.reduce_state(), part
    if isinstance(args, tuple):
        for i, value in enumerate(args):
            if not isinstance(value, type):
                yield step.reduce_arg(i), value
    if len(reduced) > 3 and reduced[3] is not None:
        for i, value in enumerate(reduced[3]):
            yield step.index(i), value
    if len(reduced) > 4 and reduced[4] is not None:
        for key, value in reduced[4]:
            yield step.key(key), value


def _function_children(fn: types.FunctionType) -> Iterator[tuple[str, Any]]:
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        yield step.closure(name), value
    for name in fn.__code__.co_names:
        if name in fn.__globals__:
            value = fn.__globals__[name]
            if not isinstance(value, types.ModuleType):
                yield step.global_(name), value
    for i, value in enumerate(fn.__defaults__ or ()):
        yield step.default(i), value
    for name, value in (fn.__kwdefaults__ or {}).items():
        yield step.default(name), value


def children(obj: Any) -> Iterator[tuple[str, Any]]:
    """The sub-objects pickle would serialize for ``obj``, with path suffixes."""
    if isinstance(obj, dict):
        for key, value in list(obj.items())[:MAX_CHILDREN]:
            yield step.key(key), value
            if not isinstance(key, (str, int, float, bytes, tuple, frozenset, type(None))):
                yield step.dict_key(key), key
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj[:MAX_CHILDREN]):
            yield step.index(i), value
    elif isinstance(obj, (set, frozenset)):
        for i, value in enumerate(list(obj)[:MAX_CHILDREN]):
            yield step.member(i), value
    elif isinstance(obj, types.FunctionType):
        yield from _function_children(obj)
    elif isinstance(obj, type):
        for name, value in list(vars(obj).items()):
            if name not in _CLASS_SKIP:
                yield step.attr(name), value
    elif isinstance(obj, (types.ModuleType, str, bytes, int, float)):
        return
    else:
        yield from _state_children(obj)


def find_culprit(
    obj: Any,
    fails: Callable[[Any], str | None],
    root: str = "obj",
    stop: Callable[[Any], bool] | None = None,
) -> Culprit | None:
    """Descend from ``obj`` to the deepest sub-object for which ``fails`` gives an error.

    ``fails(x)`` returns None when ``x`` can be sent, else the error text.
    ``stop(x)`` true ends the descent at ``x`` (an object to blame as a whole,
    such as an Event rather than the lock inside it). Returns None when ``obj``
    itself can be sent.
    """
    error = fails(obj)
    if error is None:
        return None
    path = root
    seen = {id(obj)}
    for _ in range(MAX_DEPTH):
        if stop is not None and stop(obj):
            break
        for suffix, child in children(obj):
            if id(child) in seen:
                continue
            child_error = fails(child)
            if child_error is not None:
                seen.add(id(child))
                obj, path, error = child, path + suffix, child_error
                break
        else:
            break
    return Culprit(path, _type_name(obj), error, obj)

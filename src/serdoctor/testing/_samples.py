"""Importable sample types and functions used by the strategies.

Everything defined at module level here is importable, so it travels *by
reference* (``from serdoctor.testing._samples import name``) and any method,
plain pickle included, can send it. The ``make_*`` factories build closures
whose qualified names (``make_adder.<locals>.add``) cannot be imported, and
:func:`compile_lambda` builds lambdas in a module that does not exist: those
must travel *by value* (cloudpickle, dill) and prove that code really crossed.

Every sample function takes one ``int`` and returns an ``int`` (the closures
made by :func:`make_getter` take nothing and return their captured value), so
tests can compare behaviour as well as structure.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "GENERATED_MODULE",
    "Color",
    "Pair",
    "Permission",
    "Point",
    "Priority",
    "Record",
    "SampleError",
    "SlottedPoint",
    "TaggedError",
    "compile_lambda",
    "double",
    "identity",
    "make_adder",
    "make_composed",
    "make_factorial",
    "make_getter",
    "negate",
    "square",
]

GENERATED_MODULE = "serdoctor.testing._generated"
"""The ``__module__`` of lambdas made by :func:`compile_lambda`; it is never importable."""


# -- module-level functions (by reference) -----------------------------------


def identity(x: int) -> int:
    """Return ``x``."""
    return x


def double(x: int) -> int:
    """Return ``2 * x``."""
    return 2 * x


def negate(x: int) -> int:
    """Return ``-x``."""
    return -x


def square(x: int) -> int:
    """Return ``x * x``."""
    return x * x


# -- closures (by value) ------------------------------------------------------


def make_adder(k: int) -> Callable[[int], int]:
    """A closure over ``k``: ``add(x) == x + k``."""

    def add(x: int) -> int:
        return x + k

    return add


def make_getter(value: Any) -> Callable[[], Any]:
    """A closure that carries an arbitrary ``value``: ``get() is value``."""

    def get() -> Any:
        return value

    return get


def make_composed(f: Callable[[int], int], g: Callable[[int], int]) -> Callable[[int], int]:
    """A closure over two functions: ``compose(x) == f(g(x))``."""

    def compose(x: int) -> int:
        return f(g(x))

    return compose


def make_factorial() -> Callable[[int], int]:
    """A closure that refers to itself through its own cell (a cycle in the payload)."""

    def fact(n: int) -> int:
        return 1 if n <= 1 else n * fact(n - 1)

    return fact


def compile_lambda(expression: str, defaults: dict[str, Any] | None = None) -> Callable[..., Any]:
    """Compile ``lambda x, **defaults: <expression>`` in a module that does not exist.

    ``expression`` may use ``x``, the names in ``defaults`` and ``math``. The
    lambda's ``__module__`` is :data:`GENERATED_MODULE`, which no interpreter
    can import, so it must travel by value.
    """
    params = ", ".join(["x", *(f"{name}={name}" for name in defaults or {})])
    namespace: dict[str, Any] = {"__name__": GENERATED_MODULE, "math": math}
    namespace.update(defaults or {})
    fn: Callable[..., Any] = eval(f"lambda {params}: {expression}", namespace)
    # The defaults were bound at definition time; keep them out of the globals
    # so only what the expression uses travels with the function.
    for name in defaults or {}:
        del namespace[name]
    return fn


# -- enums --------------------------------------------------------------------


class Color(enum.Enum):
    """A plain enum."""

    RED = 1
    GREEN = "green"
    BLUE = (0, 0, 255)


class Priority(enum.IntEnum):
    """An int enum."""

    LOW = -1
    HIGH = 10**20


class Permission(enum.Flag):
    """A flag enum (members combine)."""

    READ = 1
    WRITE = 2
    EXECUTE = 4


# -- dataclasses ---------------------------------------------------------------


@dataclass
class Record:
    """A mutable dataclass with a defaulted container field."""

    name: Any
    value: Any = None
    tags: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Point:
    """A frozen (hashable when its fields are) dataclass."""

    x: Any
    y: Any


@dataclass(slots=True)
class SlottedPoint:
    """A dataclass with ``__slots__`` and no ``__dict__``."""

    x: Any
    y: Any


class Pair:
    """A plain class without ``__eq__``: compared by its attributes."""

    def __init__(self, left: Any, right: Any) -> None:
        self.left = left
        self.right = right

    def __repr__(self) -> str:
        return f"Pair({self.left!r}, {self.right!r})"


# -- exceptions ----------------------------------------------------------------


class SampleError(Exception):
    """A user-defined exception whose ``args`` rebuild it."""


class TaggedError(ValueError):
    """An exception that carries an attribute beside its args."""

    def __init__(self, *args: Any, tag: Any = None) -> None:
        super().__init__(*args)
        self.tag = tag

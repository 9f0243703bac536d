"""One path syntax for every walk over an object graph: ``job.settings['pool'].guard``.

The refusals of ``dumps`` and ``ser-doctor check`` (``_probe``), the proxy
policy (``proxy._walk``) and the round-trip assertions of ``serdoctor.testing``
all name where they are in an object with these steps, so that a path printed
by one can be read, and followed, with the others.

Steps read like Python wherever Python can say it: ``[3]`` an index, ``['key']``
a dict key (its ``repr``, cut to about 60 characters), ``.name`` an attribute,
``.__globals__['K']`` a function's global, ``.__defaults__[0]`` a default,
``.__reduce__()[1][0]`` an argument pickle rebuilds an object with,
``.__getstate__()`` the state it sets. What Python cannot say goes in angle
brackets: ``<closure n>`` a closure cell, ``<item 2>`` a set member,
``<key ...>`` a dict key itself.
"""

from __future__ import annotations

import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlong = 60


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to about 60 characters; never raises."""
    try:
        return _REPR.repr(value)
    except Exception:  # a broken __repr__ must not break a path or hide a difference
        return f"<{type(value).__qualname__} object at {id(value):#x}>"


def index(i: int | str) -> str:
    """A sequence item: ``[3]`` (numpy indexes pass ``"1, 2"``)."""
    return f"[{i}]"


def key(k: Any) -> str:
    """A dict value: ``['pool']``."""
    return f"[{short_repr(k)}]"


def attr(name: str) -> str:
    """An attribute: ``.guard``."""
    return f".{name}"


def dict_key(k: Any) -> str:
    """A dict key itself (for keys that are objects): ``<key Point(x=1)>``."""
    return f"<key {short_repr(k)}>"


def member(i: int) -> str:
    """The ``i``-th member of a set, in iteration order: ``<item 2>``."""
    return f"<item {i}>"


def closure(name: str) -> str:
    """A function's closure cell for free variable ``name``: ``<closure n>``."""
    return f"<closure {name}>"


def global_(name: str) -> str:
    """A global a function uses: ``.__globals__['K']``."""
    return f".__globals__[{name!r}]"


def default(which: int | str) -> str:
    """A function's default: ``.__defaults__[0]``, or ``.__kwdefaults__['flag']``."""
    if isinstance(which, int):
        return f".__defaults__[{which}]"
    return f".__kwdefaults__[{which!r}]"


def reduce_constructor() -> str:
    """The callable pickle rebuilds an object with."""
    return ".__reduce__()[0]"


def reduce_arg(j: int) -> str:
    """The ``j``-th argument pickle rebuilds an object with."""
    return f".__reduce__()[1][{j}]"


def reduce_state() -> str:
    """The state pickle sets on a rebuilt object, when it is not an attribute dict."""
    return ".__getstate__()"


def reduce_items(dict_items: bool = False) -> str:
    """The list items (or, with ``dict_items``, the dict items) pickle adds after rebuilding."""
    return ".__reduce__()[4]" if dict_items else ".__reduce__()[3]"

"""Futures among a task's arguments: found, waited for, and replaced by their results.

Two :func:`functools.singledispatch` functions do the work, so that users can
teach them their own containers::

    @serdoctor.execute.find_futures.register
    def _(value: MyBag, found: list[Future]) -> None:
        for item in value.items:
            find_futures(item, found)

    @serdoctor.execute.replace_futures.register
    def _(value: MyBag, resolve) -> MyBag:
        return MyBag([replace_futures(item, resolve) for item in value.items])

Lists, tuples (named tuples too), dicts (values) and sets are handled; any
other object is left as it is.
"""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any


@functools.singledispatch
def find_futures(value: Any, found: list[concurrent.futures.Future[Any]]) -> None:
    """Append every future inside ``value`` to ``found``."""


@find_futures.register
def _(value: concurrent.futures.Future, found: list[concurrent.futures.Future[Any]]) -> None:  # type: ignore[type-arg]
    found.append(value)


@find_futures.register(list)
@find_futures.register(tuple)
@find_futures.register(set)
@find_futures.register(frozenset)
def _(value: Any, found: list[concurrent.futures.Future[Any]]) -> None:
    for item in value:
        find_futures(item, found)


@find_futures.register
def _(value: dict, found: list[concurrent.futures.Future[Any]]) -> None:  # type: ignore[type-arg]
    for item in value.values():
        find_futures(item, found)


def _result(future: Any) -> Any:
    return future.result(timeout=0)


@functools.singledispatch
def replace_futures(value: Any, resolve: Callable[[Any], Any] = _result) -> Any:
    """``value`` with every future inside it replaced by ``resolve(future)`` (its result)."""
    return value


@replace_futures.register
def _(value: concurrent.futures.Future, resolve: Callable[[Any], Any] = _result) -> Any:  # type: ignore[type-arg]
    return resolve(value)


@replace_futures.register
def _(value: list, resolve: Callable[[Any], Any] = _result) -> Any:  # type: ignore[type-arg]
    return [replace_futures(v, resolve) for v in value]


@replace_futures.register
def _(value: tuple, resolve: Callable[[Any], Any] = _result) -> Any:  # type: ignore[type-arg]
    items = [replace_futures(v, resolve) for v in value]
    if hasattr(value, "_fields"):  # a named tuple
        return type(value)(*items)
    return type(value)(items) if type(value) is not tuple else tuple(items)


@replace_futures.register(set)
@replace_futures.register(frozenset)
def _(value: Any, resolve: Callable[[Any], Any] = _result) -> Any:
    return type(value)(replace_futures(v, resolve) for v in value)


@replace_futures.register
def _(value: dict, resolve: Callable[[Any], Any] = _result) -> Any:  # type: ignore[type-arg]
    out = value.copy()
    for k, v in value.items():
        out[k] = replace_futures(v, resolve)
    return out

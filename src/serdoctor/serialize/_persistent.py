"""Persistent ids: large bytearrays out of band, and proxies, past pickle's fast path.

The C pickler never calls ``reducer_override`` for exact builtins such as
``bytearray``, but it consults ``persistent_id`` for every object. serdoctor
installs a ``persistent_id`` only for payloads that need one (a large
bytearray found by a bounded scan, or a proxy plan), so ordinary payloads
keep the C pickler's full speed. On loading, :func:`persistent_loader` turns
the ids back into objects.
"""

from __future__ import annotations

import itertools
import pickle
from typing import Any

from serdoctor.errors import DeserializationError
from serdoctor.serialize._rebuild import make_bytearray

#: bytearrays at least this large travel out of band when found by the bounded scan
BYTEARRAY_OUT_OF_BAND = 64 * 1024
_SCAN_BUDGET = 1000


def scan_bytearrays(obj: Any) -> set[int]:
    """Large bytearrays at the top or inside the first few container items."""
    found: set[int] = set()
    stack = [obj]
    budget = _SCAN_BUDGET
    while stack and budget > 0:
        item = stack.pop()
        budget -= 1
        t = type(item)
        if t is bytearray:
            if len(item) >= BYTEARRAY_OUT_OF_BAND:
                found.add(id(item))
        elif t is list or t is tuple:
            stack.extend(item[:budget])
        elif t is dict:
            stack.extend(itertools.islice(item.values(), budget))
    return found


def buffer_pid(ids: set[int]) -> Any:
    """persistent_id sending large bytearrays out of band, each once.

    Persistent ids bypass pickle's memo, so a bytearray met again is written
    as ``("sd:oob", n)``: the n-th one sent (see :func:`_persistent_loader`).
    """
    sent: dict[int, int] = {}

    def persistent_id(obj: Any) -> Any:
        key = id(obj)
        if key in ids:
            n = sent.get(key)
            if n is None:
                sent[key] = len(sent)
                return pickle.PickleBuffer(obj)
            return ("sd:oob", n)
        return None

    return persistent_id


def chain(first: Any, second: Any) -> Any:
    def persistent_id(obj: Any) -> Any:
        pid = first(obj)
        return second(obj) if pid is None else pid

    return persistent_id


def persistent_loader() -> Any:
    """A persistent_load for one ``loads``: shared proxied objects get one proxy."""
    memo: dict[Any, Any] = {}
    arrays: list[bytearray] = []

    def persistent_load(pid: Any) -> Any:
        if isinstance(pid, tuple) and pid and pid[0] == "sd:proxy":
            from serdoctor.serialize.proxy import load_persistent

            return load_persistent(pid, memo)
        if isinstance(pid, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
            arrays.append(make_bytearray(pid))
            return arrays[-1]
        if isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "sd:oob":
            try:
                return arrays[pid[1]]
            except (IndexError, TypeError):
                raise DeserializationError(
                    f"payload refers to out-of-band bytearray {pid[1]!r}, which it does not hold"
                ) from None
        raise DeserializationError(
            f"payload holds an unknown persistent id of type {type(pid).__name__}"
        )

    return persistent_load

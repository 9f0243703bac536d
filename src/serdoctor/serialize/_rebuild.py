"""Reducer / rebuilder pairs for objects pickle cannot send, or sends slowly.

The rebuilders are module-level functions whose import path is part of the
wire format (golden payloads pin it): rename them only with a format change.
"""

from __future__ import annotations

import pickle
from typing import Any

Reduced = tuple[Any, tuple[Any, ...]]


def reduce_memoryview(view: memoryview) -> Reduced:
    """Send a memoryview as an out-of-band buffer with its format and shape."""
    if view.c_contiguous:
        return _make_memoryview, (pickle.PickleBuffer(view), view.format, view.shape)
    return _make_memoryview, (view.tobytes(), view.format, view.shape)


def _make_memoryview(buf: Any, fmt: str, shape: tuple[int, ...]) -> memoryview:
    view = memoryview(buf).cast("B")
    if fmt == "B" and len(shape) == 1:
        return view
    shaped: memoryview = view.cast(fmt, shape)  # type: ignore[call-overload]
    return shaped


def make_bytearray(buf: Any) -> bytearray:
    """Rebuild a bytearray that travelled out of band; no copy when the frame is one."""
    if isinstance(buf, bytearray):
        return buf
    return bytearray(buf)

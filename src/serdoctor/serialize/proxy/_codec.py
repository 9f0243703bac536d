"""How a proxied object is written to its store, and rebuilt from it.

``dump_object(obj) -> (kind, data, meta)``; ``kind`` and ``meta`` travel in
the pid (inside the payload body, so covered by the payload's signature),
``data`` goes to the store:

=========== ============================================ ===========================
kind        data                                         meta
=========== ============================================ ===========================
bytes       the object itself (no copy)                  None
bytearray   the object itself (no copy)                  None
str         UTF-8 (``surrogatepass``)                    None
ndarray     the raw buffer (no copy when contiguous)     dtype, shape, order
pickle      pickle protocol 5 (cloudpickle as fallback)  ``{"sha256": hex digest}``
=========== ============================================ ===========================

Only ``pickle`` data can run code when loaded, so it is the one that carries a
digest: the receiver refuses to unpickle bytes that changed in the store after
the (possibly signed) payload was made.  Plain numeric numpy arrays never go
through pickle, and load without executing anything.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from typing import Any

import cloudpickle

__all__ = ["StoredObjectError", "default_class", "dump_object", "load_object"]


class StoredObjectError(ValueError):
    """The bytes fetched from the store cannot be turned back into the object."""


_DEFAULT_CLASSES: dict[str, type] = {"bytes": bytes, "bytearray": bytearray, "str": str}


def _dump_array(arr: Any) -> tuple[Any, dict[str, Any]] | None:
    """Raw buffer and layout of a plain numeric array; None when pickle is needed."""
    dtype = arr.dtype
    if dtype.hasobject or dtype.fields is not None or arr.size == 0:
        return None
    if arr.flags.c_contiguous:
        order, flat = "C", arr
    elif arr.flags.f_contiguous:
        order, flat = "F", arr.T  # the transpose of an F array is C-contiguous
    else:
        np = sys.modules["numpy"]
        order, flat = "C", np.ascontiguousarray(arr)
    meta = {"dtype": dtype.str, "shape": list(arr.shape), "order": order}
    return memoryview(flat).cast("B"), meta


def dump_object(obj: Any) -> tuple[str, Any, Any]:
    """Serialize a proxied object into ``(kind, bytes-like data, meta)``."""
    tp = type(obj)
    if tp is bytes:
        return "bytes", obj, None
    if tp is bytearray:
        return "bytearray", obj, None
    if tp is str:
        return "str", obj.encode("utf-8", "surrogatepass"), None
    np = sys.modules.get("numpy")
    if np is not None and tp is np.ndarray:
        raw = _dump_array(obj)
        if raw is not None:
            return "ndarray", raw[0], raw[1]
    try:
        data = pickle.dumps(obj, protocol=5)
    except Exception:
        data = cloudpickle.dumps(obj, protocol=5)
    return "pickle", data, {"sha256": hashlib.sha256(data).hexdigest()}


def _load_array(data: Any, meta: dict[str, Any]) -> Any:
    import numpy as np

    buffer = bytearray(data)  # one copy, like unpickling: the array is writable
    flat = np.frombuffer(buffer, dtype=np.dtype(meta["dtype"]))
    shape = tuple(meta["shape"])
    if meta.get("order") == "F":
        return flat.reshape(shape[::-1]).T
    return flat.reshape(shape)


def load_object(kind: str, data: Any, meta: Any) -> Any:
    """Rebuild an object from :func:`dump_object`'s ``kind``, ``data`` and ``meta``.

    Raises :class:`StoredObjectError` for an unknown kind or pickled data whose
    digest does not match.
    """
    if kind == "bytes":
        return data if type(data) is bytes else bytes(data)
    if kind == "bytearray":
        return bytearray(data)
    if kind == "str":
        return bytes(data).decode("utf-8", "surrogatepass")
    if kind == "ndarray":
        return _load_array(data, meta)
    if kind == "pickle":
        expected = meta.get("sha256") if isinstance(meta, dict) else None
        if expected is None or hashlib.sha256(data).hexdigest() != expected:
            raise StoredObjectError(
                "the stored bytes do not match the digest recorded in the payload: the object "
                "was changed in the store after the payload was made, so it is not unpickled; "
                "make sure only trusted processes can write to the store"
            )
        return pickle.loads(data)
    raise StoredObjectError(
        f"unknown proxied-object encoding {kind!r}: the payload was made by a newer serdoctor; "
        "upgrade serdoctor where it is loaded"
    )


def default_class(kind: str, type_name: str = "") -> type | None:
    """The class an unresolved proxy reports to ``isinstance``, when known here.

    Looked up without importing anything: a class whose module is not loaded
    yet is left unknown (``isinstance`` then resolves the proxy).
    """
    found = _DEFAULT_CLASSES.get(kind)
    if found is not None:
        return found
    module_name, _, qualname = type_name.rpartition(".")
    if not module_name:
        module_name, qualname = "builtins", type_name
    if module_name == "__main__":  # another program's __main__ here
        return None
    value: Any = sys.modules.get(module_name)
    for part in qualname.split(".") if value is not None else ():
        value = getattr(value, part, None)
    return value if isinstance(value, type) else None

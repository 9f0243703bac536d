"""Find the objects a :class:`~serdoctor.serialize.proxy._policy.ProxyPolicy` proxies.

Two entry points, both pure functions of the object graph:

``probe(obj, min_bytes)``
    A bounded, cheap look at the root and the first two levels of plain
    ``dict``/``list``/``tuple`` containers: is there an exact ``bytes``,
    ``str``, ``bytearray``, ``array.array`` or numpy array of at least
    ``min_bytes``?  Runs before the first pickling pass, so it must cost next to
    nothing on small payloads (exact-type dict lookups, well under a microsecond).

``find(obj, min_bytes, types, predicate)``
    The full walk: iterative (no recursion limit), memoised by ``id`` (shared
    and cyclic objects are visited once), following what pickle would follow
    for ordinary objects: list/tuple items, dict values, instance ``__dict__``
    and ``__slots__``.  Dict keys and set members are not followed: they are
    hashed while loading, which would resolve a proxy at once.  Returns
    ``{id(obj): (obj, path)}`` for every object to proxy; a match is not walked
    into.  Over-matching is harmless: an object the pickler never reaches is
    never stored.

Never calls ``isinstance`` on, or reads attributes of, a ProxyStore proxy:
that would resolve it.  Only ``type(x)`` is used for dispatch.
"""

from __future__ import annotations

import array
import sys
import types as _types
from collections import deque
from collections.abc import Callable
from typing import Any

from proxystore.proxy import Proxy

from serdoctor.errors import SerializationError
from serdoctor.serialize import _paths as step

__all__ = ["find", "format_path", "note_numpy", "probe", "size_of", "sizer_for"]

Sizer = Callable[[Any], int]

# Types pickle writes inline and that never hold anything worth proxying.
_ATOMIC: frozenset[type] = frozenset({type(None), bool, int, float, complex, type(...)})
# Objects pickle sends by reference (or that we refuse to look inside).
_OPAQUE: frozenset[type] = frozenset(
    {
        _types.ModuleType,
        _types.FunctionType,
        _types.BuiltinFunctionType,
        _types.MethodType,
        _types.CodeType,
        _types.FrameType,
        _types.GeneratorType,
        type,
    }
)
_STRINGISH: frozenset[type] = frozenset({str, bytes, bytearray})


def _array_size(a: array.array[Any]) -> int:
    return len(a) * a.itemsize


def _nbytes(a: Any) -> int:
    return int(a.nbytes)


# Exact type -> size function (None: no cheap size).  Filled lazily for
# subclasses and numpy; cleared when it grows past _CACHE_LIMIT (dynamic classes).
_SIZERS: dict[type, Sizer | None] = {
    bytes: len,
    str: len,
    bytearray: len,
    array.array: _array_size,
}
_CACHE_LIMIT = 4096
_numpy_seen = False


def note_numpy() -> None:
    """Register ``numpy.ndarray`` once numpy has been imported by someone."""
    global _numpy_seen
    np = sys.modules.get("numpy")
    if np is not None:
        _numpy_seen = True
        _SIZERS[np.ndarray] = _nbytes


def sizer_for(tp: type) -> Sizer | None:
    """Return a cheap size function for instances of ``tp``, or ``None``.

    Sizes are in bytes as pickle would write them, approximately: ``len`` for
    ``bytes``/``bytearray``/``str`` (code points, a lower bound of UTF-8),
    ``nbytes`` for numpy arrays, ``len * itemsize`` for ``array.array``.
    """
    try:
        return _SIZERS[tp]
    except KeyError:
        pass
    if not _numpy_seen:
        note_numpy()
        if tp in _SIZERS:
            return _SIZERS[tp]
    found: Sizer | None = None
    if issubclass(tp, Proxy):
        found = None
    elif issubclass(tp, (bytes, bytearray, str)):
        found = len
    elif issubclass(tp, array.array):
        found = _array_size
    else:
        np = sys.modules.get("numpy")
        if np is not None and issubclass(tp, np.ndarray):
            found = _nbytes
    if len(_SIZERS) > _CACHE_LIMIT:
        _SIZERS.clear()
        _SIZERS.update({bytes: len, str: len, bytearray: len, array.array: _array_size})
        note_numpy()
    _SIZERS[tp] = found
    return found


def size_of(obj: Any) -> int | None:
    """The cheap size of ``obj`` in bytes, or ``None`` when it has none."""
    sizer = sizer_for(type(obj))
    return None if sizer is None else sizer(obj)


# --------------------------------------------------------------------------- probe

_PROBE_ITEMS = 64  # at most this many children looked at per container


def probe(obj: Any, min_bytes: int, *, shallow: bool = False) -> bool:
    """Cheaply tell whether ``obj`` obviously holds something of ``min_bytes`` or more.

    Looks at ``obj`` itself and, for exact ``dict``/``list``/``tuple``, at up to
    two levels of their items (at most 64 per container), using only exact-type
    lookups.  ``False`` means "nothing found cheaply", not "nothing there": the
    caller falls back to measuring the first pickling pass.  (numpy arrays are
    recognised once numpy has been seen by a walk or a policy was made after
    importing it.)  ``shallow=True`` looks at ``obj`` alone.
    """
    sizers = _SIZERS
    tp = type(obj)
    if shallow:
        sizer = sizers.get(tp)
        return sizer is not None and sizer(obj) >= min_bytes
    if tp is dict:
        items: Any = obj.values()
    elif tp is list or tp is tuple:
        items = obj
    else:
        sizer = sizers.get(tp)
        return sizer is not None and sizer(obj) >= min_bytes
    if len(items) > _PROBE_ITEMS:
        return False
    for item in items:
        tp = type(item)
        sizer = sizers.get(tp)
        if sizer is not None:
            if sizer(item) >= min_bytes:
                return True
        elif tp is dict or tp is list or tp is tuple:
            inner = item.values() if tp is dict else item
            if len(inner) <= _PROBE_ITEMS:
                for leaf in inner:
                    sizer = sizers.get(type(leaf))
                    if sizer is not None and sizer(leaf) >= min_bytes:
                        return True
    return False


# --------------------------------------------------------------------------- paths

# A path is a linked list of steps: None (the root) or (parent, kind, label).
_INDEX, _KEY, _ATTR = range(3)
Path = tuple[Any, int, Any] | None


def format_path(path: Path) -> str:
    """Render a walk path: ``['payload'].data[3]``; the root itself is ``""``.

    The steps are ``serialize._paths``', as in every other walk's paths.
    """
    parts: list[str] = []
    while path is not None:
        path, kind, label = path
        if kind == _INDEX:
            parts.append(step.index(label))
        elif kind == _KEY:
            parts.append(step.key(label))
        else:
            parts.append(step.attr(label))
    return "".join(reversed(parts))


# --------------------------------------------------------------------------- walk

_SLOTS_CACHE: dict[type, tuple[str, ...]] = {}


def _slot_names(tp: type) -> tuple[str, ...]:
    try:
        return _SLOTS_CACHE[tp]
    except KeyError:
        pass
    names: list[str] = []
    for klass in tp.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        names.extend(s for s in slots if s not in ("__dict__", "__weakref__"))
    if len(_SLOTS_CACHE) > _CACHE_LIMIT:
        _SLOTS_CACHE.clear()
    _SLOTS_CACHE[tp] = result = tuple(names)
    return result


class _Walker:
    """One full walk; see :func:`find`."""

    def __init__(
        self,
        min_bytes: int,
        types: tuple[type, ...],
        predicate: Callable[[Any], bool] | None,
    ) -> None:
        self.min_bytes = min_bytes
        self.types = types
        self.predicate = predicate
        # Leaf-skipping shortcuts are only valid when nothing but size matters.
        self.size_only = predicate is None and not types
        self.skip: frozenset[type] = frozenset(
            t
            for t in _ATOMIC
            if not (types and issubclass(t, types) and t not in (bool, type(None)))
        )
        self.found: dict[int, tuple[Any, str]] = {}
        self.stack: list[tuple[Any, Path]] = []

    def _worth_visiting(self, items: Any) -> bool:
        """Cheap C-level filters over a collection of children."""
        kinds = set(map(type, items))
        if kinds <= self.skip:
            return False
        if self.size_only and kinds <= _STRINGISH:
            return max(map(len, items)) >= self.min_bytes
        return True

    def _push_seq(self, seq: Any, path: Path, kind: int) -> None:
        if not seq or not self._worth_visiting(seq):
            return
        push, skip = self.stack.append, self.skip
        for i, item in enumerate(seq):
            if type(item) not in skip:
                push((item, (path, kind, i)))

    def _push_dict(self, d: dict[Any, Any], path: Path) -> None:
        # Keys are not followed: a proxied key would be hashed, so resolved, while loading.
        if not d or not self._worth_visiting(d.values()):
            return
        push, skip = self.stack.append, self.skip
        for key, value in d.items():
            if type(value) not in skip:
                push((value, (path, _KEY, key)))

    def _matches(self, obj: Any, tp: type, path: Path) -> bool:
        if self.types and issubclass(tp, self.types):
            return True
        if self.predicate is not None:
            try:
                return bool(self.predicate(obj))
            except Exception as exc:
                where = format_path(path) or "the object itself"
                raise SerializationError(
                    f"ProxyPolicy.predicate raised {type(exc).__name__}: {exc} on the "
                    f"{tp.__name__} at {where}; fix the predicate so it returns True or "
                    "False for every object",
                    path=format_path(path),
                    type_name=tp.__qualname__,
                ) from exc
        return False

    def run(self, root: Any) -> dict[int, tuple[Any, str]]:
        seen: set[int] = set()
        stack = self.stack
        stack.append((root, None))
        min_bytes, skip = self.min_bytes, self.skip
        while stack:
            obj, path = stack.pop()
            tp = type(obj)
            if tp in skip:
                continue
            oid = id(obj)
            if oid in seen:
                continue
            seen.add(oid)
            if tp in _OPAQUE or issubclass(tp, (type, Proxy)):
                continue
            if not self.size_only and self._matches(obj, tp, path):
                self.found[oid] = (obj, format_path(path))
                continue
            sizer = sizer_for(tp)
            if sizer is not None:
                if sizer(obj) >= min_bytes:
                    self.found[oid] = (obj, format_path(path))
                continue
            if tp is dict:
                self._push_dict(obj, path)
                continue
            if tp is list or tp is tuple:
                self._push_seq(obj, path, _INDEX)
                continue
            if tp is set or tp is frozenset:
                continue  # members are hashed while loading: a proxy would resolve at once
            self._push_other(obj, tp, path)
        return self.found

    def _push_other(self, obj: Any, tp: type, path: Path) -> None:
        """Subclasses of builtin containers, deques, and plain instances."""
        if issubclass(tp, dict):
            self._push_dict(obj, path)
        elif issubclass(tp, (list, tuple, deque)):
            self._push_seq(obj, path, _INDEX)
        try:
            state = object.__getattribute__(obj, "__dict__")
        except Exception:
            state = None
        if type(state) is dict and state:
            push, skip = self.stack.append, self.skip
            for name, value in state.items():
                if type(value) not in skip:
                    push((value, (path, _ATTR, name)))
        for name in _slot_names(tp):
            try:
                value = object.__getattribute__(obj, name)
            except Exception:
                continue
            if type(value) not in self.skip:
                self.stack.append((value, (path, _ATTR, name)))


def find(
    obj: Any,
    min_bytes: int,
    types: tuple[type, ...] = (),
    predicate: Callable[[Any], bool] | None = None,
) -> dict[int, tuple[Any, str]]:
    """Walk ``obj`` and return ``{id(x): (x, path)}`` for every object to proxy.

    An object is proxied when its cheap size (:func:`size_of`) is at least
    ``min_bytes``, when its type is a subclass of one of ``types``, or when
    ``predicate(x)`` is true.  ``types`` and ``predicate`` are consulted for
    every object reached except ``None``/``bool``/``int``/``float``/``complex``
    (and those too when listed in ``types``, apart from ``None`` and ``bool``).
    Modules, functions, classes and ProxyStore proxies are never looked into.
    The result holds strong references, so the ids stay valid while it lives.
    """
    return _Walker(min_bytes, types, predicate).run(obj)

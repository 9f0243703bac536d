"""Plain values and texts for exception records: limits, safe text, primitives only.

Everything here turns parts of a live exception into ``None``/``bool``/``int``/
``float``/``complex``/``str``/``bytes`` and containers of them, never raising,
and never longer than the limits below (a visible marker says what was cut).
"""

from __future__ import annotations

import builtins
import importlib
import sys
from types import GetSetDescriptorType, MemberDescriptorType
from typing import Any

__all__ = [
    "FORMAT",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_TEXT",
    "NotPortable",
    "attributes",
    "class_names",
    "core",
    "group_types",
    "instance_dict",
    "portable",
    "portable_args",
    "python_minor",
    "qualname_of",
    "safe_str",
    "truncate",
]

FORMAT = "serdoctor.exception/1"
MAX_TEXT = 64 * 1024
"""Characters kept of a message, repr, note, argument or traceback text."""
MAX_DEPTH = 100
"""Links (cause, context, member, argument) followed from the exception that was sent."""
MAX_NODES = 1000
"""Exceptions described in one record."""
MAX_ITEMS = 1000
"""Items (all levels together) of one argument or attribute kept as data."""
MAX_NESTING = 10
"""Container nesting of one argument or attribute kept as data."""
PICKLE_PROTOCOL = 4

# Descriptor names that are not plain attributes (they travel in their own fields).
_SKIP_DESCRIPTORS = frozenset(
    {
        "args",
        "__traceback__",
        "__cause__",
        "__context__",
        "__suppress_context__",
        "__dict__",
        "__weakref__",
        "__notes__",
        "exceptions",
        "message",
    }
)
# Instance attributes serdoctor itself sets on arrival.
_SKIP_ATTRIBUTES = frozenset({"remote_traceback", "remote_type", "remote_mro", "remote_reason"})

_TYPE_MODULE: Any = type.__dict__["__module__"]
_TYPE_QUALNAME: Any = type.__dict__["__qualname__"]

_ATOMS: tuple[type, ...] = (type(None), bool, int, float, complex, str, bytes)


def truncate(text: str, limit: int = MAX_TEXT, *, keep_tail: bool = False) -> str:
    """Cut ``text`` to about ``limit`` characters with a visible marker saying how much went."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    marker = f"... [serdoctor: {cut} characters truncated] ..."
    if keep_tail:
        half = limit // 2
        return text[:half] + "\n" + marker + "\n" + text[-half:]
    return text[:limit] + marker


def safe_str(obj: object, *, use_repr: bool = False) -> str:
    """``str(obj)`` (or ``repr``) that never raises and is at most ``MAX_TEXT`` long."""
    try:
        text = repr(obj) if use_repr else str(obj)
        if type(text) is not str:
            text = str.__str__(text)
    except Exception as exc:
        kind = "repr" if use_repr else "str"
        try:
            name = type(exc).__name__
        except Exception:
            name = "error"
        text = f"<{kind}() failed: {name}>"
    return truncate(text)


def qualname_of(cls: type) -> str:
    """``cls.__qualname__`` read through ``type``'s own descriptor (a metaclass cannot lie)."""
    value = _TYPE_QUALNAME.__get__(cls)
    return value if isinstance(value, str) else "?"


def class_names(cls: type) -> list[list[str]]:
    """``cls.__mro__`` as ``[[module, qualname], ...]``."""
    names: list[list[str]] = []
    for klass in cls.__mro__:
        # type's own descriptors: a metaclass cannot make these lie or raise
        module = _TYPE_MODULE.__get__(klass)
        qualname = _TYPE_QUALNAME.__get__(klass)
        names.append(
            [
                module if isinstance(module, str) else "?",
                qualname if isinstance(qualname, str) else "?",
            ]
        )
    return names


def group_types() -> tuple[type[BaseException], ...]:
    """The local ``(BaseExceptionGroup, ExceptionGroup)``; empty when unavailable (3.10
    without the ``exceptiongroup`` backport)."""
    if sys.version_info >= (3, 11):
        return (builtins.BaseExceptionGroup, builtins.ExceptionGroup)
    backport = sys.modules.get("exceptiongroup")
    if backport is None:
        try:
            backport = importlib.import_module("exceptiongroup")
        except ImportError:
            return ()
    return (backport.BaseExceptionGroup, backport.ExceptionGroup)


class NotPortable(Exception):
    """The value is not made of primitives only."""


def portable(value: object) -> Any:
    """``value`` as primitives only; raises ``NotPortable`` when it is anything else."""
    budget = [MAX_ITEMS]
    return _portable(value, 0, budget)


def _portable(value: object, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_NESTING:
        raise NotPortable
    kind = type(value)
    if kind in _ATOMS:
        if kind is str:
            return truncate(value)  # type: ignore[arg-type]
        if kind is bytes and len(value) > MAX_TEXT:  # type: ignore[arg-type]
            cut = len(value) - MAX_TEXT  # type: ignore[arg-type]
            return value[:MAX_TEXT] + f"... [serdoctor: {cut} bytes truncated]".encode()  # type: ignore[index]
        return value
    try:
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int.__int__(value)
        if isinstance(value, float):
            return float.__float__(value)
        if isinstance(value, str):
            return truncate(str.__str__(value))
        if isinstance(value, bytes):
            return _portable(b"" + value, depth, budget)
    except NotPortable:
        raise
    except Exception:
        raise NotPortable from None
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_portable(item, depth + 1, budget) for item in value]
        if isinstance(value, tuple):
            return tuple(items)
        if isinstance(value, (set, frozenset)):
            try:
                return frozenset(items) if isinstance(value, frozenset) else set(items)
            except TypeError:
                raise NotPortable from None
        return items
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            out[_portable(key, depth + 1, budget)] = _portable(item, depth + 1, budget)
        return out
    raise NotPortable


def portable_args(args: object) -> list[Any]:
    if not isinstance(args, tuple):
        return []
    out: list[Any] = []
    for arg in args[:MAX_ITEMS]:
        try:
            out.append(portable(arg))
        except NotPortable:
            out.append(safe_str(arg, use_repr=True))
    return out


def attributes(exc: BaseException) -> dict[str, Any]:
    """Primitive instance attributes: C members/slots (``errno``) and ``__dict__`` entries."""
    out: dict[str, Any] = {}
    for klass in type(exc).__mro__:
        for name, descriptor in list(vars(klass).items()):
            if name in _SKIP_DESCRIPTORS or name in _SKIP_ATTRIBUTES or name in out:
                continue
            if not isinstance(descriptor, (MemberDescriptorType, GetSetDescriptorType)):
                continue
            try:
                out[name] = portable(descriptor.__get__(exc, type(exc)))
            except Exception:
                continue
    for name, value in list(instance_dict(exc).items())[:MAX_ITEMS]:
        if (
            not isinstance(name, str)
            or name in _SKIP_ATTRIBUTES
            or name.startswith("_serdoctor")
            or (name.startswith("__") and name.endswith("__"))
        ):
            continue
        try:
            out[name] = portable(value)
        except NotPortable:
            continue
    return out


def core(exc: BaseException, name: str) -> Any:
    """``exc.<name>`` read through BaseException's own descriptor (no user ``__getattr__``)."""
    return BaseException.__dict__[name].__get__(exc, type(exc))


def instance_dict(exc: BaseException) -> dict[str, Any]:
    try:
        value = core(exc, "__dict__")
    except Exception:
        return {}
    return value if isinstance(value, dict) else {}


def python_minor() -> str:
    """``"3.11"``: by-value inner pickles load only on the Python that made them."""
    return f"{sys.version_info[0]}.{sys.version_info[1]}"

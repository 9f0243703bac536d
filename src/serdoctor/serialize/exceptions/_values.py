"""Plain values and texts for exception records: limits, safe text, primitives only.

Everything here turns parts of a live exception into ``None``/``bool``/``int``/
``float``/``complex``/``str``/``bytes`` and containers of them, never raising,
and never longer than the limits below (a visible marker says what was cut).
"""

from __future__ import annotations

import builtins
import copyreg
import importlib
import sys
import weakref
from types import GetSetDescriptorType, MemberDescriptorType
from typing import Any

__all__ = [
    "CHAIN",
    "FORMAT",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_TEXT",
    "READABLE_FORMATS",
    "NotPortable",
    "attributes",
    "builtin_class",
    "chain_node_dict",
    "class_names",
    "compact_args",
    "core",
    "exact_parts",
    "group_types",
    "instance_dict",
    "portable",
    "portable_args",
    "python_minor",
    "qualname_of",
    "record_rebuilds",
    "safe_str",
    "truncate",
    "type_facts",
]

FORMAT = "serdoctor.exception/2"
"""Records written here. /2 added ``exact`` nodes (no pickle, default fields left out)."""
READABLE_FORMATS = frozenset({"serdoctor.exception/1", FORMAT})
"""Records read here: /1 records are /2 records whose nodes have every field."""
CHAIN = "serdoctor.chain/1"
"""The tag of a chain record: ``(CHAIN, nodes)``, see :func:`chain_node_dict`."""
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
        "__class__",  # object's: a type, never a primitive
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


class _TypeFacts:
    """What the record needs to know about an exception class, worked out once per class.

    Classes are not expected to change their MRO, names or slots after an
    instance was sent; a class that does so keeps the facts of its first use.
    """

    __slots__ = ("builtin", "compact", "descriptors", "names")

    def __init__(self, cls: type) -> None:
        names: list[tuple[str, str]] = []
        for klass in cls.__mro__:
            # type's own descriptors: a metaclass cannot make these lie or raise
            module = _TYPE_MODULE.__get__(klass)
            qualname = _TYPE_QUALNAME.__get__(klass)
            names.append(
                (
                    module if isinstance(module, str) else "?",
                    qualname if isinstance(qualname, str) else "?",
                )
            )
        self.names = tuple(names)
        # C members and slots (errno, code), in MRO order; duplicates kept so that a
        # base's descriptor is tried when a subclass's cannot be read (as vars() walks did)
        self.descriptors = tuple(
            (name, descriptor)
            for klass in cls.__mro__
            for name, descriptor in list(vars(klass).items())
            if isinstance(descriptor, (MemberDescriptorType, GetSetDescriptorType))
            and name not in _SKIP_DESCRIPTORS
            and name not in _SKIP_ATTRIBUTES
        )
        module, qualname = names[0]
        self.builtin = (
            module == "builtins"
            and issubclass(cls, BaseException)
            and getattr(builtins, qualname, None) is cls
            and getattr(cls, "__reduce__", None) is BaseException.__reduce__
            and getattr(cls, "__reduce_ex__", None) is BaseException.__reduce_ex__
            and getattr(cls, "__setstate__", None) is BaseException.__setstate__
        )
        self.compact = self.builtin and not self.descriptors and qualname in _COMPACT_NAMES


# Builtin exception classes that exist on every Python serdoctor supports (3.10+) and
# whose whole state is ``args`` (no C members such as errno, name, value or code).
_COMPACT_NAMES = frozenset(
    {
        "ArithmeticError",
        "AssertionError",
        "BaseException",
        "BufferError",
        "BytesWarning",
        "DeprecationWarning",
        "EOFError",
        "EncodingWarning",
        "Exception",
        "FloatingPointError",
        "FutureWarning",
        "GeneratorExit",
        "ImportWarning",
        "IndexError",
        "KeyError",
        "KeyboardInterrupt",
        "LookupError",
        "MemoryError",
        "NotImplementedError",
        "OverflowError",
        "PendingDeprecationWarning",
        "RecursionError",
        "ReferenceError",
        "ResourceWarning",
        "RuntimeError",
        "RuntimeWarning",
        "StopAsyncIteration",
        "SyntaxWarning",
        "SystemError",
        "TypeError",
        "UnicodeError",
        "UnicodeWarning",
        "UserWarning",
        "ValueError",
        "Warning",
        "ZeroDivisionError",
    }
)


_FACTS: weakref.WeakKeyDictionary[type, _TypeFacts] = weakref.WeakKeyDictionary()
_STATIC_FACTS: dict[type, _TypeFacts] = {}  # classes defined in C live as long as we do
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made at run time, which may go away


def _facts(cls: type) -> _TypeFacts:
    found = _STATIC_FACTS.get(cls)
    if found is None:
        found = _FACTS.get(cls)
        if found is None:
            found = _TypeFacts(cls)
            if cls.__flags__ & _HEAPTYPE:
                _FACTS[cls] = found
            else:
                _STATIC_FACTS[cls] = found
    return found


def type_facts(cls: type) -> _TypeFacts:
    """What the record needs to know about ``cls`` (worked out once per class)."""
    return _STATIC_FACTS.get(cls) or _facts(cls)


def class_names(cls: type) -> list[list[str]]:
    """``cls.__mro__`` as ``[[module, qualname], ...]`` (fresh lists: the caller may keep them)."""
    return [[module, qualname] for module, qualname in _facts(cls).names]


def builtin_class(cls: type) -> bool:
    """Is ``cls`` a builtin exception class whose record holds all its state?

    True for a builtin exception class (``builtins.<name> is cls``) that pickles as
    ``cls(*args)`` plus its ``__dict__`` (``BaseException.__reduce__``): every Python
    has it, and the record holds all of its state when :func:`record_rebuilds` says so.
    """
    return _facts(cls).builtin


def compact_args(exc: BaseException) -> tuple[Any, ...] | None:
    """``exc.args`` when ``exc`` can travel as a compact record, else None.

    That is a never-raised exception of a builtin class that every supported
    Python has and whose whole state is its ``args`` (``ValueError("bad")``):
    no traceback, cause, context, notes or attributes, and arguments that are
    primitives kept as they are. ``cls(*args)`` rebuilds it anywhere.
    """
    cls = type(exc)
    facts = _STATIC_FACTS.get(cls) or _facts(cls)
    if not facts.compact:
        return None
    if (
        exc.__traceback__ is not None
        or exc.__cause__ is not None
        or exc.__context__ is not None
        or exc.__suppress_context__
        or custom_reducer(cls)
    ):
        return None
    state = exc.__dict__
    if state and (len(state) != 1 or "remote_traceback" not in state):
        return None
    args = exc.args
    if len(args) > MAX_ITEMS:
        return None
    for arg in args:
        if not _kept_as_is(arg):
            return None
    return args


def record_rebuilds(exc: BaseException, state: dict[str, Any]) -> bool:
    """Does the record rebuild ``exc`` exactly?

    True when ``cls(*record args)`` plus the record's attributes and notes give back
    exactly what pickling ``exc`` would (so its pickle need not be sent).

    That holds for a :func:`builtin_class` exception whose arguments, ``__dict__``
    values and notes are primitives that the record keeps unchanged (``None``,
    ``bool``, numbers, ``str``/``bytes`` within ``MAX_TEXT``). ``state`` is
    ``exc.__dict__``; ``remote_traceback`` in it is rewritten on arrival anyway.
    """
    cls = type(exc)
    if not type_facts(cls).builtin:
        return False
    return exact_parts(cls, exc.args, state)


def custom_reducer(cls: type) -> bool:
    """Has ``cls`` a copyreg reducer of its own (so its pickle may hold more than its record)?

    tblib's ``pickling_support.install()`` (which importing Dask's ``distributed``
    runs) registers one for every exception class; it only adds the traceback,
    which the record carries itself, so it does not count.
    """
    reducer = copyreg.dispatch_table.get(cls)
    return reducer is not None and not getattr(reducer, "__module__", "").startswith("tblib")


def exact_parts(cls: type, args: object, state: dict[str, Any]) -> bool:
    """:func:`record_rebuilds` for a :func:`builtin_class` exception's class, args, dict."""
    if custom_reducer(cls) or type(args) is not tuple or len(args) > MAX_ITEMS:
        return False
    for arg in args:
        kind = type(arg)
        if kind not in _KEPT_AS_IS and not (
            (kind is str or kind is bytes) and len(arg) <= MAX_TEXT
        ):
            return False
    if not state:
        return True
    if len(state) > MAX_ITEMS:
        return False
    for name, value in state.items():
        if type(name) is not str:
            return False
        if name == "__notes__":
            if type(value) is not list or len(value) > MAX_ITEMS:
                return False
            if not all(type(n) is str and len(n) <= MAX_TEXT for n in value):
                return False
        elif name == "remote_traceback":
            continue
        elif (
            name in _SKIP_ATTRIBUTES
            or name.startswith("_serdoctor")
            or (name.startswith("__") and name.endswith("__"))
            or not _kept_as_is(value)
        ):
            return False
    return True


_KEPT_AS_IS = frozenset({type(None), bool, int, float, complex})


def _kept_as_is(value: object) -> bool:
    kind = type(value)
    if kind in _KEPT_AS_IS:
        return True
    return (kind is str or kind is bytes) and len(value) <= MAX_TEXT  # type: ignore[arg-type]


def group_types() -> tuple[type[BaseException], ...]:
    """The local exception group classes.

    The local ``(BaseExceptionGroup, ExceptionGroup)``; empty when unavailable (3.10
    without the ``exceptiongroup`` backport).
    """
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
    cls = type(exc)
    for name, descriptor in _facts(cls).descriptors:
        if name in out:
            continue
        try:
            out[name] = portable(descriptor.__get__(exc, cls))
        except Exception:
            continue
    state = instance_dict(exc)
    if not state:
        return out
    for name, value in list(state.items())[:MAX_ITEMS]:
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


def chain_node_dict(node: tuple[Any, ...]) -> dict[str, Any]:
    """The ``exact`` node of a full record that says what one node of a chain record says.

    A chain record ``(CHAIN, nodes)`` is the short form of a record whose
    nodes are all exact nodes of classes every Python has, with no
    attributes: each node is the tuple ``(tb, cause, context, suppress,
    qualname, args, frames, notes)`` (its links first, where the text of a
    chain is composed from). A node of another shape raises ``ValueError``.
    """
    if type(node) is not tuple or len(node) != 8:
        raise ValueError("malformed chain record node")
    tb, cause, context, suppress, qualname, args, frames, notes = node
    # what an exact node of a class every Python has holds (fields at their default left out)
    out: dict[str, Any] = {
        "mro": [("builtins", qualname)],
        "args": list(args) if isinstance(args, (list, tuple)) else args,
        "frames": frames,
        "tb": tb,
        "exact": True,
    }
    if notes is not None:
        out["notes"] = list(notes) if isinstance(notes, (list, tuple)) else notes
    if cause is not None:
        out["cause"] = cause
    if context is not None:
        out["context"] = context
    if suppress:
        out["suppress"] = suppress
    return out

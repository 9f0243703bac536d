"""Stand-in values of the static inspector, and the limits that keep them small.

The simulated unpickler never builds what a pickle describes: literals stay
Python values (``str`` up to ``STR_LIMIT`` characters, ``bytes`` up to
``BYTES_LIMIT``); everything else is a :class:`_Node` (containers, large
values, globals, call results, by-value code). A memo entry forgotten by the
memo window becomes a :class:`_Stub`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Union

from serdoctor.diagnostics.inspect._report import CallRecord, ImportInfo

STR_LIMIT: Final = 512  # longer strings are not decoded (they become large-value nodes)
BYTES_LIMIT: Final = 256
KEEP: Final = 32  # children kept per container (for rendering and by-value analysis)
KEEP_BUDGET: Final = 400_000  # after this many kept children, containers keep none
MEMO_WINDOW: Final = 8_192  # memo entries older than this are stubbed (see module doc)
TOP_N: Final = 10
MAX_CALLS_PER_IMPORT: Final = 5
MAX_FINDINGS: Final = 200
MAX_SKETCH: Final = 300
MAX_BY_VALUE: Final = 200
MAX_PICKLES: Final = 1000  # stacked pickles listed one by one (all are counted)


# Node kinds
K_DICT: Final = "dict"
K_LIST: Final = "list"
K_TUPLE: Final = "tuple"
K_SET: Final = "set"
K_FROZENSET: Final = "frozenset"
K_BLOB: Final = "blob"  # bytes/str/bytearray too large to keep
K_BUFFER: Final = "buffer"  # out-of-band buffer
K_GLOBAL: Final = "global"
K_REF: Final = "ref"  # something reached from a global (getattr, subimport, ...)
K_OBJ: Final = "obj"  # result of a call
K_FUNC: Final = "func"  # by-value function
K_CLASS: Final = "class"  # by-value class
K_CODE: Final = "code"  # code object
K_PERSID: Final = "persid"

# How a node hangs from its parent (for paths).
KT_NONE: Final = 0
KT_INDEX: Final = 1
KT_KEY: Final = 2
KT_ARGS: Final = 3
KT_STATE: Final = 4
KT_ROOT: Final = 5
KT_MEMBER: Final = 6
KT_KWARGS: Final = 7

F_KEEP: Final = 1  # never stub in the memo
F_ATTRS: Final = 2  # dict used as BUILD state: its keys are attributes
F_UNRESOLVED: Final = 4  # a global or reference whose target is not known statically
F_MODULE: Final = 8  # a reference to a module
F_EMPTY_CELL: Final = 16
F_CLOSED: Final = 32  # placed inside another value (no longer being built)
F_TRACKED: Final = 64  # a largest value or an ancestor of one: keeps its parent link

_BOX_KINDS: Final = frozenset({K_DICT, K_LIST, K_TUPLE, K_SET, K_FROZENSET, K_OBJ})
_SHARED_KINDS: Final = frozenset({K_GLOBAL, K_REF})


class _Node:
    """A stand-in for a value the unpickler would build."""

    __slots__ = (
        "count",
        "depth",
        "end",
        "flags",
        "info",
        "items",
        "key",
        "kind",
        "ktype",
        "label",
        "parent",
        "pos",
        "size",
        "var",
    )

    def __init__(self, kind: str, label: str, pos: int, items: list[Any] | None = None) -> None:
        self.kind = kind
        self.label = label
        self.pos = pos
        self.end = pos + 1
        self.items = items
        self.count = 0
        self.depth = 1
        self.flags = 0
        self.info: Any = None
        self.parent: _Node | None = None
        self.key: Any = None
        self.ktype = KT_NONE
        self.size = 0
        self.var: str | None = None

    def __repr__(self) -> str:  # debugging aid
        return f"<{self.kind} {self.label} @{self.pos}>"


class _Stub:
    """What an old memo entry becomes: its kind and type, nothing else."""

    __slots__ = ("kind", "label")

    def __init__(self, kind: str, label: str) -> None:
        self.kind = kind
        self.label = label


_OLD_STUB = _Stub("value", "value from far back in the memo")
_EMPTY: tuple[()] = ()


class _Call:
    """How a K_OBJ node was made (``states``: what BUILD gave it later)."""

    __slots__ = ("args", "callee", "kwargs", "opcode", "states", "target")

    def __init__(
        self, target: str | None, callee: Any, args: Any, kwargs: Any, opcode: str
    ) -> None:
        self.target = target
        self.callee = callee
        self.args = args
        self.kwargs = kwargs
        self.opcode = opcode
        self.states: list[Any] = []


@dataclass
class _ByValue:
    """By-value code seen in the stream (described at the end)."""

    kind: str
    producer: str
    node: _Node
    args: Any
    code: Any = None
    states: list[Any] = field(default_factory=list)


def _type_name(value: Any) -> str:
    t = type(value)
    if t is _Node:
        if value.kind in (K_DICT, K_LIST, K_TUPLE, K_SET, K_FROZENSET):
            return str(value.kind)
        return str(value.label)
    if t is _Stub:
        return str(value.label)
    return t.__name__


def _seq(value: Any) -> list[Any] | None:
    """The items of a tuple/list stand-in when all of them are known."""
    t = type(value)
    if t is tuple:
        return list(value)
    if t is _Node and value.kind in (K_TUPLE, K_LIST) and value.items is not None:
        if len(value.items) >= value.count:
            return list(value.items)
        return list(value.items)
    return None


def _dict_pairs(value: Any) -> list[tuple[Any, Any]] | None:
    if type(value) is not _Node or value.kind != K_DICT or value.items is None:
        return None
    items = value.items
    return [(items[j], items[j + 1]) for j in range(0, len(items) - 1, 2)]


# An expression, or how to render it when it is needed (a runtime alias: Union on 3.10).
_Expr = Union[str, Callable[[], str]]  # noqa: UP007


def _text(expr: _Expr) -> str:
    return expr if isinstance(expr, str) else expr()


def record_call(info: ImportInfo, pos: int, opname: str, text: Callable[[], str]) -> None:
    """Count a call of an import; keep the first few with their rendered text."""
    info.calls += 1
    if len(info.call_records) < MAX_CALLS_PER_IMPORT:
        info.call_records.append(CallRecord(pos, opname, text()))


@dataclass(frozen=True, slots=True)
class CallSite:
    """One call the machine evaluates: what is called, with what, and where."""

    callee: Any  # the called stand-in
    norm: str  # its normalized import target, e.g. "builtins.getattr"
    seq: list[Any] | None  # the positional arguments, when they are a plain tuple
    args: Any  # the arguments as pushed (a stand-in tuple or node)
    pos: int  # the opcode's offset
    opname: str  # REDUCE, NEWOBJ, ...
    expr: _Expr  # the call as an expression, for findings

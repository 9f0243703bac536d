"""Filling containers: SETITEM(S), APPEND(S), ADDITEMS and literals on the stack.

:class:`_ContainerOps` adds items to dict/list/set stand-ins (keeping the
first ``KEEP`` of them and the parent links of tracked values), and reports
the same operations on imported objects as mutations.
"""

from __future__ import annotations

from typing import Any

from serdoctor.diagnostics.inspect._report import DANGEROUS
from serdoctor.diagnostics.inspect.machine import _opcodes as op
from serdoctor.diagnostics.inspect.machine._calls import _Caller
from serdoctor.diagnostics.inspect.machine._expr import _Renderer
from serdoctor.diagnostics.inspect.machine._nodes import (
    _BOX_KINDS,
    _SHARED_KINDS,
    F_CLOSED,
    F_TRACKED,
    K_BLOB,
    K_DICT,
    K_GLOBAL,
    K_LIST,
    K_OBJ,
    K_REF,
    K_SET,
    KEEP,
    KT_INDEX,
    KT_KEY,
    KT_MEMBER,
    _Node,
    _Stub,
    _type_name,
)
from serdoctor.diagnostics.inspect.machine._opcodes import PickleFormatError, Skipped
from serdoctor.diagnostics.inspect.machine._state import _MachineState


class _ContainerOps:
    """The machine's container operations: items added to stand-ins."""

    __slots__ = ("c", "r", "s")

    def __init__(self, s: _MachineState, r: _Renderer, c: _Caller) -> None:
        """Add items to stand-ins over the state ``s``."""
        self.s = s
        self.r = r
        self.c = c

    def push_literal(self, code: int, arg: Any, pos: int) -> None:
        if isinstance(arg, Skipped):
            label = (
                "str"
                if code in (op.BINUNICODE, op.BINUNICODE8, op.SHORT_BINUNICODE, op.UNICODE)
                else "bytes"
            )
            if code in (op.STRING, op.BINSTRING, op.SHORT_BINSTRING):
                label = "str (Python 2)"
            if code == op.BYTEARRAY8:
                label = "bytearray"
            self.s.stack.append(self.s.leaf(arg, label, pos))
            return
        if code == op.BYTEARRAY8:
            node = _Node(K_BLOB, "bytearray", pos)
            node.size = len(arg)
            node.info = arg
            self.s.track_leaf(node)
            self.s.stack.append(node)
            return
        if (
            code in (op.STRING, op.BINSTRING, op.SHORT_BINSTRING)
            and isinstance(arg, str)
            and not arg.isascii()
        ):
            self.s.nonascii_strings = True
        self.s.stack.append(arg)

    def setitems(self, target: Any, items: list[Any], pos: int) -> None:
        """SETITEM(S)/DICT: ``items`` is ``[key, value, key, value, ...]``."""
        if type(target) is not _Node:
            if type(target) is _Stub:
                return
            raise PickleFormatError(pos, f"cannot set items on {_type_name(target)}", "SETITEMS")
        target.end = pos + 1
        if target.kind is not K_DICT:
            self.mutate(target, "__setitem__", items, pos)
            if target.kind is not K_OBJ:
                return
        depth = target.depth
        for j in range(1, len(items), 2):
            v = items[j]
            tv = type(v)
            if tv is _Node:
                flags = v.flags
                if not flags & F_CLOSED and v is not target and v.kind not in _SHARED_KINDS:
                    v.flags = flags = flags | F_CLOSED
                    if v.end - v.pos >= 1024 and v.kind in _BOX_KINDS:
                        self.s.track_box(v)
                        flags = v.flags
                    if flags & F_TRACKED:
                        v.parent = target
                        v.key = items[j - 1]
                        v.ktype = KT_KEY
                        target.flags |= F_TRACKED
                if v.depth >= depth:
                    depth = v.depth + 1
            elif tv is tuple and v and depth < 2:
                depth = 2
        target.depth = depth
        target.count += len(items) >> 1
        kept = target.items
        if kept is not None and len(kept) < 2 * KEEP:
            add = items[: 2 * KEEP - len(kept)]
            kept.extend(add)
            self.s.kept += len(add)

    def appends(self, target: Any, items: list[Any], pos: int) -> None:
        """APPEND(S)/LIST/ADDITEMS/FROZENSET: add ``items`` to ``target``."""
        if type(target) is not _Node:
            if type(target) is _Stub:
                return
            raise PickleFormatError(pos, f"cannot append to {_type_name(target)}", "APPENDS")
        target.end = pos + 1
        kind = target.kind
        if kind is not K_LIST:
            self.mutate(target, "extend", items, pos)
            if kind is not K_OBJ and kind is not K_SET:
                return
        index = target.count
        kt = KT_MEMBER if kind is K_SET else KT_INDEX
        depth = target.depth
        for v in items:
            tv = type(v)
            if tv is _Node:
                flags = v.flags
                if not flags & F_CLOSED and v is not target and v.kind not in _SHARED_KINDS:
                    v.flags = flags = flags | F_CLOSED
                    if v.end - v.pos >= 1024 and v.kind in _BOX_KINDS:
                        self.s.track_box(v)
                        flags = v.flags
                    if flags & F_TRACKED:
                        v.parent = target
                        v.key = index
                        v.ktype = kt
                        target.flags |= F_TRACKED
                if v.depth >= depth:
                    depth = v.depth + 1
            elif tv is tuple and v and depth < 2:
                depth = 2
            index += 1
        target.depth = depth
        target.count = index
        kept = target.items
        if kept is not None and len(kept) < KEEP:
            add = items[: KEEP - len(kept)]
            kept.extend(add)
            self.s.kept += len(add)

    def mutate(self, target: _Node, method: str, items: list[Any], pos: int) -> None:
        """SETITEMS/APPENDS/ADDITEMS on something other than a plain container."""
        if target.kind in (K_GLOBAL, K_REF):
            name = (
                target.info.target
                if target.kind == K_GLOBAL and target.info
                else (target.info if isinstance(target.info, str) else target.label)
            )
            self.s.finding(
                DANGEROUS,
                "mutation",
                f"changes the imported object {name} at load ({method}): a pickle can "
                "rewire modules, environment variables or search paths this way",
                pos,
                name,
                f"{name}.{method}({self.r.render_list(items)})",
            )
        elif target.var is not None and not self.s.sketch_full:
            if method == "__setitem__":
                pairs = [
                    f"{self.r.render(items[j], 2, True)}: {self.r.render(items[j + 1], 2, True)}"
                    for j in range(0, min(len(items), 12), 2)
                ]
                more = ", …" if len(items) > 12 else ""
                self.r.sketch_line(f"{target.var}.update({{{', '.join(pairs)}{more}}})  # @{pos}")
            else:
                self.r.sketch_line(
                    f"{target.var}.{method}([{self.r.render_list(items, True)}])  # @{pos}"
                )

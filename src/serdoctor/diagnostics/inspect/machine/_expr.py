"""Stand-ins as short Python-like expressions, and the load sketch.

:class:`_Renderer` renders stand-ins for findings and call records (bounded
depth and width) and writes the pseudo-Python sketch of what loading does
(``v1 = f(...)  # @offset OPCODE``), with the ``from m import n`` lines it
needs.
"""

from __future__ import annotations

from typing import Any

from serdoctor.diagnostics.inspect._byvalue import _describe
from serdoctor.diagnostics.inspect._report import DANGEROUS
from serdoctor.diagnostics.inspect.machine._nodes import (
    K_BLOB,
    K_BUFFER,
    K_CLASS,
    K_CODE,
    K_DICT,
    K_FROZENSET,
    K_FUNC,
    K_GLOBAL,
    K_LIST,
    K_OBJ,
    K_PERSID,
    K_REF,
    K_SET,
    K_TUPLE,
    MAX_SKETCH,
    _ByValue,
    _Call,
    _Node,
    _seq,
    _Stub,
)
from serdoctor.diagnostics.inspect.machine._opcodes import Skipped
from serdoctor.diagnostics.inspect.machine._state import _MachineState
from serdoctor.serialize._sizes import format_size


class _Renderer:
    """Renders stand-ins as expressions, and keeps the sketch; works on the machine's state."""

    __slots__ = ("s",)

    def __init__(self, s: _MachineState) -> None:
        """Render over the state ``s``."""
        self.s = s

    def sketch_line(self, line: str) -> None:
        if len(self.s.sketch) < MAX_SKETCH:
            self.s.sketch.append(line)
        else:
            self.s.sketch_full = True

    def short(self, target: str) -> str:
        """Sketch name for ``target`` (adds a ``from m import n`` line once)."""
        name = self.s.sketch_names.get(target)
        if name is not None:
            return name
        module, _, attr = target.rpartition(".")
        base = attr or target
        if not module:
            self.s.sketch_imports.append(f"import {target}")
            self.s.sketch_names[target] = target
            return target
        local = base.split(".")[-1] if base.isidentifier() else "_obj"
        used = set(self.s.sketch_names.values())
        candidate, k = local, 2
        while candidate in used:
            candidate, k = f"{local}_{k}", k + 1
        alias = "" if candidate == base else f" as {candidate}"
        self.s.sketch_imports.append(f"from {module} import {base}{alias}")
        self.s.sketch_names[target] = candidate
        return candidate

    def func_name(self, node: _Node) -> str:
        bv = node.info
        if isinstance(bv, _ByValue):
            desc = _describe(self, bv, shallow=True)
            return desc.qualname or desc.name or "<lambda>"
        return node.label

    # -- sketch --------------------------------------------------------------

    def sketch_call(
        self,
        result: Any,
        callee: Any,
        target: str | None,
        args: Any,
        kwargs: Any,
        opname: str,
        pos: int,
    ) -> None:
        if self.s.sketch_full or len(self.s.sketch) >= MAX_SKETCH:
            self.s.sketch_full = True
            return
        if type(result) is not _Node or result.var is not None:
            return
        name = self.short(target) if target else self.render(callee, 2, True)
        if opname in ("NEWOBJ", "NEWOBJ_EX"):
            text = f"{name}.__new__({name}{self.render_args(args, True, lead=True)})"
        else:
            text = f"{name}({self.render_args(args, True)})"
        if kwargs is not None:
            text = text[:-1] + f", **{self.render(kwargs, 2, True)})"
        self.s.var_count += 1
        var = f"v{self.s.var_count}"
        result.var = var
        note = ""
        if (
            self.s.findings
            and self.s.findings[-1].offset == pos
            and self.s.findings[-1].severity == DANGEROUS
        ):
            note = "  # DANGEROUS: " + self.s.findings[-1].category
        self.sketch_line(f"{var} = {text}  # @{pos} {opname}{note}")

    # -- rendering ---------------------------------------------------------------

    def render_list(self, items: list[Any], sketch: bool = False) -> str:
        shown = [self.render(v, 2, sketch) for v in items[:6]]
        if len(items) > 6:
            shown.append("…")
        return ", ".join(shown)

    def render_args(self, args: Any, sketch: bool = False, lead: bool = False) -> str:
        seq = _seq(args)
        if seq is None:
            text = f"*{self.render(args, 2, sketch)}"
        else:
            count = args.count if type(args) is _Node else len(seq)
            shown = [self.render(v, 3, sketch) for v in seq[:8]]
            if count > len(shown):
                shown.append("…")
            text = ", ".join(shown)
        if lead and text:
            return ", " + text
        return text

    def render(self, value: Any, depth: int = 3, sketch: bool = False) -> str:
        """A short Python-like expression for a stand-in (bounded depth and width)."""
        t = type(value)
        if value is None or t is bool or t is float:
            return repr(value)
        if t is int:
            text = repr(value)
            return text if len(text) <= 40 else text[:20] + "…" + text[-8:]
        if t is str:
            return repr(value) if len(value) <= 120 else repr(value[:120]) + "…"
        if t is bytes:
            return repr(value) if len(value) <= 48 else repr(value[:48]) + "…"
        if t is tuple:
            if depth <= 0:
                return "(…)"
            inner = [self.render(v, depth - 1, sketch) for v in value[:8]]
            if len(value) > 8:
                inner.append("…")
            return "(" + ", ".join(inner) + ("," if len(value) == 1 else "") + ")"
        if t is _Stub:
            return f"<{value.label}>"
        if t is not _Node:
            return f"<{t.__name__}>"
        return self.render_node(value, depth, sketch)

    def render_node(self, node: _Node, depth: int, sketch: bool) -> str:
        """:meth:`render` for a node: a name, a call, a large value or a container."""
        kind = node.kind
        if node.var is not None and sketch:
            return node.var
        if kind == K_GLOBAL:
            if node.info is None:
                return node.label
            return self.short(node.info.target) if sketch else node.info.target
        if kind == K_REF:
            return node.info if isinstance(node.info, str) else node.label
        if kind == K_BLOB:
            sk = node.info
            if isinstance(sk, Skipped) and node.label.startswith("str"):
                preview = self.read_preview(sk)
                return f"<str {format_size(node.size)} @{node.pos}: {preview!r}…>"
            return f"<{node.label} {format_size(node.size)} @{node.pos}>"
        if kind == K_BUFFER:
            size = f" {format_size(node.size)}" if node.size else ""
            return f"<out-of-band buffer #{node.info}{size}>"
        if kind == K_PERSID:
            return f"persistent_load({self.render(node.info, 1)})"
        if kind in (K_FUNC, K_CLASS):
            return (
                f"<{'function' if kind == K_FUNC else 'class'} {self.func_name(node)} (by value)>"
            )
        if kind == K_CODE:
            return "<code object (by value)>"
        if kind == K_OBJ:
            made = node.info
            if isinstance(made, _Call) and depth > 0:
                name = made.target if made.target else self.render(made.callee, 1)
                if sketch and made.target:
                    name = self.short(made.target)
                return f"{name}({self.render_args(made.args, sketch) if depth > 1 else '…'})"
            return f"<{node.label}>"
        return self.render_container(node, depth, sketch)

    def render_container(self, node: _Node, depth: int, sketch: bool) -> str:
        """:meth:`render` for a dict/list/tuple/set node: its first kept items."""
        kind = node.kind
        if depth <= 0 or node.items is None:
            return (
                {K_DICT: "{…}", K_LIST: "[…]", K_TUPLE: "(…)"}.get(kind, f"{kind}(…)")
                if node.count
                else _empty_repr(kind)
            )
        items = node.items
        more = node.count > (len(items) // 2 if kind == K_DICT else len(items))
        if kind == K_DICT:
            pairs = [
                f"{self.render(items[j], depth - 1, sketch)}: "
                f"{self.render(items[j + 1], depth - 1, sketch)}"
                for j in range(0, min(len(items), 12), 2)
            ]
            if more or len(items) > 12:
                pairs.append("…")
            return "{" + ", ".join(pairs) + "}"
        inner = [self.render(v, depth - 1, sketch) for v in items[:6]]
        if more or len(items) > 6:
            inner.append("…")
        body = ", ".join(inner)
        if kind == K_LIST:
            return "[" + body + "]"
        if kind == K_TUPLE:
            return "(" + body + ("," if node.count == 1 else "") + ")"
        if kind == K_SET:
            return "{" + body + "}" if inner else "set()"
        if kind == K_FROZENSET:
            return "frozenset({" + body + "})"
        return f"<{node.label}>"

    def read_preview(self, sk: Skipped, limit: int = 80) -> str:
        data = self.s.read_at(sk.offset, min(sk.length, limit * 4)) or sk.head
        return data.decode("utf-8", "replace")[:limit]


def _empty_repr(kind: str) -> str:
    return {
        K_DICT: "{}",
        K_LIST: "[]",
        K_TUPLE: "()",
        K_SET: "set()",
        K_FROZENSET: "frozenset()",
    }.get(kind, f"{kind}()")

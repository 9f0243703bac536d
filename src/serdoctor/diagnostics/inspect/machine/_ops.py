"""The slow path: one handler per opcode the hot loop does not inline.

:class:`_OpHandlers` reads each rarer opcode's argument through
:func:`_opcodes.read_arg` and dispatches through ``_HANDLERS`` (opcode byte
to handler); opcodes without a handler push their argument as a literal.
"""

from __future__ import annotations

from typing import Any, Final

from serdoctor.diagnostics.inspect._formats import _guess_format
from serdoctor.diagnostics.inspect._report import DANGEROUS, INFO, WARNING
from serdoctor.diagnostics.inspect.machine import _opcodes as op
from serdoctor.diagnostics.inspect.machine._calls import _Caller
from serdoctor.diagnostics.inspect.machine._containers import _ContainerOps
from serdoctor.diagnostics.inspect.machine._expr import _Renderer
from serdoctor.diagnostics.inspect.machine._nodes import (
    _EMPTY,
    BYTES_LIMIT,
    F_CLOSED,
    F_KEEP,
    F_UNRESOLVED,
    K_BUFFER,
    K_DICT,
    K_FROZENSET,
    K_GLOBAL,
    K_LIST,
    K_OBJ,
    K_PERSID,
    K_REF,
    K_SET,
    KT_ARGS,
    KT_ROOT,
    STR_LIMIT,
    _Call,
    _Node,
    _type_name,
)
from serdoctor.diagnostics.inspect.machine._opcodes import PickleFormatError
from serdoctor.diagnostics.inspect.machine._state import _MachineState


class _OpHandlers:
    """The machine's opcode handlers: ``op_*(arg, pos) -> True after STOP``."""

    __slots__ = ("c", "k", "r", "s")

    def __init__(self, s: _MachineState, r: _Renderer, c: _Caller, k: _ContainerOps) -> None:
        """Handle opcodes over the state ``s`` with the other parts of the machine."""
        self.s = s
        self.r = r
        self.c = c
        self.k = k

    def _slow(self, code: int, pos: int) -> bool:
        """Handle one opcode whose byte is at ``pos``; True after STOP."""
        kind = op.ARG_KIND[code]
        if kind < 0:
            hint = _guess_format(code) if pos == self.s.summary.start else ""
            raise PickleFormatError(
                pos, f"byte 0x{code:02x} ({chr(code)!r}) is not a pickle opcode{hint}"
            )
        proto = op.OPCODE_PROTO[code]
        if proto > self.s.max_proto:
            self.s.max_proto = proto
        arg = op.read_arg(self.s.src, code, pos, STR_LIMIT, BYTES_LIMIT) if kind else None
        handler = _HANDLERS.get(code)
        if handler is not None:
            return bool(handler(self, arg, pos))
        self.k.push_literal(code, arg, pos)
        return False

    def op_proto(self, arg: Any, pos: int) -> bool:
        if arg > op.HIGHEST_PROTOCOL:
            raise PickleFormatError(pos, f"unsupported pickle protocol: {arg}", "PROTO")
        self.s.proto = arg
        if self.s.summary.declared_protocol is None:
            self.s.summary.declared_protocol = arg
        return False

    def op_frame(self, arg: Any, pos: int) -> bool:
        op.check_frame(self.s.src, pos, arg)
        self.s.summary.frames += 1
        return False

    def op_stop(self, arg: Any, pos: int) -> bool:
        value = self.s.pop(pos, "STOP")
        if type(value) is _Node:
            if not value.flags & F_CLOSED:
                value.ktype = KT_ROOT
                value.key = self.s.summary.index
            self.s.summary.max_depth = value.depth
        elif type(value) is tuple and value:
            self.s.summary.max_depth = 1
        root = _type_name(value)
        if type(value) is _Node and value.kind == K_OBJ:
            made = value.info
            if not (isinstance(made, _Call) and made.opcode in ("NEWOBJ", "NEWOBJ_EX")):
                root = f"{root}(…)"  # what a call returned
        self.s.summary.root = root
        self.r.sketch_line(f"result = {self.r.render(value, 3, sketch=True)}")
        return True

    def op_pop(self, arg: Any, pos: int) -> bool:
        if self.s.marks and self.s.marks[-1] == len(self.s.stack):
            self.s.marks.pop()
            return False
        self.s.pop(pos, "POP")
        return False

    def op_dup(self, arg: Any, pos: int) -> bool:
        if len(self.s.stack) <= self.s.fence():
            raise self.s.underflow(pos, "DUP")
        self.s.stack.append(self.s.stack[-1])
        return False

    def op_pop_mark(self, arg: Any, pos: int) -> bool:
        k = self.s.pop_mark(pos, "POP_MARK")
        del self.s.stack[k:]
        return False

    def op_mark_collect(self, pos: int, name: str) -> tuple[list[Any], int]:
        k = self.s.pop_mark(pos, name)
        start = pos
        items = self.s.stack[k:]
        del self.s.stack[k:]
        return items, start

    def op_list(self, arg: Any, pos: int) -> bool:
        start = pos
        items, _ = self.op_mark_collect(pos, "LIST")
        node = self.s.container(K_LIST, start)
        self.s.stack.append(node)
        self.k.appends(node, items, pos)
        return False

    def op_dict(self, arg: Any, pos: int) -> bool:
        start = pos
        items, _ = self.op_mark_collect(pos, "DICT")
        if len(items) & 1:
            raise PickleFormatError(pos, "odd number of items for DICT", "DICT")
        node = self.s.container(K_DICT, start)
        self.s.stack.append(node)
        self.k.setitems(node, items, pos)
        return False

    def op_tuple(self, arg: Any, pos: int) -> bool:
        items, _ = self.op_mark_collect(pos, "TUPLE")
        self.s.stack.append(self.s.tuple_of(items, pos))
        return False

    def op_empty_set(self, arg: Any, pos: int) -> bool:
        self.s.stack.append(self.s.container(K_SET, pos))
        return False

    def op_additems(self, arg: Any, pos: int) -> bool:
        items, _ = self.op_mark_collect(pos, "ADDITEMS")
        if not self.s.stack:
            raise self.s.underflow(pos, "ADDITEMS")
        target = self.s.stack[-1]
        if type(target) is _Node and target.kind in (K_GLOBAL, K_REF):
            self.k.mutate(target, "add", items, pos)
            return False
        self.k.appends(target, items, pos)  # a set, or an object with .add
        return False

    def op_frozenset(self, arg: Any, pos: int) -> bool:
        start = pos
        items, _ = self.op_mark_collect(pos, "FROZENSET")
        node = self.s.container(K_FROZENSET, start)
        node.kind = K_SET
        self.k.appends(node, items, pos)
        node.kind = K_FROZENSET
        node.label = "frozenset"
        self.s.stack.append(node)
        return False

    def op_get(self, arg: Any, pos: int) -> bool:
        if arg < 0:
            raise PickleFormatError(pos, f"memo value not found at index {arg}", "GET")
        self.s.stack.append(self.s.memo_get(arg, pos, "GET"))
        return False

    def op_binget(self, arg: Any, pos: int) -> bool:
        self.s.stack.append(self.s.memo_get(arg, pos, "BINGET"))
        return False

    def op_put(self, arg: Any, pos: int) -> bool:
        if arg < 0:
            raise PickleFormatError(pos, "negative PUT argument", "PUT")
        if len(self.s.stack) <= self.s.fence():
            raise self.s.underflow(pos, "PUT")
        self.s.memo_put(arg, self.s.stack[-1])
        return False

    def op_memoize(self, arg: Any, pos: int) -> bool:
        if len(self.s.stack) <= self.s.fence():
            raise self.s.underflow(pos, "MEMOIZE")
        self.s.memo_put(self.s.memo_base + len(self.s.memo) + len(self.s.sparse), self.s.stack[-1])
        return False

    def op_mark(self, arg: Any, pos: int) -> bool:
        self.s.marks.append(len(self.s.stack))
        return False

    def op_empty_dict(self, arg: Any, pos: int) -> bool:
        self.s.stack.append(self.s.container(K_DICT, pos))
        return False

    def op_empty_list(self, arg: Any, pos: int) -> bool:
        self.s.stack.append(self.s.container(K_LIST, pos))
        return False

    def op_empty_tuple(self, arg: Any, pos: int) -> bool:
        self.s.stack.append(_EMPTY)
        return False

    def op_tuple_n(self, n: int, pos: int) -> bool:
        if len(self.s.stack) - n < self.s.fence():
            raise self.s.underflow(pos, f"TUPLE{n}")
        items = self.s.stack[len(self.s.stack) - n :]
        del self.s.stack[len(self.s.stack) - n :]
        self.s.stack.append(self.s.tuple_of(items, pos))
        return False

    def op_setitems(self, arg: Any, pos: int) -> bool:
        k = self.s.pop_mark(pos, "SETITEMS")
        items = self.s.stack[k:]
        del self.s.stack[k:]
        if len(items) & 1:
            raise PickleFormatError(pos, "odd number of items for SETITEMS", "SETITEMS")
        if k <= 0:
            raise self.s.underflow(pos, "SETITEMS")
        self.k.setitems(self.s.stack[-1], items, pos)
        return False

    def op_setitem(self, arg: Any, pos: int) -> bool:
        if len(self.s.stack) < 3:
            raise self.s.underflow(pos, "SETITEM")
        items = self.s.stack[-2:]
        del self.s.stack[-2:]
        self.k.setitems(self.s.stack[-1], items, pos)
        return False

    def op_appends(self, arg: Any, pos: int) -> bool:
        k = self.s.pop_mark(pos, "APPENDS")
        items = self.s.stack[k:]
        del self.s.stack[k:]
        if k <= 0:
            raise self.s.underflow(pos, "APPENDS")
        self.k.appends(self.s.stack[-1], items, pos)
        return False

    def op_append(self, arg: Any, pos: int) -> bool:
        if len(self.s.stack) - 1 <= self.s.fence() or len(self.s.stack) < 2:
            raise self.s.underflow(pos, "APPEND")
        v = self.s.stack.pop()
        self.k.appends(self.s.stack[-1], [v], pos)
        return False

    def op_next_buffer(self, arg: Any, pos: int) -> bool:
        node = _Node(K_BUFFER, "PickleBuffer (out-of-band)", pos)
        node.info = self.s.buffer_index
        sizes = self.s.buffer_sizes
        if sizes is not None and self.s.buffer_index < len(sizes):
            node.size = sizes[self.s.buffer_index]
        self.s.buffer_index += 1
        self.s.summary.out_of_band_buffers += 1
        self.s.track_leaf(node)
        self.s.stack.append(node)
        return False

    def op_readonly_buffer(self, arg: Any, pos: int) -> bool:
        if len(self.s.stack) <= self.s.fence():
            raise self.s.underflow(pos, "READONLY_BUFFER")
        return False

    def op_persid(self, arg: Any, pos: int) -> bool:
        self.persistent(arg, pos)
        return False

    def op_binpersid(self, arg: Any, pos: int) -> bool:
        self.persistent(self.s.pop(pos, "BINPERSID"), pos)
        return False

    def persistent(self, pid: Any, pos: int) -> None:
        self.s.persids += 1
        self.s.summary.persistent_ids += 1
        node = _Node(K_PERSID, "persistent object", pos)
        node.info = pid
        node.flags = F_KEEP
        if type(pid) is _Node:
            self.s.attach(node, pid, None, KT_ARGS)
        self.s.stack.append(node)
        if self.s.persids == 1 and not self.s.envelope_persistent:
            self.s.finding(
                INFO,
                "persistent-id",
                "refers to persistent IDs: only an Unpickler whose persistent_load "
                "resolves them can load this (plain pickle.load raises)",
                pos,
                None,
                f"persistent_load({self.r.render(pid, 2)})",
            )

    def op_ext(self, arg: Any, pos: int) -> bool:
        if arg <= 0:
            raise PickleFormatError(pos, "EXT specifies code <= 0", "EXT")
        import copyreg

        registry: dict[int, tuple[str, str]] = getattr(copyreg, "_inverted_registry", {})
        key = registry.get(arg)  # a plain dict read
        if key is not None:
            module, name = key
            self.s.stack.append(self.s.import_global(module, name, pos, f"EXT code {arg}"))
            return False
        self.s.ext_codes.append(arg)
        node = _Node(K_GLOBAL, f"<extension code {arg}>", pos)
        node.flags = F_KEEP | F_UNRESOLVED
        self.s.stack.append(node)
        self.s.finding(
            WARNING,
            "extension-code",
            f"uses copyreg extension code {arg}, which is not registered here: loading "
            "fails unless the loading program calls copyreg.add_extension for it",
            pos,
            None,
        )
        return False

    def op_global(self, arg: Any, pos: int) -> bool:
        module, name = arg
        self.s.stack.append(self.s.import_global(module, name, pos, "GLOBAL"))
        return False

    def op_stack_global(self, arg: Any, pos: int) -> bool:
        name = self.s.pop(pos, "STACK_GLOBAL")
        module = self.s.pop(pos, "STACK_GLOBAL")
        if type(module) is str and type(name) is str:
            self.s.stack.append(self.s.import_global(module, name, pos, "STACK_GLOBAL"))
            return False
        expr = f"find_class({self.r.render(module, 3)}, {self.r.render(name, 3)})"
        self.s.finding(
            DANGEROUS,
            "computed-global",
            "looks up a global whose module or name is computed at load time "
            "(STACK_GLOBAL with operands that are not constant strings): the real "
            "target is hidden from static inspection",
            pos,
            None,
            expr,
        )
        node = _Node(K_GLOBAL, "<computed global>", pos)
        node.flags = F_KEEP | F_UNRESOLVED
        node.info = None
        self.s.stack.append(node)
        return False

    def op_reduce(self, arg: Any, pos: int) -> bool:
        args = self.s.pop(pos, "REDUCE")
        callee = self.s.pop(pos, "REDUCE")
        self.s.stack.append(self.c.call(callee, args, None, pos, "REDUCE"))
        return False

    def op_newobj(self, arg: Any, pos: int) -> bool:
        args = self.s.pop(pos, "NEWOBJ")
        cls = self.s.pop(pos, "NEWOBJ")
        self.s.stack.append(self.c.call(cls, args, None, pos, "NEWOBJ"))
        return False

    def op_newobj_ex(self, arg: Any, pos: int) -> bool:
        kwargs = self.s.pop(pos, "NEWOBJ_EX")
        args = self.s.pop(pos, "NEWOBJ_EX")
        cls = self.s.pop(pos, "NEWOBJ_EX")
        self.s.stack.append(self.c.call(cls, args, kwargs, pos, "NEWOBJ_EX"))
        return False

    def op_inst(self, arg: Any, pos: int) -> bool:
        module, name = arg
        items, _ = self.op_mark_collect(pos, "INST")
        cls = self.s.import_global(module, name, pos, "INST")
        args = self.s.tuple_of(items, pos)
        self.s.stack.append(self.c.call(cls, args, None, pos, "INST"))
        return False

    def op_obj(self, arg: Any, pos: int) -> bool:
        k = self.s.pop_mark(pos, "OBJ")
        items = self.s.stack[k:]
        del self.s.stack[k:]
        if not items:
            raise self.s.underflow(pos, "OBJ")
        cls = items[0]
        args = self.s.tuple_of(items[1:], pos)
        self.s.stack.append(self.c.call(cls, args, None, pos, "OBJ"))
        return False

    def op_build(self, arg: Any, pos: int) -> bool:
        if len(self.s.stack) - 2 < self.s.fence():
            raise self.s.underflow(pos, "BUILD")
        state = self.s.stack.pop()
        target = self.s.stack[-1]
        self.c.build(target, state, pos)
        return False


def _h(name: str) -> Any:
    return getattr(_OpHandlers, name)


_HANDLERS: Final[dict[int, Any]] = {
    op.PROTO: _h("op_proto"),
    op.FRAME: _h("op_frame"),
    op.STOP: _h("op_stop"),
    op.POP: _h("op_pop"),
    op.DUP: _h("op_dup"),
    op.POP_MARK: _h("op_pop_mark"),
    op.MARK: _h("op_mark"),
    op.LIST: _h("op_list"),
    op.DICT: _h("op_dict"),
    op.TUPLE: _h("op_tuple"),
    op.EMPTY_SET: _h("op_empty_set"),
    op.ADDITEMS: _h("op_additems"),
    op.FROZENSET: _h("op_frozenset"),
    op.GET: _h("op_get"),
    op.BINGET: _h("op_binget"),
    op.LONG_BINGET: _h("op_binget"),
    op.PUT: _h("op_put"),
    op.BINPUT: _h("op_put"),
    op.LONG_BINPUT: _h("op_put"),
    op.MEMOIZE: _h("op_memoize"),
    op.EMPTY_DICT: _h("op_empty_dict"),
    op.EMPTY_LIST: _h("op_empty_list"),
    op.EMPTY_TUPLE: _h("op_empty_tuple"),
    op.TUPLE1: lambda m, a, p: m.op_tuple_n(1, p),
    op.TUPLE2: lambda m, a, p: m.op_tuple_n(2, p),
    op.TUPLE3: lambda m, a, p: m.op_tuple_n(3, p),
    op.SETITEMS: _h("op_setitems"),
    op.SETITEM: _h("op_setitem"),
    op.APPENDS: _h("op_appends"),
    op.APPEND: _h("op_append"),
    op.NEXT_BUFFER: _h("op_next_buffer"),
    op.READONLY_BUFFER: _h("op_readonly_buffer"),
    op.PERSID: _h("op_persid"),
    op.BINPERSID: _h("op_binpersid"),
    op.EXT1: _h("op_ext"),
    op.EXT2: _h("op_ext"),
    op.EXT4: _h("op_ext"),
    op.GLOBAL: _h("op_global"),
    op.STACK_GLOBAL: _h("op_stack_global"),
    op.REDUCE: _h("op_reduce"),
    op.NEWOBJ: _h("op_newobj"),
    op.NEWOBJ_EX: _h("op_newobj_ex"),
    op.INST: _h("op_inst"),
    op.OBJ: _h("op_obj"),
    op.BUILD: _h("op_build"),
}

"""Calls at load time: what runs, what it returns, and whether it is dangerous.

:class:`_Caller` evaluates REDUCE/NEWOBJ/INST/OBJ calls and BUILD: known
harmless constructors take a fast path, special callables
(``machine._special``) resolve getattr chains and by-value code, the rest is
classified with the knowledge tables and recorded as findings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from serdoctor.diagnostics.inspect._report import (
    DANGEROUS,
    INFO,
    WARNING,
    ImportInfo,
)
from serdoctor.diagnostics.inspect._tables import (
    _HIGHER_ORDER,
    _INTERNAL_ATTRS,
    _SUSPICIOUS_ATTRS,
    _danger,
    _is_safe,
    _normalize,
)
from serdoctor.diagnostics.inspect.machine._expr import _Renderer
from serdoctor.diagnostics.inspect.machine._nodes import (
    F_ATTRS,
    F_KEEP,
    F_MODULE,
    F_UNRESOLVED,
    K_CLASS,
    K_CODE,
    K_DICT,
    K_FUNC,
    K_GLOBAL,
    K_OBJ,
    K_REF,
    KT_ARGS,
    KT_STATE,
    CallSite,
    _ByValue,
    _Call,
    _dict_pairs,
    _Expr,
    _Node,
    _seq,
    _Stub,
    _type_name,
    record_call,
)
from serdoctor.diagnostics.inspect.machine._opcodes import PickleFormatError
from serdoctor.diagnostics.inspect.machine._state import _MachineState


class _Caller:
    """The machine's call evaluator: callee classification, attributes, BUILD."""

    __slots__ = ("r", "s", "special")

    def __init__(self, s: _MachineState, r: _Renderer, special: Mapping[str, Any]) -> None:
        """Evaluate calls over the state ``s``, rendering with ``r``."""
        self.s = s
        self.r = r
        self.special = special  # target -> its handler (machine._special._SPECIAL)

    def target_of(self, value: Any) -> str | None:
        """The dotted name a callable stand-in resolves to, if known."""
        if type(value) is not _Node:
            return None
        if value.kind == K_GLOBAL:
            return value.info.target if value.info is not None else None
        if value.kind == K_REF:
            return value.info if isinstance(value.info, str) else None
        return None

    def call(self, callee: Any, args: Any, kwargs: Any, pos: int, opname: str) -> Any:
        """Simulate ``callee(*args)`` (or ``callee.__new__``) and return its stand-in."""
        if type(callee) is _Node and callee.kind is K_GLOBAL and kwargs is None:
            info = callee.info
            if info is not None and info.fast:
                # a known-harmless constructor (datetime, Decimal, numpy...): no finding
                record_call(info, pos, opname, lambda: self.call_text(info.target, args, opname))
                node = _Node(K_OBJ, info.target, pos)
                if type(args) is _Node:
                    self.s.attach(node, args, None, KT_ARGS)
                    if args.pos < pos:
                        node.pos = args.pos
                node.info = _Call(info.target, callee, args, None, opname)
                if not self.s.sketch_full:
                    self.r.sketch_call(node, callee, info.target, args, None, opname, pos)
                return node
        target = self.target_of(callee)
        seq = _seq(args)
        info = callee.info if type(callee) is _Node and callee.kind == K_GLOBAL else None

        def expr() -> str:  # rendered only when a record or a finding needs it
            shown = target or self.r.render(callee, 2)
            if opname in ("NEWOBJ", "NEWOBJ_EX"):
                text = f"{shown}.__new__({shown}{self.r.render_args(args, lead=True)})"
            else:
                text = f"{shown}({self.r.render_args(args)})"
            if kwargs is not None:
                text = text[:-1] + f", **{self.r.render(kwargs, 2)})"
            return text

        if info is not None:
            record_call(info, pos, opname, expr)
        result = self.evaluate(callee, target, seq, args, kwargs, pos, opname, expr)
        if type(result) is _Node and result.kind == K_OBJ and result.info is None:
            result.info = _Call(target, callee, args, kwargs, opname)
        self.r.sketch_call(result, callee, target, args, kwargs, opname, pos)
        return result

    def call_text(self, target: str, args: Any, opname: str) -> str:
        if opname in ("NEWOBJ", "NEWOBJ_EX"):
            return f"{target}.__new__({target}{self.r.render_args(args, lead=True)})"
        return f"{target}({self.r.render_args(args)})"

    def new_obj(self, label: str, pos: int, callee: Any, args: Any) -> _Node:
        """A call result; it spans from its arguments to the call opcode."""
        node = _Node(K_OBJ, label, pos)
        if type(args) is _Node:
            self.s.attach(node, args, None, KT_ARGS)
            if args.pos < pos:
                node.pos = args.pos
        node.end = pos + 1
        return node

    def evaluate(
        self,
        callee: Any,
        target: str | None,
        seq: list[Any] | None,
        args: Any,
        kwargs: Any,
        pos: int,
        opname: str,
        expr: _Expr,
    ) -> Any:
        """Classify the call and build the result stand-in."""
        ctype = type(callee)
        if target is None:
            return self.evaluate_unnamed(callee, seq, args, pos, opname, expr)
        norm = _normalize(target)
        special = self.special.get(norm)
        if special is not None:
            result = special(self, CallSite(callee, norm, seq, args, pos, opname, expr))
            if result is not None:
                return result
        danger = _danger(norm)
        if danger is None and ctype is _Node and callee.kind == K_REF:
            last = norm.rsplit(".", 1)[-1]
            if last in _SUSPICIOUS_ATTRS:
                danger = ("exec", f"reaches {last} through attribute lookups")
        if danger is not None:
            category, what = danger
            self.s.finding(
                DANGEROUS, category, f"calls {target} at load: {what}", pos, target, expr
            )
        elif opname == "BUILD":
            pass
        elif not _is_safe(norm) and not norm.startswith("__main__."):
            self.s.finding(
                INFO,
                "third-party-call",
                f"calls {target} at load: it runs with the loader's privileges",
                pos,
                target,
                expr,
            )
        self.check_higher_order(norm, seq, pos, expr)
        node = self.new_obj(target, pos, callee, args)
        if ctype is _Node and callee.kind == K_REF and callee.flags & F_MODULE:
            node.flags |= F_KEEP
        return node

    def evaluate_unnamed(
        self,
        callee: Any,
        seq: list[Any] | None,
        args: Any,
        pos: int,
        opname: str,
        expr: _Expr,
    ) -> Any:
        """A call whose callee is not a plain import: by-value code, or computed at load."""
        ctype = type(callee)
        if ctype is _Node and callee.kind == K_FUNC:
            self.s.finding(
                DANGEROUS,
                "by-value-code",
                f"calls the by-value function {self.r.func_name(callee)} at load: code "
                "carried inside the pickle runs while it loads",
                pos,
                None,
                expr,
            )
            return self.new_obj("<result of by-value function>", pos, callee, args)
        if ctype is _Node and callee.kind == K_CLASS:
            self.s.finding(
                WARNING,
                "by-value-code",
                f"instantiates the by-value class {self.r.func_name(callee)} at load: "
                "its __new__/__init__ (code carried in the pickle) run",
                pos,
                None,
                expr,
            )
            return self.new_obj(self.r.func_name(callee), pos, callee, args)
        if ctype is _Node and callee.kind == K_OBJ and isinstance(callee.info, _Call):
            resolved = self.call_through(callee, seq, args, pos, opname, expr)
            if resolved is not None:
                return resolved
        if ctype is _Node and callee.kind == K_REF and callee.flags & F_UNRESOLVED:
            self.s.finding(
                DANGEROUS,
                "computed-callable",
                "calls an attribute whose name is computed at load time",
                pos,
                None,
                expr,
            )
        elif ctype is _Node and callee.kind == K_GLOBAL and callee.flags & F_UNRESOLVED:
            self.s.finding(
                DANGEROUS,
                "computed-callable",
                f"calls {callee.label}: what runs is only decided at load time",
                pos,
                None,
                expr,
            )
        else:
            self.s.finding(
                DANGEROUS,
                "computed-callable",
                "calls a value computed at load time (not a plain import): the real "
                "callee is hidden from static inspection",
                pos,
                None,
                expr,
            )
        return self.new_obj("<unknown>", pos, callee, args)

    def call_through(
        self, callee: _Node, seq: list[Any] | None, args: Any, pos: int, opname: str, expr: _Expr
    ) -> Any:
        """Calling the result of partial/attrgetter/methodcaller: resolve what runs."""
        made: _Call = callee.info
        inner = made.target and _normalize(made.target)
        made_args = _seq(made.args) or []
        if inner == "functools.partial" and made_args:
            fn = made_args[0]
            merged = list(made_args[1:]) + list(seq or [])
            return self.call(
                fn,
                tuple(merged)
                if all(type(x) is not _Node for x in merged)
                else self.s.tuple_of(merged, pos),
                None,
                pos,
                opname,
            )
        if inner == "operator.attrgetter" and made_args and seq:
            name = made_args[0]
            if type(name) is str:
                return self.attribute(seq[0], name, pos)
        if inner == "operator.methodcaller" and made_args and seq:
            name = made_args[0]
            if type(name) is str:
                fn = self.attribute(seq[0], name, pos)
                return self.call(fn, self.s.tuple_of(list(made_args[1:]), pos), None, pos, opname)
        return None

    def attribute(self, obj: Any, name: Any, pos: int) -> _Node:
        """``getattr(obj, name)`` as a reference stand-in."""
        base = self.target_of(obj)
        if base is None and type(obj) is _Node and obj.kind == K_OBJ:
            base = f"<{obj.label} instance>"
        if type(name) is not str:
            node = _Node(K_REF, "<computed attribute>", pos)
            node.flags = F_KEEP | F_UNRESOLVED
            self.s.finding(
                DANGEROUS,
                "computed-attribute",
                "looks up an attribute whose name is computed at load time (getattr with "
                "a non-constant name)",
                pos,
                None,
                f"getattr({self.r.render(obj, 2)}, {self.r.render(name, 2)})",
            )
            return node
        if base is None:
            node = _Node(K_REF, f"<value>.{name}", pos)
            node.flags = F_KEEP | F_UNRESOLVED
            node.info = None
            if name in _INTERNAL_ATTRS or name in _SUSPICIOUS_ATTRS:
                self.s.finding(
                    DANGEROUS,
                    "getattr-chain",
                    f"reaches .{name} of a value built at load time (a common way to "
                    "smuggle code execution past allowlists)",
                    pos,
                    None,
                    f"getattr({self.r.render(obj, 2)}, {name!r})",
                )
            return node
        full = f"{base}.{name}"
        node = _Node(K_REF, full, pos)
        node.flags = F_KEEP
        node.info = full
        if name in _INTERNAL_ATTRS:
            self.s.finding(
                DANGEROUS,
                "getattr-chain",
                f"reaches {full}: interpreter internals that lead to code execution",
                pos,
                full,
                f"getattr({base}, {name!r})",
            )
        return node

    def check_higher_order(self, norm: str, seq: list[Any] | None, pos: int, expr: _Expr) -> None:
        """map/filter/reduce/sorted... with a dangerous function argument."""
        if norm not in _HIGHER_ORDER or not seq:
            return
        for value in seq[:2]:
            inner = self.target_of(value)
            if inner is not None and _danger(inner) is not None:
                self.s.finding(
                    DANGEROUS,
                    "exec",
                    f"passes {inner} to {norm}, which calls it",
                    pos,
                    inner,
                    expr,
                )

    def build(self, target: Any, state: Any, pos: int) -> None:
        """BUILD: ``target.__setstate__(state)`` or an attribute update."""
        ttype = type(target)
        if ttype is _Node:
            target.end = pos + 1
            if type(state) is _Node:
                self.s.attach(target, state, None, KT_STATE)
                if state.kind == K_DICT:
                    state.flags |= F_ATTRS
            kind = target.kind
            expr = f"{self.r.render(target, 1)}.__setstate__({self.r.render(state, 2)})"
            if kind in (K_GLOBAL, K_REF):
                name = self.target_of(target) or target.label
                self.s.finding(
                    DANGEROUS,
                    "mutation",
                    f"sets attributes on the imported object {name} at load (BUILD on a "
                    "global): this can replace functions of installed modules",
                    pos,
                    name,
                    expr,
                )
            elif kind == K_OBJ and isinstance(target.info, _Call):
                made: _Call = target.info
                made.states.append(state)
                cls_info = self.class_info(made)
                if cls_info is not None:
                    record_call(cls_info, pos, "BUILD", lambda: expr)
                by_value_cls = self.by_value_class_of(made)
                if by_value_cls is not None and self.class_defines(by_value_cls, "__setstate__"):
                    self.s.finding(
                        DANGEROUS,
                        "by-value-code",
                        f"BUILD runs {self.r.func_name(by_value_cls)}.__setstate__, code "
                        "carried inside the pickle",
                        pos,
                        None,
                        expr,
                    )
            elif kind in (K_FUNC, K_CLASS, K_CODE) and isinstance(target.info, _ByValue):
                target.info.states.append(state)
            if target.var is not None:
                self.r.sketch_line(
                    f"{target.var}.__setstate__({self.r.render(state, 3, True)})  # @{pos} BUILD"
                )
        elif ttype is _Stub:
            return
        else:
            raise PickleFormatError(pos, f"BUILD on {_type_name(target)}", "BUILD")

    def class_info(self, made: _Call) -> ImportInfo | None:
        """The import whose class an object is (NEWOBJ cls, or cls given to a reconstructor)."""
        callee = made.callee
        if made.opcode in ("NEWOBJ", "NEWOBJ_EX", "INST", "OBJ", "REDUCE"):
            if made.target and _normalize(made.target) in (
                "copyreg._reconstructor",
                "copyreg.__newobj__",
                "copyreg.__newobj_ex__",
            ):
                seq = _seq(made.args)
                if seq:
                    callee = seq[0]
            if type(callee) is _Node and callee.kind == K_GLOBAL and callee.info is not None:
                info: ImportInfo = callee.info
                return info
        return None

    def by_value_class_of(self, made: _Call) -> _Node | None:
        callee = made.callee
        if made.target and _normalize(made.target) in (
            "copyreg._reconstructor",
            "copyreg.__newobj__",
        ):
            seq = _seq(made.args)
            callee = seq[0] if seq else None
        if type(callee) is _Node and callee.kind == K_CLASS:
            return callee
        return None

    def class_defines(self, cls: _Node, name: str) -> bool:
        """Whether a by-value class's kept dict has ``name`` (True when unknown)."""
        bv = cls.info
        if not isinstance(bv, _ByValue):
            return True
        dicts: list[Any] = []
        seq = _seq(bv.args) or []
        dicts.extend(v for v in seq if type(v) is _Node and v.kind == K_DICT)
        for st in bv.states:
            s = _seq(st)
            if s:
                dicts.extend(v for v in s if type(v) is _Node and v.kind == K_DICT)
            elif type(st) is _Node and st.kind == K_DICT:
                dicts.append(st)
        complete = True
        for d in dicts:
            keys = _dict_pairs(d)
            if keys is None:
                complete = False
                continue
            if any(k == name for k, _ in keys):
                return True
        return not complete

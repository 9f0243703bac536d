"""By-value code described from stand-ins: names, globals, closures, hidden imports.

The machine records cloudpickle/dill/serdoctor/raw by-value functions,
classes and code objects as :class:`_ByValue`; :func:`_describe` turns one
into a :class:`ByValueCode` for the report (Python versions come from
:mod:`_code`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from serdoctor.diagnostics.inspect._code import _marshal_code_facts, _python_for
from serdoctor.diagnostics.inspect._report import ByValueCode
from serdoctor.diagnostics.inspect.machine._nodes import (
    F_MODULE,
    K_BLOB,
    K_CLASS,
    K_CODE,
    K_DICT,
    K_FUNC,
    K_GLOBAL,
    K_LIST,
    K_OBJ,
    K_REF,
    _ByValue,
    _Call,
    _dict_pairs,
    _Node,
    _seq,
)
from serdoctor.diagnostics.inspect.machine._opcodes import Skipped


class _Reads(Protocol):
    def read_at(self, offset: int, size: int) -> bytes | None: ...


class _Renderer(Protocol):
    """What reading by-value code needs of the machine's renderer (machine._expr)."""

    @property
    def s(self) -> _Reads: ...

    def render(self, value: Any, depth: int = 3, sketch: bool = False) -> str: ...


def _as_bytes(m: _Renderer, value: Any) -> bytes | None:
    if type(value) is bytes:
        return value
    if type(value) is str:
        return value.encode("latin-1", "replace")
    if type(value) is _Node and value.kind == K_BLOB and isinstance(value.info, Skipped):
        sk: Skipped = value.info
        if sk.length > 1 << 20:
            return sk.head
        return m.s.read_at(sk.offset, sk.length) or sk.head
    if type(value) is _Node and value.kind == K_BLOB and type(value.info) is bytes:
        return bytes(value.info)
    return None


def _code_facts(m: _Renderer, code: Any) -> dict[str, Any]:
    """Name, file, line and Python versions of a code-object stand-in."""
    facts: dict[str, Any] = {}
    if type(code) is not _Node or code.kind != K_CODE or not isinstance(code.info, _ByValue):
        return facts
    seq = _seq(code.info.args)
    if seq is None:
        return facts
    if code.info.producer == "serdoctor":
        raw = _as_bytes(m, seq[0]) if seq else None
        return _marshal_code_facts(raw) if raw else facts
    if seq and type(seq[0]) is not int:  # dill >= 0.3.6 stores co_lnotab first
        seq = seq[1:]
    arity = len(seq)
    facts["arity"] = arity
    if arity == 15:
        idx = {"code": 5, "filename": 9, "name": 10, "firstlineno": 11}
    elif arity == 16:
        idx = {"code": 6, "filename": 10, "name": 11, "firstlineno": 12}
    elif arity in (17, 18, 20):
        idx = {"code": 6, "filename": 10, "name": 11, "qualname": 12, "firstlineno": 13}
    else:
        idx = {}
    for key, at in idx.items():
        if at < len(seq):
            facts[key] = seq[at]
    co_code = _as_bytes(m, facts.pop("code", None))
    facts["python"], facts["basis"] = _python_for(arity, co_code)
    return facts


def _state_parts(states: list[Any]) -> list[_Node]:
    """Dicts found in BUILD/setstate states: ``state`` or ``(state, slotstate)``."""
    out: list[_Node] = []
    for st in states:
        if type(st) is _Node and st.kind == K_DICT:
            out.append(st)
            continue
        for part in _seq(st) or []:
            if type(part) is _Node and part.kind == K_DICT:
                out.append(part)
    return out


def _lookup(dicts: list[_Node], key: str) -> Any:
    for d in dicts:
        for k, v in _dict_pairs(d) or []:
            if k == key:
                return v
    return None


def _closure_values(m: _Renderer, closure: Any) -> list[str]:
    out = []
    for cell in _seq(closure) or []:
        if type(cell) is _Node and cell.kind == K_OBJ and isinstance(cell.info, _Call):
            inner = _seq(cell.info.args) or []
            out.append(m.render(inner[0], 2) if inner else "<empty cell>")
        else:
            out.append(m.render(cell, 2))
    return out


def _imports_in(m: _Renderer, values: Iterable[Any]) -> list[str]:
    found: list[str] = []
    for v in values:
        if type(v) is _Node and v.kind == K_REF and v.flags & F_MODULE and v.info:
            found.append(str(v.info))
        elif type(v) is _Node and v.kind == K_GLOBAL and v.info is not None:
            found.append(v.info.target)
        elif type(v) is _Node and v.kind == K_LIST:
            found.extend(_imports_in(m, v.items or []))
    return found


def _describe(m: _Renderer, bv: _ByValue, shallow: bool = False) -> ByValueCode:
    """Turn by-value machinery into a readable description."""
    seq = _seq(bv.args) or []
    out = ByValueCode(
        kind={K_FUNC: "function", K_CLASS: "class", K_CODE: "code"}[bv.kind],
        producer=bv.producer,
        offset=bv.node.pos,
    )
    dicts = _state_parts(bv.states)
    if bv.kind == K_CODE:
        facts = _code_facts(m, bv.node)
        _apply_facts(out, facts)
        return out
    if bv.kind == K_FUNC and bv.producer == "serdoctor":
        return _describe_serdoctor(m, bv, out, seq, shallow)
    if bv.kind == K_FUNC:
        return _describe_function(m, out, seq, dicts, shallow)
    return _describe_class(m, bv, out, seq, dicts)


def _describe_function(
    m: _Renderer, out: ByValueCode, seq: list[Any], dicts: list[_Node], shallow: bool
) -> ByValueCode:
    """Read a function sent by cloudpickle, dill or as raw code.

    A cloudpickle/dill/raw function: ``(code, globals, name, defaults, closure)`` plus
    state dicts (``__qualname__``, ``__module__``, ``__globals__``, ``__closure__``).
    """
    code = seq[0] if seq else None
    if type(code) is _Node and code.kind == K_CODE:
        _apply_facts(
            out,
            _code_facts(m, code)
            if not shallow
            else {k: v for k, v in _code_facts(m, code).items() if k in ("name", "qualname")},
        )
    if len(seq) > 2 and type(seq[2]) is str:
        out.name = seq[2]
    qual = _lookup(dicts, "__qualname__")
    if type(qual) is str:
        out.qualname = qual
    if shallow:
        return out
    module = _lookup(dicts, "__module__")
    globals_dict = seq[1] if len(seq) > 1 else None
    g2 = _lookup(dicts, "__globals__")
    gdicts = [d for d in (globals_dict, g2) if type(d) is _Node and d.kind == K_DICT]
    if type(module) is not str:
        module = _lookup(gdicts, "__name__")
    out.module = module if type(module) is str else None
    names: list[str] = []
    values: list[Any] = []
    for d in gdicts:
        for k, v in _dict_pairs(d) or []:
            if type(k) is str and not k.startswith("__") and k not in names:
                names.append(k)
                values.append(v)
    out.globals = names
    closure = _lookup(dicts, "__closure__")
    if closure is None and len(seq) > 4:
        closure = seq[4]
    out.closure = _closure_values(m, closure)
    subs = _lookup(dicts, "_cloudpickle_submodules")
    hidden = _imports_in(m, [*values, subs, *(_seq(closure) or [])])
    cells = [
        c.info.args for c in _seq(closure) or [] if type(c) is _Node and isinstance(c.info, _Call)
    ]
    for a in cells:
        hidden.extend(_imports_in(m, _seq(a) or []))
    out.hidden_imports = sorted(set(hidden))
    return out


def _describe_class(
    m: _Renderer, bv: _ByValue, out: ByValueCode, seq: list[Any], dicts: list[_Node]
) -> ByValueCode:
    """A class rebuilt by cloudpickle, dill or ``type(name, bases, dict)``."""
    # classes: cloudpickle _make_skeleton_class(type_constructor, name, bases, type_kwargs,
    # tracker, extra) or _make_skeleton_enum(bases, name, qualname, members, module, ...);
    # raw type(name, bases, dict); dill _create_type(typeobj, name, bases, dict)
    bases: Any = None
    if bv.producer == "cloudpickle" and len(seq) >= 5 and type(seq[2]) is str:  # enum
        bases, out.name, out.qualname = seq[0], seq[1], seq[2]
        if type(seq[4]) is str:
            out.module = seq[4]
    elif bv.producer == "cloudpickle" and len(seq) >= 3:
        out.name = seq[1] if type(seq[1]) is str else None
        bases = seq[2]
        if len(seq) > 3 and type(seq[3]) is _Node:
            dicts.append(seq[3])
    elif len(seq) >= 3 and type(seq[0]) is str:
        out.name = seq[0]
        bases = seq[1]
        if type(seq[2]) is _Node:
            dicts.append(seq[2])
    elif len(seq) >= 4:
        out.name = seq[1] if type(seq[1]) is str else None
        bases = seq[2]
        if type(seq[3]) is _Node:
            dicts.append(seq[3])
    out.bases = [m.render(b, 1) for b in (_seq(bases) or [])]
    qual = _lookup(dicts, "__qualname__")
    if type(qual) is str:
        out.qualname = qual
    module = _lookup(dicts, "__module__")
    if type(module) is str:
        out.module = module
    methods = []
    for d in dicts:
        for k, v in _dict_pairs(d) or []:
            if type(v) is _Node and v.kind in (K_FUNC, K_OBJ, K_CLASS) and type(k) is str:
                methods.append(k)
    out.methods = methods
    return out


def _describe_serdoctor(
    m: _Renderer, bv: _ByValue, out: ByValueCode, seq: list[Any], shallow: bool
) -> ByValueCode:
    """Read a function sent by serdoctor's own reducer.

    Serdoctor's own reducer: ``_make_function(marshal bytes, globals, name, n_cells)``
    then ``_set_function_state(fn, (globals, cells, empty, attrs, fdict, submodules))``.
    """
    raw = _as_bytes(m, seq[0]) if seq else None
    if raw:
        _apply_facts(out, _marshal_code_facts(raw))
    if len(seq) > 2 and type(seq[2]) is str:
        out.name = seq[2]
    state: list[Any] = []
    for st in bv.states:
        state = _seq(st) or []
    attrs = state[3] if len(state) > 3 else None
    for key, value in _dict_pairs(attrs) or []:
        if key == "__qualname__" and type(value) is str:
            out.qualname = value
        if key == "__module__" and type(value) is str:
            out.module = value
    if shallow:
        return out
    base = seq[1] if len(seq) > 1 else None
    if out.module is None:
        name = _lookup([base] if type(base) is _Node else [], "__name__")
        out.module = name if type(name) is str else None
    f_globals = state[0] if state else None
    pairs = _dict_pairs(f_globals) or []
    out.globals = [k for k, _ in pairs if type(k) is str]
    cells = _seq(state[1]) if len(state) > 1 else None
    out.closure = [m.render(v, 2) for v in cells or []]
    subs = _seq(state[5]) if len(state) > 5 else None
    hidden = _imports_in(m, [v for _, v in pairs] + list(cells or []) + list(subs or []))
    out.hidden_imports = sorted(set(hidden))
    return out


def _apply_facts(out: ByValueCode, facts: dict[str, Any]) -> None:
    if type(facts.get("name")) is str:
        out.name = facts["name"]
    if type(facts.get("qualname")) is str:
        out.qualname = facts["qualname"]
    if type(facts.get("filename")) is str:
        out.filename = facts["filename"]
    if type(facts.get("firstlineno")) is int:
        out.firstlineno = facts["firstlineno"]
    if "python" in facts:
        out.python = list(facts["python"])
        out.python_basis = str(facts["basis"])

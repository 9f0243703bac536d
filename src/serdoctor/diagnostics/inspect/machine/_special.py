"""Callables the machine understands instead of treating them as opaque calls.

``getattr``/``getitem`` chains, module imports hidden in cloudpickle and dill
helpers, and the by-value machinery of cloudpickle, dill and serdoctor (code
objects, functions, classes, cells, setstate helpers). Each handler gets the
call's parts and returns the result's stand-in, or ``None`` to fall back to
the generic call evaluation. ``_SPECIAL`` maps normalized targets to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from serdoctor.diagnostics.inspect._report import DANGEROUS, ImportInfo
from serdoctor.diagnostics.inspect._tables import _danger, _normalize
from serdoctor.diagnostics.inspect.machine._nodes import (
    F_EMPTY_CELL,
    F_KEEP,
    F_MODULE,
    F_UNRESOLVED,
    K_CLASS,
    K_CODE,
    K_FUNC,
    K_GLOBAL,
    K_REF,
    MAX_BY_VALUE,
    _ByValue,
    _Call,
    _Expr,
    _Node,
    _seq,
    _text,
    record_call,
)

if TYPE_CHECKING:
    from serdoctor.diagnostics.inspect.machine._calls import _Caller

_CLOUDPICKLE: Final = "cloudpickle.cloudpickle."
_SERDOCTOR_CODE: Final = "serdoctor.serialize._code."
_DILL: Final = "dill._dill."

# types module names reachable through cloudpickle._builtin_type / dill._load_type
_DILL_TYPE_NAMES: Final = {
    "CodeType": "types.CodeType",
    "code": "types.CodeType",
    "FunctionType": "types.FunctionType",
    "function": "types.FunctionType",
    "CellType": "types.CellType",
    "cell": "types.CellType",
    "ModuleType": "types.ModuleType",
    "module": "types.ModuleType",
    "MethodType": "types.MethodType",
    "type": "builtins.type",
    "object": "builtins.object",
    "ClassType": "builtins.type",
    "TypeType": "builtins.type",
}


def _sp_getattr(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    if not seq or len(seq) < 2:
        return None
    return m.attribute(seq[0], seq[1], pos)


def _sp_dill_get_attr(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    return _sp_getattr(m, callee, norm, seq, args, pos, opname, expr)


def _sp_getitem(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    """``operator.getitem(sys.modules, 'os')`` / ``getitem(mod.__dict__, 'x')``."""
    if not seq or len(seq) < 2:
        return None
    base = m.target_of(seq[0])
    key = seq[1]
    if base is None or type(key) is not str:
        return None
    if base in ("sys.modules",):
        node = _module_ref(m, key, pos, "sys.modules")
        m.finding(
            DANGEROUS, "import", f"fetches module {key} from sys.modules at load", pos, key, expr
        )
        return node
    if base.endswith(".__dict__") or base.endswith(".__builtins__"):
        return m.attribute(_ref(m, base.rsplit(".", 1)[0], pos), key, pos)
    return None


def _ref(m: _Caller, name: str, pos: int) -> _Node:
    node = _Node(K_REF, name, pos)
    node.info = name
    node.flags = F_KEEP
    return node


def _module_ref(m: _Caller, module: Any, pos: int, via: str) -> _Node:
    if type(module) is not str:
        node = _Node(K_REF, "<computed module>", pos)
        node.flags = F_KEEP | F_UNRESOLVED | F_MODULE
        m.finding(
            DANGEROUS,
            "import",
            f"imports a module whose name is computed at load time ({via})",
            pos,
            None,
            f"{via}({m.render(module, 2)})",
        )
        return node
    m.import_global(module, "", pos, via)
    node = _Node(K_REF, module, pos)
    node.info = module
    node.flags = F_KEEP | F_MODULE
    return node


def _sp_subimport(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    if not seq:
        return None
    return _module_ref(m, seq[0], pos, norm.rsplit(".", 1)[-1])


def _sp_import(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    """``__import__``/``importlib.import_module``: dangerous, but resolve the module."""
    danger = _danger(norm) or ("import", "imports a module chosen by the pickle")
    m.finding(DANGEROUS, danger[0], f"calls {norm} at load: {danger[1]}", pos, norm, expr)
    if not seq:
        return None
    return _module_ref(m, seq[0], pos, norm)


def _sp_builtin_type(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    if not seq or type(seq[0]) is not str:
        return None
    name = seq[0]
    full = _DILL_TYPE_NAMES.get(name, f"types.{name}")
    if norm.startswith(_DILL) and name not in _DILL_TYPE_NAMES:
        full = f"builtins.{name}" if name.islower() else f"types.{name}"
    if name.startswith("__"):
        m.finding(
            DANGEROUS, "getattr-chain", f"reaches types.{name} through {norm}", pos, None, expr
        )
    return _ref(m, full, pos)


def _by_value(
    m: _Caller, kind: str, producer: str, label: str, args: Any, pos: int, callee: Any
) -> _Node:
    node = m.new_obj(label, pos, callee, args)
    node.kind = kind
    node.flags |= F_KEEP
    bv = _ByValue(kind, producer, node, args)
    node.info = bv
    if len(m.by_value) < MAX_BY_VALUE:
        m.by_value.append(bv)
    return node


def _producer(norm: str) -> str:
    if norm.startswith(_CLOUDPICKLE):
        return "cloudpickle"
    if norm.startswith(_DILL):
        return "dill"
    if norm.startswith(_SERDOCTOR_CODE):
        return "serdoctor"
    return "raw"


def _sp_code(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    producer = _producer(norm)
    return _by_value(m, K_CODE, producer, "code", args, pos, callee)


def _sp_function(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    node = _by_value(m, K_FUNC, _producer(norm), "function", args, pos, callee)
    if seq:
        code = seq[0]
        node.info.code = code
        if (
            type(code) is _Node
            and code.kind == K_CODE
            and isinstance(code.info, _ByValue)
            and code.info.producer == "raw"
            and node.info.producer != "raw"
        ):
            code.info.producer = node.info.producer
    return node


def _sp_class(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    if norm == "builtins.type" and (not seq or len(seq) != 3):
        return None
    if norm == "dill._dill._create_type":
        inner = m.target_of(seq[0]) if seq else None
        if inner is None or _normalize(inner) not in (
            "builtins.type",
            "abc.ABCMeta",
            "enum.EnumMeta",
            "enum.EnumType",
        ):
            return _sp_apply(m, callee, norm, seq, args, pos, opname, expr)
    return _by_value(m, K_CLASS, _producer(norm), "class", args, pos, callee)


def _sp_setstate(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    """Cloudpickle's _function_setstate/_class_setstate, builtins.setattr and friends."""
    if not seq:
        return None
    obj = seq[0]
    if type(obj) is _Node and obj.kind in (K_GLOBAL, K_REF):
        name = m.target_of(obj) or obj.label
        m.finding(
            DANGEROUS,
            "mutation",
            f"changes attributes of the imported object {name} at load ({norm})",
            pos,
            name,
            expr,
        )
    elif type(obj) is _Node and isinstance(obj.info, _ByValue) and len(seq) > 1:
        if norm.endswith(("setattr", "_setattr")):
            obj.info.states.append(m.tuple_of(list(seq[1:]), pos))
        else:
            obj.info.states.append(seq[1])
    return m.new_obj("None", pos, callee, args)


def _sp_apply(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    """Helpers that call their first argument (dill._create_type, cloudpickle.instance...)."""
    if not seq:
        return None
    fn = seq[0]
    rest: list[Any] = list(seq[1:])
    if norm == "dill._dill._create_ftype" and len(seq) >= 3:
        inner = _seq(seq[2]) or []
        rest = [seq[1], *inner]
    elif norm == "dill._dill._create_array" and len(seq) >= 2:
        rest = _seq(seq[1]) or []
    elif norm in ("cloudpickle.cloudpickle.instance",):
        rest = []
    packed = m.tuple_of(rest, pos)
    return m.call(fn, packed, None, pos, opname)


def _sp_reconstructor(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    """copyreg._reconstructor(cls, base, state) calls base.__init__(obj, state)."""
    if not seq or len(seq) < 2:
        return None
    cls, base_cls = seq[0], seq[1]
    info = cls.info if type(cls) is _Node and cls.kind == K_GLOBAL else None
    if isinstance(info, ImportInfo):
        record_call(info, pos, opname, lambda: _text(expr))
    base_target = m.target_of(base_cls)
    if base_target is not None and _normalize(base_target) != "builtins.object":
        danger = _danger(base_target)
        if danger is not None:
            m.finding(
                DANGEROUS,
                danger[0],
                f"copyreg._reconstructor runs {base_target}.__init__ at load: {danger[1]}",
                pos,
                base_target,
                expr,
            )
    label = m.target_of(cls) or m.render(cls, 1)
    node = m.new_obj(label, pos, callee, args)
    node.info = _Call(label, cls, args, None, "REDUCE")
    return node


def _sp_newobj(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    if not seq:
        return None
    cls = seq[0]
    info = cls.info if type(cls) is _Node and cls.kind == K_GLOBAL else None
    if isinstance(info, ImportInfo):
        record_call(info, pos, opname, lambda: _text(expr))
    target = m.target_of(cls)
    if target is not None and _danger(target) is not None:
        m.finding(
            DANGEROUS,
            _danger(target)[0],  # type: ignore[index]
            f"creates a {target} object at load",
            pos,
            target,
            expr,
        )
    label = target or m.render(cls, 1)
    node = m.new_obj(label, pos, callee, args)
    node.info = _Call(label, cls, args, None, "NEWOBJ")
    return node


def _sp_cell(
    m: _Caller,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    node = m.new_obj("cell", pos, callee, args)
    if not seq:
        node.flags |= F_EMPTY_CELL
    return node


_SPECIAL: Final = {
    "builtins.getattr": _sp_getattr,
    "dill._dill._get_attr": _sp_dill_get_attr,
    "operator.getitem": _sp_getitem,
    "builtins.dict.get": _sp_getitem,
    "builtins.dict.__getitem__": _sp_getitem,
    "cloudpickle.cloudpickle.subimport": _sp_subimport,
    "cloudpickle.cloudpickle.dynamic_subimport": _sp_subimport,
    "dill._dill._import_module": _sp_subimport,
    "builtins.__import__": _sp_import,
    "importlib.import_module": _sp_import,
    "importlib.__import__": _sp_import,
    "cloudpickle.cloudpickle._builtin_type": _sp_builtin_type,
    "dill._dill._load_type": _sp_builtin_type,
    "types.CodeType": _sp_code,
    "serdoctor.serialize._code._unmarshal": _sp_code,
    "serdoctor.serialize._code._make_function": _sp_function,
    "serdoctor.serialize._code._set_function_state": _sp_setstate,
    "dill._dill._create_code": _sp_code,
    "types.FunctionType": _sp_function,
    "cloudpickle.cloudpickle._make_function": _sp_function,
    "dill._dill._create_function": _sp_function,
    "cloudpickle.cloudpickle._make_skeleton_class": _sp_class,
    "cloudpickle.cloudpickle._make_skeleton_enum": _sp_class,
    "dill._dill._create_type": _sp_class,
    "builtins.type": _sp_class,
    "types.new_class": _sp_class,
    "cloudpickle.cloudpickle._function_setstate": _sp_setstate,
    "cloudpickle.cloudpickle._class_setstate": _sp_setstate,
    "builtins.setattr": _sp_setstate,
    "builtins.delattr": _sp_setstate,
    "dill._dill._setattr": _sp_setstate,
    "dill._dill._delattr": _sp_setstate,
    "dill._dill._create_ftype": _sp_apply,
    "dill._dill._create_array": _sp_apply,
    "cloudpickle.cloudpickle.instance": _sp_apply,
    "copyreg._reconstructor": _sp_reconstructor,
    "copyreg.__newobj__": _sp_newobj,
    "copyreg.__newobj_ex__": _sp_newobj,
    "cloudpickle.cloudpickle._make_cell": _sp_cell,
    "cloudpickle.cloudpickle._make_empty_cell": _sp_cell,
    "dill._dill._create_cell": _sp_cell,
    "types.CellType": _sp_cell,
}

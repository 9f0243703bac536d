"""Callables the machine understands instead of treating them as opaque calls.

``getattr``/``getitem`` chains, module imports hidden in cloudpickle and dill
helpers, and the by-value machinery of cloudpickle, dill and serdoctor (code
objects, functions, classes, cells, setstate helpers). Each handler gets the
call site (:class:`CallSite`) and returns the result's stand-in, or ``None``
to fall back to the generic call evaluation. ``_SPECIAL`` maps normalized
targets to them.
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
    CallSite,
    _ByValue,
    _Call,
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
    site: CallSite,
) -> Any:
    if not site.seq or len(site.seq) < 2:
        return None
    return m.attribute(site.seq[0], site.seq[1], site.pos)


def _sp_dill_get_attr(
    m: _Caller,
    site: CallSite,
) -> Any:
    return _sp_getattr(m, site)


def _sp_getitem(
    m: _Caller,
    site: CallSite,
) -> Any:
    """``operator.getitem(sys.modules, 'os')`` / ``getitem(mod.__dict__, 'x')``."""
    if not site.seq or len(site.seq) < 2:
        return None
    base = m.target_of(site.seq[0])
    key = site.seq[1]
    if base is None or type(key) is not str:
        return None
    if base in ("sys.modules",):
        node = _module_ref(m, key, site.pos, "sys.modules")
        m.s.finding(
            DANGEROUS,
            "import",
            f"fetches module {key} from sys.modules at load",
            site.pos,
            key,
            site.expr,
        )
        return node
    if base.endswith(".__dict__") or base.endswith(".__builtins__"):
        return m.attribute(_ref(m, base.rsplit(".", 1)[0], site.pos), key, site.pos)
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
        m.s.finding(
            DANGEROUS,
            "import",
            f"imports a module whose name is computed at load time ({via})",
            pos,
            None,
            f"{via}({m.r.render(module, 2)})",
        )
        return node
    m.s.import_global(module, "", pos, via)
    node = _Node(K_REF, module, pos)
    node.info = module
    node.flags = F_KEEP | F_MODULE
    return node


def _sp_subimport(
    m: _Caller,
    site: CallSite,
) -> Any:
    if not site.seq:
        return None
    return _module_ref(m, site.seq[0], site.pos, site.norm.rsplit(".", 1)[-1])


def _sp_import(
    m: _Caller,
    site: CallSite,
) -> Any:
    """``__import__``/``importlib.import_module``: dangerous, but resolve the module."""
    danger = _danger(site.norm) or ("import", "imports a module chosen by the pickle")
    m.s.finding(
        DANGEROUS,
        danger[0],
        f"calls {site.norm} at load: {danger[1]}",
        site.pos,
        site.norm,
        site.expr,
    )
    if not site.seq:
        return None
    return _module_ref(m, site.seq[0], site.pos, site.norm)


def _sp_builtin_type(
    m: _Caller,
    site: CallSite,
) -> Any:
    if not site.seq or type(site.seq[0]) is not str:
        return None
    name = site.seq[0]
    full = _DILL_TYPE_NAMES.get(name, f"types.{name}")
    if site.norm.startswith(_DILL) and name not in _DILL_TYPE_NAMES:
        full = f"builtins.{name}" if name.islower() else f"types.{name}"
    if name.startswith("__"):
        m.s.finding(
            DANGEROUS,
            "getattr-chain",
            f"reaches types.{name} through {site.norm}",
            site.pos,
            None,
            site.expr,
        )
    return _ref(m, full, site.pos)


def _by_value(
    m: _Caller, kind: str, producer: str, label: str, args: Any, pos: int, callee: Any
) -> _Node:
    node = m.new_obj(label, pos, callee, args)
    node.kind = kind
    node.flags |= F_KEEP
    bv = _ByValue(kind, producer, node, args)
    node.info = bv
    if len(m.s.by_value) < MAX_BY_VALUE:
        m.s.by_value.append(bv)
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
    site: CallSite,
) -> Any:
    producer = _producer(site.norm)
    return _by_value(m, K_CODE, producer, "code", site.args, site.pos, site.callee)


def _sp_function(
    m: _Caller,
    site: CallSite,
) -> Any:
    node = _by_value(m, K_FUNC, _producer(site.norm), "function", site.args, site.pos, site.callee)
    if site.seq:
        code = site.seq[0]
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
    site: CallSite,
) -> Any:
    if site.norm == "builtins.type" and (not site.seq or len(site.seq) != 3):
        return None
    if site.norm == "dill._dill._create_type":
        inner = m.target_of(site.seq[0]) if site.seq else None
        if inner is None or _normalize(inner) not in (
            "builtins.type",
            "abc.ABCMeta",
            "enum.EnumMeta",
            "enum.EnumType",
        ):
            return _sp_apply(m, site)
    return _by_value(m, K_CLASS, _producer(site.norm), "class", site.args, site.pos, site.callee)


def _sp_setstate(
    m: _Caller,
    site: CallSite,
) -> Any:
    """Cloudpickle's _function_setstate/_class_setstate, builtins.setattr and friends."""
    if not site.seq:
        return None
    obj = site.seq[0]
    if type(obj) is _Node and obj.kind in (K_GLOBAL, K_REF):
        name = m.target_of(obj) or obj.label
        m.s.finding(
            DANGEROUS,
            "mutation",
            f"changes attributes of the imported object {name} at load ({site.norm})",
            site.pos,
            name,
            site.expr,
        )
    elif type(obj) is _Node and isinstance(obj.info, _ByValue) and len(site.seq) > 1:
        if site.norm.endswith(("setattr", "_setattr")):
            obj.info.states.append(m.s.tuple_of(list(site.seq[1:]), site.pos))
        else:
            obj.info.states.append(site.seq[1])
    return m.new_obj("None", site.pos, site.callee, site.args)


def _sp_apply(
    m: _Caller,
    site: CallSite,
) -> Any:
    """Helpers that call their first argument (dill._create_type, cloudpickle.instance...)."""
    if not site.seq:
        return None
    fn = site.seq[0]
    rest: list[Any] = list(site.seq[1:])
    if site.norm == "dill._dill._create_ftype" and len(site.seq) >= 3:
        inner = _seq(site.seq[2]) or []
        rest = [site.seq[1], *inner]
    elif site.norm == "dill._dill._create_array" and len(site.seq) >= 2:
        rest = _seq(site.seq[1]) or []
    elif site.norm in ("cloudpickle.cloudpickle.instance",):
        rest = []
    packed = m.s.tuple_of(rest, site.pos)
    return m.call(fn, packed, None, site.pos, site.opname)


def _sp_reconstructor(
    m: _Caller,
    site: CallSite,
) -> Any:
    """copyreg._reconstructor(cls, base, state) calls base.__init__(obj, state)."""
    if not site.seq or len(site.seq) < 2:
        return None
    cls, base_cls = site.seq[0], site.seq[1]
    info = cls.info if type(cls) is _Node and cls.kind == K_GLOBAL else None
    if isinstance(info, ImportInfo):
        record_call(info, site.pos, site.opname, lambda: _text(site.expr))
    base_target = m.target_of(base_cls)
    if base_target is not None and _normalize(base_target) != "builtins.object":
        danger = _danger(base_target)
        if danger is not None:
            m.s.finding(
                DANGEROUS,
                danger[0],
                f"copyreg._reconstructor runs {base_target}.__init__ at load: {danger[1]}",
                site.pos,
                base_target,
                site.expr,
            )
    label = m.target_of(cls) or m.r.render(cls, 1)
    node = m.new_obj(label, site.pos, site.callee, site.args)
    node.info = _Call(label, cls, site.args, None, "REDUCE")
    return node


def _sp_newobj(
    m: _Caller,
    site: CallSite,
) -> Any:
    if not site.seq:
        return None
    cls = site.seq[0]
    info = cls.info if type(cls) is _Node and cls.kind == K_GLOBAL else None
    if isinstance(info, ImportInfo):
        record_call(info, site.pos, site.opname, lambda: _text(site.expr))
    target = m.target_of(cls)
    if target is not None and _danger(target) is not None:
        m.s.finding(
            DANGEROUS,
            _danger(target)[0],  # type: ignore[index]
            f"creates a {target} object at load",
            site.pos,
            target,
            site.expr,
        )
    label = target or m.r.render(cls, 1)
    node = m.new_obj(label, site.pos, site.callee, site.args)
    node.info = _Call(label, cls, site.args, None, "NEWOBJ")
    return node


def _sp_cell(
    m: _Caller,
    site: CallSite,
) -> Any:
    node = m.new_obj("cell", site.pos, site.callee, site.args)
    if not site.seq:
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

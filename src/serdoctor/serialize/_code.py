"""Functions by value, fast: code as ``marshal`` bytes, the rest as pickle state.

cloudpickle rebuilds a code object from its ~18 constructor arguments, each
pickled on its own; ``marshal`` (the format of ``.pyc`` files) writes the
whole code object in one C call and reads it back in another. serdoctor's
cloudpickle method uses this reducer for plain functions that must travel by
value and leaves everything else (classes, modules, builtins) to cloudpickle.
marshal bytes are specific to one Python major.minor, exactly like the
bytecode inside them, and the envelope already refuses by-value payloads from
another version before anything is unpickled.

The rebuild is two-step, as in cloudpickle: ``_make_function`` creates the
function with empty closure cells, then ``_set_function_state`` fills
globals, cells and attributes once the function is in the pickle memo, so a
function that refers to itself (recursion, a closure over itself) works.
"""

from __future__ import annotations

import builtins
import dis
import functools
import marshal
import sys
import types
from typing import Any

_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"})
_CACHE_LIMIT = 4096
_MARSHAL_VERSION = 2


class _CodeInfo:
    """What reduce_function needs from a code object, computed once per code object."""

    __slots__ = ("code", "data", "globals", "mentioned")

    def __init__(self, code: types.CodeType) -> None:
        self.code = code  # holds the code alive, so its id cannot be reused
        # Version 2, the last without back-references: from version 3 on, marshal marks
        # an object for reuse when its reference count is above one, so the same code
        # gives other bytes in another process, or once rebuilt. Payloads are hashed
        # (checkpoint keys, users' caches): the same function must give the same bytes.
        self.data = marshal.dumps(code, _MARSHAL_VERSION)
        names: set[str] = set()
        mentioned: set[str] = set()
        for item in _walk(code):
            mentioned.update(item.co_names)
            for ins in dis.get_instructions(item):
                if ins.opname in _GLOBAL_OPS:
                    names.add(str(ins.argval))
        self.globals = tuple(sorted(names))
        self.mentioned = frozenset(mentioned)


_infos: dict[int, _CodeInfo] = {}


def _info(code: types.CodeType) -> _CodeInfo:
    info = _infos.get(id(code))
    if info is None or info.code is not code:
        if len(_infos) >= _CACHE_LIMIT:
            _infos.clear()
        info = _infos[id(code)] = _CodeInfo(code)
    return info


def _walk(code: types.CodeType) -> list[types.CodeType]:
    found = [code]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.extend(_walk(const))
    return found


def _submodules(
    modules: list[types.ModuleType], mentioned: frozenset[str]
) -> list[types.ModuleType]:
    """Imported submodules the code reaches as attributes (``os.path`` via ``os``)."""
    found = []
    for module in modules:
        prefix = module.__name__ + "."
        for name, sub in list(sys.modules.items()):
            if (
                sub is not None
                and name.startswith(prefix)
                and all(part in mentioned for part in name[len(prefix) :].split("."))
            ):
                found.append(sub)
    return found


def reduce_function(fn: types.FunctionType, globals_ref: dict[int, dict[str, Any]]) -> Any:
    """Reduce a function by value; ``globals_ref`` shares one globals dict per module.

    Returns NotImplemented when the code object cannot be marshalled.
    """
    try:
        info = _info(fn.__code__)
    except ValueError:  # a code object marshal cannot write
        return NotImplemented
    code_bytes = info.data
    g = fn.__globals__
    base = globals_ref.get(id(g))
    if base is None:
        base = globals_ref[id(g)] = {
            k: g[k] for k in ("__package__", "__name__", "__path__", "__file__") if k in g
        }
    f_globals = {k: g[k] for k in info.globals if k in g} if info.globals else {}
    cells: list[Any] = []
    empty: list[int] = []
    for i, cell in enumerate(fn.__closure__ or ()):
        try:
            cells.append(cell.cell_contents)
        except ValueError:
            cells.append(None)
            empty.append(i)
    # modules reached through globals or closure cells: their submodules the code names
    # (``xml.etree.ElementTree`` through ``xml``) are imported on load, before the call
    modules = [v for v in (*f_globals.values(), *cells) if isinstance(v, types.ModuleType)]
    attrs: dict[str, Any] = {
        # FunctionType() derives both from the code and the globals: send them only if changed
        "__qualname__": (
            None
            if fn.__qualname__ == getattr(fn.__code__, "co_qualname", fn.__name__)
            else fn.__qualname__
        ),
        "__module__": None if fn.__module__ == g.get("__name__") else fn.__module__,
        "__doc__": fn.__doc__,
        "__defaults__": fn.__defaults__,
        "__kwdefaults__": fn.__kwdefaults__,
        "__annotations__": fn.__annotations__ or None,
    }
    type_params = getattr(fn, "__type_params__", None)
    if type_params:
        attrs["__type_params__"] = type_params
    attrs = {k: v for k, v in attrs.items() if v is not None}
    if not (f_globals or cells or attrs or fn.__dict__ or modules):
        # nothing to fill in after creation: one call rebuilds it
        return _make_function, (code_bytes, base, fn.__name__, 0)
    state = (
        f_globals,
        cells,
        tuple(empty),
        attrs,
        fn.__dict__ or None,
        _submodules(modules, info.mentioned) if modules else None,
    )
    return (
        _make_function,
        (code_bytes, base, fn.__name__, len(cells)),
        state,
        None,
        None,
        _set_function_state,
    )


@functools.lru_cache(maxsize=1024)
def _unmarshal(code_bytes: bytes) -> types.CodeType:
    code = marshal.loads(code_bytes)
    if not isinstance(code, types.CodeType):
        raise TypeError("by-value function payload does not hold a code object")
    return code


def _make_function(
    code_bytes: bytes, base_globals: dict[str, Any], name: str, n_cells: int
) -> types.FunctionType:
    base_globals.setdefault("__builtins__", builtins.__dict__)
    closure = tuple(types.CellType() for _ in range(n_cells)) if n_cells else None
    return types.FunctionType(_unmarshal(bytes(code_bytes)), base_globals, name, None, closure)


def _set_function_state(fn: types.FunctionType, state: tuple[Any, ...]) -> types.FunctionType:
    f_globals, cells, empty, attrs, fdict, _submodules_imported = state
    fn.__globals__.update(f_globals)
    for i, (cell, value) in enumerate(zip(fn.__closure__ or (), cells, strict=True)):
        if i not in empty:
            cell.cell_contents = value
    for key, value in attrs.items():
        setattr(fn, key, value)
    if fdict:
        fn.__dict__.update(fdict)
    return fn

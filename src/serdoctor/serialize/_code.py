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
import weakref
from typing import Any

_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"})
_names_cache: weakref.WeakKeyDictionary[types.CodeType, tuple[frozenset[str], frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)
_marshal_cache: weakref.WeakKeyDictionary[types.CodeType, bytes] = weakref.WeakKeyDictionary()


def _walk(code: types.CodeType) -> list[types.CodeType]:
    found = [code]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.extend(_walk(const))
    return found


def _names(code: types.CodeType) -> tuple[frozenset[str], frozenset[str]]:
    """(global names the code uses, every name it mentions), for it and nested code."""
    cached = _names_cache.get(code)
    if cached is None:
        globals_: set[str] = set()
        mentioned: set[str] = set()
        for item in _walk(code):
            mentioned.update(item.co_names)
            for ins in dis.get_instructions(item):
                if ins.opname in _GLOBAL_OPS:
                    globals_.add(str(ins.argval))
        cached = (frozenset(globals_), frozenset(mentioned))
        _names_cache[code] = cached
    return cached


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


def _marshal(code: types.CodeType) -> bytes:
    data = _marshal_cache.get(code)
    if data is None:
        data = marshal.dumps(code)
        _marshal_cache[code] = data
    return data


def reduce_function(fn: types.FunctionType, globals_ref: dict[int, dict[str, Any]]) -> Any:
    """Reduce a function by value; ``globals_ref`` shares one globals dict per module.

    Returns NotImplemented when the code object cannot be marshalled.
    """
    try:
        code_bytes = _marshal(fn.__code__)
    except ValueError:
        return NotImplemented
    g = fn.__globals__
    base = globals_ref.get(id(g))
    if base is None:
        base = globals_ref[id(g)] = {
            k: g[k] for k in ("__package__", "__name__", "__path__", "__file__") if k in g
        }
    used, mentioned = _names(fn.__code__)
    f_globals = {k: g[k] for k in used if k in g}
    modules = [v for v in f_globals.values() if isinstance(v, types.ModuleType)]
    cells: list[Any] = []
    empty: list[int] = []
    for i, cell in enumerate(fn.__closure__ or ()):
        try:
            cells.append(cell.cell_contents)
        except ValueError:
            cells.append(None)
            empty.append(i)
    attrs: dict[str, Any] = {
        "__qualname__": fn.__qualname__,
        "__module__": fn.__module__,
        "__doc__": fn.__doc__,
        "__defaults__": fn.__defaults__,
        "__kwdefaults__": fn.__kwdefaults__,
        "__annotations__": fn.__annotations__ or None,
    }
    type_params = getattr(fn, "__type_params__", None)
    if type_params:
        attrs["__type_params__"] = type_params
    state = (
        f_globals,
        cells,
        tuple(empty),
        {k: v for k, v in attrs.items() if v is not None},
        fn.__dict__ or None,
        _submodules(modules, mentioned) if modules else None,
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

"""Serializer methods: small plugins in an ordered registry.

A method turns an object into a pickle-compatible body and back. Built in:

========== ======================================== ===========================
method     functions and classes                    across Python minor versions
========== ======================================== ===========================
pickle     by reference only (protocol 5)           yes
cloudpickle by value when not importable            no, when code went by value
dill       by value, and more types than cloudpickle no, when code went by value
========== ======================================== ===========================

Every built-in method uses pickle's own hooks: ``reducer_override`` records
how each function and class travels (and, for ``pickle``, gives up as soon as
one would need to go by value), ``buffer_callback`` takes large buffers out of
band, and ``persistent_id`` is installed only when a payload has proxies or
large bytearrays, so ordinary payloads keep the C pickler's speed.

Third-party methods register through the ``serdoctor.methods`` entry-point
group; the entry point names a :class:`Method` instance or a class whose
no-argument call makes one.
"""

from __future__ import annotations

import contextlib
import functools
import io
import pickle
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from serdoctor.errors import RegistryError
from serdoctor.serialize._classify import ByValueNeeded, Recorder
from serdoctor.serialize._code import reduce_function
from serdoctor.serialize._notdata import NotDataError, not_data_type
from serdoctor.serialize._rebuild import reduce_memoryview
from serdoctor.serialize._reducers import reduce_opt_in

PROTOCOL = 5
ENTRY_POINT_GROUP = "serdoctor.methods"


@dataclass
class DumpContext:
    """What a method receives besides the object."""

    buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None
    persistent_id: Callable[[Any], Any] | None = None
    by_value_modules: tuple[str, ...] = ()
    recorder: Recorder = field(default_factory=Recorder)
    reducers: tuple[str, ...] = ()  # opt-in reducers for objects that are not data


@dataclass
class LoadContext:
    """What a method receives besides the body."""

    buffers: Sequence[Any] = ()
    persistent_load: Callable[[Any], Any] | None = None


@runtime_checkable
class Method(Protocol):
    """A serializer method.

    ``name`` is the short tag written in the envelope header.
    ``python_bound`` is True when the method's payloads may carry bytecode,
    which only the same Python major.minor can run.
    """

    name: str
    python_bound: bool

    def dumps(self, obj: Any, context: DumpContext) -> bytes:
        """Serialize ``obj``; raise any exception when it cannot."""

    def loads(self, data: memoryview, context: LoadContext) -> Any:
        """Rebuild the object from ``data``."""

    def versions(self) -> dict[str, str]:
        """Versions of the libraries this method's payloads depend on."""


@runtime_checkable
class ChunkedMethod(Protocol):
    """A method that can also return its payload as the pieces its pickler wrote.

    Optional. The serializer uses it when a method has it (large values then
    reach the envelope without the copy a ``b"".join`` would make); every
    built-in method has it. Checked with ``isinstance``, once per method type.
    """

    def dumps_chunks(self, obj: Any, context: DumpContext) -> list[Any]:
        """Like ``dumps``, as a list of buffers whose concatenation is the payload."""


# --- the recording picklers -------------------------------------------------------------


def _persistent_id(self: Any, obj: Any) -> Any:
    return self._pid(obj)


@functools.cache
def with_persistent_id(pickler: type) -> type:
    """``pickler`` plus a ``persistent_id`` that asks the dump's proxy policy.

    A separate class, because defining ``persistent_id`` at all makes the C
    pickler call it for every object: picklers without a policy stay without one.
    """
    return type(f"{pickler.__name__}PID", (pickler,), {"persistent_id": _persistent_id})


@functools.cache
def unpickler_for(base: type) -> type:
    """``base`` (pickle's or dill's Unpickler) that resolves persistent ids with the context."""

    def __init__(self: Any, file: io.BytesIO, ctx: LoadContext) -> None:
        init: Any = base.__init__  # type: ignore[misc]  # (the class, not an instance)
        init(self, file, buffers=ctx.buffers)
        self._load = ctx.persistent_load

    def persistent_load(self: Any, pid: Any) -> Any:
        if self._load is None:
            raise pickle.UnpicklingError("payload has persistent ids but no loader for them")
        return self._load(pid)

    return type(f"{base.__name__}WithContext", (base,), {
        "__init__": __init__, "persistent_load": persistent_load,
    })  # fmt: skip


class Chunks(list[Any]):
    """A write-only file that keeps what the pickler writes, as written.

    The C pickler hands values of 64 KiB and more (a large ``bytes``) to
    ``write`` as the object itself, so collecting the pieces avoids copying
    them until the one final join.
    """

    write = list.append


# kinds of object reducer_override meets (in this order: _FUNCTION and _CLASS are the two
# after _PLAIN, which reducer_override tests with one comparison)
_PLAIN, _FUNCTION, _CLASS, _EXCEPTION, _MEMORYVIEW, _MODULE, _BUILTIN, _NOT_DATA = range(8)


def _kind_of(t: type) -> int:
    if not_data_type(t) is not None:
        return _NOT_DATA
    if t is types.FunctionType:
        return _FUNCTION
    if issubclass(t, type):
        return _CLASS
    if issubclass(t, BaseException):
        return _EXCEPTION
    if t is memoryview:
        return _MEMORYVIEW
    if t is types.ModuleType:
        return _MODULE
    if t is types.BuiltinFunctionType:
        return _BUILTIN
    return _PLAIN


_reduce_exception: Callable[[BaseException], Any] | None = None


def _exception_reducer() -> Callable[[BaseException], Any]:
    global _reduce_exception
    if _reduce_exception is None:
        from serdoctor.serialize.exceptions import reduce_exception

        _reduce_exception = reduce_exception
    return _reduce_exception


class _Hooks:
    """The ``reducer_override`` logic shared by the three built-in picklers."""

    _rec: Recorder
    _strict: bool  # True: give up on anything that must travel by value
    _kinds: dict[type, int]
    _pid: Callable[[Any], Any] | None
    _reducers: tuple[str, ...] = ()

    def reducer_override(self, obj: Any) -> Any:
        # runs once per object the pickler meets: the common case returns at once
        t = type(obj)
        kind = self._kinds.get(t)
        if kind is None:
            kind = self._kinds[t] = _kind_of(t)
        if kind == _PLAIN:
            return NotImplemented
        if kind <= _CLASS:  # a function or class (the kinds' order): no other call
            decision = self._rec.code(obj)
            if decision.how == "value" and self._strict:
                raise ByValueNeeded(decision, obj)
            return NotImplemented
        return self._special(obj, kind)

    def _special(self, obj: Any, kind: int) -> Any:
        if kind == _NOT_DATA:
            if self._reducers:
                found = reduce_opt_in(obj, self._reducers)
                if found is not None:
                    self._rec.reduced_to(obj, found[1])
                    return found[0]
            info = not_data_type(type(obj))
            assert info is not None
            raise NotDataError(obj, info)
        if kind == _EXCEPTION:
            return _exception_reducer()(obj)
        elif kind == _MEMORYVIEW:
            return reduce_memoryview(obj)
        elif kind == _MODULE:
            decision = self._rec.module(obj)
            if self._strict and decision.how == "value":
                raise ByValueNeeded(decision, obj)
        elif kind == _BUILTIN:
            self._rec.builtin(obj)
        return NotImplemented


class ReferencePickler(_Hooks, pickle.Pickler):
    """pickle's C pickler with serdoctor's hooks; raises ByValueNeeded for by-value code."""

    def __init__(self, file: Chunks, ctx: DumpContext) -> None:
        super().__init__(file, PROTOCOL, buffer_callback=ctx.buffer_callback)
        self._rec = ctx.recorder
        self._strict = True
        self._kinds = {}
        self._pid = ctx.persistent_id
        self._reducers = ctx.reducers


def _plain_loads(data: memoryview, ctx: LoadContext) -> Any:
    if ctx.persistent_load is None:
        return pickle.loads(data, buffers=ctx.buffers)
    return unpickler_for(pickle.Unpickler)(io.BytesIO(data), ctx).load()


class PickleMethod:
    """Standard pickle, protocol 5; functions and classes by reference only."""

    name = "pickle"
    python_bound = False

    def dumps(self, obj: Any, context: DumpContext) -> bytes:
        """Pickle ``obj``; raise ByValueNeeded when some code cannot go by reference."""
        return b"".join(self.dumps_chunks(obj, context))

    def dumps_chunks(self, obj: Any, context: DumpContext) -> list[Any]:
        """Like :meth:`dumps`, as the pieces the pickler wrote (large ones uncopied)."""
        context.recorder.active = True
        file = Chunks()
        cls: type = ReferencePickler
        if context.persistent_id is not None:
            cls = with_persistent_id(cls)
        cls(file, context).dump(obj)
        return file

    def loads(self, data: memoryview, context: LoadContext) -> Any:
        """Unpickle ``data``."""
        return _plain_loads(data, context)

    def versions(self) -> dict[str, str]:
        """Pickle is part of Python: no library versions."""
        return {}


_by_value_lock = threading.Lock()


@contextlib.contextmanager
def _cloudpickle_by_value(names: tuple[str, ...]) -> Iterator[None]:
    """Register modules with cloudpickle for the duration of one dumps."""
    if not names:
        yield
        return
    import cloudpickle

    with _by_value_lock:
        already = set(cloudpickle.list_registry_pickle_by_value())
        added = []
        for name in names:
            module = sys.modules.get(name)
            if module is not None and name not in already:
                cloudpickle.register_pickle_by_value(module)
                added.append(module)
        try:
            yield
        finally:
            for module in added:
                cloudpickle.unregister_pickle_by_value(module)


def _cloudpickle_classes() -> tuple[type, type]:
    import cloudpickle

    class CloudPickler(_Hooks, cloudpickle.Pickler):  # type: ignore[misc]
        def __init__(self, file: Chunks, ctx: DumpContext) -> None:
            super().__init__(file, protocol=PROTOCOL, buffer_callback=ctx.buffer_callback)
            self._rec = ctx.recorder
            self._globals_ref: dict[int, dict[str, Any]] = {}
            self._strict = False
            self._kinds = {}
            self._pid = ctx.persistent_id
            self._reducers = ctx.reducers

        def reducer_override(self, obj: Any) -> Any:
            t = type(obj)
            kind = self._kinds.get(t)
            if kind is None:
                kind = self._kinds[t] = _kind_of(t)
            if kind == _PLAIN:
                return NotImplemented
            if kind != _FUNCTION and kind != _CLASS:
                return self._special(obj, kind)
            if self._rec.code(obj).importable:
                return NotImplemented  # by reference: pickle's save_global does it
            if kind == _FUNCTION:
                result = reduce_function(obj, self._globals_ref)
                if result is not NotImplemented:
                    return result
            # cloudpickle's own by-value reducers (classes, and functions marshal can't write)
            return cloudpickle.Pickler.reducer_override(self, obj)

    return CloudPickler, with_persistent_id(CloudPickler)


class CloudpickleMethod:
    """cloudpickle: code by value when it is not importable, else by reference."""

    name = "cloudpickle"
    python_bound = True
    _classes: tuple[type, type] | None = None
    _module: Any = None  # the cloudpickle module the classes were built from

    def dumps(self, obj: Any, context: DumpContext) -> bytes:
        """Pickle ``obj`` with cloudpickle, recording how code travels."""
        return b"".join(self.dumps_chunks(obj, context))

    @staticmethod
    def classes() -> tuple[type, type]:
        """The pickler classes: (plain, with a persistent id).

        Built once, and again if cloudpickle was re-imported (its helpers changed).
        """
        current = sys.modules.get("cloudpickle")
        if CloudpickleMethod._classes is None or current is not CloudpickleMethod._module:
            CloudpickleMethod._classes = _cloudpickle_classes()
            CloudpickleMethod._module = sys.modules.get("cloudpickle")
        return CloudpickleMethod._classes

    def dumps_chunks(self, obj: Any, context: DumpContext) -> list[Any]:
        """Like :meth:`dumps`, as the pieces the pickler wrote (large ones uncopied)."""
        plain, with_pid = self.classes()
        context.recorder.active = True
        file = Chunks()
        cls = plain if context.persistent_id is None else with_pid
        if context.by_value_modules:
            with _cloudpickle_by_value(context.by_value_modules):
                cls(file, context).dump(obj)
        else:
            cls(file, context).dump(obj)
        return file

    def loads(self, data: memoryview, context: LoadContext) -> Any:
        """Cloudpickle payloads load with the standard unpickler."""
        return _plain_loads(data, context)

    def versions(self) -> dict[str, str]:
        """The cloudpickle version, which must match for by-value code."""
        import cloudpickle

        return {"cloudpickle": str(cloudpickle.__version__)}


def _dill_classes() -> tuple[type, type, type]:
    import dill

    class DillPickler(_Hooks, dill.Pickler):  # type: ignore[misc]
        def __init__(self, file: Chunks, ctx: DumpContext, recurse: bool = True) -> None:
            super().__init__(
                file, PROTOCOL, buffer_callback=ctx.buffer_callback, recurse=recurse, byref=False
            )
            self._rec = ctx.recorder
            self._strict = False
            self._kinds = {}
            self._pid = ctx.persistent_id
            self._reducers = ctx.reducers

    return DillPickler, with_persistent_id(DillPickler), unpickler_for(dill.Unpickler)


class DillMethod:
    """dill: code by value, and more kinds of objects than cloudpickle."""

    name = "dill"
    python_bound = True
    _classes: tuple[type, type, type] | None = None
    _module: Any = None

    def _get(self) -> tuple[type, type, type]:
        current = sys.modules.get("dill")
        if DillMethod._classes is None or current is not DillMethod._module:
            DillMethod._classes = _dill_classes()  # again if dill was re-imported
            DillMethod._module = sys.modules.get("dill")
        return DillMethod._classes

    def dumps(self, obj: Any, context: DumpContext) -> bytes:
        """Pickle ``obj`` with dill (``recurse=True``), recording how code travels."""
        return b"".join(self.dumps_chunks(obj, context))

    def dumps_chunks(self, obj: Any, context: DumpContext) -> list[Any]:
        """Like :meth:`dumps`, as the pieces the pickler wrote (large ones uncopied)."""
        plain, with_pid, _ = self._get()
        context.recorder.active = True
        cls = plain if context.persistent_id is None else with_pid
        file = Chunks()
        try:
            cls(file, context).dump(obj)
        except RecursionError:
            # dill's recurse=True (send only the globals a function uses) loops on a
            # closure that refers to itself; recurse=False sends the function's globals
            # whole, which dill's memo handles.
            file = Chunks()
            cls(file, context, recurse=False).dump(obj)
        return file

    def loads(self, data: memoryview, context: LoadContext) -> Any:
        """Unpickle with dill's unpickler."""
        return self._get()[2](io.BytesIO(data), context).load()

    def versions(self) -> dict[str, str]:
        """The dill version, which must match for by-value code."""
        import dill

        return {"dill": str(dill.__version__)}


# --- the registry --------------------------------------------------------------------


class MethodRegistry:
    """Ordered, name-keyed registry of methods; a taken name raises."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}
        self._lock = threading.Lock()
        self._entry_points_loaded = False
        #: bumped by every change, so that caches of checked headers know when to forget
        self.generation = 0

    def register(self, method: Method, *, replace: bool = False) -> Method:
        """Add ``method``; raise :class:`RegistryError` if its name is taken."""
        if not isinstance(method, Method):
            raise RegistryError(
                f"{method!r} is not a serializer method: it needs `name`, `python_bound`, "
                "`dumps(obj, context)`, `loads(data, context)` and `versions()`"
            )
        name = method.name
        if not isinstance(name, str) or not name or len(name) > 64:
            raise RegistryError(f"method name {name!r} must be a non-empty string of ≤ 64 chars")
        with self._lock:
            if name in self._methods and not replace:
                raise RegistryError(
                    f"a serializer method named {name!r} is already registered "
                    f"({type(self._methods[name]).__qualname__}): choose another name, or "
                    "pass replace=True to override it on purpose"
                )
            self._methods[name] = method
            self.generation += 1
        return method

    def unregister(self, name: str) -> None:
        """Remove a method (mainly for tests)."""
        with self._lock:
            self._methods.pop(name, None)
            self.generation += 1

    def load_entry_points(self) -> list[str]:
        """Register methods advertised in the ``serdoctor.methods`` entry-point group."""
        import importlib.metadata  # here: slow to import, seldom needed

        added: list[str] = []
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                target = ep.load()
                method = target() if isinstance(target, type) else target
            except Exception as exc:
                raise RegistryError(
                    f"entry point {ep.name!r} ({ep.value}) in group {ENTRY_POINT_GROUP!r} "
                    f"failed to load: {type(exc).__name__}: {exc}"
                ) from exc
            if getattr(method, "name", None) in self._methods:
                continue
            self.register(method)
            added.append(method.name)
        self._entry_points_loaded = True
        return added

    def get(self, name: str) -> Method:
        """The method called ``name``; entry points are consulted on a miss."""
        method = self._methods.get(name)
        if method is None and not self._entry_points_loaded:
            self.load_entry_points()
            method = self._methods.get(name)
        if method is None:
            raise RegistryError(
                f"no serializer method named {name!r}; available: {', '.join(self.names())}. "
                f"Third-party methods register through the {ENTRY_POINT_GROUP!r} entry-point group"
            )
        return method

    def peek(self, name: str) -> Method | None:
        """The method called ``name`` if registered, without consulting entry points."""
        return self._methods.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._methods)


registry = MethodRegistry()
registry.register(PickleMethod())
registry.register(CloudpickleMethod())
registry.register(DillMethod())


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Register a serializer method globally (see :class:`Method`)."""
    return registry.register(method, replace=replace)

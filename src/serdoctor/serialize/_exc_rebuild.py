"""Rebuilding exceptions from their records (the receiving side).

See ``_remote_exc`` for the decision tree (real class, real class without
``__init__``, stand-in) and the stand-in class hierarchy.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pickle
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

from serdoctor.serialize._exc_frames import build_traceback
from serdoctor.serialize._exc_values import FORMAT, group_types, python_minor, safe_str, truncate
from serdoctor.serialize._remote_exc import (
    RemoteBaseException,
    RemoteChainTruncated,
    RemoteException,
)

__all__ = ["rebuild"]

MAX_COMPOSED_TRACEBACK = 256 * 1024
"""Characters of ``remote_traceback`` (a whole chain) kept; the oldest part goes first."""

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def rebuild(record: Any) -> BaseException:
    """The exception a record describes, with everything reachable from it; may raise
    on a malformed record (the caller turns that into a :class:`RemoteException`)."""
    return _Rebuilder(record).run()


class _CycleError(Exception):
    """A pickle refers (through its arguments) to an exception being built."""


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, resolve_ref: Callable[[Any], BaseException]) -> None:
        super().__init__(io.BytesIO(data))
        self._resolve_ref = resolve_ref

    def persistent_load(self, pid: Any) -> Any:
        return self._resolve_ref(pid)


class _Rebuilder:
    def __init__(self, record: Any) -> None:
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} record")
        nodes = record.get("nodes")
        root = record.get("root")
        if not isinstance(nodes, list) or not isinstance(root, int) or not 0 <= root < len(nodes):
            raise ValueError("the record has no valid root")
        self.nodes: list[dict[str, Any]] = [n if isinstance(n, dict) else {} for n in nodes]
        self.root = root
        self.built: dict[int, BaseException] = {}
        self.building: set[int] = set()
        self.standins: set[int] = set()
        self.classes: dict[tuple[str, str], type[BaseException] | None] = {}
        self.failures: dict[tuple[str, str], str] = {}
        self.groups = group_types()

    # -- driving

    def run(self) -> BaseException:
        for index in range(len(self.nodes)):
            self.get(index)
        for index in range(len(self.nodes)):
            self.finish(index)
        return self.built[self.root]

    def valid(self, index: object) -> bool:
        return isinstance(index, int) and 0 <= index < len(self.nodes)

    def get(self, index: object) -> BaseException:
        if not isinstance(index, int) or not self.valid(index):
            return _missing()
        found = self.built.get(index)
        if found is not None:
            return found
        if index in self.building:
            raise _CycleError(index)
        self.building.add(index)
        try:
            obj = self.build(index)
        finally:
            self.building.discard(index)
        self.built[index] = obj
        return obj

    # -- one exception

    def build(self, index: int) -> BaseException:
        node = self.nodes[index]
        mro = _names(node.get("mro"))
        cls = self.resolve(*mro[0])
        if cls is None:
            module, qualname = mro[0]
            why = self.failures.get(mro[0], "not found")
            reason = f"class {module}.{qualname} is not importable here ({why})"
            return self.standin(index, mro, include_self=False, reason=reason)
        data = node.get("pickle")
        by_value = node.get("by_value")
        if by_value is not None and by_value != python_minor():
            data = None  # by-value code from another Python: never run it here
            node = {**node, "pickle_error": f"it was pickled by value on Python {by_value}"}
        if not isinstance(data, bytes):
            error = node.get("pickle_error") or "no pickle in the record"
            reason = f"the exception could not be pickled where it was raised ({error})"
            return self.standin(index, mro, include_self=True, reason=reason)
        refs = node.get("refs")
        refs = refs if isinstance(refs, list) else []

        def resolve_ref(pid: Any) -> BaseException:
            if not isinstance(pid, int) or not 0 <= pid < len(refs):
                raise pickle.UnpicklingError(f"bad exception reference {pid!r}")
            return self.get(refs[pid])

        try:
            obj = _Unpickler(data, resolve_ref).load()
            if isinstance(obj, cls):
                return obj
        except Exception:
            pass
        rebuilt = self.from_record(cls, index)
        if rebuilt is not None:
            return rebuilt
        reason = f"{mro[0][0]}.{mro[0][1]} could not be rebuilt here"
        return self.standin(index, mro, include_self=True, reason=reason)

    def members(self, index: int) -> tuple[str, list[BaseException]] | None:
        group = self.nodes[index].get("group")
        if not isinstance(group, dict):
            return None
        message = group.get("message")
        members = group.get("members")
        out: list[BaseException] = []
        for member in members if isinstance(members, list) else []:
            try:
                out.append(self.get(member))
            except _CycleError:
                out.append(_missing())
        return (message if isinstance(message, str) else "", out)

    def from_record(self, cls: type[BaseException], index: int) -> BaseException | None:
        """The real class without calling ``__init__``: ``__new__``, then args and attributes."""
        node = self.nodes[index]
        args = node.get("args")
        args = tuple(args) if isinstance(args, (list, tuple)) else ()
        group = self.members(index) if self.groups and issubclass(cls, self.groups[0]) else None
        if group is not None:
            obj = _new_group(cls, group[0], group[1], self.groups)
        else:
            obj = _new_plain(cls, args)
        if obj is None:
            return None
        if group is None:
            _set(obj, "args", args)
        _restore_attributes(obj, node)
        return obj

    def standin(
        self, index: int, mro: list[tuple[str, str]], *, include_self: bool, reason: str
    ) -> BaseException:
        node = self.nodes[index]
        self.standins.add(index)
        bases = [self.resolve(m, q) for m, q in (mro if include_self else mro[1:])]
        candidates = [b for b in bases if b is not None]
        is_exception = ("builtins", "Exception") in mro or any(
            issubclass(b, Exception) for b in candidates
        )
        root: type[RemoteBaseException] = RemoteException if is_exception else RemoteBaseException
        group = self.members(index)
        obj: BaseException | None = None
        for cls in _standin_classes(root, mro[0], candidates):
            if self.groups and issubclass(cls, self.groups[0]):
                obj = _new_group(cls, group[0], group[1], self.groups) if group else None
            else:
                obj = _new_plain(cls, ())
                args = node.get("args")
                if obj is not None and isinstance(args, (list, tuple)):
                    _set(obj, "args", tuple(args))
            if obj is not None:
                break
        if obj is None:  # every class failed: the bare root always works
            obj = root()
        if group is not None and not (self.groups and isinstance(obj, self.groups[0])):
            _set(obj, "message", group[0])
            _set(obj, "exceptions", tuple(group[1]))
        _restore_attributes(obj, node)
        state = obj.__dict__
        state["_serdoctor_str"] = _text(node.get("str"))
        state["_serdoctor_repr"] = _text(node.get("repr"))
        state["_serdoctor_node"] = node
        state["remote_type"] = f"{mro[0][0]}.{mro[0][1]}"
        state["remote_mro"] = tuple(f"{m}.{q}" for m, q in mro)
        state["remote_reason"] = reason
        return obj

    # -- links, notes, traceback (all exceptions exist by now)

    def finish(self, index: int) -> None:
        node = self.nodes[index]
        obj = self.built[index]
        for field in ("cause", "context"):
            target = node.get(field)
            linked = self.built[target] if isinstance(target, int) and self.valid(target) else None
            _set(obj, f"__{field}__", linked)
        _set(obj, "__suppress_context__", bool(node.get("suppress")))
        notes = node.get("notes")
        if isinstance(notes, list) and "__notes__" not in obj.__dict__:
            _set(obj, "__notes__", [n for n in notes if isinstance(n, str)])
        tb = build_traceback(node.get("frames"))
        if tb is not None:
            _set(obj, "__traceback__", tb)
        _set(obj, "remote_traceback", self.compose(index))
        if index in self.standins:
            refs = node.get("refs")
            obj.__dict__["_serdoctor_tb"] = tb
            obj.__dict__["_serdoctor_refs"] = [
                self.built[r] for r in (refs if isinstance(refs, list) else []) if self.valid(r)
            ]

    def compose(self, index: int) -> str:
        """The remote text of the whole chain, oldest first, as ``traceback`` prints it."""
        parts: list[str] = []
        seen: set[int] = set()
        size = 0
        current: int | None = index
        while current is not None and current not in seen:
            seen.add(current)
            node = self.nodes[current]
            text = _text(node.get("tb"))
            parts.append(text)
            size += len(text)
            if size > MAX_COMPOSED_TRACEBACK:
                parts.append("[serdoctor: earlier exceptions of this chain not shown]\n")
                break
            cause, context = node.get("cause"), node.get("context")
            if self.valid(cause):
                parts.append(_CAUSE)
                current = cause
            elif self.valid(context) and not node.get("suppress"):
                parts.append(_CONTEXT)
                current = context
            else:
                current = None
        return "".join(reversed(parts))

    # -- classes

    def resolve(self, module: str, qualname: str) -> type[BaseException] | None:
        key = (module, qualname)
        if key not in self.classes:
            self.classes[key] = self._resolve(module, qualname)
        return self.classes[key]

    def _resolve(self, module: str, qualname: str) -> type[BaseException] | None:
        if (
            self.groups
            and qualname in ("BaseExceptionGroup", "ExceptionGroup")
            and (module == "builtins" or module.split(".")[0] == "exceptiongroup")
        ):
            return self.groups[0] if qualname == "BaseExceptionGroup" else self.groups[1]
        if "<" in qualname:
            self.failures[(module, qualname)] = "defined inside a function"
            return None
        try:
            obj: Any = sys.modules.get(module) or importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (Exception, SystemExit) as error:
            self.failures[(module, qualname)] = truncate(
                f"{type(error).__name__}: {safe_str(error)}", 300
            )
            return None
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return obj
        self.failures[(module, qualname)] = "the name is not an exception class here"
        return None


# ---------------------------------------------------------------- helpers


def _names(value: object) -> list[tuple[str, str]]:
    names: list[tuple[str, str]] = []
    if isinstance(value, list):
        for item in value:
            if (
                isinstance(item, (list, tuple))
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], str)
            ):
                names.append((item[0], item[1]))
    return names or [("builtins", "Exception"), ("builtins", "BaseException")]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _missing() -> BaseException:
    error = RemoteChainTruncated("serdoctor: an exception referred to here was not in the record")
    return error


def _set(obj: BaseException, name: str, value: object) -> None:
    """Set an attribute bypassing a class's own ``__setattr__``; ignore refusals."""
    with contextlib.suppress(Exception):
        object.__setattr__(obj, name, value)


def _restore_attributes(obj: BaseException, node: dict[str, Any]) -> None:
    attrs = node.get("attrs")
    if isinstance(attrs, dict):
        for name, value in attrs.items():
            if isinstance(name, str) and not name.startswith("__"):
                _set(obj, name, value)


def _builtin_base(cls: type[BaseException]) -> type[BaseException]:
    """The nearest built-in exception class: its ``__new__`` accepts ``cls``."""
    for klass in cls.__mro__:
        if klass.__dict__.get("__module__", "builtins") == "builtins" and issubclass(
            klass, BaseException
        ):
            return klass
    return BaseException


def _new_plain(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException | None:
    base = _builtin_base(cls)
    attempts: list[Callable[[], object]] = [
        lambda: cls.__new__(cls, *args),
        lambda: base.__new__(cls, *args),
        lambda: base.__new__(cls),
    ]
    for attempt in attempts:
        try:
            obj = attempt()
        except Exception:
            continue
        if isinstance(obj, cls):
            return obj
    return None


def _new_group(
    cls: type[BaseException],
    message: str,
    members: list[BaseException],
    groups: tuple[type[BaseException], ...],
) -> BaseException | None:
    attempts: list[Callable[[], object]] = [
        lambda: cls.__new__(cls, message, members),
        lambda: groups[0].__new__(cls, message, members),
    ]
    for attempt in attempts:
        try:
            obj = attempt()
        except Exception:
            continue
        if isinstance(obj, cls):
            if sys.version_info < (3, 11):  # the backport sets its fields in __init__
                with contextlib.suppress(Exception):
                    groups[0].__init__(obj, message, members)
            return obj
    return None


_STANDIN_CLASSES: dict[tuple[Any, ...], type[BaseException] | None] = {}
_STANDIN_LOCK = threading.Lock()


def _standin_classes(
    root: type[RemoteBaseException],
    name: tuple[str, str],
    candidates: list[type[BaseException]],
) -> Iterator[type[BaseException]]:
    """Stand-in classes to try, best first: root + the minimal set of the candidate bases,
    then with fewer bases when a combination is impossible (layout or MRO conflicts)."""
    chosen: list[type[BaseException]] = []
    for klass in candidates:
        if issubclass(root, klass) or any(issubclass(c, klass) for c in chosen):
            continue
        chosen.append(klass)
    for size in range(len(chosen), -1, -1):
        made = _standin_class(root, name, tuple(chosen[:size]))
        if made is not None:
            yield made


def _standin_class(
    root: type[RemoteBaseException],
    name: tuple[str, str],
    bases: tuple[type[BaseException], ...],
) -> type[BaseException] | None:
    key = (root, name, bases)
    with _STANDIN_LOCK:
        found = _STANDIN_CLASSES.get(key)
        if found is not None or key in _STANDIN_CLASSES:
            return found
        module, qualname = name
        short = qualname.rsplit(".", 1)[-1] or "RemoteError"

        def body(namespace: dict[str, Any]) -> None:
            namespace["__module__"] = module
            namespace["__qualname__"] = qualname
            namespace["__doc__"] = (
                f"Stand-in made by serdoctor for {module}.{qualname}, "
                "an exception class that could not be rebuilt here."
            )

        try:
            made: type[BaseException] | None = types.new_class(short, (root, *bases), {}, body)
        except Exception:
            made = None
        if len(_STANDIN_CLASSES) < 10_000:
            _STANDIN_CLASSES[key] = made
        return made

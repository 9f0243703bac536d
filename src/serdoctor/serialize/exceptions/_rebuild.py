"""Rebuilding exceptions from their records (the receiving side).

See ``_remote`` for the decision tree (real class, real class without
``__init__``, stand-in) and the stand-in class hierarchy.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import io
import pickle
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from serdoctor.serialize.exceptions._frames import build_traceback
from serdoctor.serialize.exceptions._remote import (
    RemoteBaseException,
    RemoteChainTruncated,
    RemoteException,
)
from serdoctor.serialize.exceptions._values import (
    CHAIN,
    FORMAT,
    READABLE_FORMATS,
    builtin_class,
    chain_node_dict,
    group_types,
    python_minor,
    safe_str,
    truncate,
)

__all__ = ["rebuild"]

MAX_COMPOSED_TRACEBACK = 256 * 1024
"""Characters of ``remote_traceback`` (a whole chain) kept; the oldest part goes first."""

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def rebuild(record: Any) -> BaseException:
    """Rebuild the exception a record describes.

    The exception a record describes, with everything reachable from it; may raise
    on a malformed record (the caller turns that into a :class:`RemoteException`).
    """
    if type(record) is tuple:
        if len(record) == 2:
            return _rebuild_chain(record)
        return _rebuild_compact(record)
    exact = _rebuild_exact(record)
    return exact if exact is not None else _Rebuilder(record).run()


def _rebuild_compact(record: tuple[Any, ...]) -> BaseException:
    """``builtins.<qualname>(*args)`` from a compact record ``(qualname, args, text)``."""
    qualname, args, text = record
    if type(qualname) is not str or type(args) is not tuple or type(text) is not str:
        raise ValueError("malformed compact exception record")
    cls = _builtin_exception(qualname)
    if cls is not None:
        try:
            obj = cls(*args)
        except Exception:
            obj = None
        if obj is not None and type(obj) is cls:
            obj.__dict__["remote_traceback"] = text
            return obj
    # not a builtin here (another Python?): the full record makes a stand-in
    prefix = f"{qualname}: "
    message = text[len(prefix) :].rstrip("\n") if text.startswith(prefix) else ""
    node = {
        "mro": [["builtins", qualname], ["builtins", "Exception"], ["builtins", "BaseException"]],
        "str": message,
        "repr": f"{qualname}({', '.join(map(repr, args))})",
        "args": list(args),
        "tb": text,
    }
    return _Rebuilder({"format": FORMAT, "root": 0, "nodes": [node]}).run()


def _rebuild_chain(record: tuple[Any, ...]) -> BaseException:
    """Rebuild a chain record ``(CHAIN, nodes)`` (see ``chain_node_dict``).

    Each node is ``builtins.<qualname>(*args)``; a node that does not make its
    class here sends the whole record the general way (as full-record nodes).
    """
    tag, nodes = record
    if tag != CHAIN or type(nodes) is not tuple or not nodes:
        raise ValueError("malformed chain exception record")
    built: list[BaseException] = []
    for node in nodes:
        cls = _builtin_exception(node[4]) if type(node) is tuple and len(node) == 8 else None
        obj = None
        if cls is not None and type(node[5]) is tuple:
            try:
                obj = cls(*node[5])
            except Exception:
                obj = None
        if obj is None or type(obj) is not cls:
            full = [chain_node_dict(n) for n in nodes]  # ValueError for a malformed node
            return _Rebuilder({"format": FORMAT, "root": 0, "nodes": full}).run()
        built.append(obj)
    count = len(nodes)
    for index, node in enumerate(nodes):
        _tb, cause, context, suppress, _qualname, _args, frames, notes = node
        _link(
            built[index],
            built[cause] if type(cause) is int and 0 <= cause < count else None,
            built[context] if type(context) is int and 0 <= context < count else None,
            bool(suppress),
            frames,
            notes,
            _compose(nodes, index),
        )
    return built[0]


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
        if not isinstance(record, dict) or not _readable(record.get("format")):
            raise ValueError(f"not a {FORMAT} record")
        nodes = record.get("nodes")
        root = record.get("root")
        if not isinstance(nodes, list) or not isinstance(root, int) or not 0 <= root < len(nodes):
            raise ValueError("the record has no valid root")
        self.nodes: list[dict[str, Any]] = [n if isinstance(n, dict) else {} for n in nodes]
        self.links = _links(self.nodes)
        self.root = root
        self.built: dict[int, BaseException] = {}
        self.building: set[int] = set()
        self.standins: set[int] = set()
        self.classes: dict[tuple[str, str], type[BaseException] | None] = {}
        self.failures: dict[tuple[str, str], str] = {}
        self.groups = group_types()

    # -- driving

    def run(self) -> BaseException:
        built = self.built
        for index, node in enumerate(self.nodes):
            if index not in built:
                exact = _exact(node) if node.get("exact") is True else None
                if exact is None:
                    self.get(index)
                else:  # what get() would build, without its general checks
                    built[index] = exact
        for index in range(len(self.nodes)):
            self.finish(index)
        return built[self.root]

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
        names = node.get("mro")
        first = names[0] if type(names) is list and names else None
        if (
            isinstance(first, (list, tuple))
            and len(first) == 2
            and type(first[0]) is type(first[1]) is str
        ):
            cls = self.resolve(first[0], first[1])  # what _names(...)[0] would give, sooner
        else:
            cls = self.resolve(*_names(names)[0])
        if cls is not None:
            data = node.get("pickle")
            if data is None and node.get("exact") is True and builtin_class(cls):
                # the record is the whole state: cls(*args), as its pickle would do
                exact = _call_class(cls, node) or self.from_record(cls, index)
                if exact is not None:
                    return exact
        mro = _names(names)
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
        # no text in the node (a compact exact node): the class's own str()/repr() of args
        text, shown = node.get("str"), node.get("repr")
        state["_serdoctor_str"] = text if isinstance(text, str) else None
        state["_serdoctor_repr"] = shown if isinstance(shown, str) else None
        state["_serdoctor_node"] = node
        state["remote_type"] = f"{mro[0][0]}.{mro[0][1]}"
        state["remote_mro"] = tuple(f"{m}.{q}" for m, q in mro)
        state["remote_reason"] = reason
        return obj

    # -- links, notes, traceback (all exceptions exist by now)

    def finish(self, index: int) -> None:
        tb = _finish(self.nodes, self.links, self.built, index)
        if index in self.standins:
            obj = self.built[index]
            refs = self.nodes[index].get("refs")
            obj.__dict__["_serdoctor_tb"] = tb
            obj.__dict__["_serdoctor_refs"] = [
                self.built[r] for r in (refs if isinstance(refs, list) else []) if self.valid(r)
            ]

    def compose(self, index: int) -> str:
        """The remote text of the whole chain, oldest first, as ``traceback`` prints it."""
        return _compose(self.links, index)

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


def _links(nodes: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    """Each node's ``(tb, cause, context, suppress)``: what :func:`_compose` follows."""
    return [(n.get("tb"), n.get("cause"), n.get("context"), n.get("suppress")) for n in nodes]


def _finish(
    nodes: list[dict[str, Any]],
    links: list[tuple[Any, Any, Any, Any]],
    built: dict[int, BaseException],
    index: int,
) -> types.TracebackType | None:
    """Put back links, notes, frames and remote text on ``built[index]``; its traceback."""
    node = nodes[index]
    count = len(nodes)
    cause, context = node.get("cause"), node.get("context")
    return _link(
        built[index],
        built[cause] if isinstance(cause, int) and 0 <= cause < count else None,
        built[context] if isinstance(context, int) and 0 <= context < count else None,
        bool(node.get("suppress")),
        node.get("frames"),
        node.get("notes"),
        _compose(links, index),
    )


def _link(
    obj: BaseException,
    cause: BaseException | None,
    context: BaseException | None,
    suppress: bool,
    frames: object,
    notes: object,
    remote: str,
) -> types.TracebackType | None:
    """Set ``obj``'s cause, context, traceback (built from ``frames``), notes and remote text.

    Past a class's own ``__setattr__``: a class without one (every builtin
    exception) gets plain assignments, the cheapest; any other gets
    ``object.__setattr__``, and an attribute it refuses is left as it is.
    """
    tb = build_traceback(frames) if frames else None
    if type(obj).__setattr__ is _PLAIN_SETATTR:
        obj.__cause__ = cause
        obj.__context__ = context
        obj.__suppress_context__ = suppress
        if tb is not None:
            obj.__traceback__ = tb
        if isinstance(notes, (list, tuple)) and "__notes__" not in obj.__dict__:
            obj.__notes__ = [n for n in notes if isinstance(n, str)]  # type: ignore[attr-defined]
        obj.remote_traceback = remote  # type: ignore[attr-defined]
        return tb
    try:  # one try for the usual case
        object.__setattr__(obj, "__cause__", cause)
        object.__setattr__(obj, "__context__", context)
        object.__setattr__(obj, "__suppress_context__", suppress)
        if tb is not None:
            object.__setattr__(obj, "__traceback__", tb)
    except Exception:  # an odd class: each one that can be set is set
        _set(obj, "__cause__", cause)
        _set(obj, "__context__", context)
        _set(obj, "__suppress_context__", suppress)
        if tb is not None:
            _set(obj, "__traceback__", tb)
    if isinstance(notes, (list, tuple)) and "__notes__" not in obj.__dict__:
        _set(obj, "__notes__", [n for n in notes if isinstance(n, str)])
    _set(obj, "remote_traceback", remote)
    return tb


_PLAIN_SETATTR = BaseException.__setattr__  # (a class with its own __setattr__ has another)


def _compose(links: Sequence[Sequence[Any]], index: int) -> str:
    """The remote text of the chain from ``index``, oldest first, as ``traceback`` prints it.

    ``links[i]`` starts with node ``i``'s ``(tb, cause, context, suppress)``.
    """
    link = links[index]
    text, cause, context, suppress = link[0], link[1], link[2], link[3]
    text = text if type(text) is str else ""
    if cause is None and (context is None or suppress) and len(text) <= MAX_COMPOSED_TRACEBACK:
        return text  # the common case: nothing chained
    count = len(links)
    parts: list[str] = [text]
    seen = {index}
    size = len(text)
    while True:
        if size > MAX_COMPOSED_TRACEBACK:
            parts.append("[serdoctor: earlier exceptions of this chain not shown]\n")
            break
        if isinstance(cause, int) and 0 <= cause < count:
            parts.append(_CAUSE)
            current = cause
        elif isinstance(context, int) and 0 <= context < count and not suppress:
            parts.append(_CONTEXT)
            current = context
        else:
            break
        if current in seen:  # a cycle: it ends after the separator, as it always did
            break
        seen.add(current)
        link = links[current]
        text, cause, context, suppress = link[0], link[1], link[2], link[3]
        text = text if type(text) is str else ""
        parts.append(text)
        size += len(text)
    return "".join(reversed(parts))


def _readable(form: object) -> bool:
    return type(form) is str and form in READABLE_FORMATS


def _rebuild_exact(record: Any) -> BaseException | None:
    """Rebuild a record of builtin exceptions only, quickly.

    :class:`_Rebuilder`'s result for a record whose nodes are all ``exact`` nodes of
    builtin classes (the common case), without its general machinery; else None.
    """
    if type(record) is not dict or not _readable(record.get("format")):
        return None
    nodes, root = record.get("nodes"), record.get("root")
    if type(nodes) is not list or type(root) is not int or not 0 <= root < len(nodes):
        return None
    built: dict[int, BaseException] = {}
    for index, node in enumerate(nodes):
        if type(node) is not dict or node.get("exact") is not True:
            return None
        obj = _exact(node)
        if obj is None:
            return None
        built[index] = obj
    links = _links(nodes)
    for index in range(len(nodes)):
        _finish(nodes, links, built, index)
    return built[root]


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
    try:  # noqa: SIM105 - contextlib.suppress costs a context manager per attribute
        object.__setattr__(obj, name, value)
    except Exception:
        pass


_BUILTIN_CLASSES: dict[str, type[BaseException]] = {}


def _builtin_exception(qualname: object) -> type[BaseException] | None:
    """``builtins.<qualname>`` when it is a ``builtin_class`` exception here, else None."""
    cls = _BUILTIN_CLASSES.get(qualname) if type(qualname) is str else None
    if cls is None and type(qualname) is str:
        found = getattr(builtins, qualname, None)
        if isinstance(found, type) and issubclass(found, BaseException) and builtin_class(found):
            cls = _BUILTIN_CLASSES[qualname] = found
    return cls


def _exact(node: dict[str, Any]) -> BaseException | None:
    """The exception of an ``exact`` node of a builtin class, or None (then ``build``)."""
    if node.get("pickle") is not None:
        return None
    names = node.get("mro")
    first = names[0] if type(names) is list and names else None
    if not isinstance(first, (list, tuple)) or len(first) != 2 or first[0] != "builtins":
        return None
    cls = _builtin_exception(first[1])
    return None if cls is None else _call_class(cls, node)


def _call_class(cls: type[BaseException], node: dict[str, Any]) -> BaseException | None:
    """``cls(*args)`` with the record's attributes, or None when that fails."""
    args = node.get("args")
    if not isinstance(args, (list, tuple)):
        return None
    try:
        obj = cls(*args)
    except Exception:
        return None
    if type(obj) is not cls:
        return None
    _restore_attributes(obj, node)
    return obj


def _restore_attributes(obj: BaseException, node: dict[str, Any]) -> None:
    attrs = node.get("attrs")
    if attrs and isinstance(attrs, dict):
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
    """Candidate stand-in classes, best first.

    Stand-in classes to try, best first: root + the minimal set of the candidate bases,
    then with fewer bases when a combination is impossible (layout or MRO conflicts).
    """
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

"""The portable record of an exception (the sending side).

An exception travels as the exceptions reachable from it (its ``__cause__``,
``__context__``, group members, and exceptions held in its arguments or
attributes), each described once in a flat table, so shared exceptions and
cycles cost nothing and need no recursion::

    record = {
        "format": "serdoctor.exception/2",     # /1 (every field in every node) is read too
        "root": 0,                        # index of the exception that was sent
        "nodes": [node, node, ...],
    }
    node = {
        "mro":     [[module, qualname], ...],   # type(exc).__mro__ as names (lists or tuples)
        "str":     str(exc),  "repr": repr(exc),  # truncated to MAX_TEXT, never raising
        "args":    [...],                       # primitives; anything else as its repr
        "attrs":   {name: primitive},           # instance and slot attributes (e.errno)
        "notes":   [str, ...] | None,           # __notes__
        "cause":   int | None,  "context": int | None,  "suppress": bool,
        "group":   {"message": str, "members": [int, ...]} | None,
        "frames":  [[filename, name, lineno, module, line], ...],
        "tb":      str,                         # this exception's formatted traceback
        "pickle":  bytes | None,                # pickle of this exception ...
        "refs":    [int, ...],                  # ... whose persistent ids index this list
        "by_value": "3.11" | None,              # made by cloudpickle: loads on 3.11 only
        "pickle_error": str | None,             # why there is no pickle
        "exact":   bool,                        # no pickle needed: cls(*args) + attrs + notes
    }

A field at its default (``None``, ``[]``, ``{}``, ``False``) may be left out;
``exact`` nodes leave them out. ``exact`` marks a builtin exception class
(``ValueError``, ``KeyError``...) whose whole state is primitives the record
keeps unchanged: the receiver rebuilds it as ``cls(*args)`` plus attributes
and notes, exactly what its pickle would give, so no pickle is made (the
common case, several times faster). When that class is one every supported
Python has (``compact_args``), the node also leaves out ``str`` and ``repr``
and names only its own class in ``mro``: no receiver needs a stand-in for it.

The compact record: a never-raised builtin exception whose whole state is
its primitive ``args`` (``ValueError("bad value")``, see ``compact_args``)
travels as the tuple ``(qualname, args, text)`` instead, ``text`` being its
formatted traceback text: ``builtins.<qualname>(*args)`` rebuilds it.

The chain record: when every node would be an ``exact`` node of a class
every Python has, with no attributes (a ``ValueError`` raised from a
``KeyError``, a ``ZeroDivisionError`` with a note), the record is the tuple
``(CHAIN, nodes)`` and each node the tuple ``(tb, cause, context, suppress,
qualname, args, frames, notes)``: the same facts in fewer, cheaper objects
(``chain_node_dict`` gives a node's full form). Otherwise every node is a
dict as above.

Everything in a record is ``None``, ``bool``, ``int``, ``float``, ``complex``,
``str``, ``bytes`` or lists/tuples/dicts/sets of them, so the outer pickle of a
record names no global but the rebuild function: the exception's own module is
never a requirement of the payload. The inner ``pickle`` is opaque bytes (plain
pickle; cloudpickle when plain pickle cannot send the class by reference, e.g.
a class defined in ``__main__``); other
exceptions inside it are persistent ids (indices into ``refs``), so each
exception is encoded once however deeply groups nest.

Limits (never a crash, always a visible marker): texts are cut at
``MAX_TEXT`` characters; exceptions farther than ``MAX_DEPTH`` links from the
root, or beyond ``MAX_NODES`` in all, are replaced by one marker exception.
"""

from __future__ import annotations

import io
import pickle
import traceback
from collections.abc import Callable
from typing import Any

from serdoctor.serialize.exceptions._text import format_own_text, walk_traceback
from serdoctor.serialize.exceptions._values import (
    CHAIN,
    FORMAT,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_NODES,
    MAX_TEXT,
    PICKLE_PROTOCOL,
    attributes,
    chain_node_dict,
    class_names,
    compact_args,
    core,
    exact_parts,
    group_types,
    instance_dict,
    portable_args,
    python_minor,
    qualname_of,
    record_rebuilds,
    safe_str,
    truncate,
    type_facts,
)

__all__ = ["capture", "compact", "minimal_record"]


def _own_text(exc: BaseException) -> str:
    """``exc`` formatted as ``traceback`` prints it, without its chain."""
    return _chain_texts(exc).get(id(exc)) or _bare_text(exc)


def _bare_text(exc: BaseException) -> str:
    return f"{qualname_of(type(exc))}: {safe_str(exc)}\n"


def _chain_texts(exc: BaseException) -> dict[int, str]:
    """Own text (``format(chain=False)``) of ``exc`` and of every exception its display reaches.

    One ``TracebackException`` is built for the whole graph and its parts are
    matched with the exceptions, so a chain of n exceptions costs O(n), not the
    O(n²) of formatting each exception separately (``traceback`` walks the
    whole chain even with ``chain=False``). Keyed by ``id``.
    """
    texts: dict[int, str] = {}
    groups = group_types()
    try:
        root = traceback.TracebackException(type(exc), exc, core(exc, "__traceback__"))
    except Exception:
        return texts
    stack: list[tuple[BaseException, Any]] = [(exc, root)]
    while stack:
        current, te = stack.pop()
        if id(current) in texts:
            continue
        try:
            texts[id(current)] = truncate("".join(te.format(chain=False)), keep_tail=True)
        except Exception:
            texts[id(current)] = _bare_text(current)
        for field in ("__cause__", "__context__"):
            linked, linked_te = core(current, field), getattr(te, field, None)
            if isinstance(linked, BaseException) and linked_te is not None:
                stack.append((linked, linked_te))
        member_tes = getattr(te, "exceptions", None)
        if groups and isinstance(current, groups[0]) and member_tes:
            members = getattr(current, "exceptions", ())
            stack.extend(zip(members, member_tes, strict=False))
    return texts


class _NodeHooks:
    """Pickle one exception; every other exception met becomes a persistent id.

    Mixed into ``pickle.Pickler`` (by reference) and ``cloudpickle.Pickler``
    (by value, tried when the first fails, e.g. for a class in ``__main__``).
    """

    def setup(
        self,
        own: BaseException,
        ref: Callable[[BaseException], int],
        custom_reduce: object,
    ) -> None:
        self._own = own
        self._ref = ref
        self._custom_reduce = custom_reduce
        self._first = True
        self._slots: dict[int, int] = {}
        self.refs: list[int] = []

    def persistent_id(self, obj: Any) -> Any:
        if not isinstance(obj, BaseException):
            return None
        if obj is self._own and self._first:
            self._first = False
            return None
        slot = self._slots.get(id(obj))
        if slot is None:
            slot = len(self.refs)
            self.refs.append(self._ref(obj))
            self._slots[id(obj)] = slot
        return slot

    def reducer_override(self, obj: Any) -> Any:
        # A stand-in's __reduce__ produces a record; inside a record we want its plain form.
        if obj is self._own and getattr(type(obj), "__reduce__", None) is self._custom_reduce:
            return BaseException.__reduce__(obj)
        parent: Any = getattr(super(), "reducer_override", None)
        return NotImplemented if parent is None else parent(obj)


class _PlainNodePickler(_NodeHooks, pickle.Pickler):
    pass


_by_value_pickler: list[type[Any]] = []


def _value_node_pickler() -> type[Any] | None:
    if not _by_value_pickler:
        try:
            import cloudpickle
        except ImportError:  # pragma: no cover - cloudpickle is a dependency
            return None

        class _ValueNodePickler(_NodeHooks, cloudpickle.Pickler):  # type: ignore[misc]
            pass

        _by_value_pickler.append(_ValueNodePickler)
    return _by_value_pickler[0]


class _Capture:
    """Walks the exceptions reachable from the root, breadth first, and describes each."""

    def __init__(
        self,
        marker: Callable[[str], BaseException],
        custom_reduce: object,
    ) -> None:
        self.marker_factory = marker
        self.custom_reduce = custom_reduce
        self.index: dict[int, int] = {}
        self.objects: list[BaseException] = []  # keeps ids stable while we walk
        self.depths: list[int] = []
        self.marker: int | None = None
        self.groups = group_types()
        self.texts: dict[int, str] = {}

    def add(self, exc: BaseException, depth: int) -> int:
        found = self.index.get(id(exc))
        if found is not None:
            return found
        if depth > MAX_DEPTH or len(self.objects) >= MAX_NODES:
            return self.marker_index()
        return self._append(exc, depth)

    def _append(self, exc: BaseException, depth: int) -> int:
        self.index[id(exc)] = len(self.objects)
        self.objects.append(exc)
        self.depths.append(depth)
        return len(self.objects) - 1

    def text(self, exc: BaseException, rows: list[str] | None, text: str | None) -> str:
        """The traceback text of ``exc`` alone.

        ``exc``'s own traceback text: from ``rows`` (see ``walk_traceback``) when
        they are given, else from ``traceback``; ``text`` is ``str(exc)`` or None.
        """
        found = self.texts.get(id(exc))
        if found is not None:
            return found
        if text is not None and rows is not None:
            try:
                own = format_own_text(exc, rows, text)
            except Exception:  # a hostile class: traceback decides what it prints
                own = None
            if own is not None:
                return truncate(own, keep_tail=True)
        self.texts.update(_chain_texts(exc))
        return self.texts.get(id(exc)) or _bare_text(exc)

    def marker_index(self) -> int:
        if self.marker is None:
            message = (
                f"serdoctor: more exceptions were chained here, but only {MAX_DEPTH} levels "
                f"and {MAX_NODES} exceptions are sent; the rest were not sent"
            )
            self.marker = self._append(self.marker_factory(message), 0)
        return self.marker

    def run(self, root: BaseException) -> dict[str, Any] | tuple[str, tuple[Any, ...]]:
        self.add(root, 0)
        nodes: list[dict[str, Any] | tuple[Any, ...]] = []
        chain = True  # every node is a chain record's node so far
        while len(nodes) < len(self.objects):
            try:
                node = self.describe(len(nodes))
            except Exception as error:  # one odd exception must not cost the others
                reason = f"{type(error).__name__}: {safe_str(error)}"
                node = minimal_record(self.objects[len(nodes)], reason)["nodes"][0]
            chain = chain and type(node) is tuple
            nodes.append(node)
        if chain:
            return CHAIN, tuple(nodes)
        full = [chain_node_dict(n) if type(n) is tuple else n for n in nodes]
        return {"format": FORMAT, "root": 0, "nodes": full}

    def describe(self, position: int) -> dict[str, Any] | tuple[Any, ...]:
        exc = self.objects[position]
        facts = type_facts(type(exc))
        if facts.builtin:
            node = self.describe_exact(exc, facts, self.depths[position])
            if node is not None:
                return node
        return self.describe_any(exc, self.depths[position])

    def describe_exact(
        self, exc: BaseException, facts: Any, depth: int
    ) -> dict[str, Any] | tuple[Any, ...] | None:
        """Describe an exception that rebuilds from its record, quickly.

        :meth:`describe_any`'s node for an exception that ``record_rebuilds``, in fewer
        steps (a builtin class has no ``__getattr__`` or properties to dodge), as a
        chain record's node when it can be one; else None.
        """
        state = exc.__dict__
        args = exc.args
        if not exact_parts(type(exc), args, state):
            return None
        try:
            text = str(exc)  # may fail (an int too long for str()): describe_any says so
        except Exception:
            return None
        if type(text) is not str:
            return None
        frames, rows = walk_traceback(exc.__traceback__)
        cause, context = exc.__cause__, exc.__context__
        notes = state.get("__notes__") if state else None
        if facts.compact and rows is not None:
            # format_own_text() of a builtin class (not SyntaxError, not a group)
            qualname = facts.names[0][1]
            own = f"{qualname}: {text}\n" if text else f"{qualname}\n"
            if notes:
                own += "".join([line + "\n" for note in notes for line in note.split("\n")])
            if rows:
                own = "Traceback (most recent call last):\n" + "".join(rows) + own
            own = own if len(own) <= MAX_TEXT else truncate(own, keep_tail=True)
        else:
            own = self.text(exc, rows, text)
        attrs = attributes(exc) if facts.descriptors or state else None
        cause_at = None if cause is None else self.add(cause, depth + 1)
        context_at = None if context is None else self.add(context, depth + 1)
        if facts.compact:  # a class every Python has: the receiver never needs a stand-in
            chained = (own, cause_at, context_at, exc.__suppress_context__, facts.names[0][1],
                       args, frames, None if notes is None else tuple(notes))  # fmt: skip
            if not attrs:  # a node of a chain record (see the module docstring)
                return chained
            node = chain_node_dict(chained)
            node["attrs"] = attrs
            return node
        # fields at their default are left out (see the module docstring)
        node = {
            "mro": list(facts.names),  # shared tuples: pickle writes each pair once
            "str": text if len(text) <= MAX_TEXT else truncate(text),
            "repr": safe_str(exc, use_repr=True),
            "args": list(args),
            "frames": frames,
            "tb": own,
            "exact": True,
        }
        if notes is not None:
            node["notes"] = list(notes)
        if cause_at is not None:
            node["cause"] = cause_at
        if context_at is not None:
            node["context"] = context_at
        if exc.__suppress_context__:
            node["suppress"] = True
        if attrs:
            node["attrs"] = attrs
        return node

    def describe_any(self, exc: BaseException, depth: int) -> dict[str, Any]:
        state = instance_dict(exc)
        stored = state.get("_serdoctor_node") if state else None
        standin = isinstance(stored, dict) and isinstance(stored.get("mro"), list)
        text: str | None
        try:
            text = str(exc)
        except Exception:
            text = None
        if type(text) is not str:
            text = None

        def link(other: object) -> int | None:
            return self.add(other, depth + 1) if isinstance(other, BaseException) else None

        node: dict[str, Any] = {
            "mro": stored["mro"] if standin else class_names(type(exc)),  # type: ignore[index]
            "str": safe_str(exc) if text is None else truncate(text),
            "repr": safe_str(exc, use_repr=True),
            "args": portable_args(core(exc, "args")),
            "attrs": attributes(exc),
            "notes": _notes(state.get("__notes__")),
            "cause": link(core(exc, "__cause__")),
            "context": link(core(exc, "__context__")),
            "suppress": bool(core(exc, "__suppress_context__")),
            "group": None,
        }
        if self.groups and isinstance(exc, self.groups[0]):
            members = getattr(exc, "exceptions", ())
            node["group"] = {
                "message": safe_str(getattr(exc, "message", "")),
                "members": [
                    self.add(m, depth + 1) for m in members if isinstance(m, BaseException)
                ],
            }
        tb = core(exc, "__traceback__")
        if standin and state.get("_serdoctor_tb") is tb:
            node["frames"] = stored.get("frames", [])  # type: ignore[union-attr]
            node["tb"] = stored.get("tb", "")  # type: ignore[union-attr]
        else:
            node["frames"], rows = walk_traceback(tb)
            node["tb"] = self.text(exc, rows, text)
        if standin:
            refs = state.get("_serdoctor_refs") or []
            node["pickle"] = stored.get("pickle")  # type: ignore[union-attr]
            node["refs"] = [self.add(r, depth + 1) for r in refs if isinstance(r, BaseException)]
            node["by_value"] = stored.get("by_value")  # type: ignore[union-attr]
            node["pickle_error"] = stored.get("pickle_error")  # type: ignore[union-attr]
            node["exact"] = stored.get("exact") is True  # type: ignore[union-attr]
            if len(node["refs"]) != len(refs):
                node["pickle"] = None
        elif record_rebuilds(exc, state):
            node.update(pickle=None, refs=[], by_value=None, pickle_error=None, exact=True)
        else:
            node.update(self.pickle(exc, depth))
        return node

    def pickle(self, exc: BaseException, depth: int) -> dict[str, Any]:
        """``pickle``, ``refs``, ``by_value`` and ``pickle_error`` fields of a node."""
        first_error: str | None = None
        for kind in (_PlainNodePickler, _value_node_pickler()):
            if kind is None:
                continue
            buffer = io.BytesIO()
            pickler = kind(buffer, protocol=PICKLE_PROTOCOL)
            pickler.setup(exc, lambda o: self.add(o, depth + 1), self.custom_reduce)
            try:
                pickler.dump(exc)
            except Exception as error:
                if first_error is None:
                    first_error = truncate(f"{type(error).__name__}: {safe_str(error)}", 1000)
                continue
            by_value = None if kind is _PlainNodePickler else python_minor()
            return {
                "pickle": buffer.getvalue(),
                "refs": pickler.refs,
                "by_value": by_value,
                "pickle_error": None,
                "exact": False,
            }
        return {
            "pickle": None,
            "refs": [],
            "by_value": None,
            "pickle_error": first_error,
            "exact": False,
        }


def _notes(notes: object) -> list[str] | None:
    if not isinstance(notes, (list, tuple)):
        return None
    return [safe_str(note) for note in notes[:MAX_ITEMS]]


def capture(
    exc: BaseException,
    *,
    marker: Callable[[str], BaseException],
    custom_reduce: object = None,
) -> dict[str, Any] | tuple[str, tuple[Any, ...]]:
    """Describe ``exc`` and every exception reachable from it as a portable record.

    ``marker(message)`` makes the exception that replaces what lies beyond the
    limits. ``custom_reduce`` is a ``__reduce__`` function that must not be used
    for the inner pickle (the stand-ins' own, which would produce a record again).
    Never raises: on an unexpected failure the record holds one node with the
    type names and the text that could be read.
    """
    try:
        return _Capture(marker, custom_reduce).run(exc)
    except Exception as error:
        return minimal_record(exc, f"{type(error).__name__}: {safe_str(error)}")


def compact(exc: BaseException) -> tuple[str, tuple[Any, ...], str] | None:
    """The compact record of ``exc``, when one is enough.

    The compact record ``(qualname, args, text)`` of ``exc``, or None when ``exc``
    needs a full record (see ``compact_args``). Never raises.
    """
    try:
        args = compact_args(exc)
        if args is None:
            return None
        qualname = type(exc).__qualname__
        text = str(exc)
    except Exception:
        return None
    if type(text) is not str:
        return None
    # format_exception_only of a builtin class, no notes: what traceback prints for it
    own = f"{qualname}: {text}\n" if text else f"{qualname}\n"
    return qualname, args, truncate(own, keep_tail=True)


def minimal_record(exc: BaseException, reason: str) -> dict[str, Any]:
    """A one-node record with only names and texts (the fallback of :func:`capture`)."""
    try:
        mro = class_names(type(exc))
    except Exception:
        mro = [["builtins", "Exception"], ["builtins", "BaseException"], ["builtins", "object"]]
    node: dict[str, Any] = {
        "mro": mro,
        "str": safe_str(exc),
        "repr": safe_str(exc, use_repr=True),
        "args": [],
        "attrs": {},
        "notes": None,
        "cause": None,
        "context": None,
        "suppress": False,
        "group": None,
        "frames": [],
        "tb": _own_text(exc),
        "pickle": None,
        "refs": [],
        "by_value": None,
        "pickle_error": truncate(f"serdoctor could not describe this exception: {reason}", 1000),
        "exact": False,
    }
    return {"format": FORMAT, "root": 0, "nodes": [node]}

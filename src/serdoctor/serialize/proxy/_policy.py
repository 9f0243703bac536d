"""Proxy references: large objects travel as lazy ProxyStore proxies.

How a :class:`~serdoctor.Serializer` with ``proxy=ProxyPolicy(...)`` uses this
module (pickle's own ``persistent_id`` hook, so the C pickler keeps its speed;
``reducer_override`` is never called for exact ``bytes``/``str``/``dict``...)::

    plan = policy.plan_before(obj)           # cheap probe (or a walk with types=/predicate=)
    if plan is None:
        body = <plain first pass>            # small payloads stop here:
        plan = policy.plan_after(obj, len(body))   # one length comparison
    if plan is not None:
        pickler.persistent_id = plan.persistent_id
        body = <second pass>                 # proxied objects are put in the store
        header["proxies"] = plan.to_header() # path, size, type, store, key per object

    # loading, anywhere, no set-up:
    unpickler.persistent_load = lambda pid: load_persistent(pid)   # when pid[0] == "sd:proxy"

Lifetimes: objects put while a :func:`proxy_scope` is active are evicted from
their store when it ends (``with serializer.proxy_scope(): ...``).  Scopes are
per context (a ``ContextVar``), not per policy, and nest: an object belongs to
the innermost scope active when it was stored.  Outside any scope an object
stays until its store is closed (the default store: at interpreter exit).
See ``_scope`` (lifetimes), ``_walk`` (what is proxied) and
``_store`` (stores, wire format, lazy proxies).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxystore.store import Store

from serdoctor.errors import DeserializationError, SerializationError
from serdoctor.serialize.proxy._codec import dump_object
from serdoctor.serialize.proxy._scope import ProxyEntry, ProxyScope, current_scope, proxy_scope
from serdoctor.serialize.proxy._store import (
    ProxyFactory,
    connector_text,
    default_store,
    key_from_wire,
    key_text,
    key_to_wire,
    make_lazy_proxy,
    note_local_store,
    store_spec,
)
from serdoctor.serialize.proxy._walk import find, note_numpy, probe, size_of

__all__ = [
    "PID_TAG",
    "ProxyEntry",
    "ProxyPlan",
    "ProxyPolicy",
    "ProxyScope",
    "is_proxy_pid",
    "load_persistent",
    "proxy_scope",
]

PID_TAG = "sd:proxy"
PID_VERSION = 1


def _identity(data: Any) -> Any:
    return data


def _type_name(tp: type) -> str:
    return tp.__qualname__ if tp.__module__ == "builtins" else f"{tp.__module__}.{tp.__qualname__}"


class _Recorder:
    """A proxy plan's mutable state.

    A plan's mutable state; the ``persistent_id`` closure holds this, not the plan
    (no reference cycle: a dropped plan frees its candidates at once).
    """

    def __init__(
        self, store: Store[Any], candidates: dict[int, tuple[Any, str]], dry_run: bool
    ) -> None:
        self.store = store
        self.candidates = candidates  # holds the objects: their ids stay valid
        self.dry_run = dry_run
        self.entries: list[ProxyEntry] = []
        self.pids: dict[int, tuple[Any, ...]] = {}
        self.keys: list[Any] = []
        self.spec = store_spec(store)
        self.connector = connector_text(self.spec)

    def store_object(self, obj: Any, path: str) -> tuple[Any, ...]:
        type_name = _type_name(type(obj))
        where = path or "the payload itself"
        try:
            kind, data, meta = dump_object(obj)
        except Exception as exc:
            raise SerializationError(
                f"could not serialize the {type_name} at {where} to put it in proxy store "
                f"{self.store.name!r}: {type(exc).__name__}: {exc}; exclude it from the "
                "ProxyPolicy (types=/predicate=) or make it picklable",
                path=path,
                type_name=type_name,
            ) from exc
        size = len(data)
        key: Any = None
        if not self.dry_run:
            try:
                key = self.store.put(data, serializer=_identity)
            except Exception as exc:
                raise SerializationError(
                    f"could not put the {type_name} at {where} ({size} bytes) into proxy store "
                    f"{self.store.name!r} ({self.connector}): {type(exc).__name__}: {exc}; "
                    "check that the store is reachable and has space",
                    path=path,
                    type_name=type_name,
                ) from exc
            self.keys.append(key)
        entry = ProxyEntry(
            path=path,
            size=size,
            type_name=type_name,
            store=self.store.name,
            key="" if key is None else key_text(key),
            connector=self.connector,
        )
        self.entries.append(entry)
        if not self.dry_run:
            scope = current_scope()
            if scope is not None:
                scope.add(self.store, key, entry)
        pid = (PID_TAG, PID_VERSION, self.spec, *key_to_wire(key), kind, type_name, size, meta)
        self.pids[id(obj)] = pid
        return pid


class ProxyPlan:
    """The objects one ``dumps`` proxies, and the ``persistent_id`` that stores them.

    ``persistent_id(obj)`` (an attribute holding a plain function, for speed)
    is a dict lookup by ``id(obj)``; for an object to proxy it serializes it,
    puts it in the store on first sight (shared objects are stored once) and
    returns the pid ``("sd:proxy", 1, spec, key type, key fields, kind, type name,
    size, meta)``; for
    anything else ``None``.  ``entries`` fills up, in pickling order, as
    objects are stored.
    """

    persistent_id: Callable[[Any], Any]

    def __init__(
        self,
        store: Store[Any],
        candidates: dict[int, tuple[Any, str]],
        *,
        dry_run: bool = False,
    ) -> None:
        self._rec = rec = _Recorder(store, candidates, dry_run)
        pids, store_object = rec.pids, rec.store_object

        def persistent_id(obj: Any, _get: Any = candidates.get, _id: Any = id) -> Any:
            found = _get(_id(obj))
            if found is None:
                return None
            return pids.get(_id(obj)) or store_object(obj, found[1])

        self.persistent_id = persistent_id

    @property
    def store(self) -> Store[Any]:
        """The store objects are put in."""
        return self._rec.store

    @property
    def dry_run(self) -> bool:
        """True for :meth:`as_dry_run` plans, which store nothing."""
        return self._rec.dry_run

    @property
    def entries(self) -> list[ProxyEntry]:
        """The objects stored so far, in pickling order."""
        return self._rec.entries

    def to_header(self) -> list[dict[str, Any]]:
        """The proxied objects as JSON-ready dicts: path, size, type, store, key, connector."""
        return [entry.to_dict() for entry in self._rec.entries]

    def as_dry_run(self) -> ProxyPlan:
        """A fresh plan over the same objects that records entries but stores nothing.

        For ``explain()``: sizes are what would be written, keys are ``""``.
        """
        return ProxyPlan(self._rec.store, self._rec.candidates, dry_run=True)

    def discard(self) -> None:
        """Evict everything this plan stored (e.g. when the second pass failed)."""
        keys, self._rec.keys = self._rec.keys, []
        for key in keys:
            with contextlib.suppress(Exception):
                self._rec.store.evict(key)


_walked = threading.local()  # the last object plan_before walked in full and found empty


@dataclass(frozen=True)
class ProxyPolicy:
    """Which objects of a payload travel as lazy ProxyStore proxies, and through which store.

    An object is proxied when its size is at least ``min_bytes`` (exact or
    subclassed ``bytes``, ``bytearray``, ``str``, ``array.array`` and numpy
    arrays: the types whose size is cheap to know), when it is an instance of
    one of ``types``, or when ``predicate(obj)`` is true.  Containers are
    walked like pickle walks them (list/tuple items, dict values, ``__dict__``,
    ``__slots__``); a proxied object is not looked into.  Dict keys and set
    members are never proxied (they are hashed while loading, which would
    resolve the proxy at once).

    ``store=None`` uses a per-process ``FileConnector`` store in a private
    temporary directory, created on first use and removed at interpreter exit
    (so payloads must be loaded on the same machine, while the sender lives).
    Use :func:`~serdoctor.serialize.proxy._redis.redis_store` (or any ProxyStore
    ``Store``) to share across machines.
    """

    store: Store[Any] | None = None
    min_bytes: int = 1 << 20
    types: tuple[type, ...] = ()
    predicate: Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.min_bytes, bool) or not isinstance(self.min_bytes, int):
            raise TypeError(f"ProxyPolicy(min_bytes=...) must be an int, not {self.min_bytes!r}")
        if self.min_bytes < 0:
            raise ValueError(f"ProxyPolicy(min_bytes=...) must be >= 0, not {self.min_bytes}")
        types = self.types
        if isinstance(types, type):
            types = (types,)
        types = tuple(types)
        for tp in types:
            if not isinstance(tp, type):
                raise TypeError(f"ProxyPolicy(types=...) must hold classes, not {tp!r}")
        object.__setattr__(self, "types", types)
        if self.predicate is not None and not callable(self.predicate):
            raise TypeError(f"ProxyPolicy(predicate=...) must be callable, not {self.predicate!r}")
        if self.store is not None and not isinstance(self.store, Store):
            raise TypeError(
                f"ProxyPolicy(store=...) must be a proxystore.store.Store, not "
                f"{type(self.store).__name__}"
            )
        note_numpy()  # let the cheap probe recognise numpy arrays if numpy is loaded

    def _plan(self, found: dict[int, tuple[Any, str]]) -> ProxyPlan | None:
        if not found:
            return None
        store = self.store if self.store is not None else default_store()
        note_local_store(store)
        return ProxyPlan(store, found)

    def plan_before(self, obj: Any) -> ProxyPlan | None:
        """Plan before the first pickling pass; ``None`` means "nothing found yet".

        Without ``types``/``predicate`` this is a cheap probe (``obj`` itself is
        a large buffer/str/array); with them it walks the whole object, since
        small matches count too.
        """
        if self.types or self.predicate is not None:
            found = find(obj, self.min_bytes, self.types, self.predicate)
            if not found:
                _walked.obj = obj  # plan_after need not walk the same graph again
                return None
            _walked.obj = None
            return self._plan(found)
        # Only the object itself is probed: the first pass hands large bytes, bytearrays
        # and arrays to the writer uncopied, so finding them after it costs nothing, and
        # looking into every small container first would tax every small payload.
        if probe(obj, self.min_bytes, shallow=True):
            return self._plan(find(obj, self.min_bytes))
        return None

    def plan_after(self, obj: Any, body_len: int) -> ProxyPlan | None:
        """Plan after a plain first pass wrote ``body_len`` bytes.

        Returns ``None`` at once when ``body_len < min_bytes``; otherwise walks
        ``obj`` for objects to proxy (``None`` when there are none: the payload is
        large because of many small objects, which are not proxied).
        """
        if body_len < self.min_bytes:
            if self.types or self.predicate is not None:
                _walked.obj = None
            return None
        if self.types or self.predicate is not None:
            walked = getattr(_walked, "obj", None)
            _walked.obj = None
            if walked is obj:
                return None
        return self._plan(find(obj, self.min_bytes, self.types, self.predicate))

    def scope(self, *, evict: bool = True) -> contextlib.AbstractContextManager[ProxyScope]:
        """:func:`proxy_scope`: objects proxied in the block are evicted when it ends."""
        return proxy_scope(evict=evict)

    def estimate(self, obj: Any) -> list[tuple[str, int | None, str]]:
        """``(path, cheap size or None, type name)`` of what would be proxied; stores nothing."""
        found = find(obj, self.min_bytes, self.types, self.predicate)
        return [(path, size_of(o), _type_name(type(o))) for o, path in found.values()]


def is_proxy_pid(pid: Any) -> bool:
    """True when ``pid`` (from ``persistent_load``) is a serdoctor proxy reference."""
    return type(pid) is tuple and len(pid) > 1 and pid[0] == PID_TAG


def load_persistent(pid: Any, memo: dict[Any, Any] | None = None) -> Any:
    """Turn a proxy pid back into an unresolved lazy proxy (no I/O here).

    The pid carries the store's configuration, so the receiving process needs
    no set-up; the store is reached on the proxy's first use, and any failure
    then is a :class:`~serdoctor.errors.ProxyResolutionError` naming the store
    and the key.  Pass one ``memo`` dict per ``loads`` to give an object that
    was referenced twice in the payload a single proxy.
    """
    if is_proxy_pid(pid) and pid[1] != PID_VERSION:
        raise DeserializationError(
            f"proxy reference format {pid[1]!r} is not understood by this serdoctor "
            f"(knows {PID_VERSION}); upgrade serdoctor where the payload is loaded"
        )
    if not is_proxy_pid(pid) or len(pid) != 9:
        raise DeserializationError(
            f"malformed proxy reference in the payload: {pid!r:.200}; the payload is "
            "corrupt or was not made by serdoctor"
        )
    _, _, spec, key_type, key_fields, kind, type_name, size, meta = pid
    try:
        key = key_from_wire(key_type, key_fields)
    except Exception as exc:
        raise DeserializationError(
            f"malformed proxy reference for a {type_name!r}: its key type {key_type!r} cannot "
            f"be rebuilt ({type(exc).__name__}: {exc}); the payload is corrupt, or was made "
            "with a ProxyStore connector that is not installed here"
        ) from exc
    if memo is not None:
        ident = (spec.get("name") if isinstance(spec, dict) else None, key)
        with contextlib.suppress(TypeError):
            if ident in memo:
                return memo[ident]
    try:
        factory = ProxyFactory(key, spec, kind, type_name, size, meta)
    except Exception as exc:
        raise DeserializationError(
            f"malformed proxy reference for a {type_name!r}: its store configuration is "
            f"invalid ({type(exc).__name__}: {exc}); the payload is corrupt"
        ) from exc
    proxy = make_lazy_proxy(factory)
    if memo is not None:
        with contextlib.suppress(TypeError):
            memo[ident] = proxy
    return proxy

"""ProxyStore plumbing for proxy references: stores, wire spec, lazy proxies.

Message flow::

    sender                                   receiver (any process, no set-up)
    ------                                   ---------------------------------
    ProxyPlan.persistent_id(obj)
      kind, data, meta = dump_object(obj)
      key  = store.put(data)
      pid  = ("sd:proxy", 1, spec, key…, ──►  load_persistent(pid)
              kind, type, size, meta)           LazyProxy(ProxyFactory(key, spec, kind))
                                                 ... first use ...
                                                 store_for(spec).get(key) → load_object
                                                 missing / unreachable → ProxyResolutionError

``spec`` is the store's ProxyStore configuration as plain data (connector class
path and options), so the receiver rebuilds the connector itself.  Stores a
receiver builds are cached per spec in this module and never registered in
ProxyStore's global registry; in the sending process the sender's own store
instance is used.

The default store (``store_for_policy(None)``) is one ``FileConnector`` store
per process in a private ``mkdtemp`` directory, created on first use and
removed at interpreter exit.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
import threading
import uuid
import weakref
from typing import Any

from proxystore.connectors.file import FileConnector
from proxystore.proxy import Proxy
from proxystore.store import Store
from proxystore.store.config import StoreConfig
from proxystore.store.factory import StoreFactory
from proxystore.utils.imports import get_object_path, import_from_path

from serdoctor.errors import ProxyResolutionError
from serdoctor.serialize.proxy._codec import StoredObjectError, default_class, load_object

__all__ = [
    "LazyProxy",
    "ProxyFactory",
    "default_store",
    "key_from_wire",
    "key_text",
    "key_to_wire",
    "note_local_store",
    "store_for",
    "store_spec",
]

# --------------------------------------------------------------------------- default store

_default_lock = threading.Lock()
_default: tuple[int, Store[Any]] | None = None


def _close_default(store: Store[Any], owner: int) -> None:
    if os.getpid() == owner:  # a forked child must not remove its parent's store
        store.close()


def default_store() -> Store[Any]:
    """This process's default store: a ``FileConnector`` in a private temp directory.

    Created on first call (``mkdtemp``, mode 0700), removed at interpreter exit.
    A forked child gets its own on first use.
    """
    global _default
    with _default_lock:
        pid = os.getpid()
        if _default is None or _default[0] != pid:
            directory = tempfile.mkdtemp(prefix="serdoctor-proxy-")
            store: Store[Any] = Store(
                f"serdoctor-default-{pid}-{uuid.uuid4().hex[:8]}",
                FileConnector(directory, clear=True),
                cache_size=0,
            )
            atexit.register(_close_default, store, pid)
            _default = (pid, store)
            note_local_store(store)
        return _default[1]


# --------------------------------------------------------------------------- specs

_local_stores: weakref.WeakValueDictionary[str, Store[Any]] = weakref.WeakValueDictionary()
_remote_stores: dict[str, Store[Any]] = {}
_remote_lock = threading.Lock()
_REMOTE_LIMIT = 256
_PLAIN_REDIS = "proxystore.connectors.redis.RedisConnector"


def note_local_store(store: Store[Any]) -> None:
    """Remember ``store`` so payloads loaded in this process resolve through it."""
    _local_stores[store.name] = store


def store_spec(store: Store[Any]) -> dict[str, Any]:
    """The plain-data description of ``store`` that travels in every pid.

    Serializer/deserializer hooks, metrics and auto-registration are dropped:
    serdoctor serializes proxied objects itself, and receivers never register.
    """
    spec = store.config().model_dump()
    spec.update(serializer=None, deserializer=None, metrics=False, auto_register=False)
    return spec


def connector_text(spec: dict[str, Any]) -> str:
    """``FileConnector at /tmp/x`` / ``RedisConnector at 127.0.0.1:6379`` for messages."""
    connector = spec.get("connector") or {}
    kind = str(connector.get("kind", "?")).rpartition(".")[2]
    options = connector.get("options") or {}
    if "store_dir" in options:
        return f"{kind} at {options['store_dir']}"
    if "hostname" in options:
        return f"{kind} at {options['hostname']}:{options.get('port')}"
    return kind


def key_text(key: Any) -> str:
    """A key as text: the single field of ProxyStore's one-field key tuples."""
    if isinstance(key, tuple) and len(key) == 1:
        return str(key[0])
    return str(key)


def key_to_wire(key: Any) -> tuple[str | None, Any]:
    """A connector key as plain data: ``(class path, fields)`` for ProxyStore's NamedTuple keys.

    Keeps key classes out of the pickle (and out of the payload's requirements).
    """
    tp = type(key)
    if isinstance(key, tuple) and tp is not tuple and hasattr(tp, "_fields"):
        return get_object_path(tp), tuple(key)
    return None, key


def key_from_wire(key_type: str | None, fields: Any) -> Any:
    """Rebuild a key from :func:`key_to_wire`'s output (imports the key class)."""
    if key_type is None:
        return fields
    return import_from_path(key_type)(*fields)


def _build_store(spec: dict[str, Any], key: Any) -> Store[Any]:
    config = StoreConfig.model_validate(spec)
    kind = config.connector.kind
    options = config.connector.options
    if kind == get_object_path(FileConnector) and not os.path.isdir(options.get("store_dir", "")):
        # FileConnector() would silently create an empty directory here.
        raise ProxyResolutionError(
            f"cannot resolve proxied object with key {key_text(key)!r}: store "
            f"{config.name!r} ({connector_text(spec)}) does not exist any more. The directory "
            "was removed: its store was closed, or the sending interpreter exited (the default "
            "store lives as long as the process that made the payload). Resolve proxies "
            "while the sender is alive, or give ProxyPolicy a store that outlives it."
        )
    store: Store[Any] = Store.from_config(config)
    if kind == _PLAIN_REDIS and hasattr(store.connector, "_redis_client"):
        # ProxyStore's own RedisConnector has no timeouts: a frozen server would hang us.
        from serdoctor.serialize.proxy._redis import REDIS_TIMEOUT, bounded_redis_client

        connector = store.connector
        connector._redis_client = bounded_redis_client(
            connector.hostname, connector.port, REDIS_TIMEOUT
        )
    return store


def store_for(spec: dict[str, Any], key: Any = None) -> Store[Any]:
    """The store a pid's ``spec`` names: the sender's own instance, or one built here."""
    local = _local_stores.get(spec.get("name", ""))
    if local is not None:
        return local
    ident = json.dumps(spec, sort_keys=True, default=repr)
    with _remote_lock:
        store = _remote_stores.get(ident)
        if store is None:
            store = _remote_stores[ident] = _build_store(spec, key)
            if len(_remote_stores) > _REMOTE_LIMIT:  # e.g. many short-lived senders
                _close_client(_remote_stores.pop(next(iter(_remote_stores))))
        return store


# --------------------------------------------------------------------------- factory + proxy


class ProxyFactory(StoreFactory[Any, Any]):
    """Fetches one proxied object; every failure becomes :class:`ProxyResolutionError`.

    A ProxyStore ``StoreFactory`` (so ``proxystore.store.get_store(proxy)`` and
    ``proxystore.store.utils.get_key(proxy)`` work) that resolves through
    :func:`store_for` and never registers stores globally.
    """

    def __init__(
        self,
        key: Any,
        spec: dict[str, Any],
        kind: str,
        type_name: str,
        size: int,
        meta: Any = None,
    ) -> None:
        super().__init__(key, StoreConfig.model_validate(spec))
        self.spec = spec
        self.kind = kind
        self.meta = meta
        self.type_name = type_name
        self.size = size

    def get_store(self) -> Store[Any]:
        """The store this proxy's object lives in (built from the spec if needed)."""
        return store_for(self.spec, self.key)

    def _fail(self, why: str, todo: str) -> ProxyResolutionError:
        return ProxyResolutionError(
            f"cannot resolve proxied {self.type_name} ({self.size} bytes) with key "
            f"{key_text(self.key)!r} from store {self.spec.get('name')!r} "
            f"({connector_text(self.spec)}): {why}; {todo}"
        )

    def resolve(self) -> Any:
        """Fetch and rebuild the object (called once, on the proxy's first use)."""
        store = self.get_store()
        try:
            data = store.connector.get(self.key)
        except ProxyResolutionError:
            raise
        except Exception as exc:
            unreachable = type(exc).__module__.startswith("redis") or isinstance(exc, OSError)
            raise self._fail(
                f"the store is unreachable ({type(exc).__name__}: {exc})"
                if unreachable
                else f"reading it failed ({type(exc).__name__}: {exc})",
                "check that the store's server is running and reachable from this process",
            ) from exc
        if data is None:
            gone = isinstance(store.connector, FileConnector) and not os.path.isdir(
                store.connector.store_dir
            )
            raise self._fail(
                "the store directory was removed (the store was closed or its process exited)"
                if gone
                else "the key is not in the store (evicted when its proxy scope ended, "
                "or the store was cleared)",
                "resolve proxies before the sender's scope ends or the store is closed",
            )
        try:
            return load_object(self.kind, data, self.meta)
        except StoredObjectError as exc:
            raise self._fail(str(exc), "only trusted processes may write to the store") from exc
        except Exception as exc:
            raise self._fail(
                f"the stored bytes could not be rebuilt ({type(exc).__name__}: {exc})",
                "load it where the modules its pickle needs are installed",
            ) from exc

    def __call__(self) -> Any:
        return self.resolve()


class LazyProxy(Proxy[Any]):
    """A ProxyStore ``Proxy`` whose resolution errors are :class:`ProxyResolutionError`.

    (ProxyStore's own ``Proxy`` wraps factory errors in its ``ProxyResolveError``.)
    Behaves like the target object; ``isinstance(p, bytes)`` does not resolve
    a proxy of an exact ``bytes``/``bytearray``/``str``.
    """

    __slots__ = ()

    @property
    def __proxy_wrapped__(self) -> Any:
        try:
            return object.__getattribute__(self, "__proxy_target__")
        except AttributeError:
            pass
        factory = object.__getattribute__(self, "__proxy_factory__")
        target = factory()
        object.__setattr__(self, "__proxy_target__", target)
        return target

    @__proxy_wrapped__.setter
    def __proxy_wrapped__(self, target: Any) -> None:
        object.__setattr__(self, "__proxy_target__", target)

    @__proxy_wrapped__.deleter
    def __proxy_wrapped__(self) -> None:
        object.__delattr__(self, "__proxy_target__")

    def __reduce__(self) -> Any:
        factory = object.__getattribute__(self, "__proxy_factory__")
        return make_lazy_proxy, (factory,)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.__reduce__()


def make_lazy_proxy(factory: ProxyFactory) -> LazyProxy:
    """Wrap ``factory`` in an unresolved :class:`LazyProxy` (also the unpickling hook)."""
    proxy = LazyProxy(factory)
    default = default_class(getattr(factory, "kind", ""), getattr(factory, "type_name", ""))
    object.__setattr__(proxy, "__proxy_default_class__", default)
    return proxy


def close_remote_stores() -> None:
    """Forget the stores this process built for receiving (tests; connection hygiene)."""
    with _remote_lock:
        stores = list(_remote_stores.values())
        _remote_stores.clear()
    for store in stores:
        _close_client(store)


def _close_client(store: Store[Any]) -> None:
    client = getattr(store.connector, "_redis_client", None)
    if client is not None:
        client.close()

"""Lifetimes of proxied objects: :class:`ProxyScope` and :func:`proxy_scope`.

A scope is per context (a ``ContextVar``), not per policy, and scopes nest: an
object belongs to the innermost scope active when it was put in its store.
Outside any scope an object stays until its store is closed (the default
store: at interpreter exit).
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from proxystore.store import Store

__all__ = ["ProxyEntry", "ProxyScope", "current_scope", "proxy_scope"]


@dataclass(frozen=True)
class ProxyEntry:
    """One proxied object: where it was in the payload and where it went."""

    path: str  #: ``['payload'].data[3]``; ``""`` is the payload object itself
    size: int  #: bytes written to the store
    type_name: str  #: ``bytes``, ``numpy.ndarray``, ``mylab.Frame``
    store: str  #: ProxyStore store name
    key: str  #: key in that store, as text
    connector: str  #: ``FileConnector at /tmp/serdoctor-proxy-x1y2``

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the envelope header and ``explain().to_dict()`` use it)."""
        return {
            "path": self.path,
            "size": self.size,
            "type": self.type_name,
            "store": self.store,
            "key": self.key,
            "connector": self.connector,
        }


class ProxyScope:
    """The objects stored while a :func:`proxy_scope` was active; :meth:`evict` removes them.

    Thread-safe.  ``evict`` may be called more than once (each call removes what
    was added since); the executor calls it when a task's future resolves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[Store[Any], Any, ProxyEntry]] = []

    def add(self, store: Store[Any], key: Any, entry: ProxyEntry) -> None:
        """Tie ``key`` in ``store`` to this scope."""
        with self._lock:
            self._items.append((store, key, entry))

    @property
    def entries(self) -> list[ProxyEntry]:
        """The objects held by this scope and not yet evicted."""
        with self._lock:
            return [entry for _, _, entry in self._items]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def evict(self) -> list[ProxyEntry]:
        """Evict every object of this scope from its store.

        Best effort: returns (and warns about, with a ``RuntimeWarning``) the
        entries whose store could not be reached; they stay in their store.
        Proxies of evicted objects that were not resolved yet fail with
        :class:`~serdoctor.errors.ProxyResolutionError` on first use.
        """
        with self._lock:
            items, self._items = self._items, []
        failed: list[ProxyEntry] = []
        errors: list[str] = []
        for store, key, entry in items:
            try:
                store.evict(key)
            except Exception as exc:
                failed.append(entry)
                errors.append(f"{entry.key} in {entry.store!r} ({type(exc).__name__}: {exc})")
        if failed:
            warnings.warn(
                f"could not evict {len(failed)} proxied object(s) when their scope ended: "
                f"{'; '.join(errors[:3])}. They stay in the store until it is cleared; check "
                "that the store's server is reachable.",
                RuntimeWarning,
                stacklevel=2,
            )
        return failed


_current_scope: ContextVar[ProxyScope | None] = ContextVar("serdoctor_proxy_scope", default=None)


@contextlib.contextmanager
def proxy_scope(*, evict: bool = True) -> Iterator[ProxyScope]:
    """Collect the objects proxied in this context; evict them when the block ends.

    With ``evict=False`` the scope only collects, and the caller evicts later
    with :meth:`ProxyScope.evict` (e.g. when a task's future resolves).
    """
    scope = ProxyScope()
    token = _current_scope.set(scope)
    try:
        yield scope
    finally:
        _current_scope.reset(token)
        if evict:
            scope.evict()


def current_scope() -> ProxyScope | None:
    """The innermost active scope in this context, if any."""
    return _current_scope.get()

"""Proxy references: large objects travel as lazy ProxyStore proxies.

``_policy`` decides what is proxied and writes the persistent ids, ``_walk``
finds the candidates and their paths, ``_scope`` evicts what a scope stored,
``_store`` holds the stores and the lazy proxies, ``_codec`` the stored
objects' format, and ``_redis`` a Redis store. ProxyStore is imported only
when a name here is first used, so ``import serdoctor`` stays light. See
docs/proxies.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serdoctor._lazy import lazy_attributes

__all__ = [
    "ProxyPlan",
    "ProxyPolicy",
    "ProxyScope",
    "load_persistent",
    "proxy_scope",
    "redis_store",
]

if TYPE_CHECKING:
    from serdoctor.serialize.proxy._policy import ProxyPlan, ProxyPolicy, load_persistent
    from serdoctor.serialize.proxy._redis import redis_store
    from serdoctor.serialize.proxy._scope import ProxyScope, proxy_scope

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "ProxyPlan": "serdoctor.serialize.proxy._policy",
        "ProxyPolicy": "serdoctor.serialize.proxy._policy",
        "load_persistent": "serdoctor.serialize.proxy._policy",
        "ProxyScope": "serdoctor.serialize.proxy._scope",
        "proxy_scope": "serdoctor.serialize.proxy._scope",
        "redis_store": "serdoctor.serialize.proxy._redis",
    },
    __all__,
)

"""The serializer stack: methods, selection, envelope, environment checks.

See :class:`Serializer` for the whole story; :func:`dumps`, :func:`loads` and
:func:`explain` use a default instance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serdoctor.serialize._checks import EnvironmentMismatchWarning
from serdoctor.serialize._classify import CodeDecision
from serdoctor.serialize._envelope import FORMAT_VERSION, MAGIC, Header
from serdoctor.serialize._environment import Difference, Environment, EnvironmentDiff, environment
from serdoctor.serialize._explain import Attempt, Explanation
from serdoctor.serialize._methods import (
    DumpContext,
    LoadContext,
    Method,
    register_method,
    registry,
)
from serdoctor.serialize._remote_exc import (
    RemoteBaseException,
    RemoteChainTruncated,
    RemoteException,
)
from serdoctor.serialize._serializer import (
    Serializer,
    default_serializer,
    dumps,
    explain,
    loads,
)

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "Attempt",
    "CodeDecision",
    "Difference",
    "DumpContext",
    "Environment",
    "EnvironmentDiff",
    "EnvironmentMismatchWarning",
    "Explanation",
    "Header",
    "LoadContext",
    "Method",
    "ProxyPlan",
    "ProxyPolicy",
    "ProxyScope",
    "RemoteBaseException",
    "RemoteChainTruncated",
    "RemoteException",
    "Serializer",
    "default_serializer",
    "dumps",
    "environment",
    "explain",
    "loads",
    "redis_store",
    "register_method",
    "registry",
]

# ProxyStore (and redis) load only when proxies are used: `import serdoctor` stays light.
_LAZY = {
    "ProxyPlan": "serdoctor.serialize._proxy",
    "ProxyPolicy": "serdoctor.serialize._proxy",
    "ProxyScope": "serdoctor.serialize._proxy_scope",
    "redis_store": "serdoctor.serialize._proxy_redis",
}

if TYPE_CHECKING:
    from serdoctor.serialize._proxy import ProxyPlan, ProxyPolicy
    from serdoctor.serialize._proxy_redis import redis_store
    from serdoctor.serialize._proxy_scope import ProxyScope


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'serdoctor.serialize' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

"""The serializer stack: methods, selection, envelope, environment checks.

See :class:`Serializer` for the whole story; :func:`dumps`, :func:`loads` and
:func:`explain` use a default instance (:func:`default_serializer`).

What this package exports is the stack's public surface. The envelope's
constants and header (``_envelope``), the method registry (``_methods``) and
the other private modules are for serdoctor's own packages and tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serdoctor._lazy import lazy_attributes
from serdoctor.serialize._checks import EnvironmentMismatchWarning
from serdoctor.serialize._classify import CodeDecision
from serdoctor.serialize._environment import Difference, Environment, EnvironmentDiff, environment
from serdoctor.serialize._explain import Attempt, Explanation
from serdoctor.serialize._methods import DumpContext, LoadContext, Method, register_method
from serdoctor.serialize._serializer import (
    Serializer,
    default_serializer,
    dumps,
    explain,
    loads,
)
from serdoctor.serialize.exceptions import (
    RemoteBaseException,
    RemoteChainTruncated,
    RemoteException,
)

__all__ = [
    "Attempt",
    "CodeDecision",
    "Difference",
    "DumpContext",
    "Environment",
    "EnvironmentDiff",
    "EnvironmentMismatchWarning",
    "Explanation",
    "LoadContext",
    "Method",
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
]

if TYPE_CHECKING:
    from serdoctor.serialize.proxy import ProxyPolicy, ProxyScope, redis_store

# ProxyStore (and redis) load only when proxies are used: `import serdoctor` stays light.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "ProxyPolicy": "serdoctor.serialize.proxy",
        "ProxyScope": "serdoctor.serialize.proxy",
        "redis_store": "serdoctor.serialize.proxy",
    },
    __all__,
)

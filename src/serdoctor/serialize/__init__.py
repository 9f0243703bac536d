"""The serializer stack: methods, selection, envelope, environment checks.

See :class:`Serializer` for the whole story; :func:`dumps`, :func:`loads` and
:func:`explain` use a default instance.
"""

from __future__ import annotations

from serdoctor.serialize._classify import CodeDecision
from serdoctor.serialize._envelope import FORMAT_VERSION, MAGIC, Header
from serdoctor.serialize._environment import Difference, Environment, EnvironmentDiff, environment
from serdoctor.serialize._explain import Attempt, Explanation
from serdoctor.serialize._remote_exc import (
    RemoteBaseException,
    RemoteChainTruncated,
    RemoteException,
)
from serdoctor.serialize._methods import (
    DumpContext,
    LoadContext,
    Method,
    register_method,
    registry,
)
from serdoctor.serialize._serializer import (
    EnvironmentMismatchWarning,
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
    "RemoteBaseException",
    "RemoteChainTruncated",
    "RemoteException",
    "Serializer",
    "default_serializer",
    "dumps",
    "environment",
    "explain",
    "loads",
    "register_method",
    "registry",
]

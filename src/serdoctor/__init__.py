"""serdoctor: move Python objects between processes, machines and runs, safely.

The serializer stack (:func:`dumps`, :func:`loads`, :func:`explain`,
:class:`Serializer`) records how every function and class travels and checks
the environment before anything is unpickled. See ``docs/`` for the guide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serdoctor import errors
from serdoctor._lazy import lazy_attributes
from serdoctor._version import __version__
from serdoctor.errors import (
    DependencyError,
    DeserializationError,
    IncompatiblePythonError,
    ManagerLost,
    MemoKeyError,
    MissingModuleError,
    SerdoctorError,
    SerializationError,
    SignatureError,
    TaskTimeout,
    UnsafePayloadError,
    WorkerLost,
)
from serdoctor.serialize import (
    Environment,
    EnvironmentDiff,
    EnvironmentMismatchWarning,
    Explanation,
    Method,
    RemoteBaseException,
    RemoteException,
    Serializer,
    dumps,
    environment,
    explain,
    loads,
    register_method,
)

__all__ = [
    "Checkpoint",
    "DependencyError",
    "DeserializationError",
    "Environment",
    "EnvironmentDiff",
    "EnvironmentMismatchWarning",
    "Executor",
    "Explanation",
    "IncompatiblePythonError",
    "ManagerLost",
    "MemoKeyError",
    "Method",
    "MissingModuleError",
    "ProxyPolicy",
    "ProxyScope",
    "RemoteBaseException",
    "RemoteException",
    "SerdoctorError",
    "SerializationError",
    "Serializer",
    "SignatureError",
    "TaskTimeout",
    "UnsafePayloadError",
    "WorkerLost",
    "__version__",
    "check",
    "dumps",
    "environment",
    "errors",
    "explain",
    "loads",
    "memo_key",
    "progress",
    "register_method",
]

if TYPE_CHECKING:
    from serdoctor.checkpoint import Checkpoint, memo_key
    from serdoctor.diagnostics import check
    from serdoctor.execute import Executor
    from serdoctor.monitor import progress
    from serdoctor.serialize import ProxyPolicy, ProxyScope

# ProxyStore and the doctor load only when used: `import serdoctor` stays light.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "ProxyPolicy": "serdoctor.serialize",
        "ProxyScope": "serdoctor.serialize",
        "Executor": "serdoctor.execute",
        "Checkpoint": "serdoctor.checkpoint",
        "memo_key": "serdoctor.checkpoint",
        "check": "serdoctor.diagnostics",
        "progress": "serdoctor.monitor",
    },
    __all__,
)

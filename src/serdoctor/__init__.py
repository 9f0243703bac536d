"""serdoctor: move Python objects between processes, machines and runs, safely.

The serializer stack (:func:`dumps`, :func:`loads`, :func:`explain`,
:class:`Serializer`) records how every function and class travels and checks
the environment before anything is unpickled. See ``docs/`` for the guide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from serdoctor import errors
from serdoctor.errors import (
    DeserializationError,
    IncompatiblePythonError,
    MissingModuleError,
    SerdoctorError,
    SerializationError,
    SignatureError,
    UnsafePayloadError,
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
    "DeserializationError",
    "Environment",
    "EnvironmentDiff",
    "EnvironmentMismatchWarning",
    "Explanation",
    "IncompatiblePythonError",
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
    "UnsafePayloadError",
    "__version__",
    "check",
    "dumps",
    "environment",
    "errors",
    "explain",
    "loads",
    "register_method",
]

if TYPE_CHECKING:
    from serdoctor.diagnostics._check import check
    from serdoctor.serialize import ProxyPolicy, ProxyScope


def __getattr__(name: str) -> Any:
    # ProxyStore loads only when proxies are used: `import serdoctor` stays light.
    if name in ("ProxyPolicy", "ProxyScope"):
        from serdoctor import serialize

        value = getattr(serialize, name)
        globals()[name] = value
        return value
    if name == "check":  # the doctor loads only when asked for
        from serdoctor.diagnostics._check import check

        globals()["check"] = check
        return check
    raise AttributeError(f"module 'serdoctor' has no attribute {name!r}")

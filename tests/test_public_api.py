"""The public surface is small, sorted and pinned."""

from __future__ import annotations

import serdoctor

EXPECTED = [
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


def test_all_is_pinned_and_sorted() -> None:
    assert serdoctor.__all__ == EXPECTED
    assert serdoctor.__all__ == sorted(serdoctor.__all__)
    for name in serdoctor.__all__:
        assert hasattr(serdoctor, name), name


def test_public_callables_are_documented() -> None:
    for name in serdoctor.__all__:
        obj = getattr(serdoctor, name)
        if callable(obj):
            assert obj.__doc__, f"serdoctor.{name} has no docstring"

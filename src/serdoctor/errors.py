"""The errors serdoctor raises.

Every error derives from :class:`SerdoctorError`. Where a standard-library
error already means the same thing, serdoctor's error derives from it too, so
``except pickle.PicklingError`` or ``except ImportError`` clauses written for
plain pickle keep working::

    SerdoctorError
    ├── SerializationError          (also pickle.PicklingError)
    │     nothing in the stack could turn an object into bytes
    ├── DeserializationError        (also pickle.UnpicklingError)
    │   │ the bytes are not a payload we can load
    │   ├── MissingModuleError      (also ImportError, ModuleNotFoundError)
    │   │     the payload needs a module that is not importable here
    │   ├── IncompatiblePythonError
    │   │     by-value code made by another Python major.minor
    │   ├── EnvironmentMismatchError
    │   │     a distribution version differs (``on_mismatch="error"``)
    │   ├── SignatureError
    │   │     HMAC tag missing, wrong or made with another key
    │   └── UnsafePayloadError
    │         the payload's method is not in ``allow=``
    ├── RegistryError               (also ValueError)
    │     a method name is taken, unknown, or a plugin is malformed
    ├── ProxyResolutionError        (also LookupError)
    │     a proxied object's store or key is gone
    ├── InspectError
    │     ``ser-doctor inspect`` could not read the input
    ├── WorkerLost                  (also concurrent.futures.BrokenExecutor)
    │     the worker process running a task died (signal, exit, out of memory)
    ├── ManagerLost                 (also concurrent.futures.BrokenExecutor)
    │     a whole worker pool stopped answering; its tasks were lost
    ├── InterchangeLost             (also concurrent.futures.BrokenExecutor)
    │     the executor's interchange process died or stopped answering
    ├── TaskTimeout                 (also TimeoutError)
    │     a task ran longer than its walltime; its worker was replaced
    ├── DependencyError
    │     a task this task depends on failed (``chain`` names the tasks)
    ├── MemoKeyError                (also TypeError)
    │     a task argument has no stable memo key (register one with memo_key)
    ├── CheckpointError
    │     a checkpoint store cannot be opened (not a store, newer, locked)
    ├── BlockError
    │     a batch system refused or lost the blocks that run the worker pools
    └── MonitorError
          a monitoring database cannot be read (not one, newer schema, locked)
"""

from __future__ import annotations

import pickle
from concurrent.futures import BrokenExecutor

__all__ = [
    "BlockError",
    "CheckpointError",
    "DependencyError",
    "DeserializationError",
    "EnvironmentMismatchError",
    "IncompatiblePythonError",
    "InspectError",
    "InterchangeLost",
    "ManagerLost",
    "MemoKeyError",
    "MissingModuleError",
    "MonitorError",
    "ProxyResolutionError",
    "RegistryError",
    "SerdoctorError",
    "SerializationError",
    "SignatureError",
    "TaskTimeout",
    "UnsafePayloadError",
    "WorkerLost",
]


class SerdoctorError(Exception):
    """Root of every error serdoctor raises."""


class SerializationError(SerdoctorError, pickle.PicklingError):
    """No method in the stack could serialize the object.

    ``path`` names the offending sub-object (``args[1]['pool']._lock``) and
    ``type_name`` its type, when they are known.
    """

    def __init__(self, message: str, *, path: str | None = None, type_name: str | None = None):
        """Say what failed; ``path`` and ``type_name`` locate the sub-object to blame."""
        super().__init__(message)
        self.path = path
        self.type_name = type_name


class DeserializationError(SerdoctorError, pickle.UnpicklingError):
    """The bytes could not be loaded: malformed, refused, or failed while loading."""


class MissingModuleError(DeserializationError, ModuleNotFoundError):
    """The payload needs a module that cannot be imported where it is loaded."""

    def __init__(self, message: str, *, module: str, sender_version: str | None = None):
        """Name the missing ``module`` and its version where the payload was made."""
        DeserializationError.__init__(self, message)
        self.name = module
        self.module = module
        self.sender_version = sender_version

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with the keyword-only fields (the default would lose them)."""
        return (_rebuild_missing, (str(self), self.module, self.sender_version))


def _rebuild_missing(message: str, module: str, sender_version: str | None) -> MissingModuleError:
    return MissingModuleError(message, module=module, sender_version=sender_version)


class IncompatiblePythonError(DeserializationError):
    """By-value code made by one Python major.minor cannot run on another."""


class EnvironmentMismatchError(DeserializationError):
    """A distribution the payload needs has another version here (``on_mismatch="error"``)."""


class SignatureError(DeserializationError):
    """The payload's HMAC tag is missing, wrong, or made with another key."""


class UnsafePayloadError(DeserializationError):
    """The payload was made by a method that ``allow=`` does not accept."""


class RegistryError(SerdoctorError, ValueError):
    """A serializer method is registered twice, unknown, or malformed."""


class ProxyResolutionError(SerdoctorError, LookupError):
    """A proxied object could not be fetched from its store."""


class InspectError(SerdoctorError):
    """``ser-doctor inspect`` could not read its input."""


class BlockError(SerdoctorError):
    """A block (a batch job running worker pools) was refused, failed, or cannot be started."""


class MonitorError(SerdoctorError):
    """A monitoring database cannot be opened: not one, from a newer serdoctor, or locked."""


class WorkerLost(SerdoctorError, BrokenExecutor):
    """The worker process running the task died; the message names the signal or exit code.

    ``exit_status`` is the raw ``waitpid`` status when it is known.
    """

    def __init__(self, message: str, *, exit_status: int | None = None) -> None:
        """Say how the worker ended."""
        super().__init__(message)
        self.exit_status = exit_status


class ManagerLost(SerdoctorError, BrokenExecutor):
    """A whole worker pool stopped answering (host down, network gone, SIGSTOP)."""


class InterchangeLost(SerdoctorError, BrokenExecutor):
    """The executor's interchange process died or stopped answering."""


class TaskTimeout(SerdoctorError, TimeoutError):
    """The task ran longer than its walltime; its worker was killed and replaced."""


class DependencyError(SerdoctorError):
    """A task this task depends on failed.

    ``chain`` lists the task descriptions from this task back to the one that
    failed first; ``__cause__`` is that task's exception.
    """

    def __init__(self, message: str, *, chain: tuple[str, ...] = ()) -> None:
        """Name the failed dependency; ``chain`` runs from this task to the first failure."""
        super().__init__(message)
        self.chain = chain


class MemoKeyError(SerdoctorError, TypeError):
    """A value has no stable memo key; the message shows how to register one.

    ``argument`` names the task argument, when known.
    """

    def __init__(
        self, message: str, *, type_name: str | None = None, argument: str | None = None
    ) -> None:
        """Say which type (and argument) has no key."""
        super().__init__(message)
        self.type_name = type_name
        self.argument = argument


class CheckpointError(SerdoctorError):
    """A checkpoint store cannot be used: not a store, from a newer serdoctor, or locked."""

"""What the executor asks of a checkpoint store (``Executor(checkpoint=...)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class TaskMemo(Protocol):
    """A store of task results keyed by the function and its resolved arguments.

    ``serdoctor.Checkpoint`` is one. The executor calls :meth:`lookup` after a
    task's dependencies have resolved and before anything is sent: a hit
    completes the future at once. It calls :meth:`record` when a task succeeds.
    """

    def lookup(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[bool, Any]:
        """``(True, value)`` when the result is stored, else ``(False, None)``."""

    def record(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], value: Any
    ) -> None:
        """Store the result of a task that succeeded."""

"""The checkpoint store: task results that survive across runs.

:class:`Checkpoint` keeps results in SQLite keyed by task identity
(:func:`memo_key` of the bound arguments + the function's code);
``@checkpoint.memoize`` and ``Executor(checkpoint=...)`` use it. See
``docs/checkpoint.md``.
"""

from __future__ import annotations

from serdoctor.checkpoint._keys import arguments_key, function_identity, memo_key
from serdoctor.checkpoint._store import (
    Checkpoint,
    CheckpointMismatchWarning,
    StoredResult,
)

__all__ = [
    "Checkpoint",
    "CheckpointMismatchWarning",
    "StoredResult",
    "arguments_key",
    "function_identity",
    "memo_key",
]

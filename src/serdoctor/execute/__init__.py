"""The executor: tasks through serdoctor's stack, on worker pools over ZeroMQ.

:class:`Executor` is a :class:`concurrent.futures.Executor`; see
``docs/executor.md`` for the architecture, the faults it survives and what
the user sees for each, remote pools and security. ``providers`` start pools
as blocks (local processes, Slurm jobs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serdoctor._lazy import lazy_attributes

if TYPE_CHECKING:
    from serdoctor.execute._client import Executor, PoolInfo, TaskInfo
    from serdoctor.execute._deps import find_futures, replace_futures
    from serdoctor.execute._memo import TaskMemo
    from serdoctor.execute._scaling import BlockInfo
    from serdoctor.execute.providers import LocalProvider, SlurmProvider

__all__ = [
    "BlockInfo",
    "Executor",
    "LocalProvider",
    "PoolInfo",
    "SlurmProvider",
    "TaskInfo",
    "TaskMemo",
    "find_futures",
    "replace_futures",
]

# Lazy (PEP 562): the interchange and pool processes import modules of this
# package, and need none of the client's.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "Executor": "._client",
        "PoolInfo": "._client",
        "TaskInfo": "._client",
        "find_futures": "._deps",
        "replace_futures": "._deps",
        "TaskMemo": "._memo",
        "BlockInfo": "._scaling",
        "LocalProvider": ".providers",
        "SlurmProvider": ".providers",
    },
    __all__,
)

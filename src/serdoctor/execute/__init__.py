"""The executor: tasks through serdoctor's stack, on worker pools over ZeroMQ.

:class:`Executor` is a :class:`concurrent.futures.Executor`; see
``docs/executor.md`` for the architecture, the faults it survives and what
the user sees for each, remote pools and security. ``providers`` start pools
as blocks (local processes, Slurm jobs).
"""

from __future__ import annotations

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

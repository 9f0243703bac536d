"""Providers start and stop *blocks*: batch jobs that run worker pools.

``LocalProvider`` runs blocks as local processes (laptops, tests);
``SlurmProvider`` submits them with ``sbatch``. Both follow the
:class:`Provider` protocol, so a site can add its own.
"""

from __future__ import annotations

from serdoctor.execute.providers._base import BlockState, BlockStatus, Provider, walltime_seconds
from serdoctor.execute.providers._local import LocalProvider
from serdoctor.execute.providers._slurm import SlurmProvider

__all__ = [
    "BlockState",
    "BlockStatus",
    "LocalProvider",
    "Provider",
    "SlurmProvider",
    "walltime_seconds",
]

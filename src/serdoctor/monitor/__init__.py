"""Monitoring: every task, try, pool and block of a run, recorded in SQLite and shown.

``Executor(monitoring="runinfo/monitoring.db")`` records through a
:class:`MonitorWriter`; ``ser-doctor runs``, ``tasks`` and ``report`` read the
file back (:func:`list_runs`, :func:`list_tasks`, :func:`failure_causes`,
:func:`write_report`). The schema is in ``docs/monitoring.md``.
"""

from __future__ import annotations

from serdoctor.monitor._commands import run_report, run_runs, run_tasks
from serdoctor.monitor._progress import progress
from serdoctor.monitor._queries import (
    Cause,
    RunSummary,
    TaskRow,
    failure_causes,
    list_runs,
    list_tasks,
)
from serdoctor.monitor._report import write_report
from serdoctor.monitor._schema import SCHEMA_VERSION, STATES
from serdoctor.monitor._writer import MonitorWriter

__all__ = [
    "SCHEMA_VERSION",
    "STATES",
    "Cause",
    "MonitorWriter",
    "RunSummary",
    "TaskRow",
    "failure_causes",
    "list_runs",
    "list_tasks",
    "progress",
    "run_report",
    "run_runs",
    "run_tasks",
    "write_report",
]

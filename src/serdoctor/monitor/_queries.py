"""Reading the monitoring database: runs, tasks, and failures grouped by cause.

Each function opens the file read-only in spirit (it never writes), refuses a
file that is not a monitoring database with :class:`MonitorError`, and returns
plain dataclasses that the CLI renders or prints as JSON.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from serdoctor.errors import MonitorError
from serdoctor.monitor._causes import cause_key, remedy_for
from serdoctor.monitor._schema import connect


@dataclass(frozen=True)
class RunSummary:
    """One run: when, where, and how its tasks ended."""

    run_id: str
    started: float
    ended: float | None
    host: str | None
    python: str | None
    tasks: int
    done: int
    failed: int
    memo_hits: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class TaskRow:
    """One task's latest state and, when it failed, why."""

    run_id: str
    task_id: int
    fn: str | None
    status: str
    tries: int
    pool: str | None
    worker: str | None
    method: str | None
    seconds: float | None
    exc_type: str | None
    exc_message: str | None
    remedy: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class Cause:
    """Failed tasks that share a cause, with the remedy the stack knows."""

    cause: str
    count: int
    task_ids: list[int] = field(default_factory=list)
    remedy: str = ""
    example: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _open(path: str | Path) -> sqlite3.Connection:
    conn = connect(path, create=False)
    conn.row_factory = sqlite3.Row
    return conn


def _latest_run(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT run_id FROM runs ORDER BY started DESC LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def list_runs(path: str | Path, *, limit: int = 20) -> list[RunSummary]:
    """The most recent runs first, with counts of their tasks by outcome."""
    conn = _open(path)
    try:
        rows = conn.execute(
            """
            SELECT r.run_id, r.started, r.ended, r.host, r.python,
                   count(t.task_id) AS tasks,
                   coalesce(sum(t.status = 'done'), 0) AS done,
                   coalesce(sum(t.status = 'failed'), 0) AS failed,
                   coalesce(sum(t.status = 'memo_hit'), 0) AS memo_hits
            FROM runs r LEFT JOIN tasks t ON t.run_id = r.run_id
            GROUP BY r.run_id ORDER BY r.started DESC LIMIT ?
            """,
            (limit,),
        ).fetchall()
        return [RunSummary(**dict(row)) for row in rows]
    finally:
        conn.close()


def resolve_run(conn: sqlite3.Connection, run: str | None) -> str:
    """The run id ``run`` names (a unique prefix is enough), or the latest run."""
    if run is None:
        latest = _latest_run(conn)
        if latest is None:
            raise MonitorError("the monitoring database has no runs yet")
        return latest
    found = [
        r[0] for r in conn.execute("SELECT run_id FROM runs WHERE run_id LIKE ?", (run + "%",))
    ]
    if len(found) != 1:
        what = "no run" if not found else f"{len(found)} runs"
        raise MonitorError(f"{what} with id {run!r}: `ser-doctor runs DB` lists them")
    return str(found[0])


def list_tasks(
    path: str | Path, *, run: str | None = None, failed: bool = False, limit: int = 1000
) -> list[TaskRow]:
    """The tasks of ``run`` (the latest by default), each with its last try."""
    conn = _open(path)
    try:
        run_id = resolve_run(conn, run)
        rows = conn.execute(
            f"""
            SELECT t.run_id, t.task_id, t.fn, t.status, t.tries, y.pool, y.worker,
                   coalesce(y.method, t.method) AS method,
                   y.ended - coalesce(y.started, y.sent) AS seconds,
                   y.exc_type, y.exc_message, y.remedy
            FROM tasks t LEFT JOIN tries y
              ON y.run_id = t.run_id AND y.task_id = t.task_id AND y.try = (
                 SELECT max(try) FROM tries WHERE run_id = t.run_id AND task_id = t.task_id)
            WHERE t.run_id = ? {"AND t.status = 'failed'" if failed else ""}
            ORDER BY t.task_id LIMIT ?
            """,
            (run_id, limit),
        ).fetchall()
        return [TaskRow(**dict(row)) for row in rows]
    finally:
        conn.close()


def failure_causes(path: str | Path, *, run: str | None = None) -> list[Cause]:
    """Failed tasks of ``run`` grouped by cause, largest group first."""
    groups: dict[str, list[TaskRow]] = {}
    for task in list_tasks(path, run=run, failed=True, limit=1_000_000):
        key = cause_key(task.exc_type or "unknown", task.exc_message or "")
        groups.setdefault(key, []).append(task)
    causes = [
        Cause(
            cause=key,
            count=len(tasks),
            task_ids=[t.task_id for t in tasks[:20]],
            remedy=tasks[0].remedy or remedy_for(tasks[0].exc_type or ""),
            example=(tasks[0].exc_message or "")[:300],
        )
        for key, tasks in groups.items()
    ]
    return sorted(causes, key=lambda c: -c.count)

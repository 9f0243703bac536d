"""What ``ser-doctor runs``, ``tasks`` and ``report`` do, as plain functions.

Each takes the command's arguments, reads the monitoring database, renders
(rich tables, or JSON with ``--json``) and returns the exit code: 0, or 2 with
one clear line when the file is not a monitoring database, is newer than this
serdoctor, or is locked.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from serdoctor.errors import MonitorError
from serdoctor.monitor._queries import failure_causes, list_runs, list_tasks
from serdoctor.monitor._report import write_report


def _error(console: Console, exc: MonitorError) -> int:
    Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
    return 2


def _when(t: float | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def run_runs(db: str, *, json_output: bool, console: Console, limit: int = 20) -> int:
    """``ser-doctor runs DB``: the most recent runs and how their tasks ended."""
    try:
        runs = list_runs(db, limit=limit)
    except MonitorError as exc:
        return _error(console, exc)
    if json_output:
        sys.stdout.write(json.dumps([r.to_dict() for r in runs], indent=2) + "\n")
        return 0
    table = Table(title=f"runs in {db}")
    for column in (
        "run",
        "started",
        "seconds",
        "host",
        "Python",
        "tasks",
        "done",
        "failed",
        "memo",
    ):
        table.add_column(column)
    for r in runs:
        seconds = f"{r.ended - r.started:.1f}" if r.ended else "running"
        table.add_row(
            r.run_id, _when(r.started), seconds, r.host or "", r.python or "", str(r.tasks),
            str(r.done), str(r.failed), str(r.memo_hits),
            style="red" if r.failed else None,
        )  # fmt: skip
    console.print(table)
    return 0


def run_tasks(
    db: str, *, run: str | None, failed: bool, json_output: bool, console: Console
) -> int:
    """``ser-doctor tasks DB``: a run's tasks; with ``--failed``, failures grouped by cause."""
    try:
        tasks = list_tasks(db, run=run, failed=failed)
        causes = failure_causes(db, run=run) if failed else []
    except MonitorError as exc:
        return _error(console, exc)
    if json_output:
        data = {
            "tasks": [t.to_dict() for t in tasks],
            "causes": [c.to_dict() for c in causes],
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 0
    if failed:
        if not causes:
            console.print("no task failed", style="green")
        for cause in causes:
            console.print(f"[red]{cause.count} task(s)[/red]: {cause.cause}", highlight=False)
            if cause.remedy:
                console.print(f"  what to do: {cause.remedy}", highlight=False)
            ids = ", ".join(str(i) for i in cause.task_ids)
            console.print(f"  tasks: {ids}", style="dim", highlight=False)
        return 0
    table = Table(title=f"tasks of run {tasks[0].run_id if tasks else '-'}")
    for column in ("task", "function", "status", "tries", "pool / worker", "method", "seconds"):
        table.add_column(column)
    for t in tasks:
        table.add_row(
            str(t.task_id), t.fn or "", t.status, str(t.tries),
            f"{t.pool or '-'} / {t.worker or '-'}", t.method or "",
            "" if t.seconds is None else f"{t.seconds:.3f}",
            style="red" if t.status == "failed" else None,
        )  # fmt: skip
    console.print(table)
    return 0


def run_report(db: str, out: str, *, run: str | None, console: Console) -> int:
    """``ser-doctor report DB -o report.html``: write the self-contained HTML page."""
    try:
        path = write_report(db, out, run=run)
    except MonitorError as exc:
        return _error(console, exc)
    console.print(f"wrote {path} ({Path(path).stat().st_size // 1024} KiB)", highlight=False)
    return 0

"""What ``ser-doctor checkpoint ls|show|rm|gc`` do, as plain functions returning exit codes.

``show`` reads the stored payload with the static inspector: it never loads
(never executes) a stored result.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from serdoctor.checkpoint._store import Checkpoint
from serdoctor.errors import CheckpointError
from serdoctor.serialize._sizes import format_size


def _open(path: str) -> Checkpoint:
    from pathlib import Path

    if not Path(path).exists():
        raise CheckpointError(f"{path}: no such checkpoint store")
    return Checkpoint(path)


def _fail(exc: Exception) -> int:
    Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
    return 2


def _json(data: Any) -> int:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    return 0


def run_ls(
    path: str,
    *,
    function: str | None,
    older_than: float | None,
    larger_than: int | None,
    json_output: bool,
    console: Console,
) -> int:
    """List stored results (newest first) with their function, size and age."""
    try:
        with _open(path) as store:
            entries = store.entries(
                function=function, older_than=older_than, larger_than=larger_than
            )
    except CheckpointError as exc:
        return _fail(exc)
    if json_output:
        return _json([e.to_dict() for e in entries])
    table = Table(title=f"{len(entries)} results in {path}")
    for column in ("key", "function", "size", "age", "run", "kind"):
        table.add_column(column)
    now = time.time()
    for e in entries[:500]:
        table.add_row(
            e.task_key[:16], e.fn, format_size(e.size), f"{(now - e.created) / 3600:.1f} h",
            e.run_id, "exception" if e.failed else "result",
        )  # fmt: skip
    console.print(table)
    if len(entries) > 500:
        console.print(f"... and {len(entries) - 500} more (--json lists all)", style="dim")
    return 0


def run_show(path: str, key: str, *, json_output: bool, console: Console) -> int:
    """Inspect one stored payload statically (nothing is loaded or run)."""
    from serdoctor.diagnostics import inspect_bytes, render_report

    try:
        with _open(path) as store:
            payload = store.payload(key)
            (entry,) = [e for e in store.entries() if e.task_key.startswith(key)]
    except CheckpointError as exc:
        return _fail(exc)
    report = inspect_bytes(payload)
    if json_output:
        return _json({**entry.to_dict(), "inspect": report.to_dict()})
    console.print(f"{entry.fn}  ({entry.task_key}, {format_size(entry.size)})", highlight=False)
    console.print(render_report(report))
    return 0


def run_rm(path: str, keys: list[str], *, json_output: bool, console: Console) -> int:
    """Delete the results with these keys (or unique key prefixes)."""
    try:
        with _open(path) as store:
            full = [
                e.task_key for e in store.entries() if any(e.task_key.startswith(k) for k in keys)
            ]
            removed = store.remove(full)
    except CheckpointError as exc:
        return _fail(exc)
    if json_output:
        return _json({"removed": removed})
    console.print(f"removed {removed} result(s)")
    return 0


def run_gc(
    path: str, *, older_than: float | None, stale_code: bool, json_output: bool, console: Console
) -> int:
    """Delete old results, or those of functions whose code has changed since."""
    try:
        with _open(path) as store:
            removed = store.gc(older_than=older_than, stale_code=stale_code)
    except CheckpointError as exc:
        return _fail(exc)
    if json_output:
        return _json({"removed": removed})
    console.print(f"removed {removed} result(s)")
    return 0

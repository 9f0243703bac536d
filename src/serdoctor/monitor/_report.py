"""``ser-doctor report``: one self-contained HTML page of a run.

Four views, drawn with plotly (its JavaScript is inlined once, so the page
needs no server and no network): a timeline of tries per worker, tasks per
state over time, pool heartbeats, and a table of failures with their causes
and remedies.
"""

from __future__ import annotations

import html
import sqlite3
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from serdoctor.errors import MonitorError
from serdoctor.monitor._queries import failure_causes, list_tasks, resolve_run
from serdoctor.monitor._schema import STATES, connect

_COLOURS = {
    "done": "#2ca02c",
    "failed": "#d62728",
    "retried": "#ff7f0e",
    "running": "#1f77b4",
    "cancelled": "#7f7f7f",
    "memo_hit": "#9467bd",
    "queued": "#bcbd22",
    "sent": "#17becf",
}


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ModuleNotFoundError as exc:
        raise MonitorError(
            "ser-doctor report draws with plotly, which is not installed: "
            "pip install 'serdoctor[monitor]'"
        ) from exc
    return go


def _timeline(go: Any, conn: sqlite3.Connection, run_id: str, t0: float) -> Any:
    rows = conn.execute(
        """SELECT task_id, try, pool, worker, coalesce(started, sent) AS start, ended, exc_type
           FROM tries WHERE run_id = ? AND coalesce(started, sent) IS NOT NULL""",
        (run_id,),
    ).fetchall()
    by_outcome: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    now = time.time()
    for task_id, attempt, pool, worker, start, ended, exc_type in rows:
        outcome = "running" if ended is None else ("failed" if exc_type else "done")
        lane = f"{pool or '?'} / {worker or '?'}"
        series = by_outcome[outcome]
        series["y"].append(lane)
        series["base"].append(start - t0)
        series["x"].append(max((ended or now) - start, 1e-4))
        series["text"].append(
            f"task {task_id} try {attempt}" + (f": {exc_type}" if exc_type else "")
        )
    fig = go.Figure()
    for outcome, s in sorted(by_outcome.items()):
        fig.add_trace(
            go.Bar(
                name=outcome, orientation="h", y=s["y"], x=s["x"], base=s["base"],
                hovertext=s["text"], marker_color=_COLOURS.get(outcome),
            )
        )  # fmt: skip
    fig.update_layout(
        title="Tries per worker", barmode="overlay", xaxis_title="seconds since the run started",
        height=max(300, 40 * len({lane for s in by_outcome.values() for lane in s["y"]}) + 150),
    )  # fmt: skip
    return fig


def _states(go: Any, conn: sqlite3.Connection, run_id: str, t0: float) -> Any:
    events = conn.execute(
        "SELECT task_id, 'queued', submitted FROM tasks WHERE run_id = ? AND submitted IS NOT NULL "
        "UNION ALL SELECT task_id, status, time FROM status WHERE run_id = ? ORDER BY 3",
        (run_id, run_id),
    ).fetchall()
    current: dict[int, str] = {}
    counts: dict[str, int] = defaultdict(int)
    xs: list[float] = []
    ys: dict[str, list[int]] = {state: [] for state in STATES}
    for task_id, status, when in events:
        previous = current.get(task_id)
        if previous is not None:
            counts[previous] -= 1
        current[task_id] = status
        counts[status] += 1
        xs.append(when - t0)
        for state in STATES:
            ys[state].append(counts[state])
    fig = go.Figure()
    for state in STATES:
        if any(ys[state]):
            fig.add_trace(
                go.Scatter(
                    name=state, x=xs, y=ys[state], mode="lines", line_shape="hv",
                    line_color=_COLOURS.get(state),
                )
            )  # fmt: skip
    fig.update_layout(title="Tasks per state", xaxis_title="seconds", yaxis_title="tasks")
    return fig


def _heartbeats(go: Any, conn: sqlite3.Connection, run_id: str, t0: float) -> Any:
    fig = go.Figure()
    pools = conn.execute(
        "SELECT pool_id, host, python, lost FROM pools WHERE run_id = ?", (run_id,)
    ).fetchall()
    for pool_id, host, python, lost in pools:
        beats = conn.execute(
            "SELECT time, tasks_running FROM heartbeats WHERE run_id = ? AND pool_id = ? "
            "ORDER BY time",
            (run_id, pool_id),
        ).fetchall()
        label = f"{pool_id} ({host}, Python {python})" + (" LOST" if lost else "")
        fig.add_trace(
            go.Scatter(
                name=label, x=[b[0] - t0 for b in beats], y=[b[1] for b in beats],
                mode="lines+markers", line_shape="hv",
            )
        )  # fmt: skip
    fig.update_layout(
        title="Pool heartbeats (tasks running)", xaxis_title="seconds", yaxis_title="tasks"
    )
    return fig


def _failures_table(path: Path, run_id: str) -> str:
    causes = failure_causes(path, run=run_id)
    tasks = list_tasks(path, run=run_id, failed=True, limit=500)
    rows = [
        f"<tr class='cause'><td>{c.count}</td><td>{html.escape(c.cause)}</td>"
        f"<td>{html.escape(c.remedy)}</td></tr>"
        for c in causes
    ]
    task_rows = [
        "<tr class='failure'><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            t.task_id,
            html.escape(t.fn or ""),
            html.escape(t.exc_type or ""),
            html.escape((t.exc_message or "")[:300]),
            html.escape(f"{t.pool or '?'} / {t.worker or '?'}"),
        )
        for t in tasks
    ]
    if not tasks:
        return "<h2>Failures</h2><p id='no-failures'>No task failed.</p>"
    return (
        "<h2>Failures by cause</h2><table id='causes'><tr><th>tasks</th><th>cause</th>"
        "<th>what to do</th></tr>" + "".join(rows) + "</table>"
        "<h2>Failed tasks</h2><table id='failures'><tr><th>task</th><th>function</th>"
        "<th>exception</th><th>message</th><th>pool / worker</th></tr>"
        + "".join(task_rows)
        + "</table>"
    )


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
tr.cause td:first-child, tr.failure td:first-child { text-align: right; }
"""


def write_report(db: str | Path, out: str | Path, *, run: str | None = None) -> Path:
    """Write the HTML report of ``run`` (the latest by default) to ``out``; return its path."""
    go = _plotly()
    import plotly.offline

    path = Path(db)
    conn = connect(path, create=False)
    try:
        run_id = resolve_run(conn, run)
        started, ended, host, python = conn.execute(
            "SELECT started, ended, host, python FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        query = "SELECT min(submitted) FROM tasks WHERE run_id = ?"
        first = conn.execute(query, (run_id,)).fetchone()
        t0 = min(started, first[0]) if first[0] is not None else started
        figures = {
            "timeline": _timeline(go, conn, run_id, t0),
            "states": _states(go, conn, run_id, t0),
            "heartbeats": _heartbeats(go, conn, run_id, t0),
        }
    finally:
        conn.close()
    parts = [
        f"<div class='figure' id='{name}'>"
        + fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"{name}-plot",
            config={"displaylogo": False},
        )
        + "</div>"
        for name, fig in figures.items()
    ]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    length = f"{ended - started:.1f} s" if ended else "still running"
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>serdoctor run {run_id}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"<h1>serdoctor run {html.escape(run_id)}</h1>"
        f"<p>started {when} on {html.escape(host or '?')}, Python {html.escape(python or '?')}, "
        f"{length}</p>" + "".join(parts) + _failures_table(path, run_id) + "</body></html>"
    )
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target

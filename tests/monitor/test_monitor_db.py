"""The monitoring database: written off the hot path, read back by queries and the CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _events import record_run
from typer.testing import CliRunner

from serdoctor.cli import app
from serdoctor.errors import MonitorError
from serdoctor.monitor import (
    SCHEMA_VERSION,
    MonitorWriter,
    failure_causes,
    list_runs,
    list_tasks,
)

pytestmark = pytest.mark.timeout(60)


def test_a_recorded_run_reads_back(tmp_path: Path) -> None:
    db = tmp_path / "runinfo" / "monitoring.db"
    run_id = record_run(db)
    (run,) = list_runs(db)
    assert (run.run_id, run.tasks, run.done, run.failed) == (run_id, 6, 4, 2)
    assert run.ended is not None
    tasks = {t.task_id: t for t in list_tasks(db)}
    assert tasks[3].status == "done" and tasks[3].tries == 1 and tasks[3].worker == "w1"
    assert tasks[4].status == "failed"
    assert tasks[4].exc_type == "serdoctor.errors.IncompatiblePythonError"
    assert "Python 3.12" in (tasks[4].exc_message or "")
    assert [t.task_id for t in list_tasks(db, failed=True)] == [4, 5]


def test_failures_are_grouped_by_cause_with_the_stacks_remedy(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    record_run(db)
    (cause,) = failure_causes(db)
    assert cause.count == 2
    assert cause.task_ids == [4, 5]
    assert cause.cause == (
        "IncompatiblePythonError: task N: by-value code from Python 3.11 cannot run on Python 3.12"
    )
    assert "make the function importable" in cause.remedy


def test_several_runs_share_one_file_and_pandas_reads_it(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    first = record_run(db)
    second = record_run(db, t0=2_000_000.0)
    assert {r.run_id for r in list_runs(db)} == {first, second}
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        frame = pd.read_sql_query(
            "SELECT task_id, status, tries FROM tasks WHERE run_id = ?", conn, params=(second,)
        )
    assert len(frame) == 6
    assert frame.groupby("status").size().to_dict() == {"done": 4, "failed": 2}


def test_two_processes_record_into_one_file_at_once(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    MonitorWriter(db).close()  # the file exists before both start
    code = (
        "import sys\n"
        "from serdoctor.monitor import MonitorWriter\n"
        "w = MonitorWriter(sys.argv[1], interval=0.01)\n"
        "for i in range(2000):\n"
        "    w.task_submitted(i, 'f')\n"
        "    w.task_status(i, 'done')\n"
        "w.close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db)]) for _ in range(2)]
    assert [p.wait(50) for p in procs] == [0, 0]
    runs = list_runs(db)
    assert sorted(r.tasks for r in runs) == [0, 2000, 2000]
    assert all(r.done == r.tasks for r in runs)


def test_the_writer_batches_and_flush_makes_rows_visible(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    w = MonitorWriter(db, interval=60)  # no timed commit during the test
    try:
        w.task_submitted(1, "f")
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
        w.flush()
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 1
    finally:
        w.close()


def test_cli_runs_and_tasks(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    run_id = record_run(db)
    runner = CliRunner()
    result = runner.invoke(app, ["runs", str(db), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["run_id"] == run_id
    result = runner.invoke(app, ["tasks", str(db), "--failed"])
    assert result.exit_code == 0, result.output
    assert "2 task(s)" in result.stdout and "what to do:" in result.stdout
    result = runner.invoke(app, ["tasks", str(db), "--run", run_id[:6], "--json"])
    data = json.loads(result.stdout)
    assert [t["status"] for t in data["tasks"]].count("done") == 4
    result = runner.invoke(app, ["tasks", str(db), "--run", "zzz"])
    assert result.exit_code == 2
    assert "no run with id 'zzz'" in result.stderr


@pytest.mark.parametrize("kind", ["missing", "text", "other-sqlite", "newer", "locked"])
def test_bad_databases_get_one_clear_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "m.db"
    holder = None
    if kind == "text":
        db.write_text("hello, not a database\n")
    elif kind == "other-sqlite":
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE people (name TEXT)")
    elif kind == "newer":
        record_run(db)
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'version'", (SCHEMA_VERSION + 1,))
    elif kind == "locked":
        record_run(db)
    if kind in ("other-sqlite", "newer"):
        with sqlite3.connect(db) as conn:  # fold the WAL in, so the bytes are the whole file
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.read_bytes() if db.exists() else None
    if kind == "locked":
        # (after reading the bytes: closing any descriptor of the file drops this process's locks)
        holder = sqlite3.connect(db)
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("SELECT count(*) FROM tasks").fetchone()  # takes the lock
    try:
        env = {**os.environ, "COLUMNS": "200"}
        proc = subprocess.run(
            [sys.executable, "-m", "serdoctor.cli", "runs", str(db)],
            capture_output=True, text=True, timeout=50, env=env,
        )  # fmt: skip
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error:")
    expected = {
        "missing": "no such monitoring database",
        "text": "not a readable monitoring database",
        "other-sqlite": "not a serdoctor monitoring database (its tables: people)",
        "newer": "upgrade serdoctor",
        "locked": "locked by another process",
    }[kind]
    assert expected in " ".join(proc.stderr.split())
    if before is not None and kind != "locked":
        assert db.read_bytes() == before  # nothing written to a file we refused


def test_the_api_raises_monitor_error(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match="no such monitoring database"):
        list_runs(tmp_path / "nothing.db")


def _rows(db: Path, run_id: str) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(db) as conn:
        return {
            table: sorted(
                tuple(r[1:])
                for r in conn.execute(f"SELECT * FROM {table} WHERE run_id = ?", (run_id,))
            )
            for table in ("tasks", "status", "tries")
        }


def _both_ways(
    db: Path, record: Callable[[MonitorWriter, bool], None]
) -> list[dict[str, list[tuple[object, ...]]]]:
    """The rows of two runs, recorded by ``record(writer, False)`` and ``(writer, True)``.

    The time of a ``done`` status is when it was recorded: it is set aside.
    """
    out = []
    for flag in (False, True):
        w = MonitorWriter(db, interval=60)
        try:
            for task in range(3):
                w.task_submitted(task, "f", method="pickle", payload_bytes=10, when=1.0)
            record(w, flag)
        finally:
            w.close()
        rows = _rows(db, w.run_id)
        rows["tasks"] = [r if r[3] != "done" else (*r[:4], None, *r[5:]) for r in rows["tasks"]]
        rows["status"] = [r if r[2] != "done" else (*r[:3], None, *r[4:]) for r in rows["status"]]
        out.append(rows)
    return out


def test_a_tasks_status_is_the_same_whether_or_not_it_shares_a_batch_with_its_row(
    tmp_path: Path,
) -> None:
    # the writer folds a status change into the task's row when both are in one batch
    def record(w: MonitorWriter, split: bool) -> None:
        if split:
            w.flush()  # the rows are written before their status changes arrive
        w.task_status(0, "sent", pool="p", when=2.0)
        w.try_record(0, 0, pool="p", worker="pid 9", sent=2.0, started=2.1, ended=2.2,
                     method="pickle", payload_bytes=10, result_bytes=5, done=True)  # fmt: skip
        w.task_status(1, "retried", attempt=1, when=2.0)
        w.task_status(1, "failed", attempt=1, detail="ValueError: x", when=3.0)
        w.task_status(2, "cancelled", when=2.5)

    folded, separate = _both_ways(tmp_path / "m.db", record)
    assert folded == separate
    assert [t[3] for t in folded["tasks"]] == ["done", "failed", "cancelled"]
    assert [t[5] for t in folded["tasks"]] == [0, 1, 0]  # tries
    assert folded["tries"] == [
        (0, 0, "p", "pid 9", 2.0, 2.1, 2.2, "pickle", 10, 5, 0, None, None, None)
    ]


def test_sqlite_is_written_by_a_low_priority_process_not_the_executors(tmp_path: Path) -> None:
    import psutil

    db = tmp_path / "m.db"
    w = MonitorWriter(db, interval=60)
    try:
        sink = psutil.Process(w._sink.pid)
        w.task_submitted(1, "f")
        w.flush()  # (the process lowers its priority before it reads anything)
        assert "serdoctor.monitor._sink" in " ".join(sink.cmdline())
        assert os.sched_getscheduler(sink.pid) == os.SCHED_IDLE  # Linux's idle class
        assert any(Path(f.path) == db.resolve() for f in sink.open_files())
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 1
    finally:
        w.close()
    assert not sink.is_running() or sink.status() == psutil.STATUS_ZOMBIE


def test_a_killed_writing_process_stops_recording_with_one_warning(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    w = MonitorWriter(db, interval=0.01)
    w.task_submitted(1, "f")
    w.flush()
    w._sink.kill()
    with pytest.warns(RuntimeWarning, match=r"stopped recording to .*m\.db") as caught:
        w._sink.wait(10)
        for task in range(2, 50):  # recording goes on failing quietly: nothing raises
            w.task_submitted(task, "f")
        w.flush(timeout=5)
        w.close()
    assert len([c for c in caught if "stopped recording" in str(c.message)]) == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 1


def test_the_writing_process_ends_with_the_process_that_records(tmp_path: Path) -> None:
    # a recording process killed outright: its writer sees the end of its input, writes
    # what it was sent and ends (no process is left behind)
    import psutil

    db = tmp_path / "m.db"
    code = (
        "import os, sys, time\n"
        "from serdoctor.monitor import MonitorWriter\n"
        "w = MonitorWriter(sys.argv[1], interval=0.01)\n"
        "for i in range(100):\n"
        "    w.task_submitted(i, 'f')\n"
        "w.flush()\n"
        "print(w._sink.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        sink = psutil.Process(int(proc.stdout.readline()))
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    sink.wait(10)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 100


def test_batched_events_write_the_rows_of_one_event_per_task(tmp_path: Path) -> None:
    # the executor records a message's tries and sends in one event each
    row = (0, "p", "pid 7", 2.0, 2.1, 2.2, "pickle", 10, 5)
    tries = [(t, *row, t) for t in range(3)]

    def record(w: MonitorWriter, batched: bool) -> None:
        w.flush()
        if batched:
            w.tasks_sent("p", [(t, 0) for t in range(3)], when=2.0)
            w.tries_done(tries)
            return
        for t in range(3):
            w.task_status(t, "sent", pool="p", when=2.0)
        for task, attempt, pool, worker, sent, started, ended, method, size, res, px in tries:
            w.try_record(task, attempt, pool=pool, worker=worker, sent=sent, started=started,
                         ended=ended, method=method, payload_bytes=size, result_bytes=res,
                         proxies=px, done=True)  # fmt: skip

    one, many = _both_ways(tmp_path / "m.db", record)
    assert one == many
    assert [r[3] for r in many["tasks"]] == ["done"] * 3
    assert sorted(r[2] for r in many["status"]) == ["done"] * 3 + ["sent"] * 3
    assert [r[10] for r in many["tries"]] == [0, 1, 2]  # proxies


def test_tasks_submitted_in_one_event_write_the_rows_of_one_event_each(
    tmp_path: Path,
) -> None:
    # the executor records the tasks of a batch it sends in one event
    rows = {}
    for batched in (False, True):
        w = MonitorWriter(tmp_path / "m.db", interval=60)
        try:
            if batched:
                w.tasks_submitted([(t, "f", 1.0 + t, "pickle", 10 * t, None) for t in range(3)])
            else:
                for t in range(3):
                    w.task_submitted(t, "f", method="pickle", payload_bytes=10 * t, when=1.0 + t)
            w.task_status(1, "cancelled", when=5.0)  # its row first, in the same batch
        finally:
            w.close()
        rows[batched] = _rows(tmp_path / "m.db", w.run_id)
    assert rows[True] == rows[False]
    assert [r[3] for r in rows[True]["tasks"]] == ["queued", "cancelled", "queued"]


class _Sink:
    """The writing process, driven by hand over its pipe (as MonitorWriter drives it)."""

    def __init__(self, db: Path, lull: float, hold: float) -> None:
        MonitorWriter(db).close()  # the file exists, as the writer makes sure
        self.db = db
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serdoctor.monitor._sink", str(db), str(lull), str(hold)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.next_task = 0

    def send(self, message: Any) -> None:
        import marshal

        body = marshal.dumps(message)
        assert self.proc.stdin is not None
        self.proc.stdin.write(len(body).to_bytes(4, "big") + body)
        self.proc.stdin.flush()

    def send_tasks(self, n: int) -> None:
        now = time.time()
        tasks = [(self.next_task + i, "f", now, "pickle", 10, None) for i in range(n)]
        self.next_task += n
        self.send(("rows", "run", [("submitted", (tasks,))]))

    def rows(self, table: str = "tasks") -> int:
        conn = sqlite3.connect(self.db)
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            conn.close()

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.close()
            self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            self.proc.stdout.close()


def _poll(what: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.02)
    return what()


def _flow(sink: _Sink, seconds: float, until: Callable[[], bool] = lambda: False) -> float:
    """Send a batch every 0.05 s for ``seconds`` (or until ``until()``); the time it took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds and not until():
        sink.send_tasks(10)
        time.sleep(0.05)
    return time.monotonic() - started


def test_the_writing_process_holds_batches_while_they_flow_and_writes_in_the_pause(
    tmp_path: Path,
) -> None:
    # while tasks flow, SQLite's work waits for the pause after them (it would slow them)
    sink = _Sink(tmp_path / "m.db", lull=1.0, hold=60)
    try:
        _flow(sink, 1.5)
        paused = time.monotonic()
        assert sink.rows() == 0, "written while the batches still came"
        assert _poll(lambda: sink.rows() == sink.next_task, 20), "not written after the pause"
        assert time.monotonic() - paused < 30, "written at the hold, not at the pause"
    finally:
        sink.close()
    assert sink.proc.returncode == 0


def test_the_writing_process_writes_a_long_flow_every_few_seconds(tmp_path: Path) -> None:
    # a flow that does not pause is still written, at most `hold` seconds late
    sink = _Sink(tmp_path / "m.db", lull=1.0, hold=1.5)
    try:
        took = _flow(sink, 20, until=lambda: sink.rows() > 0)
        assert sink.rows() > 0, "a flow that never paused was never written"
        assert took >= 1.5 * 0.9, f"written after {took:.2f} s, before the hold"
    finally:
        sink.close()
    assert sink.rows() == sink.next_task  # what was still held: written at the end of input


def test_sigterm_writes_what_the_writing_process_holds(tmp_path: Path) -> None:
    sink = _Sink(tmp_path / "m.db", lull=60, hold=60)
    try:
        _flow(sink, 0.3)
        sink.proc.terminate()
        assert sink.proc.wait(20) == 0
        assert sink.rows() == sink.next_task
    finally:
        sink.close()


def test_held_batches_are_written_in_their_order_one_transaction_each(tmp_path: Path) -> None:
    # a try's first row (sent) and its full row come in two batches held together: the
    # full row stays; and a batch SQLite refuses loses no batch held before it
    sink = _Sink(tmp_path / "m.db", lull=60, hold=60)
    try:
        sink.send(("rows", "run", [("try_sent", ("run", 1, 0, "p", "w", 10.0, "pickle", 8, 0))]))
        full = ("run", 1, 0, "p", "w", 10.0, 10.1, 10.5, "pickle", 8, 80, 0, "E", "m", None)
        sink.send(("rows", "run", [("try", full)]))
        sink.send_tasks(3)
        sink.send(("rows", "run", [("heartbeat", ("run", "p", 1.0))]))  # one value short
        sink.send_tasks(2)  # after the error: dropped, as before
        sink.send(("flush", 7))
        assert sink.proc.stdout is not None
        assert sink.proc.stdout.readline().startswith(b"error ")
        assert sink.proc.stdout.readline() == b"flushed 7\n"
        conn = sqlite3.connect(sink.db)
        try:
            row = conn.execute(
                "SELECT started, ended, result_bytes, exc_type FROM tries"
            ).fetchall()
        finally:
            conn.close()
        assert row == [(10.1, 10.5, 80, "E")]
        assert sink.rows() == 3
    finally:
        sink.close()

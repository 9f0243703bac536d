"""The monitoring writer's own process: it writes the events it is sent into SQLite.

:class:`~serdoctor.monitor.MonitorWriter` sends batches of events here over a
pipe, so that the SQLite work (binding, B-trees, commits) runs in another
process at a lower scheduling priority, never in the executor's process, and
waits for CPU the executor's processes leave idle. Protocol, on standard
input: a 4-byte big-endian length, then a ``marshal``-ed message, either
``("rows", run_id, events)`` (written in one transaction, in order) or ``("flush",
token)``, answered on standard output with ``flushed TOKEN`` once everything
before it is committed. A database error is answered with one ``error MESSAGE``
line; later rows are read and dropped. End of input, or SIGTERM, ends the
process once what it holds is written.

While batches keep coming (each within ``lull`` seconds of the last, as they
do while tasks flow), the process holds them, undecoded, and writes nothing; it
writes them, each in a transaction of its own and in the order they came, when
the flow pauses, when it has held some for ``hold`` seconds or
:data:`HOLD_BYTES` bytes, at a flush and at the end. Even at the lowest
priority, SQLite's work during a burst slowed the executor by 10-20% on a small
machine (it preempted, and its memory traffic evicted the executor's caches);
in the pauses it costs the executor nothing. Usage: ``python -m
serdoctor.monitor._sink DB [LULL HOLD]``.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import signal
import sys
import time
from typing import Any

from serdoctor.monitor._schema import connect

_SQL = {
    "task": "INSERT OR REPLACE INTO tasks (run_id, task_id, fn, submitted, status, status_time, "
    "tries, method, payload_bytes, depends_on) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "status": "INSERT INTO status VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "payload": "UPDATE tasks SET method = ?, payload_bytes = ? WHERE run_id = ? AND task_id = ?",
    "task_status": "UPDATE tasks SET status = ?, status_time = ?, tries = max(tries, ?) "
    "WHERE run_id = ? AND task_id = ?",
    "try_sent": "INSERT OR REPLACE INTO tries (run_id, task_id, try, pool, worker, sent, method, "
    "payload_bytes, proxies) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "try": "INSERT OR REPLACE INTO tries (run_id, task_id, try, pool, worker, sent, started, "
    "ended, method, payload_bytes, result_bytes, proxies, exc_type, exc_message, remedy) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "try_started": "UPDATE tries SET started = ?, pool = coalesce(?, pool), "
    "worker = coalesce(?, worker) WHERE run_id = ? AND task_id = ? AND try = ?",
    "try_ended": "UPDATE tries SET ended = ?, result_bytes = ?, exc_type = ?, exc_message = ?, "
    "remedy = ? WHERE run_id = ? AND task_id = ? AND try = ?",
    "pool": "INSERT OR REPLACE INTO pools (run_id, pool_id, host, pid, python, env_digest, "
    "workers, block_id, registered, last_heartbeat, mismatch) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "heartbeat": "INSERT INTO heartbeats VALUES (?, ?, ?, ?)",
    "pool_seen": "UPDATE pools SET last_heartbeat = ? WHERE run_id = ? AND pool_id = ?",
    "pool_lost": "UPDATE pools SET lost = ? WHERE run_id = ? AND pool_id = ?",
    "block": "INSERT INTO blocks (run_id, block_id, provider, job_id, state, submitted, reason, "
    "stderr) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, block_id) DO UPDATE SET "
    "state = excluded.state, reason = excluded.reason, stderr = excluded.stderr, "
    "job_id = coalesce(excluded.job_id, job_id), "
    "ended = CASE WHEN excluded.state IN ('completed', 'failed', 'cancelled') "
    "THEN excluded.submitted ELSE ended END",
    "run_end": "UPDATE runs SET ended = ? WHERE run_id = ?",
}


# The order kinds are written in within one batch: a row is inserted before it is updated
# (events of one kind keep their order; events of a task are recorded in this order).
_ORDER = (
    "task", "payload", "status", "task_status", "try", "try_sent", "try_started", "try_ended",
    "pool", "heartbeat", "pool_seen", "pool_lost", "block", "run_end",
)  # fmt: skip


def _statements(rows: list[tuple[str, tuple[Any, ...]]], run_id: str) -> dict[str, list[Any]]:
    """The parameters of each statement a batch of events needs, by kind.

    A ``done`` event (successful tries) becomes, for each try, its row, a
    ``done`` status row and the task's new status; a ``sent`` event (tasks a
    pool took) a ``sent`` status row per task; a ``submitted`` event a task row
    per task. A task's status change whose
    task row is inserted in the same batch is folded into that row (its
    status, time and tries), in the order the events came; the rest stay
    ``UPDATE`` statements.
    """
    by_kind: dict[str, list[Any]] = {kind: [] for kind in _ORDER}
    inserted: dict[int, list[Any]] = {}  # task id -> its row's parameters, while in this batch

    def new_status(params: tuple[Any, ...]) -> None:  # (status, time, tries, run_id, task_id)
        row = inserted.get(params[4]) if params[3] == run_id else None
        if row is None:
            by_kind["task_status"].append(params)
        else:  # (run_id, task_id, fn, submitted, status, time, tries, ...)
            row[4], row[5], row[6] = params[0], params[1], max(row[6], params[2])

    for kind, params in rows:
        if kind == "done":
            tries, now = params
            for (
                task_id,
                attempt,
                pool,
                worker,
                sent,
                started,
                ended,
                method,
                size,
                result,
                proxies,
            ) in tries:
                by_kind["try"].append(
                    (run_id, task_id, attempt, pool, worker, sent, started, ended, method, size,
                     result, proxies, None, None, None)
                )  # fmt: skip
                by_kind["status"].append((run_id, task_id, attempt, "done", now, pool, None, None))
                new_status(("done", now, attempt, run_id, task_id))
        elif kind == "sent":
            pool, tasks, when = params
            by_kind["status"].extend(
                (run_id, task_id, attempt, "sent", when, pool, None, None)
                for task_id, attempt in tasks
            )
        elif kind == "submitted":  # tasks submitted (one event per batch, or per task)
            for task_id, fn, when, method, size, depends_on in params[0]:
                row = [run_id, task_id, fn, when, "queued", when, 0, method, size, depends_on]
                inserted[task_id] = row
                by_kind["task"].append(row)
        elif kind == "task_status":
            new_status(params)
        else:
            by_kind[kind].append(params)
    return by_kind


def write(conn: Any, events: list[tuple[str, tuple[Any, ...]]], run_id: str) -> None:
    """Write one batch of events in one transaction (each kind in one executemany)."""
    by_kind = _statements(events, run_id)
    with conn:  # inserts first (see _ORDER)
        for kind in _ORDER:
            if by_kind[kind]:
                conn.executemany(_SQL[kind], by_kind[kind])


#: a batch that comes within this many seconds of the last one is held with it (the
#: writer sends every quarter of a second while tasks flow)...
LULL = 0.4
#: ...until the oldest has waited this long, or this many bytes of batches are held
HOLD = 2.0
HOLD_BYTES = 16 << 20


class _Stop(Exception):
    """SIGTERM: write what is held, then end."""


def _stop(signum: int, frame: Any) -> None:
    raise _Stop


def _read(fd: int, size: int) -> bytearray | None:
    """Exactly ``size`` bytes from ``fd``, or None at its end (unbuffered: see ``_wait``)."""
    data = bytearray(size)
    view, pos = memoryview(data), 0
    while pos < size:
        n = os.readv(fd, [view[pos:]])
        if not n:
            return None
        pos += n
    return data


def _wait(fd: int, timeout: float | None) -> bool:
    """Whether ``fd`` has something to read (or its end) within ``timeout`` seconds."""
    return bool(select.select([fd], [], [], timeout)[0])


class _Held:
    """Batches received and not yet written (their marshal bytes), in order."""

    def __init__(self, lull: float, hold: float) -> None:
        self.lull, self.hold = lull, hold
        self.bodies: list[bytearray] = []
        self.size = 0
        self.since = 0.0

    def add(self, body: bytearray) -> None:
        if not self.bodies:
            self.since = time.monotonic()
        self.bodies.append(body)
        self.size += len(body)

    def due(self) -> bool:
        """Held long enough, or much enough, to write without waiting for a pause."""
        return self.size >= HOLD_BYTES or time.monotonic() - self.since >= self.hold

    def timeout(self) -> float:
        """How long to wait for the next batch before writing what is held."""
        return max(0.0, min(self.lull, self.since + self.hold - time.monotonic()))

    def take(self) -> list[bytearray]:
        bodies, self.bodies, self.size = self.bodies, [], 0
        return bodies


def main(path: str, lull: float = LULL, hold: float = HOLD) -> int:
    """Write what arrives on standard input into the database at ``path``, until its end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the executor's shutdown ends this process
    signal.signal(signal.SIGTERM, _stop)
    # the executor's processes come first; this one catches up when they idle: Linux's
    # idle class (runs only on a CPU nothing else wants), or else the lowest priority
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)
    source, answer = sys.stdin.fileno(), sys.stdout.buffer
    conn = connect(path, create=False)
    failed = False
    held = _Held(lull, hold)

    def write_held() -> None:
        nonlocal failed
        for body in held.take():
            if failed:
                return
            _, run_id, events = marshal.loads(body)
            try:
                write(conn, events, run_id)
            except Exception as exc:  # recording must never break the run it records
                failed = True
                text = " ".join(f"{type(exc).__name__}: {exc}".split())
                answer.write(b"error " + text.encode("utf-8", "replace") + b"\n")
                answer.flush()

    try:
        while True:
            if held.bodies and (held.due() or not _wait(source, held.timeout())):
                write_held()  # the flow paused (or has held long enough)
                continue
            head = _read(source, 4)
            body = _read(source, int.from_bytes(head, "big")) if head is not None else None
            if body is None:
                write_held()
                return 0
            # a flush is a few bytes; rows are held as they came, decoded when written
            message = marshal.loads(body) if len(body) < 256 else None
            if message is not None and message[0] == "flush":
                write_held()
                answer.write(b"flushed %d\n" % message[1])
                answer.flush()
            elif not failed:
                held.add(body)
    except _Stop:
        write_held()
        return 0
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], *(float(a) for a in sys.argv[2:4])))

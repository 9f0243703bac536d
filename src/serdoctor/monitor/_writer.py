"""The monitoring writer: the executor's events, written to SQLite off the hot path.

Every ``record``-style method only appends a tuple to a queue (well under a
microsecond); one background thread takes what has accumulated, writes it in
a single transaction every ``interval`` seconds (or sooner when ``batch``
events are waiting), and commits. :meth:`MonitorWriter.close` flushes
everything and marks the run ended. A database error stops recording with one
warning; it never fails the tasks being monitored.
"""

from __future__ import annotations

import contextlib
import os
import platform
import queue
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serdoctor.monitor._causes import remedy_for
from serdoctor.monitor._schema import connect

_MAX_MESSAGE = 2000
_FLUSH = "__flush__"

_SQL = {
    "task": "INSERT OR REPLACE INTO tasks (run_id, task_id, fn, submitted, status, status_time, "
    "tries, method, payload_bytes, depends_on) VALUES (?, ?, ?, ?, 'queued', ?, 0, ?, ?, ?)",
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


def _describe(exception: BaseException) -> tuple[str, str | None, str | None]:
    cls = type(exception)
    exc_type = f"{cls.__module__}.{cls.__qualname__}"
    message = None
    with contextlib.suppress(Exception):
        message = str(exception)[:_MAX_MESSAGE]
    return exc_type, message, remedy_for(exc_type) or None


# The order kinds are written in within one batch: a row is inserted before it is updated
# (events of one kind keep their order; events of a task are recorded in this order).
_ORDER = (
    "task", "payload", "status", "task_status", "try", "try_sent", "try_started", "try_ended",
    "pool", "heartbeat", "pool_seen", "pool_lost", "block", "run_end",
)  # fmt: skip


class MonitorWriter:
    """Records one run of an executor into the monitoring database at ``path``.

    Args:
        path: the SQLite file (created with its parent directory when missing);
            several runs, also from several processes, share one file.
        executor: a few facts about the executor (workers, retries...), stored
            as JSON with the run.
        interval: seconds between background commits.
        batch: commit sooner once this many events are waiting.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        executor: Mapping[str, Any] | None = None,
        env_digest: str | None = None,
        interval: float = 0.25,
        batch: int = 2000,
    ) -> None:
        import json

        from serdoctor._version import __version__

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = uuid.uuid4().hex[:12]
        self.interval = interval
        self.batch = batch
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._pending = 0
        self._wake = threading.Event()
        self._conn = connect(self.path, create=True)
        with self._conn:
            self._conn.execute(
                "INSERT INTO runs VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?)",
                (
                    self.run_id,
                    time.time(),
                    socket.gethostname(),
                    os.getpid(),
                    platform.python_version(),
                    __version__,
                    env_digest,
                    json.dumps(dict(executor or {}), default=str),
                ),
            )
        self._failed = False
        self._closed = False
        self._thread = threading.Thread(
            target=self._loop, name="serdoctor-monitor-writer", daemon=True
        )
        self._thread.start()

    # -- events (called from the executor's threads; each one only enqueues) --------------

    def _put(self, kind: str, params: tuple[Any, ...]) -> None:
        self._queue.put((kind, params))
        self._pending += 1
        if self._pending >= self.batch:
            self._wake.set()

    def task_submitted(
        self,
        task_id: int,
        fn: str,
        *,
        method: str | None = None,
        payload_bytes: int | None = None,
        depends_on: str | None = None,
        when: float | None = None,
    ) -> None:
        """A task was submitted (state ``queued``)."""
        now = time.time() if when is None else when
        # the task's row says "queued" at ``submitted``: no status row is needed for it
        self._put("task", (self.run_id, task_id, fn, now, now, method, payload_bytes, depends_on))

    def task_payload(self, task_id: int, *, method: str, payload_bytes: int) -> None:
        """The stack's choice for the task: the method that carries it, and its size."""
        self._put("payload", (method, payload_bytes, self.run_id, task_id))

    def task_status(
        self,
        task_id: int,
        status: str,
        *,
        attempt: int = 0,
        pool: str | None = None,
        worker: str | None = None,
        detail: str | None = None,
        when: float | None = None,
    ) -> None:
        """A task changed state (``sent``, ``running``, ``done``, ``failed``, ``retried``...)."""
        now = time.time() if when is None else when
        self._put("status", (self.run_id, task_id, attempt, status, now, pool, worker, detail))
        if status != "sent":  # "sent" lives in the status table; the task row keeps the rest
            self._put("task_status", (status, now, attempt, self.run_id, task_id))

    def try_record(
        self,
        task_id: int,
        attempt: int,
        *,
        pool: str | None = None,
        worker: str | None = None,
        sent: float | None = None,
        started: float | None = None,
        ended: float | None = None,
        method: str | None = None,
        payload_bytes: int | None = None,
        result_bytes: int | None = None,
        exception: BaseException | None = None,
    ) -> None:
        """A whole try at once, when it has ended (one row: the cheapest for the executor)."""
        exc_type = exc_message = remedy = None
        if exception is not None:
            exc_type, exc_message, remedy = _describe(exception)
        self._put(
            "try",
            (self.run_id, task_id, attempt, pool, worker, sent, started,
             time.time() if ended is None else ended, method, payload_bytes, result_bytes, 0,
             exc_type, exc_message, remedy),
        )  # fmt: skip

    def try_sent(
        self,
        task_id: int,
        attempt: int,
        *,
        pool: str | None,
        worker: str | None = None,
        method: str | None = None,
        payload_bytes: int | None = None,
        proxies: int = 0,
        when: float | None = None,
    ) -> None:
        """Try ``attempt`` of a task left for ``pool``, carried by ``method``."""
        now = time.time() if when is None else when
        self._put(
            "try_sent",
            (self.run_id, task_id, attempt, pool, worker, now, method, payload_bytes, proxies),
        )

    def try_started(
        self,
        task_id: int,
        attempt: int,
        *,
        pool: str | None = None,
        worker: str | None = None,
        when: float | None = None,
    ) -> None:
        """A worker began running the try."""
        now = time.time() if when is None else when
        self._put("try_started", (now, pool, worker, self.run_id, task_id, attempt))

    def try_ended(
        self,
        task_id: int,
        attempt: int,
        *,
        result_bytes: int | None = None,
        exception: BaseException | None = None,
        when: float | None = None,
    ) -> None:
        """The try finished: its result's size, or the exception it failed with."""
        now = time.time() if when is None else when
        exc_type = exc_message = remedy = None
        if exception is not None:
            exc_type, exc_message, remedy = _describe(exception)
        self._put(
            "try_ended",
            (now, result_bytes, exc_type, exc_message, remedy, self.run_id, task_id, attempt),
        )

    def pool_registered(
        self,
        pool_id: str,
        *,
        host: str,
        pid: int,
        python: str,
        env_digest: str | None,
        workers: int,
        block_id: str | None = None,
        mismatch: str | None = None,
        when: float | None = None,
    ) -> None:
        """A pool attached (with its environment's digest, and what differs, if anything)."""
        now = time.time() if when is None else when
        self._put(
            "pool",
            (self.run_id, pool_id, host, pid, python, env_digest, workers, block_id, now, now,
             mismatch),
        )  # fmt: skip

    def pool_heartbeat(
        self, pool_id: str, tasks_running: int, *, when: float | None = None
    ) -> None:
        """A heartbeat from a pool, with how many tasks it is running."""
        now = time.time() if when is None else when
        self._put("heartbeat", (self.run_id, pool_id, now, tasks_running))
        self._put("pool_seen", (now, self.run_id, pool_id))

    def pool_lost(self, pool_id: str, *, when: float | None = None) -> None:
        """A pool stopped answering (or left)."""
        now = time.time() if when is None else when
        self._put("pool_lost", (now, self.run_id, pool_id))

    def block_state(
        self,
        block_id: str,
        state: str,
        *,
        provider: str | None = None,
        job_id: str | None = None,
        reason: str | None = None,
        stderr: str | None = None,
        when: float | None = None,
    ) -> None:
        """A block was submitted or changed state (in the batch system's words)."""
        now = time.time() if when is None else when
        self._put("block", (self.run_id, block_id, provider, job_id, state, now, reason, stderr))

    # -- the background writer -----------------------------------------------------------

    def _loop(self) -> None:
        done = False
        while not done:
            self._wake.wait(self.interval)
            self._wake.clear()
            rows: list[tuple[str, tuple[Any, ...]]] = []
            flushed: list[threading.Event] = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                if item[0] == _FLUSH:
                    flushed.append(item[1][0])
                    continue
                rows.append(item)
            self._pending = max(0, self._pending - len(rows))
            if rows and not self._failed:
                self._write(rows)
            for marker in flushed:
                marker.set()

    def _write(self, rows: list[tuple[str, tuple[Any, ...]]]) -> None:
        try:
            by_kind: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in _ORDER}
            for kind, params in rows:
                by_kind[kind].append(params)
            with self._conn:  # one transaction; each kind in one executemany, inserts first
                for kind in _ORDER:
                    if by_kind[kind]:
                        self._conn.executemany(_SQL[kind], by_kind[kind])
        except Exception as exc:  # recording must never break the run it records
            self._failed = True
            warnings.warn(
                f"serdoctor monitoring stopped recording to {self.path}: {exc}",
                RuntimeWarning,
                stacklevel=1,
            )

    def flush(self, timeout: float = 10.0) -> None:
        """Write everything recorded so far (waits for the background thread)."""
        marker = threading.Event()
        self._queue.put((_FLUSH, (marker,)))
        self._wake.set()
        marker.wait(timeout)

    def close(self) -> None:
        """Flush, mark the run ended, and stop the background thread."""
        if self._closed:
            return
        self._closed = True
        self._put("run_end", (time.time(), self.run_id))
        self._queue.put(None)
        self._wake.set()
        self._thread.join(30)
        self._conn.close()

"""The monitoring writer: the executor's events, written to SQLite off the hot path.

Every ``record``-style method only appends a tuple to a deque (well under a
microsecond, no lock); one background thread takes what has accumulated every
``interval`` seconds (or sooner when ``batch`` events are waiting) and sends it
to the writing process (``_sink``), which writes each batch in a transaction
of its own once the flow of batches pauses. The executor records the end of
a successful try as one event, which the writer turns into its rows; a
task's status change that arrives in the same batch as the task's own row is
folded into that row rather than written as an ``UPDATE`` (the rows are the
same, the statements fewer: monitoring must not slow the run it watches).
:meth:`MonitorWriter.close` flushes everything and marks the run ended. A
database error stops recording with one warning; it never fails the tasks
being monitored.
"""

from __future__ import annotations

import collections
import contextlib
import marshal
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from serdoctor.monitor._causes import remedy_for
from serdoctor.monitor._schema import connect

_MAX_MESSAGE = 2000
_FLUSH = "__flush__"


def _describe(exception: BaseException) -> tuple[str, str | None, str | None]:
    cls = type(exception)
    exc_type = f"{cls.__module__}.{cls.__qualname__}"
    message = None
    with contextlib.suppress(Exception):
        message = str(exception)[:_MAX_MESSAGE]
    return exc_type, message, remedy_for(exc_type) or None


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
        # deque.append and popleft are atomic: the executor's threads never wait on a lock
        self._events: collections.deque[tuple[str, tuple[Any, ...]] | None] = collections.deque()
        self._wake = threading.Event()
        conn = connect(self.path, create=True)  # a bad file is refused here, unchanged
        with conn:
            conn.execute(
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
        conn.close()
        self._failed = False
        self._closed = False
        self._flushes: dict[int, threading.Event] = {}
        self._sink = _start_sink(self.path)
        self._thread = threading.Thread(
            target=self._loop, name="serdoctor-monitor-writer", daemon=True
        )
        self._answers = threading.Thread(
            target=self._listen, name="serdoctor-monitor-answers", daemon=True
        )
        self._thread.start()
        self._answers.start()

    # -- events (called from the executor's threads; each one only enqueues) --------------

    def _put(self, kind: str, params: tuple[Any, ...]) -> None:
        events = self._events
        events.append((kind, params))
        if len(events) >= self.batch:
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
        self.tasks_submitted([(task_id, fn, now, method, payload_bytes, depends_on)])

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
        proxies: int = 0,
        exception: BaseException | None = None,
        done: bool = False,
    ) -> None:
        """A whole try at once, when it has ended (one row: the cheapest for the executor).

        ``done=True`` (a try that succeeded) also records the task's status
        ``done``, as ``task_status(task_id, "done", attempt=attempt, pool=pool)``
        would, in the same event.
        """
        now = time.time()
        ended = now if ended is None else ended
        if done and exception is None:
            self._put(
                "done",
                ([(task_id, attempt, pool, worker, sent, started, ended, method, payload_bytes,
                   result_bytes, proxies)], now),
            )  # fmt: skip
            return
        exc_type = exc_message = remedy = None
        if exception is not None:
            exc_type, exc_message, remedy = _describe(exception)
        self._put(
            "try",
            (self.run_id, task_id, attempt, pool, worker, sent, started, ended, method,
             payload_bytes, result_bytes, proxies, exc_type, exc_message, remedy),
        )  # fmt: skip
        if done:
            self.task_status(task_id, "done", attempt=attempt, pool=pool, when=now)

    def tries_done(self, tries: list[tuple[Any, ...]]) -> None:
        """Tries that succeeded, recorded as one event (what the executor sends per message).

        Each is ``(task_id, attempt, pool, worker, sent, started, ended, method,
        payload_bytes, result_bytes, proxies)``: the rows of ``try_record(...,
        done=True)`` for each, for a fraction of the executor's time.
        """
        if tries:
            self._put("done", (tries, time.time()))

    def tasks_submitted(
        self, tasks: Sequence[tuple[int, str, float, str | None, int | None, str | None]]
    ) -> None:
        """Tasks submitted, recorded as one event (what the executor sends per batch).

        Each is ``(task_id, fn, submitted, method, payload_bytes, depends_on)``, as
        :meth:`task_submitted` takes them; each task's row says "queued" at its
        ``submitted`` time (no status row is needed for that).
        """
        if tasks:
            self._put("submitted", (tasks,))

    def tasks_sent(self, pool: str, tasks: list[tuple[int, int]], *, when: float) -> None:
        """``pool`` took these ``(task_id, attempt)`` at ``when``: a ``sent`` status for each."""
        if tasks:
            self._put("sent", (pool, tasks, when))

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

    # -- the background sender, and what the writing process answers ---------------------

    def _loop(self) -> None:
        done = False
        while not done:
            self._wake.wait(self.interval)
            self._wake.clear()
            rows: list[tuple[str, tuple[Any, ...]]] = []
            flushed: list[threading.Event] = []
            take = self._events.popleft
            while True:
                try:
                    item = take()
                except IndexError:
                    break
                if item is None:
                    done = True
                    break
                if item[0] == _FLUSH:
                    flushed.append(item[1][0])
                    continue
                rows.append(item)
            if rows and not self._failed:
                self._send(("rows", self.run_id, rows))
            for marker in flushed:
                token = id(marker)
                self._flushes[token] = marker
                if self._failed or not self._send(("flush", token)):
                    self._flushes.pop(token, None)
                    marker.set()
        with contextlib.suppress(OSError):
            self._stdin().close()  # end of input: the process writes what it has, and ends

    def _stdin(self) -> IO[bytes]:
        assert self._sink.stdin is not None
        return self._sink.stdin

    def _send(self, message: tuple[Any, ...]) -> bool:
        try:
            data = marshal.dumps(message)
            self._stdin().write(len(data).to_bytes(4, "big") + data)
            self._stdin().flush()
            return True
        except (OSError, ValueError) as exc:  # the process is gone: say so once
            self._stop(f"its writing process ended ({type(exc).__name__}: {exc})")
            return False

    def _listen(self) -> None:
        assert self._sink.stdout is not None
        for line in self._sink.stdout:
            word, _, rest = line.decode("utf-8", "replace").rstrip("\n").partition(" ")
            if word == "flushed":
                marker = self._flushes.pop(int(rest), None)
                if marker is not None:
                    marker.set()
            elif word == "error":
                self._stop(rest)
        code = self._sink.wait()
        if code and not self._closed:
            self._stop(f"its writing process ended with exit code {code}")
        for marker in list(self._flushes.values()):  # nothing more will be written
            marker.set()

    def _stop(self, reason: str) -> None:
        """Stop recording, with one warning (recording must never break the run it records)."""
        if self._failed:
            return
        self._failed = True
        warnings.warn(
            f"serdoctor monitoring stopped recording to {self.path}: {reason}",
            RuntimeWarning,
            stacklevel=1,
        )

    def flush(self, timeout: float = 10.0) -> None:
        """Write everything recorded so far (waits until it is committed, at most ``timeout``)."""
        marker = threading.Event()
        self._events.append((_FLUSH, (marker,)))
        self._wake.set()
        marker.wait(timeout)

    def close(self) -> None:
        """Write everything, mark the run ended, and stop the thread and the writing process."""
        if self._closed:
            return
        self._put("run_end", (time.time(), self.run_id))
        self._events.append(None)
        self._wake.set()
        self._thread.join(30)
        try:
            self._sink.wait(30)
        except subprocess.TimeoutExpired:
            self._sink.kill()
        self._closed = True
        self._answers.join(30)
        if self._sink.stdout is not None:
            self._sink.stdout.close()


def _start_sink(path: Path) -> subprocess.Popen[bytes]:
    """Start the process that writes this run's events (see ``_sink``)."""
    env = dict(os.environ)
    # serdoctor itself must import there, wherever it was imported from here
    home = str(Path(__file__).resolve().parents[2])  # the folder that holds serdoctor/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (home, env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "serdoctor.monitor._sink", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,  # a Ctrl-C of the run is the executor's to handle
    )

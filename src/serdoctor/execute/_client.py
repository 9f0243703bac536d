"""``serdoctor.Executor``: the client, in the user's process.

::

    submit() ─┬─ (a lone task) ─────────────── DEALER "+" ──▶ interchange ──▶ pools
              └▶ outgoing queue ──▶ IO thread ──┘
    Future  ◀── resolve / retry ◀── IO thread ◀─ DEALER ◀── results, lost tasks, pool list

``submit`` serializes the task in the caller's thread (so an argument that
cannot be sent fails at once, naming the sub-object). A task submitted while
few others are unfinished, and none waits to go, is sent from that thread (see
``_send_now``); otherwise the frames go to one IO thread, which batches tasks
into messages, resolves futures, retries failures within their budget, and
notices when the interchange is gone.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import contextlib
import dataclasses
import itertools
import json
import logging
import math
import os
import select
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from serdoctor.errors import (
    BlockError,
    DependencyError,
    DeserializationError,
    IncompatiblePythonError,
    InterchangeLost,
    ManagerLost,
    WorkerLost,
)
from serdoctor.execute import _messages as m
from serdoctor.execute import _worker
from serdoctor.execute._config import InterchangeConfig, Secrets
from serdoctor.execute._deps import find_futures, replace_futures
from serdoctor.execute._memo import TaskMemo
from serdoctor.execute._pool import check_preload
from serdoctor.execute._scaling import BlockInfo, Scaler, ScalingSettings
from serdoctor.execute.providers._base import Provider
from serdoctor.serialize import Serializer
from serdoctor.serialize._envelope import read_head
from serdoctor.serialize._environment import PYTHON_MINOR

log = logging.getLogger("serdoctor.executor")

OnMismatch = Literal["route", "warn", "error"]
RetryHandler = Callable[[BaseException, "TaskInfo"], float]

_BATCH_TASKS = 2000
_BATCH_BYTES = 64 << 20
_TRIM_TASKS = 1000  # after a burst of this many tasks, the IO thread trims when idle
_WINDOW = 10_000  # tasks sent to the interchange and not yet taken in by it, at most
_SOCKET_BUFFER = 4 << 20
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR
_DIRECT_MAX = 4  # with at most this many tasks unfinished, submit() sends a task itself
# a thread that waits on a result reads it itself (see Executor._await):
_LEAD_POLL_MS = 10  # it looks at least this often whether the executor is closing
_LEAD_MAX = 1.0  # seconds it reads in one wait, at most; then it waits as usual
_TICK_MS = 2  # meanwhile the IO thread reads what nobody waits for this often...
_LINGER = 0.1  # ...until nobody has waited so for this many seconds


@dataclass(frozen=True)
class TaskInfo:
    """What a retry handler is told about the task that failed."""

    id: int
    function: str
    attempt: int
    retries: int
    spent: float


@dataclass(frozen=True)
class PoolInfo:
    """One attached pool, as ``executor.pools()`` reports it."""

    id: str
    host: str
    pid: int
    python: str
    env_digest: str | None
    workers: int
    tasks_running: int
    tasks_outstanding: int
    last_heartbeat: float
    state: str
    reason: str = ""
    block_id: str | None = None


@dataclass
class _Options:
    retries: int | None = None
    walltime: float | None = None
    priority: int = 0
    checkpoint: TaskMemo | None = None


class _Future(concurrent.futures.Future[Any]):
    """A task's future: a thread that waits on it reads its result itself (``Executor._await``)."""

    def __init__(self, executor: Executor) -> None:
        super().__init__()
        self._serdoctor_executor = weakref.ref(executor)

    def result(self, timeout: float | None = None) -> Any:
        """The task's result, as ``concurrent.futures.Future.result``."""
        return super().result(self._await(timeout))

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The task's exception, as ``concurrent.futures.Future.exception``."""
        return super().exception(self._await(timeout))

    def _await(self, timeout: float | None) -> float | None:
        """Wait in this thread (see ``Executor._await``); the time left of ``timeout``."""
        if self.done():
            return timeout
        executor = self._serdoctor_executor()
        if executor is None:
            return timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        executor._await(self, deadline)
        return None if deadline is None else max(0.0, deadline - time.monotonic())


@dataclass(slots=True)
class _Task:
    id: int
    future: concurrent.futures.Future[Any]
    name: str
    frames: list[Any]
    options: _Options
    retries: int
    fn: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    spent: float = 0.0
    method: str | None = None
    size: int = 0
    proxies: int = 0  # objects its payload sends as proxies (for monitoring)
    submitted: float = field(default_factory=time.time)
    sent: float | None = None
    pool: str | None = None
    timing: list[Any] | None = None


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _is_loopback(address: str) -> bool:
    return address in ("localhost", "::1") or address.startswith("127.")


def _describe(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}"


class Executor(concurrent.futures.Executor):
    """Run Python callables on worker pools, through serdoctor's serializer stack.

    ``Executor(workers=4)`` starts an interchange and one local pool of four
    worker processes; ``workers=0`` starts none and waits for pools started
    elsewhere with :meth:`worker_command`. See ``docs/executor.md``.

    Args:
        workers: worker processes in the local pool (0: none; pools attach later).
        address: where pools connect; loopback by default. Any other address
            turns on CURVE encryption for the pools' connections.
        port: the port pools connect to (0: a free one).
        retries: how many times a failed task is tried again (per task:
            :meth:`options`).
        retry_handler: ``handler(exception, task_info) -> cost`` of a failure
            against the retry budget (e.g. 0 for WorkerLost, ``math.inf`` to
            never retry a ValueError); 1 per failure without one.
        serializer: the stack's settings for tasks and results (methods,
            ``by_value_modules``, proxies); its key is replaced by the
            executor's own random key.
        on_mismatch: a pool whose environment differs: ``"route"`` sends
            by-value code only to pools on this Python major.minor;
            ``"warn"`` warns and sends anything anywhere; ``"error"`` refuses
            a pool whose differences matter.
        heartbeat: seconds between heartbeats.
        heartbeat_threshold: seconds of silence after which a pool (or the
            interchange, or this client) counts as lost.
        worker_env: environment variables added for the pools this executor starts.
        worker_init: shell lines run before a local pool starts (activate a venv).
        preload: modules every pool this executor starts (and the pools
            :meth:`worker_command` starts) imports before it forks its workers,
            e.g. ``["numpy"]``: its workers share that memory instead of each
            importing its own copy, and replacement workers start with them
            loaded. A module the local pool cannot import fails the
            constructor with a ValueError that names it (a pool started
            elsewhere exits with that message instead).
        checkpoint: a store of results (:class:`serdoctor.Checkpoint`): tasks
            whose results are stored complete without being sent.
        monitoring: a path: record every task, try and pool in that SQLite file.
        grace: seconds a by-value task waits for a pool on this Python before it
            fails with IncompatiblePythonError (``heartbeat_threshold`` by default).
        provider: start pools as blocks (``LocalProvider()``, ``SlurmProvider(...)``),
            scaled between ``min_blocks`` and ``max_blocks``: ``init_blocks`` at
            start, more while tasks outnumber worker slots (times ``parallelism``),
            idle ones cancelled after ``max_idletime`` seconds; after
            ``max_block_failures`` failed blocks in a row the queued tasks fail with
            BlockError. ``workers_per_block``: workers per node (its cores by
            default); ``scale_interval``: seconds between checks. See ``docs/scaling.md``.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str = "127.0.0.1",
        port: int = 0,
        retries: int = 0,
        retry_handler: RetryHandler | None = None,
        serializer: Serializer | None = None,
        on_mismatch: OnMismatch = "route",
        heartbeat: float = 2.0,
        heartbeat_threshold: float = 10.0,
        worker_env: Mapping[str, str] | None = None,
        worker_init: str | None = None,
        preload: Sequence[str] = (),
        checkpoint: TaskMemo | None = None,
        monitoring: str | os.PathLike[str] | None = None,
        grace: float | None = None,
        provider: Provider | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 4,
        parallelism: float = 1.0,
        max_idletime: float = 60.0,
        max_block_failures: int = 3,
        workers_per_block: int | None = None,
        scale_interval: float = 2.0,
    ) -> None:
        workers = (os.cpu_count() or 1) if workers is None else workers
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be a whole number >= 0, not {workers!r}")
        if on_mismatch not in ("route", "warn", "error"):
            raise ValueError(f"on_mismatch must be 'route', 'warn' or 'error', not {on_mismatch!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        self.preload = check_preload(preload)
        if not 0 < heartbeat < heartbeat_threshold:
            raise ValueError("need 0 < heartbeat < heartbeat_threshold (seconds)")
        scaling = ScalingSettings(
            init_blocks, min_blocks, max_blocks, parallelism, max_idletime, max_block_failures,
            workers_per_block, scale_interval, getattr(provider, "nodes_per_block", 1),
        )  # fmt: skip
        if provider is not None:
            scaling.check()
        if checkpoint is not None and not isinstance(checkpoint, TaskMemo):
            raise TypeError("checkpoint= needs lookup() and record(), e.g. serdoctor.Checkpoint")
        self.workers = workers
        self.address = address
        self.retries = retries
        self.retry_handler = retry_handler
        self.on_mismatch: OnMismatch = on_mismatch
        self.heartbeat = heartbeat
        self.heartbeat_threshold = heartbeat_threshold
        self.grace = heartbeat_threshold if grace is None else grace
        self.checkpoint = checkpoint
        self._secrets = Secrets(os.urandom(32))
        base = serializer or Serializer()
        self.serializer = Serializer(
            base.methods,
            by_value_modules=base.by_value_modules,
            key=self._secrets.key,
            allow=base.allow,
            proxy=base.proxy,
            on_mismatch=base.on_mismatch,
        )
        self._ids = itertools.count()
        self._tasks: dict[int, _Task] = {}
        self._waiting: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()
        self._outgoing: collections.deque[tuple[bytes, Any]] = collections.deque()
        self._cancels: collections.deque[int] = collections.deque()
        self._sent = self._acked = 0  # tasks sent to the interchange, and taken in by it
        self._finished = 0  # results since the last trim (see _io_loop)
        # outcomes read by the IO thread, set on their futures at the end of its turn
        self._settle: list[tuple[concurrent.futures.Future[Any], BaseException | None, Any]] = []
        self._pools: dict[str, dict[str, Any]] = {}
        self._verdicts: dict[str, bool] = {}
        self._dropped = 0
        self._shutdown = False
        self._broken: str | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="serdoctor-executor-"))
        self._monitor = None
        self._done_tries: list[tuple[Any, ...]] = []  # for self._monitor, per message
        self._procs: list[subprocess.Popen[bytes]] = []
        self._closed = threading.Event()
        self._env_cache: Any = None
        self._env_dict: dict[str, Any] | None = None  # its JSON form, as pools send theirs
        curve_secret = curve_public = None
        if not _is_loopback(address):
            import zmq

            curve_public, curve_secret = zmq.curve_keypair()
            self._secrets.curve_server_public = curve_public
        try:
            self.port = port or _free_port(address)
        except OSError as exc:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise ValueError(f"cannot use address {address!r}: {exc.strerror}") from None
        # the connection to the interchange: a socket pair, the other end the interchange's
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for end in (self._sock, theirs):  # room for a batch of tasks or results (the
            # system caps it: net.core.wmem_max): fewer turns to write one
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        config = InterchangeConfig(
            key=self._secrets.key.hex(),
            address=address,
            client_fd=theirs.fileno(),
            pool_port=self.port,
            heartbeat=heartbeat,
            heartbeat_threshold=heartbeat_threshold,
            on_mismatch=on_mismatch,
            python_minor=PYTHON_MINOR,
            grace=self.grace,
            client_pid=os.getpid(),
            curve_secret=curve_secret.decode() if curve_secret else None,
            curve_public=curve_public.decode() if curve_public else None,
            # the local pool: the interchange runs its workers itself (one process and one
            # hop fewer), unless worker_init must run first in a pool process of its own
            local_workers=workers if worker_init is None else 0,
            preload=list(self.preload),
        )
        try:
            try:
                self._interchange = self._start_interchange(config, _pool_env(worker_env))
            finally:
                theirs.close()
            if workers and worker_init is not None:
                self._start_local_pool(workers, worker_env, worker_init)
            # Our fingerprint, to judge pools by, is taken while the interchange
            # starts, not when the first pool registers: then it would be taken in
            # the middle of your first tasks, and its short-lived objects, mixed with
            # theirs, would keep ~7 MB of memory from going back (measured).
            with contextlib.suppress(Exception):  # taken again, and reported, when needed
                self._client_environment()
            self._wait_interchange()
        except BaseException:
            self._kill_children()
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        if monitoring is not None:
            from serdoctor.monitor import MonitorWriter

            self._monitor = MonitorWriter(
                Path(monitoring),
                executor={"workers": workers, "address": address, "retries": retries,
                          "on_mismatch": on_mismatch},
            )  # fmt: skip
        # ``_sock`` is read by the IO thread alone, and written under ``_tx_lock``: by
        # the IO thread, and by submit() (a task sent from the caller's thread skips a
        # hand-over to the IO thread). Neither side ever blocks writing (see _post).
        self._tx_lock = threading.Lock()
        self._reader = _worker.Reader(self._sock)
        self._writer = _worker.Writer(self._sock)
        self._wake_r, self._wake_w = os.pipe()  # wakes the IO thread
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._woken = False
        self._last_heard = time.monotonic()
        # Who reads the socket holds _reading: the IO thread (while _own), or a thread
        # that waits on a result (see _await); _lead_wanted asks the IO thread to let go.
        self._reading = threading.RLock()
        self._own = True
        self._lead_wanted = False
        self._last_lead = 0.0
        self._lead_poller = select.poll()
        self._lead_poller.register(self._sock.fileno(), select.POLLIN)
        self._trimmer = m.Trimmer()
        self._thread = threading.Thread(target=self._io_loop, name="serdoctor-executor-io")
        self._thread.daemon = True
        self._thread.start()
        _LIVE.add(self)
        self._scaler: Scaler | None = None
        if provider is not None:
            self._scaler = Scaler(
                provider, scaling, self._block_command, self._load, self._fail_queued,
                self._record_block,
            )  # fmt: skip
            self._scaler.start()

    # -- processes -------------------------------------------------------------------------

    def _start_interchange(
        self, config: InterchangeConfig, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "serdoctor.execute._interchange"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
            env=env,  # the local pool's workers are its children
            pass_fds=(config.client_fd,),
        )
        self._procs.append(proc)
        assert proc.stdin is not None
        proc.stdin.write(config.to_json().encode() + b"\n")
        proc.stdin.close()
        return proc

    def _wait_interchange(self) -> None:
        proc = self._interchange
        assert proc.stdout is not None
        line = proc.stdout.readline()
        proc.stdout.close()
        try:
            answer = json.loads(line)
        except ValueError:
            raise InterchangeLost(
                f"the interchange did not start (exit code {proc.wait(5)}): see its stderr above"
            ) from None
        if "error" in answer:
            proc.wait(5)
            if answer.get("preload"):
                raise ValueError(str(answer["error"]))
            raise ValueError(
                f"the interchange could not listen on {self.address}:{self.port}: "
                f"{answer['error']}; choose another port= (0 picks a free one)"
            )

    def _pool_argv(self, workers: int, key_file: str) -> list[str]:
        return [
            "-m", "serdoctor.execute._pool", self.pool_url, "--workers", str(workers),
            "--key-file", key_file, "--heartbeat", str(self.heartbeat),
            "--heartbeat-threshold", str(self.heartbeat_threshold), *self._preload_argv(),
        ]  # fmt: skip

    def _preload_argv(self) -> list[str]:
        return [arg for name in self.preload for arg in ("--preload", name)]

    def _start_local_pool(
        self, workers: int, env: Mapping[str, str] | None, init: str | None
    ) -> None:
        argv = [sys.executable, *self._pool_argv(workers, "-")]
        if init:
            argv = ["/bin/bash", "-c", f"{init}\nexec {shlex.join(argv)}"]
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, env=_pool_env(env), start_new_session=True
        )
        self._procs.append(proc)
        assert proc.stdin is not None
        proc.stdin.write(self._secrets.to_json().encode() + b"\n")  # the key: never on argv
        proc.stdin.close()

    @property
    def pool_url(self) -> str:
        """Where pools connect: ``tcp://ADDRESS:PORT``."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"tcp://{host}:{self.port}"

    def worker_command(self, workers: int | None = None) -> str:
        """The command line that starts a pool elsewhere and attaches it here.

        Its key file (written now, readable by its owner only) must be copied
        to the pool's machine, by a channel you trust.
        """
        key_file = self._secrets.write(self._tmp / "executor.key")
        n = workers or os.cpu_count() or 1
        return shlex.join(
            [
                "ser-doctor", "worker", self.pool_url, "--workers", str(n),
                "--key-file", str(key_file),
                "--heartbeat", str(self.heartbeat),
                "--heartbeat-threshold", str(self.heartbeat_threshold), *self._preload_argv(),
            ]
        )  # fmt: skip

    # -- blocks ----------------------------------------------------------------------------

    def _block_command(self, block_id: str) -> str:
        key_file = self._secrets.write(self._tmp / "executor.key")
        argv = [
            sys.executable, "-m", "serdoctor.execute._pool", self.pool_url,
            "--key-file", str(key_file), "--heartbeat", str(self.heartbeat),
            "--heartbeat-threshold", str(self.heartbeat_threshold), "--block-id", block_id,
            *self._preload_argv(),
        ]  # fmt: skip
        if self._scaler is not None and self._scaler.settings.workers_per_block:
            argv += ["--workers", str(self._scaler.settings.workers_per_block)]
        return shlex.join(argv)

    def _load(self) -> tuple[int, dict[str, dict[str, Any]]]:
        with self._lock:
            pending = len(self._tasks) + len(self._waiting)
        return pending, dict(self._pools)

    def _fail_queued(self, error: BaseException) -> None:
        """Fail every task not running yet (the blocks that would run them keep failing)."""
        with self._lock:
            tasks = [t for t in self._tasks.values() if not t.future.running()]
        for task in tasks:
            with self._lock:
                self._tasks.pop(task.id, None)
            self._send(m.CANCEL, task.id)
            self._record_end(task, error)
            if task.future.set_running_or_notify_cancel():
                task.future.set_exception(error)

    def _record_block(self, block: BlockInfo) -> None:
        if self._monitor is not None:
            label = self._scaler.provider.label if self._scaler else None
            self._monitor.block_state(
                block.id, block.state, provider=label, job_id=block.job_id,
                reason=block.reason or None, stderr=block.stderr or None,
            )  # fmt: skip

    def blocks(self) -> list[BlockInfo]:
        """The blocks this executor started, with their states and the batch system's words."""
        if self._scaler is None:
            return []
        with self._scaler._lock:
            return [dataclasses.replace(b) for b in self._scaler.blocks.values()]

    # -- submitting ------------------------------------------------------------------------

    def options(
        self,
        *,
        retries: int | None = None,
        walltime: float | None = None,
        priority: int = 0,
        checkpoint: TaskMemo | None = None,
    ) -> _Submitter:
        """Per-task settings: ``executor.options(retries=3, walltime=60).submit(fn, x)``."""
        if walltime is not None and walltime <= 0:
            raise ValueError(f"walltime must be > 0 seconds, not {walltime}")
        if retries is not None and retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        return _Submitter(self, _Options(retries, walltime, priority, checkpoint))

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Schedule ``fn(*args, **kwargs)``; return a Future for its result."""
        return self._submit(fn, args, kwargs, _Options())

    def _submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: _Options,
    ) -> concurrent.futures.Future[Any]:
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown(): create a new Executor")
        if self._broken:
            raise InterchangeLost(self._broken)
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, not {type(fn).__name__}: {fn!r}")
        if (
            self._scaler is not None
            and self._scaler.stopped_reason is not None
            and not any(p.get("state") == "active" for p in self._pools.values())
        ):
            raise BlockError(self._scaler.stopped_reason)
        future: concurrent.futures.Future[Any] = _Future(self)
        deps: list[concurrent.futures.Future[Any]] = []
        find_futures((args, kwargs), deps)
        retries = self.retries if options.retries is None else options.retries
        task = _Task(next(self._ids), future, _describe(fn), [], options, retries, fn, args, kwargs)
        if deps:
            self._wait_for(task, deps)
        else:
            self._prepare(task)
        return future

    def _wait_for(self, task: _Task, deps: list[concurrent.futures.Future[Any]]) -> None:
        with self._lock:
            self._waiting.add(task.future)
        remaining = [len(set(deps))]
        lock = threading.Lock()

        def one_done(_: concurrent.futures.Future[Any]) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return
            with self._lock:
                self._waiting.discard(task.future)
            failed = next((d for d in deps if d.cancelled() or d.exception() is not None), None)
            if failed is not None:
                self._fail_dependency(task, failed)
                return
            try:
                task.args, task.kwargs = replace_futures((task.args, task.kwargs))
            except Exception as exc:
                task.future.set_exception(exc)
                return
            self._prepare(task, in_callback=True)

        for dep in set(deps):
            dep.add_done_callback(one_done)

    def _fail_dependency(self, task: _Task, failed: concurrent.futures.Future[Any]) -> None:
        if self._monitor is not None:
            self._monitor.task_submitted(task.id, task.name, when=task.submitted)
        if failed.cancelled():
            cause: BaseException = concurrent.futures.CancelledError()
            chain: tuple[str, ...] = ("a cancelled task",)
        else:
            cause = failed.exception()  # type: ignore[assignment]
            chain = getattr(cause, "chain", None) or (
                f"{getattr(failed, '_serdoctor_name', 'a task')} failed with "
                f"{type(cause).__name__}: {cause}",
            )
        error = DependencyError(
            f"task {task.id} ({task.name}) did not run: a task it depends on failed: "
            + " <- ".join(chain),
            chain=(f"task {task.id} ({task.name})", *chain),
        )
        error.__cause__ = cause
        if task.future.set_running_or_notify_cancel():
            task.future.set_exception(error)
        self._record_end(task, error)

    def _prepare(self, task: _Task, *, in_callback: bool = False) -> None:
        """Look the task up in the checkpoint store, serialize it, queue it."""
        memo = task.options.checkpoint or self.checkpoint
        if memo is not None and task.fn is not None:
            try:
                hit, value = memo.lookup(task.fn, task.args, task.kwargs)
            except Exception as exc:  # a broken store must not break the task
                log.warning("checkpoint lookup failed for %s: %s", task.name, exc)
                hit, value = False, None
            if hit:
                if task.future.set_running_or_notify_cancel():
                    task.future.set_result(value)
                if self._monitor is not None:
                    self._monitor.task_submitted(task.id, task.name, when=task.submitted)
                    self._monitor.task_status(task.id, "memo_hit")
                return
        try:
            task.frames = self._dump(task)
        except Exception as exc:
            if not in_callback:
                raise
            if task.future.set_running_or_notify_cancel():
                task.future.set_exception(exc)
            return
        if memo is None:  # keep the function and arguments only for the store
            task.fn, task.args, task.kwargs = None, (), {}
        if self._closed.is_set():  # (its dependencies came after shutdown(wait=False))
            error = RuntimeError(
                f"task {task.id} ({task.name}) was never sent: the executor shut down "
                "while it waited for the tasks it depends on"
            )
            _complete(task.future, error, None)  # (the monitor, if any, is closed)
            return
        task.future._serdoctor_name = f"task {task.id} ({task.name})"  # type: ignore[attr-defined]
        task.future._serdoctor_id = task.id  # type: ignore[attr-defined]
        task.future.add_done_callback(self._on_done)
        with self._lock:
            self._tasks[task.id] = task
        if self._broken:  # lost meanwhile: failed here, unless the sweep of lost tasks saw it
            with self._lock:
                lost = self._tasks.pop(task.id, None)
            if lost is not None:
                self._lose(task)
            return
        self._send(m.TASKS, task)

    def _dump(self, task: _Task) -> list[Any]:
        """The task's frames; its proxies (with a ProxyPolicy) are evicted when it resolves."""
        call = (task.fn, task.args, task.kwargs)
        if self.serializer.proxy is None:
            return self.serializer.dumps_frames(call)
        from serdoctor.serialize.proxy import proxy_scope

        with proxy_scope(evict=False) as scope:
            frames = self.serializer.dumps_frames(call)
        if len(scope):
            task.future.add_done_callback(lambda _: scope.evict())
        return frames

    def _on_done(self, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled():
            task_id = getattr(future, "_serdoctor_id", None)
            if task_id is not None:
                with self._lock:
                    task = self._tasks.pop(task_id, None)
                self._send(m.CANCEL, task_id)
                if self._monitor is not None:
                    if task is not None and task.method is None:  # never sent: no row yet
                        task.method = ""
                        self._monitor.tasks_submitted(
                            [(task.id, task.name, task.submitted, None, None, None)]
                        )
                    self._monitor.task_status(task_id, "cancelled")

    def _send(self, kind: bytes, item: Any) -> None:
        if kind == m.CANCEL:
            self._cancels.append(item)
        elif self._send_now(item):
            return
        else:
            self._outgoing.append((kind, item))
        self._wake()

    def _wake(self) -> None:
        """Wake the IO thread (once, until it has seen it)."""
        with self._lock:
            if self._woken or self._closed.is_set():
                return
            self._woken = True
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\0")

    def _send_now(self, task: _Task) -> bool:
        """Send ``task`` from this thread, if nothing else waits to go and few tasks run.

        A task sent by the caller's thread reaches the interchange without a
        hand-over to the IO thread (a wake-up of it, and a turn of its loop): the
        latency of a lone task. Under load tasks queue for the IO thread, which
        sends them many to a message.
        """
        if self._outgoing or len(self._tasks) > _DIRECT_MAX:
            return False
        with self._tx_lock:
            if (
                self._outgoing
                or self._writer.pending
                or self._closed.is_set()
                or self._sent - self._acked >= _WINDOW
            ):
                return False
            self._sent += 1
            self._send_tasks([task])
            if not self._writer.pending:
                return True
        self._wake()  # the rest of it is for the IO thread to write
        return True

    def _post(self, parts: list[Any]) -> None:
        """Send one message to the interchange, as far as its socket takes it now.

        Called under ``_tx_lock``. What the socket does not take waits in
        ``_writer`` for the IO thread, which never blocks: it must go on reading
        results and checking that the interchange is alive (stopped, it would not
        read, and a blocking write would never return).
        """
        self._writer.add(0, parts)
        self._write()

    def _write(self) -> None:
        try:
            self._writer.flush()
        except OSError:  # its end is closed: the IO thread reports that, by the socket's end
            self._writer.discard()

    # -- the IO thread ---------------------------------------------------------------------

    def _io_loop(self) -> None:
        key = self._secrets.key
        sock, wake = self._sock.fileno(), self._wake_r
        poller = select.poll()
        poller.register(wake, select.POLLIN)
        with self._tx_lock:
            self._post(m.pack(key, m.HEARTBEAT, {}))  # the interchange answers it
        next_beat = time.monotonic() + self.heartbeat
        trimmer = self._trimmer
        watching = 0  # what the poller watches the socket for
        lost = False  # the interchange's end was seen closed
        own = self._reading.acquire()  # this thread reads, until a waiting thread may (_await)
        try:
            while not self._closed.is_set():
                want = (select.POLLIN if own and not self._reader.closed else 0) | (
                    select.POLLOUT if self._writer.pending else 0
                )
                if want != watching:  # (unwatched: a closed socket must not wake it for ever)
                    if not watching:
                        poller.register(sock, want)
                    elif want:
                        poller.modify(sock, want)
                    else:
                        poller.unregister(sock)
                    watching = want
                timeout = trimmer.timeout(max(1, int(self.heartbeat * 250)))
                events = poller.poll(timeout if own else min(timeout, _TICK_MS))
                for fd, event in events:
                    if fd == wake:
                        with self._lock, contextlib.suppress(BlockingIOError):
                            self._woken = False
                            os.read(wake, 4096)
                    elif fd == sock:
                        if event & select.POLLOUT:
                            with self._tx_lock:
                                self._write()
                        if event & _READABLE and own:
                            self._read()
                # between threads that read their results themselves: what nobody waits
                # for (a callback's task, say) is read here, a tick at most after it came
                ticked = not own and self._reading.acquire(blocking=False)
                if ticked and not self._reader.closed:
                    self._read()
                if self._reader.closed and not lost:  # the interchange has gone: see to it now
                    lost, next_beat = True, 0.0
                if self._finished >= _TRIM_TASKS and not self._tasks:
                    self._finished = 0  # a burst is over: what it used goes back
                    trimmer.soon()
                if not self._reader.closed:
                    with self._tx_lock:
                        self._flush()
                now = time.monotonic()
                trimmer.tick(now)
                if now >= next_beat:
                    next_beat = now + self.heartbeat
                    with self._tx_lock:
                        self._post(m.pack(key, m.HEARTBEAT, {}))
                    self._check_interchange(now)
                if own or ticked:
                    self._resolve()
                if own and self._lead_wanted:
                    # a thread waited on a result: from its next wait on, it reads its
                    # results itself (see _await), and this thread only ticks
                    self._lead_wanted = False
                    own = self._own = False
                    self._last_lead = now
                    self._reading.release()
                elif ticked:
                    if now - self._last_lead > _LINGER:
                        own = self._own = True  # nobody has waited so for a while: read as before
                    else:
                        self._reading.release()
            if not own:  # a thread reading now stops at once (it sees _closed)
                own = self._reading.acquire()
            self._resolve()
            with self._tx_lock:
                self._post(m.pack(key, m.SHUTDOWN, {}))
            deadline = time.monotonic() + 1.0  # what waits to be written: a moment more
            if watching:
                poller.unregister(sock)
            poller.register(sock, select.POLLOUT)
            while self._writer.pending and not self._reader.closed and time.monotonic() < deadline:
                poller.poll(100)
                with self._tx_lock:
                    self._write()
        finally:
            with self._tx_lock:
                self._sock.close()
            if own:
                self._reading.release()

    def _await(self, future: concurrent.futures.Future[Any], deadline: float | None) -> None:
        """Wait for ``future`` in the caller's thread, reading its result here if nobody else does.

        A thread that waits on results one after another (submit, result, submit...)
        saves a hand-over per task this way: woken by the socket itself, it reads
        its result and returns, where the IO thread would read it, then wake it.
        The IO thread reads as before while it has not seen anybody wait (the
        first wait asks it to let go), and takes over again :data:`_LINGER` after
        the last such wait; meanwhile it reads, every :data:`_TICK_MS`, what came
        for nobody's wait (a task awaited with ``concurrent.futures.wait``, or by a
        callback). A thread reads for :data:`_LEAD_MAX` at most, then waits as usual.
        """
        end = time.monotonic() + _LEAD_MAX
        if deadline is not None:
            end = min(end, deadline)
        while not future.done() and not self._closed.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            if not self._reading.acquire(blocking=False):
                if self._own:  # the IO thread reads: it resolves this one, the next is ours
                    self._lead_wanted = True
                    return
                if not self._reading.acquire(timeout=min(left, _TICK_MS / 1000)):
                    continue  # another thread reads (and may resolve this one meanwhile)
            try:
                if self._reader.closed or self._closed.is_set():
                    return  # the IO thread sees to that
                ms = max(1, min(_LEAD_POLL_MS, math.ceil(left * 1000)))
                if self._lead_poller.poll(ms):
                    self._read()
                    if self._reader.closed or self._outgoing or self._cancels:
                        self._wake()  # the IO thread reports the loss, or sends what waits
                settle, self._settle = self._settle, []
            finally:
                self._last_lead = time.monotonic()
                self._reading.release()
            for outcome in settle:  # (callbacks run with the socket free for others)
                _complete(*outcome)

    def _read(self) -> None:
        # (a function of its own: no message outlives it, as a loop variable of _io_loop
        # would keep the last one, and a large result's buffer, until the next came)
        for _, parts in self._reader.read(200):
            self._receive(parts)

    def _flush(self) -> None:
        """Send what is waiting: cancellations, then tasks while the window allows.

        Tasks go while the socket takes them, and while at most ``_WINDOW`` are sent
        that the interchange has not yet said it took in (``received`` in its
        messages): when the interchange is busier than the client, tasks wait here,
        as Python objects, not as bytes queued for the socket (several times their
        size).
        """
        if self._writer.pending:
            return  # the socket is full: the rest waits here (as objects, not bytes)
        key = self._secrets.key
        cancels: list[int] = []
        while self._cancels:
            cancels.append(self._cancels.popleft())
        if cancels:
            self._post(m.pack(key, m.CANCEL, {"ids": cancels}))
        tasks: list[_Task] = []
        size = 0
        while self._outgoing and self._sent - self._acked < _WINDOW:
            _, item = self._outgoing.popleft()
            if item.future.cancelled():
                continue  # cancelled before it left: the interchange never hears of it
            self._sent += 1
            tasks.append(item)
            size += m.size(item.frames)
            if len(tasks) >= _BATCH_TASKS or size >= _BATCH_BYTES:
                self._send_tasks(tasks)
                tasks, size = [], 0
                if self._writer.pending:
                    break
        if tasks:
            self._send_tasks(tasks)

    def _send_tasks(self, tasks: list[_Task]) -> None:
        if self._monitor is not None:  # first sends: one event for the batch
            submitted = []
            for t in tasks:
                if t.attempt == 0 and t.method is None:
                    (t.method, t.proxies), t.size = _facts(t.frames[0]), m.size(t.frames)
                    submitted.append((t.id, t.name, t.submitted, t.method, t.size, None))
            self._monitor.tasks_submitted(submitted)
        rows = [[t.id, len(t.frames), t.options.priority, t.options.walltime] for t in tasks]
        self._post(m.pack(self._secrets.key, m.TASKS, {"tasks": rows}, [t.frames for t in tasks]))
        for task in tasks:
            if task.retries == 0:
                task.frames = []  # no second try: the payload need not stay in memory

    def _receive(self, parts: list[Any]) -> None:
        self._trimmer.saw_message(parts)
        kind = bytes(parts[0]) if parts else b""
        try:
            msg = m.unpack(self._secrets.key, parts, "results" if kind == m.RESULTS else None)
        except m.BadMessage as exc:
            log.warning("dropped a message from the interchange: %s", exc)
            return
        self._last_heard = time.monotonic()
        received = msg.index.get("received")
        if received is not None:
            self._acked = max(self._acked, int(received))
        if msg.kind == m.RESULTS:
            for pool, ids in msg.index.get("started", {}).items():
                self._started(pool, ids)
            rows = msg.index["results"]
            self._finished += len(rows)
            envs = m.split(msg.frames, [int(r[1]) for r in rows])
            for row, frames in zip(rows, envs, strict=True):
                self._result(int(row[0]), frames, str(row[2]), row[3:6])
            if self._done_tries:  # the message's successful tries: one monitoring event
                assert self._monitor is not None
                self._monitor.tries_done(self._done_tries)
                self._done_tries = []
        elif msg.kind == m.LOST:
            for task_id, what, reason in msg.index["tasks"]:
                error: BaseException
                if what == "incompatible":
                    error = IncompatiblePythonError(reason)
                elif what == "manager_lost":
                    error = ManagerLost(reason)
                else:
                    error = DeserializationError(reason)
                self._failed(int(task_id), error)
        elif msg.kind == m.POOLS:
            self._update_pools(msg.index)

    def _started(self, pool: str, ids: list[int]) -> None:
        now = time.time()
        sent: list[tuple[int, int]] = []
        for task_id in ids:
            task = self._tasks.get(int(task_id))
            if task is None or task.future.done():
                continue
            if not task.future.running():
                task.future.set_running_or_notify_cancel()
            if self._monitor is not None:
                task.sent, task.pool = now, pool
                sent.append((task.id, task.attempt))
        if sent:
            assert self._monitor is not None
            self._monitor.tasks_sent(pool, sent, when=now)

    def _result(
        self, task_id: int, frames: list[Any], pool: str, timing: list[Any] | None = None
    ) -> None:
        task = self._tasks.get(task_id)
        if task is None:
            return  # cancelled, or lost and retried already
        task.pool, task.timing = pool, timing
        try:
            status, value = self.serializer.loads_frames(frames)
        except Exception as exc:  # this result cannot be loaded here: its future alone fails
            self._failed(task_id, exc, result_bytes=m.size(frames))
            return
        if status == "ok":
            with self._lock:
                self._tasks.pop(task_id, None)
            memo = task.options.checkpoint or self.checkpoint
            if memo is not None and task.fn is not None:
                try:
                    memo.record(task.fn, task.args, task.kwargs, value)
                except Exception as exc:
                    log.warning("checkpoint record failed for %s: %s", task.name, exc)
            if self._monitor is not None:
                self._record_try(task, m.size(frames), None)
            self._settle.append((task.future, None, value))
        else:
            self._failed(task_id, value, result_bytes=m.size(frames))

    def _failed(
        self, task_id: int, error: BaseException, *, result_bytes: int | None = None
    ) -> None:
        task = self._tasks.get(task_id)
        if task is None:
            return
        if self._monitor is not None:
            self._record_try(task, result_bytes, error)
        cost = 1.0
        if self.retry_handler is not None:
            info = TaskInfo(task.id, task.name, task.attempt, task.retries, task.spent)
            try:
                cost = float(self.retry_handler(error, info))
            except Exception as exc:
                log.warning("retry_handler raised %r; not retrying task %s", exc, task.id)
                cost = math.inf
        if task.spent + cost <= task.retries and not self._shutdown_cancelled(task):
            task.spent += cost
            task.attempt += 1
            if self._monitor is not None:
                self._monitor.task_status(task.id, "retried", attempt=task.attempt)
            self._outgoing.append((m.TASKS, task))
            return
        with self._lock:
            self._tasks.pop(task_id, None)
        self._record_end(task, error)
        self._settle.append((task.future, error, None))

    def _resolve(self) -> None:
        """Resolve the futures whose outcomes were read (under ``_reading``; see ``_io_loop``)."""
        settle, self._settle = self._settle, []
        for future, error, value in settle:
            _complete(future, error, value)

    def _record_try(
        self, task: _Task, result_bytes: int | None, error: BaseException | None
    ) -> None:
        assert self._monitor is not None
        worker = started = ended = None
        if task.timing and len(task.timing) == 3:
            pid, started, ended = task.timing
            worker = f"pid {pid}"
        if error is None:  # sent with the rest of its message's (see _receive)
            self._done_tries.append(
                (task.id, task.attempt, task.pool, worker, task.sent, started,
                 ended if ended is not None else time.time(), task.method, task.size,
                 result_bytes, task.proxies)
            )  # fmt: skip
        else:
            self._monitor.try_record(
                task.id, task.attempt, pool=task.pool, worker=worker, sent=task.sent,
                started=started, ended=ended, method=task.method, payload_bytes=task.size,
                result_bytes=result_bytes, proxies=task.proxies, exception=error,
            )  # fmt: skip
        task.pool = task.timing = task.sent = None

    def _shutdown_cancelled(self, task: _Task) -> bool:
        return task.future.cancelled()

    def _record_end(self, task: _Task, error: BaseException) -> None:
        if self._monitor is not None:
            self._monitor.task_status(task.id, "failed", attempt=task.attempt,
                                      detail=f"{type(error).__name__}: {error}"[:500])  # fmt: skip

    def _update_pools(self, index: dict[str, Any]) -> None:
        self._dropped = int(index.get("dropped", 0))
        seen = set()
        for info in index.get("pools", []):
            pool_id = str(info["pool_id"])
            seen.add(pool_id)
            if info.get("env") and info["env"] == self._env_dict:
                info["env"] = self._env_dict  # the same as ours: one copy, made at start
            entry = self._pools.get(pool_id)
            new = entry is None
            judge = "env" in info and pool_id not in self._verdicts
            if entry is None or judge:
                entry = {**(entry or {}), **info, "seen": time.time()}
                if judge and entry.get("state") == "refused":  # by the interchange: protocol
                    self._verdicts[pool_id] = False
                    log.error("%s", entry.get("reason"))
                elif judge:
                    self._judge_pool(pool_id, entry)  # before anyone can see the pool
                self._pools[pool_id] = entry
            else:
                # In place, keeping the objects of unchanged values: these messages come
                # every heartbeat, in the middle of bursts of tasks, and objects made
                # then and kept would keep a burst's memory from going back (each one
                # pins the allocator's arena it sits in).
                for key, value in info.items():
                    if entry.get(key) != value:
                        entry[key] = value
                entry["seen"] = time.time()
            if new:
                entry["registered"] = time.time()
            if self._monitor is not None:
                if new or judge:  # (the local pool's fingerprint comes after the pool)
                    self._monitor.pool_registered(
                        pool_id, host=str(info.get("host")), pid=int(info.get("pid", 0)),
                        python=str(info.get("python")),
                        env_digest=_digest(entry["env"]) if entry.get("env") else None,
                        workers=int(info.get("workers", 0)), block_id=info.get("block_id"),
                        mismatch=entry.get("mismatch"), when=entry["registered"],
                    )  # fmt: skip
                self._monitor.pool_heartbeat(pool_id, int(info.get("running", 0)))
        for pool_id in set(self._pools) - seen:
            if self._pools[pool_id].get("state") != "lost":
                self._pools[pool_id]["state"] = "lost"
                if self._monitor is not None:
                    self._monitor.pool_lost(pool_id)

    def _client_environment(self) -> Any:
        if self._env_cache is None:
            from serdoctor.serialize import environment

            self._env_cache = environment()
            self._env_dict = self._env_cache.to_dict()
        return self._env_cache

    def _judge_pool(self, pool_id: str, info: dict[str, Any]) -> None:
        """Compare a new pool's environment with ours; refuse, warn or route (``on_mismatch``)."""
        from serdoctor.serialize import Environment

        try:
            diff = Environment.from_dict(info["env"]).diff(self._client_environment())
        except Exception as exc:
            matters, reason = True, f"its environment fingerprint could not be read: {exc}"
        else:
            matters = diff.matters
            reason = "; ".join(
                f"{d.what}: {d.here} (pool) vs {d.there} (here): {d.why}"
                for d in diff.differences
                if d.severity == "breaks"
            )
        info["mismatch"] = reason or None
        self._verdicts[pool_id] = not matters
        if self.on_mismatch == "error":
            accept = not matters
            text = (
                f"pool {pool_id} refused: its environment differs: {reason}" if not accept else ""
            )
            if not accept:
                log.error("%s", text)
                info["state"] = "refused"
                info["reason"] = text
            index = {"pool": pool_id, "accept": accept, "reason": text}
            with self._tx_lock:
                self._post(m.pack(self._secrets.key, m.KICK, index))
        elif matters and reason:
            message = f"pool {pool_id} on {info.get('host')} differs from this client: {reason}"
            if self.on_mismatch == "route":
                message += " (by-value code goes only to pools on this Python)"
            log.warning("%s", message)
            warnings.warn(message, RuntimeWarning, stacklevel=1)

    def _check_interchange(self, now: float) -> None:
        if self._broken:
            return
        code = self._interchange.poll()
        closed = self._reader.closed  # it closed its end: exiting, most likely
        if closed and code is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._interchange.wait(1.0)
        silent = now - self._last_heard
        if code is None and silent <= self.heartbeat_threshold and not closed:
            return
        if code is not None:
            what = f"exited with code {code}"
        else:
            what = "closed its connection" if closed else f"was silent for {silent:.1f} s"
        self._broken = (
            f"the interchange (pid {self._interchange.pid}) {what}"
            ": this executor cannot run more tasks; create a new one"
        )
        log.error("%s", self._broken)
        with self._lock:
            tasks = list(self._tasks.values())
            self._tasks.clear()
        for task in tasks:
            self._lose(task)

    def _lose(self, task: _Task) -> None:
        """Fail a task that went with the interchange (``_broken`` says how)."""
        error = InterchangeLost(f"task {task.id} ({task.name}) was lost: {self._broken}")
        self._record_end(task, error)
        _complete(task.future, error, None)

    # -- information -----------------------------------------------------------------------

    def pools(self) -> list[PoolInfo]:
        """The pools attached now (and those refused or lost, with why)."""
        out = []
        for pool_id, p in sorted(self._pools.items()):
            env = p.get("env") or {}
            out.append(
                PoolInfo(
                    id=pool_id,
                    host=str(p.get("host", "?")),
                    pid=int(p.get("pid", 0)),
                    python=str(p.get("python", "?")),
                    env_digest=_digest(env) if env else None,
                    workers=int(p.get("workers", 0)),
                    tasks_running=int(p.get("running", 0)),
                    tasks_outstanding=int(p.get("outstanding", 0)),
                    last_heartbeat=float(p.get("seen", 0.0))
                    - float(p.get("last_heartbeat_age", 0)),
                    state=str(p.get("state", "?")),
                    reason=str(p.get("reason") or p.get("mismatch") or ""),
                    block_id=p.get("block_id"),
                )
            )
        return out

    @property
    def dropped_messages(self) -> int:
        """Messages the interchange dropped as unsigned, forged or malformed."""
        return self._dropped

    # -- shutting down ---------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; optionally cancel queued ones; stop every process it started."""
        self._shutdown = True
        if cancel_futures:
            with self._lock:
                tasks = list(self._tasks.values())
                waiting = list(self._waiting)
            for task in tasks:
                task.future.cancel()
            for future in waiting:
                future.cancel()
        if wait:
            with self._lock:
                pending = [t.future for t in self._tasks.values()] + list(self._waiting)
            while pending and not self._broken:
                _, not_done = concurrent.futures.wait(pending, timeout=self.heartbeat)
                pending = list(not_done)
        self._close()

    def _close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join(10)
        if self._scaler is not None:
            self._scaler.stop()
        with self._lock:  # (_send writes to it under the lock, unless closed)
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
        if self._thread.is_alive():  # (it closes the socket itself, when it ends)
            log.warning("the executor's IO thread did not stop")
        else:
            self._sock.close()
        deadline = time.monotonic() + max(5.0, self.heartbeat * 2)
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        self._kill_children()
        with self._lock:
            tasks = list(self._tasks.values())
            self._tasks.clear()
        for task in tasks:  # queued ones are cancelled; running ones went with their workers
            if not task.future.done() and not task.future.cancel():
                error = WorkerLost(
                    f"task {task.id} ({task.name}) was still running when the executor "
                    "shut down without waiting for it; its worker was stopped"
                )
                self._record_end(task, error)
                _complete(task.future, error, None)
        if self._monitor is not None:
            self._monitor.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
        _LIVE.discard(self)

    def _kill_children(self) -> None:
        import signal

        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    proc.wait(5)

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown else ("broken" if self._broken else "running")
        return f"<serdoctor.Executor {state}: {len(self._tasks)} tasks, {len(self._pools)} pools>"


class _Submitter:
    """``executor.options(...)``: submit and map with per-task settings."""

    def __init__(self, executor: Executor, options: _Options) -> None:
        self._executor = executor
        self._options = options

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Like :meth:`Executor.submit`, with these options."""
        return self._executor._submit(fn, args, kwargs, self._options)

    def map(
        self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None
    ) -> Iterator[Any]:
        """Like :meth:`Executor.map`, with these options."""
        futures = [self.submit(fn, *args) for args in zip(*iterables, strict=False)]
        end = None if timeout is None else time.monotonic() + timeout
        for future in futures:
            yield future.result(None if end is None else end - time.monotonic())


def _pool_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The environment of the processes that run local workers: the client's, plus ``extra``.

    Like multiprocessing's spawn: what the client can import, its local workers can
    (a script's folder, a test suite's rootdir); ``extra``'s PYTHONPATH comes first.
    """
    env = {**os.environ, **(extra or {})}
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths += [p or os.getcwd() for p in sys.path if p not in paths]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _complete(
    future: concurrent.futures.Future[Any], error: BaseException | None, value: Any
) -> None:
    """Set a future's outcome, unless it is done already (cancelled, say) or is cancelled now."""
    if future.done() or not (future.running() or future.set_running_or_notify_cancel()):
        return
    with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled meanwhile
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


def _facts(head: Any) -> tuple[str, int]:
    """The method and the number of proxies a payload's header names (for monitoring).

    ``read_head`` keeps the headers it decoded: the same head is not decoded per task.
    """
    header = read_head(head)[0]
    return header.method, len(header.extra.get("proxies") or ())


def _digest(env: dict[str, Any]) -> str:
    import hashlib

    text = json.dumps(env, sort_keys=True, default=str).encode()
    return hashlib.blake2b(text, digest_size=8).hexdigest()


_LIVE: weakref.WeakSet[Executor] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:  # an interpreter that exits takes its pools with it
    for executor in list(_LIVE):
        with contextlib.suppress(Exception):
            executor.shutdown(wait=False, cancel_futures=True)

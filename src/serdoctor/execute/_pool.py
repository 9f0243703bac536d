"""A worker pool (the manager): one ZeroMQ connection to the interchange, N worker processes.

::

    interchange ROUTER ◀──DEALER── manager ──socket pair──▶ worker 0
                                     │      ──socket pair──▶ worker 1 ...
                                     └ registers (environment fingerprint), heartbeats,
                                       replaces dead workers, enforces walltimes

Workers are forked from the manager (cheap, copy-on-write), the first ones
before ZeroMQ starts. A worker that dies (signal, ``os._exit``, segfault, out
of memory) fails its task with :class:`~serdoctor.errors.WorkerLost`, naming
the signal or exit code; a task past its walltime fails with
:class:`~serdoctor.errors.TaskTimeout`. Either way the worker is replaced and
the other tasks go on. The pool exits when the interchange tells it to, or
when the interchange has been silent for ``heartbeat_threshold`` seconds.

``ser-doctor worker tcp://HOST:PORT --workers N --key-file KEY`` runs one.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import gc
import importlib
import json
import os
import platform
import signal
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from serdoctor._version import __version__
from serdoctor.execute import _messages as m
from serdoctor.execute import _worker
from serdoctor.execute._config import Secrets

#: ``ser-doctor worker``'s exit code when the interchange refuses the pool (its
#: environment under ``on_mismatch="error"``, or another executor protocol); 0 when
#: it is let go, 2 for bad arguments.
REFUSED = 3


@dataclass
class _Pending:
    id: int
    frames: list[Any]
    walltime: float | None
    size: int = 0


#: The bytes of tasks written to a worker ahead of the one it will run next, at most
#: (less where the socket's buffer is smaller). A worker writing a large result
#: does not read; tasks written to it meanwhile must fit in the socket's buffer,
#: or its pool (or the interchange) would block in turn, each waiting for the
#: other. A task that does not fit waits until the worker is idle, hence reading.
AHEAD_MAX = 64 << 10

#: Tasks a worker holds at most (the one it runs and those queued behind it), when
#: there is plenty of work; two otherwise (see ``Workers.depth``).
INFLIGHT = 8

#: Tasks shorter than this (on average, lately) are short: see ``Workers.depth``.
#: Longer ones are never queued deep on a worker, where one would wait behind
#: another while a different worker idles.
SHORT = 0.005


@dataclass
class _Slot:
    pid: int
    sock: socket.socket
    inflight: collections.deque[_Pending] = field(default_factory=collections.deque)
    started: float = 0.0  # when the first in-flight task began
    ahead: int = AHEAD_MAX  # see AHEAD_MAX

    @property
    def task(self) -> int | None:
        """The task the worker is running now."""
        return self.inflight[0].id if self.inflight else None

    @property
    def walltime(self) -> float | None:
        """The running task's walltime."""
        return self.inflight[0].walltime if self.inflight else None


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = {
            "SIGKILL": " (killed: often the kernel's out-of-memory killer)",
            "SIGSEGV": " (a segmentation fault: a crash in compiled code)",
            "SIGBUS": " (a bus error: a crash in compiled code)",
            "SIGABRT": " (aborted)",
        }.get(name, "")
        return f"killed by {name} (signal {sig}){hint}"
    return f"exited with code {os.WEXITSTATUS(status)}"


class Fingerprint:
    """This process's environment fingerprint, taken by a child forked from it.

    Taking it reads the metadata of every installed distribution, with the
    modules that needs: megabytes that a long-lived interchange or pool would
    keep, and writes to memory the process shares with its workers, so that
    each of them ends up with a copy of its own (6-7 MB in all, for an
    interchange with two workers). The child takes it, sends it back as JSON
    and exits (its name in ``ps``: ``serdoctor-env``); its memory goes with it.
    Create one while the process has a single thread (before ZeroMQ's exist).

    The interchange polls :attr:`sock` and calls :meth:`read`; a pool process
    calls :meth:`wait`. If the child fails, the fingerprint is taken here after all.
    """

    def __init__(self, *, nice: int = 0) -> None:
        self.pid, self.sock = _worker.fork(b"serdoctor-env", functools.partial(_take, nice=nice))
        self._data = bytearray()

    def read(self) -> dict[str, Any] | None:
        """Read what the child sent (when :attr:`sock` is readable).

        The fingerprint (as ``Environment.to_dict`` gives it) once the child is
        done; None until then.
        """
        chunk = self.sock.recv(1 << 16)
        if chunk:
            self._data += chunk
            return None
        self.close()
        with contextlib.suppress(ValueError):
            env = json.loads(self._data)
            if isinstance(env, dict):
                return env
        from serdoctor.serialize import environment

        return environment().to_dict()  # the child failed: here, then

    def wait(self) -> dict[str, Any]:
        """The fingerprint, once the child has taken it."""
        while (env := self.read()) is None:
            pass
        return env

    def close(self) -> None:
        """Stop the child if it still runs, and collect it."""
        self.sock.close()
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)  # (a no-op on one that has exited)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0


def _take(sock: socket.socket, nice: int) -> None:
    """In a :class:`Fingerprint`'s child: take the fingerprint, send it as JSON."""
    if nice:
        os.nice(nice)  # (the interchange's: out of the way of its first tasks)
    from serdoctor.serialize import environment

    sock.sendall(json.dumps(environment().to_dict()).encode())


#: What sizes the thread pools of numerical libraries when they load: OpenMP,
#: OpenBLAS, MKL, BLIS, Accelerate, numexpr and numba.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def limit_threads(workers: int) -> dict[str, str]:
    """Share this machine's CPUs among ``workers`` workers' numerical thread pools.

    Each of :data:`THREAD_VARS` is set, in this process (whose forked workers
    inherit it), to the number of CPUs this process may run on divided by
    ``workers``, at least 1, as loky and Dask do: otherwise each of 32 workers that
    multiplies matrices starts a BLAS pool of 32 threads, and 1,024 threads fight
    for 32 cores. A variable already set (in the pool's environment, or by
    ``worker_env``) is left as it is. Call it before the workers fork and before
    a preloaded module loads. Returns what it set.
    """
    try:
        cpus = len(os.sched_getaffinity(0))  # (a Slurm job's or taskset's share)
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    value = str(max(1, cpus // max(1, workers)))
    chosen = {name: value for name in THREAD_VARS if name not in os.environ}
    os.environ.update(chosen)
    return chosen


def preload_modules(modules: Sequence[str]) -> None:
    """Import ``modules`` in this process, before it forks its workers.

    The workers then share the modules' memory with their parent (copy-on-write)
    instead of each importing its own copy, and a replacement worker starts with
    them loaded. A ValueError says which module failed, and why.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ValueError(
                f"preload: cannot import {name!r} with {sys.executable} "
                f"({type(exc).__name__}: {exc}); install it there, or drop it from preload"
            ) from None


def check_preload(modules: Any) -> tuple[str, ...]:
    """``modules`` as a tuple of module names, or a ValueError that says what is wrong."""
    if isinstance(modules, str):
        raise ValueError(f"preload takes a list of module names, not a string: [{modules!r}]")
    try:
        names = tuple(modules)
    except TypeError:
        raise ValueError(f"preload takes a list of module names, not {modules!r}") from None
    for name in names:
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise ValueError(
                f"preload: {name!r} is not a module name (like 'numpy' or 'scipy.linalg')"
            )
    return names


class Workers:
    """N forked worker processes: what a pool runs, wherever the pool lives.

    A pool process (:class:`Pool`) owns one; so does the interchange when it
    hosts the executor's local pool itself (no pool process, one hop fewer).
    Its owner polls :attr:`slots` (keyed by socket fd), calls :meth:`readable`
    for each ready one, :meth:`feed` after adding tasks, and :meth:`walltimes`
    now and then; finished tasks collect in :attr:`out` as ``(task id, frames,
    worker pid, started, ended)``, the last two wall-clock times.
    """

    def __init__(self, key: bytes, count: int) -> None:
        self.key = key
        self.count = count
        self.slots: dict[int, _Slot] = {}
        self.queue: collections.deque[_Pending] = collections.deque()
        self.out: list[tuple[Any, ...]] = []
        self.running = True
        self.runtime = 1.0  # seconds a task takes, lately (see depth); long until known
        self._serializer: Any = None

    def start(self) -> None:
        """Fork the workers (best before any thread exists: ZeroMQ's or others).

        What is loaded by now is moved out of the garbage collector's sight first
        (``gc.freeze``): a collection would write to every object it walks, and so
        copy every page the workers share with their parent, in each of them.
        """
        gc.freeze()
        while len(self.slots) < self.count:
            self._spawn()

    def _spawn(self) -> None:
        pid, sock = _worker.start(self.key)
        buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self.slots[sock.fileno()] = _Slot(pid, sock, ahead=min(AHEAD_MAX, buffer // 2))

    def add(self, task_id: int, frames: list[Any], walltime: float | None) -> None:
        """Queue a task for the next free worker (:meth:`feed` hands it over)."""
        self.queue.append(_Pending(task_id, frames, walltime, m.size(frames)))

    @property
    def busy(self) -> int:
        """How many workers are running a task."""
        return sum(1 for s in self.slots.values() if s.inflight)

    def readable(self, fd: int) -> None:
        """Read the worker behind ``fd``: its result, or its death."""
        slot = self.slots.get(fd)
        if slot is None:
            return
        message = _worker.recv_frames(slot.sock)
        if message is None:
            self._reap(slot)
            return
        now = time.monotonic()
        wall = time.time()
        self.out.append((*message, slot.pid, wall - (now - slot.started), wall))
        self.runtime += 0.1 * (now - slot.started - self.runtime)  # a moving average
        slot.inflight.popleft()
        slot.started = now

    def _reap(self, slot: _Slot, why: str | None = None) -> None:
        """Collect a dead (or killed) worker, fail its task, start a replacement."""
        from serdoctor.errors import TaskTimeout, WorkerLost

        self.slots.pop(slot.sock.fileno(), None)
        slot.sock.close()
        _, status = os.waitpid(slot.pid, 0)
        for waiting in reversed(list(slot.inflight)[1:]):  # not started: they go to another worker
            self.queue.appendleft(waiting)
        if slot.task is not None:
            if why is not None:
                exc: BaseException = TaskTimeout(why)
            else:
                exc = WorkerLost(
                    f"the worker process (pid {slot.pid}) running task {slot.task} "
                    f"{_describe_exit(status)}; its task failed, the worker was replaced",
                    exit_status=status,
                )
            if self._serializer is None:
                from serdoctor.serialize import Serializer

                self._serializer = Serializer(key=self.key)
            now = time.monotonic()
            timing = (slot.pid, time.time() - (now - slot.started), time.time())
            self.out.append((slot.task, self._serializer.dumps_frames(("err", exc)), *timing))
        if self.running:
            self._spawn()

    def depth(self, waiting: int = 0) -> int:
        """How many tasks each worker may hold, with ``waiting`` more queued elsewhere.

        Two (the one it runs and the next) normally; :data:`INFLIGHT` when tasks are
        short (:data:`SHORT`, on average lately) and there is work for every worker
        many times over, so that workers are written to
        (and woken) once per few tasks. Kept shallow otherwise: a task handed to a
        worker can no longer be cancelled, nor given to another worker.
        """
        backlog = len(self.queue) + waiting
        deep = backlog >= 4 * INFLIGHT * len(self.slots) and self.runtime < SHORT
        return INFLIGHT if deep else 2

    def room(self, waiting: int = 0) -> int:
        """How many more tasks the workers take now (see :meth:`depth`)."""
        held = sum(len(s.inflight) for s in self.slots.values()) + len(self.queue)
        return max(0, self.depth(waiting) * len(self.slots) - held)

    def feed(self, waiting: int = 0) -> None:
        """Hand queued tasks to workers, several to a worker in one message.

        The tasks are dealt out one at a time, an idle worker first, so that two
        tasks never queue on one worker while another idles; a worker takes up to
        :meth:`depth` tasks, and a busy one is topped up once it has a single task
        left: it starts its next task as soon as one ends. Each worker then gets
        its share in one write.
        """
        limit = self.depth(waiting)
        open_ = sorted(
            (s for s in self.slots.values() if len(s.inflight) <= 1),
            key=lambda s: len(s.inflight),  # idle workers first
        )
        batches: dict[int, list[tuple[int, list[Any]]]] = {id(s): [] for s in open_}
        room = {id(s): s.ahead for s in open_}  # a worker reads all it holds but its task
        while self.queue and open_:
            for slot in list(open_):
                if not self.queue:
                    break
                if len(slot.inflight) >= limit:
                    open_.remove(slot)
                    continue
                if slot.inflight:
                    room[id(slot)] -= self.queue[0].size + 64  # (and its frame header)
                    if room[id(slot)] < 0:
                        open_.remove(slot)  # it waits until the worker reads: see AHEAD_MAX
                        continue
                task = self.queue.popleft()
                if not slot.inflight:
                    slot.started = time.monotonic()
                slot.inflight.append(task)
                batches[id(slot)].append((task.id, task.frames))
        for slot in self.slots.values():
            batch = batches.get(id(slot))
            if batch:
                # a worker that died is reaped when the poller sees its closed socket
                with contextlib.suppress(OSError):
                    _worker.send_many(slot.sock, batch)

    def walltimes(self, now: float) -> None:
        """Kill and replace the workers whose task ran past its walltime."""
        for slot in list(self.slots.values()):
            if slot.task is not None and slot.walltime and now - slot.started > slot.walltime:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)
                self._reap(
                    slot,
                    f"task {slot.task} ran longer than its walltime ({slot.walltime:g} s): "
                    f"its worker (pid {slot.pid}) was killed and replaced",
                )

    def stop(self) -> None:
        """Kill every worker and collect it."""
        self.running = False
        for slot in self.slots.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.pid, signal.SIGKILL)
        for slot in self.slots.values():
            slot.sock.close()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(slot.pid, 0)
        self.slots.clear()


@dataclass
class Pool:
    """A pool process: its workers, and its ZeroMQ connection to the interchange."""

    url: str
    secrets: Secrets
    workers: int
    heartbeat: float = 2.0
    heartbeat_threshold: float = 10.0
    prefetch: int | None = None
    block_id: str | None = None
    pool_id: str = field(default_factory=lambda: new_pool_id())

    def __post_init__(self) -> None:
        self.crew = Workers(self.secrets.key, self.workers)
        self.running = True
        self.told_to_stop = False
        self.refused = False  # by the interchange, or (its protocol) by this pool itself
        self.reason = ""

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Connect, register, serve; the exit code."""
        import zmq

        crew = self.crew
        crew.start()  # before ZeroMQ's threads exist
        fingerprint = Fingerprint()  # (so is its child) taken while ZeroMQ connects
        try:
            ctx = zmq.Context()
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.RCVHWM, 0)
            sock.setsockopt(zmq.IDENTITY, self.pool_id.encode())
            if self.secrets.curve_server_public:
                public, secret = zmq.curve_keypair()
                sock.curve_serverkey = self.secrets.curve_server_public
                sock.curve_publickey, sock.curve_secretkey = public, secret
            sock.connect(self.url)
            env = fingerprint.wait()
        finally:
            fingerprint.close()  # (a no-op once it is in)
        key = self.secrets.key
        register = describe(self.pool_id, self.workers, self.prefetch, self.block_id)
        register["env"] = env
        m.send(sock, m.pack(key, m.REGISTER, register))
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        last_heard = time.monotonic()
        next_beat = last_heard + self.heartbeat
        watched: set[int] = set()
        try:
            while self.running:
                watched = watch(poller, crew, watched)
                events = dict(poller.poll(max(1, int(self.heartbeat * 250))))
                if sock in events:
                    last_heard = time.monotonic()
                    m.drain(sock, self._handle, 100)
                for fd in events:
                    if fd in crew.slots:
                        crew.readable(fd)
                crew.feed()
                if crew.out:
                    # [task, frames, worker pid, started, ended] (wall clock, for monitoring)
                    rows = [[tid, len(frames), *rest] for tid, frames, *rest in crew.out]
                    envs = [frames for _, frames, *_ in crew.out]
                    m.send(sock, m.pack(key, m.RESULTS, {"results": rows}, envs))
                    crew.out.clear()
                now = time.monotonic()
                crew.walltimes(now)
                if now >= next_beat:
                    next_beat = now + self.heartbeat
                    m.send(sock, m.pack(key, m.HEARTBEAT, {"running": crew.busy}))
                if now - last_heard > self.heartbeat_threshold:
                    self.reason = (
                        f"the interchange at {self.url} was silent for "
                        f"{now - last_heard:.1f} s "
                        f"(heartbeat_threshold={self.heartbeat_threshold:g})"
                    )
                    self.running = False
        finally:
            crew.stop()
            if not self.told_to_stop:  # leaving on our own: the interchange requeues our tasks
                with contextlib.suppress(Exception):
                    m.send(sock, m.pack(key, m.HEARTBEAT, {"leaving": True, "running": 0}))
            sock.close(linger=500)
            ctx.term()
        if self.reason and (not self.told_to_stop or self.refused):
            print(f"ser-doctor worker: stopping: {self.reason}", file=sys.stderr, flush=True)
        return REFUSED if self.refused else 0

    def _handle(self, parts: list[Any]) -> None:
        kind = bytes(parts[0].buffer) if parts else b""
        try:
            msg = m.unpack(self.secrets.key, parts, "tasks" if kind == m.TASKS else None)
        except m.BadMessage:
            return
        if msg.kind == m.TASKS:
            rows = msg.index["tasks"]
            for row, frames in zip(
                rows, m.split(msg.frames, [int(r[1]) for r in rows]), strict=True
            ):
                self.crew.add(int(row[0]), frames, row[2])
        elif msg.kind == m.SHUTDOWN:
            if not self.told_to_stop:  # (a refusal of our own, just before, says it all)
                self.reason = str(msg.index.get("reason", "told to by the interchange"))
                self.refused = bool(msg.index.get("refused"))
            self.told_to_stop = True
            self.running = False
        elif msg.kind == m.HEARTBEAT and msg.index.get("registered"):
            theirs = msg.index.get("protocol", 1)  # (an interchange from before the field: 1)
            if theirs != m.PROTOCOL:
                self.reason = (
                    f"refused: the interchange speaks executor protocol {theirs} "
                    f"(serdoctor {msg.index.get('serdoctor', 'older than 0.1.0')}), this pool "
                    f"{m.PROTOCOL} (serdoctor {__version__}): install the same serdoctor "
                    "version here and where the executor runs"
                )
                self.told_to_stop = self.refused = True
                self.running = False


def new_pool_id() -> str:
    """A pool's id: its host and a few random hex digits."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


def describe(
    pool_id: str, workers: int, prefetch: int | None, block_id: str | None
) -> dict[str, Any]:
    """What a pool says of itself when it registers (without its environment)."""
    return {
        "pool_id": pool_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "serdoctor": __version__,
        "protocol": m.PROTOCOL,
        "workers": workers,
        "prefetch": 2 * workers if prefetch is None else prefetch,
        "block_id": block_id,
    }


def watch(poller: Any, crew: Workers, watched: set[int]) -> set[int]:
    """Keep ``poller`` watching exactly the crew's worker sockets; the fds it watches."""
    now = set(crew.slots)
    if now == watched:
        return watched
    for fd in now - watched:
        poller.register(fd, 1)  # zmq.POLLIN
    for fd in watched - now:
        with contextlib.suppress(KeyError):
            poller.unregister(fd)
    return now


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The ``ser-doctor worker`` arguments."""
    parser = argparse.ArgumentParser(prog="ser-doctor worker", description=__doc__)
    parser.add_argument("url", help="the interchange's pool address, tcp://HOST:PORT")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--key-file", required=True, help="the executor's key file ('-': stdin)")
    parser.add_argument("--heartbeat", type=float, default=2.0)
    parser.add_argument("--heartbeat-threshold", type=float, default=10.0)
    parser.add_argument("--prefetch", type=int, default=None)
    parser.add_argument("--block-id", default=None)
    parser.add_argument("--preload", action="append", default=[], metavar="MODULE")
    return parser.parse_args(argv)


def check_url(url: str) -> str:
    """``tcp://HOST:PORT`` or a ValueError that says what is wrong."""
    if not url.startswith("tcp://") or ":" not in url[6:]:
        raise ValueError(f"{url!r} is not an interchange address: use tcp://HOST:PORT")
    host, _, port = url[6:].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{url!r} is not an interchange address: use tcp://HOST:PORT")
    return url


def serve(
    url: str,
    *,
    workers: int,
    key_file: str,
    heartbeat: float = 2.0,
    heartbeat_threshold: float = 10.0,
    prefetch: int | None = None,
    block_id: str | None = None,
    preload: Sequence[str] = (),
) -> int:
    """Run a pool until the interchange lets it go; 2 with a message on bad arguments.

    ``preload``: modules imported before the workers are forked (see :func:`preload_modules`).
    """
    try:
        check_url(url)
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, not {workers}")
        secrets = (
            Secrets.from_json(sys.stdin.readline()) if key_file == "-" else Secrets.read(key_file)
        )
        m.settle_allocator()  # before any thread (ZeroMQ's, a preloaded module's) exists
        limit_threads(workers)  # before a preloaded numpy sizes its BLAS pool
        preload_modules(check_preload(preload))
    except ValueError as exc:
        print(f"ser-doctor worker: error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    pool = Pool(url, secrets, workers, heartbeat, heartbeat_threshold, prefetch, block_id)
    return pool.run()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m serdoctor.execute._pool``."""
    args = parse_args(argv)
    return serve(
        args.url,
        workers=args.workers,
        key_file=args.key_file,
        heartbeat=args.heartbeat,
        heartbeat_threshold=args.heartbeat_threshold,
        prefetch=args.prefetch,
        block_id=args.block_id,
        preload=args.preload,
    )


if __name__ == "__main__":
    sys.exit(main())

"""The interchange: queues tasks from the client and routes them to pools.

::

    client ══ socket pair ══▶ queue: priority, then order   ROUTER (pool port) ◀── DEALER pool
                              capacity per pool
                              routing: by-value tasks only to pools on the client's Python
                              heartbeats both ways; lost pools; a silent client ends it all

Your process and its interchange talk over a Unix socket pair that your process
makes and the interchange inherits: no port to find or to attack, nothing
between them (ZeroMQ's I/O threads and TCP, on both sides, were half the latency
of a lone task), and the interchange sees at once that your process has gone.
Only pools connect to a port: ZeroMQ, signed, and CURVE off loopback.

It routes bytes. It reads each message's JSON index and each task's envelope
header (JSON: by value or not, which Python), verifies every message's MAC, and
never unpickles anything: a task payload or a result is never more than frames
to it. Anything unsigned, forged or malformed is dropped and counted.

With ``local_workers`` set it also runs the executor's local pool: it forks
those workers itself (a :class:`~serdoctor.execute._pool.Workers`, the same
one a pool process runs) and feeds them from its queue, without a pool process
or a ZeroMQ hop between them. Those workers unpickle tasks; the interchange
still never does.

Run by the executor as ``python -m serdoctor.execute._interchange`` (its
command line says ``interchange``), with its settings as JSON on stdin; it
prints one JSON line (``{"ready": ...}`` or ``{"error": ...}``) when it has
bound its ports.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import select
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from serdoctor._version import __version__
from serdoctor.execute import _messages as m
from serdoctor.execute import _worker
from serdoctor.execute._config import InterchangeConfig
from serdoctor.execute._pool import (
    INFLIGHT,
    Fingerprint,
    Workers,
    describe,
    limit_threads,
    new_pool_id,
    preload_modules,
    watch,
)
from serdoctor.serialize._envelope import python_minor, read_head

#: Results that arrive within this many seconds of the last message to the client,
#: while other tasks are still running, wait to go with the next ones (at most that
#: long): under load the client reads one message for several results instead of
#: one each. A result after a quiet spell, or the last one running, goes at once.
HOLD = 0.001


@dataclass(slots=True)
class _Task:
    id: int
    frames: list[Any]
    priority: int
    walltime: float | None
    by_value: bool
    submitted: float


@dataclass
class _Pool:
    ident: bytes
    info: dict[str, Any]
    capacity: int
    python_minor: str
    state: str  # "pending" (awaiting the client's verdict), "active", "refused"
    last_seen: float
    running: int = 0
    outstanding: dict[int, _Task] = field(default_factory=dict)
    reason: str = ""
    crew: Workers | None = None  # the local pool's workers, run by the interchange itself


class Interchange:
    """The interchange's state and loop (one thread, one poller)."""

    def __init__(
        self,
        config: InterchangeConfig,
        crew: Workers | None = None,
        fingerprint: Fingerprint | None = None,
    ) -> None:
        self.cfg = config
        self.key = bytes.fromhex(config.key)
        self.client = socket.socket(fileno=config.client_fd)
        os.set_inheritable(self.client.fileno(), False)
        self.client_in = _worker.Reader(self.client)
        self.client_out = _worker.Writer(self.client)  # never blocks (see Writer)
        self.ctx = zmq.Context()
        self.pools_sock = self.ctx.socket(zmq.ROUTER)
        self.pools_sock.setsockopt(zmq.LINGER, 0)
        self.pools_sock.setsockopt(zmq.SNDHWM, 0)
        self.pools_sock.setsockopt(zmq.RCVHWM, 0)
        self.pools_sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        if config.curve_secret:
            self.pools_sock.curve_server = True
            self.pools_sock.curve_secretkey = config.curve_secret.encode()
            self.pools_sock.curve_publickey = (config.curve_public or "").encode()
        self.client_seen = time.monotonic()
        self.queue_ref: list[tuple[int, int, _Task]] = []  # anywhere
        self.queue_val: list[tuple[int, int, _Task]] = []  # by value: the client's Python only
        self.queued: dict[int, _Task] = {}
        self.seq = itertools.count()
        self.pools: dict[str, _Pool] = {}
        self.by_ident: dict[bytes, str] = {}
        self.dropped = 0
        self.pools_changed = False
        self.started: dict[str, list[int]] = {}
        self.results: list[list[Any]] = []
        self.result_envs: list[list[Any]] = []
        self.running = True
        self.received = 0  # tasks taken in from the client, ever (its send window)
        self.ack_due = False
        self.trimmer = m.Trimmer()
        self.flushed = 0.0  # when results last went to the client
        self.finished = 0  # results since the last trim
        self.crew = crew
        self.local_id = ""
        self.fingerprint = fingerprint  # the local pool's, on its way
        if crew is not None:
            self._register_local(crew)

    # -- set-up --------------------------------------------------------------------------

    def bind(self) -> dict[str, int]:
        """Bind the pools' port; the port actually bound."""
        port, address = self.cfg.pool_port, self.cfg.address
        if port:
            self.pools_sock.bind(f"tcp://{address}:{port}")
        else:
            port = self.pools_sock.bind_to_random_port(f"tcp://{address}")
        return {"pool_port": port}

    def _register_local(self, crew: Workers) -> None:
        """The local pool: workers the interchange runs itself, listed like any pool.

        It serves, and is listed to the client, at once; its environment
        fingerprint (tens of milliseconds to take, longer on a busy machine) comes
        from a child process (:class:`~serdoctor.execute._pool.Fingerprint`) and is
        sent to the client when it is in. (Listed only then, a pool that ran a
        short run's tasks could be missing from ``pools()`` and the monitoring
        database at its end.)
        """
        self.local_id = new_pool_id()
        # capacity: what the workers hold in flight, no more; the rest waits here, in order
        info = describe(self.local_id, crew.count, (INFLIGHT - 1) * crew.count, None)
        state = "pending" if self.cfg.on_mismatch == "error" else "active"
        self.pools[self.local_id] = _Pool(
            b"",
            info,
            INFLIGHT * crew.count,
            self.cfg.python_minor,
            state,
            time.monotonic(),
            crew=crew,
        )

    def _read_fingerprint(self, fingerprint: Fingerprint, poller: Any) -> None:
        fd = fingerprint.sock.fileno()  # (closed once read)
        env = fingerprint.read()
        if env is None:
            return  # more to come
        poller.unregister(fd)
        self.fingerprint = None
        pool = self.pools.get(self.local_id)
        if pool is not None:
            pool.info["env"] = env
            self.pools_changed = True

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until the client says stop, or goes silent, or its process ends."""
        # A plain poll, with ZeroMQ's socket by the descriptor it signals changes on:
        # zmq_poll() makes several poll() calls per turn (five under strace: one without
        # waiting, the socket's own checks before and after, the wait), which a task at
        # a time pays twice.
        poller = select.poll()
        client = self.client.fileno()
        poller.register(client, select.POLLIN)
        pools_fd = int(self.pools_sock.get(zmq.FD))
        poller.register(pools_fd, select.POLLIN)
        writing = False  # polling for the client's socket to take what waits for it
        if self.fingerprint is not None:
            poller.register(self.fingerprint.sock.fileno(), select.POLLIN)
        next_beat = time.monotonic()
        watched: set[int] = set()
        while self.running:
            if self.crew is not None:
                watched = watch(poller, self.crew, watched)
            timeout = self.trimmer.timeout(max(1, int(self.cfg.heartbeat * 250)))
            if self.results or self.started:
                timeout = 1  # held back (see HOLD): sent within a millisecond
            # ZeroMQ's descriptor signals each change once: a message that came before
            # this look (while this turn sent, say) is seen only by asking the socket
            pools_ready = m.readable(self.pools_sock)
            events = dict(poller.poll(0 if pools_ready else timeout))
            if self.crew is not None:
                self._serve_local(self.crew, events)
            if client in events:
                self._read_client()
                if self.client_in.closed:  # your process has gone (or closed it: the same)
                    break
                if self.client_out.pending:
                    self._write_client()
            if pools_ready or (pools_fd in events and m.readable(self.pools_sock)):
                m.drain(self.pools_sock, self._from_pool, 1000)
            if self.fingerprint is not None and self.fingerprint.sock.fileno() in events:  # (by fd)
                self._read_fingerprint(self.fingerprint, poller)
            self._dispatch()
            self._flush_client()
            if self.pools_changed:
                # a pool came or went (or its fingerprint came): the client hears of it now
                pools = self._describe(time.monotonic(), with_env=True)
                self._send_client(m.POOLS, {"pools": pools, "dropped": self.dropped})
                self.pools_changed = False
            if self.finished >= 1000 and not self.queued and not self._running():
                self.finished = 0  # a burst is over: what it used goes back
                self.trimmer.soon()
            now = time.monotonic()
            self.trimmer.tick(now)
            if now >= next_beat:
                next_beat = now + self.cfg.heartbeat
                self._beat(now)
            if self.client_out.pending != writing:  # the client is slow to read: poll for it
                writing = self.client_out.pending
                poller.modify(client, select.POLLIN | (select.POLLOUT if writing else 0))
        self._shutdown_pools("the executor shut down")

    # -- client side -----------------------------------------------------------------------

    def _send_client(self, kind: bytes, index: dict[str, Any], envs: Any = ()) -> None:
        self.client_out.add(0, m.pack(self.key, kind, index, envs))
        self._write_client()

    def _read_client(self) -> None:
        # (a function of its own: no message outlives it, as a loop variable of run()
        # would keep the last one, and a large one's buffer, until the next came)
        for _, parts in self.client_in.read(1000):
            self._from_client(parts)

    def _write_client(self) -> None:
        try:
            self.client_out.flush()
        except OSError:  # your process has gone
            self.running = False
            self.client_out.discard()

    def _from_client(self, parts: list[Any]) -> None:
        self.trimmer.saw_message(parts)
        try:
            kind = bytes(parts[0]) if parts else b""
            msg = m.unpack(self.key, parts, "tasks" if kind == m.TASKS else None)
        except m.BadMessage:
            self.dropped += 1
            self.pools_changed = True
            return
        self.client_seen = time.monotonic()
        if msg.kind == m.TASKS:
            self._enqueue(msg)
        elif msg.kind == m.CANCEL:
            self._cancel(msg.index.get("ids", []))
        elif msg.kind == m.KICK:
            self._verdict(str(msg.index.get("pool")), bool(msg.index.get("accept")),
                          str(msg.index.get("reason", "")))  # fmt: skip
        elif msg.kind == m.SHUTDOWN:
            self.running = False
        elif msg.kind == m.HEARTBEAT:
            self._send_client(m.HEARTBEAT, {"received": self.received})

    def _enqueue(self, msg: m.Message) -> None:
        rows = msg.index["tasks"]
        envs = m.split(msg.frames, [int(r[1]) for r in rows])
        self.received += len(rows)
        self.ack_due = True
        now = time.monotonic()
        bad = []
        for row, frames in zip(rows, envs, strict=True):
            task_id, _, priority, walltime = row
            try:
                header, _ = read_head(frames[0])
            except Exception as exc:  # not an envelope: refuse it, unread
                bad.append([task_id, "bad", f"not a serdoctor envelope: {exc}"])
                continue
            by_value = header.by_value and self.cfg.on_mismatch == "route"
            task = _Task(int(task_id), frames, int(priority), walltime, by_value, now)
            self.queued[task.id] = task
            heap = self.queue_val if by_value else self.queue_ref
            heapq.heappush(heap, (-task.priority, next(self.seq), task))
        if bad:
            self._send_client(m.LOST, {"tasks": bad})

    def _cancel(self, ids: list[int]) -> None:
        for task_id in ids:
            self.queued.pop(int(task_id), None)  # left in the heap; skipped when popped

    # -- pool side -------------------------------------------------------------------------

    def _serve_local(self, crew: Workers, events: dict[Any, int]) -> None:
        """Read the local workers that are ready; their results join the client's next message."""
        for fd in events:
            if fd in crew.slots:
                crew.readable(fd)
        crew.walltimes(time.monotonic())
        if crew.out:
            pool = self.pools.get(self.local_id)
            for task_id, frames, pid, started, ended in crew.out:
                if pool is not None:
                    pool.outstanding.pop(task_id, None)
                self.trimmer.saw(m.size(frames))
                self.results.append([task_id, len(frames), self.local_id, pid, started, ended])
                self.result_envs.append(frames)
            crew.out.clear()
        if crew.queue:  # tasks a dead worker held but had not started
            crew.feed(len(self.queued))

    def _send_pool(self, pool: _Pool, kind: bytes, index: dict[str, Any], envs: Any = ()) -> None:
        if pool.crew is not None:  # the local pool: no messages, only the end
            if kind == m.SHUTDOWN:
                pool.crew.stop()
            return
        frames = m.pack(self.key, kind, index, envs)
        m.send(self.pools_sock, frames, pool.ident)

    def _from_pool(self, parts: list[Any]) -> None:
        self.trimmer.saw_message(parts, routed=True)
        ident = bytes(parts[0].buffer)
        try:
            kind = bytes(parts[1].buffer)
            msg = m.unpack(self.key, parts[1:], "results" if kind == m.RESULTS else None)
        except m.BadMessage:
            self.dropped += 1
            self.pools_changed = True
            return
        if msg.kind == m.REGISTER:
            self._register(ident, msg.index)
            return
        pool_id = self.by_ident.get(ident)
        pool = self.pools.get(pool_id) if pool_id else None
        if pool_id is None or pool is None or pool.state == "refused":
            return
        pool.last_seen = time.monotonic()
        if msg.kind == m.RESULTS:
            rows = msg.index["results"]
            out = []
            for row in rows:
                pool.outstanding.pop(int(row[0]), None)
                out.append([row[0], row[1], pool_id, *row[2:5]])
            self.results.extend(out)
            self.result_envs.extend(m.split(msg.frames, [int(r[1]) for r in rows]))
        elif msg.kind == m.HEARTBEAT:
            pool.running = int(msg.index.get("running", 0))
            if msg.index.get("leaving"):
                self._leave(pool_id, pool)

    def _leave(self, pool_id: str, pool: _Pool) -> None:
        """A pool that stops on purpose: what it had not finished goes back in the queue."""
        for task in pool.outstanding.values():
            self.queued[task.id] = task
            heap = self.queue_val if task.by_value else self.queue_ref
            heapq.heappush(heap, (-task.priority, next(self.seq), task))
        pool.outstanding.clear()
        del self.pools[pool_id]
        self.by_ident.pop(pool.ident, None)
        self.pools_changed = True

    def _register(self, ident: bytes, info: dict[str, Any]) -> None:
        pool_id = str(info.get("pool_id", ""))
        if not pool_id:
            self.dropped += 1
            return
        python = str(info.get("python", ""))
        minor = python_minor(python)
        state = "pending" if self.cfg.on_mismatch == "error" else "active"
        workers = max(1, int(info.get("workers", 1)))
        prefetch = max(0, int(info.get("prefetch", workers)))
        old = self.pools.get(pool_id)
        if old is not None and old.ident != ident:
            self.by_ident.pop(old.ident, None)
        pool = _Pool(ident, info, workers + prefetch, minor, state, time.monotonic())
        self.pools[pool_id] = pool
        self.by_ident[ident] = pool_id
        self.pools_changed = True
        self._send_pool(pool, m.HEARTBEAT, {"registered": True, "protocol": m.PROTOCOL,
                                            "serdoctor": __version__})  # fmt: skip
        theirs = info.get("protocol", 1)  # (a pool from before the field: 1)
        if theirs != m.PROTOCOL:  # it would misread our messages, or we its: never routed to
            pool.state = "refused"
            pool.reason = (
                f"pool {pool_id} refused: it speaks executor protocol {theirs} (serdoctor "
                f"{info.get('serdoctor', 'older than 0.1.0')}), this executor {m.PROTOCOL} "
                f"(serdoctor {__version__}): install the same serdoctor version on both sides"
            )
            self._send_pool(pool, m.SHUTDOWN, {"reason": pool.reason, "refused": True})

    def _verdict(self, pool_id: str, accept: bool, reason: str) -> None:
        pool = self.pools.get(pool_id)
        if pool is None or pool.state == "refused":  # (refused here already: its protocol)
            return
        if accept:
            pool.state = "active"
        else:
            pool.state, pool.reason = "refused", reason
            self._send_pool(pool, m.SHUTDOWN, {"reason": reason, "refused": True})
            self._requeue_or_lose(pool, "refused")
        self.pools_changed = True

    def _shutdown_pools(self, reason: str) -> None:
        for pool in self.pools.values():
            if pool.state != "refused":
                self._send_pool(pool, m.SHUTDOWN, {"reason": reason})

    # -- matching -------------------------------------------------------------------------

    def _pop(self, heap: list[tuple[int, int, _Task]]) -> _Task | None:
        while heap:
            _, _, task = heapq.heappop(heap)
            if self.queued.pop(task.id, None) is not None:
                return task
        return None

    def _peek(self, heap: list[tuple[int, int, _Task]]) -> tuple[int, int] | None:
        while heap and heap[0][2].id not in self.queued:
            heapq.heappop(heap)
        return (heap[0][0], heap[0][1]) if heap else None

    def _dispatch(self) -> None:
        if not self.queued:
            return
        for pool_id, pool in self.pools.items():
            if pool.crew is not None:  # the local pool: as many as its workers take now
                free = pool.crew.room(len(self.queued))
            else:
                free = pool.capacity - len(pool.outstanding)
            if pool.state != "active" or free <= 0:
                continue
            if pool.crew is None and pool.outstanding and free < max(1, pool.capacity // 3):
                continue  # wait for a few free slots: fewer, larger messages
            same_python = pool.python_minor == self.cfg.python_minor
            batch: list[_Task] = []
            while len(batch) < free:
                ref, val = (
                    self._peek(self.queue_ref),
                    (self._peek(self.queue_val) if same_python else None),
                )
                if ref is None and val is None:
                    break
                task = self._pop(self.queue_val if ref is None or (val is not None and val < ref)
                                 else self.queue_ref)  # fmt: skip
                if task is not None:
                    batch.append(task)
            if not batch:
                continue
            for task in batch:
                pool.outstanding[task.id] = task
            if pool.crew is not None:
                for task in batch:
                    pool.crew.add(task.id, task.frames, task.walltime)
                pool.crew.feed(len(self.queued))
            else:
                rows = [[t.id, len(t.frames), t.walltime] for t in batch]
                self._send_pool(pool, m.TASKS, {"tasks": rows}, [t.frames for t in batch])
            self.started.setdefault(pool_id, []).extend(t.id for t in batch)
            if not self.queued:
                break

    def _flush_client(self) -> None:
        """One message for all that this turn of the loop has for the client.

        Every one says how many tasks the interchange has taken in so far: the
        client keeps at most a window of tasks unacknowledged, the rest stays with it.
        """
        if not self.results and not self.started:
            if self.ack_due:
                self._send_client(m.HEARTBEAT, {"received": self.received})
                self.ack_due = False
            return
        now = time.monotonic()
        if now - self.flushed < HOLD and len(self.results) < 256 and self._running():
            return  # more results are on their way: one message for several (see HOLD)
        self.flushed = now
        self.ack_due = False
        self.finished += len(self.results)
        index = {"results": self.results, "started": self.started, "received": self.received}
        self._send_client(m.RESULTS, index, self.result_envs)
        self.results, self.result_envs, self.started = [], [], {}

    def _running(self) -> bool:
        """Whether any pool has tasks out."""
        return any(p.outstanding for p in self.pools.values())

    # -- time ------------------------------------------------------------------------------

    def _requeue_or_lose(self, pool: _Pool, why: str) -> None:
        lost = [[tid, "manager_lost", why] for tid in pool.outstanding]
        pool.outstanding.clear()
        if lost:
            self._send_client(m.LOST, {"tasks": lost})

    def _beat(self, now: float) -> None:
        threshold = self.cfg.heartbeat_threshold
        if now - self.client_seen > threshold or not self._client_alive():
            self.running = False
            return
        for pool_id, pool in list(self.pools.items()):
            if pool.state == "refused":
                continue
            if pool.crew is not None:  # the local pool: alive while the interchange is
                pool.last_seen, pool.running = now, pool.crew.busy
                continue
            if now - pool.last_seen > threshold:
                host = pool.info.get("host", "?")
                why = (
                    f"pool {pool_id} on {host} (pid {pool.info.get('pid', '?')}) sent no "
                    f"heartbeat for {now - pool.last_seen:.1f} s (heartbeat_threshold="
                    f"{threshold:g})"
                )
                self._requeue_or_lose(pool, why)
                del self.pools[pool_id]
                self.by_ident.pop(pool.ident, None)
                self.pools_changed = True
                continue
            self._send_pool(pool, m.HEARTBEAT, {})
        self._fail_unroutable(now)
        self._send_client(m.HEARTBEAT, {"queued": len(self.queued), "dropped": self.dropped,
                                        "received": self.received})  # fmt: skip
        if self.pools_changed or self.pools:
            pools = self._describe(now, with_env=self.pools_changed)
            self._send_client(m.POOLS, {"pools": pools, "dropped": self.dropped})
            self.pools_changed = False

    def _client_alive(self) -> bool:
        pid = self.cfg.client_pid
        if pid is None:
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _fail_unroutable(self, now: float) -> None:
        if not self.queue_val or any(
            p.state == "active" and p.python_minor == self.cfg.python_minor
            for p in self.pools.values()
        ):
            return
        lost = []
        while self.queue_val and now - self.queue_val[0][2].submitted > self.cfg.grace:
            task = self._pop(self.queue_val)
            if task is None:
                break
            pythons = sorted({p.python_minor for p in self.pools.values()}) or ["none attached"]
            lost.append([task.id, "incompatible",
                         f"by-value code made by Python {self.cfg.python_minor} cannot run on "
                         f"the attached pools (Python {', '.join(pythons)}), and no pool on "
                         f"Python {self.cfg.python_minor} attached within {self.cfg.grace:g} s: "
                         "start one on the client's Python, or make the function importable "
                         "so it travels by reference"])  # fmt: skip
        if lost:
            self._send_client(m.LOST, {"tasks": lost})

    def _describe(self, now: float, *, with_env: bool) -> list[dict[str, Any]]:
        # the environment fingerprint is large: sent when pools change, not every beat
        return [
            {
                **{k: v for k, v in p.info.items() if k != "env"},
                **({"env": p.info["env"]} if with_env and "env" in p.info else {}),
                "state": p.state,
                "reason": p.reason,
                "outstanding": len(p.outstanding),
                "running": p.running,
                "last_heartbeat_age": round(now - p.last_seen, 3),
            }
            for p in self.pools.values()
        ]

    def close(self) -> None:
        """Stop the local workers (and a fingerprint's child); close the sockets and the context."""
        if self.fingerprint is not None:
            self.fingerprint.close()
        if self.crew is not None:
            self.crew.stop()
        self.client.close()
        self.pools_sock.close(linger=500)  # let the pools hear "shut down"
        self.ctx.term()


def main() -> int:
    """Entry point: settings as JSON on stdin; one JSON line on stdout when bound."""
    config = InterchangeConfig.from_json(sys.stdin.readline())
    _worker.PRIVATE.add(config.client_fd)  # the workers forked here do not inherit it
    m.settle_allocator()  # before any thread (ZeroMQ's, a preloaded module's) exists
    crew = fingerprint = None
    if config.local_workers:
        limit_threads(config.local_workers)  # before a preloaded numpy sizes its BLAS pool
        try:
            preload_modules(config.preload)  # before the fork: the workers share them
        except ValueError as exc:
            print(json.dumps({"error": str(exc), "preload": True}), flush=True)
            return 2
        crew = Workers(bytes.fromhex(config.key), config.local_workers)
        crew.start()  # forked before ZeroMQ starts its threads
        # (so is the fingerprint's child, after the preload that could change what it finds;
        # unless tasks wait for the fingerprint, it yields to the workers' first tasks)
        fingerprint = Fingerprint(nice=0 if config.on_mismatch == "error" else 10)
    try:
        ix = Interchange(config, crew, fingerprint)
    except BaseException:
        if fingerprint is not None:
            fingerprint.close()
        raise
    try:
        ports = ix.bind()
    except zmq.ZMQError as exc:
        print(json.dumps({"error": f"{exc} ({config.address})"}), flush=True)
        ix.close()
        return 2
    print(json.dumps({"ready": ports}), flush=True)
    try:
        _profiled(ix.run, "interchange")
    finally:
        ix.close()
    return 0


def _profiled(run: Any, name: str) -> None:
    """Run ``run()``; under ``SERDOCTOR_PROFILE_DIR`` (a developer's switch), profile it."""
    folder = os.environ.get("SERDOCTOR_PROFILE_DIR")
    if not folder:
        run()
        return
    import cProfile

    profile = cProfile.Profile()
    try:
        profile.runcall(run)
    finally:
        profile.dump_stats(os.path.join(folder, f"{name}-{os.getpid()}.prof"))


if __name__ == "__main__":
    sys.exit(main())

"""A worker process: runs one task at a time for its pool, over a socket pair.

Frames between a pool and its workers (a stream socket, so each message is
length-prefixed)::

    task id (8 bytes) | frame count (4) | the frames' total length (8)
    | each frame's length (8 each) | the frames

(the receiver reads the fixed part, then the rest in one read).

A worker unpickles a task only through ``Serializer.loads_frames`` with the
executor's key, so an envelope whose tag does not verify is never unpickled.
Whatever the task does (returns, raises, or its result cannot be sent back),
the worker answers with one envelope of ``("ok", value)`` or ``("err",
exception)``; if it dies, its pool notices the closed socket and reports
:class:`~serdoctor.errors.WorkerLost`.
"""

from __future__ import annotations

import collections
import itertools
import os
import select
import signal
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any

_HEAD = struct.Struct(">QIQ")
_LEN = struct.Struct(">Q")
_IOV_MAX = 512  # parts per sendmsg call (Linux allows 1024)


def send_frames(sock: socket.socket, task_id: int, frames: Sequence[Any]) -> None:
    """Send one message (blocking until the whole of it is written)."""
    send_many(sock, [(task_id, frames)])


def framed(messages: Sequence[tuple[int, Sequence[Any]]]) -> list[memoryview]:
    """The buffers that carry ``messages`` (``(task id, frames)`` each), in order, unjoined."""
    parts: list[memoryview] = []
    for task_id, frames in messages:
        views = [memoryview(f).cast("B") for f in frames]
        lengths = [v.nbytes for v in views]
        header = _HEAD.pack(task_id, len(views), sum(lengths)) + b"".join(map(_LEN.pack, lengths))
        parts.append(memoryview(header))
        parts.extend(v for v in views if v.nbytes)
    return parts


def send_many(sock: socket.socket, messages: Sequence[tuple[int, Sequence[Any]]]) -> None:
    """Send several messages, one after another, blocking until all of them are written.

    One ``sendmsg`` call gathers every header and frame (one system call, and one
    wake-up of the other side, for a batch of small messages; no copy); whatever it
    did not write is sent after it.
    """
    parts = framed(messages)
    while parts:
        batch = parts[:_IOV_MAX]
        del parts[:_IOV_MAX]
        sent = sock.sendmsg(batch)
        for part in batch:
            if sent >= part.nbytes:
                sent -= part.nbytes
                continue
            sock.sendall(part[sent:])
            sent = 0


def _recv_exactly(sock: socket.socket, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            return None
        got += k
    return buf


def recv_frames(sock: socket.socket) -> tuple[int, list[memoryview]] | None:
    """Receive one message: ``(task id, frames)``; None when the other side closed."""
    head = _recv_exactly(sock, _HEAD.size)
    if head is None:
        return None
    task_id, count, total = _HEAD.unpack(head)
    rest = _recv_exactly(sock, _LEN.size * count + total) if count else bytearray()
    if rest is None:
        return None
    return task_id, _cut(rest, count)


class Writer:
    """Writes messages to a stream socket without ever blocking.

    What the socket cannot take yet waits here, in order, and goes with
    :meth:`flush` when the socket is writable again (poll it for that while
    :attr:`pending`).

    For a process that must not stop while the other side is slow to read (the
    interchange, writing to your process: blocked there, it would stop reading
    what your process writes to it, and both would wait for ever).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parts: collections.deque[memoryview] = collections.deque()

    @property
    def pending(self) -> bool:
        """Whether some of a message is still waiting to be written."""
        return bool(self.parts)

    def add(self, task_id: int, frames: Sequence[Any]) -> None:
        """Queue one message (written by :meth:`flush`)."""
        self.parts.extend(framed([(task_id, frames)]))

    def discard(self) -> None:
        """Forget what waits (the other side has gone)."""
        self.parts.clear()

    def flush(self) -> None:
        """Write what waits, as far as the socket takes it now. OSError if it is closed."""
        parts = self.parts
        while parts:
            batch = list(itertools.islice(parts, _IOV_MAX))
            try:
                sent = self.sock.sendmsg(batch, [], _DONTWAIT)
            except BlockingIOError:
                return
            for part in batch:
                if sent >= part.nbytes:
                    sent -= part.nbytes
                    parts.popleft()
                    continue
                parts[0] = part[sent:]
                return


class Reader:
    """Reads messages from a stream socket as they arrive, never waiting for the rest of one.

    (A peer stopped in the middle of a message must not stop this process too.)

    Small messages are read many to a system call; a large one's body is read
    straight into a buffer of its own. :attr:`closed` says that the other side
    closed the socket (or it broke), after the last whole message was returned.
    """

    CHUNK = 1 << 16

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()  # received, not yet a whole message
        self.task_id = 0
        self.count = 0
        self.body: bytearray | None = None  # a large message's body, being read
        self.got = 0
        self.closed = False
        self.empty = False  # the last read was short: the socket had no more then

    def read(self, limit: int) -> list[tuple[int, list[memoryview]]]:
        """The whole messages received so far (at most ``limit``), ``(task id, frames)`` each."""
        out: list[tuple[int, list[memoryview]]] = []
        self.empty = False
        while len(out) < limit and not self.closed:
            message = self._parse()
            if message is not None:
                out.append(message)
            elif self.empty or not self._receive():
                break  # (empty: the last read took all there was; do not ask again)
        return out

    def _parse(self) -> tuple[int, list[memoryview]] | None:
        if self.body is not None:
            if self.got < len(self.body):
                return None
            body, self.body = self.body, None
            return self.task_id, _cut(body, self.count)
        buf = self.buf
        if len(buf) < _HEAD.size:
            return None
        task_id, count, total = _HEAD.unpack_from(buf)
        end = _HEAD.size + _LEN.size * count + total
        if len(buf) >= end:
            body = buf[_HEAD.size : end]
            del buf[:end]
            return task_id, _cut(body, count)
        # a message larger than what came so far: its body is read into a buffer of its own
        self.task_id, self.count = task_id, count
        self.body = bytearray(end - _HEAD.size)
        self.got = len(buf) - _HEAD.size
        self.body[: self.got] = memoryview(buf)[_HEAD.size :]
        buf.clear()
        return None

    def _receive(self) -> bool:
        """Receive what has come, without waiting; False when nothing had."""
        try:
            if self.body is not None:
                n = self.sock.recv_into(memoryview(self.body)[self.got :], 0, _DONTWAIT)
                self.got += n
                short = self.got < len(self.body)
            else:
                chunk = self.sock.recv(self.CHUNK, _DONTWAIT)
                n = len(chunk)
                self.buf += chunk
                short = n < self.CHUNK
        except BlockingIOError:
            return False
        except OSError:
            n = 0  # reset, or closed under us: as good as closed
        if n == 0:
            self.closed = True
            return False
        self.empty = short
        return True


def _cut(body: bytearray, count: int) -> list[memoryview]:
    view = memoryview(body)
    frames, pos = [], _LEN.size * count
    for n in struct.unpack_from(f">{count}Q", body):
        frames.append(view[pos : pos + n])
        pos += n
    return frames


_DONTWAIT = socket.MSG_DONTWAIT


def run(sock: socket.socket, key: bytes) -> None:
    """The worker's loop: receive a task, run it, send its outcome; stop when the pool goes."""
    from serdoctor.errors import SerializationError
    from serdoctor.execute._messages import TRIM_AT, TRIM_DELAY, size, trim_now
    from serdoctor.serialize import Serializer

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the client, not the workers
    serializer = Serializer(key=key)
    large = 0  # bytes of the last task and result, if large: their buffers are free now
    while True:
        if large and not select.select([sock], [], [], TRIM_DELAY)[0]:
            # no task came for a moment: give the buffers back (another large task
            # right away reuses them instead: no page faults for every new buffer)
            trim_now(large)
            large = 0
        message = recv_frames(sock)
        if message is None:
            return
        task_id, frames = message
        moved = size(frames)
        outcome: tuple[str, Any]
        call: Any = None
        try:
            call = serializer.loads_frames(frames)
            outcome = ("ok", call[0](*call[1], **call[2]))
        except BaseException as exc:  # the task's failure is its result
            outcome = ("err", exc)
        del frames, message, call  # nothing of the task outlives it here
        try:
            reply = serializer.dumps_frames(outcome)
        except Exception as exc:
            what = "result" if outcome[0] == "ok" else "exception"
            error = SerializationError(
                f"the task's {what} could not be sent back: {exc}",
                path=getattr(exc, "path", None),
                type_name=getattr(exc, "type_name", None),
            )
            reply = serializer.dumps_frames(("err", error))
        del outcome
        moved += size(reply)
        try:
            send_frames(sock, task_id, reply)
        except OSError:
            return
        del reply
        if moved >= TRIM_AT:
            large = moved


def start(key: bytes) -> tuple[int, socket.socket]:
    """Fork a worker; return its pid and the pool's end of its socket pair."""
    return fork(b"serdoctor-wrk", lambda sock: run(sock, key))


#: Descriptors of this process that a child it forks closes first: the interchange's
#: connection to your process, which a task's code must not be able to write to.
PRIVATE: set[int] = set()


def fork(name: bytes, body: Callable[[socket.socket], None]) -> tuple[int, socket.socket]:
    """Fork a child that runs ``body`` on its end of a socket pair, then exits.

    Returns the child's pid and this process's end. ``ps`` and ``top`` show the
    child as ``name`` (15 bytes at most); it exits with code 0 when ``body``
    returns, 1 when it raises (without an interpreter teardown: the parent's
    sockets are not its own), and is killed when its parent dies, even by
    SIGKILL (Linux's parent-death signal).
    """
    from serdoctor.execute._messages import libc

    prctl = libc("prctl")  # looked up here: the child of a threaded process must not dlopen
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            parent.close()
            for fd in PRIVATE:
                os.close(fd)
            if prctl is not None:
                prctl(_PR_SET_NAME, name, 0, 0, 0)
                prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() == 1:  # the parent died before that took effect
                    os._exit(1)
            body(child)
            code = 0
        finally:
            os._exit(code)
    child.close()
    return pid, parent


_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15

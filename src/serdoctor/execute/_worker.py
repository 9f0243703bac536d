"""A worker process: runs one task at a time for its pool, over a socket pair.

Frames between a pool and its workers (a stream socket, so each message is
length-prefixed)::

    task id (8 bytes) | frame count (4) | each frame's length (8 each) | the frames

A worker unpickles a task only through ``Serializer.loads_frames`` with the
executor's key, so an envelope whose tag does not verify is never unpickled.
Whatever the task does (returns, raises, or its result cannot be sent back),
the worker answers with one envelope of ``("ok", value)`` or ``("err",
exception)``; if it dies, its pool notices the closed socket and reports
:class:`~serdoctor.errors.WorkerLost`.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
from collections.abc import Sequence
from typing import Any

_HEAD = struct.Struct(">QI")
_LEN = struct.Struct(">Q")


def send_frames(sock: socket.socket, task_id: int, frames: Sequence[Any]) -> None:
    """Send one message (blocking until the whole of it is written)."""
    views = [memoryview(f).cast("B") for f in frames]
    header = _HEAD.pack(task_id, len(views)) + b"".join(_LEN.pack(v.nbytes) for v in views)
    sock.sendall(header)
    for view in views:
        if view.nbytes:
            sock.sendall(view)


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
    task_id, count = _HEAD.unpack(head)
    lengths_raw = _recv_exactly(sock, _LEN.size * count) if count else bytearray()
    if lengths_raw is None:
        return None
    lengths = [_LEN.unpack_from(lengths_raw, i * _LEN.size)[0] for i in range(count)]
    body = _recv_exactly(sock, sum(lengths)) if lengths else bytearray()
    if body is None:
        return None
    view = memoryview(body)
    frames, pos = [], 0
    for n in lengths:
        frames.append(view[pos : pos + n])
        pos += n
    return task_id, frames


def run(sock: socket.socket, key: bytes) -> None:
    """The worker's loop: receive a task, run it, send its outcome; stop when the pool goes."""
    from serdoctor.errors import SerializationError
    from serdoctor.serialize import Serializer

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the client, not the workers
    serializer = Serializer(key=key)
    while True:
        message = recv_frames(sock)
        if message is None:
            return
        task_id, frames = message
        outcome: tuple[str, Any]
        try:
            fn, args, kwargs = serializer.loads_frames(frames)
            outcome = ("ok", fn(*args, **kwargs))
        except BaseException as exc:  # the task's failure is its result
            outcome = ("err", exc)
        del frames, message
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
        try:
            send_frames(sock, task_id, reply)
        except OSError:
            return


def start(key: bytes) -> tuple[int, socket.socket]:
    """Fork a worker; return its pid and the pool's end of its socket pair."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the worker: never returns
        code = 0
        try:
            parent.close()
            run(child, key)
        except BaseException:
            code = 1
        finally:
            os._exit(code)  # no interpreter teardown: the pool's sockets are not ours
    child.close()
    return pid, parent

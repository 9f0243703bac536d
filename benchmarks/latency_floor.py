"""What one sequential task costs in serdoctor's topology, layer by layer.

A bare prototype with the executor's threads, sockets and processes and nothing
else: your thread writes the task to an "interchange" process over a socket
pair, which writes it to a forked "worker" over another, all with the
executor's framing; the result comes back the same way, and an IO thread in
your process resolves a ``concurrent.futures.Future`` that your thread waits on. It
measures the p50 of sequential no-op tasks (a function of this script, sent by
value as the executor's benchmark sends it) with:

- ``plain``: pickles, no envelope, no signature;
- ``envelopes``: ``Serializer(key=...).dumps_frames`` / ``loads_frames`` for the
  task and the result (their headers, checks and HMAC tags);
- ``messages``: the executor's signed messages (``_messages.pack`` / ``unpack``)
  between your process and the interchange;
- ``both``: what the executor itself does, less its bookkeeping.

and, for comparison, ``serdoctor.Executor`` and ``ProcessPoolExecutor``. Usage::

    python benchmarks/latency_floor.py [--tasks 1500]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import pickle
import select
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from serdoctor.execute import _messages as m
from serdoctor.execute._worker import recv_frames, send_frames
from serdoctor.serialize import Serializer

KEY = os.urandom(32)


def noop(x: int) -> int:
    return x


def _worker(sock: socket.socket, envelopes: bool) -> None:
    serializer = Serializer(key=KEY)
    while (message := recv_frames(sock)) is not None:
        task_id, frames = message
        if envelopes:
            call = serializer.loads_frames(frames)
            out = serializer.dumps_frames(("ok", call[0](*call[1], **call[2])))
        else:
            fn, args = pickle.loads(frames[0])
            out = [pickle.dumps(("ok", fn(*args)))]
        send_frames(sock, task_id, out)
    os._exit(0)


def _interchange(client: socket.socket, messages: bool, envelopes: bool) -> None:
    ours, theirs = socket.socketpair()
    if os.fork() == 0:
        ours.close()
        client.close()
        _worker(theirs, envelopes)
    theirs.close()
    while True:
        readable, _, _ = select.select([client, ours], [], [], 1.0)
        if client in readable:
            message = recv_frames(client)
            if message is None:  # the client has gone
                os._exit(0)
            frames = message[1]
            if messages:
                msg = m.unpack(KEY, frames, "tasks")
                frames = m.split(msg.frames, [int(r[1]) for r in msg.index["tasks"]])[0]
            send_frames(ours, 1, frames)
        if ours in readable:
            message = recv_frames(ours)
            assert message is not None
            task_id, frames = message
            if messages:
                frames = m.pack(KEY, m.RESULTS, {"results": [[task_id, len(frames)]]}, [frames])
            send_frames(client, 0, frames)


def prototype(tasks: int, envelopes: bool, messages: bool) -> float:
    """p50 (s) of ``tasks`` sequential no-op tasks through the bare prototype."""
    sock, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:
        sock.close()
        _interchange(theirs, messages, envelopes)
    theirs.close()
    serializer = Serializer(key=KEY)
    waiting: list[concurrent.futures.Future[Any]] = []
    done = threading.Event()

    def io() -> None:
        while not done.is_set():
            if not select.select([sock], [], [], 0.1)[0]:
                continue
            message = recv_frames(sock)
            assert message is not None
            parts = message[1]
            if messages:
                msg = m.unpack(KEY, parts, "results")
                frames = m.split(msg.frames, [int(r[1]) for r in msg.index["results"]])[0]
            else:
                frames = parts
            out = serializer.loads_frames(frames) if envelopes else pickle.loads(frames[0])
            waiting.pop().set_result(out[1])

    thread = threading.Thread(target=io)
    thread.start()
    times = []
    try:
        for i in range(tasks):
            start = time.perf_counter()
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            waiting.append(future)
            if envelopes:
                frames = serializer.dumps_frames((noop, (i,), {}))
            else:
                frames = [pickle.dumps((noop, (i,)))]
            if messages:
                frames = m.pack(KEY, m.TASKS, {"tasks": [[i, len(frames), 0, None]]}, [frames])
            send_frames(sock, 0, frames)
            assert future.result(timeout=10) == i
            times.append(time.perf_counter() - start)
    finally:
        done.set()
        thread.join()
        sock.close()
        os.waitpid(child, 0)
    return statistics.median(times[tasks // 10 :])


def executor_p50(make: Callable[[], concurrent.futures.Executor], tasks: int) -> float:
    """p50 (s) of ``tasks`` sequential no-op tasks through a real executor."""
    with make() as ex:
        for _ in range(100):
            ex.submit(noop, 1).result()
        times = []
        for i in range(tasks):
            start = time.perf_counter()
            ex.submit(noop, i).result()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1500)
    args = parser.parse_args()
    import serdoctor

    rows = [
        ("prototype, plain pickles", lambda: prototype(args.tasks, False, False)),
        ("prototype + envelopes", lambda: prototype(args.tasks, True, False)),
        ("prototype + signed messages", lambda: prototype(args.tasks, False, True)),
        ("prototype + both", lambda: prototype(args.tasks, True, True)),
        ("serdoctor.Executor", lambda: executor_p50(lambda: serdoctor.Executor(2), args.tasks)),
        ("ProcessPoolExecutor", lambda: executor_p50(
            lambda: concurrent.futures.ProcessPoolExecutor(2), args.tasks)),
    ]  # fmt: skip
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores; p50 of {args.tasks} "
          "sequential no-op tasks")  # fmt: skip
    for name, run in rows:
        print(f"  {name:30} {run() * 1e6:6.0f} us", flush=True)


if __name__ == "__main__":
    main()

"""The pool <-> worker framing over a real socket pair: every byte arrives, in order."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from serdoctor.execute._worker import recv_frames, send_frames

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "sizes",
    [
        [200, 58, 32],  # a small task: one system call
        [0, 5, 0],  # empty frames
        [250, 8 << 20, 32, 3 << 20],  # larger than the socket's buffer: written in parts
    ],
)
def test_messages_arrive_whole_and_in_order(sizes: list[int]) -> None:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    a.settimeout(20)  # non-blocking underneath: large messages are written in parts
    frames = [os.urandom(n) for n in sizes]
    received: list[object] = []

    def read() -> None:
        for _ in range(3):
            received.append(recv_frames(b))
        received.append(recv_frames(b))  # the end: the other side closed

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for task_id in (1, 2**40, 7):
            send_frames(a, task_id, frames)
        a.close()
        reader.join(30)
    finally:
        a.close()
        b.close()
    assert not reader.is_alive()
    assert [m[0] for m in received[:3]] == [1, 2**40, 7]  # type: ignore[index]
    for message in received[:3]:
        assert [bytes(f) for f in message[1]] == frames  # type: ignore[index]
    assert received[3] is None

"""Reading a ZeroMQ socket (``_messages.drain``): every waiting message, none kept after."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
import zmq

from serdoctor.execute import _messages as m

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pair() -> Any:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://drain")
    push = ctx.socket(zmq.PUSH)
    push.connect("inproc://drain")
    yield push, pull
    push.close(0)
    pull.close(0)
    ctx.term()


def test_drain_hands_over_what_waits_and_keeps_no_message(pair: Any) -> None:
    push, pull = pair
    for i in range(5):
        push.send_multipart([b"kind", str(i).encode(), b"x" * (1 << 20)])
    assert pull.poll(5000) == zmq.POLLIN
    seen: list[bytes] = []
    frames: list[weakref.ref[Any]] = []

    def handle(parts: list[Any]) -> None:
        seen.append(bytes(parts[1].buffer))
        frames.extend(weakref.ref(p) for p in parts)

    m.drain(pull, handle, 1000)
    assert seen == [b"0", b"1", b"2", b"3", b"4"]
    assert not m.readable(pull)
    gc.collect()  # (only to rule out cycles: reference counting alone frees them)
    assert all(ref() is None for ref in frames)  # the last message is not held until the next


def test_drain_stops_at_its_limit_and_leaves_the_rest_waiting(pair: Any) -> None:
    push, pull = pair
    for i in range(5):
        push.send(str(i).encode())
    assert pull.poll(5000) == zmq.POLLIN
    seen: list[bytes] = []
    m.drain(pull, lambda parts: seen.append(bytes(parts[0].buffer)), 2)
    assert seen == [b"0", b"1"]
    assert m.readable(pull)  # the rest waits for the next turn of the loop
    m.drain(pull, lambda parts: seen.append(bytes(parts[0].buffer)), 10)
    assert seen == [b"0", b"1", b"2", b"3", b"4"]

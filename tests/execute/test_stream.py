"""The socket pair between your process and its interchange: whole messages, never a block."""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serdoctor.execute._worker import Reader, Writer, framed

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _wire(task_id: int, frames: list[bytes]) -> bytes:
    return b"".join(bytes(p) for p in framed([(task_id, frames)]))


def _as_bytes(messages: list[tuple[int, list[memoryview]]]) -> list[tuple[int, list[bytes]]]:
    return [(i, [bytes(f) for f in frames]) for i, frames in messages]


def test_a_message_sent_a_byte_at_a_time_is_returned_once_whole(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    reader = Reader(b)
    wire = _wire(7, [b"kind", b"", b"x" * 300])
    for byte in wire[:-1]:
        a.send(bytes([byte]))
        assert reader.read(10) == []  # never waits for the rest: returns what is whole
    a.send(wire[-1:])
    assert _as_bytes(reader.read(10)) == [(7, [b"kind", b"", b"x" * 300])]
    assert not reader.closed


def test_many_small_messages_come_in_order_and_limit_is_honoured(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    a.sendall(b"".join(_wire(i, [str(i).encode()]) for i in range(50)))
    reader = Reader(b)
    first = _as_bytes(reader.read(20))
    rest = _as_bytes(reader.read(100))
    assert first == [(i, [str(i).encode()]) for i in range(20)]
    assert rest == [(i, [str(i).encode()]) for i in range(20, 50)]


def test_a_large_message_is_read_into_a_buffer_of_its_own_while_the_writer_never_blocks(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    payload = os.urandom(8 << 20)  # far more than the socket's buffer
    writer, reader = Writer(a), Reader(b)
    writer.add(3, [b"head", payload, b"tag"])
    writer.flush()  # returns at once: nobody reads yet
    assert writer.pending
    got: list[tuple[int, list[memoryview]]] = []
    while not got:
        got += reader.read(10)
        writer.flush()
    assert not writer.pending
    ((task_id, frames),) = got
    assert task_id == 3 and [bytes(f) for f in frames] == [b"head", payload, b"tag"]


def test_the_other_side_closing_is_seen_after_its_last_whole_message(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    a.sendall(_wire(1, [b"last"]) + _wire(2, [b"cut short"])[:10])
    a.close()
    reader = Reader(b)
    assert _as_bytes(reader.read(10)) == [(1, [b"last"])]
    # (the next read, which a poll asks for: a closed socket stays readable)
    assert reader.read(10) == []
    assert reader.closed


def test_a_writer_to_a_closed_socket_raises_oserror(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    b.close()
    writer = Writer(a)
    writer.add(1, [b"x"])
    with pytest.raises(OSError):
        writer.flush()
    writer.discard()
    assert not writer.pending


@given(
    messages=st.lists(
        st.tuples(
            st.integers(0, 2**64 - 1),
            st.lists(st.binary(max_size=200) | st.just(b"y" * 70_000), max_size=4),
        ),
        max_size=12,
    ),
    cuts=st.lists(st.integers(1, 90_000), max_size=20),
)
@settings(max_examples=60, deadline=None)
def test_messages_cut_anywhere_on_the_way_come_out_whole_and_in_order(
    messages: list[tuple[int, list[bytes]]], cuts: list[int]
) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        wire = b"".join(_wire(i, frames) for i, frames in messages)
        sender = threading.Thread(target=_send_in_pieces, args=(a, wire, cuts))
        sender.start()
        reader, got = Reader(b), []
        while not reader.closed:
            got += _as_bytes(reader.read(5))
            if not reader.closed:
                select.select([b], [], [], 5)  # wait for more (or the end)
        sender.join()
        assert got == messages
    finally:
        a.close()
        b.close()


def _send_in_pieces(sock: socket.socket, wire: bytes, cuts: list[int]) -> None:
    pos = 0
    for n in cuts:
        sock.sendall(wire[pos : pos + n])
        pos += n
    sock.sendall(wire[pos:])
    sock.shutdown(socket.SHUT_WR)

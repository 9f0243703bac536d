"""Signed messages, dropped forgeries, CURVE off loopback: nothing foreign is ever unpickled."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

import serdoctor
from serdoctor.execute import Executor
from serdoctor.execute import _messages as m

pytestmark = pytest.mark.timeout(60)


class _Touch:
    """Unpickling this creates the marker file: proof that something was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.path, "w"))


def _attacks(marker: Path) -> list[list[bytes]]:
    evil = pickle.dumps(_Touch(str(marker)))
    wrong_key = os.urandom(32)
    envelope = serdoctor.Serializer(methods=("pickle",), key=wrong_key).dumps_frames(
        _Touch(str(marker))
    )
    unsigned = serdoctor.Serializer(methods=("pickle",)).dumps_frames(_Touch(str(marker)))
    return [
        [b"garbage"],
        [evil],
        [m.TASKS, b'{"tasks": [[1, 1, 0, null]]}', evil, b"\0" * 32],  # forged MAC
        m.pack(wrong_key, m.TASKS, {"tasks": [[1, len(envelope), 0, None]]}, [envelope]),
        [m.TASKS, b'{"tasks": [[2, %d, 0, null]]}' % len(unsigned), *map(bytes, unsigned)],
        m.pack(wrong_key, m.REGISTER, {"pool_id": "intruder", "python": "3.11", "workers": 9}),
        [m.RESULTS, b'{"results": [[0, 1]]}', evil, os.urandom(32)],
        # indexes that once stopped the interchange (an exception other than "bad message")
        [m.TASKS, b"[" * 100_000, os.urandom(32)],  # nested past Python's recursion limit
        [m.TASKS, b'{"tasks": [{"1": 1}]}', evil, os.urandom(32)],  # a row that is an object
        [m.TASKS, b'{"tasks": [[1, 1e400]]}', evil, os.urandom(32)],  # a count of infinity
    ]


def test_forged_garbage_and_unsigned_messages_are_dropped_never_unpickled(
    executor: Executor, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    assert executor.submit(abs, -1).result(timeout=20) == 1
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(executor.pool_url)
        for parts in _attacks(marker):
            sock.send_multipart(parts)
        time.sleep(0.3)
        sock.close()
    finally:
        ctx.term()
    deadline = time.monotonic() + 10
    while executor.dropped_messages < len(_attacks(marker)):
        assert time.monotonic() < deadline, f"dropped: {executor.dropped_messages}"
        time.sleep(0.05)
    assert not marker.exists()
    assert all(p.id != "intruder" for p in executor.pools())
    # the interchange kept serving
    assert executor.submit(pow, 3, 3).result(timeout=20) == 27


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(
    kind=st.sampled_from(sorted(m.KINDS)),
    index=_JSON
    | st.fixed_dictionaries(
        {},
        optional={
            "tasks": st.lists(_JSON, max_size=3),
            "results": st.lists(_JSON, max_size=3),
            "layout": _JSON | st.lists(st.lists(_JSON, max_size=4), max_size=3),
        },
    ),
    frames=st.lists(st.binary(max_size=40), max_size=3),
    counts_of=st.sampled_from([None, "tasks", "results"]),
)
@settings(max_examples=500, deadline=None)
def test_a_message_read_with_the_wrong_mac_only_ever_raises_bad_message(
    kind: bytes, index: object, frames: list[bytes], counts_of: str | None
) -> None:
    import json

    head = json.dumps(index).encode()
    with pytest.raises(m.BadMessage):  # (never another exception: that stops its reader)
        m.unpack(b"k" * 32, [kind, head, *frames, os.urandom(32)], counts_of)


def test_the_key_never_appears_on_a_command_line(executor: Executor) -> None:
    import psutil

    executor.submit(abs, 1).result(timeout=20)
    key = executor._secrets.key.hex()
    checked = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline, environ = " ".join(proc.cmdline()), str(proc.environ())
        except psutil.NoSuchProcess:  # the short-lived child that takes the fingerprint
            continue
        assert key not in cmdline
        assert key not in environ
        checked += 1
    assert checked >= 3  # the interchange and the local pool's two workers at least


def test_off_loopback_pools_connect_with_curve_and_plain_clients_get_nothing() -> None:
    with Executor(workers=1, address="0.0.0.0", heartbeat=0.2, heartbeat_threshold=1.5) as ex:
        assert ex._secrets.curve_server_public is not None
        assert ex.submit(abs, -9).result(timeout=20) == 9
        ctx = zmq.Context()
        try:
            plain = ctx.socket(zmq.DEALER)
            plain.setsockopt(zmq.LINGER, 0)
            plain.connect(f"tcp://127.0.0.1:{ex.port}")
            plain.send_multipart(m.pack(ex._secrets.key, m.REGISTER, {"pool_id": "plain"}))
            time.sleep(0.5)
            assert all(p.id != "plain" for p in ex.pools())  # no handshake, no registration
            plain.close()
        finally:
            ctx.term()


def test_a_key_file_is_private_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    from serdoctor.execute._config import Secrets

    path = Secrets(os.urandom(32)).write(tmp_path / "k")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert Secrets.read(path).key
    path.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        Secrets.read(path)
    (tmp_path / "junk").write_text("hello")
    (tmp_path / "junk").chmod(0o600)
    with pytest.raises(ValueError, match="not a serdoctor key file"):
        Secrets.read(tmp_path / "junk")

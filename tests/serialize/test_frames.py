"""dumps_frames / loads_frames: large buffers travel as their own frames, uncopied."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

import serdoctor
from serdoctor.serialize import _envelope as env


def _nbytes(frame: object) -> int:
    return memoryview(frame).nbytes  # type: ignore[arg-type]


def test_numpy_array_is_not_copied_either_way() -> None:
    s = serdoctor.Serializer()
    arr = np.arange(1_000_000, dtype=np.float64)
    frames = s.dumps_frames(arr)
    assert len(frames) == 3
    assert np.shares_memory(np.frombuffer(frames[2], dtype=np.float64), arr)  # dumps: no copy
    back = s.loads_frames(frames)
    assert np.shares_memory(back, arr)  # loads: rebuilt on the frame itself
    assert back.dtype == arr.dtype and (back == arr).all()
    assert b"".join(frames) == s.dumps(arr)


def test_arrays_from_readonly_frames_are_readonly_and_flat_loads_copy() -> None:
    s = serdoctor.Serializer()
    arr = np.arange(10_000, dtype=np.int32).reshape(100, 100)
    frames = [bytes(f) for f in s.dumps_frames(arr)]
    back = s.loads_frames(frames)
    assert not back.flags.writeable  # zero copy on read-only memory
    flat = s.loads(b"".join(frames))
    assert flat.flags.writeable  # like pickle.loads: a private, writable copy
    assert (flat == arr).all() and flat.shape == (100, 100)
    writable = s.loads(bytearray(b"".join(frames)))
    assert writable.flags.writeable


def test_several_arrays_in_a_container() -> None:
    s = serdoctor.Serializer()
    a, b = np.ones((500, 300)), np.arange(50_000, dtype=np.int16)
    tiny = np.arange(3)
    frames = s.dumps_frames({"a": a, "b": b, "tiny": tiny, "n": 1})
    header = env.read_head(frames[0])[0]
    assert header.buffers == (a.nbytes, b.nbytes)  # tiny arrays stay in the body
    back = s.loads_frames(frames)
    assert np.shares_memory(back["a"], a) and np.shares_memory(back["b"], b)
    assert (back["tiny"] == tiny).all() and back["n"] == 1


def test_fortran_and_non_contiguous_arrays() -> None:
    s = serdoctor.Serializer()
    f = np.asfortranarray(np.arange(20_000.0).reshape(100, 200))
    strided = np.arange(100_000)[::3]
    back = s.loads_frames(s.dumps_frames([f, strided]))
    assert back[0].flags.f_contiguous and (back[0] == f).all()
    assert (back[1] == strided).all()


def test_bytearray_memoryview_and_picklebuffer_travel_out_of_band() -> None:
    s = serdoctor.Serializer()
    blob = bytearray(b"x" * 200_000)
    view = memoryview(bytearray(range(256)) * 1000)
    frames = s.dumps_frames(blob)
    assert len(frames) == 3 and _nbytes(frames[2]) == len(blob)
    assert memoryview(frames[2]).obj is blob  # the frame IS the bytearray's memory
    writable_frames = [frames[0], frames[1], bytearray(frames[2])]
    back = s.loads_frames(writable_frames)
    assert type(back) is bytearray and back == blob
    assert back is writable_frames[2]  # a bytearray frame is used as is

    nested = {"blob": blob, "view": view, "buf": pickle.PickleBuffer(b"y" * 100_000)}
    frames = s.dumps_frames(nested)
    header = env.read_head(frames[0])[0]
    assert sorted(header.buffers) == sorted([len(blob), view.nbytes, 100_000])
    back = s.loads_frames(frames)
    assert back["blob"] == blob and type(back["blob"]) is bytearray
    assert isinstance(back["view"], memoryview) and back["view"] == view
    assert bytes(back["buf"]) == b"y" * 100_000


def test_typed_memoryview_keeps_format_and_shape() -> None:
    s = serdoctor.Serializer()
    view = memoryview(np.arange(12_000, dtype=np.float64).reshape(30, 400))
    back = s.loads(s.dumps(view))
    assert back.format == "d" and back.shape == (30, 400)
    assert back.tolist() == view.tolist()


def test_frame_count_mismatch_is_an_error() -> None:
    s = serdoctor.Serializer()
    frames = s.dumps_frames(np.arange(100_000))
    with pytest.raises(serdoctor.DeserializationError, match="frames"):
        s.loads_frames(frames[:2])
    with pytest.raises(serdoctor.DeserializationError, match="truncated"):
        s.loads_frames([frames[0], frames[1], bytes(frames[2])[:-8]])
    with pytest.raises(serdoctor.DeserializationError, match="no frames"):
        s.loads_frames([])


def test_a_bytearray_sent_twice_arrives_once() -> None:
    s = serdoctor.Serializer()
    blob = bytearray(70_000)
    frames = s.dumps_frames([blob, {"again": blob}])
    assert [_nbytes(f) for f in frames[2:]] == [70_000]  # sent once
    back = s.loads_frames(frames)
    assert back[0] is back[1]["again"]
    flat = s.loads(s.dumps([blob, blob]))
    assert flat[0] is flat[1] and flat[0] == blob


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cores", [1, 2, 3, 16])
def test_a_large_payload_is_hashed_on_every_core_and_tagged_the_same(
    cores: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = [np.arange(1_300_001, dtype=np.float64), np.zeros(700_003, dtype=np.uint8)]
    key = b"k" * 32
    # made with however many cores this machine has
    reference = serdoctor.Serializer(key=key).dumps_frames(value)
    started = []

    class Counted(threading.Thread):
        def start(self) -> None:
            started.append(self)
            super().start()

    monkeypatch.setattr(env, "_cores", lambda: cores)
    monkeypatch.setattr(env, "_Thread", Counted)
    frames = serdoctor.Serializer(key=key).dumps_frames(value)
    chunks = -(-sum(memoryview(f).nbytes for f in frames[:-1]) // env.CHUNK)
    assert chunks == 11
    # the calling thread hashes the first share, helpers the others
    assert len(started) == min(cores, env.MAX_THREADS) - 1
    assert bytes(frames[-1]) == bytes(reference[-1])
    started.clear()
    back = serdoctor.Serializer(key=key).loads_frames(frames)
    assert len(started) == min(cores, env.MAX_THREADS) - 1
    assert all(t.ident is not None and not t.is_alive() for t in started)
    assert (back[0] == value[0]).all() and (back[1] == value[1]).all()


@pytest.mark.timeout(60)
def test_a_chunk_that_fails_to_hash_in_a_helper_thread_fails_the_dump(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = env.hashlib.sha256
    main = threading.main_thread()

    def failing_in_helpers(*args: object) -> object:
        if threading.current_thread() is not main:
            raise MemoryError("no memory for this chunk")
        return real(*args)

    monkeypatch.setattr(env, "_cores", lambda: 4)
    monkeypatch.setattr(env.hashlib, "sha256", failing_in_helpers)
    before = threading.active_count()
    with pytest.raises(MemoryError, match="no memory for this chunk"):
        serdoctor.Serializer(key=b"k" * 32).dumps_frames(np.zeros(5 << 20, dtype=np.uint8))
    assert threading.active_count() == before  # every helper joined


@pytest.mark.timeout(60)
def test_payloads_are_signed_by_chunks_from_2_mib_of_body_and_buffers() -> None:
    s = serdoctor.Serializer(key=b"k" * 32)
    for value, flags in ((b"x" * (env.CHUNKED_AT - 100), 0x01), (b"x" * env.CHUNKED_AT, 0x03)):
        frames = s.dumps_frames(value)
        header, _ = env.read_head(frames[0])
        assert (header.body + sum(header.buffers) >= env.CHUNKED_AT) == (flags == 0x03)
        assert bytes(frames[0])[6] == flags
        assert s.loads_frames(frames) == value
    # bytes travel in the body: the fast path of loads() checks a tag by chunks too
    value = b"y" * (3 << 20)
    flat = s.dumps(value)
    assert flat[6] == 0x03
    assert s.loads(flat) == value
    assert s.loads(flat) == value  # (its header now known: the fast path)
    tampered = bytearray(flat)
    tampered[len(flat) // 2] ^= 1
    with pytest.raises(serdoctor.errors.SignatureError):
        s.loads(bytes(tampered))


@pytest.mark.timeout(60)
def test_buffers_kept_out_by_buffer_callback_are_checked_by_chunks() -> None:
    s = serdoctor.Serializer(key=b"k" * 32)
    value = [np.arange(400_000, dtype=np.int64), np.ones(3_000_000, dtype=np.uint8)]
    kept: list[pickle.PickleBuffer] = []
    data = s.dumps(value, buffer_callback=lambda b: kept.append(b) is not None)
    assert data[6] == 0x03 and len(data) < 100_000
    back = s.loads(data, buffers=[b.raw() for b in kept])
    assert (back[0] == value[0]).all() and (back[1] == value[1]).all()
    changed = bytearray(kept[1].raw())
    changed[-1] ^= 1
    with pytest.raises(serdoctor.errors.SignatureError):
        s.loads(data, buffers=[kept[0].raw(), changed])

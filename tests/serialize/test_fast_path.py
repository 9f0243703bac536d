"""The fast path (a reused pickler, remembered headers) writes the same bytes and checks as much.

``dumps`` reuses one pickler per thread for plain-pickle payloads, and
``loads`` recognises a header it has already decoded and checked. Each test
warms the fast path up first (one round trip), then shows that what the
general path would refuse is still refused, and what it would write is
written byte for byte.
"""

from __future__ import annotations

import json
import os.path
import pickle
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.serialize.test_checks import Touch

import serdoctor
from serdoctor.errors import (
    DeserializationError,
    SerializationError,
    SignatureError,
    UnsafePayloadError,
)
from serdoctor.serialize import _envelope as env
from serdoctor.serialize._checks import EnvironmentMismatchWarning
from serdoctor.serialize._methods import PickleMethod, registry

KEY = b"f" * 32
SAMPLES: list[Any] = [
    {"a": 1, "b": 2.0, "c": "x"},
    os.path.join,
    ValueError("boom"),
    [b"y" * 100_000, "z" * 70_000],  # pieces of 64 KiB and more: several chunks
    np.arange(50_000),  # out of band
    serdoctor.Serializer,
]


def _warm(s: serdoctor.Serializer, obj: Any) -> bytes:
    data = s.dumps(obj)
    s.loads(data)
    return s.dumps(obj)


@pytest.mark.parametrize("key", [None, KEY])
@pytest.mark.parametrize("index", range(len(SAMPLES)))
def test_the_fast_path_writes_what_the_general_path_writes(index: int, key: bytes | None) -> None:
    s = serdoctor.Serializer(key=key)
    obj = SAMPLES[index]
    fast = _warm(s, obj)
    assert fast == s._dump(obj).flat()  # the general path, for the same object
    assert b"".join(s.dumps_frames(obj)) == fast
    back = s.loads(fast)
    again = s.loads_frames(s.dumps_frames(obj))
    for value in (back, again):
        if isinstance(obj, np.ndarray):
            assert (value == obj).all()
        elif isinstance(obj, BaseException):
            assert type(value) is ValueError and value.args == obj.args
        else:
            assert value == obj


def _closure(k: int) -> Any:
    def add(x: int) -> int:
        return x + k

    return add


class _Local:
    """Made at run time below: a class pickle cannot find by name."""


_BY_VALUE: list[Any] = [
    lambda x: x + 1,
    lambda x: json.dumps([x]),  # a module among its globals
    _closure(5),
    (lambda x, *, y=2: x * y, (3,), {"y": 4}),  # a call, as an executor sends it
    (_closure(7), (np.arange(20_000),), {}),  # with a large argument out of band
    type("Made", (_Local,), {"__doc__": "made at run time"}),
]


@pytest.mark.parametrize("key", [None, KEY])
@pytest.mark.parametrize("index", range(len(_BY_VALUE)))
def test_code_by_value_takes_a_fast_path_that_writes_what_the_general_path_writes(
    index: int, key: bytes | None
) -> None:
    s = serdoctor.Serializer(key=key)
    obj = _BY_VALUE[index]
    fast = _warm(s, obj)
    assert s._local.by_value is not None  # the reused cloudpickle pickler wrote it
    assert fast == s._dump(obj).flat()  # the general path, for the same object
    assert b"".join(s.dumps_frames(obj)) == fast
    assert env.read_head(fast)[0].by_value
    back = s.loads_frames(s.dumps_frames(obj))
    if isinstance(obj, tuple):
        fn, args, kwargs = back
        expected = obj[0](*obj[1], **obj[2])
        got = fn(*args, **kwargs)
        assert (got == expected).all() if isinstance(got, np.ndarray) else got == expected
    elif isinstance(obj, type):
        assert back.__name__ == "Made" and back.__doc__ == "made at run time"
    else:
        assert back(1) == obj(1)


def test_a_by_value_function_reads_its_globals_afresh_on_every_call() -> None:
    # the reused pickler must not keep what it sent before: a global the function
    # reads is sent as it is now
    s = serdoctor.Serializer()
    module = sys.modules[__name__]
    fn = lambda: _SETTING  # noqa: E731
    for value in (1, [2, 3], {"four": 4}):
        module._SETTING = value  # type: ignore[attr-defined]
        assert s.loads(s.dumps(fn))() == value
        assert s.loads(s.dumps((fn, (), {})))[0]() == value
    assert s._local.by_value is not None


_SETTING: Any = None


@pytest.mark.parametrize("damage", ["body", "tag", "truncate", "drop_tag", "extend"])
def test_a_damaged_signed_payload_is_refused_after_warm_up(tmp_path: Path, damage: str) -> None:
    s = serdoctor.Serializer(key=KEY)
    good = tmp_path / "ran"
    _warm(s, Touch(good))
    data = bytearray(s.dumps(Touch(tmp_path / "run")))
    if damage == "body":
        at = data.index(b"run", 20)
        data[at : at + 3] = b"RUN"
    elif damage == "tag":
        data[-1] ^= 1
    elif damage == "truncate":
        data = data[:-5]
    elif damage == "drop_tag":
        data = data[: -env.TAG_SIZE]
    else:
        data += b"\x00"
    with pytest.raises(DeserializationError):  # SignatureError is one
        s.loads(bytes(data))
    frames = s.dumps_frames(Touch(tmp_path / "run"))
    frames[1] = bytes(frames[1]).replace(b"run", b"RUN")
    with pytest.raises(SignatureError):
        s.loads_frames(frames)
    assert not (tmp_path / "run").exists() and not (tmp_path / "RUN").exists()


def test_a_foreign_key_and_an_unsigned_payload_are_refused_after_warm_up(tmp_path: Path) -> None:
    s = serdoctor.Serializer(key=KEY)
    _warm(s, Touch(tmp_path / "ok"))
    other = serdoctor.Serializer(key=b"o" * 32)
    _warm(other, Touch(tmp_path / "ok"))
    plain = serdoctor.Serializer()
    _warm(plain, Touch(tmp_path / "ok"))
    with pytest.raises(SignatureError, match="does not match"):
        s.loads(other.dumps(Touch(tmp_path / "bad")))
    with pytest.raises(SignatureError, match="not signed"):
        s.loads(plain.dumps(Touch(tmp_path / "bad")))
    assert not (tmp_path / "bad").exists()


def test_every_length_of_a_truncated_payload_is_refused_after_warm_up() -> None:
    s = serdoctor.Serializer()
    payload = _warm(s, {"k": list(range(50)), "s": "x" * 300})
    for n in range(len(payload) - 1, -1, -7):
        with pytest.raises(DeserializationError):
            s.loads(payload[:n])
    with pytest.raises(DeserializationError, match="unexpected bytes"):
        s.loads(payload + b"\x00")


def test_changing_the_configuration_forgets_what_was_checked() -> None:
    s = serdoctor.Serializer()
    data = _warm(s, {"a": 1})
    s.allow = ("cloudpickle",)
    with pytest.raises(UnsafePayloadError, match="allow"):
        s.loads(data)
    with pytest.raises(UnsafePayloadError, match="allow"):
        s.loads_frames(s.dumps_frames({"a": 1}))
    s.key = KEY
    with pytest.raises(SignatureError, match="not signed"):
        serdoctor.Serializer(key=KEY, allow=("pickle",)).loads(data)


class _Counting(PickleMethod):
    """pickle, counting its calls: shows which method the serializer really runs."""

    def __init__(self) -> None:
        self.calls = 0

    def dumps_chunks(self, obj: Any, context: Any) -> list[Any]:
        self.calls += 1
        return super().dumps_chunks(obj, context)


def test_a_replaced_pickle_method_is_used_not_bypassed() -> None:
    s = serdoctor.Serializer()
    _warm(s, {"a": 1})
    original = registry.get("pickle")
    counting = _Counting()
    registry.register(counting, replace=True)
    try:
        assert s.loads(s.dumps({"a": 2})) == {"a": 2}
        assert counting.calls == 1
    finally:
        registry.register(original, replace=True)
    assert s.loads(s.dumps({"a": 3})) == {"a": 3}
    assert counting.calls == 1  # the built-in is back, and the fast path with it


def test_a_version_mismatch_warns_on_every_load_not_only_the_first() -> None:
    s = serdoctor.Serializer()
    data = s.dumps(np.float64(1.5))  # needs numpy, whose version goes in the header
    header, size = env.read_head(data)
    fields = header.to_dict()
    fields["requires"] = {**fields["requires"], "numpy": "0.0.1"}
    fields.setdefault("dists", {})["numpy"] = "numpy"
    text = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    old = env.MAGIC + bytes([env.FORMAT_VERSION, 0]) + len(text).to_bytes(4, "big") + text
    old += data[size:]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert s.loads(old) == 1.5
    assert [w.category for w in caught] == [EnvironmentMismatchWarning] * 3
    assert "numpy 0.0.1" in str(caught[0].message)


class _Nested:
    """Its reduce calls serdoctor.dumps itself: the reused pickler is busy then."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __reduce__(self) -> Any:
        return (_unwrap, (serdoctor.dumps(self.inner),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Nested) and other.inner == self.inner


def _unwrap(data: bytes) -> _Nested:
    return _Nested(serdoctor.loads(data))


def test_a_reduce_that_calls_dumps_itself_works() -> None:
    value = _Nested({"deep": _Nested([1, 2, 3])})
    assert serdoctor.loads(serdoctor.dumps(value)) == value


def test_threads_share_a_serializer_without_mixing_payloads() -> None:
    s = serdoctor.Serializer(key=KEY)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(300):
                value = {"thread": n, "i": i, "f": os.path.join, "pad": "x" * (i % 50)}
                assert s.loads(s.dumps(value)) == value
                assert s.loads_frames(s.dumps_frames(value)) == value
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def test_a_large_bytearray_anywhere_still_goes_out_of_band() -> None:
    s = serdoctor.Serializer()
    blob = bytearray(b"q" * 100_000)
    _warm(s, {"blob": blob})
    frames = s.dumps_frames({"blob": blob})
    assert len(frames) == 3 and memoryview(frames[2]).obj is blob
    deep = [[[[blob]]]]  # deeper than the scan looks: sent in band, and intact
    assert s.loads(s.dumps(deep)) == deep


def test_refusals_after_warm_up_are_the_general_paths_refusals() -> None:
    s = serdoctor.Serializer()
    _warm(s, {"a": 1})
    with pytest.raises(SerializationError, match=r"\['guard'\].*a lock"):
        s.dumps({"guard": threading.Lock()})
    assert s.loads(s.dumps(lambda x: x + 1))(1) == 2  # by value, through cloudpickle


def test_a_serializer_pickles_with_its_configuration_not_its_caches() -> None:
    s = serdoctor.Serializer(key=KEY, on_mismatch="ignore")
    data = _warm(s, {"a": 1})
    copy = pickle.loads(pickle.dumps(s))
    assert copy.key == KEY and copy.on_mismatch == "ignore"
    assert copy.loads(data) == {"a": 1}


def test_a_dropped_pickler_is_freed_at_once_not_by_the_garbage_collector() -> None:
    """After a large payload the reused pickler is dropped: nothing may keep its buffers."""
    import gc
    import tracemalloc

    s = serdoctor.Serializer()
    big = {f"k{i}": "v" * 100 for i in range(20_000)}  # about 2.5 MB pickled
    size = len(s.dumps(big))
    gc.collect()
    gc.disable()  # only reference counting: a reference cycle would keep each pickler
    tracemalloc.start()
    try:
        for _ in range(10):
            s.dumps(big)
        kept, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert kept < 2 * size, f"{kept} bytes still held after ten {size}-byte payloads"


def test_a_signed_payload_without_its_tag_is_refused_by_an_unkeyed_serializer() -> None:
    # a serializer without a key loads signed payloads without verifying them, but
    # still refuses one whose signature frame was cut off, after warm-up as before
    signer = serdoctor.Serializer(key=KEY)
    plain = serdoctor.Serializer()
    payload = signer.dumps({"a": 1})
    assert plain.loads(payload) == {"a": 1}
    assert plain.loads(payload) == {"a": 1}  # now through the fast path
    for cut in (env.TAG_SIZE, 1):
        with pytest.raises(DeserializationError):
            plain.loads(payload[:-cut])


def _named_later(x: int) -> int:
    return x + 1


@pytest.mark.parametrize("as_call", [False, True], ids=["alone", "leading-a-call"])
def test_code_pickle_could_not_send_is_sent_by_reference_once_its_name_leads_to_it(
    as_call: bool,
) -> None:
    # the fast path remembers a function that had to go by value, alone or leading
    # a call (an executor's task: fn, args, kwargs), and does not try pickle for it
    # again; the general path still decides afresh on every call
    import sys

    module = sys.modules[__name__]
    s = serdoctor.Serializer()
    fn = _named_later

    def payload(i: int) -> Any:
        return (fn, (i,), {}) if as_call else fn

    def run(back: Any, i: int) -> Any:
        return back[0](*back[1]) if as_call else back(i)

    try:
        del module._named_later  # type: ignore[attr-defined]
        for i in range(3):
            report = s.explain(payload(i))
            assert report.method == "cloudpickle"
            assert [a.method for a in report.attempts] == ["pickle"]
            assert "_named_later cannot travel by reference" in report.attempts[0].reason
            assert run(s.loads(s.dumps(payload(i))), i) == i + 1
            assert env.read_head(s.dumps(payload(i)))[0].by_value
        assert s._local.pickler.by_value.get(id(fn)) is fn  # pickle is not tried for it
        module._named_later = fn  # type: ignore[attr-defined]
        for i in range(3):
            header = env.read_head(s.dumps(payload(i)))[0]
            assert header.method == "pickle" and not header.by_value
            back = s.loads(s.dumps(payload(i)))
            assert (back[0] if as_call else back) is fn
    finally:
        module._named_later = fn  # type: ignore[attr-defined]


def test_a_call_whose_arguments_need_code_by_value_does_not_mark_its_function() -> None:
    # pickle gave up on the lambda among the arguments, not on os.path.join: a call
    # of os.path.join with plain arguments still takes the fast path, by reference
    s = serdoctor.Serializer()
    assert env.read_head(s.dumps((os.path.join, (lambda: 1,), {})))[0].by_value
    header = env.read_head(s.dumps((os.path.join, ("a", "b"), {})))[0]
    assert header.method == "pickle" and not header.by_value
    assert not s._local.pickler.by_value  # nothing remembered: its function was not the cause


def test_payloads_of_several_kinds_in_turn_load_as_themselves() -> None:
    # the fast path remembers the last header it met and the others by their start
    s = serdoctor.Serializer(key=KEY)
    values = [{"a": 1}, os.path.join, [1, 2, 3], ValueError("x"), {"a": 2}, "text" * 50]
    payloads = [s.dumps(v) for v in values]
    for _ in range(3):
        for value, payload in zip(values, payloads, strict=True):
            back = s.loads(payload)
            if isinstance(value, ValueError):
                assert type(back) is ValueError and back.args == value.args
            else:
                assert back == value
    with pytest.raises(SignatureError):
        s.loads(payloads[0][:-1] + bytes([payloads[0][-1] ^ 1]))

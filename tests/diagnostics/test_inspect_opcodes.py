"""The streaming opcode reader: same opcodes, arguments and offsets as pickletools.genops,
FRAME and size rules of CPython's C unpickler, large arguments skipped, stacked pickles."""

from __future__ import annotations

import collections
import datetime
import decimal
import io
import pickle
import pickletools
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serdoctor.diagnostics import inspect_bytes
from serdoctor.diagnostics.inspect.machine._opcodes import (
    OPCODE_NAMES,
    PickleFormatError,
    Skipped,
    Source,
    iter_ops,
)

BIG = 1 << 40  # limits that never skip: every argument is decoded


def _genops(data: bytes) -> list[tuple[str, Any, int]]:
    out = []
    for opcode, arg, pos in pickletools.genops(data):
        if isinstance(arg, bytearray):
            arg = bytes(arg)
        out.append((opcode.name, arg, pos))
    return out


def _ours(data: bytes, chunk: int = 1 << 20) -> list[tuple[str, Any, int]]:
    out = []
    for pos, code, arg in iter_ops(
        Source.from_bytes(data, chunk=chunk), str_limit=BIG, bytes_limit=BIG
    ):
        name = OPCODE_NAMES[code]
        assert name is not None
        if name in ("GLOBAL", "INST"):
            arg = "{} {}".format(*arg)  # genops joins the pair with a space
        out.append((name, arg, pos))
    return out


VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    255,
    256,
    65535,
    65536,
    2**31 - 1,
    -(2**31),
    2**31,
    2**64,
    -(2**100),
    0.5,
    -1e300,
    float("inf"),
    "",
    "a",
    "é✓" * 40,
    "x" * 70_000,
    b"",
    b"\x00\xff",
    b"b" * 300,
    bytearray(b"ba"),
    (),
    (1,),
    (1, 2),
    (1, 2, 3),
    (1, 2, 3, 4),
    [],
    [1, [2, [3]]],
    {},
    {"k": {"n": [1, 2]}},
    {1, 2},
    frozenset({3}),
    datetime.datetime(2024, 5, 6, 7, 8, 9),
    decimal.Decimal("2.5"),
    collections.OrderedDict(a=1),
    collections.defaultdict(list, a=[1]),
    complex(1, 2),
    list(range(3000)),
    {str(i): i for i in range(2000)},
]


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_reader_matches_genops_on_every_protocol(protocol: int, chunk: int) -> None:
    for value in VALUES:
        data = pickle.dumps(value, protocol=protocol)
        assert _ours(data, chunk) == _genops(data), (protocol, value)


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(value=values, protocol=st.integers(0, 5), chunk=st.sampled_from([3, 16, 1 << 20]))
def test_reader_matches_genops_property(value: Any, protocol: int, chunk: int) -> None:
    data = pickle.dumps(value, protocol=protocol)
    assert _ours(data, chunk) == _genops(data)
    # the simulation reads the same opcodes as genops, to the same end
    report = inspect_bytes(data)
    assert report.exit_code == 0, report.error
    assert report.pickles[0].opcodes == len(_genops(data))
    assert report.pickles[0].end == len(data)


def test_large_arguments_are_skipped_not_read(tmp_path: Path) -> None:
    payload = b"\xab" * 3_000_000
    data = pickle.dumps({"payload": payload, "text": "t" * 9000}, protocol=5)
    path = tmp_path / "big.pkl"
    path.write_bytes(data)

    class CountingFile(io.FileIO):
        read_bytes = 0

        def read(self, size: int = -1) -> bytes:
            chunk = super().read(size)
            CountingFile.read_bytes += len(chunk)
            return chunk

    with CountingFile(path, "rb") as f:
        ops = list(iter_ops(Source(f, chunk=4096)))  # type: ignore[arg-type]
    skipped = [arg for _, _, arg in ops if isinstance(arg, Skipped)]
    assert [s.length for s in skipped] == [3_000_000, 9000]
    assert skipped[0].head == payload[:64]
    assert data[skipped[0].offset : skipped[0].offset + 3] == b"\xab\xab\xab"
    assert CountingFile.read_bytes < 100_000, "the big value was read instead of skipped"
    assert ops[-1][1] == 0x2E  # STOP


def test_stacked_pickles_are_read_one_after_another() -> None:
    data = pickle.dumps([1], protocol=2) + pickle.dumps("two", protocol=5) + pickle.dumps(3)
    src = Source.from_bytes(data)
    names = []
    while not src.at_end():
        names.append([OPCODE_NAMES[code] for _, code, _ in iter_ops(src)][-1])
    assert names == ["STOP", "STOP", "STOP"]


def test_frame_rules_follow_the_c_unpickler() -> None:
    # An opcode may straddle the end of a frame: the C unpickler accepts it.
    straddle = b"\x80\x04" + b"\x95" + struct.pack("<Q", 3) + b"\x8c\x05hello."
    assert pickle.loads(straddle) == "hello"  # a benign stream we built ourselves
    assert _ours(straddle)[-1][0] == "STOP"
    assert inspect_bytes(straddle).exit_code == 0
    # A frame longer than the rest of the data is truncation, for both.
    too_long = b"\x80\x04" + b"\x95" + struct.pack("<Q", 100) + b"N."
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(too_long)
    with pytest.raises(PickleFormatError, match="FRAME"):
        _ours(too_long)
    report = inspect_bytes(too_long)
    assert report.exit_code == 2 and report.error_kind == "truncated"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x06N.", "unsupported pickle protocol"),
        (b"\xf0", "not a pickle opcode"),
        (b"T" + struct.pack("<i", -1) + b".", "negative"),
        (b"B" + struct.pack("<I", 50) + b"abc", "truncated"),
        (b"Snot quoted\n.", "quoted"),
        (b"Iabc\n.", "int"),
        (b"\x8c\x02\xff\xfe.", "UTF-8"),
        (b"\x80\x04N", "before STOP"),
    ],
)
def test_reader_rejects_what_the_c_unpickler_rejects(data: bytes, message: str) -> None:
    with pytest.raises(PickleFormatError, match=message):
        _ours(data)


def test_text_protocol_arguments() -> None:
    data = (
        b"(I00\nI01\nI42\nL12345678901234567890L\nF1.5\nS'a\\nb'\nVcaf\\u00e9\n"
        b"cbuiltins\nlen\ng0\nl."
    )
    args = [arg for _, _, arg in iter_ops(Source.from_bytes(data))]
    assert args[1:8] == [False, True, 42, 12345678901234567890, 1.5, "a\nb", "café"]
    assert args[8] == ("builtins", "len")


def test_errors_carry_the_offset() -> None:
    data = b"\x80\x02]K\x01\xee."
    with pytest.raises(PickleFormatError) as info:
        _ours(data)
    assert info.value.offset == 5
    report = inspect_bytes(data)
    assert report.error is not None and report.error.offset == 5
    assert report.exit_code == 2

"""memo_key and task identity: stable across processes and hash seeds, order-free, precise."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import serdoctor
from serdoctor.checkpoint import arguments_key, function_identity, memo_key
from serdoctor.errors import MemoKeyError


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@dataclasses.dataclass
class Sample:
    name: str
    values: list[float]


SCRIPT = textwrap.dedent("""
    import datetime, enum, pathlib, sys, numpy as np
    sys.path.insert(0, sys.argv[1])
    from test_keys import Color, Sample
    from serdoctor import memo_key
    value = {
        "set": {3, 1, 2, "a", "b"},
        "dict": {"z": 1, "a": [1.5, None, True]},
        "array": np.arange(12, dtype=np.int32).reshape(3, 4),
        "sample": Sample("s", [0.1, 0.2]),
        "enum": Color.BLUE,
        "when": datetime.datetime(2026, 12, 5, 12, 0),
        "path": pathlib.PurePosixPath("/data/x"),
        "frozen": frozenset({("x", 1), ("y", 2)}),
    }
    print(memo_key(value))
""")


@pytest.mark.timeout(60)
def test_keys_are_equal_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    script = tmp_path / "k.py"
    script.write_text(SCRIPT)
    here = str(Path(__file__).parent)
    keys = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, str(script), here], env=env, capture_output=True, text=True,
            timeout=50, check=True,
        ).stdout.strip()  # fmt: skip
        keys.add(out)
    assert len(keys) == 1 and len(keys.pop()) == 64


def test_order_does_not_matter_where_it_should_not() -> None:
    assert memo_key({1, 2, 3}) == memo_key({3, 2, 1})
    assert memo_key({"a": 1, "b": 2}) == memo_key({"b": 2, "a": 1})
    assert memo_key([1, 2]) != memo_key([2, 1])
    assert memo_key((1, 2)) != memo_key([1, 2])
    assert memo_key(1) != memo_key(1.0) != memo_key("1") != memo_key(True)


def test_arrays_by_dtype_shape_and_bytes() -> None:
    a = np.arange(6, dtype=np.float64)
    assert memo_key(a) == memo_key(a.copy())
    assert memo_key(a) != memo_key(a.astype(np.float32))
    assert memo_key(a) != memo_key(a.reshape(2, 3))
    assert memo_key(a.reshape(2, 3).T) == memo_key(np.ascontiguousarray(a.reshape(2, 3).T))
    b = a.copy()
    b[3] = 99
    assert memo_key(a) != memo_key(b)


def test_dataclasses_enums_datetimes_and_paths() -> None:
    assert memo_key(Sample("a", [1.0])) == memo_key(Sample("a", [1.0]))
    assert memo_key(Sample("a", [1.0])) != memo_key(Sample("a", [2.0]))
    assert memo_key(Color.RED) != memo_key(Color.BLUE)
    assert memo_key(datetime.date(2026, 1, 1)) != memo_key(datetime.date(2026, 1, 2))
    assert memo_key(Path("/a")) == memo_key(Path("/a"))


def test_an_unknown_type_names_the_argument_and_shows_how_to_register() -> None:
    class Opaque:
        pass

    def task(x: int, blob: object) -> int:
        return x

    with pytest.raises(MemoKeyError) as info:
        arguments_key(task, (1, Opaque()), {})
    message = str(info.value)
    assert "argument 'blob'" in message
    assert "@serdoctor.memo_key.register" in message
    assert info.value.argument == "blob"
    assert isinstance(info.value, TypeError)

    @memo_key.register(Opaque)
    def _(value: Opaque) -> str:
        return memo_key("opaque")

    assert arguments_key(task, (1, Opaque()), {}) == arguments_key(task, (1, Opaque()), {})


def test_bound_arguments_f1_fx1_and_defaults_are_the_same_task() -> None:
    def f(x: int, y: int = 2, *, verbose: bool = False) -> int:
        return x + y

    k = arguments_key(f, (1,), {})
    assert k == arguments_key(f, (), {"x": 1}) == arguments_key(f, (1, 2), {})
    assert k != arguments_key(f, (1, 3), {})
    assert arguments_key(f, (1,), {"verbose": True}, ignore=("verbose",)) == arguments_key(
        f, (1,), {}, ignore=("verbose",)
    )


def _helper(x: int) -> int:
    return x + 1


def test_function_identity_follows_code_and_helpers_not_comments(tmp_path: Path) -> None:
    def load(source: str) -> object:
        namespace: dict[str, object] = {}
        exec(compile(source, "<mod>", "exec"), namespace)  # a module we can edit
        return namespace["task"]

    base = "def helper(x):\n    return x + 1\n\ndef task(x):\n    return helper(x) * 2\n"
    comment = (
        "def helper(x):\n    return x + 1\n\ndef task(x):\n    # a comment\n\n"
        "    return helper(x) * 2\n"
    )
    edited = "def helper(x):\n    return x + 1\n\ndef task(x):\n    return helper(x) * 3\n"
    helper_edited = "def helper(x):\n    return x + 2\n\ndef task(x):\n    return helper(x) * 2\n"
    key = function_identity(load(base))[1]  # type: ignore[arg-type]
    assert function_identity(load(comment))[1] == key  # type: ignore[arg-type]
    assert function_identity(load(edited))[1] != key  # type: ignore[arg-type]
    assert function_identity(load(helper_edited))[1] != key  # type: ignore[arg-type]
    assert (
        function_identity(load(edited), code=False)[1]
        == function_identity(  # type: ignore[arg-type]
            load(base),
            code=False,  # type: ignore[arg-type]
        )[1]
    )


def test_memo_key_is_public() -> None:
    assert serdoctor.memo_key is memo_key

"""The golden payloads: what each one holds and what loading it must give.

``make_golden.py`` dumps every case below into ``<name>.sdoc`` and records the
environment it ran in in ``manifest.json``; ``tests/serialize/test_golden.py``
loads each file and checks the result with the case's ``check``, and re-dumps
``make()`` to prove today's serdoctor still writes the same bytes.

Rules that keep the payloads reproducible byte for byte:

- sets hold only ints and tuples of ints (their hashes, hence their order,
  do not depend on ``PYTHONHASHSEED``);
- the by-value lambda is compiled from a fixed source string with a fixed
  file name and globals, so its code object is the same in every process;
- the signing key is a fixed test key (never use it for anything else).

This module is imported by file path (it is not a package module), so it
imports nothing from the tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: the fixed key of the signed golden payload (32 bytes; a test key, nothing else)
TEST_KEY = b"serdoctor-golden-test-key-000001"

#: the Python major.minor the goldens are made with (the by-value lambda needs it)
GOLDEN_PYTHON = "3.11"

LAMBDA_SOURCE = "lambda x, y=2: x * 3 + y"
LAMBDA_FILENAME = "<serdoctor-golden>"
LAMBDA_MODULE = "serdoctor_golden_lambda"


def make_lambda() -> Callable[..., Any]:
    """The by-value lambda, built the same way in every process."""
    code = compile(LAMBDA_SOURCE, LAMBDA_FILENAME, "eval")
    fn: Callable[..., Any] = eval(code, {"__name__": LAMBDA_MODULE})
    return fn


def _plain() -> dict[str, Any]:
    return {
        "name": "serdoctor",
        "unicode": "héllo wörld ✓",
        "n": 42,
        "negative": -7,
        "big": 2**100,
        "bigger_negative": -(2**70),
        "ratio": 0.5,
        "third": 1 / 3,
        "inf": float("inf"),
        "nothing": None,
        "flags": [True, False],
        "nested": {"list": [1, 2, 3], "empty": {}, "empty_list": []},
    }


def _bytes() -> bytes:
    return bytes(range(256)) * 4


def _nested() -> tuple[Any, ...]:
    return (
        1,
        (2, (3, (4,))),
        {5, 6, 7},
        frozenset({8, 9}),
        ((), (frozenset(),), set()),
        {(1, 2), (3, 4)},
        frozenset({(5, 6), (7, 8)}),
    )


def _array() -> Any:
    import numpy as np

    return np.arange(1024, dtype="<f8").reshape(32, 32)


def _big_bytearray() -> bytearray:
    return bytearray(b"serdoctor" * 7282 + b"\x00" * 2)  # 65 540 bytes


def _signed() -> dict[str, Any]:
    return {"signed": True, "values": [1, 2, 3], "who": "golden"}


def _equal(value: Any) -> Callable[[Any], bool]:
    def check(loaded: Any) -> bool:
        return type(loaded) is type(value) and bool(loaded == value)

    return check


def _check_nested(loaded: Any) -> bool:
    expected = _nested()
    if loaded != expected:
        return False
    kinds = [type(x) for x in loaded]
    return kinds == [type(x) for x in expected] and type(loaded[4][2]) is set


def _check_join(loaded: Any) -> bool:
    return loaded is os.path.join


def _check_array(loaded: Any) -> bool:
    import numpy as np

    expected = _array()
    return (
        isinstance(loaded, np.ndarray)
        and loaded.dtype == expected.dtype
        and loaded.shape == expected.shape
        and bool(np.array_equal(loaded, expected))
    )


def _check_lambda(loaded: Any) -> bool:
    return callable(loaded) and loaded(4) == 14 and loaded(4, y=0) == 12


def _check_bytearray(loaded: Any) -> bool:
    return type(loaded) is bytearray and loaded == _big_bytearray()


@dataclass(frozen=True)
class GoldenCase:
    """One golden payload.

    ``make`` builds the value that is dumped; ``check`` says whether a loaded
    value is the right one; ``serializer`` are the keyword arguments of the
    :class:`serdoctor.Serializer` that dumps and loads it; ``frames`` means
    the payload's point is its out-of-band frames (it is stored flat, joined);
    ``method`` and ``by_value`` are what the header must say;
    ``body_depends_on`` lists the distributions
    (and ``"python"`` for the major.minor) whose version decides the body
    bytes, so the body is compared byte for byte only where they match.
    """

    name: str
    description: str
    make: Callable[[], Any]
    check: Callable[[Any], bool]
    method: str
    by_value: bool = False
    serializer: dict[str, Any] = field(default_factory=dict)
    frames: bool = False
    needs: tuple[str, ...] = ()
    body_depends_on: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        """The payload's file name in ``tests/golden/``."""
        return f"{self.name}.sdoc"


CASES: tuple[GoldenCase, ...] = (
    GoldenCase(
        "plain_values",
        "dict of str, int (small, big, negative), float (incl. inf), None, bool, nested list/dict",
        _plain,
        _equal(_plain()),
        "pickle",
    ),
    GoldenCase("bytes_value", "1 KiB bytes (in the body)", _bytes, _equal(_bytes()), "pickle"),
    GoldenCase(
        "nested_containers",
        "nested tuples, sets and frozensets of ints and tuples of ints",
        _nested,
        _check_nested,
        "pickle",
    ),
    GoldenCase(
        "function_by_reference",
        "os.path.join, sent by reference (posixpath.join)",
        lambda: os.path.join,
        _check_join,
        "pickle",
    ),
    GoldenCase(
        "numpy_out_of_band",
        "32x32 float64 numpy array: its 8 KiB buffer travels out of band (stored flat)",
        _array,
        _check_array,
        "pickle",
        frames=True,
        needs=("numpy",),
        body_depends_on=("numpy",),
    ),
    GoldenCase(
        "bytearray_out_of_band",
        "64 KiB bytearray: travels out of band through a persistent id",
        _big_bytearray,
        _check_bytearray,
        "pickle",
        frames=True,
    ),
    GoldenCase(
        "signed",
        "a small dict, HMAC-SHA256 signed with cases.TEST_KEY",
        _signed,
        _equal(_signed()),
        "pickle",
        serializer={"key": TEST_KEY},
    ),
    GoldenCase(
        "lambda_by_value_py311",
        f"cloudpickle by-value lambda ({LAMBDA_SOURCE}) made under Python {GOLDEN_PYTHON}",
        make_lambda,
        _check_lambda,
        "cloudpickle",
        by_value=True,
        body_depends_on=("python", "cloudpickle"),
    ),
)

BY_NAME = {case.name: case for case in CASES}

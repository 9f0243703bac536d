"""Fuzzing: inspect never raises, never crashes (exit 3), and never calls broken input clean.

Nothing here is ever unpickled: random and mutated bytes only go through inspect.
"""

from __future__ import annotations

import pickle
from typing import Any

import corpus
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serdoctor.diagnostics import inspect_bytes

SEEDS = [case.data for case in corpus.cases() if case.group != "malformed"]
SINGLE = [
    case.data
    for case in corpus.cases()
    if case.group != "malformed" and case.name != "three_stacked_pickles"
]


def _checked(data: bytes) -> Any:
    report = inspect_bytes(data)
    assert report.internal_error is None, (report.internal_error, data[:200])
    assert report.exit_code in (0, 1, 2)
    report.to_json()  # rendering to JSON works for anything
    return report


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(data: bytes) -> None:
    _checked(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=400).map(lambda b: b"\x80\x04" + b))
def test_random_bytes_after_a_proto_never_raise(data: bytes) -> None:
    _checked(data)


mutation = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]),
    st.integers(min_value=0, max_value=1 << 30),
    st.binary(min_size=1, max_size=8),
)


@settings(max_examples=500, deadline=None)
@given(seed=st.sampled_from(SEEDS), mutations=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_pickles_never_raise(seed: bytes, mutations: list[tuple[str, int, bytes]]) -> None:
    data = bytearray(seed)
    for kind, where, blob in mutations:
        if not data:
            break
        at = where % len(data)
        if kind == "flip":
            data[at] ^= blob[0] or 1
        elif kind == "insert":
            data[at:at] = blob
        elif kind == "delete":
            del data[at : at + len(blob)]
        elif kind == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at : at + 16]
    _checked(bytes(data))


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=15,
)


@settings(max_examples=150, deadline=None)
@given(value=values, protocol=st.integers(0, 5), cut=st.integers(min_value=1))
def test_truncated_pickles_are_never_clean(value: Any, protocol: int, cut: int) -> None:
    """Every strict prefix of a pickle is malformed: it must not read as clean."""
    data = pickle.dumps(value, protocol=protocol)
    prefix = data[: cut % len(data)]
    report = _checked(prefix)
    assert report.exit_code == 2, (prefix, report.findings)


@pytest.mark.parametrize("seed", SINGLE, ids=range(len(SINGLE)))
def test_every_prefix_of_corpus_pickles(seed: bytes) -> None:
    """No prefix of a valid corpus pickle is clean, and none crashes inspect."""
    for cut in range(0, len(seed), max(1, len(seed) // 60)):
        report = _checked(seed[:cut])
        assert report.exit_code in (1, 2), cut


@pytest.mark.timeout(30)
@pytest.mark.parametrize("module", ["", " ", "no such", "a..b", ".x"])
def test_globals_with_module_names_no_distribution_can_have_are_reported_not_crashed(
    module: str,
) -> None:
    data = b"\x80\x02c" + module.encode() + b"\nname\n."
    report = inspect_bytes(data)
    assert report.internal_error is None
    assert report.imports and report.imports[0].module == module

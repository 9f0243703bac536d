"""One path syntax: every walk over an object graph names a place the same way."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import serdoctor
from serdoctor.diagnostics import check
from serdoctor.errors import SerializationError
from serdoctor.serialize.proxy._walk import find
from serdoctor.testing._equality import find_difference


class Settings:
    """An object holding a dict: the path goes through an attribute and a key."""

    def __init__(self, pool: Any) -> None:
        self.pool = {"worker": pool}


class Job:
    def __init__(self, pool: Any) -> None:
        self.settings = Settings(pool)


class Guarded:
    def __init__(self, inner: Any) -> None:
        self.guard = inner


WHERE = ".settings.pool['worker'].guard"


@pytest.mark.timeout(30)
def test_refusals_check_the_proxy_policy_and_round_trip_assertions_agree() -> None:
    with pytest.raises(SerializationError) as refused:
        serdoctor.dumps(Job(Guarded(threading.Lock())))
    assert refused.value.path == "obj" + WHERE
    report = check(Job(Guarded(threading.Lock())), name="job")
    assert report.path == "job" + WHERE
    big = b"x" * 200_000
    found = find(Job(Guarded(big)), 100_000)
    assert [path for _, path in found.values()] == [WHERE]
    difference = find_difference(Job(Guarded(1)), Job(Guarded(2)))
    assert difference is not None and difference.path == WHERE


LOCK = threading.Lock()

@pytest.mark.timeout(30)
def test_a_functions_parts_are_named_alike_everywhere() -> None:
    def make(n: Any) -> Any:
        return lambda: n

    lock = threading.Lock()
    with pytest.raises(SerializationError) as refused:
        serdoctor.dumps({"f": make(lock)})
    assert refused.value.path == "obj['f']<closure n>"
    difference = find_difference({"f": make(1)}, {"f": make(2)})
    assert difference is not None and difference.path == "['f']<closure n>"
    with pytest.raises(SerializationError) as refused:
        serdoctor.dumps(lambda: LOCK.locked())
    assert refused.value.path == "obj.__globals__['LOCK']"

"""Objects that are not data are refused at dumps, precisely; nothing is ever emptied on load."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

import serdoctor
from serdoctor.diagnostics import check, inspect_bytes
from serdoctor.errors import SerializationError
from serdoctor.testing import _samples as samples
from serdoctor.testing import roundtrip_values


def test_an_open_file_is_refused_and_the_file_keeps_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    with open(path, "w") as f:
        f.write("important\n")
        f.flush()
        with pytest.raises(SerializationError, match="it is an open file") as info:
            serdoctor.dumps(f)
    assert path.read_text() == "important\n"
    assert "Send the path (f.name)" in str(info.value)


class _Holder:
    def __init__(self, thing: Any) -> None:
        self.settings = {"pool": _Inner(thing)}


class _Inner:
    def __init__(self, thing: Any) -> None:
        self.guard = thing


def _kinds(tmp_path: Path) -> Iterator[tuple[str, Callable[[], Any], str]]:
    loop = asyncio.new_event_loop()
    try:
        yield "Lock", threading.Lock, "a lock"
        yield "RLock", threading.RLock, "a lock"
        yield "Event", threading.Event, "synchronization object of this process (Event)"
        yield "Condition", threading.Condition, "synchronization object"
        yield "Semaphore", threading.Semaphore, "synchronization object"
        yield "Thread", threading.Thread, "a thread"
        yield "Future", concurrent.futures.Future, "a future"
        yield "asyncio.Future", loop.create_future, "a future"
        yield "file (read)", lambda: open(__file__), "an open file"  # noqa: SIM115 (closed below)
        yield "file (write)", lambda: open(tmp_path / "w.txt", "w"), "an open file"  # noqa: SIM115
        yield "socket", socket.socket, "a network connection"
        yield "generator", lambda: (i for i in range(3)), "a running generator"
        yield "sqlite3", lambda: sqlite3.connect(":memory:"), "a database connection"
        yield "multiprocessing.Lock", multiprocessing.Lock, "a lock"
    finally:
        loop.close()


def test_every_kind_is_refused_with_its_path_what_why_and_remedy(tmp_path: Path) -> None:
    for label, make, what in _kinds(tmp_path):
        thing = make()
        try:
            with pytest.raises(SerializationError) as info:
                serdoctor.dumps(_Holder(thing))
            message = str(info.value)
            assert "obj.settings['pool'].guard" in message, (label, message)
            assert what in message, (label, message)
            assert info.value.path == "obj.settings['pool'].guard"
            report = check(_Holder(thing), name="job")
            assert report.path == "job.settings['pool'].guard", label
            assert report.remedy and report.remedy in message, label
        finally:
            close = getattr(thing, "close", None)
            if callable(close) and not isinstance(thing, type(threading.Lock())):
                close()


def test_the_original_error_is_kept_as_the_cause() -> None:
    with pytest.raises(SerializationError) as info:
        serdoctor.dumps([multiprocessing.Lock()])
    assert "shared between processes through inheritance" in str(info.value.__cause__)


def test_in_memory_streams_are_data_and_still_travel() -> None:
    import io

    assert serdoctor.loads(serdoctor.dumps(io.BytesIO(b"abc"))).getvalue() == b"abc"


# -- the rule: what serdoctor.dumps writes, ser-doctor inspect never calls dangerous -------


def _dangers(data: bytes) -> list[str]:
    report = inspect_bytes(data)
    found = report.to_dict().get("findings", [])
    return [str(f) for f in found if f.get("severity") == "dangerous"]


@pytest.mark.timeout(300)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(roundtrip_values())
def test_what_dumps_writes_is_never_inspected_as_dangerous(value: Any) -> None:
    try:
        data = serdoctor.dumps(value)
    except SerializationError:
        return  # refused: nothing written, nothing to inspect
    assert _dangers(data) == []


def _sample_objects() -> dict[str, Any]:
    s = samples
    return {
        "functions": [s.identity, s.double, s.negate, s.square],
        "closures": [s.make_adder(3), s.make_composed(s.double, s.square), s.make_getter([1])],
        "recursive closure": s.make_factorial(),
        "generated lambda": s.compile_lambda("x + k", {"k": 2}),
        "enums": [list(s.Color), list(s.Priority), list(s.Permission)],
        "dataclasses": [s.Point(1, 2), s.Pair(s.Point(0, 0), None), s.Record("r", 1, ["t"])],
        "slotted": s.SlottedPoint(3, 4),
        "exceptions": [s.SampleError("boom"), s.TaggedError("x", tag=7)],
    }


@pytest.mark.timeout(120)
def test_the_samples_are_never_inspected_as_dangerous() -> None:
    for name, value in _sample_objects().items():
        data = serdoctor.dumps(value)
        assert _dangers(data) == [], name

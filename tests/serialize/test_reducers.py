"""Opt-in reducers: open files, locks and standard streams sent as new objects of the receiver's."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from tests.serialize.test_not_data import _dangers

import serdoctor
from serdoctor.errors import DeserializationError, SerializationError

ALL = serdoctor.Serializer(reducers=("file", "lock", "stdio"))


def test_unknown_reducer_names_are_refused_with_the_list() -> None:
    with pytest.raises(ValueError, match=r"unknown reducer 'files'.*'file', 'lock', 'stdio'"):
        serdoctor.Serializer(reducers=("files",))


def test_by_default_the_refusals_point_at_the_opt_in(tmp_path: Path) -> None:
    with open(tmp_path / "f.txt", "w") as f, pytest.raises(SerializationError) as info:
        serdoctor.dumps({"out": f})
    assert "['out']" in str(info.value) and "reducers=('file',)" in str(info.value)
    with pytest.raises(SerializationError, match=r"reducers=\('lock',\)"):
        serdoctor.dumps([threading.Lock()])


def test_a_file_open_for_writing_is_reopened_without_truncation(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    with open(path, "w", encoding="utf-8") as f:
        f.write("important\n")
        data = ALL.dumps({"out": f})  # flushed first: the receiver sees what was written
        assert path.read_text() == "important\n"
        back = ALL.loads(data)["out"]
    try:
        assert path.read_text() == "important\n"  # loading emptied nothing
        assert back.mode == "r+" and back.tell() == len("important\n")
        back.write("more\n")
        back.flush()
        assert path.read_text() == "important\nmore\n"
    finally:
        back.close()
    assert not _dangers(data)


def test_a_read_mode_file_reopens_at_its_offset_not_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "r.bin"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as f:
        f.read(4)
        data = ALL.dumps(f)
    assert b"0123456789" not in data  # the contents never travel
    back = ALL.loads(data)
    try:
        assert back.mode == "rb" and back.tell() == 4 and back.read() == b"456789"
    finally:
        back.close()
    assert not _dangers(data)


def test_an_append_mode_file_appends(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    with open(path, "a", encoding="utf-8") as f:
        f.write("one\n")
        data = ALL.dumps(f)
    back = ALL.loads(data)
    with back:
        assert back.mode == "a"
        back.write("two\n")
    assert path.read_text() == "one\ntwo\n"


def test_a_file_missing_where_it_is_loaded_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.txt"
    with open(path, "w") as f:
        data = ALL.dumps(f)
    path.unlink()
    with pytest.raises(DeserializationError, match=r"gone\.txt.*does not exist here"):
        ALL.loads(data)
    assert not path.exists()
    with open(path, "a") as f:
        appending = ALL.dumps(f)
    path.unlink()
    with pytest.raises(DeserializationError):
        ALL.loads(appending)
    assert not path.exists()


def test_a_closed_file_is_refused_at_dumps(tmp_path: Path) -> None:
    with open(tmp_path / "c.txt", "w") as f:
        pass
    with pytest.raises(SerializationError, match="closed file"):
        ALL.dumps(f)


@pytest.mark.timeout(60)
def test_a_file_reopens_in_another_interpreter(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    with open(path, "w", encoding="utf-8") as f:
        f.write("kept\n")
        (tmp_path / "p.sdoc").write_bytes(ALL.dumps(f))
    code = (
        "import sys, serdoctor\n"
        "f = serdoctor.loads(open(sys.argv[1], 'rb').read())\n"
        "f.write('from the child\\n'); f.close()\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.sdoc")], check=True, timeout=60)
    assert path.read_text() == "kept\nfrom the child\n"


def test_locks_arrive_as_fresh_ones_and_events_keep_their_state() -> None:
    held = threading.Lock()
    held.acquire()
    try:
        event = threading.Event()
        event.set()
        value: dict[str, Any] = {"lock": held, "rlock": threading.RLock(), "event": event}
        data = ALL.dumps(value)
    finally:
        held.release()
    back = ALL.loads(data)
    assert back["lock"] is not held and back["lock"].acquire(blocking=False)  # fresh, unlocked
    assert type(back["rlock"]) is type(threading.RLock())
    assert back["event"].is_set()
    assert not ALL.loads(ALL.dumps(threading.Event())).is_set()
    assert not _dangers(data)


def test_standard_streams_are_the_receivers_own() -> None:
    data = ALL.dumps({"out": sys.stdout, "err": sys.stderr})
    back = ALL.loads(data)
    assert back["out"] is sys.stdout and back["err"] is sys.stderr
    assert not _dangers(data)


def test_explain_says_what_each_reduced_object_becomes(tmp_path: Path) -> None:
    with open(tmp_path / "e.txt", "w") as f:
        report = ALL.explain({"guard": threading.Lock(), "out": f})
    text = str(report)
    assert "opt-in reducers" in text and "fresh, unlocked threading.Lock" in text
    assert "e.txt" in text and "'r+'" in text
    kinds = [r["type"] for r in report.to_dict()["reduced"]]
    assert "_thread.lock" in kinds


def test_only_the_kinds_opted_in_are_reduced(tmp_path: Path) -> None:
    only_locks = serdoctor.Serializer(reducers=("lock",))
    assert only_locks.loads(only_locks.dumps(threading.Lock())).acquire(blocking=False)
    with open(tmp_path / "n.txt", "w") as f, pytest.raises(SerializationError, match="open file"):
        only_locks.dumps(f)

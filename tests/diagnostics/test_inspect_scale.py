"""Scale: deep nesting and cycles without recursion, a 200 MB pickle in little memory,
and a memo far larger than the window inspect keeps in full."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import corpus
import pytest
from rich.console import Console

from serdoctor.diagnostics import inspect_bytes, inspect_file, run_inspect

DEPTH = 10_000


@pytest.mark.parametrize(
    "data",
    [
        # [[[...]]] with EMPTY_LIST/APPEND (protocol 2 style)
        corpus.asm(b"]" * DEPTH + b"a" * (DEPTH - 1), protocol=2),
        # ((((...),),),) with MARK ... TUPLE: 10,000 open marks
        corpus.asm(b"(" * DEPTH + b")" + b"t" * DEPTH, protocol=1),
        # {'k': {'k': ...}} with EMPTY_DICT/SETITEM
        corpus.asm(b"}" + b"\x8c\x01k}" * (DEPTH - 1) + b"s" * (DEPTH - 1)),
        # the same, in protocol 0 text: (lp0\n ... with LIST/APPEND
        b"(l" * DEPTH + b"a" * (DEPTH - 1) + b".",
    ],
    ids=["empty_list_append", "mark_tuple", "dict_setitem", "protocol0_list"],
)
def test_ten_thousand_deep(data: bytes) -> None:
    report = inspect_bytes(data)
    assert report.internal_error is None, report.internal_error
    assert report.exit_code == 0, report.error
    assert report.max_depth == DEPTH
    out = io.StringIO()
    # rendering (text, JSON, sketch) of a deep value stays bounded
    from serdoctor.diagnostics import render_report

    Console(file=out, width=100).print(render_report(report, sketch=True))
    assert "nesting depth 10,000" in out.getvalue()
    json.loads(report.to_json())


def test_deep_nesting_around_a_large_value_has_a_short_path() -> None:
    payload = b"\x8e" + struct.pack("<Q", 5000) + b"x" * 5000
    data = corpus.asm(b"]" * DEPTH + payload + b"a" * DEPTH, protocol=4)
    report = inspect_bytes(data)
    assert report.exit_code == 0
    top = report.largest[0]
    assert top.size == 5000 and top.type == "bytes"
    assert top.path.startswith("[0][0][0]") and "levels" in top.path and len(top.path) < 200


def test_cycles_do_not_loop() -> None:
    a: list[Any] = []
    b: dict[str, Any] = {"a": a}
    a.append(b)
    a.append(a)
    import pickle

    for protocol in range(6):
        report = inspect_bytes(pickle.dumps(a, protocol=protocol))
        assert report.exit_code == 0, protocol
        assert report.pickles[0].cycles >= 1
    # an object whose state refers back to itself (BUILD with a cycle)
    data = corpus.asm(
        corpus.sglob("argparse", "Namespace"),
        corpus.EMPTY_TUPLE,
        corpus.NEWOBJ,
        corpus.binput(0),
        corpus.EMPTY_DICT,
        corpus.sbu("me"),
        corpus.binget(0),
        corpus.SETITEM,
        corpus.BUILD,
    )
    report = inspect_bytes(data)
    assert report.exit_code == 0 and report.pickles[0].cycles == 1


def _records_pickle(count: int) -> bytes:
    """``[{'k': i, 'name': 'n<i>'}, ...]`` with pickle's habits (MEMOIZE + BINGET,
    APPENDS in batches of 1000)."""
    out = bytearray(b"\x80\x04]\x94(")
    memo = 1
    keys: dict[str, int] = {}
    for i in range(count):
        if i and i % 1000 == 0:
            out += b"e("
        out += b"}\x94("
        memo += 1
        for key in ("k", "name"):
            if key in keys:
                index = keys[key]
                out += b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)
            else:
                out += corpus.sbu(key) + b"\x94"
                keys[key] = memo
                memo += 1
            if key == "k":
                out += b"J" + struct.pack("<i", i)
            else:
                out += corpus.sbu(f"n{i}") + b"\x94"
                memo += 1
        out += b"u"
    return bytes(out + b"e.")


def test_memo_larger_than_the_window() -> None:
    from serdoctor.diagnostics.inspect._api import MEMO_WINDOW

    count = 3 * MEMO_WINDOW
    data = _records_pickle(count)
    report = inspect_bytes(data)
    assert report.exit_code == 0, report.error
    assert report.memo_entries == 1 + 2 * count + 2
    # A module name memoized at the start and fetched again early stays a constant
    # string: a STACK_GLOBAL much later still resolves to the real import.
    body = bytearray(
        b"\x80\x04"
        + corpus.sbu("os")
        + b"\x94"
        + corpus.sbu("system")
        + b"\x94"
        + b"00"
        + b"h\x00h\x01"
        + b"00"
    )  # fetched again early: pinned
    body += b"]\x94(" + (corpus.sbu("x") + b"\x94") * (3 * MEMO_WINDOW) + b"e0"
    body += b"h\x00h\x01\x93" + corpus.sbu("echo") + b"\x85R."
    report = inspect_bytes(bytes(body))
    assert report.exit_code == 1
    assert [f.target for f in report.dangerous] == ["os.system"]


def test_old_memo_string_never_fetched_is_conservative() -> None:
    """A string first fetched after it left the window is no longer known: a global built
    from it is reported as computed (dangerous), never as something harmless."""
    from serdoctor.diagnostics.inspect._api import MEMO_WINDOW

    body = bytearray(
        b"\x80\x04" + corpus.sbu("os") + b"\x94" + corpus.sbu("system") + b"\x94" + b"00"
    )
    body += b"]\x94(" + (corpus.sbu("x") + b"\x94") * (3 * MEMO_WINDOW) + b"e0"
    body += b"h\x00h\x01\x93" + corpus.sbu("echo") + b"\x85R."
    report = inspect_bytes(bytes(body))
    assert report.exit_code == 1
    assert {f.category for f in report.dangerous} >= {"computed-global"}


SCALE_CHILD = """
import json, os, resource, sys, time
from serdoctor.diagnostics import inspect_file

def status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None

# Two measures. (1) resource.getrusage: the whole process's peak RSS. It is only
# meaningful because this process is started by a small launcher: Linux carries the
# RSS of the process that exec'd it into ru_maxrss, so a child of pytest itself would
# report pytest's size. (2) VmHWM after resetting it (clear_refs 5) once imports are
# done: the memory the inspection itself needed.
try:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    reset = True
except OSError:
    reset = False
before = status("VmRSS")
start = time.perf_counter()
report = inspect_file(sys.argv[1])
seconds = time.perf_counter() - start
rusage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
peak = status("VmHWM") if reset else rusage
largest = report.largest[0] if report.largest else None
print(json.dumps({"seconds": seconds, "rusage": rusage, "peak": peak, "before": before,
                  "reset": reset, "exit": report.exit_code,
                  "largest": largest.path if largest else "",
                  "size": largest.size if largest else 0}))
"""

# Runs SCALE_CHILD in a grandchild so that getrusage does not inherit pytest's RSS.
LAUNCHER = """
import subprocess, sys
child = sys.argv[1]
proc = subprocess.run([sys.executable, child, *sys.argv[2:]], capture_output=True, text=True)
sys.stdout.write(proc.stdout)
sys.stderr.write(proc.stderr)
sys.exit(proc.returncode)
"""


def _measure(tmp_path: Path, run_python: Any, path: Path) -> dict[str, Any]:
    child = tmp_path / "scale_child.py"
    child.write_text(SCALE_CHILD)
    proc = run_python(LAUNCHER, str(child), str(path), timeout=100)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(120)
def test_200_mb_pickle_in_little_memory(tmp_path: Path, run_python: Any) -> None:
    size = 200 << 20
    path = tmp_path / "big.pkl"
    with path.open("wb") as f:  # written opcode by opcode: never 200 MB in memory
        f.write(b"\x80\x05}\x94\x8c\x07payload\x94\x8e" + struct.pack("<Q", size))
        chunk = b"\x5a" * (4 << 20)
        for _ in range(size // len(chunk)):
            f.write(chunk)
        f.write(b"\x94s.")
    result = _measure(tmp_path, run_python, path)
    assert result["exit"] == 0
    assert result["largest"] == "['payload']" and result["size"] == size
    assert result["seconds"] < 10
    assert result["rusage"] < 100 << 20, "whole process above 100 MB RSS (getrusage)"
    if result["reset"]:
        assert result["peak"] - result["before"] < 20 << 20, "the inspection itself grew RSS"


@pytest.mark.timeout(120)
def test_memory_does_not_grow_with_the_memo(tmp_path: Path, run_python: Any) -> None:
    """Four times the records (and memo entries) costs about the same memory."""
    growth = []
    for count in (100_000, 400_000):
        path = tmp_path / f"records_{count}.pkl"
        path.write_bytes(_records_pickle(count))
        result = _measure(tmp_path, run_python, path)
        assert result["exit"] == 0
        growth.append(result["peak"] - result["before"])
    # a fixed cost (the memo window, the read buffer), not one that follows the memo
    assert growth[1] < growth[0] + (4 << 20), growth
    assert growth[1] < 16 << 20, growth


def test_run_inspect_on_a_large_file_prints_sizes(tmp_path: Path) -> None:
    path = tmp_path / "mid.pkl"
    with path.open("wb") as f:
        f.write(b"\x80\x05}\x94\x8c\x07payload\x94\x8e" + struct.pack("<Q", 50 << 20))
        f.write(b"\x00" * (50 << 20))
        f.write(b"\x94s.")
    out = io.StringIO()
    assert run_inspect(str(path), console=Console(file=out, width=120)) == 0
    assert "['payload']: bytes, 50.0 MiB @14" in out.getvalue()  # BINBYTES8 is at byte 14
    assert inspect_file(path).largest[0].offset == 14


def test_many_stacked_pickles_are_counted_not_all_listed() -> None:
    report = inspect_bytes(b"\x80\x02N." * 5000 + b"K\x07.")
    assert report.exit_code == 0
    assert report.pickle_count == 5001 and len(report.pickles) == 1000
    assert report.to_dict()["pickle_count"] == 5001
    assert "5001 times" in report.load.call  # type: ignore[union-attr]

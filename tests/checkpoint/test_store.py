"""Checkpoint: results kept across runs and crashes, refused files, damaged rows, CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import serdoctor
from serdoctor.checkpoint import Checkpoint, CheckpointMismatchWarning
from serdoctor.cli import app
from serdoctor.errors import CheckpointError

pytestmark = pytest.mark.timeout(60)


def test_memoize_hits_after_a_miss_and_stores_nothing_for_failures(tmp_path: Path) -> None:
    calls: list[int] = []
    with Checkpoint(tmp_path / "c.db") as store:

        @store.memoize(ignore=("verbose",))
        def square(x: int, verbose: bool = False) -> int:
            calls.append(x)
            if x < 0:
                raise ValueError("negative")
            return x * x

        assert square(3) == 9 and square(3, verbose=True) == 9 and square(x=3) == 9
        assert calls == [3]
        for _ in range(2):
            with pytest.raises(ValueError):
                square(-1)
        assert calls == [3, -1, -1]  # exceptions are not stored by default
        assert len(store.entries()) == 1


def test_cache_failures_stores_exceptions(tmp_path: Path) -> None:
    calls = []
    with Checkpoint(tmp_path / "c.db", cache_failures=True) as store:

        @store.memoize
        def fails(x: int) -> int:
            calls.append(x)
            raise KeyError(x)

        for _ in range(2):
            with pytest.raises(KeyError):
                fails(1)
        assert calls == [1]


def test_results_survive_across_processes(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent("""
        import sys, serdoctor
        store = serdoctor.Checkpoint(sys.argv[1])
        ran = []
        @store.memoize
        def work(i):
            ran.append(i)
            return {"i": i, "sq": i * i}
        print([work(i)["sq"] for i in range(5)], len(ran))
    """)
    )
    db = tmp_path / "c.db"
    outs = [
        subprocess.run(
            [sys.executable, str(script), str(db)],
            capture_output=True,
            text=True,
            timeout=50,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    ]
    assert outs == ["[0, 1, 4, 9, 16] 5", "[0, 1, 4, 9, 16] 0"]


@pytest.mark.timeout(120)
def test_a_killed_run_loses_only_what_was_in_flight(tmp_path: Path) -> None:
    # N tasks; SIGKILL after K committed; the rerun executes exactly N - K
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent("""
        import os, sys, time, serdoctor
        store = serdoctor.Checkpoint(sys.argv[1])
        log = open(sys.argv[2], "a")
        @store.memoize
        def task(i):
            log.write(f"{i}\\n"); log.flush()
            return i * 10
        for i in range(20):
            task(i)
            if i == int(sys.argv[3]):
                print("ready", flush=True)
                time.sleep(60)
        print("done", flush=True)
    """)
    )
    db, log = tmp_path / "c.db", tmp_path / "ran.log"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), str(log), "6"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    committed = len(log.read_text().split())
    assert committed == 7
    log.write_text("")
    subprocess.run([sys.executable, str(script), str(db), str(log), "-1"], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    assert len(log.read_text().split()) == 20 - committed


@pytest.mark.timeout(120)
def test_two_processes_writing_one_store_do_not_corrupt_it(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import sys, serdoctor
        store = serdoctor.Checkpoint(sys.argv[1])
        @store.memoize
        def f(i, who):
            return [i, who]
        for i in range(300):
            f(i, sys.argv[2])
    """)
    db = tmp_path / "c.db"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), w]) for w in ("a", "b")]
    assert [p.wait(100) for p in procs] == [0, 0]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM results").fetchone()[0] == 600


@pytest.mark.timeout(90)
def test_processes_creating_one_new_store_at_once_all_open_it(tmp_path: Path) -> None:
    """The tables are made in one locked transaction: nobody sees half a store."""
    code = textwrap.dedent("""
        import sys, time, serdoctor
        while time.time() < float(sys.argv[3]):
            time.sleep(0.001)
        store = serdoctor.Checkpoint(sys.argv[1])
        store.memoize(lambda who: who)(sys.argv[2])
    """)
    for attempt in range(2):
        db = tmp_path / f"new{attempt}.db"
        start = str(time.time() + 1.0)
        procs = [
            subprocess.Popen([sys.executable, "-c", code, str(db), str(w), start])
            for w in range(6)
        ]
        assert [p.wait(60) for p in procs] == [0] * 6
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM results").fetchone()[0] == 6


def test_files_that_are_not_stores_are_refused_unchanged(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    with pytest.raises(CheckpointError, match="is not a readable checkpoint store"):
        Checkpoint(text)
    assert text.read_text() == "not a database\n" * 100
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(CheckpointError, match="its tables: people"):
        Checkpoint(other)


def test_a_truncated_store_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with Checkpoint(db) as store:
        for i in range(50):
            store.record(abs, (-i,), {}, b"x" * 3000)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="damaged"), Checkpoint(db) as store:
        store.entries()


def test_a_damaged_row_is_reported_and_recomputed(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    calls = []
    with Checkpoint(db) as store:

        @store.memoize
        def f(x: int) -> int:
            calls.append(x)
            return x + 1

        assert f(1) == 2
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE results SET payload = ?", (b"\xffSDOC garbage",))
        with pytest.warns(CheckpointMismatchWarning, match="cannot load here|damaged"):
            assert f(1) == 2
    assert calls == [1, 1]


def test_a_result_that_cannot_load_here_is_a_miss_or_an_error(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    signed = Checkpoint(db, serializer=serdoctor.Serializer(key=b"k" * 32))
    signed.record(abs, (-1,), {}, 1)
    signed.close()
    other_key = Checkpoint(db, serializer=serdoctor.Serializer(key=b"x" * 32))
    with pytest.warns(CheckpointMismatchWarning, match="signature"):
        assert other_key.lookup(abs, (-1,), {}) == (False, None)
    other_key.close()
    strict = Checkpoint(db, serializer=serdoctor.Serializer(key=b"x" * 32), on_mismatch="error")
    with pytest.raises(CheckpointError, match="cannot load here"):
        strict.lookup(abs, (-1,), {})
    strict.close()


def test_cli_ls_show_rm_gc(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with Checkpoint(db) as store:
        for i in range(3):
            store.record(abs, (-i,), {}, {"value": i, "blob": b"x" * (i * 1000)})
        keys = [e.task_key for e in store.entries()]
    runner = CliRunner()
    out = runner.invoke(app, ["checkpoint", "ls", str(db), "--json"])
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.stdout)) == 3
    out = runner.invoke(app, ["checkpoint", "ls", str(db), "--larger-than", "1500", "--json"])
    assert len(json.loads(out.stdout)) == 1
    out = runner.invoke(app, ["checkpoint", "show", str(db), keys[0][:12], "--json"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.stdout)
    assert shown["inspect"]["verdict"] in ("clean", "CLEAN")
    out = runner.invoke(app, ["checkpoint", "rm", str(db), keys[0], "--json"])
    assert json.loads(out.stdout)["removed"] == 1
    out = runner.invoke(app, ["checkpoint", "gc", str(db), "--older-than", "0", "--json"])
    assert json.loads(out.stdout)["removed"] == 2
    out = runner.invoke(app, ["checkpoint", "ls", str(tmp_path / "none.txt")])
    assert out.exit_code == 2


@pytest.mark.timeout(60)
def test_ls_lists_10000_results(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with Checkpoint(db) as store:
        conn = store._connect()
        with conn:
            conn.executemany(
                "INSERT INTO results VALUES (?, 'm.f', 'd', 0, x'00', 1, ?, 'r', NULL)",
                [(f"k{i}", time.time()) for i in range(10_000)],
            )
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ser-doctor"), "checkpoint", "ls", str(db), "--json"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 10_000


def test_a_result_whose_module_is_missing_here_is_a_miss_with_the_reason(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "labmod.py").write_text("class Thing:\n    def __init__(self, v):\n        self.v = v\n")
    db = tmp_path / "c.db"
    writer = textwrap.dedent(f"""
        import serdoctor, labmod
        store = serdoctor.Checkpoint({str(db)!r})
        store.record(abs, (-1,), {{}}, labmod.Thing(5))
    """)
    env = {**os.environ, "PYTHONPATH": str(lib)}
    subprocess.run([sys.executable, "-c", writer], env=env, check=True, timeout=50)
    reader = textwrap.dedent(f"""
        import warnings, serdoctor
        store = serdoctor.Checkpoint({str(db)!r})
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            print(store.lookup(abs, (-1,), {{}}))
        print(seen[0].message)
    """)
    out = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True,
                         check=True, timeout=50).stdout  # fmt: skip
    assert out.splitlines()[0] == "(False, None)"
    assert "cannot load here" in out and "labmod" in out

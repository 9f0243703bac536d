"""``Executor(monitoring=...)``: a real run recorded, read back by the CLI's queries."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest

from serdoctor.execute import Executor
from serdoctor.monitor import failure_causes, list_runs, list_tasks, write_report


def _fails(x: int) -> int:
    raise ValueError(f"bad input {x}")


@pytest.mark.timeout(60)
def test_a_monitored_run_records_tasks_tries_and_pools(tmp_path: Path) -> None:
    db = tmp_path / "runinfo" / "monitoring.db"
    with Executor(workers=2, monitoring=db, heartbeat=0.2, heartbeat_threshold=1.5) as ex:
        good = [ex.submit(abs, -i) for i in range(10)]
        lam = ex.submit(lambda: 7)
        bad = [ex.submit(_fails, i) for i in range(3)]
        assert [f.result(timeout=20) for f in good] == list(range(10))
        assert lam.result(timeout=20) == 7
        for f in bad:
            with pytest.raises(ValueError):
                f.result(timeout=20)
    (run,) = list_runs(db)
    assert (run.tasks, run.done, run.failed) == (14, 11, 3)
    assert run.ended is not None
    tasks = {t.task_id: t for t in list_tasks(db)}
    assert tasks[0].method == "pickle"
    assert tasks[10].method == "cloudpickle"  # the lambda went by value
    assert tasks[0].pool and tasks[0].worker and tasks[0].worker.startswith("pid ")
    assert tasks[0].seconds is not None and tasks[0].seconds >= 0
    (cause,) = failure_causes(db)
    assert cause.count == 3 and cause.cause == "ValueError: bad input N"
    with sqlite3.connect(db) as conn:
        (pools,) = conn.execute("SELECT count(*) FROM pools").fetchone()
        (beats,) = conn.execute("SELECT count(*) FROM heartbeats").fetchone()
        (python,) = conn.execute("SELECT python FROM pools").fetchone()
    assert pools == 1 and beats >= 1
    assert python.startswith(f"{sys.version_info[0]}.{sys.version_info[1]}")
    page = write_report(db, tmp_path / "report.html")
    assert "bad input" in page.read_text()
    assert os.path.getsize(page) > 1000


@pytest.mark.timeout(60)
def test_a_try_records_how_many_objects_its_payload_sent_as_proxies(tmp_path: Path) -> None:
    from proxystore.connectors.file import FileConnector
    from proxystore.store import Store

    import serdoctor

    db = tmp_path / "monitoring.db"
    store = Store("monitoring-test", FileConnector(str(tmp_path / "store")), register=True)
    try:
        serializer = serdoctor.Serializer(proxy=serdoctor.ProxyPolicy(store, min_bytes=1 << 20))
        with Executor(workers=1, serializer=serializer, monitoring=db, heartbeat=0.2,
                      heartbeat_threshold=1.5) as ex:  # fmt: skip
            two = ex.submit(lambda a, b: len(a) + len(b), b"x" * (2 << 20), "y" * (2 << 20))
            none = ex.submit(len, b"small")
            assert two.result(timeout=20) == 4 << 20
            assert none.result(timeout=20) == 5
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT task_id, proxies FROM tries ORDER BY task_id"))
    assert rows == {0: 2, 1: 0}


@pytest.mark.timeout(60)
def test_the_local_pool_is_recorded_even_when_its_fingerprint_comes_late(
    tmp_path: Path,
) -> None:
    # a short run can end before the local pool's fingerprint (taken by a child of the
    # interchange, at a low priority) is in: the pool that ran its tasks is still recorded,
    # and its digest once the fingerprint comes
    import time

    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(  # in the interchange: the fingerprint takes 1.5 s
        "import time\n"
        "from serdoctor.execute import _pool\n"
        "_take = _pool._take\n"
        "def _slow(sock, nice):\n"
        "    time.sleep(1.5)\n"
        "    _take(sock, nice)\n"
        "_pool._take = _slow\n"
    )
    db = tmp_path / "monitoring.db"
    with Executor(workers=1, monitoring=db, heartbeat=0.2, heartbeat_threshold=5,
                  worker_env={"PYTHONPATH": str(slow)}) as ex:  # fmt: skip
        assert ex.submit(abs, -2).result(timeout=20) == 2
        (pool,) = ex.pools()  # listed at once...
        assert pool.env_digest is None  # ...its fingerprint still to come
        deadline = time.monotonic() + 20
        while ex.pools()[0].env_digest is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        digest = ex.pools()[0].env_digest
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT pool_id, env_digest, registered FROM pools").fetchall()
        (task_pool,) = conn.execute("SELECT pool FROM tries").fetchone()
    assert [(r[0], r[1]) for r in rows] == [(pool.id, digest)]
    assert task_pool == pool.id

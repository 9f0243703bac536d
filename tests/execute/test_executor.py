"""The executor's contract: concurrent.futures semantics, through serdoctor's stack."""

from __future__ import annotations

import concurrent.futures
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import serdoctor
from _procs import workers_of
from serdoctor.errors import DependencyError, SerializationError, TaskTimeout
from serdoctor.execute import Executor

pytestmark = pytest.mark.timeout(60)


def test_submit_map_and_context_manager(executor: Executor) -> None:
    assert isinstance(executor, concurrent.futures.Executor)
    assert executor.submit(pow, 2, 10).result(timeout=20) == 1024
    assert list(executor.map(abs, range(-50, 0))) == list(range(50, 0, -1))
    assert executor.submit(sorted, [3, 1, 2], reverse=True).result(20) == [3, 2, 1]


def test_lambdas_closures_and_main_functions_run_on_workers(tmp_path: Path) -> None:
    # A script: its functions and classes live in __main__, which workers do not have.
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent("""
        import functools
        import serdoctor

        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        def norm(p):
            return (p.x ** 2 + p.y ** 2) ** 0.5

        def make_adder(n):
            return lambda x: x + n

        def traced(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                return ("traced", fn(*args))
            return wrapper

        @traced
        def double(x):
            return 2 * x

        if __name__ == "__main__":
            with serdoctor.Executor(workers=2, heartbeat=0.2, heartbeat_threshold=1.5) as ex:
                print(ex.submit(norm, Point(3, 4)).result(20))
                print(ex.submit(make_adder(10), 5).result(20))
                print(ex.submit(lambda: [i * i for i in range(4)]).result(20))
                print(ex.submit(double, 21).result(20))
                print(type(ex.submit(lambda: Point(1, 2)).result(20)).__name__)
    """)
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=50, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:5] == ["5.0", "15", "[0, 1, 4, 9]", "('traced', 42)", "Point"]


class WorkerOnlyError(ValueError):
    """Raised on the worker; its class travels by value with the function."""


def test_remote_exceptions_are_catchable_by_their_base_and_keep_the_traceback(
    executor: Executor,
) -> None:
    def fails(x: int) -> int:
        raise WorkerOnlyError(f"bad value {x}")

    future = executor.submit(fails, 7)
    with pytest.raises(ValueError, match="bad value 7") as info:
        future.result(timeout=20)
    assert "fails" in "".join(getattr(info.value, "remote_traceback", "") or "") or (
        info.value.__traceback__ is not None
    )


def test_an_exception_class_only_the_worker_has_arrives_as_a_catchable_stand_in(
    tmp_path: Path,
) -> None:
    # the module exists only on the pool's PYTHONPATH: the client cannot import the class
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "poolonly.py").write_text(
        "class PoolOnlyError(KeyError):\n    pass\n\ndef boom(key):\n    raise PoolOnlyError(key)\n"
    )
    with Executor(workers=1, worker_env={"PYTHONPATH": str(lib)}, heartbeat=0.2,
                  heartbeat_threshold=1.5) as ex:  # fmt: skip
        call = ex.submit(eval, "__import__('poolonly').boom('missing-key')")
        with pytest.raises(KeyError) as info:
            call.result(timeout=20)
    error = info.value
    assert type(error).__name__ == "PoolOnlyError"
    assert isinstance(error, serdoctor.RemoteException)
    assert "poolonly.py" in error.remote_traceback


def test_large_arrays_travel_out_of_band(executor: Executor) -> None:
    data = np.arange(2_000_000, dtype=np.float64)  # 16 MB
    back = executor.submit(np.negative, data).result(timeout=30)
    assert back.shape == data.shape and back[123] == -123.0


def test_dependencies_are_resolved_inside_containers(executor: Executor) -> None:
    a = executor.submit(pow, 2, 5)
    b = executor.submit(pow, 3, 2)
    total = executor.submit(sum, [a, b, 1])
    nested = executor.submit(dict, {"a": a, "pair": (b, {b})})
    assert total.result(timeout=20) == 42
    assert nested.result(timeout=20) == {"a": 32, "pair": (9, {9})}


def test_a_dependency_among_plain_arguments_and_keywords_is_found(executor: Executor) -> None:
    # a future beside plain values, or as a keyword argument
    ten = executor.submit(abs, -10)
    assert executor.submit(pow, 2, ten).result(timeout=20) == 1024
    assert executor.submit(int, "17", base=ten).result(timeout=20) == 17
    assert executor.submit(int, "17", base=8).result(timeout=20) == 15


def test_a_failed_dependency_fails_the_chain_with_dependency_error(executor: Executor) -> None:
    bad = executor.submit(math.sqrt, -1)
    middle = executor.submit(abs, bad)
    last = executor.submit(str, [middle])
    with pytest.raises(DependencyError) as info:
        last.result(timeout=20)
    assert len(info.value.chain) == 3
    assert "math domain error" in str(info.value)
    assert isinstance(info.value.__cause__, DependencyError)


def test_retries_and_the_retry_handler(tmp_path: Path) -> None:
    counter = tmp_path / "tries"

    def flaky(path: str) -> int:
        with open(path, "a") as f:
            f.write("x")
        with open(path) as f:
            tries = len(f.read())
        if tries < 3:
            raise ConnectionError(f"try {tries}")
        return tries

    with Executor(workers=1, retries=2, heartbeat=0.2, heartbeat_threshold=1.5) as ex:
        assert ex.submit(flaky, str(counter)).result(timeout=20) == 3
        # a handler that says a ValueError is not worth retrying
        seen: list[str] = []

        def handler(exc: BaseException, info: object) -> float:
            seen.append(type(exc).__name__)
            return math.inf if isinstance(exc, ValueError) else 1

        ex.retry_handler = handler
        with pytest.raises(ValueError):
            ex.options(retries=5).submit(int, "not a number").result(timeout=20)
    assert seen == ["ValueError"]


def test_walltime_fails_the_task_and_replaces_the_worker(executor: Executor) -> None:
    slow = executor.options(walltime=0.5).submit(time.sleep, 30)
    started = time.monotonic()
    with pytest.raises(TaskTimeout, match="walltime"):
        slow.result(timeout=20)
    assert time.monotonic() - started < 5
    assert executor.submit(os.getpid).result(timeout=20) > 0  # the pool still serves


def test_cancel_removes_queued_tasks(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with Executor(workers=1, heartbeat=0.2, heartbeat_threshold=1.5) as ex:
        blocker = ex.submit(time.sleep, 1.0)
        queued = [ex.submit(Path.touch, marker / str(i)) for i in range(3)]
        marker.mkdir()
        later = ex.options(priority=-1).submit(Path.touch, marker / "late")
        assert later.cancel()
        blocker.result(timeout=20)
        for f in queued:
            f.result(timeout=20)
    assert later.cancelled()
    assert not (marker / "late").exists()


def test_shutdown_with_cancel_futures_cancels_what_is_queued() -> None:
    ex = Executor(workers=1, heartbeat=0.2, heartbeat_threshold=1.5)
    running = ex.submit(time.sleep, 0.5)
    queued = [ex.submit(time.sleep, 5) for _ in range(5)]
    time.sleep(0.2)
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=1) is None
    assert sum(f.cancelled() for f in queued) >= 3


def test_bad_input_gets_clear_errors(executor: Executor) -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        executor.submit(42)  # type: ignore[arg-type]
    with pytest.raises(SerializationError) as info:
        executor.submit(len, {"jobs": [1, {"feed": (i for i in range(3))}]})
    assert "['jobs'][1]['feed']" in str(info.value)
    executor.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(abs, 1)


def test_a_port_in_use_is_a_clear_error() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"could not listen on 127.0.0.1:{port}"):
            Executor(workers=0, port=port)


def test_a_result_that_cannot_load_here_fails_only_its_own_future(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "poolmod.py").write_text("class Thing:\n    pass\n")
    with Executor(workers=1, worker_env={"PYTHONPATH": str(lib)}, heartbeat=0.2,
                  heartbeat_threshold=1.5) as ex:  # fmt: skip
        bad = ex.submit(eval, "__import__('poolmod').Thing()")
        good = ex.submit(abs, -3)
        with pytest.raises(serdoctor.MissingModuleError, match="poolmod"):
            bad.result(timeout=20)
        assert good.result(timeout=20) == 3
        assert ex.submit(abs, -4).result(timeout=20) == 4


def test_pools_reports_the_attached_pool(executor: Executor) -> None:
    executor.submit(abs, 1).result(timeout=20)
    deadline = time.monotonic() + 10
    while not executor.pools() or executor.pools()[0].env_digest is None:
        assert time.monotonic() < deadline  # (the local pool's fingerprint comes after it)
        time.sleep(0.05)
    (pool,) = executor.pools()
    assert pool.workers == 2 and pool.state == "active"
    assert pool.python.startswith(f"{sys.version_info[0]}.{sys.version_info[1]}")
    from serdoctor.execute._client import _digest

    assert pool.env_digest == _digest(serdoctor.environment().to_dict())  # the same as ours
    # heartbeats keep it current (updated in place), and a busy pool says so
    busy = [executor.submit(time.sleep, 1.0) for _ in range(2)]
    deadline = time.monotonic() + 10
    while True:
        now = executor.pools()[0]
        if now.tasks_running == 2 and now.last_heartbeat > pool.last_heartbeat:
            break
        assert time.monotonic() < deadline, now
        time.sleep(0.05)
    assert (now.id, now.env_digest, now.state) == (pool.id, pool.env_digest, "active")
    assert [f.result(timeout=20) for f in busy] == [None, None]


def test_large_arguments_travel_as_proxies_and_are_evicted_when_the_task_resolves(
    tmp_path: Path,
) -> None:
    from proxystore.connectors.file import FileConnector
    from proxystore.store import Store

    store_dir = tmp_path / "store"
    store = Store("executor-test", FileConnector(str(store_dir)), register=True)
    try:
        policy = serdoctor.ProxyPolicy(store, min_bytes=1 << 20)
        serializer = serdoctor.Serializer(proxy=policy)
        with Executor(workers=1, serializer=serializer, heartbeat=0.2,
                      heartbeat_threshold=1.5) as ex:  # fmt: skip
            big = b"x" * (4 << 20)
            with ex.serializer.proxy_scope():
                assert ex.serializer.explain((len, (big,), {})).proxies  # it goes by proxy
            future = ex.submit(len, big)
            assert future.result(timeout=20) == 4 << 20
            deadline = time.monotonic() + 5
            while any(store_dir.iterdir()):
                assert time.monotonic() < deadline, list(store_dir.iterdir())
                time.sleep(0.05)
    finally:
        store.close()


def test_the_local_pool_runs_in_the_interchange_process(executor: Executor) -> None:
    import psutil

    executor.submit(abs, 1).result(timeout=20)
    (interchange,) = [
        p for p in psutil.Process().children() if "interchange" in " ".join(p.cmdline())
    ]
    parents = {executor.submit(os.getppid).result(timeout=20) for _ in range(10)}
    assert parents == {interchange.pid}
    deadline = time.monotonic() + 10
    while not executor.pools() or executor.pools()[0].env_digest is None:
        assert time.monotonic() < deadline  # (its fingerprint comes after it)
        time.sleep(0.05)
    # two workers, no pool process; the child that took the fingerprint is gone
    assert sorted(w.name() for w in interchange.children()) == ["serdoctor-wrk"] * 2
    (pool,) = executor.pools()
    assert (pool.pid, pool.workers, pool.state) == (interchange.pid, 2, "active")


def test_pools_news_waits_for_a_client_that_has_not_spoken_yet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the local pool's fingerprint can reach the interchange before your process's
    # first message: what the interchange had to say then must not be lost
    from serdoctor.execute import _client

    io_loop = _client.Executor._io_loop

    def late(self: Executor) -> None:
        time.sleep(1.0)  # the interchange and its fingerprint child are done by now
        io_loop(self)

    monkeypatch.setattr(_client.Executor, "_io_loop", late)
    with Executor(workers=1, heartbeat=0.2, heartbeat_threshold=5) as ex:
        assert ex.submit(abs, -4).result(timeout=20) == 4
        deadline = time.monotonic() + 10
        while not ex.pools() or ex.pools()[0].env_digest is None:
            assert time.monotonic() < deadline, ex.pools()
            time.sleep(0.05)


def test_a_local_pool_judged_strictly_runs_once_its_fingerprint_is_in() -> None:
    # on_mismatch="error": the local pool takes no task until the client has compared
    # its fingerprint (taken by a child of the interchange) with its own, and accepted it
    with Executor(workers=1, on_mismatch="error", heartbeat=0.2, heartbeat_threshold=5) as ex:
        assert ex.submit(abs, -1).result(timeout=20) == 1
        (pool,) = ex.pools()
        assert (pool.state, pool.reason) == ("active", "")


def test_worker_init_runs_before_a_pool_process_of_its_own() -> None:
    import psutil

    with Executor(workers=1, worker_init="export SERDOCTOR_INIT_RAN=yes", heartbeat=0.2,
                  heartbeat_threshold=1.5) as ex:  # fmt: skip
        assert ex.submit(os.getenv, "SERDOCTOR_INIT_RAN").result(timeout=30) == "yes"
        pools = [p for p in psutil.Process().children(recursive=True)
                 if "serdoctor.execute._pool" in " ".join(p.cmdline())
                 and p.name() != "serdoctor-wrk"]  # fmt: skip
        assert len(pools) == 1
        assert ex.submit(os.getppid).result(timeout=20) == pools[0].pid


def test_the_client_holds_back_tasks_the_interchange_has_not_taken_in() -> None:
    import psutil

    from serdoctor.execute import _client

    with Executor(workers=2, heartbeat=0.5, heartbeat_threshold=20) as ex:
        ex.submit(abs, 1).result(timeout=20)
        (interchange,) = [
            p for p in psutil.Process().children() if "interchange" in " ".join(p.cmdline())
        ]
        interchange.suspend()  # an interchange too busy to read: the client must not pile up
        try:
            futures = [ex.submit(abs, -i) for i in range(_client._WINDOW + 5000)]
            time.sleep(0.5)
            # sent: the window's worth, or less if the socket filled up first (and then
            # one message more waits to be written; its room depends on the system's
            # socket buffer limits)
            held = ex._sent - ex._acked
            assert held == _client._WINDOW or (0 < held < _client._WINDOW and ex._writer.pending)
            # the rest waits in the client, unsent, as tasks (not bytes)
            assert len(ex._outgoing) == _client._WINDOW + 5000 - held
            assert futures[-1].cancel()  # cancelled before it left: never sent
        finally:
            interchange.resume()
        total = sum(f.result(timeout=60) for f in futures[:-1])
        assert total == sum(range(_client._WINDOW + 4999))
        assert ex._sent == ex._acked == 1 + _client._WINDOW + 4999


def test_a_lone_task_leaves_from_the_callers_thread_and_a_burst_from_the_io_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from serdoctor.execute import _client

    sends: list[tuple[str, int]] = []  # (sending thread, tasks in the message)
    original = _client.Executor._send_tasks

    def recording(self: Executor, tasks: list[object]) -> None:
        sends.append((threading.current_thread().name, len(tasks)))
        original(self, tasks)

    monkeypatch.setattr(_client.Executor, "_send_tasks", recording)
    with Executor(workers=2) as ex:
        ex.submit(abs, 1).result(timeout=20)  # (the link to the interchange is up now)
        sends.clear()
        for i in range(20):  # one at a time: each goes at once, from this thread
            assert ex.submit(abs, -i).result(timeout=20) == i
        assert sends == [("MainThread", 1)] * 20
        sends.clear()
        futures = [ex.submit(abs, -i) for i in range(3000)]
        assert sum(f.result(timeout=60) for f in futures) == sum(range(3000))
        by_io = [n for name, n in sends if name == "serdoctor-executor-io"]
        assert sum(by_io) >= 2900 and max(by_io) > 1  # batched by the IO thread
        assert sum(n for _, n in sends) == 3000


def test_random_bytes_ending_in_a_plus_do_not_confuse_the_client_s_two_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the sending socket's identity is the receiving one's with "+" after it: an
    # identity that itself ended with "+" once sent every answer to nowhere (1 in 256)
    from serdoctor.execute import _client

    monkeypatch.setattr(_client.os, "urandom", lambda n: b"+" * n)
    with Executor(workers=1, heartbeat=0.2, heartbeat_threshold=5) as ex:
        assert ex.submit(abs, -3).result(timeout=20) == 3
        assert sum(ex.map(abs, range(-20, 0))) == sum(range(1, 21))


def test_tasks_submitted_from_many_threads_all_complete_in_each_threads_order() -> None:
    with Executor(workers=2) as ex:

        def one_thread(k: int) -> list[int]:
            out = []
            for i in range(150):  # a mix: lone tasks (sent by this thread) and queued ones
                futures = [ex.submit(pow, k * 1000 + i, 1) for _ in range(i % 3 + 1)]
                out.extend(f.result(timeout=30) for f in futures)
            return out

        with concurrent.futures.ThreadPoolExecutor(8) as threads:
            results = list(threads.map(one_thread, range(8)))
        for k, got in enumerate(results):
            assert got == [k * 1000 + i for i in range(150) for _ in range(i % 3 + 1)]


def test_large_messages_leave_no_memory_behind(executor: Executor) -> None:
    import psutil

    # bytes(b) is b: an echo that imports nothing in the workers
    assert [f.result(timeout=20) for f in [executor.submit(bytes, b"warm")] * 4] == [b"warm"] * 4
    (interchange,) = [
        p for p in psutil.Process().children() if "interchange" in " ".join(p.cmdline())
    ]
    processes = [interchange, *workers_of(interchange)]
    before = [p.memory_full_info().uss for p in processes]
    big = os.urandom(20 << 20)
    for _ in range(4):  # both workers see large tasks
        futures = [executor.submit(bytes, big) for _ in range(2)]
        assert all(f.result(timeout=30) == big for f in futures)
    time.sleep(0.5)  # trims are due 50 and 250 ms after the last large message
    grown = [(p.memory_full_info().uss - b) >> 20 for p, b in zip(processes, before, strict=True)]
    assert max(grown) < 8, grown  # MB; 15-60 MB each when glibc keeps what it freed


def test_the_last_large_message_is_not_kept_until_the_next_one() -> None:
    import psutil

    # heartbeats once in 5 s: no small message comes after the large ones to replace them
    with Executor(workers=1, heartbeat=5.0, heartbeat_threshold=30.0) as ex:
        assert ex.submit(bytes, b"warm").result(timeout=20) == b"warm"
        (interchange,) = [
            p for p in psutil.Process().children() if "interchange" in " ".join(p.cmdline())
        ]
        before = interchange.memory_full_info().uss
        big = os.urandom(20 << 20)
        for _ in range(3):
            assert ex.submit(bytes, big).result(timeout=30) == big
        time.sleep(0.6)  # trims are due 50 and 250 ms after the last large message
        grown = (interchange.memory_full_info().uss - before) >> 20
        assert grown < 8, grown  # MB; 20 when the last task's buffer was kept


def _page_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[7])  # minflt


def test_a_worker_reuses_its_buffers_for_large_tasks_in_a_row() -> None:
    import psutil

    with Executor(workers=1, heartbeat=0.2, heartbeat_threshold=5) as ex:
        big = os.urandom(8 << 20)  # 2,048 pages
        assert ex.submit(bytes, big).result(timeout=20) == big
        (interchange,) = [
            p for p in psutil.Process().children() if "interchange" in " ".join(p.cmdline())
        ]
        (worker,) = workers_of(interchange)
        before = _page_faults(worker.pid)
        futures = [ex.submit(bytes, big) for _ in range(5)]  # each right after the last
        assert all(f.result(timeout=30) == big for f in futures)
        faults = _page_faults(worker.pid) - before
        # a fresh buffer for each task faulted in all its pages: 10,000 and more
        assert faults < 4096, faults


def test_large_tasks_and_results_cross_without_blocking_each_other() -> None:
    # one worker: while it writes a large result, the next large task must not be
    # written to it (each side would wait for the other to read)
    with Executor(workers=1, heartbeat=0.2, heartbeat_threshold=1.5) as ex:
        big = os.urandom(8 << 20)
        futures = [ex.submit(bytes, big) for _ in range(6)]
        assert all(f.result(timeout=30) == big for f in futures)


def test_tasks_submitted_together_go_to_idle_workers_first(executor: Executor) -> None:
    # two tasks at once, two idle workers: one each, side by side, not both queued
    # on the first worker while the other idles
    executor.submit(abs, 1).result(timeout=20)
    span = lambda: (__import__("os").getpid(), time.time(), time.sleep(0.3), time.time())  # noqa: E731
    for _ in range(3):
        futures = [executor.submit(span), executor.submit(span)]
        (pid_a, start_a, _, end_a), (pid_b, start_b, _, end_b) = [
            f.result(timeout=20) for f in futures
        ]
        assert pid_a != pid_b
        assert start_a < end_b and start_b < end_a  # they overlapped


def test_long_tasks_are_not_queued_deep_on_a_worker() -> None:
    # many tasks waiting, but not short ones: a worker holds the one it runs and the
    # next, no more (the rest stay cancellable, and free for any worker)
    with Executor(workers=1, heartbeat=0.2, heartbeat_threshold=1.5) as ex:
        futures = [ex.submit(time.sleep, 0.02) for _ in range(150)]
        time.sleep(0.5)
        held = [f for f in futures if f.running()]
        assert 1 <= len(held) <= 2, len(held)
        assert sum(f.cancel() for f in futures[-50:]) == 50


def test_shutdown_without_waiting_fails_running_tasks_instead_of_leaving_them_pending() -> None:
    ex = Executor(workers=1, heartbeat=0.2, heartbeat_threshold=1.5)
    running = ex.submit(time.sleep, 30)
    queued = [ex.submit(time.sleep, 30) for _ in range(4)]  # (the first, handed to the worker)
    later = ex.submit(abs, ex.submit(abs, 1))  # waits for a task that waits behind them
    deadline = time.monotonic() + 20
    while not running.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running.running()
    start = time.monotonic()
    ex.shutdown(wait=False)
    # its worker was stopped with the executor: the future says so, instead of staying
    # RUNNING for ever (a result() without a timeout never returned)
    with pytest.raises(serdoctor.WorkerLost, match="still running when the executor shut down"):
        running.result(timeout=10)
    assert all(f.cancelled() for f in queued[1:])
    with pytest.raises((DependencyError, concurrent.futures.CancelledError)):
        later.result(timeout=10)
    assert time.monotonic() - start < 15

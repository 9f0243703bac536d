"""A thread that waits on a result reads it itself; results nobody waits for still come."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from serdoctor.execute import Executor, _client

IO_THREAD = "serdoctor-executor-io"


def _where(future: concurrent.futures.Future[object], out: list[str]) -> None:
    """Record which thread completes ``future`` (a done one's callback would run here)."""
    assert not future.done()
    future.add_done_callback(lambda _: out.append(threading.current_thread().name))


def _sequential(ex: Executor, n: int, seconds: float = 0.0) -> list[str]:
    """Run ``n`` tasks one after another; the threads that completed their futures."""
    threads: list[str] = []
    for _ in range(n):
        f = ex.submit(time.sleep, seconds)
        _where(f, threads)
        assert f.result(timeout=20) is None
    return threads


@pytest.mark.timeout(60)
def test_a_thread_that_waits_on_results_reads_them_itself(executor: Executor) -> None:
    threads = _sequential(executor, 10, 0.05)
    # the first wait asks the IO thread to let go; from the next ones on, the waiting
    # thread is woken by the socket and completes its future itself: no hand-over
    assert threads[0] == IO_THREAD
    assert threads[2:] == [threading.current_thread().name] * 8


@pytest.mark.timeout(60)
def test_a_task_nobody_waits_on_comes_between_waits(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_client, "_LINGER", 30.0)  # the IO thread does not take over meanwhile
    _sequential(executor, 3)
    threads: list[str] = []
    start = time.monotonic()
    f = executor.submit(time.sleep, 0.05)
    _where(f, threads)
    done, _ = concurrent.futures.wait([f], timeout=20)  # no result(): nobody reads it for it
    assert done == {f} and f.result() is None
    assert time.monotonic() - start < 5  # the IO thread's tick read it (not the linger's end)
    assert threads == [IO_THREAD]


@pytest.mark.timeout(60)
def test_the_io_thread_reads_again_once_nobody_has_waited_for_a_while(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_client, "_LINGER", 0.2)
    _sequential(executor, 3)
    assert not executor._own  # the waits' thread reads, the IO thread ticks
    time.sleep(0.5)
    assert executor._own  # it reads again, not only at ticks
    threads: list[str] = []
    futures = [executor.submit(time.sleep, 0.05) for _ in range(6)]
    for f in futures:
        _where(f, threads)
    done, _ = concurrent.futures.wait(futures, timeout=20)
    assert len(done) == 6 and threads == [IO_THREAD] * 6


@pytest.mark.timeout(60)
def test_a_thread_reading_its_result_completes_others_too(executor: Executor) -> None:
    _sequential(executor, 3)
    slow = executor.submit(time.sleep, 1.0)
    quick = executor.submit(abs, -7)
    threads: list[str] = []
    _where(quick, threads)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(slow.result(timeout=20)), name="waiter")
    waiter.start()
    try:
        assert concurrent.futures.wait([quick], timeout=20).done == {quick}
    finally:
        waiter.join(30)
    assert got == [None] and quick.result() == 7
    assert threads in (["waiter"], [IO_THREAD])  # whoever read it: never lost, never late


@pytest.mark.timeout(60)
def test_a_timeout_is_kept_by_a_thread_that_reads_itself(executor: Executor) -> None:
    _sequential(executor, 3)
    f = executor.submit(time.sleep, 3)
    start = time.monotonic()
    with pytest.raises(concurrent.futures.TimeoutError):
        f.result(timeout=0.3)
    assert 0.29 <= time.monotonic() - start < 2
    with pytest.raises(concurrent.futures.TimeoutError):
        f.exception(timeout=0.2)
    assert f.result(timeout=20) is None  # and it still comes


@pytest.mark.timeout(60)
def test_a_callback_may_wait_on_another_task(executor: Executor) -> None:
    # the callback runs in the thread that read the first result, and reads the
    # second itself (before, an IO thread blocked in a callback read nothing more)
    for warm in (False, True):
        if warm:
            _sequential(executor, 3)
        first = executor.submit(abs, -1)
        second = executor.submit(time.sleep, 0.2)
        seen: list[object] = []

        def wait_for_second(_: object, seen: list[object] = seen, second: object = second) -> None:
            assert isinstance(second, concurrent.futures.Future)
            seen.append(second.result(timeout=10))

        first.add_done_callback(wait_for_second)
        assert first.result(timeout=20) == 1
        assert second.result(timeout=20) is None
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [None]


@pytest.mark.timeout(120)
def test_threads_that_wait_at_once_all_get_their_own_results(executor: Executor) -> None:
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            for i in range(100):
                assert executor.submit(pow, k, i % 5).result(timeout=30) == k ** (i % 5)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)
    assert not errors and not any(t.is_alive() for t in threads)


@pytest.mark.timeout(60)
def test_shutdown_from_another_thread_ends_a_thread_reading_for_its_result(
    executor: Executor,
) -> None:
    _sequential(executor, 3)
    f = executor.submit(time.sleep, 0.5)
    stopper = threading.Timer(0.1, executor.shutdown)  # waits for the task, then closes
    stopper.start()
    try:
        assert f.result(timeout=20) is None
    finally:
        stopper.join(30)
    assert not stopper.is_alive()
    assert not executor._thread.is_alive()

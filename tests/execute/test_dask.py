"""DaskExecutor: serdoctor tasks on a real distributed.LocalCluster (worker processes)."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dask
import pytest
from distributed import Client, LocalCluster

import serdoctor
from serdoctor.errors import DependencyError, IncompatiblePythonError, WorkerLost
from serdoctor.execute.dask import DaskExecutor

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A module only the Dask workers can import."""
    folder = tmp_path_factory.mktemp("workeronly")
    (folder / "workeronly.py").write_text(
        "class QuotaExceeded(PermissionError):\n    pass\n\n"
        "def charge(n):\n    raise QuotaExceeded(f'quota exceeded by {n}')\n"
    )
    return folder


@pytest.fixture(scope="module")
def client(lib: Path) -> Iterator[Client]:
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    c = Client(cluster)
    c.run(exec, f"import sys; sys.path.insert(0, {str(lib)!r})")  # the workers only
    # Dask starts its callback and offload threads on first use and keeps them with the client:
    # start them here, with the module's client, so no test is blamed for them.
    from distributed.utils import offload

    done = threading.Event()
    c.submit(abs, -1, pure=False).add_done_callback(lambda _: done.set())
    done.wait(30)
    c.sync(offload, abs, -1)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def test_lambdas_and_dependencies_map_onto_dask(client: Client) -> None:
    ex = DaskExecutor(client, serializer=serdoctor.Serializer(key=os.urandom(32)))
    a = ex.submit(lambda x: x * 2, 21)
    b = ex.submit(pow, 2, 3)
    total = ex.submit(sum, [a, b, 1])
    assert total.result(timeout=60) == 51
    assert list(ex.map(abs, [-1, -2])) == [1, 2]


def test_a_worker_only_exception_is_caught_by_its_base(client: Client) -> None:
    ex = DaskExecutor(client)
    future = ex.submit(eval, "__import__('workeronly').charge(7)")
    with pytest.raises(PermissionError, match="quota exceeded by 7") as info:
        future.result(timeout=60)
    assert isinstance(info.value, serdoctor.RemoteException)
    assert "workeronly.py" in info.value.remote_traceback


def test_a_failed_dependency_fails_the_chain(client: Client) -> None:
    ex = DaskExecutor(client)
    bad = ex.submit(math.sqrt, -1)
    later = ex.submit(abs, bad)
    with pytest.raises(DependencyError, match="math domain error") as info:
        later.result(timeout=60)
    assert len(info.value.chain) == 2


def _die() -> None:
    os._exit(9)


def test_a_killed_dask_worker_fails_the_task_with_worker_lost() -> None:
    # its own cluster: the nanny's restart of the worker starts threads that go with it
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None)
    try:
        with Client(cluster) as c:
            ex = DaskExecutor(c)
            with pytest.raises(WorkerLost, match="workers died"):
                ex.submit(_die).result(timeout=90)
            deadline = time.monotonic() + 60  # the nanny restarts the worker
            while len(c.scheduler_info()["workers"]) < 1:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert ex.submit(abs, -5).result(timeout=60) == 5
    finally:
        cluster.close()


@pytest.mark.timeout(700)
def test_a_worker_on_another_python_refuses_by_value_code_clearly(
    other_python_bin: Path,
) -> None:
    from _other_python import OTHER

    cluster = LocalCluster(n_workers=0, processes=True, dashboard_address=None)
    worker = subprocess.Popen(
        [str(other_python_bin / "dask"), "worker", cluster.scheduler_address, "--nthreads", "1",
         "--no-dashboard", "--no-nanny"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        with Client(cluster) as c:
            c.wait_for_workers(1, timeout=60)
            ex = DaskExecutor(c)
            assert ex.submit(platform.python_version).result(timeout=60) == OTHER
            with pytest.raises(IncompatiblePythonError, match="sent by value"):
                ex.submit(lambda: 1).result(timeout=60)
    finally:
        worker.terminate()
        worker.wait(30)
        cluster.close()


def test_many_results_come_back_in_batches_and_the_collector_stops_when_idle(
    client: Client,
) -> None:
    import concurrent.futures
    import time

    ex = DaskExecutor(client)
    futures = [ex.submit(divmod, 100, i) for i in range(-100, 100)]  # i == 0 fails
    _done, pending = concurrent.futures.wait(futures, timeout=60)
    assert not pending
    assert futures[50].result() == divmod(100, -50)
    with pytest.raises(ZeroDivisionError):
        futures[100].result()
    deadline = time.monotonic() + 10
    while ex._collector is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ex._collector is None  # idle: its thread has ended, the next submit starts one
    assert ex.submit(abs, -3).result(timeout=60) == 3
    ex.shutdown()

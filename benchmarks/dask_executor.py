"""DaskExecutor against plain ``client.submit`` on the same LocalCluster, as ratios.

No-op throughput (tasks submitted at once) and a 10 MB numpy echo, each in one
run. Target: DaskExecutor's time per task <= 1.2x plain Dask's.
``pip install -e '.[bench]'``; usage: ``python benchmarks/dask_executor.py [--tasks 2000]``.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from typing import Any

import numpy as np


def noop(x: int) -> int:
    return x


def echo(a: Any) -> Any:
    return a


def main() -> None:
    from distributed import Client, LocalCluster

    from serdoctor.execute.dask import DaskExecutor

    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--echoes", type=int, default=10)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    ex = DaskExecutor(client)
    try:
        def plain(fn: Any, *a: Any) -> Any:
            return client.submit(fn, *a, pure=False)

        def ours(fn: Any, *a: Any) -> Any:
            return ex.submit(fn, *a)

        results = {}
        array = np.random.default_rng(0).random(10 * 2**20 // 8)
        for name, submit in (("plain Dask", plain), ("DaskExecutor", ours)):
            for i in range(50):
                submit(noop, i).result()
            t = time.perf_counter()
            for f in [submit(noop, i) for i in range(args.tasks)]:
                f.result()
            per_task = (time.perf_counter() - t) / args.tasks
            t = time.perf_counter()
            for _ in range(args.echoes):
                assert submit(echo, array).result().shape == array.shape
            mbs = args.echoes * array.nbytes / 2**20 / (time.perf_counter() - t)
            results[name] = (per_task, mbs)
        print(f"{'':14}{'us/task':>10}{'echo MB/s':>11}")
        for name, (per_task, mbs) in results.items():
            print(f"{name:14}{per_task * 1e6:10.0f}{mbs:11.0f}")
        ratio = results["DaskExecutor"][0] / results["plain Dask"][0]
        echo_ratio = results["plain Dask"][1] / results["DaskExecutor"][1]
        print(f"time per no-op task: {ratio:.2f}x plain Dask's; 10 MB echo: {echo_ratio:.2f}x")
        print(f"  {'met    ' if ratio <= 1.2 else 'NOT MET'}  time per task <= 1.2x plain Dask's")
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()

"""serdoctor.Executor against its peers, side by side in one run, reported as ratios.

Peers: concurrent.futures.ProcessPoolExecutor, loky, Parsl's HighThroughputExecutor
(driven directly, unencrypted, loopback) and a Dask distributed LocalCluster,
each with the same number of workers. Measured:

- throughput: N no-op tasks submitted at once, until the last result (tasks/s), the
  best of ``--rounds`` bursts; with ``--repeat K`` every peer is started K times,
  in turn, and keeps its best run (on a small machine one slow spell otherwise
  decides a ratio: the monitoring ratio moved between 0.78x and 1.07x from run to
  run without it);
- latency: p50 / p99 of sequential tasks (submit, wait, next);
- echo: a 10 MB numpy array sent and returned (MB/s of array, round trip), after
  every worker has unpickled a small array once (the workers of ProcessPoolExecutor
  fork from this process with numpy loaded; the others' import it on first use, a
  one-off cost that is start-up, not bandwidth);
- start-up: constructor to the first result (s);
- idle PSS: memory of every process the executor started, plus the growth of this
  process, after the work (MB).

Peers are benchmark-only dependencies: ``pip install -e '.[bench]'``. A peer that
fails to start is reported as failed and the run goes on. Usage::

    python benchmarks/executor.py [--quick] [--workers 2] [--peers serdoctor,ppe,loky,htex,dask]
        [--monitoring]   # also serdoctor with monitoring on (its cost, as a ratio)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil


def noop(x: int) -> int:
    return x


def echo(a: Any) -> Any:
    return a


@dataclass
class Result:
    name: str
    throughput: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    echo_mbs: float = 0.0
    startup: float = 0.0
    pss_mb: float = 0.0
    error: str = ""
    notes: list[str] = field(default_factory=list)


class Peer:
    """How to start, submit to and stop one executor."""

    name = "?"

    def start(self, workers: int) -> None:
        raise NotImplementedError

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    def result(self, future: Any) -> Any:
        return future.result(timeout=300)

    def stop(self) -> None:
        raise NotImplementedError


class Serdoctor(Peer):
    name = "serdoctor"

    def __init__(self, monitoring: bool = False) -> None:
        self.monitoring = monitoring
        if monitoring:
            self.name = "serdoctor+monitoring"
            self.tmp = tempfile.mkdtemp(prefix="bench-monitor-")

    def start(self, workers: int) -> None:
        import serdoctor

        kwargs: dict[str, Any] = {}
        if self.monitoring:
            kwargs["monitoring"] = os.path.join(self.tmp, "monitoring.db")
        self.ex = serdoctor.Executor(workers=workers, **kwargs)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.ex.submit(fn, *args)

    def stop(self) -> None:
        self.ex.shutdown()


class ProcessPool(Peer):
    name = "ProcessPoolExecutor"

    def start(self, workers: int) -> None:
        self.ex = concurrent.futures.ProcessPoolExecutor(workers)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.ex.submit(fn, *args)

    def stop(self) -> None:
        self.ex.shutdown()


class Loky(Peer):
    name = "loky"

    def start(self, workers: int) -> None:
        from loky import get_reusable_executor

        self.ex = get_reusable_executor(max_workers=workers, reuse=False)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.ex.submit(fn, *args)

    def stop(self) -> None:
        self.ex.shutdown(wait=True, kill_workers=True)


class Htex(Peer):
    name = "Parsl HTEX"

    def start(self, workers: int) -> None:
        from parsl.executors import HighThroughputExecutor
        from parsl.providers import LocalProvider

        self.ex: Any = None
        self.dir = tempfile.mkdtemp(prefix="bench-htex-")
        # HTEX starts its interchange and pools as scripts found on PATH
        bindir = os.path.dirname(sys.executable)
        if os.environ.get("PATH", "").split(os.pathsep)[0] != bindir:
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        self.ex = HighThroughputExecutor(
            label="bench",
            address="127.0.0.1",
            loopback_address="127.0.0.1",
            max_workers_per_node=workers,
            encrypted=False,
            provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1),
            worker_logdir_root=self.dir,
        )
        # what a DataFlowKernel's add_executors sets before start()
        self.ex.run_dir = self.dir
        self.ex.run_id = "bench"
        self.ex.provider.script_dir = os.path.join(self.dir, "submit_scripts")
        os.makedirs(self.ex.provider.script_dir, exist_ok=True)
        self.ex.start()
        # start() only starts the interchange: the DataFlowKernel's job status poller
        # scales out init_blocks, so without one no worker pool is ever launched
        if not self.ex.scale_out_facade(self.ex.provider.init_blocks):
            status = {b: s.message for b, s in self.ex.status_facade.items()}
            raise RuntimeError(f"no HTEX block launched: {status} (logs in {self.dir})")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.ex.submit(fn, {}, *args)

    def stop(self) -> None:
        if self.ex is None:
            return
        try:
            # shutdown() leaves the worker pools to the scaling mechanism (or to a
            # 120 s heartbeat timeout): cancel the blocks first, as the job status
            # poller does when a DataFlowKernel is cleaned up
            live = [b for b, s in self.ex.status_facade.items() if not s.terminal]
            if live:
                self.ex.scale_in_facade(len(live))
        finally:
            self.ex.shutdown()


class Dask(Peer):
    name = "Dask LocalCluster"

    def start(self, workers: int) -> None:
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self.client = Client(self.cluster)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def stop(self) -> None:
        self.client.close()
        self.cluster.close()


PEERS: dict[str, Callable[[], Peer]] = {
    "serdoctor": Serdoctor,
    "ppe": ProcessPool,
    "loky": Loky,
    "htex": Htex,
    "dask": Dask,
}


def _pss_mb(before: set[int], own_before: float) -> float:
    me = psutil.Process()
    total = 0.0
    for child in me.children(recursive=True):
        if child.pid in before:
            continue
        with contextlib.suppress(psutil.Error):
            total += child.memory_full_info().pss
    total += max(0.0, me.memory_full_info().pss - own_before)
    return total / 2**20


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import logging
    import warnings

    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    logging.disable(logging.NOTSET)


def measure(
    peer: Peer, workers: int, tasks: int, sequential: int, echoes: int, rounds: int = 3
) -> Result:
    res = Result(peer.name)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    own_before = psutil.Process().memory_full_info().pss
    start = time.perf_counter()
    try:
        with _quiet():
            peer.start(workers)
            peer.result(peer.submit(noop, 1))
    except Exception as exc:
        res.error = f"failed to start: {type(exc).__name__}: {exc}"[:200]
        with contextlib.suppress(Exception):
            peer.stop()
        return res
    res.startup = time.perf_counter() - start
    try:
        for _ in range(20):  # warm every worker
            peer.result(peer.submit(noop, 1))
        for _ in range(rounds):  # the best of a few rounds: one burst of load on the
            t0 = time.perf_counter()  # machine must not decide a ratio
            futures = [peer.submit(noop, i) for i in range(tasks)]
            for f in futures:
                peer.result(f)
            res.throughput = max(res.throughput, tasks / (time.perf_counter() - t0))
        lat = []
        for i in range(sequential):
            t = time.perf_counter()
            peer.result(peer.submit(noop, i))
            lat.append(time.perf_counter() - t)
        lat.sort()
        res.p50 = statistics.median(lat)
        res.p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        array = np.random.default_rng(0).random(10 * 2**20 // 8)
        # every worker unpickles an array once first: a worker that did not fork from
        # this process imports numpy then, a one-off cost that is not bandwidth
        for f in [peer.submit(echo, array[:1]) for _ in range(2 * workers)]:
            peer.result(f)
        t0 = time.perf_counter()
        for _ in range(echoes):
            back = peer.result(peer.submit(echo, array))
            assert back.shape == array.shape
        res.echo_mbs = echoes * array.nbytes / 2**20 / (time.perf_counter() - t0)
        time.sleep(0.5)
        res.pss_mb = _pss_mb(before, own_before)
    except Exception as exc:
        res.error = f"failed: {type(exc).__name__}: {exc}"[:200]
    finally:
        with contextlib.suppress(Exception), _quiet():
            peer.stop()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        if not left:
            break
        time.sleep(0.2)
    else:
        res.notes.append(f"left processes running: {[p.pid for p in left]}")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks, for a smoke run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--monitoring", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="throughput: best of N rounds")
    parser.add_argument(
        "--repeat", type=int, default=1, help="start every peer N times, in turn; keep its best"
    )
    args = parser.parse_args()
    tasks, sequential, echoes = (500, 50, 3) if args.quick else (5000, 300, 10)
    names = [n.strip() for n in args.peers.split(",") if n.strip()]

    def make_peers() -> list[Peer]:
        made = [PEERS[n]() for n in names]
        if args.monitoring:
            made.insert(1, Serdoctor(monitoring=True))
        return made

    peers = make_peers()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.workers} workers; "
          f"{tasks} no-op tasks, {sequential} sequential, {echoes} x 10 MB echo")  # fmt: skip
    results: list[Result] = []
    for turn in range(args.repeat):  # peers take turns, so a slow spell hits them alike
        for i, peer in enumerate(peers if turn == 0 else make_peers()):
            print(f"  running {peer.name} ...", flush=True)
            res = measure(peer, args.workers, tasks, sequential, echoes, args.rounds)
            if turn == 0:
                results.append(res)
            elif not res.error and (results[i].error or res.throughput > results[i].throughput):
                results[i] = res
    base = next((r for r in results if r.name == "ProcessPoolExecutor" and not r.error), None)
    print()
    header = (f"{'executor':22} {'tasks/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'echo MB/s':>10} "
              f"{'start s':>8} {'idle PSS MB':>12}")  # fmt: skip
    print(header)
    for r in results:
        if r.error:
            print(f"{r.name:22} {r.error}")
            continue
        print(f"{r.name:22} {r.throughput:9.0f} {r.p50 * 1e3:8.2f} {r.p99 * 1e3:8.2f} "
              f"{r.echo_mbs:10.0f} {r.startup:8.2f} {r.pss_mb:12.0f}"
              + (f"   ({'; '.join(r.notes)})" if r.notes else ""))  # fmt: skip
    sd = next((r for r in results if r.name == "serdoctor" and not r.error), None)
    if sd is None:
        return
    print("\nserdoctor as a ratio (serdoctor / peer; higher is better for tasks/s and MB/s):")
    for r in results:
        if r is sd or r.error:
            continue
        print(f"  vs {r.name:22} throughput {sd.throughput / r.throughput:5.2f}x  "
              f"p50 {sd.p50 / r.p50:5.2f}x  echo {sd.echo_mbs / r.echo_mbs:5.2f}x  "
              f"start-up {sd.startup / r.startup:5.2f}x  "
              f"PSS {sd.pss_mb / max(r.pss_mb, 1):5.2f}x")  # fmt: skip
    htex = next((r for r in results if r.name == "Parsl HTEX" and not r.error), None)
    mon = next((r for r in results if r.name == "serdoctor+monitoring" and not r.error), None)
    print("\ntargets:")
    checks = []
    if base is not None:
        checks += [
            ("throughput >= 1.0x ProcessPoolExecutor", sd.throughput / base.throughput >= 1.0),
            ("p50 latency <= 2x ProcessPoolExecutor", sd.p50 / base.p50 <= 2.0),
            ("10 MB echo >= 1.0x ProcessPoolExecutor", sd.echo_mbs / base.echo_mbs >= 1.0),
        ]
    if htex is not None:
        checks.append(("throughput >= 8x Parsl HTEX", sd.throughput / htex.throughput >= 8))
    checks += [
        ("start-up to first result <= 0.3 s", sd.startup <= 0.3),
        ("idle PSS of all processes <= 100 MB", sd.pss_mb <= 100),
    ]
    if mon is not None:
        kept = mon.throughput / sd.throughput
        checks.append((f"monitoring keeps >= 0.9x throughput ({kept:.2f}x)", kept >= 0.9))
    for what, ok in checks:
        print(f"  {'met    ' if ok else 'NOT MET'}  {what}")


if __name__ == "__main__":
    main()

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
- start-up: constructor to the first result (s), the peer's modules imported
  before (their memory counts in idle PSS);
- idle PSS: memory of every process the executor started, plus the growth of this
  process, half a second after the work (MB). The work's own data (its futures, the
  arrays it echoed) is dropped by then, as a program drops what it has used: what
  is left is the executor's (and the allocator's) doing.

Every peer is measured in a fresh process of its own (numpy and psutil imported),
so no peer inherits another's imports or allocator growth.

Peers are benchmark-only dependencies: ``pip install -e '.[bench]'``. A peer that
fails to start is reported as failed and the run goes on. Usage::

    python benchmarks/executor.py [--quick] [--workers 2] [--peers serdoctor,ppe,loky,htex,dask]
        [--monitoring]   # also serdoctor with monitoring on (its cost, as a ratio)
        [--preload]      # also serdoctor with preload=["numpy"] (the workers share numpy)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import importlib
import json
import os
import statistics
import subprocess
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
    pss_parts: list[tuple[str, float]] = field(default_factory=list)  # (process, MB)
    error: str = ""
    notes: list[str] = field(default_factory=list)


class Peer:
    """How to start, submit to and stop one executor."""

    name = "?"
    #: what the peer's constructor needs imported (imported before start-up is timed,
    #: as a program imports first; its memory still counts in idle PSS)
    modules: tuple[str, ...] = ()

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
    modules = ("serdoctor",)

    def __init__(self, monitoring: bool = False, preload: tuple[str, ...] = ()) -> None:
        self.monitoring = monitoring
        self.preload = preload
        if monitoring:
            self.name = "serdoctor+monitoring"
        if preload:
            self.name = "serdoctor+preload"

    def start(self, workers: int) -> None:
        import serdoctor

        kwargs: dict[str, Any] = {}
        if self.monitoring:
            self.tmp = tempfile.mkdtemp(prefix="bench-monitor-")
            kwargs["monitoring"] = os.path.join(self.tmp, "monitoring.db")
        if self.preload:
            kwargs["preload"] = list(self.preload)
        self.ex = serdoctor.Executor(workers=workers, **kwargs)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.ex.submit(fn, *args)

    def stop(self) -> None:
        self.ex.shutdown()


class ProcessPool(Peer):
    name = "ProcessPoolExecutor"
    modules = ("concurrent.futures.process",)

    def start(self, workers: int) -> None:
        self.ex = concurrent.futures.ProcessPoolExecutor(workers)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.ex.submit(fn, *args)

    def stop(self) -> None:
        self.ex.shutdown()


class Loky(Peer):
    name = "loky"
    modules = ("loky",)

    def start(self, workers: int) -> None:
        from loky import get_reusable_executor

        self.ex = get_reusable_executor(max_workers=workers, reuse=False)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.ex.submit(fn, *args)

    def stop(self) -> None:
        self.ex.shutdown(wait=True, kill_workers=True)


class Htex(Peer):
    name = "Parsl HTEX"
    modules = ("parsl.executors", "parsl.providers")

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
    modules = ("distributed",)

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


def _pss_mb(before: set[int], own_before: float) -> tuple[float, list[tuple[str, float]]]:
    """The idle PSS (MB): this process's growth and every process the peer started."""
    me = psutil.Process()
    parts = [("this process's growth", max(0.0, me.memory_full_info().pss - own_before))]
    for child in me.children(recursive=True):
        if child.pid in before:
            continue
        with contextlib.suppress(psutil.Error):
            parts.append((f"{child.name()} {child.pid}", child.memory_full_info().pss))
    parts = [(name, pss / 2**20) for name, pss in parts]
    return sum(pss for _, pss in parts), parts


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import logging
    import warnings

    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    logging.disable(logging.NOTSET)


def _throughput(peer: Peer, tasks: int, rounds: int) -> float:
    """Tasks per second: ``tasks`` no-op tasks submitted at once, the best of ``rounds``."""
    best = 0.0
    for _ in range(rounds):  # one burst of load on the machine must not decide a ratio
        t0 = time.perf_counter()
        futures = [peer.submit(noop, i) for i in range(tasks)]
        for f in futures:
            peer.result(f)
        best = max(best, tasks / (time.perf_counter() - t0))
    return best


def _latency(peer: Peer, sequential: int) -> tuple[float, float]:
    """p50 and p99 (seconds) of ``sequential`` tasks, each submitted when the last is done."""
    lat = []
    for i in range(sequential):
        t = time.perf_counter()
        peer.result(peer.submit(noop, i))
        lat.append(time.perf_counter() - t)
    lat.sort()
    return statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def _echo(peer: Peer, workers: int, echoes: int) -> float:
    """MB/s of a 10 MB numpy array sent to a worker and back, ``echoes`` times in a row."""
    array = np.random.default_rng(0).random(10 * 2**20 // 8)
    # every worker unpickles an array once first: a worker that did not fork from
    # this process imports numpy then, a one-off cost that is not bandwidth
    for f in [peer.submit(echo, array[:1]) for _ in range(2 * workers)]:
        peer.result(f)
    t0 = time.perf_counter()
    for _ in range(echoes):
        back = peer.result(peer.submit(echo, array))
        assert back.shape == array.shape
    return echoes * array.nbytes / 2**20 / (time.perf_counter() - t0)


def measure(
    peer: Peer, workers: int, tasks: int, sequential: int, echoes: int, rounds: int = 3
) -> Result:
    res = Result(peer.name)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    own_before = psutil.Process().memory_full_info().pss
    try:
        with _quiet():
            for module in peer.modules:
                importlib.import_module(module)
            start = time.perf_counter()
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
        # each phase keeps its data to itself, as a program drops what it has used:
        # the idle PSS below is the executors' memory, not this script's arrays and futures
        res.throughput = _throughput(peer, tasks, rounds)
        res.p50, res.p99 = _latency(peer, sequential)
        res.echo_mbs = _echo(peer, workers, echoes)
        time.sleep(0.5)
        res.pss_mb, res.pss_parts = _pss_mb(before, own_before)
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


def make_peer(kind: str) -> Peer:
    """A peer by its name in --peers, or serdoctor+monitoring / serdoctor+preload."""
    if kind == "serdoctor+monitoring":
        return Serdoctor(monitoring=True)
    if kind == "serdoctor+preload":
        return Serdoctor(preload=("numpy",))
    return PEERS[kind]()


def measure_apart(kind: str, args: argparse.Namespace) -> Result:
    """Measure one peer in a fresh process of its own.

    Each peer's idle PSS counts this process's growth: in a shared process the
    first peer would pay for imports and allocator growth that later peers
    reuse (a peer measured after serdoctor came out 20-40 MB lighter than first).
    """
    argv = [sys.executable, __file__, "--one", kind, "--workers", str(args.workers),
            "--rounds", str(args.rounds)] + (["--quick"] if args.quick else [])  # fmt: skip
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True, timeout=900)
    except subprocess.TimeoutExpired:  # (run() kills it): the other peers still run
        return Result(make_peer(kind).name, error="its process did not finish in 900 s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        return Result(make_peer(kind).name, error=f"its process exited with {proc.returncode}")
    return Result(**json.loads(lines[-1][len("RESULT ") :]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks, for a smoke run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--monitoring", action="store_true")
    parser.add_argument(
        "--preload", action="store_true", help="also serdoctor with preload=['numpy']"
    )
    parser.add_argument("--rounds", type=int, default=3, help="throughput: best of N rounds")
    parser.add_argument(
        "--repeat", type=int, default=1, help="start every peer N times, in turn; keep its best"
    )
    parser.add_argument("--memory", action="store_true", help="show each process's idle PSS")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # measure one peer, here
    args = parser.parse_args()
    tasks, sequential, echoes = (500, 50, 3) if args.quick else (5000, 300, 10)
    if args.one:
        res = measure(make_peer(args.one), args.workers, tasks, sequential, echoes, args.rounds)
        print("RESULT " + json.dumps(dataclasses.asdict(res)), flush=True)
        return
    kinds = [n.strip() for n in args.peers.split(",") if n.strip()]
    if "serdoctor" in kinds:
        at = kinds.index("serdoctor") + 1
        kinds[at:at] = [k for k, on in (("serdoctor+monitoring", args.monitoring),
                                         ("serdoctor+preload", args.preload)) if on]  # fmt: skip
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.workers} workers; "
          f"{tasks} no-op tasks, {sequential} sequential, {echoes} x 10 MB echo; "
          f"each peer in a process of its own")  # fmt: skip
    results: list[Result] = []
    for turn in range(args.repeat):  # peers take turns, so a slow spell hits them alike
        for i, kind in enumerate(kinds):
            print(f"  running {make_peer(kind).name} ...", flush=True)
            res = measure_apart(kind, args)
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
        if args.memory:
            print("    idle PSS: " + ", ".join(f"{n} {mb:.1f}" for n, mb in r.pss_parts))
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

"""serdoctor.Checkpoint against joblib.Memory, side by side in one run, as ratios.

- hit: a memoized call whose result is stored (small arguments);
- miss + store: a new call, computed (a no-op) and stored;
- key hashing of a 100 MB numpy array (GB/s);
- ``ser-doctor checkpoint ls`` of 10,000 stored results (seconds, the whole command).

``pip install -e '.[bench]'`` for joblib. Usage: ``python benchmarks/checkpoint.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import serdoctor


def noop(x: int, y: str = "a") -> int:
    return x


def per_call(fn: object, calls: int, start: int = 0) -> float:
    t = time.perf_counter()
    for i in range(start, start + calls):
        fn(i % 100 if start == 0 else i)  # type: ignore[operator]
    return (time.perf_counter() - t) / calls


def main() -> None:
    import joblib

    tmp = Path(tempfile.mkdtemp(prefix="bench-checkpoint-"))
    try:
        store = serdoctor.Checkpoint(tmp / "c.db")
        memo_s = store.memoize(noop)
        memory = joblib.Memory(tmp / "joblib", verbose=0)
        memo_j = memory.cache(noop)
        for f in (memo_s, memo_j):
            for i in range(100):
                f(i)  # warm: results 0..99 stored
        hit_s, hit_j = per_call(memo_s, 2000), per_call(memo_j, 2000)
        miss_s, miss_j = per_call(memo_s, 300, 10_000), per_call(memo_j, 300, 10_000)
        array = np.random.default_rng(0).random(100 * 2**20 // 8)
        t = time.perf_counter()
        serdoctor.memo_key(array)
        hash_s = array.nbytes / (time.perf_counter() - t) / 2**30
        t = time.perf_counter()
        joblib.hash(array)
        hash_j = array.nbytes / (time.perf_counter() - t) / 2**30
        big = serdoctor.Checkpoint(tmp / "big.db")
        conn = big._connect()
        with conn:
            conn.executemany(
                "INSERT INTO results VALUES (?, 'm.f', 'd', 0, x'00', 1, ?, 'r', NULL)",
                [(f"k{i}", time.time()) for i in range(10_000)],
            )
        t = time.perf_counter()
        exe = str(Path(sys.executable).parent / "ser-doctor")
        subprocess.run([exe, "checkpoint", "ls", str(tmp / "big.db"), "--json"],
                       capture_output=True, check=True)  # fmt: skip
        ls = time.perf_counter() - t
        print(f"{'':24}{'serdoctor':>12}{'joblib':>12}{'ratio':>8}")
        print(f"{'hit (us)':24}{hit_s * 1e6:12.1f}{hit_j * 1e6:12.1f}{hit_s / hit_j:8.2f}")
        ratio = miss_s / miss_j
        print(f"{'miss + store (us)':24}{miss_s * 1e6:12.1f}{miss_j * 1e6:12.1f}{ratio:8.2f}")
        print(f"{'hash 100 MB (GB/s)':24}{hash_s:12.2f}{hash_j:12.2f}{hash_s / hash_j:8.2f}")
        print(f"ser-doctor checkpoint ls, 10,000 results: {ls:.2f} s (command, start-up included)")
        print("targets:")
        for what, ok in (
            ("hit < 100 us", hit_s < 100e-6),
            ("hit <= 0.5x joblib", hit_s / hit_j <= 0.5),
            ("miss + store <= 1.0x joblib", miss_s / miss_j <= 1.0),
            ("key hashing >= 1 GB/s", hash_s >= 1.0),
            ("ls of 10,000 results < 1 s", ls < 1.0),
        ):
            print(f"  {'met    ' if ok else 'NOT MET'}  {what}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

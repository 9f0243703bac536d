"""A short tour of serdoctor: ``python -m serdoctor.demo``.

Run as a script, this module *is* ``__main__``, so the functions below are
exactly the kind that plain pickle cannot send: a lambda, a closure and a
function defined in ``__main__``. Each is serialized, loaded and called in a
fresh interpreter, and ``explain()`` says how it travelled and why. Then the
executor runs a few of them on a pool of worker processes, an exception that
only the worker's code raises comes back catchable by its base class, and the
doctor reads a payload without executing it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import serdoctor

_LOADER = (
    "import sys, serdoctor\n"
    "fn = serdoctor.loads(open(sys.argv[1], 'rb').read())\n"
    "print(fn(*map(int, sys.argv[2:])))\n"
)


def scale(x: int, factor: int = 3) -> int:
    """A plain function, but defined in __main__ when this file runs as a script."""
    return x * factor


def make_adder(n: int) -> Any:
    """Return a closure over ``n``."""

    def add(x: int) -> int:
        return x + n

    return add


class SampleRejected(ValueError):
    """An exception class defined in __main__: the worker raises it, the client catches it."""


def check_sample(value: int) -> int:
    """Raise :class:`SampleRejected` for negative values."""
    if value < 0:
        raise SampleRejected(f"sample {value} is negative")
    return value


def _executor_tour() -> None:
    print("\n=== the executor: serdoctor.Executor(workers=2)")
    with serdoctor.Executor(workers=2) as ex:
        squares = list(ex.map(lambda x: x * x, range(6)))
        print(f"a __main__ lambda on the workers: {squares}")
        total = ex.submit(sum, [ex.submit(scale, 2), ex.submit(make_adder(1), 4)])
        print(f"futures as arguments (dependencies): scale(2) + add1(4) = {total.result(60)}")
        try:
            ex.submit(check_sample, -5).result(timeout=60)
        except ValueError as exc:  # the worker's SampleRejected, caught by its base class
            print(f"caught by `except ValueError`: {type(exc).__name__}: {exc}")
        for pool in ex.pools():
            print(f"pool {pool.id}: {pool.workers} workers, Python {pool.python}, {pool.state}")


def _checkpoint_tour(folder: Path) -> None:
    print("\n=== the checkpoint store: serdoctor.Checkpoint")
    ran: list[int] = []
    for attempt in ("first run", "second run"):
        with serdoctor.Checkpoint(folder / "results.db") as store:  # a new store object each run

            @store.memoize
            def slow_square(x: int) -> int:
                ran.append(x)
                return x * x

            before = len(ran)
            values = [slow_square(i) for i in range(4)]
            print(f"{attempt}: {values}, computed {len(ran) - before}, from the store "
                  f"{4 - (len(ran) - before)}")  # fmt: skip


def _send(label: str, fn: Any, args: list[int], folder: Path) -> None:
    payload = serdoctor.dumps(fn)
    path = folder / f"{label.replace(' ', '_')}.sdoc"
    path.write_bytes(payload)
    result = subprocess.run(
        [sys.executable, "-c", _LOADER, str(path), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    arrived = result.stdout.strip() if result.returncode == 0 else f"FAILED: {result.stderr}"
    print(f"\n=== {label}: called in a fresh interpreter with {args} -> {arrived}")
    print(serdoctor.explain(fn))


def main() -> int:
    """Run the tour; return a process exit code."""
    print(f"serdoctor {serdoctor.__version__}: sending code to fresh interpreters")
    with tempfile.TemporaryDirectory(prefix="serdoctor-demo-") as tmp:
        folder = Path(tmp)
        _send("a lambda", lambda x: x**2, [7], folder)
        _send("a closure", make_adder(10), [5], folder)
        _send("a __main__ function", scale, [4], folder)
        _executor_tour()
        _checkpoint_tour(folder)
        print("\n=== the doctor reads a payload without executing it: ser-doctor inspect")
        subprocess.run(
            [sys.executable, "-m", "serdoctor.cli", "inspect", str(folder / "a_closure.sdoc")],
            timeout=60,
            check=False,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark serdoctor's serializer stack against raw pickle, cloudpickle and dill.

Run it from the checkout::

    python benchmarks/serialize.py            # full run (about a minute)
    python benchmarks/serialize.py --quick    # a few seconds, noisier
    python benchmarks/serialize.py --json out.json

Every figure is the minimum over ``--repeat`` rounds of the mean time of one
call, measured like :mod:`timeit` (garbage collector off, loop count chosen so
that one timing lasts at least ``--min-time`` seconds). Within a round the
contenders take turns, so background load hits them alike. ``loads`` is timed
on each contender's own payload. Cases and targets (issue 2, "Speed"; issue
10, "Per-call overhead", for the small objects where the envelope dominates):

========================  ===============================  ======================
case                      compared with                    target
========================  ===============================  ======================
small dict (3 items)      pickle                           ≤ 3x pickle, and at most
                                                           2 µs added per round trip
module function           pickle (by reference)            ≤ 2x pickle
dict 10k str→int          pickle                           ≤ 1.3x pickle
list 100k ints            pickle                           ≤ 1.3x pickle
10k dataclass instances   pickle                           ≤ 1.3x pickle
exception                 cloudpickle                      ≤ 3x cloudpickle
10 MB bytes               pickle                           ≤ 1.3x pickle
lambda, closure           cloudpickle, dill                ≤ 1.0x cloudpickle, dill ≥ 4x slower
10 MB numpy array         pickle in band; serdoctor frames frames round trip in µs, zero copy
========================  ===============================  ======================

Ratios are serdoctor / peer for data, serdoctor / cloudpickle and
dill / serdoctor for by-value functions, each for ``dumps``, ``loads`` and
the round trip (``dumps`` + ``loads``); the target verdict uses the round trip.

The functions, the closure and the dataclass live in this file, which the
script imports under the module name ``serdoctor_bench_objects`` so that they
are importable objects of a user module (as in real use), not ``__main__``
objects that serdoctor must send by value.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import importlib.util
import json
import pickle
import platform
import random
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODULE_NAME = "serdoctor_bench_objects"
MB = 1 << 20

# --- the objects (module-level so that they travel by reference) ---------------------


def module_function(x: int, y: int = 2) -> int:
    """An ordinary importable function."""
    return x * y + 1


def make_closure(n: int) -> Callable[[int], int]:
    """A closure over ``n``: must travel by value."""

    def add(x: int) -> int:
        return x + n

    return add


LAMBDA = lambda x: x * 3 + 1  # noqa: E731


@dataclasses.dataclass
class Point:
    """A small dataclass."""

    x: int
    y: float
    label: str


def make_exception() -> BaseException:
    """A raised-and-caught exception with a cause, as one crossing processes would be."""
    try:
        try:
            settings: dict[str, str] = {}
            settings["missing"]
        except KeyError as inner:
            raise ValueError("could not read the configuration", 42) from inner
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


# --- timing ------------------------------------------------------------------------------


def loop_count(timer: timeit.Timer, min_time: float) -> int:
    """How many calls make one timing last at least ``min_time`` seconds."""
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= min_time:
            return number
        number = max(number * 2, int(number * min_time / max(elapsed, 1e-9) * 1.2))


def best_times(
    fns: dict[str, Callable[[], Any]], *, min_time: float, repeat: int
) -> dict[str, float]:
    """Seconds per call of each function: the minimum over ``repeat`` rounds.

    The functions take turns within each round, so a burst of load on the
    machine slows all of them alike and the ratios stay fair.
    """
    timers = {k: timeit.Timer(fn) for k, fn in fns.items()}
    numbers = {k: loop_count(t, min_time) for k, t in timers.items()}
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for k, timer in timers.items():
            best[k] = min(best[k], timer.timeit(numbers[k]) / numbers[k])
    return best


@dataclasses.dataclass
class Contender:
    """How one library dumps and loads."""

    name: str
    dumps: Callable[[Any], Any]
    loads: Callable[[Any], Any]
    size: Callable[[Any], int] = len


@dataclasses.dataclass
class Case:
    """One object to benchmark and what to compare it with."""

    name: str
    kind: str  # "data", "by-value", "frames"
    make: Callable[[], Any]
    check: Callable[[Any, Any], bool]
    contenders: tuple[str, ...]
    peer: str = "pickle"  # the round trip the target compares with
    limit: float = 1.3  # serdoctor / peer round trip at most this
    also: tuple[str, ...] = ()  # more contenders, reported as contender / serdoctor


def _same(a: Any, b: Any) -> bool:
    return bool(a == b)


def _same_exception(a: BaseException, b: BaseException) -> bool:
    return isinstance(b, ValueError) and b.args == a.args


def _same_call(a: Callable[[int], int], b: Callable[[int], int]) -> bool:
    return a(7) == b(7)


def _same_array(a: Any, b: Any) -> bool:
    import numpy as np

    return bool(np.array_equal(a, b))


def build_cases(mod: Any, *, numpy_ok: bool) -> list[Case]:
    """The cases of issue 2, built from the importable copy of this module."""
    data = ("serdoctor", "pickle", "cloudpickle", "dill")
    by_value = ("serdoctor", "cloudpickle", "dill")
    cases = [
        Case("small dict", "data", lambda: {"a": 1, "b": 2.0, "c": "x"}, _same, data, limit=3.0),
        Case("module function", "data", lambda: mod.module_function, _same_call, data, limit=2.0),
        Case("lambda", "by-value", lambda: mod.LAMBDA, _same_call, by_value),
        Case("closure", "by-value", lambda: mod.make_closure(5), _same_call, by_value),
        Case(
            "dict 10k str->int",
            "data",
            lambda: {f"key{i:05d}": i for i in range(10_000)},
            _same,
            data,
        ),
        Case("list 100k ints", "data", lambda: list(range(100_000)), _same, data),
        Case(
            "10k dataclasses",
            "data",
            lambda: [mod.Point(i, i / 2, f"p{i}") for i in range(10_000)],
            _same,
            data,
        ),
        Case(
            "exception",
            "data",
            mod.make_exception,
            _same_exception,
            data,
            peer="cloudpickle",
            limit=3.0,
            also=("serdoctor-traceback",),
        ),
        Case("10 MB bytes", "data", lambda: random.Random(0).randbytes(10 * MB), _same, data),
    ]
    if numpy_ok:
        cases.append(
            Case(
                "10 MB numpy array",
                "frames",
                _make_array,
                _same_array,
                ("serdoctor-frames", "pickle"),
            )
        )
    return cases


def _make_array() -> Any:
    import numpy as np

    return np.arange(10 * MB // 8, dtype=np.float64)


def _frames_size(frames: list[Any]) -> int:
    return sum(memoryview(f).nbytes for f in frames)


def _dumps_with_library_traceback(obj: Any) -> bytes:
    """serdoctor.dumps with the remote traceback text made by ``traceback`` itself.

    serdoctor formats an exception's own traceback text in the same walk that
    captures its frames (serialize/exceptions/_text.py) on the Pythons whose
    ``traceback`` output it reproduces exactly; this contender measures what
    that saves (issue 9: keep hand-written code only where a target needs it).
    """
    from serdoctor.serialize.exceptions import _text

    saved = list(_text._fast_text)
    _text._fast_text[:] = [False]
    try:
        import serdoctor

        return serdoctor.dumps(obj)
    finally:
        _text._fast_text[:] = saved


def contenders() -> dict[str, Contender]:
    """Every library under test, each with its usual entry points."""
    import cloudpickle
    import dill

    import serdoctor

    serializer = serdoctor.Serializer()
    return {
        "serdoctor": Contender("serdoctor", serdoctor.dumps, serdoctor.loads),
        "serdoctor-frames": Contender(
            "serdoctor-frames", serializer.dumps_frames, serializer.loads_frames, _frames_size
        ),
        "serdoctor-traceback": Contender(
            "serdoctor-traceback", _dumps_with_library_traceback, serdoctor.loads
        ),
        "pickle": Contender("pickle", lambda o: pickle.dumps(o, protocol=5), pickle.loads),
        "cloudpickle": Contender(
            "cloudpickle", lambda o: cloudpickle.dumps(o, protocol=5), cloudpickle.loads
        ),
        "dill": Contender("dill", dill.dumps, dill.loads),
    }


def measure(
    case: Case, lib: dict[str, Contender], *, min_time: float, repeat: int
) -> dict[str, dict[str, Any]]:
    """Time ``dumps`` and ``loads`` of ``case`` with each contender (interleaved)."""
    obj = case.make()
    out: dict[str, dict[str, Any]] = {}
    fns: dict[str, Callable[[], Any]] = {}
    for name in (*case.contenders, *case.also):
        c = lib[name]
        try:
            payload = c.dumps(obj)
            back = c.loads(payload)
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        if not case.check(obj, back):
            out[name] = {"error": "round trip returned a different value"}
            continue
        out[name] = {"size": c.size(payload)}
        if case.kind == "frames":
            import numpy as np

            out[name]["shares_memory"] = bool(np.shares_memory(back, obj))
        del back
        fns[f"{name} dumps"] = functools.partial(c.dumps, obj)
        fns[f"{name} loads"] = functools.partial(c.loads, payload)
    gc.collect()
    times = best_times(fns, min_time=min_time, repeat=repeat)
    for name, m in out.items():
        if "error" in m:
            continue
        m["dumps_s"] = times[f"{name} dumps"]
        m["loads_s"] = times[f"{name} loads"]
        m["roundtrip_s"] = m["dumps_s"] + m["loads_s"]
    return out


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
    if not a or not b or key not in a or key not in b or not b[key]:
        return None
    return float(a[key] / b[key])


def ratios(case: Case, res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ratios and the target verdict for one case."""
    sd = res.get("serdoctor") or res.get("serdoctor-frames")
    out: dict[str, Any] = {}
    keys = ("dumps_s", "loads_s", "roundtrip_s")
    if case.kind == "data":
        peer = case.peer
        for k in keys:
            out[f"serdoctor/{peer} {k[:-2]}"] = _ratio(sd, res.get(peer), k)
        r = out[f"serdoctor/{peer} roundtrip"]
        out["target"] = f"serdoctor/{peer} roundtrip <= {case.limit}"
        out["met"] = r is not None and r <= case.limit
        for other in case.also:
            out[f"{other}/serdoctor roundtrip"] = _ratio(res.get(other), sd, "roundtrip_s")
        if case.name == "small dict" and sd and res.get("pickle"):
            # what serdoctor adds to every call: envelope, header checks, bookkeeping
            fixed = (sd["roundtrip_s"] - res["pickle"]["roundtrip_s"]) * 1e6
            out["fixed overhead us"] = fixed
            out["target"] += " and fixed overhead <= 2 us"
            out["met"] = out["met"] and fixed <= 2.0
    elif case.kind == "by-value":
        for k in keys:
            out[f"serdoctor/cloudpickle {k[:-2]}"] = _ratio(sd, res.get("cloudpickle"), k)
            out[f"dill/serdoctor {k[:-2]}"] = _ratio(res.get("dill"), sd, k)
        r1 = out["serdoctor/cloudpickle roundtrip"]
        r2 = out["dill/serdoctor roundtrip"]
        out["target"] = "serdoctor/cloudpickle roundtrip <= 1.0 and dill/serdoctor >= 4"
        out["met"] = r1 is not None and r2 is not None and r1 <= 1.0 and r2 >= 4.0
    else:
        rt = sd["roundtrip_s"] if sd and "roundtrip_s" in sd else None
        out["serdoctor frames roundtrip us"] = None if rt is None else rt * 1e6
        out["pickle/serdoctor-frames roundtrip"] = _ratio(res.get("pickle"), sd, "roundtrip_s")
        out["target"] = "frames round trip < 1000 us and zero copy"
        out["met"] = bool(rt is not None and rt < 1e-3 and sd and sd.get("shares_memory"))
    return out


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    return f"{seconds * 1e3:8.2f} ms"


def _fmt_ratio(r: Any) -> str:
    return "-" if r is None else f"{r:.2f}"


def render(results: list[dict[str, Any]]) -> str:
    """A plain-text table of absolute times, then the ratios."""
    lines = []
    cols = ("dumps", "loads", "round trip", "size")
    head = f"{'case':<20} {'library':<17} " + " ".join(f"{c:>11}" for c in cols)
    lines.append(head)
    lines.append("-" * len(head))
    for r in results:
        for lib, m in r["results"].items():
            if "error" in m:
                lines.append(f"{r['case']:<20} {lib:<17} error: {m['error'][:80]}")
                continue
            lines.append(
                f"{r['case']:<20} {lib:<17} {_fmt_time(m['dumps_s']):>11} "
                f"{_fmt_time(m['loads_s']):>11} {_fmt_time(m['roundtrip_s']):>11} "
                f"{m['size']:>11,}"
                + ("" if "shares_memory" not in m else f"  zero copy: {m['shares_memory']}")
            )
        lines.append("")
    lines.append("ratios (round trip = dumps + loads)")
    lines.append("-" * 40)
    for r in results:
        parts = [
            f"{k} {_fmt_ratio(v) if not k.endswith('us') else f'{v:.1f}'}"
            for k, v in r["ratios"].items()
            if k not in ("target", "met") and v is not None
        ]
        verdict = "MET" if r["ratios"]["met"] else "MISSED"
        lines.append(f"{r['case']}: " + "; ".join(parts))
        lines.append(f"    target {r['ratios']['target']}: {verdict}")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """Python and library versions of this run."""
    import cloudpickle
    import dill

    import serdoctor

    out = {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "serdoctor": serdoctor.__version__,
        "cloudpickle": cloudpickle.__version__,
        "dill": dill.__version__,
    }
    try:
        import numpy

        out["numpy"] = numpy.__version__
    except ImportError:
        pass
    return out


def _import_self() -> Any:
    """This file as the importable module ``serdoctor_bench_objects``."""
    existing = sys.modules.get(MODULE_NAME)
    if existing is not None:
        return existing
    spec = importlib.util.spec_from_file_location(MODULE_NAME, Path(__file__).resolve())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; write JSON when asked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short timings (noisier)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--repeat", type=int, help="repeats per figure (default 7, quick 3)")
    parser.add_argument("--min-time", type=float, help="seconds per timing (0.1, quick 0.02)")
    parser.add_argument("--only", action="append", help="run only cases containing this text")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 7)
    min_time = args.min_time or (0.02 if args.quick else 0.1)

    mod = _import_self()
    try:
        import numpy  # noqa: F401

        numpy_ok = True
    except ImportError:
        numpy_ok = False
    lib = contenders()
    results = []
    for case in mod.build_cases(mod, numpy_ok=numpy_ok):
        if args.only and not any(o in case.name for o in args.only):
            continue
        print(f"... {case.name}", file=sys.stderr, flush=True)
        res = measure(case, lib, min_time=min_time, repeat=repeat)
        results.append(
            {"case": case.name, "kind": case.kind, "results": res, "ratios": ratios(case, res)}
        )
    print(render(results))
    if not numpy_ok:
        print("numpy is not installed: the array case was left out")
    if args.json:
        doc = {
            "versions": versions(),
            "quick": args.quick,
            "repeat": repeat,
            "min_time_s": min_time,
            "cases": results,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

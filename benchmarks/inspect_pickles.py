"""Benchmark ``ser-doctor inspect`` against ``pickletools.dis`` and fickling.

Run it from the checkout (fickling is a benchmark-only dependency)::

    python benchmarks/inspect_pickles.py                  # 50 MB and 200 MB files, every shape
    python benchmarks/inspect_pickles.py --quick          # 50 MB only, no op-dense shape
    python benchmarks/inspect_pickles.py --json out.json  # also write the figures

Each tool inspects each file in a fresh interpreter. The child imports the
tool, resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), times
the call and reads ``resource.getrusage``'s peak RSS, so "RSS" is the memory
the call itself needed on top of the loaded interpreter ("process" is the
whole child's peak; Linux counts the RSS of the process that started the child
into it, which is why this script keeps itself small). Targets (issue 4, "Speed"): serdoctor
≥ 10x faster than ``pickletools.dis`` and peak RSS ≤ 0.25x the file size.

Files (written straight to disk, opcode by opcode, so that generating them
never holds their size in memory):

========== ==============================================================
shape      content
========== ==============================================================
blob       ``{'payload': <one bytes value>}`` (issue 4, point 8)
checkpoint a training checkpoint: numpy-style arrays (in-band protocol 5,
           ``BYTEARRAY8``) for ~95% of the bytes, plus a step counter,
           config and ~5% of per-step records
objects    op-dense worst case: only small dicts, strings, ints and floats
           (about 2.5 opcodes per 10 bytes); sizes above 50 MB are skipped
           unless ``--full`` (``pickletools.dis`` alone needs minutes)
========== ==============================================================
"""

from __future__ import annotations

import sys

# This file is named like the stdlib module ``inspect``: when it runs as a script its
# folder comes first on sys.path, so drop that folder before anything imports inspect.
_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path[:] = [p for p in sys.path if p not in ("", _HERE) and not p.endswith("/benchmarks")]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, BinaryIO  # noqa: E402

MB = 1 << 20

# --- writing pickles opcode by opcode ------------------------------------------------------


class _Writer:
    """Emits protocol 4/5 opcodes with pickle's own memo habits (MEMOIZE, BINGET)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.memo = 0
        self.strings: dict[str, int] = {}
        f.write(b"\x80\x05")

    def op(self, data: bytes) -> None:
        self.f.write(data)

    def memoize(self) -> int:
        self.f.write(b"\x94")
        self.memo += 1
        return self.memo - 1

    def get(self, index: int) -> None:
        if index < 256:
            self.f.write(b"h" + bytes([index]))
        else:
            self.f.write(b"j" + struct.pack("<I", index))

    def string(self, text: str, *, share: bool = False) -> None:
        if share and text in self.strings:
            self.get(self.strings[text])
            return
        raw = text.encode()
        if len(raw) < 256:
            self.f.write(b"\x8c" + bytes([len(raw)]) + raw)
        else:
            self.f.write(b"X" + struct.pack("<I", len(raw)) + raw)
        index = self.memoize()
        if share:
            self.strings[text] = index

    def integer(self, value: int) -> None:
        if 0 <= value < 256:
            self.f.write(b"K" + bytes([value]))
        elif -(2**31) <= value < 2**31:
            self.f.write(b"J" + struct.pack("<i", value))
        else:
            raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.f.write(b"\x8a" + bytes([len(raw)]) + raw)

    def real(self, value: float) -> None:
        self.f.write(b"G" + struct.pack(">d", value))

    def global_(self, module: str, name: str) -> None:
        key = f"{module}\0{name}"
        if key in self.strings:
            self.get(self.strings[key])
            return
        self.string(module, share=True)
        self.string(name, share=True)
        self.f.write(b"\x93")
        self.strings[key] = self.memoize()

    def big_bytes(self, size: int, opcode: bytes = b"\x8e") -> None:
        self.f.write(opcode + struct.pack("<Q", size))
        chunk = bytes(range(256)) * 4096
        left = size
        while left:
            part = chunk[: min(left, len(chunk))]
            self.f.write(part)
            left -= len(part)

    def record(self, i: int) -> None:
        """``{'step': i, 'name': 'run-<i>', 'loss': ..., 'tags': ['train', 'gpu']}``."""
        self.op(b"}")
        self.memoize()
        self.op(b"(")
        self.string("step", share=True)
        self.integer(i)
        self.string("name", share=True)
        self.string(f"run-{i}")
        self.string("loss", share=True)
        self.real(1.0 / (i + 1))
        self.string("tags", share=True)
        self.op(b"]")
        self.memoize()
        self.op(b"(")
        self.string("train", share=True)
        self.string("gpu", share=True)
        self.op(b"e")
        self.op(b"u")

    def records(self, count: int) -> None:
        self.op(b"]")
        self.memoize()
        done = 0
        while done < count:
            batch = min(1000, count - done)
            self.op(b"(")
            for i in range(done, done + batch):
                self.record(i)
            self.op(b"e")
            done += batch

    def array(self, nbytes: int) -> None:
        """A float32 numpy array pickled in band, as numpy does with protocol 5."""
        self.global_("numpy._core.numeric", "_frombuffer")
        self.op(b"(")
        self.big_bytes(nbytes, b"\x96")  # BYTEARRAY8
        self.memoize()
        self.global_("numpy", "dtype")
        self.string("f4", share=True)
        self.op(b"\x89\x88\x87")  # NEWFALSE NEWTRUE TUPLE3
        self.memoize()
        self.op(b"R")
        self.memoize()
        self.op(b"(")
        self.integer(3)
        self.string("<", share=True)
        self.op(b"NNN")
        self.integer(-1)
        self.integer(-1)
        self.integer(0)
        self.op(b"t")
        self.memoize()
        self.op(b"b")
        self.integer(nbytes // 4)
        self.op(b"\x85")
        self.memoize()
        self.string("C", share=True)
        self.op(b"t")
        self.memoize()
        self.op(b"R")
        self.memoize()

    def stop(self) -> None:
        self.f.write(b".")


def write_blob(path: Path, size: int) -> None:
    with path.open("wb") as f:
        w = _Writer(f)
        w.op(b"}")
        w.memoize()
        w.string("payload")
        w.big_bytes(size)
        w.memoize()
        w.op(b"s")
        w.stop()


def write_checkpoint(path: Path, size: int) -> None:
    records = max(1000, int(size * 0.05) // 60)
    arrays = size - records * 60
    with path.open("wb") as f:
        w = _Writer(f)
        w.op(b"}")
        w.memoize()
        w.op(b"(")
        w.string("step")
        w.integer(records)
        w.string("config")
        w.op(b"}")
        w.memoize()
        w.op(b"(")
        for key, value in (("lr", 3e-4), ("batch", 256.0), ("warmup", 1000.0)):
            w.string(key)
            w.real(value)
        w.op(b"u")
        w.string("params")
        w.op(b"}")
        w.memoize()
        w.op(b"(")
        layer = 8 * MB
        index = 0
        while arrays > 0:
            part = min(layer, arrays)
            part -= part % 4
            if part <= 0:
                break
            w.string(f"layer{index}.weight")
            w.array(part)
            arrays -= part
            index += 1
        w.op(b"u")
        w.string("history")
        w.records(records)
        w.op(b"u")
        w.stop()


def write_objects(path: Path, size: int) -> None:
    with path.open("wb") as f:
        w = _Writer(f)
        w.records(max(1000, size // 52))
        w.stop()


SHAPES = {"blob": write_blob, "checkpoint": write_checkpoint, "objects": write_objects}

# --- measuring in fresh interpreters ---------------------------------------------------------

CHILD = textwrap.dedent(
    r"""
    import json, os, resource, sys, time
    tool, path = sys.argv[1], sys.argv[2]
    if tool == "serdoctor":
        from serdoctor.diagnostics import inspect_file
        def run():
            report = inspect_file(path)
            return f"exit {report.exit_code}"
    elif tool == "pickletools":
        import pickletools
        def run():
            with open(path, "rb") as f, open(os.devnull, "w") as out:
                pickletools.dis(f, out)
            return "ok"
    elif tool == "fickling":
        import fickling
        def run():
            result = fickling.scan_file(path, graceful=True)
            return str(result.severity).split(".")[-1]
    def rss_now():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    reset = False
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak-RSS counter to the current RSS
        reset = True
    except OSError:
        pass
    def hwm():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None
    before = rss_now()
    start = time.perf_counter()
    outcome = run()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    own = hwm() if reset else None  # this process's own peak since the reset
    print(json.dumps({"seconds": seconds, "peak": peak, "before": before, "own": own,
                      "reset": reset, "outcome": outcome}))
    """
)


def measure(tool: str, path: Path, timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, tool, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:120]}"}
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    # With the counter reset, ru_maxrss is the peak since the reset; the inspection's
    # own need is that peak minus what the process held before the call.
    own = data.get("own")
    data["during"] = max(0, own - data["before"]) if data["reset"] and own else None
    return data


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    return f"{n / MB:,.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,200", help="file sizes in MB (default 50,200)")
    parser.add_argument("--shapes", default="blob,checkpoint,objects")
    parser.add_argument("--tools", default="serdoctor,pickletools,fickling")
    parser.add_argument("--quick", action="store_true", help="50 MB, blob and checkpoint only")
    parser.add_argument("--full", action="store_true", help="also op-dense files above 50 MB")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per tool and file")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--dir", type=Path, help="keep the generated files in this folder")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    shapes = args.shapes.split(",")
    tools = args.tools.split(",")
    if args.quick:
        sizes, shapes = [50], [s for s in shapes if s != "objects"]
    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="serdoctor-bench-inspect-")
        folder = Path(tmp.name)
    else:
        folder = args.dir
        folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; times in seconds, RSS = peak during the call"
    )
    try:
        for shape in shapes:
            for size in sizes:
                if shape == "objects" and size > 50 and not args.full:
                    continue
                path = folder / f"{shape}_{size}mb.pkl"
                if not path.exists():
                    SHAPES[shape](path, size * MB)
                file_size = path.stat().st_size
                row: dict[str, Any] = {"shape": shape, "size_mb": size, "bytes": file_size}
                for tool in tools:
                    result = measure(tool, path, args.timeout)
                    row[tool] = result
                    if "error" in result:
                        print(f"  {shape:10} {size:4} MB  {tool:11} {result['error']}")
                    else:
                        print(
                            f"  {shape:10} {size:4} MB  {tool:11} {result['seconds']:9.3f} s"
                            f"  RSS {_fmt_bytes(result['during']):>10}"
                            f"  (process {_fmt_bytes(result['peak'])})  {result['outcome']}",
                            flush=True,
                        )
                ours = row.get("serdoctor", {})
                if "seconds" in ours:
                    for other in tools:
                        if other != "serdoctor" and "seconds" in row.get(other, {}):
                            row[f"speedup_vs_{other}"] = row[other]["seconds"] / max(
                                ours["seconds"], 1e-9
                            )
                    during = ours.get("during")
                    row["rss_ratio"] = (during / file_size) if during is not None else None
                    row["process_rss_ratio"] = ours["peak"] / file_size
                rows.append(row)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print()
    print(f"{'file':18} {'vs dis':>10} {'vs fickling':>12} {'RSS/size':>9} {'process/size':>13}")
    ok = True
    for row in rows:
        dis = row.get("speedup_vs_pickletools")
        fick = row.get("speedup_vs_fickling")
        rss = row.get("rss_ratio")
        proc = row.get("process_rss_ratio")
        name = f"{row['shape']} {row['size_mb']} MB"
        print(
            f"{name:18} {_ratio(dis):>10} {_ratio(fick):>12} "
            f"{(f'{rss:.3f}' if rss is not None else '?'):>9} "
            f"{(f'{proc:.3f}' if proc is not None else '?'):>13}"
        )
        if dis is not None and dis < 10:
            ok = False
        if rss is not None and rss > 0.25:
            ok = False
    print(
        "\ntargets (>= 10x faster than pickletools.dis, RSS <= 0.25x size):",
        "met" if ok else "NOT met for every file",
    )
    if args.json:
        args.json.write_text(
            json.dumps({"python": platform.python_version(), "rows": rows}, indent=2)
        )
    return 0


def _ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}x" if value >= 100 else f"{value:,.1f}x"


if __name__ == "__main__":
    sys.exit(main())

"""A short tour of serdoctor: ``python -m serdoctor.demo``.

Run as a script, this module *is* ``__main__``, so the functions below are
exactly the kind that plain pickle cannot send: a lambda, a closure and a
function defined in ``__main__``. Each is serialized, loaded and called in a
fresh interpreter, and ``explain()`` says how it travelled and why. Then the
doctor reads the payload without executing it.
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
        print("\n=== the doctor reads a payload without executing it: ser-doctor inspect")
        subprocess.run(
            [sys.executable, "-m", "serdoctor.cli", "inspect", str(folder / "a_closure.sdoc")],
            timeout=60,
            check=False,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

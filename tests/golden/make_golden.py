"""Regenerate the golden payloads in ``tests/golden/``.

The golden payloads pin serdoctor's envelope format (``docs/format.md``):
``tests/serialize/test_golden.py`` loads each one and checks that today's
serdoctor still writes the same bytes. Regenerate them only when the format
changes on purpose, and then bump ``FORMAT_VERSION`` in
``src/serdoctor/serialize/_envelope.py`` first::

    python tests/golden/make_golden.py            # refuses to overwrite existing files
    python tests/golden/make_golden.py --force    # overwrite them
    python tests/golden/make_golden.py --check    # write nothing; say what would change

Run it with Python 3.11 (the by-value lambda is pinned to 3.11 bytecode) and
numpy installed. It writes, for every case of ``cases.py``, ``<name>.sdoc``
(the flat payload: ``b"".join(frames)`` for the frame cases) and
``manifest.json`` (the environment the payloads were made in, each file's
SHA-256, frame lengths and decoded header), then loads every file back as a
sanity check. Commit the ``.sdoc`` files and ``manifest.json`` together.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"


def load_cases() -> ModuleType:
    """``cases.py`` from this directory, imported by path."""
    name = "serdoctor_golden_cases"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def environment() -> dict[str, str]:
    """The versions that decide the bytes of the payloads."""
    import cloudpickle
    import dill
    import numpy

    import serdoctor

    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "serdoctor": serdoctor.__version__,
        "cloudpickle": str(cloudpickle.__version__),
        "dill": str(dill.__version__),
        "numpy": str(numpy.__version__),
    }


def frame_lengths(frames: list[Any]) -> list[int]:
    """Byte length of each frame."""
    return [memoryview(f).nbytes for f in frames]


def make_payload(case: Any) -> tuple[bytes, list[int]]:
    """Dump one case; return the flat payload and its frame lengths."""
    import serdoctor

    serializer = serdoctor.Serializer(**case.serializer)
    frames = serializer.dumps_frames(case.make())
    flat = b"".join(frames)
    if flat != serializer.dumps(case.make()):
        raise SystemExit(f"{case.name}: dumps() and b''.join(dumps_frames()) differ")
    return flat, frame_lengths(frames)


def header_json(payload: bytes) -> dict[str, Any]:
    """The header exactly as written (field order kept)."""
    from serdoctor.serialize._envelope import PREFIX_SIZE

    size = int.from_bytes(payload[PREFIX_SIZE - 4 : PREFIX_SIZE], "big")
    decoded: dict[str, Any] = json.loads(payload[PREFIX_SIZE : PREFIX_SIZE + size])
    return decoded


def sanity_check(case: Any, payload: bytes) -> None:
    """The payload loads back to the expected value (flat and, for frame cases, framed)."""
    import serdoctor

    value = serdoctor.Serializer(**case.serializer).loads(payload)
    if not case.check(value):
        raise SystemExit(f"{case.name}: the payload did not load back to the expected value")


def main(argv: list[str] | None = None) -> int:
    """Write the golden payloads and the manifest."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="overwrite existing golden files")
    parser.add_argument("--check", action="store_true", help="write nothing; report differences")
    args = parser.parse_args(argv)

    cases = load_cases()
    minor = "{}.{}".format(*sys.version_info[:2])
    if minor != cases.GOLDEN_PYTHON or sys.implementation.name != "cpython":
        raise SystemExit(
            f"make_golden.py must run on CPython {cases.GOLDEN_PYTHON} (this is "
            f"{sys.implementation.name} {platform.python_version()}): the by-value golden "
            f"is pinned to {cases.GOLDEN_PYTHON} bytecode. Try: $(pyenv prefix 3.11.7)/bin/python"
        )
    from serdoctor.serialize._envelope import FORMAT_VERSION, MAGIC

    targets = [HERE / c.filename for c in cases.CASES] + [MANIFEST]
    existing = [p.name for p in targets if p.exists()]
    if existing and not (args.force or args.check):
        raise SystemExit(
            f"refusing to overwrite existing golden files ({', '.join(existing)}): "
            "goldens change only with a deliberate format change. Bump FORMAT_VERSION in "
            "src/serdoctor/serialize/_envelope.py, then re-run with --force"
        )

    manifest: dict[str, Any] = {
        "comment": "written by tests/golden/make_golden.py; do not edit by hand",
        "format_version": FORMAT_VERSION,
        "magic": MAGIC.hex(),
        "made_with": environment(),
        "cases": {},
    }
    changed = []
    for case in cases.CASES:
        payload, lengths = make_payload(case)
        sanity_check(case, payload)
        path = HERE / case.filename
        if not path.exists() or path.read_bytes() != payload:
            changed.append(case.filename)
        manifest["cases"][case.name] = {
            "file": case.filename,
            "description": case.description,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": len(payload),
            "frames": lengths,
            "header": header_json(payload),
        }
        if not args.check:
            path.write_bytes(payload)
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    if args.check:
        print("would change: " + (", ".join(changed) if changed else "nothing"))
        return 1 if changed else 0
    MANIFEST.write_text(text, encoding="utf-8")
    for case in cases.CASES:
        sanity_check(case, (HERE / case.filename).read_bytes())
    print(f"wrote {len(cases.CASES)} golden payloads and manifest.json to {HERE}")
    print("changed: " + (", ".join(changed) if changed else "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

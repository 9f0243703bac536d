"""Traceback frames of remote exceptions: capture them as plain data, rebuild them.

Sending side::

    capture_frames(exc.__traceback__)  ->  [[filename, name, lineno, module, line], ...]

Receiving side::

    build_traceback(frames)  ->  a real ``types.TracebackType`` chain

The rebuilt traceback is made of real frames: for each remote frame a tiny code
object (``raise <marker>``) is compiled under the remote file name, renamed to
the remote function name, moved to the remote line number, and executed once
to get a frame. This is the idea behind tblib's ``Traceback.as_traceback``; we
do it ourselves because tblib's stub keeps its own column positions, so on
Python 3.11+ ``traceback`` draws ``^^^^`` carets under the wrong part of the
remote line. Our code objects carry a location table with line numbers only.

Source lines: the remote line text travels with each frame. When the file does
not exist here, the frame's globals get a ``__loader__`` whose ``get_source``
serves the remote lines, so ``traceback.format_exception`` (and every tool
built on the ``linecache`` protocol) shows them. A file that exists here is
read from disk as usual. The C-level default excepthook of Python 3.10-3.12
reads files directly and shows the frames without the remote source lines;
``exc.remote_traceback`` always holds the full remote text.
"""

from __future__ import annotations

import linecache
import os
import sys
import threading
from types import CodeType, TracebackType
from typing import Any

__all__ = ["Frame", "build_traceback", "capture_frames"]

Frame = list[Any]
"""``[filename: str, name: str, lineno: int, module: str | None, line: str]``."""

MAX_FRAMES = 200
"""Frames kept per traceback: the first and last ``MAX_FRAMES // 2``, with a marker between."""

MAX_LINE = 1000
"""Characters kept of one source line."""

MAX_REGISTERED_LINES = 20_000
"""Remote source lines kept in this process for all remote files together."""

MAX_SOURCE_LINENO = 100_000
"""Remote lines beyond this line number are not served (the text would be mostly padding)."""

_OMITTED_FILE = "<serdoctor>"


def capture_frames(tb: TracebackType | None) -> list[Frame]:
    """Describe a traceback as a list of frames made of ``str``/``int``/``None`` only.

    Never raises; a frame that cannot be read is skipped. Long tracebacks keep
    their first and last ``MAX_FRAMES // 2`` frames, with a marker frame
    ``<N frames omitted by serdoctor>`` between them.
    """
    frames: list[Frame] = []
    total = 0
    omitted_tail: list[Frame] = []
    half = MAX_FRAMES // 2
    try:
        while tb is not None:
            total += 1
            frame = _describe(tb)
            if frame is not None:
                if len(frames) < half:
                    frames.append(frame)
                else:
                    omitted_tail.append(frame)
                    if len(omitted_tail) > half:
                        omitted_tail.pop(0)
            tb = tb.tb_next
    except Exception:
        pass
    omitted = total - len(frames) - len(omitted_tail)
    if omitted > 0:
        frames.append([_OMITTED_FILE, f"<{omitted} frames omitted by serdoctor>", 1, None, ""])
    return frames + omitted_tail


def _describe(tb: TracebackType) -> Frame | None:
    try:
        frame = tb.tb_frame
        code = frame.f_code
        filename = code.co_filename if isinstance(code.co_filename, str) else "<unknown>"
        name = code.co_name if isinstance(code.co_name, str) else "<unknown>"
        lineno = tb.tb_lineno if isinstance(tb.tb_lineno, int) else 0
        module = frame.f_globals.get("__name__")
        if not isinstance(module, str):
            module = None
        line = ""
        if lineno > 0:
            try:
                line = linecache.getline(filename, lineno, frame.f_globals)[:MAX_LINE]
            except Exception:
                line = ""
        return [filename, name, lineno, module, line.rstrip("\r\n")]
    except Exception:
        return None


# ---------------------------------------------------------------- rebuilding


class _FrameMaker(Exception):
    """Raised by the stub code objects to obtain a frame; never escapes."""


_STUB_SOURCE = "raise _serdoctor_frame_maker"


def build_traceback(frames: object) -> TracebackType | None:
    """Turn :func:`capture_frames` output back into a real traceback.

    Returns ``None`` for an empty or unreadable list. Malformed entries are
    skipped; never raises.
    """
    if not isinstance(frames, list):
        return None
    head: TracebackType | None = None
    last: TracebackType | None = None
    for entry in frames[: MAX_FRAMES + 1]:
        tb = _one_frame(entry)
        if tb is None:
            continue
        if last is None:
            head = tb
        else:
            last.tb_next = tb
        last = tb
    return head


def _one_frame(entry: object) -> TracebackType | None:
    if not (isinstance(entry, list) and len(entry) == 5):
        return None
    filename, name, lineno, module, line = entry
    if not (isinstance(filename, str) and isinstance(name, str) and isinstance(lineno, int)):
        return None
    lineno = max(1, min(lineno, 10_000_000))
    try:
        code = _stub_code(filename, name, lineno)
    except Exception:
        return None
    env: dict[str, Any] = {
        "__name__": module if isinstance(module, str) else "?",
        "__file__": filename,
        "__builtins__": {},
        "_serdoctor_frame_maker": _FrameMaker,
    }
    if isinstance(line, str) and line and _register_line(filename, lineno, line):
        env["__loader__"] = _FileSource(filename)
    try:
        exec(code, env)
    except _FrameMaker:
        tb = sys.exc_info()[2]
        return tb.tb_next if tb is not None else None
    return None


def _stub_code(filename: str, name: str, lineno: int) -> CodeType:
    if sys.version_info >= (3, 11):
        return _STUB.replace(
            co_filename=filename,
            co_name=name,
            co_qualname=name,
            co_firstlineno=lineno,
            co_linetable=_STUB_TABLE,
        )
    return _STUB.replace(co_filename=filename, co_name=name, co_firstlineno=lineno)


def _lines_only_table(code: CodeType) -> bytes:
    """A 3.11+ location table mapping every instruction to ``co_firstlineno``, no columns.

    Entry format (Objects/locations.md): first byte ``1 CCCC LLL`` with code
    13 = "line delta only" and LLL = code units - 1, then a signed varint line
    delta (0).
    """
    units = len(code.co_code) // 2
    table = bytearray()
    while units > 0:
        n = min(8, units)
        units -= n
        table.append(0x80 | (13 << 3) | (n - 1))
        table.append(0)
    return bytes(table)


_STUB = compile(_STUB_SOURCE, "<serdoctor>", "exec")
_STUB_TABLE = _lines_only_table(_STUB) if sys.version_info >= (3, 11) else b""


# ------------------------------------------------ remote source lines (linecache)


class _RemoteSources:
    """Remote source lines by file name, merged over every arrival in this process."""

    def __init__(self) -> None:
        self.lines: dict[str, dict[int, str]] = {}
        self.count = 0
        self.lock = threading.Lock()

    def text(self, filename: str) -> str | None:
        with self.lock:
            lines = self.lines.get(filename)
            if not lines:
                return None
            return "".join(lines.get(n, "") + "\n" for n in range(1, max(lines) + 1))


_SOURCES = _RemoteSources()


class _FileSource:
    """A ``__loader__`` for one remote file: ``linecache.lazycache`` calls
    ``get_source(module name)``, we answer with the lines of our file."""

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def get_source(self, name: str) -> str | None:
        return _SOURCES.text(self.filename)


def _register_line(filename: str, lineno: int, line: str) -> bool:
    """Remember a remote source line; True when frames of this file should get a loader."""
    if filename.startswith("<") or lineno > MAX_SOURCE_LINENO or _exists(filename):
        return False
    store = _SOURCES
    with store.lock:
        lines = store.lines.get(filename)
        if lines is not None and lines.get(lineno) == line:
            return True
        if lines is None or lineno not in lines:
            if store.count >= MAX_REGISTERED_LINES:
                return lines is not None
            store.count += 1
        store.lines.setdefault(filename, {})[lineno] = line
        # linecache keeps what a loader returned forever (mtime None): drop a stale
        # copy so the merged lines are served next time.
        entry = linecache.cache.get(filename)
        if entry is not None and len(entry) != 1:
            linecache.cache.pop(filename, None)
    return True


def _exists(filename: str) -> bool:
    try:
        return os.path.exists(filename)
    except (OSError, ValueError):
        return False

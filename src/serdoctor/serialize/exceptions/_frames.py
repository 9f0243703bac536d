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

A frame is only ever read, so one frame per remote line (file, function,
line, module) is made and cached, and each arrival links cached frames with
``types.TracebackType(...)``: a frame that arrives again costs a lookup. The
stubs run inside a long-lived generator, so their ``f_back`` is that
generator's frame and not the stack of the ``loads`` that first needed them
(which would keep the loader's locals alive and put every arrived exception
in a reference cycle with them).

Source lines: the remote line text travels with each frame. When the file does
not exist here, the frame's globals get a ``__loader__`` whose ``get_source``
serves the remote lines, so ``traceback.format_exception`` (and every tool
built on the ``linecache`` protocol) shows them. A file that exists here is
read from disk as usual. The C-level default excepthook of Python 3.10-3.12
reads files directly and shows the frames without the remote source lines;
``exc.remote_traceback`` always holds the full remote text.

The traceback *text* of an exception is written by
:mod:`serdoctor.serialize.exceptions._text`, in the same walk that captures its frames.
"""

from __future__ import annotations

import linecache
import os
import sys
import threading
import time
from collections.abc import Generator
from types import CodeType, FrameType, TracebackType
from typing import Any

__all__ = ["Frame", "build_traceback", "capture_frames", "describe_frame", "keep_ends"]

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


def capture_frames(tb: object) -> list[Frame]:
    """Describe a traceback as a list of frames made of ``str``/``int``/``None`` only.

    Never raises; a frame that cannot be read is skipped, and anything but a
    traceback has no frames. Long tracebacks keep their first and last
    ``MAX_FRAMES // 2`` frames, with a marker frame ``<N frames omitted by
    serdoctor>`` between them (see :func:`keep_ends`).
    """
    if type(tb) is not TracebackType:
        return []
    frames: list[Frame] = []
    total = 0
    current: TracebackType | None = tb
    try:
        while current is not None:
            total += 1
            entry = describe_frame(current, current.tb_frame)
            if entry is not None:
                frames.append(entry)
            current = current.tb_next
    except Exception:
        pass
    return keep_ends(frames, total)


def keep_ends(frames: list[Frame], total: int) -> list[Frame]:
    """Keep the first and last frames of a long traceback.

    ``frames`` (the readable ones of ``total``), cut to their first and last
    ``MAX_FRAMES // 2`` with a marker frame saying how many others went.
    """
    if total == len(frames) and total <= MAX_FRAMES:
        return frames
    half = MAX_FRAMES // 2
    kept = frames[:half] + frames[half:][-half:]
    omitted = total - len(kept)
    marker = [_OMITTED_FILE, f"<{omitted} frames omitted by serdoctor>", 1, None, ""]
    return [*kept[:half], marker, *kept[half:]]


def describe_frame(tb: TracebackType, frame: FrameType) -> Frame | None:
    """Describe one traceback entry as a record frame.

    The record frame of one traceback entry (``frame`` is ``tb.tb_frame``), or None
    when it cannot be read. Never raises.
    """
    try:
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
    if not isinstance(frames, list) or not frames:
        return None
    now = time.monotonic()
    head: TracebackType | None = None
    for entry in reversed(frames[: MAX_FRAMES + 1]):  # linked from the innermost out
        found = _ARRIVALS.get(entry) if type(entry) is list and len(entry) == 5 else None
        if found is None or now - found[3] >= _EXISTS_TTL or not _still_served(entry, found[4]):
            found = _one_frame(entry, now)
            if found is None:
                continue
        head = TracebackType(head, found[0], found[1], found[2])
    return head


class _Arrivals:
    """Cache of remote frames seen lately.

    Remote frames seen lately, by their record entry ``[filename, name, lineno, module,
    line]`` (a list: keyed by its tuple), so a frame that arrives again costs a lookup.
    """

    def __init__(self) -> None:
        self.seen: dict[tuple[Any, ...], tuple[FrameType, int, int, float, bool]] = {}

    def get(self, entry: list[Any]) -> tuple[FrameType, int, int, float, bool] | None:
        try:
            return self.seen.get(tuple(entry))
        except TypeError:  # an unhashable part: never cached
            return None

    def put(self, entry: list[Any], value: tuple[FrameType, int, int, float, bool]) -> None:
        if len(self.seen) >= _CACHE_SIZE:
            self.seen.clear()
        self.seen[tuple(entry)] = value


_ARRIVALS = _Arrivals()


def _still_served(entry: list[Any], served: bool) -> bool:
    """False when another arrival replaced this frame's remote line since (re-register it)."""
    if not served:
        return True
    lines = _SOURCES.lines.get(entry[0])
    return lines is not None and lines.get(entry[2]) == entry[4]


def _one_frame(entry: object, now: float) -> tuple[FrameType, int, int, float, bool] | None:
    """The stub frame, ``tb_lasti`` and line number of one remote frame, or None."""
    if not (isinstance(entry, list) and len(entry) == 5):
        return None
    filename, name, lineno, module, line = entry
    if not (isinstance(filename, str) and isinstance(name, str) and isinstance(lineno, int)):
        return None
    lineno = max(1, min(int(lineno), 10_000_000))
    module = module if isinstance(module, str) else "?"
    served = isinstance(line, str) and bool(line) and _register_line(filename, lineno, line)
    key = (filename, name, lineno, module, served)
    found = _FRAMES.get(key)
    if found is None:
        found = _make_frame(filename, name, lineno, module, served)
        if found is None:
            return None
        if len(_FRAMES) >= _CACHE_SIZE:
            _FRAMES.clear()
        _FRAMES[key] = found
    arrival = (found[0], found[1], lineno, now, served)
    _ARRIVALS.put(entry, arrival)
    return arrival


_CACHE_SIZE = 4096
"""Entries of each rebuilding cache below (emptied when full)."""

_FRAMES: dict[tuple[str, str, int, str, bool], tuple[FrameType, int]] = {}
"""Stub frames by what they show. A frame is only read through a traceback, so one
frame serves every traceback that passes through the same remote line."""


def _make_frame(
    filename: str, name: str, lineno: int, module: str, served: bool
) -> tuple[FrameType, int] | None:
    try:
        code = _stub_code(filename, name, lineno)
    except Exception:
        return None
    with _FACTORY_LOCK:
        for _ in range(2):  # a factory stopped by an odd exception is replaced once
            if not _FACTORY:
                _FACTORY.append(_frame_factory())
                next(_FACTORY[0])
            try:
                return _FACTORY[0].send((code, _globals(filename, module, served)))
            except Exception:  # StopIteration: it was stopped (by a KeyboardInterrupt)
                _FACTORY.clear()
    return None


def _frame_factory() -> Generator[tuple[FrameType, int] | None, tuple[CodeType, Any], None]:
    """Runs the stubs; stays suspended in between.

    A frame links to the frame that ran it (``f_back``) and so, as each caller
    returns, to the whole stack of the ``loads`` that made it, locals included:
    the rebuilder, the user's frames and the exception itself (a reference
    cycle per exception, kept until a full garbage collection). Frames made
    here link to this generator's frame instead, which holds nothing else.
    """
    made: tuple[FrameType, int] | None = None
    while True:
        request = yield made
        made = None
        code, env = request
        del request
        try:
            exec(code, env)
        except _FrameMaker:
            tb = sys.exc_info()[2]
            stub = tb.tb_next if tb is not None else None
            if stub is not None:
                made = (stub.tb_frame, stub.tb_lasti)
            del tb, stub


_FACTORY: list[Generator[tuple[FrameType, int] | None, tuple[CodeType, Any], None]] = []
_FACTORY_LOCK = threading.Lock()
_GLOBALS: dict[tuple[str, str, bool], dict[str, Any]] = {}


def _globals(filename: str, module: str, served: bool) -> dict[str, Any]:
    """The globals of the frames of one remote file (shared: the stubs only read them)."""
    key = (filename, module, served)
    env = _GLOBALS.get(key)
    if env is None:
        env = {
            "__name__": module,
            "__file__": filename,
            "__builtins__": {},
            "_serdoctor_frame_maker": _FrameMaker,
        }
        if served:
            env["__loader__"] = _FileSource(filename)
        if len(_GLOBALS) >= _CACHE_SIZE:
            _GLOBALS.clear()
        _GLOBALS[key] = env
    return env


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
    """A ``__loader__`` that serves the source of one remote file.

    A ``__loader__`` for one remote file: ``linecache.lazycache`` calls
    ``get_source(module name)``, we answer with the lines of our file.
    """

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


_EXISTS_TTL = 2.0
"""Seconds a file's existence is remembered (a stat per remote frame costs more than
the rest of its rebuilding)."""

_EXISTS: dict[str, tuple[float, bool]] = {}


def _exists(filename: str) -> bool:
    now = time.monotonic()
    known = _EXISTS.get(filename)
    if known is not None and now - known[0] < _EXISTS_TTL:
        return known[1]
    try:
        found = os.path.exists(filename)
    except (OSError, ValueError):
        found = False
    if len(_EXISTS) >= _CACHE_SIZE:
        _EXISTS.clear()
    _EXISTS[filename] = (now, found)
    return found

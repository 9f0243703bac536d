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

Texts: :func:`format_own_text` writes an exception's own traceback text
exactly as ``traceback.TracebackException(...).format(chain=False)`` does, in
about a tenth of the time: ``traceback`` builds a ``FrameSummary`` per frame
and, on Python 3.11+, parses each frame's source segment with ``ast`` to place
its ``~~^^`` anchors. We format the frames ourselves and hand ``traceback``
only the frames whose segment could hold an anchor (an operator or a
subscript) or whose line is not ASCII. It is enabled on the Pythons whose
``traceback`` it was written against (3.11, 3.12), after a self-check against
``traceback`` on first use; elsewhere the caller uses ``traceback`` itself.
"""

from __future__ import annotations

import builtins
import itertools
import linecache
import os
import sys
import threading
import time
import traceback
from collections.abc import Generator
from types import CodeType, FrameType, TracebackType
from typing import Any

__all__ = ["Frame", "build_traceback", "capture_frames", "format_own_text", "walk_traceback"]

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
    return walk_traceback(tb, rows=False)[0]


def walk_traceback(tb: object, *, rows: bool = True) -> tuple[list[Frame], list[str] | None]:
    """One walk of ``tb``: its :func:`capture_frames` frames and, if ``rows``, its rows
    as ``StackSummary.format()`` writes them (``[]`` for no traceback).

    The rows are ``None`` when they are not made here (``rows`` false, another
    Python, ``sys.tracebacklimit`` set, an odd frame): ``traceback`` must format
    this traceback. Never raises.
    """
    if rows and (_fast_text[0] if _fast_text else _enable_fast_text()):
        return _walk(tb, "tracebacklimit" not in sys.__dict__)
    return _walk(tb, False)


def _walk(tb: object, rows: bool) -> tuple[list[Frame], list[str] | None]:
    made: list[str] | None = [] if rows else None
    if type(tb) is not TracebackType:
        return [], made
    frames: list[Frame] = []
    total = 0
    last: tuple[str, int, str] | None = None
    count = 0
    now = time.monotonic()
    current: TracebackType | None = tb
    try:
        while current is not None:
            total += 1
            frame = current.tb_frame
            entry: Frame | None = None
            if made is not None:
                try:
                    entry, row, key = _site_hit(current, frame, now) or _frame_and_row(
                        current, frame, now
                    )
                except Exception:
                    row = None
                if row is None:
                    made = None
                else:  # StackSummary.format: collapse a frame repeated past the cutoff
                    if key != last:
                        if count > _RECURSIVE_CUTOFF:
                            made.append(_repeated(count - _RECURSIVE_CUTOFF))
                        last, count = key, 0
                    count += 1
                    if count <= _RECURSIVE_CUTOFF:
                        made.append(row)
            if entry is None:
                entry = _describe(current, frame)
            if entry is not None:
                frames.append(entry)
            current = current.tb_next
    except Exception:
        made = None
    if made is not None and count > _RECURSIVE_CUTOFF:
        made.append(_repeated(count - _RECURSIVE_CUTOFF))
    if total == len(frames) and total <= MAX_FRAMES:
        return frames, made
    # keep the first and last MAX_FRAMES // 2 readable frames; say how many others went
    half = MAX_FRAMES // 2
    kept = frames[:half] + frames[half:][-half:]
    omitted = total - len(kept)
    marker = [_OMITTED_FILE, f"<{omitted} frames omitted by serdoctor>", 1, None, ""]
    return [*kept[:half], marker, *kept[half:]], made


def _describe(tb: TracebackType, frame: FrameType) -> Frame | None:
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


# ---------------------------------------------------------------- texts

_RECURSIVE_CUTOFF = 3  # traceback's own: a frame repeated more is summarised
_ANCHOR_CHARS = frozenset("+-*/%@&|^<>[")  # a BinOp or a Subscript needs one of them
_NO_POSITIONS: tuple[None, None, None, None] = (None, None, None, None)
_LIBRARY_STACK: Any = traceback.StackSummary()  # format_frame_summary: 3.11+
_FRAME_SUMMARY: Any = traceback.FrameSummary  # column arguments: 3.11+ only
_fast_text: list[bool] = []  # [enabled] once the self-check has run
_GROUP: Any = getattr(builtins, "BaseExceptionGroup", None)  # formatted by traceback

_CACHED = 1024
"""Entries of each sending-side cache below (emptied when full)."""

_VALIDATE_EVERY = 1.0
"""Seconds between two ``linecache.checkcache`` of one file. ``traceback`` stats each
file of each traceback it formats (a stat costs as much as the rest of a frame);
a source file edited less than this ago may show its previous line once."""

_VALIDATED: dict[str, float] = {}
_SITES: dict[tuple[int, int], tuple[Any, tuple[Any, ...], str, str, str, tuple[str, int, str]]] = {}
"""By ``(id(code), tb_lasti)``: the code (kept, so the id stays its own), its positions
there, the source line, row and record line last made from them, and the repeat key."""
_LIBRARY_ROWS: dict[tuple[Any, ...], str] = {}
"""Rows formatted by ``traceback`` (which parses the segment for its anchors), by
everything that row depends on: the same line failing again costs a lookup."""


def _site_hit(
    tb: TracebackType, frame: FrameType, now: float
) -> tuple[Frame, str, tuple[str, int, str]] | None:
    """:func:`_frame_and_row` of a frame whose site, line and linecache entry are as last
    time (the common case: the same line failing again), or None."""
    code = frame.f_code
    site = _SITES.get((id(code), tb.tb_lasti))
    if site is None or site[0] is not code:
        return None
    key = site[5]
    filename, lineno = key[0], key[1]
    checked = _VALIDATED.get(filename)
    cached = linecache.cache.get(filename)
    if checked is None or now - checked >= _VALIDATE_EVERY or not cached or len(cached) != 4:
        return None
    lines = cached[2]
    if not (0 < lineno <= len(lines) and lines[lineno - 1] is site[2]) or tb.tb_lineno != lineno:
        return None
    module = frame.f_globals.get("__name__")
    entry = [filename, key[2], lineno, module if isinstance(module, str) else None, site[4]]
    return entry, site[3], key


def _frame_and_row(
    tb: TracebackType, frame: FrameType, now: float
) -> tuple[Frame | None, str | None, tuple[str, int, str]]:
    """The record frame (or None: use ``_describe``), the row and the repeat key of a frame."""
    code: Any = frame.f_code  # co_positions: 3.11+
    lasti = tb.tb_lasti
    site = _SITES.get((id(code), lasti))
    if site is not None and site[0] is not code:
        site = None
    if site is not None:
        lineno, end_lineno, colno, end_colno = site[1]
    elif lasti < 0:
        lineno, end_lineno, colno, end_colno = _NO_POSITIONS
    else:
        lineno, end_lineno, colno, end_colno = next(
            itertools.islice(code.co_positions(), lasti // 2, None)
        )
    tb_lineno = tb.tb_lineno
    if lineno is None:
        lineno = tb_lineno
    filename, name = code.co_filename, code.co_name
    if type(lineno) is not int or type(filename) is not str or type(name) is not str:
        return None, None, ("", 0, "")
    # the lookups StackSummary makes: lazy loader, cache validation, then the line
    checked = _VALIDATED.get(filename)
    cached = linecache.cache.get(filename)
    if checked is not None and now - checked < _VALIDATE_EVERY and cached and len(cached) == 4:
        lines = cached[2]
        raw = lines[lineno - 1] if 0 < lineno <= len(lines) else ""  # linecache.getline
    else:
        linecache.lazycache(filename, frame.f_globals)
        if checked is None or now - checked >= _VALIDATE_EVERY:
            linecache.checkcache(filename)
            if len(_VALIDATED) >= _CACHED:
                _VALIDATED.clear()
            _VALIDATED[filename] = now
        raw = linecache.getline(filename, lineno)
    row: str
    if site is not None and site[2] is raw:
        row, line = site[3], site[4]
    else:
        row = _row(filename, lineno, name, raw, end_lineno, colno, end_colno) or _library_row(
            filename, lineno, name, raw, end_lineno, colno, end_colno
        )
        line = raw[:MAX_LINE].rstrip("\r\n")
        if len(_SITES) >= _CACHED:
            _SITES.clear()
        positions = (lineno, end_lineno, colno, end_colno)
        _SITES[(id(code), lasti)] = (code, positions, raw, row, line, (filename, lineno, name))
    entry: Frame | None = None
    if lineno == tb_lineno and lineno > 0:
        module = frame.f_globals.get("__name__")
        entry = [filename, name, lineno, module if isinstance(module, str) else None, line]
    return entry, row, (filename, lineno, name)


def _library_row(
    filename: str,
    lineno: int,
    name: str,
    raw: str,
    end_lineno: int | None,
    colno: int | None,
    end_colno: int | None,
) -> str:
    key = (filename, lineno, name, raw, end_lineno, colno, end_colno)
    row = _LIBRARY_ROWS.get(key)
    if row is None:
        summary = _FRAME_SUMMARY(
            filename,
            lineno,
            name,
            lookup_line=False,
            line=raw,
            end_lineno=end_lineno,
            colno=colno,
            end_colno=end_colno,
        )
        row = _LIBRARY_STACK.format_frame_summary(summary)
        if len(_LIBRARY_ROWS) >= _CACHED:
            _LIBRARY_ROWS.clear()
        _LIBRARY_ROWS[key] = row
    return row


def format_own_text(exc: BaseException, rows: list[str] | None, text: str) -> str | None:
    """``exc``'s own traceback text, as ``TracebackException.format(chain=False)`` writes it.

    ``rows`` come from :func:`walk_traceback` of ``exc.__traceback__``, ``text``
    is ``str(exc)``. Returns ``None`` when this exception is not a case
    formatted here (no rows; groups and ``SyntaxError`` carry more than a
    stack and a line; an odd class or ``__notes__``): the caller then uses
    ``traceback``. May raise on a hostile object; the caller falls back then too.
    """
    if rows is None:
        return None
    only = _exception_only(exc, text)
    if only is None:
        return None
    if not rows:
        return only
    return "Traceback (most recent call last):\n" + "".join(rows) + only


def _exception_only(exc: BaseException, text: str) -> str | None:
    """``TracebackException.format_exception_only()`` of a plain exception, or None."""
    cls = type(exc)
    if type(text) is not str or issubclass(cls, SyntaxError):
        return None
    if _GROUP is not None and issubclass(cls, _GROUP):
        return None
    stype = cls.__qualname__
    smod = cls.__module__
    notes = getattr(exc, "__notes__", None)
    if type(stype) is not str or type(smod) is not str:
        return None
    if smod not in ("__main__", "builtins"):
        stype = smod + "." + stype
    out = f"{stype}: {text}\n" if text else f"{stype}\n"
    if notes is None:
        return out
    if type(notes) is not list and type(notes) is not tuple:
        return None
    parts = [out]
    for note in notes:
        if type(note) is not str:
            try:
                note = str(note)
            except Exception:
                note = "<note str() failed>"
        parts.extend(line + "\n" for line in note.split("\n"))
    return "".join(parts)


def _repeated(count: int) -> str:
    return f"  [Previous line repeated {count} more time{'s' if count > 1 else ''}]\n"


def _row(
    filename: str,
    lineno: int,
    name: str,
    raw: str,
    end_lineno: int | None,
    colno: int | None,
    end_colno: int | None,
) -> str | None:
    """``StackSummary.format_frame_summary`` of one frame; None when it needs ``traceback``
    (a line that is not ASCII, or a segment that may get ``~~^^`` anchors)."""
    head = f'  File "{filename}", line {lineno}, in {name}\n'
    stripped = raw.strip()
    if not stripped:
        return head
    if not raw.isascii():
        return None
    row = f"{head}    {stripped}\n"
    if colno is None or end_colno is None:
        return row
    if type(colno) is not int or type(end_colno) is not int or colno < 0 or end_colno < 0:
        return None
    size = len(raw)
    start, end = min(colno, size), min(end_colno, size)
    if lineno == end_lineno:
        if not _ANCHOR_CHARS.isdisjoint(raw[start:end]):
            return None
    else:
        end = len(raw.rstrip())
    if end - start < len(stripped):
        indent = " " * (start + 1 - (size - len(stripped)))
        row = f"{row}    {indent}{'^' * (end - start)}\n"
    return row


def _enable_fast_text() -> bool:
    """Check the formatter against ``traceback`` once; enable it only if they agree."""
    enabled = False
    if sys.version_info[:2] in ((3, 11), (3, 12)):
        try:
            enabled = _self_check()
        except Exception:
            enabled = False
    _fast_text[:] = [enabled]
    return enabled


_CHECK_ROWS: list[tuple[str, int, int | None, int | None, int | None]] = [
    ("    raise NotFound(key)  # the remote line\n", 5, 5, 4, 23),
    ("    raise NotFound(key)\n", 5, 5, 4, 23),
    ("    return compute(x)\n", 5, 5, 11, 21),
    ("\tvalue = handler.run(x)   \n", 5, 5, 9, 23),
    ("    result = call(\n", 5, 7, 13, 3),
    ("    pass\n", 5, None, None, None),
    ("", 5, 5, 4, 9),
]


def _self_check() -> bool:
    for raw, lineno, end_lineno, colno, end_colno in _CHECK_ROWS:
        ours = _row("/x/check.py", lineno, "f", raw, end_lineno, colno, end_colno)
        theirs = _LIBRARY_STACK.format_frame_summary(
            _FRAME_SUMMARY(
                "/x/check.py",
                lineno,
                "f",
                lookup_line=False,
                line=raw,
                end_lineno=end_lineno,
                colno=colno,
                end_colno=end_colno,
            )
        )
        if ours != theirs:
            return False
    sample = _check_exception()
    expected = "".join(
        traceback.TracebackException(type(sample), sample, sample.__traceback__).format(chain=False)
    )
    frames, rows = _walk(sample.__traceback__, True)
    return format_own_text(sample, rows, str(sample)) == expected and len(frames) == 7


def _check_exception() -> BaseException:
    def recurse(n: int) -> None:
        if n:
            recurse(n - 1)  # a frame repeated past traceback's cutoff
        raise ValueError("self-check", n)

    try:
        recurse(5)
    except ValueError as exc:
        exc.__dict__["__notes__"] = ["first note", "two\nlines", 3]
        return exc
    raise AssertionError("unreachable")


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
    made: list[tuple[FrameType, int, int]] = []
    for entry in frames[: MAX_FRAMES + 1]:
        found = _ARRIVALS.get(entry) if type(entry) is list and len(entry) == 5 else None
        if found is None or now - found[3] >= _EXISTS_TTL or not _still_served(entry, found[4]):
            found = _one_frame(entry, now)
            if found is None:
                continue
        made.append(found[:3])
    head: TracebackType | None = None
    for frame, lasti, lineno in reversed(made):
        head = TracebackType(head, frame, lasti, lineno)
    return head


class _Arrivals:
    """Remote frames seen lately, by their record entry ``[filename, name, lineno, module,
    line]`` (a list: keyed by its tuple), so a frame that arrives again costs a lookup."""

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

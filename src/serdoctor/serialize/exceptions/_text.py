"""Traceback texts of exceptions being recorded, written in the walk that captures their frames.

:func:`walk_traceback` walks a traceback once and returns both its
:func:`~serdoctor.serialize.exceptions._frames.capture_frames` frames and its rows as
``traceback.StackSummary.format()`` writes them; :func:`format_own_text` turns
the rows into an exception's own traceback text exactly as
``traceback.TracebackException(...).format(chain=False)`` does, in about a
tenth of the time: ``traceback`` builds a ``FrameSummary`` per frame and, on
Python 3.11+, parses each frame's source segment with ``ast`` to place its
``~~^^`` anchors. We format the frames ourselves and hand ``traceback`` only
the frames whose segment could hold an anchor (an operator or a subscript) or
whose line is not ASCII. It is enabled on the Pythons whose ``traceback`` it
was written against (3.11, 3.12), after a self-check against ``traceback`` on
first use; elsewhere the caller uses ``traceback`` itself.

Why not tblib and ``traceback`` alone (issue 9): every failed task sends its
exception, and ``benchmarks/serialize.py`` measures the difference on every run
(``serdoctor-traceback/serdoctor``: a round trip 4.4 times slower with
``traceback`` formatting the text). The code runs on every supported Python: on
3.10 and 3.13, whose ``traceback`` formats differently, the self-check turns
the fast path off and ``traceback`` does the work; CI runs the remote-exception
tests on 3.10, 3.11, 3.12 and 3.13, which compare the text with ``traceback``'s.
"""

from __future__ import annotations

import builtins
import itertools
import linecache
import sys
import time
import traceback
from types import FrameType, TracebackType
from typing import Any

from serdoctor.serialize.exceptions._frames import (
    MAX_LINE,
    Frame,
    capture_frames,
    describe_frame,
    keep_ends,
)

__all__ = ["format_own_text", "walk_traceback"]

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


def walk_traceback(tb: object, *, rows: bool = True) -> tuple[list[Frame], list[str] | None]:
    """Walk ``tb`` once, for frames and formatted rows.

    One walk of ``tb``: its :func:`capture_frames` frames and, if ``rows``, its rows
    as ``StackSummary.format()`` writes them (``[]`` for no traceback).

    The rows are ``None`` when they are not made here (``rows`` false, another
    Python, ``sys.tracebacklimit`` set, an odd frame): ``traceback`` must format
    this traceback. Never raises.
    """
    if (
        rows
        and (_fast_text[0] if _fast_text else _enable_fast_text())
        and "tracebacklimit" not in sys.__dict__
    ):
        return _walk(tb)
    return capture_frames(tb), None


def _walk(tb: object) -> tuple[list[Frame], list[str] | None]:
    """:func:`walk_traceback` with rows: ``capture_frames``' frames, made in the same pass."""
    made: list[str] | None = []
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
                entry = describe_frame(current, frame)
            if entry is not None:
                frames.append(entry)
            current = current.tb_next
    except Exception:
        made = None
    if made is not None and count > _RECURSIVE_CUTOFF:
        made.append(_repeated(count - _RECURSIVE_CUTOFF))
    return keep_ends(frames, total), made


def _site_hit(
    tb: TracebackType, frame: FrameType, now: float
) -> tuple[Frame, str, tuple[str, int, str]] | None:
    """Reuse the last row of a frame that failed at the same place.

    :func:`_frame_and_row` of a frame whose site, line and linecache entry are as last
    time (the common case: the same line failing again), or None.
    """
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
    """The record frame (or None: use ``describe_frame``), the row and the repeat key of a frame."""
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
    """Format one frame the way ``traceback`` does.

    ``StackSummary.format_frame_summary`` of one frame; None when it needs ``traceback``
    (a line that is not ASCII, or a segment that may get ``~~^^`` anchors).
    """
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
    frames, rows = _walk(sample.__traceback__)
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

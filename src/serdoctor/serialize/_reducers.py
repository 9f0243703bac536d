"""Opt-in reducers: objects that are not data, sent as what they can safely mean elsewhere.

By default serdoctor refuses open files, locks and the standard streams (see
``_notdata``). A :class:`~serdoctor.Serializer` made with ``reducers=`` sends
them instead, each as a description that is turned back into a *new* object of
the receiver's own, never a copy that pretends to be the original:

``"file"``
    An open file travels as its path, mode, encoding and offset, and is
    reopened by path where it is loaded, at the same offset. It is never
    reopened in a mode that truncates or creates: ``w`` becomes ``r+``, ``x``
    becomes ``r+``, ``a`` stays ``a``; a file that does not exist there is an
    error, not a new empty file. A file open for writing is flushed first, so
    the receiver sees what was written.
``"lock"``
    A ``threading.Lock``/``RLock`` arrives as a fresh, unlocked one; an
    ``Event`` as a fresh one in the same state (set or not). They guard and
    signal nothing of the sender's: only the receiver's own threads.
``"stdio"``
    ``sys.stdout``, ``sys.stderr`` and ``sys.stdin`` arrive as the receiver's
    own streams.

Loggers always travel by name (``logging.Logger`` pickles so since Python 3.7).
The rebuild functions' import paths are part of the wire format.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

from serdoctor.errors import DeserializationError, SerializationError

REDUCERS: tuple[str, ...] = ("file", "lock", "stdio")

Reduced = tuple[Any, tuple[Any, ...]]

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_STREAMS = ("stdout", "stderr", "stdin")


def check_reducers(names: Sequence[str]) -> tuple[str, ...]:
    """Validate a ``reducers=`` argument; return it as a tuple."""
    if isinstance(names, str):
        names = (names,)
    unknown = [n for n in names if n not in REDUCERS]
    if unknown:
        raise ValueError(
            f"unknown reducer {unknown[0]!r}: the opt-in reducers are "
            f"{', '.join(map(repr, REDUCERS))} (see docs/not-data.md)"
        )
    return tuple(names)


def reduce_opt_in(obj: Any, names: tuple[str, ...]) -> tuple[Reduced, str] | None:
    """The reduction of ``obj`` by one of ``names``, and what it means; None if none applies."""
    if "stdio" in names:
        for stream in _STREAMS:
            if obj is getattr(sys, stream, None) or obj is getattr(sys, f"__{stream}__", None):
                return (_stdio, (stream,)), f"the receiver's own sys.{stream}"
    if "lock" in names:
        if isinstance(obj, _LOCK_TYPES):
            kind = "RLock" if isinstance(obj, _LOCK_TYPES[1]) else "Lock"
            return (_fresh_lock, (kind,)), f"a fresh, unlocked threading.{kind} of the receiver's"
        if isinstance(obj, threading.Event):
            state = obj.is_set()
            what = "set" if state else "not set"
            return (_fresh_event, (state,)), f"a fresh threading.Event ({what}) of the receiver's"
    if "file" in names and isinstance(obj, io.IOBase):
        return _reduce_file(obj)
    return None


def _reduce_file(f: Any) -> tuple[Reduced, str]:
    name = getattr(f, "name", None)
    if not isinstance(name, (str, bytes, os.PathLike)):
        raise SerializationError(
            f"cannot reduce {type(f).__name__} with the 'file' reducer: it has no path "
            f"(name={name!r}), so it cannot be reopened elsewhere. Send its contents instead"
        )
    if f.closed:
        raise SerializationError(
            f"cannot reduce the closed file {os.fsdecode(name)!r}: send its path instead"
        )
    mode = str(getattr(f, "mode", "r"))
    if f.writable():
        f.flush()
    offset = f.tell() if f.seekable() else 0
    encoding = getattr(f, "encoding", None)
    errors = getattr(f, "errors", None)
    binary = not isinstance(f, io.TextIOBase)
    path = os.path.abspath(os.fsdecode(name))
    reopen = _reopen_mode(mode, binary)
    what = f"{path!r} reopened with mode {reopen!r} at offset {offset}"
    return (_reopen_file, (path, reopen, encoding, errors, offset)), what


def _reopen_mode(mode: str, binary: bool) -> str:
    """The mode to reopen a file in: never truncating, never creating."""
    plus = "+" in mode
    if "a" in mode:
        base = "a+" if plus else "a"
    elif "r" in mode and not plus:
        base = "r"
    else:  # w, w+, x, x+, r+
        base = "r+"
    return base + ("b" if binary else "")


def _reopen_file(
    path: str, mode: str, encoding: str | None, errors: str | None, offset: int
) -> Any:
    """Reopen a file sent by the 'file' reducer (never truncating, never creating)."""
    if any(c in mode for c in "wx") or ("a" in mode and not os.path.exists(path)):
        raise DeserializationError(
            f"the 'file' reducer refuses to open {path!r} with mode {mode!r}: it would "
            "create or truncate it"
        )
    try:
        if "b" in mode:
            encoding = errors = None  # binary files take neither
        f: Any = open(path, mode, encoding=encoding, errors=errors)  # noqa: SIM115 - the receiver owns it
    except FileNotFoundError:
        raise DeserializationError(
            f"the file {path!r} that was open where the payload was made does not exist "
            "here: create it, or send its contents instead of the open file"
        ) from None
    except OSError as exc:
        raise DeserializationError(f"cannot reopen {path!r} with mode {mode!r}: {exc}") from None
    if "a" not in mode and offset:
        f.seek(offset)
    return f


def _fresh_lock(kind: str) -> Any:
    """A new lock of the receiver's (the 'lock' reducer)."""
    return threading.RLock() if kind == "RLock" else threading.Lock()


def _fresh_event(is_set: bool) -> threading.Event:
    """A new event of the receiver's, in the sender's state (the 'lock' reducer)."""
    event = threading.Event()
    if is_set:
        event.set()
    return event


def _stdio(name: str) -> Any:
    """The receiver's own standard stream (the 'stdio' reducer)."""
    if name not in _STREAMS:
        raise DeserializationError(f"unknown standard stream {name!r}")
    return getattr(sys, name)

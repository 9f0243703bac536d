"""Objects that are not data: handles on this process that mean nothing anywhere else.

A lock guards memory of one process; a copy in another guards nothing. A
future is completed by this process's executor; a copy never completes. An
open file is a descriptor of this process, and pickling it by value (dill does)
writes code that *reopens the file by name on load*, which for a file opened
for writing truncates it. These objects are refused, precisely: the error names
the path to the object, what it is, why it cannot mean the same thing
elsewhere, and what to do instead. The checks run inside pickle's own
``reducer_override`` hook, so they cost nothing for ordinary data.
"""

from __future__ import annotations

import concurrent.futures
import io
import socket
import threading
import types
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NotData:
    """Why a kind of object cannot be sent, and what to do instead."""

    what: str
    why: str
    remedy: str

    def message(self, path: str, type_name: str) -> str:
        """The whole refusal, for :class:`~serdoctor.errors.SerializationError`."""
        return (
            f"cannot serialize {path} ({type_name}): it is {self.what}, and {self.why}. "
            f"{self.remedy}"
        )


_LOCK = NotData(
    "a lock",
    "a lock guards the memory of one process: a copy in another would guard nothing",
    "Create the lock where it is used (on the worker), or share one between processes "
    "with multiprocessing.Manager().Lock(), or send a fresh lock in its place with "
    "Serializer(reducers=('lock',)).",
)
_SYNC = NotData(
    "a synchronization object of this process ({name})",
    "other processes cannot wait on it or signal it: a copy would be a different, "
    "unconnected object",
    "Create it where it is used, or share one between processes through "
    "multiprocessing.Manager() (Event, Condition, Semaphore, Barrier).",
)
_THREAD = NotData(
    "a thread",
    "a thread runs in this process: a copy would be a thread that never ran",
    "Send the function and its arguments instead (submit them as a task) and start the "
    "thread where it should run.",
)
_FUTURE = NotData(
    "a future",
    "this process's executor or event loop completes it: a copy would never complete",
    "Send its result (future.result()), or pass it to serdoctor.Executor.submit, which "
    "waits for it and sends the result.",
)
_FILE = NotData(
    "an open file",
    "its descriptor belongs to this process, and reopening it by name where it is loaded "
    "could read other contents or, for a file opened for writing, empty it",
    "Send the path (f.name) and open the file where it is used, or let serdoctor reopen "
    "it by path there (never truncating) with Serializer(reducers=('file',)); for "
    "sys.stdout/stderr/stdin, Serializer(reducers=('stdio',)) uses the receiver's own.",
)
_SOCKET = NotData(
    "a network connection (socket)",
    "the connection belongs to this process: a copy would not be connected to anything",
    "Send the address and connect where the object is used.",
)
_GENERATOR = NotData(
    "a running generator or coroutine",
    "its suspended frame cannot be copied into another process",
    "Send the values it produces (list(gen)) or the function that makes it.",
)
_DATABASE = NotData(
    "a database connection",
    "the connection (and any open transaction) belongs to this process",
    "Send the database path or URL and connect where the object is used.",
)


_WEAK_PROXY = NotData(
    "a weak reference proxy (weakref.proxy)",
    "it would arrive as a separate copy of its referent, no longer weak and no longer "
    "tied to the object it stood for",
    "Send the referent itself (it is sent once however often it is referenced), or "
    "make the weak reference where the object is used.",
)
_DESCRIPTOR = NotData(
    "a slot or attribute descriptor taken from a class's __dict__",
    "it can only be sent as a lookup by name, which on the class gives the attribute's "
    "value (e.g. type.__dict__['__name__'] would arrive as the string 'type'), not the "
    "descriptor",
    "Send the class and the attribute's name, and take the descriptor from "
    "cls.__dict__[name] where it is used.",
)


def _table() -> list[tuple[tuple[type, ...], NotData]]:
    import weakref

    return [
        ((weakref.ProxyType, weakref.CallableProxyType), _WEAK_PROXY),
        ((types.GetSetDescriptorType, types.MemberDescriptorType), _DESCRIPTOR),
        ((type(threading.Lock()), type(threading.RLock())), _LOCK),
        (
            (threading.Condition, threading.Semaphore, threading.Event, threading.Barrier),
            _SYNC,
        ),
        ((threading.Thread,), _THREAD),
        ((concurrent.futures.Future,), _FUTURE),
        ((socket.socket,), _SOCKET),
        ((io.IOBase,), _FILE),
        ((types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType), _GENERATOR),
    ]


# Types of modules that `import serdoctor` should not import: matched by name.
_BY_NAME = {
    ("_asyncio", "Future"): _FUTURE,
    ("asyncio.futures", "Future"): _FUTURE,
    ("_asyncio", "Task"): _FUTURE,
    ("multiprocessing.synchronize", "SemLock"): _LOCK,
    ("sqlite3", "Connection"): _DATABASE,
    ("sqlite3", "Cursor"): _DATABASE,
}


_TABLE: list[tuple[tuple[type, ...], NotData]] | None = None
_STANDARD_STREAMS_OK = (io.BytesIO, io.StringIO)  # in-memory: data, not handles


def not_data(obj: Any) -> NotData | None:
    """What ``obj`` is, if it is a kind of object that cannot be sent; else None."""
    return not_data_type(type(obj))


def not_data_type(t: type) -> NotData | None:
    """Like :func:`not_data`, for a type (cached by the picklers per type)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _table()
    if issubclass(t, _STANDARD_STREAMS_OK):
        return None
    for types_, info in _TABLE:
        if issubclass(t, types_):
            if info is _SYNC:
                return NotData(info.what.format(name=t.__name__), info.why, info.remedy)
            return info
    for base in t.__mro__:
        named = _BY_NAME.get((base.__module__, base.__qualname__))
        if named is not None:
            return named
    return None


class NotDataError(TypeError):
    """Raised inside a pickler for an object that is not data (see :func:`not_data`)."""

    def __init__(self, obj: Any, info: NotData) -> None:
        """Remember what was refused."""
        super().__init__(f"{type(obj).__module__}.{type(obj).__qualname__} is {info.what}")
        self.info = info

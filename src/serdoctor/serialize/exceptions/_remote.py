"""Exceptions that cross processes and stay catchable.

Sending side: serdoctor's picklers call :func:`reduce_exception` for every
exception they meet, and pickle ``(_rebuild_exception, (record,))`` instead of
the exception. The record (see ``_record``) holds only primitives plus a
pickle of each exception as opaque bytes, so the exception's module is never a
requirement of the payload. A builtin exception whose whole state is
primitives (``ValueError("bad value", 42)``, the common case) needs no pickle:
its record node is marked ``exact``, and a never-raised one travels as the
compact record ``(qualname, args, text)``.

Receiving side, for each exception of the record::

    class importable here?
    ├── yes, an ``exact`` builtin          -> cls(*args), attributes put back
    ├── yes, and its pickle loads          -> the real exception
    ├── yes, pickle fails (e.g. __init__   -> the real class, built with cls.__new__
    │   with required arguments)              and the recorded args and attributes
    ├── yes, but it could not be pickled   -> a stand-in that subclasses the real class
    │   where it was raised (lock, socket)
    └── no                                 -> a stand-in that subclasses the nearest
                                              base classes that exist here

then ``__cause__``, ``__context__``, ``__suppress_context__``, ``__notes__``,
group members and the remote traceback frames are put back, and
``exc.remote_traceback`` holds the remote formatted traceback.

Stand-in class hierarchy::

    BaseException
    └── RemoteBaseException                 root of every stand-in
        ├── RemoteException (+ Exception)   root of stand-ins of Exception subclasses
        │   └── <mylib.NotFound>(RemoteException, LookupError)
        └── <mylib.Abort>(RemoteBaseException, KeyboardInterrupt)

``RemoteException`` derives from ``Exception``, so it cannot be the base of a
stand-in for a ``KeyboardInterrupt``/``SystemExit`` subclass without making
``except Exception`` catch it. Those stand-ins derive from
``RemoteBaseException`` only (the same split as ``BaseExceptionGroup`` /
``ExceptionGroup``); ``except RemoteBaseException`` catches every stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serdoctor.serialize.exceptions._record import capture, compact, minimal_record
from serdoctor.serialize.exceptions._values import safe_str

__all__ = [
    "RemoteBaseException",
    "RemoteChainTruncated",
    "RemoteException",
    "reduce_exception",
]


class RemoteBaseException(BaseException):
    """Root of every stand-in for an exception raised in another process.

    A stand-in replaces an exception whose class cannot be rebuilt here. Its
    class has the original ``__name__``, ``__qualname__`` and ``__module__``
    and derives from the nearest original base classes that exist here, so
    ``except ValueError`` and ``except*`` keep working. ``str()`` and
    ``repr()`` are the remote ones; primitive attributes (``e.errno``,
    ``e.code``) are kept.

    Stand-ins of ``Exception`` subclasses derive from :class:`RemoteException`;
    stand-ins of ``BaseException``-only classes (``KeyboardInterrupt``,
    ``SystemExit``) derive from this class only, so ``except Exception`` does
    not catch them, as it would not catch the original.

    Attributes:
        remote_traceback: the formatted traceback where it was raised (with its chain).
        remote_type: ``module.qualname`` of the original class.
        remote_mro: ``module.qualname`` of each class of the original MRO.
        remote_reason: why a stand-in arrived instead of the original class.
    """

    remote_traceback: str = ""
    remote_type: str = ""
    remote_mro: tuple[str, ...] = ()
    remote_reason: str = ""

    def __str__(self) -> str:
        text = self.__dict__.get("_serdoctor_str")
        return text if isinstance(text, str) else super().__str__()

    def __repr__(self) -> str:
        text = self.__dict__.get("_serdoctor_repr")
        return text if isinstance(text, str) else super().__repr__()

    def __reduce__(self) -> tuple[Any, ...]:
        # Plain pickle (concurrent.futures, multiprocessing) sends the record too.
        return reduce_exception(self)


class RemoteException(RemoteBaseException, Exception):
    """Base of every stand-in for a remote ``Exception`` subclass (see RemoteBaseException).

    ``except RemoteException`` catches remote errors whose class was not
    available here; ``exc.remote_traceback`` says where they came from.
    """


class RemoteChainTruncated(RemoteException):
    """Put where a chain or group went deeper than serdoctor sends (see ``MAX_DEPTH``)."""


def reduce_exception(exc: BaseException) -> tuple[Callable[..., BaseException], tuple[Any, ...]]:
    """The reduce tuple that sends ``exc`` (and every exception reachable from it).

    Pickle ``(rebuild, args)`` in place of the exception: ``rebuild`` is the
    module-level :data:`_rebuild_exception`, ``args`` is ``(record,)`` where the
    record holds only primitives and opaque bytes, so no global but ``rebuild``
    is named in the outer pickle. A never-raised builtin exception such as
    ``ValueError("bad value")`` gets the compact record ``(qualname, args,
    text)``. Never raises.
    """
    small = compact(exc)
    if small is not None:
        return _rebuild_exception, (small,)
    try:
        record = capture(exc, marker=RemoteChainTruncated, custom_reduce=_STANDIN_REDUCE)
    except Exception as error:  # capture() does not raise; belt and braces
        record = minimal_record(exc, safe_str(error))
    return _rebuild_exception, (record,)


_STANDIN_REDUCE = RemoteBaseException.__reduce__

_rebuild: Callable[[Any], BaseException] | None = None


def _import_rebuild() -> Callable[[Any], BaseException]:
    global _rebuild
    from serdoctor.serialize.exceptions._rebuild import rebuild  # imports this module

    _rebuild = rebuild
    return rebuild


class _Rebuild:
    """The type of :data:`_rebuild_exception`, the callable named in payloads.

    An instance rather than a function, pickled by name all the same (its
    ``__reduce__`` returns its global name, pickle's own rule for singletons):
    serdoctor's picklers classify every function they meet as code to be
    checked and recorded, which costs more than the rest of a small
    exception's pickling, and this one never needs it.
    """

    __slots__ = ()

    def __call__(self, record: Any) -> BaseException:
        """Rebuild the exception sent by :func:`reduce_exception`.

        Never raises: a record that cannot be read at all arrives as a
        :class:`RemoteException` saying so.
        """
        try:
            return (_rebuild or _import_rebuild())(record)
        except Exception as error:
            broken = RemoteException(
                "serdoctor could not rebuild a remote exception from its record "
                f"({type(error).__name__}: {safe_str(error)})"
            )
            broken.remote_reason = "the record of the remote exception is malformed"
            return broken

    def __reduce__(self) -> str:
        return "_rebuild_exception"

    def __repr__(self) -> str:
        return f"<{__name__}._rebuild_exception>"


_rebuild_exception = _Rebuild()
"""Rebuilds the exception sent by :func:`reduce_exception` (named in payloads: keep it)."""

"""``assert_roundtrip``: dump, load, compare, and say what changed.

In this process::

    obj ──dumps──▶ payload ──loads──▶ got        compare(obj, got)

With ``fresh_process=True`` the payload crosses into a new interpreter, which
has none of this process's state (no ``__main__`` functions, no dynamically
made classes), and comes back::

    obj ──dumps──▶ payload ─file─▶ python -c …: loads ▶ value ▶ dumps ─file─▶ back
                                                                              │
    compare(obj, got) ◀──loads── back ◀───────────────────────────────────────┘

Both sides use the same serializer (passed to the child pickled, so it must be
picklable; serdoctor's ``Serializer`` is). The child runs ``sys.executable``
with this process's ``sys.path`` and working directory, under a timeout; if it
fails, its traceback is part of the assertion message. The files live in a
private temporary directory that is removed afterwards.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from serdoctor.errors import SerializationError
from serdoctor.testing._difference import RoundTripDifference
from serdoctor.testing._difference import short as _short
from serdoctor.testing._equality import find_difference

__all__ = ["FrameSerializer", "RoundTrip", "SerializerLike", "assert_roundtrip"]

DEFAULT_TIMEOUT = 60.0
"""Seconds a fresh interpreter may take to load and re-dump a payload."""

_CHILD = (
    "import sys\n"
    "from serdoctor.testing._roundtrip import _child_main\n"
    "sys.exit(_child_main(sys.argv[1]))\n"
)


@runtime_checkable
class SerializerLike(Protocol):
    """What ``assert_roundtrip`` needs from a serializer: ``dumps`` and ``loads``."""

    def dumps(self, obj: Any, /) -> bytes: ...

    def loads(self, data: bytes, /) -> Any: ...


@runtime_checkable
class FrameSerializer(SerializerLike, Protocol):
    """A serializer that can also split a payload into frames (``frames=True``)."""

    def dumps_frames(self, obj: Any, /) -> list[Any]: ...

    def loads_frames(self, frames: Sequence[Any], /) -> Any: ...


def _default_serializer() -> FrameSerializer:
    from serdoctor.serialize import default_serializer

    return default_serializer()


def _describe(payload: Any) -> str:
    """``method 'cloudpickle' (by value)`` from the envelope header, never unpickling."""
    head = payload if isinstance(payload, (bytes, bytearray, memoryview)) else payload[0]
    try:
        from serdoctor.serialize._envelope import read_head

        header, _ = read_head(head)
    except Exception:
        return "an unrecognised payload (no serdoctor envelope)"
    how = "by value" if header.by_value else "by reference"
    return f"method {header.method!r}, {how}"


def _fail(what: str, obj: Any, got: Any, detail: str) -> AssertionError:
    return AssertionError(f"{what}\n  {detail}\n  sent: {_short(obj)}\n  got:  {_short(got)}")


def _compare(
    obj: Any, got: Any, eq: Callable[[Any, Any], bool] | None, context: str
) -> AssertionError | None:
    if eq is None:
        found = find_difference(obj, got)
        if found is None:
            return None
        return _fail(f"round trip changed the value ({context})", obj, got, str(found))
    if eq(obj, got):
        return None
    hint: RoundTripDifference | None = find_difference(obj, got)
    detail = f"eq={getattr(eq, '__qualname__', eq)!r} says they differ"
    if hint is not None:
        detail += f"; structurally: {hint}"
    return _fail(f"round trip changed the value ({context})", obj, got, detail)


def assert_roundtrip(
    obj: Any,
    *,
    serializer: SerializerLike | None = None,
    fresh_process: bool = False,
    eq: Callable[[Any, Any], bool] | None = None,
    frames: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Any:
    """Dump ``obj``, load it back, check the copy is faithful, and return the copy.

    ``serializer`` defaults to serdoctor's default stack (what ``serdoctor.dumps``
    uses); any object with ``dumps``/``loads`` works. With ``frames=True`` the
    payload goes through ``dumps_frames``/``loads_frames`` instead.

    With ``fresh_process=True`` the payload is loaded in a new ``sys.executable``
    interpreter, which dumps the value again and sends it back; that copy is
    compared and returned. The child must finish within ``timeout`` seconds.

    The copy is compared with :func:`serdoctor.testing.find_difference`
    (NaN-aware, array-aware, functions by code and captured values) unless
    ``eq(sent, got) -> bool`` is given.

    Raises ``AssertionError`` when dumping or loading fails (here or in the
    child, whose traceback is included) or the copy differs; the message says
    where it differs and which method made the payload. Raises
    :class:`~serdoctor.errors.SerializationError` if ``fresh_process=True`` and
    ``serializer`` itself cannot be pickled for the child.
    """
    __tracebackhide__ = True  # pytest: show the failure in the caller's test, not here
    ser: SerializerLike = _default_serializer() if serializer is None else serializer
    dump: Callable[[Any], Any] = ser.dumps
    load: Callable[[Any], Any] = ser.loads
    if frames:
        if not isinstance(ser, FrameSerializer):
            raise TypeError(f"frames=True needs dumps_frames/loads_frames, which {ser!r} lacks")
        dump, load = ser.dumps_frames, ser.loads_frames
    try:
        payload = dump(obj)
    except Exception as exc:
        raise AssertionError(
            f"could not dump {_short(obj)} with {ser!r}: {type(exc).__name__}: {exc}"
        ) from exc
    method = _describe(payload)
    where = method
    if fresh_process:
        payload = _through_child(payload, serializer, frames=frames, timeout=timeout, method=method)
        where = f"{method}, loaded and dumped again in a fresh interpreter"
    try:
        got = load(payload)
    except Exception as exc:
        raise AssertionError(
            f"could not load the payload ({where}) of {_short(obj)}: {type(exc).__name__}: {exc}"
        ) from exc
    failure = _compare(obj, got, eq, where)
    if failure is not None:
        raise failure
    return got


# -- the fresh interpreter ---------------------------------------------------------


def _child_env() -> dict[str, str]:
    """This environment, with this process's import path (test directories included)."""
    env = dict(os.environ)
    paths = [os.path.abspath(p or os.curdir) for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if os.path.isdir(p))
    return env


def _write_payload(directory: Path, name: str, payload: bytes | Sequence[Any]) -> int | None:
    """Write one file, or one file per frame; return the frame count (None: flat)."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        (directory / name).write_bytes(payload)
        return None
    for i, frame in enumerate(payload):
        (directory / f"{name}.{i}").write_bytes(frame)
    return len(payload)


def _read_payload(directory: Path, name: str, count: int | None) -> bytes | list[bytes]:
    if count is None:
        return (directory / name).read_bytes()
    return [(directory / f"{name}.{i}").read_bytes() for i in range(count)]


def _through_child(
    payload: bytes | Sequence[Any],
    serializer: SerializerLike | None,
    *,
    frames: bool,
    timeout: float,
    method: str,
) -> bytes | list[bytes]:
    with tempfile.TemporaryDirectory(prefix="serdoctor-roundtrip-") as tmp:
        directory = Path(tmp)
        spec: dict[str, Any] = {
            "frames": _write_payload(directory, "sent", payload),
            "serializer": serializer is not None,
            "use_frames": frames,
        }
        if serializer is not None:
            try:
                (directory / "serializer.pickle").write_bytes(pickle.dumps(serializer))
            except Exception as exc:
                raise SerializationError(
                    f"fresh_process=True sends the serializer to the child interpreter, but "
                    f"{serializer!r} cannot be pickled ({type(exc).__name__}: {exc}): use a "
                    f"picklable serializer such as serdoctor.Serializer(...)"
                ) from exc
        (directory / "spec.json").write_text(json.dumps(spec))
        try:
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(directory)],
                capture_output=True,
                timeout=timeout,
                env=_child_env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"the fresh interpreter did not load and re-dump the payload ({method}) "
                f"within {timeout:g} s; it was killed"
            ) from exc
        error = directory / "error.txt"
        if done.returncode != 0 or error.exists():
            text = (
                error.read_text()
                if error.exists()
                else done.stderr.decode(errors="replace") or f"exit code {done.returncode}"
            )
            raise AssertionError(
                f"the fresh interpreter failed on the payload ({method}):\n"
                + _indent(text.rstrip())
            )
        result = json.loads((directory / "result.json").read_text())
        return _read_payload(directory, "back", result["frames"])


def _indent(text: str) -> str:
    return "\n".join(f"  | {line}" for line in text.splitlines())


def _child_main(workdir: str) -> int:
    """Entry point of the fresh interpreter: load ``sent``, dump it to ``back``."""
    directory = Path(workdir)
    stage = "reading the request"
    try:
        spec = json.loads((directory / "spec.json").read_text())
        stage = "setting up the serializer"
        if spec["serializer"]:
            ser = pickle.loads((directory / "serializer.pickle").read_bytes())
        else:
            ser = _default_serializer()
        stage = "loading the payload"
        sent = _read_payload(directory, "sent", spec["frames"])
        value = ser.loads_frames(sent) if spec["use_frames"] else ser.loads(sent)
        stage = "dumping the loaded value again"
        back = ser.dumps_frames(value) if spec["use_frames"] else ser.dumps(value)
        count = _write_payload(directory, "back", back)
        (directory / "result.json").write_text(json.dumps({"frames": count}))
    except BaseException:
        (directory / "error.txt").write_text(
            f"while {stage} in a fresh interpreter ({sys.executable}):\n" + traceback.format_exc()
        )
        return 1
    return 0


# -- the fixture's callable ----------------------------------------------------------


class RoundTrip:
    """A reusable ``assert_roundtrip`` with defaults: what the ``roundtrip`` fixture gives.

    ``roundtrip(obj)`` round-trips with the defaults; ``roundtrip(obj, serializer)``
    or keyword arguments override them for one call;
    ``roundtrip.with_serializer(s)`` returns a copy with another default.
    """

    def __init__(
        self,
        serializer: SerializerLike | None = None,
        *,
        fresh_process: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.serializer = serializer
        self.fresh_process = fresh_process
        self.timeout = timeout

    def __repr__(self) -> str:
        return (
            f"RoundTrip(serializer={self.serializer!r}, fresh_process={self.fresh_process}, "
            f"timeout={self.timeout:g})"
        )

    def __call__(
        self,
        obj: Any,
        serializer: SerializerLike | None = None,
        *,
        fresh_process: bool | None = None,
        eq: Callable[[Any, Any], bool] | None = None,
        frames: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Round-trip ``obj`` (see :func:`assert_roundtrip`); return the copy."""
        __tracebackhide__ = True
        return assert_roundtrip(
            obj,
            serializer=self.serializer if serializer is None else serializer,
            fresh_process=self.fresh_process if fresh_process is None else fresh_process,
            eq=eq,
            frames=frames,
            timeout=self.timeout if timeout is None else timeout,
        )

    def with_serializer(self, serializer: SerializerLike | None) -> RoundTrip:
        """The same defaults with another serializer."""
        return RoundTrip(serializer, fresh_process=self.fresh_process, timeout=self.timeout)

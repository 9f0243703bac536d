"""Static pickle inspection: what a pickle would do, without unpickling it.

``inspect_file`` reads a raw pickle (protocols 0-5, pickle/cloudpickle/dill,
several stacked in one file) or a serdoctor envelope and simulates the C
unpickler's stack and memo with stand-in values, never importing, calling or
building anything the file names::

    file ─▶ _opcodes.Source ─▶ _Machine (stack + memo of stand-ins, no recursion)
                                 │  imports, calls, by-value code, findings,
                                 │  sizes, sketch lines
                                 ▼
                    _finish(): availability (find_spec + search-location walk,
                    importlib.metadata, known module moves), Python versions
                    of by-value code, load prediction  ─▶  InspectReport

Stand-ins: literals stay Python values (``str`` up to 512 characters, ``bytes``
up to 256); everything else is a :class:`_Node` (containers, large values,
globals, call results, by-value functions). Memory stays flat however large
the file: containers keep their first 32 children, only the largest values
keep links to their parents (for paths), and memo entries more than
``MEMO_WINDOW`` entries old are forgotten unless they matter later (globals,
references, by-value code, strings fetched again while recent) — a forgotten
entry fetched later is a stub, which can only make a verdict more cautious.

This module is the entry point (file handling, envelope header, error
classification); the work is done in private modules, each named after what
it holds (the report classes, limits such as ``MEMO_WINDOW`` and the severities
stay importable from here):

==========================  ===============================================
``_report``         report dataclasses and their JSON form
``machine._nodes``          stand-in values and the limits that bound them
``_tables``         dangerous/harmless callables, module moves
``_formats``        files that are not pickles (magic bytes)
``machine._state``          the machine's state: stack, memo, node bookkeeping
``machine._expr``           part ``r``: expressions for stand-ins, the sketch
``machine._calls``          part ``c``: call evaluation, attributes, BUILD
``machine._containers``     part ``k``: SETITEMS/APPENDS/ADDITEMS, literals
``machine._ops``            part ``o``: the slow path, one handler per opcode
``machine._sim``            ``_Machine``: holds the parts; the hot loop
``machine._special``        getattr chains, cloudpickle/dill/serdoctor helpers
``_byvalue``        by-value functions and classes described
``_code``           Python version of code objects, marshal reader
``_env``            availability here (never imports the target)
``_assemble``       the report from the machine; load prediction
``_render``         the terminal rendering and ``run_inspect``
==========================  ===============================================

Exit codes (``InspectReport.exit_code``): 0 nothing dangerous; 1 dangerous
findings (also when malformed after them); 2 malformed, not a pickle or
unreadable; 3 internal error.
"""

from __future__ import annotations

import gc
import io
import os
from collections.abc import Callable
from typing import Any, BinaryIO, Final

from serdoctor.diagnostics.inspect._assemble import _finish, _predict
from serdoctor.diagnostics.inspect._env import _Env, _vtuple
from serdoctor.diagnostics.inspect._formats import _sniff
from serdoctor.diagnostics.inspect._report import DANGEROUS as DANGEROUS
from serdoctor.diagnostics.inspect._report import INFO as INFO
from serdoctor.diagnostics.inspect._report import RUNNING_PYTHON as RUNNING_PYTHON
from serdoctor.diagnostics.inspect._report import (
    SCHEMA,
    SCHEMA_VERSION,
    Availability,
    ByValueCode,
    CallRecord,
    EnvelopeInfo,
    Finding,
    ImportInfo,
    InspectReport,
    LoadPrediction,
    PickleSummary,
    ValueInfo,
)
from serdoctor.diagnostics.inspect._report import WARNING as WARNING
from serdoctor.diagnostics.inspect.machine import _opcodes as op
from serdoctor.diagnostics.inspect.machine._nodes import BYTES_LIMIT as BYTES_LIMIT
from serdoctor.diagnostics.inspect.machine._nodes import KEEP as KEEP
from serdoctor.diagnostics.inspect.machine._nodes import KEEP_BUDGET as KEEP_BUDGET
from serdoctor.diagnostics.inspect.machine._nodes import MAX_BY_VALUE as MAX_BY_VALUE
from serdoctor.diagnostics.inspect.machine._nodes import (
    MAX_CALLS_PER_IMPORT as MAX_CALLS_PER_IMPORT,
)
from serdoctor.diagnostics.inspect.machine._nodes import MAX_FINDINGS as MAX_FINDINGS
from serdoctor.diagnostics.inspect.machine._nodes import MAX_PICKLES as MAX_PICKLES
from serdoctor.diagnostics.inspect.machine._nodes import MAX_SKETCH as MAX_SKETCH
from serdoctor.diagnostics.inspect.machine._nodes import MEMO_WINDOW as MEMO_WINDOW
from serdoctor.diagnostics.inspect.machine._nodes import STR_LIMIT as STR_LIMIT
from serdoctor.diagnostics.inspect.machine._nodes import TOP_N as TOP_N
from serdoctor.diagnostics.inspect.machine._opcodes import PickleFormatError, Source
from serdoctor.diagnostics.inspect.machine._sim import _Machine

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "Availability",
    "ByValueCode",
    "CallRecord",
    "EnvelopeInfo",
    "Finding",
    "ImportInfo",
    "InspectReport",
    "LoadPrediction",
    "PickleSummary",
    "ValueInfo",
    "inspect_bytes",
    "inspect_file",
    "inspect_stream",
]

_PICKLE_METHODS: Final = frozenset({"pickle", "cloudpickle", "dill"})


def _analyse(f: BinaryIO, report: InspectReport) -> None:
    """Read ``f`` into ``report``.

    Fill ``report`` from ``f``: envelope header or format sniffing, then every stacked
    pickle through the machine, then :func:`_finish` and :func:`_predict` (also after an
    error).
    """
    from serdoctor.serialize import _envelope

    size = op.file_size(f)
    report.size = size if report.size is None else report.size
    f.seek(0)
    head = f.read(16)
    f.seek(0)
    if not head:
        report.error_kind = "empty"
        report.hint = "the file is empty: there is no pickle in it"
        return
    start, end = 0, size
    buffers: list[int] | None = None
    if head.startswith(_envelope.MAGIC):
        report.format = "serdoctor-envelope"
        if not _read_envelope(f, report, size):
            return
        assert report.envelope is not None
        start = report.envelope.body_offset
        end = start + report.envelope.body_size
        buffers = list(report.envelope.buffers)
    else:
        what = _sniff(head)
        if what is not None:
            report.format = "not-a-pickle"
            report.error_kind = "not-a-pickle"
            report.hint = f"this is not a pickle but {what}"
            return
    src = Source(f, start, end)
    m = _Machine(src, buffers=buffers)
    if report.envelope is not None and report.envelope.extra.get("persistent"):
        m.s.envelope_persistent = True  # serdoctor.loads resolves its own persistent IDs
    env = _Env()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # stand-ins form no garbage cycles worth collecting mid-run; ~15% faster
    try:
        index = 0
        while True:
            begin = src.pos
            try:
                m.run_pickle(index)
            except PickleFormatError as exc:
                _classify_error(m, report, exc, index, begin, end)
                break
            index += 1
            if src.at_end():
                break
    finally:
        if gc_was_enabled:
            gc.enable()
        _finish(m, report, env)
        report.load = _predict(m, report)


def _classify_error(
    m: _Machine,
    report: InspectReport,
    exc: PickleFormatError,
    index: int,
    begin: int,
    end: int | None,
) -> None:
    """Record why pickle number ``index`` stopped.

    Record why pickle #``index`` (from byte ``begin``) stopped: trailing data after
    complete pickles, not a pickle at all, truncated, or malformed.
    """
    report.error = exc
    summary = m.s.summary
    if index > 0 and summary.opcodes <= 1:
        report.error_kind = "trailing-data"
        left = (end - begin) if end is not None else None
        report.hint = (
            f"pickle #{index} ended at byte {begin}; the "
            f"{left if left is not None else 'remaining'} bytes after "
            "it are not a pickle"
        )
        if m.s.pickles and m.s.pickles[-1] is summary:
            m.s.pickles.pop()
        m.s.pickle_count -= 1
    elif index == 0 and summary.opcodes <= 1:
        report.error_kind = "not-a-pickle"
        report.format = report.format if report.envelope else "not-a-pickle"
        report.hint = "the file does not start with a pickle opcode"
    elif "truncated" in exc.message:
        report.error_kind = "truncated"
    else:
        report.error_kind = "malformed"


def _read_envelope(f: BinaryIO, report: InspectReport, size: int | None) -> bool:
    """Decode the envelope header (JSON, never pickle) into ``report.envelope``."""
    from serdoctor.errors import DeserializationError
    from serdoctor.serialize import _envelope

    prefix = f.read(_envelope.PREFIX_SIZE)
    try:
        if len(prefix) < _envelope.PREFIX_SIZE:
            raise DeserializationError("serdoctor envelope is truncated inside its prefix")
        length = int.from_bytes(prefix[7:11], "big")
        if length > _envelope.MAX_HEADER:
            raise DeserializationError(
                f"serdoctor envelope header claims {length} bytes (more than the "
                f"{_envelope.MAX_HEADER} allowed): the file is damaged"
            )
        header, head_size = _envelope.read_head(prefix + f.read(length))
    except DeserializationError as exc:
        report.error = PickleFormatError(0, str(exc), "envelope")
        report.error_kind = "malformed-envelope"
        return False
    env = _Env()
    requirements = {module: env.check(module, "") for module in header.requires}
    report.envelope = EnvelopeInfo(header, head_size, requirements)
    expected = (
        head_size + header.body + sum(header.buffers) + (_envelope.TAG_SIZE if header.signed else 0)
    )
    if size is not None and size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        report.error = PickleFormatError(
            min(size, expected),
            f"serdoctor envelope is {what}: header describes {expected} bytes, the file has {size}",
            "envelope",
        )
        report.error_kind = "malformed-envelope"
        if size < head_size + header.body:
            return size > head_size
    if header.method not in _PICKLE_METHODS:
        report.hint = (
            f"method {header.method!r} is not one of serdoctor's pickle methods; "
            "its body is analysed as a pickle anyway"
        )
    for module, avail in requirements.items():
        sender = header.requires.get(module)
        if (
            avail.ok
            and sender
            and avail.version
            and _vtuple(sender)[:2] != _vtuple(avail.version)[:2]
        ):
            avail.detail = f"made with {module} {sender}; {avail.version} here"
    return True


def inspect_stream(f: BinaryIO, path: str | None = None) -> InspectReport:
    """Inspect an open binary file (seekable streams are read in chunks; others are buffered).

    Never raises for bad input: problems end up in the report
    (``report.error``/``report.internal_error``) and in ``report.exit_code``.
    """
    report = InspectReport(path=path, size=None)
    try:
        if not _seekable(f):
            f = io.BytesIO(f.read())
        _analyse(f, report)
    except Exception as exc:  # an internal error must never read as a verdict
        report.internal_error = f"{type(exc).__name__}: {exc}"
    return report


def _seekable(f: BinaryIO) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class _ProgressFile:
    """A binary file that reports how far it has been read (for a progress bar)."""

    def __init__(self, f: BinaryIO, report: Callable[[int], None], every: int = 1 << 20) -> None:
        self._f = f
        self._report = report
        self._every = every
        self._next = every

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        here = self._f.tell()
        if here >= self._next:
            self._next = here + self._every
            self._report(here)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def inspect_file(
    path: str | os.PathLike[str], *, progress: Callable[[int], None] | None = None
) -> InspectReport:
    """Inspect the pickle or serdoctor envelope at ``path`` without executing it.

    Streams the file (memory stays far below its size), imports nothing it
    names, and returns an :class:`InspectReport`; ``report.exit_code`` is 0
    (clean), 1 (dangerous), 2 (malformed, not a pickle, unreadable) or 3
    (internal error). Never raises for bad input. ``progress(bytes_read)`` is
    called about every MiB read.
    """
    text = os.fspath(path)
    try:
        f = open(text, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        report = InspectReport(path=text, size=None, format="unreadable")
        report.error_kind = "unreadable"
        report.hint = f"cannot read {text}: {exc.strerror or exc}"
        return report
    with f:
        stream: Any = f if progress is None else _ProgressFile(f, progress)
        return inspect_stream(stream, text)


def inspect_bytes(data: bytes | bytearray | memoryview) -> InspectReport:
    """Inspect pickle or envelope bytes already in memory (see :func:`inspect_file`)."""
    return inspect_stream(io.BytesIO(bytes(data)), None)

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

The module reads top to bottom: report dataclasses; stand-ins; knowledge
tables (dangerous targets, safe constructors, module moves, opcode tables of
Python 3.7-3.13); the machine (hot loop, then one method per rarer opcode,
then call evaluation); special callables (getattr, cloudpickle/dill/serdoctor
by-value helpers); by-value description and Python inference; availability;
paths; report assembly and the entry points.

Exit codes (``InspectReport.exit_code``): 0 nothing dangerous; 1 dangerous
findings (also when malformed after them); 2 malformed, not a pickle or
unreadable; 3 internal error.
"""

from __future__ import annotations

import ast
import functools
import gc
import heapq
import importlib.machinery
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final, Union

from serdoctor.diagnostics import _opcodes as op
from serdoctor.diagnostics._opcodes import PickleFormatError, Skipped, Source

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

SCHEMA: Final = "serdoctor-inspect"
SCHEMA_VERSION: Final = 1

RUNNING_PYTHON: Final = "{}.{}".format(*sys.version_info[:2])

STR_LIMIT: Final = 512  # longer strings are not decoded (they become large-value nodes)
BYTES_LIMIT: Final = 256
KEEP: Final = 32  # children kept per container (for rendering and by-value analysis)
KEEP_BUDGET: Final = 400_000  # after this many kept children, containers keep none
MEMO_WINDOW: Final = 8_192  # memo entries older than this are stubbed (see module doc)
TOP_N: Final = 10
MAX_CALLS_PER_IMPORT: Final = 5
MAX_FINDINGS: Final = 200
MAX_SKETCH: Final = 300
MAX_BY_VALUE: Final = 200
MAX_PICKLES: Final = 1000  # stacked pickles listed one by one (all are counted)

DANGEROUS: Final = "dangerous"
WARNING: Final = "warning"
INFO: Final = "info"

# --------------------------------------------------------------------------
# Report data
# --------------------------------------------------------------------------


@dataclass
class Availability:
    """Whether an import resolves here, found without importing it.

    ``status`` is ``available``, ``missing-module`` (the module or a parent is
    not installed), ``missing-submodule``, ``missing-name`` (the module's
    source defines no such name), ``main`` (looked up in the loading
    program's ``__main__``), ``unknown`` (e.g. an unregistered extension code).
    """

    status: str
    detail: str = ""
    distribution: str | None = None
    version: str | None = None
    stdlib: bool = False
    origin: str | None = None
    move: str | None = None

    @property
    def ok(self) -> bool:
        """True when loading would find the import here."""
        return self.status == "available"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see docs/inspect-schema.md)."""
        return {
            "status": self.status,
            "detail": self.detail,
            "distribution": self.distribution,
            "version": self.version,
            "stdlib": self.stdlib,
            "origin": self.origin,
            "known_move": self.move,
        }


@dataclass
class CallRecord:
    """One call made at load time: ``expression`` is how it reads in Python."""

    offset: int
    opcode: str
    expression: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"offset": self.offset, "opcode": self.opcode, "expression": self.expression}


@dataclass
class ImportInfo:
    """A global the pickle looks up (``module.name``), and how it is used."""

    module: str
    name: str
    offsets: list[int] = field(default_factory=list)
    via: list[str] = field(default_factory=list)
    loads: int = 0
    calls: int = 0
    call_records: list[CallRecord] = field(default_factory=list)
    original: str | None = None
    availability: Availability | None = None
    category: str | None = None
    fast: bool = field(default=False, repr=False, compare=False)

    @property
    def target(self) -> str:
        """``module.name`` (just ``module`` for module imports)."""
        return f"{self.module}.{self.name}" if self.name else self.module

    @property
    def use(self) -> str:
        """``called`` if loading calls it (REDUCE, NEWOBJ, INST, OBJ, BUILD), else
        ``referenced``."""
        return "called" if self.calls else "referenced"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "module": self.module,
            "name": self.name,
            "target": self.target,
            "offsets": list(self.offsets),
            "via": list(self.via),
            "loads": self.loads,
            "use": self.use,
            "calls": self.calls,
            "call_examples": [c.to_dict() for c in self.call_records],
            "python2_name": self.original,
            "category": self.category,
            "availability": self.availability.to_dict() if self.availability else None,
        }


@dataclass
class ByValueCode:
    """A function, class or code object whose code travels inside the pickle."""

    kind: str
    producer: str
    offset: int
    name: str | None = None
    qualname: str | None = None
    module: str | None = None
    filename: str | None = None
    firstlineno: int | None = None
    closure: list[str] = field(default_factory=list)
    globals: list[str] = field(default_factory=list)
    hidden_imports: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)
    python: list[str] = field(default_factory=list)
    python_basis: str = ""

    @property
    def matches_running_python(self) -> bool | None:
        """Whether this Python can run the code (``None``: unknown)."""
        if not self.python:
            return None
        return RUNNING_PYTHON in self.python

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "producer": self.producer,
            "offset": self.offset,
            "name": self.name,
            "qualname": self.qualname,
            "module": self.module,
            "filename": self.filename,
            "firstlineno": self.firstlineno,
            "closure": list(self.closure),
            "globals": list(self.globals),
            "hidden_imports": list(self.hidden_imports),
            "methods": list(self.methods),
            "bases": list(self.bases),
            "python": {
                "candidates": list(self.python),
                "basis": self.python_basis,
                "running": RUNNING_PYTHON,
                "matches_running": self.matches_running_python,
            },
        }


@dataclass
class Finding:
    """Something the reader should know; ``dangerous`` ones set exit code 1."""

    severity: str
    category: str
    message: str
    offset: int | None = None
    target: str | None = None
    expression: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "severity": self.severity,
            "category": self.category,
            "message": self.message,
            "offset": self.offset,
            "target": self.target,
            "expression": self.expression,
        }


@dataclass
class ValueInfo:
    """A value and where it sits: ``path`` like ``['payload']``, ``size`` in bytes."""

    path: str
    type: str
    size: int
    offset: int
    items: int | None = None
    approximate: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": self.path,
            "type": self.type,
            "size": self.size,
            "offset": self.offset,
            "items": self.items,
            "approximate": self.approximate,
        }


@dataclass
class PickleSummary:
    """One pickle of the file (files may hold several, one after another)."""

    index: int
    start: int
    end: int | None = None
    protocol: int = 0
    declared_protocol: int | None = None
    opcodes: int = 0
    frames: int = 0
    memo_entries: int = 0
    max_depth: int = 0
    out_of_band_buffers: int = 0
    persistent_ids: int = 0
    root: str | None = None
    complete: bool = False
    cycles: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "protocol": self.protocol,
            "declared_protocol": self.declared_protocol,
            "opcodes": self.opcodes,
            "frames": self.frames,
            "memo_entries": self.memo_entries,
            "max_depth": self.max_depth,
            "out_of_band_buffers": self.out_of_band_buffers,
            "persistent_ids": self.persistent_ids,
            "root": self.root,
            "complete": self.complete,
            "self_references": self.cycles,
        }


@dataclass
class EnvelopeInfo:
    """The JSON header of a serdoctor envelope, and what it means here."""

    method: str
    python: str
    implementation: str
    by_value: bool
    signed: bool
    requires: dict[str, str | None]
    libraries: dict[str, str]
    buffers: list[int]
    body_offset: int
    body_size: int
    serdoctor: str
    extra: dict[str, Any] = field(default_factory=dict)
    requirements: dict[str, Availability] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "method": self.method,
            "python": self.python,
            "implementation": self.implementation,
            "by_value": self.by_value,
            "signed": self.signed,
            "requires": dict(self.requires),
            "requirements_here": {k: v.to_dict() for k, v in self.requirements.items()},
            "libraries": dict(self.libraries),
            "buffers": list(self.buffers),
            "body_offset": self.body_offset,
            "body_size": self.body_size,
            "serdoctor": self.serdoctor,
            "extra": dict(self.extra),
        }


@dataclass
class LoadPrediction:
    """What loading the file here would take, and what would stop it."""

    loader: str
    call: str
    would_load: bool
    problems: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    main_names: list[str] = field(default_factory=list)
    missing_modules: list[str] = field(default_factory=list)
    buffers: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "loader": self.loader,
            "call": self.call,
            "would_load_here": self.would_load,
            "problems": list(self.problems),
            "needs": list(self.needs),
            "main_names": list(self.main_names),
            "missing_modules": list(self.missing_modules),
            "out_of_band_buffers": self.buffers,
        }


@dataclass
class InspectReport:
    """Everything ``ser-doctor inspect`` found. Build it with :func:`inspect_file`."""

    path: str | None
    size: int | None
    format: str = "pickle"
    producer: list[str] = field(default_factory=list)
    envelope: EnvelopeInfo | None = None
    pickles: list[PickleSummary] = field(default_factory=list)
    imports: list[ImportInfo] = field(default_factory=list)
    by_value: list[ByValueCode] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    largest: list[ValueInfo] = field(default_factory=list)
    containers: list[ValueInfo] = field(default_factory=list)
    load: LoadPrediction | None = None
    sketch: list[str] = field(default_factory=list)
    error: PickleFormatError | None = None
    error_kind: str | None = None
    internal_error: str | None = None
    hint: str | None = None
    truncated_lists: bool = False
    pickle_count: int = 0
    totals: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def dangerous(self) -> list[Finding]:
        """The dangerous findings."""
        return [f for f in self.findings if f.severity == DANGEROUS]

    @property
    def exit_code(self) -> int:
        """0 clean, 1 dangerous (even if malformed after), 2 malformed/not a pickle, 3 internal."""
        if self.internal_error is not None:
            return 3
        if self.dangerous:
            return 1
        if self.error is not None or self.error_kind is not None:
            return 2
        return 0

    @property
    def verdict(self) -> str:
        """``clean``, ``dangerous``, ``malformed`` or ``internal-error``."""
        return {0: "clean", 1: "dangerous", 2: "malformed", 3: "internal-error"}[self.exit_code]

    @property
    def max_depth(self) -> int:
        """Deepest container nesting over all pickles."""
        return self.totals.get("max_depth", max((p.max_depth for p in self.pickles), default=0))

    @property
    def memo_entries(self) -> int:
        """Memo entries over all pickles."""
        return self.totals.get("memo_entries", sum(p.memo_entries for p in self.pickles))

    @property
    def out_of_band_buffers(self) -> int:
        """Out-of-band buffers (``NEXT_BUFFER``) over all pickles."""
        return self.totals.get(
            "out_of_band_buffers", sum(p.out_of_band_buffers for p in self.pickles)
        )

    def to_dict(self, *, sketch: bool = True) -> dict[str, Any]:
        """The report in the versioned JSON schema (docs/inspect-schema.md)."""
        from serdoctor import __version__

        error: dict[str, Any] | None = None
        if self.error is not None:
            error = {
                "kind": self.error_kind or "malformed",
                "offset": self.error.offset,
                "opcode": self.error.opcode,
                "message": self.error.message,
            }
        elif self.error_kind is not None:
            error = {
                "kind": self.error_kind,
                "offset": None,
                "opcode": None,
                "message": self.hint or "",
            }
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "serdoctor_version": __version__,
            "python": sys.version.split()[0],
            "file": {"path": self.path, "size": self.size},
            "format": self.format,
            "producer": list(self.producer),
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "envelope": self.envelope.to_dict() if self.envelope else None,
            "pickle_count": max(self.pickle_count, len(self.pickles)),
            "pickles": [p.to_dict() for p in self.pickles],
            "imports": [i.to_dict() for i in self.imports],
            "by_value": [b.to_dict() for b in self.by_value],
            "findings": [f.to_dict() for f in self.findings],
            "values": {
                "largest": [v.to_dict() for v in self.largest],
                "largest_containers": [v.to_dict() for v in self.containers],
                "max_depth": self.max_depth,
                "memo_entries": self.memo_entries,
                "out_of_band_buffers": self.out_of_band_buffers,
            },
            "load": self.load.to_dict() if self.load else None,
            "sketch": list(self.sketch) if sketch else None,
            "error": error,
            "internal_error": self.internal_error,
            "hint": self.hint,
        }

    def to_json(self, *, sketch: bool = True, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(
            self.to_dict(sketch=sketch), indent=indent, ensure_ascii=False, default=str
        )


# --------------------------------------------------------------------------
# Stand-in values
# --------------------------------------------------------------------------

# Node kinds
K_DICT: Final = "dict"
K_LIST: Final = "list"
K_TUPLE: Final = "tuple"
K_SET: Final = "set"
K_FROZENSET: Final = "frozenset"
K_BLOB: Final = "blob"  # bytes/str/bytearray too large to keep
K_BUFFER: Final = "buffer"  # out-of-band buffer
K_GLOBAL: Final = "global"
K_REF: Final = "ref"  # something reached from a global (getattr, subimport, ...)
K_OBJ: Final = "obj"  # result of a call
K_FUNC: Final = "func"  # by-value function
K_CLASS: Final = "class"  # by-value class
K_CODE: Final = "code"  # code object
K_PERSID: Final = "persid"

# How a node hangs from its parent (for paths).
KT_NONE: Final = 0
KT_INDEX: Final = 1
KT_KEY: Final = 2
KT_ARGS: Final = 3
KT_STATE: Final = 4
KT_ROOT: Final = 5
KT_MEMBER: Final = 6
KT_KWARGS: Final = 7

F_KEEP: Final = 1  # never stub in the memo
F_ATTRS: Final = 2  # dict used as BUILD state: its keys are attributes
F_UNRESOLVED: Final = 4  # a global or reference whose target is not known statically
F_MODULE: Final = 8  # a reference to a module
F_EMPTY_CELL: Final = 16
F_CLOSED: Final = 32  # placed inside another value (no longer being built)
F_TRACKED: Final = 64  # a largest value or an ancestor of one: keeps its parent link

_BOX_KINDS: Final = frozenset({K_DICT, K_LIST, K_TUPLE, K_SET, K_FROZENSET, K_OBJ})
_SHARED_KINDS: Final = frozenset({K_GLOBAL, K_REF})


class _Node:
    """A stand-in for a value the unpickler would build."""

    __slots__ = (
        "count",
        "depth",
        "end",
        "flags",
        "info",
        "items",
        "key",
        "kind",
        "ktype",
        "label",
        "parent",
        "pos",
        "size",
        "var",
    )

    def __init__(self, kind: str, label: str, pos: int, items: list[Any] | None = None) -> None:
        self.kind = kind
        self.label = label
        self.pos = pos
        self.end = pos + 1
        self.items = items
        self.count = 0
        self.depth = 1
        self.flags = 0
        self.info: Any = None
        self.parent: _Node | None = None
        self.key: Any = None
        self.ktype = KT_NONE
        self.size = 0
        self.var: str | None = None

    def __repr__(self) -> str:  # debugging aid
        return f"<{self.kind} {self.label} @{self.pos}>"


class _Stub:
    """What an old memo entry becomes: its kind and type, nothing else."""

    __slots__ = ("kind", "label")

    def __init__(self, kind: str, label: str) -> None:
        self.kind = kind
        self.label = label


_OLD_STUB = _Stub("value", "value from far back in the memo")
_EMPTY: tuple[()] = ()


class _Call:
    """How a K_OBJ node was made (``states``: what BUILD gave it later)."""

    __slots__ = ("args", "callee", "kwargs", "opcode", "states", "target")

    def __init__(
        self, target: str | None, callee: Any, args: Any, kwargs: Any, opcode: str
    ) -> None:
        self.target = target
        self.callee = callee
        self.args = args
        self.kwargs = kwargs
        self.opcode = opcode
        self.states: list[Any] = []


@dataclass
class _ByValue:
    """By-value code seen in the stream (described at the end)."""

    kind: str
    producer: str
    node: _Node
    args: Any
    code: Any = None
    states: list[Any] = field(default_factory=list)


# --------------------------------------------------------------------------
# Knowledge: dangerous targets, helpers of cloudpickle and dill, moves
# --------------------------------------------------------------------------

_ALIASES: Final = {
    "posix": "os",
    "nt": "os",
    "posixpath": "os.path",
    "ntpath": "os.path",
    "__builtin__": "builtins",
    "_operator": "operator",
    "_functools": "functools",
    "_pickle": "pickle",
    "cPickle": "pickle",
    "_io": "io",
    "_socket": "socket",
    "_ctypes": "ctypes",
    "_posixsubprocess": "subprocess",
    "copy_reg": "copyreg",
    "_codecs": "codecs",
    "_sre": "re",
    "cloudpickle.cloudpickle_fast": "cloudpickle.cloudpickle",
    "dill.dill": "dill._dill",
    "_imp": "importlib",
    "imp": "importlib",
}

# module (exact, or parent of the target) -> (category, what it does); every callable counts
_DANGEROUS_MODULES: Final = {
    "subprocess": ("shell", "starts a process"),
    "pty": ("shell", "starts a process on a pseudo-terminal"),
    "commands": ("shell", "runs a shell command"),
    "popen2": ("shell", "runs a shell command"),
    "asyncio.subprocess": ("shell", "starts a process"),
    "multiprocessing": ("shell", "starts processes"),
    "importlib": ("import", "imports a module chosen by the pickle"),
    "pkgutil": ("import", "resolves or imports a module chosen by the pickle"),
    "zipimport": ("import", "imports code from an archive"),
    "runpy": ("exec", "runs a module or file as a script"),
    "code": ("exec", "runs Python source"),
    "codeop": ("exec", "compiles Python source"),
    "timeit": ("exec", "runs Python source"),
    "cProfile": ("exec", "runs Python source"),
    "profile": ("exec", "runs Python source"),
    "pdb": ("exec", "runs Python source under the debugger"),
    "bdb": ("exec", "runs Python source under the debugger"),
    "trace": ("exec", "runs Python source"),
    "doctest": ("exec", "runs Python source"),
    "ctypes": ("native", "calls native code"),
    "cffi": ("native", "calls native code"),
    "socket": ("network", "opens a network connection"),
    "urllib.request": ("network", "fetches a URL"),
    "http.client": ("network", "opens an HTTP connection"),
    "ftplib": ("network", "opens an FTP connection"),
    "smtplib": ("network", "opens an SMTP connection"),
    "telnetlib": ("network", "opens a telnet connection"),
    "requests": ("network", "makes an HTTP request"),
    "httpx": ("network", "makes an HTTP request"),
    "urllib3": ("network", "makes an HTTP request"),
    "webbrowser": ("network", "opens a browser"),
    "shutil": ("file", "copies, moves or deletes files"),
    "sys": ("interpreter", "changes the running interpreter"),
    "gc": ("interpreter", "reaches arbitrary live objects"),
    "signal": ("interpreter", "installs signal handlers"),
    "marshal": ("exec", "builds code objects from bytes"),
    "shelve": ("unpickle", "unpickles another file"),
}

_DANGEROUS_NAMES: Final = {
    "builtins.eval": ("exec", "evaluates a Python expression"),
    "builtins.exec": ("exec", "runs Python source"),
    "builtins.execfile": ("exec", "runs a Python file"),
    "builtins.compile": ("exec", "compiles Python source"),
    "builtins.__import__": ("import", "imports a module chosen by the pickle"),
    "builtins.breakpoint": ("exec", "starts the debugger"),
    "builtins.globals": ("exec", "reaches the loader's globals"),
    "builtins.locals": ("exec", "reaches the loader's locals"),
    "builtins.vars": ("exec", "reaches an object's namespace"),
    "builtins.input": ("interpreter", "waits for terminal input"),
    "builtins.open": ("file", "opens a file"),
    "builtins.exit": ("interpreter", "exits the loading process"),
    "builtins.quit": ("interpreter", "exits the loading process"),
    "builtins.help": ("interpreter", "starts the interactive help"),
    "io.open": ("file", "opens a file"),
    "io.open_code": ("file", "opens a file"),
    "io.FileIO": ("file", "opens a file"),
    "codecs.open": ("file", "opens a file"),
    "fileinput.input": ("file", "opens files"),
    "fileinput.FileInput": ("file", "opens files"),
    "tempfile.mkstemp": ("file", "creates a file"),
    "tempfile.mkdtemp": ("file", "creates a directory"),
    "os.system": ("shell", "runs a shell command"),
    "os.popen": ("shell", "runs a shell command"),
    "os.startfile": ("shell", "opens a file with its application"),
    "os.fork": ("shell", "forks the loading process"),
    "os.forkpty": ("shell", "forks the loading process"),
    "os.kill": ("shell", "sends a signal to a process"),
    "os.killpg": ("shell", "sends a signal to a process group"),
    "os._exit": ("interpreter", "exits the loading process"),
    "os.abort": ("interpreter", "aborts the loading process"),
    "os.remove": ("file", "deletes a file"),
    "os.unlink": ("file", "deletes a file"),
    "os.rmdir": ("file", "deletes a directory"),
    "os.removedirs": ("file", "deletes directories"),
    "os.rename": ("file", "renames a file"),
    "os.renames": ("file", "renames files"),
    "os.replace": ("file", "replaces a file"),
    "os.truncate": ("file", "truncates a file"),
    "os.ftruncate": ("file", "truncates a file"),
    "os.chmod": ("file", "changes file permissions"),
    "os.lchmod": ("file", "changes file permissions"),
    "os.chown": ("file", "changes file ownership"),
    "os.lchown": ("file", "changes file ownership"),
    "os.symlink": ("file", "creates a link"),
    "os.link": ("file", "creates a link"),
    "os.mkdir": ("file", "creates a directory"),
    "os.makedirs": ("file", "creates directories"),
    "os.mkfifo": ("file", "creates a pipe"),
    "os.mknod": ("file", "creates a device node"),
    "os.open": ("file", "opens a file"),
    "os.fdopen": ("file", "opens a file descriptor"),
    "os.write": ("file", "writes to a file descriptor"),
    "os.pwrite": ("file", "writes to a file descriptor"),
    "os.dup2": ("file", "redirects a file descriptor"),
    "os.close": ("file", "closes a file descriptor"),
    "os.closerange": ("file", "closes file descriptors"),
    "os.putenv": ("interpreter", "changes the environment"),
    "os.unsetenv": ("interpreter", "changes the environment"),
    "os.chdir": ("interpreter", "changes the working directory"),
    "os.chroot": ("interpreter", "changes the root directory"),
    "os.umask": ("interpreter", "changes the file mode mask"),
    "os.setuid": ("interpreter", "changes the user"),
    "os.setgid": ("interpreter", "changes the group"),
    "os.seteuid": ("interpreter", "changes the user"),
    "os.setegid": ("interpreter", "changes the group"),
    "os.add_dll_directory": ("native", "changes where native libraries load from"),
    "platform.popen": ("shell", "runs a shell command"),
    "asyncio.create_subprocess_exec": ("shell", "starts a process"),
    "asyncio.create_subprocess_shell": ("shell", "runs a shell command"),
    "pickle.loads": ("unpickle", "unpickles bytes hidden inside this pickle"),
    "pickle.load": ("unpickle", "unpickles another file"),
    "pickle.Unpickler": ("unpickle", "unpickles another stream"),
    "pickle._loads": ("unpickle", "unpickles bytes hidden inside this pickle"),
    "pickle._load": ("unpickle", "unpickles another file"),
    "pickle._Unpickler": ("unpickle", "unpickles another stream"),
    "dill.loads": ("unpickle", "unpickles bytes hidden inside this pickle"),
    "dill.load": ("unpickle", "unpickles another file"),
    "dill._dill.loads": ("unpickle", "unpickles bytes hidden inside this pickle"),
    "dill._dill.load": ("unpickle", "unpickles another file"),
    "dill._dill._eval_repr": ("exec", "evaluates a Python expression"),
    "dill._dill._unmarshal": ("exec", "builds code objects from bytes"),
    "dill._dill._create_filehandle": ("file", "opens (and may write) a file named in the pickle"),
    "cloudpickle.loads": ("unpickle", "unpickles bytes hidden inside this pickle"),
    "cloudpickle.load": ("unpickle", "unpickles another file"),
    "joblib.load": ("unpickle", "unpickles another file"),
    "numpy.load": ("unpickle", "loads a file that may hold pickles"),
    "numpy.lib.npyio.load": ("unpickle", "loads a file that may hold pickles"),
    "pandas.read_pickle": ("unpickle", "unpickles another file"),
    "pandas.eval": ("exec", "evaluates an expression"),
    "torch.load": ("unpickle", "unpickles another file"),
    "yaml.load": ("unpickle", "loads YAML that may build objects"),
    "yaml.unsafe_load": ("unpickle", "loads YAML that builds objects"),
    "jsonpickle.decode": ("unpickle", "builds objects from JSON"),
    "operator.call": ("exec", "calls its argument"),
}

# Names that, reached through getattr chains on anything, mean code execution.
_SUSPICIOUS_ATTRS: Final = frozenset(
    {
        "system",
        "popen",
        "exec",
        "eval",
        "execfile",
        "compile",
        "__import__",
        "import_module",
        "spawn",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnlpe",
        "spawnv",
        "spawnve",
        "spawnvp",
        "spawnvpe",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "posix_spawn",
        "posix_spawnp",
        "Popen",
        "check_output",
        "check_call",
        "getoutput",
        "getstatusoutput",
        "load_module",
        "exec_module",
        "run_path",
        "run_module",
        "loads",
        "unlink",
        "rmtree",
        "remove",
        "rmdir",
        "write_text",
        "write_bytes",
        "touch",
        "__builtins__",
        "__globals__",
        "__subclasses__",
        "__code__",
        "__getattribute__",
        "__loader__",
        "__spec__",
        "f_globals",
        "f_locals",
        "f_builtins",
        "gi_frame",
        "tb_frame",
        "func_globals",
        "__reduce_ex__",
        "__reduce__",
        "__setattr__",
        "__delattr__",
    }
)

# Attributes whose mere lookup through getattr reaches interpreter internals.
_INTERNAL_ATTRS: Final = frozenset(
    {
        "__builtins__",
        "__globals__",
        "__subclasses__",
        "__code__",
        "__getattribute__",
        "__loader__",
        "__spec__",
        "f_globals",
        "f_locals",
        "f_builtins",
        "gi_frame",
        "tb_frame",
        "func_globals",
        "__import__",
        "__dict__",
        "__closure__",
        "__mro__",
        "__bases__",
    }
)

# Known-harmless constructors and helpers (calls to them are not even noted).
_SAFE_PREFIXES: Final = (
    "builtins.set",
    "builtins.frozenset",
    "builtins.list",
    "builtins.dict",
    "builtins.tuple",
    "builtins.bytearray",
    "builtins.bytes",
    "builtins.complex",
    "builtins.int",
    "builtins.float",
    "builtins.str",
    "builtins.object",
    "builtins.slice",
    "builtins.range",
    "builtins.bool",
    "builtins.type",
    "builtins.memoryview",
    "builtins.Ellipsis",
    "builtins.NotImplemented",
    "builtins.property",
    "builtins.staticmethod",
    "builtins.classmethod",
    "builtins.super",
    "builtins.reversed",
    "builtins.enumerate",
    "copyreg.",
    "collections.",
    "datetime.",
    "decimal.",
    "fractions.",
    "uuid.",
    "pathlib.",
    "ipaddress.",
    "re.",
    "array.",
    "codecs.encode",
    "codecs.decode",
    "functools.partial",
    "numpy.",
    "pandas.",
    "zoneinfo.",
    "enum.",
    "types.SimpleNamespace",
    "types.MappingProxyType",
    "types.CodeType",
    "types.FunctionType",
    "types.CellType",
    "types.ModuleType",
    "types.MethodType",
    "types.new_class",
    "operator.attrgetter",
    "operator.itemgetter",
    "operator.methodcaller",
    "operator.getitem",
    "builtins.getattr",
    "cloudpickle.cloudpickle.",
    "dill._dill.",
    "_pickle.PickleBuffer",
    "pickle.PickleBuffer",
    "typing.",
    "dataclasses.",
    "string.",
    "email.",
    "calendar.",
    "time.struct_time",
    "os.stat_result",
    "os.terminal_size",
    "os.times_result",
    "os.uname_result",
    "sqlite3.Row",
    "argparse.Namespace",
    "logging.getLogger",
    "warnings.",
    "builtins.NoneType",
    "builtins.map",
    "builtins.filter",
    "builtins.zip",
    "itertools.",
    "serdoctor.",
)

_CLOUDPICKLE: Final = "cloudpickle.cloudpickle."
_SERDOCTOR_CODE: Final = "serdoctor.serialize._code."
_DILL: Final = "dill._dill."

# types module names reachable through cloudpickle._builtin_type / dill._load_type
_DILL_TYPE_NAMES: Final = {
    "CodeType": "types.CodeType",
    "code": "types.CodeType",
    "FunctionType": "types.FunctionType",
    "function": "types.FunctionType",
    "CellType": "types.CellType",
    "cell": "types.CellType",
    "ModuleType": "types.ModuleType",
    "module": "types.ModuleType",
    "MethodType": "types.MethodType",
    "type": "builtins.type",
    "object": "builtins.object",
    "ClassType": "builtins.type",
    "TypeType": "builtins.type",
}

# (module prefix, distribution, required version range as (min, max-exclusive), message)
_KNOWN_MOVES: Final = (
    (
        "numpy._core",
        "numpy",
        ((2, 0), None),
        "numpy._core exists from numpy 2.0 (pickles written with numpy >= 2 name it); "
        "upgrade numpy to >= 2 here, or re-save the data with numpy < 2",
    ),
    (
        "numpy.core",
        "numpy",
        (None, None),
        "numpy.core is a deprecated alias of numpy._core in numpy >= 2 (loads with a warning)",
    ),
    (
        "pandas.core.indexes.numeric",
        "pandas",
        (None, (2, 0)),
        "pandas.core.indexes.numeric (Int64Index, Float64Index) was removed in pandas 2.0; "
        "load with pandas < 2 and re-save",
    ),
    (
        "pathlib._local",
        None,
        ((3, 13), None),
        "pathlib._local exists from Python 3.13; the pickle was written by Python >= 3.13",
    ),
    (
        "sklearn.externals.joblib",
        "scikit-learn",
        (None, (0, 23)),
        "sklearn.externals.joblib was removed in scikit-learn 0.23",
    ),
    (
        "dill.dill",
        "dill",
        (None, (0, 3, 6)),
        "dill.dill was renamed dill._dill in dill 0.3.6; load with an older dill",
    ),
)

_PICKLE_METHODS: Final = frozenset({"pickle", "cloudpickle", "dill"})

# Bytecode layout per Python minor: for each opcode byte, '.' when undefined,
# else chr(48 + number of inline cache entries). Generated from each
# interpreter's ``opcode`` module (3.7-3.13).
_BYTECODE: Final = {
    "3.7": ".00000...0000..000.00.00000000....................000..000.000000000000000.0000000"
    "00000000000000000.00000000000000000..0000.000...0000.0000..000000000000000000.00.."
    "..................................................................................."
    ".........",
    "3.8": ".000000..0000..000.00.00000000....................00000000.000000000000000.00000.00"
    "0000000000000000.00000000000000000.....0.000...0000.0000..000000000000000000.0000."
    "..................................................................................."
    ".........",
    "3.9": ".000000..0000..000.00.00000000..................00000.0000.000000000000000000000..0"
    "00000.0000000000.0000000000000000000..00.000...0000.0000..00000000.....0000..00000"
    "0.................................................................................."
    ".........",
    "3.10": ".000000..0000..000.00.0000000000000..............0000.0000.000000000000000000000.."
    "000000.0000000000000000000000000000000.00.000..00000.0000..00000000...0.0000..0000"
    "00................................................................................."
    "..........",
    "3.11": "000......0000..0.........4....0000.000...........000000.....10......0000..00......0"
    "000000000100400000000004200000.0050000.10000.0000000000000.0.000000.00..000..:.000"
    "01....400000......................................................................."
    "..........",
    "3.12": "000000...0.00..0.0.......100..0000.000...........0000000....10......00.0..00......."
    "0.0.0.0001104000000000091000...0040000011000000000000000001000000.0000..000....000"
    "0.....300000......................................................................."
    "..........",
    "3.13": "000.010000000000000000000000000000000001300001000000030000110000000000.01000010000"
    "9000000004010001111000100040000000010..............................0..............."
    "..................................................................................."
    "..........",
}
# Code-object constructor arity -> Pythons whose CodeType takes that many arguments.
_CODE_ARITY: Final = {
    15: ("3.7",),
    16: ("3.8", "3.9", "3.10"),
    18: ("3.11", "3.12", "3.13"),
}
_RESUME: Final = {"3.11": 151, "3.12": 151, "3.13": 149}
_PRE_RESUME: Final = {  # opcodes that may precede RESUME: MAKE_CELL, COPY_FREE_VARS, ...
    "3.11": {135, 149, 75, 1, 9},
    "3.12": {135, 149, 75, 1, 9},
    "3.13": {94, 62, 35, 32, 30},
}


@functools.lru_cache(maxsize=8192)
def _normalize(target: str) -> str:
    """Map C-accelerator and Python 2 module names to the public ones."""
    for alias, real in _ALIASES.items():
        if target == alias or target.startswith(alias + "."):
            return real + target[len(alias) :]
    return target


@functools.lru_cache(maxsize=8192)
def _danger(target: str) -> tuple[str, str] | None:
    """``(category, what it does)`` when calling ``target`` is dangerous.

    A dotted target is also checked from each later part on, so re-exports and
    attribute chains (``os.path.os.system``, ``mylib.subprocess.run``) are caught.
    """
    parts = _normalize(target).split(".")
    hit = _danger_exact(parts, _DANGEROUS_MODULES)
    for start in range(1, len(parts) - 1):
        if hit is not None:
            break
        # inside a chain, only names that are unmistakable (``code``, ``trace`` or
        # ``signal`` are common names of harmless submodules)
        hit = _danger_exact(parts[start:], _UNMISTAKABLE_MODULES)
    return hit


_UNMISTAKABLE_MODULES: Final = {
    name: _DANGEROUS_MODULES[name]
    for name in ("subprocess", "pty", "runpy", "importlib", "pkgutil", "ctypes", "marshal")
}

_HARMLESS_IN_DANGEROUS_MODULES: Final = {
    "subprocess": frozenset(
        {
            "CompletedProcess",
            "CalledProcessError",
            "TimeoutExpired",
            "SubprocessError",
            "PIPE",
            "STDOUT",
            "DEVNULL",
        }
    ),
    "sys": frozenset(
        {
            "version_info",
            "flags",
            "float_info",
            "int_info",
            "hash_info",
            "thread_info",
            "getdefaultencoding",
        }
    ),
    "socket": frozenset({"AddressFamily", "SocketKind", "gaierror", "timeout", "herror"}),
}


def _danger_exact(parts: list[str], modules: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """Danger of exactly ``parts`` (no suffix search), with ``modules`` as dangerous."""
    name = ".".join(parts)
    hit = _DANGEROUS_NAMES.get(_normalize(name))
    if hit is not None:
        return hit
    for cut in range(len(parts) - 1, 0, -1):
        module = _normalize(".".join(parts[:cut]))
        hit = modules.get(module)
        if hit is not None:
            if parts[cut] in _HARMLESS_IN_DANGEROUS_MODULES.get(module, ()):
                return None
            return hit
    if (
        _normalize(parts[0]) == "os"
        and len(parts) == 2
        and parts[1].startswith(("exec", "spawn", "posix_spawn"))
    ):
        return ("shell", "runs a program")
    return None


@functools.lru_cache(maxsize=8192)
def _is_safe(target: str) -> bool:
    norm = _normalize(target)
    module, _, name = norm.rpartition(".")
    if module == "builtins" and name[:1].isupper():  # exceptions and warnings
        return True
    return any(norm == p.rstrip(".") or norm.startswith(p) for p in _SAFE_PREFIXES)


def _fmt_size(n: int) -> str:
    """``50.0 MiB`` style sizes."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


# --------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------


class _Malformed(Exception):
    """Internal: the stream is invalid at this point (converted to PickleFormatError)."""


class _Machine:
    """Simulates the C unpickler over stand-in values (never builds real objects)."""

    def __init__(self, src: Source, *, buffers: list[int] | None = None) -> None:
        self.src = src
        self.imports: dict[tuple[str, str], ImportInfo] = {}
        self.import_nodes: dict[tuple[str, str], _Node] = {}
        self.findings: list[Finding] = []
        self.finding_keys: set[tuple[str, int | None, str | None]] = set()
        self.by_value: list[_ByValue] = []
        self.sketch: list[str] = []
        self.sketch_full = False
        self.sketch_names: dict[str, str] = {}
        self.sketch_imports: list[str] = []
        self.var_count = 0
        self.kept = 0
        self.leaves: list[tuple[int, int, _Node]] = []
        self.boxes: list[tuple[int, int, _Node]] = []
        self.seq = 0
        self.pickles: list[PickleSummary] = []
        self.buffer_sizes = buffers
        self.buffer_index = 0
        self.persids = 0
        self.envelope_persistent = False
        self.nonascii_strings = False
        self.ext_codes: list[int] = []
        self.main_names: set[str] = set()
        self.dill_main = False
        self.pickle_count = 0
        self.totals = {"max_depth": 0, "memo_entries": 0, "out_of_band_buffers": 0, "opcodes": 0}
        self.proto = 0
        self.max_proto = 0
        # per-pickle state (reset by run_pickle)
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: list[Any] = []  # entries memo_base.. (the recent ones)
        self.memo_base = 0
        self.old_kept: dict[int, Any] = {}
        self.sparse: dict[int, Any] = {}
        self.pinned: set[int] = set()
        self.summary = PickleSummary(0, 0)

    # -- findings, imports, sketch -----------------------------------------

    def finding(
        self,
        severity: str,
        category: str,
        message: str,
        offset: int | None,
        target: str | None = None,
        expression: _Expr | None = None,
    ) -> None:
        key = (category, offset, target)
        if key in self.finding_keys:
            return
        self.finding_keys.add(key)
        if len(self.findings) >= MAX_FINDINGS and severity != DANGEROUS:
            return
        if callable(expression):
            expression = expression()
        self.findings.append(Finding(severity, category, message, offset, target, expression))

    def import_global(self, module: str, name: str, pos: int, via: str) -> _Node:
        """Record a global lookup and return its (shared) stand-in."""
        original = None
        if self.proto < 3:
            mapped = _compat(module, name)
            if mapped != (module, name):
                original = f"{module}.{name}"
                module, name = mapped
        key = (module, name)
        info = self.imports.get(key)
        if info is None:
            info = ImportInfo(module, name, original=original)
            self.imports[key] = info
            node = _Node(K_GLOBAL, info.target, pos)
            node.flags = F_KEEP
            node.info = info
            self.import_nodes[key] = node
            if module == "__main__":
                self.main_names.add(name)
            if module in ("__builtin__", "__main__") and name == "__main__":
                self.dill_main = True
            danger = _danger(info.target)
            info.category = danger[0] if danger else ("known" if _is_safe(info.target) else None)
            norm = _normalize(info.target)
            info.fast = (
                info.category == "known" and norm not in _SPECIAL and norm not in _HIGHER_ORDER
            )
        info.loads += 1
        if len(info.offsets) < 50:
            info.offsets.append(pos)
        if via not in info.via:
            info.via.append(via)
        return self.import_nodes[key]

    def sketch_line(self, line: str) -> None:
        if len(self.sketch) < MAX_SKETCH:
            self.sketch.append(line)
        else:
            self.sketch_full = True

    def short(self, target: str) -> str:
        """Sketch name for ``target`` (adds a ``from m import n`` line once)."""
        name = self.sketch_names.get(target)
        if name is not None:
            return name
        module, _, attr = target.rpartition(".")
        base = attr or target
        if not module:
            self.sketch_imports.append(f"import {target}")
            self.sketch_names[target] = target
            return target
        local = base.split(".")[-1] if base.isidentifier() else "_obj"
        used = set(self.sketch_names.values())
        candidate, k = local, 2
        while candidate in used:
            candidate, k = f"{local}_{k}", k + 1
        alias = "" if candidate == base else f" as {candidate}"
        self.sketch_imports.append(f"from {module} import {base}{alias}")
        self.sketch_names[target] = candidate
        return candidate

    # -- nodes ----------------------------------------------------------------

    def container(self, kind: str, pos: int) -> _Node:
        if self.kept < KEEP_BUDGET:
            return _Node(kind, kind, pos, [])
        return _Node(kind, kind, pos, None)

    def leaf(self, skipped: Skipped, label: str, pos: int) -> _Node:
        node = _Node(K_BLOB, label, pos)
        node.size = skipped.length
        node.info = skipped
        self.track_leaf(node)
        return node

    def track_leaf(self, node: _Node) -> None:
        self.seq += 1
        if len(self.leaves) < TOP_N:
            heapq.heappush(self.leaves, (node.size, self.seq, node))
        elif node.size > self.leaves[0][0]:
            heapq.heapreplace(self.leaves, (node.size, self.seq, node))
        else:
            return
        node.flags |= F_TRACKED

    def track_box(self, node: _Node) -> None:
        size = node.end - node.pos
        node.size = size
        if size < 1024:
            return
        self.seq += 1
        if len(self.boxes) < TOP_N:
            heapq.heappush(self.boxes, (size, self.seq, node))
        elif size > self.boxes[0][0]:
            heapq.heapreplace(self.boxes, (size, self.seq, node))
        else:
            return
        node.flags |= F_TRACKED

    def attach(self, parent: _Node, child: _Node, key: Any, ktype: int) -> None:
        """Record that ``child`` now lives inside ``parent`` (first placement wins).

        Only tracked values (the largest ones and their ancestors) keep a link
        to their parent: links for every value would form cycles with the
        parents' kept children and hold memory until a garbage collection.
        """
        flags = child.flags
        if not flags & F_CLOSED and child is not parent and child.kind not in _SHARED_KINDS:
            child.flags = flags = flags | F_CLOSED
            if child.end - child.pos >= 1024 and child.kind in _BOX_KINDS:
                self.track_box(child)
                flags = child.flags
            if flags & F_TRACKED:
                child.parent = parent
                child.key = key
                child.ktype = ktype
                parent.flags |= F_TRACKED
        if child.depth >= parent.depth:
            parent.depth = child.depth + 1

    def keep_items(self, node: _Node, values: list[Any], limit: int = KEEP) -> None:
        items = node.items
        if items is not None:
            room = limit - len(items)
            if room > 0:
                add = values[:room]
                items.extend(add)
                self.kept += len(add)

    # -- errors ---------------------------------------------------------------

    def underflow(self, pos: int, name: str) -> PickleFormatError:
        return PickleFormatError(pos, "unpickling stack underflow", name)

    def pop_mark(self, pos: int, name: str) -> int:
        if not self.marks:
            raise PickleFormatError(pos, "could not find MARK", name)
        return self.marks.pop()

    def fence(self) -> int:
        return self.marks[-1] if self.marks else 0

    def pop(self, pos: int, name: str) -> Any:
        if len(self.stack) <= self.fence():
            raise self.underflow(pos, name)
        return self.stack.pop()

    # -- the loop ------------------------------------------------------------

    def run_pickle(self, index: int) -> PickleSummary:
        """Simulate one pickle from the source's cursor through its STOP."""
        src = self.src
        self.stack = []
        self.marks = []
        self.memo = []
        self.memo_base = 0
        self.old_kept = {}
        self.sparse = {}
        self.pinned = set()
        self.proto = 0
        self.max_proto = 0
        summary = PickleSummary(index, src.pos)
        self.summary = summary
        self.pickle_count += 1
        if len(self.pickles) < MAX_PICKLES:  # the rest only count in the totals
            self.pickles.append(summary)
        try:
            self._loop(summary)
        finally:
            summary.memo_entries = self.memo_base + len(self.memo) + len(self.sparse)
            summary.protocol = max(self.max_proto, summary.declared_protocol or 0)
            totals = self.totals
            totals["max_depth"] = max(totals["max_depth"], summary.max_depth)
            totals["memo_entries"] += summary.memo_entries
            totals["out_of_band_buffers"] += summary.out_of_band_buffers
            totals["opcodes"] += summary.opcodes
        summary.end = src.pos
        summary.complete = True
        return summary

    def _loop(self, summary: PickleSummary) -> None:
        """Run opcodes until STOP: frequent ones inline, the rest through :meth:`_slow`."""
        src = self.src
        stack = self.stack
        push = stack.append
        marks = self.marks
        memo = self.memo
        memo_append = memo.append
        sparse = self.sparse
        pinned = self.pinned
        pin = pinned.add
        memo_base = self.memo_base
        old_kept = self.old_kept
        spill_at = 2 * MEMO_WINDOW
        Node = _Node
        kd = K_DICT
        kl = K_LIST
        unpack_f8 = _unpack_f8
        unpack_i4 = _unpack_i4
        unpack_u4 = _unpack_u4
        nops = 0
        while True:
            buf = src.buf
            i = src.i
            base = src.base
            n = len(buf)
            safe = n - 32
            fence = marks[-1] if marks else 0
            room = spill_at - len(memo)  # appends left before the memo spills
            try:
                while True:
                    if i > safe:
                        src.i = i
                        src.fill(32)
                        buf = src.buf
                        i = src.i
                        base = src.base
                        n = len(buf)
                        safe = n - 32
                        if i > safe:
                            if i >= n:
                                if nops == 0 and summary.opcodes == 0:
                                    raise PickleFormatError(base + i, "no pickle data here")
                                raise PickleFormatError(
                                    base + i, "pickle data was truncated: it ends before STOP"
                                )
                            code = buf[i]
                            nops += 1
                            src.i = i + 1
                            if self._slow(code, base + i):
                                return
                            buf = src.buf
                            i = src.i
                            base = src.base
                            n = len(buf)
                            safe = n - 32
                            fence = marks[-1] if marks else 0
                            memo_base = self.memo_base
                            room = spill_at - len(memo)
                            continue
                    code = buf[i]
                    nops += 1
                    if code == 0x68:  # BINGET
                        idx = buf[i + 1]
                        if idx >= memo_base:
                            v = memo[idx - memo_base]
                            if type(v) is str:
                                pin(idx)
                            elif (
                                type(v) is Node and not v.flags & F_CLOSED and v.kind in _BOX_KINDS
                            ):
                                summary.cycles += 1  # a value fetched while still being built
                        else:
                            v = old_kept.get(idx, _OLD_STUB)
                        push(v)
                        i += 2
                    elif code == 0x8C:  # SHORT_BINUNICODE
                        e = i + 2 + buf[i + 1]
                        if e > n:
                            src.i = i + 1
                            self._slow(code, base + i)
                            buf = src.buf
                            i = src.i
                            base = src.base
                            n = len(buf)
                            safe = n - 32
                            continue
                        v = buf[i + 2 : e].decode("utf-8", "surrogatepass")
                        push(v)
                        i = e
                        if e < n and buf[e] == 0x94 and not sparse:  # MEMOIZE: fold it
                            memo_append(v)
                            nops += 1
                            i += 1
                            room -= 1
                            if not room:
                                self.spill()
                                memo_base = self.memo_base
                                room = spill_at - len(memo)
                    elif code == 0x4B:  # BININT1
                        push(buf[i + 1])
                        i += 2
                    elif code == 0x28:  # MARK
                        fence = len(stack)
                        marks.append(fence)
                        i += 1
                    elif code == 0x75:  # SETITEMS
                        if not marks:
                            raise PickleFormatError(base + i, "could not find MARK", "SETITEMS")
                        k = marks.pop()
                        fence = marks[-1] if marks else 0
                        if k <= 0:
                            raise self.underflow(base + i, "SETITEMS")
                        items = stack[k:]
                        del stack[k:]
                        if len(items) & 1:
                            raise PickleFormatError(
                                base + i, "odd number of items for SETITEMS", "SETITEMS"
                            )
                        self.setitems(stack[-1], items, base + i)
                        i += 1
                    elif code == 0x7D:  # EMPTY_DICT
                        v = Node(kd, kd, base + i, [] if self.kept < KEEP_BUDGET else None)
                        push(v)
                        i += 1
                        if buf[i] == 0x94 and not sparse:  # MEMOIZE right after: fold it
                            memo_append(v)
                            nops += 1
                            i += 1
                            room -= 1
                            if not room:
                                self.spill()
                                memo_base = self.memo_base
                                room = spill_at - len(memo)
                            if buf[i] == 0x28:  # and MARK after that
                                fence = len(stack)
                                marks.append(fence)
                                nops += 1
                                i += 1
                    elif code == 0x47:  # BINFLOAT
                        push(unpack_f8(buf, i + 1)[0])
                        i += 9
                    elif code == 0x65:  # APPENDS
                        if not marks:
                            raise PickleFormatError(base + i, "could not find MARK", "APPENDS")
                        k = marks.pop()
                        fence = marks[-1] if marks else 0
                        if k <= 0:
                            raise self.underflow(base + i, "APPENDS")
                        items = stack[k:]
                        del stack[k:]
                        d = stack[-1]
                        if type(d) is Node and d.kind is kl and Node not in map(type, items):
                            d.end = base + i + 1
                            d.count += len(items)
                            kept = d.items
                            if kept is not None and len(kept) < KEEP:
                                add = items[: KEEP - len(kept)]
                                kept.extend(add)
                                self.kept += len(add)
                            if d.depth < 2 and tuple in map(type, items):
                                d.depth = 2
                        else:
                            self.appends(d, items, base + i)
                        i += 1
                    elif code == 0x5D:  # EMPTY_LIST
                        v = Node(kl, kl, base + i, [] if self.kept < KEEP_BUDGET else None)
                        push(v)
                        i += 1
                        if buf[i] == 0x94 and not sparse:  # MEMOIZE right after: fold it
                            memo_append(v)
                            nops += 1
                            i += 1
                            room -= 1
                            if not room:
                                self.spill()
                                memo_base = self.memo_base
                                room = spill_at - len(memo)
                            if buf[i] == 0x28:  # and MARK after that
                                fence = len(stack)
                                marks.append(fence)
                                nops += 1
                                i += 1
                    elif code == 0x94:  # MEMOIZE
                        if len(stack) <= fence:
                            raise self.underflow(base + i, "MEMOIZE")
                        if sparse:
                            self.memo_put(memo_base + len(memo) + len(sparse), stack[-1])
                        else:
                            memo_append(stack[-1])
                            room -= 1
                            if not room:
                                self.spill()
                                memo_base = self.memo_base
                                room = spill_at - len(memo)
                        i += 1
                    elif code == 0x4A:  # BININT
                        push(unpack_i4(buf, i + 1)[0])
                        i += 5
                    elif code == 0x4D:  # BININT2
                        push(buf[i + 1] | (buf[i + 2] << 8))
                        i += 3
                    elif 0x85 <= code <= 0x87:  # TUPLE1/2/3
                        k = len(stack) - code + 0x84
                        if k < fence:
                            raise self.underflow(base + i, op.OPCODE_NAMES[code] or "TUPLE")
                        items = stack[k:]
                        del stack[k:]
                        v = self.tuple_of(items, base + i)
                        push(v)
                        i += 1
                        if buf[i] == 0x94 and not sparse:  # MEMOIZE right after: fold it
                            memo_append(v)
                            nops += 1
                            i += 1
                            room -= 1
                            if not room:
                                self.spill()
                                memo_base = self.memo_base
                                room = spill_at - len(memo)
                    elif code == 0x52:  # REDUCE
                        if len(stack) - 2 < fence:
                            raise self.underflow(base + i, "REDUCE")
                        args = stack.pop()
                        v = self.call(stack.pop(), args, None, base + i, "REDUCE")
                        push(v)
                        i += 1
                        if buf[i] == 0x94 and not sparse:  # MEMOIZE right after: fold it
                            memo_append(v)
                            nops += 1
                            i += 1
                            room -= 1
                            if not room:
                                self.spill()
                                memo_base = self.memo_base
                                room = spill_at - len(memo)
                    elif code == 0x4E:  # NONE
                        push(None)
                        i += 1
                    elif code == 0x6A:  # LONG_BINGET
                        idx = unpack_u4(buf, i + 1)[0]
                        if idx >= memo_base:
                            v = memo[idx - memo_base]
                            if type(v) is str:
                                pin(idx)
                            elif (
                                type(v) is Node and not v.flags & F_CLOSED and v.kind in _BOX_KINDS
                            ):
                                summary.cycles += 1  # a value fetched while still being built
                        else:
                            v = old_kept.get(idx, _OLD_STUB)
                        push(v)
                        i += 5
                    elif code == 0x58:  # BINUNICODE
                        e = i + 5 + unpack_u4(buf, i + 1)[0]
                        if e > n or e - i > STR_LIMIT + 5:
                            src.i = i + 1
                            self._slow(code, base + i)
                            buf = src.buf
                            i = src.i
                            base = src.base
                            n = len(buf)
                            safe = n - 32
                            continue
                        push(buf[i + 5 : e].decode("utf-8", "surrogatepass"))
                        i = e
                    elif code == 0x29:  # EMPTY_TUPLE
                        push(_EMPTY)
                        i += 1
                    elif code == 0x88:  # NEWTRUE
                        push(True)
                        i += 1
                    elif code == 0x89:  # NEWFALSE
                        push(False)
                        i += 1
                    elif code == 0x71:  # BINPUT
                        if len(stack) <= fence:
                            raise self.underflow(base + i, "BINPUT")
                        self.memo_put(buf[i + 1], stack[-1])
                        memo_base = self.memo_base
                        room = spill_at - len(memo)
                        i += 2
                    elif code == 0x43:  # SHORT_BINBYTES
                        e = i + 2 + buf[i + 1]
                        if e > n:
                            src.i = i + 1
                            self._slow(code, base + i)
                            buf = src.buf
                            i = src.i
                            base = src.base
                            n = len(buf)
                            safe = n - 32
                            continue
                        v = buf[i + 2 : e]
                        push(v)
                        i = e
                        if e < n and buf[e] == 0x94 and not sparse:  # MEMOIZE: fold it
                            memo_append(v)
                            nops += 1
                            i += 1
                            room -= 1
                            if not room:
                                self.spill()
                                memo_base = self.memo_base
                                room = spill_at - len(memo)
                    elif code == 0x95:  # FRAME
                        ln = _unpack_u8(buf, i + 1)[0]
                        src.i = i + 9
                        if ln > sys.maxsize:
                            raise PickleFormatError(
                                base + i, "FRAME length exceeds the system's maximum", "FRAME"
                            )
                        op.check_frame(src, base + i, ln)
                        summary.frames += 1
                        buf = src.buf
                        i = src.i
                        base = src.base
                        n = len(buf)
                        safe = n - 32
                    else:
                        src.i = i + 1
                        if self._slow(code, base + i):
                            return
                        buf = src.buf
                        i = src.i
                        base = src.base
                        n = len(buf)
                        safe = n - 32
                        fence = marks[-1] if marks else 0
                        memo_base = self.memo_base
                        room = spill_at - len(memo)
            except IndexError:
                src.i = i
                pos = base + i
                code = buf[i] if i < len(buf) else -1
                if code in (0x68, 0x6A):
                    idx = buf[i + 1] if code == 0x68 else unpack_u4(buf, i + 1)[0]
                    if idx in self.sparse:
                        push(sparse[idx])
                        src.i = i + (2 if code == 0x68 else 5)
                        continue
                    raise PickleFormatError(
                        pos,
                        f"memo value not found at index {idx} (bad memo reference)",
                        op.OPCODE_NAMES[code],
                    ) from None
                name = op.OPCODE_NAMES[code] if code >= 0 else None
                raise self.underflow(pos, name or "?") from None
            except UnicodeDecodeError as exc:
                raise PickleFormatError(
                    base + i,
                    f"string is not valid UTF-8 ({exc.reason})",
                    op.OPCODE_NAMES[buf[i]],
                ) from None
            finally:
                summary.opcodes += nops
                nops = 0

    def _slow_arg(self, code: int, pos: int) -> None:
        """Read a string argument through the general reader and push it."""
        arg = op.read_arg(self.src, code, pos, STR_LIMIT, BYTES_LIMIT)
        self.push_literal(code, arg, pos)

    def push_literal(self, code: int, arg: Any, pos: int) -> None:
        if isinstance(arg, Skipped):
            label = (
                "str"
                if code in (op.BINUNICODE, op.BINUNICODE8, op.SHORT_BINUNICODE, op.UNICODE)
                else "bytes"
            )
            if code in (op.STRING, op.BINSTRING, op.SHORT_BINSTRING):
                label = "str (Python 2)"
            if code == op.BYTEARRAY8:
                label = "bytearray"
            self.stack.append(self.leaf(arg, label, pos))
            return
        if code == op.BYTEARRAY8:
            node = _Node(K_BLOB, "bytearray", pos)
            node.size = len(arg)
            node.info = arg
            self.track_leaf(node)
            self.stack.append(node)
            return
        if (
            code in (op.STRING, op.BINSTRING, op.SHORT_BINSTRING)
            and isinstance(arg, str)
            and not arg.isascii()
        ):
            self.nonascii_strings = True
        self.stack.append(arg)

    def memo_put(self, idx: int, value: Any) -> None:
        """PUT/MEMOIZE at absolute index ``idx``."""
        memo = self.memo
        base = self.memo_base
        rel = idx - base
        if rel == len(memo):
            memo.append(value)
            sparse = self.sparse
            while sparse and base + len(memo) in sparse:
                memo.append(sparse.pop(base + len(memo)))
            if len(memo) >= 2 * MEMO_WINDOW:
                self.spill()
        elif 0 <= rel < len(memo):
            memo[rel] = value
        elif rel < 0:
            self.old_kept[idx] = value
        else:
            self.sparse[idx] = value

    def memo_get(self, idx: int, pos: int, name: str) -> Any:
        rel = idx - self.memo_base
        if 0 <= rel < len(self.memo):
            value = self.memo[rel]
            if type(value) is str:
                self.pinned.add(idx)
        elif 0 <= idx < self.memo_base:
            value = self.old_kept.get(idx, _OLD_STUB)
        elif idx in self.sparse:
            value = self.sparse[idx]
        else:
            raise PickleFormatError(
                pos, f"memo value not found at index {idx} (bad memo reference)", name
            )
        if type(value) is _Node and not value.flags & F_CLOSED and value.kind in _BOX_KINDS:
            self.summary.cycles += 1
        return value

    def spill(self) -> None:
        """Forget the oldest window of memo entries, except the ones that matter later.

        Globals, references, by-value code, containers still being built,
        literals and strings that were fetched again are kept as they are;
        the others cost nothing from now on (a later fetch gets a stub).
        """
        memo = self.memo
        base = self.memo_base
        kept = self.old_kept
        pinned = self.pinned
        node = _Node
        for k, v in enumerate(memo[:MEMO_WINDOW], base):
            t = type(v)
            if t is node:
                if v.flags & F_KEEP or not v.flags & F_CLOSED:
                    kept[k] = v
            elif t is str:
                if pinned and k in pinned:
                    kept[k] = v
            elif t is not bytes and t is not tuple and t is not _Stub:
                kept[k] = v  # None, numbers: small and exact
        del memo[:MEMO_WINDOW]
        self.memo_base = base + MEMO_WINDOW
        if len(pinned) > MEMO_WINDOW:  # in place: the hot loop holds pinned.add
            pinned.difference_update([p for p in pinned if p < self.memo_base])

    # -- container operations -------------------------------------------------

    def tuple_of(self, items: list[Any], pos: int) -> Any:
        """A tuple stand-in: a plain tuple of literals, or a node when it holds nodes."""
        for v in items:
            t = type(v)
            if t is _Node or t is _Stub or t is tuple:
                break
        else:
            return tuple(items)
        node = self.container(K_TUPLE, pos)
        node.count = len(items)
        start = pos
        for index, v in enumerate(items):
            if type(v) is _Node:
                if v.pos < start and not v.flags & F_CLOSED and v.kind not in _SHARED_KINDS:
                    start = v.pos
                self.attach(node, v, index, KT_INDEX)
            elif type(v) is tuple and v and node.depth < 2:
                node.depth = 2
        node.pos = start
        node.end = pos + 1
        self.keep_items(node, items)
        return node

    def setitems(self, target: Any, items: list[Any], pos: int) -> None:
        """SETITEM(S)/DICT: ``items`` is ``[key, value, key, value, ...]``."""
        if type(target) is not _Node:
            if type(target) is _Stub:
                return
            raise PickleFormatError(pos, f"cannot set items on {_type_name(target)}", "SETITEMS")
        target.end = pos + 1
        if target.kind is not K_DICT:
            self.mutate(target, "__setitem__", items, pos)
            if target.kind is not K_OBJ:
                return
        depth = target.depth
        for j in range(1, len(items), 2):
            v = items[j]
            tv = type(v)
            if tv is _Node:
                flags = v.flags
                if not flags & F_CLOSED and v is not target and v.kind not in _SHARED_KINDS:
                    v.flags = flags = flags | F_CLOSED
                    if v.end - v.pos >= 1024 and v.kind in _BOX_KINDS:
                        self.track_box(v)
                        flags = v.flags
                    if flags & F_TRACKED:
                        v.parent = target
                        v.key = items[j - 1]
                        v.ktype = KT_KEY
                        target.flags |= F_TRACKED
                if v.depth >= depth:
                    depth = v.depth + 1
            elif tv is tuple and v and depth < 2:
                depth = 2
        target.depth = depth
        target.count += len(items) >> 1
        kept = target.items
        if kept is not None and len(kept) < 2 * KEEP:
            add = items[: 2 * KEEP - len(kept)]
            kept.extend(add)
            self.kept += len(add)

    def appends(self, target: Any, items: list[Any], pos: int) -> None:
        """APPEND(S)/LIST/ADDITEMS/FROZENSET: add ``items`` to ``target``."""
        if type(target) is not _Node:
            if type(target) is _Stub:
                return
            raise PickleFormatError(pos, f"cannot append to {_type_name(target)}", "APPENDS")
        target.end = pos + 1
        kind = target.kind
        if kind is not K_LIST:
            self.mutate(target, "extend", items, pos)
            if kind is not K_OBJ and kind is not K_SET:
                return
        index = target.count
        kt = KT_MEMBER if kind is K_SET else KT_INDEX
        depth = target.depth
        for v in items:
            tv = type(v)
            if tv is _Node:
                flags = v.flags
                if not flags & F_CLOSED and v is not target and v.kind not in _SHARED_KINDS:
                    v.flags = flags = flags | F_CLOSED
                    if v.end - v.pos >= 1024 and v.kind in _BOX_KINDS:
                        self.track_box(v)
                        flags = v.flags
                    if flags & F_TRACKED:
                        v.parent = target
                        v.key = index
                        v.ktype = kt
                        target.flags |= F_TRACKED
                if v.depth >= depth:
                    depth = v.depth + 1
            elif tv is tuple and v and depth < 2:
                depth = 2
            index += 1
        target.depth = depth
        target.count = index
        kept = target.items
        if kept is not None and len(kept) < KEEP:
            add = items[: KEEP - len(kept)]
            kept.extend(add)
            self.kept += len(add)

    def mutate(self, target: _Node, method: str, items: list[Any], pos: int) -> None:
        """SETITEMS/APPENDS/ADDITEMS on something other than a plain container."""
        if target.kind in (K_GLOBAL, K_REF):
            name = (
                target.info.target
                if target.kind == K_GLOBAL and target.info
                else (target.info if isinstance(target.info, str) else target.label)
            )
            self.finding(
                DANGEROUS,
                "mutation",
                f"changes the imported object {name} at load ({method}): a pickle can "
                "rewire modules, environment variables or search paths this way",
                pos,
                name,
                f"{name}.{method}({self.render_list(items)})",
            )
        elif target.var is not None and not self.sketch_full:
            if method == "__setitem__":
                pairs = [
                    f"{self.render(items[j], 2, True)}: {self.render(items[j + 1], 2, True)}"
                    for j in range(0, min(len(items), 12), 2)
                ]
                more = ", …" if len(items) > 12 else ""
                self.sketch_line(f"{target.var}.update({{{', '.join(pairs)}{more}}})  # @{pos}")
            else:
                self.sketch_line(
                    f"{target.var}.{method}([{self.render_list(items, True)}])  # @{pos}"
                )

    # -- the slow path: every other opcode ----------------------------------

    def _slow(self, code: int, pos: int) -> bool:
        """Handle one opcode whose byte is at ``pos``; True after STOP."""
        kind = op.ARG_KIND[code]
        if kind < 0:
            hint = _guess_format(code) if pos == self.summary.start else ""
            raise PickleFormatError(
                pos, f"byte 0x{code:02x} ({chr(code)!r}) is not a pickle opcode{hint}"
            )
        proto = op.OPCODE_PROTO[code]
        if proto > self.max_proto:
            self.max_proto = proto
        arg = op.read_arg(self.src, code, pos, STR_LIMIT, BYTES_LIMIT) if kind else None
        handler = _HANDLERS.get(code)
        if handler is not None:
            return bool(handler(self, arg, pos))
        self.push_literal(code, arg, pos)
        return False

    def op_proto(self, arg: Any, pos: int) -> bool:
        if arg > op.HIGHEST_PROTOCOL:
            raise PickleFormatError(pos, f"unsupported pickle protocol: {arg}", "PROTO")
        self.proto = arg
        if self.summary.declared_protocol is None:
            self.summary.declared_protocol = arg
        return False

    def op_frame(self, arg: Any, pos: int) -> bool:
        op.check_frame(self.src, pos, arg)
        self.summary.frames += 1
        return False

    def op_stop(self, arg: Any, pos: int) -> bool:
        value = self.pop(pos, "STOP")
        if type(value) is _Node:
            if not value.flags & F_CLOSED:
                value.ktype = KT_ROOT
                value.key = self.summary.index
            self.summary.max_depth = value.depth
        elif type(value) is tuple and value:
            self.summary.max_depth = 1
        root = _type_name(value)
        if type(value) is _Node and value.kind == K_OBJ:
            made = value.info
            if not (isinstance(made, _Call) and made.opcode in ("NEWOBJ", "NEWOBJ_EX")):
                root = f"{root}(…)"  # what a call returned
        self.summary.root = root
        self.sketch_line(f"result = {self.render(value, 3, sketch=True)}")
        return True

    def op_pop(self, arg: Any, pos: int) -> bool:
        if self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()
            return False
        self.pop(pos, "POP")
        return False

    def op_dup(self, arg: Any, pos: int) -> bool:
        if len(self.stack) <= self.fence():
            raise self.underflow(pos, "DUP")
        self.stack.append(self.stack[-1])
        return False

    def op_pop_mark(self, arg: Any, pos: int) -> bool:
        k = self.pop_mark(pos, "POP_MARK")
        del self.stack[k:]
        return False

    def op_mark_collect(self, pos: int, name: str) -> tuple[list[Any], int]:
        k = self.pop_mark(pos, name)
        start = pos
        items = self.stack[k:]
        del self.stack[k:]
        return items, start

    def op_list(self, arg: Any, pos: int) -> bool:
        start = pos
        items, _ = self.op_mark_collect(pos, "LIST")
        node = self.container(K_LIST, start)
        self.stack.append(node)
        self.appends(node, items, pos)
        return False

    def op_dict(self, arg: Any, pos: int) -> bool:
        start = pos
        items, _ = self.op_mark_collect(pos, "DICT")
        if len(items) & 1:
            raise PickleFormatError(pos, "odd number of items for DICT", "DICT")
        node = self.container(K_DICT, start)
        self.stack.append(node)
        self.setitems(node, items, pos)
        return False

    def op_tuple(self, arg: Any, pos: int) -> bool:
        items, _ = self.op_mark_collect(pos, "TUPLE")
        self.stack.append(self.tuple_of(items, pos))
        return False

    def op_empty_set(self, arg: Any, pos: int) -> bool:
        self.stack.append(self.container(K_SET, pos))
        return False

    def op_additems(self, arg: Any, pos: int) -> bool:
        items, _ = self.op_mark_collect(pos, "ADDITEMS")
        if not self.stack:
            raise self.underflow(pos, "ADDITEMS")
        target = self.stack[-1]
        if type(target) is _Node and target.kind in (K_GLOBAL, K_REF):
            self.mutate(target, "add", items, pos)
            return False
        self.appends(target, items, pos)  # a set, or an object with .add
        return False

    def op_frozenset(self, arg: Any, pos: int) -> bool:
        start = pos
        items, _ = self.op_mark_collect(pos, "FROZENSET")
        node = self.container(K_FROZENSET, start)
        node.kind = K_SET
        self.appends(node, items, pos)
        node.kind = K_FROZENSET
        node.label = "frozenset"
        self.stack.append(node)
        return False

    def op_get(self, arg: Any, pos: int) -> bool:
        if arg < 0:
            raise PickleFormatError(pos, f"memo value not found at index {arg}", "GET")
        self.stack.append(self.memo_get(arg, pos, "GET"))
        return False

    def op_binget(self, arg: Any, pos: int) -> bool:
        self.stack.append(self.memo_get(arg, pos, "BINGET"))
        return False

    def op_put(self, arg: Any, pos: int) -> bool:
        if arg < 0:
            raise PickleFormatError(pos, "negative PUT argument", "PUT")
        if len(self.stack) <= self.fence():
            raise self.underflow(pos, "PUT")
        self.memo_put(arg, self.stack[-1])
        return False

    def op_memoize(self, arg: Any, pos: int) -> bool:
        if len(self.stack) <= self.fence():
            raise self.underflow(pos, "MEMOIZE")
        self.memo_put(self.memo_base + len(self.memo) + len(self.sparse), self.stack[-1])
        return False

    def op_mark(self, arg: Any, pos: int) -> bool:
        self.marks.append(len(self.stack))
        return False

    def op_empty_dict(self, arg: Any, pos: int) -> bool:
        self.stack.append(self.container(K_DICT, pos))
        return False

    def op_empty_list(self, arg: Any, pos: int) -> bool:
        self.stack.append(self.container(K_LIST, pos))
        return False

    def op_empty_tuple(self, arg: Any, pos: int) -> bool:
        self.stack.append(_EMPTY)
        return False

    def op_tuple_n(self, n: int, pos: int) -> bool:
        if len(self.stack) - n < self.fence():
            raise self.underflow(pos, f"TUPLE{n}")
        items = self.stack[len(self.stack) - n :]
        del self.stack[len(self.stack) - n :]
        self.stack.append(self.tuple_of(items, pos))
        return False

    def op_setitems(self, arg: Any, pos: int) -> bool:
        k = self.pop_mark(pos, "SETITEMS")
        items = self.stack[k:]
        del self.stack[k:]
        if len(items) & 1:
            raise PickleFormatError(pos, "odd number of items for SETITEMS", "SETITEMS")
        if k <= 0:
            raise self.underflow(pos, "SETITEMS")
        self.setitems(self.stack[-1], items, pos)
        return False

    def op_setitem(self, arg: Any, pos: int) -> bool:
        if len(self.stack) < 3:
            raise self.underflow(pos, "SETITEM")
        items = self.stack[-2:]
        del self.stack[-2:]
        self.setitems(self.stack[-1], items, pos)
        return False

    def op_appends(self, arg: Any, pos: int) -> bool:
        k = self.pop_mark(pos, "APPENDS")
        items = self.stack[k:]
        del self.stack[k:]
        if k <= 0:
            raise self.underflow(pos, "APPENDS")
        self.appends(self.stack[-1], items, pos)
        return False

    def op_append(self, arg: Any, pos: int) -> bool:
        if len(self.stack) - 1 <= self.fence() or len(self.stack) < 2:
            raise self.underflow(pos, "APPEND")
        v = self.stack.pop()
        self.appends(self.stack[-1], [v], pos)
        return False

    def op_next_buffer(self, arg: Any, pos: int) -> bool:
        node = _Node(K_BUFFER, "PickleBuffer (out-of-band)", pos)
        node.info = self.buffer_index
        sizes = self.buffer_sizes
        if sizes is not None and self.buffer_index < len(sizes):
            node.size = sizes[self.buffer_index]
        self.buffer_index += 1
        self.summary.out_of_band_buffers += 1
        self.track_leaf(node)
        self.stack.append(node)
        return False

    def op_readonly_buffer(self, arg: Any, pos: int) -> bool:
        if len(self.stack) <= self.fence():
            raise self.underflow(pos, "READONLY_BUFFER")
        return False

    def op_persid(self, arg: Any, pos: int) -> bool:
        self.persistent(arg, pos)
        return False

    def op_binpersid(self, arg: Any, pos: int) -> bool:
        self.persistent(self.pop(pos, "BINPERSID"), pos)
        return False

    def persistent(self, pid: Any, pos: int) -> None:
        self.persids += 1
        self.summary.persistent_ids += 1
        node = _Node(K_PERSID, "persistent object", pos)
        node.info = pid
        node.flags = F_KEEP
        if type(pid) is _Node:
            self.attach(node, pid, None, KT_ARGS)
        self.stack.append(node)
        if self.persids == 1 and not self.envelope_persistent:
            self.finding(
                INFO,
                "persistent-id",
                "refers to persistent IDs: only an Unpickler whose persistent_load "
                "resolves them can load this (plain pickle.load raises)",
                pos,
                None,
                f"persistent_load({self.render(pid, 2)})",
            )

    def op_ext(self, arg: Any, pos: int) -> bool:
        if arg <= 0:
            raise PickleFormatError(pos, "EXT specifies code <= 0", "EXT")
        import copyreg

        registry: dict[int, tuple[str, str]] = getattr(copyreg, "_inverted_registry", {})
        key = registry.get(arg)  # a plain dict read
        if key is not None:
            module, name = key
            self.stack.append(self.import_global(module, name, pos, f"EXT code {arg}"))
            return False
        self.ext_codes.append(arg)
        node = _Node(K_GLOBAL, f"<extension code {arg}>", pos)
        node.flags = F_KEEP | F_UNRESOLVED
        self.stack.append(node)
        self.finding(
            WARNING,
            "extension-code",
            f"uses copyreg extension code {arg}, which is not registered here: loading "
            "fails unless the loading program calls copyreg.add_extension for it",
            pos,
            None,
        )
        return False

    def op_global(self, arg: Any, pos: int) -> bool:
        module, name = arg
        self.stack.append(self.import_global(module, name, pos, "GLOBAL"))
        return False

    def op_stack_global(self, arg: Any, pos: int) -> bool:
        name = self.pop(pos, "STACK_GLOBAL")
        module = self.pop(pos, "STACK_GLOBAL")
        if type(module) is str and type(name) is str:
            self.stack.append(self.import_global(module, name, pos, "STACK_GLOBAL"))
            return False
        expr = f"find_class({self.render(module, 3)}, {self.render(name, 3)})"
        self.finding(
            DANGEROUS,
            "computed-global",
            "looks up a global whose module or name is computed at load time "
            "(STACK_GLOBAL with operands that are not constant strings): the real "
            "target is hidden from static inspection",
            pos,
            None,
            expr,
        )
        node = _Node(K_GLOBAL, "<computed global>", pos)
        node.flags = F_KEEP | F_UNRESOLVED
        node.info = None
        self.stack.append(node)
        return False

    def op_reduce(self, arg: Any, pos: int) -> bool:
        args = self.pop(pos, "REDUCE")
        callee = self.pop(pos, "REDUCE")
        self.stack.append(self.call(callee, args, None, pos, "REDUCE"))
        return False

    def op_newobj(self, arg: Any, pos: int) -> bool:
        args = self.pop(pos, "NEWOBJ")
        cls = self.pop(pos, "NEWOBJ")
        self.stack.append(self.call(cls, args, None, pos, "NEWOBJ"))
        return False

    def op_newobj_ex(self, arg: Any, pos: int) -> bool:
        kwargs = self.pop(pos, "NEWOBJ_EX")
        args = self.pop(pos, "NEWOBJ_EX")
        cls = self.pop(pos, "NEWOBJ_EX")
        self.stack.append(self.call(cls, args, kwargs, pos, "NEWOBJ_EX"))
        return False

    def op_inst(self, arg: Any, pos: int) -> bool:
        module, name = arg
        items, _ = self.op_mark_collect(pos, "INST")
        cls = self.import_global(module, name, pos, "INST")
        args = self.tuple_of(items, pos)
        self.stack.append(self.call(cls, args, None, pos, "INST"))
        return False

    def op_obj(self, arg: Any, pos: int) -> bool:
        k = self.pop_mark(pos, "OBJ")
        items = self.stack[k:]
        del self.stack[k:]
        if not items:
            raise self.underflow(pos, "OBJ")
        cls = items[0]
        args = self.tuple_of(items[1:], pos)
        self.stack.append(self.call(cls, args, None, pos, "OBJ"))
        return False

    def op_build(self, arg: Any, pos: int) -> bool:
        if len(self.stack) - 2 < self.fence():
            raise self.underflow(pos, "BUILD")
        state = self.stack.pop()
        target = self.stack[-1]
        self.build(target, state, pos)
        return False

    # -- calls -------------------------------------------------------------

    def target_of(self, value: Any) -> str | None:
        """The dotted name a callable stand-in resolves to, if known."""
        if type(value) is not _Node:
            return None
        if value.kind == K_GLOBAL:
            return value.info.target if value.info is not None else None
        if value.kind == K_REF:
            return value.info if isinstance(value.info, str) else None
        return None

    def call(self, callee: Any, args: Any, kwargs: Any, pos: int, opname: str) -> Any:
        """Simulate ``callee(*args)`` (or ``callee.__new__``) and return its stand-in."""
        if type(callee) is _Node and callee.kind is K_GLOBAL and kwargs is None:
            info = callee.info
            if info is not None and info.fast:
                # a known-harmless constructor (datetime, Decimal, numpy...): no finding
                info.calls += 1
                if len(info.call_records) < MAX_CALLS_PER_IMPORT:
                    info.call_records.append(
                        CallRecord(pos, opname, self.call_text(info.target, args, opname))
                    )
                node = _Node(K_OBJ, info.target, pos)
                if type(args) is _Node:
                    self.attach(node, args, None, KT_ARGS)
                    if args.pos < pos:
                        node.pos = args.pos
                node.info = _Call(info.target, callee, args, None, opname)
                if not self.sketch_full:
                    self.sketch_call(node, callee, info.target, args, None, opname, pos)
                return node
        target = self.target_of(callee)
        seq = _seq(args)
        info = callee.info if type(callee) is _Node and callee.kind == K_GLOBAL else None
        if info is not None:
            info.calls += 1

        def expr() -> str:  # rendered only when a record or a finding needs it
            shown = target or self.render(callee, 2)
            if opname in ("NEWOBJ", "NEWOBJ_EX"):
                text = f"{shown}.__new__({shown}{self.render_args(args, lead=True)})"
            else:
                text = f"{shown}({self.render_args(args)})"
            if kwargs is not None:
                text = text[:-1] + f", **{self.render(kwargs, 2)})"
            return text

        if info is not None and len(info.call_records) < MAX_CALLS_PER_IMPORT:
            info.call_records.append(CallRecord(pos, opname, expr()))
        result = self.evaluate(callee, target, seq, args, kwargs, pos, opname, expr)
        if type(result) is _Node and result.kind == K_OBJ and result.info is None:
            result.info = _Call(target, callee, args, kwargs, opname)
        self.sketch_call(result, callee, target, args, kwargs, opname, pos)
        return result

    def call_text(self, target: str, args: Any, opname: str) -> str:
        if opname in ("NEWOBJ", "NEWOBJ_EX"):
            return f"{target}.__new__({target}{self.render_args(args, lead=True)})"
        return f"{target}({self.render_args(args)})"

    def new_obj(self, label: str, pos: int, callee: Any, args: Any) -> _Node:
        """A call result; it spans from its arguments to the call opcode."""
        node = _Node(K_OBJ, label, pos)
        if type(args) is _Node:
            self.attach(node, args, None, KT_ARGS)
            if args.pos < pos:
                node.pos = args.pos
        node.end = pos + 1
        return node

    def evaluate(
        self,
        callee: Any,
        target: str | None,
        seq: list[Any] | None,
        args: Any,
        kwargs: Any,
        pos: int,
        opname: str,
        expr: _Expr,
    ) -> Any:
        """Classify the call and build the result stand-in."""
        ctype = type(callee)
        if target is None:
            if ctype is _Node and callee.kind == K_FUNC:
                self.finding(
                    DANGEROUS,
                    "by-value-code",
                    f"calls the by-value function {self.func_name(callee)} at load: code "
                    "carried inside the pickle runs while it loads",
                    pos,
                    None,
                    expr,
                )
                return self.new_obj("<result of by-value function>", pos, callee, args)
            if ctype is _Node and callee.kind == K_CLASS:
                self.finding(
                    WARNING,
                    "by-value-code",
                    f"instantiates the by-value class {self.func_name(callee)} at load: "
                    "its __new__/__init__ (code carried in the pickle) run",
                    pos,
                    None,
                    expr,
                )
                return self.new_obj(self.func_name(callee), pos, callee, args)
            if ctype is _Node and callee.kind == K_OBJ and isinstance(callee.info, _Call):
                resolved = self.call_through(callee, seq, args, pos, opname, expr)
                if resolved is not None:
                    return resolved
            if ctype is _Node and callee.kind == K_REF and callee.flags & F_UNRESOLVED:
                self.finding(
                    DANGEROUS,
                    "computed-callable",
                    "calls an attribute whose name is computed at load time",
                    pos,
                    None,
                    expr,
                )
            elif ctype is _Node and callee.kind == K_GLOBAL and callee.flags & F_UNRESOLVED:
                self.finding(
                    DANGEROUS,
                    "computed-callable",
                    f"calls {callee.label}: what runs is only decided at load time",
                    pos,
                    None,
                    expr,
                )
            else:
                self.finding(
                    DANGEROUS,
                    "computed-callable",
                    "calls a value computed at load time (not a plain import): the real "
                    "callee is hidden from static inspection",
                    pos,
                    None,
                    expr,
                )
            return self.new_obj("<unknown>", pos, callee, args)
        norm = _normalize(target)
        special = _SPECIAL.get(norm)
        if special is not None:
            result = special(self, callee, norm, seq, args, pos, opname, expr)
            if result is not None:
                return result
        danger = _danger(norm)
        if danger is None and ctype is _Node and callee.kind == K_REF:
            last = norm.rsplit(".", 1)[-1]
            if last in _SUSPICIOUS_ATTRS:
                danger = ("exec", f"reaches {last} through attribute lookups")
        if danger is not None:
            category, what = danger
            self.finding(DANGEROUS, category, f"calls {target} at load: {what}", pos, target, expr)
        elif opname == "BUILD":
            pass
        elif not _is_safe(norm) and not norm.startswith("__main__."):
            self.finding(
                INFO,
                "third-party-call",
                f"calls {target} at load: it runs with the loader's privileges",
                pos,
                target,
                expr,
            )
        self.check_higher_order(norm, seq, pos, expr)
        node = self.new_obj(target, pos, callee, args)
        if ctype is _Node and callee.kind == K_REF and callee.flags & F_MODULE:
            node.flags |= F_KEEP
        return node

    def call_through(
        self, callee: _Node, seq: list[Any] | None, args: Any, pos: int, opname: str, expr: _Expr
    ) -> Any:
        """Calling the result of partial/attrgetter/methodcaller: resolve what runs."""
        made: _Call = callee.info
        inner = made.target and _normalize(made.target)
        made_args = _seq(made.args) or []
        if inner == "functools.partial" and made_args:
            fn = made_args[0]
            merged = list(made_args[1:]) + list(seq or [])
            return self.call(
                fn,
                tuple(merged)
                if all(type(x) is not _Node for x in merged)
                else self.tuple_of(merged, pos),
                None,
                pos,
                opname,
            )
        if inner == "operator.attrgetter" and made_args and seq:
            name = made_args[0]
            if type(name) is str:
                return self.attribute(seq[0], name, pos)
        if inner == "operator.methodcaller" and made_args and seq:
            name = made_args[0]
            if type(name) is str:
                fn = self.attribute(seq[0], name, pos)
                return self.call(fn, self.tuple_of(list(made_args[1:]), pos), None, pos, opname)
        return None

    def attribute(self, obj: Any, name: Any, pos: int) -> _Node:
        """``getattr(obj, name)`` as a reference stand-in."""
        base = self.target_of(obj)
        if base is None and type(obj) is _Node and obj.kind == K_OBJ:
            base = f"<{obj.label} instance>"
        if type(name) is not str:
            node = _Node(K_REF, "<computed attribute>", pos)
            node.flags = F_KEEP | F_UNRESOLVED
            self.finding(
                DANGEROUS,
                "computed-attribute",
                "looks up an attribute whose name is computed at load time (getattr with "
                "a non-constant name)",
                pos,
                None,
                f"getattr({self.render(obj, 2)}, {self.render(name, 2)})",
            )
            return node
        if base is None:
            node = _Node(K_REF, f"<value>.{name}", pos)
            node.flags = F_KEEP | F_UNRESOLVED
            node.info = None
            if name in _INTERNAL_ATTRS or name in _SUSPICIOUS_ATTRS:
                self.finding(
                    DANGEROUS,
                    "getattr-chain",
                    f"reaches .{name} of a value built at load time (a common way to "
                    "smuggle code execution past allowlists)",
                    pos,
                    None,
                    f"getattr({self.render(obj, 2)}, {name!r})",
                )
            return node
        full = f"{base}.{name}"
        node = _Node(K_REF, full, pos)
        node.flags = F_KEEP
        node.info = full
        if name in _INTERNAL_ATTRS:
            self.finding(
                DANGEROUS,
                "getattr-chain",
                f"reaches {full}: interpreter internals that lead to code execution",
                pos,
                full,
                f"getattr({base}, {name!r})",
            )
        return node

    def check_higher_order(self, norm: str, seq: list[Any] | None, pos: int, expr: _Expr) -> None:
        """map/filter/reduce/sorted... with a dangerous function argument."""
        if norm not in _HIGHER_ORDER or not seq:
            return
        for value in seq[:2]:
            inner = self.target_of(value)
            if inner is not None and _danger(inner) is not None:
                self.finding(
                    DANGEROUS,
                    "exec",
                    f"passes {inner} to {norm}, which calls it",
                    pos,
                    inner,
                    expr,
                )

    def build(self, target: Any, state: Any, pos: int) -> None:
        """BUILD: ``target.__setstate__(state)`` or an attribute update."""
        ttype = type(target)
        if ttype is _Node:
            target.end = pos + 1
            if type(state) is _Node:
                self.attach(target, state, None, KT_STATE)
                if state.kind == K_DICT:
                    state.flags |= F_ATTRS
            kind = target.kind
            expr = f"{self.render(target, 1)}.__setstate__({self.render(state, 2)})"
            if kind in (K_GLOBAL, K_REF):
                name = self.target_of(target) or target.label
                self.finding(
                    DANGEROUS,
                    "mutation",
                    f"sets attributes on the imported object {name} at load (BUILD on a "
                    "global): this can replace functions of installed modules",
                    pos,
                    name,
                    expr,
                )
            elif kind == K_OBJ and isinstance(target.info, _Call):
                made: _Call = target.info
                made.states.append(state)
                cls_info = self.class_info(made)
                if cls_info is not None:
                    cls_info.calls += 1
                    if len(cls_info.call_records) < MAX_CALLS_PER_IMPORT:
                        cls_info.call_records.append(CallRecord(pos, "BUILD", expr))
                by_value_cls = self.by_value_class_of(made)
                if by_value_cls is not None and self.class_defines(by_value_cls, "__setstate__"):
                    self.finding(
                        DANGEROUS,
                        "by-value-code",
                        f"BUILD runs {self.func_name(by_value_cls)}.__setstate__, code "
                        "carried inside the pickle",
                        pos,
                        None,
                        expr,
                    )
            elif kind in (K_FUNC, K_CLASS, K_CODE) and isinstance(target.info, _ByValue):
                target.info.states.append(state)
            if target.var is not None:
                self.sketch_line(
                    f"{target.var}.__setstate__({self.render(state, 3, True)})  # @{pos} BUILD"
                )
        elif ttype is _Stub:
            return
        else:
            raise PickleFormatError(pos, f"BUILD on {_type_name(target)}", "BUILD")

    def class_info(self, made: _Call) -> ImportInfo | None:
        """The import whose class an object is (NEWOBJ cls, or cls given to a reconstructor)."""
        callee = made.callee
        if made.opcode in ("NEWOBJ", "NEWOBJ_EX", "INST", "OBJ", "REDUCE"):
            if made.target and _normalize(made.target) in (
                "copyreg._reconstructor",
                "copyreg.__newobj__",
                "copyreg.__newobj_ex__",
            ):
                seq = _seq(made.args)
                if seq:
                    callee = seq[0]
            if type(callee) is _Node and callee.kind == K_GLOBAL and callee.info is not None:
                info: ImportInfo = callee.info
                return info
        return None

    def by_value_class_of(self, made: _Call) -> _Node | None:
        callee = made.callee
        if made.target and _normalize(made.target) in (
            "copyreg._reconstructor",
            "copyreg.__newobj__",
        ):
            seq = _seq(made.args)
            callee = seq[0] if seq else None
        if type(callee) is _Node and callee.kind == K_CLASS:
            return callee
        return None

    def class_defines(self, cls: _Node, name: str) -> bool:
        """Whether a by-value class's kept dict has ``name`` (True when unknown)."""
        bv = cls.info
        if not isinstance(bv, _ByValue):
            return True
        dicts: list[Any] = []
        seq = _seq(bv.args) or []
        dicts.extend(v for v in seq if type(v) is _Node and v.kind == K_DICT)
        for st in bv.states:
            s = _seq(st)
            if s:
                dicts.extend(v for v in s if type(v) is _Node and v.kind == K_DICT)
            elif type(st) is _Node and st.kind == K_DICT:
                dicts.append(st)
        complete = True
        for d in dicts:
            keys = _dict_pairs(d)
            if keys is None:
                complete = False
                continue
            if any(k == name for k, _ in keys):
                return True
        return not complete

    def func_name(self, node: _Node) -> str:
        bv = node.info
        if isinstance(bv, _ByValue):
            desc = _describe(self, bv, shallow=True)
            return desc.qualname or desc.name or "<lambda>"
        return node.label

    # -- sketch --------------------------------------------------------------

    def sketch_call(
        self,
        result: Any,
        callee: Any,
        target: str | None,
        args: Any,
        kwargs: Any,
        opname: str,
        pos: int,
    ) -> None:
        if self.sketch_full or len(self.sketch) >= MAX_SKETCH:
            self.sketch_full = True
            return
        if type(result) is not _Node or result.var is not None:
            return
        name = self.short(target) if target else self.render(callee, 2, True)
        if opname in ("NEWOBJ", "NEWOBJ_EX"):
            text = f"{name}.__new__({name}{self.render_args(args, True, lead=True)})"
        else:
            text = f"{name}({self.render_args(args, True)})"
        if kwargs is not None:
            text = text[:-1] + f", **{self.render(kwargs, 2, True)})"
        self.var_count += 1
        var = f"v{self.var_count}"
        result.var = var
        note = ""
        if (
            self.findings
            and self.findings[-1].offset == pos
            and self.findings[-1].severity == DANGEROUS
        ):
            note = "  # DANGEROUS: " + self.findings[-1].category
        self.sketch_line(f"{var} = {text}  # @{pos} {opname}{note}")

    # -- rendering ---------------------------------------------------------------

    def render_list(self, items: list[Any], sketch: bool = False) -> str:
        shown = [self.render(v, 2, sketch) for v in items[:6]]
        if len(items) > 6:
            shown.append("…")
        return ", ".join(shown)

    def render_args(self, args: Any, sketch: bool = False, lead: bool = False) -> str:
        seq = _seq(args)
        if seq is None:
            text = f"*{self.render(args, 2, sketch)}"
        else:
            count = args.count if type(args) is _Node else len(seq)
            shown = [self.render(v, 3, sketch) for v in seq[:8]]
            if count > len(shown):
                shown.append("…")
            text = ", ".join(shown)
        if lead and text:
            return ", " + text
        return text

    def render(self, value: Any, depth: int = 3, sketch: bool = False) -> str:
        """A short Python-like expression for a stand-in (bounded depth and width)."""
        t = type(value)
        if value is None or t is bool or t is float:
            return repr(value)
        if t is int:
            text = repr(value)
            return text if len(text) <= 40 else text[:20] + "…" + text[-8:]
        if t is str:
            return repr(value) if len(value) <= 120 else repr(value[:120]) + "…"
        if t is bytes:
            return repr(value) if len(value) <= 48 else repr(value[:48]) + "…"
        if t is tuple:
            if depth <= 0:
                return "(…)"
            inner = [self.render(v, depth - 1, sketch) for v in value[:8]]
            if len(value) > 8:
                inner.append("…")
            return "(" + ", ".join(inner) + ("," if len(value) == 1 else "") + ")"
        if t is _Stub:
            return f"<{value.label}>"
        if t is not _Node:
            return f"<{t.__name__}>"
        node: _Node = value
        kind = node.kind
        if node.var is not None and sketch:
            return node.var
        if kind == K_GLOBAL:
            if node.info is None:
                return node.label
            return self.short(node.info.target) if sketch else node.info.target
        if kind == K_REF:
            return node.info if isinstance(node.info, str) else node.label
        if kind == K_BLOB:
            sk = node.info
            if isinstance(sk, Skipped) and node.label.startswith("str"):
                preview = self.read_preview(sk)
                return f"<str {_fmt_size(node.size)} @{node.pos}: {preview!r}…>"
            return f"<{node.label} {_fmt_size(node.size)} @{node.pos}>"
        if kind == K_BUFFER:
            size = f" {_fmt_size(node.size)}" if node.size else ""
            return f"<out-of-band buffer #{node.info}{size}>"
        if kind == K_PERSID:
            return f"persistent_load({self.render(node.info, 1)})"
        if kind in (K_FUNC, K_CLASS):
            return (
                f"<{'function' if kind == K_FUNC else 'class'} {self.func_name(node)} (by value)>"
            )
        if kind == K_CODE:
            return "<code object (by value)>"
        if kind == K_OBJ:
            made = node.info
            if isinstance(made, _Call) and depth > 0:
                name = made.target if made.target else self.render(made.callee, 1)
                if sketch and made.target:
                    name = self.short(made.target)
                return f"{name}({self.render_args(made.args, sketch) if depth > 1 else '…'})"
            return f"<{node.label}>"
        if depth <= 0 or node.items is None:
            return (
                {K_DICT: "{…}", K_LIST: "[…]", K_TUPLE: "(…)"}.get(kind, f"{kind}(…)")
                if node.count
                else _empty_repr(kind)
            )
        items = node.items
        more = node.count > (len(items) // 2 if kind == K_DICT else len(items))
        if kind == K_DICT:
            pairs = [
                f"{self.render(items[j], depth - 1, sketch)}: "
                f"{self.render(items[j + 1], depth - 1, sketch)}"
                for j in range(0, min(len(items), 12), 2)
            ]
            if more or len(items) > 12:
                pairs.append("…")
            return "{" + ", ".join(pairs) + "}"
        inner = [self.render(v, depth - 1, sketch) for v in items[:6]]
        if more or len(items) > 6:
            inner.append("…")
        body = ", ".join(inner)
        if kind == K_LIST:
            return "[" + body + "]"
        if kind == K_TUPLE:
            return "(" + body + ("," if node.count == 1 else "") + ")"
        if kind == K_SET:
            return "{" + body + "}" if inner else "set()"
        if kind == K_FROZENSET:
            return "frozenset({" + body + "})"
        return f"<{node.label}>"

    def read_preview(self, sk: Skipped, limit: int = 80) -> str:
        data = self.read_at(sk.offset, min(sk.length, limit * 4)) or sk.head
        return data.decode("utf-8", "replace")[:limit]

    def read_at(self, offset: int, size: int) -> bytes | None:
        """Read ``size`` bytes at ``offset`` and restore the source's file position."""
        src = self.src
        if not src.seekable:
            return None
        f = src.f
        try:
            here = f.tell()
            f.seek(offset)
            data = f.read(size)
            f.seek(here)
        except (OSError, ValueError):
            return None
        return data


def _empty_repr(kind: str) -> str:
    return {
        K_DICT: "{}",
        K_LIST: "[]",
        K_TUPLE: "()",
        K_SET: "set()",
        K_FROZENSET: "frozenset()",
    }.get(kind, f"{kind}()")


def _type_name(value: Any) -> str:
    t = type(value)
    if t is _Node:
        if value.kind in (K_DICT, K_LIST, K_TUPLE, K_SET, K_FROZENSET):
            return str(value.kind)
        return str(value.label)
    if t is _Stub:
        return str(value.label)
    return t.__name__


def _seq(value: Any) -> list[Any] | None:
    """The items of a tuple/list stand-in when all of them are known."""
    t = type(value)
    if t is tuple:
        return list(value)
    if t is _Node and value.kind in (K_TUPLE, K_LIST) and value.items is not None:
        if len(value.items) >= value.count:
            return list(value.items)
        return list(value.items)
    return None


def _dict_pairs(value: Any) -> list[tuple[Any, Any]] | None:
    if type(value) is not _Node or value.kind != K_DICT or value.items is None:
        return None
    items = value.items
    return [(items[j], items[j + 1]) for j in range(0, len(items) - 1, 2)]


# An expression, or how to render it when it is needed (a runtime alias: Union on 3.10).
_Expr = Union[str, Callable[[], str]]  # noqa: UP007


def _text(expr: _Expr) -> str:
    return expr if isinstance(expr, str) else expr()


_unpack_f8 = struct.Struct(">d").unpack_from
_unpack_i4 = struct.Struct("<i").unpack_from
_unpack_u4 = struct.Struct("<I").unpack_from
_unpack_u8 = struct.Struct("<Q").unpack_from


def _compat(module: str, name: str) -> tuple[str, str]:
    """Python 2 names as the unpickler maps them for protocols < 3 (fix_imports)."""
    import _compat_pickle

    key = (module, name)
    if key in _compat_pickle.NAME_MAPPING:
        mapped: tuple[str, str] = _compat_pickle.NAME_MAPPING[key]
        return mapped
    if module in _compat_pickle.IMPORT_MAPPING:
        return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name


_FORMAT_HINTS: Final = {
    0x1F: "; a gzip stream starts with 0x1f: decompress it first",
    0x42: "; 'BZh' starts a bzip2 stream: decompress it first",
    0xFD: "; 0xfd starts an xz stream: decompress it first",
    0x50: "; 'PK' starts a zip archive (torch.save, .npz): inspect the pickle inside it",
    0x93: "; \\x93NUMPY starts a .npy file: read it with numpy.load(allow_pickle=False)",
    0x7B: "; '{' may start JSON text",
    0x22: "; this looks like text",
    0x23: "; this looks like text",
}


def _guess_format(code: int) -> str:
    """A hint for files that are something else."""
    return _FORMAT_HINTS.get(code, "")


# --------------------------------------------------------------------------
# Special callables: getattr, by-value machinery, imports hidden in helpers
# --------------------------------------------------------------------------

_HIGHER_ORDER: Final = frozenset(
    {
        "builtins.map",
        "builtins.filter",
        "itertools.starmap",
        "functools.reduce",
        "builtins.sorted",
        "builtins.min",
        "builtins.max",
        "builtins.iter",
        "itertools.accumulate",
        "itertools.takewhile",
        "itertools.dropwhile",
        "itertools.filterfalse",
        "itertools.groupby",
        "builtins.apply",
    }
)


def _sp_getattr(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    if not seq or len(seq) < 2:
        return None
    return m.attribute(seq[0], seq[1], pos)


def _sp_dill_get_attr(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    return _sp_getattr(m, callee, norm, seq, args, pos, opname, expr)


def _sp_getitem(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    """``operator.getitem(sys.modules, 'os')`` / ``getitem(mod.__dict__, 'x')``."""
    if not seq or len(seq) < 2:
        return None
    base = m.target_of(seq[0])
    key = seq[1]
    if base is None or type(key) is not str:
        return None
    if base in ("sys.modules",):
        node = _module_ref(m, key, pos, "sys.modules")
        m.finding(
            DANGEROUS, "import", f"fetches module {key} from sys.modules at load", pos, key, expr
        )
        return node
    if base.endswith(".__dict__") or base.endswith(".__builtins__"):
        return m.attribute(_ref(m, base.rsplit(".", 1)[0], pos), key, pos)
    return None


def _ref(m: _Machine, name: str, pos: int) -> _Node:
    node = _Node(K_REF, name, pos)
    node.info = name
    node.flags = F_KEEP
    return node


def _module_ref(m: _Machine, module: Any, pos: int, via: str) -> _Node:
    if type(module) is not str:
        node = _Node(K_REF, "<computed module>", pos)
        node.flags = F_KEEP | F_UNRESOLVED | F_MODULE
        m.finding(
            DANGEROUS,
            "import",
            f"imports a module whose name is computed at load time ({via})",
            pos,
            None,
            f"{via}({m.render(module, 2)})",
        )
        return node
    m.import_global(module, "", pos, via)
    node = _Node(K_REF, module, pos)
    node.info = module
    node.flags = F_KEEP | F_MODULE
    return node


def _sp_subimport(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    if not seq:
        return None
    return _module_ref(m, seq[0], pos, norm.rsplit(".", 1)[-1])


def _sp_import(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    """``__import__``/``importlib.import_module``: dangerous, but resolve the module."""
    danger = _danger(norm) or ("import", "imports a module chosen by the pickle")
    m.finding(DANGEROUS, danger[0], f"calls {norm} at load: {danger[1]}", pos, norm, expr)
    if not seq:
        return None
    return _module_ref(m, seq[0], pos, norm)


def _sp_builtin_type(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    if not seq or type(seq[0]) is not str:
        return None
    name = seq[0]
    full = _DILL_TYPE_NAMES.get(name, f"types.{name}")
    if norm.startswith(_DILL) and name not in _DILL_TYPE_NAMES:
        full = f"builtins.{name}" if name.islower() else f"types.{name}"
    if name.startswith("__"):
        m.finding(
            DANGEROUS, "getattr-chain", f"reaches types.{name} through {norm}", pos, None, expr
        )
    return _ref(m, full, pos)


def _by_value(
    m: _Machine, kind: str, producer: str, label: str, args: Any, pos: int, callee: Any
) -> _Node:
    node = m.new_obj(label, pos, callee, args)
    node.kind = kind
    node.flags |= F_KEEP
    bv = _ByValue(kind, producer, node, args)
    node.info = bv
    if len(m.by_value) < MAX_BY_VALUE:
        m.by_value.append(bv)
    return node


def _producer(norm: str) -> str:
    if norm.startswith(_CLOUDPICKLE):
        return "cloudpickle"
    if norm.startswith(_DILL):
        return "dill"
    if norm.startswith(_SERDOCTOR_CODE):
        return "serdoctor"
    return "raw"


def _sp_code(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    producer = _producer(norm)
    return _by_value(m, K_CODE, producer, "code", args, pos, callee)


def _sp_function(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    node = _by_value(m, K_FUNC, _producer(norm), "function", args, pos, callee)
    if seq:
        code = seq[0]
        node.info.code = code
        if (
            type(code) is _Node
            and code.kind == K_CODE
            and isinstance(code.info, _ByValue)
            and code.info.producer == "raw"
            and node.info.producer != "raw"
        ):
            code.info.producer = node.info.producer
    return node


def _sp_class(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    if norm == "builtins.type" and (not seq or len(seq) != 3):
        return None
    if norm == "dill._dill._create_type":
        inner = m.target_of(seq[0]) if seq else None
        if inner is None or _normalize(inner) not in (
            "builtins.type",
            "abc.ABCMeta",
            "enum.EnumMeta",
            "enum.EnumType",
        ):
            return _sp_apply(m, callee, norm, seq, args, pos, opname, expr)
    return _by_value(m, K_CLASS, _producer(norm), "class", args, pos, callee)


def _sp_setstate(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    """cloudpickle's _function_setstate/_class_setstate, builtins.setattr and friends."""
    if not seq:
        return None
    obj = seq[0]
    if type(obj) is _Node and obj.kind in (K_GLOBAL, K_REF):
        name = m.target_of(obj) or obj.label
        m.finding(
            DANGEROUS,
            "mutation",
            f"changes attributes of the imported object {name} at load ({norm})",
            pos,
            name,
            expr,
        )
    elif type(obj) is _Node and isinstance(obj.info, _ByValue) and len(seq) > 1:
        if norm.endswith(("setattr", "_setattr")):
            obj.info.states.append(m.tuple_of(list(seq[1:]), pos))
        else:
            obj.info.states.append(seq[1])
    return m.new_obj("None", pos, callee, args)


def _sp_apply(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    """Helpers that call their first argument (dill._create_type, cloudpickle.instance...)."""
    if not seq:
        return None
    fn = seq[0]
    rest: list[Any] = list(seq[1:])
    if norm == "dill._dill._create_ftype" and len(seq) >= 3:
        inner = _seq(seq[2]) or []
        rest = [seq[1], *inner]
    elif norm == "dill._dill._create_array" and len(seq) >= 2:
        rest = _seq(seq[1]) or []
    elif norm in ("cloudpickle.cloudpickle.instance",):
        rest = []
    packed = m.tuple_of(rest, pos)
    return m.call(fn, packed, None, pos, opname)


def _sp_reconstructor(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    """copyreg._reconstructor(cls, base, state) calls base.__init__(obj, state)."""
    if not seq or len(seq) < 2:
        return None
    cls, base_cls = seq[0], seq[1]
    info = cls.info if type(cls) is _Node and cls.kind == K_GLOBAL else None
    if isinstance(info, ImportInfo):
        info.calls += 1
        if len(info.call_records) < MAX_CALLS_PER_IMPORT:
            info.call_records.append(CallRecord(pos, opname, _text(expr)))
    base_target = m.target_of(base_cls)
    if base_target is not None and _normalize(base_target) != "builtins.object":
        danger = _danger(base_target)
        if danger is not None:
            m.finding(
                DANGEROUS,
                danger[0],
                f"copyreg._reconstructor runs {base_target}.__init__ at load: {danger[1]}",
                pos,
                base_target,
                expr,
            )
    label = m.target_of(cls) or m.render(cls, 1)
    node = m.new_obj(label, pos, callee, args)
    node.info = _Call(label, cls, args, None, "REDUCE")
    return node


def _sp_newobj(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    if not seq:
        return None
    cls = seq[0]
    info = cls.info if type(cls) is _Node and cls.kind == K_GLOBAL else None
    if isinstance(info, ImportInfo):
        info.calls += 1
        if len(info.call_records) < MAX_CALLS_PER_IMPORT:
            info.call_records.append(CallRecord(pos, opname, _text(expr)))
    target = m.target_of(cls)
    if target is not None and _danger(target) is not None:
        m.finding(
            DANGEROUS,
            _danger(target)[0],  # type: ignore[index]
            f"creates a {target} object at load",
            pos,
            target,
            expr,
        )
    label = target or m.render(cls, 1)
    node = m.new_obj(label, pos, callee, args)
    node.info = _Call(label, cls, args, None, "NEWOBJ")
    return node


def _sp_cell(
    m: _Machine,
    callee: Any,
    norm: str,
    seq: list[Any] | None,
    args: Any,
    pos: int,
    opname: str,
    expr: _Expr,
) -> Any:
    node = m.new_obj("cell", pos, callee, args)
    if not seq:
        node.flags |= F_EMPTY_CELL
    return node


_SPECIAL: Final = {
    "builtins.getattr": _sp_getattr,
    "dill._dill._get_attr": _sp_dill_get_attr,
    "operator.getitem": _sp_getitem,
    "builtins.dict.get": _sp_getitem,
    "builtins.dict.__getitem__": _sp_getitem,
    "cloudpickle.cloudpickle.subimport": _sp_subimport,
    "cloudpickle.cloudpickle.dynamic_subimport": _sp_subimport,
    "dill._dill._import_module": _sp_subimport,
    "builtins.__import__": _sp_import,
    "importlib.import_module": _sp_import,
    "importlib.__import__": _sp_import,
    "cloudpickle.cloudpickle._builtin_type": _sp_builtin_type,
    "dill._dill._load_type": _sp_builtin_type,
    "types.CodeType": _sp_code,
    "serdoctor.serialize._code._unmarshal": _sp_code,
    "serdoctor.serialize._code._make_function": _sp_function,
    "serdoctor.serialize._code._set_function_state": _sp_setstate,
    "dill._dill._create_code": _sp_code,
    "types.FunctionType": _sp_function,
    "cloudpickle.cloudpickle._make_function": _sp_function,
    "dill._dill._create_function": _sp_function,
    "cloudpickle.cloudpickle._make_skeleton_class": _sp_class,
    "cloudpickle.cloudpickle._make_skeleton_enum": _sp_class,
    "dill._dill._create_type": _sp_class,
    "builtins.type": _sp_class,
    "types.new_class": _sp_class,
    "cloudpickle.cloudpickle._function_setstate": _sp_setstate,
    "cloudpickle.cloudpickle._class_setstate": _sp_setstate,
    "builtins.setattr": _sp_setstate,
    "builtins.delattr": _sp_setstate,
    "dill._dill._setattr": _sp_setstate,
    "dill._dill._delattr": _sp_setstate,
    "dill._dill._create_ftype": _sp_apply,
    "dill._dill._create_array": _sp_apply,
    "cloudpickle.cloudpickle.instance": _sp_apply,
    "copyreg._reconstructor": _sp_reconstructor,
    "copyreg.__newobj__": _sp_newobj,
    "copyreg.__newobj_ex__": _sp_newobj,
    "cloudpickle.cloudpickle._make_cell": _sp_cell,
    "cloudpickle.cloudpickle._make_empty_cell": _sp_cell,
    "dill._dill._create_cell": _sp_cell,
    "types.CellType": _sp_cell,
}


def _h(name: str) -> Any:
    return getattr(_Machine, name)


_HANDLERS: Final[dict[int, Any]] = {
    op.PROTO: _h("op_proto"),
    op.FRAME: _h("op_frame"),
    op.STOP: _h("op_stop"),
    op.POP: _h("op_pop"),
    op.DUP: _h("op_dup"),
    op.POP_MARK: _h("op_pop_mark"),
    op.MARK: _h("op_mark"),
    op.LIST: _h("op_list"),
    op.DICT: _h("op_dict"),
    op.TUPLE: _h("op_tuple"),
    op.EMPTY_SET: _h("op_empty_set"),
    op.ADDITEMS: _h("op_additems"),
    op.FROZENSET: _h("op_frozenset"),
    op.GET: _h("op_get"),
    op.BINGET: _h("op_binget"),
    op.LONG_BINGET: _h("op_binget"),
    op.PUT: _h("op_put"),
    op.BINPUT: _h("op_put"),
    op.LONG_BINPUT: _h("op_put"),
    op.MEMOIZE: _h("op_memoize"),
    op.EMPTY_DICT: _h("op_empty_dict"),
    op.EMPTY_LIST: _h("op_empty_list"),
    op.EMPTY_TUPLE: _h("op_empty_tuple"),
    op.TUPLE1: lambda m, a, p: m.op_tuple_n(1, p),
    op.TUPLE2: lambda m, a, p: m.op_tuple_n(2, p),
    op.TUPLE3: lambda m, a, p: m.op_tuple_n(3, p),
    op.SETITEMS: _h("op_setitems"),
    op.SETITEM: _h("op_setitem"),
    op.APPENDS: _h("op_appends"),
    op.APPEND: _h("op_append"),
    op.NEXT_BUFFER: _h("op_next_buffer"),
    op.READONLY_BUFFER: _h("op_readonly_buffer"),
    op.PERSID: _h("op_persid"),
    op.BINPERSID: _h("op_binpersid"),
    op.EXT1: _h("op_ext"),
    op.EXT2: _h("op_ext"),
    op.EXT4: _h("op_ext"),
    op.GLOBAL: _h("op_global"),
    op.STACK_GLOBAL: _h("op_stack_global"),
    op.REDUCE: _h("op_reduce"),
    op.NEWOBJ: _h("op_newobj"),
    op.NEWOBJ_EX: _h("op_newobj_ex"),
    op.INST: _h("op_inst"),
    op.OBJ: _h("op_obj"),
    op.BUILD: _h("op_build"),
}


# --------------------------------------------------------------------------
# By-value code: what it is and which Python it needs
# --------------------------------------------------------------------------


def _valid_bytecode(code: bytes, version: str) -> bool:
    """Whether ``code`` is well-formed wordcode for ``version`` (opcodes and cache layout)."""
    table = _BYTECODE[version]
    n = len(code)
    if n == 0 or n % 2:
        return False
    resume = _RESUME.get(version)
    prefix = _PRE_RESUME.get(version, set())
    seen_resume = resume is None
    i = 0
    while i < n:
        opc = code[i]
        entry = table[opc]
        if entry == "." or (opc == 0 and resume is not None):  # CACHE only follows its op
            return False
        if not seen_resume:
            if opc == resume:
                seen_resume = True
            elif opc not in prefix:
                return False
        i += 2
        for _ in range(ord(entry) - 48):
            if i + 1 >= n or code[i] or code[i + 1]:
                return False
            i += 2
    return seen_resume


def _python_for(arity: int, co_code: bytes | None) -> tuple[list[str], str]:
    """Candidate Python minors for a code object with ``arity`` constructor fields."""
    if arity == 20:
        return ["3.11"], "code-object layout with 20 fields (a 3.11 pre-release)"
    if arity == 17:
        return ["3.11"], "code-object layout with 17 fields (PyPy 3.11)"
    layout = _CODE_ARITY.get(arity)
    if layout is None:
        return [], f"unknown code-object layout ({arity} fields)"
    basis = f"code-object layout ({arity} fields: Python {layout[0]}-{layout[-1]})"
    if len(layout) == 1:
        basis = f"code-object layout ({arity} fields: Python {layout[0]})"
    if not co_code:
        return list(layout), basis
    valid = [v for v in layout if _valid_bytecode(co_code, v)]
    if valid:
        return valid, basis + " and bytecode"
    return list(layout), basis + "; the bytecode matches none of them (a newer Python?)"


def _as_bytes(m: _Machine, value: Any) -> bytes | None:
    if type(value) is bytes:
        return value
    if type(value) is str:
        return value.encode("latin-1", "replace")
    if type(value) is _Node and value.kind == K_BLOB and isinstance(value.info, Skipped):
        sk: Skipped = value.info
        if sk.length > 1 << 20:
            return sk.head
        return m.read_at(sk.offset, sk.length) or sk.head
    if type(value) is _Node and value.kind == K_BLOB and type(value.info) is bytes:
        return bytes(value.info)
    return None


def _code_facts(m: _Machine, code: Any) -> dict[str, Any]:
    """Name, file, line and Python versions of a code-object stand-in."""
    facts: dict[str, Any] = {}
    if type(code) is not _Node or code.kind != K_CODE or not isinstance(code.info, _ByValue):
        return facts
    seq = _seq(code.info.args)
    if seq is None:
        return facts
    if code.info.producer == "serdoctor":
        raw = _as_bytes(m, seq[0]) if seq else None
        return _marshal_code_facts(raw) if raw else facts
    if seq and type(seq[0]) is not int:  # dill >= 0.3.6 stores co_lnotab first
        seq = seq[1:]
    arity = len(seq)
    facts["arity"] = arity
    if arity == 15:
        idx = {"code": 5, "filename": 9, "name": 10, "firstlineno": 11}
    elif arity == 16:
        idx = {"code": 6, "filename": 10, "name": 11, "firstlineno": 12}
    elif arity in (17, 18, 20):
        idx = {"code": 6, "filename": 10, "name": 11, "qualname": 12, "firstlineno": 13}
    else:
        idx = {}
    for key, at in idx.items():
        if at < len(seq):
            facts[key] = seq[at]
    co_code = _as_bytes(m, facts.pop("code", None))
    facts["python"], facts["basis"] = _python_for(arity, co_code)
    return facts


def _state_parts(states: list[Any]) -> list[_Node]:
    """Dicts found in BUILD/setstate states: ``state`` or ``(state, slotstate)``."""
    out: list[_Node] = []
    for st in states:
        if type(st) is _Node and st.kind == K_DICT:
            out.append(st)
            continue
        for part in _seq(st) or []:
            if type(part) is _Node and part.kind == K_DICT:
                out.append(part)
    return out


def _lookup(dicts: list[_Node], key: str) -> Any:
    for d in dicts:
        for k, v in _dict_pairs(d) or []:
            if k == key:
                return v
    return None


def _closure_values(m: _Machine, closure: Any) -> list[str]:
    out = []
    for cell in _seq(closure) or []:
        if type(cell) is _Node and cell.kind == K_OBJ and isinstance(cell.info, _Call):
            inner = _seq(cell.info.args) or []
            out.append(m.render(inner[0], 2) if inner else "<empty cell>")
        else:
            out.append(m.render(cell, 2))
    return out


def _imports_in(m: _Machine, values: Iterable[Any]) -> list[str]:
    found: list[str] = []
    for v in values:
        if type(v) is _Node and v.kind == K_REF and v.flags & F_MODULE and v.info:
            found.append(str(v.info))
        elif type(v) is _Node and v.kind == K_GLOBAL and v.info is not None:
            found.append(v.info.target)
        elif type(v) is _Node and v.kind == K_LIST:
            found.extend(_imports_in(m, v.items or []))
    return found


def _describe(m: _Machine, bv: _ByValue, shallow: bool = False) -> ByValueCode:
    """Turn by-value machinery into a readable description."""
    seq = _seq(bv.args) or []
    out = ByValueCode(
        kind={K_FUNC: "function", K_CLASS: "class", K_CODE: "code"}[bv.kind],
        producer=bv.producer,
        offset=bv.node.pos,
    )
    dicts = _state_parts(bv.states)
    if bv.kind == K_CODE:
        facts = _code_facts(m, bv.node)
        _apply_facts(out, facts)
        return out
    if bv.kind == K_FUNC and bv.producer == "serdoctor":
        return _describe_serdoctor(m, bv, out, seq, shallow)
    if bv.kind == K_FUNC:
        code = seq[0] if seq else None
        if type(code) is _Node and code.kind == K_CODE:
            _apply_facts(
                out,
                _code_facts(m, code)
                if not shallow
                else {k: v for k, v in _code_facts(m, code).items() if k in ("name", "qualname")},
            )
        if len(seq) > 2 and type(seq[2]) is str:
            out.name = seq[2]
        qual = _lookup(dicts, "__qualname__")
        if type(qual) is str:
            out.qualname = qual
        if shallow:
            return out
        module = _lookup(dicts, "__module__")
        globals_dict = seq[1] if len(seq) > 1 else None
        g2 = _lookup(dicts, "__globals__")
        gdicts = [d for d in (globals_dict, g2) if type(d) is _Node and d.kind == K_DICT]
        if type(module) is not str:
            module = _lookup(gdicts, "__name__")
        out.module = module if type(module) is str else None
        names: list[str] = []
        values: list[Any] = []
        for d in gdicts:
            for k, v in _dict_pairs(d) or []:
                if type(k) is str and not k.startswith("__") and k not in names:
                    names.append(k)
                    values.append(v)
        out.globals = names
        closure = _lookup(dicts, "__closure__")
        if closure is None and len(seq) > 4:
            closure = seq[4]
        out.closure = _closure_values(m, closure)
        subs = _lookup(dicts, "_cloudpickle_submodules")
        hidden = _imports_in(m, [*values, subs, *(_seq(closure) or [])])
        cells = [
            c.info.args
            for c in _seq(closure) or []
            if type(c) is _Node and isinstance(c.info, _Call)
        ]
        for a in cells:
            hidden.extend(_imports_in(m, _seq(a) or []))
        out.hidden_imports = sorted(set(hidden))
        return out
    # classes: cloudpickle _make_skeleton_class(type_constructor, name, bases, type_kwargs,
    # tracker, extra) or _make_skeleton_enum(bases, name, qualname, members, module, ...);
    # raw type(name, bases, dict); dill _create_type(typeobj, name, bases, dict)
    bases: Any = None
    if bv.producer == "cloudpickle" and len(seq) >= 5 and type(seq[2]) is str:  # enum
        bases, out.name, out.qualname = seq[0], seq[1], seq[2]
        if type(seq[4]) is str:
            out.module = seq[4]
    elif bv.producer == "cloudpickle" and len(seq) >= 3:
        out.name = seq[1] if type(seq[1]) is str else None
        bases = seq[2]
        if len(seq) > 3 and type(seq[3]) is _Node:
            dicts.append(seq[3])
    elif len(seq) >= 3 and type(seq[0]) is str:
        out.name = seq[0]
        bases = seq[1]
        if type(seq[2]) is _Node:
            dicts.append(seq[2])
    elif len(seq) >= 4:
        out.name = seq[1] if type(seq[1]) is str else None
        bases = seq[2]
        if type(seq[3]) is _Node:
            dicts.append(seq[3])
    out.bases = [m.render(b, 1) for b in (_seq(bases) or [])]
    qual = _lookup(dicts, "__qualname__")
    if type(qual) is str:
        out.qualname = qual
    module = _lookup(dicts, "__module__")
    if type(module) is str:
        out.module = module
    methods = []
    for d in dicts:
        for k, v in _dict_pairs(d) or []:
            if type(v) is _Node and v.kind in (K_FUNC, K_OBJ, K_CLASS) and type(k) is str:
                methods.append(k)
    out.methods = methods
    return out


def _describe_serdoctor(
    m: _Machine, bv: _ByValue, out: ByValueCode, seq: list[Any], shallow: bool
) -> ByValueCode:
    """serdoctor's own reducer: ``_make_function(marshal bytes, globals, name, n_cells)``
    then ``_set_function_state(fn, (globals, cells, empty, attrs, fdict, submodules))``."""
    raw = _as_bytes(m, seq[0]) if seq else None
    if raw:
        _apply_facts(out, _marshal_code_facts(raw))
    if len(seq) > 2 and type(seq[2]) is str:
        out.name = seq[2]
    state: list[Any] = []
    for st in bv.states:
        state = _seq(st) or []
    attrs = state[3] if len(state) > 3 else None
    for key, value in _dict_pairs(attrs) or []:
        if key == "__qualname__" and type(value) is str:
            out.qualname = value
        if key == "__module__" and type(value) is str:
            out.module = value
    if shallow:
        return out
    base = seq[1] if len(seq) > 1 else None
    if out.module is None:
        name = _lookup([base] if type(base) is _Node else [], "__name__")
        out.module = name if type(name) is str else None
    f_globals = state[0] if state else None
    pairs = _dict_pairs(f_globals) or []
    out.globals = [k for k, _ in pairs if type(k) is str]
    cells = _seq(state[1]) if len(state) > 1 else None
    out.closure = [m.render(v, 2) for v in cells or []]
    subs = _seq(state[5]) if len(state) > 5 else None
    hidden = _imports_in(m, [v for _, v in pairs] + list(cells or []) + list(subs or []))
    out.hidden_imports = sorted(set(hidden))
    return out


_MARSHAL_STRINGS: Final = frozenset(b"uatAzZ")


def _marshal_code_facts(data: bytes) -> dict[str, Any]:
    """Name, file, line and Python versions of a marshalled code object.

    Reads the marshal format itself (never ``marshal.loads``, which is not
    safe on untrusted bytes): enough of it to reach the names and bytecode.
    """
    facts: dict[str, Any] = {}
    try:
        reader = _MarshalReader(data)
        code = reader.read(0)
    except (IndexError, ValueError, struct.error, RecursionError):
        return facts
    if not isinstance(code, dict):
        return facts
    arity = 18 if code.get("layout") == "3.11+" else 16
    facts.update({k: code[k] for k in ("name", "qualname", "filename", "firstlineno") if k in code})
    co_code = code.get("code")
    facts["python"], facts["basis"] = _python_for(
        arity, co_code if isinstance(co_code, bytes) else None
    )
    facts["basis"] = re.sub(
        r"code-object layout \(\d+ fields: ", "marshal code layout (", facts["basis"]
    )
    return facts


class _MarshalReader:
    """A read-only walker over marshal data (types 3.8-3.13 write for code objects)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0
        self.refs: list[Any] = []

    def _int(self) -> int:
        value = int(struct.unpack_from("<i", self.data, self.i)[0])
        self.i += 4
        return value

    def _take(self, n: int) -> bytes:
        if n < 0 or self.i + n > len(self.data):
            raise ValueError("marshal data truncated")
        chunk = self.data[self.i : self.i + n]
        self.i += n
        return chunk

    def read(self, depth: int) -> Any:
        if depth > 60:
            raise ValueError("marshal data nested too deep")
        code = self.data[self.i]
        self.i += 1
        flag = code & 0x80
        kind = code & 0x7F
        slot = -1
        if flag and kind in b"([{<>c":
            slot = len(self.refs)
            self.refs.append(None)
        value: Any
        if kind in b"NFTS.0":
            value = {0x4E: None, 0x46: False, 0x54: True}.get(kind)
        elif kind == 0x69:  # i
            value = self._int()
        elif kind == 0x6C:  # l: 15-bit digits
            n = self._int()
            self._take(2 * abs(n))
            value = 0
        elif kind == 0x67:  # g
            value = struct.unpack("<d", self._take(8))[0]
        elif kind == 0x79:  # y
            self._take(16)
            value = 0j
        elif kind in b"fx":
            value = self._take(self.data[self.i] + 1)
        elif kind == 0x73:  # s: bytes
            value = self._take(self._int())
        elif kind in _MARSHAL_STRINGS:
            size = self.data[self.i] if kind in b"zZ" else None
            if size is None:
                size = self._int()
            else:
                self.i += 1
            value = self._take(size).decode("utf-8", "surrogatepass")
        elif kind == 0x72:  # r: reference
            index = self._int()
            value = self.refs[index]
        elif kind in b"()[<>":
            if kind == 0x29:  # small tuple: one-byte length
                n = self.data[self.i]
                self.i += 1
            else:
                n = self._int()
            value = tuple(self.read(depth + 1) for _ in range(n))
        elif kind == 0x7B:  # {
            items = []
            while self.data[self.i] != 0x30:
                items.append((self.read(depth + 1), self.read(depth + 1)))
            self.i += 1
            value = dict(items) if all(isinstance(k, (str, int)) for k, _ in items) else {}
        elif kind == 0x63:  # c: a code object
            value = self._code(depth)
        else:
            raise ValueError(f"marshal type {kind!r} not understood")
        if flag:
            if slot >= 0:
                self.refs[slot] = value
            else:
                self.refs.append(value)
        return value

    def _code(self, depth: int) -> dict[str, Any]:
        start = self.i
        ints = [self._int() for _ in range(5)]
        layout = "3.11+"
        if self.data[self.i] & 0x7F != 0x73:  # a sixth int (co_flags): 3.8-3.10
            self.i = start
            ints = [self._int() for _ in range(6)]
            layout = "3.8-3.10"
        out: dict[str, Any] = {"layout": layout, "argcount": ints[0]}
        out["code"] = self.read(depth + 1)
        if layout == "3.11+":
            for _ in range(4):  # consts, names, localsplusnames, localspluskinds
                self.read(depth + 1)
            out["filename"] = self.read(depth + 1)
            out["name"] = self.read(depth + 1)
            out["qualname"] = self.read(depth + 1)
            out["firstlineno"] = self._int()
        else:
            for _ in range(5):  # consts, names, varnames, freevars, cellvars
                self.read(depth + 1)
            out["filename"] = self.read(depth + 1)
            out["name"] = self.read(depth + 1)
            out["firstlineno"] = self._int()
        self.read(depth + 1)  # linetable / lnotab
        if layout == "3.11+":
            self.read(depth + 1)  # exceptiontable
        return {k: v for k, v in out.items() if not isinstance(v, dict) or k == "layout"}


def _apply_facts(out: ByValueCode, facts: dict[str, Any]) -> None:
    if type(facts.get("name")) is str:
        out.name = facts["name"]
    if type(facts.get("qualname")) is str:
        out.qualname = facts["qualname"]
    if type(facts.get("filename")) is str:
        out.filename = facts["filename"]
    if type(facts.get("firstlineno")) is int:
        out.firstlineno = facts["firstlineno"]
    if "python" in facts:
        out.python = list(facts["python"])
        out.python_basis = str(facts["basis"])


# --------------------------------------------------------------------------
# Is it available here? (never imports the target)
# --------------------------------------------------------------------------


def _vtuple(text: str | None) -> tuple[int, ...]:
    out = []
    for part in (text or "").split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


class _Env:
    """Answers "is module.name available here?" from metadata and files only."""

    def __init__(self) -> None:
        self.specs: dict[str, tuple[Any, str]] = {}
        self.names: dict[str, tuple[set[str], bool] | None] = {}
        self._dists: dict[str, list[str]] | None = None
        self._dists_by_name: dict[str, tuple[str, str] | None] = {}

    def dists(self) -> dict[str, list[str]]:
        if self._dists is None:
            try:
                self._dists = dict(importlib.metadata.packages_distributions())
            except Exception:  # broken metadata must not break inspection
                self._dists = {}
        return self._dists

    def distribution(self, module: str) -> tuple[str | None, str | None, bool]:
        """``(distribution, version, stdlib)`` for a module's top-level package."""
        top = module.split(".")[0]
        stdlib_names: frozenset[str] = getattr(sys, "stdlib_module_names", frozenset())
        if top in stdlib_names or top in sys.builtin_module_names:
            return None, sys.version.split()[0], True
        if top not in self._dists_by_name:
            try:  # most distributions are named like their top-level module: no full scan
                dist = importlib.metadata.distribution(top)
                self._dists_by_name[top] = (dist.metadata["Name"] or top, dist.version)
            except Exception:
                self._dists_by_name[top] = None
        hit = self._dists_by_name[top]
        if hit is not None:
            return hit[0], hit[1], False
        for name in self.dists().get(top, []):
            try:
                return name, importlib.metadata.version(name), False
            except Exception:
                continue
        return None, None, False

    def spec(self, module: str) -> tuple[Any, str]:
        """``(spec or module or None, why-not)``; walks parents' search locations itself."""
        cached = self.specs.get(module)
        if cached is not None:
            return cached
        result = self._spec(module)
        self.specs[module] = result
        return result

    def _spec(self, module: str) -> tuple[Any, str]:
        parts = module.split(".")
        if not all(p.isidentifier() for p in parts):
            return None, f"{module!r} is not a valid module name"
        loaded = sys.modules.get(module)
        if loaded is not None:
            return loaded, ""
        spec: Any
        try:
            spec = importlib.util.find_spec(parts[0])
        except (ImportError, ValueError, AttributeError):
            spec = None
        except Exception:
            spec = None
        if spec is None:
            return None, f"module {parts[0]} is not installed"
        for depth in range(1, len(parts)):
            name = ".".join(parts[: depth + 1])
            parent = ".".join(parts[:depth])
            loaded = sys.modules.get(name)
            if loaded is not None:
                spec = loaded
                continue
            locations = getattr(spec, "submodule_search_locations", None)
            if locations is None:
                locations = getattr(spec, "__path__", None)
            if locations is None:
                return (
                    None,
                    f"{parent} is a module, not a package: it has no submodule {parts[depth]}",
                )
            try:
                spec = importlib.machinery.PathFinder.find_spec(name, list(locations))
            except Exception:
                spec = None
            if spec is None:
                return None, f"{parent} has no submodule {parts[depth]}"
        return spec, ""

    def top_names(self, module: str, spec: Any) -> tuple[set[str], bool] | None:
        """Top-level names a module defines, read from its source with ``ast``.

        The flag is True when the set may be incomplete (star imports,
        module ``__getattr__``). ``None`` when the source is not readable.
        """
        if module in self.names:
            return self.names[module]
        result: tuple[set[str], bool] | None = None
        if isinstance(spec, type(sys)):
            namespace = vars(spec)
            result = (set(namespace), "__getattr__" in namespace)
        else:
            origin = getattr(spec, "origin", None)
            if isinstance(origin, str) and origin.endswith(".py"):
                try:
                    if os.path.getsize(origin) <= 2 << 20:
                        with open(origin, "rb") as fh:
                            tree = ast.parse(fh.read(), origin)
                        result = _ast_names(tree)
                except (OSError, SyntaxError, ValueError, RecursionError):
                    result = None
        self.names[module] = result
        return result

    def check(self, module: str, name: str) -> Availability:
        """Availability of ``module.name`` (``name`` may be empty or dotted)."""
        if module == "__main__" or (module == "__builtin__" and name == "__main__"):
            detail = (
                "looked up in the __main__ module of the program that loads it: "
                "that program must define it"
            )
            if module == "__builtin__":
                detail = (
                    "dill's Unpickler maps __builtin__.__main__ to the loading program's "
                    "__main__ namespace: load with dill.load"
                )
            return Availability("main", detail)
        dist, version, stdlib = self.distribution(module)
        spec, why = self.spec(module)
        if spec is None:
            status = (
                "missing-module"
                if "not installed" in why or "valid" in why
                else "missing-submodule"
            )
            avail = Availability(status, why, dist, version, stdlib)
        else:
            origin = getattr(spec, "origin", None) or getattr(spec, "__file__", None)
            avail = Availability(
                "available", "", dist, version, stdlib, origin if isinstance(origin, str) else None
            )
            first = name.split(".")[0] if name else ""
            if first:
                names = self.top_names(module, spec)
                if names is not None and first not in names[0] and not names[1]:
                    sub, _ = self.spec(f"{module}.{first}") if first.isidentifier() else (None, "")
                    if sub is None:
                        avail.status = "missing-name"
                        avail.detail = f"{module} defines no top-level name {first}"
        self.apply_moves(module, avail)
        return avail

    def apply_moves(self, module: str, avail: Availability) -> None:
        for prefix, dist, (low, high), message in _KNOWN_MOVES:
            if module != prefix and not module.startswith(prefix + "."):
                continue
            here: tuple[int, ...]
            if dist is None:
                here = tuple(sys.version_info[:2])
            else:
                _, version, _ = self.distribution(prefix)
                here = _vtuple(version) if version else ()
            if not here:
                if not avail.ok:
                    avail.move = message
                continue
            too_low = low is not None and here < low
            too_high = high is not None and here >= high
            if too_low or too_high or (low is None and high is None):
                avail.move = message


def _ast_names(tree: ast.Module) -> tuple[set[str], bool]:
    names: set[str] = set()
    open_ended = False
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if node.name == "__getattr__":
                open_ended = True
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    open_ended = True
                else:
                    names.add(alias.asname or alias.name)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
            targets = (
                [node.target]
                if isinstance(node, (ast.For, ast.AsyncFor))
                else [item.optional_vars for item in node.items if item.optional_vars is not None]
            )
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
        elif isinstance(node, ast.Expr):
            for sub in ast.walk(node):
                if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                    names.add(sub.target.id)
                if (
                    isinstance(sub, ast.Call)
                    and isinstance(sub.func, ast.Name)
                    and sub.func.id in ("globals", "vars", "exec", "setattr")
                ):
                    open_ended = True
        for attr in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, attr, None)
            if isinstance(block, list) and not isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            ):
                for child in block:
                    if isinstance(child, ast.ExceptHandler):
                        todo.extend(child.body)
                    elif isinstance(child, ast.stmt):
                        todo.append(child)
    return names, open_ended


# --------------------------------------------------------------------------
# Paths of values
# --------------------------------------------------------------------------


def _key_text(key: Any) -> str:
    t = type(key)
    if t is str:
        return repr(key) if len(key) <= 40 else repr(key[:40]) + "…"
    if key is None or t in (int, float, bool, bytes):
        return repr(key)[:40]
    if t is tuple:
        return repr(key)[:40]
    return f"<{_type_name(key)}>"


def _path(node: _Node, stacked: bool) -> str:
    """``['payload'].weights[3]``-style path from the root to ``node``."""
    segs: list[str] = []
    cur: _Node | None = node
    seen: set[int] = set()
    prefix = ""
    while cur is not None:
        if id(cur) in seen:
            segs.append("<cycle>")
            break
        seen.add(id(cur))
        kt = cur.ktype
        if kt == KT_ROOT:
            prefix = f"#{cur.key + 1} " if stacked else ""
            break
        parent = cur.parent
        if parent is None:
            prefix = "<not stored in the result> "
            segs.append(f"@{cur.pos}")
            break
        if kt == KT_INDEX:
            segs.append(f"[{cur.key}]")
        elif kt == KT_MEMBER:
            segs.append("{member}")
        elif kt == KT_KEY:
            if parent.flags & F_ATTRS and type(cur.key) is str and cur.key.isidentifier():
                segs.append(f".{cur.key}")
            else:
                segs.append(f"[{_key_text(cur.key)}]")
        elif kt == KT_ARGS:
            segs.append(".args")
        elif kt == KT_STATE:
            if not cur.flags & F_ATTRS:
                segs.append(".state")
        elif kt == KT_KWARGS:
            segs.append(".kwargs")
        cur = parent
    segs.reverse()
    if len(segs) > 14:
        segs = [*segs[:5], f"…({len(segs) - 11} levels)…", *segs[-6:]]
    text = "".join(segs)
    if not text or text.startswith("."):
        text = "<root>" + text
    return prefix + text


# --------------------------------------------------------------------------
# Putting the report together
# --------------------------------------------------------------------------


def _finish(m: _Machine, report: InspectReport, env: _Env) -> None:
    """Fill ``report`` from the machine's observations (also after an error)."""
    report.pickles = list(m.pickles)
    report.pickle_count = m.pickle_count
    report.totals = dict(m.totals)
    stacked = m.pickle_count > 1
    imports = sorted(m.imports.values(), key=lambda i: i.offsets[0] if i.offsets else 0)
    for info in imports:
        info.availability = env.check(info.module, info.name)
    report.imports = imports
    producers: list[str] = []
    if any(i.module.startswith("cloudpickle") for i in imports):
        producers.append("cloudpickle")
    if any(i.module.startswith("dill") for i in imports) or m.dill_main:
        producers.append("dill")
    report.producer = producers or (["pickle"] if m.pickles else [])
    inner = {
        id(code) for bv in m.by_value if bv.kind == K_FUNC for code in (_seq(bv.args) or [None])[:1]
    }
    report.by_value = [
        _describe(m, bv) for bv in m.by_value if not (bv.kind == K_CODE and id(bv.node) in inner)
    ]
    for d in report.by_value:
        if d.python and RUNNING_PYTHON not in d.python:
            m.finding(
                WARNING,
                "python-mismatch",
                f"by-value {d.kind} {d.qualname or d.name or '?'} was compiled by Python "
                f"{', '.join(d.python)} ({d.python_basis}); this is Python {RUNNING_PYTHON}: "
                "loading it here fails or runs wrong bytecode. Load it with that Python, or "
                "make the code importable so it travels by reference",
                d.offset,
                d.qualname or d.name,
            )
    leaves = sorted(m.leaves, key=lambda t: (-t[0], t[1]))
    report.largest = [
        ValueInfo(_path(n, stacked), _leaf_type(n), n.size, n.pos) for _, _, n in leaves
    ]
    boxes = sorted(m.boxes, key=lambda t: (-t[0], t[1]))
    report.containers = [
        ValueInfo(
            _path(n, stacked),
            f"{n.label}(…)" if n.kind == K_OBJ else _type_name(n),
            n.size,
            n.pos,
            n.count if n.kind != K_OBJ else None,
            True,
        )
        for _, _, n in boxes
        if n.ktype != KT_ARGS
    ]
    lines = list(dict.fromkeys(m.sketch_imports))
    report.sketch = lines + ([""] if lines else []) + m.sketch
    if m.sketch_full:
        report.sketch.append("# … (sketch truncated)")
    report.findings = sorted(
        m.findings,
        key=lambda f: (
            {DANGEROUS: 0, WARNING: 1, INFO: 2}.get(f.severity, 3),
            f.offset if f.offset is not None else -1,
        ),
    )
    report.truncated_lists = len(m.by_value) >= MAX_BY_VALUE or len(m.findings) >= MAX_FINDINGS


def _leaf_type(node: _Node) -> str:
    return str(node.label)


def _predict(m: _Machine, report: InspectReport) -> LoadPrediction:
    """What loading the file here would need, and what would stop it."""
    envelope = report.envelope
    dill = "dill" in report.producer
    if envelope is not None:
        loader = "serdoctor.loads"
        call = "serdoctor.loads(data)"
        if envelope.signed:
            call = "serdoctor.Serializer(key=KEY).loads(data)"
    elif dill:
        loader = "dill.load"
        call = "dill.load(f)"
    else:
        loader = "pickle.load"
        call = "pickle.load(f)"
    buffers = report.out_of_band_buffers
    pred = LoadPrediction(loader, call, True, buffers=buffers)
    if envelope is None:
        extras = []
        if buffers:
            extras.append("buffers=buffers")
        if m.nonascii_strings:
            extras.append('encoding="latin1"')
        if extras:
            pred.call = f"{loader}(f, {', '.join(extras)})"
        if report.pickle_count > 1:
            pred.call += f"  # {report.pickle_count} times: one call per stacked pickle"
    if "cloudpickle" in report.producer:
        pred.needs.append("cloudpickle installed where it is loaded (pickle.load works)")
    if dill:
        pred.needs.append(
            "dill installed; load with dill.load (its Unpickler resolves dill-specific references)"
        )
    for info in report.imports:
        av = info.availability
        if av is None or av.ok:
            if av is not None and av.move:
                pred.needs.append(f"{info.target}: {av.move}")
            continue
        if av.status == "main":
            if info.module == "__main__":
                pred.main_names.append(info.name)
            continue
        if (
            av.status in ("missing-module", "missing-submodule")
            and info.module not in pred.missing_modules
        ):
            pred.missing_modules.append(info.module)
        text = f"{info.target}: {av.detail}"
        if av.move:
            text += f" ({av.move})"
        pred.problems.append(text)
    for name in pred.main_names:
        pred.problems.append(
            f"__main__.{name}: the program that loads the pickle must define {name} in its "
            "__main__ module (or the sender must pass it by value)"
        )
    for d in report.by_value:
        if d.python and RUNNING_PYTHON not in d.python:
            pred.problems.append(
                f"by-value {d.kind} {d.qualname or d.name or '?'} needs Python "
                f"{' or '.join(d.python)}; this is {RUNNING_PYTHON}"
            )
    if buffers and envelope is None:
        pred.problems.append(
            f"needs {buffers} out-of-band buffer(s) that are not in this file: pass them "
            "with buffers= (pickle.load raises without them)"
        )
    if m.nonascii_strings and envelope is None:
        pred.problems.append(
            "holds Python 2 byte strings with non-ASCII bytes: pickle.load(f) raises "
            'UnicodeDecodeError unless given encoding="latin1" (numpy, datetime data) or '
            'encoding="bytes"'
        )
    if m.persids and not m.envelope_persistent:
        pred.problems.append("uses persistent IDs: needs an Unpickler with persistent_load")
    for code in m.ext_codes:
        pred.problems.append(f"copyreg extension code {code} is not registered here")
    if envelope is not None:
        for module, avail in envelope.requirements.items():
            if not avail.ok and avail.status != "main" and module not in pred.missing_modules:
                pred.missing_modules.append(module)
                pred.problems.append(f"requires {module}: {avail.detail}")
        if envelope.by_value and ".".join(envelope.python.split(".")[:2]) != RUNNING_PYTHON:
            pred.problems.append(
                f"by-value payload made by Python {envelope.python}; this is "
                f"{sys.version.split()[0]}: serdoctor.loads refuses it "
                "(IncompatiblePythonError)"
            )
    if report.error is not None:
        pred.problems.append(f"loading fails at byte {report.error.offset}: {report.error.message}")
    pred.would_load = not pred.problems
    return pred


def _sniff(head: bytes) -> str | None:
    """Name common non-pickle formats from their first bytes."""
    known = (
        (b"\x1f\x8b", "a gzip stream: decompress it, then inspect the result"),
        (b"BZh", "a bzip2 stream: decompress it, then inspect the result"),
        (b"\xfd7zXZ\x00", "an xz stream: decompress it, then inspect the result"),
        (b"\x28\xb5\x2f\xfd", "a zstandard stream: decompress it, then inspect the result"),
        (
            b"PK\x03\x04",
            "a zip archive (torch.save and numpy .npz write these): extract the "
            "pickle inside it (e.g. */data.pkl) and inspect that",
        ),
        (b"\x93NUMPY", "a numpy .npy file: read it with numpy.load(allow_pickle=False)"),
        (b"\x89HDF", "an HDF5 file"),
        (b"PAR1", "a Parquet file"),
        (b"\x7fELF", "an executable (ELF)"),
    )
    for magic, what in known:
        if head.startswith(magic):
            return what
    return None


def _analyse(f: BinaryIO, report: InspectReport) -> None:
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
        m.envelope_persistent = True  # serdoctor.loads resolves its own persistent IDs
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
                report.error = exc
                summary = m.summary
                if index > 0 and summary.opcodes <= 1:
                    report.error_kind = "trailing-data"
                    left = (end - begin) if end is not None else None
                    report.hint = (
                        f"pickle #{index} ended at byte {begin}; the "
                        f"{left if left is not None else 'remaining'} bytes after "
                        "it are not a pickle"
                    )
                    if m.pickles and m.pickles[-1] is summary:
                        m.pickles.pop()
                    m.pickle_count -= 1
                elif index == 0 and summary.opcodes <= 1:
                    report.error_kind = "not-a-pickle"
                    report.format = report.format if report.envelope else "not-a-pickle"
                    report.hint = "the file does not start with a pickle opcode"
                elif "truncated" in exc.message:
                    report.error_kind = "truncated"
                else:
                    report.error_kind = "malformed"
                break
            index += 1
            if src.at_end():
                break
    finally:
        if gc_was_enabled:
            gc.enable()
        _finish(m, report, env)
        report.load = _predict(m, report)


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
    report.envelope = EnvelopeInfo(
        method=header.method,
        python=header.python,
        implementation=header.implementation,
        by_value=header.by_value,
        signed=header.signed,
        requires=dict(header.requires),
        libraries=dict(header.libraries),
        buffers=list(header.buffers),
        body_offset=head_size,
        body_size=header.body,
        serdoctor=header.serdoctor,
        extra=dict(header.extra),
        requirements=requirements,
    )
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


def inspect_file(path: str | os.PathLike[str]) -> InspectReport:
    """Inspect the pickle or serdoctor envelope at ``path`` without executing it.

    Streams the file (memory stays far below its size), imports nothing it
    names, and returns an :class:`InspectReport`; ``report.exit_code`` is 0
    (clean), 1 (dangerous), 2 (malformed, not a pickle, unreadable) or 3
    (internal error). Never raises for bad input.
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
        return inspect_stream(f, text)


def inspect_bytes(data: bytes | bytearray | memoryview) -> InspectReport:
    """Inspect pickle or envelope bytes already in memory (see :func:`inspect_file`)."""
    return inspect_stream(io.BytesIO(bytes(data)), None)

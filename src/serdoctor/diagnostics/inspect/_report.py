"""What ``ser-doctor inspect`` reports: :class:`InspectReport` and its records.

Plain dataclasses (imports, by-value code, findings, value sizes, envelope
header, load prediction), each with ``to_dict`` in the versioned JSON schema
(docs/inspect-schema.md). Nothing here reads a pickle.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Final

from serdoctor.diagnostics.inspect.machine._opcodes import PickleFormatError
from serdoctor.serialize._envelope import Header
from serdoctor.serialize._environment import PYTHON_MINOR

SCHEMA: Final = "serdoctor-inspect"
SCHEMA_VERSION: Final = 1

RUNNING_PYTHON: Final = PYTHON_MINOR  # the stack's own "3.11"

DANGEROUS: Final = "dangerous"
WARNING: Final = "warning"
INFO: Final = "info"


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
        """How loading uses an import: ``called`` or ``referenced``.

        ``called`` if loading calls it (REDUCE, NEWOBJ, INST, OBJ, BUILD), else
        ``referenced``.
        """
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
    """A serdoctor envelope: the stack's own ``Header``, where the body is, what it needs here."""

    header: Header
    body_offset: int
    requirements: dict[str, Availability] = field(default_factory=dict)

    method = property(lambda self: self.header.method, doc="The method that wrote the body.")
    python = property(lambda self: self.header.python, doc="The sender's Python version.")
    implementation = property(lambda self: self.header.implementation, doc="e.g. cpython.")
    by_value = property(lambda self: self.header.by_value, doc="Code sent by value?")
    signed = property(lambda self: self.header.signed, doc="Has an HMAC tag?")
    requires = property(lambda self: self.header.requires, doc="Modules and versions needed.")
    libraries = property(lambda self: self.header.libraries, doc="The method's libraries.")
    body_size = property(lambda self: self.header.body, doc="The body's length.")
    serdoctor = property(lambda self: self.header.serdoctor, doc="The writer's version.")
    extra = property(lambda self: self.header.extra, doc="Optional header fields.")

    @property
    def buffers(self) -> list[int]:
        """The out-of-band buffers' lengths."""
        return list(self.header.buffers)

    @property
    def python_minor(self) -> str:
        """The sender's Python major.minor."""
        return self.header.python_minor

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
        from serdoctor._version import __version__

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

"""Printing an :class:`InspectReport`: a rich, readable report or versioned JSON.

``run_inspect`` is what ``ser-doctor inspect FILE [--json] [--sketch]`` calls::

    inspect_file(path) ──▶ InspectReport ──▶ render_report() ─▶ console   (default)
                                        └──▶ to_json()      ─▶ console   (--json)
    return report.exit_code   0 clean · 1 dangerous · 2 malformed · 3 internal error

It never raises and never prints a traceback: an unexpected failure becomes
exit code 3 with a one-line message.
"""

from __future__ import annotations

import contextlib
import os

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from serdoctor.diagnostics.inspect._api import inspect_file
from serdoctor.diagnostics.inspect._report import (
    DANGEROUS,
    INFO,
    RUNNING_PYTHON,
    WARNING,
    Availability,
    InspectReport,
)
from serdoctor.serialize._sizes import format_size

__all__ = ["render_report", "run_inspect"]

MAX_IMPORT_ROWS = 60
MAX_FINDING_ROWS = 40

_VERDICT_STYLE = {
    "clean": ("bold green", "no dangerous calls found"),
    "dangerous": ("bold red", "loading this file would run dangerous code"),
    "malformed": ("bold yellow", "not a well-formed pickle"),
    "internal-error": ("bold magenta", "ser-doctor failed while inspecting"),
}


def _avail_text(av: Availability | None) -> Text:
    if av is None:
        return Text("?", style="dim")
    where = ""
    if av.stdlib:
        where = "stdlib"
    elif av.distribution:
        where = f"{av.distribution} {av.version or ''}".strip()
    if av.status == "available":
        text = Text("✓ ", style="green")
        text.append(where or "installed")
        if av.move:
            text.append(f" — {av.move}", style="yellow")
        return text
    if av.status == "main":
        return Text("◆ defined by the loading program (__main__)", style="cyan")
    text = Text("✗ ", style="red")
    text.append(av.detail or av.status)
    if av.move:
        text.append(f" — {av.move}", style="yellow")
    return text


def _header(report: InspectReport) -> RenderableType:
    lines = Text()
    lines.append("ser-doctor inspect ", style="bold")
    lines.append(report.path or "<bytes>")
    if report.size is not None:
        lines.append(f"  ({format_size(report.size)})", style="dim")
    lines.append("\n")
    fmt = report.format
    if report.pickles:
        first = report.pickles[0]
        protos = sorted({p.protocol for p in report.pickles})
        made = f", made by {' + '.join(report.producer)}" if report.producer else ""
        fmt_text = "serdoctor envelope, body: pickle" if report.envelope else "pickle"
        lines.append(f"format: {fmt_text}, protocol {', '.join(map(str, protos))}{made}")
        count = max(report.pickle_count, len(report.pickles))
        ops = report.totals.get("opcodes", sum(p.opcodes for p in report.pickles))
        frames = sum(p.frames for p in report.pickles)
        lines.append(
            f"  ·  {count} pickle{'s' if count != 1 else ''}, {ops:,} opcodes", style="dim"
        )
        if frames:
            lines.append(f", {frames:,} frames", style="dim")
        if first.root:
            lines.append(f"  ·  result: {first.root}", style="dim")
    else:
        lines.append(f"format: {fmt}")
    lines.append("\n")
    style, what = _VERDICT_STYLE[report.verdict]
    lines.append("verdict: ", style="bold")
    lines.append(report.verdict.upper(), style=style)
    detail = what
    if report.verdict == "dangerous":
        n = len(report.dangerous)
        detail = f"{n} dangerous finding{'s' if n != 1 else ''}: {what}"
    lines.append(f" — {detail}  (exit {report.exit_code})")
    return lines


def _envelope(report: InspectReport) -> RenderableType | None:
    env = report.envelope
    if env is None:
        return None
    text = Text()
    text.append("Envelope\n", style="bold underline")
    text.append(f"  method {env.method} · Python {env.python} ({env.implementation})")
    if env.python_minor != RUNNING_PYTHON:
        text.append(f" — this is {RUNNING_PYTHON}", style="yellow")
    text.append(" · by value" if env.by_value else " · by reference")
    text.append(
        " · signed (HMAC-SHA256)" if env.signed else " · not signed",
        style="green" if env.signed else "yellow",
    )
    text.append(f" · body {format_size(env.body_size)}")
    if env.buffers:
        sizes = ", ".join(format_size(b) for b in env.buffers[:5])
        text.append(f" · {len(env.buffers)} out-of-band buffer(s): {sizes}")
    text.append(f" · written by serdoctor {env.serdoctor}\n", style="dim")
    if env.libraries:
        libs = ", ".join(f"{k} {v}" for k, v in env.libraries.items())
        text.append(f"  libraries where it was made: {libs}\n", style="dim")
    if env.requires:
        text.append("  requires:\n")
        for module, version in env.requires.items():
            text.append(f"    {module}")
            text.append(f" ({version} where it was made)" if version else "", style="dim")
            text.append("  ")
            text.append_text(_avail_text(env.requirements.get(module)))
            text.append("\n")
    return text


def _findings(report: InspectReport) -> RenderableType | None:
    if not report.findings:
        return None
    text = Text()
    text.append("Findings\n", style="bold underline")
    marks = {
        DANGEROUS: ("✗ DANGEROUS", "bold red"),
        WARNING: ("! warning", "yellow"),
        INFO: ("· info", "dim"),
    }
    for finding in report.findings[:MAX_FINDING_ROWS]:
        label, style = marks.get(finding.severity, ("·", ""))
        text.append(f"  {label} ", style=style)
        text.append(f"{finding.category}", style="bold" if finding.severity == DANGEROUS else "")
        if finding.offset is not None:
            text.append(f" @{finding.offset}", style="dim")
        text.append(f"  {finding.message}\n")
        if finding.expression:
            text.append("      ")
            text.append(finding.expression[:300], style="cyan")
            text.append("\n")
    hidden = len(report.findings) - MAX_FINDING_ROWS
    if hidden > 0:
        text.append(f"  … {hidden} more (see --json)\n", style="dim")
    return text


def _imports(report: InspectReport) -> RenderableType | None:
    if not report.imports:
        return None
    table = Table(
        title=f"Imports ({len(report.imports)})",
        title_justify="left",
        title_style="bold underline",
        box=None,
        pad_edge=False,
        show_edge=False,
    )
    table.add_column("at", style="dim", justify="right")
    table.add_column("import")
    table.add_column("at load")
    table.add_column("here")
    for info in report.imports[:MAX_IMPORT_ROWS]:
        offsets = ", ".join(f"@{o}" for o in info.offsets[:2])
        if len(info.offsets) > 2:
            offsets += " …"
        name = Text(info.target)
        if info.category in (
            "shell",
            "exec",
            "import",
            "file",
            "network",
            "unpickle",
            "native",
            "interpreter",
        ):
            name.stylize("red")
        if info.original:
            name.append(f" (was {info.original})", style="dim")
        use = Text(
            f"called x{info.calls}" if info.calls > 1 else info.use,
            style="bold" if info.calls else "dim",
        )
        table.add_row(offsets, name, use, _avail_text(info.availability))
    if len(report.imports) > MAX_IMPORT_ROWS:
        table.add_row(
            "",
            Text(f"… {len(report.imports) - MAX_IMPORT_ROWS} more (see --json)", style="dim"),
            "",
            "",
        )
    return table


def _by_value(report: InspectReport) -> RenderableType | None:
    if not report.by_value:
        return None
    text = Text()
    text.append(f"Code sent by value ({len(report.by_value)})\n", style="bold underline")
    for code in report.by_value:
        text.append(f"  {code.kind} ")
        text.append(code.qualname or code.name or "<unnamed>", style="bold")
        text.append(f"  ({code.producer}) @{code.offset}", style="dim")
        if code.module:
            text.append(f"  module {code.module}", style="dim")
        if code.filename:
            line = f":{code.firstlineno}" if code.firstlineno is not None else ""
            text.append(f"  {code.filename}{line}", style="dim")
        text.append("\n")
        if code.python:
            ok = code.matches_running_python
            text.append("    needs Python ")
            text.append(" or ".join(code.python), style="green" if ok else "red")
            text.append(f"  ({code.python_basis})", style="dim")
            if ok is False:
                text.append(f" — this is {RUNNING_PYTHON}", style="red")
            text.append("\n")
        if code.closure:
            text.append(f"    closure: {', '.join(code.closure[:8])}\n")
        if code.globals:
            text.append(f"    globals: {', '.join(code.globals[:12])}\n", style="dim")
        if code.hidden_imports:
            text.append(f"    hidden imports: {', '.join(code.hidden_imports[:12])}\n")
        if code.bases:
            text.append(f"    bases: {', '.join(code.bases)}\n", style="dim")
        if code.methods:
            text.append(f"    methods: {', '.join(code.methods[:12])}\n", style="dim")
    return text


def _values(report: InspectReport) -> RenderableType | None:
    if not report.pickles:
        return None
    text = Text()
    text.append("Where the bytes go\n", style="bold underline")
    for value in report.largest:
        text.append(f"  {value.path}: ", style="bold")
        text.append(f"{value.type}, {format_size(value.size)} @{value.offset}\n")
    if not report.largest:
        text.append("  no value larger than 256 bytes\n", style="dim")
    for box in report.containers[:5]:
        what = f"{box.type} of {box.items:,} items" if box.items is not None else box.type
        text.append(f"  {box.path}: {what}, ~{format_size(box.size)} @{box.offset}\n", style="dim")
    text.append(
        f"  nesting depth {report.max_depth:,} · memo {report.memo_entries:,} "
        f"entries · out-of-band buffers {report.out_of_band_buffers}"
    )
    cycles = sum(p.cycles for p in report.pickles)
    if cycles:
        text.append(f" · {cycles} self-reference(s)")
    text.append("\n")
    return text


def _load(report: InspectReport) -> RenderableType | None:
    pred = report.load
    if pred is None or not report.pickles:
        return None
    text = Text()
    text.append("Loading it here\n", style="bold underline")
    text.append(f"  {pred.call}  ")
    if pred.would_load:
        text.append("✓ would load here", style="green")
    else:
        text.append("✗ would not load here", style="red")
    if report.dangerous:
        text.append("  (and would run the dangerous calls above)", style="bold red")
    text.append("\n")
    for problem in pred.problems:
        text.append("    ✗ ", style="red")
        text.append(problem + "\n")
    for need in pred.needs:
        text.append("    · ", style="dim")
        text.append(need + "\n", style="dim")
    return text


def _error(report: InspectReport) -> RenderableType | None:
    if report.internal_error is not None:
        text = Text()
        text.append("Internal error: ", style="bold magenta")
        text.append(
            f"ser-doctor failed while inspecting ({report.internal_error}). This is a "
            "bug in ser-doctor, not a verdict on the file; what was found before the "
            "failure is shown above.\n"
        )
        return text
    if report.error is None and report.error_kind is None:
        return None
    text = Text()
    kind = (report.error_kind or "malformed").replace("-", " ")
    text.append(f"{kind.capitalize()}: ", style="bold yellow")
    if report.error is not None:
        text.append(f"at byte {report.error.offset}")
        if report.error.opcode:
            text.append(f" ({report.error.opcode})")
        text.append(f": {report.error.message}")
    if report.hint:
        text.append(f"{'; ' if report.error is not None else ''}{report.hint}")
    text.append("\n")
    if report.pickles and report.error is not None:
        text.append(
            "  Everything above was found before this point; a malformed pickle "
            "can still run code before loading fails.\n",
            style="dim",
        )
    return text


def _sketch(report: InspectReport) -> RenderableType | None:
    if not report.sketch:
        return None
    code = "\n".join(report.sketch)
    return Group(
        Text("Sketch of what loading would do", style="bold underline"),
        Syntax(code, "python", theme="ansi_dark", word_wrap=True, background_color="default"),
    )


def render_report(report: InspectReport, *, sketch: bool = False) -> RenderableType:
    """The rich renderable for ``report`` (add the pseudo-Python sketch with ``sketch``)."""
    parts: list[RenderableType] = [_header(report)]
    for part in (
        _envelope(report),
        _findings(report),
        _imports(report),
        _by_value(report),
        _values(report),
        _load(report),
        _sketch(report) if sketch else None,
        _error(report),
    ):
        if part is not None:
            if isinstance(part, Text):
                part.rstrip()
            parts.append(Text(""))
            parts.append(part)
    return Group(*parts)


#: Files at least this large get a progress bar (on a terminal, never with --json).
PROGRESS_FROM = 16 << 20


def _inspect_with_progress(path: str, console: Console, *, show: bool) -> InspectReport:
    """``inspect_file``, with a transient progress bar for a large file on a terminal."""
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    if not (show and console.is_terminal and size >= PROGRESS_FROM):
        return inspect_file(path)
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "[bold]inspecting", BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("inspect", total=size)
        return inspect_file(path, progress=lambda done: bar.update(task, completed=done))


def run_inspect(
    path: str,
    *,
    json_output: bool = False,
    sketch: bool = False,
    console: Console | None = None,
) -> int:
    """Inspect ``path``, print the report (or JSON) and return the exit code.

    0: nothing dangerous; 1: dangerous findings (also when the file is
    malformed after them); 2: malformed, not a pickle, or unreadable (what was
    found before the error is printed); 3: internal error. Never raises and
    never prints a traceback (set ``SERDOCTOR_DEBUG=1`` to re-raise internal errors).
    """
    out = console if console is not None else Console()
    try:
        report = _inspect_with_progress(path, out, show=not json_output)
    except Exception as exc:  # inspect_file does not raise; this is a last resort
        if os.environ.get("SERDOCTOR_DEBUG"):
            raise
        report = InspectReport(path=path, size=None)
        report.internal_error = f"{type(exc).__name__}: {exc}"
    if report.internal_error is not None and os.environ.get("SERDOCTOR_DEBUG"):
        raise RuntimeError(report.internal_error)
    try:
        if json_output:
            out.out(report.to_json(sketch=sketch), highlight=False)
        else:
            out.print(render_report(report, sketch=sketch))
    except Exception as exc:
        if os.environ.get("SERDOCTOR_DEBUG"):
            raise
        with contextlib.suppress(Exception):
            out.print(
                escape(
                    f"ser-doctor inspect: internal error while printing the report "
                    f"({type(exc).__name__}: {exc})"
                ),
                markup=True,
            )
        return 3
    return report.exit_code

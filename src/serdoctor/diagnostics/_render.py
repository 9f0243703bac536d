"""How ``ser-doctor check`` and ``ser-doctor env`` draw their results (rich).

The inspector draws its own, larger report in its package; everything else the
CLI shows is drawn here, from the data objects the commands compute.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from serdoctor.diagnostics._check import CheckReport
from serdoctor.serialize import Environment, EnvironmentDiff

_FINGERPRINT_FIELDS = (
    "python",
    "implementation",
    "platform",
    "machine",
    "byteorder",
    "serdoctor",
    "format",
    "cloudpickle",
    "dill",
)
_SEVERITY_STYLE = {"breaks": "red", "may matter": "yellow", "info": "dim"}


def json_text(text: str) -> None:
    """Machine-readable output: the JSON text alone on stdout, no colour, no wrapping."""
    sys.stdout.write(text + "\n")


def error(console: Console, message: str) -> None:
    """One red line on the error console: what went wrong, never a traceback."""
    Console(stderr=True, force_terminal=console.is_terminal).print(
        f"[red]error:[/red] {message}", highlight=False
    )


def check_report(console: Console, report: CheckReport) -> None:
    """The readable form of a :class:`CheckReport`, green when it can be sent."""
    style = "green" if report.exit_code == 0 else "red"
    console.print(str(report), style=style, highlight=False, markup=False)


def environment(console: Console, fingerprint: Environment) -> None:
    """A two-column table of the fingerprint's main fields."""
    table = Table(title="serdoctor environment", show_header=False)
    for name in _FINGERPRINT_FIELDS:
        table.add_row(name, str(getattr(fingerprint, name)))
    table.add_row("distributions", f"{len(fingerprint.distributions)} installed")
    console.print(table)


def environment_diff(console: Console, diff: EnvironmentDiff, here: str, there: str) -> None:
    """Each difference with its severity and why it matters."""
    if not diff:
        console.print("the environments match", style="green")
        return
    table = Table(title=f"{here} (A) vs {there} (B)")
    for column in ("", "what", "A", "B", "why it matters"):
        table.add_column(column)
    for d in diff.differences:
        table.add_row(
            d.severity, d.what, str(d.here), str(d.there), d.why, style=_SEVERITY_STYLE[d.severity]
        )
    console.print(table)

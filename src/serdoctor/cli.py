"""``ser-doctor``: the command line, a thin layer over plain functions.

Each command calls one function that returns data (``check``,
``environment``, ``Environment.diff``, ``run_inspect``) and renders it as
rich text or, with ``--json``, as JSON. Errors are reported in one line with
a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from serdoctor import __version__

app = typer.Typer(
    name="ser-doctor",
    help="Diagnose how Python objects are serialized, and why loading them fails.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
env_app = typer.Typer(
    help="Print this environment's fingerprint, or compare two with `env diff A B`.",
    invoke_without_command=True,
    add_completion=False,
)
app.add_typer(env_app, name="env")

console = Console()
err_console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ser-doctor {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = None,
) -> None:
    """Diagnose how Python objects are serialized, and why loading them fails."""


@app.command("inspect")
def inspect_command(
    file: Annotated[str, typer.Argument(help="A serdoctor payload or any pickle file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    sketch: Annotated[bool, typer.Option("--sketch", help="Show what loading would do.")] = False,
) -> None:
    """Read a payload or pickle WITHOUT executing it: imports, code, dangers, sizes.

    Exit codes: 0 nothing dangerous, 1 dangerous findings, 2 malformed or not a
    pickle, 3 internal error.
    """
    from serdoctor.diagnostics import run_inspect

    raise typer.Exit(run_inspect(file, json_output=as_json, sketch=sketch, console=console))


@app.command("check")
def check_command(
    target: Annotated[str, typer.Argument(help="module:attribute, or a payload file.")],
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Also load it in a fresh interpreter.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Can this object be sent? Which method, why; if not, the exact sub-object and a remedy.

    Exit code 0 when it can be sent (and arrived, with --fresh), 1 when not.
    """
    from serdoctor.diagnostics._check import check, load_target

    try:
        name, obj = load_target(target)
    except Exception as exc:
        err_console.print(f"[red]error:[/red] cannot load {target!r}: {type(exc).__name__}: {exc}")
        raise typer.Exit(2) from None
    report = check(obj, fresh=fresh, name=name)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        style = "green" if report.exit_code == 0 else "red"
        console.print(str(report), style=style, highlight=False, markup=False)
    raise typer.Exit(report.exit_code)


@env_app.callback()
def env_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print this environment's fingerprint (Python, serializers, distributions)."""
    if ctx.invoked_subcommand is not None:
        return
    from serdoctor.serialize import environment

    fingerprint = environment()
    if as_json:
        typer.echo(fingerprint.to_json())
        return
    table = Table(title="serdoctor environment", show_header=False)
    for field_name in (
        "python",
        "implementation",
        "platform",
        "machine",
        "byteorder",
        "serdoctor",
        "format",
        "cloudpickle",
        "dill",
    ):
        table.add_row(field_name, str(getattr(fingerprint, field_name)))
    table.add_row("distributions", f"{len(fingerprint.distributions)} installed")
    console.print(table)


@env_app.command("diff")
def env_diff_command(
    here: Annotated[str, typer.Argument(help="Fingerprint file (env --json) of side A.")],
    there: Annotated[str, typer.Argument(help="Fingerprint file (env --json) of side B.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Compare two fingerprints; exit 1 when a difference matters for payloads."""
    from serdoctor.serialize import Environment

    try:
        a, b = Environment.load(here), Environment.load(there)
    except (OSError, ValueError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    diff = a.diff(b)
    if as_json:
        typer.echo(json.dumps(diff.to_dict(), indent=2))
    elif not diff:
        console.print("the environments match", style="green")
    else:
        table = Table(title=f"{here} (A) vs {there} (B)")
        for column in ("", "what", "A", "B", "why it matters"):
            table.add_column(column)
        colours = {"breaks": "red", "may matter": "yellow", "info": "dim"}
        for d in diff.differences:
            table.add_row(
                d.severity, d.what, str(d.here), str(d.there), d.why, style=colours[d.severity]
            )
        console.print(table)
    raise typer.Exit(1 if diff.matters else 0)


if __name__ == "__main__":
    app()

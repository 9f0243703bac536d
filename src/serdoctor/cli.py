"""``ser-doctor``: the command line, a thin layer over plain functions.

Each command parses its arguments and calls one ``run_*`` function of
:mod:`serdoctor.diagnostics`, which computes the result, renders it (rich text,
or JSON with ``--json``) and returns the exit code. Errors are reported in one
line with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

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
checkpoint_app = typer.Typer(
    help="List, inspect and prune a checkpoint store (serdoctor.Checkpoint).",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(checkpoint_app, name="checkpoint")

console = Console()


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

    Exit code 0 when it can be sent (and arrived, with --fresh), 1 when not,
    2 when the target cannot be loaded.
    """
    from serdoctor.diagnostics import run_check

    raise typer.Exit(run_check(target, fresh=fresh, json_output=as_json, console=console))


@env_app.callback()
def env_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print this environment's fingerprint (Python, serializers, distributions)."""
    if ctx.invoked_subcommand is not None:
        return
    from serdoctor.diagnostics import run_env

    raise typer.Exit(run_env(json_output=as_json, console=console))


@env_app.command("diff")
def env_diff_command(
    here: Annotated[str, typer.Argument(help="Fingerprint file (env --json) of side A.")],
    there: Annotated[str, typer.Argument(help="Fingerprint file (env --json) of side B.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Compare two fingerprints; exit 1 when a difference matters for payloads."""
    from serdoctor.diagnostics import run_env_diff

    raise typer.Exit(run_env_diff(here, there, json_output=as_json, console=console))


@app.command("worker")
def worker_command(
    url: Annotated[str, typer.Argument(help="The executor's pool address, tcp://HOST:PORT.")],
    key_file: Annotated[
        str, typer.Option("--key-file", help="The key file executor.worker_command() names.")
    ],
    workers: Annotated[int, typer.Option("--workers", help="Worker processes in this pool.")] = (0),
    heartbeat: Annotated[float, typer.Option(help="Seconds between heartbeats.")] = 2.0,
    heartbeat_threshold: Annotated[
        float, typer.Option(help="Seconds of silence after which the interchange counts as gone.")
    ] = 10.0,
    block_id: Annotated[str | None, typer.Option(help="The block this pool runs in.")] = None,
    preload: Annotated[
        list[str] | None,
        typer.Option(
            "--preload",
            metavar="MODULE",
            help="Import MODULE before forking the workers, so they share it (repeatable).",
        ),
    ] = None,
) -> None:
    """Start a worker pool that attaches to an executor (see executor.worker_command())."""
    import os

    from serdoctor.execute._pool import serve

    raise typer.Exit(
        serve(
            url,
            workers=workers or os.cpu_count() or 1,
            key_file=key_file,
            heartbeat=heartbeat,
            heartbeat_threshold=heartbeat_threshold,
            block_id=block_id,
            preload=preload or (),
        )
    )


@app.command("interchange")
def interchange_command() -> None:
    """Run an interchange with its settings as JSON on stdin (what an Executor starts)."""
    from serdoctor.execute._interchange import main as interchange_main

    raise typer.Exit(interchange_main())


_STORE = Annotated[str, typer.Argument(help="A checkpoint store (serdoctor.Checkpoint).")]
_JSON = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@checkpoint_app.command("ls")
def checkpoint_ls(
    path: _STORE,
    function: Annotated[
        str | None, typer.Option("--function", help="Only functions whose name contains this.")
    ] = None,
    older_than: Annotated[
        float | None, typer.Option("--older-than", help="Only results older than N seconds.")
    ] = None,
    larger_than: Annotated[
        int | None, typer.Option("--larger-than", help="Only results larger than N bytes.")
    ] = None,
    as_json: _JSON = False,
) -> None:
    """List stored results, newest first."""
    from serdoctor.checkpoint._commands import run_ls

    raise typer.Exit(
        run_ls(
            path,
            function=function,
            older_than=older_than,
            larger_than=larger_than,
            json_output=as_json,
            console=console,
        )
    )


@checkpoint_app.command("show")
def checkpoint_show(
    path: _STORE,
    key: Annotated[str, typer.Argument(help="A result's key (a unique prefix is enough).")],
    as_json: _JSON = False,
) -> None:
    """Read one stored result with the static inspector (it is never loaded or run)."""
    from serdoctor.checkpoint._commands import run_show

    raise typer.Exit(run_show(path, key, json_output=as_json, console=console))


@checkpoint_app.command("rm")
def checkpoint_rm(
    path: _STORE,
    keys: Annotated[list[str], typer.Argument(help="Keys (or unique prefixes) to delete.")],
    as_json: _JSON = False,
) -> None:
    """Delete stored results."""
    from serdoctor.checkpoint._commands import run_rm

    raise typer.Exit(run_rm(path, keys, json_output=as_json, console=console))


@checkpoint_app.command("gc")
def checkpoint_gc(
    path: _STORE,
    older_than: Annotated[
        float | None, typer.Option("--older-than", help="Delete results older than N seconds.")
    ] = None,
    stale_code: Annotated[
        bool, typer.Option("--stale-code", help="Delete results of code that has changed since.")
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Delete old results, or results of functions whose code changed."""
    from serdoctor.checkpoint._commands import run_gc

    raise typer.Exit(
        run_gc(
            path, older_than=older_than, stale_code=stale_code, json_output=as_json, console=console
        )
    )


@app.command("runs")
def runs_command(
    db: Annotated[str, typer.Argument(help="A monitoring database (Executor(monitoring=...)).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="How many runs, newest first.")] = 20,
) -> None:
    """List the recent runs in a monitoring database and how their tasks ended."""
    from serdoctor.monitor import run_runs

    raise typer.Exit(run_runs(db, json_output=as_json, console=console, limit=limit))


@app.command("tasks")
def tasks_command(
    db: Annotated[str, typer.Argument(help="A monitoring database (Executor(monitoring=...)).")],
    run: Annotated[
        str | None, typer.Option("--run", help="Run id or unique prefix (latest by default).")
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only failures, grouped by cause with a remedy.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List a run's tasks; with --failed, failures grouped by cause with what to do."""
    from serdoctor.monitor import run_tasks

    raise typer.Exit(run_tasks(db, run=run, failed=failed, json_output=as_json, console=console))


@app.command("report")
def report_command(
    db: Annotated[str, typer.Argument(help="A monitoring database (Executor(monitoring=...)).")],
    out: Annotated[str, typer.Option("-o", "--output", help="The HTML file to write.")] = (
        "report.html"
    ),
    run: Annotated[
        str | None, typer.Option("--run", help="Run id or unique prefix (latest by default).")
    ] = None,
) -> None:
    """Write one self-contained HTML page of a run: timeline, states, heartbeats, failures."""
    from serdoctor.monitor import run_report

    raise typer.Exit(run_report(db, out, run=run, console=console))


if __name__ == "__main__":
    app()

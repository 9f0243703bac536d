"""What ``ser-doctor check`` and ``ser-doctor env`` do, as plain functions.

Each ``run_*`` function takes the command's arguments, computes the result
with the stack or the doctor, hands it to :mod:`serdoctor.diagnostics._render`
(or prints JSON) and returns the exit code. The typer layer in
:mod:`serdoctor.cli` only parses arguments and exits with that code.
"""

from __future__ import annotations

import json

from rich.console import Console

from serdoctor.diagnostics import _render
from serdoctor.diagnostics._check import check, load_target
from serdoctor.serialize import Environment, environment


def run_check(target: str, *, fresh: bool, json_output: bool, console: Console) -> int:
    """``ser-doctor check``: 0 when ``target`` can be sent, 1 when not, 2 if it cannot load."""
    try:
        name, obj = load_target(target)
    except Exception as exc:
        _render.error(console, f"cannot load {target!r}: {type(exc).__name__}: {exc}")
        return 2
    report = check(obj, fresh=fresh, name=name)
    if json_output:
        _render.json_text(json.dumps(report.to_dict(), indent=2))
    else:
        _render.check_report(console, report)
    return report.exit_code


def run_env(*, json_output: bool, console: Console) -> int:
    """``ser-doctor env``: print this environment's fingerprint; always 0."""
    fingerprint = environment()
    if json_output:
        _render.json_text(fingerprint.to_json())
    else:
        _render.environment(console, fingerprint)
    return 0


def run_env_diff(here: str, there: str, *, json_output: bool, console: Console) -> int:
    """``ser-doctor env diff A B``: 1 when a difference matters for payloads, 2 on bad files."""
    try:
        a, b = Environment.load(here), Environment.load(there)
    except (OSError, ValueError) as exc:
        _render.error(console, str(exc))
        return 2
    diff = a.diff(b)
    if json_output:
        _render.json_text(json.dumps(diff.to_dict(), indent=2))
    else:
        _render.environment_diff(console, diff, here, there)
    return 1 if diff.matters else 0

"""Diagnostics: why an object cannot be sent, and what a payload would do, without running it.

``check`` tries the stack on a live object and names the sub-object that
blocks it; ``run_check``, ``run_env`` and ``run_env_diff`` are what
``ser-doctor check`` and ``ser-doctor env`` do.

``inspect_file`` / ``inspect_bytes`` read a pickle or serdoctor envelope
statically (nothing is unpickled, imported or run) and return an
:class:`InspectReport`; ``run_inspect`` prints it and returns the exit code of
``ser-doctor inspect``.
"""

from __future__ import annotations

from serdoctor.diagnostics._check import CheckReport, check
from serdoctor.diagnostics._commands import run_check, run_env, run_env_diff
from serdoctor.diagnostics.inspect import (
    InspectReport,
    inspect_bytes,
    inspect_file,
    render_report,
    run_inspect,
)

__all__ = [
    "CheckReport",
    "InspectReport",
    "check",
    "inspect_bytes",
    "inspect_file",
    "render_report",
    "run_check",
    "run_env",
    "run_env_diff",
    "run_inspect",
]

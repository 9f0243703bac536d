"""Diagnostics: look inside payloads without running them.

``inspect_file`` / ``inspect_bytes`` read a pickle or serdoctor envelope
statically (nothing is unpickled, imported or run) and return an
:class:`InspectReport`; ``run_inspect`` prints it and returns the exit code of
``ser-doctor inspect``.
"""

from __future__ import annotations

from serdoctor.diagnostics._inspect import (
    InspectReport,
    inspect_bytes,
    inspect_file,
)
from serdoctor.diagnostics._inspect_render import render_report, run_inspect

__all__ = [
    "InspectReport",
    "inspect_bytes",
    "inspect_file",
    "render_report",
    "run_inspect",
]

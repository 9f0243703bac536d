"""``ser-doctor inspect``: what a pickle or serdoctor payload would do, without running it.

``_api`` reads the input (a serdoctor envelope or a raw pickle, of any
protocol) and runs the opcode machine of :mod:`.machine` over it, which
simulates the pickle virtual machine on symbolic values: nothing is
unpickled, imported or run. ``_tables`` says which callables are dangerous
and which harmless, ``_byvalue`` and ``_code`` read code sent by value,
``_env`` compares the payload's needs with this environment, ``_report``
holds the findings and ``_render`` prints them.
"""

from __future__ import annotations

from serdoctor.diagnostics.inspect._api import InspectReport, inspect_bytes, inspect_file
from serdoctor.diagnostics.inspect._render import render_report, run_inspect

__all__ = ["InspectReport", "inspect_bytes", "inspect_file", "render_report", "run_inspect"]

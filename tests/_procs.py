"""Process helpers the tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs: it exists and is not a zombie (False if it ends as we look)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def workers_of(process: Any) -> list[Any]:
    """The worker processes (``serdoctor-wrk``) among a pool's or an interchange's children.

    Not the short-lived ``serdoctor-env`` child that takes the pool's fingerprint.
    """
    return [p for p in process.children() if p.name() == "serdoctor-wrk"]

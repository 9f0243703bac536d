"""Shared fixtures: every test must leave no child process behind."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _children() -> set[int]:
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        pids.update(int(p) for p in text.split())
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Fail a test that leaves a child process running."""
    before = _children()
    yield
    deadline = time.monotonic() + 5
    leaked = {p for p in _children() - before if _alive(p)}
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = {p for p in _children() - before if _alive(p)}
    if leaked:
        for pid in leaked:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        pytest.fail(f"test left child processes running: {sorted(leaked)}")

"""Executors with short heartbeats, shut down after each test (the leak check runs after)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from serdoctor.execute import Executor

FAST = {"heartbeat": 0.2, "heartbeat_threshold": 1.5}


@pytest.fixture
def executor() -> Iterator[Executor]:
    """A two-worker embedded executor that notices a lost pool within 1.5 s."""
    ex = Executor(workers=2, **FAST)
    try:
        yield ex
    finally:
        ex.shutdown(wait=False, cancel_futures=True)


from _other_python import other_python_bin  # noqa: E402, F401 (a fixture for the tests here)

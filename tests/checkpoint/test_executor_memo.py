"""Executor(checkpoint=...): hits complete without a worker; identity after dependencies."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from serdoctor.checkpoint import Checkpoint
from serdoctor.execute import Executor

pytestmark = pytest.mark.timeout(60)
FAST = {"heartbeat": 0.2, "heartbeat_threshold": 1.5}


def work(x: int, marker_dir: str) -> int:
    Path(marker_dir, f"ran-{x}-{os.getpid()}-{uuid.uuid4().hex}").touch()  # one per execution
    return x * x


def _runs(folder: Path) -> int:
    return len(list(folder.iterdir()))


def test_a_hit_completes_without_sending_anything(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    with (
        Checkpoint(tmp_path / "c.db") as store,
        Executor(workers=2, checkpoint=store, **FAST) as ex,
    ):
        first = [ex.submit(work, i, str(markers)) for i in range(5)]
        assert [f.result(timeout=20) for f in first] == [0, 1, 4, 9, 16]
        assert _runs(markers) == 5
        again = [ex.submit(work, i, str(markers)) for i in range(7)]
        assert [f.result(timeout=20) for f in again] == [0, 1, 4, 9, 16, 25, 36]
        assert _runs(markers) == 7  # only the two new tasks ran


def test_identity_is_computed_after_dependencies_resolve(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    with (
        Checkpoint(tmp_path / "c.db") as store,
        Executor(workers=1, checkpoint=store, **FAST) as ex,
    ):
        assert ex.submit(work, 3, str(markers)).result(timeout=20) == 9
        dep = ex.submit(abs, -3)  # resolves to 3: the same task as work(3, ...)
        assert ex.submit(work, dep, str(markers)).result(timeout=20) == 9
        assert _runs(markers) == 1


def test_per_task_checkpoint_through_options(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    with Checkpoint(tmp_path / "c.db") as store, Executor(workers=1, **FAST) as ex:
        for _ in range(2):
            assert ex.options(checkpoint=store).submit(work, 4, str(markers)).result(20) == 16
        assert _runs(markers) == 1
        ex.submit(work, 4, str(markers)).result(timeout=20)  # no checkpoint: runs
        assert _runs(markers) == 2

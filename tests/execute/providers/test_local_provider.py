"""LocalProvider: blocks as real local process groups."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from _procs import alive
from serdoctor.errors import BlockError
from serdoctor.execute.providers import BlockState, LocalProvider, Provider, walltime_seconds


def _wait_state(provider: LocalProvider, job: str, state: BlockState, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while provider.status([job])[job].state is not state:
        assert time.monotonic() < deadline, provider.status([job])[job].describe()
        time.sleep(0.05)


@pytest.mark.timeout(30)
def test_a_block_runs_worker_init_then_the_command(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    provider = LocalProvider(worker_init="export GREETING=hello", env={"WHO": "block"})
    try:
        assert isinstance(provider, Provider)
        job = provider.submit(
            f"sh -c 'echo \"$GREETING $WHO $SERDOCTOR_BLOCK\" > {out}'", name="b1"
        )
        _wait_state(provider, job, BlockState.COMPLETED)
        assert out.read_text().split() == ["hello", "block", job]
        assert provider.status([job])[job].reason == "exit code 0"
    finally:
        provider.close()


@pytest.mark.timeout(30)
def test_a_failing_block_reports_its_exit_code_and_stderr() -> None:
    provider = LocalProvider()
    try:
        job = provider.submit("sh -c 'echo the pool could not start >&2; exit 3'", name="bad")
        _wait_state(provider, job, BlockState.FAILED)
        status = provider.status([job])[job]
        assert status.reason == "exit code 3"
        assert status.stderr == "the pool could not start"
        assert "failed (exit code 3): the pool could not start" in status.describe()
    finally:
        provider.close()


@pytest.mark.timeout(30)
def test_cancel_ends_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    provider = LocalProvider(stop_timeout=1.0)
    try:
        # the block's command starts a grandchild that ignores SIGTERM
        job = provider.submit(
            f'sh -c \'sh -c "trap \\"\\" TERM; echo \\$\\$ > {pidfile}; sleep 60" & wait\'',
            name="group",
        )
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        grandchild = int(pidfile.read_text())
        assert provider.status([job])[job].state is BlockState.RUNNING
        provider.cancel([job])
        assert provider.status([job])[job].state is BlockState.CANCELLED
        deadline = time.monotonic() + 5
        while alive(grandchild):
            assert time.monotonic() < deadline, "a process of the cancelled block is still running"
            time.sleep(0.05)
    finally:
        provider.close()


@pytest.mark.timeout(30)
def test_close_cancels_running_blocks_and_removes_its_files() -> None:
    provider = LocalProvider()
    job = provider.submit("sleep 60", name="idle")
    directory = provider._dir
    assert directory.exists()
    provider.close()
    assert provider.status([job])[job].state is BlockState.CANCELLED
    assert not directory.exists()
    with pytest.raises(BlockError, match="closed"):
        provider.submit("true", name="late")


@pytest.mark.timeout(10)
def test_unknown_ids_are_unknown_not_errors() -> None:
    provider = LocalProvider()
    try:
        assert provider.status(["local-99"])["local-99"].state is BlockState.UNKNOWN
        provider.cancel(["local-99"])
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("text", "seconds"), [("00:30:00", 1800), ("1-02:00:05", 93605), ("100:00:00", 360000)]
)
def test_walltime_seconds(text: str, seconds: int) -> None:
    assert walltime_seconds(text) == seconds


@pytest.mark.parametrize("text", ["30", "00:60:00", "1:2:3", "abc", ""])
def test_a_bad_walltime_says_what_the_format_is(text: str) -> None:
    with pytest.raises(ValueError, match="walltime"):
        walltime_seconds(text)

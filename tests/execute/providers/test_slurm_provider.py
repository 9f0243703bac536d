"""SlurmProvider against a real single-node Slurm (munge, slurmctld, slurmd)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _slurm import SlurmCluster

from serdoctor.errors import BlockError
from serdoctor.execute.providers import BlockState, BlockStatus, Provider, SlurmProvider

pytestmark = pytest.mark.timeout(90)


def _wait(
    provider: SlurmProvider, job: str, *states: BlockState, seconds: float = 30
) -> BlockStatus:
    deadline = time.monotonic() + seconds
    while True:
        status = provider.status([job])[job]
        if status.state in states:
            return status
        assert time.monotonic() < deadline, status.describe()
        time.sleep(0.2)


def test_a_block_runs_worker_init_and_the_command_as_a_job(
    slurm_env: SlurmCluster, tmp_path: Path
) -> None:
    out = tmp_path / "ran.txt"
    provider = SlurmProvider("debug", walltime="00:05:00", worker_init="export STEP=init-ran")
    try:
        assert isinstance(provider, Provider)
        job = provider.submit(f"sh -c 'echo $STEP $SLURM_JOB_ID > {out}'", name="sd-ok")
        status = _wait(provider, job, BlockState.COMPLETED)
        assert out.read_text().split() == ["init-ran", job]
        assert status.job_id == job
    finally:
        provider.close()


def test_a_bad_partition_is_refused_with_slurms_own_words(slurm_env: SlurmCluster) -> None:
    provider = SlurmProvider("no-such-partition")
    try:
        with pytest.raises(BlockError, match=r"(?i)invalid partition") as info:
            provider.submit("sleep 1", name="sd-bad")
        assert "Slurm refused block 'sd-bad'" in str(info.value)
        assert slurm_env.queue() == []
    finally:
        provider.close()


def test_a_failing_block_shows_state_exit_code_and_stderr(slurm_env: SlurmCluster) -> None:
    provider = SlurmProvider()
    try:
        job = provider.submit("sh -c 'echo cannot reach the interchange >&2; exit 4'", name="sd-f")
        status = _wait(provider, job, BlockState.FAILED)
        assert "exit code 4" in status.reason
        assert status.stderr == "cannot reach the interchange"
    finally:
        provider.close()


def test_scancel_ends_a_running_block_and_close_leaves_the_queue_empty(
    slurm_env: SlurmCluster, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    provider = SlurmProvider(walltime="00:10:00")
    script_dir = provider._dir
    try:
        running = provider.submit(f"sh -c 'touch {marker}; sleep 120'", name="sd-run")
        _wait(provider, running, BlockState.RUNNING)
        provider.cancel([running])
        assert _wait(provider, running, BlockState.CANCELLED).state is BlockState.CANCELLED
        second = provider.submit("sleep 120", name="sd-second")
        _wait(provider, second, BlockState.RUNNING, BlockState.PENDING)
    finally:
        provider.close()
    deadline = time.monotonic() + 10
    while slurm_env.queue():
        assert time.monotonic() < deadline, f"jobs left in squeue: {slurm_env.queue()}"
        time.sleep(0.2)
    assert not script_dir.exists()


def test_the_script_has_the_options_the_user_gave() -> None:
    provider = SlurmProvider(
        "gpu",
        nodes_per_block=2,
        walltime="01:00:00",
        worker_init="module load python",
        scheduler_options="#SBATCH --constraint=haswell",
        account="proj1",
        script_dir=None,
    )
    try:
        script = provider.script("ser-doctor worker tcp://10.0.0.1:5000", name="blk")
        assert "#SBATCH --partition=gpu" in script
        assert "#SBATCH --nodes=2" in script
        assert "#SBATCH --time=01:00:00" in script
        assert "#SBATCH --account=proj1" in script
        assert "#SBATCH --constraint=haswell" in script
        assert script.index("module load python") < script.index("srun")
        assert "srun --nodes=2 --ntasks-per-node=1 bash -c 'ser-doctor worker" in script
    finally:
        provider.close()


@pytest.mark.timeout(10)
def test_bad_arguments_are_refused_before_anything_is_submitted() -> None:
    with pytest.raises(ValueError, match="walltime"):
        SlurmProvider(walltime="30 minutes")
    with pytest.raises(ValueError, match="nodes_per_block"):
        SlurmProvider(nodes_per_block=0)

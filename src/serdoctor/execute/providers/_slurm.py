"""Blocks as Slurm jobs: ``sbatch`` starts, ``squeue``/``scontrol`` watch, ``scancel`` stops.

A block's script runs ``worker_init`` and then the worker command once per
node (through ``srun`` when a block has several nodes). Its stdout and stderr
go to files in ``script_dir`` so that a block that fails can be explained with
its own first lines of stderr. Nothing here needs Slurm's accounting database.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from serdoctor.errors import BlockError
from serdoctor.execute.providers._base import BlockState, BlockStatus, head, walltime_seconds

_STATES = {
    "PENDING": BlockState.PENDING,
    "CONFIGURING": BlockState.PENDING,
    "REQUEUED": BlockState.PENDING,
    "RESIZING": BlockState.PENDING,
    "SUSPENDED": BlockState.PENDING,
    "RUNNING": BlockState.RUNNING,
    "COMPLETING": BlockState.RUNNING,
    "STAGE_OUT": BlockState.RUNNING,
    "COMPLETED": BlockState.COMPLETED,
    "CANCELLED": BlockState.CANCELLED,
    "FAILED": BlockState.FAILED,
    "TIMEOUT": BlockState.FAILED,
    "NODE_FAIL": BlockState.FAILED,
    "OUT_OF_MEMORY": BlockState.FAILED,
    "BOOT_FAIL": BlockState.FAILED,
    "DEADLINE": BlockState.FAILED,
    "PREEMPTED": BlockState.FAILED,
}


class SlurmProvider:
    """Start blocks as Slurm jobs.

    Args:
        partition: the partition to submit to (Slurm's default when empty).
        nodes_per_block: nodes per job; the worker command runs once on each.
        walltime: the job's time limit, ``HH:MM:SS`` or ``D-HH:MM:SS``.
        worker_init: shell lines run before the workers (``source venv/bin/activate``).
        scheduler_options: extra ``#SBATCH`` lines, written into the script as given.
        account: ``--account``, when the site needs one.
        qos: ``--qos``, when the site needs one.
        script_dir: where scripts and job logs go (a private temporary
            directory, removed by :meth:`close`, when not given). On a real
            cluster it must be on a file system the compute nodes share.
        cmd_timeout: seconds to wait for ``sbatch``/``squeue``/``scancel``.
    """

    label = "slurm"

    def __init__(
        self,
        partition: str = "",
        *,
        nodes_per_block: int = 1,
        walltime: str = "00:30:00",
        worker_init: str = "",
        scheduler_options: str = "",
        account: str = "",
        qos: str = "",
        script_dir: str | Path | None = None,
        cmd_timeout: float = 30.0,
    ) -> None:
        if nodes_per_block < 1:
            raise ValueError(f"nodes_per_block must be at least 1, not {nodes_per_block}")
        walltime_seconds(walltime)  # a clear error now rather than a refused job later
        for tool in ("sbatch", "squeue", "scancel", "scontrol"):
            if shutil.which(tool) is None:
                raise BlockError(
                    f"{tool} is not on PATH: SlurmProvider needs Slurm's commands on the machine "
                    "that runs the executor (a login node)"
                )
        self.partition = partition
        self.nodes_per_block = nodes_per_block
        self.walltime = walltime
        self.worker_init = worker_init
        self.scheduler_options = scheduler_options
        self.account = account
        self.qos = qos
        self.cmd_timeout = cmd_timeout
        self._own_dir = script_dir is None
        self._dir = Path(script_dir or tempfile.mkdtemp(prefix="serdoctor-slurm-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, str] = {}  # job id -> block name
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"SlurmProvider(partition={self.partition!r}, nodes_per_block={self.nodes_per_block}, "
            f"walltime={self.walltime!r})"
        )

    def script(self, command: str, *, name: str) -> str:
        """The batch script for one block (what :meth:`submit` hands to ``sbatch``)."""
        lines = [
            "#!/bin/bash",
            f"#SBATCH --job-name={name}",
            f"#SBATCH --nodes={self.nodes_per_block}",
            "#SBATCH --ntasks-per-node=1",
            f"#SBATCH --time={self.walltime}",
            f"#SBATCH --output={self._dir / name}.out",
            f"#SBATCH --error={self._dir / name}.err",
        ]
        if self.partition:
            lines.append(f"#SBATCH --partition={self.partition}")
        if self.account:
            lines.append(f"#SBATCH --account={self.account}")
        if self.qos:
            lines.append(f"#SBATCH --qos={self.qos}")
        lines += [line for line in self.scheduler_options.splitlines() if line.strip()]
        lines += ["", self.worker_init, ""]
        if self.nodes_per_block == 1:
            lines.append(f"exec {command}")
        else:
            lines.append(
                f"exec srun --nodes={self.nodes_per_block} --ntasks-per-node=1 "
                f"bash -c {shlex.quote(command)}"
            )
        return "\n".join(lines) + "\n"

    def submit(self, command: str, *, name: str) -> str:
        """``sbatch`` one block; its job id, or BlockError with Slurm's own words."""
        path = self._dir / f"{name}.sh"
        path.write_text(self.script(command, name=name))
        proc = self._run(["sbatch", "--parsable", str(path)])
        if proc.returncode != 0:
            raise BlockError(
                f"Slurm refused block {name!r} (sbatch exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        job_id = proc.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise BlockError(f"sbatch printed no job id for block {name!r}: {proc.stdout!r}")
        with self._lock:
            self._jobs[job_id] = name
        return job_id

    def status(self, job_ids: Sequence[str]) -> dict[str, BlockStatus]:
        """Each job's state from ``squeue``; from ``scontrol`` once it has left or failed.

        ``scontrol`` has what ``squeue`` does not: a failed job's exit code.
        """
        if not job_ids:
            return {}
        out: dict[str, BlockStatus] = {}
        proc = self._run(
            ["squeue", "-h", "--states=all", "-o", "%i|%T|%R", "-j", ",".join(job_ids)]
        )
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                job_id, _, rest = line.strip().partition("|")
                state, _, reason = rest.partition("|")
                if job_id in job_ids and _STATES.get(state) is not BlockState.FAILED:
                    out[job_id] = self._status(job_id, state, reason)
        for job_id in job_ids:
            if job_id not in out:
                out[job_id] = self._from_scontrol(job_id)
        return out

    def cancel(self, job_ids: Sequence[str]) -> None:
        """``scancel`` the jobs (Slurm ends every process of each)."""
        if job_ids:
            self._run(["scancel", *job_ids])

    def close(self) -> None:
        """Cancel every job this provider started; remove its private script directory."""
        with self._lock:
            jobs = list(self._jobs)
        live = [j for j, s in self.status(jobs).items() if not s.state.terminal]
        self.cancel(live)
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=self.cmd_timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BlockError(
                f"{argv[0]} did not answer within {self.cmd_timeout:g} s: is slurmctld up?"
            ) from exc

    def _status(self, job_id: str, state: str, reason: str) -> BlockStatus:
        mapped = _STATES.get(state.split()[0] if state else "", BlockState.UNKNOWN)
        reason = reason.strip("()")
        reason = "" if reason in ("None", "null") else reason
        stderr = ""
        if mapped is BlockState.FAILED:
            stderr = self._stderr(job_id)
        return BlockStatus(job_id, mapped, reason or state.lower(), stderr)

    def _from_scontrol(self, job_id: str) -> BlockStatus:
        proc = self._run(["scontrol", "show", "job", "-o", job_id])
        if proc.returncode != 0:
            return BlockStatus(
                job_id, BlockState.UNKNOWN, proc.stderr.strip() or "not known to Slurm"
            )
        fields = dict(part.split("=", 1) for part in proc.stdout.split() if "=" in part)
        state = fields.get("JobState", "")
        reason = fields.get("Reason", "")
        reason = "" if reason in ("None", "(null)") else reason
        code, _, sig = fields.get("ExitCode", "0:0").partition(":")
        words = [reason] if reason else []
        if code not in ("", "0"):
            words.append(f"exit code {code}")
        if sig not in ("", "0"):
            words.append(f"signal {sig}")
        return self._status(job_id, state, ", ".join(words))

    def _stderr(self, job_id: str) -> str:
        name = self._jobs.get(job_id)
        if name is None:
            return ""
        try:
            return head((self._dir / f"{name}.err").read_text(errors="replace"))
        except OSError:
            return ""

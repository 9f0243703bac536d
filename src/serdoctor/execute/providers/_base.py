"""What a provider is: something that starts, watches and stops blocks.

A *block* is one batch job (a pilot job) that runs the executor's worker
command (``ser-doctor worker tcp://... --key-file ...``) on each of its nodes;
the pools it starts connect back to the interchange. The provider knows only
the batch system: the executor decides when to start and stop blocks.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: How many lines of a failed block's stderr are kept for the user.
STDERR_LINES = 20


class BlockState(str, enum.Enum):
    """Where a block is in its life, in words common to every batch system."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        """True once the block has ended and will run nothing more."""
        return self in (BlockState.COMPLETED, BlockState.FAILED, BlockState.CANCELLED)


@dataclass(frozen=True)
class BlockStatus:
    """One block's state, with the batch system's own words for it."""

    job_id: str
    state: BlockState
    #: The batch system's reason or exit description (``Reason=...``, ``exit code 3``).
    reason: str = ""
    #: The first lines of the block's stderr, when it has ended badly.
    stderr: str = ""

    def describe(self) -> str:
        """``job 42: failed (exit code 1): <first stderr lines>``."""
        text = f"job {self.job_id}: {self.state.value}"
        if self.reason:
            text += f" ({self.reason})"
        if self.stderr:
            text += f": {self.stderr}"
        return text


@runtime_checkable
class Provider(Protocol):
    """Starts and stops blocks on a batch system (or as local processes)."""

    #: A short name for logs and ``executor.blocks()`` (``"slurm"``, ``"local"``).
    label: str

    def submit(self, command: str, *, name: str) -> str:
        """Start one block that runs ``command`` on each node; return its job id.

        Raises :class:`serdoctor.errors.BlockError` with the batch system's
        words when it refuses the job.
        """

    def status(self, job_ids: Sequence[str]) -> dict[str, BlockStatus]:
        """The current state of each of ``job_ids``."""

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Stop these blocks and everything they run; unknown or ended ids are ignored."""

    def close(self) -> None:
        """Cancel every block still running and remove the scripts and logs it wrote."""


_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d{1,3}):(\d{2}):(\d{2})$")


def walltime_seconds(walltime: str) -> int:
    """``"00:30:00"`` -> 1800; ``"1-02:00:00"`` (days) too. A clear ValueError otherwise."""
    match = _WALLTIME.match(walltime.strip())
    if match is None:
        raise ValueError(
            f"walltime {walltime!r} is not HH:MM:SS or D-HH:MM:SS (for example '00:30:00')"
        )
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if minutes > 59 or seconds > 59:
        raise ValueError(f"walltime {walltime!r}: minutes and seconds must be below 60")
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def head(text: str, lines: int = STDERR_LINES) -> str:
    """The first ``lines`` non-empty lines of ``text``, joined by newlines."""
    kept = [line for line in text.splitlines() if line.strip()][:lines]
    return "\n".join(kept)

"""Blocks as local processes: the provider for laptops and tests.

Each block is a ``bash`` process in its own session running ``worker_init``
and then the worker command, with stdout and stderr in files under the
provider's private directory. It takes the same code path in the executor as
a batch system's blocks, so scaling and block failures can be tried without
one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from serdoctor.errors import BlockError
from serdoctor.execute.providers._base import BlockState, BlockStatus, head


class LocalProvider:
    """Run each block as a local process group.

    Args:
        worker_init: shell lines run before the worker command (activate a
            virtual environment, load a module, export variables).
        env: extra environment variables for the blocks.
        stop_timeout: seconds between SIGTERM and SIGKILL when cancelling.
    """

    label = "local"

    def __init__(
        self,
        *,
        worker_init: str = "",
        env: Mapping[str, str] | None = None,
        stop_timeout: float = 2.0,
    ) -> None:
        self.worker_init = worker_init
        self.env = dict(env or {})
        self.stop_timeout = stop_timeout
        self._dir = Path(tempfile.mkdtemp(prefix="serdoctor-blocks-"))
        self._jobs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._counter = 0

    def __repr__(self) -> str:
        return f"LocalProvider(blocks={len(self._jobs)})"

    def submit(self, command: str, *, name: str) -> str:
        """Start ``worker_init`` then ``command`` in a new process group; return ``local-N``."""
        with self._lock:
            if not self._dir.exists():
                raise BlockError("this LocalProvider is closed: create a new one")
            self._counter += 1
            job_id = f"local-{self._counter}"
            script = self._dir / f"{job_id}.sh"
            script.write_text(f"{self.worker_init}\nexec {command}\n")
            err = self._dir / f"{job_id}.err"
            with open(self._dir / f"{job_id}.out", "wb") as out, open(err, "wb") as errf:
                try:
                    proc = subprocess.Popen(
                        ["/bin/bash", str(script)],
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=errf,
                        env={**os.environ, **self.env, "SERDOCTOR_BLOCK": job_id},
                        start_new_session=True,
                    )
                except OSError as exc:
                    raise BlockError(f"could not start local block {name!r}: {exc}") from exc
            self._jobs[job_id] = (proc, err)
            return job_id

    def status(self, job_ids: Sequence[str]) -> dict[str, BlockStatus]:
        """Each block's state; an id this provider never started is UNKNOWN."""
        out: dict[str, BlockStatus] = {}
        for job_id in job_ids:
            entry = self._jobs.get(job_id)
            if entry is None:
                out[job_id] = BlockStatus(job_id, BlockState.UNKNOWN, "no such block")
                continue
            proc, err = entry
            code = proc.poll()
            if code is None:
                out[job_id] = BlockStatus(job_id, BlockState.RUNNING)
            elif job_id in self._cancelled:
                out[job_id] = BlockStatus(job_id, BlockState.CANCELLED, "cancelled")
            elif code == 0:
                out[job_id] = BlockStatus(job_id, BlockState.COMPLETED, "exit code 0")
            else:
                out[job_id] = BlockStatus(
                    job_id, BlockState.FAILED, _exit_reason(code), head(_read(err))
                )
        return out

    def cancel(self, job_ids: Sequence[str]) -> None:
        """SIGTERM each block's process group, SIGKILL it after ``stop_timeout``."""
        procs = []
        for job_id in job_ids:
            entry = self._jobs.get(job_id)
            if entry is None or entry[0].poll() is not None:
                continue
            self._cancelled.add(job_id)
            procs.append(entry[0])
            with contextlib.suppress(ProcessLookupError):
                os.killpg(entry[0].pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for proc in procs:  # the group may outlive its leader: make sure nothing is left
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def close(self) -> None:
        """Cancel every running block and remove the scripts and logs."""
        self.cancel(list(self._jobs))
        shutil.rmtree(self._dir, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"

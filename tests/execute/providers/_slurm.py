"""A real single-node Slurm cluster for the provider tests (munge, slurmctld, slurmd).

The fixture writes ``slurm.conf`` under a fresh temporary directory, starts the
three daemons as children of the test process on free loopback ports, waits
until ``sinfo`` shows the node idle, and stops them by PID. It needs Debian's
``slurm-wlm`` and ``munge`` packages (``.ci/run`` installs them); a missing
binary fails the test with that instruction, it is never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "scontrol")

CONF = """\
ClusterName=pytest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge/munge.sock
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
SchedulerParameters=sched_interval=1
MinJobAge=60
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 \
RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SlurmCluster:
    """Munge + slurmctld + slurmd on this machine; ``env`` points Slurm's commands at it."""

    def __init__(self) -> None:
        missing = [tool for tool in DAEMONS if shutil.which(tool) is None]
        if missing:
            pytest.fail(
                f"Slurm is not installed ({', '.join(missing)} missing): "
                "apt-get install -y slurm-wlm munge"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="serdoctor-slurm-cluster-"))
        for sub in ("munge", "state", "spool", "log"):
            (self.dir / sub).mkdir()
        key = self.dir / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        conf = self.dir / "slurm.conf"
        conf.write_text(CONF.format(d=self.dir, ctld_port=_free_port(), slurmd_port=_free_port()))
        self.env = {**os.environ, "SLURM_CONF": str(conf)}
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            m = self.dir / "munge"
            self._start(
                "munged", "--foreground", "--force", f"--key-file={key}",
                f"--socket={m}/munge.sock", f"--pid-file={m}/munged.pid",
                f"--log-file={m}/munged.log", f"--seed-file={m}/munged.seed",
            )  # fmt: skip
            self._wait(lambda: (m / "munge.sock").exists(), 10, "munged did not create its socket")
            self._start("slurmctld", "-D", "-i")
            self._start("slurmd", "-D", "-N", "localhost")
            self._wait(lambda: self.node_state() == "idle", 30, "the node never became idle")
        except BaseException:
            self.stop()
            raise

    def _start(self, *argv: str) -> None:
        log = open(self.dir / "log" / f"{argv[0]}.stdio", "wb")  # noqa: SIM115 - closed by Popen's owner
        try:
            self.procs.append(
                subprocess.Popen(
                    argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True,
                )
            )  # fmt: skip
        finally:
            log.close()

    def _wait(self, ready: object, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not ready():  # type: ignore[operator]
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{proc.args[0]} exited with {proc.returncode}: {self.logs()}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} within {seconds} s: {self.logs()}")
            time.sleep(0.1)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command against this cluster."""
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=30, check=check
        )

    def node_state(self) -> str:
        proc = self.run("sinfo", "-h", "-o", "%t", check=False)
        return proc.stdout.strip()

    def queue(self) -> list[str]:
        """Job ids still in the queue (pending, running or completing)."""
        proc = self.run("squeue", "-h", "-o", "%i")
        return proc.stdout.split()

    def logs(self) -> str:
        texts = []
        for path in sorted((self.dir / "log").glob("*")):
            with contextlib.suppress(OSError):
                texts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(texts)

    def stop(self) -> None:
        """Cancel every job, stop slurmd, slurmctld and munged by PID, remove the directory."""
        with contextlib.suppress(Exception):
            self.run("scancel", "--user=root", check=False)
        for proc in reversed(self.procs):  # slurmd, slurmctld, then munged
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

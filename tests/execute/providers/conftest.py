"""One real Slurm cluster per test module that asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _slurm import SlurmCluster


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    """A running single-node Slurm; stopped (by PID) after the module's tests."""
    cluster = SlurmCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm_env(slurm: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The cluster, with ``SLURM_CONF`` set so that the provider's commands reach it."""
    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    return slurm

"""Blocks: pools started through a provider, scaled out under load and in when idle.

A thread of the executor checks every ``interval`` seconds:

- **scale out** while the tasks not yet done exceed the worker slots of the
  blocks running or queued (times ``parallelism``), up to ``max_blocks``;
- **scale in** only blocks whose pools have had nothing to do for
  ``max_idletime`` seconds, down to ``min_blocks``: a block running a task is
  never cancelled (and a pool that is stopped requeues what it had not
  finished);
- **failures**: a block the batch system refuses, one that ends before its pool
  registers, or whose pool is refused (``on_mismatch="error"``) counts as a
  failure, with the batch system's own words; after ``max_block_failures`` in a
  row the executor stops submitting blocks and fails the queued tasks with
  :class:`~serdoctor.errors.BlockError` saying why.

``executor.blocks()`` shows every block with its state and those words.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from serdoctor.errors import BlockError
from serdoctor.execute.providers._base import BlockState, Provider

log = logging.getLogger("serdoctor.executor")


@dataclass
class BlockInfo:
    """One block, as ``executor.blocks()`` reports it."""

    id: str
    job_id: str | None
    state: str
    reason: str = ""
    stderr: str = ""
    submitted: float = field(default_factory=time.time)
    pools: list[str] = field(default_factory=list)
    registered: bool = False
    idle_since: float | None = None


@dataclass
class ScalingSettings:
    """The block settings of ``Executor(provider=...)``."""

    init_blocks: int = 1
    min_blocks: int = 0
    max_blocks: int = 4
    parallelism: float = 1.0
    max_idletime: float = 60.0
    max_block_failures: int = 3
    workers_per_block: int | None = None
    interval: float = 2.0
    nodes_per_block: int = 1

    def check(self) -> None:
        """ValueError for settings that cannot work together."""
        if not 0 <= self.min_blocks <= self.max_blocks:
            raise ValueError("need 0 <= min_blocks <= max_blocks")
        if not self.min_blocks <= self.init_blocks <= self.max_blocks:
            raise ValueError("need min_blocks <= init_blocks <= max_blocks")
        if self.parallelism <= 0:
            raise ValueError("parallelism must be > 0")
        if self.max_block_failures < 1:
            raise ValueError("max_block_failures must be at least 1")


class Scaler:
    """Starts, watches and stops the executor's blocks (runs in its own thread)."""

    def __init__(
        self,
        provider: Provider,
        settings: ScalingSettings,
        command: Callable[[str], str],
        load: Callable[[], tuple[int, dict[str, dict[str, Any]]]],
        fail_queued: Callable[[BaseException], None],
        record: Callable[[BlockInfo], None] | None = None,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.command = command  # block id -> the shell command that starts its pool
        self.load = load  # -> (tasks not done, pools by id as executor.pools knows them)
        self.fail_queued = fail_queued
        self.record = record or (lambda _: None)
        self.blocks: dict[str, BlockInfo] = {}
        self.failures: list[str] = []
        self.stopped_reason: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = 0
        self._thread = threading.Thread(target=self._loop, name="serdoctor-scaler", daemon=True)

    def start(self) -> None:
        """Submit the initial blocks and start watching."""
        for _ in range(self.settings.init_blocks):
            self._submit()
        self._thread.start()

    # -- one block ---------------------------------------------------------------------------

    def _submit(self) -> None:
        self._counter += 1
        block_id = f"block-{self._counter}"
        info = BlockInfo(block_id, None, "submitting")
        with self._lock:
            self.blocks[block_id] = info
        try:
            info.job_id = self.provider.submit(self.command(block_id), name=f"serdoctor-{block_id}")
            info.state = BlockState.PENDING.value
            log.info("block %s submitted as %s job %s", block_id, self.provider.label, info.job_id)
        except BlockError as exc:
            info.state, info.reason = "refused", str(exc)
            self._failed(info)
        except Exception as exc:  # a provider bug must not take the executor down
            info.state, info.reason = "refused", f"{type(exc).__name__}: {exc}"
            self._failed(info)
        self.record(info)

    def _failed(self, info: BlockInfo) -> None:
        words = f"{info.id} ({self.provider.label} job {info.job_id or '-'}): {info.state}"
        if info.reason:
            words += f": {info.reason}"
        if info.stderr:
            words += f"; its stderr: {info.stderr.splitlines()[0][:300]}"
        log.error("block failed: %s", words)
        self.failures.append(words)
        if len(self.failures) >= self.settings.max_block_failures and self.stopped_reason is None:
            self.stopped_reason = (
                f"{len(self.failures)} blocks failed in a row, so no more are submitted: "
                + " | ".join(self.failures[-self.settings.max_block_failures :])
            )
            self.fail_queued(BlockError(self.stopped_reason))

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.interval):
            try:
                self.tick()
            except Exception as exc:  # keep watching: one bad tick is not the end
                log.warning("block scaling tick failed: %s", exc)

    def tick(self) -> None:
        """Check every block, then scale out or in."""
        pending_tasks, pools = self.load()
        now = time.time()
        with self._lock:
            live = [b for b in self.blocks.values() if b.job_id and b.state in _LIVE]
        statuses = self.provider.status([b.job_id for b in live if b.job_id])
        for block in live:
            status = statuses.get(block.job_id or "")
            block_pools = [p for p in pools.values() if p.get("block_id") == block.id]
            block.pools = [str(p.get("pool_id")) for p in block_pools]
            if any(p.get("state") == "refused" for p in block_pools):
                block.state, block.reason = (
                    "refused",
                    "its pool was refused: "
                    + "; ".join(
                        str(p.get("reason")) for p in block_pools if p.get("state") == "refused"
                    ),
                )
                self.provider.cancel([block.job_id or ""])
                self._failed(block)
                self.record(block)
                continue
            if block_pools and not block.registered:
                block.registered = True
                self.failures.clear()  # a block that works ends the run of failures
            if status is not None and status.state.terminal:
                ended_early = not block.registered and block.state != "cancelled"
                block.state, block.reason, block.stderr = (
                    status.state.value, status.reason, status.stderr,
                )  # fmt: skip
                if ended_early and status.state is not BlockState.CANCELLED:
                    block.reason = (
                        f"ended before its pool registered ({status.reason or 'no reason given'})"
                    )
                    self._failed(block)
                self.record(block)
                continue
            if status is not None and status.state.value != block.state:
                block.state = status.state.value
                self.record(block)
            busy = any(
                int(p.get("outstanding", 0)) or int(p.get("running", 0)) for p in block_pools
            )
            if busy or not block.registered:
                block.idle_since = None
            elif block.idle_since is None:
                block.idle_since = now
        self._scale(pending_tasks, now)

    def _scale(self, pending_tasks: int, now: float) -> None:
        s = self.settings
        with self._lock:
            active = [b for b in self.blocks.values() if b.state in _LIVE]
        slots = len(active) * (s.workers_per_block or 1) * s.nodes_per_block
        if self.stopped_reason is None and pending_tasks > slots * s.parallelism:
            per_block = (s.workers_per_block or 1) * s.nodes_per_block
            wanted = -(-int(pending_tasks / s.parallelism - slots) // per_block)
            for _ in range(max(0, min(wanted, s.max_blocks - len(active)))):
                self._submit()
            return
        idle = sorted(
            (
                b
                for b in active
                if b.idle_since is not None and now - b.idle_since >= s.max_idletime
            ),
            key=lambda b: b.idle_since or 0,
        )
        for block in idle[: max(0, len(active) - s.min_blocks)]:
            log.info(
                "block %s idle for %.0f s: cancelling it", block.id, now - (block.idle_since or now)
            )
            self.provider.cancel([block.job_id or ""])
            block.state, block.reason = "cancelled", f"idle for {s.max_idletime:g} s"
            self.record(block)

    def stop(self) -> None:
        """Stop watching; cancel every block still running; let the provider clean up."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        with self._lock:
            live = [b for b in self.blocks.values() if b.job_id and b.state in _LIVE]
        if live:
            self.provider.cancel([b.job_id for b in live if b.job_id])
            for block in live:
                block.state, block.reason = "cancelled", "the executor shut down"
                self.record(block)
        self.provider.close()


_LIVE = frozenset({"submitting", BlockState.PENDING.value, BlockState.RUNNING.value,
                   BlockState.UNKNOWN.value})  # fmt: skip

"""Back-pressure: a hundred thousand queued tasks, with bounded memory on every side."""

from __future__ import annotations

import psutil
import pytest

from serdoctor.execute import Executor

MB = 1 << 20


@pytest.mark.timeout(180)
def test_100k_queued_no_op_tasks_complete_under_500_mb_each() -> None:
    with Executor(workers=2, heartbeat=0.5, heartbeat_threshold=10) as ex:
        me = psutil.Process()
        (interchange,) = [p for p in me.children() if "interchange" in " ".join(p.cmdline())]
        futures = [ex.submit(abs, -i) for i in range(100_000)]
        peak_client = peak_interchange = 0
        total = 0
        for i, future in enumerate(futures):
            total += future.result(timeout=150)
            if i % 2000 == 0:
                peak_client = max(peak_client, me.memory_info().rss)
                peak_interchange = max(peak_interchange, interchange.memory_info().rss)
        assert total == sum(range(100_000))
    assert peak_client < 500 * MB, f"client peaked at {peak_client / MB:.0f} MB"
    assert peak_interchange < 500 * MB, f"interchange peaked at {peak_interchange / MB:.0f} MB"

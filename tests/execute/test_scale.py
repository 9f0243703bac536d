"""Back-pressure: a hundred thousand queued tasks, with bounded memory on every side."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MB = 1 << 20

# The client runs in a fresh interpreter, so its memory is the executor's, not the test
# suite's (which has grown with everything the earlier tests imported and made).
CLIENT = textwrap.dedent("""
    import json, psutil, serdoctor
    with serdoctor.Executor(workers=2, heartbeat=0.5, heartbeat_threshold=10) as ex:
        me = psutil.Process()
        (interchange,) = [p for p in me.children() if "interchange" in " ".join(p.cmdline())]
        futures = [ex.submit(abs, -i) for i in range(100_000)]
        peak_client = peak_interchange = total = 0
        for i, future in enumerate(futures):
            total += future.result(timeout=150)
            if i % 2000 == 0:
                peak_client = max(peak_client, me.memory_info().rss)
                peak_interchange = max(peak_interchange, interchange.memory_info().rss)
    print(json.dumps({"total": total, "client": peak_client, "interchange": peak_interchange}))
""")


@pytest.mark.timeout(180)
def test_100k_queued_no_op_tasks_complete_under_500_mb_each(tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=170, check=True
    ).stdout
    peaks = json.loads(out.strip().splitlines()[-1])
    assert peaks["total"] == sum(range(100_000))
    assert peaks["client"] < 500 * MB, f"client peaked at {peaks['client'] / MB:.0f} MB"
    assert peaks["interchange"] < 500 * MB, (
        f"interchange peaked at {peaks['interchange'] / MB:.0f} MB"
    )

"""``ser-doctor report``: one self-contained page, checked in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _events import record_run
from typer.testing import CliRunner

from serdoctor.cli import app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _render(page: Path, profile: Path) -> str:
    """The page's DOM after its scripts ran, as headless Chromium sees it."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does)")
    proc = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--virtual-time-budget=15000", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.timeout(120)
def test_the_report_renders_its_timeline_and_failure_rows_in_chromium(tmp_path: Path) -> None:
    db = tmp_path / "monitoring.db"
    run_id = record_run(db)
    page = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(app, ["report", str(db), "-o", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    tag = r"""<(script|link|img|iframe)\b[^>]*\b(src|href)=["']?(https?:)?//"""
    external = re.search(tag, text)
    assert external is None, f"the page must need no network: {external}"
    dom = _render(page, tmp_path / "profile")
    # plotly drew each figure into an SVG inside our containers
    for figure in ("timeline", "states", "heartbeats"):
        section = dom.split(f'id="{figure}"', 1)[1]
        assert 'class="main-svg"' in section.split('class="figure"', 1)[0], figure
    assert "Tries per worker" in dom
    assert "pool-a / w0" in dom  # a worker's lane on the timeline
    assert dom.count('<tr class="failure">') == 2
    assert dom.count('<tr class="cause">') == 1
    assert "make the function importable" in dom
    assert run_id in dom


@pytest.mark.timeout(60)
def test_a_run_without_failures_says_so(tmp_path: Path) -> None:
    from serdoctor.monitor import MonitorWriter, write_report

    db = tmp_path / "m.db"
    w = MonitorWriter(db)
    w.task_submitted(0, "f")
    w.task_status(0, "done")
    w.close()
    page = write_report(db, tmp_path / "r.html")
    assert "No task failed." in page.read_text()

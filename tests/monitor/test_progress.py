"""``serdoctor.progress``: a bar of done / failed / running, only where a person watches."""

from __future__ import annotations

import concurrent.futures
import io
import time

import pytest
from rich.console import Console

import serdoctor


def _work(i: int) -> int:
    time.sleep(0.01 * (i % 3))
    if i % 4 == 0:
        raise ValueError(i)
    return i


@pytest.mark.timeout(30)
def test_futures_are_yielded_as_they_complete_and_failures_are_counted() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(_work, i) for i in range(12)]
        seen = list(serdoctor.progress(futures, description="work", console=console))
    assert set(seen) == set(futures) and len(seen) == 12
    text = out.getvalue()
    assert "work" in text
    assert "12/12" in text
    assert "3 failed" in text


@pytest.mark.timeout(30)
def test_around_map_it_yields_results_in_order() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(serdoctor.progress(pool.map(abs, range(-5, 5)), total=10, console=console))
    assert results == [abs(i) for i in range(-5, 5)]
    assert "10/10" in out.getvalue()


@pytest.mark.timeout(30)
def test_nothing_is_printed_when_not_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False)
    assert list(serdoctor.progress([1, 2, 3], console=console)) == [1, 2, 3]
    assert out.getvalue() == ""

"""The environment fingerprint of interchanges and pools, taken by a short-lived child."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# In a fresh interpreter (one thread, as an interchange or pool when it forks it):
# a Fingerprint's child takes the fingerprint; then the same is taken in-process.
SCRIPT = textwrap.dedent("""
    import json, os, sys
    import psutil
    import serdoctor.serialize as s
    from serdoctor.execute._pool import Fingerprint

    real = s.environment
    parent, calls = os.getpid(), []
    if sys.argv[1] == "child fails":

        def fails():
            if os.getpid() != parent:
                raise RuntimeError("no fingerprint in the child")
            calls.append(parent)  # (in this process: the fallback)
            return real()

        s.environment = fails
    if sys.argv[1] == "child hangs":

        def hangs():
            if os.getpid() != parent:
                import time
                time.sleep(60)
            return real()

        s.environment = hangs
        import time
        fingerprint = Fingerprint()
        start = time.monotonic()
        fingerprint.close()
        print(json.dumps({"took": time.monotonic() - start,
                          "left": [c.pid for c in psutil.Process().children()]}))
        sys.exit()
    if sys.argv[1] == "normal":  # the dear way: through importlib.metadata, as where
        import serdoctor.serialize._requirements as req  # eggs or zip files are installed

        req.installed = lambda: None
    me = psutil.Process()
    before = me.memory_full_info().uss
    fingerprint = Fingerprint()
    children, pid = [c.pid for c in me.children()], fingerprint.pid
    env = fingerprint.wait()
    after = me.memory_full_info().uss
    here = real().to_dict()
    print(json.dumps({
        "same": env == here,
        "child": children == [pid] or children,
        "left": [c.pid for c in me.children()],
        "kept": (after - before) >> 10,
        "in_process": (me.memory_full_info().uss - after) >> 10,
        "fallback": len(calls),
    }))
""")


def _run(mode: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.timeout(90)
def test_the_fingerprint_is_taken_by_a_child_and_its_memory_goes_with_it() -> None:
    got = _run("normal")
    assert got["fallback"] == 0
    assert got["same"] is True  # what the process would have found itself
    assert got["child"] is True  # one child took it...
    assert got["left"] == []  # ...and was collected
    # taking it in-process through importlib.metadata keeps megabytes (metadata of
    # every distribution, the modules that read them); through the child, the
    # process keeps nearly nothing. (Where every distribution is a .dist-info folder,
    # it is read without importlib.metadata, for some 40 KB: see test_requirements.)
    assert isinstance(got["kept"], int) and isinstance(got["in_process"], int)
    assert got["in_process"] > 1024, got
    assert got["kept"] < got["in_process"] / 2, got


@pytest.mark.timeout(90)
def test_a_child_that_fails_leaves_the_fingerprint_to_the_process() -> None:
    got = _run("child fails")
    assert got["fallback"] == 1  # the child sent nothing: taken here, once
    assert got["same"] is True
    assert got["left"] == []


@pytest.mark.timeout(90)
def test_closing_stops_a_child_that_is_still_at_work() -> None:
    got = _run("child hangs")
    assert got["left"] == []  # killed and collected: no zombie, no orphan
    assert isinstance(got["took"], float) and got["took"] < 5

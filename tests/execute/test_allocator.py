"""The interchange's and pools' allocator settings: large freed buffers go back."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# In a fresh interpreter: a thread (as ZeroMQ's I/O thread does with every message
# it receives) allocates, fills and frees 20 MB buffers; then the main thread trims
# (as the Trimmer does) and reports how much of that memory the process kept.
SCRIPT = textwrap.dedent("""
    import ctypes, sys, threading
    import psutil
    from serdoctor.execute import _messages as m

    if sys.argv[1] == "settled":
        assert m.settle_allocator()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    me = psutil.Process()
    before = me.memory_full_info().uss

    def receive():
        for _ in range(4):
            buffer = libc.malloc(20 << 20)
            ctypes.memset(buffer, 1, 20 << 20)
            libc.free(buffer)

    thread = threading.Thread(target=receive)
    thread.start()
    thread.join()
    libc.malloc_trim(0)
    print((me.memory_full_info().uss - before) >> 20)
""")


def _megabytes(script: str, *args: str) -> int:
    """Run ``script`` in a fresh interpreter; the MB it printed."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=50
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.timeout(120)
def test_settled_processes_give_back_what_another_thread_freed() -> None:
    # glibc by default: the thread's own arena keeps the last buffer, out of malloc_trim's reach
    assert _megabytes(SCRIPT, "default") >= 15
    assert _megabytes(SCRIPT, "settled") <= 2


# In a fresh interpreter: 20 MB of small blocks are freed below one still in use (as
# a burst of small messages leaves them), out of reach of glibc's own trimming; then a
# Trimmer is told that a burst ended, and reports how much its trim gave back.
BURST = textwrap.dedent("""
    import ctypes, time
    import psutil
    from serdoctor.execute import _messages as m

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = []
    for _ in range(5000):
        block = libc.malloc(4000)
        ctypes.memset(block, 1, 4000)
        blocks.append(block)
    last = libc.malloc(4000)
    for block in blocks:
        libc.free(block)
    me = psutil.Process()
    before = me.memory_full_info().uss
    trimmer = m.Trimmer(delay=0.01)
    trimmer.soon()
    time.sleep(0.02)
    trimmer.tick(time.monotonic())
    print((before - me.memory_full_info().uss) >> 20)
""")


@pytest.mark.timeout(60)
def test_a_burst_of_small_messages_is_trimmed_after_it_ends() -> None:
    assert _megabytes(BURST) >= 15  # of the 19 MB freed; none of it counted as a large message

"""The wire: every message between client, interchange and pools, and how it is signed.

Between the interchange and its pools, a message is one ZeroMQ multipart
message; between your process and the interchange, the same parts travel over
their socket pair, framed as :mod:`~serdoctor.execute._worker` frames them. The
parts::

    [kind, index, frames..., mac]

``kind`` is one byte (below); ``index`` is UTF-8 JSON (never pickle) that says
what the message carries; ``frames`` are zero or more serdoctor envelopes
(tasks or results), each made by ``Serializer.dumps_frames`` with the
executor's key, so each ends with its own HMAC tag; ``mac`` is an
HMAC-SHA256, under the same key, of ``kind``, ``index`` and each envelope's
tag. Checking ``mac`` therefore authenticates the whole message without
hashing large frames twice: the interchange verifies every message it
receives and drops (and counts) anything unsigned, forged or malformed, and
never unpickles anything; the worker's ``loads_frames`` verifies each
envelope's own tag before it unpickles.

Every ZeroMQ socket has its high-water marks off: a ROUTER socket silently drops
what it cannot queue, and a lost result is a hang. Memory stays bounded by the
executor itself (each pool gets at most its capacity of tasks; the client
holds what it submitted).
"""

from __future__ import annotations

import functools
import hmac
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from serdoctor.serialize._envelope import hmac_sha256

# client -> interchange
TASKS = b"T"  # index: {"tasks": [[id, nframes, priority, walltime], ...]}
CANCEL = b"C"  # index: {"ids": [...]}
KICK = b"K"  # index: {"pool": id, "reason": text}: refuse a pool (on_mismatch="error")
SHUTDOWN = b"X"  # index: {"reason": text, "refused": true when the pool was refused}
# interchange -> client
# RESULTS index: {"results": [[id, nframes, pool, worker pid, started, ended], ...],
#                 "started": {pool: [id, ...]}}
RESULTS = b"D"
LOST = b"L"  # index: {"tasks": [[id, kind, reason], ...]}
POOLS = b"P"  # index: {"pools": [...], "dropped": n}
# pool <-> interchange
REGISTER = b"R"  # index: the pool's description and environment fingerprint
HEARTBEAT = b"H"  # index: {"running": n} (pools), {} otherwise

KINDS = frozenset({TASKS, CANCEL, KICK, SHUTDOWN, RESULTS, LOST, POOLS, REGISTER, HEARTBEAT})
TAG_SIZE = 32

#: The version of these messages and of the envelope features they rely on (such
#: as tags made by chunks, for payloads of 2 MiB and more). A pool registers with
#: it and the interchange answers with its own; where they differ the pool is
#: refused and exits saying which serdoctor each side runs, instead of attaching
#: and failing its first large task. Raise it with any change an older or newer
#: peer would misread.
PROTOCOL = 2


class BadMessage(Exception):
    """A message that is unsigned, forged, truncated or not ours; it is dropped."""


def mac(
    key: bytes, kind: bytes, index: bytes, frames: Sequence[Any], counts: Sequence[int]
) -> bytes:
    """The message MAC: over kind, index and the last frame (the tag) of each envelope."""
    parts = [kind, len(index).to_bytes(4, "big"), index]
    pos = 0
    for n in counts:
        pos += n
        parts.append(frames[pos - 1])
    return hmac_sha256(key, parts)


# (made once: json.dumps with its own separators makes an encoder per call, and
# json.loads guesses the encoding of bytes; an index is always UTF-8)
_encode = json.JSONEncoder(separators=(",", ":")).encode
_decode = json.JSONDecoder().decode

#: Frames smaller than this travel packed together in one ZeroMQ frame (one send,
#: one allocation); larger ones travel as frames of their own, without a copy.
SMALL = 64 << 10
_SNDMORE = 2  # zmq.SNDMORE as a plain int: flag arithmetic on enums is slow


def pack(
    key: bytes,
    kind: bytes,
    index: dict[str, Any],
    envelopes: Sequence[Sequence[Any]] = (),
) -> list[Any]:
    """The parts of one message carrying ``envelopes`` (each a list of frames).

    Small frames are packed into one part; ``index["layout"]`` says where each
    frame is (``[part, offset, length]``), so the receiver can cut them out
    again without copying.
    """
    frames: list[Any] = [f for env in envelopes for f in env]
    parts: list[Any] = []
    if frames:
        blob = bytearray()
        layout = []
        for frame in frames:
            view = memoryview(frame)
            n = view.nbytes
            if n < SMALL:
                layout.append([0, len(blob), n])
                blob += view
            else:
                parts.append(frame)
                layout.append([len(parts), 0, n])
        parts.insert(0, blob)
        index = {**index, "layout": layout}
    head = _encode(index).encode()
    counts = [len(env) for env in envelopes]
    return [kind, head, *parts, mac(key, kind, head, frames, counts)]


#: Parts up to this size are copied into ZeroMQ's buffers when sent; larger ones are
#: lent to it. Lending costs a wake-up of pyzmq's garbage-collector thread when
#: ZeroMQ is done with the buffer, dearer than copying a part of a few hundred
#: kilobytes (a batch of small tasks, packed together).
COPY_MAX = 1 << 20


def readable(sock: Any) -> bool:
    """Whether a ZeroMQ socket has a message waiting (cheaper to ask than a ``zmq.Again``)."""
    return bool(sock.get(_EVENTS) & _POLLIN)


def drain(sock: Any, handle: Callable[[list[Any]], None], limit: int) -> None:
    """Hand the messages waiting on a ZeroMQ socket (at most ``limit``) to ``handle``.

    Call it when a poll said the socket is readable. No message outlives its
    handling here: a large one's buffer is not kept until the next one arrives.
    """
    for _ in range(limit):
        handle(sock.recv_multipart(_NOBLOCK, copy=False))
        if not readable(sock):
            return


_EVENTS, _POLLIN, _NOBLOCK = 15, 1, 1  # zmq.EVENTS, zmq.POLLIN, zmq.NOBLOCK as plain ints


def send(sock: Any, parts: Sequence[Any], ident: bytes | None = None) -> None:
    """Send a message's parts: small ones copied (cheaper), large ones without a copy."""
    if ident is not None:
        sock.send(ident, _SNDMORE)
    last = len(parts) - 1
    for i, part in enumerate(parts):
        n = memoryview(part).nbytes
        sock.send(part, 0 if i == last else _SNDMORE, copy=n <= COPY_MAX)


@dataclass
class Message:
    """A verified message: its kind, decoded index, and the envelopes' frames."""

    kind: bytes
    index: dict[str, Any]
    frames: list[Any] = field(default_factory=list)


def _buf(frame: Any) -> Any:
    return frame.buffer if hasattr(frame, "buffer") else frame


def unpack(key: bytes, parts: Sequence[Any], counts_of: str | None = None) -> Message:
    """Verify and decode ``parts`` (as received; zmq Frames or bytes).

    ``counts_of`` names the index entry whose rows start with ``[id, nframes]``
    and so say how the frames split into envelopes. Raises :class:`BadMessage`.
    """
    if len(parts) < 3:
        raise BadMessage(f"{len(parts)} frames: a message has at least 3")
    kind = bytes(_buf(parts[0]))
    if kind not in KINDS:
        raise BadMessage(f"unknown message kind {kind[:8]!r}")
    head = bytes(_buf(parts[1]))
    tag = bytes(_buf(parts[-1]))
    if len(tag) != TAG_SIZE:
        raise BadMessage("no MAC")
    try:
        index = _decode(head.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # (nested too deep)
        raise BadMessage(f"index is not JSON: {exc}") from None
    if not isinstance(index, dict):
        raise BadMessage("index is not a JSON object")
    frames = _cut([memoryview(_buf(p)) for p in parts[2:-1]], index.pop("layout", None))
    counts: list[int] = []
    if counts_of is not None:
        rows = index.get(counts_of)
        if not isinstance(rows, list):
            raise BadMessage(f"index has no {counts_of!r} list")
        try:
            counts = [int(row[1]) for row in rows]
        except (TypeError, ValueError, IndexError, KeyError, OverflowError):
            raise BadMessage(f"malformed {counts_of!r} rows") from None
        if sum(counts) != len(frames) or any(n < 1 for n in counts):
            raise BadMessage("frame counts do not match the frames")
    elif frames:
        raise BadMessage("unexpected frames")
    if not hmac.compare_digest(mac(key, kind, head, frames, counts), tag):
        raise BadMessage("MAC does not match: unsigned, forged or signed with another key")
    return Message(kind, index, frames)


def _cut(parts: list[memoryview], layout: Any) -> list[memoryview]:
    if layout is None:
        if parts:
            raise BadMessage("frames without a layout")
        return []
    try:
        frames = []
        for part, offset, length in layout:
            view = parts[part]
            if offset < 0 or length < 0 or offset + length > view.nbytes:
                raise BadMessage("layout points outside its part")
            frames.append(view[offset : offset + length])
        return frames
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        raise BadMessage("malformed layout") from None


def split(frames: Sequence[Any], counts: Sequence[int]) -> list[list[Any]]:
    """Cut a message's frames back into envelopes."""
    out, pos = [], 0
    for n in counts:
        out.append(list(frames[pos : pos + n]))
        pos += n
    return out


#: After messages this large, a process gives the freed memory back to the system...
TRIM_AT = 1 << 20
#: ...once no large message has come for this many seconds (until then, the next
#: large message reuses the buffers, without a page fault for each of their pages).
TRIM_DELAY = 0.05


class Trimmer:
    """Gives freed memory back to the system shortly after large messages pass.

    glibc keeps large freed blocks for reuse: after one 10 MB message a process
    otherwise holds 20-30 MB it no longer uses. ``malloc_trim`` returns them; it
    costs far less than moving the messages did, and runs a moment (``delay``
    seconds) after the last large one, when their buffers have been let go, and
    once more a little later (ZeroMQ lets go of a buffer it sent without copying
    only once the other side has taken it). Nothing happens where glibc's
    ``malloc_trim`` is missing.
    """

    def __init__(self, delay: float = TRIM_DELAY) -> None:
        self.delay = delay
        self.moved = 0
        self.due: float | None = None
        self.again = False
        self.burst = False  # soon() was called: trim, however little was counted

    def saw(self, nbytes: int) -> None:
        """Count ``nbytes`` of message just handled (small ones are not worth counting)."""
        if nbytes >= SMALL:
            self.moved += nbytes
            if self.moved >= TRIM_AT:
                self.due = time.monotonic() + self.delay
                self.again = True

    def saw_message(self, parts: Sequence[Any], *, routed: bool = False) -> None:
        """Count a message as received (``routed``: its first part is a sender's identity).

        Only a message with large frames (parts of their own, beyond the kind,
        index, packed small frames and MAC that :func:`pack` makes) is sized.
        """
        if len(parts) > 4 + routed:
            self.saw(size(parts))

    def soon(self) -> None:
        """Trim after ``delay``: many small messages have come and gone.

        None of them was large enough to count (see :meth:`saw`), but together
        they left megabytes of freed blocks behind (a burst of 15,000 no-op tasks:
        6 MB in the client).
        """
        self.burst = True
        if self.due is None:
            self.due, self.again = time.monotonic() + self.delay, False

    def timeout(self, ms: int) -> int:
        """A poll timeout no longer than ``ms`` that wakes when a trim is due."""
        if self.due is None:
            return ms
        return max(1, min(ms, int((self.due - time.monotonic()) * 1000) + 1))

    def tick(self, now: float) -> None:
        """Trim if one is due."""
        if self.due is not None and now >= self.due:
            trim_now(TRIM_AT if self.burst else self.moved)
            if self.again:
                self.due, self.again = now + 4 * self.delay, False
            else:
                self.moved, self.due, self.burst = 0, None, False


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def settle_allocator() -> bool:
    """Make every large buffer of this process one that :class:`Trimmer` can give back.

    For the interchange and pool processes (never a client: these are settings
    of the whole process), called first, before any thread exists (the limit on
    arenas holds only for threads that have not allocated yet). ZeroMQ's I/O
    thread allocates the buffer of every message it receives from an arena of
    its own, and glibc keeps up to twice the largest such buffer at the top of
    that arena: ``malloc_trim`` gives back only the main arena's top. After ten
    10 MB messages an interchange kept 10 MB it no longer used, in about half
    the runs. Here:

    - one arena: the I/O thread allocates from the main one, which
      ``malloc_trim`` empties;
    - fixed thresholds: buffers up to 32 MB come from the heap and stay there
      for reuse while messages flow, as glibc's own thresholds end up after
      the first large message; a free never trims by itself (64 MB), the
      Trimmer does, once the flow stops. Letting glibc trim on every free
      instead made a 10 MB echo 8-10 % slower (page faults on every message).

    The workers forked from the process inherit the settings. They suit a
    worker too: it trims once large tasks stop coming (:data:`TRIM_DELAY`), and
    small allocations, most of them, come from each thread's cache without the
    arena's lock. False where
    glibc's ``mallopt`` is missing (musl, macOS): nothing changes there.
    """
    mallopt = libc("mallopt")
    if mallopt is None:
        return False
    mallopt(_M_ARENA_MAX, 1)
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    return True


def trim_now(nbytes: int) -> None:
    """Give freed memory back at once after ``nbytes`` of messages, if that is large."""
    if nbytes >= TRIM_AT:
        release = libc("malloc_trim")  # glibc; absent on musl
        if release is not None:
            release(0)


def size(parts: Sequence[Any]) -> int:
    """The bytes in a message's parts (as received: zmq Frames, or buffers)."""
    return sum(memoryview(_buf(p)).nbytes for p in parts)


@functools.cache
def libc(name: str) -> Any:
    """The C library's function ``name`` on Linux (None elsewhere, or where it lacks it).

    For what Python does not offer: ``malloc_trim`` and ``mallopt`` (glibc) here,
    ``prctl`` for the workers (:mod:`~serdoctor.execute._worker`).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None

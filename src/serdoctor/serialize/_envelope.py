r"""The serdoctor envelope: the bytes around every payload.

A payload is a sequence of frames; the flat form (``dumps``) is their
concatenation, so ``b"".join(dumps_frames(x)) == dumps(x)``::

    frame 0  head     magic  b"\xffSDOC"            5 bytes
                      format version                 1 byte   (1)
                      flags                          1 byte   (bit 0: signed,
                                                              bit 1: signed by chunks)
                      header length N                4 bytes, big-endian
                      header                         N bytes of UTF-8 JSON
    frame 1  body     the method's pickle stream     header["body"] bytes
    frame 2… buffers  out-of-band buffers            header["buffers"][i] bytes
    last     tag      HMAC-SHA256 of all the above   32 bytes, only when signed
                      (by chunks: of the SHA-256 of each MiB of it)

The header is JSON, never pickle: it must be readable without executing
anything. ``0xff`` is not a pickle opcode, so an envelope can never be
mistaken for a raw pickle. See ``docs/format.md`` for every header field.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from serdoctor.errors import DeserializationError, SignatureError

MAGIC = b"\xffSDOC"
FORMAT_VERSION = 1
FLAG_SIGNED = 0x01
FLAG_CHUNKED = 0x02
TAG_SIZE = 32
#: Signed payloads whose body and buffers reach this size are signed by chunks
#: (FLAG_CHUNKED): the tag is the HMAC of the SHA-256 of each CHUNK bytes, and the
#: chunks are hashed on several cores at once.
CHUNKED_AT = 2 << 20
CHUNK = 1 << 20
#: what the HMAC of a tag made by chunks starts with: never the magic that starts
#: the input of a whole-payload tag, so no tag of one kind passes for the other
CHUNKED_DOMAIN = b"serdoctor tag by chunks 1\x00"
#: at most this many threads hash one payload's chunks
MAX_THREADS = 8
_PREFIX = struct.Struct(">5sBBI")  # magic, version, flags, header length
PREFIX_SIZE = _PREFIX.size
MAX_HEADER = 16 << 20

Buffer = bytes | bytearray | memoryview


def python_minor(version: str) -> str:
    """``"3.11"`` for ``"3.11.7"``: the part of a version that bytecode depends on."""
    return ".".join(version.split(".")[:2])


@dataclass(slots=True)
class Header:
    """The decoded envelope header (see ``docs/format.md``).

    Treat it as read-only: decoded headers are cached and shared.
    """

    method: str
    python: str
    implementation: str
    by_value: bool
    requires: dict[str, str | None]
    libraries: dict[str, str]
    body: int
    buffers: tuple[int, ...]
    serdoctor: str
    signed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def python_minor(self) -> str:
        """``"3.11"`` for ``"3.11.7"``."""
        return python_minor(self.python)

    def to_dict(self) -> dict[str, Any]:
        """The header as it is written (JSON-ready)."""
        out: dict[str, Any] = {
            "method": self.method,
            "python": self.python,
            "implementation": self.implementation,
            "by_value": self.by_value,
            "requires": dict(self.requires),
            "libraries": dict(self.libraries),
            "body": self.body,
            "buffers": list(self.buffers),
            "serdoctor": self.serdoctor,
        }
        out.update(self.extra)
        return out


_KNOWN = {
    "method",
    "python",
    "implementation",
    "by_value",
    "requires",
    "libraries",
    "body",
    "buffers",
    "serdoctor",
}


def _header_from_json(raw: dict[str, Any], signed: bool) -> Header:
    try:
        requires = raw["requires"]
        if not isinstance(requires, dict):
            raise TypeError("requires")
        buffers = tuple(int(n) for n in raw["buffers"])
        header = Header(
            method=str(raw["method"]),
            python=str(raw["python"]),
            implementation=str(raw["implementation"]),
            by_value=bool(raw["by_value"]),
            requires={str(k): (None if v is None else str(v)) for k, v in requires.items()},
            libraries={str(k): str(v) for k, v in dict(raw["libraries"]).items()},
            body=int(raw["body"]),
            buffers=buffers,
            serdoctor=str(raw["serdoctor"]),
            signed=signed,
            extra={k: v for k, v in raw.items() if k not in _KNOWN},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DeserializationError(
            f"serdoctor envelope header is malformed (field {exc}): the payload was "
            "damaged or not written by serdoctor"
        ) from None
    if header.body < 0 or any(n < 0 for n in header.buffers):
        raise DeserializationError("serdoctor envelope header has negative lengths")
    return header


def is_envelope(data: Buffer) -> bool:
    """True when ``data`` starts with the serdoctor magic."""
    return bytes(data[: len(MAGIC)]) == MAGIC


def static_prefix(header: Header) -> str:
    """The header's JSON without the lengths and the closing brace.

    Everything but the lengths is the same for every payload of one kind, so
    the serializer computes this once per kind and caches it (see
    :func:`encode_head_with`).
    """
    fields = header.to_dict()
    del fields["body"], fields["buffers"]
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))[:-1]


def encode_head(header: Header) -> bytes:
    """Frame 0: magic, version, flags and the JSON header.

    The JSON object lists the fields in sorted order, then ``body`` and
    ``buffers`` last (so the rest can be cached between payloads).
    """
    return encode_head_with(static_prefix(header), header.body, header.buffers, header.signed)


def encode_head_with(prefix: str, body: int, buffers: Sequence[int], signed: bool) -> bytes:
    """Frame 0 from a cached prefix (see :func:`static_prefix`) and the lengths."""
    lengths = ",".join(map(str, buffers))
    text = f'{prefix},"body":{body},"buffers":[{lengths}]}}'.encode()
    flags = flags_for(signed, body + sum(buffers))
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, flags, len(text)) + text


def flags_for(signed: bool, size: int) -> int:
    """The flags byte of a payload whose body and buffers hold ``size`` bytes."""
    if not signed:
        return 0
    return FLAG_SIGNED | FLAG_CHUNKED if size >= CHUNKED_AT else FLAG_SIGNED


def sign(frames: Sequence[Buffer], key: bytes) -> bytes:
    """The tag of ``frames`` (head first), without joining them.

    HMAC-SHA256 over every byte, or, when the head's flags say the payload is
    signed by chunks, HMAC-SHA256 over the SHA-256 of each :data:`CHUNK` bytes
    of the same byte stream, hashed on several cores (see ``docs/format.md``).
    """
    if frames and _flags(frames[0]) & FLAG_CHUNKED:
        return _sign_by_chunks(frames, key)
    return hmac_sha256(key, frames)


def hmac_sha256(key: bytes, parts: Sequence[Buffer]) -> bytes:
    """HMAC-SHA256 (RFC 2104) under ``key`` of ``parts``, one after another.

    The same bytes as ``hmac.new(key, b"".join(parts), "sha256").digest()``, in
    half the time for a small message: the hash states after the key's two pads
    are made once per key and copied, where ``hmac.new`` keys OpenSSL afresh
    every time (1.9 against 0.8 µs here, four times per task each way).
    """
    inner, outer = _pads(key)
    digest = inner.copy()
    for part in parts:
        digest.update(part)
    result = outer.copy()
    result.update(digest.digest())
    tag: bytes = result.digest()
    return tag


@functools.lru_cache(maxsize=16)
def _pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after HMAC's inner and outer key pads (never updated: only copied)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


_BLOCK = 64  # SHA-256's block size in bytes
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _flags(head: Buffer) -> int:
    """The flags byte of a head (0 when it is too short to have one)."""
    if type(head) is not bytes:
        head = memoryview(head).cast("B")
    return head[6] if len(head) > 6 else 0


def _sign_by_chunks(frames: Sequence[Buffer], key: bytes) -> bytes:
    """HMAC of the domain, the total length and the SHA-256 of each chunk, in order."""
    chunks: list[list[memoryview]] = []
    piece: list[memoryview] = []
    room = CHUNK
    total = 0
    for frame in frames:
        view = memoryview(frame)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        n, pos = view.nbytes, 0
        total += n
        while pos < n:
            take = min(room, n - pos)
            piece.append(view[pos : pos + take])
            pos += take
            room -= take
            if not room:
                chunks.append(piece)
                piece, room = [], CHUNK
    if piece:
        chunks.append(piece)
    digests = [b""] * len(chunks)
    failures: list[BaseException] = []

    def hash_chunks(lo: int, hi: int) -> None:
        try:
            for i in range(lo, hi):
                digest = hashlib.sha256()
                for part in chunks[i]:
                    digest.update(part)  # releases the GIL for all but tiny parts
                digests[i] = digest.digest()
        except BaseException as exc:  # raised again by the calling thread, below
            failures.append(exc)

    n = len(chunks)
    threads = min(_cores(), n, MAX_THREADS)
    helpers = []
    try:
        for t in range(1, threads):  # share t is chunks [t*n//threads, (t+1)*n//threads)
            share = (t * n // threads, (t + 1) * n // threads)
            helper = _Thread(target=hash_chunks, args=share, daemon=True)
            try:
                helper.start()
            except RuntimeError:  # no new threads (interpreter shutting down): hash it here
                hash_chunks(*share)
            else:
                helpers.append(helper)
        hash_chunks(0, n // threads)
    finally:
        for helper in helpers:  # they read the caller's buffers: never left running
            helper.join()
    if failures:
        raise failures[0]
    return hmac_sha256(key, [CHUNKED_DOMAIN, total.to_bytes(8, "big"), *digests])


#: what hashes chunks beside the calling thread (a name of its own, for the tests)
_Thread = threading.Thread


def _cores() -> int:
    """The cores this process may run on now (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def verify_tag(frames: Sequence[Buffer], tag: Buffer, key: bytes) -> None:
    """Raise :class:`SignatureError` unless ``tag`` is ``sign(frames, key)``."""
    if not hmac.compare_digest(sign(frames, key), bytes(tag)):
        raise SignatureError(
            "payload signature does not match: it was changed after it was made, or "
            "signed with another key; nothing was unpickled"
        )


def pack(
    header: Header, body: Buffer, buffers: Sequence[Buffer], key: bytes | None
) -> list[Buffer]:
    """Return the frames of a payload; the tag is appended when ``key`` is set."""
    frames: list[Buffer] = [encode_head(header), body, *buffers]
    if key is not None:
        frames.append(sign(frames, key))
    return frames


def read_head(data: Buffer) -> tuple[Header, int]:
    """Decode frame 0 from the start of ``data``; return the header and its size.

    Never executes anything: only ``struct`` and ``json`` touch the bytes.
    """
    view = memoryview(data)
    if len(view) < len(MAGIC) or bytes(view[: len(MAGIC)]) != MAGIC:
        raise DeserializationError(
            "not a serdoctor payload (wrong magic bytes): pass raw=True to load a plain "
            "pickle, or check that the data was written by serdoctor.dumps"
        )
    if len(view) < PREFIX_SIZE:
        raise DeserializationError(
            f"serdoctor payload is truncated: {len(view)} bytes, the fixed prefix alone "
            f"needs {PREFIX_SIZE}"
        )
    _, version, flags, size = _PREFIX.unpack_from(view)
    if version != FORMAT_VERSION:
        raise DeserializationError(
            f"serdoctor payload uses envelope format {version}; this serdoctor reads format "
            f"{FORMAT_VERSION}: load it with the serdoctor version that wrote it"
        )
    if flags & ~(FLAG_SIGNED | FLAG_CHUNKED):
        raise DeserializationError(
            f"serdoctor payload has unknown flag bits ({flags:#04x}): it is damaged, or was "
            "written by a newer serdoctor"
        )
    if flags & FLAG_CHUNKED and not flags & FLAG_SIGNED:
        raise DeserializationError(
            f"serdoctor payload's flags ({flags:#04x}) say 'signed by chunks' but not "
            "'signed': it is damaged"
        )
    if size > MAX_HEADER or PREFIX_SIZE + size > len(view):
        raise DeserializationError(
            f"serdoctor payload is truncated or damaged: the header claims {size} bytes, "
            f"{len(view) - PREFIX_SIZE} are present"
        )
    return _decode(bytes(view[PREFIX_SIZE : PREFIX_SIZE + size]), bool(flags & FLAG_SIGNED)), (
        PREFIX_SIZE + size
    )


@functools.lru_cache(maxsize=512)
def _decode(text: bytes, signed: bool) -> Header:
    """Decode header JSON (cached: a stream of similar payloads repeats headers)."""
    try:
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # (too deep)
        raise DeserializationError(f"serdoctor envelope header is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DeserializationError("serdoctor envelope header is not a JSON object")
    return _header_from_json(raw, signed)


@dataclass
class Parsed:
    """A payload split into its parts; body and buffers are views, not copies."""

    header: Header
    head: memoryview
    body: memoryview
    buffers: list[Buffer]
    tag: bytes | None

    def verify(self, key: bytes) -> None:
        """Raise :class:`SignatureError` unless the tag matches ``key``."""
        if self.tag is None:
            raise SignatureError(
                "payload is not signed but this serializer requires a signature (key= is "
                "set): sign it with the same key where it is made, or load it with a "
                "serializer without key= if you trust its source"
            )
        verify_tag([self.head, self.body, *self.buffers], self.tag, key)


def _truncated(what: str, need: int, have: int) -> DeserializationError:
    return DeserializationError(
        f"serdoctor payload is truncated: {what} needs {need} bytes, {have} are present"
    )


def parse(data: Buffer) -> Parsed:
    """Split a flat payload (``dumps`` output) into header, body, buffers and tag."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    header, pos = read_head(view)
    head = view[:pos]
    end = pos + header.body
    if end > len(view):
        raise _truncated("the body", header.body, len(view) - pos)
    body = view[pos:end]
    pos = end
    buffers: list[Buffer] = []
    for i, n in enumerate(header.buffers):
        if pos + n > len(view):
            raise _truncated(f"buffer {i}", n, len(view) - pos)
        buffers.append(view[pos : pos + n])
        pos += n
    tag = None
    if header.signed:
        if len(view) - pos != TAG_SIZE:
            raise SignatureError(
                f"payload signature is missing or damaged ({len(view) - pos} bytes where "
                f"{TAG_SIZE} were expected); nothing was unpickled"
            )
        tag = bytes(view[pos:])
    elif pos != len(view):
        raise DeserializationError(
            f"serdoctor payload has {len(view) - pos} unexpected bytes after its end: "
            "it was damaged or two payloads were joined"
        )
    return Parsed(header, head, body, buffers, tag)


def parse_frames(frames: Sequence[Buffer]) -> Parsed:
    """Split a framed payload (``dumps_frames`` output) without copying any frame."""
    if not frames:
        raise DeserializationError("no frames given: a serdoctor payload has at least two")
    views = [
        memoryview(f).cast("B") if memoryview(f).format != "B" else memoryview(f) for f in frames
    ]
    header, pos = read_head(views[0])
    if pos != len(views[0]):
        raise DeserializationError("frame 0 holds more than the serdoctor header")
    want = 2 + len(header.buffers) + (1 if header.signed else 0)
    if len(views) != want:
        if header.signed and len(views) == want - 1:
            raise SignatureError("payload signature frame is missing; nothing was unpickled")
        raise DeserializationError(
            f"serdoctor payload has {len(views)} frames; its header describes {want}"
        )
    body = views[1]
    if len(body) != header.body:
        raise _truncated("the body", header.body, len(body))
    for i, (frame, n) in enumerate(
        zip(views[2 : 2 + len(header.buffers)], header.buffers, strict=False)
    ):
        if len(frame) != n:
            raise _truncated(f"buffer {i}", n, len(frame))
    tag = bytes(views[-1]) if header.signed else None
    if tag is not None and len(tag) != TAG_SIZE:
        raise SignatureError("payload signature frame is damaged; nothing was unpickled")
    # buffers stay the caller's own objects: a bytearray frame rebuilds a bytearray in place
    buffers = list(frames[2 : 2 + len(header.buffers)])
    return Parsed(header, views[0], body, buffers, tag)

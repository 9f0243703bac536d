"""A streaming pickle opcode reader that never unpickles.

The reader walks a pickle stream opcode by opcode, straight from a binary file
object, holding one chunk in memory at a time::

    file ──read(chunk)──▶ Source.buf ──read_arg()──▶ (offset, opcode, argument)
                 ▲                          │
                 └──── seek past ◀──────────┘  arguments longer than the limits
                                               (BINBYTES8, BINUNICODE8,
                                               BYTEARRAY8, ...) become Skipped

Rules follow CPython's C unpickler (``Modules/_pickle.c``), not pickletools:

* ``FRAME n`` only requires that ``n`` more bytes exist; opcodes may straddle a
  frame's end and frames are allowed in any protocol (the C unpickler reads the
  frame into its buffer and rewinds, so a frame is a read-ahead hint).
* ``PROTO`` above 5, an unknown opcode byte, a negative ``BINSTRING``/``LONG4``
  length, a length above ``sys.maxsize``, or fewer bytes than an argument needs
  are format errors, reported as :class:`PickleFormatError` with the offset.
* ``GLOBAL``/``INST`` names are UTF-8, ``PERSID`` is ASCII, ``INT`` ``00``/``01``
  are booleans, ``LONG`` and ``INT`` text parse with base 0 like ``PyLong_FromString``.
* One pickle ends at ``STOP``; several pickles may follow each other in one
  file and are read by calling :func:`iter_ops` again on the same :class:`Source`.

Nothing here imports, calls or constructs anything named by the stream.
"""

from __future__ import annotations

import codecs
import io
import os
import struct
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from serdoctor.errors import InspectError

__all__ = [
    "OPCODE_NAMES",
    "OPCODE_PROTO",
    "PickleFormatError",
    "Skipped",
    "Source",
    "iter_ops",
    "read_arg",
]

# --- opcodes --------------------------------------------------------------

MARK: Final = 0x28  # (
STOP: Final = 0x2E  # .
POP: Final = 0x30  # 0
POP_MARK: Final = 0x31  # 1
DUP: Final = 0x32  # 2
FLOAT: Final = 0x46  # F
INT: Final = 0x49  # I
BININT: Final = 0x4A  # J
BININT1: Final = 0x4B  # K
LONG: Final = 0x4C  # L
BININT2: Final = 0x4D  # M
NONE: Final = 0x4E  # N
PERSID: Final = 0x50  # P
BINPERSID: Final = 0x51  # Q
REDUCE: Final = 0x52  # R
STRING: Final = 0x53  # S
BINSTRING: Final = 0x54  # T
SHORT_BINSTRING: Final = 0x55  # U
UNICODE: Final = 0x56  # V
BINUNICODE: Final = 0x58  # X
APPEND: Final = 0x61  # a
BUILD: Final = 0x62  # b
GLOBAL: Final = 0x63  # c
DICT: Final = 0x64  # d
EMPTY_DICT: Final = 0x7D  # }
APPENDS: Final = 0x65  # e
GET: Final = 0x67  # g
BINGET: Final = 0x68  # h
INST: Final = 0x69  # i
LONG_BINGET: Final = 0x6A  # j
LIST: Final = 0x6C  # l
EMPTY_LIST: Final = 0x5D  # ]
OBJ: Final = 0x6F  # o
PUT: Final = 0x70  # p
BINPUT: Final = 0x71  # q
LONG_BINPUT: Final = 0x72  # r
SETITEM: Final = 0x73  # s
TUPLE: Final = 0x74  # t
EMPTY_TUPLE: Final = 0x29  # )
SETITEMS: Final = 0x75  # u
BINFLOAT: Final = 0x47  # G
PROTO: Final = 0x80
NEWOBJ: Final = 0x81
EXT1: Final = 0x82
EXT2: Final = 0x83
EXT4: Final = 0x84
TUPLE1: Final = 0x85
TUPLE2: Final = 0x86
TUPLE3: Final = 0x87
NEWTRUE: Final = 0x88
NEWFALSE: Final = 0x89
LONG1: Final = 0x8A
LONG4: Final = 0x8B
BINBYTES: Final = 0x42  # B
SHORT_BINBYTES: Final = 0x43  # C
SHORT_BINUNICODE: Final = 0x8C
BINUNICODE8: Final = 0x8D
BINBYTES8: Final = 0x8E
EMPTY_SET: Final = 0x8F
ADDITEMS: Final = 0x90
FROZENSET: Final = 0x91
NEWOBJ_EX: Final = 0x92
STACK_GLOBAL: Final = 0x93
MEMOIZE: Final = 0x94
FRAME: Final = 0x95
BYTEARRAY8: Final = 0x96
NEXT_BUFFER: Final = 0x97
READONLY_BUFFER: Final = 0x98

HIGHEST_PROTOCOL: Final = 5

# Argument kinds.
A_NONE: Final = 0
A_U1: Final = 1
A_U2: Final = 2
A_I4: Final = 3
A_U4: Final = 4
A_U8: Final = 5
A_F8: Final = 6
A_BYTES1: Final = 7
A_BYTES4: Final = 8
A_BYTES8: Final = 9
A_STR1: Final = 10
A_STR4: Final = 11
A_STR8: Final = 12
A_BSTR1: Final = 13
A_BSTR4: Final = 14
A_LONG1: Final = 15
A_LONG4: Final = 16
A_INTNL: Final = 17
A_LONGNL: Final = 18
A_FLOATNL: Final = 19
A_STRINGNL: Final = 20
A_UNICODENL: Final = 21
A_DECNL: Final = 22
A_PAIRNL: Final = 23
A_ASCIINL: Final = 24

_TABLE: tuple[tuple[int, str, int, int], ...] = (
    (INT, "INT", A_INTNL, 0),
    (BININT, "BININT", A_I4, 1),
    (BININT1, "BININT1", A_U1, 1),
    (BININT2, "BININT2", A_U2, 1),
    (LONG, "LONG", A_LONGNL, 0),
    (LONG1, "LONG1", A_LONG1, 2),
    (LONG4, "LONG4", A_LONG4, 2),
    (STRING, "STRING", A_STRINGNL, 0),
    (BINSTRING, "BINSTRING", A_BSTR4, 1),
    (SHORT_BINSTRING, "SHORT_BINSTRING", A_BSTR1, 1),
    (BINBYTES, "BINBYTES", A_BYTES4, 3),
    (SHORT_BINBYTES, "SHORT_BINBYTES", A_BYTES1, 3),
    (BINBYTES8, "BINBYTES8", A_BYTES8, 4),
    (BYTEARRAY8, "BYTEARRAY8", A_BYTES8, 5),
    (NEXT_BUFFER, "NEXT_BUFFER", A_NONE, 5),
    (READONLY_BUFFER, "READONLY_BUFFER", A_NONE, 5),
    (NONE, "NONE", A_NONE, 0),
    (NEWTRUE, "NEWTRUE", A_NONE, 2),
    (NEWFALSE, "NEWFALSE", A_NONE, 2),
    (UNICODE, "UNICODE", A_UNICODENL, 0),
    (SHORT_BINUNICODE, "SHORT_BINUNICODE", A_STR1, 4),
    (BINUNICODE, "BINUNICODE", A_STR4, 1),
    (BINUNICODE8, "BINUNICODE8", A_STR8, 4),
    (FLOAT, "FLOAT", A_FLOATNL, 0),
    (BINFLOAT, "BINFLOAT", A_F8, 1),
    (EMPTY_LIST, "EMPTY_LIST", A_NONE, 1),
    (APPEND, "APPEND", A_NONE, 0),
    (APPENDS, "APPENDS", A_NONE, 1),
    (LIST, "LIST", A_NONE, 0),
    (EMPTY_TUPLE, "EMPTY_TUPLE", A_NONE, 1),
    (TUPLE, "TUPLE", A_NONE, 0),
    (TUPLE1, "TUPLE1", A_NONE, 2),
    (TUPLE2, "TUPLE2", A_NONE, 2),
    (TUPLE3, "TUPLE3", A_NONE, 2),
    (EMPTY_DICT, "EMPTY_DICT", A_NONE, 1),
    (DICT, "DICT", A_NONE, 0),
    (SETITEM, "SETITEM", A_NONE, 0),
    (SETITEMS, "SETITEMS", A_NONE, 1),
    (EMPTY_SET, "EMPTY_SET", A_NONE, 4),
    (ADDITEMS, "ADDITEMS", A_NONE, 4),
    (FROZENSET, "FROZENSET", A_NONE, 4),
    (POP, "POP", A_NONE, 0),
    (DUP, "DUP", A_NONE, 0),
    (MARK, "MARK", A_NONE, 0),
    (POP_MARK, "POP_MARK", A_NONE, 1),
    (GET, "GET", A_DECNL, 0),
    (BINGET, "BINGET", A_U1, 1),
    (LONG_BINGET, "LONG_BINGET", A_U4, 1),
    (PUT, "PUT", A_DECNL, 0),
    (BINPUT, "BINPUT", A_U1, 1),
    (LONG_BINPUT, "LONG_BINPUT", A_U4, 1),
    (MEMOIZE, "MEMOIZE", A_NONE, 4),
    (EXT1, "EXT1", A_U1, 2),
    (EXT2, "EXT2", A_U2, 2),
    (EXT4, "EXT4", A_I4, 2),
    (GLOBAL, "GLOBAL", A_PAIRNL, 0),
    (STACK_GLOBAL, "STACK_GLOBAL", A_NONE, 4),
    (REDUCE, "REDUCE", A_NONE, 0),
    (BUILD, "BUILD", A_NONE, 0),
    (INST, "INST", A_PAIRNL, 0),
    (OBJ, "OBJ", A_NONE, 1),
    (NEWOBJ, "NEWOBJ", A_NONE, 2),
    (NEWOBJ_EX, "NEWOBJ_EX", A_NONE, 4),
    (PROTO, "PROTO", A_U1, 2),
    (STOP, "STOP", A_NONE, 0),
    (FRAME, "FRAME", A_U8, 4),
    (PERSID, "PERSID", A_ASCIINL, 0),
    (BINPERSID, "BINPERSID", A_NONE, 1),
)

#: ``OPCODE_NAMES[byte]`` is the opcode's name, or ``None`` for bytes that are not opcodes.
OPCODE_NAMES: list[str | None] = [None] * 256
#: ``OPCODE_PROTO[byte]`` is the protocol that introduced the opcode (-1: not an opcode).
OPCODE_PROTO: list[int] = [-1] * 256
#: ``ARG_KIND[byte]`` is the argument kind (-1: not an opcode).
ARG_KIND: list[int] = [-1] * 256
for _code, _name, _kind, _proto in _TABLE:
    OPCODE_NAMES[_code] = _name
    OPCODE_PROTO[_code] = _proto
    ARG_KIND[_code] = _kind
del _code, _name, _kind, _proto

#: Limits above which an argument is not read but skipped (see :class:`Skipped`).
DEFAULT_STR_LIMIT: Final = 4096
DEFAULT_BYTES_LIMIT: Final = 256
#: How many leading bytes of a skipped argument are kept for previews.
HEAD_SIZE: Final = 64
#: Longest text-protocol line read into memory (a longer STRING/UNICODE is skipped).
LINE_LIMIT: Final = 1 << 20
DEFAULT_CHUNK: Final = 1 << 20

_I4 = struct.Struct("<i")
_U4 = struct.Struct("<I")
_U8 = struct.Struct("<Q")
_F8 = struct.Struct(">d")
_MAXSIZE = sys.maxsize


class PickleFormatError(InspectError):
    """The bytes are not a well-formed pickle at ``offset``.

    ``message`` says what is wrong in the words of the C unpickler's checks;
    ``opcode`` names the opcode being read, when there is one.
    """

    def __init__(self, offset: int, message: str, opcode: str | None = None) -> None:
        where = f"at byte {offset}" + (f" ({opcode})" if opcode else "")
        super().__init__(f"{message} {where}")
        self.offset = offset
        self.message = message
        self.opcode = opcode


@dataclass(frozen=True)
class Skipped:
    """An argument that was not read into memory.

    ``offset`` is the file offset of its first byte and ``length`` its size in
    bytes (UTF-8 bytes for strings); ``head`` holds up to :data:`HEAD_SIZE`
    leading bytes. Text-protocol strings report ``length`` including quotes.
    """

    offset: int
    length: int
    head: bytes


Arg = None | int | float | str | bytes | bool | tuple[str, str] | Skipped


class Source:
    """A bounded, buffered view of a binary file object.

    ``buf[i]`` is the byte at file offset ``base + i``; reading stops at
    ``end`` (the file size when not given). The attributes are public so a
    hot loop can read the buffer directly; :meth:`fill` keeps ``need`` bytes
    available from the cursor when the file has them.
    """

    __slots__ = ("base", "buf", "chunk", "end", "eof", "f", "i", "seekable")

    def __init__(
        self,
        f: BinaryIO,
        start: int = 0,
        end: int | None = None,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        self.f = f
        self.chunk = max(chunk, 64)
        try:
            self.seekable = bool(f.seekable())
        except (AttributeError, OSError, ValueError):
            self.seekable = False
        if end is None and self.seekable:
            here = f.seek(0, io.SEEK_END)
            end = here
        if self.seekable:
            f.seek(start)
        self.end: int | None = end
        self.base = start
        self.buf = b""
        self.i = 0
        self.eof = False

    @classmethod
    def from_bytes(cls, data: bytes, chunk: int = DEFAULT_CHUNK) -> Source:
        """A source over bytes already in memory (no copy beyond the chunking)."""
        return cls(io.BytesIO(data), 0, len(data), chunk)

    @property
    def pos(self) -> int:
        """The file offset of the cursor."""
        return self.base + self.i

    def remaining(self) -> int | None:
        """Bytes left before ``end`` (``None`` when the size is unknown)."""
        if self.end is None:
            return None if not self.eof else len(self.buf) - self.i
        return self.end - self.base - self.i

    def at_end(self) -> bool:
        """True when no byte is left."""
        return not self.fill(1)

    def fill(self, need: int) -> bool:
        """Make ``need`` bytes available from the cursor; False if the file ends first."""
        have = len(self.buf) - self.i
        if have >= need:
            return True
        if self.eof:
            return False
        tail = self.buf[self.i :]
        self.base += self.i
        self.i = 0
        parts = [tail]
        got = have
        fpos = self.base + have
        while got < need:
            want = max(self.chunk, need - got)
            if self.end is not None:
                want = min(want, self.end - fpos)
                if want <= 0:
                    self.eof = True
                    break
            data = self.f.read(want)
            if not data:
                self.eof = True
                break
            parts.append(data)
            got += len(data)
            fpos += len(data)
        self.buf = b"".join(parts) if len(parts) > 1 else tail
        return got >= need

    def take(self, n: int, what: str, pos: int) -> bytes:
        """Return the next ``n`` bytes and advance; truncation is a format error."""
        if not self.fill(n):
            raise PickleFormatError(
                pos,
                f"pickle data was truncated: {what} needs {n} bytes, "
                f"{len(self.buf) - self.i} remain",
                what,
            )
        i = self.i
        self.i = i + n
        return self.buf[i : i + n]

    def skip(self, n: int) -> bool:
        """Advance ``n`` bytes without reading them (seeks when they are not buffered).

        Returns False when the input ended first (only possible when its size is unknown).
        """
        target = self.base + self.i + n
        if self.i + n <= len(self.buf):
            self.i += n
            return True
        complete = True
        if self.seekable:
            self.f.seek(target)
        else:
            left = target - (self.base + len(self.buf))
            while left > 0:
                data = self.f.read(min(left, self.chunk))
                if not data:
                    complete = False
                    self.eof = True
                    break
                left -= len(data)
        self.base = target
        self.buf = b""
        self.i = 0
        if self.end is not None and target >= self.end:
            self.eof = True
        return complete

    def peek_head(self, n: int) -> bytes:
        """Up to ``n`` bytes from the cursor, without advancing."""
        self.fill(n)
        return self.buf[self.i : self.i + n]

    def line(self, pos: int, name: str) -> bytes | None:
        """The next line without its newline, or ``None`` if it exceeds :data:`LINE_LIMIT`.

        A line that ends without a newline is a format error (truncated).
        """
        start = self.i
        nl = self.buf.find(b"\n", start)
        while nl < 0:
            have = len(self.buf) - self.i
            if have > LINE_LIMIT:
                return None
            if not self.fill(have + 1):
                raise PickleFormatError(pos, "pickle data was truncated: line has no newline", name)
            start = self.i
            nl = self.buf.find(b"\n", start + have)
        if nl - start > LINE_LIMIT:
            return None
        self.i = nl + 1
        return self.buf[start:nl]

    def skip_line(self, pos: int, name: str) -> int:
        """Skip to just past the next newline; return the line length (no newline)."""
        length = 0
        while True:
            nl = self.buf.find(b"\n", self.i)
            if nl >= 0:
                length += nl - self.i
                self.i = nl + 1
                return length
            length += len(self.buf) - self.i
            self.i = len(self.buf)
            if not self.fill(1):
                raise PickleFormatError(pos, "pickle data was truncated: line has no newline", name)


def _int_base0(text: bytes, pos: int, name: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        try:
            return int(text)
        except ValueError:
            raise PickleFormatError(pos, f"could not convert {text[:40]!r} to int", name) from None


def _sized(src: Source, pos: int, name: str, size: int, limit: int) -> bytes | Skipped:
    """Read ``size`` bytes, or skip them (returning a :class:`Skipped`) above ``limit``."""
    if size < 0:
        raise PickleFormatError(pos, f"{name} has negative byte count {size}", name)
    if size > _MAXSIZE:
        raise PickleFormatError(pos, f"{name} size {size} exceeds the system's maximum", name)
    left = src.remaining()
    if left is not None and size > left:
        raise PickleFormatError(
            pos, f"pickle data was truncated: {name} needs {size} bytes, {left} remain", name
        )
    if size <= limit:
        return src.take(size, name, pos)
    offset = src.pos
    head = src.peek_head(min(size, HEAD_SIZE))
    if not src.skip(size):
        raise PickleFormatError(pos, f"pickle data was truncated inside {name}", name)
    return Skipped(offset, size, head)


def _utf8(data: bytes | Skipped, pos: int, name: str) -> str | Skipped:
    if isinstance(data, Skipped):
        return data
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise PickleFormatError(pos, f"{name} is not valid UTF-8 ({exc.reason})", name) from None


def read_arg(
    src: Source,
    code: int,
    pos: int,
    str_limit: int = DEFAULT_STR_LIMIT,
    bytes_limit: int = DEFAULT_BYTES_LIMIT,
) -> Arg:
    """Read and decode the argument of opcode ``code`` (whose byte was at ``pos``).

    The cursor must be just past the opcode byte; it is left just past the
    argument. Strings and bytes longer than the limits are skipped and returned
    as :class:`Skipped`. Raises :class:`PickleFormatError` on malformed input.
    """
    kind = ARG_KIND[code]
    name = OPCODE_NAMES[code] or f"0x{code:02x}"
    if kind == A_NONE:
        return None
    if kind == A_U1:
        return src.take(1, name, pos)[0]
    if kind == A_U2:
        b = src.take(2, name, pos)
        return b[0] | (b[1] << 8)
    if kind == A_I4:
        return int(_I4.unpack(src.take(4, name, pos))[0])
    if kind == A_U4:
        return int(_U4.unpack(src.take(4, name, pos))[0])
    if kind == A_U8:
        value = int(_U8.unpack(src.take(8, name, pos))[0])
        if value > _MAXSIZE:
            raise PickleFormatError(
                pos, f"{name} length {value} exceeds the system's maximum", name
            )
        return value
    if kind == A_F8:
        return float(_F8.unpack(src.take(8, name, pos))[0])
    if kind == A_STR1:
        return _utf8(_sized(src, pos, name, src.take(1, name, pos)[0], str_limit), pos, name)
    if kind == A_STR4:
        size = int(_U4.unpack(src.take(4, name, pos))[0])
        return _utf8(_sized(src, pos, name, size, str_limit), pos, name)
    if kind == A_STR8:
        size = int(_U8.unpack(src.take(8, name, pos))[0])
        return _utf8(_sized(src, pos, name, size, str_limit), pos, name)
    if kind == A_BYTES1:
        return _sized(src, pos, name, src.take(1, name, pos)[0], bytes_limit)
    if kind == A_BYTES4:
        size = int(_U4.unpack(src.take(4, name, pos))[0])
        return _sized(src, pos, name, size, bytes_limit)
    if kind == A_BYTES8:
        size = int(_U8.unpack(src.take(8, name, pos))[0])
        return _sized(src, pos, name, size, bytes_limit)
    if kind in (A_BSTR1, A_BSTR4):
        if kind == A_BSTR1:
            size = src.take(1, name, pos)[0]
        else:
            size = int(_I4.unpack(src.take(4, name, pos))[0])
        data = _sized(src, pos, name, size, str_limit)
        return data if isinstance(data, Skipped) else data.decode("latin-1")
    if kind in (A_LONG1, A_LONG4):
        if kind == A_LONG1:
            size = src.take(1, name, pos)[0]
        else:
            size = int(_I4.unpack(src.take(4, name, pos))[0])
        data = _sized(src, pos, name, size, max(str_limit, 4096))
        if isinstance(data, Skipped):
            return data
        return int.from_bytes(data, "little", signed=True)
    return _read_text_arg(src, kind, pos, name, str_limit)


def _read_text_arg(src: Source, kind: int, pos: int, name: str, str_limit: int) -> Arg:
    """Arguments of the text protocol (newline-terminated)."""
    if kind in (A_STRINGNL, A_UNICODENL):
        start = src.pos
        line = src.line(pos, name)
        if line is None:  # longer than LINE_LIMIT: the cursor is still at its start
            head = src.peek_head(HEAD_SIZE)
            return Skipped(start, src.skip_line(pos, name), head)
        if len(line) > max(str_limit * 4, 256):
            return Skipped(start, len(line), line[:HEAD_SIZE])
        if kind == A_UNICODENL:
            try:
                return str(line, "raw-unicode-escape")
            except UnicodeDecodeError as exc:
                raise PickleFormatError(pos, f"bad UNICODE escape ({exc.reason})", name) from None
        if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
            raise PickleFormatError(pos, "the STRING opcode argument must be quoted", name)
        try:
            with warnings.catch_warnings():  # invalid escapes only warn, as in the unpickler
                warnings.simplefilter("ignore", DeprecationWarning)
                raw = codecs.escape_decode(line[1:-1])[0]
        except ValueError as exc:
            raise PickleFormatError(pos, f"bad STRING escape ({exc})", name) from None
        return bytes(raw).decode("latin-1")
    if kind == A_PAIRNL:
        first = src.line(pos, name)
        second = src.line(pos, name) if first is not None else None
        if first is None or second is None:
            raise PickleFormatError(pos, "module or class name line is too long", name)
        try:
            return (first.decode("utf-8"), second.decode("utf-8"))
        except UnicodeDecodeError:
            raise PickleFormatError(pos, "module or class name is not valid UTF-8", name) from None
    line = src.line(pos, name)
    if line is None:
        raise PickleFormatError(pos, "argument line is too long", name)
    if kind == A_ASCIINL:
        try:
            return line.decode("ascii")
        except UnicodeDecodeError:
            raise PickleFormatError(
                pos, "persistent IDs in protocol 0 must be ASCII strings", name
            ) from None
    if kind == A_INTNL:
        if line == b"00":
            return False
        if line == b"01":
            return True
        return _int_base0(line, pos, name)
    if kind == A_LONGNL:
        if line.endswith(b"L"):
            line = line[:-1]
        return _int_base0(line, pos, name)
    if kind == A_FLOATNL:
        try:
            return float(line)
        except ValueError:
            raise PickleFormatError(
                pos, f"could not convert {line[:40]!r} to float", name
            ) from None
    if kind == A_DECNL:
        try:
            return int(line, 10)
        except ValueError:
            raise PickleFormatError(
                pos, f"memo index {line[:40]!r} is not an integer", name
            ) from None
    raise PickleFormatError(pos, f"no reader for argument kind {kind}", name)  # pragma: no cover


def check_frame(src: Source, pos: int, length: int) -> None:
    """Apply the C unpickler's FRAME rule: ``length`` more bytes must exist."""
    left = src.remaining()
    if left is None:
        if not src.fill(length):
            raise PickleFormatError(pos, "pickle data was truncated inside a FRAME", "FRAME")
        return
    if length > left:
        raise PickleFormatError(
            pos,
            f"pickle data was truncated: FRAME announces {length} bytes, {left} remain",
            "FRAME",
        )


def iter_ops(
    src: Source,
    *,
    str_limit: int = DEFAULT_STR_LIMIT,
    bytes_limit: int = DEFAULT_BYTES_LIMIT,
) -> Iterator[tuple[int, int, Arg]]:
    """Yield ``(offset, opcode, argument)`` for one pickle, ending after its STOP.

    Call again on the same ``src`` to read the next stacked pickle. Raises
    :class:`PickleFormatError` for bytes that are not opcodes, truncated
    arguments, protocols above 5, and a stream that ends before STOP.
    """
    first = True
    while True:
        if not src.fill(1):
            pos = src.pos
            if first:
                raise PickleFormatError(pos, "no pickle data (the input is empty here)")
            raise PickleFormatError(pos, "pickle data was truncated: it ends before STOP")
        pos = src.pos
        code = src.buf[src.i]
        src.i += 1
        if ARG_KIND[code] < 0:
            raise PickleFormatError(
                pos, f"byte 0x{code:02x} ({chr(code)!r}) is not a pickle opcode"
            )
        arg = read_arg(src, code, pos, str_limit, bytes_limit)
        if code == PROTO and isinstance(arg, int) and arg > HIGHEST_PROTOCOL:
            raise PickleFormatError(pos, f"unsupported pickle protocol: {arg}", "PROTO")
        if code == FRAME and isinstance(arg, int):
            check_frame(src, pos, arg)
        first = False
        yield pos, code, arg
        if code == STOP:
            return


def file_size(f: BinaryIO) -> int | None:
    """The size of ``f`` in bytes, or ``None`` when it cannot be known without reading."""
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        here = f.tell()
        size = f.seek(0, io.SEEK_END)
        f.seek(here)
        return size
    except (AttributeError, OSError, ValueError):
        return None

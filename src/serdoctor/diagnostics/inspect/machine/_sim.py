"""The simulated unpickler: the C unpickler's stack and memo over stand-ins.

:class:`_Machine` runs one pickle at a time from an :class:`_opcodes.Source`
(streamed in chunks). The frequent opcodes are handled inline in
:meth:`_Machine._loop` with the state held in locals (this loop is what makes
inspection faster than ``pickletools.dis``); every other opcode goes through
the slow path of :mod:`machine._ops`. The machine holds its parts rather than
inheriting them: the state (``s``), the renderer (``r``), the call evaluator
(``c``), the container operations (``k``) and the opcode handlers (``o``), each
given the parts it uses when it is made.
"""

from __future__ import annotations

import struct
import sys

from serdoctor.diagnostics.inspect._report import PickleSummary
from serdoctor.diagnostics.inspect.machine import _opcodes as op
from serdoctor.diagnostics.inspect.machine._calls import _Caller
from serdoctor.diagnostics.inspect.machine._containers import _ContainerOps
from serdoctor.diagnostics.inspect.machine._expr import _Renderer
from serdoctor.diagnostics.inspect.machine._nodes import (
    _BOX_KINDS,
    _EMPTY,
    _OLD_STUB,
    F_CLOSED,
    K_DICT,
    K_LIST,
    KEEP,
    KEEP_BUDGET,
    MAX_PICKLES,
    MEMO_WINDOW,
    STR_LIMIT,
    _Node,
)
from serdoctor.diagnostics.inspect.machine._opcodes import PickleFormatError, Source
from serdoctor.diagnostics.inspect.machine._ops import _OpHandlers
from serdoctor.diagnostics.inspect.machine._special import _SPECIAL
from serdoctor.diagnostics.inspect.machine._state import _MachineState

_unpack_f8 = struct.Struct(">d").unpack_from
_unpack_i4 = struct.Struct("<i").unpack_from
_unpack_u4 = struct.Struct("<I").unpack_from
_unpack_u8 = struct.Struct("<Q").unpack_from
_NOTHING = object()  # "no new value to memoize" (None is a value)


class _Machine:
    """Simulates the C unpickler over stand-in values (never builds real objects)."""

    def __init__(self, src: Source, *, buffers: list[int] | None = None) -> None:
        """A machine over ``src``: its state, and the parts that work on it.

        Composition, not inheritance: ``s`` holds the stack, memo and findings;
        ``r`` renders stand-ins, ``c`` evaluates calls, ``k`` fills containers and
        ``o`` handles the opcodes the loop below does not inline.
        """
        self.s = s = _MachineState(src, buffers=buffers, special=_SPECIAL)
        self.r = r = _Renderer(s)
        self.c = c = _Caller(s, r, _SPECIAL)
        self.k = k = _ContainerOps(s, r, c)
        self.o = _OpHandlers(s, r, c, k)

    def run_pickle(self, index: int) -> PickleSummary:
        """Simulate one pickle from the source's cursor through its STOP."""
        src = self.s.src
        self.s.stack = []
        self.s.marks = []
        self.s.memo = []
        self.s.memo_base = 0
        self.s.old_kept = {}
        self.s.sparse = {}
        self.s.pinned = set()
        self.s.proto = 0
        self.s.max_proto = 0
        summary = PickleSummary(index, src.pos)
        self.s.summary = summary
        self.s.pickle_count += 1
        if len(self.s.pickles) < MAX_PICKLES:  # the rest only count in the totals
            self.s.pickles.append(summary)
        try:
            self._loop(summary)
        finally:
            summary.memo_entries = self.s.memo_base + len(self.s.memo) + len(self.s.sparse)
            summary.protocol = max(self.s.max_proto, summary.declared_protocol or 0)
            totals = self.s.totals
            totals["max_depth"] = max(totals["max_depth"], summary.max_depth)
            totals["memo_entries"] += summary.memo_entries
            totals["out_of_band_buffers"] += summary.out_of_band_buffers
            totals["opcodes"] += summary.opcodes
        summary.end = src.pos
        summary.complete = True
        return summary

    def _loop(self, summary: PickleSummary) -> None:
        """Run opcodes until STOP: frequent ones inline, the rest through :meth:`_slow`.

        The inner loop keeps the source's buffer and the machine's state in
        locals. Whenever something else moves them (the slow path, a refill, a
        FRAME) it breaks out, and the outer loop loads them again. A value that
        the next opcode memoizes (MEMOIZE right after it) is memoized at once,
        in one place at the end of the inner loop.
        """
        src = self.s.src
        stack = self.s.stack
        push = stack.append
        marks = self.s.marks
        memo = self.s.memo
        memo_append = memo.append
        sparse = self.s.sparse
        pinned = self.s.pinned
        pin = pinned.add
        old_kept = self.s.old_kept
        spill_at = 2 * MEMO_WINDOW
        Node = _Node
        kd = K_DICT
        kl = K_LIST
        unpack_f8 = _unpack_f8
        unpack_i4 = _unpack_i4
        unpack_u4 = _unpack_u4
        nops = 0
        while True:  # (re)load what the inner loop keeps in locals
            buf = src.buf
            i = src.i
            base = src.base
            n = len(buf)
            safe = n - 32
            fence = marks[-1] if marks else 0
            memo_base = self.s.memo_base
            room = spill_at - len(memo)  # appends left before the memo spills
            try:
                while True:
                    if i > safe:
                        src.i = i
                        src.fill(32)
                        if src.i > len(src.buf) - 32:  # near the end: one opcode at a time
                            i = src.i
                            if i >= len(src.buf):
                                pos = src.base + i
                                if nops == 0 and summary.opcodes == 0:
                                    raise PickleFormatError(pos, "no pickle data here")
                                raise PickleFormatError(
                                    pos, "pickle data was truncated: it ends before STOP"
                                )
                            nops += 1
                            src.i = i + 1
                            if self.o._slow(src.buf[i], src.base + i):
                                return
                        break
                    code = buf[i]
                    nops += 1
                    v = _NOTHING  # set to a value the next opcode may memoize at once
                    if code == 0x68 or code == 0x6A:  # BINGET, LONG_BINGET
                        if code == 0x68:
                            idx = buf[i + 1]
                            width = 2
                        else:
                            idx = unpack_u4(buf, i + 1)[0]
                            width = 5
                        if idx >= memo_base:
                            got = memo[idx - memo_base]
                            if type(got) is str:
                                pin(idx)
                            elif (
                                type(got) is Node
                                and not got.flags & F_CLOSED
                                and got.kind in _BOX_KINDS
                            ):
                                summary.cycles += 1  # a value fetched while still being built
                        else:
                            got = old_kept.get(idx, _OLD_STUB)
                        push(got)
                        i += width
                    elif code == 0x8C or code == 0x43:  # SHORT_BINUNICODE, SHORT_BINBYTES
                        e = i + 2 + buf[i + 1]
                        if e > n:
                            src.i = i + 1
                            self.o._slow(code, base + i)
                            break
                        v = buf[i + 2 : e]
                        if code == 0x8C:
                            v = v.decode("utf-8", "surrogatepass")
                        push(v)
                        i = e
                    elif code == 0x4B:  # BININT1
                        push(buf[i + 1])
                        i += 2
                    elif code == 0x28:  # MARK
                        fence = len(stack)
                        marks.append(fence)
                        i += 1
                    elif code == 0x75 or code == 0x65:  # SETITEMS, APPENDS
                        opname = "SETITEMS" if code == 0x75 else "APPENDS"
                        if not marks:
                            raise PickleFormatError(base + i, "could not find MARK", opname)
                        k = marks.pop()
                        fence = marks[-1] if marks else 0
                        if k <= 0:
                            raise self.s.underflow(base + i, opname)
                        items = stack[k:]
                        del stack[k:]
                        d = stack[-1]
                        if code == 0x75:
                            if len(items) & 1:
                                raise PickleFormatError(
                                    base + i, "odd number of items for SETITEMS", opname
                                )
                            self.k.setitems(d, items, base + i)
                        elif type(d) is Node and d.kind is kl and Node not in map(type, items):
                            # a list of plain values: counted and sampled here
                            d.end = base + i + 1
                            d.count += len(items)
                            kept = d.items
                            if kept is not None and len(kept) < KEEP:
                                add = items[: KEEP - len(kept)]
                                kept.extend(add)
                                self.s.kept += len(add)
                            if d.depth < 2 and tuple in map(type, items):
                                d.depth = 2
                        else:
                            self.k.appends(d, items, base + i)
                        i += 1
                    elif code == 0x7D or code == 0x5D:  # EMPTY_DICT, EMPTY_LIST
                        kind = kd if code == 0x7D else kl
                        v = Node(kind, kind, base + i, [] if self.s.kept < KEEP_BUDGET else None)
                        push(v)
                        i += 1
                    elif code == 0x47:  # BINFLOAT
                        push(unpack_f8(buf, i + 1)[0])
                        i += 9
                    elif code == 0x94:  # MEMOIZE (of a value that was not memoized at once)
                        if len(stack) <= fence:
                            raise self.s.underflow(base + i, "MEMOIZE")
                        i += 1
                        if sparse:
                            self.s.memo_put(memo_base + len(memo) + len(sparse), stack[-1])
                        else:
                            memo_append(stack[-1])
                            room -= 1
                            if not room:
                                self.s.spill()
                                memo_base = self.s.memo_base
                                room = spill_at - len(memo)
                    elif code == 0x4A:  # BININT
                        push(unpack_i4(buf, i + 1)[0])
                        i += 5
                    elif code == 0x4D:  # BININT2
                        push(buf[i + 1] | (buf[i + 2] << 8))
                        i += 3
                    elif 0x85 <= code <= 0x87:  # TUPLE1/2/3
                        k = len(stack) - code + 0x84
                        if k < fence:
                            raise self.s.underflow(base + i, op.OPCODE_NAMES[code] or "TUPLE")
                        items = stack[k:]
                        del stack[k:]
                        v = self.s.tuple_of(items, base + i)
                        push(v)
                        i += 1
                    elif code == 0x52:  # REDUCE
                        if len(stack) - 2 < fence:
                            raise self.s.underflow(base + i, "REDUCE")
                        args = stack.pop()
                        v = self.c.call(stack.pop(), args, None, base + i, "REDUCE")
                        push(v)
                        i += 1
                    elif code == 0x4E:  # NONE
                        push(None)
                        i += 1
                    elif code == 0x58:  # BINUNICODE
                        e = i + 5 + unpack_u4(buf, i + 1)[0]
                        if e > n or e - i > STR_LIMIT + 5:
                            src.i = i + 1
                            self.o._slow(code, base + i)
                            break
                        push(buf[i + 5 : e].decode("utf-8", "surrogatepass"))
                        i = e
                    elif code == 0x29:  # EMPTY_TUPLE
                        push(_EMPTY)
                        i += 1
                    elif code == 0x88:  # NEWTRUE
                        push(True)
                        i += 1
                    elif code == 0x89:  # NEWFALSE
                        push(False)
                        i += 1
                    elif code == 0x71:  # BINPUT
                        if len(stack) <= fence:
                            raise self.s.underflow(base + i, "BINPUT")
                        self.s.memo_put(buf[i + 1], stack[-1])
                        memo_base = self.s.memo_base
                        room = spill_at - len(memo)
                        i += 2
                    elif code == 0x95:  # FRAME
                        ln = _unpack_u8(buf, i + 1)[0]
                        src.i = i + 9
                        if ln > sys.maxsize:
                            raise PickleFormatError(
                                base + i, "FRAME length exceeds the system's maximum", "FRAME"
                            )
                        op.check_frame(src, base + i, ln)
                        summary.frames += 1
                        break
                    else:
                        src.i = i + 1
                        if self.o._slow(code, base + i):
                            return
                        break
                    if v is not _NOTHING and i < n and buf[i] == 0x94 and not sparse:
                        # MEMOIZE right after a new value: memoize it now, one opcode less
                        memo_append(v)
                        nops += 1
                        i += 1
                        room -= 1
                        if not room:
                            self.s.spill()
                            memo_base = self.s.memo_base
                            room = spill_at - len(memo)
                        if (code == 0x7D or code == 0x5D) and i < n and buf[i] == 0x28:
                            # a new dict or list, then MARK: its items follow
                            fence = len(stack)
                            marks.append(fence)
                            nops += 1
                            i += 1
            except IndexError:
                src.i = i
                pos = base + i
                code = buf[i] if i < len(buf) else -1
                if code in (0x68, 0x6A):
                    idx = buf[i + 1] if code == 0x68 else unpack_u4(buf, i + 1)[0]
                    if idx in self.s.sparse:
                        push(sparse[idx])
                        src.i = i + (2 if code == 0x68 else 5)
                        continue
                    raise PickleFormatError(
                        pos,
                        f"memo value not found at index {idx} (bad memo reference)",
                        op.OPCODE_NAMES[code],
                    ) from None
                name = op.OPCODE_NAMES[code] if code >= 0 else None
                raise self.s.underflow(pos, name or "?") from None
            except UnicodeDecodeError as exc:
                raise PickleFormatError(
                    base + i,
                    f"string is not valid UTF-8 ({exc.reason})",
                    op.OPCODE_NAMES[buf[i]],
                ) from None
            finally:
                summary.opcodes += nops
                nops = 0

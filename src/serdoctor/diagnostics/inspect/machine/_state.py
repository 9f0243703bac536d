"""The machine's state: stack, memo, imports, findings and node bookkeeping.

:class:`_MachineState` is the state of the simulated unpickler
(:class:`~serdoctor.diagnostics.inspect.machine._sim._Machine`), which holds
it together with the parts that work on it: rendering (``machine._expr``),
call evaluation (``machine._calls``), container updates
(``machine._containers``) and opcode handlers (``machine._ops``).

The memo keeps the last ``MEMO_WINDOW``-``2 * MEMO_WINDOW`` entries; older
ones are forgotten unless they matter later (see :meth:`_MachineState.spill`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from serdoctor.diagnostics.inspect._report import (
    DANGEROUS,
    Finding,
    ImportInfo,
    PickleSummary,
)
from serdoctor.diagnostics.inspect._tables import (
    _HIGHER_ORDER,
    _compat,
    _danger,
    _is_safe,
    _normalize,
)
from serdoctor.diagnostics.inspect.machine._nodes import (
    _BOX_KINDS,
    _OLD_STUB,
    _SHARED_KINDS,
    F_CLOSED,
    F_KEEP,
    F_TRACKED,
    K_BLOB,
    K_GLOBAL,
    K_TUPLE,
    KEEP,
    KEEP_BUDGET,
    KT_INDEX,
    MAX_FINDINGS,
    MEMO_WINDOW,
    TOP_N,
    _ByValue,
    _Expr,
    _Node,
    _Stub,
)
from serdoctor.diagnostics.inspect.machine._opcodes import PickleFormatError, Skipped, Source


class _MachineState:
    """State of the simulated unpickler, and the bookkeeping every part shares."""

    def __init__(
        self, src: Source, *, buffers: list[int] | None = None, special: Iterable[str] = ()
    ) -> None:
        self.src = src
        self.special = frozenset(special)  # targets with a handler of their own (_special)
        self.imports: dict[tuple[str, str], ImportInfo] = {}
        self.import_nodes: dict[tuple[str, str], _Node] = {}
        self.findings: list[Finding] = []
        self.finding_keys: set[tuple[str, int | None, str | None]] = set()
        self.by_value: list[_ByValue] = []
        self.sketch: list[str] = []
        self.sketch_full = False
        self.sketch_names: dict[str, str] = {}
        self.sketch_imports: list[str] = []
        self.var_count = 0
        self.kept = 0
        self.leaves: list[tuple[int, int, _Node]] = []
        self.boxes: list[tuple[int, int, _Node]] = []
        self.seq = 0
        self.pickles: list[PickleSummary] = []
        self.buffer_sizes = buffers
        self.buffer_index = 0
        self.persids = 0
        self.envelope_persistent = False
        self.nonascii_strings = False
        self.ext_codes: list[int] = []
        self.main_names: set[str] = set()
        self.dill_main = False
        self.pickle_count = 0
        self.totals = {"max_depth": 0, "memo_entries": 0, "out_of_band_buffers": 0, "opcodes": 0}
        self.proto = 0
        self.max_proto = 0
        # per-pickle state (reset by run_pickle)
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: list[Any] = []  # entries memo_base.. (the recent ones)
        self.memo_base = 0
        self.old_kept: dict[int, Any] = {}
        self.sparse: dict[int, Any] = {}
        self.pinned: set[int] = set()
        self.summary = PickleSummary(0, 0)

    # -- findings and imports ------------------------------------------------

    def finding(
        self,
        severity: str,
        category: str,
        message: str,
        offset: int | None,
        target: str | None = None,
        expression: _Expr | None = None,
    ) -> None:
        key = (category, offset, target)
        if key in self.finding_keys:
            return
        self.finding_keys.add(key)
        if len(self.findings) >= MAX_FINDINGS and severity != DANGEROUS:
            return
        if callable(expression):
            expression = expression()
        self.findings.append(Finding(severity, category, message, offset, target, expression))

    def import_global(self, module: str, name: str, pos: int, via: str) -> _Node:
        """Record a global lookup and return its (shared) stand-in."""
        original = None
        if self.proto < 3:
            mapped = _compat(module, name)
            if mapped != (module, name):
                original = f"{module}.{name}"
                module, name = mapped
        key = (module, name)
        info = self.imports.get(key)
        if info is None:
            info = ImportInfo(module, name, original=original)
            self.imports[key] = info
            node = _Node(K_GLOBAL, info.target, pos)
            node.flags = F_KEEP
            node.info = info
            self.import_nodes[key] = node
            if module == "__main__":
                self.main_names.add(name)
            if module in ("__builtin__", "__main__") and name == "__main__":
                self.dill_main = True
            danger = _danger(info.target)
            info.category = danger[0] if danger else ("known" if _is_safe(info.target) else None)
            norm = _normalize(info.target)
            info.fast = (
                info.category == "known" and norm not in self.special and norm not in _HIGHER_ORDER
            )
        info.loads += 1
        if len(info.offsets) < 50:
            info.offsets.append(pos)
        if via not in info.via:
            info.via.append(via)
        return self.import_nodes[key]

    # -- nodes ----------------------------------------------------------------

    def container(self, kind: str, pos: int) -> _Node:
        if self.kept < KEEP_BUDGET:
            return _Node(kind, kind, pos, [])
        return _Node(kind, kind, pos, None)

    def leaf(self, skipped: Skipped, label: str, pos: int) -> _Node:
        node = _Node(K_BLOB, label, pos)
        node.size = skipped.length
        node.info = skipped
        self.track_leaf(node)
        return node

    def track_leaf(self, node: _Node) -> None:
        self.seq += 1
        if len(self.leaves) < TOP_N:
            heapq.heappush(self.leaves, (node.size, self.seq, node))
        elif node.size > self.leaves[0][0]:
            heapq.heapreplace(self.leaves, (node.size, self.seq, node))
        else:
            return
        node.flags |= F_TRACKED

    def track_box(self, node: _Node) -> None:
        size = node.end - node.pos
        node.size = size
        if size < 1024:
            return
        self.seq += 1
        if len(self.boxes) < TOP_N:
            heapq.heappush(self.boxes, (size, self.seq, node))
        elif size > self.boxes[0][0]:
            heapq.heapreplace(self.boxes, (size, self.seq, node))
        else:
            return
        node.flags |= F_TRACKED

    def attach(self, parent: _Node, child: _Node, key: Any, ktype: int) -> None:
        """Record that ``child`` now lives inside ``parent`` (first placement wins).

        Only tracked values (the largest ones and their ancestors) keep a link
        to their parent: links for every value would form cycles with the
        parents' kept children and hold memory until a garbage collection.
        """
        flags = child.flags
        if not flags & F_CLOSED and child is not parent and child.kind not in _SHARED_KINDS:
            child.flags = flags = flags | F_CLOSED
            if child.end - child.pos >= 1024 and child.kind in _BOX_KINDS:
                self.track_box(child)
                flags = child.flags
            if flags & F_TRACKED:
                child.parent = parent
                child.key = key
                child.ktype = ktype
                parent.flags |= F_TRACKED
        if child.depth >= parent.depth:
            parent.depth = child.depth + 1

    def keep_items(self, node: _Node, values: list[Any], limit: int = KEEP) -> None:
        items = node.items
        if items is not None:
            room = limit - len(items)
            if room > 0:
                add = values[:room]
                items.extend(add)
                self.kept += len(add)

    # -- errors ---------------------------------------------------------------

    def underflow(self, pos: int, name: str) -> PickleFormatError:
        return PickleFormatError(pos, "unpickling stack underflow", name)

    def pop_mark(self, pos: int, name: str) -> int:
        if not self.marks:
            raise PickleFormatError(pos, "could not find MARK", name)
        return self.marks.pop()

    def fence(self) -> int:
        return self.marks[-1] if self.marks else 0

    def pop(self, pos: int, name: str) -> Any:
        if len(self.stack) <= self.fence():
            raise self.underflow(pos, name)
        return self.stack.pop()

    # -- memo -----------------------------------------------------------------

    def memo_put(self, idx: int, value: Any) -> None:
        """PUT/MEMOIZE at absolute index ``idx``."""
        memo = self.memo
        base = self.memo_base
        rel = idx - base
        if rel == len(memo):
            memo.append(value)
            sparse = self.sparse
            while sparse and base + len(memo) in sparse:
                memo.append(sparse.pop(base + len(memo)))
            if len(memo) >= 2 * MEMO_WINDOW:
                self.spill()
        elif 0 <= rel < len(memo):
            memo[rel] = value
        elif rel < 0:
            self.old_kept[idx] = value
        else:
            self.sparse[idx] = value

    def memo_get(self, idx: int, pos: int, name: str) -> Any:
        rel = idx - self.memo_base
        if 0 <= rel < len(self.memo):
            value = self.memo[rel]
            if type(value) is str:
                self.pinned.add(idx)
        elif 0 <= idx < self.memo_base:
            value = self.old_kept.get(idx, _OLD_STUB)
        elif idx in self.sparse:
            value = self.sparse[idx]
        else:
            raise PickleFormatError(
                pos, f"memo value not found at index {idx} (bad memo reference)", name
            )
        if type(value) is _Node and not value.flags & F_CLOSED and value.kind in _BOX_KINDS:
            self.summary.cycles += 1
        return value

    def spill(self) -> None:
        """Forget the oldest window of memo entries, except the ones that matter later.

        Globals, references, by-value code, containers still being built,
        literals and strings that were fetched again are kept as they are;
        the others cost nothing from now on (a later fetch gets a stub).
        """
        memo = self.memo
        base = self.memo_base
        kept = self.old_kept
        pinned = self.pinned
        node = _Node
        for k, v in enumerate(memo[:MEMO_WINDOW], base):
            t = type(v)
            if t is node:
                if v.flags & F_KEEP or not v.flags & F_CLOSED:
                    kept[k] = v
            elif t is str:
                if pinned and k in pinned:
                    kept[k] = v
            elif t is not bytes and t is not tuple and t is not _Stub:
                kept[k] = v  # None, numbers: small and exact
        del memo[:MEMO_WINDOW]
        self.memo_base = base + MEMO_WINDOW
        if len(pinned) > MEMO_WINDOW:  # in place: the hot loop holds pinned.add
            pinned.difference_update([p for p in pinned if p < self.memo_base])

    # -- tuples -----------------------------------------------------------------

    def tuple_of(self, items: list[Any], pos: int) -> Any:
        """A tuple stand-in: a plain tuple of literals, or a node when it holds nodes."""
        for v in items:
            t = type(v)
            if t is _Node or t is _Stub or t is tuple:
                break
        else:
            return tuple(items)
        node = self.container(K_TUPLE, pos)
        node.count = len(items)
        start = pos
        for index, v in enumerate(items):
            if type(v) is _Node:
                if v.pos < start and not v.flags & F_CLOSED and v.kind not in _SHARED_KINDS:
                    start = v.pos
                self.attach(node, v, index, KT_INDEX)
            elif type(v) is tuple and v and node.depth < 2:
                node.depth = 2
        node.pos = start
        node.end = pos + 1
        self.keep_items(node, items)
        return node

    # -- the file ---------------------------------------------------------------

    def read_at(self, offset: int, size: int) -> bytes | None:
        """Read ``size`` bytes at ``offset`` and restore the source's file position."""
        src = self.src
        if not src.seekable:
            return None
        f = src.f
        try:
            here = f.tell()
            f.seek(offset)
            data = f.read(size)
            f.seek(here)
        except (OSError, ValueError):
            return None
        return data

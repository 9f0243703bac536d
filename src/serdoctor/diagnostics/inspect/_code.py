"""Which Python compiled a code object, read from its layout and bytecode.

Code objects travel by value (cloudpickle, dill, serdoctor): the number of
``CodeType`` constructor fields narrows the Python minor, and the bytecode is
checked against each candidate's opcode table (3.7-3.13). serdoctor ships
marshal data instead: :class:`_MarshalReader` walks it without
``marshal.loads`` (not safe on untrusted bytes).
"""

from __future__ import annotations

import re
import struct
from typing import Any, Final

# Bytecode layout per Python minor: for each opcode byte, '.' when undefined,
# else chr(48 + number of inline cache entries). Generated from each
# interpreter's ``opcode`` module (3.7-3.13).
_BYTECODE: Final = {
    "3.7": ".00000...0000..000.00.00000000....................000..000.000000000000000.0000000"
    "00000000000000000.00000000000000000..0000.000...0000.0000..000000000000000000.00.."
    "..................................................................................."
    ".........",
    "3.8": ".000000..0000..000.00.00000000....................00000000.000000000000000.00000.00"
    "0000000000000000.00000000000000000.....0.000...0000.0000..000000000000000000.0000."
    "..................................................................................."
    ".........",
    "3.9": ".000000..0000..000.00.00000000..................00000.0000.000000000000000000000..0"
    "00000.0000000000.0000000000000000000..00.000...0000.0000..00000000.....0000..00000"
    "0.................................................................................."
    ".........",
    "3.10": ".000000..0000..000.00.0000000000000..............0000.0000.000000000000000000000.."
    "000000.0000000000000000000000000000000.00.000..00000.0000..00000000...0.0000..0000"
    "00................................................................................."
    "..........",
    "3.11": "000......0000..0.........4....0000.000...........000000.....10......0000..00......0"
    "000000000100400000000004200000.0050000.10000.0000000000000.0.000000.00..000..:.000"
    "01....400000......................................................................."
    "..........",
    "3.12": "000000...0.00..0.0.......100..0000.000...........0000000....10......00.0..00......."
    "0.0.0.0001104000000000091000...0040000011000000000000000001000000.0000..000....000"
    "0.....300000......................................................................."
    "..........",
    "3.13": "000.010000000000000000000000000000000001300001000000030000110000000000.01000010000"
    "9000000004010001111000100040000000010..............................0..............."
    "..................................................................................."
    "..........",
}
# Code-object constructor arity -> Pythons whose CodeType takes that many arguments.
_CODE_ARITY: Final = {
    15: ("3.7",),
    16: ("3.8", "3.9", "3.10"),
    18: ("3.11", "3.12", "3.13"),
}
_RESUME: Final = {"3.11": 151, "3.12": 151, "3.13": 149}
_PRE_RESUME: Final = {  # opcodes that may precede RESUME: MAKE_CELL, COPY_FREE_VARS, ...
    "3.11": {135, 149, 75, 1, 9},
    "3.12": {135, 149, 75, 1, 9},
    "3.13": {94, 62, 35, 32, 30},
}


def _valid_bytecode(code: bytes, version: str) -> bool:
    """Whether ``code`` is well-formed wordcode for ``version`` (opcodes and cache layout)."""
    table = _BYTECODE[version]
    n = len(code)
    if n == 0 or n % 2:
        return False
    resume = _RESUME.get(version)
    prefix = _PRE_RESUME.get(version, set())
    seen_resume = resume is None
    i = 0
    while i < n:
        opc = code[i]
        entry = table[opc]
        if entry == "." or (opc == 0 and resume is not None):  # CACHE only follows its op
            return False
        if not seen_resume:
            if opc == resume:
                seen_resume = True
            elif opc not in prefix:
                return False
        i += 2
        for _ in range(ord(entry) - 48):
            if i + 1 >= n or code[i] or code[i + 1]:
                return False
            i += 2
    return seen_resume


def _python_for(arity: int, co_code: bytes | None) -> tuple[list[str], str]:
    """Candidate Python minors for a code object with ``arity`` constructor fields."""
    if arity == 20:
        return ["3.11"], "code-object layout with 20 fields (a 3.11 pre-release)"
    if arity == 17:
        return ["3.11"], "code-object layout with 17 fields (PyPy 3.11)"
    layout = _CODE_ARITY.get(arity)
    if layout is None:
        return [], f"unknown code-object layout ({arity} fields)"
    basis = f"code-object layout ({arity} fields: Python {layout[0]}-{layout[-1]})"
    if len(layout) == 1:
        basis = f"code-object layout ({arity} fields: Python {layout[0]})"
    if not co_code:
        return list(layout), basis
    valid = [v for v in layout if _valid_bytecode(co_code, v)]
    if valid:
        return valid, basis + " and bytecode"
    return list(layout), basis + "; the bytecode matches none of them (a newer Python?)"


_MARSHAL_STRINGS: Final = frozenset(b"uatAzZ")


def _marshal_code_facts(data: bytes) -> dict[str, Any]:
    """Name, file, line and Python versions of a marshalled code object.

    Reads the marshal format itself (never ``marshal.loads``, which is not
    safe on untrusted bytes): enough of it to reach the names and bytecode.
    """
    facts: dict[str, Any] = {}
    try:
        reader = _MarshalReader(data)
        code = reader.read(0)
    except (IndexError, ValueError, struct.error, RecursionError):
        return facts
    if not isinstance(code, dict):
        return facts
    arity = 18 if code.get("layout") == "3.11+" else 16
    facts.update({k: code[k] for k in ("name", "qualname", "filename", "firstlineno") if k in code})
    co_code = code.get("code")
    facts["python"], facts["basis"] = _python_for(
        arity, co_code if isinstance(co_code, bytes) else None
    )
    facts["basis"] = re.sub(
        r"code-object layout \(\d+ fields: ", "marshal code layout (", facts["basis"]
    )
    return facts


class _MarshalReader:
    """A read-only walker over marshal data (types 3.8-3.13 write for code objects)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0
        self.refs: list[Any] = []

    def _int(self) -> int:
        value = int(struct.unpack_from("<i", self.data, self.i)[0])
        self.i += 4
        return value

    def _take(self, n: int) -> bytes:
        if n < 0 or self.i + n > len(self.data):
            raise ValueError("marshal data truncated")
        chunk = self.data[self.i : self.i + n]
        self.i += n
        return chunk

    def read(self, depth: int) -> Any:
        if depth > 60:
            raise ValueError("marshal data nested too deep")
        code = self.data[self.i]
        self.i += 1
        flag = code & 0x80
        kind = code & 0x7F
        slot = -1
        if flag and kind in b"([{<>c":
            slot = len(self.refs)
            self.refs.append(None)
        value: Any
        if kind in b"NFTS.0":
            value = {0x4E: None, 0x46: False, 0x54: True}.get(kind)
        elif kind == 0x69:  # i
            value = self._int()
        elif kind == 0x6C:  # l: 15-bit digits
            n = self._int()
            self._take(2 * abs(n))
            value = 0
        elif kind == 0x67:  # g
            value = struct.unpack("<d", self._take(8))[0]
        elif kind == 0x79:  # y
            self._take(16)
            value = 0j
        elif kind in b"fx":
            value = self._take(self.data[self.i] + 1)
        elif kind == 0x73:  # s: bytes
            value = self._take(self._int())
        elif kind in _MARSHAL_STRINGS:
            size = self.data[self.i] if kind in b"zZ" else None
            if size is None:
                size = self._int()
            else:
                self.i += 1
            value = self._take(size).decode("utf-8", "surrogatepass")
        elif kind == 0x72:  # r: reference
            index = self._int()
            value = self.refs[index]
        elif kind in b"()[<>":
            if kind == 0x29:  # small tuple: one-byte length
                n = self.data[self.i]
                self.i += 1
            else:
                n = self._int()
            value = tuple(self.read(depth + 1) for _ in range(n))
        elif kind == 0x7B:  # {
            items = []
            while self.data[self.i] != 0x30:
                items.append((self.read(depth + 1), self.read(depth + 1)))
            self.i += 1
            value = dict(items) if all(isinstance(k, (str, int)) for k, _ in items) else {}
        elif kind == 0x63:  # c: a code object
            value = self._code(depth)
        else:
            raise ValueError(f"marshal type {kind!r} not understood")
        if flag:
            if slot >= 0:
                self.refs[slot] = value
            else:
                self.refs.append(value)
        return value

    def _code(self, depth: int) -> dict[str, Any]:
        start = self.i
        ints = [self._int() for _ in range(5)]
        layout = "3.11+"
        if self.data[self.i] & 0x7F != 0x73:  # a sixth int (co_flags): 3.8-3.10
            self.i = start
            ints = [self._int() for _ in range(6)]
            layout = "3.8-3.10"
        out: dict[str, Any] = {"layout": layout, "argcount": ints[0]}
        out["code"] = self.read(depth + 1)
        if layout == "3.11+":
            for _ in range(4):  # consts, names, localsplusnames, localspluskinds
                self.read(depth + 1)
            out["filename"] = self.read(depth + 1)
            out["name"] = self.read(depth + 1)
            out["qualname"] = self.read(depth + 1)
            out["firstlineno"] = self._int()
        else:
            for _ in range(5):  # consts, names, varnames, freevars, cellvars
                self.read(depth + 1)
            out["filename"] = self.read(depth + 1)
            out["name"] = self.read(depth + 1)
            out["firstlineno"] = self._int()
        self.read(depth + 1)  # linetable / lnotab
        if layout == "3.11+":
            self.read(depth + 1)  # exceptiontable
        return {k: v for k, v in out.items() if not isinstance(v, dict) or k == "layout"}

"""A corpus of pickles for ``ser-doctor inspect``, each with what inspect must find.

Five groups:

- ``benign``: ordinary pickles of protocols 0-5 (stdlib value types, numpy,
  stacked pickles, cycles, out-of-band buffers, references that do not resolve here);
- ``by-value``: cloudpickle and dill functions/classes and a raw ``CodeType``;
- ``malicious``: hand-assembled opcode streams that would run commands (NEVER
  loaded: nothing in the tests calls ``pickle.loads`` on them);
- ``obfuscated``: the same attacks hidden behind memo tricks, getattr chains,
  ``functools.partial``, ``sys.modules`` lookups and computed globals;
- ``malformed``: truncated, garbage, bad memo references, impossible frames.

``write_corpus(directory)`` writes every case to ``directory/<group>/<name>.pkl``.
The marker path ``MARKER`` appears in every command: if anything ever ran one,
the file would exist, which the safety tests check.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import pathlib
import pickle
import struct
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "SERDOCTOR_INSPECT_MARKER"

# --- a tiny assembler ------------------------------------------------------------------


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def sbu(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def bu(text: str) -> bytes:
    """BINUNICODE."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def sbb(data: bytes) -> bytes:
    """SHORT_BINBYTES."""
    return b"C" + bytes([len(data)]) + data


def glob(module: str, name: str) -> bytes:
    """GLOBAL (text)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def sglob(module: str, name: str) -> bytes:
    """STACK_GLOBAL with constant operands."""
    return sbu(module) + sbu(name) + STACK_GLOBAL


def binint1(n: int) -> bytes:
    return b"K" + bytes([n])


def binput(i: int) -> bytes:
    return b"q" + bytes([i])


def binget(i: int) -> bytes:
    return b"h" + bytes([i])


def frame(length: int) -> bytes:
    return b"\x95" + struct.pack("<Q", length)


MARK = b"("
STOP = b"."
POP = b"0"
REDUCE = b"R"
BUILD = b"b"
NEWOBJ = b"\x81"
TUPLE = b"t"
TUPLE1 = b"\x85"
TUPLE2 = b"\x86"
TUPLE3 = b"\x87"
EMPTY_TUPLE = b")"
EMPTY_DICT = b"}"
EMPTY_LIST = b"]"
SETITEM = b"s"
SETITEMS = b"u"
APPEND = b"a"
APPENDS = b"e"
MEMOIZE = b"\x94"
STACK_GLOBAL = b"\x93"
NONE = b"N"


def asm(*parts: bytes, protocol: int = 4) -> bytes:
    """PROTO + parts + STOP."""
    return proto(protocol) + b"".join(parts) + STOP


def call(callee: bytes, *args: bytes) -> bytes:
    """``callee(*args)`` with REDUCE."""
    return callee + MARK + b"".join(args) + TUPLE + REDUCE


CMD = f"touch {MARKER}"

# --- expectations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What ``inspect`` must report for a case."""

    exit_code: int
    dangerous: tuple[str, ...] = ()  # each must appear in a dangerous finding's text
    categories: tuple[str, ...] = ()  # finding categories that must appear
    imports: tuple[str, ...] = ()  # import targets that must be listed
    called: tuple[str, ...] = ()  # imports that must be "called"
    referenced: tuple[str, ...] = ()  # imports that must be only "referenced"
    error_kind: str | None = None
    by_value: tuple[tuple[str, str], ...] = ()  # (kind, name or qualname)
    problems: tuple[str, ...] = ()  # substrings of load problems
    largest: str | None = None  # path of the largest value
    extra: Callable[[Any], None] | None = None  # more checks on the report


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    data: bytes
    expect: Expect
    notes: str = ""


@dataclass
class _Builder:
    cases: list[Case] = field(default_factory=list)

    def add(self, group: str, name: str, data: bytes, expect: Expect, notes: str = "") -> None:
        self.cases.append(Case(name, group, data, expect, notes))


# --- benign ------------------------------------------------------------------------------


def _benign(b: _Builder) -> None:
    values: dict[str, Any] = {
        "text": "héllo ✓",
        "numbers": [0, 1, -1, 255, 256, 65535, 2**31, -(2**31), 2**64, 1.5, float("inf")],
        "flags": (True, False, None),
        "bytes": b"\x00\xff" * 10,
        "nested": {"a": [1, {"b": (2, 3)}], "c": {4, 5}, "d": frozenset({6})},
    }
    for p in range(6):
        b.add(
            "benign",
            f"plain_protocol_{p}",
            pickle.dumps(values, protocol=p),
            Expect(0, referenced=()),
        )
    stdlib = {
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "day": datetime.date(2024, 1, 2),
        "money": decimal.Decimal("1.25"),
        "ratio": fractions.Fraction(1, 3),
        "ordered": collections.OrderedDict(a=1, b=2),
        "counts": collections.Counter("hello"),
        "deque": collections.deque([1, 2]),
        "id": uuid.UUID(int=5),
        "path": pathlib.PurePosixPath("/tmp/x"),
        "complex": complex(1, 2),
    }
    for p in (0, 2, 4, 5):
        b.add(
            "benign",
            f"stdlib_types_protocol_{p}",
            pickle.dumps(stdlib, protocol=p),
            Expect(
                0, imports=("datetime.datetime", "decimal.Decimal"), called=("datetime.datetime",)
            ),
        )
    big = {"payload": b"\x01" * 300_000, "meta": {"name": "run-1"}}
    b.add(
        "benign", "big_bytes_value", pickle.dumps(big, protocol=5), Expect(0, largest="['payload']")
    )
    stacked = b"".join(
        pickle.dumps(v, protocol=p) for v, p in (({"first": 1}, 2), ([2, 2], 4), ("third", 5))
    )
    b.add(
        "benign",
        "three_stacked_pickles",
        stacked,
        Expect(0, extra=lambda r: _eq(len(r.pickles), 3)),
    )
    loop: list[Any] = [1]
    loop.append(loop)
    ring: dict[str, Any] = {"name": "ring"}
    ring["self"] = ring
    b.add(
        "benign",
        "cyclic_structures",
        pickle.dumps({"loop": loop, "ring": ring}, protocol=4),
        Expect(0, extra=lambda r: _true(r.pickles[0].cycles >= 2)),
    )
    b.add(
        "benign",
        "reference_to_missing_module",
        asm(sglob("serdoctor_no_such_module_xyz", "Thing"), EMPTY_TUPLE, NEWOBJ),
        Expect(
            0,
            imports=("serdoctor_no_such_module_xyz.Thing",),
            called=("serdoctor_no_such_module_xyz.Thing",),
            problems=("serdoctor_no_such_module_xyz",),
        ),
    )
    b.add(
        "benign",
        "class_in_main",
        asm(
            sglob("__main__", "Settings"),
            EMPTY_TUPLE,
            NEWOBJ,
            EMPTY_DICT,
            sbu("level"),
            binint1(3),
            SETITEM,
            BUILD,
        ),
        Expect(
            0,
            called=("__main__.Settings",),
            problems=("__main__.Settings",),
            extra=lambda r: _eq(r.load.main_names, ["Settings"]),
        ),
    )
    b.add(
        "benign",
        "function_reference_only",
        asm(EMPTY_DICT, sbu("fn"), sglob("os.path", "join"), SETITEM),
        Expect(0, referenced=("os.path.join",)),
    )
    b.add(
        "benign",
        "dangerous_function_only_referenced",
        asm(EMPTY_DICT, sbu("fn"), sglob("os", "system"), SETITEM),
        Expect(0, referenced=("os.system",)),
        notes="a reference alone runs nothing",
    )
    b.add(
        "benign",
        "python2_protocol0_text",
        b"(dp0\nS'name'\np1\nS'py2'\np2\nsS'n'\np3\nI42\nsS'when'\np4\n"
        b"cdatetime\ndate\np5\n(S'\\x07\\xe8\\x01\\x02'\np6\ntp7\nRp8\ns.",
        Expect(0, called=("datetime.date",)),
    )
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a test dependency
        return
    arrays = {"a": np.arange(1000, dtype="float64"), "b": np.zeros((3, 4), dtype="int32")}
    for p in (2, 4, 5):
        b.add(
            "benign",
            f"numpy_protocol_{p}",
            pickle.dumps(arrays, protocol=p),
            Expect(0, extra=lambda r: _true(any("numpy" in i.module for i in r.imports))),
        )
    buffers: list[pickle.PickleBuffer] = []
    oob = pickle.dumps(np.arange(4096, dtype="uint8"), protocol=5, buffer_callback=buffers.append)
    b.add(
        "benign",
        "numpy_out_of_band",
        oob,
        Expect(
            0,
            problems=("out-of-band",),
            extra=lambda r: _eq((r.out_of_band_buffers, "buffers=" in r.load.call), (1, True)),
        ),
    )


# --- by value ------------------------------------------------------------------------------


def _by_value(b: _Builder) -> None:
    import cloudpickle
    import dill

    scale = 3

    def outer() -> Callable[[int], int]:
        import os

        offset = 7

        def inner(x: int) -> int:
            return len(os.sep) + x * scale + offset

        return inner

    b.add(
        "by-value",
        "cloudpickle_closure",
        cloudpickle.dumps(outer()),
        Expect(
            0,
            by_value=(("function", "inner"),),
            called=("cloudpickle.cloudpickle._make_function",),
            extra=lambda r: _by_value_facts(
                r, "outer.<locals>.inner", closure=("7",), hidden=("os",)
            ),
        ),
    )
    b.add(
        "by-value",
        "cloudpickle_lambda",
        cloudpickle.dumps(lambda x: x + scale),
        Expect(0, by_value=(("function", "<lambda>"),)),
    )

    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

        def double(self) -> int:
            return self.v * 2

    b.add(
        "by-value",
        "cloudpickle_class_instance",
        cloudpickle.dumps(Local(4)),
        Expect(0, by_value=(("class", "Local"), ("function", "double"))),
    )

    def dill_fn(x: int) -> int:
        return x + scale

    b.add(
        "by-value",
        "dill_function",
        dill.dumps(dill_fn, recurse=True),
        Expect(
            0, by_value=(("function", "dill_fn"),), extra=lambda r: _eq(r.load.loader, "dill.load")
        ),
    )
    code = compile("def g(a):\n    return a * 2\n", "<corpus>", "exec").co_consts[0]
    raw = _raw_code_pickle(code)
    b.add(
        "by-value",
        "raw_codetype",
        raw,
        Expect(0, by_value=(("code", "g"),), called=("types.CodeType",)),
    )


def _raw_code_pickle(code: Any) -> bytes:
    """``types.CodeType(*args)`` spelled out with GLOBAL + the args' own pickle.

    The arguments follow the running Python's ``CodeType`` signature: 3.11 added
    ``co_qualname`` and ``co_exceptiontable``.
    """
    new = sys.version_info >= (3, 11)
    args = (
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_nlocals,
        code.co_stacksize,
        code.co_flags,
        code.co_code,
        code.co_consts,
        code.co_names,
        code.co_varnames,
        code.co_filename,
        code.co_name,
        *((code.co_qualname,) if new else ()),
        code.co_firstlineno,
        code.co_linetable,
        *((code.co_exceptiontable,) if new else ()),
        code.co_freevars,
        code.co_cellvars,
    )
    body = pickle.dumps(args, protocol=3)[2:-1]  # no PROTO, no STOP; BINPUT memo
    return proto(3) + glob("types", "CodeType") + body + REDUCE + STOP


# --- malicious (hand-assembled; never loaded) --------------------------------------------


def _malicious(b: _Builder) -> None:
    b.add(
        "malicious",
        "os_system_global",
        asm(glob("os", "system"), bu(CMD), TUPLE1, REDUCE, protocol=2),
        Expect(1, dangerous=("os.system", CMD), categories=("shell",), called=("os.system",)),
    )
    b.add(
        "malicious",
        "posix_system_stack_global",
        asm(sglob("posix", "system"), sbu(CMD), TUPLE1, REDUCE),
        Expect(1, dangerous=("posix.system", CMD), categories=("shell",)),
    )
    b.add(
        "malicious",
        "py2_builtin_eval_protocol0",
        b'c__builtin__\neval\n(S\'__import__("os").system("' + CMD.encode() + b"\")'\ntR.",
        Expect(
            1,
            dangerous=("builtins.eval", "__import__"),
            categories=("exec",),
            extra=lambda r: _eq(r.imports[0].original, "__builtin__.eval"),
        ),
    )
    b.add(
        "malicious",
        "builtins_exec",
        asm(call(sglob("builtins", "exec"), sbu(f"open('{MARKER}', 'w')"))),
        Expect(1, dangerous=("builtins.exec", MARKER), categories=("exec",)),
    )
    b.add(
        "malicious",
        "subprocess_popen_list",
        asm(
            call(
                sglob("subprocess", "Popen"),
                EMPTY_LIST + MARK + sbu("touch") + sbu(MARKER) + APPENDS,
            )
        ),
        Expect(1, dangerous=("subprocess.Popen", "'touch'"), categories=("shell",)),
    )
    b.add(
        "malicious",
        "inst_opcode",
        b"(S'" + CMD.encode() + b"'\nios\nsystem\n.",
        Expect(1, dangerous=("os.system", CMD), called=("os.system",)),
    )
    b.add(
        "malicious",
        "obj_opcode",
        asm(MARK + sglob("os", "system") + sbu(CMD) + b"o", protocol=2),
        Expect(1, dangerous=("os.system",)),
    )
    b.add(
        "malicious",
        "nested_pickle_loads",
        asm(call(sglob("pickle", "loads"), sbb(b"\x80\x04N."))),
        Expect(1, categories=("unpickle",), dangerous=("pickle.loads",)),
    )
    b.add(
        "malicious",
        "os_environ_setitem",
        asm(sglob("os", "environ"), sbu("LD_PRELOAD"), sbu(f"/tmp/{MARKER}.so"), SETITEM),
        Expect(1, categories=("mutation",), dangerous=("os.environ", "LD_PRELOAD")),
    )
    b.add(
        "malicious",
        "build_on_global",
        asm(
            sglob("json", "decoder"),
            NONE,
            EMPTY_DICT,
            sbu("scanstring"),
            sglob("os", "system"),
            SETITEM,
            TUPLE2,
            BUILD,
        ),
        Expect(1, categories=("mutation",), dangerous=("json.decoder",)),
    )
    b.add(
        "malicious",
        "open_for_write",
        asm(call(sglob("builtins", "open"), sbu(MARKER), sbu("w"))),
        Expect(1, categories=("file",), dangerous=("builtins.open", MARKER)),
    )
    b.add(
        "malicious",
        "runpy_run_path",
        asm(call(sglob("runpy", "run_path"), sbu(f"/tmp/{MARKER}.py"))),
        Expect(1, categories=("exec",), dangerous=("runpy.run_path",)),
    )
    b.add(
        "malicious",
        "importlib_then_getattr",
        asm(
            call(
                sglob("builtins", "getattr"),
                call(sglob("importlib", "import_module"), sbu("os")),
                sbu("system"),
            ),
            sbu(CMD),
            TUPLE1,
            REDUCE,
        ),
        Expect(
            1, dangerous=("os.system", "importlib.import_module"), categories=("import", "shell")
        ),
    )
    b.add(
        "malicious",
        "dangerous_then_malformed",
        proto(4) + call(sglob("os", "system"), sbu(CMD)) + binget(99) + STOP,
        Expect(1, dangerous=("os.system",), error_kind="malformed"),
        notes="a malformed pickle can still run code before it fails",
    )


# --- obfuscated ----------------------------------------------------------------------------


def _obfuscated(b: _Builder) -> None:
    b.add(
        "obfuscated",
        "memo_trick",
        asm(
            sglob("os", "system"),
            binput(7),
            POP,
            EMPTY_DICT,
            sbu("innocent"),
            binint1(1),
            SETITEM,
            POP,
            binget(7),
            sbu(CMD),
            TUPLE1,
            REDUCE,
        ),
        Expect(1, dangerous=("os.system", CMD)),
    )
    b.add(
        "obfuscated",
        "memo_overwrite",
        asm(
            sglob("builtins", "len"),
            binput(0),
            POP,
            sglob("os", "system"),
            binput(0),
            POP,
            binget(0),
            sbu(CMD),
            TUPLE1,
            REDUCE,
        ),
        Expect(1, dangerous=("os.system",)),
        notes="index 0 first holds len, then os.system: the call uses the latter",
    )
    b.add(
        "obfuscated",
        "getattr_on_subimport",
        asm(
            call(
                sglob("builtins", "getattr"),
                call(sglob("cloudpickle.cloudpickle", "subimport"), sbu("os")),
                sbu("system"),
            ),
            sbu(CMD),
            TUPLE1,
            REDUCE,
        ),
        Expect(1, dangerous=("os.system", CMD)),
    )
    b.add(
        "obfuscated",
        "getattr_chain_two_levels",
        asm(
            call(
                sglob("builtins", "getattr"),
                call(sglob("builtins", "getattr"), sglob("os", "path"), sbu("os")),
                sbu("system"),
            ),
            sbu(CMD),
            TUPLE1,
            REDUCE,
        ),
        Expect(1, dangerous=("system",)),
    )
    b.add(
        "obfuscated",
        "computed_global_rot13",
        asm(
            call(sglob("codecs", "decode"), sbu("bf"), sbu("rot13")),
            sbu("system"),
            STACK_GLOBAL,
            sbu(CMD),
            TUPLE1,
            REDUCE,
        ),
        Expect(1, categories=("computed-global",), dangerous=("codecs.decode('bf', 'rot13')",)),
    )
    b.add(
        "obfuscated",
        "computed_getattr_name",
        asm(
            call(
                sglob("builtins", "getattr"),
                sglob("os", "path"),
                call(sglob("operator", "add"), sbu("jo"), sbu("in")),
            ),
            MARK,
            sbu("a"),
            TUPLE,
            REDUCE,
        ),
        Expect(1, categories=("computed-attribute",)),
    )
    b.add(
        "obfuscated",
        "partial_trick",
        asm(
            call(call(sglob("functools", "partial"), sglob("os", "system"), sbu(CMD))),
        ),
        Expect(1, dangerous=("os.system", CMD)),
    )
    b.add(
        "obfuscated",
        "methodcaller_trick",
        asm(
            call(
                call(sglob("operator", "methodcaller"), sbu("system"), sbu(CMD)),
                call(sglob("cloudpickle.cloudpickle", "subimport"), sbu("os")),
            )
        ),
        Expect(1, dangerous=("os.system",)),
    )
    b.add(
        "obfuscated",
        "sys_modules_getitem",
        asm(
            call(
                sglob("builtins", "getattr"),
                call(sglob("operator", "getitem"), sglob("sys", "modules"), sbu("os")),
                sbu("system"),
            ),
            sbu(CMD),
            TUPLE1,
            REDUCE,
        ),
        Expect(1, dangerous=("os.system",)),
    )
    b.add(
        "obfuscated",
        "dunder_globals",
        asm(call(sglob("builtins", "getattr"), sglob("os.path", "join"), sbu("__globals__"))),
        Expect(1, categories=("getattr-chain",), dangerous=("__globals__",)),
    )
    b.add(
        "obfuscated",
        "map_with_os_system",
        asm(
            call(
                sglob("builtins", "list"),
                call(
                    sglob("builtins", "map"), sglob("os", "system"), EMPTY_LIST + sbu(CMD) + APPEND
                ),
            )
        ),
        Expect(1, dangerous=("os.system",)),
    )
    b.add(
        "obfuscated",
        "reconstructor_popen_base",
        asm(
            call(
                sglob("copyreg", "_reconstructor"),
                sglob("builtins", "object"),
                sglob("subprocess", "Popen"),
                EMPTY_LIST + sbu("touch") + sbu(MARKER) + TUPLE2 + APPEND,
            )
        ),
        Expect(1, dangerous=("subprocess.Popen",)),
    )
    b.add(
        "obfuscated",
        "dill_create_type_apply",
        asm(call(sglob("dill._dill", "_create_type"), sglob("os", "system"), sbu(CMD))),
        Expect(1, dangerous=("os.system", CMD)),
    )
    b.add(
        "obfuscated",
        "dotted_name_chain",
        asm(call(sglob("os.path", "os.system"), sbu(CMD))),
        Expect(1, dangerous=("os.path.os.system", CMD)),
        notes="protocol 4 resolves dotted names as attribute chains: os.path.os is os",
    )
    b.add(
        "obfuscated",
        "call_of_call_result",
        asm(call(call(sglob("builtins", "vars"), sglob("builtins", "object")))),
        Expect(1, categories=("computed-callable",)),
    )


# --- malformed ---------------------------------------------------------------------------------


def _malformed(b: _Builder) -> None:
    good = pickle.dumps({"a": [1, 2, 3], "b": "x" * 50}, protocol=4)
    b.add("malformed", "empty_file", b"", Expect(2, error_kind="empty"))
    b.add("malformed", "text_not_pickle", b"hello, world\n", Expect(2))
    b.add("malformed", "truncated", good[: len(good) // 2], Expect(2, error_kind="truncated"))
    b.add(
        "malformed",
        "bad_memo_reference",
        asm(binget(3)),
        Expect(2, error_kind="malformed", extra=lambda r: _true("memo" in r.error.message)),
    )
    b.add("malformed", "stack_underflow", asm(REDUCE), Expect(2, error_kind="malformed"))
    b.add(
        "malformed",
        "frame_past_end",
        proto(4) + frame(1 << 40) + NONE + STOP,
        Expect(2, error_kind="truncated"),
    )
    b.add("malformed", "protocol_9", proto(9) + NONE + STOP, Expect(2))
    b.add(
        "malformed",
        "binbytes8_past_end",
        proto(4) + b"\x8e" + struct.pack("<Q", 1 << 33) + b"abc" + STOP,
        Expect(2, error_kind="truncated"),
    )
    b.add(
        "malformed",
        "odd_setitems",
        asm(EMPTY_DICT, MARK, sbu("k"), SETITEMS),
        Expect(2, error_kind="malformed"),
    )
    b.add("malformed", "missing_stop", proto(4) + NONE, Expect(2, error_kind="truncated"))
    b.add(
        "malformed",
        "trailing_garbage",
        good + b"\x00garbage",
        Expect(2, error_kind="trailing-data"),
    )
    b.add(
        "malformed",
        "gzip_file",
        b"\x1f\x8b\x08\x00" + b"\x00" * 20,
        Expect(2, error_kind="not-a-pickle"),
    )
    b.add("malformed", "invalid_utf8", asm(b"\x8c\x02\xff\xfe"), Expect(2))
    b.add("malformed", "pop_mark_without_mark", asm(b"1"), Expect(2))


def _eq(got: Any, want: Any) -> None:
    assert got == want, f"{got!r} != {want!r}"


def _true(value: Any) -> None:
    assert value


def _by_value_facts(
    report: Any, qualname: str, closure: tuple[str, ...] = (), hidden: tuple[str, ...] = ()
) -> None:
    found = [d for d in report.by_value if (d.qualname or "").endswith(qualname)]
    assert found, [d.qualname for d in report.by_value]
    desc = found[0]
    for value in closure:
        assert value in desc.closure, desc.closure
    for module in hidden:
        assert module in desc.hidden_imports, desc.hidden_imports
    assert desc.filename and desc.firstlineno


def cases() -> list[Case]:
    """Every case of the corpus."""
    b = _Builder()
    _benign(b)
    _by_value(b)
    _malicious(b)
    _obfuscated(b)
    _malformed(b)
    return b.cases


def write_corpus(directory: Path) -> list[tuple[Case, Path]]:
    """Write every case to ``directory/<group>/<name>.pkl``; return them with their paths."""
    out = []
    for case in cases():
        folder = directory / case.group
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{case.name}.pkl"
        path.write_bytes(case.data)
        out.append((case, path))
    return out


def check(case: Case, report: Any) -> None:
    """Assert that ``report`` (an InspectReport) meets ``case.expect``."""
    e = case.expect
    assert report.internal_error is None, report.internal_error
    assert report.exit_code == e.exit_code, (
        f"{case.name}: exit {report.exit_code}, want {e.exit_code}; "
        f"findings={[(f.severity, f.category, f.message) for f in report.findings]} "
        f"error={report.error}"
    )
    danger_text = " | ".join(
        f"{f.message} {f.target} {f.expression}"
        for f in report.findings
        if f.severity == "dangerous"
    )
    for needle in e.dangerous:
        assert needle in danger_text, f"{case.name}: {needle!r} not in {danger_text!r}"
    categories = {f.category for f in report.findings}
    for category in e.categories:
        assert category in categories, f"{case.name}: {category} not in {categories}"
    targets = {i.target: i for i in report.imports}
    for target in e.imports + e.called + e.referenced:
        assert target in targets, f"{case.name}: {target} not in {sorted(targets)}"
    for target in e.called:
        assert targets[target].use == "called", f"{case.name}: {target} not called"
    for target in e.referenced:
        assert targets[target].use == "referenced", f"{case.name}: {target} called"
    if e.error_kind is not None:
        assert report.error_kind == e.error_kind, (case.name, report.error_kind, report.error)
    names = {(d.kind, d.qualname or d.name) for d in report.by_value} | {
        (d.kind, d.name) for d in report.by_value
    }
    for item in e.by_value:
        assert item in names, f"{case.name}: {item} not in {names}"
    problems = " | ".join(report.load.problems) if report.load else ""
    for needle in e.problems:
        assert needle in problems, f"{case.name}: {needle!r} not in {problems!r}"
    if e.largest is not None:
        assert report.largest and report.largest[0].path == e.largest, report.largest
    if e.exit_code == 0:
        assert not report.dangerous, report.dangerous
    if e.extra is not None:
        e.extra(report)

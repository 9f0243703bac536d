"""Task identity: a stable digest of a function and of its bound arguments.

``memo_key(value)`` is a :func:`functools.singledispatch` function returning a
hex SHA-256 digest that is the same in every process and under every
``PYTHONHASHSEED`` (no ``hash()`` is involved): containers hash their
elements' keys, dicts and sets independently of their order, numpy arrays by
dtype, shape and bytes (read in place, never copied when contiguous),
dataclasses by their fields, enums by class and name. Teach it your types::

    @serdoctor.memo_key.register
    def _(value: Sample) -> str:
        return serdoctor.memo_key(("Sample", value.id, value.version))

A type it does not know raises :class:`~serdoctor.errors.MemoKeyError`, which
names the argument and shows that registration.

A function's identity is its module, qualified name and a digest of its code
(bytecode, constants, names, nested code) and of the code of the module-level
functions it calls directly, so editing a function (or a helper it calls)
invalidates its results and nobody else's. A comment or a blank line moves no
bytecode (line numbers are left out), so it invalidates nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import hashlib
import inspect
import pathlib
import types
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from serdoctor.errors import MemoKeyError


def _digest(tag: str, *parts: bytes | memoryview) -> str:
    h = hashlib.sha256(tag.encode())
    for part in parts:
        h.update(memoryview(part).nbytes.to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _type_tag(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


@functools.singledispatch
def memo_key(value: Any) -> str:
    """A stable hex digest of ``value`` for task identity (see the module docstring)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [(f.name, memo_key(getattr(value, f.name))) for f in dataclasses.fields(value)]
        return _digest("dataclass:" + _type_tag(value), *(f"{n}={k}".encode() for n, k in fields))
    raise MemoKeyError(
        f"no memo key for {_type_tag(value)}: register one, e.g.\n"
        f"    @serdoctor.memo_key.register\n"
        f"    def _(value: {type(value).__qualname__}) -> str:\n"
        f"        return serdoctor.memo_key((value.some_field, value.other_field))",
        type_name=_type_tag(value),
    )


@memo_key.register(type(None))
def _(value: None) -> str:
    return _digest("none")


@memo_key.register(bool)
def _(value: bool) -> str:
    return _digest("bool", b"1" if value else b"0")


@memo_key.register(int)
def _(value: int) -> str:
    if isinstance(value, enum.Enum):
        return _enum(value)
    return _digest("int", str(value).encode())


@memo_key.register(float)
def _(value: float) -> str:
    return _digest("float", value.hex().encode())


@memo_key.register(complex)
def _(value: complex) -> str:
    return _digest("complex", value.real.hex().encode(), value.imag.hex().encode())


@memo_key.register(str)
def _(value: str) -> str:
    if isinstance(value, enum.Enum):
        return _enum(value)
    return _digest("str", value.encode("utf-8", "surrogatepass"))


@memo_key.register(bytes)
@memo_key.register(bytearray)
@memo_key.register(memoryview)
def _(value: Any) -> str:
    return _digest("bytes", bytes(value) if isinstance(value, memoryview) else value)


def _sequence(tag: str, items: Iterable[Any]) -> str:
    return _digest(tag, *(memo_key(item).encode() for item in items))


@memo_key.register(tuple)
def _(value: tuple[Any, ...]) -> str:
    return _sequence("tuple:" + _type_tag(value), value)


@memo_key.register(list)
def _(value: list[Any]) -> str:
    return _sequence("list", value)


@memo_key.register(dict)
def _(value: dict[Any, Any]) -> str:
    pairs = sorted(memo_key(k) + memo_key(v) for k, v in value.items())
    return _digest("dict", *(p.encode() for p in pairs))


@memo_key.register(set)
@memo_key.register(frozenset)
def _(value: Any) -> str:
    return _digest("set", *sorted(memo_key(v).encode() for v in value))


def _enum(value: enum.Enum) -> str:
    return _digest("enum:" + _type_tag(value), value.name.encode())


@memo_key.register(enum.Enum)
def _(value: enum.Enum) -> str:
    return _enum(value)


@memo_key.register(datetime.date)
@memo_key.register(datetime.time)
def _(value: Any) -> str:
    return _digest("time:" + _type_tag(value), value.isoformat().encode())


@memo_key.register(datetime.timedelta)
def _(value: datetime.timedelta) -> str:
    return _digest("timedelta", repr((value.days, value.seconds, value.microseconds)).encode())


@memo_key.register(pathlib.PurePath)
def _(value: pathlib.PurePath) -> str:
    return _digest("path:" + _type_tag(value), str(value).encode())


@memo_key.register(decimal.Decimal)
@memo_key.register(fractions.Fraction)
@memo_key.register(uuid.UUID)
def _(value: Any) -> str:
    return _digest(_type_tag(value), str(value).encode())


def _register_numpy() -> None:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is optional
        return

    @memo_key.register(np.ndarray)
    def _(value: Any) -> str:
        if value.dtype.hasobject:
            return _digest(
                "ndarray-object", repr(value.shape).encode(), memo_key(value.tolist()).encode()
            )
        data = value if value.flags.c_contiguous else np.ascontiguousarray(value)
        return _digest(
            "ndarray", value.dtype.str.encode(), repr(value.shape).encode(),
            memoryview(data).cast("B"),  # type: ignore[arg-type]
        )  # fmt: skip

    @memo_key.register(np.generic)
    def _(value: Any) -> str:
        return _digest("npscalar", value.dtype.str.encode(), value.tobytes())


_register_numpy()


# -- functions ----------------------------------------------------------------------------


def _code_digest(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    h.update(repr((code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_digest(const, h)
        else:
            h.update(repr(const).encode())


def function_identity(fn: Callable[..., Any], *, code: bool = True) -> tuple[str, str]:
    """``(name, digest)``: ``module.qualname``, and a digest that changes when its code does.

    With ``code=False`` only the name counts: edits never invalidate results.
    """
    target = inspect.unwrap(fn)
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
    h = hashlib.sha256(name.encode())
    func_code = getattr(target, "__code__", None)
    if code and func_code is not None:
        _code_digest(func_code, h)
        defaults = getattr(target, "__defaults__", None) or ()
        for value in defaults:
            try:
                h.update(memo_key(value).encode())
            except MemoKeyError:
                h.update(repr(type(value)).encode())
        globals_ = getattr(target, "__globals__", {})
        for callee in sorted(set(func_code.co_names)):  # the helpers it calls, one level down
            helper = globals_.get(callee)
            if isinstance(helper, types.FunctionType) and helper is not target:
                h.update(callee.encode())
                _code_digest(helper.__code__, h)
    return name, h.hexdigest()


def arguments_key(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    ignore: Iterable[str] = (),
) -> str:
    """A digest of the arguments as bound to ``fn``'s signature, defaults applied.

    ``f(1)``, ``f(x=1)`` and ``f(1, y=<default>)`` give the same key. Raises
    MemoKeyError naming the argument whose value has no key.
    """
    skip = set(ignore)
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
        bound.apply_defaults()
        items = list(bound.arguments.items())
    except (TypeError, ValueError):  # no signature (a builtin), or a call it would refuse
        items = [(f"<arg {i}>", a) for i, a in enumerate(args)] + sorted(kwargs.items())
    parts = []
    for name, value in items:
        if name in skip:
            continue
        try:
            parts.append(f"{name}={memo_key(value)}".encode())
        except MemoKeyError as exc:
            raise MemoKeyError(
                f"argument {name!r} of {getattr(fn, '__qualname__', fn)!r}: {exc}",
                type_name=exc.type_name,
                argument=name,
            ) from None
    return _digest("arguments", *parts)

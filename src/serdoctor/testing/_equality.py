"""Structural equality after a round trip, and a differ that says where values part.

``==`` answers the wrong question after a round trip: ``nan != nan``, numpy
arrays compare element-wise, a dataclass holding a NaN is unequal to its own
copy, and functions, exceptions and plain objects compare by identity.
:func:`find_difference` walks the sent and the received value together and
returns the first place where they differ, as a :class:`RoundTripDifference` whose
``str()`` reads ``at [2]['x']: sent 1.0, got 1.5``.

The rules (``a`` was sent, ``b`` came back)::

    a is b                        equal
    types                         must be the same class, or classes with the same
                                  module and qualified name (a class sent by value)
    float / complex               bit-for-bit as numbers: nan == nan, -0.0 != 0.0
    Decimal                       same sign, digits and exponent (1.0 != 1.00)
    datetime, date, time, tzinfo  == and the same repr (same tzinfo, same fold)
    list, tuple, deque            same length, items pairwise
    dict                          same keys in the same order, values pairwise
    set, frozenset                every element matched by an equal element
    numpy arrays and scalars      same dtype (byte order aside: numpy unpickles
                                  in-band arrays in native order) and shape, same
                                  values bit for bit (object arrays: items)
    exceptions                    same class name, args pairwise, same attributes
    functions                     same module, qualname, code, defaults, closure
                                  cells and the globals their code uses
    classes, modules              same module and qualified name
    dataclasses                   every field, by name
    other objects                 their own __eq__, else what pickle would send
                                  (__reduce_ex__: arguments, state, items)

Identity is checked too: a mutable object that appears twice in the sent value
must come back as one object appearing twice (and cycles stay cycles).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import math
import reprlib
import sys
import types
from dataclasses import dataclass
from typing import Any

__all__ = ["RoundTripDifference", "find_difference", "roundtrip_equal"]

_PLAIN = (type(None), bool, int, str, bytes, bytearray, fractions.Fraction, range, slice)
_TEMPORAL = (datetime.datetime, datetime.date, datetime.time, datetime.timedelta, datetime.tzinfo)
_MUTABLE = (list, dict, set, bytearray, collections.deque)

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlong = 60


def _short(value: Any) -> str:
    try:
        return _repr.repr(value)
    except Exception:  # a broken __repr__ must not hide the difference
        return f"<{type(value).__qualname__} object at {id(value):#x}>"


def _type_name(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return qualname if module in (None, "builtins") else f"{module}.{qualname}"


@dataclass(frozen=True)
class RoundTripDifference:
    """Where a round trip changed a value.

    ``path`` locates the sub-value from the top (``"[2]['x'].y"``; ``""`` is
    the value itself), ``sent``/``got`` are the two sub-values and ``reason``
    says how they differ in words.
    """

    path: str
    sent: Any
    got: Any
    reason: str

    def __str__(self) -> str:
        return f"at {self.path or 'the top level'}: {self.reason}"


def find_difference(sent: Any, got: Any) -> RoundTripDifference | None:
    """Return the first difference between ``sent`` and ``got``, or ``None`` if equal.

    Equality is structural and round-trip aware (see the module docstring):
    NaN equals NaN, ``-0.0`` does not equal ``0.0``, arrays compare by dtype,
    shape and bytes, functions by code and captured values, exceptions by
    class name and args, and shared or cyclic references must be preserved.
    """
    return _Walker().diff(sent, got, "")


def roundtrip_equal(a: Any, b: Any) -> bool:
    """``True`` when ``b`` is a faithful copy of ``a`` (see :func:`find_difference`)."""
    return find_difference(a, b) is None


def _values_differ(a: Any, b: Any, path: str) -> RoundTripDifference:
    sa, sb = _short(a), _short(b)
    if sa == sb:  # say more than "sent 1, got 1"
        sa, sb = f"{sa} ({type(a).__qualname__})", f"{sb} ({type(b).__qualname__})"
    return RoundTripDifference(path, a, b, f"sent {sa}, got {sb}")


def _float_same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


class _Walker:
    """One comparison: remembers which sent object was matched with which received one."""

    def __init__(self) -> None:
        # id(sent) -> (sent, got, path) and id(got) -> (got, sent, path). The objects
        # are kept so that their ids cannot be reused while we compare.
        self.forward: dict[int, tuple[Any, Any, str]] = {}
        self.backward: dict[int, tuple[Any, Any, str]] = {}
        self.journal: list[tuple[int, int]] = []

    # -- identity bookkeeping -------------------------------------------------

    def _seen(self, a: Any, b: Any, path: str) -> RoundTripDifference | bool:
        """``True`` if this pair was compared before; a RoundTripDifference if aliasing broke.

        Only objects that pickle memoizes and that may be mutated are tracked:
        for them, identity is part of the value (``x = []; [x, x]``).
        """
        known = self.forward.get(id(a))
        if known is not None:
            if known[1] is b:
                return True
            return RoundTripDifference(
                path,
                a,
                b,
                f"the sent value is the same object as at {known[2] or 'the top level'}, "
                "but two different objects came back (a shared reference was lost)",
            )
        back = self.backward.get(id(b))
        if back is not None:
            return RoundTripDifference(
                path,
                a,
                b,
                f"the received value is the same object as at {back[2] or 'the top level'}, "
                "but two different objects were sent (distinct objects were merged)",
            )
        self.forward[id(a)] = (a, b, path)
        self.backward[id(b)] = (b, a, path)
        self.journal.append((id(a), id(b)))
        return False

    def _matches(self, x: Any, y: Any) -> bool:
        """Whether ``x`` and ``y`` are equal; identities learned are kept only on success."""
        if x is y:
            return True
        if _is_plain(x):
            return type(x) is type(y) and x == y
        mark = len(self.journal)
        if self.diff(x, y, "") is None:
            return True
        for ida, idb in self.journal[mark:]:
            del self.forward[ida], self.backward[idb]
        del self.journal[mark:]
        return False

    # -- dispatch ---------------------------------------------------------------

    def diff(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        if a is b:
            return None
        np = sys.modules.get("numpy")
        if np is not None and isinstance(a, (np.ndarray, np.generic)):
            return self._numpy(np, a, b, path)
        if isinstance(a, BaseException):
            return self._exception(a, b, path)
        ta, tb = type(a), type(b)
        if ta is not tb and (ta.__qualname__, ta.__module__) != (tb.__qualname__, tb.__module__):
            return RoundTripDifference(
                path,
                a,
                b,
                f"sent {_type_name(ta)} {_short(a)}, got {_type_name(tb)} {_short(b)}",
            )
        found = self._leaf(a, b, path)
        if not isinstance(found, _Missing):
            return found
        seen = self._seen(a, b, path)
        if seen is True:
            return None
        if isinstance(seen, RoundTripDifference):
            return seen
        return self._composite(a, b, path)

    def _leaf(self, a: Any, b: Any, path: str) -> RoundTripDifference | _Missing | None:
        """Compare immutable values; ``_NOT_A_LEAF`` for anything else."""
        if isinstance(a, float):
            return None if _float_same(a, b) else _values_differ(a, b, path)
        if isinstance(a, complex):
            same = _float_same(a.real, b.real) and _float_same(a.imag, b.imag)
            return None if same else _values_differ(a, b, path)
        if isinstance(a, decimal.Decimal):
            return None if a.as_tuple() == b.as_tuple() else _values_differ(a, b, path)
        if isinstance(a, enum.Enum):
            if a.name == b.name and self.diff(a.value, b.value, path) is None:
                return None
            return _values_differ(a, b, path)
        if isinstance(a, bytearray):
            return _NOT_A_LEAF  # mutable: its identity matters
        if isinstance(a, _PLAIN):
            try:
                same = bool(a == b)
            except Exception:
                same = False
            return None if same else _values_differ(a, b, path)
        if isinstance(a, _TEMPORAL):
            same = a == b and repr(a) == repr(b)
            return None if same else _values_differ(a, b, path)
        if isinstance(a, (tuple, frozenset)) and type(a) in (tuple, frozenset):
            return self._composite(a, b, path)
        if isinstance(a, (type, types.ModuleType, types.BuiltinFunctionType)):
            return self._named(a, b, path)
        if isinstance(a, types.MethodType):
            return self.diff(a.__func__, b.__func__, f"{path}.__func__") or self.diff(
                a.__self__, b.__self__, f"{path}.__self__"
            )
        if isinstance(a, memoryview):
            same = a.format == b.format and a.shape == b.shape and a.tobytes() == b.tobytes()
            return None if same else _values_differ(a, b, path)
        return _NOT_A_LEAF

    def _composite(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        if isinstance(a, bytearray):
            return None if a == b else _values_differ(a, b, path)
        if isinstance(a, (list, tuple, collections.deque)):
            return self._sequence(a, b, path) or self._extra_state(a, b, path)
        if isinstance(a, dict):
            return self._dict(a, b, path) or self._extra_state(a, b, path)
        if isinstance(a, (set, frozenset)):
            return self._set(a, b, path) or self._extra_state(a, b, path)
        if isinstance(a, types.FunctionType):
            return self._function(a, b, path)
        if isinstance(a, functools.partial):
            return (
                self.diff(a.func, b.func, f"{path}.func")
                or self.diff(a.args, b.args, f"{path}.args")
                or self.diff(a.keywords, b.keywords, f"{path}.keywords")
                or self._extra_state(a, b, path)
            )
        if dataclasses.is_dataclass(a):
            for f in dataclasses.fields(a):
                found = self.diff(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
                if found:
                    return found
            return None
        return self._object(a, b, path)

    # -- leaves -------------------------------------------------------------------

    def _named(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        def name(x: Any) -> tuple[str, str]:
            if isinstance(x, types.ModuleType):
                return ("module", x.__name__)
            return (str(getattr(x, "__module__", None)), getattr(x, "__qualname__", repr(x)))

        if name(a) != name(b):
            return _values_differ(a, b, path)
        owner = getattr(a, "__self__", None)  # a builtin method: compare what it is bound to
        if isinstance(a, types.BuiltinFunctionType) and not isinstance(owner, types.ModuleType):
            return self.diff(owner, getattr(b, "__self__", None), f"{path}.__self__")
        return None

    # -- containers ---------------------------------------------------------------

    def _sequence(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        if len(a) != len(b):
            kind = type(a).__qualname__
            return RoundTripDifference(
                path,
                a,
                b,
                f"sent a {kind} of {len(a)} items, got {len(b)} items: "
                f"sent {_short(a)}, got {_short(b)}",
            )
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = self.diff(x, y, f"{path}[{i}]")
            if found:
                return found
        return None

    def _match_all(self, sent: list[Any], got: list[Any]) -> tuple[list[Any], list[Any]]:
        """Pair equal elements of two unordered collections; return the unmatched ones."""

        index = {(type(y), y): y for y in got if _is_plain(y)}
        left_a: list[Any] = []
        left_b = [y for y in got if not _is_plain(y)]
        for x in sent:
            if _is_plain(x):
                if index.pop((type(x), x), _MISSING) is _MISSING:
                    left_a.append(x)
                continue
            for j, y in enumerate(left_b):
                if self._matches(x, y):
                    del left_b[j]
                    break
            else:
                left_a.append(x)
        return left_a, [*index.values(), *left_b]

    def _dict(self, a: dict[Any, Any], b: dict[Any, Any], path: str) -> RoundTripDifference | None:
        if len(a) == len(b) and all(
            self._matches(x, y) for x, y in zip(a.keys(), b.keys(), strict=True)
        ):
            for (k, x), y in zip(a.items(), b.values(), strict=True):
                found = self.diff(x, y, f"{path}[{_short(k)}]")
                if found:
                    return found
            return None
        missing, extra = self._match_all(list(a), list(b))
        if missing:
            k = missing[0]
            return RoundTripDifference(
                f"{path}[{_short(k)}]",
                a[k],
                _MISSING,
                f"key {_short(k)} was sent but is missing after the round trip",
            )
        if extra:
            k = extra[0]
            return RoundTripDifference(
                f"{path}[{_short(k)}]",
                _MISSING,
                b[k],
                f"key {_short(k)} was not sent but came back",
            )
        return RoundTripDifference(
            path,
            a,
            b,
            f"same keys in another order: sent {_short(list(a))}, got {_short(list(b))}",
        )

    def _set(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        missing, extra = self._match_all(list(a), list(b))
        if missing:
            return RoundTripDifference(
                path,
                missing[0],
                _MISSING,
                f"element {_short(missing[0])} was sent but no equal element came back "
                f"(sent {_short(a)}, got {_short(b)})",
            )
        if extra:
            return RoundTripDifference(
                path,
                _MISSING,
                extra[0],
                f"element {_short(extra[0])} came back but was not sent "
                f"(sent {_short(a)}, got {_short(b)})",
            )
        return None

    def _extra_state(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        """Attributes of container subclasses (``defaultdict.default_factory``, ``__dict__``)."""
        if isinstance(a, collections.defaultdict):
            found = self.diff(a.default_factory, b.default_factory, f"{path}.default_factory")
            if found:
                return found
        return self._attributes(a, b, path)

    def _attributes(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        state_a = getattr(a, "__dict__", None)
        if not isinstance(state_a, dict):
            return None
        state_b = getattr(b, "__dict__", {})
        for name, value in state_a.items():
            if name not in state_b:
                return RoundTripDifference(
                    f"{path}.{name}",
                    value,
                    _MISSING,
                    f"attribute {name!r} was sent but is missing after the round trip",
                )
            found = self.diff(value, state_b[name], f"{path}.{name}")
            if found:
                return found
        return None

    # -- exceptions, functions, arrays -------------------------------------------

    def _exception(self, a: BaseException, b: Any, path: str) -> RoundTripDifference | None:
        if not isinstance(b, BaseException) or type(a).__qualname__ != type(b).__qualname__:
            return RoundTripDifference(
                path,
                a,
                b,
                f"sent {_type_name(type(a))} {_short(a)}, got {_type_name(type(b))} {_short(b)}",
            )
        seen = self._seen(a, b, path)
        if seen is True:
            return None
        if isinstance(seen, RoundTripDifference):
            return seen
        return self.diff(a.args, b.args, f"{path}.args") or self._attributes(a, b, path)

    def _function(self, a: types.FunctionType, b: Any, path: str) -> RoundTripDifference | None:
        for attr in ("__module__", "__qualname__"):
            if getattr(a, attr) != getattr(b, attr):
                return RoundTripDifference(
                    path,
                    a,
                    b,
                    f"sent function {a.__module__}.{a.__qualname__}, "
                    f"got {b.__module__}.{b.__qualname__}",
                )
        if a.__code__ != b.__code__:
            return RoundTripDifference(
                path, a, b, f"function {a.__qualname__} came back with other code"
            )
        found = self.diff(a.__defaults__, b.__defaults__, f"{path}.__defaults__") or self.diff(
            a.__kwdefaults__, b.__kwdefaults__, f"{path}.__kwdefaults__"
        )
        if found:
            return found
        for name, cell_a, cell_b in zip(
            a.__code__.co_freevars, a.__closure__ or (), b.__closure__ or (), strict=False
        ):
            found = self._cell(cell_a, cell_b, f"{path}.<closure {name}>")
            if found:
                return found
        for name in sorted(_global_names(a.__code__)):
            if name not in a.__globals__:
                continue
            if name not in b.__globals__:
                return RoundTripDifference(
                    f"{path}.__globals__[{name!r}]",
                    a.__globals__[name],
                    _MISSING,
                    f"global {name!r} used by {a.__qualname__} is missing after the round trip",
                )
            found = self.diff(
                a.__globals__[name], b.__globals__[name], f"{path}.__globals__[{name!r}]"
            )
            if found:
                return found
        return self._attributes(a, b, path)

    def _cell(self, a: types.CellType, b: types.CellType, path: str) -> RoundTripDifference | None:
        try:
            x = a.cell_contents
        except ValueError:  # an empty cell
            x = _MISSING
        try:
            y = b.cell_contents
        except ValueError:
            y = _MISSING
        if x is _MISSING or y is _MISSING:
            return None if x is y else _values_differ(x, y, path)
        return self.diff(x, y, path)

    def _numpy(self, np: Any, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        if type(a) is not type(b):
            return RoundTripDifference(
                path,
                a,
                b,
                f"sent {_type_name(type(a))} {_short(a)}, got {_type_name(type(b))} {_short(b)}",
            )
        if a.dtype != b.dtype:
            native = a.dtype.newbyteorder("=")
            if native != b.dtype.newbyteorder("="):
                return RoundTripDifference(
                    path, a, b, f"sent dtype {a.dtype.str}, got dtype {b.dtype.str}"
                )
            # Only the byte order differs: numpy itself unpickles in-band arrays in
            # native order. The values are what must survive; compare them natively.
            a, b = a.astype(native), b.astype(native)
        if a.shape != b.shape:
            return RoundTripDifference(path, a, b, f"sent shape {a.shape}, got shape {b.shape}")
        if isinstance(a, np.generic):
            same = a.tobytes() == b.tobytes()
            return None if same else _values_differ(a, b, path)
        seen = self._seen(a, b, path)
        if seen is True:
            return None
        if isinstance(seen, RoundTripDifference):
            return seen
        if a.dtype.hasobject:
            for index in np.ndindex(a.shape):
                found = self.diff(a[index], b[index], f"{path}[{_index(index)}]")
                if found:
                    return found
            return None
        if a.tobytes() == b.tobytes():
            return None
        for index in np.ndindex(a.shape):
            if a[index].tobytes() != b[index].tobytes():
                return _values_differ(a[index], b[index], f"{path}[{_index(index)}]")
        return _values_differ(a, b, path)  # pragma: no cover - bytes differ somewhere

    # -- everything else ----------------------------------------------------------

    def _object(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        eq: Any = type(a).__eq__
        own_eq = eq is not object.__eq__
        if own_eq:
            try:
                result = a == b
                if result is True or (type(result).__name__ == "bool_" and bool(result)):
                    return None
            except Exception:
                pass
        try:
            ra, rb = _reduce(a), _reduce(b)
        except Exception:
            found = _values_differ(a, b, path)
            how = "their __eq__ says no" if own_eq else "no __eq__, and no __reduce_ex__ to compare"
            return dataclasses.replace(found, reason=f"{found.reason} ({how})")
        if isinstance(ra, str) or isinstance(rb, str):
            return None if ra == rb else _values_differ(a, b, path)
        return self._reduced(ra, rb, path)

    def _reduced(
        self, ra: tuple[Any, ...], rb: tuple[Any, ...], path: str
    ) -> RoundTripDifference | None:
        ra, rb = (*ra, None, None, None)[:5], (*rb, None, None, None)[:5]
        found = self.diff(ra[0], rb[0], f"{path}<constructor>")
        if found:
            return found
        args_a, args_b = tuple(ra[1] or ()), tuple(rb[1] or ())
        if len(args_a) != len(args_b):
            return RoundTripDifference(
                path,
                args_a,
                args_b,
                f"rebuilt from {_short(args_a)} when sent, from {_short(args_b)} when received",
            )
        for j, (u, v) in enumerate(zip(args_a, args_b, strict=True)):
            found = self.diff(u, v, f"{path}<arg {j}>")
            if found:
                return found
        found = self._state(ra[2], rb[2], path)
        if found:
            return found
        for i, label in ((3, "<items>"), (4, "<dict items>")):
            x = None if ra[i] is None else list(ra[i])
            y = None if rb[i] is None else list(rb[i])
            found = self.diff(x, y, f"{path}{label}")
            if found:
                return found
        return None

    def _state(self, x: Any, y: Any, path: str) -> RoundTripDifference | None:
        """Compare pickle state; a dict (or ``(dict, slots)``) reads as attributes."""
        if (
            isinstance(x, tuple)
            and len(x) == 2
            and all(s is None or isinstance(s, dict) for s in x)
        ):
            merged_x = {**(x[0] or {}), **(x[1] or {})}
            merged_y = {**(y[0] or {}), **(y[1] or {})} if isinstance(y, tuple) else y
            return self._state(merged_x, merged_y, path)
        if isinstance(x, dict) and isinstance(y, dict) and all(isinstance(k, str) for k in x):
            for name, value in x.items():
                if name not in y:
                    return RoundTripDifference(
                        f"{path}.{name}",
                        value,
                        _MISSING,
                        f"attribute {name!r} was sent but is missing after the round trip",
                    )
                found = self.diff(value, y[name], f"{path}.{name}")
                if found:
                    return found
            extra = [k for k in y if k not in x]
            if extra:
                return RoundTripDifference(
                    f"{path}.{extra[0]}",
                    _MISSING,
                    y[extra[0]],
                    f"attribute {extra[0]!r} was not sent but came back",
                )
            return None
        return self.diff(x, y, f"{path}<state>")


def _is_plain(x: Any) -> bool:
    return isinstance(x, _PLAIN) and not isinstance(x, (enum.Enum, bytearray))


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
_NOT_A_LEAF = _Missing()


def _index(index: tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in index)


def _reduce(obj: Any) -> str | tuple[Any, ...]:
    reduced = obj.__reduce_ex__(4)
    if isinstance(reduced, str):
        return reduced
    return tuple(reduced)


def _global_names(code: types.CodeType) -> set[str]:
    """Names a code object (and the code nested in it) may look up as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names

"""The comparison walk of ``find_difference``: identity, dispatch, values and containers.

One :class:`Walker` compares one sent value with the received one. It keeps
which sent object was matched with which received one (shared references and
cycles must survive), dispatches each pair to its rule, and holds the rules of
immutable values and containers itself. The rules of functions are in
``_compare_code``; those of exceptions, numpy arrays and other objects in
``_compare_objects``. The rules themselves are listed in ``_equality``.
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
import sys
import types
from typing import Any

from serdoctor.serialize import _paths as step
from serdoctor.testing._compare_code import function_difference
from serdoctor.testing._compare_objects import (
    array_difference,
    exception_difference,
    object_difference,
)
from serdoctor.testing._difference import (
    MISSING,
    Missing,
    RoundTripDifference,
    short,
    types_differ,
    values_differ,
)

__all__ = ["Walker"]

_PLAIN = (type(None), bool, int, str, bytes, bytearray, fractions.Fraction, range, slice)
_TEMPORAL = (datetime.datetime, datetime.date, datetime.time, datetime.timedelta, datetime.tzinfo)
_NOT_A_LEAF = Missing()


class Walker:
    """One comparison: remembers which sent object was matched with which received one."""

    def __init__(self) -> None:
        # id(sent) -> (sent, got, path) and id(got) -> (got, sent, path). The objects
        # are kept so that their ids cannot be reused while we compare.
        self.forward: dict[int, tuple[Any, Any, str]] = {}
        self.backward: dict[int, tuple[Any, Any, str]] = {}
        self.journal: list[tuple[int, int]] = []

    # -- identity bookkeeping -------------------------------------------------

    def seen(self, a: Any, b: Any, path: str) -> RoundTripDifference | bool:
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
        """The first difference between ``a`` (sent) and ``b`` (received) at ``path``, or None."""
        if a is b:
            return None
        np = sys.modules.get("numpy")
        if np is not None and isinstance(a, (np.ndarray, np.generic)):
            return array_difference(self, np, a, b, path)
        if isinstance(a, BaseException):
            return exception_difference(self, a, b, path)
        ta, tb = type(a), type(b)
        if ta is not tb and (ta.__qualname__, ta.__module__) != (tb.__qualname__, tb.__module__):
            return types_differ(a, b, path)
        found = self._leaf(a, b, path)
        if not isinstance(found, Missing):
            return found
        seen = self.seen(a, b, path)
        if seen is True:
            return None
        if isinstance(seen, RoundTripDifference):
            return seen
        return self._composite(a, b, path)

    def _leaf(self, a: Any, b: Any, path: str) -> RoundTripDifference | Missing | None:
        """Compare immutable values; ``_NOT_A_LEAF`` for anything else."""
        if isinstance(a, float):
            return None if _float_same(a, b) else values_differ(a, b, path)
        if isinstance(a, complex):
            same = _float_same(a.real, b.real) and _float_same(a.imag, b.imag)
            return None if same else values_differ(a, b, path)
        if isinstance(a, decimal.Decimal):
            return None if a.as_tuple() == b.as_tuple() else values_differ(a, b, path)
        if isinstance(a, enum.Enum):
            if a.name == b.name and self.diff(a.value, b.value, path) is None:
                return None
            return values_differ(a, b, path)
        if isinstance(a, bytearray):
            return _NOT_A_LEAF  # mutable: its identity matters
        if isinstance(a, _PLAIN):
            try:
                same = bool(a == b)
            except Exception:
                same = False
            return None if same else values_differ(a, b, path)
        if isinstance(a, _TEMPORAL):
            same = a == b and repr(a) == repr(b)
            return None if same else values_differ(a, b, path)
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
            return None if same else values_differ(a, b, path)
        return _NOT_A_LEAF

    def _composite(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        if isinstance(a, bytearray):
            return None if a == b else values_differ(a, b, path)
        if isinstance(a, (list, tuple, collections.deque)):
            return self._sequence(a, b, path) or self._extra_state(a, b, path)
        if isinstance(a, dict):
            return self._dict(a, b, path) or self._extra_state(a, b, path)
        if isinstance(a, (set, frozenset)):
            return self._set(a, b, path) or self._extra_state(a, b, path)
        if isinstance(a, types.FunctionType):
            return function_difference(self, a, b, path)
        if isinstance(a, functools.partial):
            return (
                self.diff(a.func, b.func, f"{path}.func")
                or self.diff(a.args, b.args, f"{path}.args")
                or self.diff(a.keywords, b.keywords, f"{path}.keywords")
                or self._extra_state(a, b, path)
            )
        if dataclasses.is_dataclass(a):
            for f in dataclasses.fields(a):
                found = self.diff(getattr(a, f.name), getattr(b, f.name), path + step.attr(f.name))
                if found:
                    return found
            return None
        return object_difference(self, a, b, path)

    # -- leaves -------------------------------------------------------------------

    def _named(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        def name(x: Any) -> tuple[str, str]:
            if isinstance(x, types.ModuleType):
                return ("module", x.__name__)
            return (str(getattr(x, "__module__", None)), getattr(x, "__qualname__", repr(x)))

        if name(a) != name(b):
            return values_differ(a, b, path)
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
                f"sent {short(a)}, got {short(b)}",
            )
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = self.diff(x, y, path + step.index(i))
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
                if index.pop((type(x), x), MISSING) is MISSING:
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
                found = self.diff(x, y, path + step.key(k))
                if found:
                    return found
            return None
        missing, extra = self._match_all(list(a), list(b))
        if missing:
            k = missing[0]
            return RoundTripDifference(
                path + step.key(k),
                a[k],
                MISSING,
                f"key {short(k)} was sent but is missing after the round trip",
            )
        if extra:
            k = extra[0]
            return RoundTripDifference(
                path + step.key(k),
                MISSING,
                b[k],
                f"key {short(k)} was not sent but came back",
            )
        return RoundTripDifference(
            path,
            a,
            b,
            f"same keys in another order: sent {short(list(a))}, got {short(list(b))}",
        )

    def _set(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        missing, extra = self._match_all(list(a), list(b))
        if missing:
            return RoundTripDifference(
                path,
                missing[0],
                MISSING,
                f"element {short(missing[0])} was sent but no equal element came back "
                f"(sent {short(a)}, got {short(b)})",
            )
        if extra:
            return RoundTripDifference(
                path,
                MISSING,
                extra[0],
                f"element {short(extra[0])} came back but was not sent "
                f"(sent {short(a)}, got {short(b)})",
            )
        return None

    def _extra_state(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        """Attributes of container subclasses (``defaultdict.default_factory``, ``__dict__``)."""
        if isinstance(a, collections.defaultdict):
            found = self.diff(a.default_factory, b.default_factory, f"{path}.default_factory")
            if found:
                return found
        return self.attributes(a, b, path)

    def attributes(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        """Compare the instance ``__dict__`` of ``a`` (if it has one) with ``b``'s."""
        state_a = getattr(a, "__dict__", None)
        if not isinstance(state_a, dict):
            return None
        state_b = getattr(b, "__dict__", {})
        for name, value in state_a.items():
            if name not in state_b:
                return RoundTripDifference(
                    path + step.attr(name),
                    value,
                    MISSING,
                    f"attribute {name!r} was sent but is missing after the round trip",
                )
            found = self.diff(value, state_b[name], path + step.attr(name))
            if found:
                return found
        return None


def _is_plain(x: Any) -> bool:
    return isinstance(x, _PLAIN) and not isinstance(x, (enum.Enum, bytearray))


def _float_same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)

"""What a round-trip comparison reports: a :class:`RoundTripDifference`, and its wording.

Shared by the comparison rules (``_compare_values``, ``_compare_code``,
``_compare_objects``); the public entry points are in ``_equality``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from serdoctor.serialize._paths import short_repr

__all__ = [
    "MISSING",
    "Comparer",
    "Missing",
    "RoundTripDifference",
    "short",
    "type_name",
    "types_differ",
    "values_differ",
]

#: a ``repr`` of a value cut to about 60 characters, never raising: the paths' own
short = short_repr


def type_name(cls: type) -> str:
    """``module.qualname`` of a class (just ``qualname`` for a builtin)."""
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


def values_differ(a: Any, b: Any, path: str) -> RoundTripDifference:
    """``sent a, got b`` (with their class names when their reprs read the same)."""
    sa, sb = short(a), short(b)
    if sa == sb:  # say more than "sent 1, got 1"
        sa, sb = f"{sa} ({type(a).__qualname__})", f"{sb} ({type(b).__qualname__})"
    return RoundTripDifference(path, a, b, f"sent {sa}, got {sb}")


def types_differ(a: Any, b: Any, path: str) -> RoundTripDifference:
    """``sent <class> a, got <other class> b``."""
    return RoundTripDifference(
        path,
        a,
        b,
        f"sent {type_name(type(a))} {short(a)}, got {type_name(type(b))} {short(b)}",
    )


class Missing:
    """The value on the side of a difference where there is none (see :data:`MISSING`)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = Missing()
"""``sent`` or ``got`` of a difference about something present on one side only."""


class Comparer(Protocol):
    """What the per-kind comparison rules need from the walker that drives them."""

    def diff(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        """The first difference between ``a`` and ``b`` (compared recursively), or None."""

    def seen(self, a: Any, b: Any, path: str) -> RoundTripDifference | bool:
        """True if this pair was compared before; a difference if aliasing broke."""

    def attributes(self, a: Any, b: Any, path: str) -> RoundTripDifference | None:
        """The first difference among the two objects' attributes, or None."""

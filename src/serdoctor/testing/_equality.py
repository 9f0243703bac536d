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

The walk is in ``_compare_values`` (identity, dispatch, values, containers),
``_compare_code`` (functions) and ``_compare_objects`` (exceptions, numpy
arrays, other objects); what it reports is in ``_difference``.
"""

from __future__ import annotations

from typing import Any

from serdoctor.testing._compare_values import Walker
from serdoctor.testing._difference import RoundTripDifference

__all__ = ["RoundTripDifference", "find_difference", "roundtrip_equal"]


def find_difference(sent: Any, got: Any) -> RoundTripDifference | None:
    """Return the first difference between ``sent`` and ``got``, or ``None`` if equal.

    Equality is structural and round-trip aware (see the module docstring):
    NaN equals NaN, ``-0.0`` does not equal ``0.0``, arrays compare by dtype,
    shape and bytes, functions by code and captured values, exceptions by
    class name and args, and shared or cyclic references must be preserved.
    """
    return Walker().diff(sent, got, "")


def roundtrip_equal(a: Any, b: Any) -> bool:
    """``True`` when ``b`` is a faithful copy of ``a`` (see :func:`find_difference`)."""
    return find_difference(a, b) is None

"""Testing helpers: hypothesis strategies, round-trip assertions, a pytest plugin.

Property-test that your own values survive serdoctor (see ``docs/testing.md``)::

    from hypothesis import given
    from serdoctor.testing import assert_roundtrip, roundtrip_values

    @given(roundtrip_values())
    def test_survives(value):
        assert_roundtrip(value)

The pytest plugin (installed with serdoctor) adds a ``roundtrip`` fixture, an
:class:`RoundTrip` instance. Names are imported on first use, so that loading
the plugin in every pytest run costs nothing (no hypothesis, no serializer).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serdoctor.testing._equality import RoundTripDifference, find_difference, roundtrip_equal
    from serdoctor.testing._roundtrip import (
        FrameSerializer,
        RoundTrip,
        SerializerLike,
        assert_roundtrip,
    )
    from serdoctor.testing._strategies import (
        by_value_functions,
        containers,
        dataclass_instances,
        enums,
        exceptions,
        hashables,
        importable_functions,
        numbers,
        numpy_arrays,
        picklable_values,
        primitives,
        roundtrip_values,
        temporals,
        texts,
    )

__all__ = [
    "FrameSerializer",
    "RoundTrip",
    "RoundTripDifference",
    "SerializerLike",
    "assert_roundtrip",
    "by_value_functions",
    "containers",
    "dataclass_instances",
    "enums",
    "exceptions",
    "find_difference",
    "hashables",
    "importable_functions",
    "numbers",
    "numpy_arrays",
    "picklable_values",
    "primitives",
    "roundtrip_equal",
    "roundtrip_values",
    "temporals",
    "texts",
]

_HOME = {
    **dict.fromkeys(["RoundTripDifference", "find_difference", "roundtrip_equal"], "_equality"),
    **dict.fromkeys(
        ["FrameSerializer", "RoundTrip", "SerializerLike", "assert_roundtrip"], "_roundtrip"
    ),
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'serdoctor.testing' has no attribute {name!r}")
    module = importlib.import_module(f"serdoctor.testing.{_HOME.get(name, '_strategies')}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

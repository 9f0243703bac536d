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

from typing import TYPE_CHECKING

from serdoctor._lazy import lazy_attributes

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

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        **dict.fromkeys(__all__, "serdoctor.testing._strategies"),
        **dict.fromkeys(
            ["RoundTripDifference", "find_difference", "roundtrip_equal"],
            "serdoctor.testing._equality",
        ),
        **dict.fromkeys(
            ["FrameSerializer", "RoundTrip", "SerializerLike", "assert_roundtrip"],
            "serdoctor.testing._roundtrip",
        ),
    },
    __all__,
    requires={"hypothesis": "pip install 'serdoctor[testing]'"},
)

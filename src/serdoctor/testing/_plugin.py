"""The serdoctor pytest plugin: a ``roundtrip`` fixture.

Registered through the ``pytest11`` entry point, so every pytest run in an
environment with serdoctor loads it. Loading it must therefore be cheap and
harmless: this module imports only pytest; hypothesis and the serializer stack
are imported when a test first asks for the fixture.

::

    def test_point(roundtrip):
        got = roundtrip(Point(1, 2))                      # default stack, this process
        roundtrip(Point(1, 2), fresh_process=True)        # through a new interpreter
        roundtrip(Point(1, 2), Serializer(methods=("pickle",)))

    @pytest.mark.parametrize("roundtrip", [Serializer(methods=("dill",))], indirect=True)
    def test_with_dill(roundtrip): ...                    # another default serializer

``--roundtrip-fresh-process`` makes ``fresh_process=True`` the default for
every call (an explicit ``fresh_process=False`` still wins).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from serdoctor.testing._roundtrip import RoundTrip

__all__ = ["pytest_addoption", "roundtrip"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--roundtrip-fresh-process``."""
    group = parser.getgroup("serdoctor", "serdoctor round trips")
    group.addoption(
        "--roundtrip-fresh-process",
        action="store_true",
        default=False,
        help="serdoctor: make every `roundtrip` fixture call also load the payload in a "
        "fresh interpreter (slower, catches values that only load where they were made)",
    )


@pytest.fixture(scope="session")
def roundtrip(request: pytest.FixtureRequest) -> RoundTrip:
    """The ``roundtrip`` fixture.

    A callable ``roundtrip(obj, serializer=None, *, fresh_process=None, eq=None,
    frames=False, timeout=None)`` that asserts ``obj`` survives a round trip and
    returns the copy (see ``serdoctor.testing.assert_roundtrip``).

    Parametrize it indirectly with a serializer to change its default serializer.
    Session-scoped (it holds no state), so it also works inside ``@given`` tests.
    """
    from serdoctor.testing._roundtrip import RoundTrip

    return RoundTrip(
        getattr(request, "param", None),
        fresh_process=bool(request.config.getoption("roundtrip_fresh_process")),
    )

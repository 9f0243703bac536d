"""The pytest plugin: registered by entry point, cheap to load, a `roundtrip` fixture.

The inner pytest runs are separate processes (``runpytest_subprocess``): the
plugin is then loaded the way users get it, through the ``pytest11`` entry
point, and nothing the inner run imports leaks into this process.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]


def test_registered_as_a_pytest11_entry_point() -> None:
    found = [
        ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "serdoctor"
    ]
    assert [ep.value for ep in found] == ["serdoctor.testing._plugin"]


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    script = (
        "import sys, serdoctor.testing._plugin\n"
        "heavy = ['hypothesis', 'dill', 'cloudpickle', 'numpy', 'serdoctor.testing._strategies',"
        " 'serdoctor.testing._roundtrip']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_run_that_does_not_use_it_is_untouched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_option_is_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--roundtrip-fresh-process*"])


def test_fixture_round_trips_and_reports_what_differed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import math
        import pickle

        def test_ok(roundtrip):
            got = roundtrip({"nan": math.nan, "f": lambda x: x + 1})
            assert got["f"](1) == 2

        class Lossy:
            def dumps(self, obj):
                return pickle.dumps(obj)

            def loads(self, data):
                value = pickle.loads(data)
                value[1]["x"] = 1.5
                return value

        def test_lossy(roundtrip):
            roundtrip([0, {"x": 1.0}], Lossy())
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: round trip changed the value (an unrecognised payload*",
            "*at [[]1][[]'x'[]]: sent 1.0, got 1.5*",
        ]
    )


def test_indirect_parametrization_sets_the_serializer(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import serdoctor

        PICKLE = serdoctor.Serializer(methods=("pickle",))
        DILL = serdoctor.Serializer(methods=("dill",))

        @pytest.mark.parametrize("roundtrip", [PICKLE, DILL], indirect=True, ids=["pickle", "dill"])
        def test_lambda(roundtrip):
            assert roundtrip.serializer is not None
            roundtrip(lambda: 1)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*AssertionError: could not dump*", "FAILED *test_lambda[[]pickle[]]*"]
    )


@pytest.mark.timeout(120)
def test_fresh_process_by_option_and_by_argument(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        def built_here(pid):
            if os.getpid() != pid:
                raise RuntimeError("not in the process that made me")
            return Local()

        class Local:
            def __reduce__(self):
                return (built_here, (os.getpid(),))

        def test_default(roundtrip):
            roundtrip(Local())

        def test_explicit(roundtrip):
            roundtrip(Local(), fresh_process=True)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*not in the process that made me*"])
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--roundtrip-fresh-process")
    result.assert_outcomes(failed=2)


def test_fixture_works_inside_given(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from hypothesis import given, settings
        from serdoctor.testing import roundtrip_values

        @settings(max_examples=20, database=None, deadline=None)
        @given(roundtrip_values())
        def test_property(roundtrip, value):
            roundtrip(value)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.timeout(60)
def test_strategies_without_hypothesis_say_which_extra_to_install() -> None:
    # hypothesis is an extra (serdoctor[testing]): without it, the strategies fail with the
    # install command, while assert_roundtrip (no hypothesis needed) still works.
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "from serdoctor.testing import assert_roundtrip\n"
        "assert_roundtrip({'a': [1, 2]})\n"
        "try:\n"
        "    from serdoctor.testing import roundtrip_values\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=50, check=True
    ).stdout
    assert "serdoctor.testing.roundtrip_values needs hypothesis" in out
    assert "pip install 'serdoctor[testing]'" in out

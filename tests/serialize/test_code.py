"""Functions by value through the marshal-based reducer: every part of a function survives."""

from __future__ import annotations

import asyncio
import functools
import sys
from pathlib import Path

import serdoctor

S = serdoctor.Serializer(methods=("cloudpickle",))


def roundtrip(obj):
    return S.loads(S.dumps(obj))


def test_recursive_closure_and_self_reference() -> None:
    def make():
        def fact(n: int) -> int:
            return 1 if n <= 1 else n * fact(n - 1)

        return fact

    assert roundtrip(make())(6) == 720


def test_defaults_kwdefaults_annotations_doc_and_attributes() -> None:
    def make():
        def f(a: int, b: int = 2, *, c: int = 3) -> int:
            """Add three numbers."""
            return a + b + c

        f.tag = "custom"  # type: ignore[attr-defined]
        return f

    g = roundtrip(make())
    assert g(1) == 6 and g(1, 1, c=1) == 3
    assert g.__doc__ == "Add three numbers."
    assert g.__annotations__ == {"a": "int", "b": "int", "c": "int", "return": "int"}
    assert g.tag == "custom"
    assert g.__qualname__.endswith("make.<locals>.f")


def test_empty_cell_and_mutable_closure() -> None:
    def make():
        def inner() -> int:
            return later  # noqa: F821 - assigned after definition on purpose

        fn = inner
        return fn

    f = roundtrip(make())
    try:
        f()
    except NameError as exc:
        assert "later" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("empty cell became a value")

    def counter():
        count = 0

        def step() -> int:
            nonlocal count
            count += 1
            return count

        return step

    step = roundtrip(counter())
    assert [step(), step(), step()] == [1, 2, 3]


def test_generators_coroutines_and_nested_code() -> None:
    def make():
        def gen(n: int):
            yield from (i * i for i in range(n))

        async def coro(x: int) -> int:
            await asyncio.sleep(0)
            return x + 1

        return gen, coro

    gen, coro = roundtrip(make())
    assert list(gen(4)) == [0, 1, 4, 9]
    assert asyncio.run(coro(1)) == 2


def test_partial_of_lambda_and_functions_sharing_globals(tmp_path: Path, run_python) -> None:
    run_python(
        """
        import functools, os, sys, serdoctor
        COUNT = 10

        def bump():
            global COUNT
            COUNT += 1
            return COUNT

        def read():
            return COUNT

        def uses_submodule(a, b):
            return os.path.join(a, b)

        scale = functools.partial(lambda x, k: x * k, k=4)
        out = sys.argv[1]
        open(out, "wb").write(serdoctor.dumps([bump, read, uses_submodule, scale]))
        """,
        str(tmp_path / "f.sdoc"),
    )
    result = run_python(
        """
        import sys, serdoctor
        bump, read, uses_submodule, scale = serdoctor.loads(open(sys.argv[1], "rb").read())
        print(bump(), bump(), read(), uses_submodule("a", "b"), scale(3))
        """,
        str(tmp_path / "f.sdoc"),
    )
    # bump and read share one globals dict on arrival, as they did where they were made
    assert result.stdout.split() == ["11", "12", "12", "a/b", "12"]


def test_functions_travel_again_from_where_they_arrived(tmp_path: Path, run_python) -> None:
    """A by-value function loaded in a second interpreter can be sent on to a third."""
    first = tmp_path / "first.sdoc"
    second = tmp_path / "second.sdoc"
    run_python(
        "import sys, serdoctor\n"
        "def hop(x):\n    return x * 3\n"
        "open(sys.argv[1], 'wb').write(serdoctor.dumps(hop))\n",
        str(first),
    )
    run_python(
        "import sys, serdoctor\n"
        "fn = serdoctor.loads(open(sys.argv[1], 'rb').read())\n"
        "open(sys.argv[2], 'wb').write(serdoctor.dumps(fn))\n",
        str(first),
        str(second),
    )
    result = run_python(
        "import sys, serdoctor\nprint(serdoctor.loads(open(sys.argv[1], 'rb').read())(5))\n",
        str(second),
    )
    assert result.stdout.strip() == "15"


def test_by_value_class_with_methods() -> None:
    def make():
        class Point:
            def __init__(self, x: int) -> None:
                self.x = x

            def moved(self, d: int) -> Point:
                return Point(self.x + d)

            @property
            def double(self) -> int:
                return self.x * 2

        return Point

    point_cls = roundtrip(make())
    p = point_cls(1).moved(2)
    assert p.x == 3 and p.double == 6 and type(p) is point_cls


def test_unsendable_class_attribute_is_named() -> None:
    class Cached:
        @functools.cached_property
        def value(self) -> int:
            return 1

    if sys.version_info >= (3, 12):  # cached_property no longer holds a lock
        assert roundtrip(Cached)().value == 1
        return
    try:
        S.dumps(Cached)
    except serdoctor.SerializationError as exc:
        assert exc.path == "obj.value.lock"
        assert exc.type_name == "_thread.RLock"
    else:  # pragma: no cover
        raise AssertionError("a class holding an RLock was serialized")

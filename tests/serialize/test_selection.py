"""Selection: what pickle cannot send by reference arrives, by value, in a fresh interpreter."""

from __future__ import annotations

from pathlib import Path

import pytest

import serdoctor

# The sender writes each object to <name>.sdoc; the receiver, a separate interpreter,
# loads and calls it. Names are defined in the sender's __main__, so the receiver
# cannot import them: they must travel by value.
SENDER = """
import functools, sys
from pathlib import Path
import serdoctor

out = Path(sys.argv[1])

def main_function(x):
    return x + 1

def make_closure(n):
    def add(x):
        return x + n
    return add

def deco(f):
    @functools.wraps(f)
    def wrapper(*args):
        return f(*args) * 10
    return wrapper

@deco
def main_decorated(x):
    return x + 2

class MainClass:
    def __init__(self, v):
        self.v = v
    def double(self):
        return self.v * 2

def class_factory():
    class Local:
        def __init__(self):
            self.tag = "local"
        def hello(self):
            return "hello " + self.tag
    return Local

objects = {
    "main_function": main_function,
    "lambda": lambda x: x * 3,
    "closure": make_closure(5),
    "main_decorated": main_decorated,
    "main_class": MainClass,
    "main_instance": MainClass(21),
    "local_class": class_factory(),
    "local_instance": class_factory()(),
}
for name, obj in objects.items():
    (out / f"{name}.sdoc").write_bytes(serdoctor.dumps(obj))
    (out / f"{name}.txt").write_text(serdoctor.explain(obj).method)
"""

RECEIVER = """
import sys
from pathlib import Path
import serdoctor

out = Path(sys.argv[1])
load = lambda name: serdoctor.loads((out / f"{name}.sdoc").read_bytes())
print(load("main_function")(1))
print(load("lambda")(2))
print(load("closure")(3))
print(load("main_decorated")(1))
print(load("main_class")(4).double())
print(load("main_instance").double())
print(load("local_class")().hello())
print(load("local_instance").hello())
"""


def test_main_lambda_closure_and_classes_arrive(run_python, tmp_path: Path) -> None:
    payloads = tmp_path / "payloads"
    payloads.mkdir()
    run_python(SENDER, str(payloads))
    for name in ("main_function", "lambda", "closure", "main_class", "local_class"):
        assert (payloads / f"{name}.txt").read_text() == "cloudpickle", name
    result = run_python(RECEIVER, str(payloads))
    assert result.stdout.split() == [
        "2",
        "6",
        "8",
        "30",
        "8",
        "42",
        "hello",
        "local",
        "hello",
        "local",
    ]


DECORATED_MODULE = """
import functools

class App:
    '''Parsl-style: the decorator returns an object, and the module name now points at it.'''
    def __init__(self, func):
        self.func = func
    def __call__(self, *args):
        return self.func(*args)

def app(func):
    return App(func)

def myfunc(x):
    return x * 2

myfunc = app(myfunc)

def deco(f):
    @functools.wraps(f)
    def wrapper(*args):
        return f(*args) + 100
    return wrapper

@deco
def wrapped(x):
    return x
"""


def test_decorated_functions_arrive(run_python, distribution, tmp_path: Path) -> None:
    site = distribution("decomod", "1.0", DECORATED_MODULE)
    payloads = tmp_path / "payloads"
    payloads.mkdir()
    run_python(
        """
        import sys
        from pathlib import Path
        import serdoctor, decomod
        out = Path(sys.argv[1])
        for name, obj in {
            "inner": decomod.myfunc.func,          # name decomod.myfunc points at the App
            "app": decomod.myfunc,                 # the App object holding it
            "wraps": decomod.wrapped,              # functools.wraps: importable by name
            "wrapped_original": decomod.wrapped.__wrapped__,
        }.items():
            (out / f"{name}.sdoc").write_bytes(serdoctor.dumps(obj))
            report = serdoctor.explain(obj)
            (out / f"{name}.txt").write_text(report.method + "|" + str(report))
        """,
        str(payloads),
        path=[site],
    )
    inner = (payloads / "inner.txt").read_text()
    assert inner.startswith("cloudpickle|")
    assert "now points at another object (a App" in inner
    assert (payloads / "wraps.txt").read_text().startswith("pickle|")
    assert "now points at another object" in (payloads / "wrapped_original.txt").read_text()
    result = run_python(
        """
        import sys
        from pathlib import Path
        import serdoctor
        out = Path(sys.argv[1])
        load = lambda n: serdoctor.loads((out / f"{n}.sdoc").read_bytes())
        print(load("inner")(4), load("app")(5), load("wraps")(1), load("wrapped_original")(7))
        """,
        str(payloads),
        path=[site],
    )
    assert result.stdout.split() == ["8", "10", "101", "7"]


def test_by_value_modules_send_code_the_receiver_lacks(
    run_python, distribution, tmp_path: Path
) -> None:
    site = distribution("mylab", "2.1", "def energy(m):\n    return m * 299792458 ** 2\n")
    payloads = tmp_path / "payloads"
    payloads.mkdir()
    run_python(
        """
        import sys
        from pathlib import Path
        import serdoctor, mylab
        out = Path(sys.argv[1])
        (out / "ref.sdoc").write_bytes(serdoctor.dumps(mylab.energy))
        s = serdoctor.Serializer(by_value_modules=("mylab",))
        (out / "value.sdoc").write_bytes(s.dumps(mylab.energy))
        (out / "value.txt").write_text(str(s.explain(mylab.energy)))
        """,
        str(payloads),
        path=[site],
    )
    assert "listed in by_value_modules" in (payloads / "value.txt").read_text()
    # the receiver does not have mylab at all
    result = run_python(
        """
        import sys
        from pathlib import Path
        import serdoctor
        out = Path(sys.argv[1])
        print(serdoctor.loads((out / "value.sdoc").read_bytes())(1))
        try:
            serdoctor.loads((out / "ref.sdoc").read_bytes())
        except serdoctor.MissingModuleError as exc:
            print("MISSING", exc.module, exc.sender_version)
        """,
        str(payloads),
    )
    lines = result.stdout.splitlines()
    assert lines[0] == str(299792458**2)
    assert lines[1] == "MISSING mylab 2.1"


def test_pickle_is_chosen_when_everything_is_importable() -> None:
    import os.path

    report = serdoctor.explain({"join": os.path.join, "n": [1, 2, 3]})
    assert report.method == "pickle"
    assert report.attempts == ()
    names = {d.name: d.how for d in report.decisions}
    assert names["posixpath.join"] == "reference"
    assert not report.by_value


def test_explain_reports_reasons_and_requirements() -> None:
    def outer(n: int):
        return lambda x: x + n

    report = serdoctor.explain({"f": outer(2)})
    assert report.method == "cloudpickle"
    assert report.by_value
    (decision,) = [d for d in report.decisions if d.kind == "function"]
    assert decision.how == "value"
    assert decision.reason.startswith("lambda")
    assert report.attempts[0].method == "pickle"
    data = report.to_dict()
    assert data["method"] == "cloudpickle"
    assert data["requires"] == {}  # the lambda needs nothing but serdoctor to rebuild it
    assert data["size"] == len(serdoctor.dumps({"f": outer(2)}))
    text = str(report)
    assert "by value" in text and "lambda" in text and "cloudpickle" in text


def test_nothing_can_send_names_the_sub_object_path() -> None:
    import threading

    class Pool:
        def __init__(self) -> None:
            self._lock = (i for i in range(3))  # a generator: no method can send it
            self.size = 4

    args = (1, {"pool": Pool(), "other": threading.get_ident})
    with pytest.raises(serdoctor.SerializationError) as info:
        serdoctor.Serializer(methods=("pickle", "cloudpickle")).dumps(args)
    err = info.value
    assert err.path == "obj[1]['pool']._lock"
    assert err.type_name == "generator"
    assert "obj[1]['pool']._lock" in str(err) and "generator" in str(err)
    import pickle

    assert isinstance(err, pickle.PicklingError)

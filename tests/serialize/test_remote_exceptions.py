"""Remote exceptions across real interpreters (issue 3, "Remote exceptions", points 1-8).

Every test raises in one fresh interpreter, sends with ``serdoctor.dumps`` to
a file, and loads with ``serdoctor.loads`` in another fresh interpreter. The
exception classes live in ``remote_errors_lib``, a module put on the
PYTHONPATH of the raising side only (unless a test says otherwise), so on the
receiving side it is truly not importable. The receiving scripts assert on
what arrived; their failures come back with the child's traceback.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

LIB = '''
import socket
import sys
import threading

if sys.version_info < (3, 11):  # the backport serdoctor depends on there
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup


class AppError(Exception):
    """Base of the library's errors."""


class NotFound(AppError, LookupError):
    def __init__(self, key, code=404):
        super().__init__(f"no such key: {key!r}")
        self.key = key
        self.code = code


class NeedsArgs(ValueError):
    """pickle cannot rebuild it: __init__ requires two arguments, super() gets one."""

    def __init__(self, path, line):
        super().__init__(f"{path}:{line}: bad value")
        self.path = path
        self.line = line


class Outer:
    class Inner(KeyError):
        pass


class DiskFull(OSError):
    pass


class Abort(KeyboardInterrupt):
    pass


class Shutdown(SystemExit):
    pass


class HoldsLock(RuntimeError):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()
        self.retries = 3


class HoldsSocket(ConnectionError):
    def __init__(self, message):
        super().__init__(message)
        self.sock = socket.socket()


class HoldsGenerator(ValueError):
    def __init__(self, message):
        super().__init__(message)
        self.gen = (i for i in range(3))


class HoldsFrame(TypeError):
    def __init__(self, message):
        super().__init__(message)
        self.frame = sys._getframe()


class Batch(ExceptionGroup):
    pass


class BadText(ValueError):
    def __str__(self):
        raise RuntimeError("str is broken")

    def __repr__(self):
        raise RuntimeError("repr is broken")


class Hostile(ValueError):
    def __getattr__(self, name):
        raise RuntimeError(f"no attribute reads ({name})")

    def __reduce__(self):
        raise RuntimeError("no pickling")


def lookup(key):
    raise NotFound(key)  # the remote line


def load(path):
    try:
        lookup(path)
    except NotFound as exc:
        raise NeedsArgs(path, 3) from exc


def disk_full():
    raise DiskFull(28, "No space left on device", "/data/out.bin")
'''

# Python 3.10 has neither ``BaseException.add_note`` nor the builtin group classes
# nor ``except*``: the scripts use the ``exceptiongroup`` backport serdoctor depends on there.
COMPAT = """
if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup, catch
"""

SEND = (
    """
import json, pickle, sys, traceback
import serdoctor
import remote_errors_lib as lib
"""
    + COMPAT
    + """
def add_note(exc, text):
    if sys.version_info >= (3, 11):
        exc.add_note(text)
    else:  # what add_note does
        exc.__notes__ = [*getattr(exc, "__notes__", ()), text]

def raised(make, *args):
    try:
        make(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")

def send(obj):
    with open(sys.argv[1], "wb") as f:
        f.write(serdoctor.dumps(obj))

def note(**facts):
    with open(sys.argv[1] + ".json", "w") as f:
        json.dump(facts, f)

def printed(exc):
    return "".join(traceback.format_exception(exc))
"""
)

RECEIVE = (
    """
import json, pickle, sys, traceback
import serdoctor
from serdoctor.serialize.exceptions._remote import (
    RemoteBaseException, RemoteChainTruncated, RemoteException,
)
"""
    + COMPAT
    + """

def received():
    with open(sys.argv[1], "rb") as f:
        return serdoctor.loads(f.read())

def facts():
    with open(sys.argv[1] + ".json") as f:
        return json.load(f)

def printed(exc):
    return "".join(traceback.format_exception(exc))

def name(exc):
    return f"{type(exc).__module__}.{type(exc).__qualname__}"

def check(value, expected):
    assert value == expected, f"got {value!r}, expected {expected!r}"
"""
)


Cross = Callable[..., str]


@pytest.fixture
def cross(run_python: Any, tmp_path: Path) -> Cross:
    """``cross(send_body, receive_body, receiver_has_lib=False, delete_lib=False)``.

    Runs the raising script (with the library), then the receiving script, and
    returns the receiver's stdout. ``delete_lib`` removes the library's folder
    between the two, so the remote source file does not exist anywhere.
    """
    counter = iter(range(1000))

    def run(
        send_body: str,
        receive_body: str,
        *,
        receiver_has_lib: bool = False,
        delete_lib: bool = False,
        payload: Path | None = None,
    ) -> str:
        lib = tmp_path / f"raiser{next(counter)}"
        lib.mkdir()
        (lib / "remote_errors_lib.py").write_text(LIB)
        data = payload or tmp_path / f"payload{next(counter)}.bin"
        run_python(SEND + textwrap.dedent(send_body), str(data), path=[lib])
        if delete_lib:
            shutil.rmtree(lib)
        path = [lib] if receiver_has_lib else []
        result = run_python(RECEIVE + textwrap.dedent(receive_body), str(data), path=path)
        return str(result.stdout)

    return run


# ---------------------------------------------------------------- 1. importable


def test_importable_class_arrives_as_itself_with_chain_notes_and_frames(cross: Cross) -> None:
    cross(
        """
        exc = raised(lib.load, "conf.toml")
        add_note(exc, "while loading the configuration")
        def during():
            try:
                1 / 0
            except ZeroDivisionError:
                raise lib.AppError("during")
        context_holder = raised(during)
        note(printed=printed(exc), printed_context=printed(context_holder))
        send({"exc": exc, "context": context_holder})
        """,
        """
        import remote_errors_lib as lib
        got = received()
        exc, ctx = got["exc"], got["context"]
        check(type(exc), lib.NeedsArgs)
        check((exc.path, exc.line, exc.args), ("conf.toml", 3, ("conf.toml:3: bad value",)))
        check(type(exc.__cause__), lib.NotFound)
        check((exc.__cause__.key, exc.__cause__.code), ("conf.toml", 404))
        check(exc.__suppress_context__, True)
        check(exc.__notes__, ["while loading the configuration"])
        assert not isinstance(exc, RemoteBaseException)
        check(type(ctx), lib.AppError)
        check(type(ctx.__context__), ZeroDivisionError)
        check(ctx.__suppress_context__, False)
        # the remote text, exactly as the raising side printed it
        check(exc.remote_traceback, facts()["printed"])
        check(ctx.remote_traceback, facts()["printed_context"])
        # and printing the arrived exception shows the remote frames and lines
        text = printed(exc)
        assert 'remote_errors_lib.py", line' in text and "in lookup" in text, text
        assert "raise NotFound(key)  # the remote line" in text, text
        assert "The above exception was the direct cause" in text, text
        assert text.rstrip().endswith("while loading the configuration"), text
        print("ok")
        """,
        receiver_has_lib=True,
    )


# ---------------------------------------------------------------- 2. not importable


def test_missing_class_arrives_as_catchable_stand_in(cross: Cross) -> None:
    out = cross(
        """
        exc = raised(lib.lookup, "k1")
        add_note(exc, "a note")
        note(printed=printed(exc), str=str(exc), repr=repr(exc))
        send(exc)
        """,
        """
        exc = received()
        f = facts()
        check(name(exc), "remote_errors_lib.NotFound")
        check((type(exc).__name__, type(exc).__qualname__), ("NotFound", "NotFound"))
        assert isinstance(exc, RemoteException) and isinstance(exc, LookupError)
        check(exc.remote_type, "remote_errors_lib.NotFound")
        check(exc.remote_mro[:2], ("remote_errors_lib.NotFound", "remote_errors_lib.AppError"))
        assert "not importable here" in exc.remote_reason, exc.remote_reason
        check((str(exc), repr(exc)), (f["str"], f["repr"]))
        check((exc.key, exc.code, exc.args), ("k1", 404, ("no such key: 'k1'",)))
        check(exc.__notes__, ["a note"])
        check(exc.remote_traceback, f["printed"])
        try:
            raise exc
        except LookupError as caught:
            assert caught is exc
        try:
            raise exc
        except RemoteException as caught:
            assert caught is exc
        text = printed(exc)
        assert "remote_errors_lib.NotFound: no such key: 'k1'" in text, text
        assert "in lookup" in text and text.rstrip().endswith("a note"), text
        # two arrivals share one stand-in class
        check(type(received()), type(exc))
        print(json.dumps({"printed": text}))
        """,
        delete_lib=True,
    )
    # the remote file is gone everywhere, yet the remote source line is shown
    assert "raise NotFound(key)  # the remote line" in json.loads(out)["printed"]


def test_stand_ins_keep_builtin_attributes_and_nested_names(cross: Cross) -> None:
    cross(
        """
        send({
            "disk": raised(lib.disk_full),
            "inner": raised(lambda: (_ for _ in ()).throw(lib.Outer.Inner("missing"))),
            "chain": raised(lib.load, "x.cfg"),
        })
        """,
        """
        got = received()
        disk = got["disk"]
        check(name(disk), "remote_errors_lib.DiskFull")
        assert isinstance(disk, OSError) and isinstance(disk, RemoteException)
        check((disk.errno, disk.strerror), (28, "No space left on device"))
        check(disk.filename, "/data/out.bin")
        check(str(disk), "[Errno 28] No space left on device: '/data/out.bin'")
        try:
            raise disk
        except OSError as caught:
            assert caught is disk
        inner = got["inner"]
        check(type(inner).__qualname__, "Outer.Inner")
        assert isinstance(inner, KeyError)
        chain = got["chain"]
        assert isinstance(chain, ValueError) and isinstance(chain.__cause__, LookupError)
        check((chain.path, chain.line, chain.__cause__.key), ("x.cfg", 3, "x.cfg"))
        check(name(chain.__cause__), "remote_errors_lib.NotFound")
        text = printed(chain)
        assert "The above exception was the direct cause" in text, text
        print("ok")
        """,
    )


def test_main_module_class_becomes_receivers_class(cross: Cross) -> None:
    """A class from the raiser's ``__main__`` is matched by name in the receiver's ``__main__``."""
    cross(
        """
        class JobFailed(RuntimeError):
            pass
        send(raised(lambda: (_ for _ in ()).throw(JobFailed("job 7"))))
        """,
        """
        class JobFailed(RuntimeError):
            pass
        exc = received()
        assert isinstance(exc, JobFailed), type(exc).__mro__
        check(str(exc), "job 7")
        print("ok")
        """,
    )


# ---------------------------------------------------------------- 3. pickle can't rebuild


def test_init_with_required_arguments_arrives_as_the_real_class(cross: Cross) -> None:
    cross(
        """
        exc = lib.NeedsArgs("a.cfg", 7)
        try:
            pickle.loads(pickle.dumps(exc))
        except TypeError:
            pass
        else:
            raise AssertionError("plain pickle was expected to fail here")
        send(exc)
        """,
        """
        import remote_errors_lib as lib
        exc = received()
        check(type(exc), lib.NeedsArgs)
        check((exc.path, exc.line, str(exc)), ("a.cfg", 7, "a.cfg:7: bad value"))
        assert not isinstance(exc, RemoteBaseException)
        print("ok")
        """,
        receiver_has_lib=True,
    )


# ---------------------------------------------------------------- 4. unpicklable


UNPICKLABLE = """
made = {
    "lock": raised(lambda: (_ for _ in ()).throw(lib.HoldsLock("locked out"))),
    "socket": raised(lambda: (_ for _ in ()).throw(lib.HoldsSocket("socket down"))),
    "generator": raised(lambda: (_ for _ in ()).throw(lib.HoldsGenerator("gen"))),
    "frame": raised(lambda: (_ for _ in ()).throw(lib.HoldsFrame("frame"))),
}
for exc in made.values():
    try:
        pickle.dumps(exc)
    except Exception:
        pass
    else:
        raise AssertionError(f"{exc!r} was expected not to pickle")
send(made)
made["socket"].sock.close()
"""

UNPICKLABLE_CHECKS = """
got = received()
bases = {"lock": RuntimeError, "socket": ConnectionError, "generator": ValueError,
         "frame": TypeError}
texts = {"lock": "locked out", "socket": "socket down", "generator": "gen", "frame": "frame"}
for key, exc in got.items():
    assert isinstance(exc, RemoteException) and isinstance(exc, bases[key]), type(exc).__mro__
    check(str(exc), texts[key])
    assert "Traceback (most recent call last)" in exc.remote_traceback, exc.remote_traceback
    assert "<genexpr>" in printed(exc), printed(exc)
check(got["lock"].retries, 3)
assert not hasattr(got["lock"], "lock")
"""


def test_unpicklable_exceptions_arrive_as_stand_ins(cross: Cross) -> None:
    cross(
        UNPICKLABLE,
        UNPICKLABLE_CHECKS
        + """
for exc in got.values():
    assert "not importable" in exc.remote_reason, exc.remote_reason
print("ok")
""",
    )


def test_unpicklable_exception_of_an_importable_class_is_a_stand_in_subclass(cross: Cross) -> None:
    cross(
        UNPICKLABLE,
        UNPICKLABLE_CHECKS
        + """
import remote_errors_lib as lib
assert isinstance(got["lock"], lib.HoldsLock)
assert isinstance(got["frame"], lib.HoldsFrame)
assert "could not be pickled" in got["lock"].remote_reason, got["lock"].remote_reason
assert "lock" in got["lock"].remote_reason
try:
    raise got["socket"]
except lib.HoldsSocket:
    pass
print("ok")
""",
        receiver_has_lib=True,
    )


# ---------------------------------------------------------------- 5. groups, BaseException

# ``except*`` is a syntax error before 3.11, so 3.10 runs the same handlers through the
# backport's ``catch``, which splits the group the way ``except*`` does.
if sys.version_info >= (3, 11):
    SPLIT_BATCH = """
lookups, oserrors = [], []
try:
    raise group
except* LookupError as eg:
    lookups = [e.key for e in eg.exceptions[0:1]] + [
        e.exceptions[0].key for e in eg.exceptions[1:]]
except* OSError as eg:
    oserrors = [e.errno for e in eg.exceptions]
except* ValueError:
    pass
"""
    SPLIT_STOPPING = """
caught = []
try:
    raise group
except* KeyboardInterrupt as eg:
    caught.append(name(eg.exceptions[0]))
except* ValueError as eg:
    caught.append(str(eg.exceptions[0]))
"""
else:
    SPLIT_BATCH = """
lookups, oserrors = [], []
def on_lookup(eg):
    lookups.extend([e.key for e in eg.exceptions[0:1]] + [
        e.exceptions[0].key for e in eg.exceptions[1:]])
def on_oserror(eg):
    oserrors.extend(e.errno for e in eg.exceptions)
with catch({LookupError: on_lookup, OSError: on_oserror, ValueError: lambda eg: None}):
    raise group
"""
    SPLIT_STOPPING = """
caught = []
with catch({
    KeyboardInterrupt: lambda eg: caught.append(name(eg.exceptions[0])),
    ValueError: lambda eg: caught.append(str(eg.exceptions[0])),
}):
    raise group
"""


def test_exception_groups_keep_members_and_except_star_works(cross: Cross) -> None:
    cross(
        """
        def fan_out():
            errors = [raised(lib.lookup, "a"), raised(lib.disk_full), ValueError("plain")]
            inner = ExceptionGroup("inner", [raised(lib.lookup, "b")])
            raise lib.Batch("batch failed", [*errors, inner])
        exc = raised(fan_out)
        note(printed=printed(exc), str=str(exc))
        send(exc)
        """,
        """
        group = received()
        f = facts()
        check(name(group), "remote_errors_lib.Batch")
        assert isinstance(group, ExceptionGroup) and isinstance(group, RemoteException)
        check(str(group), f["str"])
        check(len(group.exceptions), 4)
        check([name(e) for e in group.exceptions[:3]],
              ["remote_errors_lib.NotFound", "remote_errors_lib.DiskFull", "builtins.ValueError"])
        check(type(group.exceptions[3]), ExceptionGroup)
        check(group.exceptions[3].exceptions[0].key, "b")
        check(group.remote_traceback, f["printed"])
        """
        + textwrap.indent(SPLIT_BATCH, " " * 8)
        + """
        check(lookups, ["a", "b"])
        check(oserrors, [28])
        text = printed(group)
        assert "Exception Group Traceback" in text and "remote_errors_lib.DiskFull" in text, text
        print("ok")
        """,
    )


def test_base_exception_stand_ins_stay_out_of_except_exception(cross: Cross) -> None:
    cross(
        """
        abort = raised(lambda: (_ for _ in ()).throw(lib.Abort("user pressed ^C")))
        stop = raised(lambda: (_ for _ in ()).throw(lib.Shutdown(3)))
        both = BaseExceptionGroup("stopping", [abort, ValueError("also")])
        send({"abort": abort, "stop": stop, "group": both})
        """,
        """
        got = received()
        for key, base in (("abort", KeyboardInterrupt), ("stop", SystemExit)):
            exc = got[key]
            assert isinstance(exc, base) and isinstance(exc, RemoteBaseException)
            assert not isinstance(exc, Exception) and not isinstance(exc, RemoteException)
            try:
                try:
                    raise exc
                except Exception:
                    raise AssertionError(f"except Exception caught {exc!r}")
            except base as caught:
                assert caught is exc
        check(got["stop"].code, 3)
        group = got["group"]
        check(type(group), BaseExceptionGroup)
        """
        + textwrap.indent(SPLIT_STOPPING, " " * 8)
        + """
        check(caught, ["remote_errors_lib.Abort", "also"])
        print("ok")
        """,
    )


# ---------------------------------------------------------------- 6. another hop


def test_stand_ins_cross_another_hop_unchanged(
    cross: Cross, run_python: Any, tmp_path: Path
) -> None:
    first = tmp_path / "first.bin"
    describe = textwrap.dedent(
        """
        def describe(exc):
            return {
                "name": name(exc), "str": str(exc), "repr": repr(exc), "args": list(exc.args),
                "key": getattr(exc, "key", None), "notes": getattr(exc, "__notes__", None),
                "cause": name(exc.__cause__) if exc.__cause__ else None,
                "cause_key": getattr(exc.__cause__, "key", None),
                "remote_traceback": getattr(exc, "remote_traceback", None),
                "printed": printed(exc),
            }
        """
    )
    before = cross(
        """
        exc = raised(lib.load, "hop.cfg")
        add_note(exc, "first hop")
        send(exc)
        """,
        describe
        + textwrap.dedent(
            """
            exc = received()
            assert isinstance(exc, RemoteException)
            with open(sys.argv[1] + ".hop", "wb") as f:
                f.write(serdoctor.dumps(exc))
            with open(sys.argv[1] + ".plain", "wb") as f:
                f.write(pickle.dumps(exc))
            print(json.dumps(describe(exc)))
            """
        ),
        payload=first,
        delete_lib=True,
    )
    receive_again = (
        RECEIVE
        + describe
        + textwrap.dedent(
            """
        with open(sys.argv[1], "rb") as f:
            data = f.read()
        exc = pickle.loads(data) if sys.argv[1].endswith(".plain") else serdoctor.loads(data)
        assert isinstance(exc, RemoteException)
        print(json.dumps(describe(exc)))
        """
        )
    )
    expected = json.loads(before)
    for suffix in (".hop", ".plain"):
        after = run_python(receive_again, str(first) + suffix).stdout
        assert json.loads(after) == expected, suffix

    # a third interpreter that has the library gets the real classes back
    lib = tmp_path / "lib_again"
    lib.mkdir()
    (lib / "remote_errors_lib.py").write_text(LIB)
    real = run_python(
        RECEIVE
        + textwrap.dedent(
            """
            import remote_errors_lib as lib
            with open(sys.argv[1], "rb") as f:
                exc = serdoctor.loads(f.read())
            check(type(exc), lib.NeedsArgs)
            check(type(exc.__cause__), lib.NotFound)
            check((exc.path, exc.line, exc.__cause__.key), ("hop.cfg", 3, "hop.cfg"))
            check(exc.__notes__, ["first hop"])
            print(exc.remote_traceback)
            """
        ),
        str(first) + ".hop",
        path=[lib],
    )
    assert "raise NotFound(key)  # the remote line" in real.stdout


# ---------------------------------------------------------------- 7. hardened


def test_hostile_and_huge_exceptions_never_break_dumps_or_loads(cross: Cross) -> None:
    cross(
        """
        bad_text = raised(lambda: (_ for _ in ()).throw(lib.BadText("x")))
        hostile = raised(lambda: (_ for _ in ()).throw(lib.Hostile("h")))
        huge = lib.AppError("x" * 5_000_000)
        weird_notes = ValueError("notes")
        weird_notes.__notes__ = "not a list"
        self_arg = lib.AppError()
        self_arg.args = (self_arg, "me")
        send({"bad_text": bad_text, "hostile": hostile, "huge": huge,
              "weird_notes": weird_notes, "self_arg": self_arg})
        """,
        """
        got = received()
        bad = got["bad_text"]
        assert isinstance(bad, ValueError)
        check(str(bad), "<str() failed: RuntimeError>")
        check(repr(bad), "<repr() failed: RuntimeError>")
        assert "remote_errors_lib.BadText" in bad.remote_traceback, bad.remote_traceback
        hostile = got["hostile"]
        assert isinstance(hostile, ValueError) and isinstance(hostile, RemoteException)
        check(str(hostile), "h")
        huge = str(got["huge"])
        assert len(huge) < 70_000 and "characters truncated" in huge, len(huge)
        assert huge.startswith("xxxx")
        assert isinstance(got["weird_notes"], ValueError)
        self_arg = got["self_arg"]
        check(self_arg.args[1], "me")
        for exc in got.values():
            printed(exc)
        print("ok")
        """,
    )


def test_cycles_and_deep_chains_are_cut_with_a_marker(cross: Cross) -> None:
    cross(
        """
        a, b = lib.AppError("a"), ValueError("b")
        a.__cause__ = b
        b.__context__ = a
        self_loop = lib.AppError("self")
        self_loop.__context__ = self_loop
        deep = lib.AppError("level 0")
        for level in range(1, 5000):
            top = lib.AppError(f"level {level}")
            top.__cause__ = deep
            deep = top
        wide = ExceptionGroup("wide", [lib.AppError(str(i)) for i in range(3000)])
        send({"cycle": a, "self": self_loop, "deep": deep, "wide": wide})
        """,
        """
        got = received()
        a = got["cycle"]
        check(str(a.__cause__), "b")
        assert a.__cause__.__context__ is a
        assert got["self"].__context__ is got["self"]
        printed(a)
        printed(got["self"])
        deep, seen = got["deep"], 0
        while isinstance(deep.__cause__, BaseException) and not isinstance(
                deep, RemoteChainTruncated):
            deep, seen = deep.__cause__, seen + 1
        assert isinstance(deep, RemoteChainTruncated), type(deep)
        assert "were not sent" in str(deep), str(deep)
        assert 90 <= seen <= 101, seen
        check(str(got["deep"]), "level 4999")
        wide = got["wide"]
        check(len(wide.exceptions), 3000)
        check(str(wide.exceptions[10]), "10")
        assert isinstance(wide.exceptions[-1], RemoteChainTruncated)
        printed(wide)
        print("ok")
        """,
    )

"""``serdoctor.check``: can this live object be sent, how, and if not, what exactly blocks it.

The check runs the real stack on the object. When every method fails it walks
down the object graph (attributes and container items) to the deepest
sub-object that still cannot be sent, names it by path, and suggests a remedy
that fits its type. With ``fresh=True`` it also loads the payload in a new
interpreter, which proves that it arrives: a function that pickles by reference
can still fail there if its module is not importable.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serdoctor.errors import SerdoctorError, SerializationError
from serdoctor.serialize import Explanation, Serializer, default_serializer
from serdoctor.serialize._notdata import not_data

FRESH_TIMEOUT = 120.0


@dataclass(frozen=True)
class FreshResult:
    """What happened when a fresh interpreter loaded the payload."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class CheckReport:
    """The outcome of :func:`check`."""

    target: str
    ok: bool
    explanation: Explanation | None
    path: str | None = None
    type_name: str | None = None
    error: str | None = None
    remedy: str | None = None
    fresh: FreshResult | None = None

    @property
    def exit_code(self) -> int:
        """0 when the object can be sent (and arrived, if checked), else 1."""
        return 0 if self.ok and (self.fresh is None or self.fresh.ok) else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "target": self.target,
            "ok": self.ok,
            "method": self.explanation.method if self.explanation else None,
            "explanation": self.explanation.to_dict() if self.explanation else None,
            "path": self.path,
            "type": self.type_name,
            "error": self.error,
            "remedy": self.remedy,
            "fresh": None
            if self.fresh is None
            else {"ok": self.fresh.ok, "detail": self.fresh.detail},
        }

    def __str__(self) -> str:
        if self.ok and self.explanation is not None:
            text = f"{self.target} can be sent.\n{self.explanation}"
        else:
            text = (
                f"{self.target} cannot be sent.\n"
                f"  blocked by: {self.path} ({self.type_name})\n"
                f"  why: {self.error}\n"
                f"  remedy: {self.remedy}"
            )
        if self.fresh is not None:
            state = "arrived" if self.fresh.ok else "did NOT arrive"
            text += f"\nfresh interpreter: {state}: {self.fresh.detail}"
        return text


def remedy_for(obj_type_name: str, obj: Any = None) -> str:
    """A remedy that fits the type of the object that cannot be sent."""
    info = not_data(obj) if obj is not None else None
    if info is not None:  # the stack's own words for objects that are not data
        return info.remedy
    return (
        f"teach pickle to send {obj_type_name}: give its class a __reduce__ (or __getstate__/"
        "__setstate__), register a reducer with copyreg.pickle, or send only the plain data "
        'it holds; if it is code from your own package, try by_value_modules=("yourpkg",)'
    )


def _resolve(target: str) -> tuple[str, Any]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"target {target!r} must look like module:attribute, e.g. mylab.jobs:job")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return attr.split(".")[-1], obj


def load_target(target: str, serializer: Serializer | None = None) -> tuple[str, Any]:
    """Resolve ``module:attribute`` (importing the module), or load a serdoctor payload file."""
    if ":" in target and not Path(target).exists():
        return _resolve(target)
    path = Path(target)
    if not path.is_file():
        raise ValueError(f"{target!r} is neither module:attribute nor an existing payload file")
    data = path.read_bytes()
    return "obj", (serializer or default_serializer()).loads(data)


def _fresh_load(payload: bytes) -> FreshResult:
    with tempfile.TemporaryDirectory(prefix="serdoctor-check-") as tmp:
        path = Path(tmp) / "payload.sdoc"
        path.write_bytes(payload)
        script = (
            "import sys, serdoctor\n"
            "obj = serdoctor.loads(open(sys.argv[1], 'rb').read())\n"
            "print(type(obj).__module__ + '.' + type(obj).__qualname__)\n"
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            proc = subprocess.run(
                [sys.executable, "-c", script, str(path)],
                capture_output=True,
                text=True,
                timeout=FRESH_TIMEOUT,
                env=env,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            return FreshResult(False, f"loading took longer than {FRESH_TIMEOUT:.0f} s")
    if proc.returncode == 0:
        return FreshResult(True, f"loaded as {proc.stdout.strip()}")
    last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return FreshResult(False, last)


def check(
    obj: Any,
    *,
    serializer: Serializer | None = None,
    fresh: bool = False,
    name: str = "obj",
) -> CheckReport:
    """Try the stack on ``obj``: which method, and why; if it fails, the exact path and a remedy.

    ``fresh=True`` also loads the payload in a new interpreter to prove it arrives.
    """
    ser = serializer or default_serializer()
    try:
        explanation = ser.explain(obj)
    except SerializationError as exc:
        path = (exc.path or name).replace("obj", name, 1) if exc.path else name
        culprit: Any = _follow(obj, exc.path)
        type_name = exc.type_name or type(obj).__name__
        info = not_data(culprit) if culprit is not None else None
        detail = (
            info.why
            if info is not None
            else str(exc).split("no method can send it (", 1)[-1].rsplit(")", 1)[0]
        )
        return CheckReport(
            name,
            False,
            None,
            path=path,
            type_name=type_name,
            error=detail,
            remedy=remedy_for(type_name, culprit),
        )
    fresh_result = None
    if fresh:
        try:
            fresh_result = _fresh_load(ser.dumps(obj))
        except SerdoctorError as exc:  # pragma: no cover - dumps succeeded just above
            fresh_result = FreshResult(False, str(exc))
    return CheckReport(name, True, explanation, fresh=fresh_result)


def _follow(obj: Any, path: str | None) -> Any:
    """Best effort: re-walk the probe's path to get the culprit object itself."""
    from serdoctor.serialize._probe import children

    if not path or not path.startswith("obj"):
        return None
    rest = path[3:]
    current = obj
    while rest:
        for suffix, child in children(current):
            if rest.startswith(suffix):
                current, rest = child, rest[len(suffix) :]
                break
        else:
            return None
    return current

"""Deciding, and recording, how each function and class travels.

pickle can only send a function or class *by reference*: it writes
``module`` and ``qualname`` and the receiver imports them. That works when the
receiver can import the module and the name leads back to the very same object.
When it cannot (a lambda, a closure, something defined in ``__main__``, a name
that now points at a decorator's wrapper, a class defined in a function, a
module listed in ``by_value_modules``) the code must travel *by value*, which
only cloudpickle and dill can do. :func:`classify` makes that decision with the
same rules cloudpickle uses, and :class:`Recorder` keeps every decision so that
``explain()`` can say what went how, and why.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any, Literal

How = Literal["reference", "value"]


#: modules whose functions are the methods' own plumbing, not the user's code
PLUMBING = frozenset({"builtins", "cloudpickle", "copyreg", "dill", "serdoctor", "_codecs", "copy"})


@dataclass(frozen=True)
class CodeDecision:
    """How one function, class or module travels, and why."""

    kind: str  # "function", "class", "module", "builtin"
    name: str  # module.qualname
    how: How
    reason: str
    importable: bool = False  # found by name: pickle's save_global sends it as is
    module: str = ""  # the module a "reference" decision imports from

    @property
    def plumbing(self) -> bool:
        """True for the serializers' own helper functions (not worth reporting)."""
        return self.how == "reference" and self.name.split(".", 1)[0] in PLUMBING

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"kind": self.kind, "name": self.name, "how": self.how, "reason": self.reason}


class ByValueNeeded(Exception):
    """Raised inside a by-reference pickler to abandon it for a by-value method."""

    def __init__(self, decision: CodeDecision, culprit: Any = None):
        super().__init__(f"{decision.name} cannot travel by reference: {decision.reason}")
        self.decision = decision
        self.culprit = culprit  # the function, class or module it is about


def _in_modules(module: str, names: tuple[str, ...]) -> str | None:
    for name in names:
        if module == name or module.startswith(name + "."):
            return name
    return None


def _lookup(module: str, qualname: str) -> tuple[bool, Any]:
    mod = sys.modules.get(module)
    if mod is None:
        return False, None
    obj: Any = mod
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            return False, None
    return True, obj


def _function_reason(fn: types.FunctionType) -> str:
    if fn.__name__ == "<lambda>":
        return "lambda (it has no importable name)"
    outer = fn.__qualname__.split(".<locals>", 1)[0]
    if fn.__closure__:
        names = ", ".join(fn.__code__.co_freevars)
        return f"closure over {names} (defined inside {outer}())"
    return f"defined inside {outer}() (it has no importable name)"


def registered_by_value() -> tuple[str, ...]:
    """Modules registered with ``cloudpickle.register_pickle_by_value`` (if it is imported)."""
    inner = sys.modules.get("cloudpickle.cloudpickle")
    if inner is None:
        return ()
    # its own set, read without the copy list_registry_pickle_by_value() makes (hot path)
    names = getattr(inner, "_PICKLE_BY_VALUE_MODULES", None)
    if names is None:
        listing = getattr(sys.modules.get("cloudpickle"), "list_registry_pickle_by_value", None)
        names = listing() if listing is not None else ()
    return tuple(names) if names else ()


#: "reference" decisions already made, keyed by the object's id (with by_value_modules, when
#: there are any: an int key hashes much faster than a tuple, and this is the hot path): the
#: object (which keeps the id valid), where its name is looked up again on every use, and
#: the decision
_REFERENCES: dict[Any, tuple[Any, Any, str, CodeDecision]] = {}


def classify(obj: Any, by_value_modules: tuple[str, ...] = ()) -> CodeDecision:
    """Decide whether a function or class can travel by reference.

    By reference means the receiver rebuilds it with ``from module import name``;
    by value means its code is serialized (cloudpickle or dill). Modules in
    ``by_value_modules`` or registered with cloudpickle's
    ``register_pickle_by_value`` travel by value. A "reference" verdict is
    remembered; using it again checks that the name still leads to the object.
    """
    key = (id(obj), by_value_modules) if by_value_modules else id(obj)
    known = _REFERENCES.get(key)
    if (
        known is not None
        and known[0] is obj
        and getattr(known[1], known[2], None) is obj
        and (
            "cloudpickle.cloudpickle" not in sys.modules  # the usual answer, without a call
            or not registered_by_value()
        )
    ):
        return known[3]
    decision = _classify(obj, by_value_modules)
    if decision.importable:
        module = sys.modules.get(str(obj.__module__))
        qualname = str(obj.__qualname__)
        holder = module
        if "." in qualname:
            found, holder = _lookup(str(obj.__module__), qualname.rsplit(".", 1)[0])
            holder = holder if found else None
        if holder is not None:
            if len(_REFERENCES) >= 4096:
                _REFERENCES.clear()
            _REFERENCES[key] = (obj, holder, qualname.rsplit(".", 1)[-1], decision)
    return decision


def _classify(obj: Any, by_value_modules: tuple[str, ...]) -> CodeDecision:
    kind = "class" if isinstance(obj, type) else "function"
    module = getattr(obj, "__module__", None)
    qualname = str(getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "?"))
    name = f"{module}.{qualname}"
    if isinstance(obj, types.FunctionType) and obj.__name__ == "<lambda>":
        return CodeDecision(kind, name, "value", _function_reason(obj))
    if module is None:
        return CodeDecision(kind, name, "value", "it has no __module__ to import it from")
    if "<locals>" in qualname:
        if isinstance(obj, types.FunctionType):
            return CodeDecision(kind, name, "value", _function_reason(obj))
        outer = qualname.split(".<locals>", 1)[0]
        return CodeDecision(kind, name, "value", f"class defined inside {outer}()")
    if module in ("__main__", "__mp_main__"):
        return CodeDecision(
            kind,
            name,
            "value",
            "defined in __main__ (the receiving interpreter has its own __main__)",
        )
    listed = _in_modules(module, by_value_modules)
    if listed is not None:
        return CodeDecision(kind, name, "value", f"module {listed!r} is listed in by_value_modules")
    registered = _in_modules(module, registered_by_value())
    if registered is not None:
        return CodeDecision(
            kind,
            name,
            "value",
            f"module {registered!r} is registered with cloudpickle.register_pickle_by_value",
        )
    found, target = _lookup(module, qualname)
    if not found and module == "builtins":
        return CodeDecision(
            kind,
            name,
            "reference",
            "builtin type, rebuilt by the method's helpers",
            module=str(module),
        )
    if not found:
        if module not in sys.modules:
            return CodeDecision(kind, name, "value", f"module {module!r} is not imported here")
        return CodeDecision(
            kind,
            name,
            "value",
            f"{name} does not exist (the object was renamed or created dynamically)",
        )
    if target is not obj:
        what = type(target).__name__
        return CodeDecision(
            kind,
            name,
            "value",
            f"the name {name} now points at another object (a {what}, e.g. a decorator's wrapper)",
        )
    return CodeDecision(
        kind, name, "reference", f"importable as {name}", importable=True, module=str(module)
    )


_PLUMBING_CACHE: dict[int, CodeDecision] = {}
_PLUMBING_KEEP: list[Any] = []  # keeps the cached ids valid


@dataclass
class Recorder:
    """Collects decisions and the modules a payload needs while it is pickled."""

    by_value_modules: tuple[str, ...] = ()
    decisions: dict[int, CodeDecision] = field(default_factory=dict)
    modules: set[str] = field(default_factory=set)
    active: bool = False
    _keep: list[Any] = field(default_factory=list)
    #: objects sent by an opt-in reducer: (type, what they become where loaded)
    reduced: list[tuple[str, str]] = field(default_factory=list)

    by_value_seen: bool = False

    @property
    def any_by_value(self) -> bool:
        """True when some code travels by value (the payload is Python-version bound)."""
        return self.by_value_seen

    def code(self, obj: Any) -> CodeDecision:
        """Classify and remember a function or class."""
        key = id(obj)
        known = self.decisions.get(key)
        if known is not None:
            return known
        decision = _PLUMBING_CACHE.get(key)
        if decision is None:
            decision = classify(obj, self.by_value_modules)
            if decision.plumbing:  # the methods' own helpers never move: remember them
                _PLUMBING_CACHE[key] = decision
                _PLUMBING_KEEP.append(obj)
        self.seed(obj, decision)
        return decision

    def seed(self, obj: Any, decision: CodeDecision) -> None:
        """Record a decision already made (so the pickler need not make it again)."""
        self.decisions[id(obj)] = decision
        self._keep.append(obj)  # ids stay unique while we hold the objects
        if decision.how == "value":
            self.by_value_seen = True
        else:
            self.modules.add(str(obj.__module__))

    def reduced_to(self, obj: Any, what: str) -> None:
        """Remember that an opt-in reducer sent ``obj`` as ``what``."""
        self.reduced.append((f"{type(obj).__module__}.{type(obj).__qualname__}", what))

    def module(self, mod: types.ModuleType) -> CodeDecision:
        """Remember a module object reached in the graph.

        An imported module travels by name (imported on arrival); one made at
        run time (``types.ModuleType("m")``, not in ``sys.modules``) cannot be
        imported anywhere, so it travels by value, as cloudpickle sends it.
        """
        key = id(mod)
        known = self.decisions.get(key)
        if known is not None:
            return known
        decision = module_decision(mod)
        if decision.how == "value":
            self.by_value_seen = True
        else:
            self.modules.add(mod.__name__)
        self.decisions[key] = decision
        self._keep.append(mod)
        return decision

    def builtin(self, obj: Any) -> None:
        """Remember a builtin function or method (always by reference)."""
        module = getattr(obj, "__module__", None)
        if isinstance(module, str):
            self.modules.add(module)


def module_decision(mod: types.ModuleType) -> CodeDecision:
    """How a module object travels: by name when imported, by value when made at run time."""
    if sys.modules.get(mod.__name__) is mod:
        return CodeDecision(
            "module", mod.__name__, "reference", "module object: imported by name on arrival"
        )
    return CodeDecision(
        "module", mod.__name__, "value", "module made at run time (not in sys.modules)"
    )


class LeanRecorder(Recorder):
    """A recorder that keeps only what a header needs: the modules and the by-value flag.

    For the serializer's fast path, which never explains its choices (``explain``
    always takes the general path and records every decision).
    """

    def code(self, obj: Any) -> CodeDecision:
        """Classify a function or class; remember its module when it goes by reference."""
        decision = classify(obj, self.by_value_modules)
        if decision.how == "value":
            self.by_value_seen = True
        else:
            self.modules.add(decision.module)  # every "reference" decision names its module
        return decision

    def module(self, mod: types.ModuleType) -> CodeDecision:
        """Remember an imported module's name; a module made at run time goes by value."""
        decision = module_decision(mod)
        if decision.how == "value":
            self.by_value_seen = True
        else:
            self.modules.add(mod.__name__)
        return decision

    def reduced_to(self, obj: Any, what: str) -> None:
        """Nothing to remember: the fast path does not explain."""

    def reset(self) -> None:
        """Forget the modules and the flag."""
        if self.modules:
            self.modules.clear()
        self.by_value_seen = False

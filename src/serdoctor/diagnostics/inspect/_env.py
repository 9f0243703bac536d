"""Is ``module.name`` available here? Answered without importing anything.

:class:`_Env` finds modules with ``importlib.util.find_spec`` for the top
level and walks each parent's search locations itself for submodules (so no
package ``__init__`` runs), reads top-level names from the source with
``ast``, versions from ``importlib.metadata``, and applies known module moves.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import sys
from typing import Any

from serdoctor.diagnostics.inspect._report import Availability
from serdoctor.diagnostics.inspect._tables import _KNOWN_MOVES
from serdoctor.serialize._requirements import STDLIB, distribution_of, top_level


def _vtuple(text: str | None) -> tuple[int, ...]:
    out = []
    for part in (text or "").split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


class _Env:
    """Answers "is module.name available here?" from metadata and files only."""

    def __init__(self) -> None:
        self.specs: dict[str, tuple[Any, str]] = {}
        self.names: dict[str, tuple[set[str], bool] | None] = {}

    def distribution(self, module: str) -> tuple[str | None, str | None, bool]:
        """``(distribution, version, stdlib)`` for a module's top-level package.

        The stack's own answer (``serialize._requirements``): one source for
        which distribution provides a module and whether it is standard library.
        """
        top = top_level(module)
        if top in STDLIB:
            return None, sys.version.split()[0], True
        found = distribution_of(top)
        if found is None:
            return None, None, False
        return found[0], found[1], False

    def spec(self, module: str) -> tuple[Any, str]:
        """``(spec or module or None, why-not)``; walks parents' search locations itself."""
        cached = self.specs.get(module)
        if cached is not None:
            return cached
        result = self._spec(module)
        self.specs[module] = result
        return result

    def _spec(self, module: str) -> tuple[Any, str]:
        parts = module.split(".")
        if not all(p.isidentifier() for p in parts):
            return None, f"{module!r} is not a valid module name"
        loaded = sys.modules.get(module)
        if loaded is not None:
            return loaded, ""
        spec: Any
        try:
            spec = importlib.util.find_spec(parts[0])
        except (ImportError, ValueError, AttributeError):
            spec = None
        except Exception:
            spec = None
        if spec is None:
            return None, f"module {parts[0]} is not installed"
        for depth in range(1, len(parts)):
            name = ".".join(parts[: depth + 1])
            parent = ".".join(parts[:depth])
            loaded = sys.modules.get(name)
            if loaded is not None:
                spec = loaded
                continue
            locations = getattr(spec, "submodule_search_locations", None)
            if locations is None:
                locations = getattr(spec, "__path__", None)
            if locations is None:
                return (
                    None,
                    f"{parent} is a module, not a package: it has no submodule {parts[depth]}",
                )
            try:
                spec = importlib.machinery.PathFinder.find_spec(name, list(locations))
            except Exception:
                spec = None
            if spec is None:
                return None, f"{parent} has no submodule {parts[depth]}"
        return spec, ""

    def top_names(self, module: str, spec: Any) -> tuple[set[str], bool] | None:
        """Top-level names a module defines, read from its source with ``ast``.

        The flag is True when the set may be incomplete (star imports,
        module ``__getattr__``). ``None`` when the source is not readable.
        """
        if module in self.names:
            return self.names[module]
        result: tuple[set[str], bool] | None = None
        if isinstance(spec, type(sys)):
            namespace = vars(spec)
            result = (set(namespace), "__getattr__" in namespace)
        else:
            origin = getattr(spec, "origin", None)
            if isinstance(origin, str) and origin.endswith(".py"):
                try:
                    if os.path.getsize(origin) <= 2 << 20:
                        with open(origin, "rb") as fh:
                            tree = ast.parse(fh.read(), origin)
                        result = _ast_names(tree)
                except (OSError, SyntaxError, ValueError, RecursionError):
                    result = None
        self.names[module] = result
        return result

    def check(self, module: str, name: str) -> Availability:
        """Availability of ``module.name`` (``name`` may be empty or dotted)."""
        if module == "__main__" or (module == "__builtin__" and name == "__main__"):
            detail = (
                "looked up in the __main__ module of the program that loads it: "
                "that program must define it"
            )
            if module == "__builtin__":
                detail = (
                    "dill's Unpickler maps __builtin__.__main__ to the loading program's "
                    "__main__ namespace: load with dill.load"
                )
            return Availability("main", detail)
        dist, version, stdlib = self.distribution(module)
        spec, why = self.spec(module)
        if spec is None:
            status = (
                "missing-module"
                if "not installed" in why or "valid" in why
                else "missing-submodule"
            )
            avail = Availability(status, why, dist, version, stdlib)
        else:
            origin = getattr(spec, "origin", None) or getattr(spec, "__file__", None)
            avail = Availability(
                "available", "", dist, version, stdlib, origin if isinstance(origin, str) else None
            )
            first = name.split(".")[0] if name else ""
            if first:
                names = self.top_names(module, spec)
                if names is not None and first not in names[0] and not names[1]:
                    sub, _ = self.spec(f"{module}.{first}") if first.isidentifier() else (None, "")
                    if sub is None:
                        avail.status = "missing-name"
                        avail.detail = f"{module} defines no top-level name {first}"
        self.apply_moves(module, avail)
        return avail

    def apply_moves(self, module: str, avail: Availability) -> None:
        for prefix, dist, (low, high), message in _KNOWN_MOVES:
            if module != prefix and not module.startswith(prefix + "."):
                continue
            here: tuple[int, ...]
            if dist is None:
                here = tuple(sys.version_info[:2])
            else:
                _, version, _ = self.distribution(prefix)
                here = _vtuple(version) if version else ()
            if not here:
                if not avail.ok:
                    avail.move = message
                continue
            too_low = low is not None and here < low
            too_high = high is not None and here >= high
            if too_low or too_high or (low is None and high is None):
                avail.move = message


def _ast_names(tree: ast.Module) -> tuple[set[str], bool]:
    names: set[str] = set()
    open_ended = False
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if node.name == "__getattr__":
                open_ended = True
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    open_ended = True
                else:
                    names.add(alias.asname or alias.name)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
            targets = (
                [node.target]
                if isinstance(node, (ast.For, ast.AsyncFor))
                else [item.optional_vars for item in node.items if item.optional_vars is not None]
            )
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
        elif isinstance(node, ast.Expr):
            for sub in ast.walk(node):
                if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                    names.add(sub.target.id)
                if (
                    isinstance(sub, ast.Call)
                    and isinstance(sub.func, ast.Name)
                    and sub.func.id in ("globals", "vars", "exec", "setattr")
                ):
                    open_ended = True
        for attr in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, attr, None)
            if isinstance(block, list) and not isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            ):
                for child in block:
                    if isinstance(child, ast.ExceptHandler):
                        todo.extend(child.body)
                    elif isinstance(child, ast.stmt):
                        todo.append(child)
    return names, open_ended
